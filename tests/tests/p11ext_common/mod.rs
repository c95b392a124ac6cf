//! Helpers shared by the external-client tests (`pkcs11_tool.rs`, `pkcs11_integration.rs`,
//! `pkcs11_softhsm_conf.rs`): throw-away token stores, running external tools with an
//! environment that points the module at them, and re-running a test binary as a child
//! so a client that loads the module in-process sees only its own environment.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ukey_tests::{pkcs11_lib, ukey_bin};

/// SO PIN of the tokens these tests make.
pub const SO_PIN: &str = "12345678";
/// User PIN of the tokens these tests make.
pub const PIN: &str = "123456";
/// Seconds an external tool may run before it is killed (a hang is a failure, not a stall).
pub const TOOL_TIMEOUT_S: u32 = 120;

/// Panics, naming the package, when `tool` cannot be run.
pub fn require_tool(tool: &str, package: &str) {
    let runs = |arg: &str| {
        Command::new(tool)
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .is_ok()
    };
    if !runs("--help") && !runs("-help") {
        panic!(
            "{tool} is missing: run scripts/setup.sh (Debian package {package}); CI installs it"
        );
    }
}

/// A temporary token store with its own `ukey.toml` (low KDF cost) and an empty HOME, so
/// no user configuration leaks in.
pub struct Store {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
}

impl Store {
    pub fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let conf = ukey_tests::write_soft_conf(dir.path(), "");
        Store { dir, conf }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command whose environment selects this store and nothing else, with stdin closed
    /// (no tool may wait for a prompt) and killed after [`TOOL_TIMEOUT_S`] seconds.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = tool(program, &self.path().join("home"));
        c.env("UKEY_CONF", &self.conf);
        c
    }

    /// The `ukey` CLI on this store.
    pub fn ukey(&self, args: &[&str]) -> Output {
        let out = self.cmd(ukey_bin()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ukey {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A new initialised token `label` (SO PIN [`SO_PIN`], user PIN [`PIN`]).
    pub fn init_token(&self, label: &str) {
        self.ukey(&[
            "softhsm",
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
        ]);
    }

    /// The PKCS#11 slot id of token `label`, as `ukey --json app list` reports it.
    pub fn slot_of(&self, label: &str) -> u64 {
        let out = self.ukey(&["--json", "app", "list"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .expect("a JSON array of applications")
            .iter()
            .find(|a| a["name"].as_str() == Some(label))
            .and_then(|a| a["slot"].as_u64())
            .unwrap_or_else(|| panic!("no token {label} in {v}"))
    }

    /// `pkcs11-tool --module libukey_pkcs11.so ARGS` on this store; returns (success, stdout+stderr).
    pub fn pkcs11_tool(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .cmd("pkcs11-tool")
            .arg("--module")
            .arg(pkcs11_lib())
            .args(args)
            .output()
            .unwrap();
        (out.status.success(), both(&out))
    }
}

/// `program` with a cleaned environment (see [`clean_env`]), stdin closed and a time limit of
/// [`TOOL_TIMEOUT_S`] seconds.
pub fn tool(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut c = Command::new("timeout");
    c.args(["--kill-after=5", &TOOL_TIMEOUT_S.to_string()])
        .arg(program)
        .stdin(Stdio::null());
    clean_env(&mut c, home);
    c
}

/// Removes every variable that selects a token store or configuration, and sets HOME.
pub fn clean_env(c: &mut Command, home: &Path) {
    for v in [
        "UKEY_CONF",
        "UKEY_DATA_DIR",
        "SOFTHSM2_CONF",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "UKEY_PIN",
        "UKEY_LOG",
        "UKEY_TEST_CHILD",
    ] {
        c.env_remove(v);
    }
    c.env("HOME", home);
}

/// stdout followed by stderr, lossily decoded, and a note when `timeout` killed the tool.
pub fn both(out: &Output) -> String {
    let killed = match out.status.code() {
        Some(124) | Some(137) => format!("\n[killed: no answer within {TOOL_TIMEOUT_S} s]\n"),
        _ => String::new(),
    };
    format!(
        "{}{}{killed}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs test `name` of the current test binary as a child with `UKEY_TEST_CHILD=name` and
/// the environment `envs` (on top of a cleaned one); returns (success, output).
pub fn run_child(name: &str, home: &Path, envs: &[(&str, &OsStr)]) -> (bool, String) {
    let mut c = tool(std::env::current_exe().unwrap(), home);
    c.env("UKEY_TEST_CHILD", name)
        .env("RUST_BACKTRACE", "0")
        .args(["--exact", name, "--nocapture", "--test-threads", "1"]);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (out.status.success(), both(&out))
}

/// True in the child started by [`run_child`] for `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var("UKEY_TEST_CHILD").as_deref() == Ok(name)
}
