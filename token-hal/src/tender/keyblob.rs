//! GM/T 0016 ENVELOPEDKEYBLOB: how a CA's key-management centre (KMC) delivers the encryption
//! key pair of a dual-certificate user (SKF_ImportECCKeyPair).
//!
//! Layout (GM/T 0016-2012 §6.4.10, packed, ULONG = 32 bits in the host's byte order, which
//! is little-endian on every platform ukey builds for):
//!
//! | offset | field |
//! |---|---|
//! | 0 | Version = 1 |
//! | 4 | ulSymmAlgID: the symmetric algorithm, ECB mode (SGD_SM4_ECB = 0x401) |
//! | 8 | ulBits = 256 |
//! | 12 | cbEncryptedPriKey\[64\]: the 64-byte private-key field (d right-aligned), ECB-encrypted |
//! | 76 | PubKey: ECCPUBLICKEYBLOB (BitLen, X\[64\], Y\[64\]) of the encryption key |
//! | 208 | ECCCipherBlob: X\[64\], Y\[64\], HASH\[32\], CipherLen, Cipher: the symmetric key SM2-encrypted to the container's **signing** public key |
//!
//! The container's signing key unwraps the symmetric key inside the token; the encryption
//! private key is then installed in the container's encryption slot (an existing one is
//! retired, so old envelopes still decrypt). The C struct types live only in skf-sys; this
//! module reads and writes the bytes, and is what both the SKF face and `ukey key
//! import-enveloped` use.

use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

use crate::crypto::sym::{self, SymAlg, SymMode};
use crate::crypto::{DecMech, EncMech, KeyAlg, PrivateKey, PublicKey};
use crate::error::{Error, Result};
use crate::model::{KeyId, KeyRef, KeyUsage};
use crate::token::Application;

/// GM/T 0006 SGD_SM4_ECB, the only symmetric algorithm accepted in the blob.
pub const SGD_SM4_ECB: u32 = 0x0000_0401;
/// Offset of the ECCCIPHERBLOB inside the blob.
pub const CIPHER_OFFSET: usize = 208;
/// Length of an ECCCIPHERBLOB before its Cipher bytes.
pub const CIPHER_HEADER_LEN: usize = 164;
/// Largest CipherLen accepted (the symmetric key is 16 bytes; vendors pad to at most a block
/// or so; anything near this is not a key blob).
const MAX_CIPHER_LEN: usize = 256;

/// A decoded ENVELOPEDKEYBLOB. The encrypted private-key field is not secret by itself but
/// is zeroized anyway; nothing here is printed by `Debug`.
pub struct EnvelopedKeyBlob {
    /// Version (1).
    pub version: u32,
    /// ulSymmAlgID.
    pub sym_alg: u32,
    /// ulBits.
    pub bits: u32,
    /// cbEncryptedPriKey.
    pub encrypted_private: Zeroizing<[u8; 64]>,
    /// The encryption public key as 04‖x‖y (65 bytes).
    pub public_point: Vec<u8>,
    /// The symmetric key's SM2 ciphertext, C1‖C3‖C2 (C1 uncompressed).
    pub wrapped_key: Vec<u8>,
}

impl std::fmt::Debug for EnvelopedKeyBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopedKeyBlob")
            .field("version", &self.version)
            .field("sym_alg", &format_args!("{:#x}", self.sym_alg))
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// The 32-byte SM2 value of a 64-byte field, whose first 32 bytes must be zero.
fn sm2_field(f: &[u8]) -> Result<&[u8]> {
    if f.len() != 64 || f[..32].iter().any(|&b| b != 0) {
        return Err(Error::invalid_data(
            "an SM2 value in the key blob does not fit in 32 bytes",
        ));
    }
    Ok(&f[32..])
}

fn field64(v: &[u8]) -> Result<[u8; 64]> {
    if v.len() > 64 {
        return Err(Error::internal("value longer than its 64-byte field"));
    }
    let mut out = [0u8; 64];
    out[64 - v.len()..].copy_from_slice(v);
    Ok(out)
}

impl EnvelopedKeyBlob {
    /// Decodes a binary blob: 208 bytes, then the ECCCIPHERBLOB with CipherLen bytes of
    /// Cipher. Trailing bytes beyond that are refused (a blob of the wrong kind, or two).
    /// Checks the version (1), the bit length (256), the algorithm (SM4-ECB) and that the
    /// SM2 values fit in 32 bytes; the public point is checked to be on the curve.
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < CIPHER_OFFSET + CIPHER_HEADER_LEN {
            return Err(Error::invalid_data(format!(
                "an ENVELOPEDKEYBLOB has at least {} bytes, this has {}",
                CIPHER_OFFSET + CIPHER_HEADER_LEN,
                b.len()
            )));
        }
        let (version, sym_alg, bits) = (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8));
        if version != 1 {
            return Err(Error::invalid_data(format!(
                "ENVELOPEDKEYBLOB version {version}, expected 1"
            )));
        }
        if bits != 256 {
            return Err(Error::invalid_data(format!(
                "ENVELOPEDKEYBLOB of a {bits}-bit key; only 256-bit SM2 keys are supported"
            )));
        }
        if sym_alg != SGD_SM4_ECB {
            return Err(Error::unsupported(format!(
                "ENVELOPEDKEYBLOB symmetric algorithm {sym_alg:#x}; only SM4-ECB (0x401) is supported"
            )));
        }
        let pub_bits = u32_at(b, 76);
        if pub_bits != 256 {
            return Err(Error::invalid_data(format!(
                "ENVELOPEDKEYBLOB public key of {pub_bits} bits"
            )));
        }
        let mut public_point = vec![4u8];
        public_point.extend_from_slice(sm2_field(&b[80..144])?);
        public_point.extend_from_slice(sm2_field(&b[144..208])?);
        PublicKey::from_ec_point(KeyAlg::Sm2, &public_point).map_err(|_| {
            Error::invalid_data("ENVELOPEDKEYBLOB public key is not a point of SM2")
        })?;

        let c = &b[CIPHER_OFFSET..];
        let len = u32_at(c, 160) as usize;
        if len == 0 || len > MAX_CIPHER_LEN {
            return Err(Error::invalid_data(format!(
                "ENVELOPEDKEYBLOB wrapped key of {len} bytes"
            )));
        }
        let end = CIPHER_HEADER_LEN + len;
        if c.len() < end {
            return Err(Error::invalid_data(format!(
                "ENVELOPEDKEYBLOB truncated: {} bytes, {} needed",
                b.len(),
                CIPHER_OFFSET + end
            )));
        }
        if c.len() > end {
            return Err(Error::invalid_data(format!(
                "ENVELOPEDKEYBLOB has {} bytes after its end",
                c.len() - end
            )));
        }
        let mut wrapped_key = vec![4u8];
        wrapped_key.extend_from_slice(sm2_field(&c[..64])?);
        wrapped_key.extend_from_slice(sm2_field(&c[64..128])?);
        wrapped_key.extend_from_slice(&c[128..160]);
        wrapped_key.extend_from_slice(&c[CIPHER_HEADER_LEN..end]);

        let mut encrypted_private = Zeroizing::new([0u8; 64]);
        encrypted_private.copy_from_slice(&b[12..76]);
        Ok(Self {
            version,
            sym_alg,
            bits,
            encrypted_private,
            public_point,
            wrapped_key,
        })
    }

    /// Decodes a blob given as a file: the binary blob, or its Base64 (whitespace and line
    /// breaks allowed, as KMC web services hand it out).
    pub fn parse_file(bytes: &[u8]) -> Result<Self> {
        if bytes.len() >= 4 && u32_at(bytes, 0) == 1 {
            return Self::parse(bytes);
        }
        let text: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let text = std::str::from_utf8(&text)
            .map_err(|_| Error::invalid_data("neither a binary ENVELOPEDKEYBLOB nor Base64"))?;
        let bin = Base64::decode_vec(text)
            .map_err(|_| Error::invalid_data("neither a binary ENVELOPEDKEYBLOB nor Base64"))?;
        Self::parse(&bin)
    }

    /// The binary blob (host byte order).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        if self.public_point.len() != 65 || self.wrapped_key.len() < 97 {
            return Err(Error::internal("malformed EnvelopedKeyBlob"));
        }
        let mut out = Vec::with_capacity(CIPHER_OFFSET + CIPHER_HEADER_LEN + 16);
        out.extend_from_slice(&self.version.to_ne_bytes());
        out.extend_from_slice(&self.sym_alg.to_ne_bytes());
        out.extend_from_slice(&self.bits.to_ne_bytes());
        out.extend_from_slice(&*self.encrypted_private);
        out.extend_from_slice(&256u32.to_ne_bytes());
        out.extend_from_slice(&field64(&self.public_point[1..33])?);
        out.extend_from_slice(&field64(&self.public_point[33..65])?);
        let w = &self.wrapped_key;
        out.extend_from_slice(&field64(&w[1..33])?);
        out.extend_from_slice(&field64(&w[33..65])?);
        out.extend_from_slice(&w[65..97]);
        let c2 = &w[97..];
        let len = u32::try_from(c2.len()).map_err(|_| Error::internal("wrapped key length"))?;
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(c2);
        Ok(out)
    }

    /// What a KMC does: wraps the SM2 encryption key `enc` for the token whose container
    /// has the signing public key `sign_pub`, under a fresh random SM4 key.
    pub fn wrap(enc: &PrivateKey, sign_pub: &PublicKey) -> Result<Self> {
        if enc.alg() != KeyAlg::Sm2 || sign_pub.alg() != KeyAlg::Sm2 {
            return Err(Error::KeyType(
                "an ENVELOPEDKEYBLOB carries an SM2 key wrapped to an SM2 key".into(),
            ));
        }
        let d = enc
            .raw_private_value()
            .ok_or_else(|| Error::internal("SM2 key without a scalar"))?;
        let mut field = Zeroizing::new([0u8; 64]);
        field[64 - d.len()..].copy_from_slice(&d);
        let k = Zeroizing::new(crate::crypto::rng::random_bytes(16)?);
        let ct = sym::encrypt(SymAlg::Sm4, SymMode::Ecb, &k, &[], &*field)?;
        let mut encrypted_private = Zeroizing::new([0u8; 64]);
        encrypted_private.copy_from_slice(&ct);
        let public_point = enc
            .public_key()?
            .ec_point()
            .ok_or_else(|| Error::internal("SM2 public key without a point"))?;
        Ok(Self {
            version: 1,
            sym_alg: SGD_SM4_ECB,
            bits: 256,
            encrypted_private,
            public_point,
            wrapped_key: sign_pub.encrypt(&EncMech::Sm2, &k)?,
        })
    }

    /// The encryption public key.
    pub fn public_key(&self) -> Result<PublicKey> {
        PublicKey::from_ec_point(KeyAlg::Sm2, &self.public_point)
    }

    /// Recovers the encryption private key, given a way to SM2-decrypt the wrapped symmetric
    /// key (the token's signing key). Checks that the key matches the blob's public key.
    pub fn unwrap_with<F>(&self, decrypt_wrapped: F) -> Result<PrivateKey>
    where
        F: FnOnce(&[u8]) -> Result<Zeroizing<Vec<u8>>>,
    {
        let k = decrypt_wrapped(&self.wrapped_key)?;
        if k.len() != 16 {
            return Err(Error::invalid_data(format!(
                "the wrapped key is {} bytes; SM4 needs 16",
                k.len()
            )));
        }
        let field = sym::decrypt(SymAlg::Sm4, SymMode::Ecb, &k, &[], &*self.encrypted_private)?;
        let d = sm2_field(&field)?;
        let key = PrivateKey::from_sm2_scalar(d)
            .map_err(|_| Error::invalid_data("the unwrapped private key is not an SM2 scalar"))?;
        if key.public_key()? != self.public_key()? {
            return Err(Error::invalid_data(
                "the unwrapped private key does not match the blob's public key \
                 (was the blob made for this container's signing key?)",
            ));
        }
        Ok(key)
    }

    /// Installs the encryption key pair in `container`: the symmetric key is unwrapped with
    /// the container's SM2 signing key inside the token, and an existing encryption pair is
    /// retired (still usable for decryption). Needs user login. Returns the new key's id.
    pub fn import(&self, app: &dyn Application, container: &str) -> Result<KeyId> {
        let sign = app.public_key(container, KeyUsage::Sign)?;
        if sign.alg() != KeyAlg::Sm2 {
            return Err(Error::KeyType(format!(
                "container {container:?} has a {:?} signing key; an ENVELOPEDKEYBLOB needs SM2",
                sign.alg()
            )));
        }
        let key = self.unwrap_with(|w| {
            app.decrypt(&KeyRef::active(container, KeyUsage::Sign), &DecMech::Sm2, w)
                .map_err(|e| match e {
                    Error::DecryptFailed => Error::invalid_data(
                        "the blob's key is not wrapped to this container's signing key",
                    ),
                    e => e,
                })
        })?;
        app.import_key(container, KeyUsage::Encrypt, &key, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_parse_unwrap_round_trip() {
        let sign = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let enc = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let blob = EnvelopedKeyBlob::wrap(&enc, &sign.public_key().unwrap()).unwrap();
        let bytes = blob.to_bytes().unwrap();
        assert_eq!(bytes.len(), 388);
        let back = EnvelopedKeyBlob::parse(&bytes).unwrap();
        assert_eq!(back.to_bytes().unwrap(), bytes);
        let b64 = Base64::encode_string(&bytes);
        let wrapped: String = b64
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let from_text = EnvelopedKeyBlob::parse_file(wrapped.as_bytes()).unwrap();
        let k = from_text
            .unwrap_with(|w| sign.decrypt(&DecMech::Sm2, w))
            .unwrap();
        assert_eq!(k.public_key().unwrap(), enc.public_key().unwrap());
        // The wrong signing key cannot unwrap it.
        let other = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        assert!(
            back.unwrap_with(|w| other.decrypt(&DecMech::Sm2, w))
                .is_err()
        );
    }

    #[test]
    fn malformed_blobs_are_refused() {
        let sign = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let enc = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let bytes = EnvelopedKeyBlob::wrap(&enc, &sign.public_key().unwrap())
            .unwrap()
            .to_bytes()
            .unwrap();
        assert!(EnvelopedKeyBlob::parse(&bytes[..bytes.len() - 1]).is_err());
        assert!(EnvelopedKeyBlob::parse(&[bytes.clone(), vec![0]].concat()).is_err());
        let mut v = bytes.clone();
        v[0] = 2;
        assert!(EnvelopedKeyBlob::parse(&v).is_err());
        let mut a = bytes.clone();
        a[4] = 0x02; // SGD_SM4_CBC
        assert!(matches!(
            EnvelopedKeyBlob::parse(&a),
            Err(Error::Unsupported(_))
        ));
        let mut p = bytes.clone();
        p[100] ^= 1; // public key off the curve
        assert!(EnvelopedKeyBlob::parse(&p).is_err());
        let mut t = bytes.clone();
        t[20] ^= 1; // encrypted private key tampered: mismatch with the public key
        let blob = EnvelopedKeyBlob::parse(&t).unwrap();
        assert!(
            blob.unwrap_with(|w| sign.decrypt(&DecMech::Sm2, w))
                .is_err()
        );
        assert!(EnvelopedKeyBlob::parse_file(b"not base64 !!").is_err());
    }
}
