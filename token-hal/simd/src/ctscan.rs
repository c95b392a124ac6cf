//! Constant-time table selection with vector registers, for the fast SM2 backend's
//! precomputed tables in token-hal.
//!
//! [`CtSelect::select`] returns entry `idx − 1` of a table of `[u64; L]` entries (all
//! zeros for `idx = 0` or an index past the end) after loading **every** entry in full
//! and combining it under a mask computed with a vector compare (`vpcmpeqq`, `vpand`,
//! `vpor` on ymm registers), so neither the memory addresses nor the branches depend on
//! `idx`. A 64-byte affine table entry is two ymm loads.
//!
//! There is deliberately no AVX-512 kernel: LLVM folds the loads of a mask-register
//! version into masked memory operands (`vporq (mem), zmm, zmm{k}`), and whether the CPU
//! fetches the memory of a masked-off load is not architecturally specified, so the
//! cache footprint could depend on the secret index. The AVX2 kernel's loads are
//! unmasked (`vpand (mem), ymm, ymm`).
//!
//! [`CtSelect`] proves the CPU has AVX2 and the tier cap allows it; with none
//! (`UKEY_CPU_TIER=portable`, or another CPU), token-hal uses its portable scan.

// The only `unsafe` here calls the `#[target_feature(enable = "avx2")]` kernel (which a
// `CtSelect` proves the CPU supports) and loads from pointers into the table slice being
// scanned.
#![allow(unsafe_code)]

use crate::Tier;

/// Proof that the CPU has AVX2 and the tier cap allows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtSelect {
    _proof: (),
}

impl CtSelect {
    /// The selector for this process's tier ([`Tier::current`]).
    pub fn get() -> Option<Self> {
        Self::for_tier(Tier::current())
    }

    /// The selector for `tier`: none on [`Tier::Portable`] or when the tier is not
    /// supported; every other tier includes AVX2.
    pub fn for_tier(tier: Tier) -> Option<Self> {
        (tier != Tier::Portable && tier.supported()).then_some(Self { _proof: () })
    }

    /// Entry `idx − 1` of `table` (zeros when `idx` is 0 or past the end), loading every
    /// entry. `L` must be a multiple of 4, at most 32.
    #[inline]
    pub fn select<const L: usize>(self, table: &[[u64; L]], idx: u64) -> [u64; L] {
        assert!(
            L.is_multiple_of(4) && L <= 32,
            "CtSelect: entries must be 1 to 8 whole ymm registers"
        );
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: every tier above portable needs AVX2, detected by
            // `Tier::supported` before a `CtSelect` was made.
            unsafe { x86::select_avx2(table, idx) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (table, idx);
            unreachable!("no CtSelect exists off x86-64")
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// Per entry one 64-bit-lane compare of a running counter with `idx`, and `L / 4`
    /// full loads masked with AND and gathered with OR.
    #[target_feature(enable = "avx2")]
    pub(super) fn select_avx2<const L: usize>(table: &[[u64; L]], idx: u64) -> [u64; L] {
        let want = _mm256_set1_epi64x(idx as i64);
        let one = _mm256_set1_epi64x(1);
        let mut ctr = one;
        let mut acc = [_mm256_setzero_si256(); 8];
        let n = L / 4;
        for e in table {
            let mask = _mm256_cmpeq_epi64(ctr, want);
            for (j, a) in acc.iter_mut().enumerate().take(n) {
                let q: &[u64; 4] = quarter(e, j);
                // SAFETY: `q` is a reference to exactly the 32 bytes loaded.
                let v = unsafe { _mm256_loadu_si256(q.as_ptr().cast()) };
                *a = _mm256_or_si256(*a, _mm256_and_si256(v, mask));
            }
            ctr = _mm256_add_epi64(ctr, one);
        }
        let mut out = [0u64; L];
        for (chunk, a) in out.chunks_exact_mut(4).zip(acc.iter()) {
            let q: &mut [u64; 4] = chunk.try_into().expect("4 limbs");
            // SAFETY: `q` is a reference to exactly the 32 bytes stored.
            unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), *a) };
        }
        out
    }

    /// Limbs 4j..4j+4 of an entry (bounds-checked; the checks fold away for constant L).
    #[inline(always)]
    fn quarter<const L: usize>(e: &[u64; L], j: usize) -> &[u64; 4] {
        e[4 * j..4 * j + 4].try_into().expect("4 limbs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portable<const L: usize>(table: &[[u64; L]], idx: u64) -> [u64; L] {
        let mut out = [0u64; L];
        for (i, e) in table.iter().enumerate() {
            if i as u64 + 1 == idx {
                out = *e;
            }
        }
        out
    }

    fn check<const L: usize>(sel: CtSelect, entries: usize, seed: u64) {
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let table: Vec<[u64; L]> = (0..entries)
            .map(|_| core::array::from_fn(|_| next()))
            .collect();
        for idx in 0..=entries as u64 + 2 {
            assert_eq!(sel.select(&table, idx), portable(&table, idx), "idx {idx}");
        }
        assert_eq!(sel.select(&table, u64::MAX), [0u64; L]);
    }

    #[test]
    fn selects_like_the_portable_scan_on_every_tier() {
        assert_eq!(CtSelect::for_tier(Tier::Portable), None);
        for t in Tier::available() {
            let Some(sel) = CtSelect::for_tier(t) else {
                continue;
            };
            for seed in 0..50 {
                check::<8>(sel, 64, seed);
                check::<8>(sel, 16, seed);
                check::<12>(sel, 16, seed);
                check::<4>(sel, 7, seed);
                check::<16>(sel, 5, seed);
            }
        }
    }
}
