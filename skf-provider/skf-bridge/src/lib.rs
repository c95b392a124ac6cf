//! The vendor-SKF bridge: loads GM/T 0016 (SKF) libraries named in the configuration
//! (`[[skf_library]]`) and presents each device they list as a token-hal [`Device`], so
//! PKCS#11 and the CLI work on a vendor's SKF-only key.
//!
//! `library.rs` loads and resolves (lazily, typed through `skf_sys::fns`); `device.rs` and
//! `app.rs` implement the token-hal traits; `blob.rs` reads and writes the SKF blobs with
//! every length checked; `error.rs` maps `SAR_*` codes. All `unsafe` of this crate is the
//! FFI calls, each with a `// SAFETY:` comment. docs/skf-bridge.md has the mapping and the
//! vendor variations tolerated.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use token_hal::Result;
use token_hal::config::Config;
use token_hal::registry::{Backend, register_backend};
use token_hal::token::Device;

mod app;
mod blob;
mod device;
mod error;
mod library;

pub use app::{BridgeApp, cert_id, key_id};
pub use device::BridgeDevice;
pub use library::{REQUIRED, SELF_TEST_ENV, Sm2Ids, VendorLib};

/// The backend name in `UKEY_BACKENDS`.
pub const BACKEND_NAME: &str = "skf";

/// One configured library: loaded, or why not (logged once).
struct Loaded {
    lib: Arc<VendorLib>,
    /// Devices connected so far, by name, kept while they stay listed.
    devices: Mutex<HashMap<String, Arc<BridgeDevice>>>,
}

/// The `skf` backend: every `[[skf_library]]` of a configuration.
pub struct SkfBackend {
    libs: Vec<Loaded>,
}

impl std::fmt::Debug for SkfBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<_> = self.libs.iter().map(|l| l.lib.path().to_owned()).collect();
        write!(f, "SkfBackend({paths:?})")
    }
}

impl SkfBackend {
    /// Loads every library of `config`. A library that does not load is a warning and
    /// is left out, never an error.
    pub fn from_config(config: &Config) -> Self {
        let mut libs = Vec::new();
        for l in &config.skf_libraries {
            let ids = match l.sm2_ids.as_deref() {
                Some("legacy") => Some(Sm2Ids::Legacy),
                Some(_) => Some(Sm2Ids::Gmt2012),
                None => None,
            };
            match VendorLib::load(&l.path, ids, &config.data_dir) {
                Ok(lib) => {
                    tracing::info!(path = %l.path.display(), "vendor SKF library loaded");
                    libs.push(Loaded {
                        lib: Arc::new(lib),
                        devices: Mutex::new(HashMap::new()),
                    });
                }
                Err(e) => tracing::warn!(error = %e, "vendor SKF library skipped"),
            }
        }
        Self { libs }
    }

    /// A backend over one library (tests; the CLI's `--skf-library`).
    pub fn with_library(lib: VendorLib) -> Self {
        Self {
            libs: vec![Loaded {
                lib: Arc::new(lib),
                devices: Mutex::new(HashMap::new()),
            }],
        }
    }

    /// The loaded libraries' files.
    pub fn library_paths(&self) -> Vec<PathBuf> {
        self.libs.iter().map(|l| l.lib.path().to_owned()).collect()
    }

    /// The devices of every library, as bridge devices.
    pub fn bridge_devices(&self) -> Result<Vec<Arc<BridgeDevice>>> {
        let mut out = Vec::new();
        for l in &self.libs {
            match list_devices(l) {
                Ok(d) => out.extend(d),
                Err(e) => tracing::warn!(
                    path = %l.lib.path().display(),
                    error = %e,
                    "vendor SKF library: cannot list devices"
                ),
            }
        }
        Ok(out)
    }
}

fn list_devices(l: &Loaded) -> Result<Vec<Arc<BridgeDevice>>> {
    let f = sym!(l.lib, SKF_EnumDev)?;
    let buf = device::sized("SKF_EnumDev", 4096, device::MAX_OUT, |p, n| {
        // SAFETY: `sized` passes a buffer of `*n` bytes; bPresent TRUE lists the devices
        // present now.
        unsafe { f(skf_sys::TRUE, p, n) }
    })?;
    let names = blob::name_list(&buf);
    let mut cache = l.devices.lock().unwrap_or_else(PoisonError::into_inner);
    cache.retain(|name, _| names.contains(name));
    let mut out = Vec::new();
    for name in names {
        if let Some(d) = cache.get(&name) {
            out.push(d.clone());
            continue;
        }
        match BridgeDevice::connect(l.lib.clone(), &name) {
            Ok(d) => {
                let d = Arc::new(d);
                cache.insert(name, d.clone());
                out.push(d);
            }
            Err(e) => tracing::warn!(device = %name, error = %e, "vendor device skipped"),
        }
    }
    Ok(out)
}

impl Backend for SkfBackend {
    fn name(&self) -> &str {
        BACKEND_NAME
    }

    fn devices(&self) -> Result<Vec<Arc<dyn Device>>> {
        Ok(self
            .bridge_devices()?
            .into_iter()
            .map(|d| d as Arc<dyn Device>)
            .collect())
    }
}

/// Registers the `skf` backend over `config`'s libraries with token-hal's registry,
/// unless `UKEY_BACKENDS` excludes it or no library is configured. What the PKCS#11
/// module does at `C_Initialize` and the CLI at start.
pub fn register(config: &Config) {
    if config.skf_libraries.is_empty() || !token_hal::registry::backend_enabled(BACKEND_NAME) {
        return;
    }
    register_backend(Arc::new(SkfBackend::from_config(config)));
}
