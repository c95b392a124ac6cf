//! Interop with GmSSL 3.3 (the vectors in tests/data/gm-interop, made outside ukey) and
//! with OpenSSL 3 (run as a subprocess when `openssl` is installed).

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::{Path, PathBuf};
use std::process::Command;

use token_hal::Error;
use token_hal::crypto::sm2::{self, DEFAULT_ID};
use token_hal::crypto::{EncMech, KeyAlg, PrivateKey, PublicKey, SignMech, sig};

const PASSWORD: &[u8] = b"vectorpass";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/gm-interop")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(vectors().join(name)).unwrap()
}

fn read_str(name: &str) -> String {
    String::from_utf8(read(name)).unwrap()
}

fn sm3_mech() -> SignMech {
    SignMech::Sm2Sm3 {
        id: DEFAULT_ID.to_vec(),
    }
}

#[test]
fn gmssl_signature_verifies_with_sign_pub() {
    let pk = PublicKey::from_pem(&read_str("sign.pub.pem")).unwrap();
    assert_eq!(pk.alg(), KeyAlg::Sm2);
    let raw = sig::der_to_raw(&read("bid.sm2sig.der"), 32).unwrap();
    pk.verify(&sm3_mech(), &read("bid.txt"), &raw).unwrap();
    let mut other = read("bid.txt");
    other.push(b'\n');
    assert!(matches!(
        pk.verify(&sm3_mech(), &other, &raw),
        Err(Error::SignatureInvalid)
    ));
}

#[test]
fn gmssl_session_key_decrypts_with_enc_key() {
    let key = PrivateKey::from_file_bytes(&read("enc.key.pem"), Some(PASSWORD)).unwrap();
    let raw = sm2::cipher_der_to_raw(&read("sessionkey.sm2enc.der")).unwrap();
    let pt = key.decrypt(&EncMech::Sm2, &raw).unwrap();
    assert_eq!(&pt[..], &read("sessionkey.bin")[..]);
    // The DER form round-trips byte for byte.
    assert_eq!(
        sm2::cipher_raw_to_der(&raw).unwrap(),
        read("sessionkey.sm2enc.der")
    );
}

#[test]
fn gmssl_encrypted_keys_import_and_match_their_public_keys() {
    for (key, public) in [
        ("sign.key.pem", "sign.pub.pem"),
        ("enc.key.pem", "enc.pub.pem"),
    ] {
        let k = PrivateKey::from_file_bytes(&read(key), Some(PASSWORD)).unwrap();
        assert_eq!(k.alg(), KeyAlg::Sm2);
        let want = PublicKey::from_pem(&read_str(public)).unwrap();
        assert_eq!(k.public_key().unwrap(), want, "{key}");
    }
}

#[test]
fn gmssl_encrypted_key_wrong_or_missing_password() {
    let pem = read("sign.key.pem");
    assert!(matches!(
        PrivateKey::from_file_bytes(&pem, Some(b"wrongpass")),
        Err(Error::WrongPassword)
    ));
    assert!(matches!(
        PrivateKey::from_file_bytes(&pem, None),
        Err(Error::InvalidArgument(_))
    ));
    // Truncated PEM and garbage are InvalidData, not panics.
    let cut = &pem[..pem.len() / 2];
    assert!(matches!(
        PrivateKey::from_file_bytes(cut, Some(PASSWORD)),
        Err(Error::InvalidData(_))
    ));
    assert!(matches!(
        PrivateKey::from_file_bytes(b"\x30\x03\x02\x01", Some(PASSWORD)),
        Err(Error::InvalidData(_))
    ));
}

#[test]
fn certificate_public_keys_match() {
    let sign_pub = PublicKey::from_pem(&read_str("sign.pub.pem")).unwrap();
    let enc_pub = PublicKey::from_pem(&read_str("enc.pub.pem")).unwrap();
    assert_eq!(
        PublicKey::from_cert(&read("sign.cert.pem")).unwrap(),
        sign_pub
    );
    assert_eq!(
        PublicKey::from_cert(&read("enc.cert.v1.pem")).unwrap(),
        enc_pub
    );
    assert_eq!(
        PublicKey::from_cert(&read("enc.cert.v2-renewed.pem")).unwrap(),
        enc_pub
    );
}

#[test]
fn reencrypted_key_reads_back() {
    let k = PrivateKey::from_file_bytes(&read("sign.key.pem"), Some(PASSWORD)).unwrap();
    let pem = k.to_encrypted_pkcs8_pem(b"another pass").unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let back = PrivateKey::from_file_bytes(pem.as_bytes(), Some(b"another pass")).unwrap();
    assert_eq!(back.public_key().unwrap(), k.public_key().unwrap());
    assert!(matches!(
        PrivateKey::from_file_bytes(pem.as_bytes(), Some(PASSWORD)),
        Err(Error::WrongPassword)
    ));
}

// ---- OpenSSL 3 ----

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn openssl_verifies_our_sm2_signature() {
    if !openssl_available() {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let data = b"tender document, final version\n".repeat(100);
    let raw = key.sign(&sm3_mech(), &data).unwrap();
    std::fs::write(
        dir.path().join("pub.pem"),
        key.public_key().unwrap().to_pem(),
    )
    .unwrap();
    std::fs::write(dir.path().join("sig.der"), sig::raw_to_der(&raw).unwrap()).unwrap();
    std::fs::write(dir.path().join("file"), &data).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "dgst",
            "-sm3",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
        ])
        .args(["-sigopt", "distid:1234567812345678", "file"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
}

#[test]
fn openssl_sm2_ciphertext_decrypts() {
    if !openssl_available() {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    std::fs::write(
        dir.path().join("pub.pem"),
        key.public_key().unwrap().to_pem(),
    )
    .unwrap();
    std::fs::write(dir.path().join("msg"), b"0123456789abcdef session key").unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-in", "msg", "-out", "ct",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let der = std::fs::read(dir.path().join("ct")).unwrap();
    let raw = sm2::cipher_der_to_raw(&der).unwrap();
    let pt = key.decrypt(&EncMech::Sm2, &raw).unwrap();
    assert_eq!(&pt[..], b"0123456789abcdef session key");
}

#[test]
fn openssl_reads_our_sm2_private_key_pkcs8() {
    if !openssl_available() {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let pem = pem_of(&key.to_pkcs8_der());
    std::fs::write(dir.path().join("key.pem"), pem).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args(["pkey", "-in", "key.pem", "-pubout"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pk = PublicKey::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(pk, key.public_key().unwrap());
}

fn pem_of(der: &[u8]) -> String {
    pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, der).unwrap()
}

#[test]
fn openssl_sec1_and_pkcs1_key_files_import() {
    if !openssl_available() {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for (curve, alg) in [("SM2", KeyAlg::Sm2), ("prime256v1", KeyAlg::EcP256)] {
        run(&["ecparam", "-name", curve, "-genkey", "-out", "ec.pem"]);
        run(&["ec", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"]);
        let k =
            PrivateKey::from_file_bytes(&std::fs::read(dir.path().join("ec.pem")).unwrap(), None)
                .unwrap();
        assert_eq!(k.alg(), alg);
        let want =
            PublicKey::from_pem(&std::fs::read_to_string(dir.path().join("ec.pub.pem")).unwrap())
                .unwrap();
        assert_eq!(k.public_key().unwrap(), want);
    }
    run(&["genrsa", "-traditional", "-out", "rsa.pem", "2048"]);
    run(&["rsa", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub.pem"]);
    let pem = std::fs::read(dir.path().join("rsa.pem")).unwrap();
    assert!(pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
    let k = PrivateKey::from_file_bytes(&pem, None).unwrap();
    assert_eq!(k.alg(), KeyAlg::Rsa(2048));
    let want =
        PublicKey::from_pem(&std::fs::read_to_string(dir.path().join("rsa.pub.pem")).unwrap())
            .unwrap();
    assert_eq!(k.public_key().unwrap(), want);
    // An RSA-PKCS#1 signature of ours verifies with OpenSSL.
    let data = b"bid";
    std::fs::write(dir.path().join("data"), data).unwrap();
    let sig = k
        .sign(
            &SignMech::RsaPkcs1(token_hal::crypto::HashAlg::Sha256),
            data,
        )
        .unwrap();
    std::fs::write(dir.path().join("sig"), sig).unwrap();
    run(&[
        "dgst",
        "-sha256",
        "-verify",
        "rsa.pub.pem",
        "-signature",
        "sig",
        "data",
    ]);
}
