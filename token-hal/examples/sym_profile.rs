//! Runs one SM4 operation in a loop the way a PKCS#11 caller's single-part call does it
//! (a new cipher per call, output into a fresh buffer), for profilers and for timing
//! against the same loop through libukey_pkcs11.so:
//! `target/release/examples/sym_profile gcm 200000 16384`. Modes: gcm, ctr, ecb, cbc,
//! cbc-dec. `SYM_IN_OFFSET` / `SYM_OUT_OFFSET` (bytes, default 0) place the input and
//! output that far past a 64-byte boundary, to see what alignment costs.

use std::hint::black_box;

use token_hal::crypto::sym::{Direction, SymAlg, SymCipher, SymMode};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "gcm".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16_384);
    let key = [1u8; 16];
    let offset = |var: &str| -> usize {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (in_off, out_off) = (offset("SYM_IN_OFFSET"), offset("SYM_OUT_OFFSET"));
    // A buffer of `len` bytes that starts `off` bytes past a 64-byte boundary.
    let placed = |store: &mut Vec<u8>, len: usize, off: usize| -> std::ops::Range<usize> {
        *store = vec![0u8; len + 128];
        let start = (64 - store.as_ptr() as usize % 64) % 64 + off % 64;
        start..start + len
    };
    let mut data_store = Vec::new();
    let data_at = placed(&mut data_store, size, in_off);
    let data = &data_store[data_at];
    let mut out_store = Vec::new();
    let start = std::time::Instant::now();
    for _ in 0..n {
        let c = match mode.as_str() {
            "gcm" => SymCipher::new_gcm(SymAlg::Sm4, Direction::Encrypt, &key, &[7u8; 12], &[], 16),
            "ctr" => SymCipher::new(
                SymAlg::Sm4,
                SymMode::Ctr,
                Direction::Encrypt,
                &key,
                &[7u8; 16],
            ),
            "ecb" => SymCipher::new(SymAlg::Sm4, SymMode::Ecb, Direction::Encrypt, &key, &[]),
            "cbc" | "cbc-dec" => {
                let dir = if mode == "cbc" {
                    Direction::Encrypt
                } else {
                    Direction::Decrypt
                };
                SymCipher::new(SymAlg::Sm4, SymMode::Cbc, dir, &key, &[7u8; 16])
            }
            other => panic!("unknown mode {other}"),
        }
        .expect("cipher");
        let out_at = placed(
            &mut out_store,
            c.single_part_len(size).expect("length"),
            out_off,
        );
        let out = &mut out_store[out_at];
        let k = c.finish_into(black_box(data), out).expect("encrypt");
        black_box(&out[..k]);
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "{mode} {size} B: {n} in {el:.3} s = {:.0}/s, {:.3} GB/s",
        n as f64 / el,
        (n * size) as f64 / el / 1e9
    );
}
