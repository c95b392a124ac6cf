//! The `loopback` transport: a card handler in the same process, for tests and fuzzing
//! (OpenSC's fake reader in `fuzzer_reader.c` plays the same part).
//!
//! The card is powered on when it is attached, which gives the ATR. Tests can pull it
//! ([`LoopbackTransport::pull`]: `transmit` then fails with [`Error::DeviceRemoved`]) and
//! put it back ([`LoopbackTransport::reinsert`], a fresh power-on), and can record the
//! traffic ([`LoopbackTransport::with_log`]) to prove what reached the card, or that a
//! PIN never crossed the link in clear. The record stays in memory and is only handed to
//! the test that asked for it; nothing of it goes to the tracing log, which sees headers
//! and sizes only.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::link::{Hold, check_command, check_response};
use super::transport::{CardHandler, Transaction, Transport};
use crate::error::{Error, Result};

/// One command and its response as the loopback card saw them.
#[derive(Clone, PartialEq, Eq)]
pub struct LoggedApdu {
    /// The command APDU, as sent.
    pub command: Vec<u8>,
    /// The response APDU (data and status word).
    pub response: Vec<u8>,
}

impl std::fmt::Debug for LoggedApdu {
    // The data may hold PIN blocks or keys: header, sizes and status word only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header = self.command.get(..4).unwrap_or(&self.command);
        let sw = self
            .response
            .len()
            .checked_sub(2)
            .and_then(|i| self.response.get(i..));
        write!(
            f,
            "LoggedApdu({}, {} bytes -> {} bytes, SW {})",
            hex::encode_upper(header),
            self.command.len(),
            self.response.len(),
            sw.map(hex::encode_upper).unwrap_or_default()
        )
    }
}

struct Slot {
    card: Box<dyn CardHandler>,
    present: bool,
    atr: Vec<u8>,
    log: Option<Vec<LoggedApdu>>,
}

/// An in-process link to a [`CardHandler`].
pub struct LoopbackTransport {
    name: String,
    slot: Mutex<Slot>,
    hold: Hold,
}

impl LoopbackTransport {
    /// Attaches `card` under `name` and powers it on.
    pub fn new(name: impl Into<String>, mut card: Box<dyn CardHandler>) -> Self {
        let atr = card.power_on();
        Self {
            name: name.into(),
            slot: Mutex::new(Slot {
                card,
                present: true,
                atr,
                log: None,
            }),
            hold: Hold::default(),
        }
    }

    /// The same link, recording every command and response from now on.
    pub fn with_log(self) -> Self {
        self.lock().log = Some(Vec::new());
        self
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The traffic recorded so far (empty unless [`Self::with_log`]).
    pub fn log(&self) -> Vec<LoggedApdu> {
        self.lock().log.clone().unwrap_or_default()
    }

    /// Empties the record.
    pub fn clear_log(&self) {
        if let Some(log) = self.lock().log.as_mut() {
            log.clear();
        }
    }

    /// Pulls the card: it loses power and every `transmit` fails with
    /// [`Error::DeviceRemoved`] until [`Self::reinsert`].
    pub fn pull(&self) {
        let mut slot = self.lock();
        if slot.present {
            slot.card.power_off();
            slot.present = false;
            tracing::debug!(reader = %self.name, "loopback card pulled");
        }
    }

    /// Puts the card back: a fresh power-on and ATR. A present card is left alone.
    pub fn reinsert(&self) {
        let mut slot = self.lock();
        if !slot.present {
            slot.atr = slot.card.power_on();
            slot.present = true;
            tracing::debug!(reader = %self.name, "loopback card inserted");
        }
    }

    /// Puts another card in the slot (pulling the current one) and returns the old card.
    pub fn swap_card(&self, card: Box<dyn CardHandler>) -> Box<dyn CardHandler> {
        let mut slot = self.lock();
        if slot.present {
            slot.card.power_off();
        }
        let old = std::mem::replace(&mut slot.card, card);
        slot.atr = slot.card.power_on();
        slot.present = true;
        old
    }
}

impl Transport for LoopbackTransport {
    fn id(&self) -> String {
        self.name.clone()
    }

    fn atr(&self) -> Option<Vec<u8>> {
        let slot = self.lock();
        slot.present.then(|| slot.atr.clone())
    }

    fn transmit(&self, apdu: &[u8]) -> Result<Vec<u8>> {
        check_command(apdu)?;
        let _hold = self.hold.acquire()?;
        let mut slot = self.lock();
        if !slot.present {
            return Err(Error::DeviceRemoved);
        }
        let response = slot.card.process(apdu);
        tracing::trace!(
            reader = %self.name,
            header = %hex::encode_upper(&apdu[..4]),
            command_len = apdu.len(),
            response_len = response.len(),
            "loopback APDU"
        );
        check_response(&response)?;
        if let Some(log) = slot.log.as_mut() {
            log.push(LoggedApdu {
                command: apdu.to_vec(),
                response: response.clone(),
            });
        }
        Ok(response)
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        Ok(Box::new(self.hold.acquire()?))
    }

    fn is_present(&self) -> bool {
        self.lock().present
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::super::command::{Command, Sw};
    use super::super::exchange::{LinkCaps, exchange};
    use super::*;

    /// A test card: INS 0x01 echoes its data; INS 0x02 answers Ne bytes through 61xx in
    /// pieces of at most 100; INS 0x03 records the data in the card's tape. Every APDU
    /// counts; power cycles count too.
    pub(crate) struct EchoCard {
        pub(crate) count: Arc<AtomicUsize>,
        pub(crate) powered: Arc<AtomicUsize>,
        pending: Vec<u8>,
    }

    pub(crate) const ECHO_ATR: [u8; 8] = [0x3B, 0x86, 0x80, 0x01, b'u', b'k', b'e', b'y'];

    impl EchoCard {
        pub(crate) fn new() -> Self {
            Self {
                count: Arc::new(AtomicUsize::new(0)),
                powered: Arc::new(AtomicUsize::new(0)),
                pending: Vec::new(),
            }
        }

        fn serve_pending(&mut self, le: usize) -> Vec<u8> {
            let n = self.pending.len().min(le).min(100);
            let mut out: Vec<u8> = self.pending.drain(..n).collect();
            match self.pending.len() {
                0 => out.extend_from_slice(&[0x90, 0x00]),
                k => out.extend_from_slice(&[0x61, k.min(255) as u8]),
            }
            out
        }
    }

    impl CardHandler for EchoCard {
        fn power_on(&mut self) -> Vec<u8> {
            self.powered.fetch_add(1, Ordering::SeqCst);
            ECHO_ATR.to_vec()
        }
        fn power_off(&mut self) {
            self.pending.clear();
        }
        fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
            self.count.fetch_add(1, Ordering::SeqCst);
            let Ok((cmd, _)) = Command::decode(apdu) else {
                return vec![0x67, 0x00];
            };
            let le = cmd.le.unwrap_or(0);
            match cmd.ins {
                0x01 => {
                    let mut out = cmd.data.clone();
                    out.truncate(le);
                    out.extend_from_slice(&[0x90, 0x00]);
                    out
                }
                0x02 => {
                    self.pending = (0..le).map(|i| i as u8).collect();
                    self.serve_pending(le)
                }
                0xC0 => self.serve_pending(le),
                _ => vec![0x6D, 0x00],
            }
        }
    }

    #[test]
    fn power_on_at_attach_gives_the_atr() {
        let card = EchoCard::new();
        let powered = card.powered.clone();
        let t = LoopbackTransport::new("loop0", Box::new(card));
        assert_eq!(t.atr().unwrap(), ECHO_ATR);
        assert_eq!(powered.load(Ordering::SeqCst), 1);
        assert!(t.is_present());
        assert_eq!(t.id(), "loop0");
    }

    #[test]
    fn exchange_over_loopback_joins_get_response() {
        let t = LoopbackTransport::new("loop0", Box::new(EchoCard::new()));
        let cmd = Command::new(0x80, 0x02, 0, 0).with_le(256);
        let r = exchange(&t, LinkCaps::SHORT, &cmd).unwrap();
        assert_eq!(r.sw, Sw::OK);
        assert_eq!(r.data, (0..=255u8).collect::<Vec<_>>());
        let cmd = Command::new(0x80, 0x01, 0, 0)
            .with_data(vec![0x5A; 300])
            .with_le(300);
        let r = exchange(&t, LinkCaps::EXTENDED, &cmd).unwrap();
        assert_eq!(r.data, vec![0x5A; 300]);
    }

    #[test]
    fn pulled_card_is_removed_until_reinserted() {
        let card = EchoCard::new();
        let (count, powered) = (card.count.clone(), card.powered.clone());
        let t = LoopbackTransport::new("loop0", Box::new(card));
        t.pull();
        assert!(!t.is_present());
        assert_eq!(t.atr(), None);
        assert!(matches!(
            t.transmit(&[0x80, 0x01, 0, 0]),
            Err(Error::DeviceRemoved)
        ));
        assert_eq!(count.load(Ordering::SeqCst), 0, "nothing reached the card");
        t.reinsert();
        assert!(t.is_present());
        assert_eq!(powered.load(Ordering::SeqCst), 2);
        assert_eq!(t.transmit(&[0x80, 0x01, 0, 0]).unwrap(), [0x90, 0x00]);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn swap_card_puts_a_new_card_in() {
        let t = LoopbackTransport::new("loop0", Box::new(EchoCard::new()));
        let second = EchoCard::new();
        let count = second.count.clone();
        let old = t.swap_card(Box::new(second));
        drop(old);
        t.transmit(&[0x80, 0x01, 0, 0]).unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1, "the new card answered");
    }

    #[test]
    fn log_records_traffic_and_debug_hides_data() {
        let t = LoopbackTransport::new("loop0", Box::new(EchoCard::new()));
        t.transmit(&[0x80, 0x01, 0, 0]).unwrap();
        assert!(t.log().is_empty(), "no log unless asked for");
        let t = t.with_log();
        let secret = [0x80, 0x01, 0, 0, 4, 0x31, 0x32, 0x33, 0x34, 4];
        t.transmit(&secret).unwrap();
        let log = t.log();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].command, secret);
        assert_eq!(log[0].response, [0x31, 0x32, 0x33, 0x34, 0x90, 0x00]);
        let shown = format!("{:?}", log[0]);
        assert!(
            shown.contains("80010000") && shown.contains("9000"),
            "{shown}"
        );
        assert!(!shown.contains("31323334"), "{shown}");
        t.clear_log();
        assert!(t.log().is_empty());
    }

    #[test]
    fn bad_lengths_are_refused_before_the_card() {
        let card = EchoCard::new();
        let count = card.count.clone();
        let t = LoopbackTransport::new("loop0", Box::new(card));
        assert!(matches!(
            t.transmit(&[0x80, 0x01]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(t.transmit(&vec![0; 70_000]).is_err());
        assert_eq!(count.load(Ordering::SeqCst), 0);

        /// A broken card that answers one byte.
        struct Mute;
        impl CardHandler for Mute {
            fn power_on(&mut self) -> Vec<u8> {
                vec![0x3B, 0x00]
            }
            fn power_off(&mut self) {}
            fn process(&mut self, _: &[u8]) -> Vec<u8> {
                vec![0x90]
            }
        }
        let t = LoopbackTransport::new("mute", Box::new(Mute));
        assert!(matches!(
            t.transmit(&[0x80, 0x01, 0, 0]),
            Err(Error::Device(_))
        ));
    }

    #[test]
    fn begin_keeps_other_threads_out() {
        let t = Arc::new(LoopbackTransport::new("loop0", Box::new(EchoCard::new())).with_log());
        let tx = t.begin().unwrap();
        t.transmit(&[0x80, 0x01, 0, 1]).unwrap();
        let t2 = t.clone();
        let other = std::thread::spawn(move || t2.transmit(&[0x80, 0x01, 0, 9]).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        // Re-entrant for the owner while the other thread waits.
        let inner = t.begin().unwrap();
        t.transmit(&[0x80, 0x01, 0, 2]).unwrap();
        drop(inner);
        t.transmit(&[0x80, 0x01, 0, 3]).unwrap();
        drop(tx);
        other.join().unwrap();
        let p2: Vec<u8> = t.log().iter().map(|l| l.command[3]).collect();
        assert_eq!(
            p2,
            [1, 2, 3, 9],
            "the other thread's APDU came after the transaction"
        );
    }
}
