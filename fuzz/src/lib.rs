//! Shared pieces of the fuzz targets: scratch directories, a soft token with known PINs
//! that is put back in shape between inputs, and a byte reader that turns fuzz input into
//! choices. `p11` and `skf` interpret inputs as call sequences against the C entry points.

pub mod p11;
pub mod skf;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use token_hal::model::{AppParams, Pin, PinType};
use token_hal::soft::{self, DEFAULT_DEV_AUTH_KEY, SoftOptions};
use token_hal::{Application, Device};

/// The application (PKCS#11 token label) every call-sequence fuzzer works on.
pub const APP: &str = "fuzz";
/// Its admin (SO) PIN.
pub const SO_PIN: &[u8] = b"12345678";
/// Its user PIN.
pub const USER_PIN: &[u8] = b"123456";

/// A fresh directory for this process: `$UKEY_FUZZ_TMP/<what>-<pid>`, else under `/dev/shm`
/// (every store write is an fsync: a tmpfs makes them free) or the system temp dir; emptied
/// first.
pub fn scratch_dir(what: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = std::env::var_os("UKEY_FUZZ_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            }
        });
    let d = base.join(format!("ukey-fuzz-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a scratch directory");
    d
}

/// Soft-token settings with the cheapest PIN KDF the config allows.
pub fn fast_opts() -> SoftOptions {
    SoftOptions {
        kdf_iterations: 1000,
        ..SoftOptions::default()
    }
}

fn params() -> AppParams {
    AppParams::new(Pin::new(SO_PIN), Some(Pin::new(USER_PIN)))
}

/// Creates a soft device in `dir` holding [`APP`] with the known PINs; returns its
/// database path and the device.
pub fn make_token(dir: &Path, label: &str) -> (PathBuf, Arc<soft::SoftDevice>) {
    let db = soft::create_soft_device(dir, label, &fast_opts()).expect("a soft device");
    let dev = soft::open_soft_device_with(&db, &fast_opts()).expect("open the soft device");
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY)
        .expect("device authentication");
    dev.create_app(APP, &params())
        .expect("the fuzz application");
    (db, dev)
}

/// The setting of an in-process library run (the call-sequence interpreters): a scratch
/// directory `what`, a token in its `data`, and a `ukey.toml` naming that directory, put in
/// the environment with only the soft backend and no log. Returns the directory and the
/// device. Call once, before the library runs, while the fuzzer is single-threaded.
pub fn library_env(what: &str) -> (PathBuf, Arc<soft::SoftDevice>) {
    let dir = scratch_dir(what);
    let data = dir.join("data");
    let (_, dev) = make_token(&data, "fuzzdev");
    let conf = dir.join("ukey.toml");
    std::fs::write(
        &conf,
        format!(
            "data_dir = \"{}\"\n[soft]\nkdf_iterations = 1000\n",
            data.display()
        ),
    )
    .expect("write the config");
    // SAFETY: the caller's contract: no other thread reads the environment yet.
    unsafe {
        std::env::set_var("UKEY_CONF", &conf);
        std::env::set_var("UKEY_BACKENDS", "soft");
        std::env::remove_var("UKEY_DATA_DIR");
        std::env::remove_var("UKEY_LOG");
    }
    (dir, dev)
}

/// Puts the device back to one empty [`APP`] with the known PINs, whatever the last input
/// did to it (other applications deleted, PINs reset, containers/files/objects wiped).
pub fn reset_token(dev: &dyn Device) {
    if let Ok(names) = dev.list_apps() {
        for n in names.iter().filter(|n| *n != APP) {
            let _ = dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY);
            let _ = dev.delete_app(n);
        }
    }
    let so = Pin::new(SO_PIN);
    let wiped = dev.open_app(APP).and_then(|app| {
        app.wipe(&so)?;
        app.verify_pin(PinType::Admin, &so)?;
        app.init_user_pin(&Pin::new(USER_PIN))?;
        app.logout();
        Ok(())
    });
    if wiped.is_err() {
        dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY)
            .expect("device authentication (the fuzzers never change the key)");
        let _ = dev.delete_app(APP);
        dev.create_app(APP, &params())
            .expect("recreate the fuzz application");
    }
    let app: Arc<dyn Application> = dev.open_app(APP).expect("the fuzz application");
    app.logout();
}

/// Reads choices out of fuzz input; past the end everything is zero.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
    /// Whether the input is used up.
    pub fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// One byte.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    /// A big-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    /// A big-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// A boolean.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    /// Up to `max` bytes, the count read first (one byte, or two when `max` > 255).
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = if max > 255 {
            usize::from(self.u16())
        } else {
            usize::from(self.u8())
        } % (max + 1);
        let end = (self.pos + n).min(self.data.len());
        let v = self.data.get(self.pos..end).unwrap_or(&[]).to_vec();
        self.pos += n;
        v
    }
    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.u8()) % items.len()]
    }
}
