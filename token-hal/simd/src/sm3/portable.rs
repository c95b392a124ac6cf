//! The scalar SM3 compression function (GB/T 32905-2016 §5.3), fully unrolled.
//!
//! It is plain safe Rust. The x86 module compiles the same body a second time with
//! BMI2 enabled (so every rotate becomes a flag-free `rorx`), which is why the body is
//! `#[inline(always)]`.

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
pub(crate) fn ff1(x: u32, y: u32, z: u32) -> u32 {
    x ^ y ^ z
}

#[inline(always)]
pub(crate) fn ff2(x: u32, y: u32, z: u32) -> u32 {
    (x & y) | (z & (x | y))
}

#[inline(always)]
pub(crate) fn gg1(x: u32, y: u32, z: u32) -> u32 {
    x ^ y ^ z
}

#[inline(always)]
pub(crate) fn gg2(x: u32, y: u32, z: u32) -> u32 {
    ((y ^ z) & x) ^ z
}

/// One round. The eight working variables rotate by renaming: after the round the new
/// A is in `$d`, the new E in `$h`, and the caller passes them shifted by one.
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident,
     $j:expr, $w:expr, $wp:expr, $ff:ident, $gg:ident) => {{
        let a12 = $a.rotate_left(12);
        // In rounds 0..15 the E chain is the critical path: add the constant to A<<<12
        // first (A is ready earlier), keeping E two steps from SS1. `black_box` stops
        // LLVM from reassociating it into (A<<<12 + E) + T.
        let t = if $j < 16 {
            core::hint::black_box(TJ[$j])
        } else {
            TJ[$j]
        };
        let ss1 = a12.wrapping_add(t).wrapping_add($e).rotate_left(7);
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

/// The 64 rounds over one block, unrolled; `$w!(j)` and `$wp!(j)` yield W_j and W'_j
/// (a macro, so the schedule can update its ring in place). Evaluates to the new
/// chaining value (V ^ rounds(V)).
macro_rules! sm3_rounds {
    ($v:expr, $w:ident, $wp:ident) => {{
        let v: [u32; 8] = $v;
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = v;
        macro_rules! r4 {
            ($j:expr, $ff:ident, $gg:ident) => {
                round!(a, b, c, d, e, f, g, h, $j, $w!($j), $wp!($j), $ff, $gg);
                round!(
                    d,
                    a,
                    b,
                    c,
                    h,
                    e,
                    f,
                    g,
                    $j + 1,
                    $w!($j + 1),
                    $wp!($j + 1),
                    $ff,
                    $gg
                );
                round!(
                    c,
                    d,
                    a,
                    b,
                    g,
                    h,
                    e,
                    f,
                    $j + 2,
                    $w!($j + 2),
                    $wp!($j + 2),
                    $ff,
                    $gg
                );
                round!(
                    b,
                    c,
                    d,
                    a,
                    f,
                    g,
                    h,
                    e,
                    $j + 3,
                    $w!($j + 3),
                    $wp!($j + 3),
                    $ff,
                    $gg
                );
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
    }};
}

/// Compresses each block into `state`: the message schedule on the fly in a 16-word
/// ring (W_{j+4} is computed in round j, as W'_j needs it), then the unrolled rounds.
#[inline(always)]
pub(crate) fn compress_body(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    for block in blocks {
        let mut x = [0u32; 16];
        for (o, c) in x.iter_mut().zip(block.chunks_exact(4)) {
            *o = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        macro_rules! w {
            ($j:expr) => {
                x[($j) & 15]
            };
        }
        macro_rules! wp {
            ($j:expr) => {{
                let j: usize = $j;
                if j + 4 >= 16 {
                    let i = j + 4;
                    x[i & 15] =
                        p1(x[(i - 16) & 15] ^ x[(i - 9) & 15] ^ x[(i - 3) & 15].rotate_left(15))
                            ^ x[(i - 13) & 15].rotate_left(7)
                            ^ x[(i - 6) & 15];
                }
                x[j & 15] ^ x[(j + 4) & 15]
            }};
        }
        *state = sm3_rounds!(*state, w, wp);
    }
}

/// The portable kernel (any CPU, baseline target features).
pub(crate) fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    compress_body(state, blocks);
}
