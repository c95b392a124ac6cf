//! CMS / GM/T 0010: SignedData verification (`cms::verify`, attached and detached, with
//! and without a trusted CA) and the streaming EnvelopedData decoder (`envelope::decrypt`,
//! PEM or DER/BER with indefinite lengths and constructed OCTET STRINGs).
//!
//! The envelope's key unwrap uses the fixture encryption key, so the seed envelopes decrypt
//! all the way and mutations reach the content decoder. Invariants: a verified message has
//! at least one signer; a decrypted envelope reports the bytes it wrote; when the first
//! byte asks for it, an envelope made by `envelope::encrypt` for the fixture certificate
//! decrypts back to the input.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use token_hal::crypto::{EncMech, PrivateKey, sm2};
use token_hal::model::KeyId;
use token_hal::tender::cms::{self, VerifyOptions};
use token_hal::tender::envelope::{self, EnvelopeInfo, KeyMatch, KeyUnwrap, MatchKind, Recipient};
use token_hal::{Error, Result};
use zeroize::Zeroizing;

const ENC_KEY: &[u8] = include_bytes!("../../tests/data/gm-interop/enc.key.pem");
const ENC_CERT: &[u8] = include_bytes!("../../tests/data/gm-interop/enc.cert.v1.pem");
const CA_CERT: &[u8] = include_bytes!("../../tests/data/gm-interop/ca.cert.pem");

fn enc_key() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| {
        PrivateKey::from_file_bytes(ENC_KEY, Some(b"vectorpass")).expect("fixture key")
    })
}

fn ca() -> &'static [Vec<u8>] {
    static CA: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CA.get_or_init(|| cms::read_ca_file(CA_CERT).expect("fixture CA"))
}

/// Opens the first recipient the fixture key opens; else hands out a fixed key, so the
/// content decoder still runs on mutated envelopes.
struct FixtureKey;

impl KeyUnwrap for FixtureKey {
    fn unwrap_key(&mut self, env: &EnvelopeInfo) -> Result<(Zeroizing<Vec<u8>>, KeyMatch)> {
        let found = |recipient: usize, how: MatchKind| KeyMatch {
            device: "fuzz".into(),
            token: "fuzz".into(),
            container: "fuzz".into(),
            key: KeyId(1),
            retired: false,
            how,
            recipient,
        };
        for (i, r) in env.recipients.iter().enumerate() {
            let raw = sm2::cipher_der_to_raw(&r.encrypted_key)
                .unwrap_or_else(|_| r.encrypted_key.clone());
            if let Ok(k) = enc_key().decrypt(&EncMech::Sm2, &raw)
                && k.len() == 16
            {
                return Ok((k, found(i, MatchKind::Trial)));
            }
        }
        if env.recipients.is_empty() {
            return Err(Error::invalid_data("no recipient"));
        }
        Ok((Zeroizing::new(vec![0x5a; 16]), found(0, MatchKind::Trial)))
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = cms::decode_input(data);
    if let Ok(v) = cms::verify(data, &VerifyOptions::default()) {
        assert!(
            !v.signers.is_empty(),
            "a SignedData verified without a signer"
        );
    }
    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let _ = cms::verify(
        data,
        &VerifyOptions {
            detached_content: Some(b"detached"),
            trust: Some(ca()),
            at: Some(at),
        },
    );
    let mut out = Vec::new();
    if let Ok(d) = envelope::decrypt(data, &mut out, &mut FixtureKey, &mut |_, _| {}) {
        assert_eq!(d.bytes, out.len() as u64);
        assert!(d.opened_by.recipient < d.recipients.max(1));
    }
    // Round trip: fuzz bytes as the content of a new envelope.
    if data.first() == Some(&b'R') && data.len() < 4096 {
        let rcpt = Recipient::from_cert_at(ENC_CERT, 1_800_000_000).expect("fixture cert");
        let mut env = Vec::new();
        let n = envelope::encrypt(
            &[rcpt],
            &data[1..],
            (data.len() - 1) as u64,
            &mut env,
            &mut |_, _| {},
        )
        .expect("encrypt");
        assert_eq!(n, env.len() as u64);
        let mut back = Vec::new();
        envelope::decrypt(&env[..], &mut back, &mut FixtureKey, &mut |_, _| {}).expect("decrypt");
        assert_eq!(back, &data[1..]);
    }
});
