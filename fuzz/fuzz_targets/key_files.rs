//! Key and certificate files: PEM/DER PKCS#8 (encrypted too), SEC1, PKCS#1, SPKI, X.509.
//! Invariants: a key that imports exports to PKCS#8 that imports to the same key; an
//! encrypted PKCS#8 that decrypts holds a PrivateKeyInfo.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_hal::crypto::keyfile::decrypt_pkcs8;
use token_hal::crypto::{PrivateKey, PublicKey};

const PASSWORD: &[u8] = b"vectorpass";

fn check_round_trip(k: &PrivateKey) {
    let der = k.to_pkcs8_der();
    let again = PrivateKey::from_pkcs8_der(&der).expect("re-import of exported PKCS#8");
    assert_eq!(again.alg(), k.alg());
    assert_eq!(*again.to_pkcs8_der(), *der);
    if let (Ok(a), Ok(b)) = (k.public_key(), again.public_key()) {
        assert_eq!(a.spki_der(), b.spki_der());
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = PrivateKey::from_file_bytes(data, Some(PASSWORD)) {
        check_round_trip(&k);
    }
    if let Ok(k) = PrivateKey::from_file_bytes(data, None) {
        check_round_trip(&k);
    }
    if let Ok(plain) = decrypt_pkcs8(data, PASSWORD) {
        assert!(!plain.is_empty());
        let _ = PrivateKey::from_pkcs8_der(&plain);
    }
    let _ = PrivateKey::from_sec1_der(data);
    let _ = PrivateKey::from_pkcs1_der(data);
    if let Ok(p) = PublicKey::from_spki_der(data) {
        let again = PublicKey::from_spki_der(p.spki_der()).expect("SPKI round trip");
        assert_eq!(again.spki_der(), p.spki_der());
        assert_eq!(
            PublicKey::from_pem(&p.to_pem()).expect("PEM").spki_der(),
            p.spki_der()
        );
    }
    let _ = PublicKey::from_cert(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = PublicKey::from_pem(s);
    }
});
