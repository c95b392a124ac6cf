//! The scalar SM3 compression function (GB/T 32905-2016 §5.3), fully unrolled.
//!
//! It is plain safe Rust. The x86 module compiles the same body a second time with
//! BMI2 enabled (so every rotate becomes a flag-free `rorx`), which is why the body is
//! `#[inline(always)]` and generic over where the expanded message comes from.

/// The round constants T_j <<< (j mod 32), precomputed.
pub(crate) const TJ: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut j = 0;
    while j < 64 {
        let base: u32 = if j < 16 { 0x79cc_4519 } else { 0x7a87_9d8a };
        t[j] = base.rotate_left((j % 32) as u32);
        j += 1;
    }
    t
};

#[inline(always)]
pub(crate) fn p0(x: u32) -> u32 {
    x ^ x.rotate_left(9) ^ x.rotate_left(17)
}

#[inline(always)]
pub(crate) fn p1(x: u32) -> u32 {
    x ^ x.rotate_left(15) ^ x.rotate_left(23)
}

#[inline(always)]
fn ff1(x: u32, y: u32, z: u32) -> u32 {
    x ^ y ^ z
}

#[inline(always)]
fn ff2(x: u32, y: u32, z: u32) -> u32 {
    (x & y) | (z & (x | y))
}

#[inline(always)]
fn gg1(x: u32, y: u32, z: u32) -> u32 {
    x ^ y ^ z
}

#[inline(always)]
fn gg2(x: u32, y: u32, z: u32) -> u32 {
    ((y ^ z) & x) ^ z
}

/// One round. The eight working variables rotate by renaming: after the round the new
/// A is in `$d`, the new E in `$h`, and the caller passes them shifted by one.
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident,
     $j:expr, $w:expr, $wp:expr, $ff:ident, $gg:ident) => {{
        let a12 = $a.rotate_left(12);
        let ss1 = a12.wrapping_add(TJ[$j]).wrapping_add($e).rotate_left(7);
        let ss2 = ss1 ^ a12;
        $d = $ff($a, $b, $c)
            .wrapping_add($d)
            .wrapping_add($wp)
            .wrapping_add(ss2);
        $h = $gg($e, $f, $g)
            .wrapping_add($h)
            .wrapping_add($w)
            .wrapping_add(ss1);
        $b = $b.rotate_left(9);
        $f = $f.rotate_left(19);
        $h = p0($h);
    }};
}
/// The 64 rounds over one block, given closures that yield W_j and W'_j; returns the
/// new chaining value (V ^ rounds(V)).
#[inline(always)]
pub(crate) fn rounds(
    v: &[u32; 8],
    w: impl Fn(usize) -> u32,
    wp: impl Fn(usize) -> u32,
) -> [u32; 8] {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *v;
    macro_rules! r4 {
        ($j:expr, $ff:ident, $gg:ident) => {
            round!(a, b, c, d, e, f, g, h, $j, w($j), wp($j), $ff, $gg);
            round!(d, a, b, c, h, e, f, g, $j + 1, w($j + 1), wp($j + 1), $ff, $gg);
            round!(c, d, a, b, g, h, e, f, $j + 2, w($j + 2), wp($j + 2), $ff, $gg);
            round!(b, c, d, a, f, g, h, e, $j + 3, w($j + 3), wp($j + 3), $ff, $gg);
        };
    }
    r4!(0, ff1, gg1);
    r4!(4, ff1, gg1);
    r4!(8, ff1, gg1);
    r4!(12, ff1, gg1);
    r4!(16, ff2, gg2);
    r4!(20, ff2, gg2);
    r4!(24, ff2, gg2);
    r4!(28, ff2, gg2);
    r4!(32, ff2, gg2);
    r4!(36, ff2, gg2);
    r4!(40, ff2, gg2);
    r4!(44, ff2, gg2);
    r4!(48, ff2, gg2);
    r4!(52, ff2, gg2);
    r4!(56, ff2, gg2);
    r4!(60, ff2, gg2);
    [
        v[0] ^ a,
        v[1] ^ b,
        v[2] ^ c,
        v[3] ^ d,
        v[4] ^ e,
        v[5] ^ f,
        v[6] ^ g,
        v[7] ^ h,
    ]
}

/// The message expansion of one block into W_0..W_67 (§5.3.2).
#[inline(always)]
pub(crate) fn expand(block: &[u8; 64]) -> [u32; 68] {
    let mut w = [0u32; 68];
    for (i, c) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    for j in 16..68 {
        w[j] = p1(w[j - 16] ^ w[j - 9] ^ w[j - 3].rotate_left(15))
            ^ w[j - 13].rotate_left(7)
            ^ w[j - 6];
    }
    w
}

/// Compresses each block into `state`: scalar expansion, then the unrolled rounds.
#[inline(always)]
pub(crate) fn compress_body(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    for block in blocks {
        let w = expand(block);
        *state = rounds(state, |j| w[j], |j| w[j] ^ w[j + 4]);
    }
}

/// The portable kernel (any CPU, baseline target features).
pub(crate) fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    compress_body(state, blocks);
}
