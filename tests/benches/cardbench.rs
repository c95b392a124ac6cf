//! The virtual USB key through the real pcscd, next to the soft token, in one run:
//! - the APDU round trip through pcscd and vpcd (a SELECT of the ukey application, in
//!   clear, answered by `ukey sim`), in µs;
//! - SM2 signatures (SM3 with Z, default ID) with a container key, through token-hal's
//!   `Application` as the PKCS#11 and SKF faces use it: on the card (secure channel, PIN
//!   re-verified and LOGOUT per transaction) and on a soft token.
//!
//! `scripts/bench-card.sh` starts pcscd and the virtual key, makes the keys and runs this
//! (`cargo bench -p ukey-tests --bench cardbench`) with `UKEY_CONF` naming a config whose
//! data directory holds the soft token. Not a timed test: it prints figures.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use token_hal::apdu::command::Command;
use token_hal::apdu::exchange::{LinkCaps, exchange};
use token_hal::apdu::pcsc::{PcscTransport, readers};
use token_hal::apdu::sm::AID;
use token_hal::config::Config;
use token_hal::crypto::SignMech;
use token_hal::crypto::sm2::DEFAULT_ID;
use token_hal::registry::Registry;
use token_hal::{BackendKind, KeyRef, KeyUsage, Pin, PinType};

fn rate(secs: f64, mut f: impl FnMut()) -> (f64, u64) {
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs_f64(secs) {
        f();
        n += 1;
    }
    (n as f64 / t0.elapsed().as_secs_f64(), n)
}

fn main() {
    let secs: f64 = std::env::var("CARDBENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    // APDU round trip.
    let reader = readers()
        .unwrap()
        .into_iter()
        .find(|r| r.card_present)
        .expect("a reader with the virtual key (run scripts/bench-card.sh)");
    let t = PcscTransport::connect(&reader.name).unwrap();
    let select = Command::new(0x00, 0xA4, 0x04, 0x00)
        .with_data(AID.to_vec())
        .with_le(256);
    let answer = exchange(&t, LinkCaps::SHORT, &select).unwrap().data.len();
    let (per_s, n) = rate(secs, || {
        let r = exchange(&t, LinkCaps::SHORT, &select).unwrap();
        assert_eq!(r.sw.0, 0x9000);
    });
    drop(t);
    println!(
        "APDU round trip through pcscd (SELECT, {answer} B answer): {:.0} µs ({n} exchanges)",
        1e6 / per_s
    );

    // SM2 signatures: the card and the soft token, each through token-hal.
    let reg = Registry::new(Config::load().unwrap());
    let msg = vec![0x5Au8; 1000];
    let mech = SignMech::Sm2Sm3 {
        id: DEFAULT_ID.to_vec(),
    };
    let mut rows = Vec::new();
    for dev in reg.devices().unwrap() {
        let info = dev.info().unwrap();
        let app = dev.open_app("bench").unwrap();
        app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
        let key = KeyRef::active("c", KeyUsage::Sign);
        let pk = app.public_key("c", KeyUsage::Sign).unwrap();
        let sig = app.sign(&key, &mech, &msg).unwrap();
        pk.verify(&mech, &msg, &sig).unwrap();
        let (per_s, n) = rate(secs, || {
            app.sign(&key, &mech, &msg).unwrap();
        });
        let kind = match info.backend {
            BackendKind::Apdu => "virtual key through pcscd",
            BackendKind::Soft => "soft token",
            _ => "other",
        };
        rows.push((kind, per_s, n));
    }
    println!("SM2 sign (SM3 with Z, 1000-byte message), through token-hal's Application:");
    for (kind, per_s, n) in &rows {
        println!("  {kind:<28} {per_s:>10.0} signs/s ({n} signs)");
    }
    if let (Some(card), Some(soft)) = (
        rows.iter().find(|r| r.0.starts_with("virtual")),
        rows.iter().find(|r| r.0 == "soft token"),
    ) {
        println!("  card / soft = {:.3}", card.1 / soft.1);
    }
}
