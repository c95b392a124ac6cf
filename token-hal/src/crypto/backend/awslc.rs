//! aws-lc-rs: AES-256-GCM at rest, ECDSA and ECDH on P-256/P-384/P-521.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement;
use aws_lc_rs::digest as lc_digest;
use aws_lc_rs::signature::{
    self as lc_sig, EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair,
};
use std::sync::OnceLock;

use zeroize::Zeroizing;

use crate::crypto::hash;
use crate::crypto::keys::{DecMech, EncMech, KeyAlg, PublicKey, SignMech};
use crate::crypto::provider::{AeadProvider, AsymProvider, Generated, PrivateKeyOps};
use crate::error::{Error, Result};

/// AES-256-GCM through aws-lc-rs.
#[derive(Debug)]
pub struct AwsLcAead;

impl AeadProvider for AwsLcAead {
    fn seal_in_place(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; 16]> {
        let key = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| Error::internal("AES-256-GCM key setup"))?;
        let key = LessSafeKey::new(key);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| Error::internal("AES-256-GCM seal"))?;
        let mut t = [0u8; 16];
        t.copy_from_slice(tag.as_ref());
        Ok(t)
    }

    fn open_in_place(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<()> {
        let key = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| Error::internal("AES-256-GCM key setup"))?;
        let key = LessSafeKey::new(key);
        key.open_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            tag,
            in_out,
        )
        .map(|_| ())
        .map_err(|_| Error::DecryptFailed)
    }
}

/// ECDSA and ECDH on P-256, P-384 and P-521 through aws-lc-rs. Signatures are raw r‖s.
#[derive(Debug)]
pub struct AwsLcEcdsa;

struct Curve {
    signing: &'static EcdsaSigningAlgorithm,
    verify: &'static EcdsaVerificationAlgorithm,
    digest: &'static lc_digest::Algorithm,
    ecdh: &'static agreement::Algorithm,
    field_len: usize,
}

fn curve(alg: KeyAlg) -> Result<Curve> {
    match alg {
        KeyAlg::EcP256 => Ok(Curve {
            signing: &lc_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            verify: &lc_sig::ECDSA_P256_SHA256_FIXED,
            digest: &lc_digest::SHA256,
            ecdh: &agreement::ECDH_P256,
            field_len: 32,
        }),
        KeyAlg::EcP384 => Ok(Curve {
            signing: &lc_sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            verify: &lc_sig::ECDSA_P384_SHA384_FIXED,
            digest: &lc_digest::SHA384,
            ecdh: &agreement::ECDH_P384,
            field_len: 48,
        }),
        KeyAlg::EcP521 => Ok(Curve {
            signing: &lc_sig::ECDSA_P521_SHA512_FIXED_SIGNING,
            verify: &lc_sig::ECDSA_P521_SHA512_FIXED,
            digest: &lc_digest::SHA512,
            ecdh: &agreement::ECDH_P521,
            field_len: 66,
        }),
        other => Err(Error::KeyType(format!("{other:?} is not an ECDSA key"))),
    }
}

/// The digest ECDSA actually uses, as the curve's nominal digest (SHA-256/384/512):
/// the leftmost bytes of a longer hash (P-256, P-384: the curve order's bit length is
/// the digest's), a shorter one left-padded with zeros (which is the same integer,
/// SEC 1 §4.1.3 step 5). For P-521 every hash up to 64 bytes is shorter than the
/// order, so it is used whole.
fn normalize_digest(c: &Curve, hash: &[u8]) -> Result<lc_digest::Digest> {
    if hash.is_empty() || hash.len() > 64 {
        return Err(Error::invalid_arg(format!(
            "ECDSA digest of {} bytes (1..=64 expected)",
            hash.len()
        )));
    }
    let dl = c.digest.output_len();
    let mut buf = vec![0u8; dl];
    if hash.len() >= dl {
        buf.copy_from_slice(&hash[..dl]);
    } else {
        buf[dl - hash.len()..].copy_from_slice(hash);
    }
    lc_digest::Digest::import_less_safe(&buf, c.digest)
        .map_err(|_| Error::internal("ECDSA digest import"))
}

fn ecdsa_hash(mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
    match mech {
        SignMech::Ecdsa(h) => Ok(hash::digest(*h, data)),
        SignMech::EcdsaPrehashed => Ok(data.to_vec()),
        other => Err(Error::KeyType(format!(
            "{other:?} cannot be used with an ECDSA key"
        ))),
    }
}

struct EcdsaPrivate {
    alg: KeyAlg,
    curve: Curve,
    pair: EcdsaKeyPair,
    /// The private scalar, for the ECDH key made on first use.
    d: Zeroizing<Vec<u8>>,
    /// The same scalar as an ECDH key, made once on the first derivation (building it
    /// computes the public point again, which signing-only keys never need).
    agree: OnceLock<agreement::PrivateKey>,
}

impl PrivateKeyOps for EcdsaPrivate {
    fn public_spki(&self) -> Result<std::sync::Arc<[u8]>> {
        let point = self.pair.public_key().as_ref();
        crate::crypto::keys::ec_spki_der(self.alg, point)
    }

    fn raw_private(&self) -> Option<Zeroizing<Vec<u8>>> {
        Some(self.d.clone())
    }

    fn sign(&self, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let h = ecdsa_hash(mech, data)?;
        let d = normalize_digest(&self.curve, &h)?;
        let sig = self
            .pair
            .sign_digest(&d)
            .map_err(|_| Error::internal("ECDSA signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }

    fn decrypt(&self, mech: &DecMech, _data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::KeyType(format!(
            "{mech:?}: ECDSA keys do not decrypt"
        )))
    }

    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let fl = self.curve.field_len;
        if peer_point.len() != 1 + 2 * fl || peer_point[0] != 0x04 {
            return Err(Error::invalid_data(format!(
                "{:?} peer point must be uncompressed 04||x||y of {} bytes",
                self.alg,
                1 + 2 * fl
            )));
        }
        let peer = agreement::UnparsedPublicKey::new(self.curve.ecdh, peer_point);
        let agree = match self.agree.get() {
            Some(k) => k,
            None => {
                let k = agreement::PrivateKey::from_private_key(self.curve.ecdh, &self.d)
                    .map_err(|e| Error::invalid_data(format!("{:?} private key: {e}", self.alg)))?;
                self.agree.get_or_init(|| k)
            }
        };
        agreement::agree(
            agree,
            peer,
            Error::invalid_data(format!("{:?} peer point is not on the curve", self.alg)),
            |z| Ok(Zeroizing::new(z.to_vec())),
        )
    }
}

/// The private scalar (big-endian, `field_len` bytes) of a canonical EC PKCS#8.
fn ec_scalar(pkcs8: &[u8], field_len: usize) -> Result<Zeroizing<Vec<u8>>> {
    use der::Decode;
    let pki = pkcs8::PrivateKeyInfoRef::from_der(pkcs8)
        .map_err(|e| Error::invalid_data(format!("EC PKCS#8: {e}")))?;
    let ec = sec1::EcPrivateKey::from_der(pki.private_key.as_bytes())
        .map_err(|e| Error::invalid_data(format!("ECPrivateKey: {e}")))?;
    let k = ec.private_key;
    if k.len() > field_len {
        return Err(Error::invalid_data("EC private key longer than the field"));
    }
    let mut d = Zeroizing::new(vec![0u8; field_len]);
    d[field_len - k.len()..].copy_from_slice(k);
    Ok(d)
}

/// A fresh key pair on `alg`'s curve, its scalar (padded to the field's length) and its
/// canonical PKCS#8 (with the public key), made from the scalar and the point aws-lc-rs
/// computed at generation: no PKCS#8 export to parse back, and no second conversion of
/// the point to affine coordinates.
fn new_pair(alg: KeyAlg) -> Result<NewPair> {
    use aws_lc_rs::encoding::AsBigEndian;
    let c = curve(alg)?;
    let pair = EcdsaKeyPair::generate(c.signing)
        .map_err(|_| Error::internal("ECDSA key generation failed"))?;
    let be = pair
        .private_key()
        .as_be_bytes()
        .map_err(|_| Error::internal("ECDSA private key export failed"))?;
    let k = be.as_ref();
    if k.len() > c.field_len {
        return Err(Error::internal("EC private key longer than the field"));
    }
    let mut d = Zeroizing::new(vec![0u8; c.field_len]);
    d[c.field_len - k.len()..].copy_from_slice(k);
    let pkcs8 = crate::crypto::keys::ecdsa_pkcs8(alg, &d, Some(pair.public_key().as_ref()))?;
    Ok(NewPair {
        curve: c,
        pair,
        d,
        pkcs8,
    })
}

/// What [`new_pair`] makes.
struct NewPair {
    curve: Curve,
    pair: EcdsaKeyPair,
    /// The scalar, padded to the field's length.
    d: Zeroizing<Vec<u8>>,
    /// The canonical PKCS#8.
    pkcs8: Zeroizing<Vec<u8>>,
}

/// The private-key operations of `pair`, whose PKCS#8 is `pkcs8`.
fn ecdsa_private(
    alg: KeyAlg,
    curve: Curve,
    pair: EcdsaKeyPair,
    pkcs8: &[u8],
) -> Result<Box<dyn PrivateKeyOps>> {
    let d = ec_scalar(pkcs8, curve.field_len)?;
    Ok(Box::new(EcdsaPrivate {
        alg,
        curve,
        pair,
        d,
        agree: OnceLock::new(),
    }))
}

impl AsymProvider for AwsLcEcdsa {
    fn generate(&self, alg: KeyAlg) -> Result<Zeroizing<Vec<u8>>> {
        Ok(new_pair(alg)?.pkcs8)
    }

    fn generate_loaded(&self, alg: KeyAlg) -> Result<Generated> {
        let NewPair {
            curve,
            pair,
            d,
            pkcs8,
        } = new_pair(alg)?;
        let key: Box<dyn PrivateKeyOps> = Box::new(EcdsaPrivate {
            alg,
            curve,
            pair,
            d,
            agree: OnceLock::new(),
        });
        Ok((pkcs8, Some(key)))
    }

    fn load_private(&self, alg: KeyAlg, pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>> {
        let c = curve(alg)?;
        let pair = EcdsaKeyPair::from_pkcs8(c.signing, pkcs8)
            .map_err(|e| Error::invalid_data(format!("{alg:?} private key: {e}")))?;
        ecdsa_private(alg, c, pair, pkcs8)
    }

    fn verify(&self, key: &PublicKey, mech: &SignMech, data: &[u8], sig: &[u8]) -> Result<()> {
        let c = curve(key.alg())?;
        let h = ecdsa_hash(mech, data)?;
        let d = normalize_digest(&c, &h)?;
        if sig.len() != 2 * c.field_len {
            return Err(Error::SignatureInvalid);
        }
        let point = key
            .ec_point()
            .ok_or_else(|| Error::invalid_data("EC public key without a point"))?;
        lc_sig::UnparsedPublicKey::new(c.verify, &point)
            .verify_digest(&d, sig)
            .map_err(|_| Error::SignatureInvalid)
    }

    fn encrypt(&self, _key: &PublicKey, mech: &EncMech, _data: &[u8]) -> Result<Vec<u8>> {
        Err(Error::KeyType(format!(
            "{mech:?}: ECDSA keys do not encrypt"
        )))
    }
}
