//! SM2 (GB/T 32918) on RustCrypto `sm2`'s field, scalar and point arithmetic.
//!
//! The signature (part 2) and encryption (part 4) algorithms are written here, step by
//! step as the standard numbers them, on the crate's arithmetic. That keeps the private
//! scalar in a type that is zeroized on drop (the crate's `SigningKey` and
//! `DecryptingKey` are not) and lets the known-answer tests inject the standard's
//! random k. Unit tests cross-check every direction against the crate's own
//! `dsa` and `pke` implementations.

use elliptic_curve::ops::{LinearCombination, Reduce};
use elliptic_curve::point::AffineCoordinates;
use elliptic_curve::sec1::ToSec1Point;
use elliptic_curve::{Generate, Group};
use sm2::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use sm2::{AffinePoint, FieldBytes, NonZeroScalar, ProjectivePoint, Scalar};
use sm3::{Digest, Sm3};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::keys::{DecMech, EncMech, KeyAlg, PublicKey, SignMech};
use crate::crypto::provider::{AsymProvider, PrivateKeyOps};
use crate::crypto::sm2 as front;
use crate::error::{Error, Result};

/// The default SM2 implementation.
#[derive(Debug)]
pub struct RustCryptoSm2;

/// A private scalar that is zeroized on drop.
pub(crate) struct SecretScalar(NonZeroScalar);

impl Drop for SecretScalar {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl SecretScalar {
    pub(crate) fn from_slice(d: &[u8]) -> Result<Self> {
        if d.len() != 32 {
            return Err(Error::invalid_data("SM2 private key must be 32 bytes"));
        }
        NonZeroScalar::try_from(d)
            .map(Self)
            .map_err(|_| Error::invalid_data("SM2 private key is zero or not below n"))
    }
    pub(crate) fn random() -> Result<Self> {
        NonZeroScalar::try_generate_from_rng(&mut getrandom::SysRng)
            .map(Self)
            .map_err(|e| Error::internal(format!("OS random source: {e}")))
    }
    pub(crate) fn scalar(&self) -> &NonZeroScalar {
        &self.0
    }
    pub(crate) fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&self.0.to_bytes());
        out
    }
}

/// Decodes an uncompressed point and checks it is on the curve and not the identity.
pub(crate) fn decode_point(p: &[u8]) -> Result<AffinePoint> {
    front::check_point_encoding(p)?;
    sm2::PublicKey::from_sec1_bytes(p)
        .map(|k| *k.as_affine())
        .map_err(|_| Error::invalid_data("SM2 point is not on the curve"))
}

/// 04‖x‖y.
pub(crate) fn encode_point(a: &AffinePoint) -> [u8; 65] {
    let enc = a.to_sec1_point(false);
    let mut out = [0u8; 65];
    let b = enc.as_bytes();
    if b.len() == 65 {
        out.copy_from_slice(b);
    }
    out
}

/// The uncompressed public point of a private scalar.
pub(crate) fn public_point(d: &SecretScalar) -> [u8; 65] {
    encode_point(&ProjectivePoint::mul_by_generator(d.scalar()).to_affine())
}

/// KDF of GB/T 32918.4 §5.4.3: SM3 in counter mode over `z`.
pub(crate) fn kdf(z: &[&[u8]], klen: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(klen + 32));
    let mut ct: u32 = 1;
    while out.len() < klen {
        let mut h = Sm3::new();
        for part in z {
            h.update(part);
        }
        h.update(ct.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        ct = ct.wrapping_add(1);
    }
    out.truncate(klen);
    out
}

fn scalar_from_e(e: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*e))
}

/// GB/T 32918.2 §6.1 A3–A7 over e, drawing k from `next_k` until r and s are usable.
pub(crate) fn sign_with(
    d: &SecretScalar,
    e: &[u8; 32],
    mut next_k: impl FnMut() -> Result<SecretScalar>,
) -> Result<[u8; 64]> {
    let e = scalar_from_e(e);
    let dv: Scalar = *d.scalar().as_ref();
    let inv = Option::<Scalar>::from((dv + Scalar::ONE).invert())
        .ok_or_else(|| Error::invalid_data("SM2 private key d = n-1 cannot sign"))?;
    for _ in 0..64 {
        // A3: k in [1, n-1].
        let k = next_k()?;
        let kv: Scalar = *k.scalar().as_ref();
        // A4: (x1, y1) = [k]G.
        let x1 = ProjectivePoint::mul_by_generator(&kv).to_affine().x();
        // A5: r = (e + x1) mod n; retry if r = 0 or r + k = n.
        let r = e + <Scalar as Reduce<FieldBytes>>::reduce(&x1);
        if bool::from(r.is_zero() | (r + kv).is_zero()) {
            continue;
        }
        // A6: s = (1 + d)^-1 (k - r d) mod n; retry if s = 0.
        let s = inv * (kv - r * dv);
        if bool::from(s.is_zero()) {
            continue;
        }
        // A7: (r, s).
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&r.to_bytes());
        out[32..].copy_from_slice(&s.to_bytes());
        return Ok(out);
    }
    Err(Error::internal("SM2 signing found no usable k"))
}

fn scalar_in_range(b: &[u8]) -> Option<Scalar> {
    let fb = FieldBytes::try_from(b).ok()?;
    let s = Option::<Scalar>::from(<Scalar as elliptic_curve::PrimeField>::from_repr(fb))?;
    if bool::from(s.is_zero()) {
        None
    } else {
        Some(s)
    }
}

/// GB/T 32918.2 §7.1 B1, B2, B5–B7 over e.
pub(crate) fn verify_e(point: &AffinePoint, e: &[u8; 32], sig: &[u8]) -> Result<()> {
    if sig.len() != 64 {
        return Err(Error::SignatureInvalid);
    }
    // B1, B2: r, s in [1, n-1].
    let (Some(r), Some(s)) = (scalar_in_range(&sig[..32]), scalar_in_range(&sig[32..])) else {
        return Err(Error::SignatureInvalid);
    };
    let e = scalar_from_e(e);
    // B5: t = (r + s) mod n, t != 0.
    let t = r + s;
    if bool::from(t.is_zero()) {
        return Err(Error::SignatureInvalid);
    }
    // B6: (x1', y1') = [s]G + [t]P.
    let p = ProjectivePoint::lincomb(&[
        (ProjectivePoint::generator(), s),
        (ProjectivePoint::from(*point), t),
    ]);
    if bool::from(p.is_identity()) {
        return Err(Error::SignatureInvalid);
    }
    // B7: R = (e + x1') mod n == r.
    let big_r = e + <Scalar as Reduce<FieldBytes>>::reduce(&p.to_affine().x());
    if bool::from(big_r.ct_eq(&r)) {
        Ok(())
    } else {
        Err(Error::SignatureInvalid)
    }
}

fn xy(a: &AffinePoint) -> ([u8; 32], [u8; 32]) {
    let p = encode_point(a);
    let mut x = [0u8; 32];
    let mut y = [0u8; 32];
    x.copy_from_slice(&p[1..33]);
    y.copy_from_slice(&p[33..65]);
    (x, y)
}

/// GB/T 32918.4 §6.1 A1–A8, output C1‖C3‖C2, drawing k from `next_k`.
pub(crate) fn encrypt_with(
    point: &AffinePoint,
    msg: &[u8],
    mut next_k: impl FnMut() -> Result<SecretScalar>,
) -> Result<Vec<u8>> {
    if msg.is_empty() {
        return Err(Error::invalid_arg("SM2 cannot encrypt an empty message"));
    }
    // A3: S = [h]P is not the identity (h = 1 for this curve, so P itself).
    let pb = ProjectivePoint::from(*point);
    if bool::from(pb.is_identity()) {
        return Err(Error::invalid_data("SM2 public key is the identity"));
    }
    for _ in 0..64 {
        let k = next_k()?;
        // A2: C1 = [k]G.
        let c1 = encode_point(&ProjectivePoint::mul_by_generator(k.scalar()).to_affine());
        // A4: (x2, y2) = [k]P.
        let (x2, y2) = xy(&(pb * *k.scalar().as_ref()).to_affine());
        // A5: t = KDF(x2‖y2, klen); retry if all zero.
        let t = kdf(&[&x2, &y2], msg.len());
        if t.iter().all(|&b| b == 0) {
            continue;
        }
        // A6: C2 = M xor t. A7: C3 = SM3(x2‖M‖y2).
        let c2: Vec<u8> = msg.iter().zip(t.iter()).map(|(m, t)| m ^ t).collect();
        let c3 = Sm3::new()
            .chain_update(x2)
            .chain_update(msg)
            .chain_update(y2)
            .finalize();
        let mut out = Vec::with_capacity(65 + 32 + msg.len());
        out.extend_from_slice(&c1);
        out.extend_from_slice(&c3);
        out.extend_from_slice(&c2);
        return Ok(out);
    }
    Err(Error::internal("SM2 encryption found no usable k"))
}

/// GB/T 32918.4 §7.1 B1–B7 on C1‖C3‖C2.
pub(crate) fn decrypt_raw(d: &SecretScalar, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if ct.len() < 65 + 32 + 1 {
        return Err(Error::DecryptFailed);
    }
    // B1: C1 on the curve. B2: [h]C1 not the identity (h = 1).
    let c1 = decode_point(&ct[..65]).map_err(|_| Error::DecryptFailed)?;
    let (c3, c2) = ct[65..].split_at(32);
    // B3: (x2, y2) = [d]C1.
    let (x2, y2) = xy(&(ProjectivePoint::from(c1) * *d.scalar().as_ref()).to_affine());
    // B4: t = KDF(x2‖y2, klen), not all zero.
    let t = kdf(&[&x2, &y2], c2.len());
    if t.iter().all(|&b| b == 0) {
        return Err(Error::DecryptFailed);
    }
    // B5: M' = C2 xor t.
    let m: Zeroizing<Vec<u8>> =
        Zeroizing::new(c2.iter().zip(t.iter()).map(|(c, t)| c ^ t).collect());
    // B6: u = SM3(x2‖M'‖y2) == C3.
    let u = Sm3::new()
        .chain_update(x2)
        .chain_update(&m[..])
        .chain_update(y2)
        .finalize();
    if bool::from(u.as_slice().ct_eq(c3)) {
        Ok(m)
    } else {
        Err(Error::DecryptFailed)
    }
}

struct Sm2Private {
    d: SecretScalar,
    point: [u8; 65],
}

impl Sm2Private {
    fn e_for(&self, mech: &SignMech, data: &[u8]) -> Result<[u8; 32]> {
        match mech {
            SignMech::Sm2Sm3 { id } => front::sign_digest(&self.point, id, data),
            SignMech::Sm2Prehashed => data.try_into().map_err(|_| {
                Error::invalid_arg(format!(
                    "SM2 prehashed input must be 32 bytes, got {}",
                    data.len()
                ))
            }),
            other => Err(Error::KeyType(format!(
                "{other:?} cannot be used with an SM2 key"
            ))),
        }
    }
}

impl PrivateKeyOps for Sm2Private {
    fn public_spki(&self) -> Result<std::sync::Arc<[u8]>> {
        crate::crypto::keys::ec_spki_der(KeyAlg::Sm2, &self.point)
    }

    fn sign(&self, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let e = self.e_for(mech, data)?;
        Ok(sign_with(&self.d, &e, SecretScalar::random)?.to_vec())
    }

    fn decrypt(&self, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        match mech {
            EncMech::Sm2 => decrypt_raw(&self.d, data),
            other => Err(Error::KeyType(format!(
                "{other:?} cannot be used with an SM2 key"
            ))),
        }
    }

    /// Plain ECDH on the SM2 curve (as PKCS#11 CKM_ECDH1_DERIVE on an SM2 key, not the
    /// GB/T 32918.3 exchange): x([d]Q). The peer point is checked to be on the curve.
    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let q = decode_point(peer_point)?;
        let shared = (ProjectivePoint::from(q) * *self.d.scalar().as_ref()).to_affine();
        if bool::from(ProjectivePoint::from(shared).is_identity()) {
            return Err(Error::invalid_data("SM2 ECDH result is the identity"));
        }
        let (x, mut y) = xy(&shared);
        y.zeroize();
        Ok(Zeroizing::new(x.to_vec()))
    }
}

/// Loads the scalar of a canonical SM2 PKCS#8 (id-ecPublicKey + SM2 curve).
pub(crate) fn scalar_from_pkcs8(pkcs8: &[u8]) -> Result<SecretScalar> {
    let sk = sm2::SecretKey::from_pkcs8_der(pkcs8)
        .map_err(|e| Error::invalid_data(format!("SM2 PKCS#8: {e}")))?;
    SecretScalar::from_slice(&sk.to_bytes())
}

/// Canonical SM2 PKCS#8 (id-ecPublicKey + SM2 curve, public key included) for `d`.
pub(crate) fn pkcs8_from_scalar(d: &SecretScalar) -> Result<Zeroizing<Vec<u8>>> {
    let sk =
        sm2::SecretKey::from_slice(&d.to_bytes()[..]).map_err(|_| Error::internal("SM2 scalar"))?;
    let doc = sk
        .to_pkcs8_der()
        .map_err(|e| Error::internal(format!("SM2 PKCS#8 encoding: {e}")))?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

impl AsymProvider for RustCryptoSm2 {
    fn generate(&self, alg: KeyAlg) -> Result<Zeroizing<Vec<u8>>> {
        if alg != KeyAlg::Sm2 {
            return Err(Error::KeyType(format!("{alg:?} is not SM2")));
        }
        pkcs8_from_scalar(&SecretScalar::random()?)
    }

    fn load_private(&self, alg: KeyAlg, pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>> {
        if alg != KeyAlg::Sm2 {
            return Err(Error::KeyType(format!("{alg:?} is not SM2")));
        }
        let d = scalar_from_pkcs8(pkcs8)?;
        let point = public_point(&d);
        Ok(Box::new(Sm2Private { d, point }))
    }

    fn verify(&self, key: &PublicKey, mech: &SignMech, data: &[u8], sig: &[u8]) -> Result<()> {
        let point = key
            .ec_point()
            .ok_or_else(|| Error::invalid_data("SM2 public key without a point"))?;
        let e = match mech {
            SignMech::Sm2Sm3 { id } => front::sign_digest(&point, id, data)?,
            SignMech::Sm2Prehashed => data.try_into().map_err(|_| {
                Error::invalid_arg(format!(
                    "SM2 prehashed input must be 32 bytes, got {}",
                    data.len()
                ))
            })?,
            other => {
                return Err(Error::KeyType(format!(
                    "{other:?} cannot be used with an SM2 key"
                )));
            }
        };
        verify_e(&decode_point(&point)?, &e, sig)
    }

    fn encrypt(&self, key: &PublicKey, mech: &EncMech, data: &[u8]) -> Result<Vec<u8>> {
        if *mech != EncMech::Sm2 {
            return Err(Error::KeyType(format!(
                "{mech:?} cannot be used with an SM2 key"
            )));
        }
        let point = key
            .ec_point()
            .ok_or_else(|| Error::invalid_data("SM2 public key without a point"))?;
        encrypt_with(&decode_point(&point)?, data, SecretScalar::random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::dsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
    use sm2::dsa::signature::{Signer, Verifier};

    #[test]
    fn cross_check_with_crate_dsa_and_pke() {
        let d = SecretScalar::random().unwrap();
        let point = public_point(&d);
        let sk = sm2::SecretKey::from_slice(&d.to_bytes()[..]).unwrap();
        let id = "1234567812345678";
        let crate_signer = sm2::dsa::SigningKey::new(id, &sk).unwrap();
        let vk = crate_signer.verifying_key().clone();
        let msg = b"message digest";

        // The crate signs over its own Z; we verify with ours.
        let sig: sm2::dsa::Signature = crate_signer.sign(msg);
        let e = front::sign_digest(&point, id.as_bytes(), msg).unwrap();
        verify_e(&decode_point(&point).unwrap(), &e, &sig.to_bytes()).unwrap();

        // We sign; the crate verifies, both over the message and over e.
        let ours = sign_with(&d, &e, SecretScalar::random).unwrap();
        let ours_sig = sm2::dsa::Signature::from_slice(&ours).unwrap();
        vk.verify(msg, &ours_sig).unwrap();
        vk.verify_prehash(&e, &ours_sig).unwrap();
        let prehash_sig: sm2::dsa::Signature = crate_signer.sign_prehash(&e).unwrap();
        verify_e(&decode_point(&point).unwrap(), &e, &prehash_sig.to_bytes()).unwrap();
        let mut bad = ours;
        bad[63] ^= 1;
        assert!(verify_e(&decode_point(&point).unwrap(), &e, &bad).is_err());

        // The crate encrypts (C1C3C2); we decrypt. We encrypt; the crate decrypts.
        let ek = sm2::pke::EncryptingKey::new(sk.public_key());
        let ct = ek
            .encrypt(&mut getrandom::SysRng, b"session key 1234")
            .unwrap();
        assert_eq!(&decrypt_raw(&d, &ct).unwrap()[..], b"session key 1234");
        let ct2 = encrypt_with(
            &decode_point(&point).unwrap(),
            b"hello",
            SecretScalar::random,
        )
        .unwrap();
        let dk = sm2::pke::DecryptingKey::new(sk.clone());
        assert_eq!(dk.decrypt(&ct2).unwrap(), b"hello");
        let mut bad = ct2.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(decrypt_raw(&d, &bad), Err(Error::DecryptFailed)));
    }
}
