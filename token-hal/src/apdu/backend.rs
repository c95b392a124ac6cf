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

/// A backend of cards over one link kind.
pub struct ApduBackend {
    name: String,
    caps: LinkCaps,
    list: Lister,
    pinned: HashMap<String, PublicKey>,
    cards: Mutex<HashMap<String, Arc<ApduDevice>>>,
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
            cards: Mutex::new(HashMap::new()),
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
        let mut seen = HashSet::new();
        let mut out: Vec<Arc<dyn Device>> = Vec::new();
        for t in transports {
            if !t.is_present() {
                continue;
            }
            let id = t.id();
            seen.insert(id.clone());
            let dev = cards
                .entry(id.clone())
                .or_insert_with(|| {
                    Arc::new(ApduDevice::new(t, self.caps, self.pinned.get(&id).cloned()))
                })
                .clone();
            out.push(dev);
        }
        cards.retain(|id, _| seen.contains(id));
        Ok(out)
    }
}
