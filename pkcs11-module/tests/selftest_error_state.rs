//! The self-test error state end to end through the C face, in-process: token-hal's
//! test-only seam (feature `test-seams`, never in the shipped library) makes the
//! power-on self-test fail before the module's first use; the module then still lists
//! its slots and opens sessions, but every crypto, PIN and object call answers
//! `CKR_GENERAL_ERROR` and logs one error line.
//!
//! One test per file: the self-test outcome is cached for the whole process.

#![allow(clippy::unwrap_used)]

use std::ptr;

use cryptoki_sys::*;
use token_hal::config::Config;
use token_hal::registry::Registry;
use token_hal::soft::DEFAULT_DEV_AUTH_KEY;
use token_hal::{AppParams, Pin};

fn functions() -> &'static CK_FUNCTION_LIST {
    let mut p: CK_FUNCTION_LIST_PTR = ptr::null_mut();
    // SAFETY: a valid out-pointer; the list is static in the library.
    assert_eq!(unsafe { ukey_pkcs11::C_GetFunctionList(&mut p) }, CKR_OK);
    // SAFETY: non-null on CKR_OK and valid for the life of the process.
    unsafe { &*p }
}

#[test]
fn a_failed_self_test_leaves_the_module_in_its_error_state() {
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
    // A token made directly on token-hal (no face involved), so sessions can open.
    let reg = Registry::new(Config::load_from(&conf).unwrap());
    let dev = reg.create_soft_device("st").unwrap();
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
    dev.create_app(
        "st",
        &AppParams::new(Pin::new(b"12345678"), Some(Pin::new(b"123456"))),
    )
    .unwrap();
    drop(reg);
    // SAFETY: set before the module is loaded and before any other thread reads it.
    unsafe {
        std::env::set_var("UKEY_CONF", &conf);
        std::env::remove_var("UKEY_LOG");
        std::env::remove_var("UKEY_LOG_OUTPUT");
    }
    assert!(token_hal::crypto::selftest::fail_before_first_use(
        "SM2-sign"
    ));

    let f = functions();
    // SAFETY: for all calls below, the function-list entries of the library, called with
    // valid pointers and lengths as PKCS#11 requires.
    unsafe {
        assert_eq!(f.C_Initialize.unwrap()(ptr::null_mut()), CKR_OK);
        let mut n: CK_ULONG = 0;
        assert_eq!(
            f.C_GetSlotList.unwrap()(CK_TRUE, ptr::null_mut(), &mut n),
            CKR_OK
        );
        let mut slots = vec![0 as CK_SLOT_ID; n as usize];
        assert_eq!(
            f.C_GetSlotList.unwrap()(CK_TRUE, slots.as_mut_ptr(), &mut n),
            CKR_OK
        );
        let mut slot = None;
        for s in &slots {
            let mut ti: CK_TOKEN_INFO = std::mem::zeroed();
            assert_eq!(f.C_GetTokenInfo.unwrap()(*s, &mut ti), CKR_OK);
            if ti.flags & CKF_TOKEN_INITIALIZED != 0 {
                slot = Some(*s);
            }
        }
        let slot = slot.expect("the token made on token-hal is listed");
        let mut h: CK_SESSION_HANDLE = 0;
        assert_eq!(
            f.C_OpenSession.unwrap()(
                slot,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                ptr::null_mut(),
                None,
                &mut h
            ),
            CKR_OK
        );
        let mut refused = 0;
        let mut pin = *b"123456";
        assert_eq!(
            f.C_Login.unwrap()(h, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG),
            CKR_GENERAL_ERROR,
            "login"
        );
        refused += 1;
        let mut buf = [0u8; 16];
        assert_eq!(
            f.C_GenerateRandom.unwrap()(h, buf.as_mut_ptr(), buf.len() as CK_ULONG),
            CKR_GENERAL_ERROR,
            "random"
        );
        refused += 1;
        let mut m = CK_MECHANISM {
            mechanism: CKM_SHA256,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(
            f.C_DigestInit.unwrap()(h, &mut m),
            CKR_GENERAL_ERROR,
            "digest"
        );
        refused += 1;
        let mut data = *b"abc";
        let mut out = [0u8; 32];
        let mut out_len = out.len() as CK_ULONG;
        assert_eq!(
            f.C_Digest.unwrap()(h, data.as_mut_ptr(), 3, out.as_mut_ptr(), &mut out_len),
            CKR_GENERAL_ERROR,
            "digest"
        );
        refused += 1;
        let mut m = CK_MECHANISM {
            mechanism: CKM_AES_KEY_GEN,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut len: CK_ULONG = 16;
        let mut tmpl = [CK_ATTRIBUTE {
            type_: CKA_VALUE_LEN,
            pValue: (&mut len as *mut CK_ULONG).cast(),
            ulValueLen: size_of::<CK_ULONG>() as CK_ULONG,
        }];
        let mut k: CK_OBJECT_HANDLE = 0;
        assert_eq!(
            f.C_GenerateKey.unwrap()(h, &mut m, tmpl.as_mut_ptr(), 1, &mut k),
            CKR_GENERAL_ERROR,
            "keygen"
        );
        refused += 1;
        let mut label = [b' '; 32];
        assert_eq!(
            f.C_InitToken.unwrap()(slot, pin.as_mut_ptr(), 6, label.as_mut_ptr()),
            CKR_GENERAL_ERROR,
            "init token"
        );
        refused += 1;
        // The general and session functions still answer.
        let mut si: CK_SESSION_INFO = std::mem::zeroed();
        assert_eq!(f.C_GetSessionInfo.unwrap()(h, &mut si), CKR_OK);
        assert_eq!(f.C_CloseSession.unwrap()(h), CKR_OK);
        assert_eq!(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK);
        // Re-initialising does not clear the error state: only reloading does.
        assert_eq!(f.C_Initialize.unwrap()(ptr::null_mut()), CKR_OK);
        assert_eq!(
            f.C_GenerateRandom.unwrap()(0, buf.as_mut_ptr(), 16),
            CKR_GENERAL_ERROR
        );
        refused += 1;
        assert_eq!(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK);

        let text = std::fs::read_to_string(&log).unwrap();
        let failures = text
            .lines()
            .filter(|l| l.contains("self-test failed"))
            .count();
        assert_eq!(failures, 1, "one line for the failure:\n{text}");
        assert!(text.contains("SM2-sign"), "{text}");
        let lines = text
            .lines()
            .filter(|l| l.contains("self-test error state"))
            .count();
        assert_eq!(lines, refused, "one line per refused call:\n{text}");
        assert!(!text.contains("123456"), "{text}");
    }
}
