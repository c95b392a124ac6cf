//! SM4 kernel throughput per tier in one run, 16 KiB buffers (ratios are what count on a
//! shared machine): `cargo run --release -p ukey-simd --example sm4_speed [tier]`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ukey_simd::Tier;
use ukey_simd::sm4::{Sm4Gcm, Sm4Key};

/// Calls per second from the fastest of many short samples: on a shared, overloaded
/// machine the minimum is the run that was not preempted.
fn rate(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    let all = Instant::now();
    while all.elapsed() < Duration::from_millis(1000) {
        let start = Instant::now();
        for _ in 0..8 {
            f();
        }
        best = best.min(start.elapsed().as_secs_f64() / 8.0);
    }
    1.0 / best
}

fn main() {
    const N: usize = 16384;
    let only = std::env::args().nth(1);
    let mut buf = vec![0xa5u8; N];
    let gb = |r: f64| r * N as f64 / 1e9;
    println!(
        "{:<12} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}  (GB/s, 16 KiB, fastest sample)",
        "tier", "ECB", "CTR", "CBC-dec", "GCM-enc", "GCM-dec", "GCM/CTR"
    );
    for t in Tier::available() {
        if only.as_deref().is_some_and(|o| o != t.name()) {
            continue;
        }
        let k = Sm4Key::with_tier(&[0x11; 16], t);
        let g = Sm4Gcm::with_tier(&[0x11; 16], t);
        let ecb = gb(rate(|| k.encrypt_blocks(black_box(&mut buf)).expect("len")));
        let mut c = [0x22u8; 16];
        let ctr = gb(rate(|| k.ctr128_xor(&mut c, black_box(&mut buf))));
        let mut iv = [0x22u8; 16];
        let cbc = gb(rate(|| {
            k.cbc_decrypt(&mut iv, black_box(&mut buf)).expect("len")
        }));
        let nonce = [0x33u8; 12];
        let enc = gb(rate(|| {
            black_box(g.encrypt(&nonce, &[], black_box(&mut buf)));
        }));
        let mut data = vec![0x44u8; N];
        let tag = g.encrypt(&nonce, &[], &mut data);
        let dec = gb(rate(|| {
            let mut d = data.clone();
            g.decrypt(&nonce, &[], black_box(&mut d), &tag)
                .expect("tag");
            black_box(d);
        }));
        println!(
            "{:<12} {ecb:7.3} {ctr:7.3} {cbc:7.3} {enc:7.3} {dec:7.3} {:7.3}",
            t.name(),
            enc / ctr
        );
    }
}
