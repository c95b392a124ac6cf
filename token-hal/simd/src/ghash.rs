//! GHASH (NIST SP 800-38D §6.4) for GCM, with CLMUL (8 blocks per reduction) and
//! VPCLMULQDQ on AVX-512 (16 blocks per reduction), and RustCrypto `ghash` as the
//! portable path.
//!
//! The SIMD paths compute GHASH through POLYVAL (RFC 8452 appendix A): byte-reversed
//! blocks, the key multiplied by x, Montgomery multiplication `a·b·x⁻¹²⁸` with no bit
//! reflection. Because the reduction is linear, n blocks are multiplied by H^n … H^1
//! and summed before one reduction ("aggregated reduction").

#![allow(unsafe_code)]

use ghash::universal_hash::UniversalHash;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Tier;

/// A running GHASH under one key.
#[derive(Clone)]
pub struct Ghash {
    inner: Inner,
    tier: Tier,
}

#[derive(Clone)]
enum Inner {
    Portable(Box<ghash::GHash>),
    /// POLYVAL-domain key powers, `desc[j] = H^(16 − j)`, and the running value.
    Simd {
        desc: Box<[[u8; 16]; 16]>,
        y: [u8; 16],
    },
}

impl Drop for Ghash {
    fn drop(&mut self) {
        if let Inner::Simd { desc, y } = &mut self.inner {
            desc.zeroize();
            y.zeroize();
        }
    }
}

impl ZeroizeOnDrop for Ghash {}

impl std::fmt::Debug for Ghash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ghash {{ tier: {:?}, .. }}", self.tier)
    }
}

/// Multiplication by x in POLYVAL's field (RFC 8452 appendix A `mulX_POLYVAL`).
fn mulx(b: [u8; 16]) -> [u8; 16] {
    let v = u128::from_le_bytes(b);
    let hi = v >> 127;
    ((v << 1) ^ hi ^ (hi << 127) ^ (hi << 126) ^ (hi << 121)).to_le_bytes()
}

impl Ghash {
    /// GHASH under `h` (= E_K(0¹²⁸)) on the fastest tier this CPU allows.
    pub fn new(h: &[u8; 16]) -> Self {
        Self::with_tier(h, Tier::current())
    }

    /// GHASH under `h` on `tier` (or the fastest supported tier below it).
    pub fn with_tier(h: &[u8; 16], tier: Tier) -> Self {
        let tier = if tier.supported() {
            tier
        } else {
            Tier::detected_up_to(tier)
        };
        let inner = match tier {
            #[cfg(target_arch = "x86_64")]
            Tier::AesniAvx2 | Tier::GfniAvx2 | Tier::GfniAvx512 => {
                let mut hr = *h;
                hr.reverse();
                let h1 = mulx(hr);
                hr.zeroize();
                let mut desc = Box::new([[0u8; 16]; 16]);
                desc[15] = h1;
                for j in (0..15).rev() {
                    // SAFETY: every SIMD tier includes PCLMULQDQ and SSSE3 (tier.rs), and
                    // `tier` is supported.
                    desc[j] = unsafe { x86::dot(&desc[j + 1], &h1) };
                }
                Inner::Simd { desc, y: [0; 16] }
            }
            _ => Inner::Portable(Box::new(ghash::GHash::new(&(*h).into()))),
        };
        Self { inner, tier }
    }

    /// The tier in use.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Absorbs `data` as whole blocks, a partial last block padded with zeros.
    pub fn update_padded(&mut self, data: &[u8]) {
        match &mut self.inner {
            Inner::Portable(g) => g.update_padded(data),
            #[cfg(target_arch = "x86_64")]
            Inner::Simd { desc, y } => {
                let (blocks, rest) = data.as_chunks::<16>();
                match self.tier {
                    // SAFETY: the AVX-512 tier includes VPCLMULQDQ and AVX-512 F/BW/VL, and
                    // `self.tier` is supported (checked in `with_tier`).
                    Tier::GfniAvx512 => unsafe { x86::update_vpclmul(desc, y, blocks) },
                    // SAFETY: every other SIMD tier includes PCLMULQDQ and SSSE3.
                    _ => unsafe { x86::update_clmul(desc, y, blocks) },
                }
                if !rest.is_empty() {
                    let mut last = [0u8; 16];
                    last[..rest.len()].copy_from_slice(rest);
                    // SAFETY: as above.
                    unsafe { x86::update_clmul(desc, y, &[last]) };
                    last.zeroize();
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Inner::Simd { .. } => unreachable!("SIMD GHASH on a non-x86 target"),
        }
    }

    /// The SIMD state for a fused SM4-GCM kernel: the key powers (`desc[j] = H^(16 − j)`,
    /// POLYVAL form) and the running value; `None` on the portable tier.
    pub(crate) fn simd_parts(&mut self) -> Option<(&[[u8; 16]; 16], &mut [u8; 16])> {
        match &mut self.inner {
            Inner::Simd { desc, y } => Some((desc, y)),
            Inner::Portable(_) => None,
        }
    }

    /// The GHASH value so far.
    pub fn finalize(self) -> [u8; 16] {
        match &self.inner {
            Inner::Portable(g) => g.clone().finalize().into(),
            Inner::Simd { y, .. } => {
                let mut out = *y;
                out.reverse();
                out
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use core::arch::x86_64::*;

    const REV: [u8; 16] = [15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0];

    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    pub(crate) fn ld(b: &[u8; 16]) -> __m128i {
        // SAFETY: `b` is 16 readable bytes.
        unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    pub(crate) fn st(b: &mut [u8; 16], v: __m128i) {
        // SAFETY: `b` is 16 writable bytes.
        unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), v) }
    }

    /// Unreduced product accumulators (low, middle, high 128-bit parts).
    type Acc = (__m128i, __m128i, __m128i);

    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    fn mul_acc(a: __m128i, h: __m128i, acc: &mut Acc) {
        acc.0 = _mm_xor_si128(acc.0, _mm_clmulepi64_si128::<0x00>(a, h));
        acc.2 = _mm_xor_si128(acc.2, _mm_clmulepi64_si128::<0x11>(a, h));
        acc.1 = _mm_xor_si128(
            acc.1,
            _mm_xor_si128(
                _mm_clmulepi64_si128::<0x01>(a, h),
                _mm_clmulepi64_si128::<0x10>(a, h),
            ),
        );
    }

    /// Montgomery reduction: (hi·x¹²⁸ + lo)·x⁻¹²⁸ mod x¹²⁸ + x¹²⁷ + x¹²⁶ + x¹²¹ + 1.
    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    fn reduce(acc: Acc) -> __m128i {
        let lo = _mm_xor_si128(acc.0, _mm_slli_si128::<8>(acc.1));
        let hi = _mm_xor_si128(acc.2, _mm_srli_si128::<8>(acc.1));
        let poly = _mm_set_epi64x(0xc200000000000000u64 as i64, 1);
        let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
        let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
        let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
        let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
        _mm_xor_si128(hi, lo)
    }

    /// POLYVAL's dot(a, b) = a·b·x⁻¹²⁸.
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    pub(super) fn dot(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
        let z = _mm_setzero_si128();
        let mut acc = (z, z, z);
        mul_acc(ld(a), ld(b), &mut acc);
        let mut out = [0u8; 16];
        st(&mut out, reduce(acc));
        out
    }

    /// Absorbs GHASH blocks, 8 per reduction.
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    pub(crate) fn update_clmul(desc: &[[u8; 16]; 16], y: &mut [u8; 16], blocks: &[[u8; 16]]) {
        let rev = ld(&REV);
        let mut acc_y = ld(y);
        let z = _mm_setzero_si128();
        let (eights, rest) = blocks.as_chunks::<8>();
        for e in eights {
            let mut acc = (z, z, z);
            for (i, b) in e.iter().enumerate() {
                let mut x = _mm_shuffle_epi8(ld(b), rev);
                if i == 0 {
                    x = _mm_xor_si128(x, acc_y);
                }
                mul_acc(x, ld(&desc[8 + i]), &mut acc);
            }
            acc_y = reduce(acc);
        }
        let h1 = ld(&desc[15]);
        for b in rest {
            let x = _mm_xor_si128(_mm_shuffle_epi8(ld(b), rev), acc_y);
            let mut acc = (z, z, z);
            mul_acc(x, h1, &mut acc);
            acc_y = reduce(acc);
        }
        st(y, acc_y);
    }

    /// The 512-bit byte-reversal mask (GHASH block → POLYVAL element, per 128-bit lane).
    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1,avx512f,avx512bw,avx512vl,vpclmulqdq")]
    pub(crate) fn rev4() -> __m512i {
        _mm512_broadcast_i32x4(ld(&REV))
    }

    /// Multiplies four POLYVAL elements `x` by four key powers `p` and adds the
    /// unreduced products to `acc` (low, middle, high).
    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1,avx512f,avx512bw,avx512vl,vpclmulqdq")]
    pub(crate) fn mul4_acc(x: __m512i, p: __m512i, acc: &mut [__m512i; 3]) {
        acc[0] = _mm512_xor_si512(acc[0], _mm512_clmulepi64_epi128::<0x00>(x, p));
        acc[2] = _mm512_xor_si512(acc[2], _mm512_clmulepi64_epi128::<0x11>(x, p));
        acc[1] = _mm512_ternarylogic_epi64::<0x96>(
            acc[1],
            _mm512_clmulepi64_epi128::<0x01>(x, p),
            _mm512_clmulepi64_epi128::<0x10>(x, p),
        );
    }

    /// Folds the four lanes of the accumulators and reduces: the new running value.
    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1,avx512f,avx512bw,avx512vl,vpclmulqdq")]
    pub(crate) fn reduce4(acc: &[__m512i; 3]) -> __m128i {
        reduce((fold(acc[0]), fold(acc[1]), fold(acc[2])))
    }

    /// Absorbs GHASH blocks, 16 per reduction in four 512-bit registers.
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1,avx512f,avx512bw,avx512vl,vpclmulqdq")]
    pub(crate) fn update_vpclmul(desc: &[[u8; 16]; 16], y: &mut [u8; 16], blocks: &[[u8; 16]]) {
        let (sixteens, rest) = blocks.as_chunks::<16>();
        if !sixteens.is_empty() {
            let rev = _mm512_broadcast_i32x4(ld(&REV));
            let (pw, _) = desc.as_chunks::<4>();
            let p = [ld4(&pw[0]), ld4(&pw[1]), ld4(&pw[2]), ld4(&pw[3])];
            let mut acc_y = ld(y);
            for s in sixteens {
                let (q, _) = s.as_chunks::<4>();
                let mut lo = _mm512_setzero_si512();
                let mut mid = _mm512_setzero_si512();
                let mut hi = _mm512_setzero_si512();
                for k in 0..4 {
                    let mut x = ld4(&q[k]);
                    x = _mm512_shuffle_epi8(x, rev);
                    if k == 0 {
                        x = _mm512_xor_si512(x, _mm512_zextsi128_si512(acc_y));
                    }
                    lo = _mm512_xor_si512(lo, _mm512_clmulepi64_epi128::<0x00>(x, p[k]));
                    hi = _mm512_xor_si512(hi, _mm512_clmulepi64_epi128::<0x11>(x, p[k]));
                    mid = _mm512_ternarylogic_epi64::<0x96>(
                        mid,
                        _mm512_clmulepi64_epi128::<0x01>(x, p[k]),
                        _mm512_clmulepi64_epi128::<0x10>(x, p[k]),
                    );
                }
                acc_y = reduce((fold(lo), fold(mid), fold(hi)));
            }
            st(y, acc_y);
        }
        update_clmul(desc, y, rest);
    }

    /// Four blocks into one 512-bit register.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) fn ld4(b: &[[u8; 16]; 4]) -> __m512i {
        // SAFETY: `b` is 64 readable bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
    }

    /// XOR of the four 128-bit lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn fold(v: __m512i) -> __m128i {
        let a = _mm512_extracti64x4_epi64::<0>(v);
        let b = _mm512_extracti64x4_epi64::<1>(v);
        let c = _mm256_xor_si256(a, b);
        _mm_xor_si128(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c))
    }
}
