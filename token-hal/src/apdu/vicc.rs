//! The card side of vsmartcard's `vpcd` reader: how `ukey sim --vpcd HOST:PORT` puts the
//! virtual key into the real pcscd.
//!
//! vpcd is a pcscd reader driver that listens on TCP (port `0x8C7B` = 35963 in
//! `/etc/reader.conf.d/vpcd`). A virtual card connects to it; from then on the reader
//! has a card. Each message is a 2-byte big-endian length and that many bytes:
//!
//! - one byte is a control: `0` power off, `1` power on, `2` reset, `4` ATR request
//!   (answered with the ATR); the others need no answer;
//! - anything longer is a command APDU, answered with the response APDU.
//!
//! Closing the connection is pulling the card. The client stops when vpcd closes the
//! connection or when its stop flag is set (checked at least every [`POLL`], and after
//! each command: a stop while the card works is a card pulled mid-command, which gets
//! no answer).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::transport::CardHandler;
use crate::error::{Error, Result};

/// Where vpcd listens by default.
pub const DEFAULT_VPCD_ADDR: &str = "127.0.0.1:35963";
/// How often a blocked read looks at the stop flag.
pub const POLL: Duration = Duration::from_millis(200);

const CTRL_POWER_OFF: u8 = 0;
const CTRL_POWER_ON: u8 = 1;
const CTRL_RESET: u8 = 2;
const CTRL_ATR: u8 = 4;

/// What a [`Vicc`] session served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViccStats {
    /// Command APDUs processed.
    pub apdus: u64,
    /// Power-ons and resets.
    pub power_ons: u64,
    /// Power-offs.
    pub power_offs: u64,
    /// ATR requests answered.
    pub atr_requests: u64,
}

/// A virtual card connected to vpcd.
pub struct Vicc<H: CardHandler> {
    stream: TcpStream,
    handler: H,
    atr: Option<Vec<u8>>,
    stop: Arc<AtomicBool>,
    stats: ViccStats,
    peer: String,
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    Error::Device(format!("vpcd {what}: {e}"))
}

/// vpcd sends a message's length and its payload in two writes; with Nagle on its side
/// and delayed ACKs on ours, every command would wait ~40 ms for our ACK. Asking for
/// immediate ACKs (Linux re-arms delayed ACK after each read, so before every read)
/// takes the round trip through pcscd down to what the machine can do.
#[cfg(target_os = "linux")]
fn quick_ack(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_: &TcpStream) {}

/// A connection to vpcd at `addr`, with the polling read timeout set.
fn open(addr: &str) -> Result<(TcpStream, String)> {
    let sockaddrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| Error::invalid_arg(format!("vpcd address {addr:?}: {e}")))?
        .collect();
    let mut last = None;
    for sa in &sockaddrs {
        match TcpStream::connect_timeout(sa, Duration::from_secs(5)) {
            Ok(stream) => {
                stream
                    .set_read_timeout(Some(POLL))
                    .map_err(|e| io_err("socket", e))?;
                stream
                    .set_write_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| io_err("socket", e))?;
                let _ = stream.set_nodelay(true);
                return Ok((stream, sa.to_string()));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => io_err(&format!("connect {addr}"), e),
        None => Error::invalid_arg(format!("vpcd address {addr:?} resolves to nothing")),
    })
}

impl<H: CardHandler> Vicc<H> {
    /// Connects `handler` to vpcd at `addr` (`HOST:PORT`). The card is powered when
    /// vpcd asks for it.
    pub fn connect(addr: &str, handler: H, stop: Arc<AtomicBool>) -> Result<Self> {
        let (stream, peer) = open(addr)?;
        tracing::info!(vpcd = %peer, "virtual card connected to vpcd");
        Ok(Self {
            stream,
            handler,
            atr: None,
            stop,
            stats: ViccStats::default(),
            peer,
        })
    }

    /// Like [`Self::connect`], retrying every [`POLL`] for up to `patience` while vpcd
    /// is not listening yet (pcscd starting), and giving up early on the stop flag.
    pub fn connect_retry(
        addr: &str,
        handler: H,
        stop: Arc<AtomicBool>,
        patience: Duration,
    ) -> Result<Self> {
        let deadline = Instant::now() + patience;
        loop {
            match open(addr) {
                Ok((stream, peer)) => {
                    tracing::info!(vpcd = %peer, "virtual card connected to vpcd");
                    return Ok(Self {
                        stream,
                        handler,
                        atr: None,
                        stop,
                        stats: ViccStats::default(),
                        peer,
                    });
                }
                Err(Error::InvalidArgument(e)) => return Err(Error::InvalidArgument(e)),
                Err(e) => {
                    if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                        return Err(e);
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// What was served so far.
    pub fn stats(&self) -> ViccStats {
        self.stats
    }

    /// The card handler back, after [`Self::run`].
    pub fn into_handler(self) -> H {
        self.handler
    }

    /// Reads exactly `buf.len()` bytes. `Ok(false)` when the connection ended (or the
    /// stop flag was set) before the first byte; an end in the middle is an error.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            quick_ack(&self.stream);
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => {
                    return Err(Error::Device(format!(
                        "vpcd closed the connection mid-message ({filled} of {} bytes)",
                        buf.len()
                    )));
                }
                Ok(n) => filled += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(false),
                Err(e) => return Err(io_err("read", e)),
            }
        }
        Ok(true)
    }

    fn send(&mut self, payload: &[u8]) -> Result<()> {
        let len = u16::try_from(payload.len())
            .map_err(|_| Error::internal("vicc message longer than 65535 bytes"))?;
        let mut msg = Vec::with_capacity(2 + payload.len());
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(payload);
        self.stream.write_all(&msg).map_err(|e| io_err("write", e))
    }

    fn power_on(&mut self) -> Vec<u8> {
        self.stats.power_ons += 1;
        let atr = self.handler.power_on();
        self.atr = Some(atr.clone());
        atr
    }

    /// Serves vpcd until it closes the connection or the stop flag is set. Either is a
    /// clean end; the card is powered off on the way out.
    pub fn run(&mut self) -> Result<ViccStats> {
        let r = self.serve();
        if self.atr.take().is_some() {
            self.handler.power_off();
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        tracing::info!(vpcd = %self.peer, apdus = self.stats.apdus, "virtual card disconnected");
        r.map(|()| self.stats)
    }

    fn serve(&mut self) -> Result<()> {
        let mut len = [0u8; 2];
        loop {
            if !self.read_full(&mut len)? {
                return Ok(());
            }
            // At most 65 535 bytes: the 2-byte length is the bound.
            let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if !payload.is_empty() && !self.read_full(&mut payload)? {
                return Ok(());
            }
            match payload.as_slice() {
                [] => tracing::debug!("vpcd sent an empty message"),
                [CTRL_POWER_OFF] => {
                    self.stats.power_offs += 1;
                    if self.atr.take().is_some() {
                        self.handler.power_off();
                    }
                }
                [CTRL_POWER_ON] => {
                    self.power_on();
                }
                [CTRL_RESET] => {
                    self.stats.power_ons += 1;
                    self.atr = Some(self.handler.reset());
                }
                [CTRL_ATR] => {
                    self.stats.atr_requests += 1;
                    let atr = match &self.atr {
                        Some(atr) => atr.clone(),
                        None => self.power_on(),
                    };
                    self.send(&atr)?;
                }
                [other] => tracing::debug!(control = other, "vpcd sent an unknown control byte"),
                apdu => {
                    self.stats.apdus += 1;
                    if self.atr.is_none() {
                        self.power_on();
                    }
                    let mut response = self.handler.process(apdu);
                    if self.stop.load(Ordering::SeqCst) {
                        // Stopped while the card worked: pulled mid-command, no answer.
                        return Ok(());
                    }
                    tracing::trace!(
                        header = %hex::encode_upper(apdu.get(..4).unwrap_or(apdu)),
                        command_len = apdu.len(),
                        response_len = response.len(),
                        "vicc APDU"
                    );
                    if response.len() < 2 || response.len() > usize::from(u16::MAX) {
                        tracing::warn!(len = response.len(), "card answer cannot be sent");
                        response = vec![0x6F, 0x00];
                    }
                    self.send(&response)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::TcpListener;
    use std::sync::atomic::Ordering;

    use super::super::loopback::tests::{ECHO_ATR, EchoCard};
    use super::*;

    /// A stand-in for vpcd: the test plays the reader's side of the socket.
    fn fake_vpcd() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        (l, addr)
    }

    fn send(s: &mut TcpStream, payload: &[u8]) {
        let mut m = (payload.len() as u16).to_be_bytes().to_vec();
        m.extend_from_slice(payload);
        s.write_all(&m).unwrap();
    }

    fn recv(s: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut m).unwrap();
        m
    }

    #[test]
    fn serves_controls_and_apdus_until_eof() {
        let (l, addr) = fake_vpcd();
        let stop = Arc::new(AtomicBool::new(false));
        let card = EchoCard::new();
        let count = card.count.clone();
        let client = std::thread::spawn(move || {
            let mut v = Vicc::connect(&addr, card, stop).unwrap();
            v.run()
        });
        let (mut s, _) = l.accept().unwrap();
        send(&mut s, &[CTRL_POWER_ON]);
        send(&mut s, &[CTRL_ATR]);
        assert_eq!(recv(&mut s), ECHO_ATR);
        send(&mut s, &[0x80, 0x01, 0, 0, 2, 0xCA, 0xFE, 2]);
        assert_eq!(recv(&mut s), [0xCA, 0xFE, 0x90, 0x00]);
        // Unknown controls and empty messages need no answer.
        send(&mut s, &[0x07]);
        send(&mut s, &[]);
        send(&mut s, &[CTRL_RESET]);
        send(&mut s, &[0x80, 0x77, 0, 0]);
        assert_eq!(recv(&mut s), [0x6D, 0x00]);
        send(&mut s, &[CTRL_POWER_OFF]);
        drop(s);
        let stats = client.join().unwrap().unwrap();
        assert_eq!(stats.apdus, 2);
        assert_eq!(stats.power_ons, 2);
        assert_eq!(stats.power_offs, 1);
        assert_eq!(stats.atr_requests, 1);
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn stop_flag_ends_a_quiet_session() {
        let (l, addr) = fake_vpcd();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let client = std::thread::spawn(move || {
            // A card chosen at run time, as `ukey sim` has it.
            let card: Box<dyn CardHandler> = Box::new(EchoCard::new());
            let mut v = Vicc::connect(&addr, card, stop2).unwrap();
            v.run()
        });
        let (mut s, _) = l.accept().unwrap();
        // A message cut in the middle does not keep the client from stopping.
        s.write_all(&[0x00, 0x08, 0x80]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        stop.store(true, Ordering::SeqCst);
        client.join().unwrap().unwrap();
        assert!(t0.elapsed() < POLL * 3, "{:?}", t0.elapsed());
        // The client closed its side: the fake reader sees end of file.
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).unwrap(), 0);
    }

    #[test]
    fn connection_closed_mid_message_is_an_error() {
        let (l, addr) = fake_vpcd();
        let client = std::thread::spawn(move || {
            let mut v = Vicc::connect(&addr, EchoCard::new(), Arc::default()).unwrap();
            v.run()
        });
        let (mut s, _) = l.accept().unwrap();
        s.write_all(&[0x00, 0x08, 0x80, 0x01]).unwrap();
        drop(s);
        assert!(matches!(client.join().unwrap(), Err(Error::Device(_))));
    }

    #[test]
    fn connect_retry_gives_up() {
        // A port nobody listens on (bound, then released).
        let (l, addr) = fake_vpcd();
        drop(l);
        let t0 = Instant::now();
        let r = Vicc::connect_retry(&addr, EchoCard::new(), Arc::default(), POLL * 2);
        assert!(r.is_err());
        assert!(t0.elapsed() >= POLL * 2);
        assert!(Vicc::connect("not an address", EchoCard::new(), Arc::default()).is_err());
    }
}
