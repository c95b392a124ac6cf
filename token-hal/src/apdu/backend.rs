//! Cards as a [`Backend`]: the transports a link kind lists now (PC/SC readers with a
//! card, HID keys of the configured VID/PID table, in-process loopback cards), each served
//! by one [`ApduDevice`] that lives as long as its card stays present, so its secure
//! channel survives between scans. A card that is gone is dropped at the next scan; a
//! link kind with nothing present lists nothing (a missing reader is not an error).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use super::driver::ApduDevice;
use super::exchange::LinkCaps;
use super::transport::Transport;
use crate::crypto::PublicKey;
use crate::error::Result;
use crate::registry::Backend;
use crate::token::Device;

/// Lists the transports of one link kind.
pub type Lister = Box<dyn Fn() -> Result<Vec<Arc<dyn Transport>>> + Send + Sync>;

/// A link and the driver serving it.
type Served = (Arc<dyn Transport>, Arc<ApduDevice>);
/// PC/SC links by (reader name, ATR).
type PcscLinks = HashMap<(String, Vec<u8>), Arc<dyn Transport>>;

/// A backend of cards over one link kind.
pub struct ApduBackend {
    name: String,
    caps: LinkCaps,
    list: Lister,
    pinned: HashMap<String, PublicKey>,
    /// One driver per link object: a new link (a card swapped in the same reader, a
    /// re-plugged key) gets a new driver.
    cards: Mutex<Vec<Served>>,
}

impl ApduBackend {
    /// A backend named `name` (its `UKEY_BACKENDS` name) over the transports `list`
    /// returns. `pinned` maps a transport id to the device key its card must prove.
    pub fn new(
        name: &str,
        caps: LinkCaps,
        list: Lister,
        pinned: HashMap<String, PublicKey>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            caps,
            list,
            pinned,
            cards: Mutex::new(Vec::new()),
        }
    }
}

impl Backend for ApduBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn devices(&self) -> Result<Vec<Arc<dyn Device>>> {
        let transports = (self.list)()?;
        let mut cards = self.cards.lock().unwrap_or_else(PoisonError::into_inner);
        let mut kept = Vec::new();
        let mut out: Vec<Arc<dyn Device>> = Vec::new();
        for t in transports {
            if !t.is_present() {
                continue;
            }
            let dev = match cards.iter().find(|(link, _)| Arc::ptr_eq(link, &t)) {
                Some((_, d)) => d.clone(),
                None => {
                    let pinned = self.pinned.get(&t.id()).cloned();
                    Arc::new(ApduDevice::new(t.clone(), self.caps, pinned))
                }
            };
            kept.push((t, dev.clone()));
            out.push(dev);
        }
        *cards = kept;
        Ok(out)
    }
}

/// Virtual keys served in-process, by state directory and link kind, made once per
/// process: every registry of the process sees the same cards.
type CardMap = HashMap<(std::path::PathBuf, bool), Arc<dyn Transport>>;

fn in_process_cards() -> &'static Mutex<CardMap> {
    static CARDS: std::sync::OnceLock<Mutex<CardMap>> = std::sync::OnceLock::new();
    CARDS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The file in a virtual key's state directory where an in-process key (`[apdu] loopback`,
/// `hid_loopback`) appends what it served, one JSON line per command, as `ukey sim
/// --apdu-log` does: header, sizes, status word, secure channel (never data). Tests read it
/// to prove the calls reached the key, whichever process served them.
pub const SERVED_LOG_FILE: &str = "served.log";

/// A virtual key that appends its served log to [`SERVED_LOG_FILE`].
struct FileLogged {
    key: super::applet::VirtualKey,
    log: super::applet::ServedLog,
    path: std::path::PathBuf,
}

impl super::transport::CardHandler for FileLogged {
    fn power_on(&mut self) -> Vec<u8> {
        self.key.power_on()
    }
    fn power_off(&mut self) {
        self.key.power_off();
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let r = self.key.process(apdu);
        let served: Vec<_> =
            std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner));
        let mut text = String::new();
        for s in served {
            let line = serde_json::json!({
                "header": hex::encode(s.header),
                "in": s.data_in,
                "out": s.data_out,
                "sw": format!("{:04X}", s.sw),
                "secure": s.secure,
            });
            text.push_str(&format!("{line}\n"));
        }
        // Best effort: a log that cannot be written never stops the key.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = f.write_all(text.as_bytes());
        }
        r
    }
}

/// The in-process virtual key of `dir`, behind the loopback link or (with `hid`) the HID
/// report framing.
fn in_process_card(
    dir: &std::path::Path,
    hid: bool,
    opts: &crate::soft::SoftOptions,
) -> Result<Arc<dyn Transport>> {
    let mut cards = in_process_cards()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(t) = cards.get(&(dir.to_path_buf(), hid)) {
        return Ok(t.clone());
    }
    let key = super::applet::VirtualKey::open(dir, "ukey virtual key", opts)?;
    let key = FileLogged {
        log: key.log(),
        key,
        path: dir.join(SERVED_LOG_FILE),
    };
    let name = format!("{}:{}", if hid { "hid" } else { "loopback" }, dir.display());
    let t: Arc<dyn Transport> = if hid {
        Arc::new(super::hid::HidTransport::new(
            super::hid::LoopbackHidLink::new(name, Box::new(key)),
        ))
    } else {
        Arc::new(super::loopback::LoopbackTransport::new(name, Box::new(key)))
    };
    cards.insert((dir.to_path_buf(), hid), t.clone());
    Ok(t)
}

/// Registers the card backends `config` asks for, process-wide (registry.rs): `loopback`
/// (virtual keys in-process, `[apdu] loopback`) and `hid` (the `[hid]` VID/PID table,
/// plus virtual keys behind the HID framing, `[apdu] hid_loopback`).
pub fn register_builtin(config: &crate::config::Config) {
    let opts = crate::soft::SoftOptions::from_config(config);
    if !config.apdu.loopback.is_empty() {
        let dirs = config.apdu.loopback.clone();
        let o = opts.clone();
        crate::registry::register_backend(Arc::new(ApduBackend::new(
            "loopback",
            LinkCaps::EXTENDED,
            Box::new(move || dirs.iter().map(|d| in_process_card(d, false, &o)).collect()),
            HashMap::new(),
        )));
    }
    let hid_config = config.clone();
    let dirs = config.apdu.hid_loopback.clone();
    crate::registry::register_backend(Arc::new(ApduBackend::new(
        super::discover::HID_BACKEND,
        LinkCaps::EXTENDED,
        Box::new(move || {
            let mut out: Vec<Arc<dyn Transport>> = Vec::new();
            for d in &dirs {
                out.push(in_process_card(d, true, &opts)?);
            }
            out.extend(super::discover::hid_transports(&hid_config)?);
            Ok(out)
        }),
        HashMap::new(),
    )));
    // PC/SC: connect once per (reader, card); a card that stays keeps its link.
    let links: Mutex<PcscLinks> = Mutex::new(HashMap::new());
    crate::registry::register_backend(Arc::new(ApduBackend::new(
        super::discover::PCSC_BACKEND,
        // Most CCID readers carry short APDUs only (docs/apdu-transport.md); chaining
        // and GET RESPONSE work everywhere.
        LinkCaps::SHORT,
        Box::new(move || {
            if !crate::registry::backend_enabled(super::discover::PCSC_BACKEND) {
                return Ok(Vec::new());
            }
            let mut links = links.lock().unwrap_or_else(PoisonError::into_inner);
            let mut out: Vec<Arc<dyn Transport>> = Vec::new();
            let mut seen = HashSet::new();
            for r in super::pcsc::readers()? {
                if !r.card_present {
                    continue;
                }
                let key = (r.name.clone(), r.atr.clone().unwrap_or_default());
                seen.insert(key.clone());
                if let Some(t) = links.get(&key).filter(|t| t.is_present()) {
                    out.push(t.clone());
                    continue;
                }
                match super::pcsc::PcscTransport::connect(&r.name) {
                    Ok(t) => {
                        let t: Arc<dyn Transport> = Arc::new(t);
                        links.insert(key, t.clone());
                        out.push(t);
                    }
                    Err(e) => {
                        tracing::warn!(reader = %r.name, error = %e, "skipping PC/SC reader");
                    }
                }
            }
            links.retain(|k, _| seen.contains(k));
            Ok(out)
        }),
        HashMap::new(),
    )));
}
