//! Multi-buffer SM3: one block from each of 8 (AVX2) or 16 (AVX-512) independent
//! messages per call, one message per 32-bit lane. The lanes are loaded one block per
//! row and transposed in registers; the rounds then run on whole vectors (AVX-512 uses
//! `vprold` for rotates and `vpternlogd` for FF, GG and the three-way XORs).
//!
//! The kernels are `#[target_feature]` functions; `sm3.rs` calls them only after the
//! tier's features were detected.

#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::portable::TJ;

/// The shared round structure, expanded inside each width's module so the helper
/// names (`add`, `xor`, `xor3`, `rol`, `maj`, `mux`, `set1`) resolve to that width's.
macro_rules! lanes_rounds {
    ($feat:literal, $v:ty) => {
        /// The 64 rounds over one transposed block per lane; updates `v` (V ^= rounds).
        #[target_feature(enable = $feat)]
        fn rounds(v: &mut [$v; 8], m: &[$v; 16]) {
            let mut w = [m[0]; 68];
            w[..16].copy_from_slice(m);
            for j in 16..68 {
                let t = xor3(w[j - 16], w[j - 9], rol::<15, 17>(w[j - 3]));
                let p1 = xor3(t, rol::<15, 17>(t), rol::<23, 9>(t));
                w[j] = xor3(p1, rol::<7, 25>(w[j - 13]), w[j - 6]);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *v;
            for j in 0..64 {
                let a12 = rol::<12, 20>(a);
                let ss1 = rol::<7, 25>(add(add(a12, set1(TJ[j])), e));
                let ss2 = xor(ss1, a12);
                let (ff, gg) = if j < 16 {
                    (xor3(a, b, c), xor3(e, f, g))
                } else {
                    (maj(a, b, c), mux(e, f, g))
                };
                let tt1 = add(add(add(ff, d), xor(w[j], w[j + 4])), ss2);
                let tt2 = add(add(add(gg, h), w[j]), ss1);
                d = c;
                c = rol::<9, 23>(b);
                b = a;
                a = tt1;
                h = g;
                g = rol::<19, 13>(f);
                f = e;
                e = xor3(tt2, rol::<9, 23>(tt2), rol::<17, 15>(tt2));
            }
            let s = [a, b, c, d, e, f, g, h];
            for i in 0..8 {
                v[i] = xor(v[i], s[i]);
            }
        }
    };
}

pub(crate) mod x8 {
    use super::*;

    type V = __m256i;

    #[target_feature(enable = "avx2")]
    fn add(a: V, b: V) -> V {
        _mm256_add_epi32(a, b)
    }
    #[target_feature(enable = "avx2")]
    fn xor(a: V, b: V) -> V {
        _mm256_xor_si256(a, b)
    }
    #[target_feature(enable = "avx2")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm256_xor_si256(_mm256_xor_si256(a, b), c)
    }
    #[target_feature(enable = "avx2")]
    fn rol<const L: i32, const R: i32>(x: V) -> V {
        _mm256_or_si256(_mm256_slli_epi32::<L>(x), _mm256_srli_epi32::<R>(x))
    }
    #[target_feature(enable = "avx2")]
    fn maj(a: V, b: V, c: V) -> V {
        _mm256_or_si256(
            _mm256_and_si256(a, b),
            _mm256_and_si256(c, _mm256_or_si256(a, b)),
        )
    }
    #[target_feature(enable = "avx2")]
    fn mux(x: V, y: V, z: V) -> V {
        _mm256_xor_si256(_mm256_and_si256(_mm256_xor_si256(y, z), x), z)
    }
    #[target_feature(enable = "avx2")]
    fn set1(t: u32) -> V {
        _mm256_set1_epi32(t as i32)
    }

    lanes_rounds!("avx2", V);

    /// Compresses `blocks[l]` into lane `l` of `state` (`state[word][lane]`).
    #[target_feature(enable = "avx2")]
    pub(crate) fn compress(state: &mut [[u32; 8]; 8], blocks: &[&[u8; 64]; 8]) {
        let bswap = _mm256_set_epi8(
            12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4,
            5, 6, 7, 0, 1, 2, 3,
        );
        let mut lo = [_mm256_setzero_si256(); 8];
        let mut hi = [_mm256_setzero_si256(); 8];
        for l in 0..8 {
            let p = blocks[l].as_ptr().cast::<__m256i>();
            // SAFETY: each block is 64 bytes: two unaligned 32-byte loads at 0 and 32.
            let (x, y) = unsafe { (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))) };
            lo[l] = _mm256_shuffle_epi8(x, bswap);
            hi[l] = _mm256_shuffle_epi8(y, bswap);
        }
        let lo = transpose8(lo);
        let hi = transpose8(hi);
        let mut m = [lo[0]; 16];
        m[..8].copy_from_slice(&lo);
        m[8..].copy_from_slice(&hi);
        let mut v = [_mm256_setzero_si256(); 8];
        for i in 0..8 {
            // SAFETY: `state[i]` is 8 u32 = 32 bytes; unaligned load.
            v[i] = unsafe { _mm256_loadu_si256(state[i].as_ptr().cast()) };
        }
        rounds(&mut v, &m);
        for i in 0..8 {
            // SAFETY: as above, a 32-byte unaligned store into `state[i]`.
            unsafe { _mm256_storeu_si256(state[i].as_mut_ptr().cast(), v[i]) };
        }
    }

    /// 8×8 transpose of 32-bit words: row l word m -> output m lane l.
    #[target_feature(enable = "avx2")]
    fn transpose8(r: [V; 8]) -> [V; 8] {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u = [
            _mm256_unpacklo_epi64(t0, t2),
            _mm256_unpackhi_epi64(t0, t2),
            _mm256_unpacklo_epi64(t1, t3),
            _mm256_unpackhi_epi64(t1, t3),
            _mm256_unpacklo_epi64(t4, t6),
            _mm256_unpackhi_epi64(t4, t6),
            _mm256_unpacklo_epi64(t5, t7),
            _mm256_unpackhi_epi64(t5, t7),
        ];
        let mut o = [u[0]; 8];
        for k in 0..4 {
            o[k] = _mm256_permute2x128_si256::<0x20>(u[k], u[4 + k]);
            o[4 + k] = _mm256_permute2x128_si256::<0x31>(u[k], u[4 + k]);
        }
        o
    }
}

pub(crate) mod x16 {
    use super::*;

    type V = __m512i;

    #[target_feature(enable = "avx512f")]
    fn add(a: V, b: V) -> V {
        _mm512_add_epi32(a, b)
    }
    #[target_feature(enable = "avx512f")]
    fn xor(a: V, b: V) -> V {
        _mm512_xor_si512(a, b)
    }
    #[target_feature(enable = "avx512f")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm512_ternarylogic_epi32::<0x96>(a, b, c)
    }
    #[target_feature(enable = "avx512f")]
    fn rol<const L: i32, const R: i32>(x: V) -> V {
        _mm512_rol_epi32::<L>(x)
    }
    #[target_feature(enable = "avx512f")]
    fn maj(a: V, b: V, c: V) -> V {
        _mm512_ternarylogic_epi32::<0xe8>(a, b, c)
    }
    #[target_feature(enable = "avx512f")]
    fn mux(x: V, y: V, z: V) -> V {
        _mm512_ternarylogic_epi32::<0xca>(x, y, z)
    }
    #[target_feature(enable = "avx512f")]
    fn set1(t: u32) -> V {
        _mm512_set1_epi32(t as i32)
    }

    lanes_rounds!("avx512f", V);

    /// Compresses `blocks[l]` into lane `l` of `state` (`state[word][lane]`).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(crate) fn compress(state: &mut [[u32; 16]; 8], blocks: &[&[u8; 64]; 16]) {
        let bswap = _mm512_set4_epi32(0x0c0d_0e0f, 0x0809_0a0b, 0x0405_0607, 0x0001_0203);
        let mut r = [_mm512_setzero_si512(); 16];
        for l in 0..16 {
            // SAFETY: each block is exactly 64 bytes: one unaligned 64-byte load.
            let x = unsafe { _mm512_loadu_si512(blocks[l].as_ptr().cast()) };
            r[l] = _mm512_shuffle_epi8(x, bswap);
        }
        let m = transpose16(r);
        let mut v = [_mm512_setzero_si512(); 8];
        for i in 0..8 {
            // SAFETY: `state[i]` is 16 u32 = 64 bytes; unaligned load.
            v[i] = unsafe { _mm512_loadu_si512(state[i].as_ptr().cast()) };
        }
        rounds(&mut v, &m);
        for i in 0..8 {
            // SAFETY: as above, a 64-byte unaligned store into `state[i]`.
            unsafe { _mm512_storeu_si512(state[i].as_mut_ptr().cast(), v[i]) };
        }
    }

    /// 16×16 transpose of 32-bit words: row l word m -> output m lane l.
    #[target_feature(enable = "avx512f")]
    fn transpose16(r: [V; 16]) -> [V; 16] {
        let mut t = [r[0]; 16];
        for p in 0..8 {
            t[2 * p] = _mm512_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm512_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
        }
        // u[4q + m]: in each 128-bit lane k, word 4k+m of rows 4q..4q+3.
        let mut u = [r[0]; 16];
        for q in 0..4 {
            let (a0, a1, b0, b1) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
            u[4 * q] = _mm512_unpacklo_epi64(a0, b0);
            u[4 * q + 1] = _mm512_unpackhi_epi64(a0, b0);
            u[4 * q + 2] = _mm512_unpacklo_epi64(a1, b1);
            u[4 * q + 3] = _mm512_unpackhi_epi64(a1, b1);
        }
        let mut o = [r[0]; 16];
        for m in 0..4 {
            let v88 = _mm512_shuffle_i32x4::<0x88>(u[m], u[4 + m]);
            let vdd = _mm512_shuffle_i32x4::<0xdd>(u[m], u[4 + m]);
            let w88 = _mm512_shuffle_i32x4::<0x88>(u[8 + m], u[12 + m]);
            let wdd = _mm512_shuffle_i32x4::<0xdd>(u[8 + m], u[12 + m]);
            o[m] = _mm512_shuffle_i32x4::<0x88>(v88, w88);
            o[8 + m] = _mm512_shuffle_i32x4::<0xdd>(v88, w88);
            o[4 + m] = _mm512_shuffle_i32x4::<0x88>(vdd, wdd);
            o[12 + m] = _mm512_shuffle_i32x4::<0xdd>(vdd, wdd);
        }
        o
    }
}
