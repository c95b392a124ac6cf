//! Loading a vendor's GM/T 0016 library: the recursion guard, the required symbols, and
//! lazy typed resolution of every other one. This module and the call sites in
//! `device.rs`/`app.rs` are the bridge's only `unsafe` code.

use std::path::{Path, PathBuf};

use token_hal::{Error, Result};

/// Symbols without which a library is not loaded: enough to list devices, open their
/// applications and log in. Every other symbol is optional; a missing one makes the
/// operation that needs it `Unsupported`.
pub const REQUIRED: &[&str] = &[
    "SKF_EnumDev",
    "SKF_ConnectDev",
    "SKF_DisConnectDev",
    "SKF_GetDevInfo",
    "SKF_EnumApplication",
    "SKF_OpenApplication",
    "SKF_CloseApplication",
    "SKF_VerifyPIN",
];

/// The data symbol ukey's own `libukey_skf.so` exports to be recognised.
const UKEY_MARKER: &str = "UKEY_SKF_PROVIDER";

/// The test mode (docs/skf-bridge.md): the data directory ukey's own `libukey_skf.so` uses
/// instead of the configured one. Only when it is set, and differs from the data
/// directory of the process loading the bridge, does the bridge load ukey's library.
pub const SELF_TEST_ENV: &str = "UKEY_SKF_DATA_DIR";

/// Which SM2 algorithm IDs the library speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sm2Ids {
    /// GM/T 0006-2012: SGD_SM2_1 = 0x00020200.
    Gmt2012,
    /// Older SKF headers: SGD_SM2_1 = 0x00020100.
    Legacy,
}

impl Sm2Ids {
    /// The ID of SM2 signing (what `SKF_GenECCKeyPair` takes).
    pub fn sign_id(self) -> u32 {
        match self {
            Self::Gmt2012 => skf_sys::SGD_SM2_1,
            Self::Legacy => skf_sys::SGD_SM2_1_LEGACY,
        }
    }
    /// The other reading.
    pub fn other(self) -> Self {
        match self {
            Self::Gmt2012 => Self::Legacy,
            Self::Legacy => Self::Gmt2012,
        }
    }
    /// The reading a device's `AlgAsymCap` suggests: the 2012 set has SGD_SM2_3 =
    /// 0x00020800, which no legacy ID uses; a legacy device advertises at most 0x00020700.
    pub fn guess(alg_asym_cap: u32) -> Self {
        let sm2_bits = if alg_asym_cap & 0x0002_0000 != 0 {
            alg_asym_cap & 0x0F00
        } else {
            0
        };
        if sm2_bits & 0x0800 != 0 || sm2_bits == 0 {
            Self::Gmt2012
        } else {
            Self::Legacy
        }
    }
}

/// A loaded vendor library.
pub struct VendorLib {
    /// Never unloaded: a library that registered thread-local destructors (ukey's own
    /// does, many vendors' do) crashes the process at thread exit once unmapped.
    lib: std::mem::ManuallyDrop<libloading::Library>,
    path: PathBuf,
    /// The SM2 ID set from the config, if given.
    pub sm2_ids: Option<Sm2Ids>,
    /// The set found to work at run time (after a fallback).
    learned: std::sync::Mutex<Option<Sm2Ids>>,
}

impl std::fmt::Debug for VendorLib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VendorLib({})", self.path.display())
    }
}

impl VendorLib {
    /// Loads `path`. Refuses ukey's own SKF library unless the test mode gives it its own
    /// data directory (`own_data_dir` is the loading process's), and any library that
    /// lacks a [`REQUIRED`] symbol.
    pub fn load(path: &Path, sm2_ids: Option<Sm2Ids>, own_data_dir: &Path) -> Result<Self> {
        let fail = |detail: String| Error::Config {
            path: path.to_path_buf(),
            detail,
        };
        if path.file_name().is_some_and(|n| n == "libukey_skf.so") {
            self_test_mode(own_data_dir).map_err(fail)?;
        }
        // SAFETY: loading a library runs its initialisers. The path comes from the
        // administrator's config (`[[skf_library]]`), which is trusted to name a GM/T 0016
        // library; nothing else is loaded.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| fail(format!("cannot load: {e}")))?;
        let this = Self {
            lib: std::mem::ManuallyDrop::new(lib),
            path: path.to_path_buf(),
            sm2_ids,
            learned: std::sync::Mutex::new(None),
        };
        if this.has(UKEY_MARKER) {
            let dir = self_test_mode(own_data_dir).map_err(fail)?;
            this.give_test_data_dir(&dir).map_err(fail)?;
        }
        let missing: Vec<&str> = REQUIRED.iter().copied().filter(|s| !this.has(s)).collect();
        if !missing.is_empty() {
            return Err(fail(format!(
                "not a usable GM/T 0016 library: missing {}",
                missing.join(", ")
            )));
        }
        Ok(this)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the library exports `name`.
    pub fn has(&self, name: &str) -> bool {
        let mut sym = name.as_bytes().to_vec();
        sym.push(0);
        // SAFETY: the symbol is looked up as an opaque address and never used.
        unsafe { self.lib.get::<*const ()>(sym.as_slice()) }.is_ok()
    }

    /// Resolves `name` as a function of type `T`.
    ///
    /// # Safety
    /// `T` must be the function-pointer type of `name`'s prototype in include/skf.h
    /// (the [`sym!`](crate::sym) macro pairs them from `skf_sys::fns`).
    pub unsafe fn resolve<T: Copy>(&self, name: &str) -> Result<T> {
        let mut sym = name.as_bytes().to_vec();
        sym.push(0);
        // SAFETY: `T` matches the prototype (the caller's contract); the function pointer
        // is used only while `self` (the library) is alive, as every caller holds it.
        let f = unsafe { self.lib.get::<T>(sym.as_slice()) }
            .map_err(|_| Error::unsupported(format!("{name} (absent from the vendor library)")))?;
        Ok(*f)
    }

    /// The SM2 ID set in use: configured, else learned, else guessed from the caps.
    pub fn sm2_ids(&self, alg_asym_cap: u32) -> Sm2Ids {
        if let Some(s) = self.sm2_ids {
            return s;
        }
        let learned = *self
            .learned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        learned.unwrap_or_else(|| Sm2Ids::guess(alg_asym_cap))
    }

    /// Records the SM2 ID set that worked.
    pub fn learn_sm2_ids(&self, ids: Sm2Ids) {
        *self
            .learned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ids);
    }
}

impl VendorLib {
    /// Gives ukey's own library (this copy of it) its data directory, before any SKF call.
    fn give_test_data_dir(&self, dir: &Path) -> std::result::Result<(), String> {
        use std::os::unix::ffi::OsStrExt;
        type SetDir = unsafe extern "C" fn(*const std::ffi::c_char) -> u32;
        let refused = || {
            format!(
                "this copy of libukey_skf.so is already serving this process (a process \
                 bridging ukey's own library needs a copy of the file for the bridge: \
                 {SELF_TEST_ENV})"
            )
        };
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| format!("{SELF_TEST_ENV} holds a NUL"))?;
        // SAFETY: ukey's own library (its marker found) exports this function with this
        // prototype (skf-provider/src/ffi/device.rs).
        let f = unsafe { self.resolve::<SetDir>("UKEY_SKF_SetTestDataDir") }
            .map_err(|e| e.to_string())?;
        // SAFETY: a NUL-terminated path that outlives the call.
        match unsafe { f(c.as_ptr()) } {
            0 => Ok(()),
            _ => Err(refused()),
        }
    }
}

/// Whether ukey's own library may be loaded: only in the test mode, with a data
/// directory of its own (returned).
fn self_test_mode(own_data_dir: &Path) -> std::result::Result<PathBuf, String> {
    let Some(dir) = std::env::var_os(SELF_TEST_ENV).filter(|v| !v.is_empty()) else {
        return Err(format!(
            "this is ukey's own libukey_skf.so; bridging it would list ukey's devices twice \
             (and recurse). Only tests load it, with {SELF_TEST_ENV} set to a data directory \
             of its own"
        ));
    };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canon(Path::new(&dir)) == canon(own_data_dir) {
        return Err(format!(
            "{SELF_TEST_ENV} is this process's own data directory; give libukey_skf.so another"
        ));
    }
    Ok(PathBuf::from(dir))
}

/// Resolves an SKF function of `lib` with its type from `skf_sys::fns`:
/// `sym!(lib, SKF_EnumDev)` is a `Result<skf_sys::fns::SKF_EnumDev>`.
#[macro_export]
macro_rules! sym {
    ($lib:expr, $name:ident) => {{
        let lib: &$crate::VendorLib = &$lib;
        // SAFETY: the type is the one skf-sys declares for the symbol of the same name.
        unsafe { lib.resolve::<skf_sys::fns::$name>(stringify!($name)) }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm2_id_set_is_guessed_from_the_caps() {
        assert_eq!(Sm2Ids::guess(0x0002_0F00), Sm2Ids::Gmt2012);
        assert_eq!(Sm2Ids::guess(0x0002_0700), Sm2Ids::Legacy);
        assert_eq!(Sm2Ids::guess(0x0002_0100), Sm2Ids::Legacy);
        assert_eq!(Sm2Ids::guess(skf_sys::SGD_RSA), Sm2Ids::Gmt2012);
        assert_eq!(Sm2Ids::Legacy.sign_id(), 0x0002_0100);
        assert_eq!(Sm2Ids::Gmt2012.sign_id(), 0x0002_0200);
    }

    #[test]
    fn a_missing_library_is_a_config_error_naming_it() {
        let e = VendorLib::load(
            Path::new("/nonexistent/libvendor.so"),
            None,
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("libvendor.so"), "{e}");
    }
}
