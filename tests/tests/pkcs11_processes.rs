//! Two processes use one token at once: each signs with the same token key and verifies,
//! while the other does the same. The child is this test binary re-run on the ignored test
//! `child_signs`.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

const P256: &[u8] = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";

fn open() -> Pkcs11 {
    let p11 = Pkcs11::new(ukey_tests::pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    p11
}

#[test]
#[ignore = "run by two_processes_sign_at_once"]
fn child_signs() {
    if std::env::var_os("UKEY_P11_CHILD").is_none() {
        return;
    }
    let p11 = open();
    let slot = p11.get_slots_with_initialized_token().unwrap()[0];
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new("123456".into())))
        .unwrap();
    let sk = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()[0];
    let pk = s
        .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])
        .unwrap()[0];
    for i in 0..200u32 {
        let m = i.to_be_bytes();
        let sig = s.sign(&Mechanism::EcdsaSha256, sk, &m).unwrap();
        s.verify(&Mechanism::EcdsaSha256, pk, &m, &sig).unwrap();
    }
    // A token object written by this process is seen by the next call of the other.
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label(format!("from-{}", std::process::id()).into_bytes()),
    ])
    .unwrap();
}

#[test]
fn two_processes_sign_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ukey_tests::write_soft_conf(dir.path(), "");
    // SAFETY: set before the module is loaded in this process.
    unsafe { std::env::set_var("UKEY_CONF", &conf) };
    let p11 = open();
    let slot = p11.get_all_slots().unwrap()[0];
    p11.init_token(slot, &AuthPin::new("12345678".into()), "shared")
        .unwrap();
    {
        let s = p11.open_rw_session(slot).unwrap();
        s.login(UserType::So, Some(&AuthPin::new("12345678".into())))
            .unwrap();
        s.init_pin(&AuthPin::new("123456".into())).unwrap();
        s.logout().unwrap();
        s.login(UserType::User, Some(&AuthPin::new("123456".into())))
            .unwrap();
        s.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(P256.to_vec()), Attribute::Token(true)],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )
        .unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "child_signs", "--ignored", "--nocapture"])
                .env("UKEY_P11_CHILD", "1")
                .env("UKEY_CONF", &conf)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new("123456".into())))
        .unwrap();
    let data = s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap();
    assert_eq!(data.len(), 2, "both children's objects are visible here");
    p11.finalize().unwrap();
}
