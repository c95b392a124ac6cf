//! Signatures per second through a soft token, against the same key used directly:
//! what the token adds to each operation.
//!
//! `cargo run --release -p token-hal --example soft_sign_rate`

use std::time::{Duration, Instant};

use token_hal::crypto::{HashAlg, KeyAlg, PrivateKey, SignMech, sm2};
use token_hal::soft::{self, DEFAULT_DEV_AUTH_KEY, SoftOptions};
use token_hal::{AppParams, Device, KeyRef, KeyUsage, PinType};

fn rate(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_millis(700) {
        f();
        n += 1;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("ukey-sign-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let opts = SoftOptions {
        kdf_iterations: 1000,
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
    app.verify_pin(PinType::User, &"user-pin".into())?;
    let info = rate(|| {
        app.pin_info(PinType::User).ok();
    });
    let exists = rate(|| {
        let _ = path.exists();
    });
    println!("pin_info (one read transaction): {info:.0}/s; stat of the file: {exists:.0}/s");
    for (alg, mech) in [
        (KeyAlg::EcP256, SignMech::Ecdsa(HashAlg::Sha256)),
        (
            KeyAlg::Sm2,
            SignMech::Sm2Sm3 {
                id: sm2::DEFAULT_ID.to_vec(),
            },
        ),
        (KeyAlg::Rsa(2048), SignMech::RsaPkcs1(HashAlg::Sha256)),
    ] {
        let name = format!("{alg:?}");
        app.create_container(&name, None)?;
        let key = PrivateKey::generate(alg)?;
        app.import_key(&name, KeyUsage::Sign, &key, false)?;
        let direct = rate(|| {
            key.sign(&mech, b"hello").ok();
        });
        let r = KeyRef::active(&name, KeyUsage::Sign);
        let token = rate(|| {
            app.sign(&r, &mech, b"hello").ok();
        });
        println!(
            "{name:>10}: direct {direct:>9.0}/s, through the soft token {token:>9.0}/s ({:.0} us added)",
            (1.0 / token - 1.0 / direct) * 1e6
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
