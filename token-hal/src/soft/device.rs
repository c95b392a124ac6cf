//! The soft device: one database file, its device key, and its applications.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::OptionalExtension;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::app::{SoftApp, check_app_name, create_app_rows};
use super::secrets;
use super::store::{Store, check_label};
use super::{MANUFACTURER, MODEL, SoftOptions, TOTAL_SPACE};
use crate::crypto::{rng, sym};
use crate::error::{Error, Result};
use crate::model::{AppParams, BackendKind, DeviceInfo};
use crate::token::{Application, Device};

/// Device-authentication state of one device handle.
#[derive(Default)]
struct DevAuth {
    challenge: Option<Zeroizing<Vec<u8>>>,
    authenticated: bool,
}

/// A soft device: one `.ukdb` database and its `.devkey`.
pub struct SoftDevice {
    store: Arc<Store>,
    auth: Mutex<DevAuth>,
}

impl std::fmt::Debug for SoftDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SoftDevice({})", self.store.path().display())
    }
}

impl SoftDevice {
    /// Opens and checks the database at `path`. Nothing is written.
    pub fn open(path: &Path, opts: &SoftOptions) -> Result<Self> {
        Ok(Self {
            store: Arc::new(Store::open(path, opts)?),
            auth: Mutex::new(DevAuth::default()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The device serial.
    pub fn serial(&self) -> &str {
        self.store.serial()
    }

    /// Checks the whole database (SQLite `integrity_check` and `foreign_key_check`).
    pub fn check_integrity(&self) -> Result<()> {
        self.store.integrity_check()
    }

    /// Opens an application as its concrete type.
    pub fn open_soft_app(&self, name: &str) -> Result<SoftApp> {
        SoftApp::open(self.store.clone(), name)
    }

    fn authenticated(&self) -> bool {
        self.auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .authenticated
    }

    fn require_auth(&self) -> Result<()> {
        if self.authenticated() {
            Ok(())
        } else {
            Err(Error::DeviceAuthRequired)
        }
    }

    fn auth_key(&self) -> Result<Zeroizing<Vec<u8>>> {
        let sealed: Vec<u8> = self.store.read(|tx| {
            Ok(tx.query_row("SELECT auth_key FROM device WHERE id = 1", [], |r| r.get(0))?)
        })?;
        let devkey = self.store.device_key()?;
        secrets::open_auth_key(
            &devkey,
            self.store.serial(),
            &sealed,
            &super::devkey_path(self.store.path()),
        )
    }
}

impl Device for SoftDevice {
    fn info(&self) -> Result<DeviceInfo> {
        let (serial, label): (String, String) = self.store.read(|tx| {
            Ok(
                tx.query_row("SELECT serial, label FROM device WHERE id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?,
            )
        })?;
        let used = std::fs::metadata(self.store.path())
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(DeviceInfo {
            name: serial.clone(),
            serial,
            label,
            manufacturer: MANUFACTURER.into(),
            issuer: MANUFACTURER.into(),
            model: MODEL.into(),
            hw_version: (1, 0),
            fw_version: (0, 1),
            total_space: TOTAL_SPACE,
            free_space: TOTAL_SPACE.saturating_sub(used),
            removable: false,
            hardware: false,
            backend: BackendKind::Soft,
        })
    }

    fn set_label(&self, label: &str) -> Result<()> {
        check_label(label)?;
        self.store.write(|tx| {
            tx.execute("UPDATE device SET label = ?1 WHERE id = 1", [label])?;
            Ok(())
        })
    }

    fn gen_random(&self, len: usize) -> Result<Vec<u8>> {
        if len == 0 || len > 4096 {
            return Err(Error::invalid_arg("random length must be 1..=4096"));
        }
        let r = rng::random_bytes(len)?;
        let mut a = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        a.challenge = Some(Zeroizing::new(r.clone()));
        Ok(r)
    }

    fn dev_auth(&self, cryptogram: &[u8]) -> Result<()> {
        // The challenge is used once, whatever the outcome.
        let challenge = {
            let mut a = self.auth.lock().unwrap_or_else(|p| p.into_inner());
            a.authenticated = false;
            a.challenge.take()
        };
        let Some(challenge) = challenge else {
            return Err(Error::DeviceAuthFailed);
        };
        let key = self.auth_key()?;
        let mut block = Zeroizing::new([0u8; 16]);
        let n = challenge.len().min(16);
        block[..n].copy_from_slice(&challenge[..n]);
        let expected = Zeroizing::new(sym::sm4_ecb_encrypt_block(&key, &block)?);
        if cryptogram.len() == expected.len() && bool::from(expected.ct_eq(cryptogram)) {
            self.auth
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .authenticated = true;
            Ok(())
        } else {
            tracing::warn!(serial = %self.store.serial(), "device authentication failed");
            Err(Error::DeviceAuthFailed)
        }
    }

    fn change_dev_auth_key(&self, new_key: &[u8]) -> Result<()> {
        self.require_auth()?;
        if new_key.len() != 16 {
            return Err(Error::invalid_arg(
                "the device authentication key is 16 bytes (SM4)",
            ));
        }
        let devkey = self.store.device_key()?;
        let sealed = secrets::seal_auth_key(&devkey, self.store.serial(), new_key)?;
        self.store.write(|tx| {
            tx.execute("UPDATE device SET auth_key = ?1 WHERE id = 1", [&sealed])?;
            Ok(())
        })
    }

    fn list_apps(&self) -> Result<Vec<String>> {
        self.store.read(|tx| {
            let mut st = tx.prepare("SELECT name FROM app ORDER BY name")?;
            let names = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(names)
        })
    }

    fn create_app(&self, name: &str, params: &AppParams) -> Result<()> {
        self.require_auth()?;
        check_app_name(name)?;
        // The KDF runs before the write lock is taken.
        let rows = create_app_rows(params, self.store.opts().kdf_iterations)?;
        self.store.write(|tx| {
            let exists: Option<i64> = tx
                .query_row("SELECT id FROM app WHERE name = ?1", [name], |r| r.get(0))
                .optional()?;
            if exists.is_some() {
                return Err(Error::already_exists(format!("application {name:?}")).into());
            }
            rows.insert(tx, name)?;
            Ok(())
        })?;
        tracing::info!(serial = %self.store.serial(), app = name, "created application");
        Ok(())
    }

    fn delete_app(&self, name: &str) -> Result<()> {
        self.require_auth()?;
        self.store.write(|tx| {
            let n = tx.execute("DELETE FROM app WHERE name = ?1", [name])?;
            if n == 0 {
                return Err(Error::not_found(format!("application {name:?}")).into());
            }
            Ok(())
        })?;
        tracing::info!(serial = %self.store.serial(), app = name, "deleted application");
        Ok(())
    }

    fn open_app(&self, name: &str) -> Result<Arc<dyn Application>> {
        Ok(Arc::new(SoftApp::open(self.store.clone(), name)?))
    }
}
