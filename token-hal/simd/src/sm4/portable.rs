//! Portable SM4 (GB/T 32907): the key schedule and a T-table block function.
//!
//! The tables fold the S-box τ and the linear transform L into four 256-entry word
//! tables, so a round is four lookups and four XORs. This is the fastest way to run one
//! block at a time without SIMD (serial CBC encryption, OFB); table lookups are indexed
//! by data, so this path is not constant-time with respect to cache timing (the SIMD
//! tiers are).

/// The S-box of GB/T 32907 §6.2.
pub(crate) const SBOX: [u8; 256] = [
    0xd6, 0x90, 0xe9, 0xfe, 0xcc, 0xe1, 0x3d, 0xb7, 0x16, 0xb6, 0x14, 0xc2, 0x28, 0xfb, 0x2c, 0x05,
    0x2b, 0x67, 0x9a, 0x76, 0x2a, 0xbe, 0x04, 0xc3, 0xaa, 0x44, 0x13, 0x26, 0x49, 0x86, 0x06, 0x99,
    0x9c, 0x42, 0x50, 0xf4, 0x91, 0xef, 0x98, 0x7a, 0x33, 0x54, 0x0b, 0x43, 0xed, 0xcf, 0xac, 0x62,
    0xe4, 0xb3, 0x1c, 0xa9, 0xc9, 0x08, 0xe8, 0x95, 0x80, 0xdf, 0x94, 0xfa, 0x75, 0x8f, 0x3f, 0xa6,
    0x47, 0x07, 0xa7, 0xfc, 0xf3, 0x73, 0x17, 0xba, 0x83, 0x59, 0x3c, 0x19, 0xe6, 0x85, 0x4f, 0xa8,
    0x68, 0x6b, 0x81, 0xb2, 0x71, 0x64, 0xda, 0x8b, 0xf8, 0xeb, 0x0f, 0x4b, 0x70, 0x56, 0x9d, 0x35,
    0x1e, 0x24, 0x0e, 0x5e, 0x63, 0x58, 0xd1, 0xa2, 0x25, 0x22, 0x7c, 0x3b, 0x01, 0x21, 0x78, 0x87,
    0xd4, 0x00, 0x46, 0x57, 0x9f, 0xd3, 0x27, 0x52, 0x4c, 0x36, 0x02, 0xe7, 0xa0, 0xc4, 0xc8, 0x9e,
    0xea, 0xbf, 0x8a, 0xd2, 0x40, 0xc7, 0x38, 0xb5, 0xa3, 0xf7, 0xf2, 0xce, 0xf9, 0x61, 0x15, 0xa1,
    0xe0, 0xae, 0x5d, 0xa4, 0x9b, 0x34, 0x1a, 0x55, 0xad, 0x93, 0x32, 0x30, 0xf5, 0x8c, 0xb1, 0xe3,
    0x1d, 0xf6, 0xe2, 0x2e, 0x82, 0x66, 0xca, 0x60, 0xc0, 0x29, 0x23, 0xab, 0x0d, 0x53, 0x4e, 0x6f,
    0xd5, 0xdb, 0x37, 0x45, 0xde, 0xfd, 0x8e, 0x2f, 0x03, 0xff, 0x6a, 0x72, 0x6d, 0x6c, 0x5b, 0x51,
    0x8d, 0x1b, 0xaf, 0x92, 0xbb, 0xdd, 0xbc, 0x7f, 0x11, 0xd9, 0x5c, 0x41, 0x1f, 0x10, 0x5a, 0xd8,
    0x0a, 0xc1, 0x31, 0x88, 0xa5, 0xcd, 0x7b, 0xbd, 0x2d, 0x74, 0xd0, 0x12, 0xb8, 0xe5, 0xb4, 0xb0,
    0x89, 0x69, 0x97, 0x4a, 0x0c, 0x96, 0x77, 0x7e, 0x65, 0xb9, 0xf1, 0x09, 0xc5, 0x6e, 0xc6, 0x84,
    0x18, 0xf0, 0x7d, 0xec, 0x3a, 0xdc, 0x4d, 0x20, 0x79, 0xee, 0x5f, 0x3e, 0xd7, 0xcb, 0x39, 0x48,
];

/// System parameter FK (§7.3).
const FK: [u32; 4] = [0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc];

/// Fixed parameters CK (§7.3): byte j of CK_i is (4i + j)·7 mod 256.
const CK: [u32; 32] = {
    let mut ck = [0u32; 32];
    let mut i = 0;
    while i < 32 {
        let mut w = 0u32;
        let mut j = 0;
        while j < 4 {
            w = (w << 8) | (((4 * i + j) * 7) % 256) as u32;
            j += 1;
        }
        ck[i] = w;
        i += 1;
    }
    ck
};

const fn l(b: u32) -> u32 {
    b ^ b.rotate_left(2) ^ b.rotate_left(10) ^ b.rotate_left(18) ^ b.rotate_left(24)
}

/// T-tables: `TABLES[k][x] = L(S(x) << (24 - 8k))`.
static TABLES: [[u32; 256]; 4] = {
    let mut t = [[0u32; 256]; 4];
    let mut x = 0;
    while x < 256 {
        let s = SBOX[x] as u32;
        t[0][x] = l(s << 24);
        t[1][x] = l(s << 16);
        t[2][x] = l(s << 8);
        t[3][x] = l(s);
        x += 1;
    }
    t
};

fn tau(a: u32) -> u32 {
    let b = a.to_be_bytes();
    u32::from_be_bytes([
        SBOX[usize::from(b[0])],
        SBOX[usize::from(b[1])],
        SBOX[usize::from(b[2])],
        SBOX[usize::from(b[3])],
    ])
}

/// The key expansion (§7.3): 32 round keys.
pub(crate) fn expand_key(key: &[u8; 16]) -> [u32; 32] {
    let mut k = [0u32; 4];
    for (i, w) in k.iter_mut().enumerate() {
        *w = u32::from_be_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]])
            ^ FK[i];
    }
    let mut rk = [0u32; 32];
    for (i, r) in rk.iter_mut().enumerate() {
        let b = tau(k[(i + 1) % 4] ^ k[(i + 2) % 4] ^ k[(i + 3) % 4] ^ CK[i]);
        let n = k[i % 4] ^ b ^ b.rotate_left(13) ^ b.rotate_left(23);
        k[i % 4] = n;
        *r = n;
    }
    k.fill(0);
    rk
}

#[inline(always)]
fn t(x: u32) -> u32 {
    TABLES[0][(x >> 24) as usize]
        ^ TABLES[1][((x >> 16) & 0xff) as usize]
        ^ TABLES[2][((x >> 8) & 0xff) as usize]
        ^ TABLES[3][(x & 0xff) as usize]
}

/// Runs the 32 rounds over one block held as four big-endian words.
#[inline(always)]
pub(crate) fn crypt_words(rk: &[u32; 32], w: [u32; 4]) -> [u32; 4] {
    let [mut x0, mut x1, mut x2, mut x3] = w;
    // The word the previous round wrote is XORed last, so the rest of each round's
    // input is ready before it (a shorter dependency chain for serial modes).
    for r in rk.chunks_exact(4) {
        x0 ^= t((x1 ^ x2 ^ r[0]) ^ x3);
        x1 ^= t((x2 ^ x3 ^ r[1]) ^ x0);
        x2 ^= t((x3 ^ x0 ^ r[2]) ^ x1);
        x3 ^= t((x0 ^ x1 ^ r[3]) ^ x2);
    }
    [x3, x2, x1, x0]
}

#[inline(always)]
pub(crate) fn to_words(b: &[u8; 16]) -> [u32; 4] {
    let mut w = [0u32; 4];
    for (i, x) in w.iter_mut().enumerate() {
        *x = u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    }
    w
}

#[inline(always)]
pub(crate) fn from_words(w: [u32; 4], b: &mut [u8; 16]) {
    for (i, x) in w.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
}

/// One block in place with the round keys `rk` (encryption keys encrypt, reversed keys
/// decrypt).
#[inline]
pub(crate) fn crypt_block(rk: &[u32; 32], b: &mut [u8; 16]) {
    let w = crypt_words(rk, to_words(b));
    from_words(w, b);
}

/// Whole blocks in place, one at a time.
pub(crate) fn crypt_blocks(rk: &[u32; 32], data: &mut [u8]) {
    let (blocks, _) = data.as_chunks_mut::<16>();
    for b in blocks {
        crypt_block(rk, b);
    }
}

/// Serial CBC encryption of whole blocks; `iv` becomes the last ciphertext block.
pub(crate) fn cbc_encrypt(rk: &[u32; 32], iv: &mut [u8; 16], data: &mut [u8]) {
    let mut c = to_words(iv);
    let (blocks, _) = data.as_chunks_mut::<16>();
    for b in blocks {
        let p = to_words(b);
        c = crypt_words(rk, [p[0] ^ c[0], p[1] ^ c[1], p[2] ^ c[2], p[3] ^ c[3]]);
        from_words(c, b);
    }
    from_words(c, iv);
}

/// CBC-MAC chaining over whole blocks without writing any output.
pub(crate) fn cbc_mac(rk: &[u32; 32], iv: &mut [u8; 16], data: &[u8]) {
    let mut c = to_words(iv);
    let (blocks, _) = data.as_chunks::<16>();
    for b in blocks {
        let p = to_words(b);
        c = crypt_words(rk, [p[0] ^ c[0], p[1] ^ c[1], p[2] ^ c[2], p[3] ^ c[3]]);
    }
    from_words(c, iv);
}

/// Serial CFB-128 encryption of whole blocks; `iv` becomes the last ciphertext block.
pub(crate) fn cfb_encrypt(rk: &[u32; 32], iv: &mut [u8; 16], data: &mut [u8]) {
    let mut c = to_words(iv);
    let (blocks, _) = data.as_chunks_mut::<16>();
    for b in blocks {
        let k = crypt_words(rk, c);
        let p = to_words(b);
        c = [p[0] ^ k[0], p[1] ^ k[1], p[2] ^ k[2], p[3] ^ k[3]];
        from_words(c, b);
    }
    from_words(c, iv);
}

/// OFB over whole blocks; `iv` becomes the last output block of the cipher.
pub(crate) fn ofb(rk: &[u32; 32], iv: &mut [u8; 16], data: &mut [u8]) {
    let mut s = to_words(iv);
    let (blocks, _) = data.as_chunks_mut::<16>();
    for b in blocks {
        s = crypt_words(rk, s);
        let p = to_words(b);
        from_words([p[0] ^ s[0], p[1] ^ s[1], p[2] ^ s[2], p[3] ^ s[3]], b);
    }
    from_words(s, iv);
}

/// CBC decryption, one block at a time.
pub(crate) fn cbc_decrypt(rk_dec: &[u32; 32], iv: &mut [u8; 16], data: &mut [u8]) {
    let (blocks, _) = data.as_chunks_mut::<16>();
    for b in blocks {
        let c = *b;
        crypt_block(rk_dec, b);
        for (x, y) in b.iter_mut().zip(iv.iter()) {
            *x ^= y;
        }
        *iv = c;
    }
}

/// CFB-128 decryption, one block at a time.
pub(crate) fn cfb_decrypt(rk: &[u32; 32], iv: &mut [u8; 16], data: &mut [u8]) {
    let (blocks, _) = data.as_chunks_mut::<16>();
    for b in blocks {
        let mut k = *iv;
        crypt_block(rk, &mut k);
        *iv = *b;
        for (x, y) in b.iter_mut().zip(k.iter()) {
            *x ^= y;
        }
    }
}

/// Counter mode over `data` (any length; a partial last block uses one more counter),
/// with a 128-bit (`wide`) or 32-bit big-endian counter in `ctr`, which is advanced.
pub(crate) fn ctr(rk: &[u32; 32], ctr: &mut [u8; 16], data: &mut [u8], wide: bool) {
    for chunk in data.chunks_mut(16) {
        let mut k = *ctr;
        crypt_block(rk, &mut k);
        for (x, y) in chunk.iter_mut().zip(k.iter()) {
            *x ^= y;
        }
        increment(ctr, 1, wide);
    }
}

/// Adds `n` to the counter block: all 128 bits, or only the last 32 (wrapping).
#[inline]
pub(crate) fn increment(ctr: &mut [u8; 16], n: u64, wide: bool) {
    if wide {
        *ctr = u128::from_be_bytes(*ctr)
            .wrapping_add(u128::from(n))
            .to_be_bytes();
    } else {
        let c = u32::from_be_bytes([ctr[12], ctr[13], ctr[14], ctr[15]]).wrapping_add(n as u32);
        ctr[12..].copy_from_slice(&c.to_be_bytes());
    }
}
