//! SM4 (GB/T 32907, GM/T 0002) with many blocks in flight: ECB, CTR (128- and 32-bit
//! counters), CBC, CFB, OFB, CBC-MAC, multi-stream CBC encryption and GCM.
//!
//! [`Sm4Key`] holds the round keys (zeroized on drop) and the [`Tier`] its kernels run
//! on: [`Sm4Key::new`] takes [`Tier::current`], [`Sm4Key::with_tier`] any tier (an
//! unsupported one falls back to the fastest supported tier below it, so a kernel never
//! runs on a CPU without its instructions). The parallel modes (ECB, CTR, CBC and CFB
//! decryption, GCM) use the SIMD kernels; the serial ones (CBC and CFB encryption, OFB,
//! CBC-MAC) use the portable T-table code one block at a time, except
//! [`Sm4Key::cbc_encrypt_multi`], which runs independent streams side by side.

// The only `unsafe` here is the call into a `#[target_feature]` kernel (`dispatch!`).
#![allow(unsafe_code)]

use std::fmt;

use zeroize::Zeroize;

use crate::Tier;
use crate::ghash::Ghash;

mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

/// The block size in bytes.
pub const BLOCK: usize = 16;

/// An input that is not a whole number of blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthError;

impl fmt::Display for LengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SM4: data length is not a multiple of the 16-byte block")
    }
}

impl std::error::Error for LengthError {}

/// A GCM tag that does not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagMismatch;

impl fmt::Display for TagMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SM4-GCM: authentication tag mismatch")
    }
}

impl std::error::Error for TagMismatch {}

fn whole(data: &[u8]) -> Result<(), LengthError> {
    if data.len().is_multiple_of(BLOCK) {
        Ok(())
    } else {
        Err(LengthError)
    }
}

/// An SM4 key schedule bound to a kernel tier.
#[derive(Clone)]
pub struct Sm4Key {
    enc: [u32; 32],
    dec: [u32; 32],
    tier: Tier,
}

impl Drop for Sm4Key {
    fn drop(&mut self) {
        self.enc.zeroize();
        self.dec.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Sm4Key {}

impl fmt::Debug for Sm4Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sm4Key {{ tier: {:?}, .. }}", self.tier)
    }
}

/// Which kernel runs a parallel mode.
macro_rules! dispatch {
    ($tier:expr, $f:ident($($a:expr),*), $portable:expr) => {
        match $tier {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Sm4Key::with_tier` only keeps a tier whose CPU features were
            // detected at run time (`Tier::supported`).
            Tier::GfniAvx512 => unsafe { x86::gfni_avx512::$f($($a),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Tier::GfniAvx2 => unsafe { x86::gfni_avx2::$f($($a),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Tier::AesniAvx2 => unsafe { x86::aesni_avx2::$f($($a),*) },
            _ => $portable,
        }
    };
}

impl Sm4Key {
    /// Expands `key` for the fastest tier this CPU allows (capped by `UKEY_CPU_TIER`).
    pub fn new(key: &[u8; 16]) -> Self {
        Self::with_tier(key, Tier::current())
    }

    /// Expands `key` for `tier`, or the fastest supported tier below it.
    pub fn with_tier(key: &[u8; 16], tier: Tier) -> Self {
        let enc = portable::expand_key(key);
        let mut dec = enc;
        dec.reverse();
        let tier = if tier.supported() {
            tier
        } else {
            Tier::detected_up_to(tier)
        };
        Self { enc, dec, tier }
    }

    /// The tier the kernels run on.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Encrypts one block.
    pub fn encrypt_block(&self, b: &mut [u8; 16]) {
        portable::crypt_block(&self.enc, b);
    }

    /// Decrypts one block.
    pub fn decrypt_block(&self, b: &mut [u8; 16]) {
        portable::crypt_block(&self.dec, b);
    }

    /// ECB encryption of whole blocks in place.
    pub fn encrypt_blocks(&self, data: &mut [u8]) -> Result<(), LengthError> {
        whole(data)?;
        self.ecb(&self.enc, data);
        Ok(())
    }

    /// ECB decryption of whole blocks in place.
    pub fn decrypt_blocks(&self, data: &mut [u8]) -> Result<(), LengthError> {
        whole(data)?;
        self.ecb(&self.dec, data);
        Ok(())
    }

    fn ecb(&self, rk: &[u32; 32], data: &mut [u8]) {
        dispatch!(self.tier, ecb(rk, data), portable::crypt_blocks(rk, data))
    }

    fn ctr(&self, ctr: &mut [u8; 16], data: &mut [u8], wide: bool) {
        let rk = &self.enc;
        dispatch!(
            self.tier,
            ctr(rk, ctr, data, wide),
            portable::ctr(rk, ctr, data, wide)
        )
    }

    /// CTR mode with the whole 16-byte block as a big-endian counter (wrapping at
    /// 2¹²⁸): XORs the key stream into `data` (any length) and advances `ctr` by one
    /// per block, a partial last block included.
    pub fn ctr128_xor(&self, ctr: &mut [u8; 16], data: &mut [u8]) {
        self.ctr(ctr, data, true);
    }

    /// CTR mode incrementing only the last 32 bits of `ctr` (big-endian, wrapping), as
    /// GCM does; otherwise as [`Self::ctr128_xor`].
    pub fn ctr32_xor(&self, ctr: &mut [u8; 16], data: &mut [u8]) {
        self.ctr(ctr, data, false);
    }

    /// CBC encryption of whole blocks in place (serial); `iv` becomes the last
    /// ciphertext block.
    pub fn cbc_encrypt(&self, iv: &mut [u8; 16], data: &mut [u8]) -> Result<(), LengthError> {
        whole(data)?;
        portable::cbc_encrypt(&self.enc, iv, data);
        Ok(())
    }

    /// CBC decryption of whole blocks in place; `iv` becomes the last ciphertext block.
    pub fn cbc_decrypt(&self, iv: &mut [u8; 16], data: &mut [u8]) -> Result<(), LengthError> {
        whole(data)?;
        let rk = &self.dec;
        dispatch!(
            self.tier,
            cbc_dec(rk, iv, data),
            portable::cbc_decrypt(rk, iv, data)
        );
        Ok(())
    }

    /// CFB-128 encryption of whole blocks in place (serial); `iv` becomes the last
    /// ciphertext block.
    pub fn cfb_encrypt(&self, iv: &mut [u8; 16], data: &mut [u8]) -> Result<(), LengthError> {
        whole(data)?;
        portable::cfb_encrypt(&self.enc, iv, data);
        Ok(())
    }

    /// CFB-128 decryption of whole blocks in place; `iv` becomes the last ciphertext
    /// block.
    pub fn cfb_decrypt(&self, iv: &mut [u8; 16], data: &mut [u8]) -> Result<(), LengthError> {
        whole(data)?;
        let rk = &self.enc;
        dispatch!(
            self.tier,
            cfb_dec(rk, iv, data),
            portable::cfb_decrypt(rk, iv, data)
        );
        Ok(())
    }

    /// OFB over whole blocks in place (serial); `iv` becomes the last cipher output.
    pub fn ofb_xor(&self, iv: &mut [u8; 16], data: &mut [u8]) -> Result<(), LengthError> {
        whole(data)?;
        portable::ofb(&self.enc, iv, data);
        Ok(())
    }

    /// CBC-MAC chaining (GM/T 0016 `SKF_Mac`): `state` (the IV at first) becomes the last
    /// block of the CBC encryption of `data` (whole blocks), with no other output.
    pub fn cbc_mac_update(&self, state: &mut [u8; 16], data: &[u8]) -> Result<(), LengthError> {
        whole(data)?;
        portable::cbc_mac(&self.enc, state, data);
        Ok(())
    }

    /// CBC encryption of independent streams side by side: each `(iv, data)` is
    /// encrypted as [`Self::cbc_encrypt`] would, but one block of each stream goes
    /// through the SIMD kernel together (up to 64 streams at once on AVX-512, 32 on
    /// AVX2). Fails, changing nothing, if any buffer is not whole blocks.
    pub fn cbc_encrypt_multi(
        &self,
        streams: &mut [(&mut [u8; 16], &mut [u8])],
    ) -> Result<(), LengthError> {
        for (_, d) in streams.iter() {
            whole(d)?;
        }
        let lanes = match self.tier {
            Tier::GfniAvx512 => 64,
            Tier::GfniAvx2 | Tier::AesniAvx2 => 32,
            Tier::Portable => 1,
        };
        if lanes == 1 {
            for (iv, d) in streams.iter_mut() {
                portable::cbc_encrypt(&self.enc, iv, d);
            }
            return Ok(());
        }
        let mut tmp = [[0u8; BLOCK]; 64];
        for group in streams.chunks_mut(lanes) {
            let steps = group
                .iter()
                .map(|(_, d)| d.len() / BLOCK)
                .max()
                .unwrap_or(0);
            for step in 0..steps {
                let at = step * BLOCK;
                let mut n = 0;
                for (iv, d) in group.iter() {
                    if let Some(p) = d.get(at..at + BLOCK).and_then(|p| p.first_chunk::<BLOCK>()) {
                        let x = u128::from_ne_bytes(*p) ^ u128::from_ne_bytes(**iv);
                        tmp[n] = x.to_ne_bytes();
                        n += 1;
                    }
                }
                self.ecb(&self.enc, tmp[..n].as_flattened_mut());
                let mut k = 0;
                for (iv, d) in group.iter_mut() {
                    if let Some(c) = d.get_mut(at..at + BLOCK) {
                        c.copy_from_slice(&tmp[k]);
                        **iv = tmp[k];
                        k += 1;
                    }
                }
            }
        }
        tmp.zeroize();
        Ok(())
    }
}

/// SM4-GCM (NIST SP 800-38D over SM4; RFC 8998): the key schedule and the GHASH key,
/// with the GHASH key powers computed once (each message's [`Self::ghash`] copies them).
#[derive(Clone, Debug)]
pub struct Sm4Gcm {
    key: Sm4Key,
    /// A GHASH over nothing yet under H = E_K(0), the template of every message's (both
    /// zeroize themselves on drop).
    fresh: Ghash,
}

impl Sm4Gcm {
    /// GCM under `key` on the fastest tier (see [`Sm4Key::new`]).
    pub fn new(key: &[u8; 16]) -> Self {
        Self::with_tier(key, Tier::current())
    }

    /// GCM under `key` on `tier`.
    pub fn with_tier(key: &[u8; 16], tier: Tier) -> Self {
        let key = Sm4Key::with_tier(key, tier);
        let mut h = [0u8; 16];
        key.encrypt_block(&mut h);
        let fresh = Ghash::with_tier(&h, key.tier);
        h.zeroize();
        Self { key, fresh }
    }

    /// The block cipher.
    pub fn key(&self) -> &Sm4Key {
        &self.key
    }

    /// A fresh GHASH under this key's H.
    pub fn ghash(&self) -> Ghash {
        self.fresh.clone()
    }

    /// The pre-counter block J0 for `nonce` (SP 800-38D §7.1 step 2); empty nonces are
    /// the caller's to refuse.
    pub fn j0(&self, nonce: &[u8]) -> [u8; 16] {
        let mut j0 = [0u8; 16];
        if nonce.len() == 12 {
            j0[..12].copy_from_slice(nonce);
            j0[15] = 1;
        } else {
            let mut g = self.ghash();
            g.update_padded(nonce);
            let mut lens = [0u8; 16];
            lens[8..].copy_from_slice(&((nonce.len() as u64).wrapping_mul(8)).to_be_bytes());
            g.update_padded(&lens);
            j0 = g.finalize();
        }
        j0
    }

    /// The full 16-byte tag from the GHASH over A and C (without the length block), the
    /// lengths in bytes and J0.
    pub fn tag(&self, mut g: Ghash, aad_len: u64, text_len: u64, j0: &[u8; 16]) -> [u8; 16] {
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&aad_len.wrapping_mul(8).to_be_bytes());
        lens[8..].copy_from_slice(&text_len.wrapping_mul(8).to_be_bytes());
        g.update_padded(&lens);
        let s = g.finalize();
        let mut t = *j0;
        self.key.encrypt_block(&mut t);
        for (a, b) in t.iter_mut().zip(s) {
            *a ^= b;
        }
        t
    }

    /// GCM encryption of whole blocks in place, continuing a message: CTR from `ctr`
    /// (the 32-bit counter advances by one per block) and GHASH of the ciphertext into
    /// `g` (which must be [`Self::ghash`] of this key). On AVX-512 one fused pass does
    /// both; elsewhere the CTR and GHASH passes alternate over 16 KiB slices.
    pub fn seal_blocks(
        &self,
        ctr: &mut [u8; 16],
        g: &mut Ghash,
        data: &mut [u8],
    ) -> Result<(), LengthError> {
        whole(data)?;
        #[cfg(target_arch = "x86_64")]
        if self.key.tier == Tier::GfniAvx512
            && let Some((desc, y)) = g.simd_parts()
        {
            // SAFETY: `Sm4Key::with_tier` kept the AVX-512 tier only after
            // `Tier::supported` found every feature the kernel enables.
            unsafe { x86::gfni_avx512::gcm_seal(&self.key.enc, ctr, data, desc, y) };
            return Ok(());
        }
        // Encrypt and hash in 16 KiB slices so the ciphertext is still in L1 for GHASH.
        for chunk in data.chunks_mut(16 * 1024) {
            self.key.ctr32_xor(ctr, chunk);
            g.update_padded(chunk);
        }
        Ok(())
    }

    /// GCM decryption of whole blocks in place, continuing a message: GHASH of the
    /// ciphertext into `g`, then CTR as [`Self::seal_blocks`] (one fused pass on
    /// AVX-512). The caller checks the tag and must not release the plaintext before.
    pub fn open_blocks(
        &self,
        ctr: &mut [u8; 16],
        g: &mut Ghash,
        data: &mut [u8],
    ) -> Result<(), LengthError> {
        whole(data)?;
        #[cfg(target_arch = "x86_64")]
        if self.key.tier == Tier::GfniAvx512
            && let Some((desc, y)) = g.simd_parts()
        {
            // SAFETY: as in `seal_blocks`.
            unsafe { x86::gfni_avx512::gcm_open(&self.key.enc, ctr, data, desc, y) };
            return Ok(());
        }
        for chunk in data.chunks_mut(16 * 1024) {
            g.update_padded(chunk);
            self.key.ctr32_xor(ctr, chunk);
        }
        Ok(())
    }

    /// Encrypts `data` in place and returns the 16-byte tag.
    pub fn encrypt(&self, nonce: &[u8], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let j0 = self.j0(nonce);
        let mut ctr = j0;
        portable::increment(&mut ctr, 1, false);
        let mut g = self.ghash();
        g.update_padded(aad);
        let (body, tail) = data.split_at_mut(data.len() / BLOCK * BLOCK);
        let _ = self.seal_blocks(&mut ctr, &mut g, body);
        self.key.ctr32_xor(&mut ctr, tail);
        g.update_padded(tail);
        self.tag(g, aad.len() as u64, data.len() as u64, &j0)
    }

    /// Checks `tag` (4 to 16 bytes, compared in constant time) and decrypts `data` in
    /// place. The ciphertext is hashed and decrypted in one pass; on a mismatch the
    /// key stream is applied again, so `data` is left as it was.
    pub fn decrypt(
        &self,
        nonce: &[u8],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), TagMismatch> {
        if tag.is_empty() || tag.len() > 16 {
            return Err(TagMismatch);
        }
        let j0 = self.j0(nonce);
        let mut ctr = j0;
        portable::increment(&mut ctr, 1, false);
        let start = ctr;
        let mut g = self.ghash();
        g.update_padded(aad);
        let (body, tail) = data.split_at_mut(data.len() / BLOCK * BLOCK);
        let _ = self.open_blocks(&mut ctr, &mut g, body);
        g.update_padded(tail);
        self.key.ctr32_xor(&mut ctr, tail);
        let t = self.tag(g, aad.len() as u64, data.len() as u64, &j0);
        if !ct_eq(&t[..tag.len()], tag) {
            let mut c = start;
            self.key.ctr32_xor(&mut c, data);
            return Err(TagMismatch);
        }
        Ok(())
    }
}

/// Constant-time equality of two equal-length byte strings.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let d = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(d) == 0
}
