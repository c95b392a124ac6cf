//! Symmetric ciphers: SM4 and AES in ECB, CBC, CBC-PAD, CFB, OFB, CTR, GCM; CBC-MAC;
//! AES key wrap (RFC 3394 / 5649).
//!
//! [`SymCipher`] streams: feed any amount to [`SymCipher::update`], then call
//! [`SymCipher::finalize`], which handles PKCS#7 padding or the GCM tag. The one-shot
//! functions ([`encrypt`], [`decrypt`]) are built on it. Key schedules are zeroized on drop.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::provider::{SymCipherOps, provider};
use crate::error::{Error, Result};

/// A block cipher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SymAlg {
    /// SM4 (GB/T 32907), 128-bit key.
    Sm4,
    /// AES (FIPS-197) with a 128-, 192- or 256-bit key.
    Aes,
}

impl SymAlg {
    /// Block length in bytes.
    pub fn block_len(self) -> usize {
        16
    }
    /// Whether `len` is an acceptable key length.
    pub fn key_len_ok(self, len: usize) -> bool {
        match self {
            Self::Sm4 => len == 16,
            Self::Aes => matches!(len, 16 | 24 | 32),
        }
    }
}

/// A mode of operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SymMode {
    /// ECB, input a multiple of the block size.
    Ecb,
    /// ECB with PKCS#7 padding.
    EcbPad,
    /// CBC, input a multiple of the block size.
    Cbc,
    /// CBC with PKCS#7 padding.
    CbcPad,
    /// CFB with 128-bit feedback.
    Cfb,
    /// OFB.
    Ofb,
    /// CTR with the IV as the initial 128-bit big-endian counter block.
    Ctr,
    /// GCM with a nonce of any length (1..=65536 bytes; 12 is the fast path) as IV and
    /// a 16-byte tag; [`SymCipher::new_gcm`] takes other tag lengths.
    Gcm,
}

impl SymMode {
    /// Whether the mode takes an IV (GCM takes a nonce).
    pub fn needs_iv(self) -> bool {
        !matches!(self, Self::Ecb | Self::EcbPad)
    }
}

/// Encrypt or decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
}

/// The longest GCM nonce accepted (bytes). SP 800-38D allows up to 2^64 bits; PKCS#11
/// callers use 12 and, rarely, a few dozen.
pub const GCM_MAX_NONCE: usize = 1 << 16;

pub(crate) fn check_key_iv(alg: SymAlg, mode: SymMode, key: &[u8], iv: &[u8]) -> Result<()> {
    if !alg.key_len_ok(key.len()) {
        return Err(Error::invalid_arg(format!(
            "{alg:?} key of {} bytes is not a valid length",
            key.len()
        )));
    }
    match mode {
        SymMode::Ecb | SymMode::EcbPad => {
            if !iv.is_empty() {
                return Err(Error::invalid_arg("ECB takes no IV"));
            }
        }
        SymMode::Gcm => {
            if iv.is_empty() || iv.len() > GCM_MAX_NONCE {
                return Err(Error::invalid_arg(format!(
                    "GCM nonce must be 1..={GCM_MAX_NONCE} bytes, got {}",
                    iv.len()
                )));
            }
        }
        _ => {
            if iv.len() != 16 {
                return Err(Error::invalid_arg(format!(
                    "{mode:?} IV must be 16 bytes, got {}",
                    iv.len()
                )));
            }
        }
    }
    Ok(())
}

/// A symmetric key with its schedule computed once, as a key handle keeps it: every
/// cipher started from it ([`Self::cipher`], [`Self::gcm`]) skips the key expansion and,
/// for GCM, the GHASH key powers. The key bytes and the schedule are zeroized on drop.
pub struct SymKey {
    alg: SymAlg,
    key: Zeroizing<Vec<u8>>,
    prepared: Option<Box<dyn crate::crypto::provider::PreparedSym>>,
}

impl fmt::Debug for SymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SymKey({:?}, {} bytes)", self.alg, self.key.len())
    }
}

impl SymKey {
    /// Checks `key`'s length for `alg` and prepares it.
    pub fn new(alg: SymAlg, key: &[u8]) -> Result<Self> {
        if !alg.key_len_ok(key.len()) {
            return Err(Error::invalid_arg(format!(
                "{alg:?} key of {} bytes is not a valid length",
                key.len()
            )));
        }
        Ok(Self {
            alg,
            key: Zeroizing::new(key.to_vec()),
            prepared: provider().sym(alg).prepare(alg, key)?,
        })
    }
    /// The algorithm.
    pub fn alg(&self) -> SymAlg {
        self.alg
    }
    /// [`SymCipher::new_with_aad`] with this key.
    pub fn cipher(
        &self,
        mode: SymMode,
        dir: Direction,
        iv: &[u8],
        aad: &[u8],
    ) -> Result<SymCipher> {
        let Some(p) = &self.prepared else {
            return SymCipher::new_with_aad(self.alg, mode, dir, &self.key, iv, aad);
        };
        check_cipher_args(self.alg, mode, &self.key, iv, aad)?;
        Ok(SymCipher {
            alg: self.alg,
            mode,
            dir,
            inner: p.cipher(mode, dir, iv, aad)?,
        })
    }
    /// [`SymCipher::new_gcm`] with this key.
    pub fn gcm(
        &self,
        dir: Direction,
        nonce: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<SymCipher> {
        let Some(p) = &self.prepared else {
            return SymCipher::new_gcm(self.alg, dir, &self.key, nonce, aad, tag_len);
        };
        check_gcm_args(self.alg, &self.key, nonce, tag_len)?;
        Ok(SymCipher {
            alg: self.alg,
            mode: SymMode::Gcm,
            dir,
            inner: p.gcm(dir, nonce, aad, tag_len)?,
        })
    }
}

/// The checks of [`SymCipher::new_with_aad`], shared with [`SymKey::cipher`].
fn check_cipher_args(alg: SymAlg, mode: SymMode, key: &[u8], iv: &[u8], aad: &[u8]) -> Result<()> {
    check_key_iv(alg, mode, key, iv)?;
    if mode != SymMode::Gcm && !aad.is_empty() {
        return Err(Error::invalid_arg("only GCM takes associated data"));
    }
    Ok(())
}

/// The checks of [`SymCipher::new_gcm`], shared with [`SymKey::gcm`].
fn check_gcm_args(alg: SymAlg, key: &[u8], nonce: &[u8], tag_len: usize) -> Result<()> {
    check_key_iv(alg, SymMode::Gcm, key, nonce)?;
    check_tag_len(tag_len)
}

/// A GCM tag length the ciphers take (4 to 16 bytes; PKCS#11 `ulTagBits` / 8).
pub(crate) fn check_tag_len(tag_len: usize) -> Result<()> {
    if !(4..=16).contains(&tag_len) {
        return Err(Error::invalid_arg(format!(
            "GCM tag of {tag_len} bytes (4 to 16 supported)"
        )));
    }
    Ok(())
}

/// A streaming cipher (encryption or decryption in one mode).
pub struct SymCipher {
    alg: SymAlg,
    mode: SymMode,
    dir: Direction,
    inner: Box<dyn SymCipherOps>,
}

impl fmt::Debug for SymCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SymCipher({:?}, {:?}, {:?})",
            self.alg, self.mode, self.dir
        )
    }
}

impl SymCipher {
    /// Starts a cipher. `iv` is empty for ECB and the nonce for GCM.
    pub fn new(alg: SymAlg, mode: SymMode, dir: Direction, key: &[u8], iv: &[u8]) -> Result<Self> {
        Self::new_with_aad(alg, mode, dir, key, iv, &[])
    }
    /// Starts a cipher with GCM associated data (ignored by the other modes; must be empty).
    pub fn new_with_aad(
        alg: SymAlg,
        mode: SymMode,
        dir: Direction,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
    ) -> Result<Self> {
        check_cipher_args(alg, mode, key, iv, aad)?;
        let inner = provider().sym(alg).cipher(alg, mode, dir, key, iv, aad)?;
        Ok(Self {
            alg,
            mode,
            dir,
            inner,
        })
    }
    /// Starts GCM with a `tag_len`-byte tag (4..=16; PKCS#11 `ulTagBits` / 8) and any
    /// nonce length (1..=[`GCM_MAX_NONCE`] bytes). Encryption appends the tag in
    /// [`Self::finalize`]; decryption expects it at the end of the input, holds all
    /// output back until then, and gives `Error::DecryptFailed` on a wrong tag.
    pub fn new_gcm(
        alg: SymAlg,
        dir: Direction,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Self> {
        check_gcm_args(alg, key, nonce, tag_len)?;
        let inner = provider()
            .sym(alg)
            .gcm(alg, dir, key, nonce, aad, tag_len)?;
        Ok(Self {
            alg,
            mode: SymMode::Gcm,
            dir,
            inner,
        })
    }
    /// The exact output length of a single-part run ([`Self::finish_into`]) over
    /// `input_len` bytes, when it is known before processing: `None` for padded
    /// decryption (it depends on the padding) and for input lengths the mode rejects.
    pub fn single_part_len(&self, input_len: usize) -> Option<usize> {
        self.inner.single_part_len(input_len)
    }
    /// Single part: processes `input` and finishes, writing the output to the front of
    /// `out` and returning its length. `out` must hold the output
    /// ([`Self::single_part_len`] bytes when known), else `InvalidArgument`. Equivalent
    /// to [`Self::update`] + [`Self::finalize`], without an intermediate buffer where the
    /// mode allows.
    pub fn finish_into(self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        self.inner.finish_into(input, out)
    }
    /// Processes `input`, appending the output that is ready to `out`. Block modes hold
    /// back a partial block (and on padded decryption, the last full block).
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.inner.update(input, out)
    }
    /// Finishes: pads (encryption) or strips and checks padding (decryption), or appends /
    /// checks the GCM tag. Unpadded block modes fail on a partial final block.
    pub fn finalize(self, out: &mut Vec<u8>) -> Result<()> {
        self.inner.finalize(out)
    }
    /// Single part into a fresh buffer ([`Self::update`] + [`Self::finalize`]), zeroized
    /// when dropped. It is sized for the input plus a block or a tag, so it never
    /// reallocates (no copy of plaintext is left behind).
    pub fn run(mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::with_capacity(input.len() + 16));
        self.update(input, &mut out)?;
        self.finalize(&mut out)?;
        Ok(out)
    }
}

/// One-shot encryption.
pub fn encrypt(alg: SymAlg, mode: SymMode, key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut c = SymCipher::new(alg, mode, Direction::Encrypt, key, iv)?;
    let mut out = Vec::with_capacity(data.len() + 16);
    c.update(data, &mut out)?;
    c.finalize(&mut out)?;
    Ok(out)
}

/// One-shot decryption.
pub fn decrypt(
    alg: SymAlg,
    mode: SymMode,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    SymCipher::new(alg, mode, Direction::Decrypt, key, iv)?.run(data)
}

/// One-shot GCM encryption with associated data: ciphertext ‖ tag(16).
pub fn gcm_seal(alg: SymAlg, key: &[u8], nonce: &[u8], aad: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut c = SymCipher::new_with_aad(alg, SymMode::Gcm, Direction::Encrypt, key, nonce, aad)?;
    let mut out = Vec::with_capacity(data.len() + 16);
    c.update(data, &mut out)?;
    c.finalize(&mut out)?;
    Ok(out)
}

/// One-shot GCM decryption of ciphertext ‖ tag(16); `Error::DecryptFailed` on a bad tag.
pub fn gcm_open(
    alg: SymAlg,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    SymCipher::new_with_aad(alg, SymMode::Gcm, Direction::Decrypt, key, nonce, aad)?.run(data)
}

/// One-shot GCM encryption with a `tag_len`-byte tag: ciphertext ‖ tag.
pub fn gcm_seal_with_tag_len(
    alg: SymAlg,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_len: usize,
) -> Result<Vec<u8>> {
    let mut c = SymCipher::new_gcm(alg, Direction::Encrypt, key, nonce, aad, tag_len)?;
    let mut out = Vec::with_capacity(data.len() + tag_len);
    c.update(data, &mut out)?;
    c.finalize(&mut out)?;
    Ok(out)
}

/// One-shot GCM decryption of ciphertext ‖ tag (`tag_len` bytes).
pub fn gcm_open_with_tag_len(
    alg: SymAlg,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    SymCipher::new_gcm(alg, Direction::Decrypt, key, nonce, aad, tag_len)?.run(data)
}

/// CBC-MAC: the last block of CBC encryption of `data` under `iv` (all zero for the
/// classic MAC). With `pad`, PKCS#7 padding is applied first; without, `data` must be
/// a non-empty multiple of 16 bytes.
pub fn cbc_mac(alg: SymAlg, key: &[u8], iv: &[u8], data: &[u8], pad: bool) -> Result<[u8; 16]> {
    let mode = if pad { SymMode::CbcPad } else { SymMode::Cbc };
    if !pad && (data.is_empty() || !data.len().is_multiple_of(16)) {
        return Err(Error::invalid_arg(
            "CBC-MAC without padding needs a non-empty multiple of 16 bytes",
        ));
    }
    let ct = encrypt(alg, mode, key, iv, data)?;
    let last = ct
        .get(ct.len().saturating_sub(16)..)
        .filter(|l| l.len() == 16)
        .ok_or_else(|| Error::internal("CBC-MAC produced no block"))?;
    let mut mac = [0u8; 16];
    mac.copy_from_slice(last);
    Ok(mac)
}

/// SM4-ECB encryption of one 16-byte block (device authentication).
pub fn sm4_ecb_encrypt_block(key: &[u8], block: &[u8; 16]) -> Result<Vec<u8>> {
    if key.len() != 16 {
        return Err(Error::invalid_arg(format!(
            "SM4 key must be 16 bytes, got {}",
            key.len()
        )));
    }
    let mut b = block.to_vec();
    provider().sm4.encrypt_block(SymAlg::Sm4, key, &mut b)?;
    Ok(b)
}

/// AES key wrap, RFC 3394 (`key` a multiple of 8 bytes, at least 16).
pub fn aes_key_wrap(kek: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    provider().aes.aes_key_wrap(kek, key, false)
}

/// AES key unwrap, RFC 3394. A failed integrity check gives `Error::DecryptFailed`.
pub fn aes_key_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    provider().aes.aes_key_unwrap(kek, wrapped, false)
}

/// AES key wrap with padding, RFC 5649 (any key length from 1 byte).
pub fn aes_key_wrap_pad(kek: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    provider().aes.aes_key_wrap(kek, key, true)
}

/// AES key unwrap with padding, RFC 5649.
pub fn aes_key_unwrap_pad(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    provider().aes.aes_key_unwrap(kek, wrapped, true)
}
