//! Device management (GM/T 0016-2012 §7.1): the registry, device information, the
//! device lock and device events.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use skf_sys::*;
use token_hal::config::Config;
use token_hal::registry::Registry;
use token_hal::token::Device;

use crate::api::objects::DevObj;
use crate::error::{Error, Result};

static REGISTRY: OnceLock<std::result::Result<Registry, String>> = OnceLock::new();

/// Set once this copy of the library starts serving (its registry is being built).
static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The data directory the vendor-SKF bridge gave this copy (`UKEY_SKF_SetTestDataDir`).
static TEST_DATA_DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

/// The bridge's test mode: this copy serves the soft devices of `dir`, and bridges
/// nothing. Refused once this copy has started serving.
pub(crate) fn set_test_data_dir(dir: std::path::PathBuf) -> Result<()> {
    if STARTED.load(std::sync::atomic::Ordering::SeqCst) {
        tracing::warn!("test data directory refused: this library is already serving");
        return Err(Error::FAIL);
    }
    let set = TEST_DATA_DIR.get_or_init(|| dir.clone());
    if *set != dir {
        return Err(Error::FAIL);
    }
    Ok(())
}

/// The registry, built from the configuration on first use.
pub(crate) fn registry() -> Result<&'static Registry> {
    let r = REGISTRY.get_or_init(|| {
        STARTED.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut config = Config::load().map_err(|e| e.to_string())?;
        // The vendor-SKF bridge's test mode (docs/skf-bridge.md): a data directory of this
        // copy's own, so a process can bridge it without seeing its own devices twice.
        if let Some(dir) = TEST_DATA_DIR.get() {
            config.data_dir = dir.clone();
            token_hal::logging::init(&config);
        } else {
            token_hal::logging::init(&config);
            ukey_p11_bridge::register(&config);
            ukey_skf_bridge::register(&config);
        }
        Ok(Registry::new(config))
    });
    r.as_ref().map_err(|e| {
        tracing::error!(error = %e, "configuration");
        Error::FAIL
    })
}

/// The library's power-on, on the first call of the process: configuration and log, then
/// the self-tests (token-hal `selftest`; a failure leaves the library in its error state,
/// see ffi/entry.rs).
pub(crate) fn power_on() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let _ = registry();
        let _ = token_hal::crypto::selftest::run();
    });
}

/// The devices this library serves. In the vendor-SKF bridge's test mode
/// (`UKEY_SKF_SetTestDataDir`, docs/skf-bridge.md) they are the soft devices of that
/// directory whatever `UKEY_BACKENDS` says: that variable belongs to the bridging process,
/// whose environment this copy shares.
fn devices() -> Result<Vec<std::sync::Arc<dyn Device>>> {
    let r = registry()?;
    if TEST_DATA_DIR.get().is_some() {
        Ok(r.soft_devices()?)
    } else {
        Ok(r.devices()?)
    }
}

/// `SKF_EnumDev`: names of the devices. Every listed device is present; one that does not
/// answer (a key pulled out while it is listed) is skipped, not an error.
pub(crate) fn enum_dev(_present_only: bool) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for d in devices()? {
        match d.info() {
            Ok(i) => names.push(i.name),
            Err(e) => tracing::warn!(error = %e, "device skipped"),
        }
    }
    Ok(names)
}

/// Encodes names as GM/T 0016 lists them: each NUL-terminated, the list ending with an
/// extra NUL. An empty list is empty (length 0).
pub(crate) fn name_list(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
    }
    if !out.is_empty() {
        out.push(0);
    }
    out
}

/// `SKF_ConnectDev`: the device called `name`.
pub(crate) fn connect(name: &str) -> Result<DevObj> {
    for d in devices()? {
        let info = d.info()?;
        if info.name == name {
            return Ok(DevObj {
                device: d,
                serial: info.serial,
            });
        }
    }
    Err(Error::INVALID_PARAM)
}

/// `SKF_GetDevState`.
pub(crate) fn state(name: &str) -> Result<ULONG> {
    Ok(if enum_dev(true)?.iter().any(|n| n == name) {
        DEV_PRESENT_STATE
    } else {
        DEV_ABSENT_STATE
    })
}

/// Largest plaintext of ExtECCEncrypt / ECC session-key operations.
pub(crate) const MAX_ECC_BUFFER: usize = 8192;
/// Largest single-call buffer advertised.
pub(crate) const MAX_BUFFER: usize = 1 << 20;

fn copy_str<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let b = s.as_bytes();
    let n = b.len().min(N - 1);
    out[..n].copy_from_slice(&b[..n]);
    out
}

/// `SKF_GetDevInfo`.
pub(crate) fn dev_info(d: &dyn Device) -> Result<DEVINFO> {
    let i = d.info()?;
    let clamp = |v: u64| ULONG::try_from(v).unwrap_or(ULONG::MAX);
    Ok(DEVINFO {
        Version: VERSION { major: 1, minor: 0 },
        Manufacturer: copy_str(&i.manufacturer),
        Issuer: copy_str(&i.issuer),
        Label: copy_str(&i.label),
        SerialNumber: copy_str(&i.serial),
        HWVersion: VERSION {
            major: i.hw_version.0,
            minor: i.hw_version.1,
        },
        FirmwareVersion: VERSION {
            major: i.fw_version.0,
            minor: i.fw_version.1,
        },
        AlgSymCap: SGD_SM4_ECB | SGD_SM4_CBC | SGD_SM4_CFB | SGD_SM4_OFB | SGD_SM4_MAC,
        AlgAsymCap: SGD_RSA | SGD_SM2_ALL,
        AlgHashCap: SGD_SM3 | SGD_SHA1 | SGD_SHA256,
        DevAuthAlgId: SGD_SM4_ECB,
        TotalSpace: clamp(i.total_space),
        FreeSpace: clamp(i.free_space),
        MaxECCBufferSize: MAX_ECC_BUFFER as ULONG,
        MaxBufferSize: MAX_BUFFER as ULONG,
        Reserved: [0; 64],
    })
}

// --- SKF_LockDev ------------------------------------------------------------------------

struct Held {
    holder: usize,
    count: u32,
    _file: File,
}

static LOCKS: Mutex<Option<HashMap<String, Held>>> = Mutex::new(None);
static LOCK_CV: Condvar = Condvar::new();

fn locks() -> MutexGuard<'static, Option<HashMap<String, Held>>> {
    LOCKS.lock().unwrap_or_else(|p| p.into_inner())
}

/// `SKF_LockDev`: exclusive use of the device by handle `holder`, re-entrant for it,
/// across processes through a lock file in the data directory. `timeout_ms` of
/// 0xFFFFFFFF waits forever.
pub(crate) fn lock(dev: &DevObj, holder: usize, timeout_ms: ULONG) -> Result<()> {
    let deadline = (timeout_ms != ULONG::MAX)
        .then(|| Instant::now() + Duration::from_millis(u64::from(timeout_ms)));
    let path = registry()?
        .data_dir()
        .join(format!(".skf-lock-{}", dev.serial));
    let mut g = locks();
    loop {
        let map = g.get_or_insert_with(HashMap::new);
        match map.get_mut(&dev.serial) {
            Some(h) if h.holder == holder => {
                h.count = h.count.saturating_add(1);
                return Ok(());
            }
            Some(_) => {
                let wait = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()),
                    None => Duration::from_millis(500),
                };
                if wait.is_zero() {
                    return Err(Error::TIMEOUT);
                }
                g = LOCK_CV
                    .wait_timeout(g, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            None => {
                // A card-only setup may have no data directory yet.
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let file = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|e| {
                        tracing::error!(path = %path.display(), error = %e, "lock file");
                        Error::FAIL
                    })?;
                if try_lock_file(&file) {
                    map.insert(
                        dev.serial.clone(),
                        Held {
                            holder,
                            count: 1,
                            _file: file,
                        },
                    );
                    return Ok(());
                }
                // Another process holds it: poll.
                drop(g);
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Error::TIMEOUT);
                }
                std::thread::sleep(Duration::from_millis(20));
                g = locks();
            }
        }
    }
}

/// `SKF_UnlockDev`: one level of the holder's lock.
pub(crate) fn unlock(dev: &DevObj, holder: usize) -> Result<()> {
    let mut g = locks();
    let map = g.get_or_insert_with(HashMap::new);
    match map.get_mut(&dev.serial) {
        Some(h) if h.holder == holder => {
            h.count -= 1;
            if h.count == 0 {
                map.remove(&dev.serial);
                LOCK_CV.notify_all();
            }
            Ok(())
        }
        _ => Err(Error::FAIL),
    }
}

/// Releases every lock level `holder` has (disconnect).
pub(crate) fn release_all(holder: usize) {
    let mut g = locks();
    if let Some(map) = g.as_mut() {
        map.retain(|_, h| h.holder != holder);
    }
    LOCK_CV.notify_all();
}

/// Takes an exclusive advisory lock on the file without waiting (flock on Unix). Other
/// platforms lock within the process only.
#[cfg(unix)]
fn try_lock_file(f: &File) -> bool {
    rustix::fs::flock(f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

#[cfg(not(unix))]
fn try_lock_file(_f: &File) -> bool {
    true
}

// --- device events ----------------------------------------------------------------------

struct Events {
    known: Option<BTreeSet<String>>,
    queue: VecDeque<(String, ULONG)>,
    cancel_gen: u64,
}

static EVENTS: Mutex<Events> = Mutex::new(Events {
    known: None,
    queue: VecDeque::new(),
    cancel_gen: 0,
});
static EVENT_CV: Condvar = Condvar::new();

fn events() -> MutexGuard<'static, Events> {
    EVENTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often soft devices are rescanned while a caller waits.
const POLL: Duration = Duration::from_millis(200);

fn rescan(ev: &mut Events) -> Result<()> {
    let now: BTreeSet<String> = enum_dev(true)?.into_iter().collect();
    if let Some(known) = &ev.known {
        for n in now.difference(known) {
            ev.queue.push_back((n.clone(), DEV_EVENT_INSERTED));
        }
        for n in known.difference(&now) {
            ev.queue.push_back((n.clone(), DEV_EVENT_REMOVED));
        }
    }
    ev.known = Some(now);
    Ok(())
}

/// Starts watching (the device set at the first call is the baseline).
pub(crate) fn watch_start() -> Result<()> {
    let mut ev = events();
    if ev.known.is_none() {
        rescan(&mut ev)?;
    }
    Ok(())
}

/// `SKF_WaitForDevEvent`: blocks until a device is inserted or removed, or the wait is
/// cancelled. `deliver` is given the event; the event is consumed only when it succeeds.
pub(crate) fn wait_event(deliver: impl Fn(&str, ULONG) -> Result<()>) -> Result<()> {
    watch_start()?;
    let mut ev = events();
    let gen0 = ev.cancel_gen;
    loop {
        if let Some((name, kind)) = ev.queue.front().cloned() {
            deliver(&name, kind)?;
            ev.queue.pop_front();
            return Ok(());
        }
        if ev.cancel_gen != gen0 {
            return Err(Error::NO_EVENT);
        }
        ev = EVENT_CV
            .wait_timeout(ev, POLL)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if ev.cancel_gen != gen0 {
            return Err(Error::NO_EVENT);
        }
        rescan(&mut ev)?;
    }
}

/// `SKF_CancelWaitForDevEvent`: wakes every waiter.
pub(crate) fn cancel_wait() {
    let mut ev = events();
    ev.cancel_gen = ev.cancel_gen.wrapping_add(1);
    EVENT_CV.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lists_end_with_double_nul() {
        assert_eq!(name_list(&[]), b"");
        assert_eq!(name_list(&["a".into(), "bc".into()]), b"a\0bc\0\0");
    }
}
