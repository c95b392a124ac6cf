//! Shared helpers for the `ukey` black-box tests: a private data directory and config per
//! test, running the built binary, and OpenSSL for cross-checks.

#![allow(dead_code, clippy::unwrap_used)] // helpers shared by several test crates; tests may unwrap

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// The admin PIN the tests give new tokens.
pub const SO_PIN: &str = "12345678";
/// The user PIN the tests give new tokens.
pub const PIN: &str = "123456";

/// The GM interop vectors.
pub fn gm(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/gm-interop")
        .join(name)
}

/// A test environment: its own data directory, config (low KDF cost) and HOME.
pub struct Env {
    pub dir: TempDir,
}

/// What a run printed.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ukey.toml"),
            "[soft]\nkdf_iterations = 1000\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Self { dir }
    }

    /// A file in the work directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The `ukey` command with this environment.
    pub fn cmd(&self) -> Command {
        self.cmd_of(Path::new(env!("CARGO_BIN_EXE_ukey")))
    }

    /// Any program (the binary, or a link to it) with this environment.
    pub fn cmd_of(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        let home = self.dir.path().join("home");
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("UKEY_DATA_DIR", self.data_dir())
            .env("UKEY_CONF", self.dir.path().join("ukey.toml"))
            .current_dir(self.dir.path().join("work"))
            .stdin(Stdio::null());
        c
    }

    /// Runs `ukey ARGS`.
    pub fn run(&self, args: &[&str]) -> Out {
        output(self.cmd().args(args).output().unwrap())
    }

    /// Runs `ukey ARGS` and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.code,
            Some(0),
            "ukey {args:?} failed\nstdout: {}\nstderr: {}",
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    /// Runs `ukey ARGS` and expects failure with one `ukey: ...` line; returns that line.
    pub fn fail(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_ne!(o.code, Some(0), "ukey {args:?} succeeded: {}", o.stdout);
        let lines: Vec<&str> = o.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "want one stderr line, got {:?}", o.stderr);
        assert!(lines[0].starts_with("ukey: "), "{:?}", lines[0]);
        lines[0].to_owned()
    }

    /// Runs with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let s = self.ok(&a);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}\n{s}"))
    }

    /// A soft device with one application `label` (user PIN [`PIN`], admin PIN [`SO_PIN`]).
    pub fn token(&self, label: &str) {
        let devs = self.json(&["device", "list"]);
        if devs.as_array().unwrap().is_empty() {
            self.ok(&["device", "init", "--label", "test-dev"]);
        }
        self.ok(&[
            "app",
            "create",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
            "--retries",
            "5",
        ]);
    }

    /// A token `t` with an SM2 signing key pair (and certificate) in container `c`.
    pub fn sm2_container(&self) {
        self.token("t");
        self.ok(&[
            "--pin",
            PIN,
            "key",
            "gen",
            "--alg",
            "sm2",
            "--container",
            "c",
        ]);
    }

    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

pub fn output(o: Output) -> Out {
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw_stdout: o.stdout,
    }
}

/// Runs OpenSSL in `dir`; panics with its output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed for the cross-checks (scripts/setup.sh)");
    assert!(
        o.status.success(),
        "openssl {args:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Colon-free upper-case hex of a fingerprint line `X Fingerprint=AB:CD...` or `...= abcd`.
pub fn hex_of(line: &str) -> String {
    let v = line.rsplit(['=', ' ']).next().unwrap_or("");
    v.trim().replace(':', "").to_uppercase()
}
