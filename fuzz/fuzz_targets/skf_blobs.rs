//! SKF blob decoding: ENVELOPEDKEYBLOB (token-hal's `EnvelopedKeyBlob`, binary and Base64),
//! ECCCIPHERBLOB, ECC/RSA key and signature blobs and BLOCKCIPHERPARAM through the SKF
//! functions that take them, on a logged-in container with an SM2 signing key.
//!
//! The first byte picks: 0 = the rest is an ENVELOPEDKEYBLOB file; 1 = the rest patches a
//! valid blob made by `EnvelopedKeyBlob::wrap` (pairs of offset, XOR byte); anything else =
//! the rest is an SKF call sequence (`ukey_fuzz::skf`, blob calls only).
//! Invariants: a blob that decodes encodes back to the same bytes; the unpatched valid blob
//! decodes and unwraps to the key it wraps.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use token_hal::crypto::{EncMech, KeyAlg, PrivateKey};
use token_hal::tender::keyblob::EnvelopedKeyBlob;

struct Valid {
    blob: Vec<u8>,
    sign: PrivateKey,
    enc_der: Vec<u8>,
}

fn valid() -> &'static Valid {
    static V: OnceLock<Valid> = OnceLock::new();
    V.get_or_init(|| {
        let sign = PrivateKey::generate(KeyAlg::Sm2).expect("SM2 key");
        let enc = PrivateKey::generate(KeyAlg::Sm2).expect("SM2 key");
        let b = EnvelopedKeyBlob::wrap(&enc, &sign.public_key().expect("public")).expect("wrap");
        Valid {
            blob: b.to_bytes().expect("encode"),
            sign,
            enc_der: enc.to_pkcs8_der().to_vec(),
        }
    })
}

fn decode(bytes: &[u8]) -> Option<EnvelopedKeyBlob> {
    let b = EnvelopedKeyBlob::parse(bytes).ok()?;
    assert_eq!(b.to_bytes().expect("encode a decoded blob"), bytes);
    let _ = b.public_key();
    Some(b)
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, rest)) => {
            decode(rest);
            if let Ok(b) = EnvelopedKeyBlob::parse_file(rest) {
                let bin = b.to_bytes().expect("encode a decoded blob");
                assert!(EnvelopedKeyBlob::parse(&bin).is_ok());
            }
        }
        Some((1, rest)) => {
            let v = valid();
            let mut blob = v.blob.clone();
            for p in rest.chunks_exact(3) {
                let at = usize::from(u16::from_be_bytes([p[0], p[1]])) % blob.len();
                blob[at] ^= p[2];
            }
            if let Some(b) = decode(&blob) {
                let unwrapped = b.unwrap_with(|c| v.sign.decrypt(&EncMech::Sm2, c));
                if blob == v.blob {
                    let k = unwrapped.expect("the valid blob unwraps");
                    assert_eq!(*k.to_pkcs8_der(), v.enc_der);
                }
            }
        }
        Some((_, rest)) => ukey_fuzz::skf::run(rest, true),
        None => {}
    }
});
