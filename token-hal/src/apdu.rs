//! The APDU card layer: ISO 7816-4 commands to GM-style USB keys and smart cards.
//!
//! - [`transport`]: how command APDUs reach a card ([`transport::Transport`]) and how a
//!   card (real, or the virtual key `ukey sim`) answers them ([`transport::CardHandler`]).
//!
//! The command set itself is documented in `docs/apdu.md`.

pub mod transport;
