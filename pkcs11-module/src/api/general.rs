//! General-purpose, slot and token functions (PKCS#11 v2.40 §5.4, §5.5).

use std::path::Path;

use cryptoki_sys::*;
use token_hal::config::Config;
use token_hal::registry::Registry;
use token_hal::{PinInfo, PinType};

use crate::error::{Error, Result};
use crate::state::{self, State};

/// Library version reported in `CK_INFO`.
const LIB_VERSION: CK_VERSION = CK_VERSION { major: 0, minor: 1 };

/// Copies `s` into a blank-padded fixed field, cutting at a UTF-8 boundary.
pub(crate) fn pad<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

/// `C_Initialize`: `init_string` is the `pReserved` string (`ukey_conf=/path`).
pub(crate) fn initialize(init_string: Option<&str>) -> Result<()> {
    let mut conf_path = None;
    if let Some(s) = init_string {
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("ukey_conf", v)) => conf_path = Some(v.to_owned()),
                _ => return Err(Error(CKR_ARGUMENTS_BAD)),
            }
        }
    }
    let config = match &conf_path {
        Some(p) => Config::load_from(Path::new(p)),
        None => Config::load(),
    }
    .map_err(|e| {
        tracing::error!(error = %e, "configuration");
        Error(CKR_GENERAL_ERROR)
    })?;
    token_hal::logging::init(&config);
    let registry = Registry::new(config.clone());
    state::install(State { config, registry })
}

/// `C_Finalize`.
pub(crate) fn finalize() -> Result<()> {
    state::remove()
}

/// `C_GetInfo`.
pub(crate) fn info() -> Result<CK_INFO> {
    state::with(|_| {
        Ok(CK_INFO {
            cryptokiVersion: CK_VERSION {
                major: 2,
                minor: 40,
            },
            manufacturerID: pad("ukey"),
            flags: 0,
            libraryDescription: pad("ukey PKCS#11 module"),
            libraryVersion: LIB_VERSION,
        })
    })
}

/// `C_GetSlotList`. Every slot here holds a token, so `token_present` changes nothing.
pub(crate) fn slot_list(_token_present: bool) -> Result<Vec<CK_SLOT_ID>> {
    state::with(|s| Ok(s.slots()?.iter().map(|s| s.id).collect()))
}

/// `C_GetSlotInfo`.
pub(crate) fn slot_info(id: CK_SLOT_ID) -> Result<CK_SLOT_INFO> {
    state::with(|s| {
        let slot = s.slot(id)?;
        let info = slot.device.info()?;
        let mut flags = CKF_TOKEN_PRESENT;
        if info.removable {
            flags |= CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
        }
        Ok(CK_SLOT_INFO {
            slotDescription: pad(&format!("{} {}", info.label, info.serial)),
            manufacturerID: pad(&info.manufacturer),
            flags,
            hardwareVersion: CK_VERSION {
                major: info.hw_version.0,
                minor: info.hw_version.1,
            },
            firmwareVersion: CK_VERSION {
                major: info.fw_version.0,
                minor: info.fw_version.1,
            },
        })
    })
}

fn pin_flags(p: &PinInfo, low: CK_FLAGS, final_try: CK_FLAGS, locked: CK_FLAGS) -> CK_FLAGS {
    if p.remaining == 0 {
        locked
    } else if p.remaining == 1 {
        final_try | low
    } else if p.remaining < p.max_retries {
        low
    } else {
        0
    }
}

/// `C_GetTokenInfo`.
pub(crate) fn token_info(id: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
    state::with(|s| {
        let slot = s.slot(id)?;
        let dev = slot.device.info()?;
        let app = slot.device.open_app(&slot.app)?;
        let user = app.pin_info(PinType::User)?;
        let so = app.pin_info(PinType::Admin)?;
        let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED;
        if user.initialized {
            flags |= CKF_USER_PIN_INITIALIZED;
            flags |= pin_flags(
                &user,
                CKF_USER_PIN_COUNT_LOW,
                CKF_USER_PIN_FINAL_TRY,
                CKF_USER_PIN_LOCKED,
            );
        }
        flags |= pin_flags(
            &so,
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
        );
        Ok(CK_TOKEN_INFO {
            label: pad(&slot.app),
            manufacturerID: pad(&dev.manufacturer),
            model: pad(&dev.model),
            serialNumber: pad(&slot.token_serial),
            flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: 0,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: 0,
            ulMaxPinLen: token_hal::PIN_MAX_LEN as CK_ULONG,
            ulMinPinLen: token_hal::PIN_MIN_LEN as CK_ULONG,
            ulTotalPublicMemory: dev.total_space as CK_ULONG,
            ulFreePublicMemory: dev.free_space as CK_ULONG,
            ulTotalPrivateMemory: dev.total_space as CK_ULONG,
            ulFreePrivateMemory: dev.free_space as CK_ULONG,
            hardwareVersion: CK_VERSION {
                major: dev.hw_version.0,
                minor: dev.hw_version.1,
            },
            firmwareVersion: CK_VERSION {
                major: dev.fw_version.0,
                minor: dev.fw_version.1,
            },
            utcTime: [b' '; 16],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_is_blank_filled_and_cut_on_char_boundary() {
        let p: [u8; 8] = pad("ab");
        assert_eq!(&p, b"ab      ");
        let p: [u8; 4] = pad("密钥");
        assert_eq!(&p[..3], "密".as_bytes());
        assert_eq!(p[3], b' ');
    }

    #[test]
    fn init_string_rejects_unknown_keys() {
        assert_eq!(initialize(Some("bogus=1")), Err(Error(CKR_ARGUMENTS_BAD)));
    }
}
