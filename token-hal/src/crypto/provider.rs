//! The provider that the free functions and key types dispatch through.
//!
//! In the spirit of rustls's `CryptoProvider`: a [`CryptoProvider`] is a plain struct of
//! `&'static dyn` per-family implementations. The process uses one of them, the
//! default ([`DEFAULT_PROVIDER`]) unless another was installed with [`install_default`]
//! before first use. A faster SM2/SM3/SM4 backend replaces one field and nothing else.
//!
//! The default provider uses ukey-simd's kernels for SM4, RustCrypto for SM2 and SM3
//! (RustCrypto SM4 stays as the portable reference, [`REFERENCE_SM4`]) and aws-lc-rs
//! for SHA, HMAC, AES-GCM, ECDSA and RSA.

use std::fmt;
use std::sync::OnceLock;

use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::crypto::keys::{DecMech, EncMech, KeyAlg, PublicKey, SignMech};
use crate::crypto::sym::{Direction, SymAlg, SymMode};
use crate::error::Result;

/// A streaming digest or MAC computation.
pub trait HashContext: Send {
    /// Absorbs more data.
    fn update(&mut self, data: &[u8]);
    /// Finishes and returns the digest or MAC.
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// Digests, HMAC and PBKDF2.
pub trait HashProvider: Send + Sync + fmt::Debug {
    /// Starts a digest.
    fn digest_context(&self, alg: HashAlg) -> Box<dyn HashContext>;
    /// Starts an HMAC with `key`.
    fn hmac_context(&self, alg: HashAlg, key: &[u8]) -> Box<dyn HashContext>;
    /// PBKDF2 with HMAC over `prf`, filling `out`.
    fn pbkdf2(&self, prf: HashAlg, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]);
}

/// Operating-system randomness.
pub trait RngProvider: Send + Sync + fmt::Debug {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<()>;
}

/// The AEAD that seals secrets at rest (AES-256-GCM, 96-bit nonce, 128-bit tag).
pub trait AeadProvider: Send + Sync + fmt::Debug {
    /// Encrypts `in_out` in place and returns the 16-byte tag.
    fn seal_in_place(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; 16]>;
    /// Decrypts `in_out` in place after checking `tag`; `Error::DecryptFailed` otherwise.
    fn open_in_place(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<()>;
}

/// A streaming symmetric cipher instance (see [`crate::crypto::sym::SymCipher`]).
pub trait SymCipherOps: Send {
    /// Processes `input`, appending whatever output is ready to `out`.
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()>;
    /// Finishes: handles padding or checks the tag, appending the rest to `out`.
    fn finalize(self: Box<Self>, out: &mut Vec<u8>) -> Result<()>;
    /// The exact length of `update(input)` + `finalize` output for an input of
    /// `input_len` bytes, when it is known without processing the data; `None` when it
    /// depends on the data (padded decryption) or the input would be rejected.
    fn single_part_len(&self, _input_len: usize) -> Option<usize> {
        None
    }
    /// `update(input)` + `finalize` with the output written to the front of `out`, which
    /// must hold [`Self::single_part_len`] bytes (when that is known); returns the output
    /// length. The default goes through a zeroized temporary buffer.
    fn finish_into(self: Box<Self>, input: &[u8], out: &mut [u8]) -> Result<usize> {
        finish_via_vec(self, input, out)
    }
}

/// `update` + `finalize` into a zeroized temporary, copied to the front of `out`.
pub(crate) fn finish_via_vec<T: SymCipherOps + ?Sized>(
    mut ops: Box<T>,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize> {
    let mut tmp = Zeroizing::new(Vec::with_capacity(input.len() + 16));
    ops.update(input, &mut tmp)?;
    ops.finalize(&mut tmp)?;
    out.get_mut(..tmp.len())
        .ok_or_else(|| crate::error::Error::invalid_arg("output buffer too small"))?
        .copy_from_slice(&tmp);
    Ok(tmp.len())
}

/// A streaming MAC over a block cipher (CMAC).
pub trait MacOps: Send {
    /// Absorbs more data.
    fn update(&mut self, data: &[u8]);
    /// Finishes and returns the full-length MAC.
    fn finish(self: Box<Self>) -> Zeroizing<Vec<u8>>;
}

/// A key's schedule computed once by a provider ([`SymProvider::prepare`]): the ciphers
/// started from it skip the key expansion (and for GCM the GHASH key powers). Zeroized
/// when dropped, like the key.
pub trait PreparedSym: Send + Sync {
    /// As [`SymProvider::cipher`] with this key.
    fn cipher(
        &self,
        mode: SymMode,
        dir: Direction,
        iv: &[u8],
        aad: &[u8],
    ) -> Result<Box<dyn SymCipherOps>>;
    /// As [`SymProvider::gcm`] with this key.
    fn gcm(
        &self,
        dir: Direction,
        nonce: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Box<dyn SymCipherOps>>;
}

/// Block ciphers and their modes.
pub trait SymProvider: Send + Sync + fmt::Debug {
    /// The key's schedule for repeated use, when this provider keeps one (`None`: each
    /// cipher starts from the key bytes).
    fn prepare(&self, alg: SymAlg, key: &[u8]) -> Result<Option<Box<dyn PreparedSym>>> {
        let _ = (alg, key);
        Ok(None)
    }
    /// Starts a cipher. For GCM, `iv` is the nonce and `aad` the associated data; the tag
    /// (16 bytes) is appended on encryption and expected at the end on decryption.
    fn cipher(
        &self,
        alg: SymAlg,
        mode: SymMode,
        dir: Direction,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
    ) -> Result<Box<dyn SymCipherOps>>;
    /// Encrypts one block in place (ECB, no state).
    fn encrypt_block(&self, alg: SymAlg, key: &[u8], block: &mut [u8]) -> Result<()>;
    /// Starts GCM with any nonce length (1 byte and up) and a `tag_len`-byte tag
    /// (4..=16), appended on encryption and expected at the end on decryption.
    fn gcm(
        &self,
        alg: SymAlg,
        dir: Direction,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Box<dyn SymCipherOps>> {
        let _ = (dir, key, nonce, aad, tag_len);
        Err(crate::error::Error::unsupported(format!(
            "GCM with {alg:?} in this provider"
        )))
    }
    /// Starts CMAC (NIST SP 800-38B) with `key`.
    fn cmac(&self, alg: SymAlg, key: &[u8]) -> Result<Box<dyn MacOps>> {
        let _ = key;
        Err(crate::error::Error::unsupported(format!(
            "CMAC with {alg:?} in this provider"
        )))
    }
    /// AES key wrap (RFC 3394 when `pad` is false, RFC 5649 when true).
    fn aes_key_wrap(&self, kek: &[u8], key: &[u8], pad: bool) -> Result<Vec<u8>>;
    /// AES key unwrap (RFC 3394 / RFC 5649).
    fn aes_key_unwrap(&self, kek: &[u8], wrapped: &[u8], pad: bool) -> Result<Zeroizing<Vec<u8>>>;
}

/// A loaded private key: the backend's parsed form, ready to use.
pub trait PrivateKeyOps: Send + Sync {
    /// The matching SubjectPublicKeyInfo DER, in a buffer the public key's holders share.
    fn public_spki(&self) -> Result<std::sync::Arc<[u8]>>;
    /// Signs (EC: raw r‖s).
    fn sign(&self, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>>;
    /// Decrypts.
    fn decrypt(&self, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    /// The raw private value as [`crate::crypto::keys::PrivateKey::raw_private_value`]
    /// gives it, when the backend holds it in that form (EC and SM2: the big-endian
    /// scalar d, field-length). `None` makes the caller read it from the PKCS#8.
    fn raw_private(&self) -> Option<Zeroizing<Vec<u8>>> {
        None
    }
    /// ECDH with the peer's uncompressed point; the shared x-coordinate (X25519: the
    /// peer's raw u-coordinate and the raw shared secret). Backends that do not offer
    /// it answer `Unsupported`; an invalid peer point is `InvalidData`.
    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let _ = peer_point;
        Err(crate::error::Error::unsupported("ECDH with this key type"))
    }
}

/// A generated key: its PKCS#8 PrivateKeyInfo DER, and the key loaded when the provider
/// hands it over ([`AsymProvider::generate_loaded`]).
pub type Generated = (Zeroizing<Vec<u8>>, Option<Box<dyn PrivateKeyOps>>);

/// One family of asymmetric keys (SM2, ECDSA, Edwards/Montgomery, RSA).
pub trait AsymProvider: Send + Sync + fmt::Debug {
    /// Generates a key and returns its PKCS#8 PrivateKeyInfo DER.
    fn generate(&self, alg: KeyAlg) -> Result<Zeroizing<Vec<u8>>>;
    /// Generates a key: its PKCS#8 PrivateKeyInfo DER and, where the provider can hand
    /// over the key it has just made, that key loaded (so the caller need not parse the
    /// provider's own output and recompute its public point). By default, `None`. With
    /// a loaded key, the PKCS#8 must already be in the canonical form
    /// `keys::canonical_pkcs8` gives (it is stored as it is).
    fn generate_loaded(&self, alg: KeyAlg) -> Result<Generated> {
        Ok((self.generate(alg)?, None))
    }
    /// Loads a PKCS#8 PrivateKeyInfo DER that [`crate::crypto::keys`] already checked
    /// to be of `alg` and normalised.
    fn load_private(&self, alg: KeyAlg, pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>>;
    /// Verifies a signature.
    fn verify(&self, key: &PublicKey, mech: &SignMech, data: &[u8], sig: &[u8]) -> Result<()>;
    /// Encrypts to a public key.
    fn encrypt(&self, key: &PublicKey, mech: &EncMech, data: &[u8]) -> Result<Vec<u8>>;
}

/// Every algorithm family token-hal uses.
#[derive(Debug)]
pub struct CryptoProvider {
    /// Digests, HMAC, PBKDF2 (SM3 and SHA-*).
    pub hash: &'static dyn HashProvider,
    /// Randomness.
    pub rng: &'static dyn RngProvider,
    /// At-rest AEAD.
    pub aead: &'static dyn AeadProvider,
    /// SM4 block cipher and modes.
    pub sm4: &'static dyn SymProvider,
    /// AES block cipher, modes and key wrap.
    pub aes: &'static dyn SymProvider,
    /// SM2 keys.
    pub sm2: &'static dyn AsymProvider,
    /// ECDSA (and ECDH) P-256/P-384/P-521 keys.
    pub ec: &'static dyn AsymProvider,
    /// Ed25519, Ed448 and X25519 keys.
    pub edwards: &'static dyn AsymProvider,
    /// RSA keys.
    pub rsa: &'static dyn AsymProvider,
}

impl CryptoProvider {
    /// The asymmetric family for `alg`.
    pub fn asym(&self, alg: KeyAlg) -> &'static dyn AsymProvider {
        match alg {
            KeyAlg::Sm2 => self.sm2,
            KeyAlg::EcP256 | KeyAlg::EcP384 | KeyAlg::EcP521 => self.ec,
            KeyAlg::Ed25519 | KeyAlg::Ed448 | KeyAlg::X25519 => self.edwards,
            KeyAlg::Rsa(_) => self.rsa,
        }
    }
    /// The symmetric family for `alg`.
    pub fn sym(&self, alg: SymAlg) -> &'static dyn SymProvider {
        match alg {
            SymAlg::Sm4 => self.sm4,
            SymAlg::Aes => self.aes,
        }
    }
}

/// The default provider: SM2 on the specialised curve arithmetic of
/// `backend::sm2fast` (RustCrypto's `sm2` stays as the portable reference in
/// `backend::sm2`), ukey-simd's SM4 kernels (GFNI/AVX-512, GFNI/AVX2,
/// AES-NI/AVX2 or portable, chosen at run time), RustCrypto for SM3 and the AES modes
/// (AES-NI where the CPU has it), aws-lc-rs for SHA, HMAC-SHA, AES-GCM at rest, ECDSA
/// and RSA.
pub static DEFAULT_PROVIDER: CryptoProvider = CryptoProvider {
    hash: &super::backend::hash::DefaultHash,
    rng: &super::backend::OsRng,
    aead: &super::backend::awslc::AwsLcAead,
    sm4: &super::backend::sm4fast::FastSm4,
    aes: &super::backend::symmetric::RustCryptoAes,
    sm2: &super::backend::sm2fast::FastSm2,
    ec: &super::backend::awslc::AwsLcEcdsa,
    edwards: &super::backend::edwards::EdwardsBackend,
    rsa: &super::backend::rsa::RsaBackend,
};

/// The portable SM4 reference (RustCrypto `sm4` with the `cbc`, `ctr`, `cfb-mode`, `ofb`,
/// `aes-gcm` and `cmac` crates) that the default's SM4 is tested and benchmarked against.
pub static REFERENCE_SM4: &dyn SymProvider = &super::backend::symmetric::RustCryptoSm4;

/// The portable reference SM2 implementation (RustCrypto `sm2` arithmetic), for
/// differential tests and benchmarks; [`DEFAULT_PROVIDER`] uses the fast one.
pub static REFERENCE_SM2: &dyn AsymProvider = &super::backend::sm2::RustCryptoSm2;

static INSTALLED: OnceLock<&'static CryptoProvider> = OnceLock::new();

/// The process-wide provider: the installed one, else [`DEFAULT_PROVIDER`].
pub fn provider() -> &'static CryptoProvider {
    INSTALLED.get_or_init(|| &DEFAULT_PROVIDER)
}

/// Installs `p` as the process-wide provider. Fails (returning the one in use) if a
/// provider was already installed or used.
pub fn install_default(
    p: &'static CryptoProvider,
) -> std::result::Result<(), &'static CryptoProvider> {
    INSTALLED.set(p).map_err(|_| provider())
}
