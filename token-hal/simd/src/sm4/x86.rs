//! SM4 on x86-64 vectors: 16 blocks per group of four AVX-512 registers (GFNI S-box),
//! or 8 blocks per group of four AVX2 registers (GFNI or AES-NI S-box).
//!
//! A group holds word j of every block in register j ("4 words × lanes", after a 4×4
//! transpose inside each 128-bit lane and a byte swap to native order), so one SM4
//! round is a handful of vector instructions for all the blocks at once. Four groups run
//! interleaved in the main loops to hide instruction latency.
//!
//! The S-box is an affine map, an inversion in GF(2^8) and another affine map. GFNI
//! does this with `gf2p8affineqb` then `gf2p8affineinvqb` (the inversion is in the AES
//! field, so the two matrices also carry the field isomorphism). Without GFNI, the AES
//! S-box of `aesenclast` does the inversion and nibble-table shuffles do the two
//! affine maps. The matrices were derived from the S-box table and are checked against
//! it by every test (tests/sm4.rs).
//!
//! Every function here is `#[target_feature]`; the dispatcher in `sm4.rs` calls them
//! only after checking [`crate::Tier::supported`].

#![allow(unsafe_code)]

/// GFNI pre-transform matrix and constant (x → M1·x + 0x69).
const M1: u64 = 0xa7ac65de3de94796;
/// GFNI post-transform matrix and constant (y → M2·y⁻¹ + 0xd3).
const M2: u64 = 0x75f1228d6c1e85c9;
const C1: i32 = 0x69;
const C2: i32 = 0xd3;

/// Byte-swap of each 32-bit word.
const BSWAP32: [u8; 16] = [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12];

/// Two rounds on words `$a` then `$b` of every group in `$g`, sharing `$c ^ $d`:
/// `a ^= T(b ^ c ^ d ^ k0)`, then `b ^= T(c ^ d ^ a ^ k1)` (three XOR-type operations
/// for the two round inputs instead of four).
macro_rules! round2 {
    ($g:ident, $k0:expr, $k1:expr; $a:literal, $b:literal, $c:literal, $d:literal) => {
        let k0 = bcast($k0);
        let k1 = bcast($k1);
        if SPLIT_PAIRS {
            // The first round on every group, then the second: the AES-NI S-box is a
            // long chain, and the dependent round right behind it stalls the groups
            // after it in program order.
            let mut u = [k0; 4];
            for (q, u) in $g.iter_mut().zip(u.iter_mut()) {
                *u = xor(q[$c], q[$d]);
                q[$a] = sbox_l(q[$a], xor3(*u, q[$b], k0));
            }
            for (q, u) in $g.iter_mut().zip(u) {
                q[$b] = sbox_l(q[$b], xor3(u, q[$a], k1));
            }
        } else {
            for q in $g.iter_mut() {
                let u = xor(q[$c], q[$d]);
                q[$a] = sbox_l(q[$a], xor3(u, q[$b], k0));
                q[$b] = sbox_l(q[$b], xor3(u, q[$a], k1));
            }
        }
    };
}

/// Calls `$f::<m>(…, the first m groups of $t, …)` for a run-time `m` in 1..=4.
macro_rules! by_count {
    ($m:expr, $t:ident, $f:ident($($a:expr),*)) => {
        match $m {
            1 => if let Some(g) = $t.first_chunk_mut::<1>() { $f::<1>($($a,)* g) },
            2 => if let Some(g) = $t.first_chunk_mut::<2>() { $f::<2>($($a,)* g) },
            3 => if let Some(g) = $t.first_chunk_mut::<3>() { $f::<3>($($a,)* g) },
            _ => if let Some(g) = $t.first_chunk_mut::<4>() { $f::<4>($($a,)* g) },
        }
    };
}

/// Mode code shared by the tiers. The including module provides the vector type `V`,
/// `VB` (bytes per vector), `G` (blocks per group), `NG` (groups in flight), and the
/// primitives `ld`, `st`, `xor`, `xor3`, `bcast`, `sbox_l`, `words`, `blocks`,
/// `ctr_words`, `shift_prev`, `splat_block`.
macro_rules! sm4_modes {
    ($feat:literal) => {
        use zeroize::Zeroize;

        use crate::sm4::portable;

        /// Bytes per group.
        const GB: usize = 4 * VB;

        #[inline]
        #[target_feature(enable = $feat)]
        fn load_group(g: &[u8; GB]) -> [V; 4] {
            let (v, _) = g.as_chunks::<VB>();
            [ld(&v[0]), ld(&v[1]), ld(&v[2]), ld(&v[3])]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn store_group(g: &mut [u8; GB], x: [V; 4]) {
            let (v, _) = g.as_chunks_mut::<VB>();
            for (d, s) in v.iter_mut().zip(x) {
                st(d, s);
            }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn xor_group(a: [V; 4], b: [V; 4]) -> [V; 4] {
            [xor(a[0], b[0]), xor(a[1], b[1]), xor(a[2], b[2]), xor(a[3], b[3])]
        }

        /// The 32 rounds over `N` groups in word form, interleaved; `out` gets the
        /// results in block order. (`out` is inlined here: the results stay in
        /// registers instead of going back to the caller through memory.)
        #[inline]
        #[target_feature(enable = $feat)]
        fn rounds<const N: usize>(
            rk: &[u32; 32],
            mut g: [[V; 4]; N],
            out: impl FnOnce([[V; 4]; N]),
        ) {
            for r in rk.as_chunks::<4>().0 {
                round2!(g, r[0], r[1]; 0, 1, 2, 3);
                round2!(g, r[2], r[3]; 2, 3, 0, 1);
            }
            for q in g.iter_mut() {
                *q = blocks(*q);
            }
            out(g)
        }

        const _: () = assert!(NG == 4, "the tail dispatch below assumes four groups");

        /// Runs `f` over the groups left after the full batches (`left`, fewer than
        /// `NG`) and a partial group (`tail`); `f` gets the groups and their number.
        /// Whole groups are processed where they are; a partial one goes through a
        /// zeroed stack copy.
        #[inline]
        #[target_feature(enable = $feat)]
        fn with_tail(
            left: &mut [[u8; GB]],
            tail: &mut [u8],
            f: impl FnOnce(&mut [[u8; GB]], usize),
        ) {
            if tail.is_empty() {
                if !left.is_empty() {
                    let m = left.len();
                    f(left, m);
                }
                return;
            }
            let m = left.len() + 1;
            let mut tmp = [[0u8; GB]; NG];
            tmp[..left.len()].copy_from_slice(left);
            tmp[left.len()][..tail.len()].copy_from_slice(tail);
            f(&mut tmp[..m], m);
            left.copy_from_slice(&tmp[..left.len()]);
            tail.copy_from_slice(&tmp[left.len()][..tail.len()]);
            tmp.zeroize();
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn ecb_batch<const N: usize>(rk: &[u32; 32], g: &mut [[u8; GB]; N]) {
            let w = core::array::from_fn(|i| words(load_group(&g[i])));
            rounds::<N>(rk, w, |o| {
                for (d, x) in g.iter_mut().zip(o) {
                    store_group(d, x);
                }
            });
        }

        /// ECB over whole blocks in place (`rk` decides encryption or decryption).
        #[target_feature(enable = $feat)]
        pub(crate) fn ecb(rk: &[u32; 32], data: &mut [u8]) {
            let (groups, tail) = data.as_chunks_mut::<GB>();
            let (batches, left) = groups.as_chunks_mut::<NG>();
            for b in batches {
                ecb_batch::<NG>(rk, b);
            }
            with_tail(left, tail, |t, m| by_count!(m, t, ecb_batch(rk)));
        }

        /// Counter words of one group starting `off` blocks after `ctr`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn counters(ctr: &[u8; 16], off: u32, wide: bool) -> [V; 4] {
            let w = portable::to_words(ctr);
            if !wide || w[3].checked_add(off + G as u32 - 1).is_some() {
                return ctr_words(w, off);
            }
            counters_carry(ctr, off)
        }

        /// Rare: a 128-bit counter carries out of its last word inside this group.
        #[cold]
        #[inline(never)]
        #[target_feature(enable = $feat)]
        fn counters_carry(ctr: &[u8; 16], off: u32) -> [V; 4] {
            let mut tmp = [0u8; GB];
            let base = u128::from_be_bytes(*ctr).wrapping_add(u128::from(off));
            for (i, b) in tmp.as_chunks_mut::<16>().0.iter_mut().enumerate() {
                *b = base.wrapping_add(i as u128).to_be_bytes();
            }
            let x = words(load_group(&tmp));
            tmp.zeroize();
            x
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn ctr_batch<const N: usize>(
            rk: &[u32; 32],
            ctr: &[u8; 16],
            wide: bool,
            g: &mut [[u8; GB]; N],
        ) {
            let w = core::array::from_fn(|i| counters(ctr, (i * G) as u32, wide));
            rounds::<N>(rk, w, |ks| {
                for (d, k) in g.iter_mut().zip(ks) {
                    let o = xor_group(k, load_group(d));
                    store_group(d, o);
                }
            });
        }

        /// CTR over `data` (any length), advancing `ctr` by one per block or part.
        #[target_feature(enable = $feat)]
        pub(crate) fn ctr(rk: &[u32; 32], ctr: &mut [u8; 16], data: &mut [u8], wide: bool) {
            let n = data.len().div_ceil(16) as u64;
            let (groups, tail) = data.as_chunks_mut::<GB>();
            let (batches, left) = groups.as_chunks_mut::<NG>();
            let mut c = *ctr;
            for b in batches {
                ctr_batch::<NG>(rk, &c, wide, b);
                portable::increment(&mut c, (NG * G) as u64, wide);
            }
            with_tail(left, tail, |t, m| by_count!(m, t, ctr_batch(rk, &c, wide)));
            portable::increment(ctr, n, wide);
        }

        /// The previous-ciphertext vectors of a group: block i-1 for each block i, with
        /// `carry`'s last block before the first.
        #[inline]
        #[target_feature(enable = $feat)]
        fn prev_group(carry: V, c: [V; 4]) -> [V; 4] {
            [
                shift_prev(carry, c[0]),
                shift_prev(c[0], c[1]),
                shift_prev(c[1], c[2]),
                shift_prev(c[2], c[3]),
            ]
        }

        /// CBC (P = D(C) ⊕ C₋₁, decryption keys) or CFB (P = C ⊕ E(C₋₁), encryption
        /// keys) decryption of `N` groups; `carry` holds the block before them.
        #[inline]
        #[target_feature(enable = $feat)]
        fn chain_batch<const N: usize>(
            rk: &[u32; 32],
            cfb: bool,
            carry: &mut V,
            g: &mut [[u8; GB]; N],
        ) {
            let c: [[V; 4]; N] = core::array::from_fn(|i| load_group(&g[i]));
            let p: [[V; 4]; N] = core::array::from_fn(|i| {
                prev_group(if i == 0 { *carry } else { c[i - 1][3] }, c[i])
            });
            *carry = c[N - 1][3];
            let (input, mask) = if cfb { (p, c) } else { (c, p) };
            rounds::<N>(rk, core::array::from_fn(|i| words(input[i])), |o| {
                for ((d, o), m) in g.iter_mut().zip(o).zip(mask) {
                    store_group(d, xor_group(o, m));
                }
            });
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn chain_dec(rk: &[u32; 32], iv: &mut [u8; 16], data: &mut [u8], cfb: bool) {
            let Some(last) = data.last_chunk::<16>().copied() else {
                return;
            };
            let mut carry = splat_block(iv);
            let (groups, tail) = data.as_chunks_mut::<GB>();
            let (batches, left) = groups.as_chunks_mut::<NG>();
            for b in batches {
                chain_batch::<NG>(rk, cfb, &mut carry, b);
            }
            with_tail(left, tail, |t, m| by_count!(m, t, chain_batch(rk, cfb, &mut carry)));
            *iv = last;
        }

        /// CBC decryption of whole blocks (`rk` the decryption keys).
        #[target_feature(enable = $feat)]
        pub(crate) fn cbc_dec(rk: &[u32; 32], iv: &mut [u8; 16], data: &mut [u8]) {
            chain_dec(rk, iv, data, false);
        }

        /// CFB-128 decryption of whole blocks (`rk` the encryption keys).
        #[target_feature(enable = $feat)]
        pub(crate) fn cfb_dec(rk: &[u32; 32], iv: &mut [u8; 16], data: &mut [u8]) {
            chain_dec(rk, iv, data, true);
        }
    };
}

/// GFNI + AVX-512: 16 blocks per group.
pub(crate) mod gfni_avx512 {
    use core::arch::x86_64::*;

    use super::{BSWAP32, C1, C2, M1, M2};
    use crate::ghash::x86::{ld as gld, ld4, mul4_acc, reduce4, rev4, st as gst, update_vpclmul};

    type V = __m512i;
    const VB: usize = 64;
    const G: usize = 16;
    const NG: usize = 4;
    /// Both rounds of a pair per group in turn (faster here than splitting them).
    const SPLIT_PAIRS: bool = false;

    sm4_modes!("avx512f,avx512bw,gfni");

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn ld(s: &[u8; VB]) -> V {
        // SAFETY: `s` is 64 readable bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn st(d: &mut [u8; VB], v: V) {
        // SAFETY: `d` is 64 writable bytes; the store is unaligned.
        unsafe { _mm512_storeu_si512(d.as_mut_ptr().cast(), v) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn xor(a: V, b: V) -> V {
        _mm512_xor_si512(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm512_ternarylogic_epi32::<0x96>(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn bcast(w: u32) -> V {
        _mm512_set1_epi32(w as i32)
    }

    /// `x ⊕ L(τ(t))`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn sbox_l(x: V, t: V) -> V {
        let s = _mm512_gf2p8affine_epi64_epi8::<C1>(t, _mm512_set1_epi64(M1 as i64));
        let s = _mm512_gf2p8affineinv_epi64_epi8::<C2>(s, _mm512_set1_epi64(M2 as i64));
        let r2 = _mm512_rol_epi32::<2>(s);
        let r10 = _mm512_rol_epi32::<10>(s);
        let r18 = _mm512_rol_epi32::<18>(s);
        let r24 = _mm512_rol_epi32::<24>(s);
        let u = _mm512_ternarylogic_epi32::<0x96>(s, r2, r10);
        let v = _mm512_ternarylogic_epi32::<0x96>(x, r18, r24);
        _mm512_xor_si512(u, v)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn bswap(v: V) -> V {
        // SAFETY: BSWAP32 is 16 readable bytes.
        let m = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(BSWAP32.as_ptr().cast()) });
        _mm512_shuffle_epi8(v, m)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn transpose(r: [V; 4]) -> [V; 4] {
        let t0 = _mm512_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm512_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm512_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm512_unpackhi_epi32(r[2], r[3]);
        [
            _mm512_unpacklo_epi64(t0, t2),
            _mm512_unpackhi_epi64(t0, t2),
            _mm512_unpacklo_epi64(t1, t3),
            _mm512_unpackhi_epi64(t1, t3),
        ]
    }

    /// Block order → word form.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn words(r: [V; 4]) -> [V; 4] {
        transpose([bswap(r[0]), bswap(r[1]), bswap(r[2]), bswap(r[3])])
    }

    /// Word form after the rounds (X32..X35) → output blocks (X35, X34, X33, X32).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn blocks(x: [V; 4]) -> [V; 4] {
        let r = transpose([x[3], x[2], x[1], x[0]]);
        [bswap(r[0]), bswap(r[1]), bswap(r[2]), bswap(r[3])]
    }

    /// Counter blocks `w + off + i` (i < 16, 32-bit wrap in the last word), in word
    /// form: dword d of a word register belongs to block 4·(d mod 4) + d/4.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn ctr_words(w: [u32; 4], off: u32) -> [V; 4] {
        let lanes = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        [
            bcast(w[0]),
            bcast(w[1]),
            bcast(w[2]),
            _mm512_add_epi32(bcast(w[3].wrapping_add(off)), lanes),
        ]
    }

    /// `[prev's last block, cur's blocks 0..3]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn shift_prev(prev: V, cur: V) -> V {
        _mm512_alignr_epi64::<6>(cur, prev)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn splat_block(b: &[u8; 16]) -> V {
        // SAFETY: `b` is 16 readable bytes.
        _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(b.as_ptr().cast()) })
    }

    /// The running GHASH of the fused GCM kernels: the key powers H^16 … H^1 (four
    /// blocks per register, POLYVAL form), the byte-reversal mask, the running value
    /// and the unreduced products of the 16-block chunk being absorbed.
    #[derive(Clone, Copy)]
    struct Gh {
        p: [V; 4],
        rev: V,
        y: __m128i,
        acc: [V; 3],
    }

    impl Gh {
        #[inline]
        #[target_feature(
            enable = "avx512f,avx512bw,avx512vl,gfni,vpclmulqdq,pclmulqdq,ssse3,sse4.1"
        )]
        fn new(desc: &[[u8; 16]; 16], y: &[u8; 16]) -> Self {
            let (pw, _) = desc.as_chunks::<4>();
            let z = _mm512_setzero_si512();
            Self {
                p: [ld4(&pw[0]), ld4(&pw[1]), ld4(&pw[2]), ld4(&pw[3])],
                rev: rev4(),
                y: gld(y),
                acc: [z; 3],
            }
        }

        /// Registers 0 and 1 of a 16-block chunk (four GHASH blocks each); the first
        /// takes the running value in.
        #[inline]
        #[target_feature(
            enable = "avx512f,avx512bw,avx512vl,gfni,vpclmulqdq,pclmulqdq,ssse3,sse4.1"
        )]
        fn absorb_lo(&mut self, v: &[[u8; VB]]) {
            let x0 = _mm512_shuffle_epi8(ld(&v[0]), self.rev);
            let x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(self.y));
            self.acc = [_mm512_setzero_si512(); 3];
            mul4_acc(x0, self.p[0], &mut self.acc);
            mul4_acc(
                _mm512_shuffle_epi8(ld(&v[1]), self.rev),
                self.p[1],
                &mut self.acc,
            );
        }

        /// Registers 2 and 3 of the chunk, then the reduction.
        #[inline]
        #[target_feature(
            enable = "avx512f,avx512bw,avx512vl,gfni,vpclmulqdq,pclmulqdq,ssse3,sse4.1"
        )]
        fn absorb_hi(&mut self, v: &[[u8; VB]]) {
            mul4_acc(
                _mm512_shuffle_epi8(ld(&v[2]), self.rev),
                self.p[2],
                &mut self.acc,
            );
            mul4_acc(
                _mm512_shuffle_epi8(ld(&v[3]), self.rev),
                self.p[3],
                &mut self.acc,
            );
            self.y = reduce4(&self.acc);
        }

        /// Absorbs a whole batch (four 16-block chunks).
        #[inline]
        #[target_feature(
            enable = "avx512f,avx512bw,avx512vl,gfni,vpclmulqdq,pclmulqdq,ssse3,sse4.1"
        )]
        fn absorb_batch(&mut self, b: &[[u8; GB]; NG]) {
            for g in b {
                let (v, _) = g.as_chunks::<VB>();
                self.absorb_lo(v);
                self.absorb_hi(v);
            }
        }
    }

    /// The 32 rounds over a batch of counter groups, the key stream XORed into `cur`,
    /// with the GHASH of the ciphertext `prev` (the batch before, when encrypting) or
    /// `cur` itself (decrypting: hashed before it is overwritten) spread over the
    /// rounds: eight blocks after every fourth round, so the carry-less
    /// multiplications and their reductions fill the gaps of the SM4 dependency chains
    /// instead of a second pass.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,gfni,vpclmulqdq,pclmulqdq,ssse3,sse4.1")]
    fn rounds_gh(
        rk: &[u32; 32],
        mut g: [[V; 4]; NG],
        ghr: &mut Gh,
        cur: &mut [[u8; GB]; NG],
        prev: Option<&[[u8; GB]; NG]>,
    ) {
        let src: &[[u8; GB]; NG] = match prev {
            Some(p) => p,
            None => cur,
        };
        // A local copy, so the GHASH state can stay in registers.
        let mut gh = *ghr;
        for (r, s) in rk.as_chunks::<8>().0.iter().zip(src) {
            let (v, _) = s.as_chunks::<VB>();
            round2!(g, r[0], r[1]; 0, 1, 2, 3);
            round2!(g, r[2], r[3]; 2, 3, 0, 1);
            gh.absorb_lo(v);
            round2!(g, r[4], r[5]; 0, 1, 2, 3);
            round2!(g, r[6], r[7]; 2, 3, 0, 1);
            gh.absorb_hi(v);
        }
        *ghr = gh;
        for q in g.iter_mut() {
            *q = blocks(*q);
        }
        xor_batch(cur, g);
    }

    /// The counter groups of a batch starting at `c` (32-bit counter).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn ctr_batch_words(c: &[u8; 16]) -> [[V; 4]; NG] {
        core::array::from_fn(|i| counters(c, (i * G) as u32, false))
    }

    /// `d ^= ks`, a batch.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    fn xor_batch(d: &mut [[u8; GB]; NG], ks: [[V; 4]; NG]) {
        for (d, k) in d.iter_mut().zip(ks) {
            let o = xor_group(k, load_group(d));
            store_group(d, o);
        }
    }

    /// Fused SM4-GCM encryption of whole blocks in place: CTR with the 32-bit counter
    /// `ctr` (advanced), and GHASH of the ciphertext into `y` under the key powers
    /// `desc` (POLYVAL form). The GHASH of each 64-block batch runs inside the SM4
    /// rounds of the next one.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,gfni,vpclmulqdq,pclmulqdq,ssse3,sse4.1")]
    pub(crate) fn gcm_seal(
        rk: &[u32; 32],
        ctr: &mut [u8; 16],
        data: &mut [u8],
        desc: &[[u8; 16]; 16],
        y: &mut [u8; 16],
    ) {
        let full = data.len() / (GB * NG) * (GB * NG);
        let (main, rest) = data.split_at_mut(full);
        let (batches, _) = main.as_chunks_mut::<GB>().0.as_chunks_mut::<NG>();
        let mut gh = Gh::new(desc, y);
        for i in 0..batches.len() {
            let (done, todo) = batches.split_at_mut(i);
            let Some(cur) = todo.first_mut() else { break };
            let words = ctr_batch_words(ctr);
            match done.last() {
                Some(prev) => rounds_gh(rk, words, &mut gh, cur, Some(prev)),
                None => rounds::<NG>(rk, words, |ks| xor_batch(cur, ks)),
            }
            portable::increment(ctr, (NG * G) as u64, false);
        }
        if let Some(last) = batches.last() {
            gh.absorb_batch(last);
        }
        gst(y, gh.y);
        self::ctr(rk, ctr, rest, false);
        update_vpclmul(desc, y, rest.as_chunks::<16>().0);
    }

    /// Fused SM4-GCM decryption of whole blocks in place: GHASH of the ciphertext into
    /// `y` (inside the SM4 rounds of the same batch), then CTR as [`gcm_seal`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,gfni,vpclmulqdq,pclmulqdq,ssse3,sse4.1")]
    pub(crate) fn gcm_open(
        rk: &[u32; 32],
        ctr: &mut [u8; 16],
        data: &mut [u8],
        desc: &[[u8; 16]; 16],
        y: &mut [u8; 16],
    ) {
        let full = data.len() / (GB * NG) * (GB * NG);
        let (main, rest) = data.split_at_mut(full);
        let (batches, _) = main.as_chunks_mut::<GB>().0.as_chunks_mut::<NG>();
        let mut gh = Gh::new(desc, y);
        for cur in batches.iter_mut() {
            let words = ctr_batch_words(ctr);
            rounds_gh(rk, words, &mut gh, cur, None);
            portable::increment(ctr, (NG * G) as u64, false);
        }
        gst(y, gh.y);
        update_vpclmul(desc, y, rest.as_chunks::<16>().0);
        self::ctr(rk, ctr, rest, false);
    }
}

/// AVX2 tiers: the primitives shared by the GFNI and AES-NI S-boxes.
macro_rules! avx2_tier {
    ($feat:literal, $split:literal) => {
        use core::arch::x86_64::*;

        use super::BSWAP32;

        type V = __m256i;
        const VB: usize = 32;
        const G: usize = 8;
        const NG: usize = 4;
        /// How `round2!` orders a pair of rounds over the groups.
        const SPLIT_PAIRS: bool = $split;

        sm4_modes!($feat);

        #[inline]
        #[target_feature(enable = $feat)]
        fn ld(s: &[u8; VB]) -> V {
            // SAFETY: `s` is 32 readable bytes; the load is unaligned.
            unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn st(d: &mut [u8; VB], v: V) {
            // SAFETY: `d` is 32 writable bytes; the store is unaligned.
            unsafe { _mm256_storeu_si256(d.as_mut_ptr().cast(), v) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn xor(a: V, b: V) -> V {
            _mm256_xor_si256(a, b)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn xor3(a: V, b: V, c: V) -> V {
            _mm256_xor_si256(_mm256_xor_si256(a, b), c)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn bcast(w: u32) -> V {
            _mm256_set1_epi32(w as i32)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn mask(m: &[u8; 16]) -> V {
            // SAFETY: `m` is 16 readable bytes.
            _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(m.as_ptr().cast()) })
        }

        /// `x ⊕ L(s)` with L(s) = s ⊕ (s <<< 24) ⊕ ((s ⊕ (s <<< 8) ⊕ (s <<< 16)) <<< 2).
        #[inline]
        #[target_feature(enable = $feat)]
        fn l_xor(x: V, s: V) -> V {
            const ROL8: [u8; 16] = [3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14];
            const ROL16: [u8; 16] = [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13];
            const ROL24: [u8; 16] = [1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12];
            let r8 = _mm256_shuffle_epi8(s, mask(&ROL8));
            let r16 = _mm256_shuffle_epi8(s, mask(&ROL16));
            let r24 = _mm256_shuffle_epi8(s, mask(&ROL24));
            let y = xor3(s, r8, r16);
            let y = _mm256_or_si256(_mm256_slli_epi32::<2>(y), _mm256_srli_epi32::<30>(y));
            xor(xor3(x, s, r24), y)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn bswap(v: V) -> V {
            _mm256_shuffle_epi8(v, mask(&BSWAP32))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn transpose(r: [V; 4]) -> [V; 4] {
            let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
            let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
            let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
            let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
            [
                _mm256_unpacklo_epi64(t0, t2),
                _mm256_unpackhi_epi64(t0, t2),
                _mm256_unpacklo_epi64(t1, t3),
                _mm256_unpackhi_epi64(t1, t3),
            ]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn words(r: [V; 4]) -> [V; 4] {
            transpose([bswap(r[0]), bswap(r[1]), bswap(r[2]), bswap(r[3])])
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn blocks(x: [V; 4]) -> [V; 4] {
            let r = transpose([x[3], x[2], x[1], x[0]]);
            [bswap(r[0]), bswap(r[1]), bswap(r[2]), bswap(r[3])]
        }

        /// Counter words; dword d of a word register belongs to block 2·(d mod 4) + d/4.
        #[inline]
        #[target_feature(enable = $feat)]
        fn ctr_words(w: [u32; 4], off: u32) -> [V; 4] {
            let lanes = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
            [
                bcast(w[0]),
                bcast(w[1]),
                bcast(w[2]),
                _mm256_add_epi32(bcast(w[3].wrapping_add(off)), lanes),
            ]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn shift_prev(prev: V, cur: V) -> V {
            _mm256_permute2x128_si256::<0x21>(prev, cur)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn splat_block(b: &[u8; 16]) -> V {
            mask(b)
        }
    };
}

/// GFNI + AVX2: 8 blocks per group, the S-box through two affine instructions.
pub(crate) mod gfni_avx2 {
    use super::{C1, C2, M1, M2};

    avx2_tier!("avx2,gfni", false);

    #[inline]
    #[target_feature(enable = "avx2,gfni")]
    fn sbox_l(x: V, t: V) -> V {
        let s = _mm256_gf2p8affine_epi64_epi8::<C1>(t, _mm256_set1_epi64x(M1 as i64));
        let s = _mm256_gf2p8affineinv_epi64_epi8::<C2>(s, _mm256_set1_epi64x(M2 as i64));
        l_xor(x, s)
    }
}

/// AES-NI + AVX2: 8 blocks per group, the S-box through `aesenclast` between two
/// nibble-table affine transforms (the inverse ShiftRows shuffle cancels AES's).
pub(crate) mod aesni_avx2 {
    avx2_tier!("avx2,aes", true);

    /// Inverse ShiftRows.
    const INV_SHIFT_ROWS: [u8; 16] = [0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3];
    /// Pre-transform (the map into the AES field), low and high nibble tables.
    const PRE_LO: [u8; 16] = [
        0x69, 0x1c, 0xa0, 0xd5, 0xb6, 0xc3, 0x7f, 0x0a, 0x53, 0x26, 0x9a, 0xef, 0x8c, 0xf9, 0x45,
        0x30,
    ];
    const PRE_HI: [u8; 16] = [
        0x00, 0x98, 0x37, 0xaf, 0x6c, 0xf4, 0x5b, 0xc3, 0xab, 0x33, 0x9c, 0x04, 0xc7, 0x5f, 0xf0,
        0x68,
    ];
    /// Post-transform (undoes the AES affine map and returns to the SM4 field).
    const POST_LO: [u8; 16] = [
        0x61, 0x6e, 0xf1, 0xfe, 0x05, 0x0a, 0x95, 0x9a, 0xf5, 0xfa, 0x65, 0x6a, 0x91, 0x9e, 0x01,
        0x0e,
    ];
    const POST_HI: [u8; 16] = [
        0x00, 0xa4, 0xe0, 0x44, 0xcd, 0x69, 0x2d, 0x89, 0xa5, 0x01, 0x45, 0xe1, 0x68, 0xcc, 0x88,
        0x2c,
    ];

    #[inline]
    #[target_feature(enable = "avx2,aes")]
    fn affine(x: V, lo: &[u8; 16], hi: &[u8; 16]) -> V {
        let m = _mm256_set1_epi8(0x0f);
        let l = _mm256_and_si256(x, m);
        let h = _mm256_and_si256(_mm256_srli_epi32::<4>(x), m);
        _mm256_xor_si256(
            _mm256_shuffle_epi8(mask(lo), l),
            _mm256_shuffle_epi8(mask(hi), h),
        )
    }

    #[inline]
    #[target_feature(enable = "avx2,aes")]
    fn sbox_l(x: V, t: V) -> V {
        let t = _mm256_shuffle_epi8(t, mask(&INV_SHIFT_ROWS));
        let t = affine(t, &PRE_LO, &PRE_HI);
        let z = _mm_setzero_si128();
        let a = _mm_aesenclast_si128(_mm256_castsi256_si128(t), z);
        let b = _mm_aesenclast_si128(_mm256_extracti128_si256::<1>(t), z);
        let s = _mm256_set_m128i(b, a);
        l_xor(x, affine(s, &POST_LO, &POST_HI))
    }
}
