//! GCM (NIST SP 800-38D) over any 128-bit block cipher (AES, SM4), with any nonce
//! length and any tag length from 4 to 16 bytes.
//!
//! Written on RustCrypto `ghash` (CLMUL/PMULL where the CPU has them) and `ctr`'s
//! 32-bit counter flavour, step by step as SP 800-38D §7.1/§7.2 number them:
//!
//! - step 1: H = E_K(0^128);
//! - step 2: J0 = IV ‖ 0^31 ‖ 1 for a 96-bit IV (the fast path), otherwise
//!   J0 = GHASH_H(IV ‖ 0^(s+64) ‖ [len(IV)]_64);
//! - step 3: C = GCTR_K(inc32(J0), P);
//! - steps 5–6: S = GHASH_H(A ‖ 0^v ‖ C ‖ 0^u ‖ [len(A)]_64 ‖ [len(C)]_64);
//! - step 7: T = MSB_t(GCTR_K(J0, S)).
//!
//! Encryption streams: each update returns its ciphertext at once. Decryption holds
//! the ciphertext back and releases the plaintext only after the tag has been checked
//! (in constant time), as PKCS#11 requires of an AEAD.

use cipher::array::Array;
use cipher::consts::U16;
use cipher::{InnerIvInit, StreamCipher};
use ghash::GHash;
use ghash::universal_hash::{KeyInit as UhfKeyInit, UniversalHash};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::symmetric::Block128;
use crate::crypto::provider::SymCipherOps;
use crate::crypto::sym::Direction;
use crate::error::{Error, Result};

const BS: usize = 16;
/// SP 800-38D §5.2.1.1: len(P) ≤ 2^39 − 256 bits.
const MAX_TEXT: u64 = (1 << 36) - 32;

pub(crate) struct Gcm<C: Block128> {
    ctr: ctr::Ctr32BE<C>,
    ghash: GHash,
    /// E_K(J0), masked into the tag.
    ek_j0: Zeroizing<[u8; BS]>,
    dir: Direction,
    tag_len: usize,
    aad_len: u64,
    text_len: u64,
    /// Encryption: ciphertext bytes not yet absorbed into GHASH (less than a block).
    partial: Zeroizing<Vec<u8>>,
    /// Decryption: all of ciphertext ‖ tag so far.
    held: Zeroizing<Vec<u8>>,
}

impl<C: Block128> Gcm<C> {
    pub(crate) fn new(
        key: &[u8],
        dir: Direction,
        iv: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Self> {
        crate::crypto::sym::check_tag_len(tag_len)?;
        if iv.is_empty() {
            return Err(Error::invalid_arg("GCM needs a nonce of at least 1 byte"));
        }
        let c = C::new_from_slice(key).map_err(|_| Error::invalid_arg("bad GCM key length"))?;
        // 1. H = E_K(0^128).
        let mut h = Array::<u8, U16>::default();
        c.encrypt_block(&mut h);
        let ghash_key = ghash::Key::from(h);
        h.zeroize();
        // 2. J0.
        let mut j0 = Zeroizing::new([0u8; BS]);
        if iv.len() == 12 {
            j0[..12].copy_from_slice(iv);
            j0[15] = 1;
        } else {
            let mut g = <GHash as UhfKeyInit>::new(&ghash_key);
            g.update_padded(iv);
            let mut lens = [0u8; BS];
            let bits = u64::try_from(iv.len())
                .ok()
                .and_then(|n| n.checked_mul(8))
                .ok_or_else(|| Error::invalid_arg("GCM nonce too long"))?;
            lens[8..].copy_from_slice(&bits.to_be_bytes());
            g.update(&[Array::from(lens)]);
            j0.copy_from_slice(&g.finalize());
        }
        let mut ek_j0 = Zeroizing::new([0u8; BS]);
        let mut b = Array::<u8, U16>::from(*j0);
        c.encrypt_block(&mut b);
        ek_j0.copy_from_slice(&b);
        b.zeroize();
        // 3. The counter starts at inc32(J0).
        let mut cb = *j0;
        let ctr32 = u32::from_be_bytes([cb[12], cb[13], cb[14], cb[15]]).wrapping_add(1);
        cb[12..].copy_from_slice(&ctr32.to_be_bytes());
        let ctr = ctr::Ctr32BE::<C>::from_core(ctr::CtrCore::inner_iv_init(c, &Array::from(cb)));
        cb.zeroize();
        let mut ghash = <GHash as UhfKeyInit>::new(&ghash_key);
        ghash.update_padded(aad);
        Ok(Self {
            ctr,
            ghash,
            ek_j0,
            dir,
            tag_len,
            aad_len: u64::try_from(aad.len()).map_err(|_| Error::invalid_arg("GCM AAD"))?,
            text_len: 0,
            partial: Zeroizing::new(Vec::with_capacity(BS)),
            held: Zeroizing::new(Vec::new()),
        })
    }

    fn count(&mut self, n: usize) -> Result<()> {
        self.text_len = u64::try_from(n)
            .ok()
            .and_then(|n| self.text_len.checked_add(n))
            .filter(|&t| t <= MAX_TEXT)
            .ok_or_else(|| Error::invalid_arg("GCM message too long"))?;
        Ok(())
    }

    /// Absorbs ciphertext into GHASH, keeping a partial block for later.
    fn absorb(&mut self, mut ct: &[u8]) {
        if !self.partial.is_empty() {
            let take = (BS - self.partial.len()).min(ct.len());
            self.partial.extend_from_slice(&ct[..take]);
            ct = &ct[take..];
            if self.partial.len() == BS {
                self.ghash
                    .update(&[Array::try_from(&self.partial[..]).unwrap_or_default()]);
                self.partial.clear();
            }
        }
        let whole = ct.len() / BS * BS;
        let (blocks, _) = Array::<u8, U16>::slice_as_chunks(&ct[..whole]);
        self.ghash.update(blocks);
        self.partial.extend_from_slice(&ct[whole..]);
    }

    /// Steps 5–7: the full 16-byte tag.
    fn tag(mut self) -> Result<Zeroizing<[u8; BS]>> {
        if !self.partial.is_empty() {
            let p = std::mem::take(&mut self.partial);
            self.ghash.update_padded(&p);
        }
        let mut lens = [0u8; BS];
        let a = self
            .aad_len
            .checked_mul(8)
            .ok_or_else(|| Error::invalid_arg("GCM AAD too long"))?;
        lens[..8].copy_from_slice(&a.to_be_bytes());
        lens[8..].copy_from_slice(&(self.text_len * 8).to_be_bytes());
        self.ghash.update(&[Array::from(lens)]);
        let s = self.ghash.finalize();
        let mut t = Zeroizing::new([0u8; BS]);
        for (i, b) in t.iter_mut().enumerate() {
            *b = s[i] ^ self.ek_j0[i];
        }
        Ok(t)
    }
}

impl<C: Block128> SymCipherOps for Gcm<C> {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self.dir {
            Direction::Encrypt => {
                self.count(input.len())?;
                let start = out.len();
                out.extend_from_slice(input);
                self.ctr
                    .try_apply_keystream(&mut out[start..])
                    .map_err(|_| Error::invalid_arg("GCM counter space exhausted"))?;
                self.absorb(&out[start..]);
            }
            Direction::Decrypt => {
                if self.held.len().saturating_add(input.len()) as u64
                    > MAX_TEXT + self.tag_len as u64
                {
                    return Err(Error::invalid_data("GCM message too long"));
                }
                self.held.extend_from_slice(input);
            }
        }
        Ok(())
    }

    fn finalize(mut self: Box<Self>, out: &mut Vec<u8>) -> Result<()> {
        match self.dir {
            Direction::Encrypt => {
                let n = self.tag_len;
                let t = (*self).tag()?;
                out.extend_from_slice(&t[..n]);
                Ok(())
            }
            Direction::Decrypt => {
                let n = self.tag_len;
                if self.held.len() < n {
                    return Err(Error::DecryptFailed);
                }
                let held = std::mem::take(&mut self.held);
                let (ct, given) = held.split_at(held.len() - n);
                self.count(ct.len()).map_err(|_| Error::DecryptFailed)?;
                self.absorb(ct);
                let mut pt = Zeroizing::new(ct.to_vec());
                self.ctr
                    .try_apply_keystream(&mut pt)
                    .map_err(|_| Error::DecryptFailed)?;
                let t = (*self).tag()?;
                if !bool::from(t[..n].ct_eq(given)) {
                    return Err(Error::DecryptFailed);
                }
                out.extend_from_slice(&pt);
                Ok(())
            }
        }
    }
}
