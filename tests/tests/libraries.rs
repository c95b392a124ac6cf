//! The built libraries load and answer through real clients: the `cryptoki` crate,
//! `pkcs11-tool`, `libloading`, and a C program compiled against include/skf.h.
//!
//! Each test runs against its own data directory holding one soft token made through
//! the `ukey` binary, and runs its client in a child process or sets the environment
//! before the library reads it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use ukey_tests::{pkcs11_lib, repo_root, skf_lib, ukey_bin};

/// Makes a data dir with one soft token labelled `label`; returns its config file.
fn data_dir_with_token(dir: &Path, label: &str) -> std::path::PathBuf {
    let conf = ukey_tests::write_soft_conf(dir, "");
    let out = Command::new(ukey_bin())
        .env("UKEY_CONF", &conf)
        .env_remove("UKEY_DATA_DIR")
        .args(["softhsm", "--init-token", "--free", "--label", label])
        .args(["--so-pin", "12345678", "--pin", "123456"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init-token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    conf
}

fn expected_slot(conf: &Path, label: &str) -> u64 {
    let out = Command::new(ukey_bin())
        .env("UKEY_CONF", conf)
        .args(["--json", "device", "list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let devices = v.as_array().expect("a JSON array of devices");
    let serial = devices[0]["serial"].as_str().unwrap();
    let ts = token_hal::slot::token_serial(serial, label);
    u64::from(token_hal::slot::slot_id(&ts))
}

#[test]
fn pkcs11_module_through_cryptoki() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = data_dir_with_token(tmp.path(), "bids");
    let slot = expected_slot(&conf, "bids");
    // The module reads UKEY_CONF at C_Initialize. This is the only test of this binary
    // that loads the PKCS#11 module in-process.
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("UKEY_CONF", &conf) };

    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    let p11 = Pkcs11::new(pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let info = p11.get_library_info().unwrap();
    assert_eq!(info.manufacturer_id(), "ukey");
    // The soft token, plus the module's free slot for C_InitToken.
    let slots = p11.get_slots_with_token().unwrap();
    let ours = slots
        .iter()
        .find(|s| s.id() == slot)
        .expect("the token's stable slot ID");
    let ti = p11.get_token_info(*ours).unwrap();
    assert_eq!(ti.label(), "bids");
    assert!(ti.user_pin_initialized());
    assert!(ti.login_required());
    assert_eq!(ti.serial_number().len(), 16);
    // A slot that does not exist.
    p11.finalize().unwrap();
}

#[test]
fn pkcs11_tool_lists_the_token() {
    if Command::new("pkcs11-tool").arg("--help").output().is_err() {
        panic!("pkcs11-tool is missing: run scripts/setup.sh (package opensc)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let conf = data_dir_with_token(tmp.path(), "tender");
    let slot = expected_slot(&conf, "tender");
    let out = Command::new("pkcs11-tool")
        .env("UKEY_CONF", &conf)
        .arg("--module")
        .arg(pkcs11_lib())
        .arg("--list-slots")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("token label        : tender"), "{text}");
    assert!(
        text.contains(&format!("(0x{slot:x})")),
        "slot 0x{slot:x} not in {text}"
    );
}

#[test]
fn skf_enum_dev_through_libloading() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = data_dir_with_token(tmp.path(), "bids");
    // Run in a child so the library's one-time configuration sees this UKEY_CONF.
    let out = Command::new(std::env::current_exe().unwrap())
        .env("UKEY_CONF", &conf)
        .env("UKEY_TEST_CHILD", "skf_enum")
        .args(["--exact", "skf_enum_child", "--nocapture"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("SKF devices: [\""), "{text}");
}

/// Runs only as the child of `skf_enum_dev_through_libloading`.
#[test]
fn skf_enum_child() {
    if std::env::var("UKEY_TEST_CHILD").as_deref() != Ok("skf_enum") {
        return;
    }
    type EnumDev = unsafe extern "C" fn(i32, *mut u8, *mut u32) -> u32;
    // SAFETY: loading our own library, which has no initialisers with preconditions.
    let lib = unsafe { libloading::Library::new(skf_lib()) }.unwrap();
    // SAFETY: the symbol has the GM/T 0016 prototype declared in include/skf.h.
    let enum_dev: libloading::Symbol<EnumDev> = unsafe { lib.get(b"SKF_EnumDev") }.unwrap();
    let mut len: u32 = 0;
    // SAFETY: NULL buffer with a valid length pointer is the size query.
    let rv = unsafe { enum_dev(1, std::ptr::null_mut(), &mut len) };
    assert_eq!(rv, 0);
    assert!(len > 2);
    // A short buffer: SAR_BUFFER_TOO_SMALL, the length, and nothing written.
    let mut short = vec![0xAAu8; 1];
    let mut short_len = 1u32;
    // SAFETY: the buffer holds short_len bytes.
    let rv = unsafe { enum_dev(1, short.as_mut_ptr(), &mut short_len) };
    assert_eq!(rv, 0x0A00_0020);
    assert_eq!(short_len, len);
    assert_eq!(short, [0xAA]);
    let mut buf = vec![0u8; len as usize];
    // SAFETY: the buffer holds len bytes.
    let rv = unsafe { enum_dev(1, buf.as_mut_ptr(), &mut len) };
    assert_eq!(rv, 0);
    assert_eq!(&buf[buf.len() - 2..], b"\0\0");
    let names: Vec<String> = buf
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    // A NULL length pointer is refused.
    // SAFETY: the library checks the pointer before use.
    let rv = unsafe { enum_dev(1, buf.as_mut_ptr(), std::ptr::null_mut()) };
    assert_eq!(rv, 0x0A00_0006);
    println!("SKF devices: {names:?}");
}

#[test]
fn skf_enum_dev_from_c_against_skf_h() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = data_dir_with_token(tmp.path(), "bids");
    let src = tmp.path().join("enum.c");
    std::fs::write(
        &src,
        r#"
#include <stdio.h>
#include <dlfcn.h>
#include "skf.h"
typedef ULONG (DEVAPI *enum_fn)(BOOL, LPSTR, ULONG *);
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    enum_fn f = (enum_fn)dlsym(h, "SKF_EnumDev");
    if (!f) return 3;
    ULONG len = 0;
    if (f(TRUE, NULL, &len) != SAR_OK || len < 3) return 4;
    char buf[4096];
    if (len > sizeof buf) return 5;
    if (f(TRUE, (LPSTR)buf, &len) != SAR_OK) return 6;
    if (buf[len - 1] != 0 || buf[len - 2] != 0) return 7;
    if (sizeof(ULONG) != 4 || sizeof(BOOL) != 4) return 8;
    printf("first device: %s\n", buf);
    return 0;
}
"#,
    )
    .unwrap();
    let exe = tmp.path().join("enum");
    let st = Command::new("cc")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(repo_root().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-ldl")
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(&exe)
        .env("UKEY_CONF", &conf)
        .arg(skf_lib())
        .output()
        .unwrap();
    assert!(out.status.success(), "exit {:?}", out.status.code());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("first device: "));
}
