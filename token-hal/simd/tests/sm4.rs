//! SM4 and GHASH kernels: GB/T 32907 known answers on every tier, and differential
//! tests against RustCrypto (`sm4`, `cbc`, `cfb-mode`, `ofb`, `aes-gcm`, `ghash`) over
//! random keys, IVs, lengths (odd tails included) and buffer offsets, on every tier
//! this CPU has (`Tier::available()`), 10^5 cases per tier and mode.

#![allow(clippy::unwrap_used)]

use cipher::array::Array;
use cipher::consts::{U1, U8, U12, U16, U20, U60};
use cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit,
    StreamCipher,
};
use ukey_simd::Tier;
use ukey_simd::ghash::Ghash;
use ukey_simd::sm4::{LengthError, Sm4Gcm, Sm4Key};

const CASES: usize = 100_000;

/// SplitMix64: reproducible test randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }
    fn block(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b
    }
    /// Mostly short lengths, sometimes several batches (a batch is 512 bytes on AVX-512).
    fn len(&mut self) -> usize {
        if self.below(8) == 0 {
            self.below(1600)
        } else {
            self.below(260)
        }
    }
    /// A counter block whose last word is near the 32-bit wrap one time in four.
    fn counter(&mut self) -> [u8; 16] {
        let mut c = self.block();
        if self.below(4) == 0 {
            let w = u32::MAX - self.below(40) as u32;
            c[12..].copy_from_slice(&w.to_be_bytes());
        }
        c
    }
}

fn hex16(s: &str) -> [u8; 16] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn ref_cipher(key: &[u8; 16]) -> sm4::Sm4 {
    sm4::Sm4::new_from_slice(key).unwrap()
}

fn ref_ecb(key: &[u8; 16], data: &mut [u8], enc: bool) {
    let c = ref_cipher(key);
    let (b, _) = Array::<u8, U16>::slice_as_chunks_mut(data);
    if enc {
        c.encrypt_blocks(b)
    } else {
        c.decrypt_blocks(b)
    }
}

fn ref_ctr(key: &[u8; 16], ctr: &[u8; 16], data: &mut [u8], wide: bool) {
    let c = ref_cipher(key);
    let mut n = *ctr;
    for chunk in data.chunks_mut(16) {
        let mut k = Array::<u8, U16>::from(n);
        c.encrypt_block(&mut k);
        for (x, y) in chunk.iter_mut().zip(k.iter()) {
            *x ^= y;
        }
        if wide {
            n = u128::from_be_bytes(n).wrapping_add(1).to_be_bytes();
        } else {
            let w = u32::from_be_bytes(n[12..].try_into().unwrap()).wrapping_add(1);
            n[12..].copy_from_slice(&w.to_be_bytes());
        }
    }
}

/// A random key, IV, length and offset; `whole` rounds the length down to blocks.
struct Case {
    key: [u8; 16],
    iv: [u8; 16],
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl Case {
    fn new(rng: &mut Rng, whole: bool) -> Self {
        let mut len = rng.len();
        if whole {
            len -= len % 16;
        }
        let off = rng.below(64);
        let mut buf = vec![0u8; off + len + 64];
        rng.fill(&mut buf);
        Case {
            key: rng.block(),
            iv: rng.counter(),
            buf,
            off,
            len,
        }
    }
    fn data(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Runs `ours` and `theirs` on copies of the same random case and compares the whole
/// buffers (so a write outside the data shows up) and the returned chaining values.
fn differential(
    name: &str,
    whole: bool,
    ours: impl Fn(Tier, &[u8; 16], &mut [u8; 16], &mut [u8]),
    theirs: impl Fn(&[u8; 16], &mut [u8; 16], &mut [u8]),
) {
    for tier in Tier::available() {
        let mut rng = Rng(0x5eed ^ tier as u64);
        for i in 0..CASES {
            let mut a = Case::new(&mut rng, whole);
            let mut b_buf = a.buf.clone();
            let (key, mut iv_a) = (a.key, a.iv);
            let mut iv_b = iv_a;
            ours(tier, &key, &mut iv_a, a.data());
            theirs(&key, &mut iv_b, &mut b_buf[a.off..a.off + a.len]);
            assert!(
                a.buf == b_buf && iv_a == iv_b,
                "{name} on {tier:?}: case {i} (len {}, offset {}) differs",
                a.len,
                a.off
            );
        }
    }
}

#[test]
fn gbt32907_vectors_on_every_tier() {
    let key = hex16("0123456789abcdeffedcba9876543210");
    let ct = hex16("681edf34d206965e86b3e94f536e4246");
    let ct_1m = hex16("595298c7c6fd271f0402f804c33d3f66");
    assert!(Tier::available().contains(&Tier::Portable));
    for tier in Tier::available() {
        let k = Sm4Key::with_tier(&key, tier);
        assert_eq!(k.tier(), tier);
        let mut b = key;
        k.encrypt_blocks(&mut b).unwrap();
        assert_eq!(b, ct, "{tier:?}");
        k.decrypt_blocks(&mut b).unwrap();
        assert_eq!(b, key, "{tier:?}");
        // The same block 17 times spans a full group plus a tail on every tier.
        let mut many = key.repeat(17);
        k.encrypt_blocks(&mut many).unwrap();
        assert!(many.chunks(16).all(|c| c == ct), "{tier:?}");
    }
    // GB/T 32907 appendix A.2: 1,000,000 encryptions of the plaintext under the key.
    for tier in Tier::available() {
        let k = Sm4Key::with_tier(&key, tier);
        let mut b = key;
        for _ in 0..1_000_000 {
            k.encrypt_blocks(&mut b).unwrap();
        }
        assert_eq!(b, ct_1m, "{tier:?}");
    }
    let k = Sm4Key::new(&key);
    let mut b = key;
    for _ in 0..1_000_000 {
        k.encrypt_block(&mut b);
    }
    assert_eq!(b, ct_1m);
}

#[test]
fn bad_lengths_are_refused_and_change_nothing() {
    for tier in Tier::available() {
        let k = Sm4Key::with_tier(&[7; 16], tier);
        let mut d = [1u8; 33];
        let mut iv = [2u8; 16];
        assert_eq!(k.encrypt_blocks(&mut d), Err(LengthError));
        assert_eq!(k.decrypt_blocks(&mut d), Err(LengthError));
        assert_eq!(k.cbc_encrypt(&mut iv, &mut d), Err(LengthError));
        assert_eq!(k.cbc_decrypt(&mut iv, &mut d), Err(LengthError));
        assert_eq!(k.cfb_encrypt(&mut iv, &mut d), Err(LengthError));
        assert_eq!(k.cfb_decrypt(&mut iv, &mut d), Err(LengthError));
        assert_eq!(k.ofb_xor(&mut iv, &mut d), Err(LengthError));
        assert_eq!(k.cbc_mac_update(&mut iv, &d), Err(LengthError));
        let mut ok = [3u8; 32];
        let mut iv2 = [4u8; 16];
        let mut streams = [(&mut iv2, &mut ok[..]), (&mut iv, &mut d[..])];
        assert_eq!(k.cbc_encrypt_multi(&mut streams), Err(LengthError));
        assert_eq!(d, [1u8; 33]);
        assert_eq!(iv, [2u8; 16]);
        assert_eq!(ok, [3u8; 32]);
        assert_eq!(iv2, [4u8; 16]);
        assert!(!format!("{k:?}").contains("07"));
    }
}

#[test]
fn ecb_matches_rustcrypto() {
    differential(
        "ECB encrypt",
        true,
        |t, k, _, d| Sm4Key::with_tier(k, t).encrypt_blocks(d).unwrap(),
        |k, _, d| ref_ecb(k, d, true),
    );
    differential(
        "ECB decrypt",
        true,
        |t, k, _, d| Sm4Key::with_tier(k, t).decrypt_blocks(d).unwrap(),
        |k, _, d| ref_ecb(k, d, false),
    );
}

#[test]
fn ctr_matches_rustcrypto() {
    differential(
        "CTR-128",
        false,
        |t, k, iv, d| Sm4Key::with_tier(k, t).ctr128_xor(iv, d),
        |k, iv, d| {
            ref_ctr(k, iv, d, true);
            let n = d.len().div_ceil(16) as u128;
            *iv = u128::from_be_bytes(*iv).wrapping_add(n).to_be_bytes();
        },
    );
    differential(
        "CTR-32",
        false,
        |t, k, iv, d| Sm4Key::with_tier(k, t).ctr32_xor(iv, d),
        |k, iv, d| {
            ref_ctr(k, iv, d, false);
            let n = d.len().div_ceil(16) as u32;
            let w = u32::from_be_bytes(iv[12..].try_into().unwrap()).wrapping_add(n);
            iv[12..].copy_from_slice(&w.to_be_bytes());
        },
    );
    // The RustCrypto `ctr` crate agrees with the reference above.
    let mut rng = Rng(99);
    for _ in 0..1000 {
        let mut c = Case::new(&mut rng, false);
        let (k, iv) = (c.key, c.iv);
        let mut x = c.data().to_vec();
        let mut y = x.clone();
        ref_ctr(&k, &iv, &mut x, true);
        ctr::Ctr128BE::<sm4::Sm4>::new_from_slices(&k, &iv)
            .unwrap()
            .apply_keystream(&mut y);
        assert_eq!(x, y);
    }
}

fn last_block(d: &[u8], iv: &mut [u8; 16]) {
    if let Some(l) = d.last_chunk::<16>() {
        *iv = *l;
    }
}

#[test]
fn cbc_matches_rustcrypto() {
    differential(
        "CBC encrypt",
        true,
        |t, k, iv, d| Sm4Key::with_tier(k, t).cbc_encrypt(iv, d).unwrap(),
        |k, iv, d| {
            let mut e = cbc::Encryptor::<sm4::Sm4>::new_from_slices(k, iv).unwrap();
            e.encrypt_blocks(Array::<u8, U16>::slice_as_chunks_mut(d).0);
            last_block(d, iv);
        },
    );
    differential(
        "CBC decrypt",
        true,
        |t, k, iv, d| Sm4Key::with_tier(k, t).cbc_decrypt(iv, d).unwrap(),
        |k, iv, d| {
            let mut last = *iv;
            last_block(d, &mut last);
            let mut e = cbc::Decryptor::<sm4::Sm4>::new_from_slices(k, iv).unwrap();
            e.decrypt_blocks(Array::<u8, U16>::slice_as_chunks_mut(d).0);
            *iv = last;
        },
    );
    differential(
        "CBC-MAC",
        true,
        |t, k, iv, d| Sm4Key::with_tier(k, t).cbc_mac_update(iv, d).unwrap(),
        |k, iv, d| {
            let mut c = d.to_vec();
            let mut e = cbc::Encryptor::<sm4::Sm4>::new_from_slices(k, iv).unwrap();
            e.encrypt_blocks(Array::<u8, U16>::slice_as_chunks_mut(&mut c).0);
            last_block(&c, iv);
        },
    );
}

#[test]
fn cfb_and_ofb_match_rustcrypto() {
    differential(
        "CFB encrypt",
        true,
        |t, k, iv, d| Sm4Key::with_tier(k, t).cfb_encrypt(iv, d).unwrap(),
        |k, iv, d| {
            let mut e = cfb_mode::Encryptor::<sm4::Sm4>::new_from_slices(k, iv).unwrap();
            e.encrypt_blocks(Array::<u8, U16>::slice_as_chunks_mut(d).0);
            last_block(d, iv);
        },
    );
    differential(
        "CFB decrypt",
        true,
        |t, k, iv, d| Sm4Key::with_tier(k, t).cfb_decrypt(iv, d).unwrap(),
        |k, iv, d| {
            let mut last = *iv;
            last_block(d, &mut last);
            let mut e = cfb_mode::Decryptor::<sm4::Sm4>::new_from_slices(k, iv).unwrap();
            e.decrypt_blocks(Array::<u8, U16>::slice_as_chunks_mut(d).0);
            *iv = last;
        },
    );
    differential(
        "OFB",
        true,
        |t, k, iv, d| Sm4Key::with_tier(k, t).ofb_xor(iv, d).unwrap(),
        |k, iv, d| {
            ofb::Ofb::<sm4::Sm4>::new_from_slices(k, iv)
                .unwrap()
                .apply_keystream(d);
            // The chaining value is the last cipher output: E^n(IV).
            let c = ref_cipher(k);
            for _ in 0..d.len() / 16 {
                let mut b = Array::<u8, U16>::from(*iv);
                c.encrypt_block(&mut b);
                *iv = b.into();
            }
        },
    );
}

#[test]
fn multi_stream_cbc_matches_single_stream() {
    for tier in Tier::available() {
        let mut rng = Rng(7 + tier as u64);
        let k = rng.block();
        let key = Sm4Key::with_tier(&k, tier);
        let mut streams_done = 0;
        while streams_done < CASES {
            let n = 1 + rng.below(70);
            let mut ivs: Vec<[u8; 16]> = (0..n).map(|_| rng.block()).collect();
            let mut bufs: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let mut b = vec![0u8; 16 * rng.below(12)];
                    rng.fill(&mut b);
                    b
                })
                .collect();
            let mut want_iv = ivs.clone();
            let mut want = bufs.clone();
            for (iv, b) in want_iv.iter_mut().zip(want.iter_mut()) {
                let mut e = cbc::Encryptor::<sm4::Sm4>::new_from_slices(&k, iv).unwrap();
                e.encrypt_blocks(Array::<u8, U16>::slice_as_chunks_mut(b).0);
                last_block(b, iv);
            }
            let mut streams: Vec<(&mut [u8; 16], &mut [u8])> = ivs
                .iter_mut()
                .zip(bufs.iter_mut())
                .map(|(i, b)| (i, &mut b[..]))
                .collect();
            key.cbc_encrypt_multi(&mut streams).unwrap();
            assert_eq!(bufs, want, "{tier:?}");
            assert_eq!(ivs, want_iv, "{tier:?}");
            streams_done += n;
        }
    }
}

#[test]
fn ghash_matches_rustcrypto() {
    use ghash::universal_hash::UniversalHash;
    for tier in Tier::available() {
        let mut rng = Rng(11 + tier as u64);
        for i in 0..CASES {
            let h = rng.block();
            let mut g = Ghash::with_tier(&h, tier);
            let mut r = ghash::GHash::new(&h.into());
            for _ in 0..1 + rng.below(3) {
                let mut d = vec![0u8; rng.len()];
                rng.fill(&mut d);
                g.update_padded(&d);
                r.update_padded(&d);
            }
            let want: [u8; 16] = r.finalize().into();
            assert_eq!(g.finalize(), want, "GHASH on {tier:?}, case {i}");
        }
    }
}

#[test]
fn gcm_matches_rustcrypto() {
    use aes_gcm::aead::{Aead, Payload};
    for tier in Tier::available() {
        let mut rng = Rng(13 + tier as u64);
        for i in 0..CASES {
            let mut c = Case::new(&mut rng, false);
            let mut aad = vec![0u8; rng.below(80)];
            rng.fill(&mut aad);
            let key = c.key;
            let nonce16 = rng.block();
            let long = rng.below(4) == 0;
            let nonce: &[u8] = if long { &nonce16 } else { &nonce16[..12] };
            let pt = c.data().to_vec();
            let want = if long {
                aes_gcm::AesGcm::<sm4::Sm4, U16>::new_from_slice(&key)
                    .unwrap()
                    .encrypt(
                        &Array::try_from(nonce).unwrap(),
                        Payload {
                            msg: &pt,
                            aad: &aad,
                        },
                    )
                    .unwrap()
            } else {
                aes_gcm::AesGcm::<sm4::Sm4, U12>::new_from_slice(&key)
                    .unwrap()
                    .encrypt(
                        &Array::try_from(nonce).unwrap(),
                        Payload {
                            msg: &pt,
                            aad: &aad,
                        },
                    )
                    .unwrap()
            };
            let g = Sm4Gcm::with_tier(&key, tier);
            let tag = g.encrypt(nonce, &aad, c.data());
            let mut got = c.data().to_vec();
            got.extend_from_slice(&tag);
            assert_eq!(got, want, "GCM seal on {tier:?}, case {i}");
            // Open: a good tag decrypts, a flipped bit changes nothing.
            let mut bad = tag;
            bad[rng.below(16)] ^= 1 << rng.below(8);
            let before = c.data().to_vec();
            assert!(g.decrypt(nonce, &aad, c.data(), &bad).is_err());
            assert_eq!(c.data(), &before[..]);
            g.decrypt(nonce, &aad, c.data(), &tag).unwrap();
            assert_eq!(c.data(), &pt[..], "GCM open on {tier:?}, case {i}");
        }
    }
}

/// RustCrypto `aes-gcm` over SM4: ciphertext ‖ 16-byte tag, for the nonce lengths the
/// tests draw.
fn ref_seal(key: &[u8; 16], nonce: &[u8], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, Payload};
    macro_rules! seal {
        ($n:ty) => {
            aes_gcm::AesGcm::<sm4::Sm4, $n>::new_from_slice(key)
                .unwrap()
                .encrypt(&Array::try_from(nonce).unwrap(), Payload { msg, aad })
                .unwrap()
        };
    }
    match nonce.len() {
        1 => seal!(U1),
        8 => seal!(U8),
        12 => seal!(U12),
        16 => seal!(U16),
        20 => seal!(U20),
        60 => seal!(U60),
        n => panic!("no reference for {n}-byte nonces"),
    }
}

/// One-shot GCM (the fused kernels on AVX-512) on every length 0..=600 and on random
/// lengths up to ten 64-block batches, with random AAD and nonce lengths: seal against
/// RustCrypto; open with the full tag and a truncated one; a flipped bit in the tag,
/// the ciphertext or the AAD must fail and leave the data as it was.
#[test]
fn gcm_all_lengths_nonces_tags_and_forgeries() {
    const NONCES: [usize; 7] = [1, 8, 12, 12, 16, 20, 60];
    for tier in Tier::available() {
        let mut rng = Rng(0x6c6d ^ tier as u64);
        let lens: Vec<usize> = (0..=600)
            .chain((0..CASES).map(|_| {
                if rng.below(4) != 0 {
                    rng.below(601)
                } else {
                    rng.below(6 * 1024 + 40)
                }
            }))
            .collect();
        for (i, &len) in lens.iter().enumerate() {
            let key = rng.block();
            let mut nonce = vec![0u8; NONCES[rng.below(NONCES.len())]];
            rng.fill(&mut nonce);
            let mut aad = vec![0u8; if rng.below(4) == 0 { 0 } else { rng.below(100) }];
            rng.fill(&mut aad);
            let mut pt = vec![0u8; len];
            rng.fill(&mut pt);
            let want = ref_seal(&key, &nonce, &aad, &pt);
            let g = Sm4Gcm::with_tier(&key, tier);
            let mut data = pt.clone();
            let tag = g.encrypt(&nonce, &aad, &mut data);
            let ctx = format!("{tier:?}, case {i}, len {len}, nonce {}", nonce.len());
            assert_eq!(&want[..len], &data[..], "GCM seal, {ctx}");
            assert_eq!(&want[len..], &tag[..], "GCM tag, {ctx}");
            let ct = data.clone();
            let tl = 4 + rng.below(13);
            g.decrypt(&nonce, &aad, &mut data, &tag[..tl]).unwrap();
            assert_eq!(data, pt, "GCM open, {ctx}");
            data.copy_from_slice(&ct);
            let (mut bad_tag, mut bad_aad) = (tag, aad.clone());
            match rng.below(3) {
                0 if len > 0 => {
                    let at = rng.below(len);
                    data[at] ^= 1 << rng.below(8);
                }
                1 if !aad.is_empty() => {
                    let at = rng.below(aad.len());
                    bad_aad[at] ^= 1 << rng.below(8);
                }
                _ => bad_tag[rng.below(tl)] ^= 1 << rng.below(8),
            }
            let forged = data.clone();
            assert!(
                g.decrypt(&nonce, &bad_aad, &mut data, &bad_tag[..tl])
                    .is_err(),
                "GCM forgery accepted, {ctx}"
            );
            assert_eq!(data, forged, "GCM failed open changed the data, {ctx}");
        }
    }
}

/// `seal_blocks` / `open_blocks` continuing a message over random whole-block pieces,
/// from counters near the 32-bit wrap one time in four and a GHASH already holding
/// some AAD, against RustCrypto's 32-bit-counter CTR and GHASH.
#[test]
fn gcm_block_pieces_match_ctr32_and_ghash() {
    use ghash::universal_hash::UniversalHash;
    for tier in Tier::available() {
        let mut rng = Rng(0x9a1e ^ tier as u64);
        for i in 0..CASES {
            let key = rng.block();
            let g = Sm4Gcm::with_tier(&key, tier);
            let mut hb = Array::<u8, U16>::default();
            ref_cipher(&key).encrypt_block(&mut hb);
            let h: [u8; 16] = hb.into();
            let mut aad = vec![0u8; rng.below(40)];
            rng.fill(&mut aad);
            let blocks = if rng.below(4) != 0 {
                rng.below(40)
            } else {
                rng.below(400)
            };
            let mut pt = vec![0u8; blocks * 16];
            rng.fill(&mut pt);
            let ctr0 = rng.counter();
            let mut want = pt.clone();
            ref_ctr(&key, &ctr0, &mut want, false);
            let mut r = ghash::GHash::new(&h.into());
            r.update_padded(&aad);
            r.update_padded(&want);
            let want_hash: [u8; 16] = r.finalize().into();
            let mut end_ctr = ctr0;
            let w = u32::from_be_bytes(ctr0[12..].try_into().unwrap()).wrapping_add(blocks as u32);
            end_ctr[12..].copy_from_slice(&w.to_be_bytes());
            let cuts: Vec<usize> = {
                let mut c: Vec<usize> = (0..rng.below(4))
                    .map(|_| rng.below(blocks + 1) * 16)
                    .collect();
                c.push(0);
                c.push(blocks * 16);
                c.sort_unstable();
                c
            };
            let ctx = format!("{tier:?}, case {i}, {blocks} blocks, cuts {cuts:?}");
            let mut data = pt.clone();
            let (mut ctr, mut gh) = (ctr0, g.ghash());
            gh.update_padded(&aad);
            for w in cuts.windows(2) {
                g.seal_blocks(&mut ctr, &mut gh, &mut data[w[0]..w[1]])
                    .unwrap();
            }
            assert_eq!(data, want, "seal_blocks data, {ctx}");
            assert_eq!(ctr, end_ctr, "seal_blocks counter, {ctx}");
            assert_eq!(gh.finalize(), want_hash, "seal_blocks GHASH, {ctx}");
            let (mut ctr, mut gh) = (ctr0, g.ghash());
            gh.update_padded(&aad);
            for w in cuts.windows(2) {
                g.open_blocks(&mut ctr, &mut gh, &mut data[w[0]..w[1]])
                    .unwrap();
            }
            assert_eq!(data, pt, "open_blocks data, {ctx}");
            assert_eq!(ctr, end_ctr, "open_blocks counter, {ctx}");
            assert_eq!(gh.finalize(), want_hash, "open_blocks GHASH, {ctx}");
        }
        // Partial blocks are refused and change nothing.
        let g = Sm4Gcm::with_tier(&[7; 16], tier);
        let (mut ctr, mut gh) = ([1; 16], g.ghash());
        let mut d = [5u8; 33];
        assert_eq!(g.seal_blocks(&mut ctr, &mut gh, &mut d), Err(LengthError));
        assert_eq!(g.open_blocks(&mut ctr, &mut gh, &mut d), Err(LengthError));
        assert_eq!((ctr, d), ([1; 16], [5u8; 33]));
        assert_eq!(gh.finalize(), g.ghash().finalize());
    }
}
