//! The GmSSL-made interop vectors through the SKF face: `enc.key.pem` imported into a
//! container as an ENVELOPEDKEYBLOB wrapped to the container's signing key, then
//! `bid.enveloped-to-v1.p7m.pem` opened with SKF_ImportSessionKey + SKF_Decrypt, also
//! after the renewed certificate replaced v1 and after a rekey retired the key.

#![allow(clippy::unwrap_used)]

mod skf_common;

use der::{Decode, Encode};
use skf_common::*;
use token_hal::crypto::{PrivateKey, PublicKey, sm2};
use ukey_tests::repo_root;

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/data/gm-interop").join(name)).unwrap()
}

fn pem_der(name: &str) -> Vec<u8> {
    pem_rfc7468::decode_vec(&vector(name)).unwrap().1
}

/// (the recipient's wrapped key as an ECCCIPHERBLOB, the IV, the ciphertext) of the
/// GM/T 0010 EnvelopedData.
fn envelope() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    use cms::content_info::ContentInfo;
    use cms::enveloped_data::{EnvelopedData, RecipientInfo};
    let ci = ContentInfo::from_der(&pem_der("bid.enveloped-to-v1.p7m.pem")).unwrap();
    let env: EnvelopedData = ci.content.decode_as().unwrap();
    let ri = env.recip_infos.0.iter().next().unwrap();
    let RecipientInfo::Ktri(k) = ri else {
        panic!("not a key-transport recipient");
    };
    let raw = sm2::cipher_der_to_raw(k.enc_key.as_bytes()).unwrap();
    let params = env.encrypted_content.content_enc_alg.parameters.unwrap();
    let iv = der::asn1::OctetString::from_der(&params.to_der().unwrap()).unwrap();
    let ct = env.encrypted_content.encrypted_content.unwrap();
    (
        cipher_blob(&raw),
        iv.as_bytes().to_vec(),
        ct.as_bytes().to_vec(),
    )
}

#[test]
fn gm_interop_envelope_opens_through_skf() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    run_child(&conf, "gm_interop_child");
}

#[test]
fn gm_interop_child() {
    if !is_child("gm_interop_child") {
        return;
    }
    let s = Session::open("bids");
    let c = s.container("bidder", true);
    // the legacy reading of SGD_SM2_1
    let sign_blob = Session::gen_sm2(c, 0x0002_0100);
    let sign_pub = ecc_pub_of_blob(&sign_blob);
    assert_eq!(Session::public_key(c, true), sign_blob);

    let enc = PrivateKey::from_file_bytes(&vector("enc.key.pem"), Some(b"vectorpass")).unwrap();
    let enc_pub = enc.public_key().unwrap();
    assert_eq!(
        enc_pub,
        PublicKey::from_pem(std::str::from_utf8(&vector("enc.pub.pem")).unwrap()).unwrap()
    );
    let mut blob = enveloped_key_blob(&sm2_scalar(&enc), &enc_pub, &sign_pub);
    // A blob wrapped to another key is refused and changes nothing.
    let (_, other) = sm2_key();
    let mut wrong = enveloped_key_blob(&sm2_scalar(&enc), &enc_pub, &other.public_key().unwrap());
    assert_ne!(Session::import_enc(c, &mut wrong), 0);
    assert_eq!(Session::import_enc(c, &mut blob), 0);
    assert_eq!(ecc_pub_of_blob(&Session::public_key(c, false)), enc_pub);
    assert_eq!(
        Session::import_cert(c, false, &pem_der("enc.cert.v1.pem")),
        0
    );

    let bid = vector("bid.txt");
    let (wrapped, iv, ct) = envelope();
    assert_eq!(
        Session::unwrap_and_decrypt(c, &wrapped, &iv, &ct).unwrap(),
        bid
    );

    // SKF_ECCDecrypt of the session-key vector.
    let ecc_decrypt = skf!(SKF_ECCDecrypt: fn(*mut std::ffi::c_void, *const u8, *mut u8, *mut u32));
    let raw = sm2::cipher_der_to_raw(&vector("sessionkey.sm2enc.der")).unwrap();
    let cb = cipher_blob(&raw);
    let mut len = 0u32;
    let rv = {
        // SAFETY: a whole blob; NULL buffer is the size query.
        unsafe { ecc_decrypt(c, cb.as_ptr(), std::ptr::null_mut(), &mut len) }
    };
    assert_eq!(rv, 0);
    let mut out = vec![0u8; len as usize];
    let rv = {
        // SAFETY: the buffer holds `len` bytes.
        unsafe { ecc_decrypt(c, cb.as_ptr(), out.as_mut_ptr(), &mut len) }
    };
    assert_eq!(rv, 0);
    assert_eq!(out, vector("sessionkey.bin"));

    // Renewal: the v2 certificate replaces v1 for the same key; the envelope to v1 opens.
    assert_eq!(
        Session::import_cert(c, false, &pem_der("enc.cert.v2-renewed.pem")),
        0
    );
    let export = skf!(SKF_ExportCertificate: fn(*mut std::ffi::c_void, i32, *mut u8, *mut u32));
    let mut cert = vec![0u8; 4096];
    let mut clen = 4096u32;
    // SAFETY: the buffer holds `clen` bytes.
    assert_eq!(unsafe { export(c, 0, cert.as_mut_ptr(), &mut clen) }, 0);
    cert.truncate(clen as usize);
    assert_eq!(cert, pem_der("enc.cert.v2-renewed.pem"));
    assert_eq!(
        Session::unwrap_and_decrypt(c, &wrapped, &iv, &ct).unwrap(),
        bid
    );

    // Rekey: a new encryption pair into the occupied slot retires the old one, which
    // still opens the old envelope.
    let (d2, k2) = sm2_key();
    let mut blob2 = enveloped_key_blob(&d2, &k2.public_key().unwrap(), &sign_pub);
    assert_eq!(Session::import_enc(c, &mut blob2), 0);
    assert_eq!(
        ecc_pub_of_blob(&Session::public_key(c, false)),
        k2.public_key().unwrap()
    );
    assert_eq!(
        Session::unwrap_and_decrypt(c, &wrapped, &iv, &ct).unwrap(),
        bid
    );
    // A ciphertext to no key of the container fails cleanly.
    let (_, stranger) = sm2_key();
    let raw = stranger
        .public_key()
        .unwrap()
        .encrypt(&token_hal::crypto::EncMech::Sm2, &[7u8; 16])
        .unwrap();
    assert!(Session::unwrap_and_decrypt(c, &cipher_blob(&raw), &iv, &ct).is_err());
    println!("gm interop ok");
}
