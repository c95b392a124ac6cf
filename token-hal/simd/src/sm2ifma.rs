//! Eight SM2 fixed-base multiplications at once with AVX-512 IFMA (`vpmadd52luq` /
//! `vpmadd52huq`), for the nonce pool of token-hal's fast SM2 backend.
//!
//! **Representation.** A field element mod p = 2^256 − 2^224 − 2^96 + 2^64 − 1 is five
//! 52-bit limbs; eight elements are five zmm registers, limb j of element i in lane i
//! of register j. Values are in Montgomery form with R = 2^260 (five 52-bit steps) and
//! are kept **fully reduced** (every limb below 2^52, the value below p) after every
//! operation, so equality and zero tests are plain limb compares.
//!
//! **Multiplication.** The 25 partial products go through `vpmadd52luq`/`vpmadd52huq`
//! into ten 64-bit accumulators (squaring computes the ten cross products once and
//! doubles them). Montgomery reduction: −p^−1 ≡ 1 (mod 2^52), so each step's factor
//! m is the low 52 bits of the current limb. Of p's limbs, P0 = P2 = P3 = 2^52 − 1, so
//! m·P0 is folded into the carry ((t + m·P0)/2^52 = (t >> 52) + m) and m·(P2·2^104 +
//! P3·2^156) = m·2^208 − m·2^104 is one subtraction and one addition; only P1 and P4
//! need multiplications (four per step). Accumulators are signed (arithmetic shifts
//! for carries). With inputs below p the result is below p + p²/2^260 < 2p, and one
//! conditional subtraction (by a mask blend) makes it canonical.
//!
//! **Constant time.** No branch and no memory address depends on a value: the limb
//! arithmetic is straight-line, selections are blends under compare masks, and
//! [`Ifma::comb_mul8`]'s table scan loads every entry of a row with unmasked
//! broadcasts that pass an empty `asm!` register barrier before the masked register
//! move, so LLVM cannot fold them into masked memory operands (whose memory access for
//! masked-off lanes is not architecturally guaranteed; see `ctscan`).
//!
//! [`Ifma`] is a zero-sized proof that the CPU has AVX-512F and AVX-512 IFMA and that
//! the tier cap (`UKEY_CPU_TIER`) allows the AVX-512 tier; only the top tier,
//! [`Tier::GfniAvx512`], yields one.
//!
//! Conversions: the API takes and returns 4×64-bit little-endian limbs. The field
//! functions ([`Ifma::mul`] …) work on raw residues in this module's domain (R = 2^260);
//! [`Ifma::from_mont256`] / [`Ifma::to_mont256`] convert from and to token-hal's
//! Montgomery form (R = 2^256), and the table and [`Ifma::comb_mul8`] speak token-hal's
//! form at their boundary.

// The `unsafe` here: calls into the `#[target_feature(enable = "avx512f,avx512ifma")]`
// functions (which an `Ifma` proves the CPU supports), 64-byte loads and stores through
// `&[u64; 8]` references, and the empty register barrier (`asm!` with no instruction).
#![allow(unsafe_code)]

use crate::Tier;

/// Proof that this CPU has AVX-512F and AVX-512 IFMA and that the tier cap allows the
/// AVX-512 tier. Zero-sized; only [`Ifma::get`] / [`Ifma::for_tier`] make one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ifma {
    _proof: (),
}

/// Eight field values (4×64-bit little-endian limbs each), one per lane.
pub type Lanes = [[u64; 4]; 8];

/// A fixed-base table of affine points in this module's layout: `rows` rows of
/// `entries` points, each entry x‖y as ten 52-bit limbs in Montgomery form (R = 2^260).
pub struct Comb52 {
    entries: usize,
    rows: usize,
    data: Vec<[u64; 10]>,
}

impl Comb52 {
    /// Number of rows (windows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Entries per row.
    pub fn entries(&self) -> usize {
        self.entries
    }
}

impl core::fmt::Debug for Comb52 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Comb52({} × {})", self.rows, self.entries)
    }
}

/// Eight Jacobian points (token-hal's Montgomery form, R = 2^256) and the lanes whose
/// incomplete addition met P + P (bit i for lane i; those lanes' points are garbage).
#[derive(Clone)]
pub struct Jac8 {
    pub x: Lanes,
    pub y: Lanes,
    pub z: Lanes,
    pub exceptional: u8,
}

impl Drop for Jac8 {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for l in [&mut self.x, &mut self.y, &mut self.z] {
            for v in l.iter_mut() {
                v.zeroize();
            }
        }
    }
}

/// 52-bit limbs of a 256-bit value.
#[inline(always)]
fn to52(a: &[u64; 4]) -> [u64; 5] {
    const M: u64 = (1 << 52) - 1;
    [
        a[0] & M,
        ((a[0] >> 52) | (a[1] << 12)) & M,
        ((a[1] >> 40) | (a[2] << 24)) & M,
        ((a[2] >> 28) | (a[3] << 36)) & M,
        a[3] >> 16,
    ]
}

/// The 256-bit value of normalised 52-bit limbs (limb 4 below 2^48).
#[inline(always)]
fn from52(l: &[u64; 5]) -> [u64; 4] {
    [
        l[0] | (l[1] << 52),
        (l[1] >> 12) | (l[2] << 40),
        (l[2] >> 24) | (l[3] << 28),
        (l[3] >> 36) | (l[4] << 16),
    ]
}

/// Lane-major values as limb-major 52-bit rows (row j = limb j of every lane).
fn transpose_in(v: &Lanes) -> [[u64; 8]; 5] {
    let mut out = [[0u64; 8]; 5];
    for (lane, a) in v.iter().enumerate() {
        for (j, l) in to52(a).into_iter().enumerate() {
            out[j][lane] = l;
        }
    }
    out
}

fn transpose_out(r: &[[u64; 8]; 5]) -> Lanes {
    let mut out = [[0u64; 4]; 8];
    for (lane, o) in out.iter_mut().enumerate() {
        *o = from52(&[r[0][lane], r[1][lane], r[2][lane], r[3][lane], r[4][lane]]);
    }
    out
}

/// The field operations [`Ifma::field`] runs (for the differential tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOp {
    /// a·b·2^−260 mod p.
    Mul,
    /// a²·2^−260 mod p.
    Square,
    /// a + b mod p.
    Add,
    /// a − b mod p.
    Sub,
    /// From token-hal's Montgomery form: a·2^4 mod p.
    FromMont256,
    /// To token-hal's Montgomery form: a·2^−4 mod p.
    ToMont256,
}

impl Ifma {
    /// The proof for this process's tier ([`Tier::current`]).
    pub fn get() -> Option<Self> {
        Self::for_tier(Tier::current())
    }

    /// The proof, if `tier` is the AVX-512 tier, is supported, and the CPU also has
    /// AVX-512 IFMA. `UKEY_CPU_TIER=portable` (or any AVX2 tier) never yields one.
    pub fn for_tier(tier: Tier) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if tier >= Tier::GfniAvx512
                && tier.supported()
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512ifma")
            {
                return Some(Self { _proof: () });
            }
        }
        let _ = tier;
        None
    }

    /// One field operation on eight lanes (inputs below p; `b` is ignored by the unary
    /// ones). One call per operation: for tests, not for speed.
    pub fn field(self, op: FieldOp, a: &Lanes, b: &Lanes) -> Lanes {
        let (ta, tb) = (transpose_in(a), transpose_in(b));
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: an `Ifma` exists only after `for_tier` detected AVX-512F and
            // AVX-512 IFMA on this CPU, all `x86::field` needs.
            let r = unsafe { x86::field(op, &ta, &tb) };
            transpose_out(&r)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (op, ta, tb);
            unreachable!("no Ifma proof exists off x86-64")
        }
    }

    /// a·b·2^−260 mod p, lane by lane.
    pub fn mul(self, a: &Lanes, b: &Lanes) -> Lanes {
        self.field(FieldOp::Mul, a, b)
    }

    /// Values in token-hal's Montgomery form (R = 2^256) in this module's (R = 2^260).
    pub fn from_mont256(self, a: &Lanes) -> Lanes {
        self.field(FieldOp::FromMont256, a, a)
    }

    /// Values in this module's Montgomery form in token-hal's.
    pub fn to_mont256(self, a: &Lanes) -> Lanes {
        self.field(FieldOp::ToMont256, a, a)
    }

    /// This module's copy of a fixed-base table whose entries are affine x‖y in
    /// token-hal's Montgomery form (`[u64; 8]`: x limbs, then y limbs; coordinates below p).
    pub fn comb_table<const E: usize>(self, rows: &[[[u64; 8]; E]]) -> Comb52 {
        let mut data = Vec::with_capacity(rows.len() * E);
        let all: Vec<&[u64; 8]> = rows.iter().flat_map(|r| r.iter()).collect();
        for chunk in all.chunks(8) {
            let mut xs = [[0u64; 4]; 8];
            let mut ys = [[0u64; 4]; 8];
            for (i, e) in chunk.iter().enumerate() {
                xs[i].copy_from_slice(&e[..4]);
                ys[i].copy_from_slice(&e[4..]);
            }
            let (xs, ys) = (self.from_mont256(&xs), self.from_mont256(&ys));
            for i in 0..chunk.len() {
                let (x, y) = (to52(&xs[i]), to52(&ys[i]));
                let mut e = [0u64; 10];
                e[..5].copy_from_slice(&x);
                e[5..].copy_from_slice(&y);
                data.push(e);
            }
        }
        Comb52 {
            entries: E,
            rows: rows.len(),
            data,
        }
    }

    /// Σ_j d_j·T_j(|d_j|) for eight scalars at once, constant-time in the digits: for
    /// every row j, lane i adds entry `mags[j][i] − 1` of row j (nothing for 0),
    /// negated when `negs[j][i]` is non-zero, with a complete-except-P+P mixed addition.
    /// Every entry of every row is loaded for all lanes. `mags[j][i]` must not exceed
    /// the number of entries per row (a larger one selects a zero point; the lane's
    /// result is then meaningless, but nothing else changes).
    ///
    /// # Panics
    /// If `mags` or `negs` does not have one element per table row.
    pub fn comb_mul8(self, table: &Comb52, mags: &[[u64; 8]], negs: &[[u64; 8]]) -> Jac8 {
        assert!(
            mags.len() == table.rows && negs.len() == table.rows,
            "comb_mul8: one digit vector per table row"
        );
        assert_eq!(table.data.len(), table.rows * table.entries);
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: as in `field`: the proof means AVX-512F and IFMA were detected.
            let (x, y, z, exc) = unsafe { x86::comb_mul8(table, mags, negs) };
            Jac8 {
                x: transpose_out(&x),
                y: transpose_out(&y),
                z: transpose_out(&z),
                exceptional: exc,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (table, mags, negs);
            unreachable!("no Ifma proof exists off x86-64")
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::asm;
    use core::arch::x86_64::*;

    use super::{Comb52, FieldOp};

    const MASK: u64 = (1 << 52) - 1;
    /// p in 52-bit limbs.
    const P: [u64; 5] = [
        0xF_FFFF_FFFF_FFFF,
        0xF_F000_0000_0FFF,
        0xF_FFFF_FFFF_FFFF,
        0xF_FFFF_FFFF_FFFF,
        0xFFFF_FFFE_FFFF,
    ];
    /// R = 2^260 mod p (one in this Montgomery form).
    const ONE: [u64; 5] = [0x10, 0xFFFF_FFFF_0000, 0, 0, 0x10_0000];
    /// 2^256 mod p: multiplying by it leaves this form for token-hal's.
    const TO256: [u64; 5] = [0x1, 0xFFF_FFFF_F000, 0, 0, 0x1_0000];
    /// 2^264 mod p: multiplying by it enters this form from token-hal's.
    const FROM256: [u64; 5] = [0x100, 0xF_FFFF_FFF0_0000, 0, 0, 0x100_0000];

    /// Eight field elements, limb-major.
    #[derive(Clone, Copy)]
    struct F8([__m512i; 5]);

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn splat(c: &[u64; 5]) -> F8 {
        F8(core::array::from_fn(|j| _mm512_set1_epi64(c[j] as i64)))
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load8(v: &[u64; 8]) -> __m512i {
        // SAFETY: `v` is a reference to exactly the 64 bytes loaded.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn store8(r: __m512i) -> [u64; 8] {
        let mut out = [0u64; 8];
        // SAFETY: `out` is exactly the 64 bytes stored.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), r) };
        out
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load(v: &[[u64; 8]; 5]) -> F8 {
        F8(core::array::from_fn(|j| load8(&v[j])))
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn store(a: &F8) -> [[u64; 8]; 5] {
        core::array::from_fn(|j| store8(a.0[j]))
    }

    /// An empty instruction the compiler cannot see through: `v` must be computed into
    /// a register (an unmasked load) before any masked use of it.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn opaque(mut v: __m512i) -> __m512i {
        // SAFETY: the template is empty; it reads and writes only the register.
        unsafe {
            asm!("/* {0} */", inout(zmm_reg) v, options(pure, nomem, nostack, preserves_flags));
        }
        v
    }

    /// Carries signed limbs into 52-bit limbs (the top limb keeps the rest).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn carry(mut t: [__m512i; 5]) -> [__m512i; 5] {
        let m = _mm512_set1_epi64(MASK as i64);
        for j in 0..4 {
            let c = _mm512_srai_epi64::<52>(t[j]);
            t[j] = _mm512_and_si512(t[j], m);
            t[j + 1] = _mm512_add_epi64(t[j + 1], c);
        }
        t
    }

    /// Lanes whose (carried) top limb is negative.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn negative(t: &[__m512i; 5]) -> __mmask8 {
        _mm512_cmplt_epi64_mask(t[4], _mm512_setzero_si512())
    }

    /// (lanes where `k` is set take `b`, the others `a`).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn blend(k: __mmask8, a: &F8, b: &F8) -> F8 {
        F8(core::array::from_fn(|j| {
            _mm512_mask_blend_epi64(k, a.0[j], b.0[j])
        }))
    }

    /// a + b mod p (a, b < p).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn add(a: &F8, b: &F8) -> F8 {
        let s: [__m512i; 5] = core::array::from_fn(|j| _mm512_add_epi64(a.0[j], b.0[j]));
        let d: [__m512i; 5] =
            core::array::from_fn(|j| _mm512_sub_epi64(s[j], _mm512_set1_epi64(P[j] as i64)));
        let s = carry(s);
        let d = carry(d);
        // a + b − p < 0: keep a + b.
        blend(negative(&d), &F8(d), &F8(s))
    }

    /// a − b mod p (a, b < p).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn sub(a: &F8, b: &F8) -> F8 {
        let d: [__m512i; 5] = core::array::from_fn(|j| _mm512_sub_epi64(a.0[j], b.0[j]));
        let e: [__m512i; 5] =
            core::array::from_fn(|j| _mm512_add_epi64(d[j], _mm512_set1_epi64(P[j] as i64)));
        let d = carry(d);
        let e = carry(e);
        // a − b < 0: take a − b + p.
        blend(negative(&d), &F8(d), &F8(e))
    }

    /// Montgomery reduction of a 10-limb product below p·2^260: t·2^−260 mod p.
    #[target_feature(enable = "avx512f,avx512ifma")]
    #[inline]
    fn reduce(mut t: [__m512i; 10]) -> F8 {
        let mask = _mm512_set1_epi64(MASK as i64);
        let p1 = _mm512_set1_epi64(P[1] as i64);
        let p4 = _mm512_set1_epi64(P[4] as i64);
        for s in 0..5 {
            // m = t_s mod 2^52 (−p^−1 ≡ 1), then t += m·p·2^(52s).
            let m = _mm512_and_si512(t[s], mask);
            // (t_s + m·P0)/2^52 with P0 = 2^52 − 1.
            let c = _mm512_add_epi64(_mm512_srai_epi64::<52>(t[s]), m);
            t[s + 1] = _mm512_add_epi64(t[s + 1], c);
            t[s + 1] = _mm512_madd52lo_epu64(t[s + 1], m, p1);
            t[s + 2] = _mm512_madd52hi_epu64(t[s + 2], m, p1);
            // m·(P2·2^104 + P3·2^156) = m·2^208 − m·2^104.
            t[s + 2] = _mm512_sub_epi64(t[s + 2], m);
            t[s + 4] = _mm512_add_epi64(t[s + 4], m);
            t[s + 4] = _mm512_madd52lo_epu64(t[s + 4], m, p4);
            t[s + 5] = _mm512_madd52hi_epu64(t[s + 5], m, p4);
        }
        // Below 2p: subtract p once if that stays non-negative.
        let r = [t[5], t[6], t[7], t[8], t[9]];
        let d: [__m512i; 5] =
            core::array::from_fn(|j| _mm512_sub_epi64(r[j], _mm512_set1_epi64(P[j] as i64)));
        let r = carry(r);
        let d = carry(d);
        blend(negative(&d), &F8(d), &F8(r))
    }

    /// a·b·2^−260 mod p.
    #[target_feature(enable = "avx512f,avx512ifma")]
    #[inline]
    fn mul(a: &F8, b: &F8) -> F8 {
        let mut t = [_mm512_setzero_si512(); 10];
        for i in 0..5 {
            for j in 0..5 {
                t[i + j] = _mm512_madd52lo_epu64(t[i + j], a.0[i], b.0[j]);
                t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a.0[i], b.0[j]);
            }
        }
        reduce(t)
    }

    /// a²·2^−260 mod p.
    #[target_feature(enable = "avx512f,avx512ifma")]
    #[inline]
    fn square(a: &F8) -> F8 {
        let mut t = [_mm512_setzero_si512(); 10];
        for i in 0..5 {
            for j in i + 1..5 {
                t[i + j] = _mm512_madd52lo_epu64(t[i + j], a.0[i], a.0[j]);
                t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a.0[i], a.0[j]);
            }
        }
        for v in t.iter_mut() {
            *v = _mm512_add_epi64(*v, *v);
        }
        for i in 0..5 {
            t[2 * i] = _mm512_madd52lo_epu64(t[2 * i], a.0[i], a.0[i]);
            t[2 * i + 1] = _mm512_madd52hi_epu64(t[2 * i + 1], a.0[i], a.0[i]);
        }
        reduce(t)
    }

    /// Lanes equal to zero.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn is_zero(a: &F8) -> __mmask8 {
        let o = _mm512_or_si512(
            _mm512_or_si512(a.0[0], a.0[1]),
            _mm512_or_si512(_mm512_or_si512(a.0[2], a.0[3]), a.0[4]),
        );
        _mm512_cmpeq_epi64_mask(o, _mm512_setzero_si512())
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn dbl(a: &F8) -> F8 {
        add(a, a)
    }

    /// The field operations one at a time (tests).
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn field(op: FieldOp, a: &[[u64; 8]; 5], b: &[[u64; 8]; 5]) -> [[u64; 8]; 5] {
        let (a, b) = (load(a), load(b));
        let r = match op {
            FieldOp::Mul => mul(&a, &b),
            FieldOp::Square => square(&a),
            FieldOp::Add => add(&a, &b),
            FieldOp::Sub => sub(&a, &b),
            FieldOp::FromMont256 => mul(&a, &splat(&FROM256)),
            FieldOp::ToMont256 => mul(&a, &splat(&TO256)),
        };
        store(&r)
    }

    /// Eight Jacobian points (X/Z², Y/Z³; Z = 0 is the identity).
    #[derive(Clone, Copy)]
    struct Jac8 {
        x: F8,
        y: F8,
        z: F8,
    }

    /// P + Q for affine Q (madd-2007-bl, a = −3 does not enter; 7M + 4S), branch-free:
    /// lanes where P is the identity take Q, lanes in `q_none` keep P; lanes that meet
    /// P = Q (neither the identity) are added to `exc`. The same formulas and case
    /// handling as token-hal's `Jac::madd_ct`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    #[inline]
    fn madd(p: &Jac8, qx: &F8, qy: &F8, q_none: __mmask8, one: &F8, exc: &mut __mmask8) -> Jac8 {
        let z1z1 = square(&p.z);
        let u2 = mul(qx, &z1z1);
        let s2 = mul(&mul(qy, &p.z), &z1z1);
        let h = sub(&u2, &p.x);
        let hh = square(&h);
        let i = dbl(&dbl(&hh));
        let j = mul(&h, &i);
        let r = dbl(&sub(&s2, &p.y));
        let v = mul(&p.x, &i);
        let x3 = sub(&sub(&square(&r), &j), &dbl(&v));
        let y3 = sub(&mul(&r, &sub(&v, &x3)), &dbl(&mul(&p.y, &j)));
        let z3 = sub(&sub(&square(&add(&p.z, &h)), &z1z1), &hh);
        let p_inf = is_zero(&p.z);
        *exc |= !p_inf & !q_none & is_zero(&h) & is_zero(&r);
        // P the identity: Q (Z = 1). Q absent: P. `one` goes through the barrier right
        // before its blend, so LLVM cannot turn the blend into a masked load of the
        // constant (whether a masked-off load touches memory is not specified, and
        // p_inf depends on the digits).
        let one = F8(core::array::from_fn(|j| opaque(one.0[j])));
        let x = blend(p_inf, &x3, qx);
        let y = blend(p_inf, &y3, qy);
        let z = blend(p_inf, &z3, &one);
        Jac8 {
            x: blend(q_none, &x, &p.x),
            y: blend(q_none, &y, &p.y),
            z: blend(q_none, &z, &p.z),
        }
    }

    /// Lane i gets entry `mags[i] − 1` of `row` (zero for 0), every entry loaded in full
    /// for every lane: per entry one compare of a counter with the digits and ten
    /// broadcast loads, each forced into a register before the masked register move.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn scan(row: &[[u64; 10]], mags: __m512i) -> (F8, F8) {
        let one = _mm512_set1_epi64(1);
        let mut ctr = one;
        let mut acc = [_mm512_setzero_si512(); 10];
        for e in row {
            let k = _mm512_cmpeq_epi64_mask(ctr, mags);
            for (a, &w) in acc.iter_mut().zip(e.iter()) {
                let v = opaque(_mm512_set1_epi64(w as i64));
                *a = _mm512_mask_mov_epi64(*a, k, v);
            }
            ctr = _mm512_add_epi64(ctr, one);
        }
        (
            F8([acc[0], acc[1], acc[2], acc[3], acc[4]]),
            F8([acc[5], acc[6], acc[7], acc[8], acc[9]]),
        )
    }

    type Limbs = [[u64; 8]; 5];

    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn comb_mul8(
        table: &Comb52,
        mags: &[[u64; 8]],
        negs: &[[u64; 8]],
    ) -> (Limbs, Limbs, Limbs, u8) {
        let one = splat(&ONE);
        let zero = F8([_mm512_setzero_si512(); 5]);
        let mut acc = Jac8 {
            x: one,
            y: one,
            z: zero,
        };
        let mut exc: __mmask8 = 0;
        for ((row, m), n) in table.data.chunks_exact(table.entries).zip(mags).zip(negs) {
            let m = load8(m);
            let neg = _mm512_cmpneq_epi64_mask(load8(n), _mm512_setzero_si512());
            let (qx, qy) = scan(row, m);
            let qy = blend(neg, &qy, &sub(&zero, &qy));
            let q_none = _mm512_cmpeq_epi64_mask(m, _mm512_setzero_si512());
            acc = madd(&acc, &qx, &qy, q_none, &one, &mut exc);
        }
        let to = splat(&TO256);
        (
            store(&mul(&acc.x, &to)),
            store(&mul(&acc.y, &to)),
            store(&mul(&acc.z, &to)),
            exc,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proof_below_the_avx512_tier() {
        for t in [Tier::Portable, Tier::AesniAvx2, Tier::GfniAvx2] {
            assert_eq!(Ifma::for_tier(t), None, "{t:?}");
        }
    }

    #[test]
    fn limb_conversions_round_trip() {
        let mut s = 0x1234_5678_9ABC_DEF1u64;
        for _ in 0..1000 {
            let a: [u64; 4] = core::array::from_fn(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            });
            let l = to52(&a);
            assert!(l.iter().all(|&x| x < 1 << 52));
            assert_eq!(from52(&l), a);
        }
    }

    /// Identities that need no reference: the conversions invert each other, one is the
    /// multiplicative unit, a − a = 0, (a + b) − b = a.
    #[test]
    fn field_identities() {
        let Some(f) = Ifma::get() else {
            return;
        };
        let mut s = 7u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        // 2^256 − 2^224 − … : clear the top bit so every value is below p.
        let mut vals =
            || -> Lanes { core::array::from_fn(|_| [next(), next(), next(), next() >> 1]) };
        // One in this domain, as a 256-bit value: 2^260 mod p.
        let one: [u64; 4] = from52(&[0x10, 0xFFFF_FFFF_0000, 0, 0, 0x10_0000]);
        for _ in 0..2000 {
            let (a, b) = (vals(), vals());
            assert_eq!(f.to_mont256(&f.from_mont256(&a)), a);
            assert_eq!(f.mul(&a, &[one; 8]), a);
            assert_eq!(f.field(FieldOp::Sub, &a, &a), [[0; 4]; 8]);
            let s = f.field(FieldOp::Add, &a, &b);
            assert_eq!(f.field(FieldOp::Sub, &s, &b), a);
            assert_eq!(f.field(FieldOp::Square, &a, &a), f.mul(&a, &a));
        }
    }
}
