//! SM4 on ukey-simd's kernels (GFNI/AVX-512, GFNI/AVX2, AES-NI/AVX2, portable; chosen
//! at run time, capped by `UKEY_CPU_TIER`): every mode [`super::symmetric::RustCryptoSm4`]
//! offers (ECB, CBC, each with or without PKCS#7 padding, CFB-128, OFB, CTR, GCM with any
//! nonce and tag length, CMAC) behind the same [`SymProvider`] trait. RustCrypto stays
//! the portable reference that the tests compare this provider against.
//!
//! Data is transformed in place in the caller's output: `update` appends the input to
//! `out` once and runs the kernel there; `finish_into` writes straight into the caller's
//! buffer. Only partial blocks (at most 16 bytes, 32 for padded decryption) are kept
//! between calls. GCM decryption holds the ciphertext until the tag is checked, as
//! PKCS#11 requires of an AEAD.

use subtle::ConstantTimeEq;
use ukey_simd::sm4::{Sm4Gcm, Sm4Key};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::provider::{MacOps, PreparedSym, SymCipherOps, SymProvider, finish_via_vec};
use crate::crypto::sym::{Direction, SymAlg, SymMode};
use crate::error::{Error, Result};

const BS: usize = 16;
/// SP 800-38D §5.2.1.1: len(P) ≤ 2^39 − 256 bits.
const GCM_MAX_TEXT: u64 = (1 << 36) - 32;

/// SM4 through the ukey-simd kernels.
#[derive(Debug)]
pub struct FastSm4;

fn key16(key: &[u8]) -> Result<&[u8; 16]> {
    key.try_into()
        .map_err(|_| Error::invalid_arg(format!("SM4 key of {} bytes (16 required)", key.len())))
}

fn iv16(iv: &[u8]) -> Result<[u8; 16]> {
    iv.try_into()
        .map_err(|_| Error::invalid_arg(format!("SM4 IV of {} bytes (16 required)", iv.len())))
}

fn only_sm4(alg: SymAlg) -> Result<()> {
    if alg == SymAlg::Sm4 {
        Ok(())
    } else {
        Err(Error::unsupported(format!("{alg:?} in the SM4 provider")))
    }
}

/// A kernel result that cannot fail on whole blocks (the callers pass only whole blocks).
fn whole(r: std::result::Result<(), ukey_simd::sm4::LengthError>) -> Result<()> {
    r.map_err(|_| Error::internal("SM4 kernel given a partial block"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ecb,
    Cbc,
    Ctr,
    Cfb,
    Ofb,
}

/// ECB, CBC, CFB, OFB and CTR, streaming.
struct Stream {
    key: Sm4Key,
    kind: Kind,
    dir: Direction,
    pad: bool,
    /// The chaining value: CBC/CFB last ciphertext, OFB last cipher output, CTR the next
    /// counter block.
    iv: Zeroizing<[u8; 16]>,
    /// Block modes: bytes not yet processed (a partial block, or on padded decryption
    /// up to one full block held back for the padding check). Stream modes: the
    /// current key-stream block (CFB: with the ciphertext bytes written over the used
    /// part).
    buf: Zeroizing<[u8; 32]>,
    /// Block modes: bytes in `buf`. Stream modes: key-stream bytes used (16 = none
    /// left).
    n: usize,
}

impl Stream {
    fn new(mode: SymMode, dir: Direction, key: &[u8], iv: &[u8]) -> Result<Self> {
        Self::with_key(mode, dir, Sm4Key::new(key16(key)?), iv)
    }

    /// A stream on a key schedule already made (a prepared key's copy).
    fn with_key(mode: SymMode, dir: Direction, key: Sm4Key, iv: &[u8]) -> Result<Self> {
        let (kind, pad) = match mode {
            SymMode::Ecb => (Kind::Ecb, false),
            SymMode::EcbPad => (Kind::Ecb, true),
            SymMode::Cbc => (Kind::Cbc, false),
            SymMode::CbcPad => (Kind::Cbc, true),
            SymMode::Ctr => (Kind::Ctr, false),
            SymMode::Cfb => (Kind::Cfb, false),
            SymMode::Ofb => (Kind::Ofb, false),
            SymMode::Gcm => return Err(Error::internal("GCM is built by FastSm4::gcm")),
        };
        let iv = if kind == Kind::Ecb {
            if !iv.is_empty() {
                return Err(Error::invalid_arg("ECB takes no IV"));
            }
            [0u8; 16]
        } else {
            iv16(iv)?
        };
        let stream = !matches!(kind, Kind::Ecb | Kind::Cbc);
        Ok(Self {
            key,
            kind,
            dir,
            pad,
            iv: Zeroizing::new(iv),
            buf: Zeroizing::new([0u8; 32]),
            n: if stream { BS } else { 0 },
        })
    }

    fn is_block_mode(&self) -> bool {
        matches!(self.kind, Kind::Ecb | Kind::Cbc)
    }

    /// Input bytes held back from earlier `update` calls.
    fn pending(&self) -> usize {
        if self.is_block_mode() { self.n } else { 0 }
    }

    /// Block modes: whole blocks in place.
    fn blocks(&mut self, data: &mut [u8]) -> Result<()> {
        let k = &self.key;
        whole(match (self.kind, self.dir) {
            (Kind::Ecb, Direction::Encrypt) => k.encrypt_blocks(data),
            (Kind::Ecb, Direction::Decrypt) => k.decrypt_blocks(data),
            (Kind::Cbc, Direction::Encrypt) => k.cbc_encrypt(&mut self.iv, data),
            (Kind::Cbc, Direction::Decrypt) => k.cbc_decrypt(&mut self.iv, data),
            _ => Err(ukey_simd::sm4::LengthError),
        })
    }

    /// Stream modes: transforms `data` (any length) in place.
    fn stream(&mut self, mut data: &mut [u8]) -> Result<()> {
        let cfb = self.kind == Kind::Cfb;
        let enc = self.dir == Direction::Encrypt;
        // 1. What is left of the current key-stream block.
        while self.n < BS {
            let Some((b, rest)) = data.split_first_mut() else {
                return Ok(());
            };
            let c_in = *b;
            *b ^= self.buf[self.n];
            if cfb {
                // The feedback register fills with ciphertext.
                self.buf[self.n] = if enc { *b } else { c_in };
            }
            self.n += 1;
            if cfb && self.n == BS {
                self.iv.copy_from_slice(&self.buf[..BS]);
            }
            data = rest;
        }
        // 2. Whole blocks through the kernels.
        let whole_len = data.len() / BS * BS;
        let (body, tail) = data.split_at_mut(whole_len);
        let k = &self.key;
        match self.kind {
            Kind::Ctr => k.ctr128_xor(&mut self.iv, body),
            Kind::Ofb => whole(k.ofb_xor(&mut self.iv, body))?,
            Kind::Cfb if enc => whole(k.cfb_encrypt(&mut self.iv, body))?,
            Kind::Cfb => whole(k.cfb_decrypt(&mut self.iv, body))?,
            Kind::Ecb | Kind::Cbc => return Err(Error::internal("block mode in stream()")),
        }
        // 3. A partial block opens a new key-stream block.
        if !tail.is_empty() {
            let mut ks = *self.iv;
            k.encrypt_block(&mut ks);
            match self.kind {
                Kind::Ctr => {
                    *self.iv = u128::from_be_bytes(*self.iv).wrapping_add(1).to_be_bytes();
                }
                Kind::Ofb => *self.iv = ks,
                _ => {}
            }
            self.buf[..BS].copy_from_slice(&ks);
            ks.zeroize();
            self.n = 0;
            for b in tail.iter_mut() {
                let c_in = *b;
                *b ^= self.buf[self.n];
                if cfb {
                    self.buf[self.n] = if enc { *b } else { c_in };
                }
                self.n += 1;
            }
        }
        Ok(())
    }

    /// Checks and strips PKCS#7 padding from the last block, in constant time; the
    /// plaintext length without it.
    fn unpad(last: &[u8; 16]) -> Result<usize> {
        let p = last[BS - 1];
        let mut ok = !(p.ct_eq(&0)) & !(u8::from(p > 16)).ct_eq(&1);
        for (i, &b) in last.iter().enumerate() {
            let in_pad = u8::from(BS - i <= usize::from(p));
            ok &= !(in_pad.ct_eq(&1) & !b.ct_eq(&p));
        }
        if bool::from(ok) {
            Ok(BS - usize::from(p))
        } else {
            Err(Error::DecryptFailed)
        }
    }

    fn length_error(&self) -> Error {
        if self.dir == Direction::Encrypt {
            Error::invalid_arg("data length is not a multiple of the 16-byte block (no padding)")
        } else {
            Error::invalid_data("encrypted data length is not a multiple of the 16-byte block")
        }
    }
}

impl SymCipherOps for Stream {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if !self.is_block_mode() {
            let start = out.len();
            out.extend_from_slice(input);
            return self.stream(&mut out[start..]);
        }
        let total = self.n + input.len();
        let mut n = total / BS * BS;
        if self.pad && self.dir == Direction::Decrypt && n == total && n > 0 {
            n -= BS; // keep the last block for the padding check
        }
        if n == 0 {
            self.buf[self.n..total].copy_from_slice(input);
            self.n = total;
            return Ok(());
        }
        let start = out.len();
        let take = n - self.n;
        out.extend_from_slice(&self.buf[..self.n]);
        out.extend_from_slice(&input[..take]);
        let rest = &input[take..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.n = rest.len();
        self.blocks(&mut out[start..])
    }

    fn single_part_len(&self, input_len: usize) -> Option<usize> {
        let total = self.pending().checked_add(input_len)?;
        if !self.is_block_mode() {
            return Some(total);
        }
        match (self.pad, self.dir) {
            (true, Direction::Encrypt) => (total / BS + 1).checked_mul(BS),
            (true, Direction::Decrypt) => None,
            (false, _) => total.is_multiple_of(BS).then_some(total),
        }
    }

    fn finish_into(mut self: Box<Self>, input: &[u8], out: &mut [u8]) -> Result<usize> {
        let p = self.pending();
        let total = p + input.len();
        let n = match self.single_part_len(input.len()) {
            Some(n) => n,
            // Padded decryption: decrypt in place in `out` when it holds the whole
            // ciphertext, else through a temporary.
            None if self.pad
                && self.dir == Direction::Decrypt
                && total > 0
                && total.is_multiple_of(BS)
                && out.len() >= total =>
            {
                total
            }
            None => return finish_via_vec(self, input, out),
        };
        let Some(dst) = out.get_mut(..n) else {
            return Err(Error::invalid_arg("output buffer too small"));
        };
        dst[..p].copy_from_slice(&self.buf[..p]);
        dst[p..total].copy_from_slice(input);
        if !self.is_block_mode() {
            self.stream(dst)?;
            return Ok(n);
        }
        self.buf.zeroize();
        self.n = 0;
        if self.pad && self.dir == Direction::Encrypt {
            let pad = u8::try_from(n - total).map_err(|_| Error::internal("padding"))?;
            dst[total..].fill(pad);
        }
        self.blocks(dst)?;
        if self.pad && self.dir == Direction::Decrypt {
            let last = dst.last_chunk::<16>().copied().unwrap_or_default();
            return match Self::unpad(&last) {
                Ok(keep) => Ok(n - BS + keep),
                Err(e) => {
                    dst.zeroize();
                    Err(e)
                }
            };
        }
        Ok(n)
    }

    fn finalize(mut self: Box<Self>, out: &mut Vec<u8>) -> Result<()> {
        if !self.is_block_mode() {
            return Ok(());
        }
        match (self.dir, self.pad) {
            (_, false) => {
                if self.n == 0 {
                    Ok(())
                } else {
                    Err(self.length_error())
                }
            }
            (Direction::Encrypt, true) => {
                let mut last = Zeroizing::new([0u8; BS]);
                let n = self.n;
                let p = u8::try_from(BS - n).map_err(|_| Error::internal("padding"))?;
                last[..n].copy_from_slice(&self.buf[..n]);
                last[n..].fill(p);
                self.blocks(&mut last[..])?;
                out.extend_from_slice(&last[..]);
                Ok(())
            }
            (Direction::Decrypt, true) => {
                if self.n != BS {
                    return Err(Error::invalid_data(
                        "encrypted data length is not a positive multiple of the 16-byte block",
                    ));
                }
                let mut last = Zeroizing::new([0u8; BS]);
                last.copy_from_slice(&self.buf[..BS]);
                self.blocks(&mut last[..])?;
                let keep = Self::unpad(&last)?;
                out.extend_from_slice(&last[..keep]);
                Ok(())
            }
        }
    }
}

/// GCM (SP 800-38D) with any nonce length and a 4..=16-byte tag.
struct Gcm {
    gcm: Sm4Gcm,
    ghash: ukey_simd::ghash::Ghash,
    j0: Zeroizing<[u8; 16]>,
    /// The next counter block.
    ctr: Zeroizing<[u8; 16]>,
    dir: Direction,
    tag_len: usize,
    aad_len: u64,
    text_len: u64,
    /// Encryption: the current key-stream block and how much of it is used (16 = none
    /// left).
    ks: Zeroizing<[u8; 16]>,
    ks_used: usize,
    /// Encryption: ciphertext not yet absorbed into GHASH (less than a block).
    partial: Zeroizing<[u8; 16]>,
    partial_len: usize,
    /// Decryption: all of ciphertext ‖ tag so far.
    held: Zeroizing<Vec<u8>>,
}

impl Gcm {
    fn new(key: &[u8], dir: Direction, nonce: &[u8], aad: &[u8], tag_len: usize) -> Result<Self> {
        Self::with_gcm(Sm4Gcm::new(key16(key)?), dir, nonce, aad, tag_len)
    }

    /// GCM on a key schedule and GHASH key already made (a prepared key's copy).
    fn with_gcm(
        gcm: Sm4Gcm,
        dir: Direction,
        nonce: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Self> {
        crate::crypto::sym::check_tag_len(tag_len)?;
        if nonce.is_empty() {
            return Err(Error::invalid_arg("GCM needs a nonce of at least 1 byte"));
        }
        let j0 = gcm.j0(nonce);
        let mut ctr = j0;
        let c = u32::from_be_bytes([ctr[12], ctr[13], ctr[14], ctr[15]]).wrapping_add(1);
        ctr[12..].copy_from_slice(&c.to_be_bytes());
        let mut ghash = gcm.ghash();
        ghash.update_padded(aad);
        Ok(Self {
            gcm,
            ghash,
            j0: Zeroizing::new(j0),
            ctr: Zeroizing::new(ctr),
            dir,
            tag_len,
            aad_len: u64::try_from(aad.len()).map_err(|_| Error::invalid_arg("GCM AAD"))?,
            text_len: 0,
            ks: Zeroizing::new([0u8; 16]),
            ks_used: BS,
            partial: Zeroizing::new([0u8; 16]),
            partial_len: 0,
            held: Zeroizing::new(Vec::new()),
        })
    }

    fn count(&mut self, n: usize) -> Result<()> {
        self.text_len = u64::try_from(n)
            .ok()
            .and_then(|n| self.text_len.checked_add(n))
            .filter(|&t| t <= GCM_MAX_TEXT)
            .ok_or_else(|| Error::invalid_arg("GCM message too long"))?;
        Ok(())
    }

    /// Encryption: CTR over `data` in place, continuing the key stream.
    fn ctr(&mut self, mut data: &mut [u8]) {
        while self.ks_used < BS {
            let Some((b, rest)) = data.split_first_mut() else {
                return;
            };
            *b ^= self.ks[self.ks_used];
            self.ks_used += 1;
            data = rest;
        }
        let whole_len = data.len() / BS * BS;
        let (body, tail) = data.split_at_mut(whole_len);
        self.gcm.key().ctr32_xor(&mut self.ctr, body);
        if !tail.is_empty() {
            *self.ks = [0u8; 16];
            self.gcm.key().ctr32_xor(&mut self.ctr, &mut self.ks[..]);
            for (b, k) in tail.iter_mut().zip(self.ks.iter()) {
                *b ^= k;
            }
            self.ks_used = tail.len();
        }
    }

    /// Absorbs ciphertext into GHASH, keeping a partial block for later.
    fn absorb(&mut self, mut ct: &[u8]) {
        if self.partial_len > 0 {
            let take = (BS - self.partial_len).min(ct.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&ct[..take]);
            self.partial_len += take;
            ct = &ct[take..];
            if self.partial_len == BS {
                self.ghash.update_padded(&self.partial[..]);
                self.partial_len = 0;
            }
        }
        let whole_len = ct.len() / BS * BS;
        self.ghash.update_padded(&ct[..whole_len]);
        let rest = &ct[whole_len..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len += rest.len();
    }

    /// Encrypts `data` in place and absorbs the ciphertext: the bytes that finish a
    /// started block first, then the whole blocks in one fused CTR+GHASH pass
    /// (`Sm4Gcm::seal_blocks`), then a partial last block.
    fn seal(&mut self, data: &mut [u8]) -> Result<()> {
        self.count(data.len())?;
        let lead = if self.ks_used < BS {
            (BS - self.ks_used).min(data.len())
        } else {
            0
        };
        let (head, rest) = data.split_at_mut(lead);
        self.ctr(head);
        self.absorb(head);
        let whole_len = rest.len() / BS * BS;
        let (body, tail) = rest.split_at_mut(whole_len);
        if self.ks_used == BS && self.partial_len == 0 {
            self.gcm
                .seal_blocks(&mut self.ctr, &mut self.ghash, body)
                .map_err(|_| Error::internal("GCM: whole blocks expected"))?;
        } else {
            // Unreachable: the key stream and GHASH both restart at a block boundary.
            self.ctr(body);
            self.absorb(body);
        }
        self.ctr(tail);
        self.absorb(tail);
        Ok(())
    }

    /// The full tag over everything absorbed so far.
    fn tag(&mut self) -> Zeroizing<[u8; 16]> {
        if self.partial_len > 0 {
            let n = self.partial_len;
            self.ghash.update_padded(&self.partial[..n]);
            self.partial_len = 0;
        }
        let g = self.ghash.clone();
        Zeroizing::new(self.gcm.tag(g, self.aad_len, self.text_len, &self.j0))
    }

    /// Decryption: hashes and decrypts `ct` into `out` (same length) in one pass, then
    /// checks the tag. On a mismatch `out` is zeroed, so no plaintext is released.
    fn open_into(&mut self, ct: &[u8], given: &[u8], out: &mut [u8]) -> Result<()> {
        self.count(ct.len()).map_err(|_| Error::DecryptFailed)?;
        out.copy_from_slice(ct);
        let whole_len = out.len() / BS * BS;
        let (body, tail) = out.split_at_mut(whole_len);
        self.gcm
            .open_blocks(&mut self.ctr, &mut self.ghash, body)
            .map_err(|_| Error::internal("GCM: whole blocks expected"))?;
        self.ghash.update_padded(tail);
        self.gcm.key().ctr32_xor(&mut self.ctr, tail);
        let t = self.tag();
        if !bool::from(t[..given.len()].ct_eq(given)) {
            out.zeroize();
            return Err(Error::DecryptFailed);
        }
        Ok(())
    }
}

impl SymCipherOps for Gcm {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self.dir {
            Direction::Encrypt => {
                let start = out.len();
                out.extend_from_slice(input);
                self.seal(&mut out[start..])
            }
            Direction::Decrypt => {
                if self.held.len().saturating_add(input.len()) as u64
                    > GCM_MAX_TEXT + self.tag_len as u64
                {
                    return Err(Error::invalid_data("GCM message too long"));
                }
                self.held.extend_from_slice(input);
                Ok(())
            }
        }
    }

    fn single_part_len(&self, input_len: usize) -> Option<usize> {
        match self.dir {
            Direction::Encrypt => input_len.checked_add(self.tag_len),
            Direction::Decrypt => self
                .held
                .len()
                .checked_add(input_len)?
                .checked_sub(self.tag_len),
        }
    }

    fn finish_into(mut self: Box<Self>, input: &[u8], out: &mut [u8]) -> Result<usize> {
        match self.dir {
            Direction::Encrypt => {
                let n = input.len();
                let tl = self.tag_len;
                let Some(dst) = out.get_mut(..n + tl) else {
                    return Err(Error::invalid_arg("output buffer too small"));
                };
                let (body, tag_out) = dst.split_at_mut(n);
                body.copy_from_slice(input);
                self.seal(body)?;
                let t = self.tag();
                tag_out.copy_from_slice(&t[..tl]);
                Ok(n + tl)
            }
            Direction::Decrypt if self.held.is_empty() => {
                let tl = self.tag_len;
                if input.len() < tl {
                    return Err(Error::DecryptFailed);
                }
                let (ct, given) = input.split_at(input.len() - tl);
                let Some(dst) = out.get_mut(..ct.len()) else {
                    return Err(Error::invalid_arg("output buffer too small"));
                };
                self.open_into(ct, given, dst)?;
                Ok(ct.len())
            }
            Direction::Decrypt => finish_via_vec(self, input, out),
        }
    }

    fn finalize(mut self: Box<Self>, out: &mut Vec<u8>) -> Result<()> {
        match self.dir {
            Direction::Encrypt => {
                let n = self.tag_len;
                let t = self.tag();
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
                let start = out.len();
                out.resize(start + ct.len(), 0);
                if let Err(e) = self.open_into(ct, given, &mut out[start..]) {
                    out.truncate(start);
                    return Err(e);
                }
                Ok(())
            }
        }
    }
}

/// CMAC (NIST SP 800-38B) over SM4.
struct Cmac {
    key: Sm4Key,
    k1: Zeroizing<[u8; 16]>,
    k2: Zeroizing<[u8; 16]>,
    state: Zeroizing<[u8; 16]>,
    /// The last block seen (kept until more data shows it is not the last).
    buf: Zeroizing<[u8; 16]>,
    n: usize,
}

/// Doubling in GF(2^128) (SP 800-38B §6.1, R = 0x87).
fn dbl(b: &[u8; 16]) -> [u8; 16] {
    let v = u128::from_be_bytes(*b);
    let carry = (v >> 127) as u8;
    let mut out = (v << 1).to_be_bytes();
    out[15] ^= 0x87 & carry.wrapping_neg();
    out
}

impl Cmac {
    fn new(key: &[u8]) -> Result<Self> {
        let key = Sm4Key::new(key16(key)?);
        let mut l = Zeroizing::new([0u8; 16]);
        key.encrypt_block(&mut l);
        let k1 = Zeroizing::new(dbl(&l));
        let k2 = Zeroizing::new(dbl(&k1));
        Ok(Self {
            key,
            k1,
            k2,
            state: Zeroizing::new([0u8; 16]),
            buf: Zeroizing::new([0u8; 16]),
            n: 0,
        })
    }
}

impl MacOps for Cmac {
    fn update(&mut self, mut data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // Fill the held block; flush it only once more data follows.
        let take = (BS - self.n).min(data.len());
        self.buf[self.n..self.n + take].copy_from_slice(&data[..take]);
        self.n += take;
        data = &data[take..];
        if data.is_empty() {
            return;
        }
        let _ = self.key.cbc_mac_update(&mut self.state, &self.buf[..]);
        // Whole blocks, except the last one, which is held.
        let body = (data.len() - 1) / BS * BS;
        let _ = self.key.cbc_mac_update(&mut self.state, &data[..body]);
        let rest = &data[body..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.n = rest.len();
    }

    fn finish(mut self: Box<Self>) -> Zeroizing<Vec<u8>> {
        let mut last = Zeroizing::new([0u8; 16]);
        if self.n == BS {
            for (l, (b, k)) in last.iter_mut().zip(self.buf.iter().zip(self.k1.iter())) {
                *l = b ^ k;
            }
        } else {
            last[..self.n].copy_from_slice(&self.buf[..self.n]);
            last[self.n] = 0x80;
            for (l, k) in last.iter_mut().zip(self.k2.iter()) {
                *l ^= k;
            }
        }
        let _ = self.key.cbc_mac_update(&mut self.state, &last[..]);
        Zeroizing::new(self.state.to_vec())
    }
}

/// An SM4 key prepared once: its schedule and GCM's GHASH key powers, copied into each
/// cipher started from it.
struct PreparedSm4 {
    gcm: Sm4Gcm,
}

impl PreparedSym for PreparedSm4 {
    fn cipher(
        &self,
        mode: SymMode,
        dir: Direction,
        iv: &[u8],
        aad: &[u8],
    ) -> Result<Box<dyn SymCipherOps>> {
        if mode == SymMode::Gcm {
            return Ok(Box::new(Gcm::with_gcm(self.gcm.clone(), dir, iv, aad, 16)?));
        }
        Ok(Box::new(Stream::with_key(
            mode,
            dir,
            self.gcm.key().clone(),
            iv,
        )?))
    }

    fn gcm(
        &self,
        dir: Direction,
        nonce: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Box<dyn SymCipherOps>> {
        Ok(Box::new(Gcm::with_gcm(
            self.gcm.clone(),
            dir,
            nonce,
            aad,
            tag_len,
        )?))
    }
}

impl SymProvider for FastSm4 {
    fn prepare(&self, alg: SymAlg, key: &[u8]) -> Result<Option<Box<dyn PreparedSym>>> {
        only_sm4(alg)?;
        Ok(Some(Box::new(PreparedSm4 {
            gcm: Sm4Gcm::new(key16(key)?),
        })))
    }

    fn cipher(
        &self,
        alg: SymAlg,
        mode: SymMode,
        dir: Direction,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
    ) -> Result<Box<dyn SymCipherOps>> {
        only_sm4(alg)?;
        if mode == SymMode::Gcm {
            return Ok(Box::new(Gcm::new(key, dir, iv, aad, 16)?));
        }
        Ok(Box::new(Stream::new(mode, dir, key, iv)?))
    }

    fn gcm(
        &self,
        alg: SymAlg,
        dir: Direction,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Box<dyn SymCipherOps>> {
        only_sm4(alg)?;
        Ok(Box::new(Gcm::new(key, dir, nonce, aad, tag_len)?))
    }

    fn cmac(&self, alg: SymAlg, key: &[u8]) -> Result<Box<dyn MacOps>> {
        only_sm4(alg)?;
        Ok(Box::new(Cmac::new(key)?))
    }

    fn encrypt_block(&self, alg: SymAlg, key: &[u8], block: &mut [u8]) -> Result<()> {
        only_sm4(alg)?;
        let b: &mut [u8; 16] = block
            .try_into()
            .map_err(|_| Error::invalid_arg("SM4 block encryption needs a 16-byte block"))?;
        Sm4Key::new(key16(key)?).encrypt_block(b);
        Ok(())
    }

    fn aes_key_wrap(&self, _kek: &[u8], _key: &[u8], _pad: bool) -> Result<Vec<u8>> {
        Err(Error::unsupported("key wrap with SM4"))
    }

    fn aes_key_unwrap(&self, _: &[u8], _: &[u8], _: bool) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::unsupported("key unwrap with SM4"))
    }
}

#[cfg(test)]
mod tests {
    //! Differential tests: this provider against RustCrypto (the portable reference)
    //! through the `SymProvider` trait, with random keys, IVs, lengths and random
    //! splits of the input over `update` calls, and single-part `finish_into`.

    use super::*;
    use crate::crypto::backend::symmetric::RustCryptoSm4;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    const MODES: [SymMode; 8] = [
        SymMode::Ecb,
        SymMode::EcbPad,
        SymMode::Cbc,
        SymMode::CbcPad,
        SymMode::Cfb,
        SymMode::Ofb,
        SymMode::Ctr,
        SymMode::Gcm,
    ];

    /// Runs a cipher over `data` in random pieces; the output or the error.
    #[allow(clippy::too_many_arguments)]
    fn run(
        p: &dyn SymProvider,
        mode: SymMode,
        dir: Direction,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        tag_len: usize,
        data: &[u8],
        rng: &mut Rng,
    ) -> Result<Vec<u8>> {
        let c = if mode == SymMode::Gcm {
            p.gcm(SymAlg::Sm4, dir, key, iv, aad, tag_len)?
        } else {
            p.cipher(SymAlg::Sm4, mode, dir, key, iv, aad)?
        };
        drive(c, data, rng)
    }

    /// Both sides gave the same output, or failed with the same kind of error.
    fn same_outcome(ours: &Result<Vec<u8>>, theirs: &Result<Vec<u8>>, what: &str) {
        match (ours, theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}"),
            (Err(a), Err(b)) => assert_eq!(
                std::mem::discriminant(a),
                std::mem::discriminant(b),
                "{what} errors: {a:?} vs {b:?}"
            ),
            _ => panic!("{what}: {ours:?} vs {theirs:?}"),
        }
    }

    /// Feeds `data` to `c` in random pieces and finishes; the output or the error.
    fn drive(mut c: Box<dyn SymCipherOps>, data: &[u8], rng: &mut Rng) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() && rng.below(3) != 0 {
            let k = rng.below(rest.len() + 1);
            c.update(&rest[..k], &mut out)?;
            rest = &rest[k..];
        }
        if rng.below(2) == 0 {
            let mut buf = vec![0u8; out.len() + rest.len() + 32];
            let start = out.len();
            let n = c.finish_into(rest, &mut buf[start..])?;
            out.extend_from_slice(&buf[start..start + n]);
        } else {
            c.update(rest, &mut out)?;
            c.finalize(&mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn every_mode_matches_rustcrypto() {
        let mut rng = Rng(2026);
        for case in 0..30_000 {
            let mode = MODES[case % MODES.len()];
            let key = rng.bytes(16);
            let iv = match mode {
                SymMode::Ecb | SymMode::EcbPad => Vec::new(),
                SymMode::Gcm => {
                    let n = if rng.below(2) == 0 {
                        12
                    } else {
                        1 + rng.below(40)
                    };
                    rng.bytes(n)
                }
                _ => rng.bytes(16),
            };
            let aad = if mode == SymMode::Gcm {
                let n = rng.below(50);
                rng.bytes(n)
            } else {
                Vec::new()
            };
            let tag_len = 4 + rng.below(13);
            let cap = if rng.below(8) == 0 { 3000 } else { 200 };
            let mut len = rng.below(cap);
            if matches!(mode, SymMode::Ecb | SymMode::Cbc) && rng.below(4) != 0 {
                len -= len % 16;
            }
            let data = rng.bytes(len);
            let seed = rng.next();
            let ours = run(
                &FastSm4,
                mode,
                Direction::Encrypt,
                &key,
                &iv,
                &aad,
                tag_len,
                &data,
                &mut Rng(seed),
            );
            let theirs = run(
                &RustCryptoSm4,
                mode,
                Direction::Encrypt,
                &key,
                &iv,
                &aad,
                tag_len,
                &data,
                &mut Rng(seed),
            );
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{mode:?} encrypt, case {case}, len {len}"),
                (Err(_), Err(_)) => continue,
                _ => panic!("{mode:?} encrypt, case {case}: {ours:?} vs {theirs:?}"),
            }
            let mut ct = ours.unwrap_or_default();
            if rng.below(5) == 0 && !ct.is_empty() {
                let i = rng.below(ct.len());
                ct[i] ^= 1 << rng.below(8);
            }
            let seed = rng.next();
            let ours = run(
                &FastSm4,
                mode,
                Direction::Decrypt,
                &key,
                &iv,
                &aad,
                tag_len,
                &ct,
                &mut Rng(seed),
            );
            let theirs = run(
                &RustCryptoSm4,
                mode,
                Direction::Decrypt,
                &key,
                &iv,
                &aad,
                tag_len,
                &ct,
                &mut Rng(seed),
            );
            same_outcome(&ours, &theirs, &format!("{mode:?} decrypt, case {case}"));
        }
    }

    /// One prepared key serves message after message, in every mode and both
    /// directions, with the same output as a fresh RustCrypto cipher each time (nothing
    /// of one message, GHASH state included, carries into the next).
    #[test]
    fn a_prepared_key_serves_many_messages() {
        let mut rng = Rng(0x5eed);
        for _ in 0..40 {
            let key = rng.bytes(16);
            let Ok(Some(prepared)) = FastSm4.prepare(SymAlg::Sm4, &key) else {
                panic!("SM4 keys are prepared");
            };
            for case in 0..200 {
                let mode = MODES[case % MODES.len()];
                let dir = if rng.below(2) == 0 {
                    Direction::Encrypt
                } else {
                    Direction::Decrypt
                };
                let iv = match mode {
                    SymMode::Ecb | SymMode::EcbPad => Vec::new(),
                    SymMode::Gcm => {
                        let n = 1 + rng.below(20);
                        rng.bytes(n)
                    }
                    _ => rng.bytes(16),
                };
                let aad_len = if mode == SymMode::Gcm {
                    rng.below(40)
                } else {
                    0
                };
                let aad = rng.bytes(aad_len);
                let tag_len = 4 + rng.below(13);
                let mut len = rng.below(600);
                if matches!(mode, SymMode::Ecb | SymMode::Cbc) || dir == Direction::Decrypt {
                    len -= len % 16;
                }
                let data = rng.bytes(len);
                let seed = rng.next();
                let ours = if mode == SymMode::Gcm {
                    prepared.gcm(dir, &iv, &aad, tag_len)
                } else {
                    prepared.cipher(mode, dir, &iv, &aad)
                }
                .and_then(|c| drive(c, &data, &mut Rng(seed)));
                let theirs = run(
                    &RustCryptoSm4,
                    mode,
                    dir,
                    &key,
                    &iv,
                    &aad,
                    tag_len,
                    &data,
                    &mut Rng(seed),
                );
                same_outcome(&ours, &theirs, &format!("{mode:?} {dir:?}, case {case}"));
            }
        }
    }

    /// GCM over messages of several fused 64-block batches, split at random over
    /// `update` (the key stream and GHASH restart mid-block), against RustCrypto; a
    /// forged single-part open leaves no plaintext in the caller's buffer.
    #[test]
    fn gcm_long_messages_and_failed_open_release_nothing() {
        let mut rng = Rng(0x6c);
        for case in 0..3_000 {
            let key = rng.bytes(16);
            let n = if rng.below(2) == 0 {
                12
            } else {
                1 + rng.below(40)
            };
            let iv = rng.bytes(n);
            let aad = {
                let n = rng.below(70);
                rng.bytes(n)
            };
            let tag_len = 4 + rng.below(13);
            let len = rng.below(6000);
            let data = rng.bytes(len);
            let seed = rng.next();
            let e = Direction::Encrypt;
            let ours = run(
                &FastSm4,
                SymMode::Gcm,
                e,
                &key,
                &iv,
                &aad,
                tag_len,
                &data,
                &mut Rng(seed),
            );
            let theirs = run(
                &RustCryptoSm4,
                SymMode::Gcm,
                e,
                &key,
                &iv,
                &aad,
                tag_len,
                &data,
                &mut Rng(seed),
            );
            let ct = ours.unwrap();
            assert_eq!(ct, theirs.unwrap(), "GCM encrypt, case {case}, len {len}");
            let d = Direction::Decrypt;
            // Decryption in two pieces through `update` + `finalize`, and single-part
            // through `finish_into` (the fused open into the caller's buffer).
            let mut c = FastSm4
                .gcm(SymAlg::Sm4, d, &key, &iv, &aad, tag_len)
                .unwrap();
            let mut pt = Vec::new();
            let cut = rng.below(ct.len() + 1);
            c.update(&ct[..cut], &mut pt).unwrap();
            c.update(&ct[cut..], &mut pt).unwrap();
            c.finalize(&mut pt).unwrap();
            assert_eq!(pt, data, "GCM decrypt, case {case}, len {len}");
            let c = FastSm4
                .gcm(SymAlg::Sm4, d, &key, &iv, &aad, tag_len)
                .unwrap();
            let mut out = vec![0u8; len + 8];
            assert_eq!(c.finish_into(&ct, &mut out).unwrap(), len);
            assert_eq!(&out[..len], &data[..], "GCM single-part open, case {case}");
            let mut bad = ct.clone();
            let i = rng.below(bad.len());
            bad[i] ^= 1 << rng.below(8);
            let c = FastSm4
                .gcm(SymAlg::Sm4, d, &key, &iv, &aad, tag_len)
                .unwrap();
            let mut out = vec![0xa5u8; len + 8];
            assert!(matches!(
                c.finish_into(&bad, &mut out),
                Err(Error::DecryptFailed)
            ));
            assert!(
                out[..len].iter().all(|&b| b == 0) && out[len..].iter().all(|&b| b == 0xa5),
                "GCM forged open released data, case {case}, len {len}"
            );
        }
    }

    #[test]
    fn cmac_and_block_match_rustcrypto() {
        let mut rng = Rng(7);
        for case in 0..20_000 {
            let key = rng.bytes(16);
            let mut a = FastSm4.cmac(SymAlg::Sm4, &key).unwrap();
            let mut b = RustCryptoSm4.cmac(SymAlg::Sm4, &key).unwrap();
            for _ in 0..rng.below(4) {
                let n = rng.below(70);
                let d = rng.bytes(n);
                a.update(&d);
                b.update(&d);
            }
            assert_eq!(a.finish(), b.finish(), "CMAC case {case}");
            let mut x = rng.bytes(16);
            let mut y = x.clone();
            FastSm4.encrypt_block(SymAlg::Sm4, &key, &mut x).unwrap();
            RustCryptoSm4
                .encrypt_block(SymAlg::Sm4, &key, &mut y)
                .unwrap();
            assert_eq!(x, y);
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        let k = [1u8; 16];
        let e = Direction::Encrypt;
        assert!(
            FastSm4
                .cipher(SymAlg::Sm4, SymMode::Cbc, e, &k[..15], &k, &[])
                .is_err()
        );
        assert!(
            FastSm4
                .cipher(SymAlg::Sm4, SymMode::Cbc, e, &k, &k[..8], &[])
                .is_err()
        );
        assert!(
            FastSm4
                .cipher(SymAlg::Sm4, SymMode::Ecb, e, &k, &k, &[])
                .is_err()
        );
        assert!(
            FastSm4
                .cipher(SymAlg::Aes, SymMode::Ecb, e, &k, &[], &[])
                .is_err()
        );
        assert!(FastSm4.gcm(SymAlg::Sm4, e, &k, &[], &[], 16).is_err());
        assert!(FastSm4.gcm(SymAlg::Sm4, e, &k, &k, &[], 3).is_err());
        assert!(FastSm4.gcm(SymAlg::Sm4, e, &k, &k, &[], 17).is_err());
        assert!(
            FastSm4
                .encrypt_block(SymAlg::Sm4, &k, &mut [0u8; 15])
                .is_err()
        );
        let c = FastSm4
            .cipher(SymAlg::Sm4, SymMode::Cbc, e, &k, &k, &[])
            .unwrap();
        assert!(c.finish_into(&[0u8; 17], &mut [0u8; 64]).is_err());
        let c = FastSm4
            .cipher(SymAlg::Sm4, SymMode::Ctr, e, &k, &k, &[])
            .unwrap();
        assert!(c.finish_into(&[0u8; 17], &mut [0u8; 16]).is_err());
    }
}
