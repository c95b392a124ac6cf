//! Scalar multiplication: the fixed-base table for k·G, the constant-time
//! variable-base k·P, and the variable-time s·G + t·P for verification.

use std::sync::OnceLock;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::field::Fe;
use super::point::{Affine, G, Jac, batch_to_affine, recode_signed, wnaf};

/// Window width of the fixed-base table.
pub(crate) const GW: usize = 7;
/// Number of signed windows of a 256-bit scalar.
pub(crate) const GNW: usize = 256 / GW + 1;
/// Entries per window: 1·B … 2^(w−1)·B.
const GENTRIES: usize = 1 << (GW - 1);

/// `GTABLE[j][i]` = (i + 1)·2^(w·j)·G, affine.
pub(crate) struct GTable(Vec<[Affine; GENTRIES]>);

static GTABLE: OnceLock<GTable> = OnceLock::new();

/// The fixed-base table, built on first use (about 150 KiB, one batched inversion).
pub(crate) fn gtable() -> &'static GTable {
    GTABLE.get_or_init(|| {
        let mut jac = Vec::with_capacity(GNW * GENTRIES);
        let mut base = G.to_jac();
        for _ in 0..GNW {
            let mut m = base;
            for i in 0..GENTRIES {
                if i > 0 {
                    m = m.add_vartime(&base);
                }
                jac.push(m);
            }
            base = base.double_n(GW as u32);
        }
        let aff = batch_to_affine(&jac);
        GTable(
            aff.chunks_exact(GENTRIES)
                .map(|c| {
                    let mut row = [Affine::default(); GENTRIES];
                    row.copy_from_slice(c);
                    row
                })
                .collect(),
        )
    })
}

/// Constant-time read of entry `mag` − 1 of `row` (every entry is read; `mag` = 0
/// selects nothing).
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

/// k·G for canonical k < n, constant-time in k: one constant-time table read and one
/// mixed addition per signed window, no doublings. The flag is set in the negligible
/// case the incomplete addition met P + P.
pub(crate) fn mul_g_ct(k: &[u64; 4]) -> (Jac, Choice) {
    let t = gtable();
    let digits = recode_signed::<GW, GNW>(k);
    let mut acc = Jac::IDENTITY;
    let mut exc = Choice::from(0);
    for (row, &(mag, neg)) in t.0.iter().zip(digits.iter()) {
        let e = lookup_affine(row, mag);
        let e = Affine::conditional_select(&e, &e.neg(), Choice::from(neg));
        acc = acc.madd_ct(&e, mag.ct_eq(&0), &mut exc);
    }
    (acc, exc)
}

/// s·G, variable-time (public s).
fn mul_g_vartime(s: &[u64; 4]) -> Jac {
    let t = gtable();
    let digits = recode_signed::<GW, GNW>(s);
    let mut acc = Jac::IDENTITY;
    for (row, &(mag, neg)) in t.0.iter().zip(digits.iter()) {
        if mag == 0 {
            continue;
        }
        let e = row[usize::from(mag) - 1];
        let e = if neg == 1 { e.neg() } else { e };
        acc = acc.madd_vartime(&e);
    }
    acc
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
    acc.add_vartime(&mul_g_vartime(s))
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
