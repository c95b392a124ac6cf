//! Finds devices: the soft devices in the data directory, then the devices of every
//! registered [`Backend`] (PC/SC readers, HID keys, bridged vendor libraries).
//!
//! A damaged database never hides the others: [`Registry::devices`] skips it with a
//! warning, and [`Registry::scan`] reports it. A backend that fails (pcscd not running,
//! a library that does not load) is skipped with a warning too: a missing reader is not
//! an error.
//!
//! `UKEY_BACKENDS` (a comma list of backend names, `soft` included) chooses which
//! backends are active; unset, all are.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::{Config, DEFAULT_SOFT_LABEL};
use crate::error::{Error, Result};
use crate::model::AppParams;
use crate::soft::{self, DB_EXTENSION, DEFAULT_DEV_AUTH_KEY, SoftDevice, SoftOptions};
use crate::token::Device;

/// The name of the soft-token backend in `UKEY_BACKENDS`.
pub const SOFT_BACKEND: &str = "soft";

/// A source of devices besides the soft store: PC/SC readers, HID keys, bridges to
/// vendor SKF libraries or other PKCS#11 modules. The crates that implement one register
/// it with [`register_backend`] (token-hal cannot depend on them).
pub trait Backend: Send + Sync {
    /// The short name used in `UKEY_BACKENDS`: `pcsc`, `hid`, `skf`, `pkcs11`, ...
    fn name(&self) -> &str;
    /// The devices present now. Nothing present (no reader, no key) is `Ok(vec![])`.
    fn devices(&self) -> Result<Vec<Arc<dyn Device>>>;
}

static BACKENDS: Mutex<Vec<Arc<dyn Backend>>> = Mutex::new(Vec::new());

/// Adds `backend` to every [`Registry`] of the process. A backend with the same name
/// replaces the earlier one.
pub fn register_backend(backend: Arc<dyn Backend>) {
    let mut list = BACKENDS.lock().unwrap_or_else(PoisonError::into_inner);
    list.retain(|b| b.name() != backend.name());
    list.push(backend);
}

/// The registered backends, in registration order.
pub fn registered_backends() -> Vec<Arc<dyn Backend>> {
    BACKENDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Whether the backend `name` is active under `UKEY_BACKENDS` (all are when it is unset).
pub fn backend_enabled(name: &str) -> bool {
    match std::env::var("UKEY_BACKENDS") {
        Ok(list) if !list.trim().is_empty() => {
            list.split(',').any(|b| b.trim().eq_ignore_ascii_case(name))
        }
        _ => true,
    }
}

/// One database file found by [`Registry::scan`], opened or not.
pub struct ScanEntry {
    /// The file.
    pub path: PathBuf,
    /// The device, or why it could not be opened.
    pub device: Result<Arc<dyn Device>>,
}

/// Where an application was found or made by [`Registry::ensure_app`].
pub struct AppSetup {
    /// The device holding it.
    pub device: Arc<dyn Device>,
    /// The application name.
    pub app: String,
    /// Whether a soft device was created.
    pub created_device: bool,
    /// Whether the application was created.
    pub created_app: bool,
}

/// The devices ukey knows, from one [`Config`].
pub struct Registry {
    config: Config,
    opts: SoftOptions,
}

impl Registry {
    /// A registry over `config`.
    pub fn new(config: Config) -> Self {
        crate::apdu::backend::register_builtin(&config);
        let opts = SoftOptions::from_config(&config);
        Self { config, opts }
    }

    /// A registry over [`Config::load`].
    pub fn load() -> Result<Self> {
        Ok(Self::new(Config::load()?))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The soft-token settings in use.
    pub fn soft_options(&self) -> &SoftOptions {
        &self.opts
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// The soft-device database files in the data directory, sorted. A missing directory
    /// holds none; an unreadable one is an error naming it.
    pub fn soft_db_paths(&self) -> Result<Vec<PathBuf>> {
        let dir = self.data_dir();
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Io {
                    path: dir.to_path_buf(),
                    detail: e.to_string(),
                });
            }
        };
        let mut paths = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::Io {
                path: dir.to_path_buf(),
                detail: e.to_string(),
            })?;
            let path = entry.path();
            let is_db = path.extension().is_some_and(|x| x == DB_EXTENSION)
                && !entry.file_name().to_string_lossy().starts_with('.');
            if is_db {
                paths.push(path);
            }
        }
        paths.sort();
        Ok(paths)
    }

    /// Every soft-device file with the device or the error opening it.
    pub fn scan(&self) -> Result<Vec<ScanEntry>> {
        Ok(self
            .soft_db_paths()?
            .into_iter()
            .map(|path| {
                let device =
                    SoftDevice::open(&path, &self.opts).map(|d| Arc::new(d) as Arc<dyn Device>);
                ScanEntry { path, device }
            })
            .collect())
    }

    /// The devices that open: the soft devices sorted by serial, then each active
    /// [`Backend`]'s devices in registration order. Files that do not open and backends
    /// that fail are skipped with a warning (see [`Registry::scan`]).
    pub fn devices(&self) -> Result<Vec<Arc<dyn Device>>> {
        let mut out = if backend_enabled(SOFT_BACKEND) {
            self.soft_devices()?
        } else {
            Vec::new()
        };
        for backend in registered_backends() {
            if !backend_enabled(backend.name()) {
                continue;
            }
            match backend.devices() {
                Ok(devices) => out.extend(devices),
                Err(err) => {
                    tracing::warn!(backend = backend.name(), error = %err, "skipping backend");
                }
            }
        }
        Ok(out)
    }

    /// The soft devices that open, sorted by serial.
    pub fn soft_devices(&self) -> Result<Vec<Arc<dyn Device>>> {
        let mut soft = Vec::new();
        for path in self.soft_db_paths()? {
            match SoftDevice::open(&path, &self.opts) {
                Ok(d) => soft.push(d),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "skipping soft device");
                }
            }
        }
        soft.sort_by(|a, b| a.serial().cmp(b.serial()));
        Ok(soft
            .into_iter()
            .map(|d| Arc::new(d) as Arc<dyn Device>)
            .collect())
    }

    /// Creates a soft device with `label` in the data directory.
    pub fn create_soft_device(&self, label: &str) -> Result<Arc<dyn Device>> {
        let path = soft::create_soft_device(self.data_dir(), label, &self.opts)?;
        Ok(Arc::new(SoftDevice::open(&path, &self.opts)?))
    }

    /// Deletes the soft device with this serial and all its data.
    pub fn delete_device(&self, serial: &str) -> Result<()> {
        let path = self.soft_path(serial)?;
        soft::delete_soft_device_files(&path)?;
        tracing::info!(serial, "deleted soft device");
        Ok(())
    }

    /// The database file of the soft device with this serial. Damaged files count too,
    /// by their file name, so that they can be deleted.
    pub fn soft_path(&self, serial: &str) -> Result<PathBuf> {
        for e in self.scan()? {
            let matches = match &e.device {
                Ok(d) => d.info()?.serial == serial,
                Err(_) => e.path.file_stem().is_some_and(|s| s == serial),
            };
            if matches {
                return Ok(e.path);
            }
        }
        Err(Error::not_found(format!("device {serial:?}")))
    }

    /// A device by serial, else by label (which must then be unique).
    pub fn find_device(&self, serial_or_label: &str) -> Result<Arc<dyn Device>> {
        let mut by_label = Vec::new();
        for d in self.devices()? {
            let info = d.info()?;
            if info.serial == serial_or_label {
                return Ok(d);
            }
            if info.label == serial_or_label {
                by_label.push((info.serial, d));
            }
        }
        match by_label.len() {
            0 => {
                // A soft device whose file does not open is named by its file: say why.
                if backend_enabled(SOFT_BACKEND) {
                    for e in self.scan()? {
                        if let Err(err) = e.device
                            && e.path.file_stem().is_some_and(|s| s == serial_or_label)
                        {
                            return Err(err);
                        }
                    }
                }
                Err(Error::not_found(format!("device {serial_or_label:?}")))
            }
            1 => Ok(by_label.remove(0).1),
            _ => Err(Error::invalid_arg(format!(
                "several devices are labelled {serial_or_label:?}: {}; give a serial",
                by_label
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Every (device, application name) pair.
    pub fn apps(&self) -> Result<Vec<(Arc<dyn Device>, String)>> {
        let mut out = Vec::new();
        for d in self.devices()? {
            for a in d.list_apps()? {
                out.push((d.clone(), a));
            }
        }
        Ok(out)
    }

    /// The application (token) called `label`, or, with no label, the only one there is.
    /// Several matches are an error naming them.
    pub fn find_app(&self, label: Option<&str>) -> Result<(Arc<dyn Device>, String)> {
        let all = self.apps()?;
        let mut matches: Vec<_> = match label {
            Some(l) => all.into_iter().filter(|(_, a)| a == l).collect(),
            None => all,
        };
        match (matches.len(), label) {
            (1, _) => Ok(matches.remove(0)),
            (0, Some(l)) => Err(Error::not_found(format!("token {l:?}"))),
            (0, None) => Err(Error::not_found(format!(
                "token (no token in {}; create one with `ukey device init` and `ukey app create`)",
                self.data_dir().display()
            ))),
            (_, _) => {
                let names = matches
                    .iter()
                    .map(|(d, a)| {
                        d.info()
                            .map(|i| format!("{a} (device {})", i.serial))
                            .unwrap_or_else(|_| a.clone())
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(Error::invalid_arg(format!(
                    "several tokens: {names}; choose one with --token"
                )))
            }
        }
    }

    /// Makes sure an application `app` exists: reuses it where it is, else creates it
    /// with `params` on the first soft device, creating a soft device labelled
    /// [`DEFAULT_SOFT_LABEL`] when there is none. Creating the application authenticates
    /// with the default device-authentication key.
    pub fn ensure_app(&self, app: &str, params: &AppParams) -> Result<AppSetup> {
        for (device, name) in self.apps()? {
            if name == app {
                return Ok(AppSetup {
                    device,
                    app: name,
                    created_device: false,
                    created_app: false,
                });
            }
        }
        let (device, created_device) = match self.soft_devices()?.into_iter().next() {
            Some(d) => (d, false),
            None => (self.create_soft_device(DEFAULT_SOFT_LABEL)?, true),
        };
        device.authenticate_with_key(DEFAULT_DEV_AUTH_KEY)?;
        device.create_app(app, params)?;
        Ok(AppSetup {
            device,
            app: app.to_owned(),
            created_device,
            created_app: true,
        })
    }
}
