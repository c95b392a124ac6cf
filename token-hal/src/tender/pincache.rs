//! The PIN cache of CA clients: after a successful verify, `ukey` may reuse the user PIN for
//! a chosen time (1, 5, 10, 30 or 60 minutes; off unless `[pin_cache] enabled = true`).
//!
//! The PIN lives only in the memory of a small per-user agent, `ukey agent`, never on disk.
//! This module holds the three parts that are not the agent's socket loop:
//! - [`socket_path`] and [`prepare_dir`]: where the agent listens —
//!   `$XDG_RUNTIME_DIR/ukey/agent.sock`, else `/tmp/ukey-<uid>/agent.sock` — in a directory
//!   of mode 0700 owned by the user (anything else is refused), the socket itself 0600;
//! - [`Cache`]: the agent's state and its answers to the protocol below. PINs are zeroized
//!   when they expire, are cleared, or the agent stops;
//! - [`Client`]: what `ukey` uses. It checks that the process behind the socket runs as the
//!   same user (SO_PEERCRED), as the agent checks every caller.
//!
//! The protocol is one request line and one answer line per connection; keys and PINs are
//! hex, so no byte of either can break the framing:
//!
//! | request | answer |
//! |---|---|
//! | `GET <ttl-seconds> <key>` | `PIN <pin>`, or `NONE` when absent or older than the TTL |
//! | `PUT <ttl-seconds> <key> <pin>` | `OK` |
//! | `FORGET <key>` | `OK` |
//! | `CLEAR` | `OK <entries dropped>` |
//! | `STATUS` | `STATUS <entries> <agent pid>` |
//! | `STOP` | `OK`, then the agent clears and exits |
//!
//! The TTL travels with every request, taken from the configuration at that moment, so a
//! change of the time takes effect at the next PIN use. The key names a token: device serial
//! and application name. The agent also forgets the PINs of tokens that are no longer present
//! (see [`Cache::retain_present`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::Pin;

/// Environment variable that overrides the cache time in seconds. For tests only: it lets a
/// test see a PIN expire without waiting a minute. Documented in docs/config.md.
pub const TTL_OVERRIDE_VAR: &str = "UKEY_PIN_CACHE_TTL_SECS";
/// Longest request line the agent reads (a 255-byte PIN in hex plus a long key).
pub const MAX_LINE: usize = 4096;
/// How long the client waits for the agent.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Reads one line (up to and without its `\n`) of at most `max` bytes from a stream into
/// memory that is zeroized when dropped; no buffer holding a PIN is left behind. `None` when
/// the stream ends first or the line is too long.
pub fn read_line_zeroizing(
    mut r: impl Read,
    max: usize,
) -> std::io::Result<Option<Zeroizing<String>>> {
    let mut line = Zeroizing::new(Vec::with_capacity(max));
    let mut buf = Zeroizing::new([0u8; 256]);
    loop {
        let n = r.read(&mut buf[..])?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            if line.len() + i > max {
                return Ok(None);
            }
            line.extend_from_slice(&buf[..i]);
            break;
        }
        if line.len() + n > max {
            return Ok(None);
        }
        line.extend_from_slice(&buf[..n]);
    }
    let text = std::str::from_utf8(&line).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "request is not UTF-8")
    })?;
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    out.push_str(text);
    Ok(Some(out))
}

/// The real user id of this process.
pub fn own_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The user id of the process at the other end of a Unix socket (SO_PEERCRED).
pub fn peer_uid(stream: &UnixStream) -> Result<u32> {
    rustix::net::sockopt::socket_peercred(stream)
        .map(|c| c.uid.as_raw())
        .map_err(|e| Error::Device(format!("SO_PEERCRED: {e}")))
}

/// Keeps this process out of core dumps and ptrace by other processes of the user (Linux
/// `PR_SET_DUMPABLE` 0). The agent calls it before it holds any PIN.
pub fn forbid_dumps() -> Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Error::Device(format!("PR_SET_DUMPABLE: {e}")))
}

/// The directory of the agent socket: `$XDG_RUNTIME_DIR/ukey` when XDG_RUNTIME_DIR is set,
/// else `/tmp/ukey-<uid>`.
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("ukey"),
        None => std::env::temp_dir().join(format!("ukey-{}", own_uid())),
    }
}

/// The agent socket.
pub fn socket_path() -> PathBuf {
    socket_dir().join("agent.sock")
}

/// Creates the socket directory with mode 0700 if needed, then checks that it is a real
/// directory (not a link) owned by this user with no group or other access. Anything else
/// is refused, so another user cannot plant or watch the socket.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(dir, e)),
    }
    check_dir(dir)
}

fn check_dir(dir: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(dir).map_err(|e| io_err(dir, e))?;
    if !md.file_type().is_dir() {
        return Err(io_err(dir, "not a directory"));
    }
    if md.uid() != own_uid() {
        return Err(io_err(dir, "owned by another user; refusing to use it"));
    }
    if md.mode() & 0o077 != 0 {
        return Err(io_err(
            dir,
            format!(
                "mode {:o} lets others in; it must be 0700",
                md.mode() & 0o777
            ),
        ));
    }
    Ok(())
}

/// Makes the socket file owner-only (0600).
pub fn restrict_socket(path: &Path) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err(path, e))
}

/// The cache time in force: the test override, else the configured minutes; `None` when
/// the cache is off.
pub fn ttl(config: &Config) -> Option<Duration> {
    if !config.pin_cache.is_enabled() {
        return None;
    }
    if let Some(s) = std::env::var(TTL_OVERRIDE_VAR)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return Some(Duration::from_secs(s));
    }
    Some(Duration::from_secs(
        u64::from(config.pin_cache.minutes()) * 60,
    ))
}

/// The cache key of a token: its device serial and application name.
pub fn token_key(serial: &str, app: &str) -> String {
    hex::encode(format!("{serial}\u{0}{app}"))
}

/// The device serial of a cache key, if it is one.
pub fn serial_of_key(key: &str) -> Option<String> {
    let raw = hex::decode(key).ok()?;
    let s = String::from_utf8(raw).ok()?;
    s.split('\u{0}').next().map(str::to_owned)
}

struct Entry {
    pin: Zeroizing<Vec<u8>>,
    stored: Instant,
    ttl: Duration,
}

/// The agent's state: PINs by token key, each with the time it was stored. Entries are
/// zeroized when dropped.
#[derive(Default)]
pub struct Cache {
    entries: HashMap<String, Entry>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cache({} entries)", self.entries.len())
    }
}

fn is_key(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the agent must do after answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Keep serving.
    Continue,
    /// Clear and exit.
    Stop,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many PINs are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no PIN is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops (and zeroizes) every PIN; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }

    /// Drops the PINs older than the TTL they were last used with.
    pub fn expire(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.stored) < e.ttl);
    }

    /// Keeps only the PINs of tokens whose device serial `present` accepts (the agent polls
    /// which devices are plugged in).
    pub fn retain_present(&mut self, present: impl Fn(&str) -> bool) {
        self.entries
            .retain(|k, _| serial_of_key(k).is_some_and(|s| present(&s)));
    }

    /// The device serials of the tokens whose PINs are held.
    pub fn serials(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .entries
            .keys()
            .filter_map(|k| serial_of_key(k))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Answers one request line (without its newline) at time `now`. The answer line has no
    /// newline either. The request and the answer hold PINs: both are zeroized by the caller.
    pub fn handle(&mut self, line: &str, now: Instant, pid: u32) -> (Zeroizing<String>, After) {
        self.expire(now);
        let parts: Vec<&str> = line.split(' ').collect();
        let answer = |s: String| Zeroizing::new(s);
        match parts.as_slice() {
            ["GET", ttl, key] if is_key(key) => {
                let Ok(ttl) = ttl.parse::<u64>() else {
                    return (answer("ERR bad ttl".into()), After::Continue);
                };
                let ttl = Duration::from_secs(ttl);
                let fresh = self
                    .entries
                    .get(*key)
                    .is_some_and(|e| now.saturating_duration_since(e.stored) < ttl);
                if !fresh {
                    self.entries.remove(*key);
                    return (answer("NONE".into()), After::Continue);
                }
                match self.entries.get_mut(*key) {
                    Some(e) => {
                        // The time in force now applies from here on.
                        e.ttl = ttl;
                        (
                            answer(format!("PIN {}", hex::encode(&*e.pin))),
                            After::Continue,
                        )
                    }
                    None => (answer("NONE".into()), After::Continue),
                }
            }
            ["PUT", ttl, key, pin] if is_key(key) => {
                let (Ok(ttl), Ok(pin)) = (ttl.parse::<u64>(), hex::decode(pin)) else {
                    return (answer("ERR bad request".into()), After::Continue);
                };
                let pin = Zeroizing::new(pin);
                if pin.is_empty() || ttl == 0 {
                    self.entries.remove(*key);
                } else {
                    self.entries.insert(
                        (*key).to_owned(),
                        Entry {
                            pin,
                            stored: now,
                            ttl: Duration::from_secs(ttl),
                        },
                    );
                }
                (answer("OK".into()), After::Continue)
            }
            ["FORGET", key] if is_key(key) => {
                self.entries.remove(*key);
                (answer("OK".into()), After::Continue)
            }
            ["CLEAR"] => (answer(format!("OK {}", self.clear())), After::Continue),
            ["STATUS"] => (
                answer(format!("STATUS {} {pid}", self.entries.len())),
                After::Continue,
            ),
            ["STOP"] => {
                self.clear();
                (answer("OK".into()), After::Stop)
            }
            _ => (answer("ERR unknown request".into()), After::Continue),
        }
    }
}

/// What `STATUS` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentStatus {
    /// PINs held.
    pub entries: usize,
    /// The agent's process id.
    pub pid: u32,
}

/// A connection-per-request client of the agent.
#[derive(Clone, Debug)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// A client of the agent at the default [`socket_path`].
    pub fn new() -> Self {
        Self {
            path: socket_path(),
        }
    }

    /// A client of the agent at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn request(&self, line: &str) -> Result<Zeroizing<String>> {
        if let Some(dir) = self.path.parent() {
            check_dir(dir)?;
        }
        let stream = UnixStream::connect(&self.path).map_err(|e| io_err(&self.path, e))?;
        let uid = peer_uid(&stream)?;
        if uid != own_uid() {
            return Err(io_err(
                &self.path,
                format!("the agent runs as uid {uid}, not as this user; refusing it"),
            ));
        }
        stream
            .set_read_timeout(Some(CLIENT_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(CLIENT_TIMEOUT)))
            .map_err(|e| io_err(&self.path, e))?;
        let mut msg = Zeroizing::new(String::with_capacity(line.len() + 1));
        msg.push_str(line);
        msg.push('\n');
        (&stream)
            .write_all(msg.as_bytes())
            .map_err(|e| io_err(&self.path, e))?;
        let answer = read_line_zeroizing(&stream, MAX_LINE)
            .map_err(|e| io_err(&self.path, e))?
            .ok_or_else(|| io_err(&self.path, "the agent closed the connection"))?;
        if let Some(msg) = answer.strip_prefix("ERR ") {
            return Err(Error::Device(format!("PIN agent: {msg}")));
        }
        Ok(answer)
    }

    /// Whether an agent answers.
    pub fn status(&self) -> Result<AgentStatus> {
        let a = self.request("STATUS")?;
        let mut it = a.split(' ');
        match (it.next(), it.next(), it.next()) {
            (Some("STATUS"), Some(n), Some(pid)) => Ok(AgentStatus {
                entries: n.parse().unwrap_or(0),
                pid: pid.parse().unwrap_or(0),
            }),
            _ => Err(Error::Device(format!(
                "PIN agent: unexpected answer {:?}",
                &*a
            ))),
        }
    }

    /// The cached PIN of a token, if one is held and younger than `ttl`.
    pub fn get(&self, key: &str, ttl: Duration) -> Result<Option<Pin>> {
        let a = self.request(&format!("GET {} {key}", ttl.as_secs()))?;
        if &*a == "NONE" {
            return Ok(None);
        }
        let Some(h) = a.strip_prefix("PIN ") else {
            return Err(Error::Device("PIN agent: unexpected answer".into()));
        };
        let raw = Zeroizing::new(
            hex::decode(h).map_err(|_| Error::Device("PIN agent: bad PIN encoding".into()))?,
        );
        Ok(Some(Pin::new(raw.to_vec())))
    }

    /// Stores a PIN that was just verified.
    pub fn put(&self, key: &str, pin: &Pin, ttl: Duration) -> Result<()> {
        let hex_pin = Zeroizing::new(hex::encode(pin.as_bytes()));
        let head = format!("PUT {} {key} ", ttl.as_secs());
        let mut line = Zeroizing::new(String::with_capacity(head.len() + hex_pin.len()));
        line.push_str(&head);
        line.push_str(&hex_pin);
        self.request(&line).map(|_| ())
    }

    /// Forgets one token's PIN.
    pub fn forget(&self, key: &str) -> Result<()> {
        self.request(&format!("FORGET {key}")).map(|_| ())
    }

    /// Forgets every PIN; returns how many were held.
    pub fn clear(&self) -> Result<usize> {
        let a = self.request("CLEAR")?;
        Ok(a.strip_prefix("OK ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// Stops the agent (it forgets every PIN first).
    pub fn stop(&self) -> Result<()> {
        self.request("STOP").map(|_| ())
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_answers_and_expires() {
        let mut c = Cache::new();
        let t0 = Instant::now();
        let key = token_key("UKS1", "app");
        assert_eq!(serial_of_key(&key).as_deref(), Some("UKS1"));
        let (a, _) = c.handle(&format!("GET 60 {key}"), t0, 7);
        assert_eq!(&*a, "NONE");
        let (a, _) = c.handle(&format!("PUT 60 {key} {}", hex::encode("1234")), t0, 7);
        assert_eq!(&*a, "OK");
        let (a, _) = c.handle(&format!("GET 60 {key}"), t0 + Duration::from_secs(59), 7);
        assert_eq!(a.as_str(), format!("PIN {}", hex::encode("1234")));
        // A shorter time applies at the next use.
        let (a, _) = c.handle(&format!("GET 30 {key}"), t0 + Duration::from_secs(31), 7);
        assert_eq!(&*a, "NONE");
        assert!(c.is_empty());
        c.handle(&format!("PUT 5 {key} 31323334"), t0, 7);
        c.expire(t0 + Duration::from_secs(5));
        assert!(c.is_empty());
        c.handle(&format!("PUT 5 {key} 31323334"), t0, 7);
        let (a, _) = c.handle("STATUS", t0, 7);
        assert_eq!(&*a, "STATUS 1 7");
        c.retain_present(|s| s == "UKS1");
        assert_eq!(c.len(), 1);
        c.retain_present(|s| s == "OTHER");
        assert!(c.is_empty());
        c.handle(&format!("PUT 5 {key} 31323334"), t0, 7);
        let (a, after) = c.handle("STOP", t0, 7);
        assert_eq!((a.as_str(), after), ("OK", After::Stop));
        assert!(c.is_empty());
        for bad in [
            "",
            "GET",
            "GET x y",
            "PUT 5 zz 31",
            "PUT 5 abcd nothex",
            "HELLO",
        ] {
            let (a, after) = c.handle(bad, t0, 7);
            assert!(a.starts_with("ERR"), "{bad}: {}", &*a);
            assert_eq!(after, After::Continue);
        }
    }

    #[test]
    fn lines_are_read_bounded() {
        let r = read_line_zeroizing(&b"GET 5 ab\nrest"[..], 100)
            .unwrap()
            .unwrap();
        assert_eq!(r.as_str(), "GET 5 ab");
        assert!(
            read_line_zeroizing(&b"no newline"[..], 100)
                .unwrap()
                .is_none()
        );
        assert!(
            read_line_zeroizing(&[b'a'; 300][..], 100)
                .unwrap()
                .is_none()
        );
        let long: Vec<u8> = [vec![b'x'; 1000], vec![b'\n']].concat();
        assert_eq!(
            read_line_zeroizing(&long[..], 1000).unwrap().unwrap().len(),
            1000
        );
        assert!(read_line_zeroizing(&long[..], 999).unwrap().is_none());
    }

    #[test]
    fn socket_dir_must_be_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ukey");
        prepare_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(prepare_dir(&dir).is_err());
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(prepare_dir(&file).is_err());
    }
}
