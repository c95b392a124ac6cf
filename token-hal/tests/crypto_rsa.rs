//! Raw RSA (CKM_RSA_X_509) and OAEP with separate label and MGF1 hashes.
//!
//! Vectors: Project Wycheproof `rsa_oaep_2048_{sha1_mgf1sha1, sha256_mgf1sha1,
//! sha256_mgf1sha256, sha512_mgf1sha1, sha224_mgf1sha224}` (labels included, invalid
//! paddings rejected). Raw RSA is checked against PKCS#1 v1.5 (RFC 8017 §8.2.1/§9.2):
//! the raw private operation on a hand-built EMSA-PKCS1-v1_5 block equals the
//! PKCS#1 v1.5 signature, and a hand-built EME-PKCS1-v1_5 block raw-encrypted
//! decrypts with PKCS#1 v1.5.
#![allow(clippy::unwrap_used)]

use token_hal::Error;
use token_hal::crypto::{EncMech, HashAlg, KeyAlg, PrivateKey, SignMech};

#[test]
fn raw_rsa_matches_pkcs1_and_round_trips() {
    let k = PrivateKey::generate(KeyAlg::Rsa(2048)).unwrap();
    let pk = k.public_key().unwrap();
    let n = pk.rsa_components().unwrap().0;
    let klen = 256;
    // EMSA-PKCS1-v1_5 over a 35-byte T: 00 01 FF..FF 00 T.
    let t: Vec<u8> = (0..35u8).collect();
    let mut em = vec![0x00, 0x01];
    em.resize(klen - t.len() - 1, 0xff);
    em.push(0);
    em.extend_from_slice(&t);
    let raw_sig = k.sign(&SignMech::RsaRaw, &em).unwrap();
    assert_eq!(raw_sig.len(), klen);
    assert_eq!(raw_sig, k.sign(&SignMech::RsaPkcs1Raw, &t).unwrap());
    pk.verify(&SignMech::RsaRaw, &em, &raw_sig).unwrap();
    pk.verify(&SignMech::RsaPkcs1Raw, &t, &raw_sig).unwrap();
    // The input's leading zero byte may be left out.
    pk.verify(&SignMech::RsaRaw, &em[1..], &raw_sig).unwrap();
    let mut bad = raw_sig.clone();
    bad[10] ^= 1;
    assert!(matches!(
        pk.verify(&SignMech::RsaRaw, &em, &bad),
        Err(Error::SignatureInvalid)
    ));
    assert!(pk.verify(&SignMech::RsaRaw, b"other", &raw_sig).is_err());
    // EME-PKCS1-v1_5: 00 02 PS(nonzero) 00 M, raw-encrypted, decrypts with PKCS#1.
    let m = b"session key bytes";
    let mut eb = vec![0x00, 0x02];
    eb.resize(klen - m.len() - 1, 0x5a);
    eb.push(0);
    eb.extend_from_slice(m);
    let c = pk.encrypt(&EncMech::RsaRaw, &eb).unwrap();
    assert_eq!(c.len(), klen);
    assert_eq!(&k.decrypt(&EncMech::RsaPkcs1, &c).unwrap()[..], m);
    assert_eq!(&k.decrypt(&EncMech::RsaRaw, &c).unwrap()[..], &eb[..]);
    // Short inputs come back left-padded to the modulus length.
    let c = pk.encrypt(&EncMech::RsaRaw, &[1, 2, 3]).unwrap();
    let p = k.decrypt(&EncMech::RsaRaw, &c).unwrap();
    assert_eq!(p.len(), klen);
    assert_eq!(&p[klen - 3..], &[1, 2, 3]);
    assert!(p[..klen - 3].iter().all(|&b| b == 0));
    // Inputs not below the modulus, or too long, are refused.
    assert!(matches!(
        pk.encrypt(&EncMech::RsaRaw, &n),
        Err(Error::InvalidData(_))
    ));
    assert!(k.sign(&SignMech::RsaRaw, &n).is_err());
    assert!(k.sign(&SignMech::RsaRaw, &[0xff; 256]).is_err());
    assert!(k.sign(&SignMech::RsaRaw, &[1; 257]).is_err());
    assert!(k.decrypt(&EncMech::RsaRaw, &[1; 255]).is_err());
    // Raw RSA is RSA-only.
    let ec = PrivateKey::generate(KeyAlg::EcP256).unwrap();
    assert!(ec.sign(&SignMech::RsaRaw, &[1]).is_err());
}

#[test]
fn oaep_label_and_mgf_round_trips() {
    let k = PrivateKey::generate(KeyAlg::Rsa(2048)).unwrap();
    let pk = k.public_key().unwrap();
    for (hash, mgf1) in [
        (HashAlg::Sha1, HashAlg::Sha1),
        (HashAlg::Sha256, HashAlg::Sha1),
        (HashAlg::Sha384, HashAlg::Sha256),
        (HashAlg::Sha512, HashAlg::Sha512),
    ] {
        let mech = EncMech::RsaOaepMgf {
            hash,
            mgf1,
            label: vec![1, 2, 3, 4, 5, 6, 7, 8],
        };
        let c = pk.encrypt(&mech, b"secret").unwrap();
        assert_eq!(&k.decrypt(&mech, &c).unwrap()[..], b"secret");
        // Another label, another MGF hash: refused.
        let other = EncMech::RsaOaepMgf {
            hash,
            mgf1,
            label: vec![9],
        };
        assert!(matches!(k.decrypt(&other, &c), Err(Error::DecryptFailed)));
        let other_mgf = EncMech::RsaOaepMgf {
            hash,
            mgf1: if mgf1 == HashAlg::Sha1 {
                HashAlg::Sha224
            } else {
                HashAlg::Sha1
            },
            label: vec![1, 2, 3, 4, 5, 6, 7, 8],
        };
        assert!(k.decrypt(&other_mgf, &c).is_err());
    }
    // RsaOaepMgf with equal hashes is RsaOaep.
    let c = pk
        .encrypt(
            &EncMech::RsaOaep {
                hash: HashAlg::Sha256,
                label: b"L".to_vec(),
            },
            b"x",
        )
        .unwrap();
    let d = k
        .decrypt(
            &EncMech::RsaOaepMgf {
                hash: HashAlg::Sha256,
                mgf1: HashAlg::Sha256,
                label: b"L".to_vec(),
            },
            &c,
        )
        .unwrap();
    assert_eq!(&d[..], b"x");
}

#[test]
fn wycheproof_oaep_decrypt() {
    use wycheproof::rsa_oaep::{TestName, TestSet};
    use wycheproof::{HashFunction, TestResult};
    fn hash(h: HashFunction) -> HashAlg {
        match h {
            HashFunction::Sha1 => HashAlg::Sha1,
            HashFunction::Sha2_224 => HashAlg::Sha224,
            HashFunction::Sha2_256 => HashAlg::Sha256,
            HashFunction::Sha2_384 => HashAlg::Sha384,
            HashFunction::Sha2_512 => HashAlg::Sha512,
            other => panic!("{other:?}"),
        }
    }
    for name in [
        TestName::Rsa2048Sha1Mgf1Sha1,
        TestName::Rsa2048Sha256Mgf1Sha1,
        TestName::Rsa2048Sha256Mgf1Sha256,
        TestName::Rsa2048Sha512Mgf1Sha1,
        TestName::Rsa2048Sha224Mgf1Sha224,
    ] {
        let set = TestSet::load(name).unwrap();
        let (mut ok, mut bad) = (0, 0);
        for g in &set.test_groups {
            let k = PrivateKey::from_pkcs8_der(&g.pkcs8).unwrap();
            for t in &g.tests {
                let mech = EncMech::RsaOaepMgf {
                    hash: hash(g.hash),
                    mgf1: hash(g.mgf_hash),
                    label: t.label.to_vec(),
                };
                let r = k.decrypt(&mech, &t.ct);
                match t.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        assert_eq!(&r.unwrap()[..], &t.pt[..], "{name:?} tc {}", t.tc_id);
                        ok += 1;
                    }
                    TestResult::Invalid => {
                        assert!(r.is_err(), "{name:?} tc {} {}", t.tc_id, t.comment);
                        bad += 1;
                    }
                }
            }
        }
        assert!(ok > 10 && bad > 5, "{name:?}: {ok} ok, {bad} bad");
    }
}

/// CKM_RSA_PKCS over a SHA-256/384/512 DigestInfo (signed by aws-lc-rs from the
/// imported digest) equals the raw private operation on the hand-built EMSA-PKCS1-v1_5
/// block and the hash-and-sign mechanism over the message; a near-miss DigestInfo
/// (other hash, wrong length) is still signed as given.
#[test]
fn pkcs1_over_digest_info_matches_raw_and_hash_and_sign() {
    let k = PrivateKey::generate(KeyAlg::Rsa(2048)).unwrap();
    let pk = k.public_key().unwrap();
    let klen = 256;
    let msg = b"DigestInfo path";
    let emsa = |t: &[u8]| {
        let mut em = vec![0x00, 0x01];
        em.resize(klen - t.len() - 1, 0xff);
        em.push(0);
        em.extend_from_slice(t);
        em
    };
    let oid_tail = [
        (HashAlg::Sha256, 1u8),
        (HashAlg::Sha384, 2),
        (HashAlg::Sha512, 3),
    ];
    for (h, tail) in oid_tail {
        let d = token_hal::crypto::hash::digest(h, msg);
        let dlen = u8::try_from(d.len()).unwrap();
        let mut di = vec![
            0x30,
            0x11 + dlen,
            0x30,
            0x0d,
            0x06,
            0x09,
            0x60,
            0x86,
            0x48,
            0x01,
            0x65,
            0x03,
            0x04,
            0x02,
            tail,
            0x05,
            0x00,
            0x04,
            dlen,
        ];
        di.extend_from_slice(&d);
        let sig = k.sign(&SignMech::RsaPkcs1Raw, &di).unwrap();
        assert_eq!(sig, k.sign(&SignMech::RsaRaw, &emsa(&di)).unwrap(), "{h:?}");
        assert_eq!(sig, k.sign(&SignMech::RsaPkcs1(h), msg).unwrap(), "{h:?}");
        pk.verify(&SignMech::RsaPkcs1Raw, &di, &sig).unwrap();
        // One byte short of a DigestInfo: signed as given (RustCrypto path).
        let short = &di[..di.len() - 1];
        let s2 = k.sign(&SignMech::RsaPkcs1Raw, short).unwrap();
        assert_eq!(s2, k.sign(&SignMech::RsaRaw, &emsa(short)).unwrap());
    }
}
