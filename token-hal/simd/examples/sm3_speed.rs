//! Compares the SM3 kernels with RustCrypto `sm3` in one run (ratios are what count on
//! a shared machine): `cargo run --release -p ukey-simd --example sm3_speed`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sm3::Digest;
use ukey_simd::Tier;
use ukey_simd::sm3::{Sm3, compress_with_tier, sm3_many_with_tier};

/// Calls per second from the fastest of many short samples: on a shared, overloaded
/// machine the minimum is the run that was not preempted.
fn rate(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    let all = Instant::now();
    while all.elapsed() < Duration::from_millis(1500) {
        let start = Instant::now();
        for _ in 0..4 {
            f();
        }
        best = best.min(start.elapsed().as_secs_f64() / 4.0);
    }
    1.0 / best
}

fn main() {
    let buf = vec![0xa5u8; 16384];
    let blocks = buf.as_chunks::<64>().0;
    let mb = |r: f64| r * 16384.0 / 1e6;
    println!("single stream, 16 KiB (MB/s, fastest sample):");
    let rc = mb(rate(|| {
        black_box(sm3::Sm3::digest(black_box(&buf)));
    }));
    println!("  RustCrypto sm3        {rc:8.1}");
    let mut st = ukey_simd::sm3::IV;
    for t in Tier::available() {
        let r = mb(rate(|| compress_with_tier(t, &mut st, black_box(blocks))));
        let d = mb(rate(|| {
            black_box(Sm3::digest_with_tier(t, black_box(&buf)));
        }));
        println!(
            "  {:<20} {r:8.1}  {:.3}x  (digest {d:.1})",
            t.name(),
            r / rc
        );
    }
    black_box(st);
    for len in [32usize, 64, 200] {
        println!("many messages of {len} B, batch 1024 (hashes/s):");
        let msgs: Vec<Vec<u8>> = (0..1024).map(|i| vec![i as u8; len]).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        let mut out = vec![[0u8; 32]; 1024];
        let rc = rate(|| {
            for m in &refs {
                black_box(sm3::Sm3::digest(m));
            }
        }) * 1024.0;
        println!("  RustCrypto sm3 (loop) {rc:12.0}");
        for t in Tier::available() {
            let r = rate(|| sm3_many_with_tier(t, &refs, &mut out).expect("len")) * 1024.0;
            println!("  {:<20} {r:12.0}  {:.2}x", t.name(), r / rc);
        }
    }
}
