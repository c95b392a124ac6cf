//! Points of the SM2 curve y² = x³ − 3x + b: affine points for tables, Jacobian
//! points (X/Z², Y/Z³; Z = 0 is the identity) for arithmetic, with the a = −3 formulas
//! of the Explicit-Formulas Database (dbl-2001-b, madd-2007-bl, add-2007-bl).
//!
//! The `_ct` functions are branch-free in their inputs. The one input pair the
//! incomplete formulas cannot add, P + P, is never reached by a scalar multiplication
//! except with negligible probability (about 2^−250 per call); when it is, the
//! functions raise an `exceptional` flag instead of branching, and the caller redoes the
//! whole operation on the portable reference arithmetic.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::field::{Backend, Fe};

/// Curve coefficient b (Montgomery form).
pub(crate) const B: Fe = Fe::from_canonical([
    0xDDBC_BD41_4D94_0E93,
    0xF397_89F5_15AB_8F92,
    0x4D5A_9E4B_CF65_09A7,
    0x28E9_FA9E_9D9F_5E34,
]);

/// The base point G.
pub(crate) const G: Affine = Affine {
    x: Fe::from_canonical([
        0x715A_4589_334C_74C7,
        0x8FE3_0BBF_F266_0BE1,
        0x5F99_0446_6A39_C994,
        0x32C4_AE2C_1F19_8119,
    ]),
    y: Fe::from_canonical([
        0x02DF_32E5_2139_F0A0,
        0xD0A9_877C_C62A_4740,
        0x59BD_CEE3_6B69_2153,
        0xBC37_36A2_F4F6_779C,
    ]),
};

/// An affine point (never the identity).
#[derive(Clone, Copy, Default)]
pub(crate) struct Affine {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
}

/// A Jacobian point.
#[derive(Clone, Copy)]
pub(crate) struct Jac {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
    pub(crate) z: Fe,
}

impl ConditionallySelectable for Affine {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, c: Choice) -> Self {
        Self {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
        }
    }
}

impl ConditionallySelectable for Jac {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, c: Choice) -> Self {
        Self {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
            z: Fe::conditional_select(&a.z, &b.z, c),
        }
    }
}

impl Affine {
    /// Decodes 04‖x‖y; `None` unless both coordinates are below p and the point is on
    /// the curve.
    pub(crate) fn from_uncompressed(p: &[u8]) -> Option<Self> {
        if p.len() != 65 || p[0] != 0x04 {
            return None;
        }
        let mut xb = [0u8; 32];
        let mut yb = [0u8; 32];
        xb.copy_from_slice(&p[1..33]);
        yb.copy_from_slice(&p[33..65]);
        let a = Self {
            x: Fe::from_be_bytes(&xb)?,
            y: Fe::from_be_bytes(&yb)?,
        };
        a.is_on_curve().then_some(a)
    }

    /// y² = x³ − 3x + b.
    pub(crate) fn is_on_curve(&self) -> bool {
        let lhs = self.y.square();
        let x3 = self.x.square().mul(&self.x);
        let three_x = self.x.double().add(&self.x);
        let rhs = x3.sub(&three_x).add(&B);
        bool::from(lhs.ct_eq(&rhs))
    }

    /// 04‖x‖y.
    pub(crate) fn to_uncompressed(self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        out[1..33].copy_from_slice(&self.x.to_be_bytes());
        out[33..].copy_from_slice(&self.y.to_be_bytes());
        out
    }

    pub(crate) fn to_jac(self) -> Jac {
        Jac {
            x: self.x,
            y: self.y,
            z: Fe::ONE,
        }
    }

    #[inline(always)]
    pub(crate) fn neg<B: Backend>(&self, be: B) -> Self {
        Self {
            x: self.x,
            y: self.y.ng(be),
        }
    }
}

impl Jac {
    pub(crate) const IDENTITY: Self = Self {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    #[inline(always)]
    pub(crate) fn is_identity(&self) -> Choice {
        self.z.is_zero()
    }

    /// 2P (dbl-2001-b, 3M + 5S). The identity doubles to the identity.
    #[inline(always)]
    pub(crate) fn double<B: Backend>(&self, be: B) -> Self {
        // Ordered so that independent operations stand together (see `add_raw`).
        let delta = self.z.sq(be);
        let gamma = self.y.sq(be);
        let t = self.x.sb(be, &delta).mm(be, &self.x.ad(be, &delta));
        let beta = self.x.mm(be, &gamma);
        let alpha = t.dbl(be).ad(be, &t);
        let yz = self.y.ad(be, &self.z).sq(be);
        let a2 = alpha.sq(be);
        let g2 = gamma.sq(be);
        let beta4 = beta.dbl(be).dbl(be);
        let x3 = a2.sb(be, &beta4.dbl(be));
        let z3 = yz.sb(be, &gamma).sb(be, &delta);
        let g8 = g2.dbl(be).dbl(be).dbl(be);
        let y3 = alpha.mm(be, &beta4.sb(be, &x3)).sb(be, &g8);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// 2^n P.
    #[inline(always)]
    pub(crate) fn double_n<B: Backend>(&self, be: B, n: u32) -> Self {
        let mut p = *self;
        for _ in 0..n {
            p = p.double(be);
        }
        p
    }

    /// P + Q for affine Q (madd-2007-bl, 7M + 4S), without the special cases; the
    /// second value is H == 0 (Q = ±P, or P the identity with x(Q) = X1 = 0... see
    /// the callers).
    #[inline(always)]
    fn madd_raw<B: Backend>(&self, be: B, q: &Affine) -> (Self, Choice, Choice) {
        // Ordered so that independent operations stand together (see `add_raw`).
        let z1z1 = self.z.sq(be);
        let y2z1 = q.y.mm(be, &self.z);
        let u2 = q.x.mm(be, &z1z1);
        let s2 = y2z1.mm(be, &z1z1);
        let h = u2.sb(be, &self.x);
        let hh = h.sq(be);
        let r = s2.sb(be, &self.y).dbl(be);
        let zh = self.z.ad(be, &h).sq(be);
        let i = hh.dbl(be).dbl(be);
        let j = h.mm(be, &i);
        let v = self.x.mm(be, &i);
        let r2 = r.sq(be);
        let y1j = self.y.mm(be, &j);
        let x3 = r2.sb(be, &j).sb(be, &v.dbl(be));
        let z3 = zh.sb(be, &z1z1).sb(be, &hh);
        let y3 = r.mm(be, &v.sb(be, &x3)).sb(be, &y1j.dbl(be));
        (
            Self {
                x: x3,
                y: y3,
                z: z3,
            },
            h.is_zero(),
            r.is_zero(),
        )
    }

    /// P + Q for affine Q, branch-free: handles P = identity and `q_none` (Q absent,
    /// i.e. the identity); P = Q sets `exceptional`.
    #[inline(always)]
    pub(crate) fn madd_ct<B: Backend>(
        &self,
        be: B,
        q: &Affine,
        q_none: Choice,
        exceptional: &mut Choice,
    ) -> Self {
        let (sum, h0, r0) = self.madd_raw(be, q);
        let p_inf = self.is_identity();
        *exceptional |= !p_inf & !q_none & h0 & r0;
        let sum = Self::conditional_select(&sum, &q.to_jac(), p_inf);
        Self::conditional_select(&sum, self, q_none)
    }

    /// P + Q for affine Q, variable-time, complete.
    #[inline(always)]
    pub(crate) fn madd_vartime<B: Backend>(&self, be: B, q: &Affine) -> Self {
        if bool::from(self.is_identity()) {
            return q.to_jac();
        }
        let (sum, h0, r0) = self.madd_raw(be, q);
        if bool::from(h0) {
            if bool::from(r0) {
                return self.double(be);
            }
            return Self::IDENTITY;
        }
        sum
    }

    /// P + Q (add-2007-bl, 11M + 5S) without the special cases.
    #[inline(always)]
    fn add_raw<B: Backend>(&self, be: B, q: &Self) -> (Self, Choice, Choice) {
        // Independent products stand next to each other, so that the out-of-order core
        // overlaps them (each field operation is an opaque `asm!` block on the fast
        // backends, which the compiler does not interleave).
        let z1z1 = self.z.sq(be);
        let z2z2 = q.z.sq(be);
        let y1z2 = self.y.mm(be, &q.z);
        let y2z1 = q.y.mm(be, &self.z);
        let u1 = self.x.mm(be, &z2z2);
        let u2 = q.x.mm(be, &z1z1);
        let s1 = y1z2.mm(be, &z2z2);
        let s2 = y2z1.mm(be, &z1z1);
        let zz = self.z.ad(be, &q.z).sq(be);
        let h = u2.sb(be, &u1);
        let i = h.dbl(be).sq(be);
        let r = s2.sb(be, &s1).dbl(be);
        let j = h.mm(be, &i);
        let v = u1.mm(be, &i);
        let r2 = r.sq(be);
        let z3 = zz.sb(be, &z1z1).sb(be, &z2z2).mm(be, &h);
        let s1j = s1.mm(be, &j);
        let x3 = r2.sb(be, &j).sb(be, &v.dbl(be));
        let y3 = r.mm(be, &v.sb(be, &x3)).sb(be, &s1j.dbl(be));
        (
            Self {
                x: x3,
                y: y3,
                z: z3,
            },
            h.is_zero(),
            r.is_zero(),
        )
    }

    /// P + Q, branch-free: handles either side being the identity; P = Q sets
    /// `exceptional`.
    #[inline(always)]
    pub(crate) fn add_ct<B: Backend>(&self, be: B, q: &Self, exceptional: &mut Choice) -> Self {
        let (sum, h0, r0) = self.add_raw(be, q);
        let p_inf = self.is_identity();
        let q_inf = q.is_identity();
        *exceptional |= !p_inf & !q_inf & h0 & r0;
        let sum = Self::conditional_select(&sum, q, p_inf);
        Self::conditional_select(&sum, self, q_inf)
    }

    /// P + Q, variable-time, complete.
    #[inline(always)]
    pub(crate) fn add_vartime<B: Backend>(&self, be: B, q: &Self) -> Self {
        if bool::from(self.is_identity()) {
            return *q;
        }
        if bool::from(q.is_identity()) {
            return *self;
        }
        let (sum, h0, r0) = self.add_raw(be, q);
        if bool::from(h0) {
            if bool::from(r0) {
                return self.double(be);
            }
            return Self::IDENTITY;
        }
        sum
    }

    #[inline(always)]
    pub(crate) fn neg<B: Backend>(&self, be: B) -> Self {
        Self {
            x: self.x,
            y: self.y.ng(be),
            z: self.z,
        }
    }

    /// The affine point, `None` for the identity. Constant-time apart from that answer.
    #[inline(always)]
    pub(crate) fn to_affine<B: Backend>(self, be: B) -> Option<Affine> {
        if bool::from(self.is_identity()) {
            return None;
        }
        let zi = self.z.invert(be);
        Some(self.to_affine_with(be, &zi))
    }

    /// The affine point given Z^−1.
    #[inline(always)]
    pub(crate) fn to_affine_with<B: Backend>(self, be: B, zinv: &Fe) -> Affine {
        let zi2 = zinv.sq(be);
        Affine {
            x: self.x.mm(be, &zi2),
            y: self.y.mm(be, &zi2).mm(be, zinv),
        }
    }
}

/// Inverts every element of `v` in place with one inversion (Montgomery's trick).
/// Zeros stay zero (and do not spoil the others). Constant-time in the values.
#[inline(always)]
pub(crate) fn batch_invert<B: Backend>(be: B, v: &mut [Fe]) {
    let mut prefix = Vec::with_capacity(v.len());
    let mut acc = Fe::ONE;
    for x in v.iter() {
        prefix.push(acc);
        // A zero is replaced by one in the running product.
        let xx = Fe::conditional_select(x, &Fe::ONE, x.is_zero());
        acc = acc.mm(be, &xx);
    }
    let mut inv = acc.invert(be);
    for (x, pre) in v.iter_mut().zip(prefix.iter()).rev() {
        let zero = x.is_zero();
        let xx = Fe::conditional_select(x, &Fe::ONE, zero);
        let xi = inv.mm(be, pre);
        inv = inv.mm(be, &xx);
        *x = Fe::conditional_select(&xi, &Fe::ZERO, zero);
    }
}

/// Affine forms of Jacobian points (none may be the identity), with one inversion.
#[inline(always)]
pub(crate) fn batch_to_affine<B: Backend>(be: B, points: &[Jac]) -> Vec<Affine> {
    let mut zs: Vec<Fe> = points.iter().map(|p| p.z).collect();
    batch_invert(be, &mut zs);
    points
        .iter()
        .zip(zs.iter())
        .map(|(p, zi)| p.to_affine_with(be, zi))
        .collect()
}

/// The w-bit window of canonical limbs `k` starting at bit `pos` (public).
#[inline(always)]
pub(crate) fn window_bits(k: &[u64; 4], pos: usize, w: usize) -> u64 {
    let limb = pos / 64;
    let off = pos % 64;
    if limb >= 4 {
        return 0;
    }
    let mut v = k[limb] >> off;
    if off + w > 64 && limb + 1 < 4 {
        v |= k[limb + 1] << (64 - off);
    }
    v & ((1u64 << w) - 1)
}

/// Signed base-2^w digits of a 256-bit k: k = Σ d_j 2^(wj), |d_j| ≤ 2^(w−1),
/// 256/w + 1 digits. Branch-free. Each digit is (magnitude, 1 if negative).
pub(crate) fn recode_signed<const W: usize, const NW: usize>(k: &[u64; 4]) -> [(u8, u8); NW] {
    let mut out = [(0u8, 0u8); NW];
    let mut carry = 0u64;
    for (j, d) in out.iter_mut().enumerate() {
        let v = window_bits(k, j * W, W) + carry;
        // c = 1 when v > 2^(w−1): the digit is v − 2^w and 1 carries up.
        let c = ((1u64 << (W - 1)).wrapping_sub(v)) >> 63;
        let mag = v.wrapping_add(c.wrapping_mul((1u64 << W).wrapping_sub(v.wrapping_mul(2))));
        *d = (mag as u8, c as u8);
        carry = c;
    }
    out
}

/// Width-w NAF of a 256-bit k (variable-time; public scalars only): 257 digits,
/// each 0 or odd with |d| < 2^(w−1).
pub(crate) fn wnaf<const W: usize>(k: &[u64; 4]) -> [i8; 257] {
    let mut out = [0i8; 257];
    // A 5-limb copy so the +carry never overflows.
    let mut x = [k[0], k[1], k[2], k[3], 0u64];
    let mut i = 0;
    let is_zero = |x: &[u64; 5]| x.iter().all(|&l| l == 0);
    while !is_zero(&x) && i < 257 {
        if x[0] & 1 == 1 {
            let m = (x[0] & ((1 << W) - 1)) as i64;
            let d = if m >= 1 << (W - 1) { m - (1 << W) } else { m };
            out[i] = d as i8;
            // x -= d
            if d > 0 {
                let mut borrow = d as u64;
                for l in x.iter_mut() {
                    let (s, b) = l.overflowing_sub(borrow);
                    *l = s;
                    borrow = u64::from(b);
                    if borrow == 0 {
                        break;
                    }
                }
            } else {
                let mut carry = (-d) as u64;
                for l in x.iter_mut() {
                    let (s, c) = l.overflowing_add(carry);
                    *l = s;
                    carry = u64::from(c);
                    if carry == 0 {
                        break;
                    }
                }
            }
        }
        // x >>= 1
        for j in 0..5 {
            let hi = if j < 4 { x[j + 1] << 63 } else { 0 };
            x[j] = (x[j] >> 1) | hi;
        }
        i += 1;
    }
    out
}
