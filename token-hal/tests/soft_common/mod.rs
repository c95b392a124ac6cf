//! Helpers shared by the soft-token integration tests: fixtures, and re-running the test
//! binary as a child process (for kills, other users and resource limits).

#![allow(dead_code)]

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use token_hal::config::{Config, Env};
use token_hal::soft::{self, DEFAULT_DEV_AUTH_KEY, SoftDevice, SoftOptions};
use token_hal::{AppParams, Application, Device, PinType};

pub const ADMIN: &str = "admin-pin-7773";
pub const USER: &str = "user-pin-5551";
pub const GM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/gm-interop");
/// The environment variable that makes a test binary act as a child.
pub const ROLE_VAR: &str = "UKEY_SOFT_TEST_ROLE";

pub fn gm(name: &str) -> Vec<u8> {
    fs::read(Path::new(GM).join(name)).unwrap()
}

/// Cheap KDF so that tests run fast.
pub fn opts() -> SoftOptions {
    SoftOptions {
        kdf_iterations: 1000,
        busy_timeout: Duration::from_secs(20),
    }
}

/// The role this process plays, when it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// The environment as a map, for [`Config::resolve`].
struct MapEnv(Vec<(&'static str, OsString)>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<OsString> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

/// A config with `data_dir` and a cheap KDF, written to `<data_dir>.toml`.
pub fn config(data_dir: &Path) -> Config {
    let conf = data_dir.with_extension("toml");
    fs::write(
        &conf,
        format!(
            "data_dir = {:?}\n[soft]\nkdf_iterations = 1000\nbusy_timeout_ms = 20000\n",
            data_dir.to_str().unwrap()
        ),
    )
    .unwrap();
    let env = MapEnv(vec![("HOME", data_dir.as_os_str().to_owned())]);
    Config::resolve(&env, Some(&conf)).unwrap()
}

/// A device in `dir` with the application "app" (ADMIN / USER PINs).
pub fn new_token(dir: &Path) -> (PathBuf, Arc<SoftDevice>) {
    let path = soft::create_soft_device(dir, "test", &opts()).unwrap();
    let dev = soft::open_soft_device_with(&path, &opts()).unwrap();
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
    dev.create_app("app", &AppParams::new(ADMIN.into(), Some(USER.into())))
        .unwrap();
    (path, dev)
}

/// The application "app" with the user logged in.
pub fn user_app(dev: &SoftDevice) -> Arc<dyn Application> {
    let app = dev.open_app("app").unwrap();
    app.verify_pin(PinType::User, &USER.into()).unwrap();
    app
}

/// A command that runs test `test` of this binary as a child with `role`.
pub fn child(test: &str, role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null());
    c
}

/// The same, run through `prefix` (e.g. `setpriv ...`).
pub fn child_via(prefix: &[&str], test: &str, role: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut c = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    c.args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null());
    c
}

/// Waits for a line starting with `marker` on the child's stdout.
pub fn wait_for_line(child: &mut Child, marker: &str) -> Option<String> {
    let out = child.stdout.as_mut()?;
    let mut r = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line.starts_with(marker) {
            return Some(line.trim_end().to_owned());
        }
    }
}

/// `@@`-prefixed lines of a finished child's stdout.
pub fn report_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("@@"))
        .map(str::to_owned)
        .collect()
}

/// A random number below `n`.
pub fn random_below(n: u64) -> u64 {
    let b = token_hal::crypto::rng::random_bytes(8).unwrap();
    u64::from_le_bytes(b.try_into().unwrap()) % n
}

/// A prefix that runs a program without the capabilities that let root ignore file modes
/// (`setpriv`, else `capsh`); empty when not root, where file modes already apply.
/// `None` when neither tool is installed. `UKEY_TEST_USE_CAPSH` forces `capsh`.
pub fn drop_caps_prefix() -> Option<Vec<&'static str>> {
    if !is_root() {
        return Some(Vec::new());
    }
    let has = |p: &str| {
        Command::new(p)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if has("setpriv") && std::env::var_os("UKEY_TEST_USE_CAPSH").is_none() {
        Some(vec![
            "setpriv",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
    } else if has("capsh") {
        Some(vec![
            "capsh",
            "--drop=cap_dac_override,cap_dac_read_search,cap_fowner,cap_chown",
            "--",
            "-c",
            "exec \"$0\" \"$@\"",
        ])
    } else {
        None
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
