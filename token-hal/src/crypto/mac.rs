//! Message authentication codes behind one streaming type: HMAC (SHA-1/2, SM3, MD5,
//! any key length), CMAC (NIST SP 800-38B) over AES or SM4, and the classic CBC-MAC
//! over AES or SM4.
//!
//! For PKCS#11: `CKM_SHA*_HMAC` / `CKM_SM3_HMAC` are [`MacAlg::Hmac`] (full length),
//! their `_GENERAL` forms the same truncated with [`Mac::finish_truncated`] and checked
//! with [`Mac::verify_truncated`]. `CKM_AES_CMAC` / `CKM_AES_CMAC_GENERAL` are
//! [`MacAlg::Cmac`]. `CKM_SM4_MAC` (vendor) is [`MacAlg::CbcMac`] over SM4:
//!
//! - CBC encryption under the key with an all-zero IV; the MAC is the last
//!   ciphertext block (16 bytes; `CKM_SM4_MAC_GENERAL` truncates it);
//! - padding: the message is padded with zero bytes to a multiple of 16 (ISO/IEC
//!   9797-1 padding method 1, as PKCS#11 specifies for its block-cipher `_MAC`
//!   mechanisms, e.g. `CKM_AES_MAC`); a message that already is a multiple is not
//!   padded, and the empty message is one all-zero block.
//!
//! This is GM/T 0016's SKF_Mac computation as well (zero IV, zero padding), so an SKF
//! MAC and a PKCS#11 `CKM_SM4_MAC` over the same key and data agree. Zero padding is
//! ambiguous between messages that differ by trailing zero bytes: do not use CBC-MAC
//! for variable-length messages where that matters; use CMAC.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::hash::{HashAlg, Hasher};
use crate::crypto::provider::{MacOps, provider};
use crate::crypto::sym::{Direction, SymAlg, SymCipher, SymMode};
use crate::error::{Error, Result};

/// A MAC algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacAlg {
    /// HMAC (RFC 2104) over this hash, any key length.
    Hmac(HashAlg),
    /// CMAC (NIST SP 800-38B) over this block cipher.
    Cmac(SymAlg),
    /// CBC-MAC over this block cipher: zero IV, zero padding (see the module docs).
    CbcMac(SymAlg),
}

impl MacAlg {
    /// The full MAC length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Hmac(h) => h.output_len(),
            Self::Cmac(c) | Self::CbcMac(c) => c.block_len(),
        }
    }
}

enum Inner {
    Hmac(Hasher),
    Cmac(Box<dyn MacOps>),
    CbcMac {
        cbc: SymCipher,
        /// Bytes of a block not yet given to the cipher.
        partial: Zeroizing<Vec<u8>>,
        /// The last ciphertext block so far.
        last: Zeroizing<[u8; 16]>,
        /// Whether any block has been encrypted.
        started: bool,
        /// Scratch output.
        scratch: Zeroizing<Vec<u8>>,
    },
}

/// A streaming MAC computation. Keys are set up once, in [`Mac::new`].
pub struct Mac {
    alg: MacAlg,
    inner: Inner,
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({:?})", self.alg)
    }
}

impl Mac {
    /// Starts a MAC with `key`. Block-cipher MACs check the key length (AES 16/24/32,
    /// SM4 16); HMAC takes any length, the empty key included.
    pub fn new(alg: MacAlg, key: &[u8]) -> Result<Self> {
        let inner = match alg {
            MacAlg::Hmac(h) => Inner::Hmac(Hasher::new_hmac(h, key)),
            MacAlg::Cmac(c) => {
                if !c.key_len_ok(key.len()) {
                    return Err(Error::invalid_arg(format!(
                        "{c:?} key of {} bytes is not a valid length",
                        key.len()
                    )));
                }
                Inner::Cmac(provider().sym(c).cmac(c, key)?)
            }
            MacAlg::CbcMac(c) => Inner::CbcMac {
                cbc: SymCipher::new(c, SymMode::Cbc, Direction::Encrypt, key, &[0u8; 16])?,
                partial: Zeroizing::new(Vec::with_capacity(16)),
                last: Zeroizing::new([0u8; 16]),
                started: false,
                scratch: Zeroizing::new(Vec::new()),
            },
        };
        Ok(Self { alg, inner })
    }
    /// The algorithm.
    pub fn alg(&self) -> MacAlg {
        self.alg
    }
    /// Absorbs data.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.inner {
            Inner::Hmac(h) => h.update(data),
            Inner::Cmac(m) => m.update(data),
            Inner::CbcMac {
                cbc,
                partial,
                last,
                started,
                scratch,
            } => {
                partial.extend_from_slice(data);
                let whole = partial.len() / 16 * 16;
                if whole > 0 {
                    scratch.clear();
                    cbc.update(&partial[..whole], scratch)?;
                    if scratch.len() >= 16 {
                        last.copy_from_slice(&scratch[scratch.len() - 16..]);
                        *started = true;
                    }
                    partial.drain(..whole);
                }
            }
        }
        Ok(())
    }
    /// Finishes and returns the full-length MAC.
    pub fn finish(self) -> Result<Zeroizing<Vec<u8>>> {
        Ok(match self.inner {
            Inner::Hmac(h) => Zeroizing::new(h.finish()),
            Inner::Cmac(m) => m.finish(),
            Inner::CbcMac {
                mut cbc,
                partial,
                mut last,
                started,
                mut scratch,
            } => {
                if !partial.is_empty() || !started {
                    let mut block = Zeroizing::new([0u8; 16]);
                    block[..partial.len()].copy_from_slice(&partial);
                    scratch.clear();
                    cbc.update(&block[..], &mut scratch)?;
                    last.copy_from_slice(
                        scratch
                            .get(..16)
                            .ok_or_else(|| Error::internal("CBC-MAC block"))?,
                    );
                }
                cbc.finalize(&mut scratch)?;
                Zeroizing::new(last.to_vec())
            }
        })
    }
    /// Finishes and returns the first `len` bytes (1..=full length), as the PKCS#11
    /// `_GENERAL` MAC mechanisms do.
    pub fn finish_truncated(self, len: usize) -> Result<Zeroizing<Vec<u8>>> {
        let full = self.alg.output_len();
        if len == 0 || len > full {
            return Err(Error::invalid_arg(format!(
                "MAC length {len} (1..={full} for {:?})",
                self.alg
            )));
        }
        let mut m = self.finish()?;
        m.truncate(len);
        Ok(m)
    }
    /// Checks a full-length MAC in constant time; `Error::SignatureInvalid` when it
    /// does not match or has another length.
    pub fn verify(self, mac: &[u8]) -> Result<()> {
        if mac.len() != self.alg.output_len() {
            return Err(Error::SignatureInvalid);
        }
        self.verify_truncated(mac)
    }
    /// Checks a MAC truncated to `mac.len()` bytes (1..=full) in constant time.
    pub fn verify_truncated(self, mac: &[u8]) -> Result<()> {
        if mac.is_empty() || mac.len() > self.alg.output_len() {
            return Err(Error::SignatureInvalid);
        }
        let want = self.finish()?;
        if bool::from(want[..mac.len()].ct_eq(mac)) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }
}

/// One-shot full-length MAC.
pub fn mac(alg: MacAlg, key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let mut m = Mac::new(alg, key)?;
    m.update(data)?;
    m.finish()
}
