//! Private key files: PEM or DER; PKCS#8, PBES2-encrypted PKCS#8 (RFC 8018) with the
//! GM algorithms GmSSL uses (PBKDF2-HMAC-SM3, SM4-CBC) or the usual ones (HMAC-SHA1,
//! HMAC-SHA256, AES-CBC); SEC1 and PKCS#1.

use der::asn1::{AnyRef, ObjectIdentifier as Oid, OctetStringRef};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierRef;
use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::crypto::keys::{KeyAlg, PrivateKey};
use crate::crypto::sym::{self, SymAlg, SymMode};
use crate::crypto::{kdf, rng};
use crate::error::{Error, Result};

const PBES2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.13");
const PBKDF2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.12");
const HMAC_SHA1: Oid = Oid::new_unwrap("1.2.840.113549.2.7");
const HMAC_SHA224: Oid = Oid::new_unwrap("1.2.840.113549.2.8");
const HMAC_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.2.9");
const HMAC_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.2.10");
const HMAC_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.2.11");
/// HMAC-SM3 as GmSSL writes it in PBKDF2 parameters.
const HMAC_SM3: Oid = Oid::new_unwrap("1.2.156.10197.1.401.2");
const SM4_CBC: Oid = Oid::new_unwrap("1.2.156.10197.1.104.2");
const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");

/// The PBKDF2 iteration count for keys we write.
const WRITE_ITERATIONS: u32 = 65_536;
/// The most iterations we accept when reading (a hostile file cannot make us spin).
const MAX_ITERATIONS: u32 = 10_000_000;

#[derive(Sequence)]
struct EncryptedPrivateKeyInfo<'a> {
    algorithm: AlgorithmIdentifierRef<'a>,
    data: &'a OctetStringRef,
}

#[derive(Sequence)]
struct Pbes2Params<'a> {
    kdf: AlgorithmIdentifierRef<'a>,
    enc: AlgorithmIdentifierRef<'a>,
}

#[derive(Sequence)]
struct Pbkdf2Params<'a> {
    salt: &'a OctetStringRef,
    iterations: u32,
    #[asn1(optional = "true")]
    key_length: Option<u16>,
    #[asn1(optional = "true")]
    prf: Option<AlgorithmIdentifierRef<'a>>,
}

fn prf_of(oid: Oid) -> Result<HashAlg> {
    Ok(match oid {
        o if o == HMAC_SM3 => HashAlg::Sm3,
        o if o == HMAC_SHA1 => HashAlg::Sha1,
        o if o == HMAC_SHA224 => HashAlg::Sha224,
        o if o == HMAC_SHA256 => HashAlg::Sha256,
        o if o == HMAC_SHA384 => HashAlg::Sha384,
        o if o == HMAC_SHA512 => HashAlg::Sha512,
        o => return Err(Error::unsupported(format!("PBKDF2 PRF {o}"))),
    })
}

fn cipher_of(oid: Oid) -> Result<(SymAlg, usize)> {
    Ok(match oid {
        o if o == SM4_CBC => (SymAlg::Sm4, 16),
        o if o == AES128_CBC => (SymAlg::Aes, 16),
        o if o == AES192_CBC => (SymAlg::Aes, 24),
        o if o == AES256_CBC => (SymAlg::Aes, 32),
        o => return Err(Error::unsupported(format!("PBES2 cipher {o}"))),
    })
}

fn params<'a, T>(a: &AlgorithmIdentifierRef<'a>, what: &str) -> Result<T>
where
    T: der::Choice<'a> + der::DecodeValue<'a>,
    <T as der::DecodeValue<'a>>::Error: std::fmt::Display,
{
    a.parameters
        .ok_or_else(|| Error::invalid_data(format!("{what} without parameters")))?
        .decode_as::<T>()
        .map_err(|e| Error::invalid_data(format!("{what} parameters: {e}")))
}

/// Decrypts a DER EncryptedPrivateKeyInfo to the PKCS#8 PrivateKeyInfo DER inside.
pub fn decrypt_pkcs8(der: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let epki = EncryptedPrivateKeyInfo::from_der(der)
        .map_err(|e| Error::invalid_data(format!("EncryptedPrivateKeyInfo: {e}")))?;
    if epki.algorithm.oid != PBES2 {
        return Err(Error::unsupported(format!(
            "key encryption scheme {} (only PBES2)",
            epki.algorithm.oid
        )));
    }
    let p: Pbes2Params<'_> = params(&epki.algorithm, "PBES2")?;
    if p.kdf.oid != PBKDF2 {
        return Err(Error::unsupported(format!(
            "PBES2 KDF {} (only PBKDF2)",
            p.kdf.oid
        )));
    }
    let kp: Pbkdf2Params<'_> = params(&p.kdf, "PBKDF2")?;
    let prf = match &kp.prf {
        Some(a) => prf_of(a.oid)?,
        None => HashAlg::Sha1,
    };
    let (alg, key_len) = cipher_of(p.enc.oid)?;
    if let Some(kl) = kp.key_length
        && usize::from(kl) != key_len
    {
        return Err(Error::invalid_data(format!(
            "PBKDF2 key length {kl} does not match the cipher's {key_len}"
        )));
    }
    if kp.iterations == 0 || kp.iterations > MAX_ITERATIONS {
        return Err(Error::invalid_data(format!(
            "PBKDF2 iteration count {} out of range",
            kp.iterations
        )));
    }
    let iv: &OctetStringRef = params(&p.enc, "CBC")?;
    if iv.as_bytes().len() != 16 {
        return Err(Error::invalid_data("CBC IV is not 16 bytes"));
    }
    let key = kdf::pbkdf2(prf, password, kp.salt.as_bytes(), kp.iterations, key_len)?;
    let plain = sym::decrypt(
        alg,
        SymMode::CbcPad,
        &key,
        iv.as_bytes(),
        epki.data.as_bytes(),
    )
    .map_err(|e| match e {
        Error::DecryptFailed => Error::WrongPassword,
        other => other,
    })?;
    // A wrong password passes the padding check about once in 256 tries; the result then
    // is not a PrivateKeyInfo.
    if pkcs8::PrivateKeyInfoRef::from_der(&plain).is_err() {
        return Err(Error::WrongPassword);
    }
    Ok(plain)
}

/// Encrypts a PKCS#8 DER into PEM `ENCRYPTED PRIVATE KEY`.
pub(crate) fn encrypt_pkcs8_pem(
    alg: KeyAlg,
    pkcs8: &[u8],
    password: &[u8],
) -> Result<Zeroizing<String>> {
    let der = encrypt_pkcs8_der(alg, pkcs8, password)?;
    pem_rfc7468::encode_string("ENCRYPTED PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
        .map(Zeroizing::new)
        .map_err(|e| Error::internal(format!("PEM encoding: {e}")))
}

fn encrypt_pkcs8_der(alg: KeyAlg, pkcs8: &[u8], password: &[u8]) -> Result<Vec<u8>> {
    let (prf, prf_oid, sym_alg, enc_oid, key_len) = if alg == KeyAlg::Sm2 {
        (HashAlg::Sm3, HMAC_SM3, SymAlg::Sm4, SM4_CBC, 16usize)
    } else {
        (
            HashAlg::Sha256,
            HMAC_SHA256,
            SymAlg::Aes,
            AES256_CBC,
            32usize,
        )
    };
    let salt = rng::random_bytes(16)?;
    let iv = rng::random_bytes(16)?;
    let key = kdf::pbkdf2(prf, password, &salt, WRITE_ITERATIONS, key_len)?;
    let ct = sym::encrypt(sym_alg, SymMode::CbcPad, &key, &iv, pkcs8)?;

    let prf_alg = AlgorithmIdentifierRef {
        oid: prf_oid,
        parameters: if prf == HashAlg::Sm3 {
            None
        } else {
            Some(AnyRef::NULL)
        },
    };
    let kdf_params = Pbkdf2Params {
        salt: OctetStringRef::new(&salt)?,
        iterations: WRITE_ITERATIONS,
        key_length: if prf == HashAlg::Sm3 {
            u16::try_from(key_len).ok()
        } else {
            None
        },
        prf: Some(prf_alg),
    }
    .to_der()?;
    let iv_der = OctetStringRef::new(&iv)?.to_der()?;
    let pbes2 = Pbes2Params {
        kdf: AlgorithmIdentifierRef {
            oid: PBKDF2,
            parameters: Some(AnyRef::from_der(&kdf_params)?),
        },
        enc: AlgorithmIdentifierRef {
            oid: enc_oid,
            parameters: Some(AnyRef::from_der(&iv_der)?),
        },
    }
    .to_der()?;
    let epki = EncryptedPrivateKeyInfo {
        algorithm: AlgorithmIdentifierRef {
            oid: PBES2,
            parameters: Some(AnyRef::from_der(&pbes2)?),
        },
        data: OctetStringRef::new(&ct)?,
    };
    Ok(epki.to_der()?)
}

const PRIVATE_KEY_LABELS: &[&str] = &[
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "EC PRIVATE KEY",
    "RSA PRIVATE KEY",
];

fn begin(label: &str) -> Vec<u8> {
    format!("-----BEGIN {label}-----").into_bytes()
}

/// Splits PEM text into its BEGIN…END blocks.
fn pem_blocks(text: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.windows(BEGIN.len()).position(|w| w == BEGIN) {
        let from = &rest[start..];
        let Some(end) = from.windows(END.len()).position(|w| w == END) else {
            break;
        };
        // The END line runs to the next "-----" after its label.
        let after = &from[end + END.len()..];
        let Some(close) = after.windows(5).position(|w| w == b"-----") else {
            break;
        };
        let len = end + END.len() + close + 5;
        out.push(&from[..len]);
        rest = &from[len..];
    }
    out
}

fn need_password(password: Option<&[u8]>) -> Result<&[u8]> {
    password.ok_or_else(|| Error::invalid_arg("the key file is encrypted; a password is needed"))
}

/// Reads a private key file in any of the supported forms.
pub(crate) fn read_private_key(bytes: &[u8], password: Option<&[u8]>) -> Result<PrivateKey> {
    let text = bytes.trim_ascii();
    if text.starts_with(b"-----BEGIN") {
        // A file may hold several blocks (OpenSSL's `ecparam -genkey` writes
        // EC PARAMETERS first); use the first private-key block.
        let block = pem_blocks(text)
            .into_iter()
            .find(|b| PRIVATE_KEY_LABELS.iter().any(|l| b.starts_with(&begin(l))))
            .unwrap_or(text);
        let (label, der) =
            pem_rfc7468::decode_vec(block).map_err(|e| Error::invalid_data(format!("PEM: {e}")))?;
        let der = Zeroizing::new(der);
        return match label {
            "PRIVATE KEY" => PrivateKey::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                PrivateKey::from_pkcs8_der(&decrypt_pkcs8(&der, need_password(password)?)?)
            }
            "EC PRIVATE KEY" => PrivateKey::from_sec1_der(&der),
            "RSA PRIVATE KEY" => PrivateKey::from_pkcs1_der(&der),
            other => Err(Error::invalid_data(format!(
                "PEM label {other} is not a private key (PRIVATE KEY, ENCRYPTED PRIVATE KEY, \
                 EC PRIVATE KEY or RSA PRIVATE KEY)"
            ))),
        };
    }
    // DER: try each structure in turn; they differ from their first elements on.
    if pkcs8::PrivateKeyInfoRef::from_der(bytes).is_ok() {
        return PrivateKey::from_pkcs8_der(bytes);
    }
    if EncryptedPrivateKeyInfo::from_der(bytes).is_ok() {
        return PrivateKey::from_pkcs8_der(&decrypt_pkcs8(bytes, need_password(password)?)?);
    }
    if sec1::EcPrivateKey::from_der(bytes).is_ok() {
        return PrivateKey::from_sec1_der(bytes);
    }
    if crate::crypto::keys::RsaPrivateKeyDer::from_der(bytes).is_ok() {
        return PrivateKey::from_pkcs1_der(bytes);
    }
    Err(Error::invalid_data(
        "not a private key: expected PEM or DER PKCS#8, encrypted PKCS#8, SEC1 or PKCS#1",
    ))
}
