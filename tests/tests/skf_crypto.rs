//! Cryptographic services through the SKF ABI, each checked against token-hal's
//! independent computation: SM4 in every mode (single-part, streamed, PKCS#5), MAC,
//! digests, the external-key ECC and RSA functions, session-key export, SM2 agreement
//! between two containers, RSA containers; SM1/SSF33 refused; bad handles refused.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::ffi::c_void;
use std::ptr::null_mut;

use skf_common::*;
use skf_sys::*;
use token_hal::crypto::hash::{HashAlg, digest};
use token_hal::crypto::sym::{self, SymAlg, SymMode};
use token_hal::crypto::{DecMech, EncMech, KeyAlg, PrivateKey, PublicKey, SignMech};

type H = *mut c_void;

fn param(iv: &[u8], pad: u32) -> BLOCKCIPHERPARAM {
    let mut p = BLOCKCIPHERPARAM {
        IV: [0; 32],
        IVLen: u32::try_from(iv.len()).unwrap(),
        PaddingType: pad,
        FeedBitLen: 0,
    };
    p.IV[..iv.len()].copy_from_slice(iv);
    p
}

#[test]
fn crypto_services() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    run_child(&conf, "crypto_child");
}

#[test]
fn crypto_child() {
    if !is_child("crypto_child") {
        return;
    }
    let set_key = skf!(SKF_SetSymmKey: fn(H, *const u8, u32, *mut H));
    let enc_init = skf!(SKF_EncryptInit: fn(H, BLOCKCIPHERPARAM));
    let enc = skf!(SKF_Encrypt: fn(H, *const u8, u32, *mut u8, *mut u32));
    let enc_up = skf!(SKF_EncryptUpdate: fn(H, *const u8, u32, *mut u8, *mut u32));
    let enc_fin = skf!(SKF_EncryptFinal: fn(H, *mut u8, *mut u32));
    let dec_init = skf!(SKF_DecryptInit: fn(H, BLOCKCIPHERPARAM));
    let dec = skf!(SKF_Decrypt: fn(H, *const u8, u32, *mut u8, *mut u32));
    let dec_up = skf!(SKF_DecryptUpdate: fn(H, *const u8, u32, *mut u8, *mut u32));
    let dec_fin = skf!(SKF_DecryptFinal: fn(H, *mut u8, *mut u32));
    let mac_init = skf!(SKF_MacInit: fn(H, *const BLOCKCIPHERPARAM, *mut H));
    let mac = skf!(SKF_Mac: fn(H, *const u8, u32, *mut u8, *mut u32));
    let mac_up = skf!(SKF_MacUpdate: fn(H, *const u8, u32));
    let mac_fin = skf!(SKF_MacFinal: fn(H, *mut u8, *mut u32));
    let dig_init =
        skf!(SKF_DigestInit: fn(H, u32, *const ECCPUBLICKEYBLOB, *const u8, u32, *mut H));
    let dig = skf!(SKF_Digest: fn(H, *const u8, u32, *mut u8, *mut u32));
    let dig_up = skf!(SKF_DigestUpdate: fn(H, *const u8, u32));
    let dig_fin = skf!(SKF_DigestFinal: fn(H, *mut u8, *mut u32));
    let close = skf!(SKF_CloseHandle: fn(H));
    let ext_enc = skf!(SKF_ExtECCEncrypt: fn(H, *const u8, *const u8, u32, *mut u8));
    let ext_dec = skf!(SKF_ExtECCDecrypt: fn(H, *const u8, *const u8, *mut u8, *mut u32));
    let ext_sign = skf!(SKF_ExtECCSign: fn(H, *const u8, *const u8, u32, *mut ECCSIGNATUREBLOB));
    let ext_verify =
        skf!(SKF_ExtECCVerify: fn(H, *const u8, *const u8, u32, *const ECCSIGNATUREBLOB));
    let verify = skf!(SKF_ECCVerify: fn(H, *const u8, *const u8, u32, *const ECCSIGNATUREBLOB));
    let sign = skf!(SKF_ECCSignData: fn(H, *const u8, u32, *mut ECCSIGNATUREBLOB));
    let export_sk = skf!(SKF_ECCExportSessionKey: fn(H, u32, *const u8, *mut u8, *mut H));
    let agree_data =
        skf!(SKF_GenerateAgreementDataWithECC: fn(H, u32, *mut u8, *const u8, u32, *mut H));
    let agree_both = skf!(SKF_GenerateAgreementDataAndKeyWithECC: fn(H, u32, *const u8, *const u8, *mut u8, *const u8, u32, *const u8, u32, *mut H));
    let agree_key =
        skf!(SKF_GenerateKeyWithECC: fn(H, *const u8, *const u8, *const u8, u32, *mut H));
    let random = skf!(SKF_GenRandom: fn(H, *mut u8, u32));
    let gen_ext_rsa = skf!(SKF_GenExtRSAKey: fn(H, u32, *mut RSAPRIVATEKEYBLOB));
    let gen_rsa = skf!(SKF_GenRSAKeyPair: fn(H, u32, *mut RSAPUBLICKEYBLOB));
    let rsa_sign = skf!(SKF_RSASignData: fn(H, *const u8, u32, *mut u8, *mut u32));
    let rsa_verify =
        skf!(SKF_RSAVerify: fn(H, *const RSAPUBLICKEYBLOB, *const u8, u32, *const u8, u32));
    let rsa_export = skf!(SKF_RSAExportSessionKey: fn(H, u32, *const RSAPUBLICKEYBLOB, *mut u8, *mut u32, *mut H));
    let rsa_pub_op = skf!(SKF_ExtRSAPubKeyOperation: fn(H, *const RSAPUBLICKEYBLOB, *const u8, u32, *mut u8, *mut u32));
    let rsa_pri_op = skf!(SKF_ExtRSAPriKeyOperation: fn(H, *const RSAPRIVATEKEYBLOB, *const u8, u32, *mut u8, *mut u32));
    let import_rsa = skf!(SKF_ImportRSAKeyPair: fn(H, u32, *const u8, u32, *const u8, u32));
    let import_sk = skf!(SKF_ImportSessionKey: fn(H, u32, *const u8, u32, *mut H));
    let con_type = skf!(SKF_GetContainerType: fn(H, *mut u32));

    let s = Session::open("bids");
    let d = s.dev;
    let key = [0x11u8; 16];
    let iv = [0x22u8; 16];
    let data: Vec<u8> = (0..100u8).collect();
    // SAFETY: for all calls below, pointers valid for what include/skf.h says, or
    // deliberately null/stale to test the library's checks.
    unsafe {
        let mut rnd = [0u8; 32];
        assert_eq!(random(d, rnd.as_mut_ptr(), 32), SAR_OK);
        assert_ne!(rnd, [0u8; 32]);
        assert_eq!(random(d, null_mut(), 32), SAR_INVALIDPARAMERR);

        // --- SM1 / SSF33: no software implementation exists
        let mut k: H = null_mut();
        assert_eq!(
            set_key(d, key.as_ptr(), SGD_SM1_ECB, &mut k),
            SAR_NOTSUPPORTYETERR
        );
        assert_eq!(
            set_key(d, key.as_ptr(), SGD_SSF33_CBC, &mut k),
            SAR_NOTSUPPORTYETERR
        );
        assert_eq!(
            set_key(d, key.as_ptr(), 0x12345, &mut k),
            SAR_INVALIDPARAMERR
        );

        // --- SM4 modes, single-part and streamed, against token-hal
        for (alg, mode, pad, padding) in [
            (SGD_SM4_ECB, SymMode::EcbPad, 1, true),
            (SGD_SM4_CBC, SymMode::CbcPad, 1, true),
            (SGD_SM4_CBC, SymMode::Cbc, 0, false),
            (SGD_SM4_CFB, SymMode::Cfb, 0, false),
            (SGD_SM4_OFB, SymMode::Ofb, 0, false),
        ] {
            let input = if padding || alg != SGD_SM4_CBC {
                &data[..]
            } else {
                &data[..96]
            };
            let want_iv: &[u8] = if alg == SGD_SM4_ECB { &[] } else { &iv };
            let want = sym::encrypt(SymAlg::Sm4, mode, &key, want_iv, input).unwrap();
            let mut k: H = null_mut();
            assert_eq!(set_key(d, key.as_ptr(), alg, &mut k), SAR_OK);
            let n = u32::try_from(input.len()).unwrap();
            // Encrypt before Init
            let mut len = 0u32;
            assert_eq!(
                enc(k, input.as_ptr(), n, null_mut(), &mut len),
                SAR_NOTINITIALIZEERR
            );
            assert_eq!(enc_init(k, param(&iv, pad)), SAR_OK);
            assert_eq!(enc(k, input.as_ptr(), n, null_mut(), &mut len), SAR_OK);
            assert_eq!(len as usize, want.len());
            let mut out = vec![0u8; want.len()];
            let mut short = len - 1;
            assert_eq!(
                enc(k, input.as_ptr(), n, out.as_mut_ptr(), &mut short),
                SAR_BUFFER_TOO_SMALL
            );
            assert_eq!(out, vec![0u8; want.len()], "nothing written");
            assert_eq!(
                enc(k, input.as_ptr(), n, out.as_mut_ptr(), &mut len),
                SAR_OK
            );
            assert_eq!(out, want, "alg {alg:#x}");
            // In place (input and output the same buffer), as many SKF callers do.
            if pad == 0 {
                assert_eq!(enc_init(k, param(&iv, pad)), SAR_OK);
                let mut buf = input.to_vec();
                let mut l = n;
                assert_eq!(enc(k, buf.as_ptr(), n, buf.as_mut_ptr(), &mut l), SAR_OK);
                assert_eq!(buf, want, "in place, alg {alg:#x}");
                assert_eq!(dec_init(k, param(&iv, pad)), SAR_OK);
                assert_eq!(dec(k, buf.as_ptr(), n, buf.as_mut_ptr(), &mut l), SAR_OK);
                assert_eq!(buf, input, "in place decryption, alg {alg:#x}");
            }
            // streamed in odd pieces
            assert_eq!(enc_init(k, param(&iv, pad)), SAR_OK);
            let mut streamed = Vec::new();
            for chunk in input.chunks(7) {
                let mut l = 0u32;
                assert_eq!(
                    enc_up(
                        k,
                        chunk.as_ptr(),
                        7.min(chunk.len() as u32),
                        null_mut(),
                        &mut l
                    ),
                    SAR_OK
                );
                let mut o = vec![0u8; l as usize + 1];
                let mut ol = l + 1;
                assert_eq!(
                    enc_up(
                        k,
                        chunk.as_ptr(),
                        chunk.len() as u32,
                        o.as_mut_ptr(),
                        &mut ol
                    ),
                    SAR_OK
                );
                assert_eq!(ol, l);
                streamed.extend_from_slice(&o[..ol as usize]);
            }
            let mut l = 0u32;
            assert_eq!(enc_fin(k, null_mut(), &mut l), SAR_OK);
            let mut o = vec![0u8; l as usize];
            assert_eq!(enc_fin(k, o.as_mut_ptr(), &mut l), SAR_OK);
            streamed.extend_from_slice(&o[..l as usize]);
            assert_eq!(streamed, want, "streamed alg {alg:#x}");
            // decryption, single and streamed
            assert_eq!(dec_init(k, param(&iv, pad)), SAR_OK);
            let mut pl = 0u32;
            assert_eq!(
                dec(k, want.as_ptr(), want.len() as u32, null_mut(), &mut pl),
                SAR_OK
            );
            assert_eq!(pl as usize, input.len(), "exact plaintext length");
            let mut p = vec![0u8; pl as usize];
            assert_eq!(
                dec(k, want.as_ptr(), want.len() as u32, p.as_mut_ptr(), &mut pl),
                SAR_OK
            );
            assert_eq!(p, input);
            assert_eq!(dec_init(k, param(&iv, pad)), SAR_OK);
            let mut back = Vec::new();
            for chunk in want.chunks(16) {
                let mut o = [0u8; 32];
                let mut ol = 32u32;
                assert_eq!(
                    dec_up(
                        k,
                        chunk.as_ptr(),
                        chunk.len() as u32,
                        o.as_mut_ptr(),
                        &mut ol
                    ),
                    SAR_OK
                );
                back.extend_from_slice(&o[..ol as usize]);
            }
            let mut o = [0u8; 32];
            let mut ol = 32u32;
            assert_eq!(dec_fin(k, o.as_mut_ptr(), &mut ol), SAR_OK);
            back.extend_from_slice(&o[..ol as usize]);
            assert_eq!(back, input, "streamed decrypt {alg:#x}");
            assert_eq!(close(k), SAR_OK);
            assert_eq!(enc_init(k, param(&iv, pad)), SAR_INVALIDHANDLEERR);
        }
        // unpadded ECB of a partial block, bad padding, CFB with 8-bit feedback
        let mut k: H = null_mut();
        assert_eq!(set_key(d, key.as_ptr(), SGD_SM4_ECB, &mut k), SAR_OK);
        assert_eq!(enc_init(k, param(&[], 0)), SAR_OK);
        let mut len = 64u32;
        let mut out = [0u8; 64];
        assert_eq!(
            enc(k, data.as_ptr(), 15, out.as_mut_ptr(), &mut len),
            SAR_INDATALENERR
        );
        assert_eq!(dec_init(k, param(&[], 1)), SAR_OK);
        let mut len = 64u32;
        assert_eq!(
            dec(k, [0u8; 16].as_ptr(), 16, out.as_mut_ptr(), &mut len),
            SAR_DECRYPTPADERR
        );
        assert_eq!(close(k), SAR_OK);
        assert_eq!(set_key(d, key.as_ptr(), SGD_SM4_CFB, &mut k), SAR_OK);
        let mut p8 = param(&iv, 0);
        p8.FeedBitLen = 8;
        assert_eq!(enc_init(k, p8), SAR_NOTSUPPORTYETERR);
        assert_eq!(close(k), SAR_OK);

        // --- MAC
        assert_eq!(set_key(d, key.as_ptr(), SGD_SM4_MAC, &mut k), SAR_OK);
        for pad in [0u32, 1] {
            let input = if pad == 1 { &data[..] } else { &data[..96] };
            let want = sym::cbc_mac(SymAlg::Sm4, &key, &iv, input, pad == 1).unwrap();
            let mut m: H = null_mut();
            assert_eq!(mac_init(k, &param(&iv, pad), &mut m), SAR_OK);
            let mut ml = 0u32;
            assert_eq!(
                mac(m, input.as_ptr(), input.len() as u32, null_mut(), &mut ml),
                SAR_OK
            );
            assert_eq!(ml, 16);
            let mut v = [0u8; 16];
            assert_eq!(
                mac(
                    m,
                    input.as_ptr(),
                    input.len() as u32,
                    v.as_mut_ptr(),
                    &mut ml
                ),
                SAR_OK
            );
            assert_eq!(v, want);
            let mut m2: H = null_mut();
            assert_eq!(mac_init(k, &param(&iv, pad), &mut m2), SAR_OK);
            assert_eq!(mac_up(m2, input.as_ptr(), 10), SAR_OK);
            assert_eq!(
                mac_up(m2, input[10..].as_ptr(), input.len() as u32 - 10),
                SAR_OK
            );
            let mut v2 = [0u8; 16];
            assert_eq!(mac_fin(m2, v2.as_mut_ptr(), &mut ml), SAR_OK);
            assert_eq!(v2, want);
            assert_eq!(close(m), SAR_OK);
            assert_eq!(close(m2), SAR_OK);
        }
        let mut m: H = null_mut();
        assert_eq!(mac_init(k, &param(&iv, 0), &mut m), SAR_OK);
        let mut ml = 16u32;
        let mut v = [0u8; 16];
        assert_eq!(
            mac(m, data.as_ptr(), 15, v.as_mut_ptr(), &mut ml),
            SAR_MACLENERR
        );
        assert_eq!(close(k), SAR_OK);
        // the MAC keeps its own copy of the key; it lives until closed or its device goes
        assert_eq!(mac_up(m, data.as_ptr(), 16), SAR_OK);
        assert_eq!(close(m), SAR_OK);
        assert_eq!(mac_up(m, data.as_ptr(), 16), SAR_INVALIDHANDLEERR);

        // --- digests
        for (alg, h) in [
            (SGD_SM3, HashAlg::Sm3),
            (SGD_SHA1, HashAlg::Sha1),
            (SGD_SHA256, HashAlg::Sha256),
        ] {
            let mut hh: H = null_mut();
            assert_eq!(
                dig_init(d, alg, std::ptr::null(), null_mut(), 0, &mut hh),
                SAR_OK
            );
            let mut l = 0u32;
            assert_eq!(dig(hh, data.as_ptr(), 100, null_mut(), &mut l), SAR_OK);
            let mut out = vec![0u8; l as usize];
            let mut short = l - 1;
            assert_eq!(
                dig(hh, data.as_ptr(), 100, out.as_mut_ptr(), &mut short),
                SAR_BUFFER_TOO_SMALL
            );
            assert_eq!(
                dig(hh, data.as_ptr(), 100, out.as_mut_ptr(), &mut l),
                SAR_OK
            );
            assert_eq!(out, digest(h, &data));
            assert_eq!(
                dig(hh, data.as_ptr(), 100, out.as_mut_ptr(), &mut l),
                SAR_HASHOBJERR,
                "finished"
            );
            assert_eq!(close(hh), SAR_OK);
            assert_eq!(
                dig_init(d, alg, std::ptr::null(), null_mut(), 0, &mut hh),
                SAR_OK
            );
            assert_eq!(dig_up(hh, data.as_ptr(), 50), SAR_OK);
            assert_eq!(dig_up(hh, data[50..].as_ptr(), 50), SAR_OK);
            assert_eq!(dig_fin(hh, out.as_mut_ptr(), &mut l), SAR_OK);
            assert_eq!(out, digest(h, &data));
            assert_eq!(close(hh), SAR_OK);
        }
        let mut hh: H = null_mut();
        assert_eq!(
            dig_init(d, 0x40, std::ptr::null(), null_mut(), 0, &mut hh),
            SAR_INVALIDPARAMERR
        );

        // --- external ECC keys
        let (dk, pk) = sm2_key();
        let pubk = pk.public_key().unwrap();
        let pub_blob = ecc_pub_blob(&pubk);
        let mut priv_blob = 256u32.to_ne_bytes().to_vec();
        priv_blob.extend_from_slice(&field64(&dk));
        let mut ct = vec![0u8; 164 + 100];
        assert_eq!(
            ext_enc(d, pub_blob.as_ptr(), data.as_ptr(), 100, ct.as_mut_ptr()),
            SAR_OK
        );
        let mut raw = vec![4u8];
        raw.extend_from_slice(&ct[32..64]);
        raw.extend_from_slice(&ct[96..128]);
        raw.extend_from_slice(&ct[128..160]);
        raw.extend_from_slice(&ct[164..]);
        assert_eq!(
            *pk.decrypt(&DecMech::Sm2, &raw).unwrap(),
            data,
            "token-hal decrypts the blob"
        );
        let mut pl = 0u32;
        assert_eq!(
            ext_dec(d, priv_blob.as_ptr(), ct.as_ptr(), null_mut(), &mut pl),
            SAR_OK
        );
        let mut p = vec![0u8; pl as usize];
        assert_eq!(
            ext_dec(d, priv_blob.as_ptr(), ct.as_ptr(), p.as_mut_ptr(), &mut pl),
            SAR_OK
        );
        assert_eq!(p, data);
        ct[200] ^= 1;
        assert_ne!(
            ext_dec(d, priv_blob.as_ptr(), ct.as_ptr(), p.as_mut_ptr(), &mut pl),
            SAR_OK,
            "C3 check"
        );
        let e = [0x5Au8; 32];
        let mut sig: ECCSIGNATUREBLOB = std::mem::zeroed();
        assert_eq!(
            ext_sign(d, priv_blob.as_ptr(), e.as_ptr(), 31, &mut sig),
            SAR_INDATALENERR
        );
        assert_eq!(
            ext_sign(d, priv_blob.as_ptr(), e.as_ptr(), 32, &mut sig),
            SAR_OK
        );
        assert_eq!(&sig.r[..32], &[0u8; 32], "right-aligned");
        let mut rs = sig.r[32..].to_vec();
        rs.extend_from_slice(&sig.s[32..]);
        pubk.verify(&SignMech::Sm2Prehashed, &e, &rs).unwrap();
        assert_eq!(
            ext_verify(d, pub_blob.as_ptr(), e.as_ptr(), 32, &sig),
            SAR_OK
        );
        assert_eq!(verify(d, pub_blob.as_ptr(), e.as_ptr(), 32, &sig), SAR_OK);
        assert_ne!(
            verify(d, pub_blob.as_ptr(), [0u8; 32].as_ptr(), 32, &sig),
            SAR_OK
        );
        let mut bad_pub = pub_blob.clone();
        bad_pub[4] = 1;
        assert_eq!(
            verify(d, bad_pub.as_ptr(), e.as_ptr(), 32, &sig),
            SAR_INVALIDPARAMERR
        );

        // --- SM3 with Z over a container key, and ECCSignData
        let a = s.container("A", true);
        let a_pub = Session::gen_sm2(a, SGD_SM2_1);
        let a_key = ecc_pub_of_blob(&a_pub);
        let mut hh: H = null_mut();
        assert_eq!(
            dig_init(
                d,
                SGD_SM3,
                a_pub.as_ptr().cast(),
                b"1234567812345678".as_ptr(),
                16,
                &mut hh
            ),
            SAR_OK
        );
        // A public key off the curve is refused, and no handle is written.
        let mut off_curve = a_pub.clone();
        let last = off_curve.len() - 1;
        off_curve[last] ^= 1;
        let mut bad: H = null_mut();
        assert_eq!(
            dig_init(
                d,
                SGD_SM3,
                off_curve.as_ptr().cast(),
                b"1234567812345678".as_ptr(),
                16,
                &mut bad
            ),
            SAR_CSPIMPRTPUBKEYERR
        );
        assert!(bad.is_null());
        let mut ev = [0u8; 32];
        let mut l = 32u32;
        assert_eq!(dig(hh, data.as_ptr(), 100, ev.as_mut_ptr(), &mut l), SAR_OK);
        let want = token_hal::crypto::sm2::sign_digest(
            &a_key.ec_point().unwrap(),
            b"1234567812345678",
            &data,
        )
        .unwrap();
        assert_eq!(ev, want);
        assert_eq!(sign(a, ev.as_ptr(), 32, &mut sig), SAR_OK);
        let mut rs = sig.r[32..].to_vec();
        rs.extend_from_slice(&sig.s[32..]);
        a_key
            .verify(
                &SignMech::Sm2Sm3 {
                    id: b"1234567812345678".to_vec(),
                },
                &data,
                &rs,
            )
            .unwrap();
        assert_eq!(
            sign(d, ev.as_ptr(), 32, &mut sig),
            SAR_INVALIDHANDLEERR,
            "a device is not a container"
        );

        // --- ECCExportSessionKey to an external key: the holder of that key gets the
        // same session key the handle encrypts with
        let mut blob = vec![0u8; 164 + 16];
        let mut sk: H = null_mut();
        assert_eq!(
            export_sk(
                a,
                SGD_SM4_ECB,
                pub_blob.as_ptr(),
                blob.as_mut_ptr(),
                &mut sk
            ),
            SAR_OK
        );
        assert_eq!(u32::from_ne_bytes(blob[160..164].try_into().unwrap()), 16);
        let mut raw = vec![4u8];
        raw.extend_from_slice(&blob[32..64]);
        raw.extend_from_slice(&blob[96..128]);
        raw.extend_from_slice(&blob[128..160]);
        raw.extend_from_slice(&blob[164..]);
        let session = pk.decrypt(&DecMech::Sm2, &raw).unwrap();
        assert_eq!(enc_init(sk, param(&[], 0)), SAR_OK);
        let mut out = [0u8; 16];
        let mut ol = 16u32;
        assert_eq!(
            enc(sk, data.as_ptr(), 16, out.as_mut_ptr(), &mut ol),
            SAR_OK
        );
        assert_eq!(
            out.to_vec(),
            sym::encrypt(SymAlg::Sm4, SymMode::Ecb, &session, &[], &data[..16]).unwrap()
        );

        // --- SM2 key agreement between containers A (initiator) and B (responder)
        let b = s.container("B", true);
        let b_pub = Session::gen_sm2(b, 0x0002_0100);
        let mut a_tmp = vec![0u8; 132];
        let mut ah: H = null_mut();
        assert_eq!(
            agree_data(
                a,
                SGD_SM4_ECB,
                a_tmp.as_mut_ptr(),
                b"alice".as_ptr(),
                0,
                &mut ah
            ),
            SAR_INVALIDPARAMERR
        );
        assert_eq!(
            agree_data(
                a,
                SGD_SM4_ECB,
                a_tmp.as_mut_ptr(),
                b"alice".as_ptr(),
                5,
                &mut ah
            ),
            SAR_OK
        );
        let mut b_tmp = vec![0u8; 132];
        let mut bk: H = null_mut();
        assert_eq!(
            agree_both(
                b,
                SGD_SM4_ECB,
                a_pub.as_ptr(),
                a_tmp.as_ptr(),
                b_tmp.as_mut_ptr(),
                b"bob".as_ptr(),
                3,
                b"alice".as_ptr(),
                5,
                &mut bk
            ),
            SAR_OK
        );
        let mut ak: H = null_mut();
        assert_eq!(
            agree_key(
                ah,
                b_pub.as_ptr(),
                b_tmp.as_ptr(),
                b"bob".as_ptr(),
                3,
                &mut ak
            ),
            SAR_OK
        );
        let mut ca = [0u8; 16];
        let mut cb = [0u8; 16];
        let mut l = 16u32;
        assert_eq!(enc_init(ak, param(&[], 0)), SAR_OK);
        assert_eq!(enc(ak, data.as_ptr(), 16, ca.as_mut_ptr(), &mut l), SAR_OK);
        assert_eq!(enc_init(bk, param(&[], 0)), SAR_OK);
        assert_eq!(enc(bk, data.as_ptr(), 16, cb.as_mut_ptr(), &mut l), SAR_OK);
        assert_eq!(ca, cb, "both sides agree");
        let mut wrong: H = null_mut();
        assert_eq!(
            agree_key(
                ah,
                b_pub.as_ptr(),
                b_tmp.as_ptr(),
                b"eve".as_ptr(),
                3,
                &mut wrong
            ),
            SAR_OK
        );
        assert_eq!(enc_init(wrong, param(&[], 0)), SAR_OK);
        assert_eq!(
            enc(wrong, data.as_ptr(), 16, cb.as_mut_ptr(), &mut l),
            SAR_OK
        );
        assert_ne!(ca, cb, "another ID, another key");
        assert_eq!(
            agree_key(
                a,
                b_pub.as_ptr(),
                b_tmp.as_ptr(),
                b"bob".as_ptr(),
                3,
                &mut wrong
            ),
            SAR_INVALIDHANDLEERR
        );
        assert_eq!(
            close(a),
            SAR_INVALIDHANDLEERR,
            "CloseHandle takes no container"
        );

        // --- RSA: external keys
        let mut rb: RSAPRIVATEKEYBLOB = std::mem::zeroed();
        assert_eq!(gen_ext_rsa(d, 512 + 3, &mut rb), SAR_RSAMODULUSLENERR);
        assert_eq!(gen_ext_rsa(d, 1024, &mut rb), SAR_OK);
        assert_eq!({ rb.BitLen }, 1024);
        assert_eq!(&rb.Modulus[..128], &[0u8; 128][..], "right-aligned");
        let mut rpub = RSAPUBLICKEYBLOB {
            AlgID: SGD_RSA,
            BitLen: 1024,
            Modulus: rb.Modulus,
            PublicExponent: rb.PublicExponent,
        };
        let m = [0x33u8; 128];
        let mut c = [0u8; 128];
        let mut cl = 128u32;
        assert_eq!(
            rsa_pub_op(d, &rpub, m.as_ptr(), 127, c.as_mut_ptr(), &mut cl),
            SAR_INDATALENERR
        );
        assert_eq!(
            rsa_pub_op(d, &rpub, m.as_ptr(), 128, c.as_mut_ptr(), &mut cl),
            SAR_OK
        );
        let mut back = [0u8; 128];
        let mut bl = 128u32;
        assert_eq!(
            rsa_pri_op(d, &rb, c.as_ptr(), 128, back.as_mut_ptr(), &mut bl),
            SAR_OK
        );
        assert_eq!(back, m);
        let ext_pub =
            PublicKey::from_rsa_components(&rb.Modulus[128..], &rb.PublicExponent).unwrap();

        // --- RSA containers
        let r = s.container("R", true);
        let mut t = 0u32;
        let mut rp: RSAPUBLICKEYBLOB = std::mem::zeroed();
        assert_eq!(gen_rsa(r, 4096, &mut rp), SAR_RSAMODULUSLENERR);
        assert_eq!(
            gen_rsa(a, 1024, &mut rp),
            SAR_INVALIDPARAMERR,
            "an SM2 container"
        );
        assert_eq!(gen_rsa(r, 1024, &mut rp), SAR_OK);
        assert_eq!(con_type(r, &mut t), SAR_OK);
        assert_eq!(t, CONTAINER_TYPE_RSA);
        assert_eq!(Session::public_key(r, true).len(), 268);
        let sign_pub =
            PublicKey::from_rsa_components(&rp.Modulus[128..], &rp.PublicExponent).unwrap();
        let di = [0x44u8; 35];
        let mut sl = 0u32;
        assert_eq!(rsa_sign(r, di.as_ptr(), 35, null_mut(), &mut sl), SAR_OK);
        assert_eq!(sl, 128);
        let mut sigb = vec![0u8; 128];
        assert_eq!(
            rsa_sign(r, di.as_ptr(), 118, sigb.as_mut_ptr(), &mut sl),
            SAR_INDATALENERR
        );
        assert_eq!(
            rsa_sign(r, di.as_ptr(), 35, sigb.as_mut_ptr(), &mut sl),
            SAR_OK
        );
        sign_pub.verify(&SignMech::RsaPkcs1Raw, &di, &sigb).unwrap();
        assert_eq!(
            rsa_verify(d, &rp, di.as_ptr(), 35, sigb.as_ptr(), 128),
            SAR_OK
        );
        assert_ne!(
            rsa_verify(d, &rp, m.as_ptr(), 35, sigb.as_ptr(), 128),
            SAR_OK
        );
        // ImportRSAKeyPair: the external key as PKCS#1 DER, then as a blob (rekey)
        let ext = PrivateKey::generate(KeyAlg::Rsa(1024)).unwrap();
        let k = [0x66u8; 16];
        let wrapped = sign_pub.encrypt(&EncMech::RsaPkcs1, &k).unwrap();
        let p8 = ext.to_pkcs8_der();
        let pki = <pkcs8::PrivateKeyInfoRef as der::Decode>::from_der(&p8).unwrap();
        let mut pkcs1 = pki.private_key.as_bytes().to_vec();
        while pkcs1.len() % 16 != 0 {
            pkcs1.push(0);
        }
        let ep = sym::encrypt(SymAlg::Sm4, SymMode::Ecb, &k, &[], &pkcs1).unwrap();
        assert_eq!(
            import_rsa(
                r,
                SGD_SM1_ECB,
                wrapped.as_ptr(),
                wrapped.len() as u32,
                ep.as_ptr(),
                ep.len() as u32
            ),
            SAR_NOTSUPPORTYETERR
        );
        assert_eq!(
            import_rsa(
                r,
                SGD_SM4_ECB,
                wrapped.as_ptr(),
                wrapped.len() as u32,
                ep.as_ptr(),
                ep.len() as u32
            ),
            SAR_OK
        );
        let enc_pub_blob = Session::public_key(r, false);
        assert_eq!(
            &enc_pub_blob[8 + 128..264],
            &ext.public_key().unwrap().rsa_components().unwrap().0[..]
        );
        let mut rblob = Vec::from(std::slice::from_raw_parts(
            (&rb as *const RSAPRIVATEKEYBLOB).cast::<u8>(),
            1164,
        ));
        rblob.extend_from_slice(&[4u8; 4]);
        let ep2 = sym::encrypt(SymAlg::Sm4, SymMode::Ecb, &k, &[], &rblob).unwrap();
        assert_eq!(
            import_rsa(
                r,
                SGD_SM4_ECB,
                wrapped.as_ptr(),
                wrapped.len() as u32,
                ep2.as_ptr(),
                ep2.len() as u32
            ),
            SAR_OK
        );
        let enc_pub_blob = Session::public_key(r, false);
        assert_eq!(&enc_pub_blob[8..264], &rb.Modulus[..]);
        // ImportSessionKey on the RSA container: PKCS#1 v1.5 to the encryption key
        let sk_bytes = [0x77u8; 16];
        let w = ext_pub.encrypt(&EncMech::RsaPkcs1, &sk_bytes).unwrap();
        let mut ik: H = null_mut();
        assert_eq!(
            import_sk(r, SGD_SM4_ECB, w.as_ptr(), w.len() as u32, &mut ik),
            SAR_OK
        );
        assert_eq!(enc_init(ik, param(&[], 0)), SAR_OK);
        let mut l = 16u32;
        assert_eq!(enc(ik, data.as_ptr(), 16, ca.as_mut_ptr(), &mut l), SAR_OK);
        assert_eq!(
            ca.to_vec(),
            sym::encrypt(SymAlg::Sm4, SymMode::Ecb, &sk_bytes, &[], &data[..16]).unwrap()
        );
        // RSAExportSessionKey to the external key
        let mut wl = 0u32;
        let mut xk: H = null_mut();
        assert_eq!(
            rsa_export(r, SGD_SM4_CBC, &rpub, null_mut(), &mut wl, &mut xk),
            SAR_OK
        );
        assert_eq!(wl, 128);
        assert!(xk.is_null(), "a size query makes no key");
        let mut wb = vec![0u8; 128];
        assert_eq!(
            rsa_export(r, SGD_SM4_CBC, &rpub, wb.as_mut_ptr(), &mut wl, &mut xk),
            SAR_OK
        );
        let mut plain = [0u8; 128];
        let mut pl = 128u32;
        assert_eq!(
            rsa_pri_op(d, &rb, wb.as_ptr(), 128, plain.as_mut_ptr(), &mut pl),
            SAR_OK
        );
        let session = &plain[112..];
        assert_eq!(&plain[..2], &[0, 2], "PKCS#1 v1.5 type 2");
        assert_eq!(enc_init(xk, param(&iv, 0)), SAR_OK);
        let mut l = 16u32;
        assert_eq!(enc(xk, data.as_ptr(), 16, ca.as_mut_ptr(), &mut l), SAR_OK);
        assert_eq!(
            ca.to_vec(),
            sym::encrypt(SymAlg::Sm4, SymMode::Cbc, session, &iv, &data[..16]).unwrap()
        );
        rpub.BitLen = 4096;
        assert_eq!(
            rsa_verify(d, &rpub, di.as_ptr(), 35, sigb.as_ptr(), 128),
            SAR_RSAMODULUSLENERR
        );

        // --- closing the device closes its session keys, hashes and agreements
        let disconnect = skf!(SKF_DisConnectDev: fn(H));
        assert_eq!(disconnect(d), SAR_OK);
        for h in [sk, ak, bk, ah, ik, xk, a, b, r, s.app] {
            assert_eq!(close(h), SAR_INVALIDHANDLEERR);
        }
    }
    println!("crypto ok");
}
