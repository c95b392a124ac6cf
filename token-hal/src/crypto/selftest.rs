//! Power-on self-tests: small known-answer tests of every algorithm family, run once
//! per process before the libraries first use crypto. A failure is remembered; the
//! module then refuses crypto until it is reloaded.

use std::sync::OnceLock;

use crate::crypto::hash::{self, HashAlg};
use crate::crypto::keys::{EncMech, KeyAlg, PrivateKey, PublicKey, SignMech};
use crate::crypto::sm2;
use crate::crypto::sym::{self, SymAlg, SymMode};
use crate::error::{Error, Result};

/// The checks, by name.
pub const CASES: &[&str] = &[
    "SM3",
    "SM4",
    "SM2-verify",
    "SM2-decrypt",
    "AES",
    "SHA-256",
    "HMAC-SHA-256",
    "ECDSA-P256",
];

static OUTCOME: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Runs the self-tests once per process and returns their (cached) outcome.
pub fn run() -> Result<()> {
    OUTCOME
        .get_or_init(|| run_cases(None).map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::SelfTestFailed)
}

/// Test seam: runs every check with the expected value of `case` corrupted, so the
/// failure path can be exercised. Not cached; never compiled into the libraries.
#[cfg(any(test, feature = "test-seams"))]
pub fn run_with_corrupted_case(case: &str) -> Result<()> {
    run_cases(Some(case)).map_err(|e| Error::SelfTestFailed(e.to_string()))
}

fn hx(s: &str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|_| Error::internal("self-test vector"))
}

fn expect(name: &str, corrupt: Option<&str>, got: &[u8], want_hex: &str) -> Result<()> {
    let mut want = hx(want_hex)?;
    if corrupt == Some(name)
        && let Some(b) = want.first_mut()
    {
        *b ^= 1;
    }
    if got == want.as_slice() {
        Ok(())
    } else {
        Err(Error::internal(format!("{name} known-answer test failed")))
    }
}

fn run_cases(corrupt: Option<&str>) -> Result<()> {
    // SM3, GM/T 0004 example 1.
    expect(
        "SM3",
        corrupt,
        &hash::digest(HashAlg::Sm3, b"abc"),
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0",
    )?;
    // SM4, GM/T 0002 example 1.
    let k = hx("0123456789abcdeffedcba9876543210")?;
    let block: [u8; 16] = k
        .as_slice()
        .try_into()
        .map_err(|_| Error::internal("vector"))?;
    expect(
        "SM4",
        corrupt,
        &sym::sm4_ecb_encrypt_block(&k, &block)?,
        "681edf34d206965e86b3e94f536e4246",
    )?;

    // SM2, GM/T 0003.5 recommended-curve examples: verify the signature, decrypt the
    // ciphertext.
    let d = hx("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")?;
    let key = PrivateKey::from_sm2_scalar(&d)?;
    let pk = key.public_key()?;
    let mut sig = hx(
        "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3\
                      B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA",
    )?;
    if corrupt == Some("SM2-verify") {
        sig[0] ^= 1;
    }
    pk.verify(
        &SignMech::Sm2Sm3 {
            id: sm2::DEFAULT_ID.to_vec(),
        },
        b"message digest",
        &sig,
    )
    .map_err(|_| Error::internal("SM2-verify known-answer test failed"))?;
    let ct = hx("04\
        04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73\
        E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0\
        59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766\
        21886CA989CA9C7D58087307CA93092D651EFA")?;
    let pt = key
        .decrypt(&EncMech::Sm2, &ct)
        .map_err(|_| Error::internal("SM2-decrypt known-answer test failed"))?;
    expect(
        "SM2-decrypt",
        corrupt,
        &pt,
        "656e6372797074696f6e207374616e64617264",
    )?;

    // AES-128, FIPS-197 Appendix C.1.
    let ct = sym::encrypt(
        SymAlg::Aes,
        SymMode::Ecb,
        &hx("000102030405060708090a0b0c0d0e0f")?,
        &[],
        &hx("00112233445566778899aabbccddeeff")?,
    )?;
    expect("AES", corrupt, &ct, "69c4e0d86a7b0430d8cdb78070b4c55a")?;
    // SHA-256, FIPS 180-4; HMAC-SHA-256, RFC 4231 case 2.
    expect(
        "SHA-256",
        corrupt,
        &hash::digest(HashAlg::Sha256, b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    )?;
    expect(
        "HMAC-SHA-256",
        corrupt,
        &hash::hmac(HashAlg::Sha256, b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    )?;

    // ECDSA P-256: pairwise consistency of a fresh key (sign, verify, reject a change).
    let ec = PrivateKey::generate(KeyAlg::EcP256)?;
    let ec_pub: PublicKey = ec.public_key()?;
    let mech = SignMech::Ecdsa(HashAlg::Sha256);
    let mut s = ec.sign(&mech, b"self-test")?;
    if corrupt == Some("ECDSA-P256") {
        s[0] ^= 1;
    }
    ec_pub
        .verify(&mech, b"self-test", &s)
        .map_err(|_| Error::internal("ECDSA-P256 pairwise test failed"))?;
    if ec_pub.verify(&mech, b"self-tesT", &s).is_ok() {
        return Err(Error::internal("ECDSA-P256 accepted a wrong message"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_tests_pass_and_every_corrupted_case_fails() {
        run().unwrap();
        run().unwrap(); // cached
        for case in CASES {
            match run_with_corrupted_case(case) {
                Err(Error::SelfTestFailed(msg)) => assert!(msg.contains(case), "{case}: {msg}"),
                other => panic!("{case}: expected a self-test failure, got {other:?}"),
            }
        }
        run_with_corrupted_case("no such case").unwrap();
    }
}
