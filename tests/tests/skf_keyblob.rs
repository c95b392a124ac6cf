//! SKF_ImportECCKeyPair after its ENVELOPEDKEYBLOB decoding moved to
//! `token_hal::tender::keyblob` (which `ukey key import-enveloped` shares): a blob written by
//! token-hal's KMC-side writer installs through the C ABI, and malformed blobs get the same
//! SAR codes as before and change nothing.

#![allow(clippy::unwrap_used)]

mod skf_common;

use skf_common::*;
use skf_sys::{SAR_INDATAERR, SAR_INVALIDPARAMERR, SAR_OK, SGD_SM2_1, SGD_SM4_CBC};
use token_hal::crypto::{KeyAlg, PrivateKey};
use token_hal::tender::keyblob::{CIPHER_HEADER_LEN, CIPHER_OFFSET, EnvelopedKeyBlob};

#[test]
fn keyblob_through_skf() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "kb");
    run_child(&conf, "keyblob_through_skf_child");
}

#[test]
fn keyblob_through_skf_child() {
    if !is_child("keyblob_through_skf_child") {
        return;
    }
    let s = Session::open("kb");
    let c = s.container("c", true);
    let sign_pub = ecc_pub_of_blob(&Session::gen_sm2(c, SGD_SM2_1));

    let enc1 = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let good = EnvelopedKeyBlob::wrap(&enc1, &sign_pub)
        .unwrap()
        .to_bytes()
        .unwrap();
    assert_eq!(good.len(), CIPHER_OFFSET + CIPHER_HEADER_LEN + 16);

    let enc2 = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let second = EnvelopedKeyBlob::wrap(&enc2, &sign_pub)
        .unwrap()
        .to_bytes()
        .unwrap();
    let mutated = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = second.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("version 2", mutated(&|b| b[0] = 2), SAR_INDATAERR),
        (
            "SM4-CBC",
            mutated(&|b| b[4..8].copy_from_slice(&SGD_SM4_CBC.to_ne_bytes())),
            SAR_INVALIDPARAMERR,
        ),
        (
            "CipherLen 0",
            mutated(&|b| {
                let o = CIPHER_OFFSET + 160;
                b[o..o + 4].copy_from_slice(&0u32.to_ne_bytes());
            }),
            SAR_INDATAERR,
        ),
        (
            "public key high bytes",
            mutated(&|b| b[80] = 1),
            SAR_INDATAERR,
        ),
        (
            "private key tampered",
            mutated(&|b| b[20] ^= 0x55),
            SAR_INDATAERR,
        ),
    ];

    let mut g = good.clone();
    assert_eq!(Session::import_enc(c, &mut g), SAR_OK);
    assert_eq!(
        ecc_pub_of_blob(&Session::public_key(c, false)),
        enc1.public_key().unwrap()
    );
    for (what, mut blob, code) in cases {
        assert_eq!(Session::import_enc(c, &mut blob), code, "{what}");
        assert_eq!(
            ecc_pub_of_blob(&Session::public_key(c, false)),
            enc1.public_key().unwrap(),
            "{what} changed the key"
        );
    }
    let mut ok2 = second.clone();
    assert_eq!(Session::import_enc(c, &mut ok2), SAR_OK);
    assert_eq!(
        ecc_pub_of_blob(&Session::public_key(c, false)),
        enc2.public_key().unwrap()
    );
}
