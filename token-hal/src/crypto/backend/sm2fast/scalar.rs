//! Arithmetic modulo the SM2 group order n, on four 64-bit limbs in the Montgomery
//! domain, over fiat-crypto's verified branch-free code for this modulus. Inversion is
//! x^(n−2) with the public exponent's bits driving the square-and-multiply, so its
//! running time does not depend on x.

use fiat_crypto::sm2_scalar_64 as f;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

use super::field::{limbs_from_be, limbs_to_be, sub_borrow};

/// n, little-endian limbs.
pub(crate) const N: [u64; 4] = [
    0x53BB_F409_39D5_4123,
    0x7203_DF6B_21C6_052B,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFE_FFFF_FFFF,
];

/// A scalar mod n in Montgomery form.
#[derive(Clone, Copy, Default, Zeroize)]
pub(crate) struct Sc(pub(crate) [u64; 4]);

/// x mod n for x < 2^256 (< 2n), branch-free.
pub(crate) fn reduce_once(l: [u64; 4]) -> [u64; 4] {
    let (d, borrow) = sub_borrow(&l, &N);
    let mut out = [0u64; 4];
    // borrow = 1: l < n, keep l.
    f::fiat_sm2_scalar_selectznz(&mut out, (borrow as u8) & 1, &d, &l);
    out
}

impl Sc {
    #[cfg(test)]
    pub(crate) const ZERO: Self = Self([0; 4]);
    pub(crate) const ONE: Self = {
        let mut one = f::fiat_sm2_scalar_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_scalar_set_one(&mut one);
        Self(one.0)
    };

    /// From canonical limbs (< n).
    pub(crate) fn from_canonical(l: [u64; 4]) -> Self {
        let mut out = f::fiat_sm2_scalar_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_scalar_to_montgomery(
            &mut out,
            &f::fiat_sm2_scalar_non_montgomery_domain_field_element(l),
        );
        Self(out.0)
    }

    /// Canonical limbs.
    pub(crate) fn to_canonical(self) -> [u64; 4] {
        let mut out = f::fiat_sm2_scalar_non_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_scalar_from_montgomery(
            &mut out,
            &f::fiat_sm2_scalar_montgomery_domain_field_element(self.0),
        );
        out.0
    }

    /// From 32 big-endian bytes; `None` unless below n.
    pub(crate) fn from_be_bytes(b: &[u8; 32]) -> Option<Self> {
        let l = limbs_from_be(b);
        let (_, borrow) = sub_borrow(&l, &N);
        (borrow == 1).then(|| Self::from_canonical(l))
    }

    /// 32 big-endian bytes reduced mod n (for e and x1).
    pub(crate) fn reduce_be_bytes(b: &[u8; 32]) -> Self {
        Self::from_canonical(reduce_once(limbs_from_be(b)))
    }

    /// Canonical limbs of any 256-bit value reduced mod n.
    pub(crate) fn reduce_limbs(l: [u64; 4]) -> Self {
        Self::from_canonical(reduce_once(l))
    }

    /// 32 big-endian bytes.
    pub(crate) fn to_be_bytes(self) -> [u8; 32] {
        limbs_to_be(&self.to_canonical())
    }

    #[inline(always)]
    pub(crate) fn mul(&self, rhs: &Self) -> Self {
        let mut out = f::fiat_sm2_scalar_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_scalar_mul(
            &mut out,
            &f::fiat_sm2_scalar_montgomery_domain_field_element(self.0),
            &f::fiat_sm2_scalar_montgomery_domain_field_element(rhs.0),
        );
        Self(out.0)
    }

    #[inline(always)]
    pub(crate) fn add(&self, rhs: &Self) -> Self {
        let mut out = f::fiat_sm2_scalar_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_scalar_add(
            &mut out,
            &f::fiat_sm2_scalar_montgomery_domain_field_element(self.0),
            &f::fiat_sm2_scalar_montgomery_domain_field_element(rhs.0),
        );
        Self(out.0)
    }

    #[inline(always)]
    pub(crate) fn sub(&self, rhs: &Self) -> Self {
        let mut out = f::fiat_sm2_scalar_montgomery_domain_field_element([0; 4]);
        f::fiat_sm2_scalar_sub(
            &mut out,
            &f::fiat_sm2_scalar_montgomery_domain_field_element(self.0),
            &f::fiat_sm2_scalar_montgomery_domain_field_element(rhs.0),
        );
        Self(out.0)
    }

    /// 1 when zero.
    #[inline(always)]
    pub(crate) fn is_zero(&self) -> Choice {
        let mut nz = 0u64;
        f::fiat_sm2_scalar_nonzero(&mut nz, &self.0);
        nz.ct_eq(&0)
    }

    /// self^(n−2) = self^−1 (0 for 0). The exponent is public, so the branches on its
    /// bits do not depend on self.
    pub(crate) fn invert(&self) -> Self {
        let (e, _) = sub_borrow(&N, &[2, 0, 0, 0]);
        let mut r = Self::ONE;
        for i in (0..256).rev() {
            r = r.mul(&r);
            if (e[i / 64] >> (i % 64)) & 1 == 1 {
                r = r.mul(self);
            }
        }
        r
    }
}

impl ConstantTimeEq for Sc {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl ConditionallySelectable for Sc {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        let mut out = [0u64; 4];
        f::fiat_sm2_scalar_selectznz(&mut out, choice.unwrap_u8(), &a.0, &b.0);
        Self(out)
    }
}

/// Big-endian bytes from little-endian limbs.
pub(crate) fn canonical_to_be(l: &[u64; 4]) -> [u8; 32] {
    limbs_to_be(l)
}
