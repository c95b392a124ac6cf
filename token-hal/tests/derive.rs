//! Key agreement through `PrivateKey::derive`: the SM2 key exchange with caller-held
//! ephemerals (the SKF/PKCS#11 shape) agrees on both sides and confirms.

#![allow(clippy::unwrap_used)]

use token_hal::crypto::sm2::{DEFAULT_ID, ExchangeRole, generate_ephemeral};
use token_hal::crypto::{DeriveMech, KeyAlg, PrivateKey};

#[test]
fn sm2_exchange_with_caller_held_ephemerals_agrees() {
    let a = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let b = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let (ra, ra_point) = generate_ephemeral().unwrap();
    let (rb, rb_point) = generate_ephemeral().unwrap();
    let id_b = b"bidder-b".to_vec();
    let out_a = a
        .derive(&DeriveMech::Sm2Exchange {
            role: ExchangeRole::Initiator,
            own_id: DEFAULT_ID.to_vec(),
            ephemeral: ra,
            peer: b.public_key().unwrap(),
            peer_id: id_b.clone(),
            peer_ephemeral: rb_point.to_vec(),
            klen: 16,
        })
        .unwrap();
    let out_b = b
        .derive(&DeriveMech::Sm2Exchange {
            role: ExchangeRole::Responder,
            own_id: id_b,
            ephemeral: rb,
            peer: a.public_key().unwrap(),
            peer_id: DEFAULT_ID.to_vec(),
            peer_ephemeral: ra_point.to_vec(),
            klen: 16,
        })
        .unwrap();
    assert_eq!(out_a.secret.len(), 16);
    assert_eq!(*out_a.secret, *out_b.secret);
    // Each side's confirmation is what the other expects.
    assert_eq!(out_a.confirmation, out_b.expected_peer_confirmation);
    assert_eq!(out_b.confirmation, out_a.expected_peer_confirmation);
    // A wrong peer ephemeral gives a different key.
    let (rb2, _) = generate_ephemeral().unwrap();
    let (_, other_point) = generate_ephemeral().unwrap();
    let out_b2 = b
        .derive(&DeriveMech::Sm2Exchange {
            role: ExchangeRole::Responder,
            own_id: b"bidder-b".to_vec(),
            ephemeral: rb2,
            peer: a.public_key().unwrap(),
            peer_id: DEFAULT_ID.to_vec(),
            peer_ephemeral: other_point.to_vec(),
            klen: 16,
        })
        .unwrap();
    assert_ne!(*out_a.secret, *out_b2.secret);
}

#[test]
fn ecdh_is_refused_cleanly_where_not_offered_or_bad_point() {
    let a = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let r = a.derive(&DeriveMech::Ecdh {
        peer_point: vec![4u8; 65],
    });
    assert!(r.is_err());
}
