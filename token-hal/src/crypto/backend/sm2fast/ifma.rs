//! k·G eight at a time with AVX-512 IFMA (ukey-simd's `sm2ifma`), for the nonce pool.
//!
//! The same 7-bit signed-window comb as `table::mul_g_ct` (37 rows × 64 affine points),
//! copied once into ukey-simd's radix-2^52 layout; eight scalars are recoded here and
//! their digits go down as one vector per row, so each lane scans the row for its own
//! digit (every entry loaded for every lane) and does its own mixed addition. The
//! results come back as Jacobian points in this backend's Montgomery form, ready for
//! the batched inversion. Only used when `Ifma::get()` gives a proof (AVX-512 tier,
//! CPU with IFMA); otherwise the nonce batch takes `table::mul_g_ct` one k at a time.

use std::sync::OnceLock;

use subtle::Choice;
use ukey_simd::sm2ifma::{Comb52, Ifma};
use zeroize::Zeroizing;

use super::field::{Backend, Fe};
use super::point::{Jac, recode_signed};
use super::table::{self, GNW, GW};

static GTABLE52: OnceLock<Comb52> = OnceLock::new();

/// The k·G table in ukey-simd's layout (built from `table::gtable` on first use).
#[inline(always)]
pub(crate) fn gtable52<B: Backend>(be: B, f: Ifma) -> &'static Comb52 {
    GTABLE52.get_or_init(|| f.comb_table(table::gtable(be).rows()))
}

/// k·G (Jacobian) for up to eight canonical k < n, constant-time in the k, with the
/// exceptional-case flag of each (the negligible P + P of the incomplete addition; the
/// caller recomputes that k another way). k = 0 gives the identity.
#[inline(always)]
pub(crate) fn mul_g8<B: Backend>(be: B, f: Ifma, ks: &[&[u64; 4]]) -> Vec<(Jac, Choice)> {
    assert!(ks.len() <= 8, "mul_g8 takes at most eight scalars");
    let mut mags = Zeroizing::new([[0u64; 8]; GNW]);
    let mut negs = Zeroizing::new([[0u64; 8]; GNW]);
    for (lane, k) in ks.iter().enumerate() {
        let digits = recode_signed::<GW, GNW>(k);
        for (row, &(m, n)) in digits.iter().enumerate() {
            mags[row][lane] = u64::from(m);
            negs[row][lane] = u64::from(n);
        }
    }
    let r = f.comb_mul8(gtable52(be, f), &mags[..], &negs[..]);
    (0..ks.len())
        .map(|i| {
            (
                Jac {
                    x: Fe(r.x[i]),
                    y: Fe(r.y[i]),
                    z: Fe(r.z[i]),
                },
                Choice::from((r.exceptional >> i) & 1),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use elliptic_curve::Group;
    use elliptic_curve::ops::Reduce;
    use sm2::{FieldBytes, ProjectivePoint, Scalar};
    use ukey_simd::Tier;
    use ukey_simd::sm2ifma::{FieldOp, Lanes};

    use super::super::field::{Backends, MODULUS, Portable, limbs_to_be, sub_borrow};
    use super::super::point::G;
    use super::super::scalar::N;
    use super::super::{MulGBatch, reference};
    use super::*;

    /// 10^5 field cases and 10^4 scalars in optimised builds, fewer in the dev profile.
    const CASES: usize = if cfg!(debug_assertions) {
        20_000
    } else {
        100_000
    };
    const POINT_CASES: usize = if cfg!(debug_assertions) {
        2_000
    } else {
        10_000
    };

    const PB: Portable = Portable(None);

    /// xorshift64* (deterministic, so failures reproduce).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn limbs(&mut self) -> [u64; 4] {
            [self.next(), self.next(), self.next(), self.next()]
        }
        /// Uniform below m (m ≥ 2^255), by rejection.
        fn below(&mut self, m: &[u64; 4]) -> [u64; 4] {
            loop {
                let l = self.limbs();
                if sub_borrow(&l, m).1 == 1 {
                    return l;
                }
            }
        }
    }

    /// Every proof this machine can force, with its tier.
    fn proofs() -> Vec<(Tier, Ifma)> {
        Tier::available()
            .into_iter()
            .filter_map(|t| Ifma::for_tier(t).map(|f| (t, f)))
            .collect()
    }

    fn minus(a: &[u64; 4], d: u64) -> [u64; 4] {
        sub_borrow(a, &[d, 0, 0, 0]).0
    }

    /// Field values below p at the edges: 0, 1, 2, p − 1, p − 2, p − 2^64, values just
    /// below 2^256 that are still below p, limb boundaries of both radixes, one in both
    /// Montgomery forms.
    fn edges_below_p() -> Vec<[u64; 4]> {
        vec![
            [0; 4],
            [1, 0, 0, 0],
            [2, 0, 0, 0],
            minus(&MODULUS, 1),
            minus(&MODULUS, 2),
            sub_borrow(&MODULUS, &[0, 1, 0, 0]).0,
            sub_borrow(&MODULUS, &[0, 0, 0, 1]).0,
            [u64::MAX, u64::MAX, u64::MAX, 0xFFFF_FFFE_FFFF_FFFE],
            [
                u64::MAX,
                0xFFFF_FFFE_FFFF_FFFF,
                u64::MAX,
                0xFFFF_FFFE_FFFF_FFFF,
            ],
            [0, 0, 0, 1 << 63],
            [(1 << 52) - 1, 0, 0, 0],
            [1 << 52, 0, 0, 0],
            [0, 0, 0, 1 << 16],
            [0, 0, 0, (1 << 16) - 1],
            [u64::MAX, u64::MAX, u64::MAX, (1 << 48) - 1],
            // 2^256 mod p (one in token-hal's form) and 2^260 mod p (one in IFMA's).
            Fe::ONE.0,
            [
                0x0000_0000_0000_0010,
                0x0000_000F_FFFF_FFF0,
                0,
                0x0000_0010_0000_0000,
            ],
        ]
    }

    /// Values of 256 bits at or above p (only multiplication accepts them).
    fn edges_above_p() -> Vec<[u64; 4]> {
        vec![
            MODULUS,
            // p + 1.
            [0, 0xFFFF_FFFF_0000_0001, u64::MAX, 0xFFFF_FFFE_FFFF_FFFF],
            [0, 0, 0, 0xFFFF_FFFF_0000_0000],
            [u64::MAX; 4],
            [u64::MAX - 1, u64::MAX, u64::MAX, u64::MAX],
            sub_borrow(&[u64::MAX; 4], &[0, 0, 1, 0]).0,
        ]
    }

    /// a mod p for a < 2^256.
    fn modp(a: &[u64; 4]) -> [u64; 4] {
        let (d, borrow) = sub_borrow(a, &MODULUS);
        if borrow == 1 { *a } else { d }
    }

    /// 2^252 < p: the portable product by it is a·2^−4.
    const TWO252: Fe = Fe([0, 0, 0, 1 << 60]);

    /// What the IFMA operation should give, from token-hal's portable field code.
    fn expected(op: FieldOp, a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        let (fa, fb) = (Fe(modp(a)), Fe(modp(b)));
        match op {
            // a·b·2^−260 = (a·b·2^−256)·2^252·2^−256.
            FieldOp::Mul => fa.mul(&fb).mul(&TWO252).0,
            FieldOp::Square => fa.square().mul(&TWO252).0,
            FieldOp::Add => fa.add(&fb).0,
            FieldOp::Sub => fa.sub(&fb).0,
            FieldOp::FromMont256 => fa.double().double().double().double().0,
            FieldOp::ToMont256 => fa.mul(&TWO252).0,
        }
    }

    const OPS: [FieldOp; 6] = [
        FieldOp::Mul,
        FieldOp::Square,
        FieldOp::Add,
        FieldOp::Sub,
        FieldOp::FromMont256,
        FieldOp::ToMont256,
    ];

    fn check_lanes(f: Ifma, tier: Tier, ops: &[FieldOp], a: &[[u64; 4]], b: &[[u64; 4]]) {
        for (ca, cb) in a.chunks(8).zip(b.chunks(8)) {
            let mut la: Lanes = [[0; 4]; 8];
            let mut lb: Lanes = [[0; 4]; 8];
            la[..ca.len()].copy_from_slice(ca);
            lb[..cb.len()].copy_from_slice(cb);
            for &op in ops {
                let got = f.field(op, &la, &lb);
                for i in 0..8 {
                    assert_eq!(
                        got[i],
                        expected(op, &la[i], &lb[i]),
                        "{tier:?} {op:?} lane {i}: {:x?} {:x?}",
                        la[i],
                        lb[i]
                    );
                }
            }
        }
    }

    #[test]
    fn ifma_field_matches_portable() {
        let proofs = proofs();
        for &(tier, f) in &proofs {
            let mut rng = Rng(0x1F3A_u64 + tier as u64);
            // Random values below p, each lane paired with another random value.
            let a: Vec<[u64; 4]> = (0..CASES).map(|_| rng.below(&MODULUS)).collect();
            let b: Vec<[u64; 4]> = (0..CASES).map(|_| rng.below(&MODULUS)).collect();
            check_lanes(f, tier, &OPS, &a, &b);
            // Every pair of edge values (and each edge with random partners).
            let e = edges_below_p();
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            for x in &e {
                for y in &e {
                    ea.push(*x);
                    eb.push(*y);
                }
                for _ in 0..8 {
                    ea.push(*x);
                    eb.push(rng.below(&MODULUS));
                }
            }
            check_lanes(f, tier, &OPS, &ea, &eb);
            check_lanes(f, tier, &OPS, &eb, &ea);
            // Multiplication and squaring also take values in [p, 2^256) and give a
            // canonical result.
            let (mut ma, mut mb) = (Vec::new(), Vec::new());
            let big: Vec<[u64; 4]> = edges_above_p().into_iter().chain(e.clone()).collect();
            for x in &big {
                for y in &big {
                    ma.push(*x);
                    mb.push(*y);
                }
            }
            for _ in 0..CASES / 10 {
                ma.push(rng.limbs());
                mb.push(rng.limbs());
            }
            let mul_ops = [FieldOp::Mul, FieldOp::Square, FieldOp::ToMont256];
            check_lanes(f, tier, &mul_ops, &ma, &mb);
        }
        println!("IFMA field checked on {} tier(s)", proofs.len());
    }

    fn ref_point(k: &[u64; 4]) -> Option<[u8; 65]> {
        let s = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(limbs_to_be(k)));
        let p = ProjectivePoint::generator() * s;
        if bool::from(p.is_identity()) {
            return None;
        }
        Some(reference::encode_point(&p.to_affine()))
    }

    /// 1 … 70, n − 1 … n − 70, 2^i, every 7-bit window at its extreme digits.
    fn edge_scalars() -> Vec<[u64; 4]> {
        let mut v = Vec::new();
        for s in 1..=70u64 {
            v.push([s, 0, 0, 0]);
            v.push(minus(&N, s));
        }
        for i in 0..256 {
            let mut l = [0u64; 4];
            l[i / 64] = 1 << (i % 64);
            if sub_borrow(&l, &N).1 == 1 {
                v.push(l);
            }
        }
        for val in [64u64, 65, 127, 63, 1] {
            let mut l = [0u64; 4];
            let mut pos = 0;
            while pos + 7 <= 252 {
                for bit in 0..7 {
                    if (val >> bit) & 1 == 1 {
                        l[(pos + bit) / 64] |= 1 << ((pos + bit) % 64);
                    }
                }
                pos += 7;
            }
            v.push(l);
        }
        v.push([u64::MAX, u64::MAX, u64::MAX, 0xFFFF_FFFE_0000_0000]);
        v
    }

    /// The batch the nonce pool computes, through `Backends::run` on `tier`.
    fn batch(tier: Tier, f: Option<Ifma>, ks: &[[u64; 4]]) -> Vec<[u8; 65]> {
        let kcs: Vec<Zeroizing<[u64; 4]>> = ks.iter().map(|k| Zeroizing::new(*k)).collect();
        let (affs, excs) = Backends::for_tier(tier).run(MulGBatch(&kcs, f));
        assert!(excs.iter().all(|e| !bool::from(*e)), "unexpected P + P");
        affs.iter().map(|a| a.to_uncompressed()).collect()
    }

    #[test]
    fn ifma_batched_mul_g_matches_single_and_reference() {
        let proofs = proofs();
        let mut rng = Rng(0xC0FF_EE11);
        let mut ks = edge_scalars();
        let edges = ks.len();
        for _ in 0..POINT_CASES {
            ks.push(rng.below(&N));
        }
        // The one-at-a-time portable k·G for each k.
        let single: Vec<[u8; 65]> = ks
            .iter()
            .map(|k| {
                let (j, exc) = table::mul_g_ct(PB, k);
                assert!(!bool::from(exc));
                j.to_affine(PB).expect("not the identity").to_uncompressed()
            })
            .collect();
        for (i, (k, s)) in ks.iter().zip(&single).enumerate() {
            if i < edges || i % 16 == 0 {
                assert_eq!(
                    Some(*s),
                    ref_point(k),
                    "portable k·G vs RustCrypto, k = {k:x?}"
                );
            }
        }
        for &(tier, f) in &proofs {
            // Pool-sized batches of 32, and batch sizes that leave lanes unused.
            let mut at = 0;
            for (n, size) in [32usize, 37, 5, 8, 1, 15].into_iter().cycle().enumerate() {
                if at >= ks.len() {
                    break;
                }
                let end = (at + size).min(ks.len());
                let got = batch(tier, Some(f), &ks[at..end]);
                for (i, g) in got.iter().enumerate() {
                    assert_eq!(
                        g,
                        &single[at + i],
                        "{tier:?} batch {n}: k = {:x?}",
                        ks[at + i]
                    );
                }
                at = end;
            }
        }
        println!(
            "IFMA k·G checked on {} tier(s), {} scalars",
            proofs.len(),
            ks.len()
        );
    }

    #[test]
    fn ifma_zero_lanes_are_the_identity_and_others_unaffected() {
        let mut rng = Rng(99);
        for (tier, f) in proofs() {
            for pattern in [0b0000_0001u8, 0b1010_0101, 0b1111_1110, 0xFF] {
                let ks: Vec<[u64; 4]> = (0..8)
                    .map(|i| {
                        if (pattern >> i) & 1 == 1 {
                            [0; 4]
                        } else {
                            rng.below(&N)
                        }
                    })
                    .collect();
                let refs: Vec<&[u64; 4]> = ks.iter().collect();
                let out = mul_g8(PB, f, &refs);
                for (i, ((j, exc), k)) in out.iter().zip(&ks).enumerate() {
                    assert!(!bool::from(*exc));
                    if (pattern >> i) & 1 == 1 {
                        assert!(bool::from(j.is_identity()), "{tier:?} lane {i}");
                    } else {
                        let want = table::mul_g_ct(PB, k).0.to_affine(PB);
                        assert_eq!(
                            j.to_affine(PB).map(|a| a.to_uncompressed()),
                            want.map(|a| a.to_uncompressed()),
                            "{tier:?} lane {i}"
                        );
                    }
                }
            }
            // G itself, through the table's first entry.
            let out = mul_g8(PB, f, &[&[1, 0, 0, 0]]);
            assert_eq!(
                out[0].0.to_affine(PB).map(|a| a.to_uncompressed()),
                Some(G.to_uncompressed())
            );
        }
    }

    #[test]
    fn no_ifma_below_the_avx512_tier() {
        for t in [Tier::Portable, Tier::AesniAvx2, Tier::GfniAvx2] {
            assert!(Ifma::for_tier(t).is_none(), "{t:?}");
        }
        if let Ok(v) = std::env::var("UKEY_CPU_TIER")
            && Tier::from_name(&v).is_none_or(|t| t < Tier::GfniAvx512)
        {
            assert!(Ifma::get().is_none(), "UKEY_CPU_TIER={v}");
        }
    }
}
