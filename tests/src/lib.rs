//! Shared helpers of the black-box tests in `tests/tests/`: where the built libraries and
//! binary are, and a throw-away data directory with a soft token.

use std::path::PathBuf;

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

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
