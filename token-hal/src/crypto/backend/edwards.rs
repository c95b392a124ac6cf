//! Edwards and Montgomery keys: Ed25519 (RFC 8032 §5.1, all three variants), Ed448
//! (RFC 8032 §5.2, pure and pre-hashed) and X25519 (RFC 7748).
//!
//! - Pure Ed25519 and X25519 run on aws-lc-rs.
//! - Ed25519ctx and Ed25519ph, which aws-lc-rs does not offer, are written here step
//!   by step as RFC 8032 §5.1.6/§5.1.7 number them, on `curve25519-dalek`'s group and
//!   scalar arithmetic and `sha2`'s SHA-512. Pure Ed25519 through this code gives the
//!   same bytes as aws-lc-rs (EdDSA is deterministic), which the unit tests check.
//! - Ed448 runs on RustCrypto `ed448-goldilocks` (a pinned pre-release; no stable
//!   crate exists).
//!
//! Private keys are stored as the RFC 8410 PKCS#8 of the raw seed (Ed25519/Ed448) or
//! scalar (X25519); they are parsed once, at load.

use aws_lc_rs::agreement;
use aws_lc_rs::signature::{self as lc_sig, Ed25519KeyPair};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use der::Decode;
use der::asn1::OctetStringRef;
use ed448_goldilocks::{PreHash, SigningKey as Ed448Signing, VerifyingKey as Ed448Verifying};
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::keys::{DecMech, EncMech, KeyAlg, PublicKey, SignMech, raw_curve_pkcs8};
use crate::crypto::provider::{AsymProvider, PrivateKeyOps};
use crate::crypto::rng;
use crate::error::{Error, Result};

/// The default Edwards/Montgomery implementation.
#[derive(Debug)]
pub struct EdwardsBackend;

/// RFC 8032 §5.1 dom2 prefix string.
const DOM2_PREFIX: &[u8] = b"SigEd25519 no Ed25519 collisions";

/// Checks that `point` is a valid public key of `alg` (an Edwards key decodes to a
/// curve point).
pub(crate) fn check_public(alg: KeyAlg, point: &[u8]) -> Result<()> {
    match alg {
        KeyAlg::Ed25519 => decode_ed25519(point).map(|_| ()),
        KeyAlg::Ed448 => decode_ed448(point).map(|_| ()),
        KeyAlg::X25519 if point.len() == 32 => Ok(()),
        other => Err(Error::KeyType(format!("{other:?} is not an Edwards key"))),
    }
}

fn decode_ed25519(point: &[u8]) -> Result<EdwardsPoint> {
    let bytes: [u8; 32] = point
        .try_into()
        .map_err(|_| Error::invalid_data("Ed25519 public key must be 32 bytes"))?;
    CompressedEdwardsY(bytes)
        .decompress()
        .ok_or_else(|| Error::invalid_data("Ed25519 public key is not a curve point"))
}

fn decode_ed448(point: &[u8]) -> Result<Ed448Verifying> {
    let bytes: [u8; 57] = point
        .try_into()
        .map_err(|_| Error::invalid_data("Ed448 public key must be 57 bytes"))?;
    if bytes[56] & 0x7f != 0 {
        return Err(Error::invalid_data(
            "Ed448 public key is not canonically encoded",
        ));
    }
    Ed448Verifying::from_bytes(&bytes)
        .map_err(|_| Error::invalid_data("Ed448 public key is not a valid curve point"))
}

/// What an [`SignMech::EdDsa`] means on an Ed25519 key: the dom2 prefix (empty for
/// pure Ed25519) and whether the message is pre-hashed with SHA-512.
struct Ed25519Variant {
    dom: Vec<u8>,
    ph: bool,
}

fn check_context(ctx: &[u8]) -> Result<()> {
    if ctx.len() > 255 {
        return Err(Error::invalid_arg(format!(
            "EdDSA context of {} bytes (at most 255)",
            ctx.len()
        )));
    }
    Ok(())
}

fn ed25519_variant(mech: &SignMech) -> Result<Ed25519Variant> {
    let SignMech::EdDsa { ph, context } = mech else {
        return Err(Error::KeyType(format!(
            "{mech:?} cannot be used with an Ed25519 key"
        )));
    };
    let ctx = context.as_deref().unwrap_or_default();
    check_context(ctx)?;
    if !*ph && ctx.is_empty() {
        return Ok(Ed25519Variant {
            dom: Vec::new(),
            ph: false,
        });
    }
    // dom2(F, C) = "SigEd25519 no Ed25519 collisions" || octet(F) || octet(OLEN(C)) || C
    let mut dom = Vec::with_capacity(DOM2_PREFIX.len() + 2 + ctx.len());
    dom.extend_from_slice(DOM2_PREFIX);
    dom.push(u8::from(*ph));
    dom.push(u8::try_from(ctx.len()).map_err(|_| Error::invalid_arg("EdDSA context"))?);
    dom.extend_from_slice(ctx);
    Ok(Ed25519Variant { dom, ph: *ph })
}

/// PH(M): the identity for Ed25519/Ed25519ctx, SHA-512 for Ed25519ph.
fn ed25519_message(v: &Ed25519Variant, data: &[u8]) -> Vec<u8> {
    if v.ph {
        Sha512::digest(data).to_vec()
    } else {
        data.to_vec()
    }
}

fn sha512_scalar(parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h.finalize());
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    s
}

struct Ed25519Private {
    /// The clamped secret scalar s (RFC 8032 §5.1.5 step 3), reduced mod L.
    s: Scalar,
    /// The second half of SHA-512(seed), the nonce prefix.
    prefix: Zeroizing<[u8; 32]>,
    /// A = [s]B, encoded.
    public: [u8; 32],
    /// aws-lc-rs's key for pure Ed25519.
    lc: Ed25519KeyPair,
}

impl Drop for Ed25519Private {
    fn drop(&mut self) {
        self.s.zeroize();
    }
}

impl Ed25519Private {
    fn from_seed(seed: &[u8]) -> Result<Self> {
        if seed.len() != 32 {
            return Err(Error::invalid_data("Ed25519 private key must be 32 bytes"));
        }
        // §5.1.5: h = SHA-512(seed); s = clamp(h[0..32]); prefix = h[32..64].
        let mut h = Zeroizing::new([0u8; 64]);
        h.copy_from_slice(&Sha512::digest(seed));
        let mut a = Zeroizing::new([0u8; 32]);
        a.copy_from_slice(&h[..32]);
        a[0] &= 248;
        a[31] &= 127;
        a[31] |= 64;
        let s = Scalar::from_bytes_mod_order(*a);
        let mut prefix = Zeroizing::new([0u8; 32]);
        prefix.copy_from_slice(&h[32..]);
        let public = EdwardsPoint::mul_base(&s).compress().to_bytes();
        let lc = Ed25519KeyPair::from_seed_and_public_key(seed, &public)
            .map_err(|e| Error::invalid_data(format!("Ed25519 private key: {e}")))?;
        Ok(Self {
            s,
            prefix,
            public,
            lc,
        })
    }

    /// RFC 8032 §5.1.6 with dom2 prefix `dom` over PH(M) = `m`.
    fn sign_rfc(&self, dom: &[u8], m: &[u8]) -> [u8; 64] {
        // 2. r = SHA-512(dom2(F, C) || prefix || PH(M)) mod L.
        let mut r = sha512_scalar(&[dom, &self.prefix[..], m]);
        // 3. R = [r]B.
        let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
        // 4. k = SHA-512(dom2(F, C) || R || A || PH(M)) mod L.
        let k = sha512_scalar(&[dom, &big_r, &self.public, m]);
        // 5. S = (r + k * s) mod L.
        let big_s = r + k * self.s;
        r.zeroize();
        // 6. R || S.
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&big_r);
        out[32..].copy_from_slice(big_s.as_bytes());
        out
    }
}

/// RFC 8032 §5.1.7 (cofactorless check [S]B = R + [k]A, with R compared encoded, as
/// RFC 8032's reference code and aws-lc do).
fn ed25519_verify_rfc(public: &[u8], dom: &[u8], m: &[u8], sig: &[u8]) -> Result<()> {
    if sig.len() != 64 {
        return Err(Error::SignatureInvalid);
    }
    let a = decode_ed25519(public).map_err(|_| Error::SignatureInvalid)?;
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig[32..]);
    // 1. S must be in [0, L).
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
        .ok_or(Error::SignatureInvalid)?;
    // R must decode to a point.
    if CompressedEdwardsY(r_bytes).decompress().is_none() {
        return Err(Error::SignatureInvalid);
    }
    // 2. k = SHA-512(dom2(F, C) || R || A || PH(M)).
    let k = sha512_scalar(&[dom, &r_bytes, public, m]);
    // 3. [S]B - [k]A == R.
    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &(-a), &s).compress();
    if check.to_bytes() == r_bytes {
        Ok(())
    } else {
        Err(Error::SignatureInvalid)
    }
}

impl PrivateKeyOps for Ed25519Private {
    fn public_spki(&self) -> Result<std::sync::Arc<[u8]>> {
        crate::crypto::keys::ec_spki_der(KeyAlg::Ed25519, &self.public)
    }

    fn sign(&self, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let v = ed25519_variant(mech)?;
        if v.dom.is_empty() {
            return Ok(self.lc.sign(data).as_ref().to_vec());
        }
        Ok(self.sign_rfc(&v.dom, &ed25519_message(&v, data)).to_vec())
    }

    fn decrypt(&self, mech: &DecMech, _data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::KeyType(format!(
            "{mech:?}: Ed25519 keys do not decrypt"
        )))
    }
}

/// An Ed448ph pre-hash that has already been computed (SHAKE256(M, 64)).
struct Ready([u8; 64]);

impl PreHash for Ready {
    fn fill_bytes(&mut self, out: &mut [u8]) {
        let n = out.len().min(64);
        out[..n].copy_from_slice(&self.0[..n]);
    }
}

/// Ed448ph's PH(M) = SHAKE256(M, 64).
fn shake256_64(data: &[u8]) -> [u8; 64] {
    use ed448_goldilocks::shake::Shake256;
    use sha3_traits::{ExtendableOutput, Update, XofReader};
    let mut h = Shake256::default();
    h.update(data);
    let mut out = [0u8; 64];
    h.finalize_xof().read(&mut out);
    out
}

/// The `digest` traits the `shake` crate implements.
mod sha3_traits {
    pub use digest::{ExtendableOutput, Update, XofReader};
}

fn ed448_params(mech: &SignMech) -> Result<(bool, &[u8])> {
    let SignMech::EdDsa { ph, context } = mech else {
        return Err(Error::KeyType(format!(
            "{mech:?} cannot be used with an Ed448 key"
        )));
    };
    let ctx = context.as_deref().unwrap_or_default();
    check_context(ctx)?;
    Ok((*ph, ctx))
}

struct Ed448Private {
    key: Ed448Signing,
    public: [u8; 57],
}

impl PrivateKeyOps for Ed448Private {
    fn public_spki(&self) -> Result<std::sync::Arc<[u8]>> {
        crate::crypto::keys::ec_spki_der(KeyAlg::Ed448, &self.public)
    }

    fn sign(&self, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let (ph, ctx) = ed448_params(mech)?;
        let sig = if ph {
            self.key
                .sign_prehashed(Some(ctx), Ready(shake256_64(data)))
                .map_err(|e| Error::invalid_arg(format!("Ed448ph: {e}")))?
        } else {
            self.key
                .sign_ctx(ctx, data)
                .map_err(|e| Error::invalid_arg(format!("Ed448: {e}")))?
        };
        Ok(sig.to_bytes().to_vec())
    }

    fn decrypt(&self, mech: &DecMech, _data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::KeyType(format!(
            "{mech:?}: Ed448 keys do not decrypt"
        )))
    }
}

struct X25519Private {
    key: agreement::PrivateKey,
    public: [u8; 32],
}

impl PrivateKeyOps for X25519Private {
    fn public_spki(&self) -> Result<std::sync::Arc<[u8]>> {
        crate::crypto::keys::ec_spki_der(KeyAlg::X25519, &self.public)
    }

    fn sign(&self, mech: &SignMech, _data: &[u8]) -> Result<Vec<u8>> {
        Err(Error::KeyType(format!("{mech:?}: X25519 keys do not sign")))
    }

    fn decrypt(&self, mech: &DecMech, _data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::KeyType(format!(
            "{mech:?}: X25519 keys do not decrypt"
        )))
    }

    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if peer_point.len() != 32 {
            return Err(Error::invalid_data(format!(
                "X25519 peer public key must be 32 bytes, got {}",
                peer_point.len()
            )));
        }
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_point);
        agreement::agree(
            &self.key,
            peer,
            Error::invalid_data("X25519 peer public key gives a zero shared secret"),
            |z| Ok(Zeroizing::new(z.to_vec())),
        )
    }
}

/// The raw private value inside a canonical RFC 8410 PKCS#8.
fn raw_of_pkcs8(pkcs8: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let pki = pkcs8::PrivateKeyInfoRef::from_der(pkcs8)
        .map_err(|e| Error::invalid_data(format!("PKCS#8: {e}")))?;
    let inner = <&OctetStringRef>::from_der(pki.private_key.as_bytes())
        .map_err(|e| Error::invalid_data(format!("CurvePrivateKey: {e}")))?;
    Ok(Zeroizing::new(inner.as_bytes().to_vec()))
}

impl AsymProvider for EdwardsBackend {
    fn generate(&self, alg: KeyAlg) -> Result<Zeroizing<Vec<u8>>> {
        let len = match alg {
            KeyAlg::Ed25519 | KeyAlg::X25519 => 32,
            KeyAlg::Ed448 => 57,
            other => return Err(Error::KeyType(format!("{other:?} is not an Edwards key"))),
        };
        let mut seed = Zeroizing::new(vec![0u8; len]);
        rng::fill(&mut seed)?;
        raw_curve_pkcs8(alg, &seed)
    }

    fn load_private(&self, alg: KeyAlg, pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>> {
        let raw = raw_of_pkcs8(pkcs8)?;
        match alg {
            KeyAlg::Ed25519 => Ok(Box::new(Ed25519Private::from_seed(&raw)?)),
            KeyAlg::Ed448 => {
                let key = Ed448Signing::try_from(&raw[..])
                    .map_err(|_| Error::invalid_data("Ed448 private key must be 57 bytes"))?;
                let public = key.verifying_key().to_bytes();
                Ok(Box::new(Ed448Private { key, public }))
            }
            KeyAlg::X25519 => {
                let key = agreement::PrivateKey::from_private_key(&agreement::X25519, &raw)
                    .map_err(|e| Error::invalid_data(format!("X25519 private key: {e}")))?;
                let pk = key
                    .compute_public_key()
                    .map_err(|_| Error::internal("X25519 public key"))?;
                let public: [u8; 32] = pk
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::internal("X25519 public key length"))?;
                Ok(Box::new(X25519Private { key, public }))
            }
            other => Err(Error::KeyType(format!("{other:?} is not an Edwards key"))),
        }
    }

    fn verify(&self, key: &PublicKey, mech: &SignMech, data: &[u8], sig: &[u8]) -> Result<()> {
        let point = key
            .ec_point()
            .ok_or_else(|| Error::invalid_data("Edwards public key without a value"))?;
        match key.alg() {
            KeyAlg::Ed25519 => {
                let v = ed25519_variant(mech)?;
                if v.dom.is_empty() {
                    return lc_sig::UnparsedPublicKey::new(&lc_sig::ED25519, &point)
                        .verify(data, sig)
                        .map_err(|_| Error::SignatureInvalid);
                }
                ed25519_verify_rfc(&point, &v.dom, &ed25519_message(&v, data), sig)
            }
            KeyAlg::Ed448 => {
                let (ph, ctx) = ed448_params(mech)?;
                let vk = decode_ed448(&point)?;
                // RFC 8032 §5.2.3: in an encoded point only bit 7 of the last octet (the
                // sign of x) may be set; the crate's decoder ignores bits 0..=6, so a
                // non-canonical R is refused here.
                if sig.len() != 114 || sig[56] & 0x7f != 0 {
                    return Err(Error::SignatureInvalid);
                }
                let sig = ed448_goldilocks::Signature::try_from(sig)
                    .map_err(|_| Error::SignatureInvalid)?;
                if ph {
                    vk.verify_prehashed(&sig, Some(ctx), Ready(shake256_64(data)))
                } else {
                    vk.verify_ctx(&sig, ctx, data)
                }
                .map_err(|_| Error::SignatureInvalid)
            }
            other => Err(Error::KeyType(format!("{other:?} keys do not verify"))),
        }
    }

    fn encrypt(&self, key: &PublicKey, mech: &EncMech, _data: &[u8]) -> Result<Vec<u8>> {
        Err(Error::KeyType(format!(
            "{mech:?}: {:?} keys do not encrypt",
            key.alg()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::KeyPair;

    #[test]
    fn own_pure_ed25519_matches_aws_lc() {
        for i in 0..8u8 {
            let seed = [i.wrapping_mul(37).wrapping_add(1); 32];
            let k = Ed25519Private::from_seed(&seed).unwrap();
            assert_eq!(k.lc.public_key().as_ref(), &k.public);
            let msg = vec![i; usize::from(i) * 9];
            let ours = k.sign_rfc(&[], &msg);
            assert_eq!(&ours[..], k.lc.sign(&msg).as_ref());
            ed25519_verify_rfc(&k.public, &[], &msg, &ours).unwrap();
            let mut bad = ours;
            bad[5] ^= 1;
            assert!(ed25519_verify_rfc(&k.public, &[], &msg, &bad).is_err());
        }
    }
}
