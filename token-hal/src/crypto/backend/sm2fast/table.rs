//! Scalar multiplication: the fixed-base table for k·G, the constant-time
//! variable-base k·P, and the variable-time s·G + t·P for verification.

use std::sync::OnceLock;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::field::{Backend, Fe};
use super::point::{Affine, G, Jac, batch_to_affine, recode_signed, wnaf};

/// A fixed-base table of signed w-bit windows: row j holds 1·2^(w·j)·B …
/// 2^(w−1)·2^(w·j)·B in affine form, so k·B is one table read and one mixed addition
/// per window, with no doublings.
pub(crate) struct Comb<const E: usize> {
    /// Each entry is x‖y (Montgomery limbs), one 64-byte vector-register load.
    rows: Vec<[[u64; 8]; E]>,
}

/// x‖y of an affine point, as a table entry.
#[inline(always)]
fn words(a: &Affine) -> [u64; 8] {
    let (x, y) = (a.x.0, a.y.0);
    [x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3]]
}

/// The affine point of a table entry.
#[inline(always)]
fn from_words(w: &[u64; 8]) -> Affine {
    Affine {
        x: Fe([w[0], w[1], w[2], w[3]]),
        y: Fe([w[4], w[5], w[6], w[7]]),
    }
}

/// x‖y‖z of a Jacobian point, as a table entry.
#[inline(always)]
fn jac_words(a: &Jac) -> [u64; 12] {
    let (x, y, z) = (a.x.0, a.y.0, a.z.0);
    [
        x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3], z[0], z[1], z[2], z[3],
    ]
}

/// The Jacobian point of a table entry.
#[inline(always)]
fn from_jac_words(w: &[u64; 12]) -> Jac {
    Jac {
        x: Fe([w[0], w[1], w[2], w[3]]),
        y: Fe([w[4], w[5], w[6], w[7]]),
        z: Fe([w[8], w[9], w[10], w[11]]),
    }
}

impl<const E: usize> Comb<E> {
    /// Builds the table of `base` for windows of `w` bits (E = 2^(w−1) entries per row,
    /// `nw` rows), with one batched inversion.
    fn build<B: Backend>(be: B, base: &Affine, w: u32, nw: usize) -> Self {
        let mut jac = Vec::with_capacity(nw * E);
        let mut b = base.to_jac();
        for _ in 0..nw {
            let mut m = b;
            for i in 0..E {
                if i > 0 {
                    m = m.add_vartime(be, &b);
                }
                jac.push(m);
            }
            b = b.double_n(be, w);
        }
        let aff = batch_to_affine(be, &jac);
        Self {
            rows: aff
                .chunks_exact(E)
                .map(|c| {
                    let mut row = [[0u64; 8]; E];
                    for (r, a) in row.iter_mut().zip(c) {
                        *r = words(a);
                    }
                    row
                })
                .collect(),
        }
    }

    /// The rows (entries x‖y in Montgomery form), for the 8-lane IFMA copy.
    pub(crate) fn rows(&self) -> &[[[u64; 8]; E]] {
        &self.rows
    }

    /// acc + Σ d_j·2^(w·j)·B, constant-time in the digits. The flag is set in the
    /// negligible case the incomplete addition met P + P.
    #[inline(always)]
    fn add_ct<B: Backend>(
        &self,
        be: B,
        mut acc: Jac,
        digits: &[(u8, u8)],
        exc: &mut Choice,
    ) -> Jac {
        for (row, &(mag, neg)) in self.rows.iter().zip(digits.iter()) {
            let e = match be.ct_select() {
                Some(sel) => from_words(&sel.select(row, u64::from(mag))),
                None => lookup_affine(row, mag),
            };
            let e = Affine::conditional_select(&e, &e.neg(be), Choice::from(neg));
            acc = acc.madd_ct(be, &e, mag.ct_eq(&0), exc);
        }
        acc
    }

    /// acc + Σ d_j·2^(w·j)·B, variable-time (public digits).
    #[inline(always)]
    fn add_vartime<B: Backend>(&self, be: B, mut acc: Jac, digits: &[(u8, u8)]) -> Jac {
        for (row, &(mag, neg)) in self.rows.iter().zip(digits.iter()) {
            if mag == 0 {
                continue;
            }
            let e = from_words(&row[usize::from(mag) - 1]);
            let e = if neg == 1 { e.neg(be) } else { e };
            acc = acc.madd_vartime(be, &e);
        }
        acc
    }
}

/// Window width of the fixed-base table of G.
pub(crate) const GW: usize = 7;
/// Number of signed windows of a 256-bit scalar.
pub(crate) const GNW: usize = 256 / GW + 1;
/// Entries per window: 1·B … 2^(w−1)·B.
const GENTRIES: usize = 1 << (GW - 1);

static GTABLE: OnceLock<Comb<GENTRIES>> = OnceLock::new();

/// The table of G, built on first use (about 150 KiB).
#[inline(always)]
pub(crate) fn gtable<B: Backend>(be: B) -> &'static Comb<GENTRIES> {
    GTABLE.get_or_init(|| Comb::build(be, &G, GW as u32, GNW))
}

/// Constant-time read of entry `mag` − 1 of `row` (every entry is read; `mag` = 0
/// selects nothing). Each entry's mask comes from `subtle`'s `ct_eq`, whose result passes
/// an optimisation barrier. (A first version computed the masks arithmetically from one
/// barrier-protected `mag`; LLVM proved only one mask could be set and rewrote the scan
/// into a countdown with a branch and a single load. The dudect test caught it.)
#[inline(always)]
fn lookup_affine(row: &[[u64; 8]], mag: u8) -> Affine {
    let mut w = [0u64; 8];
    for (i, e) in row.iter().enumerate() {
        let hit = (i as u8 + 1).ct_eq(&mag);
        let mask = 0u64.wrapping_sub(u64::from(hit.unwrap_u8()));
        for l in 0..8 {
            w[l] |= e[l] & mask;
        }
    }
    from_words(&w)
}

/// k·G for canonical k < n, constant-time in k: 37 constant-time table reads and
/// mixed additions. The flag is set in the negligible case the incomplete addition met
/// P + P.
#[inline(always)]
pub(crate) fn mul_g_ct<B: Backend>(be: B, k: &[u64; 4]) -> (Jac, Choice) {
    let digits = recode_signed::<GW, GNW>(k);
    let mut exc = Choice::from(0);
    let acc = gtable(be).add_ct(be, Jac::IDENTITY, &digits, &mut exc);
    (acc, exc)
}

/// acc + s·G, variable-time (public s).
#[inline(always)]
pub(crate) fn add_mul_g_vartime<B: Backend>(be: B, acc: Jac, s: &[u64; 4]) -> Jac {
    gtable(be).add_vartime(be, acc, &recode_signed::<GW, GNW>(s))
}

/// Window width of the fixed-base table of a public key (built once the key has been
/// used often enough, see [`PubTable`]).
const KW: usize = 5;
const KNW: usize = 256 / KW + 1;
const KENTRIES: usize = 1 << (KW - 1);

/// The fixed-base table of a public key: 52 rows of 16 points, 53 KiB.
pub(crate) type KeyComb = Comb<KENTRIES>;

/// Builds a public key's fixed-base table (about 900 point additions and one
/// inversion: worth it from about ten operations with the key on).
#[inline(always)]
pub(crate) fn key_comb<B: Backend>(be: B, p: &Affine) -> KeyComb {
    Comb::build(be, p, KW as u32, KNW)
}

/// k·P from P's fixed-base table, constant-time in k.
#[inline(always)]
pub(crate) fn mul_comb_ct<B: Backend>(be: B, comb: &KeyComb, k: &[u64; 4]) -> (Jac, Choice) {
    let digits = recode_signed::<KW, KNW>(k);
    let mut exc = Choice::from(0);
    let acc = comb.add_ct(be, Jac::IDENTITY, &digits, &mut exc);
    (acc, exc)
}

/// s·G + t·P from P's fixed-base table, variable-time (verification of a key used
/// often): no doublings at all.
#[inline(always)]
pub(crate) fn double_mul_comb_vartime<B: Backend>(
    be: B,
    s: &[u64; 4],
    t: &[u64; 4],
    comb: &KeyComb,
) -> Jac {
    let acc = comb.add_vartime(be, Jac::IDENTITY, &recode_signed::<KW, KNW>(t));
    add_mul_g_vartime(be, acc, s)
}

/// Width of the per-public-key wNAF table.
const PW: usize = 6;
/// Odd multiples P, 3P, …, (2^(w−1) − 1)P.
const PENTRIES: usize = 1 << (PW - 2);

/// The verification table of one public key.
pub(crate) struct PubTable {
    odd: [Affine; PENTRIES],
}

impl PubTable {
    #[inline(always)]
    pub(crate) fn new<B: Backend>(be: B, p: &Affine) -> Self {
        let pj = p.to_jac();
        let p2 = pj.double(be);
        let mut jac = Vec::with_capacity(PENTRIES);
        let mut m = pj;
        for i in 0..PENTRIES {
            if i > 0 {
                m = m.add_vartime(be, &p2);
            }
            jac.push(m);
        }
        let aff = batch_to_affine(be, &jac);
        let mut odd = [Affine::default(); PENTRIES];
        odd.copy_from_slice(&aff);
        Self { odd }
    }
}

/// s·G + t·P, variable-time (verification).
#[inline(always)]
pub(crate) fn double_mul_vartime<B: Backend>(
    be: B,
    s: &[u64; 4],
    t: &[u64; 4],
    p: &PubTable,
) -> Jac {
    let naf = wnaf::<PW>(t);
    let top = naf.iter().rposition(|&d| d != 0);
    let mut acc = Jac::IDENTITY;
    if let Some(top) = top {
        for i in (0..=top).rev() {
            acc = acc.double(be);
            let d = naf[i];
            if d > 0 {
                acc = acc.madd_vartime(be, &p.odd[(d as usize) / 2]);
            } else if d < 0 {
                acc = acc.madd_vartime(be, &p.odd[((-d) as usize) / 2].neg(be));
            }
        }
    }
    add_mul_g_vartime(be, acc, s)
}

/// Window width of the constant-time variable-base multiplication.
const VW: usize = 5;
const VNW: usize = 256 / VW + 1;
const VENTRIES: usize = 1 << (VW - 1);

/// Constant-time read of Jacobian entry `mag` − 1 (`mag` = 0 gives the identity).
#[inline(always)]
fn lookup_jac(row: &[[u64; 12]; VENTRIES], mag: u8) -> Jac {
    let mut out = Jac::IDENTITY;
    for (i, e) in row.iter().enumerate() {
        out = Jac::conditional_select(&out, &from_jac_words(e), (i as u8 + 1).ct_eq(&mag));
    }
    out
}

/// k·P for canonical k and a point P on the curve, constant-time in k (and in P's
/// coordinates): signed fixed windows, every table entry read each time.
#[inline(always)]
pub(crate) fn mul_ct<B: Backend>(be: B, p: &Affine, k: &[u64; 4]) -> (Jac, Choice) {
    let pj = p.to_jac();
    let mut exc = Choice::from(0);
    let mut jrow = [pj; VENTRIES];
    jrow[1] = pj.double(be);
    for i in 2..VENTRIES {
        jrow[i] = jrow[i - 1].add_ct(be, &pj, &mut exc);
    }
    let mut row = [[0u64; 12]; VENTRIES];
    for (r, j) in row.iter_mut().zip(jrow.iter()) {
        *r = jac_words(j);
    }
    let digits = recode_signed::<VW, VNW>(k);
    let mut acc = Jac::IDENTITY;
    for (j, &(mag, neg)) in digits.iter().enumerate().rev() {
        if j != VNW - 1 {
            acc = acc.double_n(be, VW as u32);
        }
        // The vector scan gives all-zero limbs for mag = 0 (Z = 0, the identity too).
        let e = match be.ct_select() {
            Some(sel) => from_jac_words(&sel.select(&row, u64::from(mag))),
            None => lookup_jac(&row, mag),
        };
        let e = Jac::conditional_select(&e, &e.neg(be), Choice::from(neg));
        acc = acc.add_ct(be, &e, &mut exc);
    }
    (acc, exc)
}

/// Test hook: the vector scan of every row of `comb` gives what the portable scan gives
/// for `mag`, for the affine rows and for Jacobian rows made from them.
#[cfg(test)]
pub(crate) fn check_scan<const E: usize>(
    comb: &Comb<E>,
    sel: ukey_simd::ctscan::CtSelect,
    mag: u8,
) {
    for row in &comb.rows {
        let want = words(&lookup_affine(row, mag));
        assert_eq!(sel.select(row, u64::from(mag)), want, "mag {mag}");
        if E >= VENTRIES {
            let mut jrow = [[0u64; 12]; VENTRIES];
            for (j, e) in jrow.iter_mut().zip(row.iter()) {
                let a = from_words(e);
                *j = jac_words(&Jac {
                    x: a.x,
                    y: a.y,
                    z: a.x.add(&a.y),
                });
            }
            let m = mag % (VENTRIES as u8 + 1);
            let want = lookup_jac(&jrow, m);
            let got = from_jac_words(&sel.select(&jrow, u64::from(m)));
            if m == 0 {
                assert!(bool::from(got.is_identity() & want.is_identity()));
            } else {
                assert_eq!(jac_words(&got), jac_words(&want), "jac mag {m}");
            }
        }
    }
}
