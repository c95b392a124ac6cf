//! Power-on self-tests: small known-answer tests of every algorithm family, run once
//! per process before the libraries first use crypto (PKCS#11 `C_Initialize`, the first
//! SKF call). A failure is remembered; the module then refuses crypto until it is reloaded.
//!
//! Deterministic algorithms are checked against published vectors; SM2 and ECDSA, whose
//! signatures and SM2 ciphertexts are randomised, get a known-answer test of the
//! deterministic half (verify, decrypt) plus a pairwise test of the other half.

use std::sync::OnceLock;

use crate::crypto::hash::{self, HashAlg};
use crate::crypto::keys::{EncMech, KeyAlg, PrivateKey, PublicKey, SignMech};
use crate::crypto::sm2;
use crate::crypto::sym::{self, SymAlg, SymMode};
use crate::error::{Error, Result};

/// The checks, by name.
pub const CASES: &[&str] = &[
    "SM3",
    "SM4-ECB",
    "SM4-CBC",
    "SM2-verify",
    "SM2-sign",
    "SM2-decrypt",
    "SM2-encrypt",
    "AES",
    "SHA-256",
    "SHA-512",
    "HMAC-SHA-256",
    "ECDSA-P256",
    "RSA",
    "Ed25519",
];

static OUTCOME: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Runs the self-tests once per process and returns their (cached) outcome. A failure
/// is logged once, at error level.
pub fn run() -> Result<()> {
    OUTCOME
        .get_or_init(|| {
            let r = run_cases(seam::corrupted()).map_err(|e| e.to_string());
            if let Err(e) = &r {
                tracing::error!(error = %e, "self-test failed: crypto is disabled");
            }
            r
        })
        .clone()
        .map_err(Error::SelfTestFailed)
}

/// Whether the self-tests have run and failed: the cheap check the libraries make on
/// each call (it never runs them; [`run`] does, once the library has set up its log).
pub fn failed() -> bool {
    matches!(OUTCOME.get(), Some(Err(_)))
}

/// Test seam: runs every check with the expected value of `case` corrupted, so the
/// failure path can be exercised. Not cached; never compiled into the libraries.
#[cfg(any(test, feature = "test-seams"))]
pub fn run_with_corrupted_case(case: &str) -> Result<()> {
    run_cases(Some(case)).map_err(|e| Error::SelfTestFailed(e.to_string()))
}

/// Test seam: makes the process's (first, cached) self-test run with `case` corrupted,
/// so the libraries' error state can be tested end to end through their C faces. Call
/// it before the library's first use; it returns false if the self-tests already ran.
/// Only a Rust caller compiled with feature `test-seams` can reach it: no environment
/// variable or C entry point turns it on.
#[cfg(any(test, feature = "test-seams"))]
pub fn fail_before_first_use(case: &'static str) -> bool {
    seam::CORRUPT.set(case).is_ok() && OUTCOME.get().is_none()
}

#[cfg(any(test, feature = "test-seams"))]
mod seam {
    pub(super) static CORRUPT: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    pub(super) fn corrupted() -> Option<&'static str> {
        CORRUPT.get().copied()
    }
}

#[cfg(not(any(test, feature = "test-seams")))]
mod seam {
    pub(super) fn corrupted() -> Option<&'static str> {
        None
    }
}

fn hx(s: &str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|_| Error::internal("self-test vector"))
}

fn kat_failed(name: &str) -> Error {
    Error::internal(format!("{name} known-answer test failed"))
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
        Err(kat_failed(name))
    }
}

/// Flips a bit of `v` when `name` is the corrupted case.
fn maybe_corrupt(name: &str, corrupt: Option<&str>, v: &mut [u8]) {
    if corrupt == Some(name)
        && let Some(b) = v.first_mut()
    {
        *b ^= 1;
    }
}

/// An RSA-1024 key (PKCS#8) made for this test with OpenSSL, and its PKCS#1 v1.5
/// SHA-256 signature of "self-test" (`openssl dgst -sha256 -sign`).
const RSA_PKCS8: &str = concat!(
    "30820275020100300d06092a864886f70d01010105000482025f3082025b02010002818100d851f1268827a8c928b85d",
    "19a44db99b022663d82b1fee31dde212fdce657a7a4192dfad2afb2c631a2055b30c41a59651391cbbb2403817761d3a",
    "4ce70e78f7982a97aab6bd100ab438dbe1718f7efbdcf2d1807f919de85642bcafc8aef9efaa2794e2c38785cf9f7ca7",
    "edb0e297d4126889d9556c01d1555a77583cd64623020301000102818066b2f07444abdf7c3132e630684ae6556b3de2",
    "a51c443a87be39b89e7ac0bed7100eb4d6b7d32b8d9937c4b80e97940fbb5c0c02286c48b50ac4718b551f0fda4c7b2a",
    "04e97ad435105306c14d563de182f91a25129077c9dc8704b48172c51c54afcf67be1f9a4035cd32968a06e7fb27e027",
    "b14dfea5bc5d690169a088dc41024100fd603537e089312e68e9d318eff8ec5a8493cd3c5361a0ed285cc4b14b735046",
    "3868b8fcdec3db5871232e3822bc641d69705204820e66701dfd0f446dae3451024100da8f7c5d9487c7c1fa2e8ac36f",
    "e6f2cc848871552a59240b4967a5318015f98b7af5a392fa46f64f9f0f138e0e862795d0d8e3e116706afdee1c122c82",
    "6fba3302404c23d31a3d813ca443a6b066f806079093f28e6428725817ac5f64441af6461333f45452b8e6864da781f8",
    "eba9948f493f5c1f697763b868ccba35124d1b6261024079bce270dd82a3e99008cc91ff8a8c430eaf513136dd600e49",
    "5cc9cec0a17cd60c2f36656fb2870fe270eb5b7d0b8c910e3b40f2e724c6f399e558da21ed49b102400aa6b123a70667",
    "3d1563ca45638371ec1b517caa5ca69a034a4c079eede0ed1db88adbf099ae4556c670c1c11ed174c8e93627d8aeb133",
    "47ed1f21e224e92c19",
);
const RSA_SIG: &str = "0bb4334b67f5644fc746dc16a74e133895bb540de989add812207b7f2bc991b0\
    e5283ef9598c3e56a990945a4f368a76ab1939a3c97604afd4eac274670cc8640ef02d34276f14378b01cc7f\
    6511c8e520e7145e88f7a7d3a23a3858b6e60dce88480489cecaeaf8b14a526eedf61412f839bb535c9745d1\
    1eb8a8cd7877ac05";

fn run_cases(corrupt: Option<&str>) -> Result<()> {
    // SM3, GM/T 0004 example 1.
    expect(
        "SM3",
        corrupt,
        &hash::digest(HashAlg::Sm3, b"abc"),
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0",
    )?;
    // SM4, GM/T 0002 example 1 (ECB), and CBC over two blocks (OpenSSL `sm4-cbc`).
    let k = hx("0123456789abcdeffedcba9876543210")?;
    let block: [u8; 16] = k
        .as_slice()
        .try_into()
        .map_err(|_| Error::internal("vector"))?;
    expect(
        "SM4-ECB",
        corrupt,
        &sym::sm4_ecb_encrypt_block(&k, &block)?,
        "681edf34d206965e86b3e94f536e4246",
    )?;
    let two = [k.as_slice(), k.as_slice()].concat();
    let iv = hx("000102030405060708090a0b0c0d0e0f")?;
    expect(
        "SM4-CBC",
        corrupt,
        &sym::encrypt(SymAlg::Sm4, SymMode::Cbc, &k, &iv, &two)?,
        "a9a268883a336315bac0c9c9ff350ab1b236a4a85616d4aabf0a83555c7d4115",
    )?;

    // SM2, GM/T 0003.5 recommended-curve examples: verify the signature, decrypt the
    // ciphertext; then a pairwise sign/verify and encrypt/decrypt with the same key.
    let d = hx("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")?;
    let key = PrivateKey::from_sm2_scalar(&d)?;
    let pk = key.public_key()?;
    let sm2_mech = SignMech::Sm2Sm3 {
        id: sm2::DEFAULT_ID.to_vec(),
    };
    let mut sig = hx(
        "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3\
                      B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA",
    )?;
    maybe_corrupt("SM2-verify", corrupt, &mut sig);
    pk.verify(&sm2_mech, b"message digest", &sig)
        .map_err(|_| kat_failed("SM2-verify"))?;
    let mut s = key.sign(&sm2_mech, b"self-test")?;
    maybe_corrupt("SM2-sign", corrupt, &mut s);
    pk.verify(&sm2_mech, b"self-test", &s)
        .map_err(|_| kat_failed("SM2-sign"))?;
    if pk.verify(&sm2_mech, b"self-tesT", &s).is_ok() {
        return Err(kat_failed("SM2-sign"));
    }
    let ct = hx("04\
        04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73\
        E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0\
        59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766\
        21886CA989CA9C7D58087307CA93092D651EFA")?;
    let pt = key
        .decrypt(&EncMech::Sm2, &ct)
        .map_err(|_| kat_failed("SM2-decrypt"))?;
    expect(
        "SM2-decrypt",
        corrupt,
        &pt,
        "656e6372797074696f6e207374616e64617264",
    )?;
    let mut ct = pk.encrypt(&EncMech::Sm2, b"self-test")?;
    if ct.len() > 100 {
        // Corrupt C2, which the C3 hash then rejects.
        maybe_corrupt("SM2-encrypt", corrupt, &mut ct[97..]);
    }
    match key.decrypt(&EncMech::Sm2, &ct) {
        Ok(pt) if pt.as_slice() == b"self-test" => {}
        _ => return Err(kat_failed("SM2-encrypt")),
    }

    // AES-128, FIPS-197 Appendix C.1.
    let ct = sym::encrypt(
        SymAlg::Aes,
        SymMode::Ecb,
        &hx("000102030405060708090a0b0c0d0e0f")?,
        &[],
        &hx("00112233445566778899aabbccddeeff")?,
    )?;
    expect("AES", corrupt, &ct, "69c4e0d86a7b0430d8cdb78070b4c55a")?;
    // SHA-256 and SHA-512, FIPS 180-4; HMAC-SHA-256, RFC 4231 case 2.
    expect(
        "SHA-256",
        corrupt,
        &hash::digest(HashAlg::Sha256, b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    )?;
    expect(
        "SHA-512",
        corrupt,
        &hash::digest(HashAlg::Sha512, b"abc"),
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
         2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
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
    maybe_corrupt("ECDSA-P256", corrupt, &mut s);
    ec_pub
        .verify(&mech, b"self-test", &s)
        .map_err(|_| Error::internal("ECDSA-P256 pairwise test failed"))?;
    if ec_pub.verify(&mech, b"self-tesT", &s).is_ok() {
        return Err(Error::internal("ECDSA-P256 accepted a wrong message"));
    }

    // RSA PKCS#1 v1.5 with SHA-256 (deterministic): sign against the known signature,
    // then verify it.
    let rsa = PrivateKey::from_pkcs8_der(&hx(RSA_PKCS8)?)?;
    let rsa_mech = SignMech::RsaPkcs1(HashAlg::Sha256);
    expect("RSA", corrupt, &rsa.sign(&rsa_mech, b"self-test")?, RSA_SIG)?;
    rsa.public_key()?
        .verify(&rsa_mech, b"self-test", &hx(RSA_SIG)?)
        .map_err(|_| kat_failed("RSA"))?;

    // Ed25519, RFC 8032 §7.1 test 1 (empty message): sign, then verify.
    let ed = PrivateKey::from_raw_private(
        KeyAlg::Ed25519,
        &hx("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")?,
    )?;
    let ed_mech = SignMech::EdDsa {
        ph: false,
        context: None,
    };
    let ed_sig = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac\
                  c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    expect("Ed25519", corrupt, &ed.sign(&ed_mech, b"")?, ed_sig)?;
    ed.public_key()?
        .verify(&ed_mech, b"", &hx(ed_sig)?)
        .map_err(|_| kat_failed("Ed25519"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_tests_pass_and_every_corrupted_case_fails() {
        run().unwrap();
        run().unwrap(); // cached
        assert!(!failed());
        for case in CASES {
            match run_with_corrupted_case(case) {
                Err(Error::SelfTestFailed(msg)) => assert!(msg.contains(case), "{case}: {msg}"),
                other => panic!("{case}: expected a self-test failure, got {other:?}"),
            }
        }
        run_with_corrupted_case("no such case").unwrap();
        // Too late: the outcome is cached.
        assert!(!fail_before_first_use("SM3"));
    }
}
