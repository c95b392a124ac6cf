//! Helpers of the PKCS#11 black-box tests that share one loaded module in the test
//! process: the module on a fresh data directory, and fresh tokens in its free slot.

#![allow(dead_code)]

use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

pub const SO_PIN: &str = "12345678";
pub const USER_PIN: &str = "123456";

pub struct Env {
    pub p11: Pkcs11,
    _dir: tempfile::TempDir,
}

/// The process's module: libukey_pkcs11.so loaded and initialised (OS locking) with a
/// `ukey.toml` whose `[soft]` section has the cheapest PIN KDF and `soft_extra` (lines).
/// The first call decides `soft_extra`; every test of a binary passes the same.
pub fn env_with(soft_extra: &str) -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let conf = ukey_tests::write_soft_conf(dir.path(), soft_extra);
        // SAFETY: set before the module is loaded and before any other thread reads it.
        unsafe { std::env::set_var("UKEY_CONF", &conf) };
        let p11 = Pkcs11::new(ukey_tests::pkcs11_lib()).unwrap();
        p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .unwrap();
        Env { p11, _dir: dir }
    })
}

/// A fresh token labelled `label` in the free slot (one at a time: the free slot moves),
/// with [`SO_PIN`]; the SO sets [`USER_PIN`] when `user_pin`.
pub fn new_token(p11: &Pkcs11, label: &str, user_pin: bool) -> Slot {
    static MAKE: Mutex<()> = Mutex::new(());
    let _g = MAKE.lock().unwrap_or_else(|p| p.into_inner());
    let free = *p11
        .get_all_slots()
        .unwrap()
        .iter()
        .find(|s| !p11.get_token_info(**s).unwrap().token_initialized())
        .unwrap();
    p11.init_token(free, &AuthPin::new(SO_PIN.into()), label)
        .unwrap();
    if user_pin {
        let s = p11.open_rw_session(free).unwrap();
        s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
            .unwrap();
        s.init_pin(&AuthPin::new(USER_PIN.into())).unwrap();
        s.logout().unwrap();
    }
    free
}

/// A fresh token labelled `label` with both PINs, and an RW session on it logged in as the
/// user.
pub fn user_session(p11: &Pkcs11, label: &str) -> Session {
    let slot = new_token(p11, label, true);
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    s
}

/// The `CKR_*` of a call that must fail.
pub fn rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}
