//! The sessions' key-check memo of libukey_pkcs11.so (`key_checked` in api/crypto.rs): an
//! init call with the key, usage and mechanism of an earlier one that passed skips the
//! object table and the attribute reads while no object has changed. These tests make the
//! memo answer first (an init that passed just before), then change what it vouched for in
//! every way a client can, and require the init to refuse exactly as without the memo.

#![allow(clippy::unwrap_used)]

mod p11_common;

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use p11_common::{Env, USER_PIN, rv};

fn env() -> &'static Env {
    p11_common::env_with("")
}

fn session(label: &str) -> Session {
    p11_common::user_session(&env().p11, label)
}

const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A P-256 pair; the private key takes `extra` (CKA_TOKEN, CKA_PRIVATE, …).
fn ec_pair(s: &Session, extra: &[Attribute]) -> (ObjectHandle, ObjectHandle) {
    let mut private = vec![Attribute::Sign(true), Attribute::Sensitive(true)];
    private.extend_from_slice(extra);
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[Attribute::EcParams(P256.to_vec()), Attribute::Verify(true)],
        &private,
    )
    .unwrap()
}

/// Signs twice (the second init is answered by the memo) and checks the signatures.
fn signs(s: &Session, public: ObjectHandle, private: ObjectHandle) {
    let data = [7u8; 32];
    for _ in 0..2 {
        let sig = s.sign(&Mechanism::Ecdsa, private, &data).unwrap();
        s.verify(&Mechanism::Ecdsa, public, &data, &sig).unwrap();
    }
}

/// Why an ECDSA signature with `key` is refused.
fn sign_refusal(s: &Session, key: ObjectHandle) -> RvError {
    rv(s.sign(&Mechanism::Ecdsa, key, &[7u8; 32]))
}

#[test]
fn a_changed_usage_attribute_is_seen_at_the_next_init() {
    let s = session("memo-usage");
    let (public, private) = ec_pair(&s, &[]);
    signs(&s, public, private);
    s.update_attributes(private, &[Attribute::Sign(false)])
        .unwrap();
    assert_eq!(sign_refusal(&s, private), RvError::KeyFunctionNotPermitted);
    s.update_attributes(private, &[Attribute::Sign(true)])
        .unwrap();
    signs(&s, public, private);
    // The verifying key's own entry: its usage turned off as well.
    s.update_attributes(public, &[Attribute::Verify(false)])
        .unwrap();
    let sig = s.sign(&Mechanism::Ecdsa, private, &[7u8; 32]).unwrap();
    assert_eq!(
        rv(s.verify(&Mechanism::Ecdsa, public, &[7u8; 32], &sig)),
        RvError::KeyFunctionNotPermitted
    );
}

#[test]
fn a_narrowed_mechanism_list_is_seen_at_the_next_init() {
    let s = session("memo-mechs");
    let (public, private) = ec_pair(&s, &[]);
    signs(&s, public, private);
    s.update_attributes(
        private,
        &[Attribute::AllowedMechanisms(vec![
            cryptoki::mechanism::MechanismType::ECDSA_SHA256,
        ])],
    )
    .unwrap();
    assert_eq!(sign_refusal(&s, private), RvError::MechanismInvalid);
    s.sign(&Mechanism::EcdsaSha256, private, b"msg").unwrap();
}

#[test]
fn a_destroyed_key_is_gone_at_the_next_init() {
    let s = session("memo-destroy");
    let (public, private) = ec_pair(&s, &[]);
    signs(&s, public, private);
    s.destroy_object(private).unwrap();
    assert_eq!(sign_refusal(&s, private), RvError::KeyHandleInvalid);
    // A token key, destroyed from another session of the same token.
    let (public, private) = ec_pair(&s, &[Attribute::Token(true)]);
    signs(&s, public, private);
    let slot = s.get_session_info().unwrap().slot_id();
    let other = env().p11.open_rw_session(slot).unwrap();
    other.destroy_object(private).unwrap();
    assert_eq!(sign_refusal(&s, private), RvError::KeyHandleInvalid);
}

#[test]
fn a_private_key_is_hidden_after_logout() {
    let s = session("memo-logout");
    let (public, private) = ec_pair(&s, &[Attribute::Private(true)]);
    signs(&s, public, private);
    s.logout().unwrap();
    assert_eq!(sign_refusal(&s, private), RvError::KeyHandleInvalid);
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    signs(&s, public, private);
}

#[test]
fn a_session_key_is_gone_with_its_session() {
    let e = env();
    let slot = p11_common::new_token(&e.p11, "memo-close", true);
    let keeper = e.p11.open_rw_session(slot).unwrap();
    keeper
        .login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let maker = e.p11.open_rw_session(slot).unwrap();
    let (public, private) = ec_pair(&maker, &[]);
    signs(&keeper, public, private);
    drop(maker);
    assert_eq!(sign_refusal(&keeper, private), RvError::KeyHandleInvalid);
}

#[test]
fn the_memo_keeps_usages_and_mechanisms_apart() {
    let s = session("memo-apart");
    // A key allowed to sign but not to decrypt: a memo entry for signing must not answer
    // a decryption init with the same handle.
    let key = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(16.into()),
                Attribute::Sign(true),
                Attribute::Encrypt(false),
                Attribute::Decrypt(false),
            ],
        )
        .unwrap();
    for _ in 0..2 {
        s.sign(&Mechanism::AesCMac, key, b"data").unwrap();
    }
    assert_eq!(
        rv(s.encrypt(&Mechanism::AesEcb, key, &[0u8; 16])),
        RvError::KeyFunctionNotPermitted
    );
    // Same key and usage, another mechanism the key's type does not serve.
    assert_eq!(sign_refusal(&s, key), RvError::KeyTypeInconsistent);
    for _ in 0..2 {
        s.sign(&Mechanism::AesCMac, key, b"data").unwrap();
    }
}

#[test]
fn a_public_private_key_needs_the_login_even_while_another_session_uses_it() {
    // A private key with CKA_PRIVATE false is visible without a login but signs only for
    // the user. Another session's operation on it keeps its key material alive past the
    // logout: the memo of this session's earlier init must not hand that material out.
    let e = env();
    let slot = p11_common::new_token(&e.p11, "memo-public-private", true);
    let s = e.p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let (public, private) = ec_pair(&s, &[Attribute::Private(false)]);
    signs(&s, public, private);
    let other = e.p11.open_rw_session(slot).unwrap();
    other.sign_init(&Mechanism::Ecdsa, private).unwrap();
    s.logout().unwrap();
    assert_eq!(sign_refusal(&s, private), RvError::UserNotLoggedIn);
}
