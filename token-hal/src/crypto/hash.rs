//! Digests and HMAC: SM3, SHA-1/224/256/384/512, and MD5 (legacy, for PKCS#11
//! clients such as pkcs11-tool that still test it; never used by token-hal itself).

use serde::{Deserialize, Serialize};

use crate::crypto::provider::{HashContext, provider};

/// A hash algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashAlg {
    /// SM3 (GB/T 32905).
    Sm3,
    /// SHA-1.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// MD5 (RFC 1321). Legacy: offered to PKCS#11 clients only.
    Md5,
}

impl HashAlg {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sm3 | Self::Sha256 => 32,
            Self::Sha1 => 20,
            Self::Sha224 => 28,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
            Self::Md5 => 16,
        }
    }
}

/// One-shot digest.
pub fn digest(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    let mut h = Hasher::new(alg);
    h.update(data);
    h.finish()
}

impl HashAlg {
    /// The internal block length in bytes (HMAC's B).
    pub fn block_len(self) -> usize {
        match self {
            Self::Sha384 | Self::Sha512 => 128,
            _ => 64,
        }
    }
}

/// The SM3 fast path: ukey-simd's streaming hasher (the same kernels the provider's SM3
/// uses), with no allocation and no dynamic dispatch, for hot internal paths such as
/// SM2's Z and e = SM3(Z ‖ M). `Clone` forks a midstate; its state is zeroized on drop.
pub use ukey_simd::sm3::Sm3;

/// One-shot SM3 into a fixed array (no allocation).
pub fn sm3(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data)
}

/// Hashes many independent messages at once, `out[i] = SM3(msgs[i])`: 16 lanes with
/// AVX-512, 8 with AVX2, one after another otherwise. For batches of small inputs (Z
/// values, certificate fingerprints, many small files). `Error::InvalidArgument` (and
/// nothing written) when `out` does not have one slot per message.
pub fn sm3_many(msgs: &[&[u8]], out: &mut [[u8; 32]]) -> crate::Result<()> {
    ukey_simd::sm3::sm3_many(msgs, out).map_err(|e| crate::Error::invalid_arg(e.to_string()))
}

/// One-shot HMAC.
pub fn hmac(alg: HashAlg, key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = Hasher::new_hmac(alg, key);
    h.update(data);
    h.finish()
}

/// Constant-time check of an HMAC; `Error::SignatureInvalid` when it does not match.
pub fn hmac_verify(alg: HashAlg, key: &[u8], data: &[u8], mac: &[u8]) -> crate::Result<()> {
    use subtle::ConstantTimeEq;
    let want = hmac(alg, key, data);
    if want.len() == mac.len() && bool::from(want.ct_eq(mac)) {
        Ok(())
    } else {
        Err(crate::Error::SignatureInvalid)
    }
}

/// A streaming digest or HMAC.
pub struct Hasher {
    alg: HashAlg,
    inner: Box<dyn HashContext>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hasher({:?})", self.alg)
    }
}

impl Hasher {
    /// Starts a digest.
    pub fn new(alg: HashAlg) -> Self {
        Self {
            alg,
            inner: provider().hash.digest_context(alg),
        }
    }
    /// Starts an HMAC.
    pub fn new_hmac(alg: HashAlg, key: &[u8]) -> Self {
        Self {
            alg,
            inner: provider().hash.hmac_context(alg, key),
        }
    }
    /// The algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }
    /// Absorbs data.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }
    /// Finishes.
    pub fn finish(self) -> Vec<u8> {
        self.inner.finish()
    }
}

/// The DER prefix of a PKCS#1 v1.5 DigestInfo for `h` (RFC 8017 §9.2 note 1; the SM3
/// OID 1.2.156.10197.1.401 as GM/T 0010 uses it).
pub fn digest_info_prefix(h: HashAlg) -> &'static [u8] {
    match h {
        HashAlg::Md5 => &[
            0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05,
            0x05, 0x00, 0x04, 0x10,
        ],
        HashAlg::Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        HashAlg::Sha224 => &[
            0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x04, 0x05, 0x00, 0x04, 0x1c,
        ],
        HashAlg::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlg::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlg::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        HashAlg::Sm3 => &[
            0x30, 0x30, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11,
            0x05, 0x00, 0x04, 0x20,
        ],
    }
}
