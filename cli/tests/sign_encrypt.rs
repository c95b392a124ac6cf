//! `ukey sign`, `verify`, `encrypt`, `decrypt`, cross-checked with OpenSSL 3 and the GmSSL
//! vectors.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{Env, PIN, gm, openssl};

fn w(e: &Env) -> std::path::PathBuf {
    e.dir.path().join("work")
}

#[test]
fn sm2_sign_verifies_with_openssl_dgst() {
    let e = Env::new();
    e.sm2_container();
    e.write("file.txt", b"the bid, signed in the token\n");
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--container",
        "c",
        "file.txt",
        "-o",
        "sig.der",
    ]);
    e.ok(&["key", "pub", "--container", "c", "-o", "pub.pem"]);
    let v = openssl(
        &w(&e),
        &[
            "dgst",
            "-sm3",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "-sigopt",
            "distid:1234567812345678",
            "file.txt",
        ],
    );
    assert!(v.contains("Verified OK"), "{v}");
    // And with ukey, by public key and by certificate.
    assert!(
        e.ok(&["verify", "--pub", "pub.pem", "file.txt", "sig.der"])
            .contains("OK")
    );
    e.ok(&["cert", "export", "--container", "c", "-o", "c.pem"]);
    assert_eq!(
        e.json(&["verify", "--cert", "c.pem", "file.txt", "sig.der"])["valid"],
        true
    );

    // A tampered file fails, with one line naming the signature, non-zero exit.
    e.write("other.txt", b"the bid, changed\n");
    let err = e.fail(&["verify", "--pub", "pub.pem", "other.txt", "sig.der"]);
    assert!(
        err.contains("sig.der") && err.contains("does not verify"),
        "{err}"
    );
}

#[test]
fn sign_with_id_and_raw_format() {
    let e = Env::new();
    e.sm2_container();
    e.write("f", b"data");
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--container",
        "c",
        "--id",
        "alice@example",
        "--format",
        "raw",
        "f",
        "-o",
        "sig.raw",
    ]);
    assert_eq!(e.read("sig.raw").len(), 64);
    e.ok(&["key", "pub", "--container", "c", "-o", "pub.pem"]);
    e.ok(&[
        "verify",
        "--pub",
        "pub.pem",
        "--id",
        "alice@example",
        "f",
        "sig.raw",
    ]);
    // The default ID does not verify a signature made with another ID.
    e.fail(&["verify", "--pub", "pub.pem", "f", "sig.raw"]);
    // OpenSSL agrees once the raw signature is DER again (ukey sign --format der).
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--container",
        "c",
        "--id",
        "alice@example",
        "f",
        "-o",
        "sig.der",
    ]);
    let v = openssl(
        &w(&e),
        &[
            "dgst",
            "-sm3",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "-sigopt",
            "distid:alice@example",
            "f",
        ],
    );
    assert!(v.contains("Verified OK"), "{v}");
}

#[test]
fn ecdsa_and_rsa_sign_verify_with_openssl() {
    let e = Env::new();
    e.token("t");
    e.write("f", b"nist data");
    for (alg, c) in [("ec-p256", "ec"), ("rsa-2048", "rsa")] {
        e.ok(&[
            "--pin",
            PIN,
            "key",
            "gen",
            "--alg",
            alg,
            "--container",
            c,
            "--no-cert",
        ]);
        e.ok(&[
            "--pin",
            PIN,
            "sign",
            "--container",
            c,
            "f",
            "-o",
            &format!("{c}.sig"),
        ]);
        e.ok(&["key", "pub", "--container", c, "-o", &format!("{c}.pem")]);
        let v = openssl(
            &w(&e),
            &[
                "dgst",
                "-sha256",
                "-verify",
                &format!("{c}.pem"),
                "-signature",
                &format!("{c}.sig"),
                "f",
            ],
        );
        assert!(v.contains("Verified OK"), "{alg}: {v}");
        e.ok(&[
            "verify",
            "--pub",
            &format!("{c}.pem"),
            "f",
            &format!("{c}.sig"),
        ]);
    }
}

#[test]
fn verify_gmssl_signature() {
    let e = Env::new();
    e.ok(&[
        "verify",
        "--pub",
        gm("sign.pub.pem").to_str().unwrap(),
        gm("bid.txt").to_str().unwrap(),
        gm("bid.sm2sig.der").to_str().unwrap(),
    ]);
    e.ok(&[
        "verify",
        "--cert",
        gm("sign.cert.pem").to_str().unwrap(),
        gm("bid.txt").to_str().unwrap(),
        gm("bid.sm2sig.der").to_str().unwrap(),
    ]);
    let err = e.fail(&[
        "verify",
        "--pub",
        gm("enc.pub.pem").to_str().unwrap(),
        gm("bid.txt").to_str().unwrap(),
        gm("bid.sm2sig.der").to_str().unwrap(),
    ]);
    assert!(err.contains("does not verify"), "{err}");
    let err = e.fail(&["verify", "--pub", gm("bid.txt").to_str().unwrap(), "a", "b"]);
    assert!(err.contains("bid.txt"), "{err}");
}

#[test]
fn openssl_encrypted_data_decrypts_with_ukey() {
    let e = Env::new();
    e.token("t");
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "gen",
        "--alg",
        "sm2",
        "--container",
        "c",
        "--enc",
    ]);
    e.ok(&["key", "pub", "--container", "c", "--enc", "-o", "enc.pem"]);
    e.write("secret.txt", b"a 16-byte key!!!");
    openssl(
        &w(&e),
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "enc.pem",
            "-in",
            "secret.txt",
            "-out",
            "ct.der",
        ],
    );
    e.ok(&[
        "--pin",
        PIN,
        "decrypt",
        "--container",
        "c",
        "ct.der",
        "-o",
        "out.txt",
    ]);
    assert_eq!(e.read("out.txt"), b"a 16-byte key!!!");
}

#[test]
fn ukey_encrypt_writes_what_openssl_decrypts() {
    let e = Env::new();
    let w = w(&e);
    openssl(&w, &["genpkey", "-algorithm", "SM2", "-out", "k.pem"]);
    openssl(
        &w,
        &["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub.pem"],
    );
    e.write("m.txt", b"small data for SM2");
    e.ok(&["encrypt", "--pub", "k.pub.pem", "m.txt", "-o", "m.der"]);
    openssl(
        &w,
        &[
            "pkeyutl", "-decrypt", "-inkey", "k.pem", "-in", "m.der", "-out", "m.out",
        ],
    );
    assert_eq!(e.read("m.out"), b"small data for SM2");
    // To a certificate; the wrong kind of key is refused.
    let ct = e.json(&[
        "encrypt",
        "--cert",
        gm("enc.cert.v1.pem").to_str().unwrap(),
        "m.txt",
        "-o",
        "c.der",
    ]);
    assert!(ct["bytes"].as_u64().unwrap() > 96);
    openssl(
        &w,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.pem",
        ],
    );
    openssl(
        &w,
        &["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"],
    );
    let err = e.fail(&["encrypt", "--pub", "ec.pub.pem", "m.txt", "-o", "x"]);
    assert!(err.contains("cannot encrypt"), "{err}");
}

#[test]
fn decrypt_falls_back_to_the_signing_pair_with_a_notice() {
    let e = Env::new();
    e.sm2_container();
    e.ok(&["key", "pub", "--container", "c", "-o", "sign.pem"]);
    e.write("m", b"to the signing key");
    e.ok(&["encrypt", "--pub", "sign.pem", "m", "-o", "m.ct"]);
    let o = e.run(&[
        "--pin",
        PIN,
        "decrypt",
        "--container",
        "c",
        "m.ct",
        "-o",
        "m.out",
    ]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.stderr.contains("notice") && o.stderr.contains("signing"),
        "{}",
        o.stderr
    );
    assert_eq!(e.read("m.out"), b"to the signing key");
    // --enc forces the encryption pair, which is absent.
    let err = e.fail(&[
        "--pin",
        PIN,
        "decrypt",
        "--container",
        "c",
        "--enc",
        "m.ct",
        "-o",
        "x",
    ]);
    assert!(err.contains("no enc key pair"), "{err}");
    // With an encryption pair, --sign still forces the signing pair.
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "gen",
        "--alg",
        "sm2",
        "--container",
        "c",
        "--enc",
    ]);
    let err = e.fail(&[
        "--pin",
        PIN,
        "decrypt",
        "--container",
        "c",
        "m.ct",
        "-o",
        "x",
    ]);
    assert!(err.contains("m.ct"), "{err}");
    let o = e.run(&[
        "--pin",
        PIN,
        "decrypt",
        "--container",
        "c",
        "--sign",
        "m.ct",
        "-o",
        "m2.out",
    ]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(!o.stderr.contains("notice"));
    assert_eq!(e.read("m2.out"), b"to the signing key");
    // Garbage ciphertext: one line naming the file.
    e.write("junk", b"\x30\x03\x02\x01\x00");
    let err = e.fail(&[
        "--pin",
        PIN,
        "decrypt",
        "--container",
        "c",
        "junk",
        "-o",
        "x",
    ]);
    assert!(err.contains("junk"), "{err}");
}

#[test]
fn sign_and_decrypt_with_a_wrong_pin_name_the_retries() {
    let e = Env::new();
    e.sm2_container();
    e.write("f", b"x");
    let err = e.fail(&[
        "--pin",
        "111111",
        "sign",
        "--container",
        "c",
        "f",
        "-o",
        "s",
    ]);
    assert!(
        err.contains("incorrect PIN") && err.contains("4 retries left"),
        "{err}"
    );
    let o = e
        .cmd()
        .args(["decrypt", "--container", "c", "f", "-o", "s"])
        .env("UKEY_PIN", "222222")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("3 retries left"), "{err}");
    assert!(!e.path("s").exists());
    // No PIN and no terminal: a clear error, no prompt.
    let err = e.fail(&["sign", "--container", "c", "f", "-o", "s"]);
    assert!(err.contains("UKEY_PIN"), "{err}");
}
