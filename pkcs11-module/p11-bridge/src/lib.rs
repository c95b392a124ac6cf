//! The PKCS#11 bridge backend: third-party PKCS#11 modules (SoftHSM2, a vendor's
//! `.so`) presented as token-hal devices, so the SKF face (and the CLI) work on top of
//! PKCS#11 tokens. docs/bridges.md says what maps to what and where the limits are.
//!
//! Each module named by a `[[pkcs11_library]]` table of the configuration is loaded
//! once per process through the `cryptoki` crate (which holds all the FFI), and each
//! initialised token of its slots becomes one [`Device`] with one application named by
//! the token label. A module that does not load is a warning, never an error, and
//! ukey's own `libukey_pkcs11.so` is refused (by file name and by the module's
//! manufacturer id) so that the two faces never load each other in a loop.

#![forbid(unsafe_code)]

mod app;
mod convert;
mod device;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use token_hal::config::{Config, Pkcs11LibraryConfig};
use token_hal::registry::{Backend, register_backend};
use token_hal::token::Device;
use token_hal::{Error, Result};

pub use device::P11Device;

/// The backend's name in `UKEY_BACKENDS`.
pub const BACKEND_NAME: &str = "pkcs11";

/// The manufacturer id ukey's own PKCS#11 module reports in `C_GetInfo`.
const UKEY_MANUFACTURER: &str = "ukey";

/// One loaded and initialised module, shared by every device of it.
pub(crate) struct Module {
    /// The cryptoki context.
    pub(crate) ctx: Pkcs11,
    /// `C_GetInfo` manufacturer id, the device's issuer.
    pub(crate) manufacturer: String,
}

/// Modules loaded by this process, by canonical path. A PKCS#11 module is initialised
/// once per process, so every backend and device shares these.
static MODULES: Mutex<Option<HashMap<PathBuf, Arc<Module>>>> = Mutex::new(None);

/// Whether `path` names ukey's own PKCS#11 module (`libukey_pkcs11.so`, any suffix).
fn is_ukey_module(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("ukey_pkcs11"))
}

/// Loads (once) and initialises the module at `path`.
pub(crate) fn load_module(path: &Path) -> Result<Arc<Module>> {
    let canonical = std::fs::canonicalize(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if is_ukey_module(path) || is_ukey_module(&canonical) {
        return Err(Error::invalid_arg(format!(
            "{}: refusing to bridge ukey's own PKCS#11 module",
            path.display()
        )));
    }
    let mut guard = MODULES.lock().unwrap_or_else(PoisonError::into_inner);
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(m) = map.get(&canonical) {
        return Ok(m.clone());
    }
    let ctx = Pkcs11::new(&canonical).map_err(|e| {
        Error::Device(format!(
            "{}: cannot load PKCS#11 module: {e}",
            canonical.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(Error::Device(format!(
                "{}: C_Initialize failed: {e}",
                canonical.display()
            )));
        }
    }
    let info = ctx
        .get_library_info()
        .map_err(|e| Error::Device(format!("{}: C_GetInfo failed: {e}", canonical.display())))?;
    let manufacturer = info.manufacturer_id().trim().to_owned();
    if manufacturer == UKEY_MANUFACTURER {
        // Loaded by another name: leave it initialised (finalising could disturb a
        // host that uses it directly) but never bridge it.
        return Err(Error::invalid_arg(format!(
            "{}: refusing to bridge ukey's own PKCS#11 module",
            canonical.display()
        )));
    }
    tracing::info!(path = %canonical.display(), manufacturer, "loaded PKCS#11 module");
    let module = Arc::new(Module { ctx, manufacturer });
    map.insert(canonical, module.clone());
    Ok(module)
}

/// Loads (once per process) and initialises the module at `path`, as the backend would,
/// and returns its `C_GetInfo` manufacturer id. For diagnostics: the same refusals and
/// errors apply (ukey's own module, a file that is not a PKCS#11 module).
pub fn probe(path: &Path) -> Result<String> {
    load_module(path).map(|m| m.manufacturer.clone())
}

/// The `pkcs11` backend: the tokens of the configured third-party modules.
pub struct Pkcs11Backend {
    libraries: Vec<Pkcs11LibraryConfig>,
}

impl Pkcs11Backend {
    /// A backend over these `[[pkcs11_library]]` entries.
    pub fn new(libraries: Vec<Pkcs11LibraryConfig>) -> Self {
        Self { libraries }
    }

    /// The devices of one library entry.
    fn library_devices(&self, lib: &Pkcs11LibraryConfig) -> Result<Vec<Arc<dyn Device>>> {
        let module = load_module(&lib.path)?;
        let slots = module
            .ctx
            .get_slots_with_token()
            .map_err(convert::p11_error)?;
        let mut out: Vec<Arc<dyn Device>> = Vec::new();
        for slot in slots {
            if lib.slots.as_ref().is_some_and(|s| !s.contains(&slot.id())) {
                continue;
            }
            let info = match module.ctx.get_token_info(slot) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(slot = slot.id(), error = %e, "skipping PKCS#11 slot");
                    continue;
                }
            };
            // An uninitialised token (SoftHSM2 always offers one) has no application.
            if !info.token_initialized() {
                continue;
            }
            if lib
                .token_label
                .as_ref()
                .is_some_and(|l| l.trim() != info.label().trim())
            {
                continue;
            }
            out.push(Arc::new(P11Device::new(module.clone(), slot)));
        }
        Ok(out)
    }
}

impl Backend for Pkcs11Backend {
    fn name(&self) -> &str {
        BACKEND_NAME
    }

    fn devices(&self) -> Result<Vec<Arc<dyn Device>>> {
        let mut out = Vec::new();
        for lib in &self.libraries {
            match self.library_devices(lib) {
                Ok(d) => out.extend(d),
                Err(err) => {
                    tracing::warn!(path = %lib.path.display(), error = %err, "skipping PKCS#11 library");
                }
            }
        }
        Ok(out)
    }
}

/// Registers the `pkcs11` backend for the `[[pkcs11_library]]` entries of `config`
/// (nothing when there are none). What the SKF library and the CLI call at start.
pub fn register(config: &Config) {
    if config.pkcs11_libraries.is_empty() {
        return;
    }
    register_backend(Arc::new(Pkcs11Backend::new(
        config.pkcs11_libraries.clone(),
    )));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_module_is_refused_by_name() {
        assert!(is_ukey_module(Path::new("/usr/lib/libukey_pkcs11.so")));
        assert!(is_ukey_module(Path::new(
            "target/debug/libukey_pkcs11.so.0"
        )));
        assert!(!is_ukey_module(Path::new(
            "/usr/lib/softhsm/libsofthsm2.so"
        )));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("libukey_pkcs11.so");
        std::fs::write(&p, b"not a library").unwrap();
        let e = load_module(&p).err().unwrap();
        assert!(e.to_string().contains("refusing"), "{e}");
        // A symlink with an innocent name is resolved first.
        let link = dir.path().join("libinnocent.so");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let e = load_module(&link).err().unwrap();
        assert!(e.to_string().contains("refusing"), "{e}");
    }

    #[test]
    fn missing_module_is_an_error_naming_it_and_the_backend_skips_it() {
        let e = load_module(Path::new("/nonexistent/libvendor.so"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/libvendor.so"), "{e}");
        let b = Pkcs11Backend::new(vec![Pkcs11LibraryConfig {
            path: "/nonexistent/libvendor.so".into(),
            slots: None,
            token_label: None,
        }]);
        assert!(b.devices().unwrap().is_empty());
    }
}
