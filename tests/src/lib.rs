//! Shared helpers of the black-box tests in `tests/tests/`: where the built libraries and
//! binary are, and a throw-away data directory with a soft token.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cargo target directory of this workspace.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// A built artifact of the current profile (`debug` unless `UKEY_TEST_PROFILE` says).
pub fn artifact(name: &str) -> PathBuf {
    let profile = std::env::var("UKEY_TEST_PROFILE").unwrap_or_else(|_| "debug".into());
    let p = target_dir().join(profile).join(name);
    assert!(
        p.exists(),
        "{} is not built; run `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// `libukey_pkcs11.so`.
pub fn pkcs11_lib() -> PathBuf {
    artifact("libukey_pkcs11.so")
}

/// `libukey_skf.so`.
pub fn skf_lib() -> PathBuf {
    artifact("libukey_skf.so")
}

/// The `ukey` binary.
pub fn ukey_bin() -> PathBuf {
    artifact("ukey")
}

/// Writes `dir/ukey.toml` for a test: the store in `dir/data`, the cheapest soft-token PIN
/// KDF, then `extra` (more TOML lines, in the `[soft]` section unless they open another).
/// Returns the file's path.
pub fn write_soft_conf(dir: &Path, extra: &str) -> PathBuf {
    let conf = dir.join("ukey.toml");
    std::fs::write(
        &conf,
        format!(
            "data_dir = \"{}\"\n[soft]\nkdf_iterations = 1000\n{extra}",
            dir.join("data").display()
        ),
    )
    .expect("write ukey.toml");
    conf
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The virtual USB key (`ukey sim`) inside a pcscd of its own, started with
/// `scripts/pcscd-vpcd.sh run` (which queues on a machine-wide lock, so concurrent runs
/// take turns). Both are stopped when this is dropped.
pub struct VirtualKeyInPcscd {
    /// One pcscd per machine: tests of one binary take turns here (other processes queue
    /// on scripts/pcscd-vpcd.sh's lock).
    _turn: std::sync::MutexGuard<'static, ()>,
    pcscd: std::process::Child,
    sim: std::process::Child,
    log: PathBuf,
    conf: PathBuf,
    state: PathBuf,
}

fn spawn_sim(
    conf: &std::path::Path,
    state: &std::path::Path,
    log: &std::path::Path,
) -> std::process::Child {
    use std::process::{Command, Stdio};
    Command::new(ukey_bin())
        .env("UKEY_CONF", conf)
        .arg("sim")
        .arg("--state")
        .arg(state)
        .arg("--apdu-log")
        .arg(log)
        .arg("--traffic-log")
        .arg(log.with_extension("traffic"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ukey sim")
}

fn vpcd_listening() -> bool {
    // vpcd's port 35963 = 0x8C7B in LISTEN state (0A), without connecting to it (a
    // connection would be taken for a card).
    std::fs::read_to_string("/proc/net/tcp")
        .map(|t| {
            t.lines().any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(":8C7B"))
                    && l.split_whitespace().nth(3) == Some("0A")
            })
        })
        .unwrap_or(false)
}

impl VirtualKeyInPcscd {
    /// Starts pcscd and the virtual key with its state in `state` and the configuration
    /// `conf`, and waits until the key is seen through PC/SC. None, with the reason
    /// printed, when pcscd or vsmartcard-vpcd is not installed.
    pub fn start(conf: &std::path::Path, state: &std::path::Path) -> Option<Self> {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        if !std::path::Path::new("/etc/reader.conf.d/vpcd").exists()
            || Command::new("pcscd").arg("--version").output().is_err()
        {
            eprintln!("skipped: pcscd or vsmartcard-vpcd is not installed");
            return None;
        }
        static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pcscd = Command::new(repo_root().join("scripts/pcscd-vpcd.sh"))
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pcscd-vpcd.sh");
        let deadline = Instant::now() + Duration::from_secs(600);
        while !vpcd_listening() {
            assert!(Instant::now() < deadline, "vpcd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = state.with_extension("apdu.log");
        let sim = spawn_sim(conf, state, &log);
        let me = Self {
            _turn: turn,
            pcscd,
            sim,
            log,
            conf: conf.to_path_buf(),
            state: state.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(ukey_bin())
                .env("UKEY_CONF", conf)
                .env("UKEY_BACKENDS", "pcsc")
                .args(["--json", "device", "list"])
                .output()
                .expect("ukey device list");
            if String::from_utf8_lossy(&out.stdout).contains("\"apdu\"") {
                return Some(me);
            }
            assert!(
                Instant::now() < deadline,
                "the virtual key never appeared in pcscd"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The virtual key's APDU log so far (JSON lines: headers, sizes, status words).
    pub fn served(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The raw bytes that crossed the reader so far (`ukey sim --traffic-log`): hex
    /// lines, "> " command, "< " response.
    pub fn traffic(&self) -> String {
        std::fs::read_to_string(self.log.with_extension("traffic")).unwrap_or_default()
    }

    /// PIN capture: none of `pins` appears in the bytes that crossed the reader (both
    /// ways), and commands did cross it. Panics otherwise.
    pub fn assert_pins_never_crossed(&self, pins: &[&str]) {
        let traffic = self.traffic();
        let mut lines = 0;
        for l in traffic.lines() {
            let (_, h) = l.split_once(' ').expect("traffic line");
            let bytes = hex::decode(h).expect("hex traffic");
            for pin in pins {
                assert!(
                    !bytes.windows(pin.len()).any(|w| w == pin.as_bytes()),
                    "PIN {pin} crossed the reader in clear: {l}"
                );
            }
            lines += 1;
        }
        assert!(lines > 20, "too little traffic logged ({lines} lines)");
    }

    /// Pulls the key: the simulator stops, as a key taken out of its port.
    pub fn pull(&mut self) {
        let _ = self.sim.kill();
        let _ = self.sim.wait();
    }

    /// Plugs the same key (its state kept) back in.
    pub fn insert(&mut self) {
        self.sim = spawn_sim(&self.conf, &self.state, &self.log);
    }

    /// Kills pcscd with SIGKILL, as a crash would (the key's connection to vpcd goes
    /// with it, so the simulator stops too). Its lock is released with it.
    pub fn kill_pcscd(&mut self) {
        let _ = self.pcscd.kill();
        let _ = self.pcscd.wait();
        let _ = self.sim.wait();
    }

    /// Starts pcscd again through scripts/pcscd-vpcd.sh (the same lock) and plugs the
    /// key back in once vpcd listens.
    pub fn restart_pcscd(&mut self) {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        self.pcscd = Command::new(repo_root().join("scripts/pcscd-vpcd.sh"))
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pcscd-vpcd.sh");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !vpcd_listening() {
            assert!(Instant::now() < deadline, "vpcd did not start again");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.insert();
    }
}

impl Drop for VirtualKeyInPcscd {
    fn drop(&mut self) {
        let _ = self.sim.kill();
        let _ = self.sim.wait();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pcscd.id().to_string()])
            .status();
        let _ = self.pcscd.wait();
    }
}

/// Waits for a child test process (the test binary run again for one `#[ignore]`d test,
/// stdout and stderr piped) until `deadline`, and returns its output. Panics, with that
/// output, when it hangs past the deadline (killing it), fails, or did not run the one
/// test.
pub fn finish_child(mut child: std::process::Child, deadline: Instant, test: &str) -> String {
    while child.try_wait().expect("wait for the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("the child's output");
            panic!(
                "{test} hung:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("the child's output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{test} failed:\n{text}"
    );
    text
}
