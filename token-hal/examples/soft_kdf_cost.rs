//! Measures what a soft-token PIN costs: PBKDF2-HMAC-SM3 at the configured iteration
//! count, and a whole `verify_pin` on a fresh token.
//!
//! `cargo run --release -p token-hal --example soft_kdf_cost [ITERATIONS]`

use std::time::{Duration, Instant};

use token_hal::config::DEFAULT_KDF_ITERATIONS;
use token_hal::crypto::HashAlg;
use token_hal::crypto::kdf::pbkdf2;
use token_hal::soft::{self, DEFAULT_DEV_AUTH_KEY, SoftOptions};
use token_hal::{AppParams, Device, PinType};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => DEFAULT_KDF_ITERATIONS,
    };
    let runs = 5;
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        let _ = pbkdf2(HashAlg::Sm3, b"123456", &[7u8; 16], iterations, 32)?;
        best = best.min(t.elapsed());
    }
    println!(
        "PBKDF2-HMAC-SM3, {iterations} iterations: {:.1} ms (best of {runs})",
        best.as_secs_f64() * 1e3
    );

    let dir = tempfile_dir()?;
    let opts = SoftOptions {
        kdf_iterations: iterations,
        ..SoftOptions::default()
    };
    let path = soft::create_soft_device(&dir, "bench", &opts)?;
    let dev = soft::open_soft_device_with(&path, &opts)?;
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY)?;
    dev.create_app(
        "app",
        &AppParams::new("admin-pin".into(), Some("user-pin".into())),
    )?;
    let app = dev.open_app("app")?;
    let t = Instant::now();
    app.verify_pin(PinType::User, &"user-pin".into())?;
    println!(
        "verify_pin on a soft token: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let wrong = app.verify_pin(PinType::User, &"wrong-pin".into());
    println!(
        "wrong PIN: {:.1} ms ({})",
        t.elapsed().as_secs_f64() * 1e3,
        wrong.err().map(|e| e.to_string()).unwrap_or_default()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ukey-kdf-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
