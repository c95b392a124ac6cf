//! X.509 certificates: `cert::parse` (PEM or DER), `cert::summarize` (what `cert show` and
//! the CA clients print), the public key, the envelope recipient checks and a CA bundle.
//! Invariants: what `parse` accepts it returns as DER that parses to itself, also through
//! PEM; a summary's key algorithm is the one `public_key` finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_hal::cert;
use token_hal::crypto::PublicKey;
use token_hal::tender::{cms, envelope};

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = cert::parse(data) {
        assert_eq!(cert::parse(&der).expect("parse of a parsed DER"), der);
        let pem = cert::to_pem(&der).expect("PEM of a certificate");
        assert_eq!(cert::parse(pem.as_bytes()).expect("PEM round trip"), der);
        let _ = cert::summarize(&der);
    }
    if let Ok(s) = cert::summarize(data) {
        match cert::public_key(data) {
            Ok(k) => assert_eq!(s.public_key, Some(k.alg())),
            Err(_) => assert_eq!(s.public_key, None),
        }
        assert!(!s.serial.is_empty());
        if s.self_issued {
            assert_eq!(s.subject, s.issuer, "equal names that print differently");
        }
    }
    let _ = PublicKey::from_cert(data);
    let _ = envelope::recipient_id_of_cert(data);
    let _ = envelope::Recipient::from_cert_at(data, 1_800_000_000);
    if let Ok(certs) = cms::read_ca_file(data) {
        for c in &certs {
            assert!(
                cert::parse(c).is_ok(),
                "a CA file entry that is not a certificate"
            );
        }
    }
});
