//! Crypto benchmark: ukey's provider against `openssl speed`, measured in the same run.
//!
//! `cargo bench -p token-hal --bench crypto` (or `scripts/bench.sh`). Each figure is
//! measured for about one second after a short warm-up, per second of the measuring
//! thread's CPU time (as `openssl speed` reports by default); symmetric and hash figures
//! use 16 KiB buffers, as `openssl speed -bytes 16384 -evp ...` does.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use token_hal::crypto::hash::{self, HashAlg};
use token_hal::crypto::provider::{REFERENCE_SM2, REFERENCE_SM4, SymProvider, provider};
use token_hal::crypto::sm2::DEFAULT_ID;
use token_hal::crypto::sym::{Direction, SymAlg, SymMode};
use token_hal::crypto::{EncMech, KeyAlg, PrivateKey, SignMech};
use ukey_simd::sm4::Sm4Key;

const BUF: usize = 16 * 1024;

/// CPU time this thread has run, in seconds (Linux `/proc/thread-self/schedstat`), or
/// `None` where that is not available.
fn thread_cpu() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// Runs `f` for about `secs` seconds after a warm-up and returns calls per second of
/// this thread's CPU time, as `openssl speed` divides by user CPU time by default, so a
/// machine busy with other work does not bias the ratio (wall time where the CPU time
/// is not available).
fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        f();
    }
    let start = Instant::now();
    let cpu0 = thread_cpu();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..8 {
            f();
        }
        n += 8;
    }
    let wall = start.elapsed().as_secs_f64();
    let spent = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => wall,
    };
    n as f64 / spent
}

struct Row {
    name: &'static str,
    unit: &'static str,
    ours: f64,
    openssl: Option<f64>,
}

fn openssl_speed(args: &[&str]) -> Option<String> {
    let out = Command::new("openssl")
        .arg("speed")
        // Wall-clock time, as `rate` measures ours: by default `openssl speed` counts
        // user CPU time, which flatters it on a loaded machine.
        .arg("-elapsed")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The sign/s and verify/s columns of the line containing `needle`.
fn parse_sign_verify(text: &str, needle: &str) -> Option<(f64, f64)> {
    let line = text.lines().find(|l| l.contains(needle))?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums.as_slice() {
        [.., s, v] => Some((*s, *v)),
        _ => None,
    }
}

/// MB/s from the last `name  NNNNk` line of `openssl speed -evp` (1000s of bytes/s).
fn parse_evp(text: &str) -> Option<f64> {
    let line = text.lines().rev().find(|l| l.trim_end().ends_with('k'))?;
    let k: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(k / 1000.0)
}

/// SM3 rows (issue 8): the multi-buffer batch API on 64-byte messages (the size of a
/// Z input's tail, an HMAC block, a small record) beside `openssl speed -bytes 64`, and
/// one message at a time for contrast. Returns the rows and a reference line comparing
/// the 16 KiB figure with RustCrypto `sm3` measured in the same run.
fn sm3_rows(secs: f64, data: &[u8]) -> (Vec<Row>, String) {
    use sm3::Digest;
    const N: usize = 1024;
    let msgs: Vec<[u8; 64]> = (0..N).map(|i| [i as u8; 64]).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
    let mut out = vec![[0u8; 32]; N];
    let many = rate(secs, || {
        hash::sm3_many(black_box(&refs), &mut out).expect("batch");
        black_box(&out);
    }) * N as f64;
    let one_by_one = rate(secs, || {
        for m in &refs {
            black_box(hash::sm3(black_box(m)));
        }
    }) * N as f64;
    let o64 = openssl_speed(&["-seconds", "1", "-bytes", "64", "-evp", "sm3"])
        .as_deref()
        .and_then(parse_evp)
        .map(|mb| mb * 1e6 / 64.0);
    let ours = rate(secs, || {
        black_box(hash::sm3(black_box(data)));
    }) * data.len() as f64
        / 1e6;
    let rc = rate(secs, || {
        black_box(sm3::Sm3::digest(black_box(data)));
    }) * data.len() as f64
        / 1e6;
    let rows = vec![
        Row {
            name: "SM3 64 B, batch",
            unit: "hash/s",
            ours: many,
            openssl: o64,
        },
        Row {
            name: "SM3 64 B, one each",
            unit: "hash/s",
            ours: one_by_one,
            openssl: o64,
        },
    ];
    let note = format!(
        "SM3 16 KiB reference: ukey {ours:.1} MB/s, RustCrypto sm3 {rc:.1} MB/s ({:.3}x)",
        ours / rc
    );
    (rows, note)
}

fn main() {
    let secs = 1.0;
    let mut rows = Vec::new();

    let msg = [0x5au8; 20];

    // ECDSA P-256 with SHA-256.
    let p256 = PrivateKey::generate(KeyAlg::EcP256).expect("P-256 key");
    let p256_pub = p256.public_key().expect("P-256 public key");
    let emech = SignMech::Ecdsa(HashAlg::Sha256);
    let esig = p256.sign(&emech, &msg).expect("P-256 sign");
    let p256_sign = rate(secs, || {
        black_box(p256.sign(&emech, black_box(&msg)).expect("sign"));
    });
    let p256_verify = rate(secs, || {
        p256_pub
            .verify(&emech, black_box(&msg), &esig)
            .expect("verify");
    });

    // SM3 over 16 KiB buffers.
    let data = vec![0xa5u8; BUF];
    let sm3 = rate(secs, || {
        black_box(hash::digest(HashAlg::Sm3, black_box(&data)));
    }) * BUF as f64
        / 1e6;

    // SM4, one streaming context fed 16 KiB at a time, through the default provider
    // (ukey-simd kernels) and through the RustCrypto reference (`REFERENCE_SM4`).
    let key = [0x11u8; 16];
    let iv = [0x22u8; 16];
    let sm4_rate = |p: &dyn SymProvider, mode: SymMode, dir: Direction| {
        let ivs: &[u8] = match mode {
            SymMode::Ecb => &[],
            SymMode::Gcm => &iv[..12],
            _ => &iv,
        };
        let mut c = p
            .cipher(SymAlg::Sm4, mode, dir, &key, ivs, &[])
            .expect("SM4 cipher");
        let mut out = Vec::with_capacity(BUF + 16);
        rate(secs, || {
            out.clear();
            c.update(black_box(&data), &mut out).expect("update");
            black_box(&out);
        }) * BUF as f64
            / 1e6
    };
    let fast = provider().sm4;
    let (enc, dec) = (Direction::Encrypt, Direction::Decrypt);
    let sm4_modes = [
        ("SM4-ECB", SymMode::Ecb, enc, "sm4-ecb", false),
        ("SM4-CTR", SymMode::Ctr, enc, "sm4-ctr", false),
        ("SM4-GCM enc", SymMode::Gcm, enc, "sm4-gcm", false),
        ("SM4-CBC dec", SymMode::Cbc, dec, "sm4-cbc", true),
        ("SM4-CBC enc", SymMode::Cbc, enc, "sm4-cbc", false),
    ];
    let sm4_rows: Vec<_> = sm4_modes
        .iter()
        .map(|&(name, mode, dir, o, odec)| {
            let ours = sm4_rate(fast, mode, dir);
            let reference = sm4_rate(REFERENCE_SM4, mode, dir);
            (name, ours, reference, o, odec)
        })
        .collect();
    // Multi-stream CBC encryption: 64 independent 16 KiB streams, one block of each
    // through the kernel at a time (figure per byte of all streams).
    let simd_key = Sm4Key::new(&key);
    let mut streams: Vec<([u8; 16], Vec<u8>)> = (0..64).map(|_| (iv, data.clone())).collect();
    let sm4_multi = rate(secs, || {
        let mut s: Vec<(&mut [u8; 16], &mut [u8])> =
            streams.iter_mut().map(|(i, d)| (i, &mut d[..])).collect();
        simd_key
            .cbc_encrypt_multi(&mut s)
            .expect("multi-stream CBC");
    }) * (64 * BUF) as f64
        / 1e6;

    // The same through `openssl speed`, in this run.
    let asym = openssl_speed(&["-seconds", "1", "sm2", "ecdsap256"]);
    let o_sm2 = asym.as_deref().and_then(|t| parse_sign_verify(t, "SM2"));
    let o_p256 = asym
        .as_deref()
        .and_then(|t| parse_sign_verify(t, "nistp256"));
    let evp = |alg: &str| {
        openssl_speed(&["-seconds", "1", "-bytes", "16384", "-evp", alg])
            .as_deref()
            .and_then(parse_evp)
    };

    rows.extend(sm2_rows(secs, o_sm2));
    rows.push(Row {
        name: "SM3 (16 KiB)",
        unit: "MB/s",
        ours: sm3,
        openssl: evp("sm3"),
    });
    let (sm3_extra, sm3_note) = sm3_rows(secs, &data);
    rows.extend(sm3_extra);
    let evp_dec = |alg: &str| {
        openssl_speed(&["-seconds", "1", "-bytes", "16384", "-decrypt", "-evp", alg])
            .as_deref()
            .and_then(parse_evp)
    };
    let mut o_cbc_enc = None;
    for (name, ours, reference, o, odec) in sm4_rows {
        let ossl = if odec { evp_dec(o) } else { evp(o) };
        if name == "SM4-CBC enc" {
            o_cbc_enc = ossl;
        }
        rows.push(Row {
            name,
            unit: "MB/s",
            ours,
            openssl: ossl,
        });
        rows.push(Row {
            name: Box::leak(format!("  (RustCrypto {name})").into_boxed_str()),
            unit: "MB/s",
            ours: reference,
            openssl: ossl,
        });
    }
    rows.push(Row {
        name: "SM4-CBC enc 64 streams",
        unit: "MB/s",
        ours: sm4_multi,
        openssl: o_cbc_enc,
    });
    rows.push(Row {
        name: "ECDSA P-256 sign",
        unit: "ops/s",
        ours: p256_sign,
        openssl: o_p256.map(|p| p.0),
    });
    rows.push(Row {
        name: "ECDSA P-256 verify",
        unit: "ops/s",
        ours: p256_verify,
        openssl: o_p256.map(|p| p.1),
    });

    println!(
        "{:<28} {:>6} {:>12} {:>12} {:>8}",
        "operation", "unit", "ukey", "openssl", "ratio"
    );
    for r in &rows {
        match r.openssl {
            Some(o) if o > 0.0 => println!(
                "{:<28} {:>6} {:>12.1} {:>12.1} {:>7.2}x",
                r.name,
                r.unit,
                r.ours,
                o,
                r.ours / o
            ),
            _ => println!(
                "{:<28} {:>6} {:>12.1} {:>12} {:>8}",
                r.name, r.unit, r.ours, "n/a", "-"
            ),
        }
    }
    println!("(ratio = ukey / openssl; openssl figures from `openssl speed` in this run)");
    println!("{sm3_note}");
    println!(
        "(SM4 kernels on CPU tier {}; cap it with UKEY_CPU_TIER)",
        ukey_simd::Tier::current().name()
    );
}

/// The SM2 rows: the default provider (fast SM2) and the portable RustCrypto reference,
/// over a 20-byte message with the default ID (sign = SM3(Z‖M) + sign with the key's
/// cached context), 32-byte encryption (C1C3C2) and key generation.
fn sm2_rows(secs: f64, openssl: Option<(f64, f64)>) -> Vec<Row> {
    let key = PrivateKey::generate(KeyAlg::Sm2).expect("SM2 key");
    let public = key.public_key().expect("SM2 public key");
    let reference = REFERENCE_SM2
        .load_private(KeyAlg::Sm2, &key.to_pkcs8_der())
        .expect("reference key");
    let mech = SignMech::Sm2Sm3 {
        id: DEFAULT_ID.to_vec(),
    };
    let msg = [0x5au8; 20];
    let secret = [0x33u8; 32];
    let sig = key.sign(&mech, &msg).expect("SM2 sign");
    let ct = public.encrypt(&EncMech::Sm2, &secret).expect("SM2 encrypt");

    let sign = rate(secs, || {
        black_box(key.sign(&mech, black_box(&msg)).expect("sign"));
    });
    let verify = rate(secs, || {
        public.verify(&mech, black_box(&msg), &sig).expect("verify");
    });
    let encrypt = rate(secs, || {
        black_box(
            public
                .encrypt(&EncMech::Sm2, black_box(&secret))
                .expect("encrypt"),
        );
    });
    let decrypt = rate(secs, || {
        black_box(key.decrypt(&EncMech::Sm2, black_box(&ct)).expect("decrypt"));
    });
    let keygen = rate(secs, || {
        black_box(PrivateKey::generate(KeyAlg::Sm2).expect("keygen"));
    });
    let ref_sign = rate(secs, || {
        black_box(reference.sign(&mech, black_box(&msg)).expect("sign"));
    });
    let ref_verify = rate(secs, || {
        REFERENCE_SM2
            .verify(&public, &mech, black_box(&msg), &sig)
            .expect("verify");
    });
    let ref_encrypt = rate(secs, || {
        black_box(
            REFERENCE_SM2
                .encrypt(&public, &EncMech::Sm2, black_box(&secret))
                .expect("encrypt"),
        );
    });
    let ref_decrypt = rate(secs, || {
        black_box(
            reference
                .decrypt(&EncMech::Sm2, black_box(&ct))
                .expect("decrypt"),
        );
    });
    let ref_keygen = rate(secs, || {
        let p8 = REFERENCE_SM2.generate(KeyAlg::Sm2).expect("keygen");
        black_box(REFERENCE_SM2.load_private(KeyAlg::Sm2, &p8).expect("load"));
    });
    let row = |name, ours, openssl| Row {
        name,
        unit: "ops/s",
        ours,
        openssl,
    };
    vec![
        row("SM2 sign (Z+SM3+sign)", sign, openssl.map(|p| p.0)),
        row("SM2 verify", verify, openssl.map(|p| p.1)),
        row("SM2 encrypt 32 B", encrypt, None),
        row("SM2 decrypt 32 B", decrypt, None),
        row("SM2 keygen", keygen, None),
        row("SM2 sign, RustCrypto ref", ref_sign, openssl.map(|p| p.0)),
        row(
            "SM2 verify, RustCrypto ref",
            ref_verify,
            openssl.map(|p| p.1),
        ),
        row("SM2 encrypt, RustCrypto ref", ref_encrypt, None),
        row("SM2 decrypt, RustCrypto ref", ref_decrypt, None),
        row("SM2 keygen, RustCrypto ref", ref_keygen, None),
    ]
}
