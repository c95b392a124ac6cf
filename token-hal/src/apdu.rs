//! The APDU card layer: ISO 7816-4 commands to GM-style USB keys and smart cards.
//!
//! - [`backend`]: cards of one link kind as a registry `Backend`;
//! - [`applet`]: the virtual key, the card side of the command set over a soft device;
//! - [`driver`]: the card driver, `Device` and `Application` over any `Transport`;
//! - [`command`]: command and response APDUs, short and extended forms, chaining;
//! - [`exchange`]: one command and its complete answer over any link (61xx GET RESPONSE,
//!   6Cxx re-send, chaining or extended length, every response length checked);
//! - [`sm`]: the secure channel (SM2 key exchange → SM4-GCM envelopes with a replay
//!   counter), both sides;
//! - [`status`]: status words ↔ token-hal errors, in one table;
//! - [`tlv`]: the TLV encoding of command and response fields;
//! - [`wire`]: instruction bytes, tags and the encoding of model types and mechanisms;
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

pub mod applet;
pub mod backend;
pub mod command;
pub mod discover;
pub mod driver;
pub mod exchange;
pub mod hid;
pub mod link;
pub mod loopback;
pub mod pcsc;
pub mod sm;
pub mod status;
pub mod tlv;
pub mod transport;
pub mod vicc;
pub mod wire;
