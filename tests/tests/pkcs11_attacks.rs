//! The PKCS#11 API attack suite (issue 7; the attack list of security.md C1): each known
//! attack on key secrecy, tried through the built libukey_pkcs11.so as a client would,
//! must be refused under the default policy with the exact CKR, and nothing may leak. The
//! rule that refuses each attack is named in docs/security.md next to the test name.
//!
//! Names follow the literature: Clulow 2003 (wrap/decrypt, encrypt/unwrap, Trojan
//! wrapping key, weaker key, reduced key space by derivation), Tookan a1–a5 (a1 wrap/decrypt
//! with symmetric keys, a2 with asymmetric keys, a3 sensitive keys readable, a4
//! unextractable keys readable, a5 sensitive/unextractable toggled back) and the Caml Crush
//! filter patches (sticky, conflicting, non-local keys).

#![allow(clippy::unwrap_used)]

mod p11_common;

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::ekdf::AesCbcDeriveParams;
use cryptoki::mechanism::misc::{ExtractParams, KeyDerivationStringData};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use p11_common::{Env, rv};

const IV: [u8; 16] = [0x11; 16];

fn env() -> &'static Env {
    p11_common::env_with("")
}

/// A fresh token with a user PIN and a logged-in RW session on it.
fn session(label: &str) -> Session {
    p11_common::user_session(&env().p11, label)
}

/// A generated AES key (sensitive and extractable unless `extra` says).
fn aes(s: &Session, len: u64, extra: &[Attribute]) -> ObjectHandle {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(len.into()),
    ];
    t.extend_from_slice(extra);
    s.generate_key(&Mechanism::AesKeyGen, &t).unwrap()
}

/// An AES key imported with a value the caller knows.
fn known_aes(s: &Session, value: &[u8], extra: &[Attribute]) -> ObjectHandle {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(value.to_vec()),
    ];
    t.extend_from_slice(extra);
    s.create_object(&t).unwrap()
}

/// A sensitive, extractable generic secret (the target of the derivation attacks).
fn generic(s: &Session, len: u64) -> ObjectHandle {
    s.generate_key(
        &Mechanism::GenericSecretKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(len.into()),
            Attribute::Derive(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
        ],
    )
    .unwrap()
}

/// The value of a key, if the module gives it out.
fn value(s: &Session, k: ObjectHandle) -> Option<Vec<u8>> {
    match s.get_attributes(k, &[AttributeType::Value]) {
        Ok(v) => v.into_iter().find_map(|a| match a {
            Attribute::Value(x) => Some(x),
            _ => None,
        }),
        Err(_) => None,
    }
}

/// The target's attributes are unchanged: still sensitive and unextractable as made.
fn still(s: &Session, k: ObjectHandle, sensitive: bool, extractable: bool) {
    let v = s
        .get_attributes(k, &[AttributeType::Sensitive, AttributeType::Extractable])
        .unwrap();
    assert!(v.contains(&Attribute::Sensitive(sensitive)), "{v:?}");
    assert!(v.contains(&Attribute::Extractable(extractable)), "{v:?}");
    assert_eq!(value(s, k), None, "the value became readable");
}

fn derived_template(extra: &[Attribute]) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
    ];
    t.extend_from_slice(extra);
    t
}

// --- Clulow 2003 / Tookan a1: wrap then decrypt with symmetric keys ---------------------

/// One key with both wrap and decrypt: `C_WrapKey(K, S)`, then `C_Decrypt(K, blob)`.
#[test]
fn clulow_a1_wrap_then_decrypt_with_one_key() {
    let s = session("a1-one");
    let secret = aes(&s, 32, &[Attribute::Extractable(true)]);
    let k = aes(&s, 32, &[Attribute::Wrap(true), Attribute::Decrypt(true)]);
    let blob = s.wrap_key(&Mechanism::AesCbcPad(IV), k, secret).unwrap();
    assert_eq!(
        rv(s.decrypt(&Mechanism::AesCbcPad(IV), k, &blob)),
        RvError::KeyFunctionNotPermitted
    );
    still(&s, secret, true, true);
}

/// Two keys of one value, set up to allow it: K copied before its first use, the
/// original wraps and the copy decrypts (the latch is shared by the copy).
#[test]
fn clulow_a1_wrap_then_decrypt_with_a_copy_made_before_use() {
    let s = session("a1-copy");
    let secret = aes(&s, 32, &[]);
    let k = aes(&s, 32, &[Attribute::Wrap(true), Attribute::Decrypt(true)]);
    let twin = s.copy_object(k, &[]).unwrap();
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesCbcPad(IV), k, secret)),
        RvError::KeyFunctionNotPermitted
    );
    // The other way round: the copy wraps, the original decrypts.
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesCbcPad(IV), twin, secret)),
        RvError::KeyFunctionNotPermitted
    );
    still(&s, secret, true, true);
}

/// Two keys of one value made by unwrapping one blob twice: one would wrap, the other
/// decrypt. Unwrapped keys are not trusted to wrap sensitive keys.
#[test]
fn clulow_a1_wrap_then_decrypt_with_a_key_unwrapped_twice() {
    let s = session("a1-twice");
    let secret = aes(&s, 32, &[]);
    let kek = aes(&s, 32, &[]);
    let k = aes(&s, 32, &[]);
    let blob = s.wrap_key(&Mechanism::AesKeyWrap, kek, k).unwrap();
    let tmpl = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
    ];
    let k1 = s
        .unwrap_key(&Mechanism::AesKeyWrap, kek, &blob, &tmpl)
        .unwrap();
    let k2 = s
        .unwrap_key(&Mechanism::AesKeyWrap, kek, &blob, &tmpl)
        .unwrap();
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesCbcPad(IV), k1, secret)),
        RvError::KeyNotWrappable
    );
    // k2 still decrypts its own data, but there is no blob of the secret to feed it.
    let _ = s.encrypt(&Mechanism::AesCbcPad(IV), k2, b"data").unwrap();
    still(&s, secret, true, true);
}

// --- Tookan a2: wrap/decrypt with an asymmetric pair ------------------------------------

/// A generated RSA pair: wrap S under the public key, decrypt the blob with the private
/// key (the halves are separate objects; the wrap latches the private half).
#[test]
fn tookan_a2_wrap_under_public_key_then_decrypt_with_private_key() {
    let s = session("a2");
    let secret = aes(&s, 32, &[]);
    let (pk, sk) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::ModulusBits(2048.into()),
                Attribute::Wrap(true),
                Attribute::Encrypt(true),
            ],
            &[Attribute::Decrypt(true), Attribute::Unwrap(true)],
        )
        .unwrap();
    let blob = s.wrap_key(&Mechanism::RsaPkcs, pk, secret).unwrap();
    assert_eq!(
        rv(s.decrypt(&Mechanism::RsaPkcs, sk, &blob)),
        RvError::KeyFunctionNotPermitted
    );
    // The other order: a private key that decrypts cannot have its public half wrap.
    let (pk2, sk2) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into())],
            &[],
        )
        .unwrap();
    let ct = s.encrypt(&Mechanism::RsaPkcs, pk2, b"data").unwrap();
    assert_eq!(s.decrypt(&Mechanism::RsaPkcs, sk2, &ct).unwrap(), b"data");
    assert_eq!(
        rv(s.wrap_key(&Mechanism::RsaPkcs, pk2, secret)),
        RvError::KeyFunctionNotPermitted
    );
    // A copy of the public key made to dodge the link is found by its public key too.
    let (pk3, sk3) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into())],
            &[],
        )
        .unwrap();
    let pk3c = s.copy_object(pk3, &[]).unwrap();
    let blob = s.wrap_key(&Mechanism::RsaPkcs, pk3c, secret).unwrap();
    assert_eq!(
        rv(s.decrypt(&Mechanism::RsaPkcs, sk3, &blob)),
        RvError::KeyFunctionNotPermitted
    );
    still(&s, secret, true, true);
}

/// Clulow's encrypt/unwrap: encrypt a chosen value under K, unwrap it with K to plant a
/// key the attacker knows, then wrap S under the planted key.
#[test]
fn clulow_encrypt_then_unwrap_plants_a_known_key() {
    let s = session("enc-unwrap");
    let k = aes(&s, 32, &[Attribute::Encrypt(true), Attribute::Unwrap(true)]);
    let planted = [0x5au8; 32];
    let blob = s.encrypt(&Mechanism::AesCbcPad(IV), k, &planted).unwrap();
    let r = s.unwrap_key(
        &Mechanism::AesCbcPad(IV),
        k,
        &blob,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Wrap(true),
        ],
    );
    assert_eq!(rv(r), RvError::KeyFunctionNotPermitted);
}

/// Clulow's Trojan wrapping key: import a key whose value the attacker chose and wrap S
/// under it (the Caml Crush non-local-objects rule).
#[test]
fn clulow_trojan_imported_wrapping_key() {
    let s = session("trojan");
    let secret = aes(&s, 32, &[]);
    let trojan = known_aes(&s, &[0x42; 32], &[Attribute::Wrap(true)]);
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, trojan, secret)),
        RvError::KeyNotWrappable
    );
    // A generated key that was readable once is as good as imported.
    let readable = aes(
        &s,
        32,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    assert!(value(&s, readable).is_some());
    s.update_attributes(readable, &[Attribute::Sensitive(true)])
        .unwrap();
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, readable, secret)),
        RvError::KeyNotWrappable
    );
    // An imported RSA public key (the attacker holds the private half).
    let (pk, _) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(1024.into())],
            &[],
        )
        .unwrap();
    let attrs = s
        .get_attributes(pk, &[AttributeType::Modulus, AttributeType::PublicExponent])
        .unwrap();
    let mut t = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Wrap(true),
    ];
    t.extend(attrs);
    let imported = s.create_object(&t).unwrap();
    assert_eq!(
        rv(s.wrap_key(&Mechanism::RsaPkcs, imported, secret)),
        RvError::KeyNotWrappable
    );
    still(&s, secret, true, true);
}

/// Clulow's weaker key: wrap an AES-256 key under an AES-128 key, then attack the
/// shorter one.
#[test]
fn clulow_weaker_key_wraps_a_stronger_one() {
    let s = session("weaker");
    let strong = aes(&s, 32, &[]);
    let weak = aes(&s, 16, &[]);
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, weak, strong)),
        RvError::KeyNotWrappable
    );
    // Same strength is fine.
    let peer = aes(&s, 32, &[]);
    assert!(s.wrap_key(&Mechanism::AesKeyWrap, peer, strong).is_ok());
    // DES and friends are not offered at all.
    for m in [Mechanism::Des3Ecb, Mechanism::DesKeyGen] {
        assert_eq!(
            rv(s.generate_key(
                &m,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::DES3)
                ]
            )),
            RvError::MechanismInvalid
        );
    }
}

/// `CKA_WRAP_WITH_TRUSTED`: an untrusted key may not wrap it, and the user cannot make
/// its own key trusted.
#[test]
fn wrap_with_trusted_under_an_untrusted_key() {
    let s = session("trusted");
    let guarded = aes(&s, 32, &[Attribute::WrapWithTrusted(true)]);
    let untrusted = aes(&s, 32, &[]);
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, untrusted, guarded)),
        RvError::KeyNotWrappable
    );
    assert_eq!(
        rv(s.update_attributes(untrusted, &[Attribute::Trusted(true)])),
        RvError::AttributeReadOnly
    );
    assert_eq!(
        rv(s.update_attributes(guarded, &[Attribute::WrapWithTrusted(false)])),
        RvError::AttributeReadOnly
    );
    assert_eq!(
        rv(s.copy_object(guarded, &[Attribute::WrapWithTrusted(false)])),
        RvError::AttributeReadOnly
    );
}

// --- Tookan a3/a4: reading sensitive or unextractable values ----------------------------

/// a3: `C_GetAttributeValue` of the secret parts of sensitive keys.
#[test]
fn tookan_a3_read_sensitive_values() {
    let s = session("a3");
    let k = aes(&s, 32, &[Attribute::Sensitive(true)]);
    assert_eq!(
        rv(s.get_attributes(k, &[AttributeType::Value]).and_then(|v| {
            if v.is_empty() {
                Err(Error::Pkcs11(
                    RvError::AttributeSensitive,
                    cryptoki::context::Function::GetAttributeValue,
                ))
            } else {
                Ok(v)
            }
        })),
        RvError::AttributeSensitive
    );
    let (_, sk) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(1024.into())],
            &[Attribute::Sensitive(true)],
        )
        .unwrap();
    for t in [
        AttributeType::PrivateExponent,
        AttributeType::Prime1,
        AttributeType::Prime2,
        AttributeType::Exponent1,
        AttributeType::Exponent2,
        AttributeType::Coefficient,
    ] {
        let v = s.get_attributes(sk, &[t]).unwrap_or_default();
        assert!(v.is_empty(), "{t:?} readable: {v:?}");
    }
    let (_, ec) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(
                b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07".to_vec(),
            )],
            &[Attribute::Sensitive(true)],
        )
        .unwrap();
    assert_eq!(value(&s, ec), None);
}

/// a4: the same on keys that are not sensitive but unextractable (kryoptic PR #198 had
/// AND where OR belongs).
#[test]
fn tookan_a4_read_unextractable_values() {
    let s = session("a4");
    let k = aes(
        &s,
        32,
        &[Attribute::Sensitive(false), Attribute::Extractable(false)],
    );
    assert_eq!(value(&s, k), None);
    let (_, sk) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(1024.into())],
            &[Attribute::Sensitive(false), Attribute::Extractable(false)],
        )
        .unwrap();
    let v = s
        .get_attributes(sk, &[AttributeType::PrivateExponent])
        .unwrap_or_default();
    assert!(v.is_empty(), "{v:?}");
    // Nor can it be wrapped out.
    let kek = aes(&s, 32, &[]);
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, kek, k)),
        RvError::KeyUnextractable
    );
}

// --- Tookan a5 and Caml Crush sticky attributes -----------------------------------------

/// a5: `CKA_SENSITIVE` true→false and `CKA_EXTRACTABLE` false→true with
/// `C_SetAttributeValue`.
#[test]
fn tookan_a5_sticky_attributes_through_set_attribute_value() {
    let s = session("a5-set");
    let k = aes(
        &s,
        32,
        &[Attribute::Sensitive(true), Attribute::Extractable(false)],
    );
    assert_eq!(
        rv(s.update_attributes(k, &[Attribute::Sensitive(false)])),
        RvError::AttributeReadOnly
    );
    assert_eq!(
        rv(s.update_attributes(k, &[Attribute::Extractable(true)])),
        RvError::AttributeReadOnly
    );
    // Both at once, or hidden behind a harmless change: still refused, nothing changed.
    assert_eq!(
        rv(s.update_attributes(
            k,
            &[
                Attribute::Label(b"x".to_vec()),
                Attribute::Sensitive(false),
                Attribute::Extractable(true)
            ]
        )),
        RvError::AttributeReadOnly
    );
    still(&s, k, true, false);
    let v = s.get_attributes(k, &[AttributeType::Label]).unwrap();
    assert_eq!(v, vec![Attribute::Label(Vec::new())]);
}

/// a5 through `C_CopyObject`: a copy whose template relaxes the sticky attributes.
#[test]
fn tookan_a5_relaxing_attributes_through_copy_object() {
    let s = session("a5-copy");
    let k = aes(
        &s,
        32,
        &[Attribute::Sensitive(true), Attribute::Extractable(false)],
    );
    for t in [
        vec![Attribute::Sensitive(false)],
        vec![Attribute::Extractable(true)],
        vec![Attribute::Sensitive(false), Attribute::Extractable(true)],
    ] {
        assert_eq!(
            rv(s.copy_object(k, &t)),
            RvError::AttributeReadOnly,
            "{t:?}"
        );
    }
    // A plain copy keeps the protection.
    let c = s.copy_object(k, &[]).unwrap();
    still(&s, c, true, false);
    still(&s, k, true, false);
}

/// Caml Crush: the caller sets the token-only attributes (`CKA_ALWAYS_SENSITIVE`,
/// `CKA_NEVER_EXTRACTABLE`, `CKA_LOCAL`) to pass an imported key off as generated.
#[test]
fn token_only_attributes_cannot_be_set() {
    let s = session("token-only");
    for a in [
        Attribute::AlwaysSensitive(true),
        Attribute::NeverExtractable(true),
        Attribute::Local(true),
    ] {
        let r = s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(vec![1; 32]),
            a.clone(),
        ]);
        assert_eq!(rv(r), RvError::AttributeReadOnly, "{a:?}");
    }
    let k = aes(&s, 32, &[]);
    assert_eq!(
        rv(s.update_attributes(k, &[Attribute::Local(false)])),
        RvError::AttributeReadOnly
    );
}

// --- Conflicting attributes: one key with wrap+decrypt or unwrap+encrypt ----------------

/// The module accepts both attributes on one key (SoftHSM-style suites need it) and
/// refuses the second role at use: the role latch.
#[test]
fn conflicting_attributes_are_latched_to_one_role() {
    let s = session("conflict");
    let secret = aes(&s, 32, &[]);
    // unwrap + encrypt: encrypt first, then unwrap is refused.
    let k = aes(&s, 32, &[Attribute::Unwrap(true), Attribute::Encrypt(true)]);
    let ct = s.encrypt(&Mechanism::AesCbcPad(IV), k, &[9u8; 32]).unwrap();
    assert_eq!(
        rv(s.unwrap_key(
            &Mechanism::AesCbcPad(IV),
            k,
            &ct,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES)
            ]
        )),
        RvError::KeyFunctionNotPermitted
    );
    // wrap + decrypt: decrypt first, then wrap is refused.
    let k = aes(&s, 32, &[Attribute::Wrap(true), Attribute::Decrypt(true)]);
    let _ = s.encrypt(&Mechanism::AesEcb, k, &[0; 16]).unwrap();
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesCbcPad(IV), k, secret)),
        RvError::KeyFunctionNotPermitted
    );
    // Setting the other usage afterwards does not lift the latch.
    let k = aes(&s, 32, &[Attribute::Wrap(false)]);
    let _ = s.encrypt(&Mechanism::AesEcb, k, &[0; 16]).unwrap();
    s.update_attributes(k, &[Attribute::Wrap(true)]).unwrap();
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesCbcPad(IV), k, secret)),
        RvError::KeyFunctionNotPermitted
    );
}

// --- Unwrap with a contradicting template -----------------------------------------------

/// The wrapped key was sensitive; the unwrap template asks for a readable key (or claims
/// the token-only `CKA_ALWAYS_SENSITIVE`). The wrap format binds no attributes, so an
/// unwrapped key is always sensitive.
#[test]
fn unwrap_with_a_contradicting_template() {
    let s = session("unwrap-tmpl");
    let secret = aes(&s, 32, &[]);
    let kek = aes(&s, 32, &[]);
    let blob = s.wrap_key(&Mechanism::AesKeyWrap, kek, secret).unwrap();
    let tmpl = |extra: &[Attribute]| {
        let mut t = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
        ];
        t.extend_from_slice(extra);
        t
    };
    assert_eq!(
        rv(s.unwrap_key(
            &Mechanism::AesKeyWrap,
            kek,
            &blob,
            &tmpl(&[Attribute::Sensitive(false), Attribute::Extractable(true)])
        )),
        RvError::TemplateInconsistent
    );
    assert_eq!(
        rv(s.unwrap_key(
            &Mechanism::AesKeyWrap,
            kek,
            &blob,
            &tmpl(&[Attribute::AlwaysSensitive(true)])
        )),
        RvError::AttributeReadOnly
    );
    // Unwrapped with a template that says nothing: sensitive, so unreadable.
    let k = s
        .unwrap_key(&Mechanism::AesKeyWrap, kek, &blob, &tmpl(&[]))
        .unwrap();
    still(&s, k, true, true);
    // CKA_UNWRAP_TEMPLATE is not supported: the attribute is refused, not ignored.
    let r = s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            // CKA_UNWRAP_TEMPLATE (CKF_ARRAY_ATTRIBUTE | 0x212); cryptoki has no variant.
            Attribute::VendorDefined((AttributeType::VendorDefined(0x4000_0212), Vec::new())),
        ],
    );
    assert_eq!(rv(r), RvError::AttributeTypeInvalid);
    // The kek, latched to wrap, cannot decrypt the blob either.
    assert_eq!(
        rv(s.decrypt(&Mechanism::AesEcb, kek, &blob[..32])),
        RvError::KeyFunctionNotPermitted
    );
    still(&s, secret, true, true);
}

// --- C_DeriveKey tricks -----------------------------------------------------------------

/// CKM_CONCATENATE_BASE_AND_DATA / DATA_AND_BASE with a known part, asking for a
/// readable result.
#[test]
fn derive_concatenate_with_known_data_reveals_nothing() {
    let s = session("derive-concat");
    let base = generic(&s, 32);
    let data = [0xAAu8; 8];
    for m in [
        Mechanism::ConcatenateBaseAndData(KeyDerivationStringData::new(&data)),
        Mechanism::ConcatenateDataAndBase(KeyDerivationStringData::new(&data)),
    ] {
        assert_eq!(
            rv(s.derive_key(&m, base, &derived_template(&[Attribute::Sensitive(false)]))),
            RvError::TemplateInconsistent
        );
        // Without a say in the template, the derived key is sensitive.
        let d = s.derive_key(&m, base, &derived_template(&[])).unwrap();
        still(&s, d, true, true);
    }
    still(&s, base, true, true);
}

/// CKM_CONCATENATE_BASE_AND_KEY with the secret as the second part and a known base.
#[test]
fn derive_concatenate_with_a_known_base_key_reveals_nothing() {
    let s = session("derive-concat-key");
    let secret = generic(&s, 32);
    let known = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Value(vec![1; 16]),
            Attribute::Derive(true),
            Attribute::Sensitive(false),
        ])
        .unwrap();
    assert_eq!(
        rv(s.derive_key(
            &Mechanism::ConcatenateBaseAndKey(secret),
            known,
            &derived_template(&[Attribute::Sensitive(false), Attribute::Extractable(true)])
        )),
        RvError::TemplateInconsistent
    );
    let d = s
        .derive_key(
            &Mechanism::ConcatenateBaseAndKey(secret),
            known,
            &derived_template(&[]),
        )
        .unwrap();
    still(&s, d, true, true);
}

/// CKM_XOR_BASE_AND_DATA: the result XOR the known data is the secret.
#[test]
fn derive_xor_base_and_data_reveals_nothing() {
    let s = session("derive-xor");
    let base = generic(&s, 32);
    let data = [0x0Fu8; 32];
    let m = Mechanism::XorBaseAndData(KeyDerivationStringData::new(&data));
    assert_eq!(
        rv(s.derive_key(&m, base, &derived_template(&[Attribute::Sensitive(false)]))),
        RvError::TemplateInconsistent
    );
    let d = s.derive_key(&m, base, &derived_template(&[])).unwrap();
    still(&s, d, true, true);
}

/// Reduced key space: derive one-byte keys from the secret (CKM_EXTRACT_KEY_FROM_KEY at
/// every bit offset, XOR with one byte of data, the data plus one byte of the base) and
/// brute-force each with an HMAC over 256 candidates.
#[test]
fn derive_short_keys_to_brute_force_the_secret() {
    let s = session("derive-short");
    let base = generic(&s, 32);
    let sign = [Attribute::Sign(true), Attribute::ValueLen(1.into())];
    assert_eq!(
        rv(s.derive_key(
            &Mechanism::ExtractKeyFromKey(ExtractParams::new(8)),
            base,
            &derived_template(&sign)
        )),
        RvError::TemplateInconsistent
    );
    let one = [0u8; 1];
    assert_eq!(
        rv(s.derive_key(
            &Mechanism::XorBaseAndData(KeyDerivationStringData::new(&one)),
            base,
            &derived_template(&[Attribute::Sign(true)])
        )),
        RvError::TemplateInconsistent
    );
    let data = [0u8; 15];
    assert_eq!(
        rv(s.derive_key(
            &Mechanism::ConcatenateDataAndBase(KeyDerivationStringData::new(&data)),
            base,
            &derived_template(&[Attribute::Sign(true), Attribute::ValueLen(16.into())])
        )),
        RvError::TemplateInconsistent
    );
    // Sixteen bytes of the secret or more are fine.
    let d = s
        .derive_key(
            &Mechanism::ExtractKeyFromKey(ExtractParams::new(8)),
            base,
            &derived_template(&[Attribute::ValueLen(16.into())]),
        )
        .unwrap();
    still(&s, d, true, true);
}

/// An unextractable base gives unextractable derived keys, and AES-CBC-ENCRYPT-DATA
/// (whose result does not reveal the base) is not made readable by the template either.
#[test]
fn derive_from_an_unextractable_key_stays_unextractable() {
    let s = session("derive-unext");
    let base = aes(
        &s,
        32,
        &[Attribute::Derive(true), Attribute::Extractable(false)],
    );
    let data = [0u8; 32];
    assert_eq!(
        rv(s.derive_key(
            &Mechanism::ConcatenateBaseAndData(KeyDerivationStringData::new(&data)),
            base,
            &derived_template(&[Attribute::Extractable(true)])
        )),
        RvError::TemplateInconsistent
    );
    let d = s
        .derive_key(
            &Mechanism::ConcatenateBaseAndData(KeyDerivationStringData::new(&data)),
            base,
            &derived_template(&[]),
        )
        .unwrap();
    still(&s, d, true, false);
    let p = AesCbcDeriveParams::new([0u8; 16], &data);
    let d = s
        .derive_key(
            &Mechanism::AesCbcEncryptData(p),
            base,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
            ],
        )
        .unwrap();
    assert_eq!(value(&s, d), None);
}
