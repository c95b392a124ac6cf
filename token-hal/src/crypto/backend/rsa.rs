//! RSA: aws-lc-rs for the private-key operations it offers on 2048-bit and larger keys
//! (PKCS#1 v1.5 and PSS signatures with SHA-256/384/512, PKCS#1 v1.5 and OAEP
//! decryption), RustCrypto `rsa` for everything else: 1024-bit and odd-sized keys,
//! CKM_RSA_PKCS over a caller's DigestInfo, PSS with other salt lengths or hashes,
//! verification and encryption.

use aws_lc_rs::digest as lc_digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa as lc_rsa;
use aws_lc_rs::signature as lc_sig;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss};
use rsa::{PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use zeroize::Zeroizing;

use crate::crypto::hash::{self, HashAlg};
use crate::crypto::keys::{DecMech, EncMech, KeyAlg, PublicKey, SignMech};
use crate::crypto::provider::{AsymProvider, PrivateKeyOps};
use crate::error::{Error, Result};

/// The default RSA implementation.
#[derive(Debug)]
pub struct RsaBackend;

/// Runs `$body` with `$d` bound to the RustCrypto digest type of `$h`.
macro_rules! with_hash {
    ($h:expr, $d:ident => $body:expr) => {
        match $h {
            HashAlg::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            HashAlg::Sha224 => {
                type $d = sha2::Sha224;
                $body
            }
            HashAlg::Sha256 => {
                type $d = sha2::Sha256;
                $body
            }
            HashAlg::Sha384 => {
                type $d = sha2::Sha384;
                $body
            }
            HashAlg::Sha512 => {
                type $d = sha2::Sha512;
                $body
            }
            HashAlg::Sm3 => Err(Error::unsupported("RSA with SM3")),
            HashAlg::Md5 => Err(Error::unsupported("RSA with MD5")),
        }
    };
}

fn lc_pkcs1(h: HashAlg) -> Option<&'static lc_sig::RsaSignatureEncoding> {
    match h {
        HashAlg::Sha256 => Some(&lc_sig::RSA_PKCS1_SHA256),
        HashAlg::Sha384 => Some(&lc_sig::RSA_PKCS1_SHA384),
        HashAlg::Sha512 => Some(&lc_sig::RSA_PKCS1_SHA512),
        _ => None,
    }
}

fn lc_pss(h: HashAlg) -> Option<&'static lc_sig::RsaSignatureEncoding> {
    match h {
        HashAlg::Sha256 => Some(&lc_sig::RSA_PSS_SHA256),
        HashAlg::Sha384 => Some(&lc_sig::RSA_PSS_SHA384),
        HashAlg::Sha512 => Some(&lc_sig::RSA_PSS_SHA512),
        _ => None,
    }
}

/// DER DigestInfo prefixes (AlgorithmIdentifier with NULL parameters, RFC 8017 §9.2
/// note 1) of the hashes aws-lc-rs signs a given digest with.
const DIGEST_INFO_PREFIXES: [(HashAlg, [u8; 19]); 3] = [
    (
        HashAlg::Sha256,
        [
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
    ),
    (
        HashAlg::Sha384,
        [
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
    ),
    (
        HashAlg::Sha512,
        [
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    ),
];

/// A CKM_RSA_PKCS input that is exactly a SHA-256/384/512 DigestInfo, as aws-lc-rs's
/// PKCS#1 v1.5 encoding and the imported digest.
fn lc_digest_info(
    data: &[u8],
) -> Option<(&'static lc_sig::RsaSignatureEncoding, lc_digest::Digest)> {
    let (h, prefix) = DIGEST_INFO_PREFIXES
        .iter()
        .find(|(h, p)| data.len() == p.len() + h.output_len() && data.starts_with(p))?;
    let d = lc_digest::Digest::import_less_safe(&data[prefix.len()..], lc_digest_alg(*h)?).ok()?;
    Some((lc_pkcs1(*h)?, d))
}

fn lc_digest_alg(h: HashAlg) -> Option<&'static lc_digest::Algorithm> {
    match h {
        HashAlg::Sha256 => Some(&lc_digest::SHA256),
        HashAlg::Sha384 => Some(&lc_digest::SHA384),
        HashAlg::Sha512 => Some(&lc_digest::SHA512),
        _ => None,
    }
}

fn lc_oaep(h: HashAlg) -> Option<&'static lc_rsa::OaepAlgorithm> {
    match h {
        HashAlg::Sha1 => Some(&lc_rsa::OAEP_SHA1_MGF1SHA1),
        HashAlg::Sha256 => Some(&lc_rsa::OAEP_SHA256_MGF1SHA256),
        HashAlg::Sha384 => Some(&lc_rsa::OAEP_SHA384_MGF1SHA384),
        HashAlg::Sha512 => Some(&lc_rsa::OAEP_SHA512_MGF1SHA512),
        _ => None,
    }
}

fn rsa_err(what: &str) -> impl Fn(rsa::Error) -> Error + '_ {
    move |e| match e {
        rsa::Error::MessageTooLong => {
            Error::invalid_arg(format!("{what}: input too long for the key"))
        }
        rsa::Error::Decryption => Error::DecryptFailed,
        rsa::Error::Verification => Error::SignatureInvalid,
        other => Error::invalid_data(format!("{what}: {other}")),
    }
}

fn check_digest_len(h: HashAlg, digest: &[u8]) -> Result<()> {
    if digest.len() == h.output_len() {
        Ok(())
    } else {
        Err(Error::invalid_arg(format!(
            "{h:?} digest must be {} bytes, got {}",
            h.output_len(),
            digest.len()
        )))
    }
}

/// The input of raw RSA (CKM_RSA_X_509) as an integer of the modulus's precision.
/// `InvalidData` when it is longer than the modulus or not numerically below it.
fn raw_input<K: PublicKeyParts>(key: &K, data: &[u8]) -> Result<BoxedUint> {
    let k = key.size();
    if data.len() > k {
        return Err(Error::invalid_data(format!(
            "raw RSA input of {} bytes exceeds the {k}-byte modulus",
            data.len()
        )));
    }
    let m = BoxedUint::from_be_slice(data, key.n_bits_precision())
        .map_err(|_| Error::invalid_data("raw RSA input"))?;
    if m >= *key.n().as_ref() {
        return Err(Error::invalid_data(
            "raw RSA input is not below the modulus",
        ));
    }
    Ok(m)
}

/// An integer as exactly `k` big-endian bytes.
fn raw_output(v: &BoxedUint, k: usize) -> Zeroizing<Vec<u8>> {
    let b = Zeroizing::new(v.to_be_bytes());
    let mut out = Zeroizing::new(vec![0u8; k]);
    let n = b.len().min(k);
    out[k - n..].copy_from_slice(&b[b.len() - n..]);
    out
}

struct RsaPrivate {
    rc: RsaPrivateKey,
    lc_sign: Option<lc_rsa::KeyPair>,
    lc_dec: Option<lc_rsa::PrivateDecryptingKey>,
    spki: std::sync::Arc<[u8]>,
}

impl RsaPrivate {
    fn modulus_len(&self) -> usize {
        self.rc.size()
    }

    /// OAEP decryption through RustCrypto `rsa`, which (0.10.0) does not check that
    /// the first octet of the encoded message is zero (RFC 8017 §7.1.2 step 3g; found
    /// by Wycheproof's "First byte is 1" cases). The raw operation is done as well and
    /// the two verdicts are combined without an early exit, so the failure does not
    /// reveal which check failed (Manger's attack).
    fn rc_oaep_decrypt<P: rsa::traits::PaddingScheme>(
        &self,
        padding: P,
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let crate_result = self.rc.decrypt(padding, data).map(Zeroizing::new);
        let em = self.raw_private(data);
        let first_zero = matches!(&em, Ok(em) if em.first() == Some(&0));
        match (crate_result, first_zero) {
            (Ok(m), true) => Ok(m),
            _ => Err(Error::DecryptFailed),
        }
    }

    /// RSASP1/RSADP with blinding and the CRT fault check.
    fn raw_private(&self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let c = raw_input(&self.rc, data)?;
        let mut rng = getrandom::SysRng;
        let m = rsa::hazmat::rsa_decrypt_and_check(&self.rc, Some(&mut rng), &c)
            .map_err(|e| Error::internal(format!("raw RSA private operation: {e}")))?;
        Ok(raw_output(&m, self.modulus_len()))
    }

    fn lc_sign(
        &self,
        enc: &'static lc_sig::RsaSignatureEncoding,
        msg: Option<&[u8]>,
        digest: Option<lc_digest::Digest>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(kp) = &self.lc_sign else {
            return Ok(None);
        };
        let mut sig = vec![0u8; kp.public_modulus_len()];
        let r = match (msg, digest) {
            (Some(m), _) => kp.sign(enc, &SystemRandom::new(), m, &mut sig),
            (None, Some(d)) => kp.sign_digest(enc, &d, &mut sig),
            (None, None) => return Ok(None),
        };
        r.map_err(|_| Error::internal("RSA signing failed"))?;
        Ok(Some(sig))
    }
}

impl PrivateKeyOps for RsaPrivate {
    fn public_spki(&self) -> Result<std::sync::Arc<[u8]>> {
        Ok(self.spki.clone())
    }

    fn sign(&self, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let mut rng = getrandom::SysRng;
        match mech {
            SignMech::RsaPkcs1(h) => {
                if let Some(enc) = lc_pkcs1(*h)
                    && let Some(sig) = self.lc_sign(enc, Some(data), None)?
                {
                    return Ok(sig);
                }
                let digest = hash::digest(*h, data);
                with_hash!(h, D => self
                    .rc
                    .sign_with_rng(&mut rng, Pkcs1v15Sign::new::<D>(), &digest)
                    .map_err(rsa_err("RSA PKCS#1 v1.5 signature")))
            }
            SignMech::RsaPkcs1Raw => {
                if data.len() + 11 > self.modulus_len() {
                    return Err(Error::invalid_arg(format!(
                        "CKM_RSA_PKCS input of {} bytes exceeds the modulus length minus 11",
                        data.len()
                    )));
                }
                // A DigestInfo of SHA-256/384/512 (the usual CKM_RSA_PKCS input): aws-lc-rs
                // pads the same DigestInfo and signs, giving the identical signature.
                if let Some((enc, d)) = lc_digest_info(data)
                    && let Some(sig) = self.lc_sign(enc, None, Some(d))?
                {
                    return Ok(sig);
                }
                self.rc
                    .sign_with_rng(&mut rng, Pkcs1v15Sign::new_unprefixed(), data)
                    .map_err(rsa_err("RSA PKCS#1 v1.5 signature"))
            }
            SignMech::RsaPss { hash: h, salt_len } => {
                if *salt_len == h.output_len()
                    && let Some(enc) = lc_pss(*h)
                    && let Some(sig) = self.lc_sign(enc, Some(data), None)?
                {
                    return Ok(sig);
                }
                let digest = hash::digest(*h, data);
                with_hash!(h, D => self
                    .rc
                    .sign_with_rng(&mut rng, Pss::<D>::new_with_salt(*salt_len), &digest)
                    .map_err(rsa_err("RSA-PSS signature")))
            }
            SignMech::RsaPssPrehashed { hash: h, salt_len } => {
                check_digest_len(*h, data)?;
                if *salt_len == h.output_len()
                    && let (Some(enc), Some(alg)) = (lc_pss(*h), lc_digest_alg(*h))
                {
                    let d = lc_digest::Digest::import_less_safe(data, alg)
                        .map_err(|_| Error::internal("digest import"))?;
                    if let Some(sig) = self.lc_sign(enc, None, Some(d))? {
                        return Ok(sig);
                    }
                }
                with_hash!(h, D => self
                    .rc
                    .sign_with_rng(&mut rng, Pss::<D>::new_with_salt(*salt_len), data)
                    .map_err(rsa_err("RSA-PSS signature")))
            }
            SignMech::RsaRaw => Ok(self.raw_private(data)?.to_vec()),
            other => Err(Error::KeyType(format!(
                "{other:?} cannot be used with an RSA key"
            ))),
        }
    }

    fn decrypt(&self, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if data.len() != self.modulus_len() {
            return Err(Error::invalid_data(format!(
                "RSA ciphertext of {} bytes for a {}-byte modulus",
                data.len(),
                self.modulus_len()
            )));
        }
        match mech {
            EncMech::RsaPkcs1 => {
                if let Some(k) = &self.lc_dec {
                    let k = lc_rsa::Pkcs1PrivateDecryptingKey::new(k.clone())
                        .map_err(|_| Error::internal("RSA key"))?;
                    let mut out = Zeroizing::new(vec![0u8; k.min_output_size()]);
                    let n = k
                        .decrypt(data, &mut out)
                        .map_err(|_| Error::DecryptFailed)?
                        .len();
                    out.truncate(n);
                    return Ok(out);
                }
                self.rc
                    .decrypt(Pkcs1v15Encrypt, data)
                    .map(Zeroizing::new)
                    .map_err(|_| Error::DecryptFailed)
            }
            EncMech::RsaOaep { hash: h, label } => {
                if let (Some(k), Some(alg)) = (&self.lc_dec, lc_oaep(*h)) {
                    let k = lc_rsa::OaepPrivateDecryptingKey::new(k.clone())
                        .map_err(|_| Error::internal("RSA key"))?;
                    let mut out = Zeroizing::new(vec![0u8; k.min_output_size()]);
                    let label = if label.is_empty() {
                        None
                    } else {
                        Some(&label[..])
                    };
                    let n = k
                        .decrypt(alg, data, &mut out, label)
                        .map_err(|_| Error::DecryptFailed)?
                        .len();
                    out.truncate(n);
                    return Ok(out);
                }
                with_hash!(h, D => self.rc_oaep_decrypt(Oaep::<D>::new_with_label(label.clone()), data))
            }
            EncMech::RsaOaepMgf { hash, mgf1, label } => {
                if hash == mgf1 {
                    return self.decrypt(
                        &EncMech::RsaOaep {
                            hash: *hash,
                            label: label.clone(),
                        },
                        data,
                    );
                }
                with_hash!(hash, D => with_hash!(mgf1, M => self.rc_oaep_decrypt(
                    Oaep::<D, M>::new_with_mgf_hash_and_label(label.clone()),
                    data
                )))
            }
            EncMech::RsaRaw => self.raw_private(data),
            EncMech::Sm2 => Err(Error::KeyType("SM2 decryption with an RSA key".into())),
        }
    }
}

fn public_of(key: &PublicKey) -> Result<RsaPublicKey> {
    RsaPublicKey::from_public_key_der(key.spki_der())
        .map_err(|e| Error::invalid_data(format!("RSA public key: {e}")))
}

impl AsymProvider for RsaBackend {
    fn generate(&self, alg: KeyAlg) -> Result<Zeroizing<Vec<u8>>> {
        let KeyAlg::Rsa(bits) = alg else {
            return Err(Error::KeyType(format!("{alg:?} is not RSA")));
        };
        let size = match bits {
            2048 => Some(lc_rsa::KeySize::Rsa2048),
            3072 => Some(lc_rsa::KeySize::Rsa3072),
            4096 => Some(lc_rsa::KeySize::Rsa4096),
            _ => None,
        };
        if let Some(size) = size {
            let kp = lc_rsa::KeyPair::generate(size)
                .map_err(|_| Error::internal("RSA key generation failed"))?;
            let der = kp
                .as_der()
                .map_err(|_| Error::internal("RSA PKCS#8 export failed"))?;
            return Ok(Zeroizing::new(der.as_ref().to_vec()));
        }
        let bits = usize::try_from(bits).map_err(|_| Error::invalid_arg("RSA size"))?;
        let k = RsaPrivateKey::new(&mut getrandom::SysRng, bits)
            .map_err(|e| Error::internal(format!("RSA key generation: {e}")))?;
        let doc = k
            .to_pkcs8_der()
            .map_err(|e| Error::internal(format!("RSA PKCS#8 export: {e}")))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    fn load_private(&self, alg: KeyAlg, pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>> {
        let rc = RsaPrivateKey::from_pkcs8_der(pkcs8)
            .map_err(|e| Error::invalid_data(format!("{alg:?} private key: {e}")))?;
        rc.validate()
            .map_err(|e| Error::invalid_data(format!("{alg:?} private key inconsistent: {e}")))?;
        let pk = rc.to_public_key();
        let spki = PublicKey::from_rsa_components(&pk.n().to_be_bytes(), &pk.e().to_be_bytes())?
            .spki_shared();
        Ok(Box::new(RsaPrivate {
            rc,
            lc_sign: lc_rsa::KeyPair::from_pkcs8(pkcs8).ok(),
            lc_dec: lc_rsa::PrivateDecryptingKey::from_pkcs8(pkcs8).ok(),
            spki,
        }))
    }

    fn verify(&self, key: &PublicKey, mech: &SignMech, data: &[u8], sig: &[u8]) -> Result<()> {
        let pk = public_of(key)?;
        if sig.len() != pk.size() {
            return Err(Error::SignatureInvalid);
        }
        let r = match mech {
            SignMech::RsaPkcs1(h) => {
                let digest = hash::digest(*h, data);
                with_hash!(h, D => Ok(pk.verify(Pkcs1v15Sign::new::<D>(), &digest, sig)))
            }
            SignMech::RsaPkcs1Raw => Ok(pk.verify(Pkcs1v15Sign::new_unprefixed(), data, sig)),
            SignMech::RsaPss { hash: h, salt_len } => {
                let digest = hash::digest(*h, data);
                with_hash!(h, D => Ok(pk.verify(Pss::<D>::new_with_salt(*salt_len), &digest, sig)))
            }
            SignMech::RsaPssPrehashed { hash: h, salt_len } => {
                check_digest_len(*h, data)?;
                with_hash!(h, D => Ok(pk.verify(Pss::<D>::new_with_salt(*salt_len), data, sig)))
            }
            SignMech::RsaRaw => {
                let s = raw_input(&pk, sig).map_err(|_| Error::SignatureInvalid)?;
                let m = rsa::hazmat::rsa_encrypt(&pk, &s).map_err(|_| Error::SignatureInvalid)?;
                let k = pk.size();
                if data.len() > k {
                    return Err(Error::SignatureInvalid);
                }
                let mut want = vec![0u8; k];
                want[k - data.len()..].copy_from_slice(data);
                use subtle::ConstantTimeEq;
                return if bool::from(raw_output(&m, k).ct_eq(&want[..])) {
                    Ok(())
                } else {
                    Err(Error::SignatureInvalid)
                };
            }
            other => {
                return Err(Error::KeyType(format!(
                    "{other:?} cannot be used with an RSA key"
                )));
            }
        }?;
        r.map_err(|_| Error::SignatureInvalid)
    }

    fn encrypt(&self, key: &PublicKey, mech: &EncMech, data: &[u8]) -> Result<Vec<u8>> {
        let pk = public_of(key)?;
        let mut rng = getrandom::SysRng;
        match mech {
            EncMech::RsaPkcs1 => pk
                .encrypt(&mut rng, Pkcs1v15Encrypt, data)
                .map_err(rsa_err("RSA PKCS#1 v1.5 encryption")),
            EncMech::RsaOaep { hash: h, label } => with_hash!(h, D => pk
                .encrypt(&mut rng, Oaep::<D>::new_with_label(label.clone()), data)
                .map_err(rsa_err("RSA-OAEP encryption"))),
            EncMech::RsaOaepMgf { hash, mgf1, label } => {
                with_hash!(hash, D => with_hash!(mgf1, M => pk
                    .encrypt(&mut rng, Oaep::<D, M>::new_with_mgf_hash_and_label(label.clone()), data)
                    .map_err(rsa_err("RSA-OAEP encryption"))))
            }
            EncMech::RsaRaw => {
                let m = raw_input(&pk, data)?;
                let c = rsa::hazmat::rsa_encrypt(&pk, &m)
                    .map_err(|e| Error::internal(format!("raw RSA public operation: {e}")))?;
                Ok(raw_output(&c, pk.size()).to_vec())
            }
            EncMech::Sm2 => Err(Error::KeyType("SM2 encryption with an RSA key".into())),
        }
    }
}
