//! SM3 (GB/T 32905-2016, GM/T 0004-2012): a streaming hasher, HMAC-SM3, and a
//! multi-buffer batch API, each with kernels per [`Tier`].
//!
//! | tier | single stream | [`sm3_many`] |
//! |---|---|---|
//! | `Portable` | unrolled scalar Rust | one message after another |
//! | `AesniAvx2`, `GfniAvx2` | the same compiled with BMI2 (`rorx`) | AVX2, 8 lanes |
//! | `GfniAvx512` | the same compiled with BMI2 (`rorx`) | AVX-512, 16 lanes |
//!
//! Every entry point has a `*_with_tier` twin for tests; a tier the CPU lacks is
//! lowered to the best one it has ([`Tier::detected_up_to`]), never executed.

// The dispatch below calls the `#[target_feature]` kernels after tier detection.
#![allow(unsafe_code)]

use zeroize::Zeroize;

use crate::Tier;

#[cfg(target_arch = "x86_64")]
mod multi;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

/// The SM3 initial value (§4.1).
pub const IV: [u32; 8] = [
    0x7380_166f,
    0x4914_b2b9,
    0x1724_42d7,
    0xda8a_0600,
    0xa96f_30bc,
    0x1631_38aa,
    0xe38d_ee4d,
    0xb0fb_0e4e,
];

/// Digest length in bytes.
pub const DIGEST_LEN: usize = 32;
/// Block length in bytes.
pub const BLOCK_LEN: usize = 64;

/// Compresses whole 64-byte blocks into `state` with the fastest kernel of
/// [`Tier::current`].
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    compress_with_tier(Tier::current(), state, blocks);
}

/// [`compress`] with an explicit tier (lowered to what the CPU supports).
pub fn compress_with_tier(tier: Tier, state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    Kernel::for_tier(tier).compress(state, blocks);
}

/// A single-stream kernel, resolved once from a tier (hashers keep it, so an update
/// does not re-run feature detection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Portable,
    /// Only built by [`Kernel::for_tier`] after BMI2 was detected.
    #[cfg(target_arch = "x86_64")]
    Bmi2,
}

/// Resolves `tier` to the best tier the CPU has (no detection for the current tier).
fn resolve(tier: Tier) -> Tier {
    let current = Tier::current();
    if tier == current {
        current
    } else {
        Tier::detected_up_to(tier)
    }
}

impl Kernel {
    fn for_tier(tier: Tier) -> Self {
        match resolve(tier) {
            Tier::Portable => Kernel::Portable,
            // Every tier above Portable requires BMI2 (`Tier::supported`).
            #[cfg(target_arch = "x86_64")]
            Tier::AesniAvx2 | Tier::GfniAvx2 | Tier::GfniAvx512 => Kernel::Bmi2,
            #[cfg(not(target_arch = "x86_64"))]
            _ => Kernel::Portable,
        }
    }

    fn compress(self, state: &mut [u32; 8], blocks: &[[u8; 64]]) {
        match self {
            Kernel::Portable => portable::compress(state, blocks),
            #[cfg(target_arch = "x86_64")]
            Kernel::Bmi2 => {
                // SAFETY: `Kernel::Bmi2` is only built by `for_tier` from a tier that
                // `resolve` confirmed this CPU supports, and every such tier needs BMI2,
                // the only feature the kernel enables.
                unsafe { x86::compress_bmi2(state, blocks) }
            }
        }
    }
}

fn state_to_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// A streaming SM3 hasher. `Clone` copies the running state (for a keyed prefix such
/// as HMAC's); the state and buffered input are zeroized on drop.
#[derive(Clone)]
pub struct Sm3 {
    state: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    /// Bytes absorbed so far (the length field is its bit count mod 2^64).
    total: u64,
    tier: Tier,
    kernel: Kernel,
}

impl std::fmt::Debug for Sm3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sm3")
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

impl Default for Sm3 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sm3 {
    /// A hasher on [`Tier::current`].
    pub fn new() -> Self {
        Self::with_tier(Tier::current())
    }

    /// A hasher on `tier` (lowered to what the CPU supports).
    pub fn with_tier(tier: Tier) -> Self {
        let tier = resolve(tier);
        Self {
            state: IV,
            buf: [0; 64],
            buf_len: 0,
            total: 0,
            tier,
            kernel: Kernel::for_tier(tier),
        }
    }

    /// The tier this hasher runs on.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Absorbs `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            let block = [self.buf];
            self.kernel.compress(&mut self.state, &block);
            self.buf_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        self.kernel.compress(&mut self.state, blocks);
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Pads and returns the digest; the state is left spent (reset or drop it).
    fn pad_and_output(&mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        let n = self.buf_len;
        self.buf[n] = 0x80;
        self.buf[n + 1..].fill(0);
        if n >= 56 {
            let block = [self.buf];
            self.kernel.compress(&mut self.state, &block);
            self.buf.fill(0);
        }
        self.buf[56..].copy_from_slice(&bits.to_be_bytes());
        let block = [self.buf];
        self.kernel.compress(&mut self.state, &block);
        state_to_bytes(&self.state)
    }

    /// Pads, returns the digest and leaves the hasher reset to the empty message.
    pub fn finalize_reset(&mut self) -> [u8; 32] {
        let out = self.pad_and_output();
        self.zeroize();
        self.state = IV;
        out
    }

    /// Pads and returns the digest (the state is zeroized when `self` drops).
    pub fn finalize(mut self) -> [u8; 32] {
        self.pad_and_output()
    }

    /// One-shot digest on [`Tier::current`].
    pub fn digest(data: &[u8]) -> [u8; 32] {
        Self::digest_with_tier(Tier::current(), data)
    }

    /// One-shot digest on `tier`.
    pub fn digest_with_tier(tier: Tier, data: &[u8]) -> [u8; 32] {
        let mut h = Self::with_tier(tier);
        h.update(data);
        h.finalize()
    }
}

impl Zeroize for Sm3 {
    fn zeroize(&mut self) {
        self.state.zeroize();
        self.buf.zeroize();
        self.buf_len = 0;
        self.total = 0;
    }
}

impl Drop for Sm3 {
    fn drop(&mut self) {
        self.zeroize();
    }
}

/// HMAC-SM3 (RFC 2104 with SM3, as GM/T 0042 uses it). The keyed inner and outer
/// states are zeroized on drop; `Clone` reuses a key without rehashing it.
#[derive(Clone)]
pub struct HmacSm3 {
    inner: Sm3,
    outer: Sm3,
}

impl std::fmt::Debug for HmacSm3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSm3 { .. }")
    }
}

impl HmacSm3 {
    /// Keys an HMAC on [`Tier::current`]. Any key length is accepted.
    pub fn new(key: &[u8]) -> Self {
        Self::with_tier(Tier::current(), key)
    }

    /// Keys an HMAC on `tier`.
    pub fn with_tier(tier: Tier, key: &[u8]) -> Self {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            let mut d = Sm3::digest_with_tier(tier, key);
            k[..32].copy_from_slice(&d);
            d.zeroize();
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut pad = [0u8; 64];
        let mut inner = Sm3::with_tier(tier);
        let mut outer = Sm3::with_tier(tier);
        for (p, b) in pad.iter_mut().zip(&k) {
            *p = b ^ 0x36;
        }
        inner.update(&pad);
        for (p, b) in pad.iter_mut().zip(&k) {
            *p = b ^ 0x5c;
        }
        outer.update(&pad);
        pad.zeroize();
        k.zeroize();
        Self { inner, outer }
    }

    /// Absorbs `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// Returns the MAC.
    pub fn finalize(mut self) -> [u8; 32] {
        let mut ih = self.inner.finalize_reset();
        self.outer.update(&ih);
        ih.zeroize();
        self.outer.finalize_reset()
    }

    /// One-shot HMAC-SM3 on [`Tier::current`].
    pub fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut h = Self::new(key);
        h.update(data);
        h.finalize()
    }
}

/// `out` does not have one slot per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthMismatch {
    /// Number of messages.
    pub messages: usize,
    /// Number of output slots.
    pub outputs: usize,
}

impl std::fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sm3_many: {} messages but {} output slots",
            self.messages, self.outputs
        )
    }
}

impl std::error::Error for LengthMismatch {}

/// Hashes many independent messages at once: `out[i] = SM3(msgs[i])`. Uses 16 lanes
/// with AVX-512, 8 with AVX2; lanes are refilled as messages finish, so mixed lengths
/// keep every lane busy. Nothing is written when the lengths differ.
pub fn sm3_many(msgs: &[&[u8]], out: &mut [[u8; 32]]) -> Result<(), LengthMismatch> {
    sm3_many_with_tier(Tier::current(), msgs, out)
}

/// [`sm3_many`] on an explicit tier.
pub fn sm3_many_with_tier(
    tier: Tier,
    msgs: &[&[u8]],
    out: &mut [[u8; 32]],
) -> Result<(), LengthMismatch> {
    if msgs.len() != out.len() {
        return Err(LengthMismatch {
            messages: msgs.len(),
            outputs: out.len(),
        });
    }
    let tier = resolve(tier);
    // Fewer messages than lanes/4 would waste most of the vector: go single-stream.
    match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::GfniAvx512 if msgs.len() > 8 => {
            many_driver::<16>(msgs, out, |s, b| {
                // SAFETY: the AVX-512 tier (AVX-512F and BW included) was detected.
                unsafe { multi::x16::compress(s, b) }
            });
        }
        #[cfg(target_arch = "x86_64")]
        Tier::AesniAvx2 | Tier::GfniAvx2 | Tier::GfniAvx512 if msgs.len() > 2 => {
            many_driver::<8>(msgs, out, |s, b| {
                // SAFETY: an AVX2 tier (or above) was detected, so AVX2 is present.
                unsafe { multi::x8::compress(s, b) }
            });
        }
        _ => {
            for (m, o) in msgs.iter().zip(out.iter_mut()) {
                *o = Sm3::digest_with_tier(tier, m);
            }
        }
    }
    Ok(())
}

static ZERO_BLOCK: [u8; 64] = [0; 64];

/// One message in a lane: its whole blocks come from the message, the last one or two
/// (with the padding) from `tail`.
struct Lane<'a> {
    idx: usize,
    msg: &'a [[u8; 64]],
    tail: [[u8; 64]; 2],
    blocks: usize,
    next: usize,
}

impl<'a> Lane<'a> {
    fn new(idx: usize, msg: &'a [u8]) -> Self {
        let (whole, rest) = msg.as_chunks::<64>();
        let mut tail = [[0u8; 64]; 2];
        let extra = if rest.len() < 56 { 1 } else { 2 };
        tail[0][..rest.len()].copy_from_slice(rest);
        tail[0][rest.len()] = 0x80;
        let bits = (msg.len() as u64).wrapping_mul(8).to_be_bytes();
        tail[extra - 1][56..].copy_from_slice(&bits);
        Self {
            idx,
            msg: whole,
            tail,
            blocks: whole.len() + extra,
            next: 0,
        }
    }

    fn block(&self) -> &[u8; 64] {
        match self.msg.get(self.next) {
            Some(b) => b,
            None => &self.tail[self.next - self.msg.len()],
        }
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        // The tail holds up to 63 message bytes.
        self.tail.zeroize();
    }
}

/// The lane scheduler shared by the 8- and 16-lane kernels.
fn many_driver<const L: usize>(
    msgs: &[&[u8]],
    out: &mut [[u8; 32]],
    mut kernel: impl FnMut(&mut [[u32; L]; 8], &[&[u8; 64]; L]),
) {
    let mut state = [[0u32; L]; 8];
    let mut lanes: [Option<Lane<'_>>; L] = std::array::from_fn(|_| None);
    let mut pending = msgs.iter().enumerate();
    loop {
        let mut active = 0;
        for (l, lane) in lanes.iter_mut().enumerate() {
            if lane.is_none()
                && let Some((i, m)) = pending.next()
            {
                *lane = Some(Lane::new(i, m));
                for (s, iv) in state.iter_mut().zip(IV) {
                    s[l] = iv;
                }
            }
            active += usize::from(lane.is_some());
        }
        if active == 0 {
            break;
        }
        {
            let blocks: [&[u8; 64]; L] =
                std::array::from_fn(|l| lanes[l].as_ref().map_or(&ZERO_BLOCK, Lane::block));
            kernel(&mut state, &blocks);
        }
        for (l, slot) in lanes.iter_mut().enumerate() {
            if let Some(lane) = slot {
                lane.next += 1;
                if lane.next == lane.blocks {
                    let words: [u32; 8] = std::array::from_fn(|i| state[i][l]);
                    out[lane.idx] = state_to_bytes(&words);
                    *slot = None;
                }
            }
        }
    }
    state.zeroize();
}

/// One-shot SM3 on [`Tier::current`].
pub fn sm3(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abc_on_every_tier() {
        let want = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0";
        for t in Tier::available() {
            assert_eq!(hex(&Sm3::digest_with_tier(t, b"abc")), want, "{t:?}");
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
