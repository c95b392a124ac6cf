//! The SM2 field kernels (`sm2p::Bmi2Adx`: inline-assembly Montgomery multiplication
//! and squaring, addition, subtraction, doubling, negation mod p) against a slow,
//! independent reference written here: schoolbook products on u128 and a bit-serial
//! Montgomery reduction (halve mod p 256 times), with none of the kernels' special-form
//! tricks. 10^5 random cases, plus edge values and sums/differences that land on, just
//! below and just above p.

use ukey_simd::Tier;
use ukey_simd::sm2p::Bmi2Adx;

/// ukey-simd is optimised even in the dev profile (the workspace's
/// `profile.dev.package.ukey-simd`), so the full count runs in every build (~4 s).
const CASES: usize = 100_000;

/// p = 2^256 − 2^224 − 2^96 + 2^64 − 1, little-endian limbs.
const P: [u64; 4] = [
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_0000_0000,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFE_FFFF_FFFF,
];

/// SplitMix64: reproducible test randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value below p: uniform most of the time, else one with a run of all-ones or
    /// all-zero limbs, or just below p.
    fn below_p(&mut self) -> [u64; 4] {
        loop {
            let mut l = [self.next(), self.next(), self.next(), self.next()];
            match self.next() % 16 {
                0 => l[self.next() as usize % 4] = u64::MAX,
                1 => l[self.next() as usize % 4] = 0,
                2 => l = sub_n(&P, &[1 + self.next() % 4, 0, 0, 0], 4).0,
                3 => {
                    l[0] = u64::MAX;
                    l[1] = u64::MAX;
                }
                _ => {}
            }
            if lt(&l, &P) {
                return l;
            }
        }
    }
}

/// a − b over `n` limbs, and the borrow.
fn sub_n<const L: usize>(a: &[u64; L], b: &[u64; L], n: usize) -> ([u64; L], bool) {
    let mut out = *a;
    let mut borrow = false;
    for i in 0..n {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        out[i] = d;
        borrow = b1 | b2;
    }
    (out, borrow)
}

fn lt(a: &[u64; 4], b: &[u64; 4]) -> bool {
    sub_n(a, b, 4).1
}

/// p in nine limbs.
const P9: [u64; 9] = [P[0], P[1], P[2], P[3], 0, 0, 0, 0, 0];

/// x mod p for x < 2^576 by repeated subtraction (only ever called on x < 2p here).
fn reduce9(mut x: [u64; 9]) -> [u64; 4] {
    loop {
        let (d, borrow) = sub_n(&x, &P9, 9);
        if borrow {
            return [x[0], x[1], x[2], x[3]];
        }
        x = d;
    }
}

fn ref_add(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let mut x = [0u64; 9];
    let mut carry = 0u128;
    for i in 0..4 {
        let s = u128::from(a[i]) + u128::from(b[i]) + carry;
        x[i] = s as u64;
        carry = s >> 64;
    }
    x[4] = carry as u64;
    reduce9(x)
}

fn ref_sub(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    // a − b = a + (p − b) mod p.
    let (pb, borrow) = sub_n(&P, b, 4);
    assert!(!borrow);
    ref_add(a, &pb)
}

/// a·b·2^−256 mod p: the 512-bit product, then 256 halvings mod p (add p when odd).
fn ref_mont(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let mut x = [0u64; 9];
    for i in 0..4 {
        let mut carry = 0u128;
        for j in 0..4 {
            let t = u128::from(x[i + j]) + u128::from(a[i]) * u128::from(b[j]) + carry;
            x[i + j] = t as u64;
            carry = t >> 64;
        }
        x[i + 4] = carry as u64;
    }
    for _ in 0..256 {
        if x[0] & 1 == 1 {
            let mut carry = 0u128;
            for i in 0..9 {
                let s = u128::from(x[i]) + u128::from(P9[i]) + carry;
                x[i] = s as u64;
                carry = s >> 64;
            }
        }
        for i in 0..9 {
            x[i] = (x[i] >> 1) | if i < 8 { x[i + 1] << 63 } else { 0 };
        }
    }
    reduce9(x)
}

/// R mod p = 2^256 − p.
fn r_mod_p() -> [u64; 4] {
    sub_n(&[0; 4], &P, 4).0
}

/// Edge inputs: 0, 1, 2, p − 1, p − 2, p − 2^64, 2^255, R mod p and its neighbours,
/// and values with all-ones / all-zero limbs (all below p).
fn edges() -> Vec<[u64; 4]> {
    let r = r_mod_p();
    let mut v = vec![
        [0; 4],
        [1, 0, 0, 0],
        [2, 0, 0, 0],
        sub_n(&P, &[1, 0, 0, 0], 4).0,
        sub_n(&P, &[2, 0, 0, 0], 4).0,
        sub_n(&P, &[0, 1, 0, 0], 4).0,
        [0, 0, 0, 1 << 63],
        r,
        sub_n(&r, &[1, 0, 0, 0], 4).0,
        sub_n(&r, &[u64::MAX, u64::MAX, u64::MAX, u64::MAX], 4).0, // r + 1
        [u64::MAX, u64::MAX, u64::MAX, 0],
        [u64::MAX, u64::MAX, u64::MAX, P[3] - 1],
        [u64::MAX, 0, u64::MAX, 0],
        [0, u64::MAX, 0, u64::MAX >> 1],
        [u64::MAX, u64::MAX, 0, 0],
        [0, 0, u64::MAX, u64::MAX >> 1],
        [u64::MAX, P[1], u64::MAX, P[3] - 1],
    ];
    v.retain(|x| lt(x, &P));
    v
}

/// Every proof this machine can make (one per tier above portable that it supports).
fn proofs() -> Vec<(Tier, Bmi2Adx)> {
    Tier::available()
        .into_iter()
        .filter_map(|t| Bmi2Adx::for_tier(t).map(|p| (t, p)))
        .collect()
}

fn check(k: Bmi2Adx, a: &[u64; 4], b: &[u64; 4]) {
    assert_eq!(k.mul(a, b), ref_mont(a, b), "mul {a:x?} {b:x?}");
    assert_eq!(k.add(a, b), ref_add(a, b), "add {a:x?} {b:x?}");
    assert_eq!(k.sub(a, b), ref_sub(a, b), "sub {a:x?} {b:x?}");
    assert_eq!(k.sub(b, a), ref_sub(b, a), "sub {b:x?} {a:x?}");
}

fn check_unary(k: Bmi2Adx, a: &[u64; 4]) {
    assert_eq!(k.square(a), ref_mont(a, a), "square {a:x?}");
    assert_eq!(k.double(a), ref_add(a, a), "double {a:x?}");
    assert_eq!(k.neg(a), ref_sub(&[0; 4], a), "neg {a:x?}");
}

#[test]
fn the_reference_is_montgomery_arithmetic_mod_p() {
    // R mod p = 2^224 + 2^96 − 2^64 + 1.
    let r = r_mod_p();
    assert_eq!(r, [1, 0xFFFF_FFFF, 0, 1 << 32]);
    // R² mod p by 256 doublings of R (addition only).
    let mut r2 = r;
    for _ in 0..256 {
        r2 = ref_add(&r2, &r2);
    }
    let one = [1, 0, 0, 0];
    let pm1 = sub_n(&P, &one, 4).0;
    // x·R·R^−1 = x; R²·1·R^−1 = R; (−1)(−1)·R^−1·R²·R^−1 = 1.
    let mut rng = Rng(7);
    for _ in 0..100 {
        let x = rng.below_p();
        assert_eq!(ref_mont(&x, &r), x);
        assert_eq!(ref_mont(&r, &x), x);
    }
    assert_eq!(ref_mont(&r2, &one), r);
    assert_eq!(ref_mont(&ref_mont(&pm1, &pm1), &r2), one);
    // 2·3 = 6 through the Montgomery domain.
    let m2 = ref_mont(&[2, 0, 0, 0], &r2);
    let m3 = ref_mont(&[3, 0, 0, 0], &r2);
    assert_eq!(ref_mont(&ref_mont(&m2, &m3), &one), [6, 0, 0, 0]);
    assert_eq!(ref_add(&pm1, &one), [0; 4]);
    assert_eq!(ref_sub(&[0; 4], &one), pm1);
    assert_eq!(ref_add(&pm1, &pm1), sub_n(&P, &[2, 0, 0, 0], 4).0);
}

#[test]
fn field_kernels_match_the_reference() {
    let all = proofs();
    for (tier, k) in &all {
        let mut rng = Rng(0x5EED ^ *tier as u64);
        let e = edges();
        for a in &e {
            check_unary(*k, a);
            for b in &e {
                check(*k, a, b);
            }
        }
        for i in 0..CASES {
            let a = rng.below_p();
            let b = if i % 4 == 0 {
                e[rng.next() as usize % e.len()]
            } else {
                rng.below_p()
            };
            check(*k, &a, &b);
            check_unary(*k, &a);
            // b' = p − a − 1, p − a, p − a + 1: sums on, just below and just above p.
            let pa = sub_n(&P, &a, 4).0;
            for bd in [
                sub_n(&pa, &[1, 0, 0, 0], 4).0,
                pa,
                sub_n(&pa, &[u64::MAX; 4], 4).0,
            ] {
                if lt(&bd, &P) {
                    check(*k, &a, &bd);
                }
            }
        }
    }
    println!("SM2 field kernels checked on {} tier(s)", all.len());
}
