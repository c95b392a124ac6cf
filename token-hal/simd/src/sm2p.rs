//! Arithmetic modulo the SM2 prime p = 2^256 − 2^224 − 2^96 + 2^64 − 1 with BMI2
//! (`mulx`) and ADX, for the fast SM2 backend in token-hal.
//!
//! Two pieces, both behind [`Bmi2Adx`], a zero-sized proof that the CPU has BMI2 and
//! ADX and that `UKEY_CPU_TIER` allows them (it is only obtainable after detection, and
//! `UKEY_CPU_TIER=portable` never yields one):
//!
//! - [`Bmi2Adx::mul`] / [`Bmi2Adx::square`]: Montgomery multiplication and squaring
//!   (R = 2^256) on four little-endian 64-bit limbs, the product with `mulx`, then four
//!   Montgomery steps that need no multiplication (−p^−1 ≡ 1 mod 2^64, and
//!   (m·p + m)/2^64 = m·2^192 − m·2^160 − m·2^32 + m). Branch-free, no memory indexed by
//!   data. Inputs must be below p (the result is then below p too).
//! - [`Bmi2Adx::run`]: the "generic trampoline". It calls a caller-supplied
//!   [`Kernel`] from inside a function compiled with `bmi2,adx`, so that a whole
//!   scalar multiplication written in plain safe Rust in token-hal (marked
//!   `#[inline(always)]`) is compiled with those features, and the `#[inline]` kernels
//!   above inline into its loops instead of being called per field operation.
//!
//! The portable twin of both is token-hal's own `sm2fast::field` code; its differential
//! tests compare the two on every tier this machine can force.

// The only `unsafe` here calls `#[target_feature(enable = "bmi2,adx")]` functions, which
// a `Bmi2Adx` value proves the CPU supports.
#![allow(unsafe_code)]

use crate::Tier;

/// Proof that this CPU has BMI2 and ADX and that the tier cap allows using them.
/// Zero-sized; only [`Bmi2Adx::get`] / [`Bmi2Adx::for_tier`] make one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bmi2Adx {
    _proof: (),
}

/// A computation [`Bmi2Adx::run`] compiles with BMI2 and ADX enabled. Implement `run`
/// with `#[inline(always)]` (and everything it calls likewise) for the features to reach
/// the inner loops; whatever is not inlined still runs correctly, on the baseline
/// target's instructions.
pub trait Kernel {
    /// What the computation returns.
    type Output;
    /// The computation.
    fn run(self) -> Self::Output;
}

impl Bmi2Adx {
    /// The proof for this process's tier ([`Tier::current`]).
    pub fn get() -> Option<Self> {
        Self::for_tier(Tier::current())
    }

    /// The proof, if `tier` is above [`Tier::Portable`] and supported (every x86 tier
    /// above portable includes BMI2) and the CPU also has ADX.
    pub fn for_tier(tier: Tier) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if tier != Tier::Portable
                && tier.supported()
                && std::arch::is_x86_feature_detected!("bmi2")
                && std::arch::is_x86_feature_detected!("adx")
            {
                return Some(Self { _proof: () });
            }
        }
        let _ = tier;
        None
    }

    /// Runs `k` inside a function compiled with `bmi2,adx`.
    #[inline]
    pub fn run<K: Kernel>(self, k: K) -> K::Output {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: a `Bmi2Adx` exists only after `for_tier` detected BMI2 and ADX on
            // this CPU; `run_bmi2_adx` needs nothing else.
            unsafe { x86::run_bmi2_adx(k) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            k.run()
        }
    }

    /// Montgomery product a·b·2^−256 mod p (a, b < p).
    #[inline(always)]
    pub fn mul(self, a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: as in `run`: the proof means BMI2 and ADX were detected.
            unsafe { x86::mul(a, b) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (a, b);
            unreachable!("no Bmi2Adx proof exists off x86-64")
        }
    }

    /// Montgomery square a²·2^−256 mod p (a < p).
    #[inline(always)]
    pub fn square(self, a: &[u64; 4]) -> [u64; 4] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: as in `run`.
            unsafe { x86::square(a) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = a;
            unreachable!("no Bmi2Adx proof exists off x86-64")
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::{_addcarry_u64, _mulx_u64, _subborrow_u64};

    use super::Kernel;

    /// p, little-endian limbs.
    const P: [u64; 4] = [
        0xFFFF_FFFF_FFFF_FFFF,
        0xFFFF_FFFF_0000_0000,
        0xFFFF_FFFF_FFFF_FFFF,
        0xFFFF_FFFE_FFFF_FFFF,
    ];

    #[target_feature(enable = "bmi2,adx")]
    pub(super) fn run_bmi2_adx<K: Kernel>(k: K) -> K::Output {
        k.run()
    }

    #[inline(always)]
    fn adc(c: u8, a: u64, b: u64, out: &mut u64) -> u8 {
        _addcarry_u64(c, a, b, out)
    }

    #[inline(always)]
    fn sbb(c: u8, a: u64, b: u64, out: &mut u64) -> u8 {
        _subborrow_u64(c, a, b, out)
    }

    /// One Montgomery step on a value r < 2^256: (r + m·p)/2^64 with m = r_0, which is
    /// [r_1, r_2, r_3, 0] + X, X = m·2^192 − m·2^160 − m·2^32 + m, and stays below
    /// 2^256 ((2^256 − 1) + (2^64 − 1)(2^256 − 1) < 2^320).
    #[inline(always)]
    fn mont_step(r: [u64; 4]) -> [u64; 4] {
        let m = r[0];
        let lo = m << 32;
        let hi = m >> 32;
        let (mut x0, mut x1, mut x2, mut x3) = (0, 0, 0, 0);
        let b = sbb(0, m, lo, &mut x0);
        let b = sbb(b, 0, hi, &mut x1);
        let b = sbb(b, 0, lo, &mut x2);
        sbb(b, m, hi, &mut x3);
        let mut o = [0u64; 4];
        let c = adc(0, r[1], x0, &mut o[0]);
        let c = adc(c, r[2], x1, &mut o[1]);
        let c = adc(c, r[3], x2, &mut o[2]);
        adc(c, 0, x3, &mut o[3]);
        o
    }

    /// t·2^−256 mod p for t = a·b with a, b < p.
    #[inline(always)]
    fn reduce(t: &[u64; 8]) -> [u64; 4] {
        // L' = (L + M·p)/2^256 ≤ p for the low half L, then L' + H < 2p.
        let mut r = [t[0], t[1], t[2], t[3]];
        for _ in 0..4 {
            r = mont_step(r);
        }
        let mut s = [0u64; 4];
        let c = adc(0, r[0], t[4], &mut s[0]);
        let c = adc(c, r[1], t[5], &mut s[1]);
        let c = adc(c, r[2], t[6], &mut s[2]);
        let c = adc(c, r[3], t[7], &mut s[3]);
        let mut d = [0u64; 4];
        let b = sbb(0, s[0], P[0], &mut d[0]);
        let b = sbb(b, s[1], P[1], &mut d[1]);
        let b = sbb(b, s[2], P[2], &mut d[2]);
        let b = sbb(b, s[3], P[3], &mut d[3]);
        let mut top = 0;
        // Borrow out of (carry − 0 − b): set exactly when s + carry·2^256 < p.
        let b = sbb(b, u64::from(c), 0, &mut top);
        let keep = 0u64.wrapping_sub(u64::from(b));
        [
            (s[0] & keep) | (d[0] & !keep),
            (s[1] & keep) | (d[1] & !keep),
            (s[2] & keep) | (d[2] & !keep),
            (s[3] & keep) | (d[3] & !keep),
        ]
    }

    /// a_i·b as five limbs.
    #[target_feature(enable = "bmi2,adx")]
    #[inline]
    fn row(ai: u64, b: &[u64; 4]) -> [u64; 5] {
        let (mut h0, mut h1, mut h2, mut h3) = (0u64, 0u64, 0u64, 0u64);
        let l0 = _mulx_u64(ai, b[0], &mut h0);
        let l1 = _mulx_u64(ai, b[1], &mut h1);
        let l2 = _mulx_u64(ai, b[2], &mut h2);
        let l3 = _mulx_u64(ai, b[3], &mut h3);
        let mut r = [l0, 0, 0, 0, 0];
        let c = adc(0, l1, h0, &mut r[1]);
        let c = adc(c, l2, h1, &mut r[2]);
        let c = adc(c, l3, h2, &mut r[3]);
        adc(c, h3, 0, &mut r[4]);
        r
    }

    #[target_feature(enable = "bmi2,adx")]
    #[inline]
    pub(super) fn mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        let r0 = row(a[0], b);
        let mut t = [r0[0], r0[1], r0[2], r0[3], r0[4], 0, 0, 0];
        for i in 1..4 {
            let r = row(a[i], b);
            let c = adc(0, t[i], r[0], &mut t[i]);
            let c = adc(c, t[i + 1], r[1], &mut t[i + 1]);
            let c = adc(c, t[i + 2], r[2], &mut t[i + 2]);
            let c = adc(c, t[i + 3], r[3], &mut t[i + 3]);
            // t[i + 4] is still zero here; the sum cannot carry out (a·b < 2^512).
            adc(c, 0, r[4], &mut t[i + 4]);
        }
        reduce(&t)
    }

    #[target_feature(enable = "bmi2,adx")]
    #[inline]
    pub(super) fn square(a: &[u64; 4]) -> [u64; 4] {
        // Cross products a_i·a_j, i < j, into t[1..7].
        let mut h = [0u64; 6];
        let l01 = _mulx_u64(a[0], a[1], &mut h[0]);
        let l02 = _mulx_u64(a[0], a[2], &mut h[1]);
        let l03 = _mulx_u64(a[0], a[3], &mut h[2]);
        let l12 = _mulx_u64(a[1], a[2], &mut h[3]);
        let l13 = _mulx_u64(a[1], a[3], &mut h[4]);
        let l23 = _mulx_u64(a[2], a[3], &mut h[5]);
        let mut t = [0u64; 8];
        // Row of a_0: t1 = l01, t2 = h01 + l02, t3 = h02 + l03, t4 = h03.
        t[1] = l01;
        let c = adc(0, h[0], l02, &mut t[2]);
        let c = adc(c, h[1], l03, &mut t[3]);
        adc(c, h[2], 0, &mut t[4]);
        // Row of a_1: + l12·2^192 … : t3 += l12, t4 += h12 + l13, t5 = h13 + carry.
        let mut u = [0u64; 3];
        let c = adc(0, h[3], l13, &mut u[0]);
        adc(c, h[4], 0, &mut u[1]);
        let c = adc(0, t[3], l12, &mut t[3]);
        let c = adc(c, t[4], u[0], &mut t[4]);
        adc(c, u[1], 0, &mut t[5]);
        // a_2·a_3 at 2^320.
        let c = adc(0, t[5], l23, &mut t[5]);
        adc(c, h[5], 0, &mut t[6]);
        let _ = &mut u[2];
        // Double.
        t[7] = t[6] >> 63;
        t[6] = (t[6] << 1) | (t[5] >> 63);
        t[5] = (t[5] << 1) | (t[4] >> 63);
        t[4] = (t[4] << 1) | (t[3] >> 63);
        t[3] = (t[3] << 1) | (t[2] >> 63);
        t[2] = (t[2] << 1) | (t[1] >> 63);
        t[1] <<= 1;
        // Add the squares.
        let mut s = [0u64; 8];
        for i in 0..4 {
            s[2 * i] = _mulx_u64(a[i], a[i], &mut s[2 * i + 1]);
        }
        let mut c = 0;
        for i in 0..8 {
            c = adc(c, t[i], s[i], &mut t[i]);
        }
        reduce(&t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proof_on_the_portable_tier() {
        assert_eq!(Bmi2Adx::for_tier(Tier::Portable), None);
    }

    struct Twice(u64);
    impl Kernel for Twice {
        type Output = u64;
        #[inline(always)]
        fn run(self) -> u64 {
            self.0 * 2
        }
    }

    #[test]
    fn trampoline_runs_the_kernel() {
        for t in Tier::available() {
            if let Some(p) = Bmi2Adx::for_tier(t) {
                assert_eq!(p.run(Twice(21)), 42);
            }
        }
    }
}
