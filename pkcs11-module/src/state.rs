//! The module's global state between `C_Initialize` and `C_Finalize`.

use std::sync::{Arc, RwLock};

use cryptoki_sys::*;
use token_hal::config::Config;
use token_hal::registry::Registry;
use token_hal::{BackendKind, Device};

use crate::error::{Error, Result};

/// One slot: a (device, application) token.
pub(crate) struct Slot {
    pub id: CK_SLOT_ID,
    pub device: Arc<dyn Device>,
    pub app: String,
    pub token_serial: String,
}

/// What `C_Initialize` sets up.
pub(crate) struct State {
    pub config: Config,
    pub registry: Registry,
}

static STATE: RwLock<Option<State>> = RwLock::new(None);

/// Sets the state; `CKR_CRYPTOKI_ALREADY_INITIALIZED` if set.
pub(crate) fn install(state: State) -> Result<()> {
    let mut g = STATE.write().map_err(|_| Error(CKR_GENERAL_ERROR))?;
    if g.is_some() {
        return Err(Error(CKR_CRYPTOKI_ALREADY_INITIALIZED));
    }
    *g = Some(state);
    Ok(())
}

/// Drops the state; `CKR_CRYPTOKI_NOT_INITIALIZED` if unset.
pub(crate) fn remove() -> Result<()> {
    let mut g = STATE.write().map_err(|_| Error(CKR_GENERAL_ERROR))?;
    match g.take() {
        Some(_) => Ok(()),
        None => Err(Error(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

/// Runs `f` on the state; `CKR_CRYPTOKI_NOT_INITIALIZED` if unset.
pub(crate) fn with<T>(f: impl FnOnce(&State) -> Result<T>) -> Result<T> {
    let g = STATE.read().map_err(|_| Error(CKR_GENERAL_ERROR))?;
    match g.as_ref() {
        Some(s) => f(s),
        None => Err(Error(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

impl State {
    /// Every token, soft tokens first (or in the configured order of device serials).
    pub fn slots(&self) -> Result<Vec<Slot>> {
        let mut devices: Vec<(token_hal::DeviceInfo, Arc<dyn Device>)> = Vec::new();
        for d in self.registry.devices()? {
            match d.info() {
                Ok(info) => devices.push((info, d)),
                Err(e) => tracing::warn!(error = %e, "device skipped"),
            }
        }
        let order = self.config.pkcs11.slot_order.clone().unwrap_or_default();
        devices.sort_by_key(|(info, _)| {
            let pos = order
                .iter()
                .position(|s| *s == info.serial)
                .unwrap_or(usize::MAX);
            (pos, info.backend != BackendKind::Soft, info.serial.clone())
        });
        let mut slots = Vec::new();
        for (info, dev) in devices {
            let apps = match dev.list_apps() {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "device applications unreadable");
                    continue;
                }
            };
            for app in apps {
                let token_serial = token_hal::slot::token_serial(&info.serial, &app);
                let id = CK_SLOT_ID::from(token_hal::slot::slot_id(&token_serial));
                slots.push(Slot {
                    id,
                    device: dev.clone(),
                    app,
                    token_serial,
                });
            }
        }
        Ok(slots)
    }

    /// The slot with this ID, or `CKR_SLOT_ID_INVALID`.
    pub fn slot(&self, id: CK_SLOT_ID) -> Result<Slot> {
        self.slots()?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or(Error(CKR_SLOT_ID_INVALID))
    }
}
