//! SKF blobs read from and written for a vendor library, as bytes: every length and
//! field is checked before use.

use token_hal::crypto::sym::{SymAlg, SymMode, encrypt};
use token_hal::crypto::{EncMech, KeyAlg, PrivateKey, PublicKey};
use token_hal::{Error, Result};
use zeroize::Zeroizing;

/// ECCPUBLICKEYBLOB length.
pub const ECC_PUB_LEN: usize = 132;
/// RSAPUBLICKEYBLOB length.
pub const RSA_PUB_LEN: usize = 268;
/// ECCSIGNATUREBLOB length.
pub const ECC_SIG_LEN: usize = 128;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(w)
}

/// The last 32 bytes of a right-aligned 64-byte SM2 field; the first 32 must be zero.
fn sm2_field(f: &[u8], what: &str) -> Result<[u8; 32]> {
    if f.len() != 64 || f[..32].iter().any(|&b| b != 0) {
        return Err(Error::invalid_data(format!(
            "vendor {what}: not a right-aligned 256-bit value"
        )));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&f[32..]);
    Ok(out)
}

/// 64-byte right-aligned field of a value of at most 64 bytes.
pub fn field64(v: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[64 - v.len()..].copy_from_slice(v);
    out
}

/// The public key of an exported blob: an ECCPUBLICKEYBLOB (132 bytes, SM2) or an
/// RSAPUBLICKEYBLOB (268 bytes).
pub fn public_key(blob: &[u8]) -> Result<PublicKey> {
    match blob.len() {
        ECC_PUB_LEN => {
            let bits = u32_at(blob, 0);
            if bits != 256 {
                return Err(Error::invalid_data(format!(
                    "vendor ECC public key of {bits} bits (SM2 is 256)"
                )));
            }
            let mut p = vec![4u8];
            p.extend_from_slice(&sm2_field(&blob[4..68], "ECC public key x")?);
            p.extend_from_slice(&sm2_field(&blob[68..132], "ECC public key y")?);
            PublicKey::from_ec_point(KeyAlg::Sm2, &p)
        }
        RSA_PUB_LEN => {
            let bits = u32_at(blob, 4);
            if !(1024..=2048).contains(&bits) || !bits.is_multiple_of(8) {
                return Err(Error::invalid_data(format!(
                    "vendor RSA public key of {bits} bits"
                )));
            }
            let n_len = (bits / 8) as usize;
            let field = &blob[8..264];
            // Right-aligned when the bytes before the modulus are zero (GmSSL 2),
            // else left-aligned (as the Tongsuo engine reads them).
            let n = if field[..256 - n_len].iter().all(|&b| b == 0) {
                &field[256 - n_len..]
            } else {
                &field[..n_len]
            };
            PublicKey::from_rsa_components(n, &blob[264..268])
        }
        n => Err(Error::invalid_data(format!(
            "vendor public key blob of {n} bytes (132 or 268 expected)"
        ))),
    }
}

/// The ECCPUBLICKEYBLOB of an SM2 public key.
pub fn ecc_pub_blob(k: &PublicKey) -> Result<Vec<u8>> {
    let p = k
        .ec_point()
        .filter(|p| p.len() == 65 && k.alg() == KeyAlg::Sm2)
        .ok_or_else(|| Error::KeyType("not an SM2 key".into()))?;
    let mut out = 256u32.to_ne_bytes().to_vec();
    out.extend_from_slice(&field64(&p[1..33]));
    out.extend_from_slice(&field64(&p[33..65]));
    Ok(out)
}

/// Raw r‖s of an ECCSIGNATUREBLOB.
pub fn ecc_signature(blob: &[u8]) -> Result<Vec<u8>> {
    if blob.len() != ECC_SIG_LEN {
        return Err(Error::invalid_data("vendor ECC signature blob length"));
    }
    let mut out = sm2_field(&blob[..64], "signature r")?.to_vec();
    out.extend_from_slice(&sm2_field(&blob[64..], "signature s")?);
    Ok(out)
}

/// The ECCCIPHERBLOB of a raw SM2 ciphertext C1‖C3‖C2 (C1 uncompressed).
pub fn ecc_cipher_blob(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.len() <= 97 || raw[0] != 4 {
        return Err(Error::invalid_data(
            "SM2 ciphertext must be C1 (04||x||y) || C3 || C2",
        ));
    }
    let c2 = &raw[97..];
    let c2_len = u32::try_from(c2.len()).map_err(|_| Error::invalid_data("SM2 ciphertext"))?;
    let mut out = field64(&raw[1..33]).to_vec();
    out.extend_from_slice(&field64(&raw[33..65]));
    out.extend_from_slice(&raw[65..97]);
    out.extend_from_slice(&c2_len.to_ne_bytes());
    out.extend_from_slice(c2);
    Ok(out)
}

/// An ENVELOPEDKEYBLOB carrying the SM2 private key `key` for `SKF_ImportECCKeyPair`,
/// built host-side as a CA's KMC builds one: the 64-byte private-key field (32 zero
/// bytes ‖ d) SM4-ECB-encrypted under a random key, that key SM2-encrypted to
/// `sign_pub` (the container's signing public key).
pub fn enveloped_key_blob(key: &PrivateKey, sign_pub: &PublicKey) -> Result<Zeroizing<Vec<u8>>> {
    if key.alg() != KeyAlg::Sm2 || sign_pub.alg() != KeyAlg::Sm2 {
        return Err(Error::KeyType(
            "an ENVELOPEDKEYBLOB carries SM2 keys only".into(),
        ));
    }
    let d = key
        .raw_private_value()
        .filter(|d| d.len() == 32)
        .ok_or_else(|| Error::KeyType("SM2 private value".into()))?;
    let k = Zeroizing::new(token_hal::crypto::rng::random_bytes(16)?);
    let field = Zeroizing::new(field64(&d));
    let enc = encrypt(SymAlg::Sm4, SymMode::Ecb, &k, &[], &field[..])?;
    if enc.len() != 64 {
        return Err(Error::internal("SM4-ECB of 64 bytes"));
    }
    let wrapped = sign_pub.encrypt(&EncMech::Sm2, &k)?;
    let mut out = Zeroizing::new(Vec::with_capacity(208 + 164 + 16));
    out.extend_from_slice(&1u32.to_ne_bytes());
    out.extend_from_slice(&skf_sys::SGD_SM4_ECB.to_ne_bytes());
    out.extend_from_slice(&256u32.to_ne_bytes());
    out.extend_from_slice(&enc);
    out.extend_from_slice(&ecc_pub_blob(&key.public_key()?)?);
    out.extend_from_slice(&ecc_cipher_blob(&wrapped)?);
    Ok(out)
}

/// A NUL-separated name list (ending with one or two NULs, or none) as names. Empty
/// entries are skipped; a name that is not UTF-8 is skipped with a warning (the model's
/// names are strings).
pub fn name_list(buf: &[u8]) -> Vec<String> {
    buf.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| match std::str::from_utf8(n) {
            Ok(s) => Some(s.to_owned()),
            Err(_) => {
                tracing::warn!(name = ?n, "vendor name is not UTF-8; skipped");
                None
            }
        })
        .collect()
}

/// The NUL-terminated string of a fixed field (lossy UTF-8, trimmed).
pub fn c_field(f: &[u8]) -> String {
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    String::from_utf8_lossy(&f[..end]).trim().to_owned()
}

/// `s` with a trailing NUL, for an `LPSTR` argument; a string holding a NUL is refused.
pub fn c_string(s: &[u8], what: &str) -> Result<Zeroizing<Vec<u8>>> {
    if s.contains(&0) {
        return Err(Error::invalid_arg(format!("{what} contains a NUL byte")));
    }
    let mut v = Zeroizing::new(Vec::with_capacity(s.len() + 1));
    v.extend_from_slice(s);
    v.push(0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecc_public_key_blob_round_trips_and_bad_ones_are_refused() {
        let k = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let pk = k.public_key().unwrap();
        let blob = ecc_pub_blob(&pk).unwrap();
        assert_eq!(blob.len(), ECC_PUB_LEN);
        assert_eq!(public_key(&blob).unwrap().spki_der(), pk.spki_der());
        let mut bad = blob.clone();
        bad[4] = 1; // not right-aligned
        assert!(public_key(&bad).is_err());
        assert!(public_key(&blob[..131]).is_err());
        let mut bits = blob;
        bits[..4].copy_from_slice(&512u32.to_ne_bytes());
        assert!(public_key(&bits).is_err());
    }

    #[test]
    fn name_lists_parse_with_or_without_the_final_nul() {
        assert_eq!(name_list(b"a\0bc\0\0"), vec!["a", "bc"]);
        assert_eq!(name_list(b"a\0bc"), vec!["a", "bc"]);
        assert!(name_list(b"\0\0").is_empty());
        assert_eq!(name_list(b"ok\0\xff\xfe\0"), vec!["ok"]);
    }

    #[test]
    fn signature_blob_needs_right_aligned_fields() {
        let mut blob = vec![0u8; 128];
        blob[63] = 1;
        blob[127] = 2;
        let rs = ecc_signature(&blob).unwrap();
        assert_eq!((rs[31], rs[63]), (1, 2));
        blob[0] = 9;
        assert!(ecc_signature(&blob).is_err());
        assert!(ecc_signature(&blob[..127]).is_err());
    }

    #[test]
    fn enveloped_blob_has_the_standard_layout() {
        let sign = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let enc = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let b = enveloped_key_blob(&enc, &sign.public_key().unwrap()).unwrap();
        assert_eq!(b.len(), 208 + 164 + 16);
        assert_eq!(u32_at(&b, 0), 1);
        assert_eq!(u32_at(&b, 4), skf_sys::SGD_SM4_ECB);
        assert_eq!(u32_at(&b, 208 + 160), 16);
        // The symmetric key opens with the signing key and decrypts d.
        let mut raw = vec![4u8];
        raw.extend_from_slice(&b[208 + 32..208 + 64]);
        raw.extend_from_slice(&b[208 + 96..208 + 128]);
        raw.extend_from_slice(&b[208 + 128..208 + 160]);
        raw.extend_from_slice(&b[208 + 164..]);
        let k = sign.decrypt(&EncMech::Sm2, &raw).unwrap();
        let field = token_hal::crypto::sym::decrypt(SymAlg::Sm4, SymMode::Ecb, &k, &[], &b[12..76])
            .unwrap();
        assert_eq!(&field[32..], &enc.raw_private_value().unwrap()[..]);
    }
}
