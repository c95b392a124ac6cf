//! The `pcsc` transport: cards in PC/SC readers through pcscd (the `pcsc` crate over
//! `libpcsclite`), the virtual key included (vpcd, see [`super::vicc`]).
//!
//! - [`readers`] and [`transports`] list what is there. pcscd not running, or running
//!   with no reader, is an empty list: a missing reader is not an error.
//! - [`PcscTransport`] is one card, connected shared with T=0 or T=1. `begin()` holds
//!   `SCardBeginTransaction` until its guard is dropped, which ends the transaction with
//!   `SCARD_LEAVE_CARD`; inside the process it also keeps other threads out.
//! - [`Watcher`] reports readers coming and going (through the `\\?PnP?\Notification`
//!   pseudo-reader) and cards inserted and removed, over `SCardGetStatusChange`, with a
//!   timeout and a cancel handle: what `C_WaitForSlotEvent` and `SKF_WaitForDevEvent`
//!   wait on.
//!
//! The `pcsc` crate ties a transaction to a `&mut Card` borrow, which cannot live inside
//! a `&self` transport, so each [`PcscTransport`] owns its card in a small worker thread
//! and sends it requests; the caller waits for each answer at most the transport's
//! timeout. A card pulled mid-command is [`Error::DeviceRemoved`], never a hang.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use pcsc::{Card, Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};

use super::link::{Hold, check_command, check_response};
use super::transport::{Transaction, Transport};
use crate::error::{Error, Result};

/// How long a caller waits for one APDU's answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// After a failed command, how long to wait for pcscd to report the card gone before
/// calling the failure a device error rather than a removal.
const REMOVAL_PATIENCE: Duration = Duration::from_millis(1500);

/// One reader as [`readers`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// The reader name, as pcscd gives it.
    pub name: String,
    /// Whether a card is in it.
    pub card_present: bool,
    /// The card's ATR, when there is a card.
    pub atr: Option<Vec<u8>>,
}

/// Errors that mean the card, the reader or pcscd is gone.
fn is_gone(e: pcsc::Error) -> bool {
    use pcsc::Error as P;
    matches!(
        e,
        P::RemovedCard
            | P::NoSmartcard
            | P::ReaderUnavailable
            | P::UnknownReader
            | P::NoService
            | P::ServiceStopped
            | P::Shutdown
            | P::UnpoweredCard
            | P::InvalidHandle
            | P::NoReadersAvailable
    )
}

fn map_err(reader: &str, e: pcsc::Error) -> Error {
    if is_gone(e) {
        Error::DeviceRemoved
    } else if e == pcsc::Error::SharingViolation {
        Error::Busy
    } else {
        Error::Device(format!("PC/SC reader {reader:?}: {e}"))
    }
}

/// A context, or None when pcscd is not there.
fn establish() -> Result<Option<Context>> {
    match Context::establish(Scope::User) {
        Ok(c) => Ok(Some(c)),
        Err(e) if is_gone(e) => Ok(None),
        Err(e) => Err(Error::Device(format!("PC/SC: {e}"))),
    }
}

fn list(ctx: &Context) -> Result<Vec<CString>> {
    match ctx.list_readers_owned() {
        Ok(names) => Ok(names),
        Err(e) if is_gone(e) => Ok(Vec::new()),
        Err(e) => Err(Error::Device(format!("PC/SC: {e}"))),
    }
}

fn reader_name(s: &ReaderState) -> String {
    s.name().to_string_lossy().into_owned()
}

/// The readers pcscd knows, with their cards. No pcscd or no reader is an empty list.
pub fn readers() -> Result<Vec<ReaderInfo>> {
    let Some(ctx) = establish()? else {
        return Ok(Vec::new());
    };
    let names = list(&ctx)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut states: Vec<ReaderState> = names
        .into_iter()
        .map(|n| ReaderState::new(n, State::UNAWARE))
        .collect();
    match ctx.get_status_change(Duration::ZERO, &mut states) {
        Ok(()) | Err(pcsc::Error::Timeout) => {}
        Err(e) if is_gone(e) => return Ok(Vec::new()),
        Err(e) => return Err(Error::Device(format!("PC/SC: {e}"))),
    }
    Ok(states
        .iter()
        .map(|s| {
            let present = card_in(s);
            ReaderInfo {
                name: reader_name(s),
                card_present: present,
                atr: present.then(|| s.atr().to_vec()).filter(|a| !a.is_empty()),
            }
        })
        .collect())
}

fn card_in(s: &ReaderState) -> bool {
    let st = s.event_state();
    st.contains(State::PRESENT) && !st.intersects(State::MUTE | State::UNAVAILABLE | State::UNKNOWN)
}

/// A [`PcscTransport`] for every reader with a card. None there is `Ok(vec![])`; a card
/// that does not connect (a mute card, another process holding it exclusively) is
/// skipped with a warning.
pub fn transports() -> Result<Vec<PcscTransport>> {
    let mut out = Vec::new();
    for r in readers()? {
        if !r.card_present {
            continue;
        }
        match PcscTransport::connect(&r.name) {
            Ok(t) => out.push(t),
            Err(e) => tracing::warn!(reader = %r.name, error = %e, "skipping PC/SC reader"),
        }
    }
    Ok(out)
}

enum Req {
    Transmit(Vec<u8>, Sender<Result<Vec<u8>>>),
    Begin(Sender<Result<()>>),
    End,
}

fn transmit_on(card: &Card, reader: &str, apdu: &[u8], buf: &mut [u8]) -> Result<Vec<u8>> {
    card.transmit(apdu, buf)
        .map(<[u8]>::to_vec)
        .map_err(|e| map_err(reader, e))
}

fn reconnect(card: &mut Card, reader: &str) -> Result<()> {
    card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard)
        .map_err(|e| map_err(reader, e))
}

/// The worker that owns the card: plain requests, or a transaction's requests until its
/// end. Ends when the transport is dropped.
fn serve(mut card: Card, reader: String, rx: Receiver<Req>) {
    let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
    while let Ok(req) = rx.recv() {
        match req {
            Req::Transmit(apdu, reply) => {
                let mut r = card
                    .transmit(&apdu, &mut buf)
                    .map(<[u8]>::to_vec)
                    .map_err(|e| (e, map_err(&reader, e)));
                if let Err((pcsc::Error::ResetCard, _)) = r {
                    // Another process reset the card: reconnect and send again once.
                    r = reconnect(&mut card, &reader)
                        .and_then(|()| transmit_on(&card, &reader, &apdu, &mut buf))
                        .map_err(|e| (pcsc::Error::ResetCard, e));
                }
                let _ = reply.send(r.map_err(|(_, e)| e));
            }
            Req::Begin(reply) => {
                let tx = match card.transaction2() {
                    Ok(tx) => Ok(tx),
                    Err((card, pcsc::Error::ResetCard)) => reconnect(card, &reader)
                        .and_then(|()| card.transaction().map_err(|e| map_err(&reader, e))),
                    Err((_, e)) => Err(map_err(&reader, e)),
                };
                let tx = match tx {
                    Ok(tx) => {
                        let _ = reply.send(Ok(()));
                        tx
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        continue;
                    }
                };
                loop {
                    match rx.recv() {
                        Ok(Req::Transmit(apdu, reply)) => {
                            let _ = reply.send(transmit_on(&tx, &reader, &apdu, &mut buf));
                        }
                        Ok(Req::Begin(reply)) => {
                            let _ = reply.send(Err(Error::internal("nested PC/SC transaction")));
                        }
                        Ok(Req::End) | Err(_) => break,
                    }
                }
                // Dropping the transaction ends it with SCARD_LEAVE_CARD.
                drop(tx);
            }
            Req::End => {}
        }
    }
    // Leave the card as it is for other processes; the card driver logs out itself.
    if let Err((_, e)) = card.disconnect(Disposition::LeaveCard) {
        tracing::debug!(reader = %reader, error = %e, "PC/SC disconnect");
    }
}

/// One card in a PC/SC reader.
pub struct PcscTransport {
    reader: String,
    reader_c: CString,
    atr: Vec<u8>,
    requests: Sender<Req>,
    hold: Hold,
    present: AtomicBool,
    timeout: Duration,
    ctx: Context,
    event_count: Option<u32>,
}

impl PcscTransport {
    /// Connects to the card in `reader`, shared, T=0 or T=1.
    pub fn connect(reader: &str) -> Result<Self> {
        let Some(ctx) = establish()? else {
            return Err(Error::DeviceRemoved);
        };
        let reader_c =
            CString::new(reader).map_err(|_| Error::invalid_arg("reader name with a NUL"))?;
        let card = ctx
            .connect(&reader_c, ShareMode::Shared, Protocols::ANY)
            .map_err(|e| map_err(reader, e))?;
        let atr = card
            .status2_owned()
            .map_err(|e| map_err(reader, e))?
            .atr()
            .to_vec();
        let mut state = [ReaderState::new(reader_c.clone(), State::UNAWARE)];
        let event_count = ctx
            .get_status_change(Duration::ZERO, &mut state)
            .ok()
            .map(|()| state[0].event_count());
        let (requests, rx) = mpsc::channel();
        let name = reader.to_owned();
        thread::Builder::new()
            .name("ukey-pcsc".into())
            .spawn(move || serve(card, name, rx))
            .map_err(|e| Error::Device(format!("cannot start the PC/SC worker: {e}")))?;
        tracing::debug!(reader, atr_len = atr.len(), "PC/SC card connected");
        Ok(Self {
            reader: reader.to_owned(),
            reader_c,
            atr,
            requests,
            hold: Hold::default(),
            present: AtomicBool::new(true),
            timeout: DEFAULT_TIMEOUT,
            ctx,
            event_count,
        })
    }

    /// The same transport waiting at most `timeout` for each answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether the card we connected to is still in the reader: present, and no removal
    /// since (pcscd's event counter has not moved).
    fn card_in_reader(&self) -> bool {
        let mut state = [ReaderState::new(self.reader_c.clone(), State::UNAWARE)];
        match self.ctx.get_status_change(Duration::ZERO, &mut state) {
            Ok(()) | Err(pcsc::Error::Timeout) => {
                card_in(&state[0]) && self.event_count.is_none_or(|n| n == state[0].event_count())
            }
            Err(_) => false,
        }
    }

    /// Whether the card is gone, or goes within `patience`: after a failed command,
    /// pcscd may notice the removal only at its next presence poll.
    fn gone_within(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        let mut state = [ReaderState::new(self.reader_c.clone(), State::UNAWARE)];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.ctx.get_status_change(
                if state[0].current_state() == State::UNAWARE {
                    Duration::ZERO
                } else {
                    left
                },
                &mut state,
            ) {
                Ok(()) => {
                    let s = &state[0];
                    if !card_in(s) || self.event_count.is_some_and(|n| n != s.event_count()) {
                        return true;
                    }
                    state[0].sync_current_state();
                }
                Err(pcsc::Error::Timeout) => return false,
                Err(_) => return true,
            }
            if left.is_zero() {
                return false;
            }
        }
    }

    fn removed(&self) -> Error {
        self.present.store(false, Ordering::SeqCst);
        Error::DeviceRemoved
    }

    /// Sends a request to the worker and waits for its answer at most the timeout.
    fn ask<T>(&self, make: impl FnOnce(Sender<Result<T>>) -> Req) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        self.requests.send(make(tx)).map_err(|_| self.removed())?;
        match rx.recv_timeout(self.timeout) {
            Ok(Err(Error::DeviceRemoved)) => Err(self.removed()),
            Ok(Err(e)) if self.gone_within(REMOVAL_PATIENCE) => {
                tracing::debug!(reader = %self.reader, error = %e, "card gone");
                Err(self.removed())
            }
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) if self.gone_within(REMOVAL_PATIENCE) => {
                Err(self.removed())
            }
            Err(RecvTimeoutError::Timeout) => Err(Error::Device(format!(
                "no answer from the card in {:?} within {:?}",
                self.reader, self.timeout
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(self.removed()),
        }
    }
}

/// A PC/SC transaction: the thread's hold and, for the outermost one, the card's.
struct PcscTransaction<'a> {
    end: Option<Sender<Req>>,
    _hold: super::link::HoldGuard<'a>,
}

impl Transaction for PcscTransaction<'_> {}

impl Drop for PcscTransaction<'_> {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            // Queued before any other thread's request: the hold is released after this.
            let _ = end.send(Req::End);
        }
    }
}

impl Transport for PcscTransport {
    fn id(&self) -> String {
        self.reader.clone()
    }

    fn atr(&self) -> Option<Vec<u8>> {
        Some(self.atr.clone())
    }

    fn transmit(&self, apdu: &[u8]) -> Result<Vec<u8>> {
        check_command(apdu)?;
        let _hold = self.hold.acquire()?;
        if !self.present.load(Ordering::SeqCst) {
            return Err(Error::DeviceRemoved);
        }
        let response = self
            .ask(|reply| Req::Transmit(apdu.to_vec(), reply))
            .and_then(|r| check_response(&r).map(|()| r))
            .map_err(|e| match e {
                // vpcd answers an empty response for a card that left mid-command.
                Error::Device(_) if self.gone_within(REMOVAL_PATIENCE) => self.removed(),
                e => e,
            })?;
        tracing::trace!(
            reader = %self.reader,
            header = %hex::encode_upper(&apdu[..4]),
            command_len = apdu.len(),
            response_len = response.len(),
            "PC/SC APDU"
        );
        Ok(response)
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        let hold = self.hold.acquire()?;
        if !self.present.load(Ordering::SeqCst) {
            return Err(Error::DeviceRemoved);
        }
        let end = if hold.outermost() {
            if let Err(e) = self.ask(Req::Begin) {
                // Should the worker begin after all (a late answer), end it at once; a
                // worker that refused takes the End as a no-op.
                let _ = self.requests.send(Req::End);
                return Err(e);
            }
            Some(self.requests.clone())
        } else {
            None
        };
        Ok(Box::new(PcscTransaction { end, _hold: hold }))
    }

    fn is_present(&self) -> bool {
        if !self.present.load(Ordering::SeqCst) {
            return false;
        }
        if !self.card_in_reader() {
            self.present.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }
}

/// A change [`Watcher`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PcscEvent {
    /// A reader appeared.
    ReaderAdded(String),
    /// A reader went away (with its card, if it had one: see [`PcscEvent::CardRemoved`]).
    ReaderRemoved(String),
    /// A card was inserted (or re-inserted) in a reader.
    CardInserted {
        /// The reader.
        reader: String,
        /// The new card's ATR.
        atr: Vec<u8>,
    },
    /// The card left the reader.
    CardRemoved {
        /// The reader.
        reader: String,
    },
}

/// What [`Watcher::wait`] ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchOutcome {
    /// Something changed.
    Events(Vec<PcscEvent>),
    /// Nothing changed within the timeout.
    Timeout,
    /// [`WatchCancel::cancel`] was called.
    Cancelled,
}

/// Stops a [`Watcher`]'s wait from another thread. Cancelling is final.
#[derive(Clone)]
pub struct WatchCancel {
    flag: Arc<AtomicBool>,
    ctx: Arc<Mutex<Option<Context>>>,
}

impl WatchCancel {
    /// Ends the current and every later [`Watcher::wait`] with [`WatchOutcome::Cancelled`].
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let ctx = self.ctx.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ctx) = ctx.as_ref() {
            // SCardCancel: the one call made for use from another thread.
            let _ = ctx.cancel();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Known {
    present: bool,
    count: u32,
}

/// Watches readers and cards.
pub struct Watcher {
    ctx: Option<Context>,
    shared: Arc<Mutex<Option<Context>>>,
    cancelled: Arc<AtomicBool>,
    /// The PnP pseudo-reader first, then one entry per reader.
    states: Vec<ReaderState>,
    known: Vec<Known>,
}

/// How often the watcher retries when pcscd is not running.
const NO_SERVICE_POLL: Duration = Duration::from_millis(250);

impl Watcher {
    /// A watcher that reports changes from now on (what is there now is no event; list
    /// it with [`readers`]).
    pub fn new() -> Result<Self> {
        let mut w = Self {
            ctx: None,
            shared: Arc::new(Mutex::new(None)),
            cancelled: Arc::new(AtomicBool::new(false)),
            states: Vec::new(),
            known: Vec::new(),
        };
        w.connect()?;
        Ok(w)
    }

    /// A handle to cancel waits from another thread.
    pub fn cancel_handle(&self) -> WatchCancel {
        WatchCancel {
            flag: self.cancelled.clone(),
            ctx: self.shared.clone(),
        }
    }

    /// (Re)establishes the context and takes a snapshot of the readers. No pcscd leaves
    /// the watcher without a context, to retry later.
    fn connect(&mut self) -> Result<Vec<PcscEvent>> {
        let ctx = establish()?;
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = ctx.clone();
        self.ctx = ctx;
        self.states = vec![ReaderState::new(pcsc::PNP_NOTIFICATION(), State::UNAWARE)];
        self.known = vec![Known {
            present: false,
            count: 0,
        }];
        self.refresh_readers()
    }

    /// Brings the reader list up to date: new readers are added (and reported, with
    /// their card), vanished ones reported and dropped.
    fn refresh_readers(&mut self) -> Result<Vec<PcscEvent>> {
        let mut events = Vec::new();
        let names = match &self.ctx {
            Some(ctx) => list(ctx)?,
            None => Vec::new(),
        };
        // Vanished readers.
        let mut i = 1;
        while i < self.states.len() {
            if names.iter().any(|n| n.as_c_str() == self.states[i].name()) {
                i += 1;
                continue;
            }
            let name = reader_name(&self.states[i]);
            if self.known[i].present {
                events.push(PcscEvent::CardRemoved {
                    reader: name.clone(),
                });
            }
            events.push(PcscEvent::ReaderRemoved(name));
            self.states.remove(i);
            self.known.remove(i);
        }
        // New readers.
        let first_new = self.states.len();
        for n in names {
            if !self.states[1..].iter().any(|s| s.name() == n.as_c_str()) {
                self.states.push(ReaderState::new(n, State::UNAWARE));
                self.known.push(Known {
                    present: false,
                    count: 0,
                });
            }
        }
        if self.states.len() > first_new
            && let Some(ctx) = &self.ctx
        {
            let fresh = &mut self.states[first_new..];
            match ctx.get_status_change(Duration::ZERO, fresh) {
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(e) => tracing::debug!(error = %e, "PC/SC status of new readers"),
            }
            for (k, s) in self.known[first_new..].iter_mut().zip(fresh.iter_mut()) {
                *k = Known {
                    present: card_in(s),
                    count: s.event_count(),
                };
                s.sync_current_state();
            }
        }
        Ok(events)
    }

    /// Waits at most `timeout` for readers or cards to change.
    pub fn wait(&mut self, timeout: Duration) -> Result<WatchOutcome> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.cancelled.load(Ordering::SeqCst) {
                return Ok(WatchOutcome::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(WatchOutcome::Timeout);
            }
            let left = deadline - now;
            let Some(ctx) = self.ctx.clone() else {
                thread::sleep(left.min(NO_SERVICE_POLL));
                let events = self.connect()?;
                if !events.is_empty() {
                    return Ok(WatchOutcome::Events(events));
                }
                // Readers found after pcscd came up count as added.
                let added: Vec<PcscEvent> = self.added_since_start();
                if !added.is_empty() {
                    return Ok(WatchOutcome::Events(added));
                }
                continue;
            };
            match ctx.get_status_change(left, &mut self.states) {
                Ok(()) => {
                    let events = self.collect()?;
                    if !events.is_empty() {
                        return Ok(WatchOutcome::Events(events));
                    }
                }
                Err(pcsc::Error::Timeout) => return Ok(WatchOutcome::Timeout),
                Err(pcsc::Error::Cancelled) => {}
                Err(pcsc::Error::UnknownReader) => {
                    let events = self.refresh_readers()?;
                    if !events.is_empty() {
                        return Ok(WatchOutcome::Events(events));
                    }
                }
                Err(e) if is_gone(e) => {
                    // pcscd went away: every reader with it.
                    self.ctx = None;
                    *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    let events = self.refresh_readers()?;
                    if !events.is_empty() {
                        return Ok(WatchOutcome::Events(events));
                    }
                }
                Err(e) => return Err(Error::Device(format!("PC/SC: {e}"))),
            }
        }
    }

    /// After pcscd (re)appears, its readers and cards are news.
    fn added_since_start(&self) -> Vec<PcscEvent> {
        let mut out = Vec::new();
        for (s, k) in self.states.iter().zip(&self.known).skip(1) {
            out.push(PcscEvent::ReaderAdded(reader_name(s)));
            if k.present {
                out.push(PcscEvent::CardInserted {
                    reader: reader_name(s),
                    atr: s.atr().to_vec(),
                });
            }
        }
        out
    }

    /// The events in the states `SCardGetStatusChange` just filled in.
    fn collect(&mut self) -> Result<Vec<PcscEvent>> {
        let mut events = Vec::new();
        for i in 1..self.states.len() {
            let s = &mut self.states[i];
            if !s.event_state().contains(State::CHANGED) {
                continue;
            }
            let now = Known {
                present: card_in(s),
                count: s.event_count(),
            };
            let was = self.known[i];
            let name = reader_name(s);
            // A card pulled and put back between two waits moves the counter.
            let swapped = was.present && now.present && now.count != was.count;
            if was.present && (!now.present || swapped) {
                events.push(PcscEvent::CardRemoved {
                    reader: name.clone(),
                });
            }
            if now.present && (!was.present || swapped) {
                events.push(PcscEvent::CardInserted {
                    reader: name,
                    atr: s.atr().to_vec(),
                });
            }
            self.known[i] = now;
            s.sync_current_state();
        }
        let pnp = &mut self.states[0];
        if pnp.event_state().contains(State::CHANGED) {
            pnp.sync_current_state();
            let before: Vec<String> = self.states[1..].iter().map(reader_name).collect();
            let mut changes = self.refresh_readers()?;
            for s in &self.states[1..] {
                let name = reader_name(s);
                if !before.contains(&name) {
                    changes.push(PcscEvent::ReaderAdded(name));
                }
            }
            for (s, k) in self.states.iter().zip(&self.known).skip(1) {
                let name = reader_name(s);
                if k.present && !before.contains(&name) {
                    changes.push(PcscEvent::CardInserted {
                        reader: name,
                        atr: s.atr().to_vec(),
                    });
                }
            }
            events.extend(changes);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // pcscd runs only in tests/pcsc_vpcd.rs (which starts its own); here it may or may
    // not be there, and the answers must be clean either way.

    #[test]
    fn listing_never_fails_for_lack_of_readers() {
        let readers = readers().unwrap();
        let transports = transports().unwrap();
        assert!(transports.len() <= readers.iter().filter(|r| r.card_present).count());
    }

    #[test]
    fn connecting_to_a_reader_that_is_not_there() {
        assert!(PcscTransport::connect("no such reader 00 00").is_err());
        assert!(PcscTransport::connect("nul\0reader").is_err());
    }

    #[test]
    fn gone_errors_are_device_removed() {
        assert!(matches!(
            map_err("r", pcsc::Error::RemovedCard),
            Error::DeviceRemoved
        ));
        assert!(matches!(
            map_err("r", pcsc::Error::NoService),
            Error::DeviceRemoved
        ));
        assert!(matches!(
            map_err("r", pcsc::Error::SharingViolation),
            Error::Busy
        ));
        assert!(matches!(
            map_err("r", pcsc::Error::CommError),
            Error::Device(_)
        ));
    }

    #[test]
    fn cancelled_watcher_returns_at_once() {
        let mut w = Watcher::new().unwrap();
        let c = w.cancel_handle();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            c.cancel();
        });
        let t0 = Instant::now();
        let r = w.wait(Duration::from_secs(20)).unwrap();
        t.join().unwrap();
        assert_eq!(r, WatchOutcome::Cancelled);
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        // Final.
        assert_eq!(
            w.wait(Duration::from_secs(1)).unwrap(),
            WatchOutcome::Cancelled
        );
    }
}
