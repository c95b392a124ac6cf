//! The PC/SC path end to end, with no hardware: our own `pcscd -f` with the vsmartcard
//! vpcd reader, a test card attached through the vicc client, and `PcscTransport` +
//! `exchange()` on the host side. Skips (with the reason printed) only when pcscd or
//! vpcd is not installed; scripts/setup.sh installs both.
//!
//! pcscd is started through scripts/pcscd-vpcd.sh, which queues on a machine-wide lock
//! (one pcscd per machine) and stops a pcscd it did not start; the guard below stops ours
//! even when the test fails.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use token_hal::Error;
use token_hal::apdu::command::{Command as Apdu, Sw};
use token_hal::apdu::exchange::{LinkCaps, exchange};
use token_hal::apdu::pcsc::{self, PcscEvent, PcscTransport, WatchOutcome, Watcher};
use token_hal::apdu::transport::{CardHandler, Transaction, Transport};
use token_hal::apdu::vicc::{Vicc, ViccStats};

const VPCD_ADDR: &str = "127.0.0.1:35963";
const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
const ATR: [u8; 10] = [0x3B, 0x88, 0x80, 0x01, b'u', b'k', b'e', b'y', b'v', 0x0B];

/// Our pcscd; stopped (TERM, then KILL) on drop, whatever happened.
struct Pcscd(Child);

impl Drop for Pcscd {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(bin: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"]
        .iter()
        .any(|d| Path::new(d).join(bin).is_file())
}

fn start_pcscd() -> Pcscd {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pcscd-vpcd.sh");
    let log = std::env::temp_dir().join("ukey-pcsc-vpcd-test.log");
    let child = Command::new(script)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut guard = Pcscd(child);
    // The script holds the lock, then becomes pcscd itself.
    let comm = format!("/proc/{}/comm", guard.0.id());
    let t0 = Instant::now();
    loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            panic!(
                "pcscd exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "pcscd") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "waited 10 min for the pcscd lock"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Up when it lists the vpcd reader.
    let t0 = Instant::now();
    while !pcsc::readers()
        .unwrap()
        .iter()
        .any(|r| r.name.starts_with("Virtual PCD"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "pcscd shows no vpcd reader"
        );
        thread::sleep(Duration::from_millis(100));
    }
    guard
}

/// The test card: INS 01 echoes its data (up to Ne); INS 02 makes P1P2 bytes and hands
/// them out 100 at a time through 61xx and GET RESPONSE; INS 0F takes `slow` to answer.
/// Command chaining (CLA bit 0x10) is accepted for INS 01. Counts every APDU.
struct TestCard {
    count: Arc<AtomicUsize>,
    pending: Vec<u8>,
    chain: Vec<u8>,
    slow: Duration,
}

impl TestCard {
    fn new() -> (Self, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        (
            Self {
                count: count.clone(),
                pending: Vec::new(),
                chain: Vec::new(),
                slow: Duration::from_millis(500),
            },
            count,
        )
    }

    fn serve(&mut self, le: usize) -> Vec<u8> {
        let n = self.pending.len().min(le).min(100);
        let mut out: Vec<u8> = self.pending.drain(..n).collect();
        match self.pending.len() {
            0 => out.extend_from_slice(&[0x90, 0x00]),
            k => out.extend_from_slice(&[0x61, u8::try_from(k).unwrap_or(0)]),
        }
        out
    }
}

impl CardHandler for TestCard {
    fn power_on(&mut self) -> Vec<u8> {
        ATR.to_vec()
    }
    fn power_off(&mut self) {
        self.pending.clear();
        self.chain.clear();
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.count.fetch_add(1, Ordering::SeqCst);
        let Ok((cmd, _)) = Apdu::decode(apdu) else {
            return vec![0x67, 0x00];
        };
        let le = cmd.le.unwrap_or(0);
        match cmd.ins {
            0x01 if cmd.cla & 0x10 != 0 => {
                self.chain.extend_from_slice(&cmd.data);
                vec![0x90, 0x00]
            }
            0x01 => {
                let mut out = std::mem::take(&mut self.chain);
                out.extend_from_slice(&cmd.data);
                out.truncate(le);
                out.extend_from_slice(&[0x90, 0x00]);
                out
            }
            0x02 => {
                let n = usize::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
                self.pending = (0..n).map(|i| (i % 251) as u8).collect();
                self.serve(le)
            }
            0xC0 => self.serve(le),
            0x0F => {
                thread::sleep(self.slow);
                vec![0x90, 0x00]
            }
            _ => vec![0x6D, 0x00],
        }
    }
}

/// A vicc client in a thread; `pull()` stops it, which takes the card out of vpcd.
struct Inserted {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<token_hal::Result<ViccStats>>>,
}

impl Inserted {
    fn insert(card: TestCard) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = thread::spawn(move || {
            let mut v = Vicc::connect_retry(VPCD_ADDR, card, s, Duration::from_secs(10))?;
            v.run()
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn pull(&mut self) -> ViccStats {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for Inserted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counts the APDUs the host sends, to compare with what the card saw.
struct Counting<'a> {
    inner: &'a dyn Transport,
    sent: AtomicUsize,
}

impl Transport for Counting<'_> {
    fn id(&self) -> String {
        self.inner.id()
    }
    fn atr(&self) -> Option<Vec<u8>> {
        self.inner.atr()
    }
    fn transmit(&self, apdu: &[u8]) -> token_hal::Result<Vec<u8>> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.inner.transmit(apdu)
    }
    fn begin(&self) -> token_hal::Result<Box<dyn Transaction + '_>> {
        self.inner.begin()
    }
    fn is_present(&self) -> bool {
        self.inner.is_present()
    }
}

fn wait_for(w: &mut Watcher, want: impl Fn(&PcscEvent) -> bool) -> Vec<PcscEvent> {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    while t0.elapsed() < Duration::from_secs(10) {
        match w.wait(Duration::from_secs(2)).unwrap() {
            WatchOutcome::Events(evs) => {
                let hit = evs.iter().any(&want);
                seen.extend(evs);
                if hit {
                    return seen;
                }
            }
            WatchOutcome::Timeout => {}
            WatchOutcome::Cancelled => panic!("cancelled"),
        }
    }
    panic!("the watcher did not report the event; saw {seen:?}");
}

#[test]
fn pcscd_vpcd_end_to_end() {
    if !which("pcscd") || !Path::new(VPCD_DRIVER).is_file() {
        println!("SKIPPED: pcscd or vsmartcard-vpcd is not installed (scripts/setup.sh)");
        return;
    }
    let pcscd = start_pcscd();
    let reader = pcsc::readers()
        .unwrap()
        .into_iter()
        .find(|r| r.name.starts_with("Virtual PCD"))
        .unwrap();
    assert!(!reader.card_present, "no virtual card yet: {reader:?}");
    assert!(pcsc::transports().unwrap().is_empty());
    let reader = reader.name;

    // Insertion: the watcher sees the card come.
    let mut watcher = Watcher::new().unwrap();
    let (card, count) = TestCard::new();
    let mut inserted = Inserted::insert(card);
    let evs = wait_for(
        &mut watcher,
        |e| matches!(e, PcscEvent::CardInserted { reader: r, .. } if *r == reader),
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, PcscEvent::CardInserted { atr, .. } if atr == &ATR)),
        "{evs:?}"
    );

    let listed = pcsc::transports().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id(), reader);
    drop(listed);

    let t = PcscTransport::connect(&reader)
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    assert_eq!(t.atr().unwrap(), ATR);
    assert!(t.is_present());
    let link = Counting {
        inner: &t,
        sent: AtomicUsize::new(0),
    };

    // Short APDUs, timed.
    let data: Vec<u8> = (0..32).collect();
    let echo = Apdu::new(0x80, 0x01, 0, 0)
        .with_data(data.clone())
        .with_le(32);
    let rounds = 200u32;
    let t0 = Instant::now();
    for _ in 0..rounds {
        let r = exchange(&link, LinkCaps::SHORT, &echo).unwrap();
        assert_eq!(r.sw, Sw::OK);
        assert_eq!(r.data, data);
    }
    let per = t0.elapsed() / rounds;
    println!(
        "APDU round trip through pcscd + vpcd: {} µs (32-byte echo, mean of {rounds})",
        per.as_micros()
    );

    // A long command: extended if the reader carries it, else chained short APDUs.
    let long: Vec<u8> = (0..600).map(|i| (i % 256) as u8).collect();
    let cmd = Apdu::new(0x80, 0x01, 0, 0)
        .with_data(long.clone())
        .with_le(600);
    match exchange(&link, LinkCaps::EXTENDED, &cmd) {
        Ok(r) => {
            assert_eq!(r.sw, Sw::OK);
            assert_eq!(r.data, long);
            println!("extended APDUs pass through pcscd + vpcd");
        }
        Err(e) => {
            println!("extended APDUs refused ({e}); chaining instead");
            assert!(t.is_present());
        }
    }
    let cmd = Apdu::new(0x80, 0x01, 0, 0)
        .with_data(long.clone())
        .with_le(256);
    let r = exchange(&link, LinkCaps::SHORT, &cmd).unwrap();
    assert_eq!(r.data, long[..256]);

    // 61xx and GET RESPONSE: 600 bytes in 100-byte pieces.
    let cmd = Apdu::new(0x80, 0x02, 0x02, 0x58).with_le(600);
    let r = exchange(&link, LinkCaps::SHORT, &cmd).unwrap();
    assert_eq!(r.sw, Sw::OK);
    assert_eq!(
        r.data,
        (0..600).map(|i| (i % 251) as u8).collect::<Vec<_>>()
    );

    // A transaction around two APDUs, and a nested one.
    {
        let _tx = t.begin().unwrap();
        let _inner = t.begin().unwrap();
        exchange(&link, LinkCaps::SHORT, &echo).unwrap();
        exchange(&link, LinkCaps::SHORT, &echo).unwrap();
    }
    // Another thread's APDU after the transaction ends.
    thread::scope(|s| {
        s.spawn(|| exchange(&link, LinkCaps::SHORT, &echo).unwrap())
            .join()
            .unwrap();
    });

    // The transaction holds the card against other handles (other processes): a second
    // connection's APDU is refused (busy) or waits until the transaction ends.
    let other = PcscTransport::connect(&reader)
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    let other_link = Counting {
        inner: &other,
        sent: AtomicUsize::new(0),
    };
    let ended = AtomicBool::new(false);
    let other_result = thread::scope(|s| {
        let tx = t.begin().unwrap();
        let waiter = s.spawn(|| {
            let r = other_link.transmit(&[0x80, 0x01, 0, 0]);
            (r, ended.load(Ordering::SeqCst))
        });
        exchange(&link, LinkCaps::SHORT, &echo).unwrap();
        thread::sleep(Duration::from_millis(300));
        exchange(&link, LinkCaps::SHORT, &echo).unwrap();
        ended.store(true, Ordering::SeqCst);
        drop(tx);
        waiter.join().unwrap()
    });
    println!("another handle during a transaction: {other_result:?} (true: after it ended)");
    let other_sent = usize::from(other_result.0.is_ok());
    match other_result {
        (Ok(r), after) => {
            assert_eq!(r, [0x90, 0x00]);
            assert!(after, "the other handle got in during the transaction");
        }
        (Err(e), _) => assert!(matches!(e, Error::Busy), "{e:?}"),
    }
    drop(other);

    // Every APDU the host sent reached the card, and nothing else did.
    let sent = link.sent.load(Ordering::SeqCst);
    assert_eq!(count.load(Ordering::SeqCst), sent + other_sent);
    assert!(sent >= rounds as usize + 1 + 3 + 6 + 3, "{sent}");

    // Pull the card: the watcher reports it, transmit says removed.
    let stats = inserted.pull();
    assert_eq!(stats.apdus as usize, sent + other_sent);
    wait_for(
        &mut watcher,
        |e| matches!(e, PcscEvent::CardRemoved { reader: r } if *r == reader),
    );
    let t0 = Instant::now();
    assert!(matches!(
        t.transmit(&[0x80, 0x01, 0, 0]),
        Err(Error::DeviceRemoved)
    ));
    assert!(!t.is_present());
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(matches!(t.begin().map(|_| ()), Err(Error::DeviceRemoved)));
    drop(t);

    // A card pulled in the middle of a command: removed, not a hang.
    let (card, _) = TestCard::new();
    let mut inserted = Inserted::insert(card);
    wait_for(
        &mut watcher,
        |e| matches!(e, PcscEvent::CardInserted { reader: r, .. } if *r == reader),
    );
    let t = PcscTransport::connect(&reader)
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    t.transmit(&[0x80, 0x01, 0, 0]).unwrap();
    let t0 = Instant::now();
    let r = thread::scope(|s| {
        let slow = s.spawn(|| t.transmit(&[0x80, 0x0F, 0, 0]));
        thread::sleep(Duration::from_millis(150));
        inserted.pull();
        slow.join().unwrap()
    });
    println!("pulled mid-command: {r:?} after {:?}", t0.elapsed());
    assert!(matches!(r, Err(Error::DeviceRemoved)), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert!(!t.is_present());

    wait_for(
        &mut watcher,
        |e| matches!(e, PcscEvent::CardRemoved { reader: r } if *r == reader),
    );

    // Nothing more happens: a wait times out. Then cancel ends a wait at once.
    assert_eq!(
        watcher.wait(Duration::from_millis(300)).unwrap(),
        WatchOutcome::Timeout
    );
    let c = watcher.cancel_handle();
    let t0 = Instant::now();
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(100));
            c.cancel();
        });
        assert_eq!(
            watcher.wait(Duration::from_secs(30)).unwrap(),
            WatchOutcome::Cancelled
        );
    });
    assert!(t0.elapsed() < Duration::from_secs(5));

    // pcscd going away takes its readers with it.
    let mut watcher = Watcher::new().unwrap();
    drop(pcscd);
    wait_for(
        &mut watcher,
        |e| matches!(e, PcscEvent::ReaderRemoved(r) if *r == reader),
    );
    assert!(pcsc::readers().unwrap().is_empty());
    assert!(pcsc::transports().unwrap().is_empty());
}
