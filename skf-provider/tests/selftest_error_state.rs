//! The self-test error state end to end through the SKF face, in-process: token-hal's
//! test-only seam (feature `test-seams`, never in the shipped library) makes the
//! power-on self-test, which the library's first call runs, fail; the library then still
//! lists and connects devices, but every crypto and PIN call answers `SAR_FAIL` and logs
//! one error line.
//!
//! One test per file: the self-test outcome is cached for the whole process.

#![allow(clippy::unwrap_used)]

use std::ptr;

use skf_sys::*;
use token_hal::config::Config;
use token_hal::registry::Registry;
use token_hal::soft::DEFAULT_DEV_AUTH_KEY;
use token_hal::{AppParams, Pin};
use ukey_skf::*;

#[test]
fn a_failed_self_test_leaves_the_library_in_its_error_state() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ukey.toml");
    let log = dir.path().join("ukey.log");
    std::fs::write(
        &conf,
        format!(
            "data_dir = \"{}\"\n[soft]\nkdf_iterations = 1000\n[log]\nlevel = \"error\"\noutput = \"{}\"\n",
            dir.path().join("data").display(),
            log.display()
        ),
    )
    .unwrap();
    let reg = Registry::new(Config::load_from(&conf).unwrap());
    let dev = reg.create_soft_device("st").unwrap();
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
    dev.create_app(
        "st",
        &AppParams::new(Pin::new(b"12345678"), Some(Pin::new(b"123456"))),
    )
    .unwrap();
    drop(reg);
    // SAFETY: set before the library's first call and before any other thread reads it.
    unsafe {
        std::env::set_var("UKEY_CONF", &conf);
        std::env::remove_var("UKEY_LOG");
        std::env::remove_var("UKEY_LOG_OUTPUT");
        std::env::remove_var("UKEY_SKF_DATA_DIR");
    }
    assert!(token_hal::crypto::selftest::fail_before_first_use(
        "SM4-CBC"
    ));

    // SAFETY: for all calls below, the library's exported functions, called with valid
    // pointers and lengths as GM/T 0016 requires.
    unsafe {
        let mut size: ULONG = 0;
        assert_eq!(SKF_EnumDev(TRUE, ptr::null_mut(), &mut size), SAR_OK);
        let mut names = vec![0 as CHAR; size as usize];
        assert_eq!(SKF_EnumDev(TRUE, names.as_mut_ptr(), &mut size), SAR_OK);
        let mut h: DEVHANDLE = ptr::null_mut();
        assert_eq!(SKF_ConnectDev(names.as_mut_ptr(), &mut h), SAR_OK);
        let mut refused = 0;
        let mut buf = [0u8; 16];
        assert_eq!(SKF_GenRandom(h, buf.as_mut_ptr(), 16), SAR_FAIL, "random");
        refused += 1;
        let mut hash: HANDLE = ptr::null_mut();
        assert_eq!(
            SKF_DigestInit(h, SGD_SM3, ptr::null_mut(), ptr::null_mut(), 0, &mut hash),
            SAR_FAIL,
            "digest"
        );
        refused += 1;
        let mut app_name = *b"st\0";
        let mut app: HAPPLICATION = ptr::null_mut();
        assert_eq!(
            SKF_OpenApplication(h, app_name.as_mut_ptr().cast(), &mut app),
            SAR_FAIL,
            "open application (PIN state follows)"
        );
        refused += 1;
        assert_eq!(SKF_DisConnectDev(h), SAR_OK);

        let text = std::fs::read_to_string(&log).unwrap();
        let failures = text
            .lines()
            .filter(|l| l.contains("self-test failed"))
            .count();
        assert_eq!(failures, 1, "one line for the failure:\n{text}");
        assert!(text.contains("SM4-CBC"), "{text}");
        let lines = text
            .lines()
            .filter(|l| l.contains("self-test error state"))
            .count();
        assert_eq!(lines, refused, "one line per refused call:\n{text}");
    }
}
