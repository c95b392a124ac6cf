//! Single-stream SM3 on x86-64: the message expansion four words at a time in XMM
//! registers (libgcrypt's scheme: three words per step are independent, the fourth gets
//! its missing W_{j} term afterwards, which works because P1 is linear over XOR), W and
//! W' stored to a stack buffer, and the scalar rounds compiled with BMI2 so every
//! rotate is a flag-free `rorx`.
//!
//! Every function here is `#[target_feature]`; callers in `sm3.rs` reach them only
//! after [`crate::Tier::detected_up_to`] has confirmed the features.

#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::portable::{TJ, compress_body, ff1, ff2, gg1, gg2, p0, round, sm3_rounds};

/// W_0..W_67 and W'_0..W'_63 of one block.
#[repr(C, align(64))]
struct Expanded {
    w: [u32; 68],
    wp: [u32; 64],
}

/// The scalar kernel compiled with BMI2 (`rorx`); the message expansion stays scalar.
#[target_feature(enable = "bmi2")]
pub(crate) fn compress_bmi2(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    compress_body(state, blocks);
}

macro_rules! simd_kernel {
    ($name:ident, $feat:literal, $rol:ident) => {
        /// SIMD message expansion + BMI2 scalar rounds.
        #[target_feature(enable = $feat)]
        pub(crate) fn $name(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
            let bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
            let mut x = Expanded {
                w: [0; 68],
                wp: [0; 64],
            };
            for block in blocks {
                let p = block.as_ptr().cast::<__m128i>();
                // SAFETY: `block` is 64 bytes, so the four 16-byte unaligned loads at
                // offsets 0, 16, 32 and 48 stay inside it.
                let (l0, l1, l2, l3) = unsafe {
                    (
                        _mm_loadu_si128(p),
                        _mm_loadu_si128(p.add(1)),
                        _mm_loadu_si128(p.add(2)),
                        _mm_loadu_si128(p.add(3)),
                    )
                };
                let mut x0 = _mm_shuffle_epi8(l0, bswap);
                let mut x1 = _mm_shuffle_epi8(l1, bswap);
                let mut x2 = _mm_shuffle_epi8(l2, bswap);
                let mut x3 = _mm_shuffle_epi8(l3, bswap);
                let wptr = x.w.as_mut_ptr().cast::<__m128i>();
                let wpptr = x.wp.as_mut_ptr().cast::<__m128i>();
                // SAFETY: `x.w` holds 68 words (17 vectors) and `x.wp` 64 words (16
                // vectors); the indices below are 0..3 and 0..2, in bounds.
                unsafe {
                    _mm_store_si128(wptr, x0);
                    _mm_store_si128(wptr.add(1), x1);
                    _mm_store_si128(wptr.add(2), x2);
                    _mm_store_si128(wptr.add(3), x3);
                    _mm_store_si128(wpptr, _mm_xor_si128(x0, x1));
                    _mm_store_si128(wpptr.add(1), _mm_xor_si128(x1, x2));
                    _mm_store_si128(wpptr.add(2), _mm_xor_si128(x2, x3));
                }
                core::hint::black_box(&mut x);
                // Before rounds j..j+3 (j >= 12), expand W[j+4..j+7] and W'[j..j+3].
                macro_rules! prep {
                    ($j:expr) => {
                        if $j >= 12 {
                            let g: usize = ($j + 4) / 4;
                            // W[j-13..j-10], W[j-9..j-6], W[j-6..j-3], and W[j-3..j-1]
                            // with a zero in the lane of W[j] (not known yet).
                            let w13 = _mm_alignr_epi8::<12>(x1, x0);
                            let w9 = _mm_alignr_epi8::<12>(x2, x1);
                            let w6 = _mm_alignr_epi8::<8>(x3, x2);
                            let w3 = _mm_srli_si128::<4>(x3);
                            let t = _mm_xor_si128(_mm_xor_si128(x0, w9), $rol!(w3, 15));
                            let p1 = _mm_xor_si128(_mm_xor_si128(t, $rol!(t, 15)), $rol!(t, 23));
                            let r = _mm_xor_si128(_mm_xor_si128(p1, $rol!(w13, 7)), w6);
                            // Lane 3 (W[j+3]) still lacks P1(W[j] <<< 15); P1 is linear.
                            let u = $rol!(_mm_slli_si128::<12>(r), 15);
                            let fix = _mm_xor_si128(_mm_xor_si128(u, $rol!(u, 15)), $rol!(u, 23));
                            let r = _mm_xor_si128(r, fix);
                            // SAFETY: g is 4..=16, so vector g of `x.w` (17 vectors) and
                            // vector g-1 of `x.wp` (16 vectors) are in bounds.
                            unsafe {
                                _mm_store_si128(wptr.add(g), r);
                                _mm_store_si128(wpptr.add(g - 1), _mm_xor_si128(x3, r));
                            }
                            // Keep W in memory: the rounds read it as `add reg, [mem]`
                            // operands instead of the `vpextrd` LLVM would otherwise
                            // use (two uops each, on the ALU ports the rounds need).
                            core::hint::black_box(&mut x);
                            x0 = x1;
                            x1 = x2;
                            x2 = x3;
                            x3 = r;
                        }
                    };
                }
                macro_rules! w {
                    ($j:expr) => {
                        x.w[$j]
                    };
                }
                macro_rules! wp {
                    ($j:expr) => {
                        x.wp[$j]
                    };
                }
                *state = sm3_rounds!(*state, prep, w, wp);
            }
        }
    };
}

macro_rules! rol_sse {
    ($x:expr, $n:literal) => {{
        let v = $x;
        _mm_or_si128(_mm_slli_epi32::<$n>(v), _mm_srli_epi32::<{ 32 - $n }>(v))
    }};
}

macro_rules! rol_vl {
    ($x:expr, $n:literal) => {
        _mm_rol_epi32::<$n>($x)
    };
}

simd_kernel!(compress_avx2, "avx2,bmi2,ssse3", rol_sse);
simd_kernel!(compress_avx512, "avx512f,avx512vl,avx2,bmi2,ssse3", rol_vl);
