//! PKCS#10 requests: `csr::verify` (PEM or DER, self-signature checked) and the RFC 4514
//! subject parser. Invariants: a request built for a parsed subject verifies and reports
//! that subject; a parsed subject prints to a string that parses back to it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use token_hal::crypto::{KeyAlg, PrivateKey};
use token_hal::tender::csr;

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(KeyAlg::Sm2).expect("an SM2 key"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = csr::verify(data) {
        assert!(s.public_key.spki_der().len() > 8);
        let _ = csr::parse_subject(&s.subject);
    }
    if data.len() < 256
        && let Ok(text) = std::str::from_utf8(data)
        && let Ok(name) = csr::parse_subject(text)
    {
        let printed = name.to_string();
        let again = csr::parse_subject(&printed).expect("a printed subject parses");
        assert_eq!(again.to_string(), printed);
        let k = key();
        let public = k.public_key().expect("public key");
        // Building may refuse a name DER cannot carry; what it builds must verify.
        if let Ok(der) = csr::build(&public, &name, |m, info| k.sign(m, info)) {
            let s = csr::verify(&der).expect("a request just built verifies");
            assert_eq!(s.subject, printed);
            let pem = csr::to_pem(&der).expect("PEM");
            assert_eq!(
                csr::verify(pem.as_bytes()).expect("PEM verifies").subject,
                printed
            );
        }
    }
});
