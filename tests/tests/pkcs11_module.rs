//! libukey_pkcs11.so through `cryptoki`, as a client loads it: login and PIN errors,
//! template errors, stale handles, the key policy against the known API attacks, SM2
//! interoperability with OpenSSL 3, and concurrent signing.
//!
//! All tests share one loaded module (one process-wide PKCS#11 state); each makes its
//! own token in the free slot, so they run in parallel.

#![allow(clippy::unwrap_used)]

mod p11_common;

use std::process::Command;

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use p11_common::{Env, SO_PIN, USER_PIN, rv};

const CKK_SM2: u64 = 0x8000_0004;
const CKM_SM2_KEY_PAIR_GEN: u64 = 0x8000_8001;
const CKM_SM3_SM2: u64 = 0x8000_8100;
const CKM_SM2_ENCRYPT: u64 = 0x8000_8200;
const SM2_PARAMS: &[u8] = b"\x06\x08\x2a\x81\x1c\xcf\x55\x01\x82\x2d";

fn env() -> &'static Env {
    p11_common::env_with("pin_retries = 3\n")
}

/// A fresh token labelled `label` with the SO and user PINs set.
fn token(label: &str) -> Slot {
    new_token(label, true)
}

/// A fresh token; the user PIN is set when `user_pin`.
fn new_token(label: &str, user_pin: bool) -> Slot {
    p11_common::new_token(&env().p11, label, user_pin)
}

fn user_session(slot: Slot) -> Session {
    let s = env().p11.open_rw_session(slot).unwrap();
    match s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("{e}"),
    }
    s
}

fn aes_key(s: &Session, extra: &[Attribute]) -> ObjectHandle {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
    ];
    t.extend_from_slice(extra);
    s.generate_key(&Mechanism::AesKeyGen, &t).unwrap()
}

#[test]
fn wrong_pin_counts_down_then_locks() {
    let slot = token("pin-lock");
    let s = env().p11.open_rw_session(slot).unwrap();
    let bad = AuthPin::new("000000".into());
    assert_eq!(
        rv(s.login(UserType::User, Some(&bad))),
        RvError::PinIncorrect
    );
    let f = env().p11.get_token_info(slot).unwrap();
    assert!(f.user_pin_count_low() && !f.user_pin_final_try());
    assert_eq!(
        rv(s.login(UserType::User, Some(&bad))),
        RvError::PinIncorrect
    );
    assert!(env().p11.get_token_info(slot).unwrap().user_pin_final_try());
    assert_eq!(
        rv(s.login(UserType::User, Some(&bad))),
        RvError::PinIncorrect
    );
    assert!(env().p11.get_token_info(slot).unwrap().user_pin_locked());
    let good = AuthPin::new(USER_PIN.into());
    assert_eq!(rv(s.login(UserType::User, Some(&good))), RvError::PinLocked);
}

#[test]
fn login_state_rules() {
    let slot = token("login-rules");
    let p11 = &env().p11;
    let s = user_session(slot);
    let again = AuthPin::new(USER_PIN.into());
    assert_eq!(
        rv(s.login(UserType::User, Some(&again))),
        RvError::UserAlreadyLoggedIn
    );
    let so = AuthPin::new(SO_PIN.into());
    assert_eq!(
        rv(s.login(UserType::So, Some(&so))),
        RvError::UserAnotherAlreadyLoggedIn
    );
    s.logout().unwrap();
    assert_eq!(rv(s.logout()), RvError::UserNotLoggedIn);
    let ro = p11.open_ro_session(slot).unwrap();
    assert_eq!(
        rv(s.login(UserType::So, Some(&so))),
        RvError::SessionReadOnlyExists
    );
    drop(ro);
    // A token without a user PIN.
    let free = new_token("no-user-pin", false);
    let t = p11.open_rw_session(free).unwrap();
    assert_eq!(
        rv(t.login(UserType::User, Some(&again))),
        RvError::UserPinNotInitialized
    );
}

#[test]
fn template_errors() {
    let slot = token("templates");
    let s = user_session(slot);
    // No class.
    let r = s.create_object(&[Attribute::Value(vec![1; 16])]);
    assert_eq!(rv(r), RvError::TemplateIncomplete);
    // The same attribute twice with different values.
    let r = s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Label(b"a".to_vec()),
        Attribute::Label(b"b".to_vec()),
    ]);
    assert_eq!(rv(r), RvError::TemplateInconsistent);
    // Attributes only the token sets.
    let r = s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(vec![1; 16]),
        Attribute::AlwaysSensitive(true),
    ]);
    assert_eq!(rv(r), RvError::AttributeReadOnly);
    // A bad key length.
    let r = s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(vec![1; 15]),
    ]);
    assert_eq!(rv(r), RvError::AttributeValueInvalid);
    // A key generated with a conflicting key type.
    let r = s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(16.into()),
        ],
    );
    assert_eq!(rv(r), RvError::TemplateInconsistent);
}

#[test]
fn stale_handles() {
    let slot = token("stale");
    let s = user_session(slot);
    let k = aes_key(&s, &[]);
    s.destroy_object(k).unwrap();
    assert_eq!(
        rv(s.get_attributes(k, &[AttributeType::Label])),
        RvError::ObjectHandleInvalid
    );
    assert_eq!(
        rv(s.encrypt(&Mechanism::AesEcb, k, &[0; 16])),
        RvError::KeyHandleInvalid
    );
    // A session object dies with its session.
    let t = user_session(slot);
    let kt = aes_key(&t, &[Attribute::Token(false)]);
    t.close().unwrap();
    assert_eq!(
        rv(s.get_attributes(kt, &[AttributeType::Label])),
        RvError::ObjectHandleInvalid
    );
}

#[test]
fn operation_ends_after_an_error() {
    let slot = token("op-error");
    let s = user_session(slot);
    let k = aes_key(&s, &[]);
    s.encrypt_init(&Mechanism::AesEcb, k).unwrap();
    assert!(s.encrypt_update(&[0; 5]).unwrap().is_empty());
    // Not a whole block: the operation fails and is over.
    assert_eq!(rv(s.encrypt_final()), RvError::DataLenRange);
    assert_eq!(
        rv(s.encrypt_update(&[0; 16])),
        RvError::OperationNotInitialized
    );
    // A wrong signature ends verification too.
    let h = s
        .generate_key(
            &Mechanism::GenericSecretKeyGen,
            &[
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::ValueLen(32.into()),
            ],
        )
        .unwrap();
    let mac = s.sign(&Mechanism::Sha256Hmac, h, b"abc").unwrap();
    assert_eq!(
        rv(s.verify(&Mechanism::Sha256Hmac, h, b"abd", &mac)),
        RvError::SignatureInvalid
    );
    s.verify(&Mechanism::Sha256Hmac, h, b"abc", &mac).unwrap();
}

#[test]
fn sensitive_values_are_never_readable() {
    let slot = token("policy-read");
    let s = user_session(slot);
    for (sens, ext) in [(true, true), (false, false), (true, false)] {
        let k = aes_key(
            &s,
            &[Attribute::Sensitive(sens), Attribute::Extractable(ext)],
        );
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
            RvError::AttributeSensitive,
            "sensitive={sens} extractable={ext}"
        );
    }
    let k = aes_key(
        &s,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    let v = s.get_attributes(k, &[AttributeType::Value]).unwrap();
    assert!(matches!(&v[0], Attribute::Value(x) if x.len() == 32));
    // Sticky attributes.
    let k = aes_key(
        &s,
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
    assert_eq!(
        rv(s.copy_object(k, &[Attribute::Sensitive(false)])),
        RvError::AttributeReadOnly
    );
    assert_eq!(
        rv(s.copy_object(k, &[Attribute::Extractable(true)])),
        RvError::AttributeReadOnly
    );
    // An unextractable key cannot be wrapped out either.
    let kek = aes_key(&s, &[]);
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, kek, k)),
        RvError::KeyUnextractable
    );
    // Only the SO may mark a key trusted.
    assert_eq!(
        rv(s.update_attributes(kek, &[Attribute::Trusted(true)])),
        RvError::AttributeReadOnly
    );
    // Private-key components.
    let (_, sk) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(
                b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07".to_vec(),
            )],
            &[Attribute::Sensitive(false), Attribute::Extractable(false)],
        )
        .unwrap();
    let v = s.get_attributes(sk, &[AttributeType::Value]).unwrap();
    assert!(v.is_empty(), "unextractable EC scalar readable: {v:?}");
}

#[test]
fn wrap_then_decrypt_is_refused() {
    let slot = token("policy-latch");
    let s = user_session(slot);
    let secret = aes_key(
        &s,
        &[Attribute::Sensitive(true), Attribute::Extractable(true)],
    );
    let iv = [0u8; 16];
    // Clulow: wrap S under K, then decrypt the blob with K.
    let k = aes_key(&s, &[]);
    let blob = s.wrap_key(&Mechanism::AesCbcPad(iv), k, secret).unwrap();
    assert_eq!(
        rv(s.decrypt(&Mechanism::AesCbcPad(iv), k, &blob)),
        RvError::KeyFunctionNotPermitted
    );
    // The latch survives a copy.
    let k2 = s.copy_object(k, &[]).unwrap();
    assert_eq!(
        rv(s.decrypt(&Mechanism::AesCbcPad(iv), k2, &blob)),
        RvError::KeyFunctionNotPermitted
    );
    // The other order: a key used to encrypt cannot wrap or unwrap.
    let c = aes_key(&s, &[]);
    let _ = s.encrypt(&Mechanism::AesCbcPad(iv), c, b"hello").unwrap();
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesCbcPad(iv), c, secret)),
        RvError::KeyFunctionNotPermitted
    );
    // Encrypt a known key value under K and unwrap it: refused once K encrypts.
    let blob2 = s.encrypt(&Mechanism::AesCbcPad(iv), c, &[7u8; 32]).unwrap();
    let r = s.unwrap_key(
        &Mechanism::AesCbcPad(iv),
        c,
        &blob2,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
        ],
    );
    assert_eq!(rv(r), RvError::KeyFunctionNotPermitted);
    // Wrap with trusted.
    let wt = aes_key(
        &s,
        &[
            Attribute::WrapWithTrusted(true),
            Attribute::Extractable(true),
        ],
    );
    let untrusted = aes_key(&s, &[]);
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, untrusted, wt)),
        RvError::KeyNotWrappable
    );
    assert_eq!(
        rv(s.update_attributes(wt, &[Attribute::WrapWithTrusted(false)])),
        RvError::AttributeReadOnly
    );
}

#[test]
fn allowed_mechanisms_are_enforced() {
    let slot = token("allowed");
    let s = user_session(slot);
    let k = aes_key(
        &s,
        &[Attribute::AllowedMechanisms(vec![MechanismType::AES_ECB])],
    );
    s.encrypt(&Mechanism::AesEcb, k, &[0; 16]).unwrap();
    assert_eq!(
        rv(s.encrypt(&Mechanism::AesCbc([0; 16]), k, &[0; 16])),
        RvError::MechanismInvalid
    );
}

#[test]
fn eight_threads_sign_on_separate_sessions() {
    let slot = token("threads");
    let s = user_session(slot);
    let (pk, sk) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::EcParams(b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07".to_vec()),
                Attribute::Token(true),
            ],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )
        .unwrap();
    std::thread::scope(|sc| {
        for t in 0..8u8 {
            sc.spawn(move || {
                let s = user_session(slot);
                for i in 0..25u8 {
                    let msg = [t, i];
                    let sig = s.sign(&Mechanism::EcdsaSha256, sk, &msg).unwrap();
                    s.verify(&Mechanism::EcdsaSha256, pk, &msg, &sig).unwrap();
                }
            });
        }
    });
}

fn vendor(m: u64) -> Mechanism<'static> {
    Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        MechanismType::new_vendor_defined(m).unwrap(),
        None,
    ))
}

fn sm2_pair(s: &Session) -> (ObjectHandle, ObjectHandle, Vec<u8>) {
    let (pk, sk) = s
        .generate_key_pair(
            &vendor(CKM_SM2_KEY_PAIR_GEN),
            &[
                Attribute::EcParams(SM2_PARAMS.to_vec()),
                Attribute::Encrypt(true),
                Attribute::Verify(true),
            ],
            &[Attribute::Sign(true), Attribute::Decrypt(true)],
        )
        .unwrap();
    let kt = s.get_attributes(pk, &[AttributeType::KeyType]).unwrap();
    assert_eq!(
        kt[0],
        Attribute::KeyType(KeyType::new_vendor_defined(CKK_SM2).unwrap())
    );
    let point = match &s.get_attributes(pk, &[AttributeType::EcPoint]).unwrap()[0] {
        Attribute::EcPoint(p) => p[2..].to_vec(),
        a => panic!("{a:?}"),
    };
    assert_eq!(point.len(), 65);
    (pk, sk, point)
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn sm2_signature_verifies_with_openssl() {
    if !openssl_available() {
        eprintln!("openssl not found; skipping");
        return;
    }
    let slot = token("sm2-ossl-sig");
    let s = user_session(slot);
    let (pk, sk, point) = sm2_pair(&s);
    let msg = b"bid document v1";
    let sig = s.sign(&vendor(CKM_SM3_SM2), sk, msg).unwrap();
    assert_eq!(sig.len(), 64);
    s.verify(&vendor(CKM_SM3_SM2), pk, msg, &sig).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = token_hal::crypto::PublicKey::from_ec_point(token_hal::crypto::KeyAlg::Sm2, &point)
        .unwrap()
        .to_pem();
    std::fs::write(dir.path().join("pub.pem"), pem).unwrap();
    std::fs::write(dir.path().join("msg"), msg).unwrap();
    std::fs::write(
        dir.path().join("sig.der"),
        token_hal::crypto::sig::raw_to_der(&sig).unwrap(),
    )
    .unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "dgst",
            "-sm3",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
        ])
        .args(["-sigopt", "distid:1234567812345678", "msg"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A changed message fails.
    std::fs::write(dir.path().join("msg"), b"bid document v2").unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "dgst",
            "-sm3",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
        ])
        .args(["-sigopt", "distid:1234567812345678", "msg"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn openssl_sm2_ciphertext_decrypts() {
    if !openssl_available() {
        eprintln!("openssl not found; skipping");
        return;
    }
    let slot = token("sm2-ossl-enc");
    let s = user_session(slot);
    let (pk, sk, point) = sm2_pair(&s);
    let dir = tempfile::tempdir().unwrap();
    let pem = token_hal::crypto::PublicKey::from_ec_point(token_hal::crypto::KeyAlg::Sm2, &point)
        .unwrap()
        .to_pem();
    std::fs::write(dir.path().join("pub.pem"), pem).unwrap();
    std::fs::write(dir.path().join("pt"), b"session key material").unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-in", "pt", "-out", "ct.der",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let der = std::fs::read(dir.path().join("ct.der")).unwrap();
    let raw = token_hal::crypto::sm2::cipher_der_to_raw(&der).unwrap();
    assert_eq!(raw[0], 4);
    let pt = s.decrypt(&vendor(CKM_SM2_ENCRYPT), sk, &raw).unwrap();
    assert_eq!(pt, b"session key material");
    // And the other way: C_Encrypt output is 04||C1||C3||C2.
    let ct = s.encrypt(&vendor(CKM_SM2_ENCRYPT), pk, b"hello").unwrap();
    assert_eq!(ct.len(), 65 + 32 + 5);
    assert_eq!(
        s.decrypt(&vendor(CKM_SM2_ENCRYPT), sk, &ct).unwrap(),
        b"hello"
    );
}

#[test]
fn token_objects_persist_across_sessions_with_stable_handles() {
    let slot = token("persist");
    let s = user_session(slot);
    let k = aes_key(
        &s,
        &[Attribute::Token(true), Attribute::Label(b"kept".to_vec())],
    );
    let found = s
        .find_objects(&[Attribute::Label(b"kept".to_vec())])
        .unwrap();
    assert_eq!(found, vec![k]);
    let t = user_session(slot);
    let again = t
        .find_objects(&[Attribute::Label(b"kept".to_vec())])
        .unwrap();
    assert_eq!(again, vec![k]);
    let uid = t.get_attributes(k, &[AttributeType::UniqueId]).unwrap();
    assert!(matches!(&uid[0], Attribute::UniqueId(u) if !u.is_empty()));
    let cv = t.get_attributes(k, &[AttributeType::CheckValue]).unwrap();
    assert!(matches!(&cv[0], Attribute::CheckValue(v) if v.len() == 3));
}

#[test]
fn container_keys_certificates_and_retired_keys_are_objects() {
    let slot = token("containers");
    let conf = std::env::var_os("UKEY_CONF").unwrap();
    let ukey = |args: &[&str]| {
        let out = Command::new(ukey_tests::ukey_bin())
            .env("UKEY_CONF", &conf)
            .args(["--token", "containers", "--pin", USER_PIN])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ukey(&["key", "gen", "--alg", "sm2", "--container", "c1"]);
    ukey(&["key", "gen", "--alg", "sm2", "--container", "c1", "--enc"]);
    ukey(&[
        "key",
        "gen",
        "--alg",
        "sm2",
        "--container",
        "c1",
        "--enc",
        "--rekey",
    ]);
    let s = user_session(slot);
    let find = |class: ObjectClass, id: &[u8]| {
        s.find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])
            .unwrap()
    };
    // CKA_ID = the container id (the name's bytes), retired keys get their own.
    let sk = find(ObjectClass::PRIVATE_KEY, b"c1");
    assert_eq!(sk.len(), 2, "signing and encryption keys");
    assert_eq!(find(ObjectClass::CERTIFICATE, b"c1").len(), 2);
    let retired = find(ObjectClass::PRIVATE_KEY, b"c1-r1");
    assert_eq!(retired.len(), 1);
    let label = s
        .get_attributes(retired[0], &[AttributeType::Label])
        .unwrap();
    assert_eq!(label[0], Attribute::Label(b"c1 (retired 1)".to_vec()));
    // The signing key signs inside the token; the public key object verifies.
    let signer = *sk
        .iter()
        .find(|h| {
            s.get_attributes(**h, &[AttributeType::Sign]).unwrap()[0] == Attribute::Sign(true)
        })
        .unwrap();
    let pk = find(ObjectClass::PUBLIC_KEY, b"c1");
    let verifier = *pk
        .iter()
        .find(|h| {
            s.get_attributes(**h, &[AttributeType::Verify]).unwrap()[0] == Attribute::Verify(true)
        })
        .unwrap();
    let sig = s.sign(&vendor(CKM_SM3_SM2), signer, b"tender").unwrap();
    s.verify(&vendor(CKM_SM3_SM2), verifier, b"tender", &sig)
        .unwrap();
    // The retired key cannot sign but still decrypts what was sent to it.
    let r = retired[0];
    assert_eq!(
        s.get_attributes(r, &[AttributeType::Sign]).unwrap()[0],
        Attribute::Sign(false)
    );
    assert_eq!(
        rv(s.sign(&vendor(CKM_SM3_SM2), r, b"x")),
        RvError::KeyFunctionNotPermitted
    );
    let rpub = find(ObjectClass::PUBLIC_KEY, b"c1-r1")[0];
    let point = match &s.get_attributes(rpub, &[AttributeType::EcPoint]).unwrap()[0] {
        Attribute::EcPoint(p) => p[2..].to_vec(),
        a => panic!("{a:?}"),
    };
    let old = token_hal::crypto::PublicKey::from_ec_point(token_hal::crypto::KeyAlg::Sm2, &point)
        .unwrap();
    let ct = old
        .encrypt(&token_hal::crypto::EncMech::Sm2, b"old envelope key")
        .unwrap();
    assert_eq!(
        s.decrypt(&vendor(CKM_SM2_ENCRYPT), r, &ct).unwrap(),
        b"old envelope key"
    );
    // Container objects are not changed or destroyed through PKCS#11.
    assert_eq!(rv(s.destroy_object(r)), RvError::ActionProhibited);
    assert_eq!(
        rv(s.update_attributes(r, &[Attribute::Label(b"x".to_vec())])),
        RvError::ActionProhibited
    );
}

/// `CK_UKEY_SM2_EXCHANGE_PARAMS` of include/ukey_pkcs11.h.
#[repr(C)]
struct Sm2ExchangeParams {
    is_initiator: u8,
    p_own_id: *const u8,
    ul_own_id_len: std::ffi::c_ulong,
    h_own_ephemeral: std::ffi::c_ulong,
    p_peer_public: *const u8,
    ul_peer_public_len: std::ffi::c_ulong,
    p_peer_id: *const u8,
    ul_peer_id_len: std::ffi::c_ulong,
    p_peer_ephemeral: *const u8,
    ul_peer_ephemeral_len: std::ffi::c_ulong,
}

#[test]
fn sm2_key_exchange_through_derive_matches_the_peer() {
    use token_hal::crypto::sm2::{DEFAULT_ID, ExchangeRole, Sm2KeyExchange};
    use token_hal::crypto::{KeyAlg, PrivateKey, PublicKey};
    let slot = token("sm2-exchange");
    let s = user_session(slot);
    let keygen = || {
        s.generate_key_pair(
            &vendor(CKM_SM2_KEY_PAIR_GEN),
            &[Attribute::EcParams(SM2_PARAMS.to_vec())],
            &[Attribute::Derive(true)],
        )
        .unwrap()
    };
    let (a_pub, a_priv) = keygen();
    let (ra_pub, ra_priv) = keygen();
    let point = |h| match &s.get_attributes(h, &[AttributeType::EcPoint]).unwrap()[0] {
        Attribute::EcPoint(p) => p[2..].to_vec(),
        a => panic!("{a:?}"),
    };
    let (a_point, ra_point) = (point(a_pub), point(ra_pub));
    // The peer, B, outside the token.
    let b = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let b_point = b.public_key().unwrap().ec_point().unwrap();
    let bx = Sm2KeyExchange::new(ExchangeRole::Responder, &b, DEFAULT_ID).unwrap();
    let rb = bx.ephemeral_point();
    let a_public = PublicKey::from_ec_point(KeyAlg::Sm2, &a_point).unwrap();
    let b_out = bx.finish(&a_public, DEFAULT_ID, &ra_point, 16).unwrap();
    // A, through C_DeriveKey.
    let params = Sm2ExchangeParams {
        is_initiator: 1,
        p_own_id: std::ptr::null(),
        ul_own_id_len: 0,
        h_own_ephemeral: ra_priv.handle() as std::ffi::c_ulong,
        p_peer_public: b_point.as_ptr(),
        ul_peer_public_len: b_point.len() as _,
        p_peer_id: DEFAULT_ID.as_ptr(),
        ul_peer_id_len: DEFAULT_ID.len() as _,
        p_peer_ephemeral: rb.as_ptr(),
        ul_peer_ephemeral_len: rb.len() as _,
    };
    let mech = Mechanism::VendorDefined(VendorDefinedMechanism::new(
        MechanismType::new_vendor_defined(0x8055_4B05).unwrap(),
        Some(&params),
    ));
    let k = s
        .derive_key(
            &mech,
            a_priv,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::ValueLen(16.into()),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .unwrap();
    let v = s.get_attributes(k, &[AttributeType::Value]).unwrap();
    assert_eq!(v[0], Attribute::Value(b_out.key.to_vec()));
}

/// A P-256 session key pair with a signing private key, private (`CKA_PRIVATE`) or not.
fn p256_session_pair(s: &Session, private: bool) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::EcParams(b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07".to_vec()),
        ],
        &[
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::Private(private),
        ],
    )
    .unwrap()
}

/// A key pair just generated signs at once with the key it was made with (its parsed
/// form is cached on the new objects), the public object verifies, and the cache follows
/// the login rules: after a logout the private key refuses to sign, and after a new
/// login it signs again, parsed from its attributes.
#[test]
fn generated_pair_signs_at_once_and_follows_logout() {
    let slot = token("gen-sign");
    let s = user_session(slot);
    let (public, private) = p256_session_pair(&s, true);
    let msg = [7u8; 32];
    let sig = s.sign(&Mechanism::Ecdsa, private, &msg).unwrap();
    s.verify(&Mechanism::Ecdsa, public, &msg, &sig).unwrap();
    s.logout().unwrap();
    // Logged out: the private object is not even visible.
    assert_eq!(
        rv(s.sign(&Mechanism::Ecdsa, private, &msg)),
        RvError::KeyHandleInvalid
    );
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let sig = s.sign(&Mechanism::Ecdsa, private, &msg).unwrap();
    s.verify(&Mechanism::Ecdsa, public, &msg, &sig).unwrap();
    // A private key generated without CKA_PRIVATE while logged out of a public session
    // still needs the login to sign, as it did before the cache.
    s.logout().unwrap();
    let (_, open_private) = p256_session_pair(&s, false);
    assert_eq!(
        rv(s.sign(&Mechanism::Ecdsa, open_private, &msg)),
        RvError::UserNotLoggedIn
    );
}
