//! ECDH (P-256, P-384, P-521, SM2) and X25519 through `PrivateKey::derive`.
//!
//! Vectors: RFC 5903 §8.1–8.3 (P-256/P-384/P-521 ECDH), RFC 7748 §6.1 (X25519), and all
//! of Project Wycheproof's `ecdh_secp{256,384,521}r1_ecpoint` and `x25519` groups
//! (valid results must match; invalid public points must be rejected).
#![allow(clippy::unwrap_used)]

use token_hal::Error;
use token_hal::crypto::{DeriveMech, KeyAlg, PrivateKey, PublicKey};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

fn ecdh(k: &PrivateKey, peer: &[u8]) -> token_hal::Result<Vec<u8>> {
    k.derive(&DeriveMech::Ecdh {
        peer_point: peer.to_vec(),
    })
    .map(|o| o.secret.to_vec())
}

/// RFC 5903 §8: (alg, i, gix‖giy, r, grx‖gry, girx).
#[test]
fn rfc5903_vectors() {
    let cases = [
        (
            KeyAlg::EcP256,
            "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
            "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180\
             5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
            "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
            "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63\
             56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
            "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
        ),
        (
            KeyAlg::EcP384,
            "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
            "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA\
             9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
            "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
            "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571\
             DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
            "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746",
        ),
        (
            KeyAlg::EcP521,
            "0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A095AA85A30FE1C2952C6771D937BA9777F5957B2639BAB072462F68C27A57382D4A52",
            "0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBEE1E3BF42E00B8E380AEAE57C2D107564941885942AF5A7F4601723C4195D176CED3E\
             017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10AD8A788015AC405D7799DC75E7B7D5B6CF2261A6A7F1507438BF01BEB6CA3926F9582",
            "0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E9C677D600B343757A3BDBF2A3163E4C2F869CCA7458AA4A4EFFC311F5CB151685EB9",
            "00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A219B97C356436ADC6E95BB0352F6BE64A6C2912D4EF2D0433CED2B6171640012D9460F\
             015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87220B6536C5C408A1D2AEBB8E86D678AE49CB57091F4732296579AB44FCD17F0FC56A",
            "01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04D1427E73CA4BAA240A34786859810C06B3C715A3A8CC3151F2BEE417996D19F3DDEA",
        ),
    ];
    for (alg, i, gi, r, gr, z) in cases {
        let a = PrivateKey::from_raw_private(alg, &h(i)).unwrap();
        let b = PrivateKey::from_raw_private(alg, &h(r)).unwrap();
        let mut gi_pt = vec![4u8];
        gi_pt.extend(h(gi));
        let mut gr_pt = vec![4u8];
        gr_pt.extend(h(gr));
        assert_eq!(
            a.public_key().unwrap().ec_point().unwrap(),
            gi_pt,
            "{alg:?}"
        );
        assert_eq!(
            b.public_key().unwrap().ec_point().unwrap(),
            gr_pt,
            "{alg:?}"
        );
        assert_eq!(ecdh(&a, &gr_pt).unwrap(), h(z), "{alg:?}");
        assert_eq!(ecdh(&b, &gi_pt).unwrap(), h(z), "{alg:?}");
        assert_eq!(a.raw_private_value().unwrap().to_vec(), h(i));
        // Negative: a point off the curve, a compressed point, a wrong length, the
        // point at infinity.
        let mut off = gr_pt.clone();
        let last = off.len() - 1;
        off[last] ^= 1;
        assert!(
            matches!(ecdh(&a, &off), Err(Error::InvalidData(_))),
            "{alg:?}"
        );
        assert!(ecdh(&a, &gr_pt[..gr_pt.len() - 1]).is_err());
        let mut compressed = vec![2 | (gr_pt[gr_pt.len() - 1] & 1)];
        compressed.extend_from_slice(&gr_pt[1..=(gr_pt.len() - 1) / 2]);
        assert!(ecdh(&a, &compressed).is_err());
        assert!(ecdh(&a, &[0]).is_err());
        assert!(ecdh(&a, &vec![0u8; gr_pt.len()]).is_err());
    }
}

#[test]
fn wycheproof_ecdh_ecpoint() {
    use wycheproof::TestResult;
    use wycheproof::ecdh::{TestName, TestSet};
    for (name, alg) in [
        (TestName::EcdhSecp256r1Ecpoint, KeyAlg::EcP256),
        (TestName::EcdhSecp384r1Ecpoint, KeyAlg::EcP384),
        (TestName::EcdhSecp521r1Ecpoint, KeyAlg::EcP521),
    ] {
        let set = TestSet::load(name).unwrap();
        let (mut valid, mut invalid) = (0, 0);
        for g in &set.test_groups {
            for t in &g.tests {
                let k = PrivateKey::from_raw_private(alg, &t.private_key).unwrap();
                let got = ecdh(&k, &t.public_key);
                match t.result {
                    TestResult::Valid => {
                        assert_eq!(
                            got.unwrap(),
                            t.shared_secret.to_vec(),
                            "{alg:?} tc {}",
                            t.tc_id
                        );
                        valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(got.is_err(), "{alg:?} tc {} {}", t.tc_id, t.comment);
                        invalid += 1;
                    }
                    // Acceptable cases are compressed points, which we reject (PKCS#11
                    // callers send uncompressed points).
                    TestResult::Acceptable => {}
                }
            }
        }
        assert!(
            valid > 10 && invalid > 10,
            "{alg:?}: {valid} valid, {invalid} invalid"
        );
    }
}

#[test]
fn sm2_ecdh_round_trip_and_bad_points() {
    let a = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let b = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let pa = a.public_key().unwrap().ec_point().unwrap();
    let pb = b.public_key().unwrap().ec_point().unwrap();
    let z1 = ecdh(&a, &pb).unwrap();
    let z2 = ecdh(&b, &pa).unwrap();
    assert_eq!(z1.len(), 32);
    assert_eq!(z1, z2);
    // Cross-check x([a]B) against the crate's arithmetic directly.
    use elliptic_curve::point::AffineCoordinates;
    let sa = sm2::SecretKey::from_slice(&a.raw_private_value().unwrap()).unwrap();
    let pkb = sm2::PublicKey::from_sec1_bytes(&pb).unwrap();
    let shared = (pkb.to_projective() * *sa.to_nonzero_scalar()).to_affine();
    assert_eq!(shared.x().as_slice(), &z1[..]);
    let mut bad = pb.clone();
    bad[64] ^= 1;
    assert!(ecdh(&a, &bad).is_err());
    assert!(ecdh(&a, &pb[..64]).is_err());
    // A P-256 point is not an SM2 point.
    let p256 = PrivateKey::generate(KeyAlg::EcP256).unwrap();
    let p256_pt = p256.public_key().unwrap().ec_point().unwrap();
    assert!(ecdh(&a, &p256_pt).is_err());
}

#[test]
fn p_curves_round_trip_and_cross_curve() {
    for alg in [KeyAlg::EcP256, KeyAlg::EcP384, KeyAlg::EcP521] {
        let a = PrivateKey::generate(alg).unwrap();
        let b = PrivateKey::generate(alg).unwrap();
        let pa = a.public_key().unwrap().ec_point().unwrap();
        let pb = b.public_key().unwrap().ec_point().unwrap();
        let z = ecdh(&a, &pb).unwrap();
        assert_eq!(z, ecdh(&b, &pa).unwrap());
        assert_eq!(z.len(), alg.field_len().unwrap());
        // PublicKey::from_ec_point accepts the point and rejects a tampered one.
        PublicKey::from_ec_point(alg, &pb).unwrap();
        let mut bad = pb.clone();
        bad[5] ^= 0x40;
        assert!(PublicKey::from_ec_point(alg, &bad).is_err());
    }
    // Keys that do not agree answer clearly.
    let rsa = PrivateKey::generate(KeyAlg::Rsa(1024)).unwrap();
    assert!(matches!(ecdh(&rsa, &[4u8; 65]), Err(Error::Unsupported(_))));
    let ed = PrivateKey::generate(KeyAlg::Ed25519).unwrap();
    assert!(matches!(ecdh(&ed, &[9u8; 32]), Err(Error::Unsupported(_))));
}

/// RFC 7748 §6.1 (Alice and Bob) and Wycheproof `x25519`.
#[test]
fn x25519_vectors() {
    let a = PrivateKey::from_raw_private(
        KeyAlg::X25519,
        &h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    )
    .unwrap();
    let b = PrivateKey::from_raw_private(
        KeyAlg::X25519,
        &h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
    )
    .unwrap();
    let pa = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    let pb = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    assert_eq!(a.public_key().unwrap().ec_point().unwrap(), pa);
    assert_eq!(b.public_key().unwrap().ec_point().unwrap(), pb);
    let z = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(ecdh(&a, &pb).unwrap(), z);
    assert_eq!(ecdh(&b, &pa).unwrap(), z);
    assert!(ecdh(&a, &pb[..31]).is_err());
    // A low-order point gives an all-zero secret, which is refused.
    assert!(ecdh(&a, &[0u8; 32]).is_err());

    use wycheproof::TestResult;
    use wycheproof::xdh::{TestName, TestSet};
    let set = TestSet::load(TestName::X25519).unwrap();
    let mut n = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            let k = PrivateKey::from_raw_private(KeyAlg::X25519, &t.private_key).unwrap();
            let got = ecdh(&k, &t.public_key);
            let zero = t.shared_secret.iter().all(|&b| b == 0);
            match (t.result, zero) {
                (TestResult::Valid | TestResult::Acceptable, false) => {
                    assert_eq!(got.unwrap(), t.shared_secret.to_vec(), "tc {}", t.tc_id);
                    n += 1;
                }
                (_, true) => assert!(got.is_err(), "tc {}", t.tc_id),
                (TestResult::Invalid, false) => assert!(got.is_err(), "tc {}", t.tc_id),
            }
        }
    }
    assert!(n > 100);
}
