//! Where a PKCS#11 key pair lands (docs/mapping.md), through the built libukey_pkcs11.so as
//! a client loads it (the `cryptoki` crate), with the `ukey` CLI (another process, straight
//! on token-hal) as the witness of what the container model holds:
//! - SM2 and RSA ≤ 2048 token pairs with a sensitive private key land in a container, by
//!   CKA_ID, in the slot the template asks for, keeping every PKCS#11 attribute;
//! - pairs without CKA_ID get a container of their own; a taken slot, a non-sensitive key
//!   or another key type stays a generic object;
//! - destroying the public half keeps the key pair; destroying the private half empties
//!   the slot, the public half staying an object with its handle;
//! - extractable container keys wrap, copies work, the role latch persists.
//!
//! Each test runs in a child process (the library reads its configuration once per
//! process), over its own throw-away token.

#![allow(clippy::unwrap_used)]

mod skf_common;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use serde_json::Value;
use skf_common::{is_child, run_child, ukey, with_app};
use ukey_tests::pkcs11_lib;

/// OID 1.2.156.10197.1.301 (SM2) as CKA_EC_PARAMS.
const SM2_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
/// OID 1.2.840.10045.3.1.7 (P-256).
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const CKM_SM2_KEY_PAIR_GEN: u64 = 0x8000_8001;
const CKM_SM3_SM2: u64 = 0x8000_8100;

fn parent(test: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    run_child(&conf, test);
}

fn login() -> (Pkcs11, Session) {
    let p11 = Pkcs11::new(pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p11.get_slots_with_token().unwrap()[0];
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new("123456".into())))
        .unwrap();
    (p11, s)
}

/// The containers as the CLI (token-hal, another process) sees them.
fn containers() -> Vec<Value> {
    let conf = std::env::var("UKEY_CONF").unwrap();
    let out = ukey(
        std::path::Path::new(&conf),
        &["--json", "--token", "bids", "container", "list"],
    );
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn container<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["name"] == name)
}

fn sm2_pair(
    s: &Session,
    pub_extra: &[Attribute],
    priv_extra: &[Attribute],
) -> (ObjectHandle, ObjectHandle) {
    let mut pt = vec![
        Attribute::Token(true),
        Attribute::EcParams(SM2_PARAMS.into()),
    ];
    pt.extend_from_slice(pub_extra);
    let mut st = vec![Attribute::Token(true)];
    st.extend_from_slice(priv_extra);
    s.generate_key_pair(
        &Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
            cryptoki::mechanism::MechanismType::new_vendor_defined(CKM_SM2_KEY_PAIR_GEN).unwrap(),
            None,
        )),
        &pt,
        &st,
    )
    .unwrap()
}

fn rsa_pair(
    s: &Session,
    bits: u64,
    pub_extra: &[Attribute],
    priv_extra: &[Attribute],
) -> (ObjectHandle, ObjectHandle) {
    let mut pt = vec![Attribute::Token(true), Attribute::ModulusBits(bits.into())];
    pt.extend_from_slice(pub_extra);
    let mut st = vec![Attribute::Token(true)];
    st.extend_from_slice(priv_extra);
    s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &pt, &st)
        .unwrap()
}

fn sm3_sm2() -> Mechanism<'static> {
    Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        cryptoki::mechanism::MechanismType::new_vendor_defined(CKM_SM3_SM2).unwrap(),
        None,
    ))
}

fn label_of(s: &Session, h: ObjectHandle) -> Vec<u8> {
    match s.get_attributes(h, &[AttributeType::Label]).unwrap().pop() {
        Some(Attribute::Label(l)) => l,
        other => panic!("no label: {other:?}"),
    }
}

fn rv(e: Error) -> RvError {
    match e {
        Error::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other:?}"),
    }
}

/// An SM2 pair with CKA_ID and CKA_LABEL lands in a new container named by the label,
/// in the signing slot, and keeps its PKCS#11 attributes across a re-initialisation.
#[test]
fn sm2_pair_lands_in_a_container() {
    parent("sm2_child");
}

#[test]
fn sm2_child() {
    if !is_child("sm2_child") {
        return;
    }
    let (p11, s) = login();
    let (pk, sk) = sm2_pair(
        &s,
        &[
            Attribute::Id(vec![0xb1, 0xd0]),
            Attribute::Label(b"bidder".to_vec()),
        ],
        &[
            Attribute::Id(vec![0xb1, 0xd0]),
            Attribute::Label(b"bidder".to_vec()),
            Attribute::Sign(true),
            Attribute::Extractable(false),
        ],
    );
    let list = containers();
    let c = container(&list, "bidder").expect("container bidder");
    assert_eq!(c["id"], "b1d0");
    assert_eq!(c["sign"]["alg"], "SM2");
    assert!(c["enc"].is_null());
    // It signs inside the container; the public half verifies.
    let sig = s.sign(&sm3_sm2(), sk, b"bid").unwrap();
    s.verify(&sm3_sm2(), pk, b"bid", &sig).unwrap();
    // PKCS#11's own attributes: changed, and still there after C_Finalize.
    s.update_attributes(sk, &[Attribute::Label(b"renamed".to_vec())])
        .unwrap();
    assert_eq!(label_of(&s, sk), b"renamed");
    drop(s);
    p11.finalize().unwrap();
    let (p11, s) = login();
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![0xb1, 0xd0]),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    let attrs = s
        .get_attributes(
            found[0],
            &[
                AttributeType::Label,
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::Local,
                AttributeType::Destroyable,
                AttributeType::KeyType,
            ],
        )
        .unwrap();
    assert!(attrs.contains(&Attribute::Label(b"renamed".to_vec())));
    assert!(attrs.contains(&Attribute::Extractable(false)));
    assert!(attrs.contains(&Attribute::Sensitive(true)));
    assert!(attrs.contains(&Attribute::Local(true)));
    assert!(attrs.contains(&Attribute::Destroyable(true)));
    // The private value stays unreadable.
    let v = s.get_attributes(found[0], &[AttributeType::Value]).unwrap();
    assert!(v.is_empty(), "{v:?}");
    // Exactly the two halves are objects: the overlay records are not.
    assert_eq!(s.find_objects(&[]).unwrap().len(), 2);
    drop(s);
    p11.finalize().unwrap();
}

/// Without CKA_ID each pair gets a container of its own (the label is used once, then a
/// fresh name), and its CKA_ID stays what the template said (empty). A second signing
/// pair with a taken CKA_ID, a non-sensitive key and a P-256 key stay generic objects.
#[test]
fn which_pairs_land() {
    parent("which_child");
}

#[test]
fn which_child() {
    if !is_child("which_child") {
        return;
    }
    let (p11, s) = login();
    let (_, a) = sm2_pair(&s, &[], &[Attribute::Label(b"same".to_vec())]);
    let (_, b) = sm2_pair(&s, &[], &[Attribute::Label(b"same".to_vec())]);
    let list = containers();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(container(&list, "same").is_some());
    assert!(
        list.iter()
            .any(|c| c["name"].as_str().unwrap().starts_with("p11-"))
    );
    for h in [a, b] {
        assert_eq!(
            s.get_attributes(h, &[AttributeType::Id]).unwrap(),
            [Attribute::Id(vec![])]
        );
    }
    // Decrypt without sign: the encryption slot of the container with that id.
    rsa_pair(
        &s,
        1024,
        &[Attribute::Id(b"k1".to_vec())],
        &[Attribute::Id(b"k1".to_vec()), Attribute::Decrypt(true)],
    );
    // Then a signing pair of the same family joins it...
    rsa_pair(
        &s,
        2048,
        &[Attribute::Id(b"k1".to_vec())],
        &[Attribute::Id(b"k1".to_vec()), Attribute::Sign(true)],
    );
    // ...and a second one finds the slot taken: a generic object.
    let (_, extra) = rsa_pair(
        &s,
        1024,
        &[Attribute::Id(b"k1".to_vec())],
        &[Attribute::Id(b"k1".to_vec()), Attribute::Sign(true)],
    );
    let list = containers();
    let k1 = list.iter().find(|c| c["id"] == hex(b"k1")).unwrap();
    assert_eq!(k1["enc"]["alg"], "RSA 1024");
    assert_eq!(k1["sign"]["alg"], "RSA 2048");
    let privs = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(b"k1".to_vec()),
        ])
        .unwrap();
    assert_eq!(privs.len(), 3, "two in the container, one generic");
    assert!(privs.contains(&extra));
    // Not sensitive, RSA above 2048 bits, P-256: none lands.
    sm2_pair(
        &s,
        &[Attribute::Id(b"ns".to_vec())],
        &[Attribute::Id(b"ns".to_vec()), Attribute::Sensitive(false)],
    );
    rsa_pair(
        &s,
        3072,
        &[Attribute::Id(b"big".to_vec())],
        &[Attribute::Id(b"big".to_vec())],
    );
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::EcParams(P256_PARAMS.into()),
            Attribute::Id(b"ec".to_vec()),
        ],
        &[Attribute::Token(true), Attribute::Id(b"ec".to_vec())],
    )
    .unwrap();
    let list = containers();
    assert_eq!(list.len(), 3, "{list:?}");
    // Session key pairs never reach the model.
    let (spk, ssk) = s
        .generate_key_pair(
            &Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
                cryptoki::mechanism::MechanismType::new_vendor_defined(CKM_SM2_KEY_PAIR_GEN)
                    .unwrap(),
                None,
            )),
            &[Attribute::EcParams(SM2_PARAMS.into())],
            &[],
        )
        .unwrap();
    assert_eq!(containers().len(), 3);
    s.destroy_object(spk).unwrap();
    s.destroy_object(ssk).unwrap();
    drop(s);
    p11.finalize().unwrap();
}

/// Imports a certificate for the signing key of `container` (its public key, signed by a
/// throw-away OpenSSL key: the token checks only that the public key matches).
fn import_cert_for(conf: &std::path::Path, container: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    ukey(
        conf,
        &[
            "--token",
            "bids",
            "key",
            "pub",
            "--container",
            container,
            "-o",
            &p("pub.pem"),
        ],
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    run(&["genrsa", "-out", &p("ca.key"), "2048"]);
    run(&[
        "req",
        "-new",
        "-key",
        &p("ca.key"),
        "-subj",
        "/CN=B",
        "-out",
        &p("r.csr"),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p("r.csr"),
        "-signkey",
        &p("ca.key"),
        "-force_pubkey",
        &p("pub.pem"),
        "-out",
        &p("cert.pem"),
    ]);
    ukey(
        conf,
        &[
            "--token",
            "bids",
            "--pin",
            "123456",
            "cert",
            "import",
            "--container",
            container,
            &p("cert.pem"),
        ],
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Destroying halves: public first keeps the pair in the container; private first empties
/// the slot, the public half staying usable under the same handle, with its certificate.
#[test]
fn destroy_halves() {
    parent("destroy_child");
}

#[test]
fn destroy_child() {
    if !is_child("destroy_child") {
        return;
    }
    let (p11, s) = login();
    // Public first.
    let (pk, sk) = sm2_pair(
        &s,
        &[Attribute::Id(b"a".to_vec())],
        &[
            Attribute::Id(b"a".to_vec()),
            Attribute::Label(b"a".to_vec()),
        ],
    );
    s.destroy_object(pk).unwrap();
    assert_eq!(
        rv(s.get_attributes(pk, &[AttributeType::Label]).unwrap_err()),
        RvError::ObjectHandleInvalid
    );
    let list = containers();
    assert_eq!(container(&list, "a").unwrap()["sign"]["alg"], "SM2");
    s.sign(&sm3_sm2(), sk, b"x").unwrap();
    s.destroy_object(sk).unwrap();
    assert!(containers().is_empty(), "the container PKCS#11 made goes");
    assert!(s.find_objects(&[]).unwrap().is_empty());

    // Private first, in a container that holds a certificate: the public key and the
    // certificate stay objects.
    let (pk, sk) = rsa_pair(
        &s,
        1024,
        &[Attribute::Id(b"b".to_vec()), Attribute::Verify(true)],
        &[
            Attribute::Id(b"b".to_vec()),
            Attribute::Label(b"b".to_vec()),
            Attribute::Sign(true),
        ],
    );
    let conf = std::env::var("UKEY_CONF").unwrap();
    let conf = std::path::Path::new(&conf);
    import_cert_for(conf, "b");
    let sig = s.sign(&Mechanism::RsaPkcs, sk, b"data").unwrap();
    s.destroy_object(sk).unwrap();
    assert!(
        container(&containers(), "b").is_none(),
        "the emptied container goes"
    );
    s.verify(&Mechanism::RsaPkcs, pk, b"data", &sig).unwrap();
    let certs = s
        .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
        .unwrap();
    assert_eq!(certs.len(), 1, "the certificate stays");
    s.destroy_object(certs[0]).unwrap();
    s.destroy_object(pk).unwrap();
    assert!(s.find_objects(&[]).unwrap().is_empty());
    // A container SKF or the CLI made stays when PKCS#11 empties it.
    ukey(
        conf,
        &[
            "--token",
            "bids",
            "--pin",
            "123456",
            "container",
            "create",
            "kept",
            "--id",
            "6b",
        ],
    );
    let (pk, sk) = sm2_pair(
        &s,
        &[Attribute::Id(b"k".to_vec())],
        &[Attribute::Id(b"k".to_vec())],
    );
    s.destroy_object(sk).unwrap();
    s.destroy_object(pk).unwrap();
    assert!(container(&containers(), "kept").is_some());
    drop(s);
    p11.finalize().unwrap();
}

/// An extractable container key wraps (and the unwrapped copy signs the same); an
/// unextractable one does not; C_CopyObject copies a container key; the wrap/encrypt
/// role latch of a container key survives a re-initialisation.
#[test]
fn wrap_copy_and_latch() {
    parent("wrap_child");
}

#[test]
fn wrap_child() {
    if !is_child("wrap_child") {
        return;
    }
    let (p11, s) = login();
    let (_, sk) = rsa_pair(
        &s,
        1024,
        &[Attribute::Id(b"x".to_vec())],
        &[
            Attribute::Id(b"x".to_vec()),
            Attribute::Sign(true),
            Attribute::Extractable(true),
        ],
    );
    assert_eq!(containers().len(), 1);
    let kek = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
            ],
        )
        .unwrap();
    let wrapped = s.wrap_key(&Mechanism::AesCbcPad([7; 16]), kek, sk).unwrap();
    let back = s
        .unwrap_key(
            &Mechanism::AesCbcPad([7; 16]),
            kek,
            &wrapped,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    assert_eq!(
        s.sign(&Mechanism::RsaPkcs, sk, b"m").unwrap(),
        s.sign(&Mechanism::RsaPkcs, back, b"m").unwrap()
    );
    // A copy (a session object) signs the same too.
    let copy = s.copy_object(sk, &[Attribute::Token(false)]).unwrap();
    assert_eq!(
        s.sign(&Mechanism::RsaPkcs, sk, b"m").unwrap(),
        s.sign(&Mechanism::RsaPkcs, copy, b"m").unwrap()
    );
    // CKA_EXTRACTABLE only goes true → false; then the key no longer wraps.
    s.update_attributes(sk, &[Attribute::Extractable(false)])
        .unwrap();
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesCbcPad([7; 16]), kek, sk)
            .unwrap_err()),
        RvError::KeyUnextractable
    );
    assert!(
        s.update_attributes(sk, &[Attribute::Extractable(true)])
            .is_err()
    );

    // The role latch: an encryption pair used to decrypt refuses to unwrap afterwards,
    // in a later C_Initialize as well.
    let (epk, esk) = rsa_pair(
        &s,
        1024,
        &[Attribute::Id(b"e".to_vec())],
        &[Attribute::Id(b"e".to_vec()), Attribute::Decrypt(true)],
    );
    let ct = s.encrypt(&Mechanism::RsaPkcs, epk, b"secret").unwrap();
    assert_eq!(s.decrypt(&Mechanism::RsaPkcs, esk, &ct).unwrap(), b"secret");
    drop(s);
    p11.finalize().unwrap();
    let (p11, s) = login();
    let esk = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(b"e".to_vec()),
        ])
        .unwrap()[0];
    let err = s
        .unwrap_key(
            &Mechanism::RsaPkcs,
            esk,
            &ct,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
            ],
        )
        .unwrap_err();
    assert_eq!(rv(err), RvError::KeyFunctionNotPermitted);
    drop(s);
    p11.finalize().unwrap();
}
