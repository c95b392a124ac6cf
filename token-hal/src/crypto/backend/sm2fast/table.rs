//! Scalar multiplication: the fixed-base table for k·G, the constant-time
//! variable-base k·P, and the variable-time s·G + t·P for verification.

use std::sync::OnceLock;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::field::Fe;
use super::point::{Affine, G, Jac, batch_to_affine, recode_signed, wnaf};

/// A fixed-base table of signed w-bit windows: row j holds 1·2^(w·j)·B …
/// 2^(w−1)·2^(w·j)·B in affine form, so k·B is one table read and one mixed addition
/// per window, with no doublings.
pub(crate) struct Comb<const E: usize> {
    rows: Vec<[Affine; E]>,
}

impl<const E: usize> Comb<E> {
    /// Builds the table of `base` for windows of `w` bits (E = 2^(w−1) entries per row,
    /// `nw` rows), with one batched inversion.
    fn build(base: &Affine, w: u32, nw: usize) -> Self {
        let mut jac = Vec::with_capacity(nw * E);
        let mut b = base.to_jac();
        for _ in 0..nw {
            let mut m = b;
            for i in 0..E {
                if i > 0 {
                    m = m.add_vartime(&b);
                }
                jac.push(m);
            }
            b = b.double_n(w);
        }
        let aff = batch_to_affine(&jac);
        Self {
            rows: aff
                .chunks_exact(E)
                .map(|c| {
                    let mut row = [Affine::default(); E];
                    row.copy_from_slice(c);
                    row
                })
                .collect(),
        }
    }

    /// acc + Σ d_j·2^(w·j)·B, constant-time in the digits. The flag is set in the
    /// negligible case the incomplete addition met P + P.
    #[inline]
    fn add_ct(&self, mut acc: Jac, digits: &[(u8, u8)], exc: &mut Choice) -> Jac {
        for (row, &(mag, neg)) in self.rows.iter().zip(digits.iter()) {
            let e = lookup_affine(row, mag);
            let e = Affine::conditional_select(&e, &e.neg(), Choice::from(neg));
            acc = acc.madd_ct(&e, mag.ct_eq(&0), exc);
        }
        acc
    }

    /// acc + Σ d_j·2^(w·j)·B, variable-time (public digits).
    fn add_vartime(&self, mut acc: Jac, digits: &[(u8, u8)]) -> Jac {
        for (row, &(mag, neg)) in self.rows.iter().zip(digits.iter()) {
            if mag == 0 {
                continue;
            }
            let e = row[usize::from(mag) - 1];
            let e = if neg == 1 { e.neg() } else { e };
            acc = acc.madd_vartime(&e);
        }
        acc
    }
}

/// Window width of the fixed-base table of G.
const GW: usize = 7;
/// Number of signed windows of a 256-bit scalar.
const GNW: usize = 256 / GW + 1;
/// Entries per window: 1·B … 2^(w−1)·B.
const GENTRIES: usize = 1 << (GW - 1);

static GTABLE: OnceLock<Comb<GENTRIES>> = OnceLock::new();

/// The table of G, built on first use (about 150 KiB).
pub(crate) fn gtable() -> &'static Comb<GENTRIES> {
    GTABLE.get_or_init(|| Comb::build(&G, GW as u32, GNW))
}

/// Constant-time read of entry `mag` − 1 of `row` (every entry is read; `mag` = 0
/// selects nothing). Each entry's mask comes from `subtle`'s `ct_eq`, whose result passes
/// an optimisation barrier. (A first version computed the masks arithmetically from one
/// barrier-protected `mag`; LLVM proved only one mask could be set and rewrote the scan
/// into a countdown with a branch and a single load. The dudect test caught it.)
#[inline(always)]
fn lookup_affine(row: &[Affine], mag: u8) -> Affine {
    let mut x = [0u64; 4];
    let mut y = [0u64; 4];
    for (i, e) in row.iter().enumerate() {
        let hit = (i as u8 + 1).ct_eq(&mag);
        let mask = 0u64.wrapping_sub(u64::from(hit.unwrap_u8()));
        for l in 0..4 {
            x[l] |= e.x.0[l] & mask;
            y[l] |= e.y.0[l] & mask;
        }
    }
    Affine { x: Fe(x), y: Fe(y) }
}

/// k·G for canonical k < n, constant-time in k: 37 constant-time table reads and
/// mixed additions. The flag is set in the negligible case the incomplete addition met
/// P + P.
pub(crate) fn mul_g_ct(k: &[u64; 4]) -> (Jac, Choice) {
    let digits = recode_signed::<GW, GNW>(k);
    let mut exc = Choice::from(0);
    let acc = gtable().add_ct(Jac::IDENTITY, &digits, &mut exc);
    (acc, exc)
}

/// acc + s·G, variable-time (public s).
pub(crate) fn add_mul_g_vartime(acc: Jac, s: &[u64; 4]) -> Jac {
    gtable().add_vartime(acc, &recode_signed::<GW, GNW>(s))
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
pub(crate) fn key_comb(p: &Affine) -> KeyComb {
    Comb::build(p, KW as u32, KNW)
}

/// k·P from P's fixed-base table, constant-time in k.
pub(crate) fn mul_comb_ct(comb: &KeyComb, k: &[u64; 4]) -> (Jac, Choice) {
    let digits = recode_signed::<KW, KNW>(k);
    let mut exc = Choice::from(0);
    let acc = comb.add_ct(Jac::IDENTITY, &digits, &mut exc);
    (acc, exc)
}

/// s·G + t·P from P's fixed-base table, variable-time (verification of a key used
/// often): no doublings at all.
pub(crate) fn double_mul_comb_vartime(s: &[u64; 4], t: &[u64; 4], comb: &KeyComb) -> Jac {
    let acc = comb.add_vartime(Jac::IDENTITY, &recode_signed::<KW, KNW>(t));
    add_mul_g_vartime(acc, s)
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
    pub(crate) fn new(p: &Affine) -> Self {
        let pj = p.to_jac();
        let p2 = pj.double();
        let mut jac = Vec::with_capacity(PENTRIES);
        let mut m = pj;
        for i in 0..PENTRIES {
            if i > 0 {
                m = m.add_vartime(&p2);
            }
            jac.push(m);
        }
        let aff = batch_to_affine(&jac);
        let mut odd = [Affine::default(); PENTRIES];
        odd.copy_from_slice(&aff);
        Self { odd }
    }
}

/// s·G + t·P, variable-time (verification).
pub(crate) fn double_mul_vartime(s: &[u64; 4], t: &[u64; 4], p: &PubTable) -> Jac {
    let naf = wnaf::<PW>(t);
    let top = naf.iter().rposition(|&d| d != 0);
    let mut acc = Jac::IDENTITY;
    if let Some(top) = top {
        for i in (0..=top).rev() {
            acc = acc.double();
            let d = naf[i];
            if d > 0 {
                acc = acc.madd_vartime(&p.odd[(d as usize) / 2]);
            } else if d < 0 {
                acc = acc.madd_vartime(&p.odd[((-d) as usize) / 2].neg());
            }
        }
    }
    add_mul_g_vartime(acc, s)
}

/// Window width of the constant-time variable-base multiplication.
const VW: usize = 5;
const VNW: usize = 256 / VW + 1;
const VENTRIES: usize = 1 << (VW - 1);

/// Constant-time read of Jacobian entry `mag` − 1 (`mag` = 0 gives the identity).
#[inline(always)]
fn lookup_jac(row: &[Jac; VENTRIES], mag: u8) -> Jac {
    let mut out = Jac::IDENTITY;
    for (i, e) in row.iter().enumerate() {
        out = Jac::conditional_select(&out, e, (i as u8 + 1).ct_eq(&mag));
    }
    out
}

/// k·P for canonical k and a point P on the curve, constant-time in k (and in P's
/// coordinates): signed fixed windows, every table entry read each time.
pub(crate) fn mul_ct(p: &Affine, k: &[u64; 4]) -> (Jac, Choice) {
    let pj = p.to_jac();
    let mut exc = Choice::from(0);
    let mut row = [pj; VENTRIES];
    let p2 = pj.double();
    row[1] = p2;
    for i in 2..VENTRIES {
        row[i] = row[i - 1].add_ct(&pj, &mut exc);
    }
    let digits = recode_signed::<VW, VNW>(k);
    let mut acc = Jac::IDENTITY;
    for (j, &(mag, neg)) in digits.iter().enumerate().rev() {
        if j != VNW - 1 {
            acc = acc.double_n(VW as u32);
        }
        let e = lookup_jac(&row, mag);
        let e = Jac::conditional_select(&e, &e.neg(), Choice::from(neg));
        acc = acc.add_ct(&e, &mut exc);
    }
    (acc, exc)
}
