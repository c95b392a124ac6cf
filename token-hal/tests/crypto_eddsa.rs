//! Ed25519, Ed25519ctx, Ed25519ph, Ed448, Ed448ph; ECDSA P-521; key formats and
//! `CKA_EC_PARAMS` mapping.
//!
//! Vectors: RFC 8032 §7.1 (Ed25519 TEST 1–3), §7.2 (Ed25519ctx foo/bar), §7.3
//! (Ed25519ph "abc"), §7.4 (Ed448 blank, 1 octet, 1 octet with context, 256 octets),
//! §7.5 (Ed448ph "abc", with and without context); Project Wycheproof `ed25519` and
//! `ed448` verification sets; Wycheproof `ecdsa_secp521r1_sha512_p1363`.
#![allow(clippy::unwrap_used)]

use token_hal::Error;
use token_hal::crypto::{HashAlg, KeyAlg, PrivateKey, PublicKey, SignMech};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

fn eddsa(ph: bool, ctx: &str) -> SignMech {
    SignMech::EdDsa {
        ph,
        context: if ctx.is_empty() { None } else { Some(h(ctx)) },
    }
}

/// (alg, seed, public, message, ph, context, signature)
const VECTORS: &[(KeyAlg, &str, &str, &str, bool, &str, &str)] = &[
    // RFC 8032 §7.1 TEST 1
    (
        KeyAlg::Ed25519,
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        false,
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    // RFC 8032 §7.1 TEST 2
    (
        KeyAlg::Ed25519,
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        false,
        "",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    // RFC 8032 §7.2 Ed25519ctx "foo"
    (
        KeyAlg::Ed25519,
        "0305334e381af78f141cb666f6199f57bc3495335a256a95bd2a55bf546663f6",
        "dfc9425e4f968f7f0c29f0259cf5f9aed6851c2bb4ad8bfb860cfee0ab248292",
        "f726936d19c800494e3fdaff20b276a8",
        false,
        "666f6f",
        "55a4cc2f70a54e04288c5f4cd1e45a7bb520b36292911876cada7323198dd87a8b36950b95130022907a7fb7c4e9b2d5f6cca685a587b4b21f4b888e4e7edb0d",
    ),
    // RFC 8032 §7.2 Ed25519ctx "bar"
    (
        KeyAlg::Ed25519,
        "0305334e381af78f141cb666f6199f57bc3495335a256a95bd2a55bf546663f6",
        "dfc9425e4f968f7f0c29f0259cf5f9aed6851c2bb4ad8bfb860cfee0ab248292",
        "f726936d19c800494e3fdaff20b276a8",
        false,
        "626172",
        "fc60d5872fc46b3aa69f8b5b4351d5808f92bcc044606db097abab6dbcb1aee3216c48e8b3b66431b5b186d1d28f8ee15a5ca2df6668346291c2043d4eb3e90d",
    ),
    // RFC 8032 §7.3 Ed25519ph "abc"
    (
        KeyAlg::Ed25519,
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "616263",
        true,
        "",
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae4131f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
    ),
    // RFC 8032 §7.4 Ed448 blank
    (
        KeyAlg::Ed448,
        "6c82a562cb808d10d632be89c8513ebf6c929f34ddfa8c9f63c9960ef6e348a3528c8a3fcc2f044e39a3fc5b94492f8f032e7549a20098f95b",
        "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778edf124769b46c7061bd6783df1e50f6cd1fa1abeafe8256180",
        "",
        false,
        "",
        "533a37f6bbe457251f023c0d88f976ae2dfb504a843e34d2074fd823d41a591f2b233f034f628281f2fd7a22ddd47d7828c59bd0a21bfd3980ff0d2028d4b18a9df63e006c5d1c2d345b925d8dc00b4104852db99ac5c7cdda8530a113a0f4dbb61149f05a7363268c71d95808ff2e652600",
    ),
    // RFC 8032 §7.4 Ed448 1 octet
    (
        KeyAlg::Ed448,
        "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463afbea67c5e8d2877c5e3bc397a659949ef8021e954e0a12274e",
        "43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c0866aea01eb00742802b8438ea4cb82169c235160627b4c3a9480",
        "03",
        false,
        "",
        "26b8f91727bd62897af15e41eb43c377efb9c610d48f2335cb0bd0087810f4352541b143c4b981b7e18f62de8ccdf633fc1bf037ab7cd779805e0dbcc0aae1cbcee1afb2e027df36bc04dcecbf154336c19f0af7e0a6472905e799f1953d2a0ff3348ab21aa4adafd1d234441cf807c03a00",
    ),
    // RFC 8032 §7.4 Ed448 1 octet, context "foo"
    (
        KeyAlg::Ed448,
        "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463afbea67c5e8d2877c5e3bc397a659949ef8021e954e0a12274e",
        "43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c0866aea01eb00742802b8438ea4cb82169c235160627b4c3a9480",
        "03",
        false,
        "666f6f",
        "d4f8f6131770dd46f40867d6fd5d5055de43541f8c5e35abbcd001b32a89f7d2151f7647f11d8ca2ae279fb842d607217fce6e042f6815ea000c85741de5c8da1144a6a1aba7f96de42505d7a7298524fda538fccbbb754f578c1cad10d54d0d5428407e85dcbc98a49155c13764e66c3c00",
    ),
    // RFC 8032 §7.5 Ed448ph "abc"
    (
        KeyAlg::Ed448,
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42ef7822e0d5104127dc05d6dbefde69e3ab2cec7c867c6e2c49",
        "259b71c19f83ef77a7abd26524cbdb3161b590a48f7d17de3ee0ba9c52beb743c09428a131d6b1b57303d90d8132c276d5ed3d5d01c0f53880",
        "616263",
        true,
        "",
        "822f6901f7480f3d5f562c592994d9693602875614483256505600bbc281ae381f54d6bce2ea911574932f52a4e6cadd78769375ec3ffd1b801a0d9b3f4030cd433964b6457ea39476511214f97469b57dd32dbc560a9a94d00bff07620464a3ad203df7dc7ce360c3cd3696d9d9fab90f00",
    ),
    // RFC 8032 §7.5 Ed448ph "abc", context "foo"
    (
        KeyAlg::Ed448,
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42ef7822e0d5104127dc05d6dbefde69e3ab2cec7c867c6e2c49",
        "259b71c19f83ef77a7abd26524cbdb3161b590a48f7d17de3ee0ba9c52beb743c09428a131d6b1b57303d90d8132c276d5ed3d5d01c0f53880",
        "616263",
        true,
        "666f6f",
        "c32299d46ec8ff02b54540982814dce9a05812f81962b649d528095916a2aa481065b1580423ef927ecf0af5888f90da0f6a9a85ad5dc3f280d91224ba9911a3653d00e484e2ce232521481c8658df304bb7745a73514cdb9bf3e15784ab71284f8d0704a608c54a6b62d97beb511d132100",
    ),
];

#[test]
fn rfc8032_vectors_sign_and_verify() {
    for (i, (alg, seed, public, msg, ph, ctx, sig)) in VECTORS.iter().enumerate() {
        let k = PrivateKey::from_raw_private(*alg, &h(seed)).unwrap();
        let pk = k.public_key().unwrap();
        assert_eq!(pk.ec_point().unwrap(), h(public), "vector {i}");
        let mech = eddsa(*ph, ctx);
        let got = k.sign(&mech, &h(msg)).unwrap();
        assert_eq!(hex::encode(&got), *sig, "vector {i}");
        assert_eq!(got.len(), alg.signature_len().unwrap());
        // Verify through a public key rebuilt from the raw value only.
        let pk2 = PublicKey::from_ec_point(*alg, &h(public)).unwrap();
        pk2.verify(&mech, &h(msg), &got).unwrap();
        // Tampered signature, other message, other context, other variant all fail.
        let mut bad = got.clone();
        bad[3] ^= 1;
        assert!(matches!(
            pk2.verify(&mech, &h(msg), &bad),
            Err(Error::SignatureInvalid)
        ));
        let mut bad_s = got.clone();
        let l = bad_s.len();
        bad_s[l - 2] ^= 1;
        assert!(pk2.verify(&mech, &h(msg), &bad_s).is_err());
        assert!(pk2.verify(&mech, b"other", &got).is_err());
        assert!(pk2.verify(&eddsa(*ph, "7a7a"), &h(msg), &got).is_err());
        assert!(pk2.verify(&eddsa(!*ph, ctx), &h(msg), &got).is_err());
        assert!(pk2.verify(&mech, &h(msg), &got[..got.len() - 1]).is_err());
        // PKCS#8 and SPKI round trips keep the key.
        let k2 = PrivateKey::from_pkcs8_der(&k.to_pkcs8_der()).unwrap();
        assert_eq!(k2.raw_private_value().unwrap().to_vec(), h(seed));
        assert_eq!(PublicKey::from_spki_der(pk.spki_der()).unwrap(), pk);
    }
}

#[test]
fn ed25519ph_and_ctx_round_trips_and_limits() {
    for alg in [KeyAlg::Ed25519, KeyAlg::Ed448] {
        let k = PrivateKey::generate(alg).unwrap();
        let pk = k.public_key().unwrap();
        for (ph, ctx) in [
            (false, None),
            (true, None),
            (true, Some(b"context".to_vec())),
            (false, Some(b"context".to_vec())),
        ] {
            let mech = SignMech::EdDsa { ph, context: ctx };
            let sig = k.sign(&mech, b"\xff\x55\xdd").unwrap();
            pk.verify(&mech, b"\xff\x55\xdd", &sig).unwrap();
        }
        let long = SignMech::EdDsa {
            ph: false,
            context: Some(vec![1u8; 256]),
        };
        assert!(matches!(
            k.sign(&long, b"m"),
            Err(Error::InvalidArgument(_))
        ));
        let max = SignMech::EdDsa {
            ph: true,
            context: Some(vec![1u8; 255]),
        };
        let sig = k.sign(&max, b"m").unwrap();
        pk.verify(&max, b"m", &sig).unwrap();
        // Not an EdDSA mechanism.
        assert!(k.sign(&SignMech::Ecdsa(HashAlg::Sha256), b"m").is_err());
    }
    // On Ed25519 an empty context is plain Ed25519 (deterministic, so equal bytes).
    let k = PrivateKey::generate(KeyAlg::Ed25519).unwrap();
    let a = k.sign(&eddsa(false, ""), b"m").unwrap();
    let b = k
        .sign(
            &SignMech::EdDsa {
                ph: false,
                context: Some(Vec::new()),
            },
            b"m",
        )
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn wycheproof_eddsa_verify() {
    use wycheproof::TestResult;
    use wycheproof::eddsa::{TestName, TestSet};
    for (name, alg) in [
        (TestName::Ed25519, KeyAlg::Ed25519),
        (TestName::Ed448, KeyAlg::Ed448),
    ] {
        let set = TestSet::load(name).unwrap();
        let mut n = 0;
        for g in &set.test_groups {
            let pk = match PublicKey::from_ec_point(alg, &g.key.pk) {
                Ok(pk) => pk,
                Err(_) => continue,
            };
            for t in &g.tests {
                let r = pk.verify(&eddsa(false, ""), &t.msg, &t.sig);
                match t.result {
                    TestResult::Valid => r.unwrap(),
                    TestResult::Invalid => {
                        assert!(r.is_err(), "{alg:?} tc {} {}", t.tc_id, t.comment)
                    }
                    TestResult::Acceptable => {}
                }
                n += 1;
            }
        }
        assert!(n > 80, "{alg:?}: {n}");
    }
}

#[test]
fn p521_ecdsa_sign_verify_and_wycheproof() {
    let k = PrivateKey::generate(KeyAlg::EcP521).unwrap();
    let pk = k.public_key().unwrap();
    for h in [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ] {
        let sig = k.sign(&SignMech::Ecdsa(h), b"msg").unwrap();
        assert_eq!(sig.len(), 132);
        pk.verify(&SignMech::Ecdsa(h), b"msg", &sig).unwrap();
        let mut bad = sig.clone();
        bad[100] ^= 1;
        assert!(pk.verify(&SignMech::Ecdsa(h), b"msg", &bad).is_err());
    }
    let d = token_hal::crypto::hash::digest(HashAlg::Sha256, b"x");
    let sig = k.sign(&SignMech::EcdsaPrehashed, &d).unwrap();
    pk.verify(&SignMech::Ecdsa(HashAlg::Sha256), b"x", &sig)
        .unwrap();
    // PKCS#8 round trip.
    let k2 = PrivateKey::from_pkcs8_der(&k.to_pkcs8_der()).unwrap();
    assert_eq!(k2.public_key().unwrap(), pk);

    use wycheproof::TestResult;
    use wycheproof::ecdsa::{TestName, TestSet};
    let set = TestSet::load(TestName::EcdsaSecp521r1Sha512P1363).unwrap();
    let mut n = 0;
    for g in &set.test_groups {
        let pk = PublicKey::from_ec_point(KeyAlg::EcP521, &g.key.key).unwrap();
        for t in &g.tests {
            let r = pk.verify(&SignMech::Ecdsa(HashAlg::Sha512), &t.msg, &t.sig);
            match t.result {
                TestResult::Valid => r.unwrap(),
                TestResult::Invalid => assert!(r.is_err(), "tc {}", t.tc_id),
                TestResult::Acceptable => {}
            }
            n += 1;
        }
    }
    assert!(n > 100);
}

#[test]
fn ec_params_mapping() {
    let cases: &[(&str, KeyAlg)] = &[
        ("06082a8648ce3d030107", KeyAlg::EcP256),
        ("06052b81040022", KeyAlg::EcP384),
        ("06052b81040023", KeyAlg::EcP521),
        ("06082a811ccf5501822d", KeyAlg::Sm2),
        ("06032b6570", KeyAlg::Ed25519),
        ("06032b6571", KeyAlg::Ed448),
        ("06032b656e", KeyAlg::X25519),
        // PrintableString "edwards25519", "edwards448", "curve25519" (PKCS#11 3.0).
        ("130c656477617264733235353139", KeyAlg::Ed25519),
        ("130a65647761726473343438", KeyAlg::Ed448),
        ("130a63757276653235353139", KeyAlg::X25519),
    ];
    for (der, alg) in cases {
        assert_eq!(KeyAlg::from_ec_params(&h(der)).unwrap(), *alg, "{der}");
        if der.starts_with("06") {
            assert_eq!(alg.to_ec_params().unwrap(), h(der));
            assert_eq!(alg.ec_params_der().unwrap(), &h(der)[..]);
        }
    }
    assert_eq!(KeyAlg::Rsa(2048).to_ec_params(), None);
    // Unknown curve (secp256k1), unknown name, explicit parameters, garbage.
    assert!(matches!(
        KeyAlg::from_ec_params(&h("06052b8104000a")),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        KeyAlg::from_ec_params(&h("1303666f6f")),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        KeyAlg::from_ec_params(&h("3003020101")),
        Err(Error::Unsupported(_))
    ));
    assert!(KeyAlg::from_ec_params(&h("0608")).is_err());
    // A known OID with a byte after it is not a curve.
    assert!(KeyAlg::from_ec_params(&h("06082a8648ce3d03010700")).is_err());
    assert!(KeyAlg::from_ec_params(&[]).is_err());
    assert!(KeyAlg::from_ec_params(&h("0401ff")).is_err());
}

#[test]
fn raw_values_and_bad_keys() {
    // Wrong lengths.
    assert!(PrivateKey::from_raw_private(KeyAlg::Ed25519, &[1u8; 31]).is_err());
    assert!(PrivateKey::from_raw_private(KeyAlg::Ed448, &[1u8; 56]).is_err());
    assert!(PrivateKey::from_raw_private(KeyAlg::X25519, &[1u8; 33]).is_err());
    assert!(PrivateKey::from_raw_private(KeyAlg::EcP256, &[1u8; 33]).is_err());
    assert!(PrivateKey::from_raw_private(KeyAlg::EcP256, &[0u8; 32]).is_err());
    assert!(PrivateKey::from_raw_private(KeyAlg::Rsa(2048), &[1u8; 32]).is_err());
    // Scalars >= n are refused.
    assert!(PrivateKey::from_raw_private(KeyAlg::EcP256, &[0xff; 32]).is_err());
    assert!(PrivateKey::from_raw_private(KeyAlg::Sm2, &[0xff; 32]).is_err());
    // A short EC scalar is left-padded.
    let k = PrivateKey::from_raw_private(KeyAlg::EcP384, &[7u8; 3]).unwrap();
    let v = k.raw_private_value().unwrap();
    assert_eq!(v.len(), 48);
    assert_eq!(&v[45..], &[7, 7, 7]);
    // An Ed25519 public key that is not a curve point; wrong lengths.
    let mut y = [0u8; 32];
    y[0] = 2; // y = 2 is not on edwards25519
    assert!(PublicKey::from_ec_point(KeyAlg::Ed25519, &y).is_err());
    assert!(PublicKey::from_ec_point(KeyAlg::Ed25519, &[9u8; 31]).is_err());
    assert!(PublicKey::from_ec_point(KeyAlg::Ed448, &[9u8; 32]).is_err());
    // RFC 8410 SPKI and PKCS#8 (RFC 8410 §10.1 and §10.3 examples).
    let spki = h(
        "302a300506032b657003210019bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1",
    );
    let pk = PublicKey::from_spki_der(&spki).unwrap();
    assert_eq!(pk.alg(), KeyAlg::Ed25519);
    assert_eq!(pk.spki_der(), &spki[..]);
    let p8 = h(
        "302e020100300506032b657004220420d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842",
    );
    let k = PrivateKey::from_pkcs8_der(&p8).unwrap();
    assert_eq!(k.alg(), KeyAlg::Ed25519);
    assert_eq!(k.to_pkcs8_der().to_vec(), p8);
    // An AlgorithmIdentifier with parameters is not RFC 8410.
    let bad = h(
        "3030020100300706032b65700500 04220420d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842",
    );
    assert!(PrivateKey::from_pkcs8_der(&bad).is_err());
    // X25519 keys do not sign.
    let x = PrivateKey::generate(KeyAlg::X25519).unwrap();
    assert!(x.sign(&eddsa(false, ""), b"m").is_err());
}

#[test]
fn self_signed_certificates_for_new_key_types() {
    use der::{Decode, Encode};
    use token_hal::cert::{self, SelfSignedSpec};
    use token_hal::model::KeyUsage;
    for (alg, sig_oid) in [
        (KeyAlg::Ed25519, "1.3.101.112"),
        (KeyAlg::Ed448, "1.3.101.113"),
        (KeyAlg::EcP521, "1.2.840.10045.4.3.4"),
    ] {
        let key = PrivateKey::generate(alg).unwrap();
        let public = key.public_key().unwrap();
        let spec = SelfSignedSpec::new("new key types", KeyUsage::Sign);
        let der = cert::self_signed(&public, &spec, |mech, tbs| key.sign(mech, tbs)).unwrap();
        assert_eq!(cert::public_key(&der).unwrap(), public);
        let s = cert::summarize(&der).unwrap();
        assert_eq!(s.public_key, Some(alg));
        let c = x509_cert::Certificate::from_der(&der).unwrap();
        assert_eq!(c.signature_algorithm().oid.to_string(), sig_oid);
        let tbs = c.tbs_certificate().to_der().unwrap();
        let sig = c.signature().raw_bytes();
        let (mech, raw) = match alg {
            KeyAlg::EcP521 => (
                SignMech::Ecdsa(HashAlg::Sha512),
                token_hal::crypto::sig::der_to_raw(sig, 66).unwrap(),
            ),
            _ => (eddsa(false, ""), sig.to_vec()),
        };
        public.verify(&mech, &tbs, &raw).unwrap();
    }
    // X25519 keys cannot sign certificates.
    let x = PrivateKey::generate(KeyAlg::X25519).unwrap();
    let spec = SelfSignedSpec::new("x", KeyUsage::Sign);
    assert!(cert::self_signed(&x.public_key().unwrap(), &spec, |m, t| x.sign(m, t)).is_err());
}
