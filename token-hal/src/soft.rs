//! The soft token: an encrypted SQLite store, one database per device.
//!
//! # Files
//! Each soft device is two files in the data directory ([`crate::config`]):
//! - `<serial>.ukdb`: a SQLite database, mode 0600 (rollback journal, `synchronous=FULL`,
//!   `secure_delete=ON`, a busy timeout of `soft.busy_timeout_ms`, default 10 s; a
//!   new data directory is made with mode 0700). `PRAGMA application_id` is
//!   `0x756b6579` ("ukey") and `PRAGMA user_version` is the schema version
//!   ([`SCHEMA_VERSION`]); a database with a newer version is refused with
//!   [`Error::SchemaTooNew`](crate::Error::SchemaTooNew) and left untouched. Every row
//!   carries a checksum (`sum`, kept by triggers), checked when the database is opened,
//!   so a value damaged on disk is reported instead of served (docs/robustness.md).
//! - `<serial>.devkey`: the 32-byte random **device key** (mode 0600), which seals the
//!   device secrets. It is kept out of the database so that a copy of the database alone
//!   does not reveal the device-authentication key.
//!
//! A new device is built under a temporary name and renamed into place, so a crash never
//! leaves a half-made `.ukdb`. Every change afterwards is one SQLite transaction; writes
//! that read first take the write lock up front (`BEGIN IMMEDIATE`). Every call re-reads
//! the database, so several processes can share a token and see each other's changes at
//! their next call.
//!
//! # Tables (schema version 1)
//! | table | columns | sealed |
//! |---|---|---|
//! | `device` | `serial`, `label`, `created_at`, `auth_key` | `auth_key` under the device key |
//! | `app` | `id`, `name`, `generation` (16 random bytes), `epoch`, `create_file_rights` | — |
//! | `pin` | `app_id`, `pin_type` (0 admin, 1 user), `max_retries`, `remaining`, `default_pin`, `kdf`, `iterations`, `salt`, `wrapped_mk` | `wrapped_mk` under the PIN-derived key |
//! | `container` | `id`, `app_id`, `name`, `ckaid` | — |
//! | `key` | `id` (the [`KeyId`](crate::KeyId)), `container_id`, `usage`, `state`, `alg`, `spki`, `sealed_pkcs8` | `sealed_pkcs8` under the master key |
//! | `cert` | `id`, `key_id`, `der`, `current`, `imported_at` | — |
//! | `file` | `app_id`, `name`, `read_rights`, `write_rights`, `data` | — |
//! | `object`, `attr` | `id`, `app_id`, `private`; `object_id`, `ty`, `sensitive`, `value` | `value` of sensitive attributes under the master key |
//!
//! # Secrets
//! - Each application has a random 256-bit **master key**. It is stored only wrapped
//!   (`crypto::aead::seal`, AES-256-GCM) under a key derived from each of its PINs with
//!   PBKDF2-HMAC-SM3 (32-byte output, 16-byte random salt, `soft.kdf_iterations`,
//!   default 200 000, about 200 ms on the 2-core reference machine in a release build).
//!   The KDF name, salt and iteration count are stored with each wrap, so
//!   the cost can change: a wrap keeps its count until the PIN is next set. A PIN is
//!   verified by unwrapping the master key; a failed unwrap means a wrong PIN.
//! - Private keys (PKCS#8 DER) and sensitive object attributes are sealed under the
//!   master key. No PIN and no private key byte is ever written in clear.
//! - The AAD of every sealed value names what it is, so a sealed value moved to another
//!   row or column fails to open:
//!   - master-key wrap: `ukey/v1/app/<generation hex>/mk/<admin|user>`
//!   - private key: `ukey/v1/app/<generation hex>/key/<key id>/pkcs8`
//!   - object attribute: `ukey/v1/app/<generation hex>/obj/<object id>/attr/<type>`
//!   - device-authentication key: `ukey/v1/dev/<serial>/auth-key`
//!
//! # PINs
//! Retry counters are persisted. A PIN attempt decrements the counter and then checks
//! the PIN inside one write transaction, which holds the database write lock, and restores
//! the counter on success; so parallel processes can never try more PINs than the limit.
//! Login state and the unwrapped master key live in the [`SoftApp`] handle only (zeroized
//! on logout and drop). While the user is logged in, the handle keeps the private keys it
//! has parsed, and reuses a key lookup as long as the database version (SQLite's
//! `data_version` plus this connection's own commit count) is unchanged, so signing does
//! not parse a key or query the database each time; any commit anywhere invalidates it. `epoch` grows when an application is wiped, which ends the logins of
//! every other handle; `generation` tells a re-created application from the old one.

mod app;
mod device;
mod secrets;
mod store;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use app::SoftApp;
pub use device::SoftDevice;

use crate::config::Config;
use crate::error::Result;
use crate::token::Device;

/// The schema version this build writes and reads (2: every row carries a checksum;
/// a version-1 database is upgraded when it is opened).
pub const SCHEMA_VERSION: i64 = 2;
/// File extension of a soft device's database.
pub const DB_EXTENSION: &str = "ukdb";
/// File extension of a soft device's device-key file.
pub const DEVKEY_EXTENSION: &str = "devkey";
/// The device-authentication key of a new soft device (16 ASCII bytes, as USB keys ship).
pub const DEFAULT_DEV_AUTH_KEY: &[u8; 16] = b"1234567812345678";
/// Default SQLite busy timeout.
pub const DEFAULT_BUSY_TIMEOUT_MS: u32 = 10_000;
/// Manufacturer reported by soft devices.
pub const MANUFACTURER: &str = "ukey";
/// Model reported by soft devices.
pub const MODEL: &str = "soft token";
/// Nominal capacity reported by a soft device.
pub const TOTAL_SPACE: u64 = 64 * 1024 * 1024;
/// Largest file a soft application holds.
pub const MAX_FILE_SIZE: u32 = 4 * 1024 * 1024;

/// Settings of the soft backend, usually taken from the [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftOptions {
    /// PBKDF2-HMAC-SM3 iterations for newly written PIN wraps.
    pub kdf_iterations: u32,
    /// How long to wait for another process's lock.
    pub busy_timeout: Duration,
}

impl SoftOptions {
    /// The options a config asks for.
    pub fn from_config(config: &Config) -> Self {
        Self {
            kdf_iterations: config.kdf_iterations(),
            busy_timeout: Duration::from_millis(u64::from(
                config
                    .soft
                    .busy_timeout_ms
                    .unwrap_or(DEFAULT_BUSY_TIMEOUT_MS),
            )),
        }
    }
}

impl Default for SoftOptions {
    fn default() -> Self {
        Self {
            kdf_iterations: crate::config::DEFAULT_KDF_ITERATIONS,
            busy_timeout: Duration::from_millis(u64::from(DEFAULT_BUSY_TIMEOUT_MS)),
        }
    }
}

/// Opens the soft device stored in `path` (a `.ukdb` file), with the settings of
/// [`Config::load`].
pub fn open_soft_device(path: &Path) -> Result<Arc<dyn Device>> {
    let opts = SoftOptions::from_config(&Config::load()?);
    Ok(Arc::new(SoftDevice::open(path, &opts)?))
}

/// Opens the soft device stored in `path` with explicit settings.
pub fn open_soft_device_with(path: &Path, opts: &SoftOptions) -> Result<Arc<SoftDevice>> {
    Ok(Arc::new(SoftDevice::open(path, opts)?))
}

/// Creates a new soft device with `label` in `dir` (made if missing) and returns the path of
/// its database.
pub fn create_soft_device(dir: &Path, label: &str, opts: &SoftOptions) -> Result<PathBuf> {
    store::create_device(dir, label, opts)
}

/// The path of the device-key file that belongs to a database path.
pub fn devkey_path(db_path: &Path) -> PathBuf {
    db_path.with_extension(DEVKEY_EXTENSION)
}

/// Deletes the files of the soft device stored in `db_path`: the database, any journal
/// the database left, and the device key.
pub fn delete_soft_device_files(db_path: &Path) -> Result<()> {
    store::delete_device_files(db_path)
}
