//! MACs, GCM with any nonce and tag length, MD5.
//!
//! Vectors: RFC 4493 §4 (AES-128-CMAC), NIST SP 800-38B Appendix D.2/D.3 via the
//! Wycheproof `aes_cmac` set (all key sizes, truncated tags), Wycheproof `aes_gcm` and
//! `sm4_gcm` (every nonce and tag size they carry), the GCM spec's test case 6 (60-byte
//! nonce), RFC 1321 §A.5 (MD5), Wycheproof `hmac_sm3` and `hmac_sha224`.
#![allow(clippy::unwrap_used)]

use token_hal::Error;
use token_hal::crypto::HashAlg;
use token_hal::crypto::hash;
use token_hal::crypto::mac::{Mac, MacAlg, mac};
use token_hal::crypto::sym::{self, Direction, SymAlg, SymCipher};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

#[test]
fn rfc4493_aes_cmac() {
    let key = h("2b7e151628aed2a6abf7158809cf4f3c");
    let m = h(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
               30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
    );
    for (len, want) in [
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ] {
        let alg = MacAlg::Cmac(SymAlg::Aes);
        assert_eq!(hex::encode(&*mac(alg, &key, &m[..len]).unwrap()), want);
        // Streaming in odd pieces gives the same.
        let mut s = Mac::new(alg, &key).unwrap();
        for c in m[..len].chunks(7) {
            s.update(c).unwrap();
        }
        assert_eq!(hex::encode(&*s.finish().unwrap()), want);
        // Verify, truncated verify (CMAC general), and tampering.
        let mut v = Mac::new(alg, &key).unwrap();
        v.update(&m[..len]).unwrap();
        v.verify(&h(want)).unwrap();
        let mut v = Mac::new(alg, &key).unwrap();
        v.update(&m[..len]).unwrap();
        v.verify_truncated(&h(want)[..8]).unwrap();
        let mut bad = h(want);
        bad[0] ^= 1;
        let mut v = Mac::new(alg, &key).unwrap();
        v.update(&m[..len]).unwrap();
        assert!(matches!(v.verify(&bad), Err(Error::SignatureInvalid)));
        let mut v = Mac::new(alg, &key).unwrap();
        v.update(&m[..len]).unwrap();
        assert!(
            v.verify(&h(want)[..8]).is_err(),
            "full-length verify refuses a short MAC"
        );
        let t = Mac::new(alg, &key).unwrap();
        assert_eq!(t.finish_truncated(4).unwrap().len(), 4);
    }
    assert!(Mac::new(MacAlg::Cmac(SymAlg::Aes), &[0u8; 15]).is_err());
    assert!(Mac::new(MacAlg::Cmac(SymAlg::Sm4), &[0u8; 32]).is_err());
    assert!(
        Mac::new(MacAlg::Cmac(SymAlg::Aes), &key)
            .unwrap()
            .finish_truncated(17)
            .is_err()
    );
    assert!(
        Mac::new(MacAlg::Cmac(SymAlg::Aes), &key)
            .unwrap()
            .finish_truncated(0)
            .is_err()
    );
}

#[test]
fn wycheproof_cmac_and_hmac() {
    use wycheproof::TestResult;
    use wycheproof::mac::{TestName, TestSet};
    for (name, alg) in [
        (TestName::AesCmac, MacAlg::Cmac(SymAlg::Aes)),
        (TestName::HmacSm3, MacAlg::Hmac(HashAlg::Sm3)),
        (TestName::HmacSha224, MacAlg::Hmac(HashAlg::Sha224)),
        (TestName::HmacSha1, MacAlg::Hmac(HashAlg::Sha1)),
        (TestName::HmacSha512, MacAlg::Hmac(HashAlg::Sha512)),
    ] {
        let set = TestSet::load(name).unwrap();
        let mut n = 0;
        for g in &set.test_groups {
            for t in &g.tests {
                let Ok(mut m) = Mac::new(alg, &t.key) else {
                    assert_eq!(t.result, TestResult::Invalid, "{alg:?} tc {}", t.tc_id);
                    continue;
                };
                m.update(&t.msg).unwrap();
                let ok = m.verify_truncated(&t.tag).is_ok();
                assert_eq!(
                    ok,
                    t.result == TestResult::Valid,
                    "{alg:?} tc {} {}",
                    t.tc_id,
                    t.comment
                );
                if ok {
                    let got = Mac::new(alg, &t.key)
                        .and_then(|mut m| {
                            m.update(&t.msg)?;
                            m.finish_truncated(t.tag.len())
                        })
                        .unwrap();
                    assert_eq!(&got[..], &t.tag[..]);
                }
                n += 1;
            }
        }
        assert!(n > 50, "{alg:?}: {n}");
    }
}

#[test]
fn sm4_cbc_mac_zero_padding() {
    let key = h("0123456789abcdeffedcba9876543210");
    let alg = MacAlg::CbcMac(SymAlg::Sm4);
    // Independent computation: SM4-CBC over the zero-padded data, last block.
    for len in [0usize, 1, 15, 16, 17, 32, 100] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut padded = data.clone();
        let target = if len == 0 { 16 } else { len.div_ceil(16) * 16 };
        padded.resize(target, 0);
        let ct = sym::encrypt(SymAlg::Sm4, sym::SymMode::Cbc, &key, &[0u8; 16], &padded).unwrap();
        let want = &ct[ct.len() - 16..];
        assert_eq!(&mac(alg, &key, &data).unwrap()[..], want, "len {len}");
        let mut s = Mac::new(alg, &key).unwrap();
        for c in data.chunks(5) {
            s.update(c).unwrap();
        }
        assert_eq!(&s.finish().unwrap()[..], want, "streamed len {len}");
        // The existing one-shot helper agrees on block-multiple data.
        if len > 0 && len % 16 == 0 {
            assert_eq!(
                &sym::cbc_mac(SymAlg::Sm4, &key, &[0u8; 16], &data, false).unwrap()[..],
                want
            );
        }
    }
    // GB/T 32907 Appendix A example 1: one block under this key; the one-block CBC-MAC
    // is the block's encryption.
    let pt = h("0123456789abcdeffedcba9876543210");
    assert_eq!(
        hex::encode(&*mac(alg, &key, &pt).unwrap()),
        "681edf34d206965e86b3e94f536e4246"
    );
    assert!(Mac::new(alg, &[0u8; 8]).is_err());
}

/// The GCM specification's (McGrew–Viega) test cases 1–6 for AES-128 and a 60-byte
/// nonce; then Wycheproof.
#[test]
fn gcm_any_nonce_and_tag_length() {
    let key = h("feffe9928665731c6d6a8f9467308308");
    let pt = h(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    // Test case 4: 96-bit nonce.
    let ct4 = sym::gcm_seal(SymAlg::Aes, &key, &h("cafebabefacedbaddecaf888"), &aad, &pt).unwrap();
    assert_eq!(
        hex::encode(&ct4[pt.len()..]),
        "5bc94fbc3221a5db94fae95ae7121a47"
    );
    // Test case 5: 64-bit nonce.
    let ct5 = sym::gcm_seal(SymAlg::Aes, &key, &h("cafebabefacedbad"), &aad, &pt).unwrap();
    assert_eq!(
        hex::encode(&ct5[pt.len()..]),
        "3612d2e79e3b0785561be14aaca2fccb"
    );
    assert_eq!(hex::encode(&ct5[..16]), "61353b4c2806934a777ff51fa22a4755");
    // Test case 6: 480-bit nonce.
    let n6 = h(
        "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b",
    );
    let ct6 = sym::gcm_seal(SymAlg::Aes, &key, &n6, &aad, &pt).unwrap();
    assert_eq!(
        hex::encode(&ct6[pt.len()..]),
        "619cc5aefffe0bfa462af43c1699d050"
    );
    assert_eq!(hex::encode(&ct6[..16]), "8ce24998625615b603a033aca13fb894");
    assert_eq!(
        &sym::gcm_open(SymAlg::Aes, &key, &n6, &aad, &ct6).unwrap()[..],
        &pt[..]
    );
    // Truncated tags: the tag is the prefix of the full one.
    for t in [4usize, 8, 12, 13, 16] {
        let c = sym::gcm_seal_with_tag_len(SymAlg::Aes, &key, &n6, &aad, &pt, t).unwrap();
        assert_eq!(c.len(), pt.len() + t);
        assert_eq!(&c[..], &ct6[..pt.len() + t]);
        let p = sym::gcm_open_with_tag_len(SymAlg::Aes, &key, &n6, &aad, &c, t).unwrap();
        assert_eq!(&p[..], &pt[..]);
        let mut bad = c.clone();
        let l = bad.len();
        bad[l - 1] ^= 1;
        assert!(matches!(
            sym::gcm_open_with_tag_len(SymAlg::Aes, &key, &n6, &aad, &bad, t),
            Err(Error::DecryptFailed)
        ));
    }
    for t in [0usize, 3, 17] {
        assert!(sym::gcm_seal_with_tag_len(SymAlg::Aes, &key, &n6, &aad, &pt, t).is_err());
    }
    assert!(sym::gcm_seal(SymAlg::Aes, &key, &[], &aad, &pt).is_err());
    // Streaming encryption in odd pieces; decryption holds output until the tag is checked.
    let mut e = SymCipher::new_gcm(SymAlg::Aes, Direction::Encrypt, &key, &n6, &aad, 16).unwrap();
    let mut out = Vec::new();
    for c in pt.chunks(7) {
        e.update(c, &mut out).unwrap();
    }
    assert_eq!(out.len(), pt.len(), "encryption streams");
    e.finalize(&mut out).unwrap();
    assert_eq!(out, ct6);
    let mut d = SymCipher::new_gcm(SymAlg::Aes, Direction::Decrypt, &key, &n6, &aad, 16).unwrap();
    let mut back = Vec::new();
    for c in ct6.chunks(9) {
        d.update(c, &mut back).unwrap();
    }
    assert!(
        back.is_empty(),
        "nothing released before the tag is checked"
    );
    d.finalize(&mut back).unwrap();
    assert_eq!(back, pt);
    // Short input (less than a tag).
    assert!(sym::gcm_open(SymAlg::Aes, &key, &n6, &aad, &ct6[..15]).is_err());
}

#[test]
fn wycheproof_gcm_aes_and_sm4() {
    use wycheproof::TestResult;
    use wycheproof::aead::{TestName, TestSet};
    for (name, alg) in [
        (TestName::AesGcm, SymAlg::Aes),
        (TestName::Sm4Gcm, SymAlg::Sm4),
    ] {
        let set = TestSet::load(name).unwrap();
        let (mut ok, mut rejected) = (0, 0);
        for g in &set.test_groups {
            let tl = g.tag_size / 8;
            for t in &g.tests {
                let sealed = sym::gcm_seal_with_tag_len(alg, &t.key, &t.nonce, &t.aad, &t.pt, tl);
                let mut ct = t.ct.to_vec();
                ct.extend_from_slice(&t.tag);
                let opened = sym::gcm_open_with_tag_len(alg, &t.key, &t.nonce, &t.aad, &ct, tl);
                match t.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        assert_eq!(sealed.unwrap(), ct, "{alg:?} tc {}", t.tc_id);
                        assert_eq!(&opened.unwrap()[..], &t.pt[..], "{alg:?} tc {}", t.tc_id);
                        ok += 1;
                    }
                    TestResult::Invalid => {
                        assert!(opened.is_err(), "{alg:?} tc {} {}", t.tc_id, t.comment);
                        rejected += 1;
                    }
                }
            }
        }
        assert!(
            ok > 20 && rejected > 5,
            "{alg:?}: {ok} ok, {rejected} rejected"
        );
    }
}

#[test]
fn md5_rfc1321() {
    for (m, d) in [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ] {
        assert_eq!(hex::encode(hash::digest(HashAlg::Md5, m.as_bytes())), d);
    }
    assert_eq!(HashAlg::Md5.output_len(), 16);
    // RFC 2202 §2 test case 2 (HMAC-MD5).
    assert_eq!(
        hex::encode(hash::hmac(
            HashAlg::Md5,
            b"Jefe",
            b"what do ya want for nothing?"
        )),
        "750c783e6ab0b503eaa86e310a5db738"
    );
}

/// The single-part path (`single_part_len` + `finish_into`, writing into the caller's
/// buffer) gives what `update` + `finalize` give, for every mode, direction and a range of
/// lengths, errors included; a known length is exact and a short buffer is refused.
#[test]
fn finish_into_matches_update_and_finalize() {
    use token_hal::crypto::sym::SymMode;
    let modes = [
        SymMode::Ecb,
        SymMode::EcbPad,
        SymMode::Cbc,
        SymMode::CbcPad,
        SymMode::Cfb,
        SymMode::Ofb,
        SymMode::Ctr,
        SymMode::Gcm,
    ];
    let key = [0x42u8; 16];
    for alg in [SymAlg::Aes, SymAlg::Sm4] {
        for mode in modes {
            let iv: &[u8] = match mode {
                SymMode::Ecb | SymMode::EcbPad => &[],
                SymMode::Gcm => &[5u8; 12],
                _ => &[5u8; 16],
            };
            for len in [0usize, 1, 15, 16, 33, 64, 1000] {
                let input: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
                for dir in [Direction::Encrypt, Direction::Decrypt] {
                    let mk = || SymCipher::new(alg, mode, dir, &key, iv).unwrap();
                    let mut want = Vec::new();
                    let mut c = mk();
                    let expected = c
                        .update(&input, &mut want)
                        .and_then(|()| c.finalize(&mut want))
                        .map(|()| want);
                    let c = mk();
                    let known = c.single_part_len(len);
                    let mut out = vec![0xEEu8; len + 32];
                    let got = c.finish_into(&input, &mut out).map(|n| out[..n].to_vec());
                    let what = format!("{alg:?} {mode:?} {dir:?} {len}");
                    match (&expected, &got) {
                        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}"),
                        (Err(_), Err(_)) => {}
                        _ => panic!("{what}: {expected:?} vs {got:?}"),
                    }
                    if let (Some(n), Ok(b)) = (known, &got) {
                        assert_eq!(n, b.len(), "{what}");
                        if n > 0 {
                            let mut short = vec![0u8; n - 1];
                            assert!(mk().finish_into(&input, &mut short).is_err(), "{what}");
                        }
                    }
                }
            }
        }
    }
}
