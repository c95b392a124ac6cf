//! SM2 ciphertexts in the GM/T 0009 DER form and as raw C1C3C2.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_hal::crypto::sm2;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = sm2::cipher_der_to_raw(data) {
        let der = sm2::cipher_raw_to_der(&raw).expect("re-encoding a parsed ciphertext");
        assert_eq!(sm2::cipher_der_to_raw(&der).expect("round trip"), raw);
    }
    let _ = sm2::cipher_raw_to_der(data);
});
