//! The APDU card layer: ISO 7816-4 commands to GM-style USB keys and smart cards.
//!
//! - [`command`]: command and response APDUs, short and extended forms, chaining;
//! - [`exchange`]: one command and its complete answer over any link (61xx GET RESPONSE,
//!   6Cxx re-send, chaining or extended length, every response length checked);
//! - [`status`]: status words ↔ token-hal errors, in one table;
//! - [`transport`]: how command APDUs reach a card ([`transport::Transport`]) and how a
//!   card (real, or the virtual key `ukey sim`) answers them ([`transport::CardHandler`]);
//! - [`discover`]: the PC/SC and HID links present now, as `UKEY_BACKENDS` allows;
//! - [`link`]: what every transport shares (APDU size bounds, the per-thread hold);
//! - [`loopback`]: an in-process card, for tests and fuzzing;
//! - [`hid`]: APDUs in 64-byte HID reports (codec, host and card sides, hidapi link);
//! - [`pcsc`]: cards in PC/SC readers through pcscd, and the reader/card watcher;
//! - [`vicc`]: the card side of vsmartcard's vpcd reader, to put a card handler in pcscd.
//!
//! The command set itself is documented in `docs/apdu.md`.

pub mod command;
pub mod discover;
pub mod exchange;
pub mod hid;
pub mod link;
pub mod loopback;
pub mod pcsc;
pub mod status;
pub mod transport;
pub mod vicc;
