//! A token key one process keeps unsealed stops signing once another process destroys it
//! (the soft store's cross-process check, robustness.md). The child is this test binary
//! re-run on the ignored test `child_destroys_the_sm2_key`, on the parent's `UKEY_CONF`.

#![allow(clippy::unwrap_used)]

mod p11_common;

use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use p11_common::USER_PIN;

const CKM_SM2_KEY_PAIR_GEN: u64 = 0x8000_8001;
const CKM_SM3_SM2: u64 = 0x8000_8100;
const SM2_PARAMS: &[u8] = b"\x06\x08\x2a\x81\x1c\xcf\x55\x01\x82\x2d";

fn vendor(ty: u64) -> Mechanism<'static> {
    Mechanism::VendorDefined(
        cryptoki::mechanism::vendor_defined::VendorDefinedMechanism::new::<()>(
            cryptoki::mechanism::MechanismType::new_vendor_defined(ty).unwrap(),
            None,
        ),
    )
}

#[test]
#[ignore = "run by a_key_destroyed_by_another_process_stops_signing_here"]
fn child_destroys_the_sm2_key() {
    if std::env::var_os("UKEY_P11_CHILD").is_none() {
        return;
    }
    // The parent's configuration, inherited (p11_common would make a new one).
    let p11 = Pkcs11::new(ukey_tests::pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p11.get_slots_with_initialized_token().unwrap()[0];
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let keys = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    assert_eq!(keys.len(), 1);
    s.destroy_object(keys[0]).unwrap();
}

/// A container key this process has used (and keeps unsealed) stops signing once another
/// process has destroyed it: the store's version is asked again at the latest 1 ms
/// after the last answer (robustness.md), and the other process's commit is seen.
#[test]
fn a_key_destroyed_by_another_process_stops_signing_here() {
    let p11 = &p11_common::env_with("").p11;
    let slot = p11_common::new_token(p11, "shared", true);
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let (_, sk) = s
        .generate_key_pair(
            &vendor(CKM_SM2_KEY_PAIR_GEN),
            &[
                Attribute::EcParams(SM2_PARAMS.to_vec()),
                Attribute::Token(true),
                Attribute::Verify(true),
            ],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )
        .unwrap();
    // Signing in a loop: the key is cached here, the store's answer reused.
    for i in 0..50u32 {
        s.sign(&vendor(CKM_SM3_SM2), sk, &i.to_be_bytes()).unwrap();
    }
    let st = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_destroys_the_sm2_key",
            "--ignored",
            "--nocapture",
        ])
        .env("UKEY_P11_CHILD", "1")
        .status()
        .unwrap();
    assert!(st.success());
    // The child's commit returned before it exited; the reuse window (1 ms) is over.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let r = s.sign(&vendor(CKM_SM3_SM2), sk, b"after");
    assert!(r.is_err(), "a key destroyed elsewhere still signed: {r:?}");
}
