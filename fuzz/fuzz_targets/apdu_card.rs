//! The virtual key against a hostile host: the input is a sequence of command APDUs
//! (`[u16 big-endian length][bytes]` blocks). Every answer must be a response APDU with a
//! status word; nothing may panic, whatever the chaining, GET RESPONSE or envelope bytes.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use token_hal::apdu::applet::VirtualKey;
use token_hal::apdu::transport::CardHandler;
use token_hal::soft::SoftOptions;

fn card() -> &'static Mutex<VirtualKey> {
    static CARD: OnceLock<Mutex<VirtualKey>> = OnceLock::new();
    CARD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ukey-fuzz-card-{}", std::process::id()));
        let opts = SoftOptions {
            kdf_iterations: 1000,
            ..SoftOptions::default()
        };
        Mutex::new(VirtualKey::open(&dir, "fuzz", &opts).expect("a virtual key"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut card) = card().lock() else { return };
    card.power_on();
    let mut rest = data;
    while let [a, b, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let r = card.process(&tail[..n]);
        assert!(r.len() >= 2, "a response without a status word");
        rest = &tail[n..];
    }
});
