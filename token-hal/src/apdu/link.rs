//! What every transport shares: the bounds on APDU sizes, and the in-process half of a
//! transaction (one thread at a time owns a link).
//!
//! A [`Hold`] is a re-entrant lock keyed by thread. [`super::transport::Transport::begin`]
//! takes it for the whole multi-APDU sequence; every single `transmit` takes it too, so an
//! APDU from another thread waits until the sequence is over instead of slipping into the
//! middle of it, while the owning thread's own APDUs go straight through. A thread that
//! waits longer than the bound gets [`Error::Busy`] rather than hanging.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use super::transport::{CardHandler, Transaction};
use crate::error::{Error, Result};

/// The longest command APDU any transport carries: an extended case 4 command with 65 535
/// data bytes (4 header + 3 Lc + 65 535 + 2 Le).
pub const MAX_COMMAND_APDU: usize = 4 + 3 + 65_535 + 2;
/// The longest response APDU: 65 536 data bytes and the status word.
pub const MAX_RESPONSE_APDU: usize = 65_536 + 2;

/// Checks a command APDU's size before it is sent: at least a header, at most
/// [`MAX_COMMAND_APDU`].
pub fn check_command(apdu: &[u8]) -> Result<()> {
    if apdu.len() < 4 || apdu.len() > MAX_COMMAND_APDU {
        return Err(Error::invalid_arg(format!(
            "a command APDU of {} bytes (4..={MAX_COMMAND_APDU})",
            apdu.len()
        )));
    }
    Ok(())
}

/// Checks a response APDU's size as it comes from the card: at least the status word, at
/// most [`MAX_RESPONSE_APDU`].
pub fn check_response(rapdu: &[u8]) -> Result<()> {
    if rapdu.len() < 2 || rapdu.len() > MAX_RESPONSE_APDU {
        return Err(Error::Device(format!(
            "a response APDU of {} bytes (2..={MAX_RESPONSE_APDU})",
            rapdu.len()
        )));
    }
    Ok(())
}

/// A boxed card handler is a card handler, so the links generic over one (the vicc
/// client) also take a card chosen at run time (`ukey sim`).
impl CardHandler for Box<dyn CardHandler> {
    fn power_on(&mut self) -> Vec<u8> {
        (**self).power_on()
    }
    fn power_off(&mut self) {
        (**self).power_off()
    }
    fn reset(&mut self) -> Vec<u8> {
        (**self).reset()
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        (**self).process(apdu)
    }
}

/// How long a thread waits for another thread's transaction before giving up.
pub const DEFAULT_HOLD_WAIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Owner {
    thread: Option<ThreadId>,
    depth: usize,
}

/// A re-entrant, per-thread hold on one link.
pub struct Hold {
    owner: Mutex<Owner>,
    released: Condvar,
    wait: Duration,
}

impl Default for Hold {
    fn default() -> Self {
        Self::new(DEFAULT_HOLD_WAIT)
    }
}

impl Hold {
    /// A free hold; waiters give up after `wait`.
    pub fn new(wait: Duration) -> Self {
        Self {
            owner: Mutex::new(Owner::default()),
            released: Condvar::new(),
            wait,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Owner> {
        self.owner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the hold for the calling thread (again, if it has it already), waiting for
    /// another thread's hold to end.
    pub fn acquire(&self) -> Result<HoldGuard<'_>> {
        let me = thread::current().id();
        let deadline = Instant::now() + self.wait;
        let mut owner = self.lock();
        let outermost = loop {
            match owner.thread {
                None => {
                    owner.thread = Some(me);
                    owner.depth = 1;
                    break true;
                }
                Some(t) if t == me => {
                    owner.depth += 1;
                    break false;
                }
                Some(_) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::Busy);
                    }
                    owner = self
                        .released
                        .wait_timeout(owner, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        };
        Ok(HoldGuard {
            hold: self,
            outermost,
        })
    }

    fn release(&self) {
        let mut owner = self.lock();
        owner.depth = owner.depth.saturating_sub(1);
        if owner.depth == 0 {
            owner.thread = None;
            drop(owner);
            self.released.notify_all();
        }
    }
}

/// The hold of one thread; released (one level) on drop.
pub struct HoldGuard<'a> {
    hold: &'a Hold,
    outermost: bool,
}

impl HoldGuard<'_> {
    /// Whether this guard took the hold (rather than nesting in the thread's own).
    pub fn outermost(&self) -> bool {
        self.outermost
    }
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        self.hold.release();
    }
}

impl Transaction for HoldGuard<'_> {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn reentrant_for_the_owner_exclusive_for_others() {
        let hold = Arc::new(Hold::new(Duration::from_millis(100)));
        let g1 = hold.acquire().unwrap();
        let g2 = hold.acquire().unwrap();
        assert!(g1.outermost() && !g2.outermost());
        let h = hold.clone();
        // Another thread times out while the hold is taken.
        let r = std::thread::spawn(move || h.acquire().map(|_| ()))
            .join()
            .unwrap();
        assert!(matches!(r, Err(Error::Busy)));
        drop(g2);
        // Still held one level deep.
        let h = hold.clone();
        let r = std::thread::spawn(move || h.acquire().map(|_| ()))
            .join()
            .unwrap();
        assert!(matches!(r, Err(Error::Busy)));
        drop(g1);
        let h = hold.clone();
        std::thread::spawn(move || h.acquire().map(|_| ()))
            .join()
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_waiter_gets_the_hold_when_it_is_released() {
        let hold = Arc::new(Hold::new(Duration::from_secs(10)));
        let g = hold.acquire().unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let (h, got2) = (hold.clone(), got.clone());
        let t = std::thread::spawn(move || {
            let _g = h.acquire().unwrap();
            got2.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!got.load(Ordering::SeqCst));
        drop(g);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
    }
}
