//! The sessions' key-pair memo of libukey_pkcs11.so (`prepared` in api/keys.rs): a
//! `C_GenerateKeyPair` with the mechanism, templates and login state of the session's
//! last one reuses their parsed and completed form. These tests make the memo answer (a
//! second pair from the same templates), then change each input it depends on, and
//! require every pair to be what the templates ask for, with keys of its own.

#![allow(clippy::unwrap_used)]

mod p11_common;

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use p11_common::{Env, SO_PIN, USER_PIN, rv};

fn env() -> &'static Env {
    p11_common::env_with("")
}

const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

fn pair(s: &Session, public: &[Attribute], private: &[Attribute]) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(&Mechanism::EccKeyPairGen, public, private)
        .unwrap()
}

fn bytes(s: &Session, o: ObjectHandle, ty: AttributeType) -> Vec<u8> {
    match s.get_attributes(o, &[ty]).unwrap().pop() {
        Some(Attribute::Label(v))
        | Some(Attribute::Id(v))
        | Some(Attribute::EcPoint(v))
        | Some(Attribute::EcParams(v))
        | Some(Attribute::UniqueId(v)) => v,
        other => panic!("{ty:?}: {other:?}"),
    }
}

fn flag(s: &Session, o: ObjectHandle, ty: AttributeType) -> bool {
    match s.get_attributes(o, &[ty]).unwrap().pop() {
        Some(
            Attribute::Sign(b)
            | Attribute::Verify(b)
            | Attribute::Derive(b)
            | Attribute::Sensitive(b)
            | Attribute::Extractable(b)
            | Attribute::Private(b)
            | Attribute::Trusted(b),
        ) => b,
        other => panic!("{ty:?}: {other:?}"),
    }
}

/// Signs with the private key and verifies with the public one.
fn works(s: &Session, public: ObjectHandle, private: ObjectHandle) {
    let sig = s.sign(&Mechanism::Ecdsa, private, &[5u8; 32]).unwrap();
    s.verify(&Mechanism::Ecdsa, public, &[5u8; 32], &sig)
        .unwrap();
}

#[test]
fn repeated_templates_give_distinct_complete_pairs() {
    let s = p11_common::user_session(&env().p11, "memo-repeat");
    let public = [
        Attribute::EcParams(P256.to_vec()),
        Attribute::Verify(true),
        Attribute::Label(b"pub".to_vec()),
    ];
    let private = [Attribute::Sign(true), Attribute::Label(b"priv".to_vec())];
    let pairs: Vec<_> = (0..4).map(|_| pair(&s, &public, &private)).collect();
    let mut ids = Vec::new();
    let mut points = Vec::new();
    for &(pk, sk) in &pairs {
        works(&s, pk, sk);
        assert_eq!(bytes(&s, pk, AttributeType::Label), b"pub");
        assert_eq!(bytes(&s, sk, AttributeType::Label), b"priv");
        assert_eq!(bytes(&s, pk, AttributeType::EcParams), P256);
        assert!(flag(&s, sk, AttributeType::Sensitive) || !flag(&s, sk, AttributeType::Sign));
        ids.push(bytes(&s, pk, AttributeType::UniqueId));
        ids.push(bytes(&s, sk, AttributeType::UniqueId));
        points.push(bytes(&s, pk, AttributeType::EcPoint));
    }
    // Every object has its own unique ID and every pair its own key.
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    points.sort();
    points.dedup();
    assert_eq!(points.len(), 4);
    // A key of one pair does not verify another pair's signature.
    let sig = s.sign(&Mechanism::Ecdsa, pairs[0].1, &[5u8; 32]).unwrap();
    assert_eq!(
        rv(s.verify(&Mechanism::Ecdsa, pairs[1].0, &[5u8; 32], &sig)),
        RvError::SignatureInvalid
    );
}

#[test]
fn every_changed_template_value_is_seen() {
    let s = p11_common::user_session(&env().p11, "memo-change");
    let public = |label: &[u8], params: &[u8]| {
        vec![
            Attribute::EcParams(params.to_vec()),
            Attribute::Verify(true),
            Attribute::Label(label.to_vec()),
        ]
    };
    let (pk, sk) = pair(&s, &public(b"a", &P256), &[Attribute::Sign(true)]);
    works(&s, pk, sk);
    // The same templates again (the memo answers), then a changed value in each.
    let (pk, _) = pair(&s, &public(b"a", &P256), &[Attribute::Sign(true)]);
    assert_eq!(bytes(&s, pk, AttributeType::Label), b"a");
    let (pk, _) = pair(&s, &public(b"b", &P256), &[Attribute::Sign(true)]);
    assert_eq!(bytes(&s, pk, AttributeType::Label), b"b");
    let (pk, sk) = pair(&s, &public(b"b", &P384), &[Attribute::Sign(true)]);
    assert_eq!(bytes(&s, pk, AttributeType::EcParams), P384);
    assert_eq!(bytes(&s, pk, AttributeType::EcPoint).len(), 2 + 97);
    works(&s, pk, sk);
    let (_, sk) = pair(&s, &public(b"b", &P384), &[Attribute::Sign(false)]);
    assert!(!flag(&s, sk, AttributeType::Sign));
    assert_eq!(
        rv(s.sign(&Mechanism::Ecdsa, sk, &[5u8; 32])),
        RvError::KeyFunctionNotPermitted
    );
    // A template with one more attribute, then one fewer.
    let (_, sk) = pair(
        &s,
        &public(b"b", &P384),
        &[Attribute::Sign(true), Attribute::Derive(true)],
    );
    assert!(flag(&s, sk, AttributeType::Derive));
    let (_, sk) = pair(&s, &public(b"b", &P384), &[Attribute::Sign(true)]);
    assert!(!flag(&s, sk, AttributeType::Derive));
    // The same attributes in another order are another template; the pair is the same.
    let (pk, _) = pair(
        &s,
        &[
            Attribute::Label(b"b".to_vec()),
            Attribute::Verify(true),
            Attribute::EcParams(P384.to_vec()),
        ],
        &[Attribute::Sign(true)],
    );
    assert_eq!(bytes(&s, pk, AttributeType::EcParams), P384);
    // A template the memo's checks would have passed fails on its own.
    assert_eq!(
        rv(s.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &public(b"b", &[0x06, 0x03, 0x2a, 0x03, 0x04]),
            &[Attribute::Sign(true)],
        )),
        RvError::CurveNotSupported
    );
}

#[test]
fn the_login_state_is_part_of_the_memo() {
    // Only the SO may set CKA_TRUSTED: the SO's pair, then the same templates as the user,
    // must be refused.
    let p11 = &env().p11;
    let slot = p11_common::new_token(p11, "memo-login", true);
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
        .unwrap();
    let public = [
        Attribute::EcParams(P256.to_vec()),
        Attribute::Verify(true),
        Attribute::Trusted(true),
    ];
    let private = [Attribute::Sign(true), Attribute::Private(false)];
    let (pk, _) = pair(&s, &public, &private);
    assert!(flag(&s, pk, AttributeType::Trusted));
    let (pk, _) = pair(&s, &public, &private);
    assert!(flag(&s, pk, AttributeType::Trusted));
    s.logout().unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    assert_eq!(
        rv(s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)),
        RvError::AttributeReadOnly
    );
    // And the user's own pairs from templates without it still work.
    let (pk, sk) = pair(&s, &public[..2], &private[..1]);
    works(&s, pk, sk);
    assert!(!flag(&s, pk, AttributeType::Trusted));
}

#[test]
fn sessions_keep_memos_of_their_own() {
    let p11 = &env().p11;
    let slot = p11_common::new_token(p11, "memo-sessions", true);
    let a = p11.open_rw_session(slot).unwrap();
    let b = p11.open_rw_session(slot).unwrap();
    a.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let public = |label: &[u8]| {
        vec![
            Attribute::EcParams(P256.to_vec()),
            Attribute::Verify(true),
            Attribute::Label(label.to_vec()),
        ]
    };
    let private = [Attribute::Sign(true)];
    for round in 0..3u8 {
        let (pa, sa) = pair(&a, &public(&[b'a', round]), &private);
        let (pb, sb) = pair(&b, &public(&[b'b', round]), &private);
        assert_eq!(bytes(&a, pa, AttributeType::Label), [b'a', round]);
        assert_eq!(bytes(&b, pb, AttributeType::Label), [b'b', round]);
        works(&a, pa, sa);
        works(&b, pb, sb);
    }
}
