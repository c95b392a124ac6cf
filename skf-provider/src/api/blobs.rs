//! Conversions between the GM/T 0016 blobs and token-hal keys. Integers are big-endian
//! and right-aligned in their fields; SM2 values fill the last 32 bytes of 64.

use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BoxedUint, PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use skf_sys::*;
use token_hal::crypto::{KeyAlg, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

fn right_align<const N: usize>(v: &[u8]) -> Result<[u8; N]> {
    let v = &v[v.iter().position(|&b| b != 0).unwrap_or(v.len())..];
    if v.len() > N {
        return Err(Error::DATA);
    }
    let mut out = [0u8; N];
    out[N - v.len()..].copy_from_slice(v);
    Ok(out)
}

/// The 32-byte SM2 value of a 64-byte field; the first 32 bytes must be zero.
fn sm2_field(f: &[u8; 64]) -> Result<&[u8; 32]> {
    let (high, low) = f.split_at(32);
    if high.iter().any(|&b| b != 0) {
        return Err(Error::INVALID_PARAM);
    }
    low.try_into().map_err(|_| Error::INVALID_PARAM)
}

/// ECCPUBLICKEYBLOB of an SM2 public key.
pub(crate) fn ecc_pub_blob(k: &PublicKey) -> Result<ECCPUBLICKEYBLOB> {
    let p = k.ec_point().ok_or(Error::KEY_NOT_FOUND)?;
    if k.alg() != KeyAlg::Sm2 || p.len() != 65 {
        return Err(Error::KEY_NOT_FOUND);
    }
    Ok(ECCPUBLICKEYBLOB {
        BitLen: 256,
        XCoordinate: right_align::<64>(&p[1..33])?,
        YCoordinate: right_align::<64>(&p[33..65])?,
    })
}

/// The uncompressed point 04‖x‖y of an ECCPUBLICKEYBLOB.
pub(crate) fn ecc_point(b: &ECCPUBLICKEYBLOB) -> Result<[u8; 65]> {
    if b.BitLen != 256 {
        return Err(Error::INVALID_PARAM);
    }
    // The coordinates are copied straight into the point (no 32-byte temporaries to
    // store and load back at other offsets).
    let mut p = [0u8; 65];
    p[0] = 4;
    p[1..33].copy_from_slice(sm2_field(&b.XCoordinate)?);
    p[33..].copy_from_slice(sm2_field(&b.YCoordinate)?);
    Ok(p)
}

/// The SM2 public key of an ECCPUBLICKEYBLOB (checked to be on the curve).
pub(crate) fn ecc_pub_key(b: &ECCPUBLICKEYBLOB) -> Result<PublicKey> {
    PublicKey::from_ec_point(KeyAlg::Sm2, &ecc_point(b)?).map_err(|_| Error::IMPORT_PUBKEY)
}

/// The SM2 private key of an ECCPRIVATEKEYBLOB.
pub(crate) fn ecc_priv_key(b: &ECCPRIVATEKEYBLOB) -> Result<PrivateKey> {
    if b.BitLen != 256 {
        return Err(Error::INVALID_PARAM);
    }
    let f = Zeroizing::new(b.PrivateKey);
    Ok(PrivateKey::from_sm2_scalar(sm2_field(&f)?)?)
}

/// ECCSIGNATUREBLOB of a raw r‖s signature.
pub(crate) fn sig_blob(rs: &[u8]) -> Result<ECCSIGNATUREBLOB> {
    if rs.len() != 64 {
        return Err(Error::FAIL);
    }
    Ok(ECCSIGNATUREBLOB {
        r: right_align::<64>(&rs[..32])?,
        s: right_align::<64>(&rs[32..])?,
    })
}

/// Raw r‖s of an ECCSIGNATUREBLOB.
pub(crate) fn sig_raw(b: &ECCSIGNATUREBLOB) -> Result<Vec<u8>> {
    let (r, s) = (b.r, b.s);
    let mut out = sm2_field(&r)?.to_vec();
    out.extend_from_slice(sm2_field(&s)?);
    Ok(out)
}

/// An ECCCIPHERBLOB (header fields plus C2) of a raw C1‖C3‖C2 ciphertext, as bytes.
pub(crate) fn cipher_blob_bytes(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.len() < 97 || raw[0] != 4 {
        return Err(Error::FAIL);
    }
    let c2 = &raw[97..];
    let mut out = Vec::with_capacity(ECCCIPHERBLOB_HEADER_LEN + c2.len());
    out.extend_from_slice(&right_align::<64>(&raw[1..33])?);
    out.extend_from_slice(&right_align::<64>(&raw[33..65])?);
    out.extend_from_slice(&raw[65..97]);
    let len = ULONG::try_from(c2.len()).map_err(|_| Error::DATA_LEN)?;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(c2);
    Ok(out)
}

/// Raw C1‖C3‖C2 of an ECCCIPHERBLOB given as its header and C2.
pub(crate) fn cipher_raw(header: &[u8; ECCCIPHERBLOB_HEADER_LEN], c2: &[u8]) -> Result<Vec<u8>> {
    let mut x = [0u8; 64];
    let mut y = [0u8; 64];
    x.copy_from_slice(&header[..64]);
    y.copy_from_slice(&header[64..128]);
    let mut out = vec![4u8];
    out.extend_from_slice(sm2_field(&x)?);
    out.extend_from_slice(sm2_field(&y)?);
    out.extend_from_slice(&header[128..160]);
    out.extend_from_slice(c2);
    Ok(out)
}

/// The modulus bytes of an RSA blob field: right-aligned (what ukey writes), or
/// left-aligned as some clients write them; the alignment is read from the modulus,
/// whose top byte is never zero.
#[derive(Clone, Copy)]
struct Align {
    right: bool,
}

impl Align {
    fn detect(modulus: &[u8; 256], bits: ULONG) -> Result<(Self, usize)> {
        if !(512..=2048).contains(&bits) || !bits.is_multiple_of(8) {
            return Err(Error::RSA_MODULUS_LEN);
        }
        let n = bits as usize / 8;
        let right = modulus[..256 - n].iter().all(|&b| b == 0) && modulus[256 - n] != 0;
        if !right && modulus[0] == 0 {
            return Err(Error::DATA);
        }
        Ok((Self { right }, n))
    }
    fn take(self, field: &[u8], len: usize) -> &[u8] {
        if self.right {
            &field[field.len() - len..]
        } else {
            &field[..len]
        }
    }
}

fn rsa_parts_of_pub(b: &RSAPUBLICKEYBLOB) -> Result<(Vec<u8>, Vec<u8>)> {
    if b.AlgID != SGD_RSA && b.AlgID != 0 {
        return Err(Error::INVALID_PARAM);
    }
    let m = b.Modulus;
    let (al, n) = Align::detect(&m, b.BitLen)?;
    let e = b.PublicExponent;
    Ok((al.take(&m, n).to_vec(), e.to_vec()))
}

/// The RSA public key of an RSAPUBLICKEYBLOB.
pub(crate) fn rsa_pub_key(b: &RSAPUBLICKEYBLOB) -> Result<PublicKey> {
    let (n, e) = rsa_parts_of_pub(b)?;
    PublicKey::from_rsa_components(&n, &e).map_err(|_| Error::IMPORT_PUBKEY)
}

/// RSAPUBLICKEYBLOB of an RSA public key of at most 2048 bits (right-aligned).
pub(crate) fn rsa_pub_blob(k: &PublicKey) -> Result<RSAPUBLICKEYBLOB> {
    let KeyAlg::Rsa(bits) = k.alg() else {
        return Err(Error::KEY_NOT_FOUND);
    };
    if bits > 2048 {
        return Err(Error::RSA_MODULUS_LEN);
    }
    let (n, e) = k.rsa_components().ok_or(Error::KEY_NOT_FOUND)?;
    Ok(RSAPUBLICKEYBLOB {
        AlgID: SGD_RSA,
        BitLen: bits,
        Modulus: right_align::<256>(&n)?,
        PublicExponent: right_align::<4>(&e)?,
    })
}

fn be(u: &BoxedUint) -> Vec<u8> {
    u.to_be_bytes_trimmed_vartime().to_vec()
}

/// RSAPRIVATEKEYBLOB of an RSA private key (PKCS#8 inside token-hal).
pub(crate) fn rsa_priv_blob(k: &PrivateKey) -> Result<Zeroizing<RsaPrivBlob>> {
    use rsa::pkcs8::DecodePrivateKey;
    let r = RsaPrivateKey::from_pkcs8_der(&k.to_pkcs8_der()).map_err(|_| Error::FAIL)?;
    let bits = r.n().as_ref().bit_width();
    if bits > 2048 {
        return Err(Error::RSA_MODULUS_LEN);
    }
    let p = r.primes();
    if p.len() != 2 {
        return Err(Error::DATA);
    }
    let dp = r.dp().ok_or(Error::DATA)?;
    let dq = r.dq().ok_or(Error::DATA)?;
    let qinv = r.crt_coefficient().ok_or(Error::DATA)?;
    Ok(Zeroizing::new(RsaPrivBlob(RSAPRIVATEKEYBLOB {
        AlgID: SGD_RSA,
        BitLen: bits,
        Modulus: right_align::<256>(&be(r.n().as_ref()))?,
        PublicExponent: right_align::<4>(&be(r.e()))?,
        PrivateExponent: right_align::<256>(&be(r.d()))?,
        Prime1: right_align::<128>(&be(&p[0]))?,
        Prime2: right_align::<128>(&be(&p[1]))?,
        Prime1Exponent: right_align::<128>(&be(dp))?,
        Prime2Exponent: right_align::<128>(&be(dq))?,
        Coefficient: right_align::<128>(&be(&qinv))?,
    })))
}

/// An RSAPRIVATEKEYBLOB that is zeroized on drop.
pub(crate) struct RsaPrivBlob(pub RSAPRIVATEKEYBLOB);

impl zeroize::Zeroize for RsaPrivBlob {
    fn zeroize(&mut self) {
        self.0.PrivateExponent = [0; 256];
        self.0.Prime1 = [0; 128];
        self.0.Prime2 = [0; 128];
        self.0.Prime1Exponent = [0; 128];
        self.0.Prime2Exponent = [0; 128];
        self.0.Coefficient = [0; 128];
    }
}

fn rsa_key_of_priv_blob(b: &RSAPRIVATEKEYBLOB) -> Result<RsaPrivateKey> {
    if b.AlgID != SGD_RSA && b.AlgID != 0 {
        return Err(Error::INVALID_PARAM);
    }
    let m = b.Modulus;
    let (al, n) = Align::detect(&m, b.BitLen)?;
    let half = n / 2;
    let e = b.PublicExponent;
    let d = Zeroizing::new(b.PrivateExponent);
    let p = Zeroizing::new(b.Prime1);
    let q = Zeroizing::new(b.Prime2);
    let bu = |v: &[u8]| BoxedUint::from_be_slice_vartime(v);
    RsaPrivateKey::from_components(
        bu(al.take(&m, n)),
        bu(&e),
        bu(al.take(&*d, n)),
        vec![bu(al.take(&*p, half)), bu(al.take(&*q, half))],
    )
    .map_err(|_| Error::DATA)
}

/// The private key of an RSAPRIVATEKEYBLOB (right- or left-aligned fields).
pub(crate) fn rsa_priv_key(b: &RSAPRIVATEKEYBLOB) -> Result<PrivateKey> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let r = rsa_key_of_priv_blob(b)?;
    let der = r.to_pkcs1_der().map_err(|_| Error::DATA)?;
    Ok(PrivateKey::from_pkcs1_der(der.as_bytes())?)
}

/// Raw RSA with the public key (ExtRSAPubKeyOperation): input exactly the modulus length.
pub(crate) fn rsa_raw_public(b: &RSAPUBLICKEYBLOB, input: &[u8]) -> Result<Vec<u8>> {
    let (n, e) = rsa_parts_of_pub(b)?;
    if input.len() != n.len() {
        return Err(Error::DATA_LEN);
    }
    let key = RsaPublicKey::new(
        BoxedUint::from_be_slice_vartime(&n),
        BoxedUint::from_be_slice_vartime(&e),
    )
    .map_err(|_| Error::IMPORT_PUBKEY)?;
    let prec = key.n().as_ref().bits_precision();
    let m = BoxedUint::from_be_slice(input, prec).map_err(|_| Error::DATA)?;
    if m >= *key.n().as_ref() {
        return Err(Error::DATA);
    }
    let c = rsa::hazmat::rsa_encrypt(&key, &m).map_err(|_| Error::RSA_ENC)?;
    Ok(right_fixed(&be(&c), n.len()))
}

/// Raw RSA with a private key (ExtRSAPriKeyOperation).
pub(crate) fn rsa_raw_private(b: &RSAPRIVATEKEYBLOB, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let key = rsa_key_of_priv_blob(b)?;
    let n = b.BitLen as usize / 8;
    if input.len() != n {
        return Err(Error::DATA_LEN);
    }
    let prec = key.n().as_ref().bits_precision();
    let c = BoxedUint::from_be_slice(input, prec).map_err(|_| Error::DATA)?;
    if c >= *key.n().as_ref() {
        return Err(Error::DATA);
    }
    let m = rsa::hazmat::rsa_decrypt_and_check(&key, Some(&mut getrandom::SysRng), &c)
        .map_err(|_| Error::RSA_DEC)?;
    Ok(Zeroizing::new(right_fixed(&be(&m), n)))
}

fn right_fixed(v: &[u8], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n.saturating_sub(v.len())];
    out.extend_from_slice(&v[v.len().saturating_sub(n)..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_blobs_round_trip_and_raw_operations_invert() {
        let k = PrivateKey::generate(KeyAlg::Rsa(1024)).unwrap();
        let blob = rsa_priv_blob(&k).unwrap();
        assert_eq!({ blob.0.BitLen }, 1024);
        // right-aligned: the first 128 bytes of the modulus field are zero
        assert!(blob.0.Modulus[..128].iter().all(|&b| b == 0));
        let k2 = rsa_priv_key(&blob.0).unwrap();
        assert_eq!(k2.public_key().unwrap(), k.public_key().unwrap());
        let pb = rsa_pub_blob(&k.public_key().unwrap()).unwrap();
        let msg = vec![0x42u8; 128];
        let c = rsa_raw_public(&pb, &msg).unwrap();
        let m = rsa_raw_private(&blob.0, &c).unwrap();
        assert_eq!(*m, msg);
        // a left-aligned modulus is read too
        let mut left = pb;
        let mm = pb.Modulus;
        let mut lm = [0u8; 256];
        lm[..128].copy_from_slice(&mm[128..]);
        left.Modulus = lm;
        assert_eq!(rsa_pub_key(&left).unwrap(), k.public_key().unwrap());
    }

    #[test]
    fn ecc_blobs_round_trip_and_reject_high_bytes() {
        let k = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let b = ecc_pub_blob(&k.public_key().unwrap()).unwrap();
        assert_eq!(ecc_pub_key(&b).unwrap(), k.public_key().unwrap());
        let mut bad = b;
        bad.XCoordinate[0] = 1;
        assert!(ecc_pub_key(&bad).is_err());
    }
}
