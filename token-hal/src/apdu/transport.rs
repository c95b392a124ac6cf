//! The two sides of an APDU link.
//!
//! A [`Transport`] carries command APDUs from the host to one card: a PC/SC reader
//! (`pcsc`), a HID key with 64-byte report framing (`hid`), or an in-process
//! [`CardHandler`] (`loopback`, for tests and fuzzing). The card driver only ever sees
//! this trait, so every transport serves PKCS#11 and SKF unchanged.
//!
//! A [`CardHandler`] is the card side: it turns one command APDU into one response APDU.
//! The virtual key (`ukey sim`) implements it and is attached to pcscd through vpcd, to
//! the HID framing, or directly as a loopback card.

use crate::error::Result;

/// An exclusive hold on a card for a multi-APDU operation; released on drop.
pub trait Transaction {}

/// A link to one card.
pub trait Transport: Send + Sync {
    /// A stable identifier for the card's position: the PC/SC reader name, the HID path,
    /// or the loopback card's name. Used for slot IDs and device serials when the card
    /// gives none.
    fn id(&self) -> String;

    /// The answer to reset (ATR) of the card, if the transport knows one.
    fn atr(&self) -> Option<Vec<u8>>;

    /// Sends one command APDU (fully encoded, short or extended form) and returns the
    /// complete response: data followed by SW1 SW2. Transport failures are errors; a
    /// card that was pulled is [`crate::error::Error`] of kind device-removed.
    fn transmit(&self, apdu: &[u8]) -> Result<Vec<u8>>;

    /// Holds the card exclusively until the returned guard is dropped, so that a
    /// sequence of APDUs (chaining, GET RESPONSE, authenticate-then-operate) is not
    /// interleaved with another process's. Transports without sharing return a no-op guard.
    fn begin(&self) -> Result<Box<dyn Transaction + '_>>;

    /// Whether the card is still present (cheap; may be stale by one event).
    fn is_present(&self) -> bool;
}

/// The card side of the link.
pub trait CardHandler: Send {
    /// Power on (or cold reset): the card's ATR.
    fn power_on(&mut self) -> Vec<u8>;

    /// Power off: volatile state (logins, session keys, secure channel) is lost.
    fn power_off(&mut self);

    /// Warm reset: like power off then on; returns the ATR.
    fn reset(&mut self) -> Vec<u8> {
        self.power_off();
        self.power_on()
    }

    /// Processes one command APDU and returns the response (data + SW1 SW2). Malformed
    /// commands get a status word, never a panic.
    fn process(&mut self, apdu: &[u8]) -> Vec<u8>;
}
