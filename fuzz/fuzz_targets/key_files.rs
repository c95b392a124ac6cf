//! Key and certificate files: PEM/DER PKCS#8 (encrypted too), SEC1, PKCS#1, SPKI, X.509.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_hal::crypto::{PrivateKey, PublicKey};

fuzz_target!(|data: &[u8]| {
    let _ = PrivateKey::from_file_bytes(data, Some(b"vectorpass"));
    let _ = PrivateKey::from_file_bytes(data, None);
    let _ = PublicKey::from_spki_der(data);
    let _ = PublicKey::from_cert(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = PublicKey::from_pem(s);
    }
});
