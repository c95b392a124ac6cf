//! Arithmetic modulo the SM2 prime p = 2^256 − 2^224 − 2^96 + 2^64 − 1, on four
//! 64-bit limbs in the Montgomery domain (R = 2^256).
//!
//! Multiplication and squaring are written here for this prime: a schoolbook product
//! on u128, then four Montgomery reduction steps that need no multiplication, because
//! −p^−1 ≡ 1 (mod 2^64) makes each step's factor m the lowest limb, and m·p is
//! m·2^256 − m·2^224 − m·2^96 + m·2^64 − m, a few shifts and subtractions. Addition,
//! subtraction, negation, conversions and selection are fiat-crypto's formally
//! verified code for the same prime (the `fiat-crypto` crate, which RustCrypto `sm2`
//! also builds on); the differential tests check the hand-written multiplication
//! against crypto-bigint. Everything is branch-free. Inversion is Fermat's x^(p−2)
//! over a fixed addition chain, so it is constant-time too.

use fiat_crypto::sm2_64 as f;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use ukey_simd::ctscan::CtSelect;
use ukey_simd::sm2p::Bmi2Adx;

/// How field arithmetic and table scans are done: chosen once per high-level
/// operation (k·G, k·P, verification) and passed down by value, so the point and
/// table code is monomorphised once per backend and has no per-operation dispatch.
/// Every operation takes and returns fully reduced values (below p).
pub(crate) trait Backend: Copy {
    fn mul(self, a: &Fe, b: &Fe) -> Fe;
    fn square(self, a: &Fe) -> Fe;
    /// Addition and friends default to the portable (fiat-crypto) code, so a backend
    /// only has to override what it does faster.
    #[inline(always)]
    fn add(self, a: &Fe, b: &Fe) -> Fe {
        a.add(b)
    }
    #[inline(always)]
    fn sub(self, a: &Fe, b: &Fe) -> Fe {
        a.sub(b)
    }
    #[inline(always)]
    fn double(self, a: &Fe) -> Fe {
        a.double()
    }
    #[inline(always)]
    fn neg(self, a: &Fe) -> Fe {
        a.neg()
    }
    /// The vector table scan, when the CPU (and the tier cap) allow one.
    fn ct_select(self) -> Option<CtSelect>;
}

/// One high-level operation (a scalar multiplication and what goes with it), written
/// once for every backend.
pub(crate) trait Op {
    type Out;
    fn run<B: Backend>(self, be: B) -> Self::Out;
}

/// An [`Op`] on the `mulx` backend, handed to ukey-simd's trampoline so that it is
/// compiled with BMI2 and ADX (everything below `Op::run` is `#[inline(always)]`).
struct OnFast<O>(O, Fast);

impl<O: Op> ukey_simd::sm2p::Kernel for OnFast<O> {
    type Output = O::Out;
    #[inline(always)]
    fn run(self) -> O::Out {
        self.0.run(self.1)
    }
}

/// The backend chosen for a CPU tier.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backends {
    Portable(Portable),
    Fast(Fast),
}

impl Backends {
    /// The fastest backend `tier` allows (`Tier::Portable`: the plain code, no vector
    /// scan).
    pub(crate) fn for_tier(tier: ukey_simd::Tier) -> Self {
        let sel = CtSelect::for_tier(tier);
        match Bmi2Adx::for_tier(tier) {
            Some(t) => Backends::Fast(Fast(t, sel)),
            None => Backends::Portable(Portable(sel)),
        }
    }

    /// The backend for this process (`ukey_simd::Tier::current`, capped by
    /// `UKEY_CPU_TIER`), chosen once.
    pub(crate) fn current() -> Self {
        static CURRENT: std::sync::OnceLock<Backends> = std::sync::OnceLock::new();
        *CURRENT.get_or_init(|| Backends::for_tier(ukey_simd::Tier::current()))
    }

    /// Runs `op` on this backend.
    #[inline]
    pub(crate) fn run<O: Op>(self, op: O) -> O::Out {
        match self {
            Backends::Portable(p) => op.run(p),
            Backends::Fast(f) => f.0.run(OnFast(op, f)),
        }
    }
}

/// The plain-Rust code below (u128 multiplication, fiat-crypto addition).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable(pub(crate) Option<CtSelect>);

impl Backend for Portable {
    #[inline(always)]
    fn mul(self, a: &Fe, b: &Fe) -> Fe {
        a.mul(b)
    }
    #[inline(always)]
    fn square(self, a: &Fe) -> Fe {
        a.square()
    }
    #[inline(always)]
    fn ct_select(self) -> Option<CtSelect> {
        self.0
    }
}

/// ukey-simd's inline-assembly field arithmetic (`mulx`/`adcx`/`adox` multiplication
/// and squaring, carry-chain addition and subtraction), behind the [`Bmi2Adx`] proof.
/// The kernels are `asm!` blocks in `#[inline(always)]` functions, so they inline into
/// the point formulas; the operations also run inside [`Bmi2Adx::run`], so the code
/// around them is compiled with BMI2 and ADX.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fast(pub(crate) Bmi2Adx, pub(crate) Option<CtSelect>);

impl Backend for Fast {
    #[inline(always)]
    fn mul(self, a: &Fe, b: &Fe) -> Fe {
        Fe(self.0.mul(&a.0, &b.0))
    }
    #[inline(always)]
    fn square(self, a: &Fe) -> Fe {
        Fe(self.0.square(&a.0))
    }
    #[inline(always)]
    fn add(self, a: &Fe, b: &Fe) -> Fe {
        Fe(self.0.add(&a.0, &b.0))
    }
    #[inline(always)]
    fn sub(self, a: &Fe, b: &Fe) -> Fe {
        Fe(self.0.sub(&a.0, &b.0))
    }
    #[inline(always)]
    fn double(self, a: &Fe) -> Fe {
        Fe(self.0.double(&a.0))
    }
    #[inline(always)]
    fn neg(self, a: &Fe) -> Fe {
        Fe(self.0.neg(&a.0))
    }
    #[inline(always)]
    fn ct_select(self) -> Option<CtSelect> {
        self.1
    }
}

/// A field element in Montgomery form.
#[derive(Clone, Copy, Default)]
pub(crate) struct Fe(pub(crate) [u64; 4]);

/// p, little-endian limbs.
const P: [u64; 4] = [
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_0000_0000,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFE_FFFF_FFFF,
];

/// Little-endian limbs of a big-endian 32-byte string.
pub(crate) fn limbs_from_be(b: &[u8; 32]) -> [u64; 4] {
    let mut l = [0u64; 4];
    for (i, limb) in l.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[32 - 8 * (i + 1)..32 - 8 * i]);
        *limb = u64::from_be_bytes(w);
    }
    l
}

/// Big-endian bytes of little-endian limbs.
pub(crate) fn limbs_to_be(l: &[u64; 4]) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, limb) in l.iter().enumerate() {
        b[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
    }
    b
}

/// a − m and the borrow (1 when a < m), branch-free.
pub(crate) fn sub_borrow(a: &[u64; 4], m: &[u64; 4]) -> ([u64; 4], u64) {
    let mut out = [0u64; 4];
    let mut borrow = 0u64;
    for i in 0..4 {
        let (d1, b1) = a[i].overflowing_sub(m[i]);
        let (d2, b2) = d1.overflowing_sub(borrow);
        out[i] = d2;
        borrow = u64::from(b1 | b2);
    }
    (out, borrow)
}

impl Fe {
    pub(crate) const ZERO: Self = Self([0; 4]);
    pub(crate) const ONE: Self = {
        let mut one = f::fiat_sm2_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_set_one(&mut one);
        Self(one.0)
    };

    /// From canonical limbs (< p), not in Montgomery form.
    pub(crate) const fn from_canonical(l: [u64; 4]) -> Self {
        let mut out = f::fiat_sm2_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_to_montgomery(
            &mut out,
            &f::fiat_sm2_non_montgomery_domain_field_element(l),
        );
        Self(out.0)
    }

    /// Canonical limbs (out of Montgomery form).
    pub(crate) fn to_canonical(self) -> [u64; 4] {
        let mut out = f::fiat_sm2_non_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_from_montgomery(
            &mut out,
            &f::fiat_sm2_montgomery_domain_field_element(self.0),
        );
        out.0
    }

    /// From 32 big-endian bytes; `None` unless the value is below p.
    pub(crate) fn from_be_bytes(b: &[u8; 32]) -> Option<Self> {
        let l = limbs_from_be(b);
        let (_, borrow) = sub_borrow(&l, &P);
        (borrow == 1).then(|| Self::from_canonical(l))
    }

    /// 32 big-endian bytes.
    pub(crate) fn to_be_bytes(self) -> [u8; 32] {
        limbs_to_be(&self.to_canonical())
    }

    /// self·rhs on backend `b`.
    #[inline(always)]
    pub(crate) fn mm<B: Backend>(&self, b: B, rhs: &Self) -> Self {
        b.mul(self, rhs)
    }

    /// self² on backend `b`.
    #[inline(always)]
    pub(crate) fn sq<B: Backend>(&self, b: B) -> Self {
        b.square(self)
    }

    /// self + rhs on backend `b`.
    #[inline(always)]
    pub(crate) fn ad<B: Backend>(&self, b: B, rhs: &Self) -> Self {
        b.add(self, rhs)
    }

    /// self − rhs on backend `b`.
    #[inline(always)]
    pub(crate) fn sb<B: Backend>(&self, b: B, rhs: &Self) -> Self {
        b.sub(self, rhs)
    }

    /// 2·self on backend `b`.
    #[inline(always)]
    pub(crate) fn dbl<B: Backend>(&self, b: B) -> Self {
        b.double(self)
    }

    /// −self on backend `b`.
    #[inline(always)]
    pub(crate) fn ng<B: Backend>(&self, b: B) -> Self {
        b.neg(self)
    }

    /// Montgomery product self·rhs·2^−256 mod p (the portable code).
    #[inline(always)]
    pub(crate) fn mul(&self, rhs: &Self) -> Self {
        let a = &self.0;
        let b = &rhs.0;
        let mut t = [0u64; 9];
        for i in 0..4 {
            let mut carry = 0u64;
            for j in 0..4 {
                let (lo, hi) = mac(t[i + j], a[i], b[j], carry);
                t[i + j] = lo;
                carry = hi;
            }
            t[i + 4] = carry;
        }
        Self(montgomery_reduce(t))
    }

    /// Montgomery square (the cross products once, doubled; the portable code).
    #[inline(always)]
    pub(crate) fn square(&self) -> Self {
        let a = &self.0;
        let mut t = [0u64; 9];
        // Cross products a_i·a_j, i < j.
        for i in 0..3 {
            let mut carry = 0u64;
            for j in i + 1..4 {
                let (lo, hi) = mac(t[i + j], a[i], a[j], carry);
                t[i + j] = lo;
                carry = hi;
            }
            t[i + 4] = carry;
        }
        // Double them.
        t[8] = 0;
        let mut top = 0u64;
        for limb in t.iter_mut().take(8).skip(1) {
            let v = *limb;
            *limb = (v << 1) | top;
            top = v >> 63;
        }
        // Add the squares a_i².
        let mut carry = 0u64;
        for i in 0..4 {
            let sq = u128::from(a[i]) * u128::from(a[i]);
            let (lo, c1) = adc(t[2 * i], sq as u64, carry);
            let (hi, c2) = adc(t[2 * i + 1], (sq >> 64) as u64, c1);
            t[2 * i] = lo;
            t[2 * i + 1] = hi;
            carry = c2;
        }
        Self(montgomery_reduce(t))
    }

    #[inline(always)]
    pub(crate) fn add(&self, rhs: &Self) -> Self {
        let mut out = f::fiat_sm2_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_add(
            &mut out,
            &f::fiat_sm2_montgomery_domain_field_element(self.0),
            &f::fiat_sm2_montgomery_domain_field_element(rhs.0),
        );
        Self(out.0)
    }

    #[inline(always)]
    pub(crate) fn sub(&self, rhs: &Self) -> Self {
        let mut out = f::fiat_sm2_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_sub(
            &mut out,
            &f::fiat_sm2_montgomery_domain_field_element(self.0),
            &f::fiat_sm2_montgomery_domain_field_element(rhs.0),
        );
        Self(out.0)
    }

    #[inline(always)]
    pub(crate) fn neg(&self) -> Self {
        let mut out = f::fiat_sm2_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_opp(
            &mut out,
            &f::fiat_sm2_montgomery_domain_field_element(self.0),
        );
        Self(out.0)
    }

    #[inline(always)]
    pub(crate) fn double(&self) -> Self {
        self.add(self)
    }

    /// self^(2^n).
    #[inline(always)]
    pub(crate) fn sqn<B: Backend>(&self, b: B, n: u32) -> Self {
        let mut x = *self;
        for _ in 0..n {
            x = x.sq(b);
        }
        x
    }

    /// 1 when zero.
    #[inline(always)]
    pub(crate) fn is_zero(&self) -> Choice {
        let mut nz = 0u64;
        f::fiat_sm2_nonzero(&mut nz, &self.0);
        nz.ct_eq(&0)
    }

    /// self^(p−2) = self^−1 (0 for 0), constant-time. p − 2 in binary, from the top:
    /// 31 ones, a zero, 128 ones, 32 zeros, 62 ones, a zero, a one.
    #[inline(always)]
    pub(crate) fn invert<B: Backend>(&self, b: B) -> Self {
        let x = *self;
        let x2 = x.sq(b).mm(b, &x);
        let x3 = x2.sq(b).mm(b, &x);
        let x6 = x3.sqn(b, 3).mm(b, &x3);
        let x12 = x6.sqn(b, 6).mm(b, &x6);
        let x24 = x12.sqn(b, 12).mm(b, &x12);
        let x30 = x24.sqn(b, 6).mm(b, &x6);
        let x31 = x30.sq(b).mm(b, &x);
        let x32 = x31.sq(b).mm(b, &x);
        // 31 ones, then a zero.
        let mut t = x31.sq(b);
        // 128 ones.
        for _ in 0..4 {
            t = t.sqn(b, 32).mm(b, &x32);
        }
        // 32 zeros, 32 ones.
        t = t.sqn(b, 64).mm(b, &x32);
        // 30 ones, a zero, a one.
        t = t.sqn(b, 30).mm(b, &x30);
        t.sqn(b, 2).mm(b, &x)
    }
}

/// a + b·c + carry as (low, high).
#[inline(always)]
fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = u128::from(a) + u128::from(b) * u128::from(c) + u128::from(carry);
    (t as u64, (t >> 64) as u64)
}

/// a + b + carry as (sum, carry out).
#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = u128::from(a) + u128::from(b) + u128::from(carry);
    (t as u64, (t >> 64) as u64)
}

/// a − b − borrow as (difference, borrow out), borrow 0 or 1.
#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = u128::from(a)
        .wrapping_sub(u128::from(b))
        .wrapping_sub(u128::from(borrow));
    (t as u64, ((t >> 64) as u64) & 1)
}

/// t·2^−256 mod p for a 512-bit t (t[8] = 0) below p·2^256.
#[inline(always)]
fn montgomery_reduce(mut t: [u64; 9]) -> [u64; 4] {
    for i in 0..4 {
        // m = t_i (−p^−1 = 1 mod 2^64). t + m·p clears limb i; what it adds to limbs
        // i+1 … i+4 is X = (m·p + m)/2^64 = m·2^192 + m − m·2^160 − m·2^32 ≥ 0.
        let m = t[i];
        let lo = m << 32;
        let hi = m >> 32;
        let (x0, b) = sbb(m, lo, 0);
        let (x1, b) = sbb(0, hi, b);
        let (x2, b) = sbb(0, lo, b);
        let (x3, _) = sbb(m, hi, b);
        let (s, c) = adc(t[i + 1], x0, 0);
        t[i + 1] = s;
        let (s, c) = adc(t[i + 2], x1, c);
        t[i + 2] = s;
        let (s, c) = adc(t[i + 3], x2, c);
        t[i + 3] = s;
        let (s, mut c) = adc(t[i + 4], x3, c);
        t[i + 4] = s;
        for limb in t.iter_mut().skip(i + 5) {
            let (s, c2) = adc(*limb, 0, c);
            *limb = s;
            c = c2;
        }
    }
    // r = t[4..8] + t[8]·2^256 < 2p: subtract p once if r ≥ p.
    let r = [t[4], t[5], t[6], t[7]];
    let (d0, b) = sbb(r[0], P[0], 0);
    let (d1, b) = sbb(r[1], P[1], b);
    let (d2, b) = sbb(r[2], P[2], b);
    let (d3, b) = sbb(r[3], P[3], b);
    let (_, b) = sbb(t[8], 0, b);
    // b = 1: r < p, keep r.
    let keep = 0u64.wrapping_sub(b);
    [
        (r[0] & keep) | (d0 & !keep),
        (r[1] & keep) | (d1 & !keep),
        (r[2] & keep) | (d2 & !keep),
        (r[3] & keep) | (d3 & !keep),
    ]
}

impl ConstantTimeEq for Fe {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl ConditionallySelectable for Fe {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        let mut out = [0u64; 4];
        f::fiat_sm2_selectznz(&mut out, choice.unwrap_u8(), &a.0, &b.0);
        Self(out)
    }
}

#[cfg(test)]
pub(crate) const MODULUS: [u64; 4] = P;
