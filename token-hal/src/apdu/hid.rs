//! The `hid` transport: APDUs framed in 64-byte HID reports, the way Ledger-compatible
//! keys carry them (../shared/reference/skf-and-gm.md §8; docs/apdu-transport.md has the
//! byte layout).
//!
//! ```text
//! first report:  channel (2, BE) | tag 0x05 (1) | sequence 0 (2, BE) | total length (2, BE) | 57 data bytes
//! next reports:  channel (2, BE) | tag 0x05 (1) | sequence n (2, BE) | 59 data bytes
//! ```
//!
//! The last report is padded with zeros; a message (a command or a response APDU) is 1 to
//! 65 535 bytes. The host side sends on one channel and accepts an answer only on that
//! channel, with the APDU tag and consecutive sequence numbers from 0; anything else is
//! an error, never a panic or an unbounded read.
//!
//! - [`frame`] and [`Deframer`] are the codec, used on both sides;
//! - [`HidTransport`] is the host side over any [`HidLink`] (one report out, one report
//!   in with a timeout);
//! - [`HidapiLink`] is the real link, through the `hidapi` crate and the system
//!   `libhidapi-hidraw`; [`enumerate`] finds keys by the VID/PID table of the `[hid]`
//!   config section;
//! - [`HidCard`] is the card side (a deframer in front of a [`CardHandler`]), and
//!   [`LoopbackHidLink`] joins the two in-process, so the framing is exercised both ways
//!   without USB. This machine has no USB and no `/dev/uhid`, so [`HidapiLink`] I/O is
//!   not exercised by the tests here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::link::{Hold, check_command, check_response};
use super::transport::{CardHandler, Transaction, Transport};
use crate::config::{HidConfig, HidDeviceId};
use crate::error::{Error, Result};

/// Size of one HID report (without the report-ID byte hidapi puts in front on write).
pub const REPORT_SIZE: usize = 64;
/// The tag of an APDU frame.
pub const TAG_APDU: u8 = 0x05;
/// The channel the host uses unless told otherwise (the Ledger value).
pub const DEFAULT_CHANNEL: u16 = 0x0101;
/// Header of the first report: channel, tag, sequence, total length.
pub const FIRST_HEADER: usize = 7;
/// Header of the following reports: channel, tag, sequence.
pub const NEXT_HEADER: usize = 5;
/// Data bytes in the first report.
pub const FIRST_CHUNK: usize = REPORT_SIZE - FIRST_HEADER;
/// Data bytes in each following report.
pub const NEXT_CHUNK: usize = REPORT_SIZE - NEXT_HEADER;
/// The longest message the 2-byte total length can announce.
pub const MAX_MESSAGE: usize = u16::MAX as usize;
/// How long the host waits for each report of an answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most stale reports dropped before a command is sent.
const MAX_DRAIN: usize = 2 * (1 + MAX_MESSAGE / NEXT_CHUNK);

/// One HID report.
pub type Report = [u8; REPORT_SIZE];

/// Frames `message` on `channel`: the reports to send, in order. An empty message or one
/// longer than [`MAX_MESSAGE`] cannot be framed.
pub fn frame(channel: u16, message: &[u8]) -> Result<Vec<Report>> {
    if message.is_empty() || message.len() > MAX_MESSAGE {
        return Err(Error::invalid_arg(format!(
            "a HID APDU message of {} bytes (1..={MAX_MESSAGE})",
            message.len()
        )));
    }
    let total =
        u16::try_from(message.len()).map_err(|_| Error::invalid_arg("HID message too long"))?;
    let (first, mut rest) = message.split_at(message.len().min(FIRST_CHUNK));
    let mut reports = Vec::with_capacity(1 + rest.len().div_ceil(NEXT_CHUNK));
    let mut r = [0u8; REPORT_SIZE];
    r[..2].copy_from_slice(&channel.to_be_bytes());
    r[2] = TAG_APDU;
    // Sequence 0 is already zero.
    r[5..7].copy_from_slice(&total.to_be_bytes());
    r[FIRST_HEADER..FIRST_HEADER + first.len()].copy_from_slice(first);
    reports.push(r);
    let mut seq: u16 = 0;
    while !rest.is_empty() {
        seq = seq
            .checked_add(1)
            .ok_or_else(|| Error::internal("HID sequence overflow"))?;
        let (chunk, tail) = rest.split_at(rest.len().min(NEXT_CHUNK));
        let mut r = [0u8; REPORT_SIZE];
        r[..2].copy_from_slice(&channel.to_be_bytes());
        r[2] = TAG_APDU;
        r[3..5].copy_from_slice(&seq.to_be_bytes());
        r[NEXT_HEADER..NEXT_HEADER + chunk.len()].copy_from_slice(chunk);
        reports.push(r);
        rest = tail;
    }
    Ok(reports)
}

/// Reassembles one message from reports, strictly: the expected channel, the APDU tag,
/// sequence numbers 0, 1, 2... and a total length within the bound. Any violation is an
/// error and leaves the deframer empty, ready for a new message.
#[derive(Debug)]
pub struct Deframer {
    /// The channel expected; None on the card side until the first report fixes it.
    channel: Option<u16>,
    fixed_channel: bool,
    max: usize,
    total: Option<usize>,
    next_seq: u16,
    buf: Vec<u8>,
}

impl Deframer {
    /// The host side: answers must come on `channel`, and be at most `max` bytes.
    pub fn host(channel: u16, max: usize) -> Self {
        Self {
            channel: Some(channel),
            fixed_channel: true,
            max: max.min(MAX_MESSAGE),
            total: None,
            next_seq: 0,
            buf: Vec::new(),
        }
    }

    /// The card side: any channel may start a message, and the rest of it must stay on
    /// that channel ([`Self::channel`] tells which, to answer on it).
    pub fn card(max: usize) -> Self {
        Self {
            channel: None,
            fixed_channel: false,
            max: max.min(MAX_MESSAGE),
            total: None,
            next_seq: 0,
            buf: Vec::new(),
        }
    }

    /// The channel of the message being (or last) reassembled.
    pub fn channel(&self) -> Option<u16> {
        self.channel
    }

    /// Forgets a partial message.
    pub fn reset(&mut self) {
        self.total = None;
        self.next_seq = 0;
        self.buf = Vec::new();
        if !self.fixed_channel {
            self.channel = None;
        }
    }

    /// Takes one report. Returns the message when it is complete.
    pub fn push(&mut self, report: &[u8]) -> Result<Option<Vec<u8>>> {
        let r = self.take(report);
        if r.is_err() {
            self.reset();
        }
        r
    }

    fn take(&mut self, report: &[u8]) -> Result<Option<Vec<u8>>> {
        if report.len() != REPORT_SIZE {
            return Err(Error::Device(format!(
                "a HID report of {} bytes, not {REPORT_SIZE}",
                report.len()
            )));
        }
        let channel = u16::from_be_bytes([report[0], report[1]]);
        let tag = report[2];
        let seq = u16::from_be_bytes([report[3], report[4]]);
        match self.channel {
            Some(c) if c != channel => {
                return Err(Error::Device(format!(
                    "HID report on channel {channel:04X}, expected {c:04X}"
                )));
            }
            Some(_) => {}
            None => self.channel = Some(channel),
        }
        if tag != TAG_APDU {
            return Err(Error::Device(format!(
                "HID report with tag {tag:02X}, expected {TAG_APDU:02X}"
            )));
        }
        if seq != self.next_seq {
            return Err(Error::Device(format!(
                "HID report with sequence {seq}, expected {}",
                self.next_seq
            )));
        }
        let (total, data) = match self.total {
            None => {
                let total = usize::from(u16::from_be_bytes([report[5], report[6]]));
                if total == 0 || total > self.max {
                    return Err(Error::Device(format!(
                        "HID message of {total} bytes announced (1..={})",
                        self.max
                    )));
                }
                self.total = Some(total);
                self.buf = Vec::with_capacity(total);
                (total, &report[FIRST_HEADER..])
            }
            Some(total) => (total, &report[NEXT_HEADER..]),
        };
        let want = total.saturating_sub(self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..want]);
        if self.buf.len() == total {
            let msg = std::mem::take(&mut self.buf);
            self.total = None;
            self.next_seq = 0;
            // The channel stays, to answer on; the card side's reset() frees it.
            return Ok(Some(msg));
        }
        self.next_seq = self
            .next_seq
            .checked_add(1)
            .ok_or_else(|| Error::Device("HID sequence overflow".into()))?;
        Ok(None)
    }
}

/// One HID connection: a report out, a report in.
pub trait HidLink: Send {
    /// The device path (or the loopback name).
    fn id(&self) -> String;
    /// Writes one report. A device that is gone is [`Error::DeviceRemoved`].
    fn write_report(&mut self, report: &Report) -> Result<()>;
    /// Reads one report, waiting at most `timeout`; `Ok(None)` when none came in time.
    fn read_report(&mut self, timeout: Duration) -> Result<Option<Report>>;
}

/// The host side of the HID transport over a [`HidLink`].
pub struct HidTransport<L: HidLink> {
    id: String,
    link: Mutex<L>,
    channel: u16,
    timeout: Duration,
    hold: Hold,
    present: AtomicBool,
}

impl<L: HidLink> HidTransport<L> {
    /// A transport on [`DEFAULT_CHANNEL`] waiting [`DEFAULT_TIMEOUT`] per report.
    pub fn new(link: L) -> Self {
        Self {
            id: link.id(),
            link: Mutex::new(link),
            channel: DEFAULT_CHANNEL,
            timeout: DEFAULT_TIMEOUT,
            hold: Hold::default(),
            present: AtomicBool::new(true),
        }
    }

    /// The same transport on another channel.
    pub fn with_channel(mut self, channel: u16) -> Self {
        self.channel = channel;
        self
    }

    /// The same transport with another per-report timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn lock(&self) -> MutexGuard<'_, L> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn gone<T>(&self, r: Result<T>) -> Result<T> {
        if matches!(r, Err(Error::DeviceRemoved)) {
            self.present.store(false, Ordering::SeqCst);
        }
        r
    }

    fn round_trip(&self, link: &mut L, apdu: &[u8]) -> Result<Vec<u8>> {
        // Reports left over from an answer that timed out must not pass for this one.
        let mut drained = 0;
        while self.gone(link.read_report(Duration::ZERO))?.is_some() {
            drained += 1;
            if drained > MAX_DRAIN {
                return Err(Error::Device("the HID device keeps sending".into()));
            }
        }
        if drained > 0 {
            tracing::debug!(device = %self.id, drained, "dropped stale HID reports");
        }
        for r in frame(self.channel, apdu)? {
            self.gone(link.write_report(&r))?;
        }
        let mut de = Deframer::host(self.channel, MAX_MESSAGE);
        loop {
            let Some(r) = self.gone(link.read_report(self.timeout))? else {
                return Err(Error::Device(format!(
                    "no answer from HID device {} within {:?}",
                    self.id, self.timeout
                )));
            };
            if let Some(msg) = de.push(&r)? {
                return Ok(msg);
            }
        }
    }
}

impl<L: HidLink> Transport for HidTransport<L> {
    fn id(&self) -> String {
        self.id.clone()
    }

    /// HID keys have no ATR.
    fn atr(&self) -> Option<Vec<u8>> {
        None
    }

    fn transmit(&self, apdu: &[u8]) -> Result<Vec<u8>> {
        check_command(apdu)?;
        let _hold = self.hold.acquire()?;
        if !self.is_present() {
            return Err(Error::DeviceRemoved);
        }
        let mut link = self.lock();
        let response = self.round_trip(&mut link, apdu)?;
        tracing::trace!(
            device = %self.id,
            header = %hex::encode_upper(&apdu[..4]),
            command_len = apdu.len(),
            response_len = response.len(),
            "HID APDU"
        );
        check_response(&response)?;
        Ok(response)
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        Ok(Box::new(self.hold.acquire()?))
    }

    fn is_present(&self) -> bool {
        self.present.load(Ordering::SeqCst)
    }
}

/// The card side of the framing: reports in, a [`CardHandler`] behind, reports out.
pub struct HidCard {
    card: Box<dyn CardHandler>,
    de: Deframer,
    outbox: VecDeque<Report>,
}

impl HidCard {
    /// Powers `card` on behind a card-side deframer.
    pub fn new(mut card: Box<dyn CardHandler>) -> Self {
        let _atr = card.power_on();
        Self {
            card,
            de: Deframer::card(MAX_MESSAGE),
            outbox: VecDeque::new(),
        }
    }

    /// Takes one report from the host. When it completes a command, the card processes
    /// it and the framed answer waits in the outbox. A malformed report drops the
    /// partial command, as a device would; the host then times out.
    pub fn receive(&mut self, report: &Report) {
        match self.de.push(report) {
            Ok(None) => {}
            Ok(Some(apdu)) => {
                let channel = self.de.channel().unwrap_or(DEFAULT_CHANNEL);
                let mut response = self.card.process(&apdu);
                if response.len() < 2 || response.len() > MAX_MESSAGE {
                    tracing::warn!(len = response.len(), "card answer cannot be framed");
                    response = vec![0x6F, 0x00];
                }
                match frame(channel, &response) {
                    Ok(reports) => self.outbox.extend(reports),
                    Err(e) => tracing::warn!(error = %e, "card answer not framed"),
                }
                self.de.reset();
            }
            Err(e) => tracing::debug!(error = %e, "HID card dropped a malformed report"),
        }
    }

    /// The next report to the host, if any.
    pub fn send(&mut self) -> Option<Report> {
        self.outbox.pop_front()
    }

    fn power_off(&mut self) {
        self.card.power_off();
        self.de.reset();
        self.outbox.clear();
    }

    fn power_on(&mut self) {
        let _atr = self.card.power_on();
    }
}

struct Plugged {
    card: HidCard,
    present: bool,
}

/// A [`HidLink`] to a [`HidCard`] in the same process: the HID framing tested both ways
/// without USB, and the `hid` backend of the virtual key.
pub struct LoopbackHidLink {
    name: String,
    inner: Arc<Mutex<Plugged>>,
}

/// Pulls and re-plugs a [`LoopbackHidLink`]'s card from a test.
#[derive(Clone)]
pub struct HidPlug {
    inner: Arc<Mutex<Plugged>>,
}

fn lock_plugged(m: &Mutex<Plugged>) -> MutexGuard<'_, Plugged> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LoopbackHidLink {
    /// A link named `name` to `card`, powered on.
    pub fn new(name: impl Into<String>, card: Box<dyn CardHandler>) -> Self {
        Self {
            name: name.into(),
            inner: Arc::new(Mutex::new(Plugged {
                card: HidCard::new(card),
                present: true,
            })),
        }
    }

    /// A handle to pull and re-plug the card.
    pub fn plug(&self) -> HidPlug {
        HidPlug {
            inner: self.inner.clone(),
        }
    }
}

impl HidPlug {
    /// Unplugs the key: it loses power and the link fails with [`Error::DeviceRemoved`].
    pub fn pull(&self) {
        let mut p = lock_plugged(&self.inner);
        if p.present {
            p.card.power_off();
            p.present = false;
        }
    }

    /// Plugs the key back in (power on). The [`HidTransport`] that saw it go stays
    /// removed: a new one is opened, as after a real re-plug.
    pub fn insert(&self) {
        let mut p = lock_plugged(&self.inner);
        if !p.present {
            p.card.power_on();
            p.present = true;
        }
    }
}

impl HidLink for LoopbackHidLink {
    fn id(&self) -> String {
        self.name.clone()
    }

    fn write_report(&mut self, report: &Report) -> Result<()> {
        let mut p = lock_plugged(&self.inner);
        if !p.present {
            return Err(Error::DeviceRemoved);
        }
        p.card.receive(report);
        Ok(())
    }

    /// The card answers synchronously, so nothing more comes later: no waiting.
    fn read_report(&mut self, _timeout: Duration) -> Result<Option<Report>> {
        let mut p = lock_plugged(&self.inner);
        if !p.present {
            return Err(Error::DeviceRemoved);
        }
        Ok(p.card.send())
    }
}

/// A HID key found by [`enumerate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HidDeviceInfo {
    /// The hidraw path, to open it.
    pub path: String,
    /// USB vendor ID.
    pub vid: u16,
    /// USB product ID.
    pub pid: u16,
    /// The serial number string, when the key reports one.
    pub serial: Option<String>,
    /// The product string.
    pub product: Option<String>,
    /// The USB interface number.
    pub interface: i32,
}

/// The HID keys present whose VID/PID is in `table`. An empty table, no key, or a system
/// without HID access (no USB, no hidraw) is an empty list, not an error.
pub fn enumerate(table: &[HidDeviceId]) -> Result<Vec<HidDeviceInfo>> {
    if table.is_empty() {
        return Ok(Vec::new());
    }
    let api = match hidapi::HidApi::new() {
        Ok(api) => api,
        Err(e) => {
            tracing::warn!(error = %e, "hidapi unavailable; no HID keys");
            return Ok(Vec::new());
        }
    };
    Ok(api
        .device_list()
        .filter(|d| {
            table
                .iter()
                .any(|id| id.vid == d.vendor_id() && id.pid == d.product_id())
        })
        .map(|d| HidDeviceInfo {
            path: d.path().to_string_lossy().into_owned(),
            vid: d.vendor_id(),
            pid: d.product_id(),
            serial: d.serial_number().map(str::to_owned),
            product: d.product_string().map(str::to_owned),
            interface: d.interface_number(),
        })
        .collect())
}

/// A real HID key through `hidapi` (hidraw on Linux).
pub struct HidapiLink {
    dev: hidapi::HidDevice,
    path: String,
}

impl HidapiLink {
    /// Opens the key at `path` (from [`enumerate`]).
    pub fn open(path: &str) -> Result<Self> {
        let api = hidapi::HidApi::new().map_err(|e| Error::Device(format!("hidapi: {e}")))?;
        let cpath = std::ffi::CString::new(path)
            .map_err(|_| Error::invalid_arg("HID path with a NUL byte"))?;
        let dev = api
            .open_path(&cpath)
            .map_err(|e| Error::Device(format!("cannot open HID device {path}: {e}")))?;
        Ok(Self {
            dev,
            path: path.to_owned(),
        })
    }
}

impl HidLink for HidapiLink {
    fn id(&self) -> String {
        self.path.clone()
    }

    /// hidapi wants the report ID in front: 0 for keys without numbered reports.
    fn write_report(&mut self, report: &Report) -> Result<()> {
        let mut buf = [0u8; REPORT_SIZE + 1];
        buf[1..].copy_from_slice(report);
        match self.dev.write(&buf) {
            Ok(n) if n >= REPORT_SIZE => Ok(()),
            Ok(n) => Err(Error::Device(format!("HID write took {n} bytes"))),
            Err(e) => {
                // hidraw write errors mean the key went away (ENODEV, EPIPE).
                tracing::debug!(device = %self.path, error = %e, "HID write failed");
                Err(Error::DeviceRemoved)
            }
        }
    }

    fn read_report(&mut self, timeout: Duration) -> Result<Option<Report>> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut buf = [0u8; REPORT_SIZE];
        match self.dev.read_timeout(&mut buf, ms) {
            Ok(0) => Ok(None),
            Ok(n) if n == REPORT_SIZE => Ok(Some(buf)),
            Ok(n) => Err(Error::Device(format!("HID report of {n} bytes"))),
            Err(e) => {
                tracing::debug!(device = %self.path, error = %e, "HID read failed");
                Err(Error::DeviceRemoved)
            }
        }
    }
}

/// The `hid` transports of the keys in the `[hid]` table that are plugged in now and
/// open. None there is `Ok(vec![])`; a key that does not open is skipped with a warning.
pub fn transports(config: &HidConfig) -> Result<Vec<HidTransport<HidapiLink>>> {
    let timeout = config
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut out = Vec::new();
    for info in enumerate(&config.devices)? {
        match HidapiLink::open(&info.path) {
            Ok(link) => out.push(HidTransport::new(link).with_timeout(timeout)),
            Err(e) => tracing::warn!(path = %info.path, error = %e, "skipping HID key"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::Ordering;

    use super::super::command::{Command, Sw};
    use super::super::exchange::{LinkCaps, exchange};
    use super::super::loopback::tests::EchoCard;
    use super::*;

    fn msg(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn framing_layout_is_exact() {
        let m = msg(57 + 59 + 1);
        let r = frame(0x0101, &m).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0][..7], [0x01, 0x01, 0x05, 0x00, 0x00, 0x00, 117]);
        assert_eq!(r[0][7..], m[..57]);
        assert_eq!(r[1][..5], [0x01, 0x01, 0x05, 0x00, 0x01]);
        assert_eq!(r[1][5..], m[57..116]);
        assert_eq!(r[2][..5], [0x01, 0x01, 0x05, 0x00, 0x02]);
        assert_eq!(r[2][5], m[116]);
        assert!(r[2][6..].iter().all(|&b| b == 0), "zero padding");
        // Exactly one report for 57 bytes, two for 58.
        assert_eq!(frame(1, &msg(57)).unwrap().len(), 1);
        assert_eq!(frame(1, &msg(58)).unwrap().len(), 2);
        assert_eq!(frame(1, &msg(MAX_MESSAGE)).unwrap().len(), 1 + 1110);
        assert!(frame(1, &[]).is_err());
        assert!(frame(1, &msg(MAX_MESSAGE + 1)).is_err());
    }

    #[test]
    fn round_trip_every_size_boundary() {
        for n in [1, 2, 56, 57, 58, 115, 116, 117, 300, 4096, MAX_MESSAGE] {
            let m = msg(n);
            let mut d = Deframer::host(0xBEEF, MAX_MESSAGE);
            let reports = frame(0xBEEF, &m).unwrap();
            let last = reports.len() - 1;
            for (i, r) in reports.iter().enumerate() {
                let out = d.push(r).unwrap();
                assert_eq!(out.is_some(), i == last, "size {n} report {i}");
                if let Some(out) = out {
                    assert_eq!(out, m);
                }
            }
            // The deframer is ready for the next message.
            let out = frame(0xBEEF, &[9, 9]).unwrap();
            assert_eq!(d.push(&out[0]).unwrap().unwrap(), [9, 9]);
        }
    }

    #[test]
    fn decoder_refuses_malformed_reports() {
        let good = frame(0x0101, &msg(200)).unwrap();
        let fresh = || Deframer::host(0x0101, 1000);

        // Wrong size.
        assert!(fresh().push(&good[0][..63]).is_err());
        assert!(fresh().push(&[0u8; 65]).is_err());
        // Wrong channel.
        let mut r = good[0];
        r[1] = 0x02;
        assert!(fresh().push(&r).is_err());
        // Wrong tag.
        let mut r = good[0];
        r[2] = 0x02;
        assert!(fresh().push(&r).is_err());
        // Not starting at sequence 0.
        assert!(fresh().push(&good[1]).is_err());
        // A skipped or repeated sequence.
        let mut d = fresh();
        d.push(&good[0]).unwrap();
        assert!(d.push(&good[2]).is_err());
        let mut d = fresh();
        d.push(&good[0]).unwrap();
        d.push(&good[1]).unwrap();
        assert!(d.push(&good[1]).is_err());
        // Total of zero, and totals beyond the bound.
        let mut r = good[0];
        r[5..7].copy_from_slice(&[0, 0]);
        assert!(fresh().push(&r).is_err());
        let mut r = good[0];
        r[5..7].copy_from_slice(&1001u16.to_be_bytes());
        assert!(fresh().push(&r).is_err());
        r[5..7].copy_from_slice(&1000u16.to_be_bytes());
        assert!(fresh().push(&r).unwrap().is_none());
        // A report after a complete message is a new message, so a continuation is
        // refused.
        let mut d = fresh();
        for r in &good {
            d.push(r).unwrap();
        }
        assert!(d.push(&good[1]).is_err());
        // After an error the deframer starts over.
        let mut d = fresh();
        d.push(&good[0]).unwrap();
        assert!(d.push(&good[2]).is_err());
        let mut out = None;
        for r in &good {
            out = d.push(r).unwrap();
        }
        assert_eq!(out.unwrap(), msg(200));
    }

    #[test]
    fn decoder_never_panics_on_random_reports() {
        // A small deterministic generator: every header value, random totals.
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut d = Deframer::card(MAX_MESSAGE);
        let mut completed = 0;
        for _ in 0..20_000 {
            let mut r = [0u8; REPORT_SIZE];
            for b in r.iter_mut() {
                *b = next() as u8;
            }
            // Bias towards plausible headers so that long messages get assembled.
            if next() % 2 == 0 {
                r[..3].copy_from_slice(&[0x01, 0x01, TAG_APDU]);
                let seq = (next() % 3) as u16;
                r[3..5].copy_from_slice(&seq.to_be_bytes());
            }
            if let Ok(Some(m)) = d.push(&r) {
                assert!(!m.is_empty() && m.len() <= MAX_MESSAGE);
                completed += 1;
            }
        }
        assert!(completed > 0, "some messages were assembled");
    }

    #[test]
    fn card_side_answers_on_the_callers_channel() {
        let mut card = HidCard::new(Box::new(EchoCard::new()));
        let cmd = [0x80, 0x01, 0, 0, 2, 0xAA, 0xBB, 2];
        for r in frame(0x4242, &cmd).unwrap() {
            card.receive(&r);
        }
        let answer = card.send().unwrap();
        assert!(card.send().is_none());
        let mut d = Deframer::host(0x4242, MAX_MESSAGE);
        assert_eq!(d.push(&answer).unwrap().unwrap(), [0xAA, 0xBB, 0x90, 0x00]);
        // A malformed report is dropped without an answer.
        let mut bad = frame(0x4242, &cmd).unwrap()[0];
        bad[2] = 0x02;
        card.receive(&bad);
        assert!(card.send().is_none());
    }

    #[test]
    fn transport_over_loopback_hid() {
        let card = EchoCard::new();
        let count = card.count.clone();
        let link = LoopbackHidLink::new("hid-loop", Box::new(card));
        let t = HidTransport::new(link).with_channel(0x0707);
        assert_eq!(t.id(), "hid-loop");
        assert_eq!(t.atr(), None);
        // Extended command and response, several reports each way.
        let data = msg(1000);
        let cmd = Command::new(0x80, 0x01, 0, 0)
            .with_data(data.clone())
            .with_le(1000);
        let r = exchange(&t, LinkCaps::EXTENDED, &cmd).unwrap();
        assert_eq!(r.sw, Sw::OK);
        assert_eq!(r.data, data);
        // A 61xx sequence.
        let cmd = Command::new(0x80, 0x02, 0, 0).with_le(256);
        let r = exchange(&t, LinkCaps::SHORT, &cmd).unwrap();
        assert_eq!(r.data.len(), 256);
        assert_eq!(count.load(Ordering::SeqCst), 1 + 3);
    }

    #[test]
    fn unplugged_hid_key_is_removed() {
        let link = LoopbackHidLink::new("hid-loop", Box::new(EchoCard::new()));
        let plug = link.plug();
        let t = HidTransport::new(link);
        t.transmit(&[0x80, 0x01, 0, 0]).unwrap();
        plug.pull();
        assert!(matches!(
            t.transmit(&[0x80, 0x01, 0, 0]),
            Err(Error::DeviceRemoved)
        ));
        assert!(!t.is_present());
        plug.insert();
        // The transport that saw the key go stays removed.
        assert!(matches!(
            t.transmit(&[0x80, 0x01, 0, 0]),
            Err(Error::DeviceRemoved)
        ));
    }

    /// A link that answers with scripted reports, to drive the host side's checks.
    struct Scripted {
        stale: VecDeque<Report>,
        answers: VecDeque<Report>,
    }
    impl HidLink for Scripted {
        fn id(&self) -> String {
            "scripted".into()
        }
        fn write_report(&mut self, _: &Report) -> Result<()> {
            Ok(())
        }
        fn read_report(&mut self, t: Duration) -> Result<Option<Report>> {
            // Stale reports are what is already waiting (the zero-timeout drain).
            if t.is_zero() {
                return Ok(self.stale.pop_front());
            }
            Ok(self.answers.pop_front())
        }
    }

    #[test]
    fn host_side_checks_answers() {
        let with_stale = |stale: Vec<Report>, answers: Vec<Report>| {
            HidTransport::new(Scripted {
                stale: stale.into(),
                answers: answers.into(),
            })
            .with_timeout(Duration::from_millis(10))
        };
        let scripted = |answers: Vec<Report>| with_stale(vec![], answers);
        // No answer: a timeout error, not a hang.
        let t = scripted(vec![]);
        assert!(matches!(
            t.transmit(&[0x80, 0x01, 0, 0]),
            Err(Error::Device(_))
        ));
        // An answer on another channel.
        let t = scripted(frame(0x0202, &[0x90, 0x00]).unwrap());
        assert!(t.transmit(&[0x80, 0x01, 0, 0]).is_err());
        // A one-byte answer is not a response APDU.
        let t = scripted(frame(DEFAULT_CHANNEL, &[0x90]).unwrap());
        assert!(t.transmit(&[0x80, 0x01, 0, 0]).is_err());
        // An answer cut short times out.
        let mut answer = frame(DEFAULT_CHANNEL, &msg(100)).unwrap();
        answer.pop();
        let t = scripted(answer);
        assert!(t.transmit(&[0x80, 0x01, 0, 0]).is_err());
        // A stale answer before the command is dropped, the real one accepted.
        let t = with_stale(
            frame(DEFAULT_CHANNEL, &[1, 0x90, 0x00]).unwrap(),
            frame(DEFAULT_CHANNEL, &[2, 0x90, 0x00]).unwrap(),
        );
        assert_eq!(t.transmit(&[0x80, 0x01, 0, 0]).unwrap(), [2, 0x90, 0x00]);
    }

    #[test]
    fn enumeration_without_devices_is_clean() {
        assert!(enumerate(&[]).unwrap().is_empty());
        let table = [HidDeviceId {
            vid: 0x096e,
            pid: 0x0807,
        }];
        // On this machine (no USB) the list is empty; wherever it runs, only keys in
        // the table are listed.
        for d in enumerate(&table).unwrap() {
            assert_eq!((d.vid, d.pid), (0x096e, 0x0807));
        }
        let config = HidConfig {
            devices: table.to_vec(),
            timeout_ms: Some(100),
        };
        let _ = transports(&config).unwrap();
    }
}
