//! Asymmetric keys: SM2, ECDSA P-256/P-384/P-521, Ed25519, Ed448, X25519, RSA 1024–4096.

use std::fmt;
use std::sync::{Arc, OnceLock};

use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode, Sequence, Tagged};
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::crypto::provider::{PrivateKeyOps, provider};
use crate::error::{Error, Result};

/// An asymmetric key algorithm and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlg {
    /// SM2 on the recommended curve (GB/T 32918).
    Sm2,
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
    /// ECDSA on NIST P-521.
    EcP521,
    /// EdDSA on edwards25519 (RFC 8032): Ed25519, Ed25519ctx, Ed25519ph.
    Ed25519,
    /// EdDSA on edwards448 (RFC 8032): Ed448, Ed448ph.
    Ed448,
    /// X25519 key agreement (RFC 7748), PKCS#11 CKK_EC_MONTGOMERY on curve25519.
    X25519,
    /// RSA with a modulus of this many bits (1024–4096).
    Rsa(u32),
}

/// How to sign. EC signatures are raw r‖s (fixed length); see [`crate::crypto::sig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignMech {
    /// SM2 over e = SM3(Z‖M), Z computed with this ID (use [`crate::crypto::sm2::DEFAULT_ID`]).
    Sm2Sm3 { id: Vec<u8> },
    /// SM2 over a caller-computed 32-byte e.
    Sm2Prehashed,
    /// ECDSA, hashing the message with this hash.
    Ecdsa(HashAlg),
    /// ECDSA over a caller-computed digest.
    EcdsaPrehashed,
    /// RSA PKCS#1 v1.5 over the message hashed with this hash.
    RsaPkcs1(HashAlg),
    /// RSA PKCS#1 v1.5 over caller-given bytes (a DigestInfo), as CKM_RSA_PKCS.
    RsaPkcs1Raw,
    /// RSA-PSS over the message hashed with `hash`; MGF1 with the same hash.
    RsaPss { hash: HashAlg, salt_len: usize },
    /// RSA-PSS over a caller-computed digest.
    RsaPssPrehashed { hash: HashAlg, salt_len: usize },
    /// Raw RSA (PKCS#11 CKM_RSA_X_509): the private-key operation on the input as a
    /// big-endian integer (at most the modulus length, numerically below the modulus);
    /// the signature is the modulus length. Verification recovers the integer and
    /// compares it with the input left-padded with zeros.
    RsaRaw,
    /// EdDSA (RFC 8032). On an Ed25519 key: `ph: false, context: None` is Ed25519,
    /// `ph: false, context: Some(c)` with a non-empty `c` is Ed25519ctx (an empty
    /// context means plain Ed25519, as PKCS#11 tokens treat `CK_EDDSA_PARAMS` with
    /// `phFlag` false and no context), `ph: true` is Ed25519ph (SHA-512 pre-hash,
    /// context optional). On an Ed448 key: `ph: false` is Ed448, `ph: true` is Ed448ph
    /// (SHAKE256/64 pre-hash); `None` is the empty context. Contexts are at most 255
    /// bytes. The message is given whole; pre-hashing is done here.
    EdDsa { ph: bool, context: Option<Vec<u8>> },
}

/// How to encrypt with a public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncMech {
    /// SM2 encryption, output C1‖C3‖C2 (C1 uncompressed, 65 bytes).
    Sm2,
    /// RSA PKCS#1 v1.5.
    RsaPkcs1,
    /// RSA-OAEP with this hash for OAEP and MGF1, and a label.
    RsaOaep { hash: HashAlg, label: Vec<u8> },
    /// RSA-OAEP with a label hash and an MGF1 hash chosen separately (PKCS#11
    /// `CK_RSA_PKCS_OAEP_PARAMS` with `hashAlg` ≠ the MGF's hash).
    RsaOaepMgf {
        /// The hash of the label (OAEP's Hash).
        hash: HashAlg,
        /// MGF1's hash.
        mgf1: HashAlg,
        /// The label (PKCS#11 `CKZ_DATA_SPECIFIED` source data; empty for none).
        label: Vec<u8>,
    },
    /// Raw RSA (PKCS#11 CKM_RSA_X_509): the public-key operation on the input as a
    /// big-endian integer below the modulus; the output (and the decryption output)
    /// is the modulus length, left-padded with zeros.
    RsaRaw,
}

/// How to decrypt with a private key: the inverse of [`EncMech`].
pub type DecMech = EncMech;

/// Key agreement with a private key.
#[derive(Clone, Debug)]
pub enum DeriveMech {
    /// Plain ECDH on the key's curve (P-256, P-384, P-521 or SM2) with the peer's
    /// uncompressed point 04‖x‖y; the output is the shared point's x-coordinate
    /// (PKCS#11 CKD_NULL Z, `field_len` bytes). On an X25519 key the peer's public key
    /// is the raw 32-byte u-coordinate and the output is the 32-byte X25519 result
    /// (all-zero results, from low-order points, are rejected).
    Ecdh { peer_point: Vec<u8> },
    /// SM2 key exchange (GB/T 32918.3) with this key as the static key.
    Sm2Exchange {
        /// Initiator (A) or responder (B).
        role: crate::crypto::sm2::ExchangeRole,
        /// This party's ID (use [`crate::crypto::sm2::DEFAULT_ID`]).
        own_id: Vec<u8>,
        /// This party's ephemeral private scalar r (32 bytes), made by
        /// [`crate::crypto::sm2::generate_ephemeral`].
        ephemeral: zeroize::Zeroizing<Vec<u8>>,
        /// The peer's static public key.
        peer: PublicKey,
        /// The peer's ID.
        peer_id: Vec<u8>,
        /// The peer's ephemeral point 04‖x‖y.
        peer_ephemeral: Vec<u8>,
        /// Bytes of key to derive.
        klen: usize,
    },
}

/// What a key agreement yields.
#[derive(Debug)]
pub struct DeriveOutput {
    /// The shared secret or derived key.
    pub secret: Zeroizing<Vec<u8>>,
    /// SM2 exchange: the confirmation value to send (SA or SB).
    pub confirmation: Option<[u8; 32]>,
    /// SM2 exchange: the value the peer's confirmation must equal.
    pub expected_peer_confirmation: Option<[u8; 32]>,
}

/// OIDs the key formats use.
pub mod oid {
    use der::asn1::ObjectIdentifier as Oid;
    /// id-ecPublicKey (RFC 5480).
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    /// The SM2 recommended curve (GM/T 0006), also seen as the key algorithm itself.
    pub const SM2: Oid = Oid::new_unwrap("1.2.156.10197.1.301");
    /// NIST P-256 (prime256v1).
    pub const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    /// NIST P-384 (secp384r1).
    pub const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    /// NIST P-521 (secp521r1).
    pub const P521: Oid = Oid::new_unwrap("1.3.132.0.35");
    /// id-X25519 (RFC 8410).
    pub const X25519: Oid = Oid::new_unwrap("1.3.101.110");
    /// id-Ed25519 (RFC 8410).
    pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
    /// id-Ed448 (RFC 8410).
    pub const ED448: Oid = Oid::new_unwrap("1.3.101.113");
    /// rsaEncryption (PKCS#1).
    pub const RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
}

impl KeyAlg {
    /// Whether this is a short-Weierstrass elliptic-curve key (SM2 or ECDSA), whose
    /// public key is an uncompressed point 04‖x‖y.
    pub fn is_ec(self) -> bool {
        matches!(self, Self::Sm2 | Self::EcP256 | Self::EcP384 | Self::EcP521)
    }
    /// Whether this is an EdDSA key (Ed25519 or Ed448; PKCS#11 CKK_EC_EDWARDS).
    pub fn is_edwards(self) -> bool {
        matches!(self, Self::Ed25519 | Self::Ed448)
    }
    /// Whether this is a Montgomery-curve key (X25519; PKCS#11 CKK_EC_MONTGOMERY).
    pub fn is_montgomery(self) -> bool {
        matches!(self, Self::X25519)
    }
    /// The coordinate length in bytes of a short-Weierstrass EC key.
    pub fn field_len(self) -> Option<usize> {
        match self {
            Self::Sm2 | Self::EcP256 => Some(32),
            Self::EcP384 => Some(48),
            Self::EcP521 => Some(66),
            Self::Ed25519 | Self::Ed448 | Self::X25519 | Self::Rsa(_) => None,
        }
    }
    /// The length of the public key as the PKCS#11 `CKA_EC_POINT` carries it (before
    /// its DER OCTET STRING wrapping): 1 + 2·field_len for EC keys, 32 (Ed25519,
    /// X25519) or 57 (Ed448) for the RFC 8032/7748 encodings; `None` for RSA.
    pub fn public_point_len(self) -> Option<usize> {
        match self {
            Self::Ed25519 | Self::X25519 => Some(32),
            Self::Ed448 => Some(57),
            other => other.field_len().map(|f| 1 + 2 * f),
        }
    }
    /// The length of the raw private value (PKCS#11 `CKA_VALUE`): the big-endian
    /// scalar of an EC key, the RFC 8032 seed or RFC 7748 scalar otherwise; `None`
    /// for RSA.
    pub fn private_value_len(self) -> Option<usize> {
        match self {
            Self::Ed25519 | Self::X25519 => Some(32),
            Self::Ed448 => Some(57),
            other => other.field_len(),
        }
    }
    /// The signature length in bytes (EC: raw r‖s), `None` for keys that do not sign.
    pub fn signature_len(self) -> Option<usize> {
        match self {
            Self::Ed25519 => Some(64),
            Self::Ed448 => Some(114),
            Self::X25519 => None,
            Self::Rsa(bits) => usize::try_from(bits.div_ceil(8)).ok(),
            other => other.field_len().map(|f| 2 * f),
        }
    }
    /// The curve OID of an EC, Edwards or Montgomery key (for Edwards and Montgomery
    /// keys, the RFC 8410 algorithm OID, which PKCS#11 3.0 accepts as `CKA_EC_PARAMS`).
    pub fn curve_oid(self) -> Option<ObjectIdentifier> {
        match self {
            Self::Sm2 => Some(oid::SM2),
            Self::EcP256 => Some(oid::P256),
            Self::EcP384 => Some(oid::P384),
            Self::EcP521 => Some(oid::P521),
            Self::Ed25519 => Some(oid::ED25519),
            Self::Ed448 => Some(oid::ED448),
            Self::X25519 => Some(oid::X25519),
            Self::Rsa(_) => None,
        }
    }
    /// The key algorithm named by a curve OID (or RFC 8410 algorithm OID).
    pub fn from_curve_oid(curve: ObjectIdentifier) -> Result<Self> {
        match curve {
            c if c == oid::SM2 => Ok(Self::Sm2),
            c if c == oid::P256 => Ok(Self::EcP256),
            c if c == oid::P384 => Ok(Self::EcP384),
            c if c == oid::P521 => Ok(Self::EcP521),
            c if c == oid::ED25519 => Ok(Self::Ed25519),
            c if c == oid::ED448 => Ok(Self::Ed448),
            c if c == oid::X25519 => Ok(Self::X25519),
            c => Err(Error::unsupported(format!("elliptic curve {c}"))),
        }
    }
    /// The key algorithm named by a PKCS#11 `CKA_EC_PARAMS` value: the DER of a named
    /// curve OID (P-256/384/521, SM2, or the RFC 8410 OIDs id-Ed25519, id-Ed448,
    /// id-X25519), or a DER PrintableString `edwards25519`, `edwards448` or
    /// `curve25519` (PKCS#11 3.0 §2.3.5/§2.3.7). Explicit curve parameters and
    /// unknown curves are `Unsupported`; malformed DER is `InvalidData`.
    pub fn from_ec_params(der: &[u8]) -> Result<Self> {
        // The common case, a short OID naming a known curve, without the DER decoder.
        if let [0x06, len, body @ ..] = der
            && usize::from(*len) == body.len()
            && let Some(alg) = [
                Self::EcP256,
                Self::Sm2,
                Self::EcP384,
                Self::EcP521,
                Self::Ed25519,
                Self::Ed448,
                Self::X25519,
            ]
            .into_iter()
            .find(|a| a.curve_oid().is_some_and(|o| o.as_bytes() == body))
        {
            return Ok(alg);
        }
        let any = AnyRef::from_der(der)
            .map_err(|e| Error::invalid_data(format!("CKA_EC_PARAMS: {e}")))?;
        match any.tag() {
            der::Tag::ObjectIdentifier => Self::from_curve_oid(
                any.decode_as::<ObjectIdentifier>()
                    .map_err(|e| Error::invalid_data(format!("CKA_EC_PARAMS curve OID: {e}")))?,
            ),
            der::Tag::PrintableString => match any.value() {
                b"edwards25519" => Ok(Self::Ed25519),
                b"edwards448" => Ok(Self::Ed448),
                b"curve25519" => Ok(Self::X25519),
                other => Err(Error::unsupported(format!(
                    "curve named {:?}",
                    String::from_utf8_lossy(other)
                ))),
            },
            der::Tag::Sequence => Err(Error::unsupported("EC keys with explicit curve parameters")),
            t => Err(Error::invalid_data(format!(
                "CKA_EC_PARAMS must be a curve OID or name, found {t}"
            ))),
        }
    }
    /// The PKCS#11 `CKA_EC_PARAMS` value of an EC, Edwards or Montgomery key: the DER
    /// of [`Self::curve_oid`]. `None` for RSA.
    pub fn to_ec_params(self) -> Option<Vec<u8>> {
        self.ec_params_der().map(<[u8]>::to_vec)
    }
    /// [`Self::to_ec_params`] without an allocation: encoded once per curve.
    pub fn ec_params_der(self) -> Option<&'static [u8]> {
        static DER: [OnceLock<Option<Vec<u8>>>; 7] = [const { OnceLock::new() }; 7];
        let slot = match self {
            Self::Sm2 => 0,
            Self::EcP256 => 1,
            Self::EcP384 => 2,
            Self::EcP521 => 3,
            Self::Ed25519 => 4,
            Self::Ed448 => 5,
            Self::X25519 => 6,
            Self::Rsa(_) => return None,
        };
        DER[slot]
            .get_or_init(|| self.curve_oid().and_then(|o| o.to_der().ok()))
            .as_deref()
    }
    /// Checks an RSA size is within 1024..=4096 bits.
    fn check(self) -> Result<()> {
        match self {
            Self::Rsa(bits) if !(1024..=4096).contains(&bits) => Err(Error::unsupported(format!(
                "RSA with a {bits}-bit modulus (1024 to 4096 supported)"
            ))),
            _ => Ok(()),
        }
    }
}

/// PKCS#1 RSAPublicKey.
#[derive(Sequence)]
struct RsaPublicKeyDer<'a> {
    n: UintRef<'a>,
    e: UintRef<'a>,
}

/// PKCS#1 RSAPrivateKey (two-prime).
#[derive(Sequence)]
pub(crate) struct RsaPrivateKeyDer<'a> {
    pub version: UintRef<'a>,
    pub n: UintRef<'a>,
    pub e: UintRef<'a>,
    pub d: UintRef<'a>,
    pub p: UintRef<'a>,
    pub q: UintRef<'a>,
    pub dp: UintRef<'a>,
    pub dq: UintRef<'a>,
    pub qinv: UintRef<'a>,
}

fn bit_len(n: &[u8]) -> u32 {
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    let top = u32::from(n[0]);
    (n.len() as u32 - 1) * 8 + (32 - top.leading_zeros())
}

fn rsa_alg_of_modulus(n: &[u8]) -> Result<KeyAlg> {
    let alg = KeyAlg::Rsa(bit_len(n));
    alg.check()?;
    Ok(alg)
}

/// The canonical SubjectPublicKeyInfo DER of an EC or SM2 point (id-ecPublicKey with
/// the named curve), or of an Edwards/Montgomery key (RFC 8410: the algorithm OID, no
/// parameters, the raw key).
pub(crate) fn ec_spki_der(alg: KeyAlg, point: &[u8]) -> Result<Arc<[u8]>> {
    if alg.is_edwards() || alg.is_montgomery() {
        let (Some(len), Some(alg_oid)) = (alg.public_point_len(), alg.curve_oid()) else {
            return Err(Error::internal("Edwards key without a length"));
        };
        if point.len() != len {
            return Err(Error::invalid_data(format!(
                "{alg:?} public key must be {len} bytes, got {}",
                point.len()
            )));
        }
        let spki = SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef {
                oid: alg_oid,
                parameters: None,
            },
            subject_public_key: BitStringRef::from_bytes(point)?,
        };
        return Ok(spki.to_der()?.into());
    }
    let curve = alg
        .curve_oid()
        .ok_or_else(|| Error::KeyType(format!("{alg:?} is not an EC key")))?;
    let fl = alg.field_len().unwrap_or(0);
    if point.len() != 1 + 2 * fl || point[0] != 0x04 {
        return Err(Error::invalid_data(format!(
            "{alg:?} point must be uncompressed 04||x||y of {} bytes",
            1 + 2 * fl
        )));
    }
    // Everything before the point depends on the curve only: encoded once per curve.
    let make = || -> Result<Vec<u8>> {
        let curve_der = curve.to_der()?;
        let zero = vec![0u8; point.len()];
        let spki = SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef {
                oid: oid::EC_PUBLIC_KEY,
                parameters: Some(AnyRef::from_der(&curve_der)?),
            },
            subject_public_key: BitStringRef::from_bytes(&zero)?,
        };
        let mut der = spki.to_der()?;
        der.truncate(der.len() - point.len());
        Ok(der)
    };
    static PREFIXES: [OnceLock<Vec<u8>>; 4] = [const { OnceLock::new() }; 4];
    let slot = match alg {
        KeyAlg::Sm2 => 0,
        KeyAlg::EcP256 => 1,
        KeyAlg::EcP384 => 2,
        _ => 3,
    };
    let prefix = match PREFIXES[slot].get() {
        Some(p) => p,
        None => {
            let p = make()?;
            PREFIXES[slot].get_or_init(|| p)
        }
    };
    // Assembled on the stack (P-521's SPKI, the longest, is 158 bytes) and copied once
    // into the buffer the key's holders share.
    let mut der = [0u8; 192];
    let n = prefix.len() + point.len();
    let buf = der
        .get_mut(..n)
        .ok_or_else(|| Error::internal("EC public key too long"))?;
    buf[..prefix.len()].copy_from_slice(prefix);
    buf[prefix.len()..].copy_from_slice(point);
    Ok(Arc::from(&*buf))
}

fn rsa_spki_der(rsa_public_key_der: &[u8]) -> Result<Arc<[u8]>> {
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: oid::RSA,
            parameters: Some(AnyRef::NULL),
        },
        subject_public_key: BitStringRef::from_bytes(rsa_public_key_der)?,
    };
    Ok(spki.to_der()?.into())
}

/// The key algorithm named by an AlgorithmIdentifier (plus, for EC keys found inside a
/// SEC1 structure, the curve given there).
fn alg_of(
    algorithm: &AlgorithmIdentifierRef<'_>,
    inner_curve: Option<ObjectIdentifier>,
) -> Result<KeyAlg> {
    if algorithm.oid == oid::SM2 {
        return Ok(KeyAlg::Sm2);
    }
    for (o, alg) in [
        (oid::ED25519, KeyAlg::Ed25519),
        (oid::ED448, KeyAlg::Ed448),
        (oid::X25519, KeyAlg::X25519),
    ] {
        if algorithm.oid == o {
            if algorithm.parameters.is_some() {
                return Err(Error::invalid_data(format!(
                    "{alg:?} AlgorithmIdentifier must have no parameters (RFC 8410)"
                )));
            }
            return Ok(alg);
        }
    }
    if algorithm.oid == oid::EC_PUBLIC_KEY {
        let curve = match &algorithm.parameters {
            Some(p) if p.tag() == der::Tag::ObjectIdentifier => {
                Some(p.decode_as::<ObjectIdentifier>()?)
            }
            Some(p) if p.tag() != der::Tag::Null => {
                return Err(Error::unsupported("EC keys with explicit curve parameters"));
            }
            _ => inner_curve,
        }
        .ok_or_else(|| Error::invalid_data("EC key without a named curve"))?;
        return KeyAlg::from_curve_oid(curve);
    }
    if algorithm.oid == oid::RSA {
        // The size is filled in by the caller from the modulus.
        return Ok(KeyAlg::Rsa(0));
    }
    Err(Error::unsupported(format!(
        "key algorithm {}",
        algorithm.oid
    )))
}

/// A public key, kept as its canonical SubjectPublicKeyInfo DER (SM2 keys with
/// id-ecPublicKey + the SM2 curve OID, as GmSSL and OpenSSL write them).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    alg: KeyAlg,
    /// Shared: the key's holders (a PKCS#11 key pair's two objects, their attributes and
    /// parsed keys) read one buffer.
    spki: Arc<[u8]>,
    /// The length of the subject public key (the BIT STRING's content, the last element
    /// of the SPKI), so reading the point needs no DER parse.
    key_len: usize,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKey({:?}, {} bytes SPKI)",
            self.alg,
            self.spki.len()
        )
    }
}

impl PublicKey {
    /// Parses a SubjectPublicKeyInfo (DER). SM2 keys are recognised both with the SM2
    /// curve OID and with id-ecPublicKey + the SM2 curve parameters.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| Error::invalid_data(format!("SubjectPublicKeyInfo: {e}")))?;
        let alg = alg_of(&spki.algorithm, None)?;
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::invalid_data("public key BIT STRING has unused bits"))?;
        match alg {
            KeyAlg::Rsa(_) => {
                let rsa = RsaPublicKeyDer::from_der(key)
                    .map_err(|e| Error::invalid_data(format!("RSAPublicKey: {e}")))?;
                Self::from_rsa_components(rsa.n.as_bytes(), rsa.e.as_bytes())
            }
            _ => Self::from_ec_point(alg, key),
        }
    }
    /// Parses a PEM `PUBLIC KEY`.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
            .map_err(|e| Error::invalid_data(format!("PEM: {e}")))?;
        if label != "PUBLIC KEY" {
            return Err(Error::invalid_data(format!(
                "expected a PEM PUBLIC KEY, found {label}"
            )));
        }
        Self::from_spki_der(&der)
    }
    /// Takes the public key of an X.509 certificate (DER or PEM).
    pub fn from_cert(cert: &[u8]) -> Result<Self> {
        use x509_cert::Certificate;
        let der;
        let bytes = if cert.trim_ascii_start().starts_with(b"-----BEGIN") {
            let (label, d) = pem_rfc7468::decode_vec(cert.trim_ascii())
                .map_err(|e| Error::invalid_data(format!("PEM: {e}")))?;
            if label != "CERTIFICATE" {
                return Err(Error::invalid_data(format!(
                    "expected a PEM CERTIFICATE, found {label}"
                )));
            }
            der = d;
            &der[..]
        } else {
            cert
        };
        let c = Certificate::from_der(bytes)
            .map_err(|e| Error::invalid_data(format!("certificate: {e}")))?;
        let spki = c.tbs_certificate().subject_public_key_info().to_der()?;
        Self::from_spki_der(&spki)
    }
    /// From an uncompressed EC point (04‖x‖y) on a curve, or from the raw public key
    /// of an Edwards key (RFC 8032: 32 bytes for Ed25519, 57 for Ed448) or an X25519
    /// key (RFC 7748, 32 bytes). EC points are checked to lie on the curve, Edwards
    /// keys to decode to a curve point.
    pub fn from_ec_point(alg: KeyAlg, point: &[u8]) -> Result<Self> {
        let spki = ec_spki_der(alg, point)?;
        match alg {
            KeyAlg::Sm2 => super::sm2::check_public_point(point)?,
            KeyAlg::Ed25519 | KeyAlg::Ed448 => {
                super::backend::edwards::check_public(alg, point)?;
            }
            KeyAlg::X25519 => {}
            KeyAlg::EcP256 | KeyAlg::EcP384 | KeyAlg::EcP521 => {
                let a: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match alg {
                    KeyAlg::EcP256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                    KeyAlg::EcP384 => &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
                    _ => &aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED,
                };
                aws_lc_rs::signature::UnparsedPublicKey::new(a, point)
                    .parse()
                    .map_err(|_| {
                        Error::invalid_data(format!("{alg:?} point is not on the curve"))
                    })?;
            }
            KeyAlg::Rsa(_) => return Err(Error::KeyType("RSA keys have no EC point".into())),
        }
        Ok(Self {
            alg,
            spki,
            key_len: point.len(),
        })
    }
    /// From RSA modulus and public exponent (big-endian).
    pub fn from_rsa_components(n: &[u8], e: &[u8]) -> Result<Self> {
        let alg = rsa_alg_of_modulus(n)?;
        let e_trim = &e[e.iter().position(|&b| b != 0).unwrap_or(e.len())..];
        if e_trim.is_empty() || e_trim.len() > 8 || e_trim[e_trim.len() - 1] & 1 == 0 {
            return Err(Error::invalid_data(
                "RSA public exponent must be odd, at most 64 bits",
            ));
        }
        let pk = RsaPublicKeyDer {
            n: UintRef::new(n)?,
            e: UintRef::new(e)?,
        }
        .to_der()?;
        Ok(Self {
            alg,
            spki: rsa_spki_der(&pk)?,
            key_len: pk.len(),
        })
    }
    /// The algorithm.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }
    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }
    /// SubjectPublicKeyInfo DER, shared with this key (no copy).
    pub fn spki_shared(&self) -> Arc<[u8]> {
        self.spki.clone()
    }
    /// PEM `PUBLIC KEY`.
    pub fn to_pem(&self) -> String {
        pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, &self.spki)
            .unwrap_or_default()
    }
    fn key_bytes(&self) -> Option<&[u8]> {
        self.spki.get(self.spki.len().checked_sub(self.key_len)?..)
    }
    /// The uncompressed point 04‖x‖y of an EC or SM2 key; the raw public key of an
    /// Edwards (RFC 8032) or X25519 (RFC 7748) key. `None` for RSA.
    pub fn ec_point(&self) -> Option<Vec<u8>> {
        self.ec_point_bytes().map(<[u8]>::to_vec)
    }
    /// [`Self::ec_point`], borrowed.
    pub fn ec_point_bytes(&self) -> Option<&[u8]> {
        if !(self.alg.is_ec() || self.alg.is_edwards() || self.alg.is_montgomery()) {
            return None;
        }
        self.key_bytes()
    }
    /// (modulus, public exponent) of an RSA key, big-endian.
    pub fn rsa_components(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        if !matches!(self.alg, KeyAlg::Rsa(_)) {
            return None;
        }
        let k = RsaPublicKeyDer::from_der(self.key_bytes()?).ok()?;
        Some((k.n.as_bytes().to_vec(), k.e.as_bytes().to_vec()))
    }
    /// Verifies a signature made with `mech` (EC: raw r‖s).
    pub fn verify(&self, mech: &SignMech, data: &[u8], sig: &[u8]) -> Result<()> {
        provider().asym(self.alg).verify(self, mech, data, sig)
    }
    /// Encrypts to this key.
    pub fn encrypt(&self, mech: &EncMech, data: &[u8]) -> Result<Vec<u8>> {
        provider().asym(self.alg).encrypt(self, mech, data)
    }
}

/// The length of an SPKI's subject public key.
fn spki_key_len(spki: &[u8]) -> Result<usize> {
    let info = SubjectPublicKeyInfoRef::from_der(spki)
        .map_err(|e| Error::invalid_data(format!("SubjectPublicKeyInfo: {e}")))?;
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::len)
        .ok_or_else(|| Error::invalid_data("public key BIT STRING has unused bits"))
}

/// A private key. Zeroized on drop; `Debug` shows only the algorithm.
pub struct PrivateKey {
    alg: KeyAlg,
    pkcs8: Zeroizing<Vec<u8>>,
    ops: Box<dyn PrivateKeyOps>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?})", self.alg)
    }
}

/// Wraps a key in a PKCS#8 PrivateKeyInfo.
pub(crate) fn wrap_pkcs8(
    algorithm: AlgorithmIdentifierRef<'_>,
    private_key: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let pki = pkcs8::PrivateKeyInfoRef::new(algorithm, OctetStringRef::new(private_key)?);
    let mut out = Zeroizing::new(Vec::new());
    pki.encode_to_vec(&mut out)?;
    Ok(out)
}

/// Normalises an EC private key (the SEC1 ECPrivateKey DER) into PKCS#8 of `alg`.
fn ec_pkcs8(alg: KeyAlg, sec1_der: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let ec = sec1::EcPrivateKey::from_der(sec1_der)
        .map_err(|e| Error::invalid_data(format!("ECPrivateKey: {e}")))?;
    let fl = alg.field_len().unwrap_or(0);
    if ec.private_key.len() > fl {
        return Err(Error::invalid_data(format!(
            "{alg:?} private key of {} bytes",
            ec.private_key.len()
        )));
    }
    let mut d = Zeroizing::new(vec![0u8; fl]);
    d[fl - ec.private_key.len()..].copy_from_slice(ec.private_key);
    if alg == KeyAlg::Sm2 {
        let s = super::backend::sm2::SecretScalar::from_slice(&d)?;
        return super::backend::sm2::pkcs8_from_scalar(&s);
    }
    // ECDSA: re-encode without the curve parameters (the algorithm identifier names the
    // curve); a public key present is kept, and aws-lc-rs checks it against d.
    ecdsa_pkcs8(alg, &d, ec.public_key)
}

/// The canonical PKCS#8 of an ECDSA key (what [`canonical_pkcs8`] makes of any encoding
/// of it): the scalar `d`, already left-padded to the field's length, and the public
/// point when there is one, with the curve named only in the algorithm identifier.
pub(crate) fn ecdsa_pkcs8(
    alg: KeyAlg,
    d: &[u8],
    public_key: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>> {
    let curve = alg.curve_oid().ok_or_else(|| Error::internal("EC curve"))?;
    let inner = sec1::EcPrivateKey {
        private_key: d,
        parameters: None,
        public_key,
    };
    let mut inner_der = Zeroizing::new(Vec::new());
    inner.encode_to_vec(&mut inner_der)?;
    let curve_der = curve.to_der()?;
    wrap_pkcs8(
        AlgorithmIdentifierRef {
            oid: oid::EC_PUBLIC_KEY,
            parameters: Some(AnyRef::from_der(&curve_der)?),
        },
        &inner_der,
    )
}

/// The canonical PKCS#8 (RFC 8410, version 1, no public key) of an Edwards or
/// Montgomery key from its raw private value.
pub(crate) fn raw_curve_pkcs8(alg: KeyAlg, value: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let (Some(len), Some(alg_oid)) = (alg.private_value_len(), alg.curve_oid()) else {
        return Err(Error::internal("curve key without a length"));
    };
    if value.len() != len {
        return Err(Error::invalid_data(format!(
            "{alg:?} private key must be {len} bytes, got {}",
            value.len()
        )));
    }
    let mut inner = Zeroizing::new(Vec::new());
    OctetStringRef::new(value)?.encode_to_vec(&mut inner)?;
    wrap_pkcs8(
        AlgorithmIdentifierRef {
            oid: alg_oid,
            parameters: None,
        },
        &inner,
    )
}

fn rsa_pkcs8(pkcs1_der: &[u8]) -> Result<(KeyAlg, Zeroizing<Vec<u8>>)> {
    let k = RsaPrivateKeyDer::from_der(pkcs1_der)
        .map_err(|e| Error::invalid_data(format!("RSAPrivateKey: {e}")))?;
    let alg = rsa_alg_of_modulus(k.n.as_bytes())?;
    let p8 = wrap_pkcs8(
        AlgorithmIdentifierRef {
            oid: oid::RSA,
            parameters: Some(AnyRef::NULL),
        },
        pkcs1_der,
    )?;
    Ok((alg, p8))
}

/// The algorithm of an unencrypted PKCS#8 PrivateKeyInfo (DER) and the same key in
/// token-hal's canonical PKCS#8 form.
fn canonical_pkcs8(der: &[u8]) -> Result<(KeyAlg, Zeroizing<Vec<u8>>)> {
    let pki = pkcs8::PrivateKeyInfoRef::from_der(der)
        .map_err(|e| Error::invalid_data(format!("PKCS#8 PrivateKeyInfo: {e}")))?;
    let inner = pki.private_key.as_bytes();
    let inner_curve = if pki.algorithm.oid == oid::RSA {
        None
    } else {
        sec1::EcPrivateKey::from_der(inner)
            .ok()
            .and_then(|k| k.parameters.and_then(|p| p.named_curve()))
    };
    let (alg, canonical) = match alg_of(&pki.algorithm, inner_curve)? {
        KeyAlg::Rsa(_) => rsa_pkcs8(inner)?,
        alg @ (KeyAlg::Ed25519 | KeyAlg::Ed448 | KeyAlg::X25519) => {
            let seed = <&OctetStringRef>::from_der(inner)
                .map_err(|e| Error::invalid_data(format!("{alg:?} CurvePrivateKey: {e}")))?;
            (alg, raw_curve_pkcs8(alg, seed.as_bytes())?)
        }
        alg => (alg, ec_pkcs8(alg, inner)?),
    };
    Ok((alg, canonical))
}

impl PrivateKey {
    /// Generates a key pair.
    pub fn generate(alg: KeyAlg) -> Result<Self> {
        alg.check()?;
        let (pkcs8, loaded) = provider().asym(alg).generate_loaded(alg)?;
        let Some(ops) = loaded else {
            return Self::from_pkcs8_der(&pkcs8);
        };
        // The key the provider made, kept as it is, with the PKCS#8 it encoded in the
        // canonical form (what is stored and exported; `generate_loaded`'s contract,
        // checked here in debug builds and by `generated_keys_carry_canonical_pkcs8`).
        debug_assert!(
            canonical_pkcs8(&pkcs8).is_ok_and(|(a, c)| a == alg && c == pkcs8),
            "{alg:?}: generate_loaded gave a PKCS#8 that is not canonical"
        );
        Ok(Self { alg, pkcs8, ops })
    }
    /// Parses an unencrypted PKCS#8 PrivateKeyInfo (DER).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let (alg, canonical) = canonical_pkcs8(der)?;
        Self::from_canonical(alg, canonical)
    }
    fn from_canonical(alg: KeyAlg, pkcs8: Zeroizing<Vec<u8>>) -> Result<Self> {
        let ops = provider().asym(alg).load_private(alg, &pkcs8)?;
        Ok(Self { alg, pkcs8, ops })
    }
    /// A key from its raw private value, as PKCS#11 `CKA_VALUE` carries it: the
    /// big-endian scalar d of an EC or SM2 key (shorter values are left-padded), the
    /// RFC 8032 seed of an Ed25519/Ed448 key, the RFC 7748 scalar of an X25519 key.
    pub fn from_raw_private(alg: KeyAlg, value: &[u8]) -> Result<Self> {
        match alg {
            KeyAlg::Rsa(_) => Err(Error::KeyType("RSA keys have no single raw value".into())),
            KeyAlg::Ed25519 | KeyAlg::Ed448 | KeyAlg::X25519 => {
                Self::from_canonical(alg, raw_curve_pkcs8(alg, value)?)
            }
            _ => {
                let fl = alg.field_len().unwrap_or(0);
                let trimmed = &value[value.iter().position(|&b| b != 0).unwrap_or(value.len())..];
                if trimmed.is_empty() || trimmed.len() > fl {
                    return Err(Error::invalid_data(format!(
                        "{alg:?} private value of {} bytes",
                        value.len()
                    )));
                }
                let mut d = Zeroizing::new(vec![0u8; fl]);
                d[fl - trimmed.len()..].copy_from_slice(trimmed);
                if alg == KeyAlg::Sm2 {
                    return Self::from_sm2_scalar(&d);
                }
                let inner = sec1::EcPrivateKey {
                    private_key: &d,
                    parameters: None,
                    public_key: None,
                };
                let mut inner_der = Zeroizing::new(Vec::new());
                inner.encode_to_vec(&mut inner_der)?;
                Self::from_canonical(alg, ec_pkcs8(alg, &inner_der)?)
            }
        }
    }
    /// The raw private value (PKCS#11 `CKA_VALUE`): see [`Self::from_raw_private`].
    /// `None` for RSA.
    pub fn raw_private_value(&self) -> Option<Zeroizing<Vec<u8>>> {
        if let Some(v) = self.ops.raw_private() {
            return Some(v);
        }
        let pki = pkcs8::PrivateKeyInfoRef::from_der(&self.pkcs8).ok()?;
        let inner = pki.private_key.as_bytes();
        match self.alg {
            KeyAlg::Rsa(_) => None,
            KeyAlg::Ed25519 | KeyAlg::Ed448 | KeyAlg::X25519 => Some(Zeroizing::new(
                <&OctetStringRef>::from_der(inner).ok()?.as_bytes().to_vec(),
            )),
            alg => {
                let ec = sec1::EcPrivateKey::from_der(inner).ok()?;
                let fl = alg.field_len()?;
                let mut d = Zeroizing::new(vec![0u8; fl]);
                let k = ec.private_key;
                if k.len() > fl {
                    return None;
                }
                d[fl - k.len()..].copy_from_slice(k);
                Some(d)
            }
        }
    }
    /// An SM2 key from its 32-byte private scalar d (as in an SKF ECCPRIVATEKEYBLOB).
    pub fn from_sm2_scalar(d: &[u8]) -> Result<Self> {
        let s = super::backend::sm2::SecretScalar::from_slice(d)?;
        Self::from_canonical(KeyAlg::Sm2, super::backend::sm2::pkcs8_from_scalar(&s)?)
    }
    /// Parses a SEC1 ECPrivateKey (DER) that names its curve.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self> {
        let ec = sec1::EcPrivateKey::from_der(der)
            .map_err(|e| Error::invalid_data(format!("SEC1 ECPrivateKey: {e}")))?;
        let curve = ec
            .parameters
            .and_then(|p| p.named_curve())
            .ok_or_else(|| Error::invalid_data("SEC1 EC key without a named curve"))?;
        let alg = KeyAlg::from_curve_oid(curve)?;
        Self::from_canonical(alg, ec_pkcs8(alg, der)?)
    }
    /// Parses a PKCS#1 RSAPrivateKey (DER).
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self> {
        let (alg, p8) = rsa_pkcs8(der)?;
        Self::from_canonical(alg, p8)
    }
    /// Reads a key file: PEM or DER; PKCS#8 `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`
    /// (PBES2 with PBKDF2-HMAC-SM3/SHA-1/SHA-256 and SM4-CBC/AES-CBC, GmSSL's format
    /// included), SEC1 `EC PRIVATE KEY` and PKCS#1 `RSA PRIVATE KEY`. A wrong password
    /// gives `Error::WrongPassword`.
    pub fn from_file_bytes(bytes: &[u8], password: Option<&[u8]>) -> Result<Self> {
        super::keyfile::read_private_key(bytes, password)
    }
    /// The unencrypted PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }
    /// PEM `ENCRYPTED PRIVATE KEY`: PBES2 with PBKDF2-HMAC-SM3 and SM4-CBC for SM2 keys
    /// (GmSSL's choice), PBKDF2-HMAC-SHA256 and AES-256-CBC for the others.
    pub fn to_encrypted_pkcs8_pem(&self, password: &[u8]) -> Result<Zeroizing<String>> {
        super::keyfile::encrypt_pkcs8_pem(self.alg, &self.pkcs8, password)
    }
    /// The algorithm.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }
    /// The matching public key.
    pub fn public_key(&self) -> Result<PublicKey> {
        // The SPKI comes from this key's own (validated) private half: no need to parse and
        // re-check the point on every call.
        let spki = self.ops.public_spki()?;
        // Backends hold EC points uncompressed, so the key's length follows from the
        // algorithm; an RSA key's is read from the SPKI.
        let key_len = match self.alg.public_point_len() {
            Some(l) => l,
            None => spki_key_len(&spki)?,
        };
        debug_assert_eq!(
            PublicKey::from_spki_der(&spki)
                .map(|p| (p.alg, p.key_len))
                .ok(),
            Some((self.alg, key_len))
        );
        Ok(PublicKey {
            alg: self.alg,
            spki,
            key_len,
        })
    }
    /// Signs (EC: raw r‖s).
    pub fn sign(&self, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        self.ops.sign(mech, data)
    }
    /// Decrypts.
    pub fn decrypt(&self, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.ops.decrypt(mech, data)
    }
    /// Key agreement.
    pub fn derive(&self, mech: &DeriveMech) -> Result<DeriveOutput> {
        match mech {
            DeriveMech::Ecdh { peer_point } => Ok(DeriveOutput {
                secret: self.ops.ecdh(peer_point)?,
                confirmation: None,
                expected_peer_confirmation: None,
            }),
            DeriveMech::Sm2Exchange {
                role,
                own_id,
                ephemeral,
                peer,
                peer_id,
                peer_ephemeral,
                klen,
            } => {
                let ex = crate::crypto::sm2::Sm2KeyExchange::with_ephemeral_bytes(
                    *role, self, own_id, ephemeral,
                )?;
                let out = ex.finish(peer, peer_id, peer_ephemeral, *klen)?;
                Ok(DeriveOutput {
                    secret: out.key.clone(),
                    confirmation: Some(out.confirmation),
                    expected_peer_confirmation: Some(out.expected_peer_confirmation()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached prefix gives the same SubjectPublicKeyInfo as encoding it whole.
    #[test]
    fn ec_spki_from_the_prefix_equals_the_full_encoding() {
        for alg in [KeyAlg::Sm2, KeyAlg::EcP256, KeyAlg::EcP384, KeyAlg::EcP521] {
            let fl = alg.field_len().expect("field length");
            for fill in [0u8, 0x5a, 0xff] {
                let mut point = vec![fill; 1 + 2 * fl];
                point[0] = 4;
                let curve_der = alg.curve_oid().expect("curve").to_der().expect("oid");
                let whole = SubjectPublicKeyInfoRef {
                    algorithm: AlgorithmIdentifierRef {
                        oid: oid::EC_PUBLIC_KEY,
                        parameters: Some(AnyRef::from_der(&curve_der).expect("any")),
                    },
                    subject_public_key: BitStringRef::from_bytes(&point).expect("bits"),
                }
                .to_der()
                .expect("der");
                // Twice: the first call fills the cache, the second reads it.
                assert_eq!(
                    &*ec_spki_der(alg, &point).expect("spki"),
                    &whole[..],
                    "{alg:?}"
                );
                assert_eq!(
                    &*ec_spki_der(alg, &point).expect("spki"),
                    &whole[..],
                    "{alg:?}"
                );
            }
            assert!(ec_spki_der(alg, &[4u8; 3]).is_err());
        }
    }

    /// A generated key the provider handed over loaded is the key its PKCS#8 holds: the
    /// same canonical PKCS#8 and public key as parsing that PKCS#8 gives, and each key's
    /// signatures verify under the other's public key.
    #[test]
    fn generated_keys_equal_their_parsed_pkcs8() {
        for alg in [
            KeyAlg::EcP256,
            KeyAlg::EcP384,
            KeyAlg::EcP521,
            KeyAlg::Sm2,
            KeyAlg::Ed25519,
        ] {
            for _ in 0..4 {
                let made = PrivateKey::generate(alg).expect("generate");
                let parsed = PrivateKey::from_pkcs8_der(&made.to_pkcs8_der()).expect("parse");
                assert_eq!(made.alg(), alg);
                assert_eq!(*made.to_pkcs8_der(), *parsed.to_pkcs8_der(), "{alg:?}");
                let (pm, pp) = (
                    made.public_key().expect("public"),
                    parsed.public_key().expect("public"),
                );
                assert_eq!(pm, pp, "{alg:?}");
                let mech = match alg {
                    KeyAlg::Sm2 => SignMech::Sm2Sm3 {
                        id: crate::crypto::sm2::DEFAULT_ID.to_vec(),
                    },
                    KeyAlg::Ed25519 => SignMech::EdDsa {
                        ph: false,
                        context: None,
                    },
                    _ => SignMech::Ecdsa(HashAlg::Sha256),
                };
                let sig = made.sign(&mech, b"message").expect("sign");
                pp.verify(&mech, b"message", &sig)
                    .expect("parsed key verifies");
                let sig = parsed.sign(&mech, b"message").expect("sign");
                pm.verify(&mech, b"message", &sig)
                    .expect("made key verifies");
                // The scalar the loaded key keeps for ECDH is the one its PKCS#8 holds.
                if alg.is_ec() {
                    let peer = PrivateKey::generate(alg).expect("peer");
                    let ecdh = DeriveMech::Ecdh {
                        peer_point: peer.public_key().expect("peer").ec_point().expect("point"),
                    };
                    let (zm, zp) = (
                        made.derive(&ecdh).expect("derive"),
                        parsed.derive(&ecdh).expect("derive"),
                    );
                    assert_eq!(*zm.secret, *zp.secret, "{alg:?} ECDH");
                }
            }
        }
    }
}
