//! `ukey key` and `ukey cert`: generation with self-signed certificates (checked by
//! OpenSSL), public keys, imports of the GM interop keys, certificate history, rekeying.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{Env, PIN, gm, hex_of, openssl};

fn workdir(e: &Env) -> std::path::PathBuf {
    e.dir.path().join("work")
}

/// `key gen` stores a self-signed certificate that OpenSSL verifies, with the right
/// signature algorithm and key usage.
fn gen_and_verify(alg: &str, enc: bool, sig_alg: &str, usage_word: &str) {
    let e = Env::new();
    e.token("t");
    let mut args = vec!["--pin", PIN, "key", "gen", "--alg", alg, "--container", "c"];
    if enc {
        args.push("--enc");
    }
    let out = e.ok(&args);
    assert!(out.contains("self-signed certificate"), "{out}");
    let mut exp = vec!["cert", "export", "--container", "c", "-o", "c.pem"];
    if enc {
        exp.push("--enc");
    }
    e.ok(&exp);
    let w = workdir(&e);
    let text = openssl(&w, &["x509", "-in", "c.pem", "-noout", "-text"]);
    assert!(text.contains(sig_alg), "{text}");
    assert!(text.contains(usage_word), "{text}");
    if alg == "sm2" {
        let v = openssl(
            &w,
            &[
                "verify",
                "-vfyopt",
                "distid:1234567812345678",
                "-CAfile",
                "c.pem",
                "c.pem",
            ],
        );
        assert!(v.contains("c.pem: OK"), "{v}");
    } else {
        let v = openssl(&w, &["verify", "-CAfile", "c.pem", "c.pem"]);
        assert!(v.contains("c.pem: OK"), "{v}");
    }
    // The certificate's key is the container's key.
    let mut pubargs = vec!["key", "pub", "--container", "c", "-o", "pub.pem"];
    if enc {
        pubargs.push("--enc");
    }
    e.ok(&pubargs);
    let from_cert = openssl(&w, &["x509", "-in", "c.pem", "-noout", "-pubkey"]);
    let pem = String::from_utf8(e.read("pub.pem")).unwrap();
    assert_eq!(from_cert.trim(), pem.trim());
}

#[test]
fn key_gen_sm2_sign_cert_verifies_with_openssl() {
    gen_and_verify(
        "sm2",
        false,
        "SM2-with-SM3",
        "Digital Signature, Non Repudiation",
    );
}

#[test]
fn key_gen_sm2_enc_cert_verifies_with_openssl() {
    gen_and_verify(
        "sm2",
        true,
        "SM2-with-SM3",
        "Key Encipherment, Data Encipherment, Key Agreement",
    );
}

#[test]
fn key_gen_ec_certs_verify_with_openssl() {
    gen_and_verify("ec-p256", false, "ecdsa-with-SHA256", "Digital Signature");
    gen_and_verify("ec-p384", true, "ecdsa-with-SHA384", "Key Encipherment");
}

#[test]
fn key_gen_rsa_certs_verify_with_openssl() {
    gen_and_verify(
        "rsa-2048",
        false,
        "sha256WithRSAEncryption",
        "Digital Signature",
    );
}

#[test]
fn key_gen_rsa_3072_and_4096() {
    let e = Env::new();
    e.token("t");
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "gen",
        "--alg",
        "rsa-3072",
        "--container",
        "r3",
        "--no-cert",
    ]);
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "gen",
        "--alg",
        "rsa-4096",
        "--container",
        "r4",
    ]);
    let list = e.json(&["container", "list"]);
    let r3 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "r3")
        .unwrap();
    assert_eq!(r3["sign"]["alg"], "RSA 3072");
    assert_eq!(r3["sign"]["has_current_cert"], false);
    let s = e.json(&["cert", "show", "--container", "r4"]);
    assert_eq!(s["public_key_alg"], "RSA 4096");
}

#[test]
fn key_gen_no_cert_rekey_and_errors() {
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
        "--no-cert",
    ]);
    let err = e.fail(&["cert", "export", "--container", "c"]);
    assert!(err.contains("no certificate"), "{err}");
    // The signing pair exists: a second one needs --rekey.
    let err = e.fail(&[
        "--pin",
        PIN,
        "key",
        "gen",
        "--alg",
        "sm2",
        "--container",
        "c",
    ]);
    assert!(err.contains("exists"), "{err}");
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "gen",
        "--alg",
        "sm2",
        "--container",
        "c",
        "--rekey",
    ]);
    // --container is required for key gen; a wrong PIN changes nothing.
    let err = e.fail(&["--pin", PIN, "key", "gen", "--alg", "sm2"]);
    assert!(err.contains("--container"), "{err}");
    let err = e.fail(&[
        "--pin",
        "000000",
        "key",
        "gen",
        "--alg",
        "sm2",
        "--container",
        "z",
    ]);
    assert!(err.contains("retries left"), "{err}");
    assert_eq!(e.json(&["container", "list"]).as_array().unwrap().len(), 1);
    // key pub of a slot without a key.
    let err = e.fail(&["key", "pub", "--container", "c", "--enc"]);
    assert!(err.contains("not found") || err.contains("no "), "{err}");
}

#[test]
fn key_gen_enc_twice_fails_and_rekey_retires_the_old_pair() {
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
    e.ok(&["key", "pub", "--container", "c", "--enc", "-o", "old.pem"]);
    let err = e.fail(&[
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
    assert!(err.contains("already exists"), "{err}");

    // Data encrypted to the old key still decrypts after --rekey.
    let msg = e.write("msg.txt", b"for the old key");
    e.ok(&[
        "encrypt",
        "--pub",
        "old.pem",
        msg.to_str().unwrap(),
        "-o",
        "old.ct",
    ]);
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
        "--rekey",
    ]);
    e.ok(&["key", "pub", "--container", "c", "--enc", "-o", "new.pem"]);
    assert_ne!(e.read("old.pem"), e.read("new.pem"));
    let c = e.json(&["container", "list"]);
    assert_eq!(c[0]["retired"].as_array().unwrap().len(), 1);
    e.ok(&[
        "--pin",
        PIN,
        "decrypt",
        "--container",
        "c",
        "old.ct",
        "-o",
        "old.out",
    ]);
    assert_eq!(e.read("old.out"), b"for the old key");
    // The retired key's certificate is still listed.
    let certs = e.json(&["cert", "list", "--all"]);
    let certs = certs.as_array().unwrap();
    assert_eq!(certs.len(), 2);
    assert!(certs.iter().any(|c| c["key_state"] == "retired"));
    assert!(e.ok(&["cert", "list", "--all"]).contains("enc (retired)"));
}

#[test]
fn key_import_gm_interop_and_cert_renewal_history() {
    let e = Env::new();
    e.token("t");
    let key = gm("enc.key.pem");
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "import",
        "--container",
        "bidder",
        "--enc",
        "--password",
        "vectorpass",
        key.to_str().unwrap(),
    ]);
    // The imported key is enc.pub.pem.
    e.ok(&[
        "key",
        "pub",
        "--container",
        "bidder",
        "--enc",
        "-o",
        "p.pem",
    ]);
    let w = workdir(&e);
    let a = openssl(
        &w,
        &[
            "pkey", "-pubin", "-in", "p.pem", "-outform", "DER", "-out", "a.der",
        ],
    );
    let _ = a;
    openssl(
        &w,
        &[
            "pkey",
            "-pubin",
            "-in",
            gm("enc.pub.pem").to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            "b.der",
        ],
    );
    assert_eq!(e.read("a.der"), e.read("b.der"));

    e.ok(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "bidder",
        "--enc",
        gm("enc.cert.v1.pem").to_str().unwrap(),
    ]);
    // Renewal: the v2 certificate without --enc is detected as the encryption one.
    let out = e.ok(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "bidder",
        gm("enc.cert.v2-renewed.pem").to_str().unwrap(),
    ]);
    assert!(out.contains("encryption"), "{out}");
    let list = e.json(&["cert", "list", "--all"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let v1 = list
        .iter()
        .find(|c| c["serial"] == "6DD4179A3CFDE572B6312E03")
        .unwrap();
    let v2 = list
        .iter()
        .find(|c| c["serial"] == "D308E9F75934F44B1E58A524")
        .unwrap();
    assert_eq!(v1["current"], false);
    assert_eq!(v2["current"], true);
    let human = e.ok(&["cert", "list", "--all"]);
    assert!(
        human.contains("history") && human.contains("current"),
        "{human}"
    );
    // The current certificate is v2.
    let show = e.json(&["cert", "show", "--container", "bidder", "--enc"]);
    assert_eq!(show["serial"], "D308E9F75934F44B1E58A524");
    assert_eq!(show["usage"], "encrypt");
    // The historical one can be exported and shown by id.
    let id = v1["cert_id"].as_u64().unwrap().to_string();
    e.ok(&["cert", "export", "--id", &id, "-o", "v1.pem"]);
    let v1pem = std::fs::read(gm("enc.cert.v1.pem")).unwrap();
    let norm = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .replace("\r", "")
            .trim()
            .to_owned()
    };
    assert_eq!(norm(&e.read("v1.pem")), norm(&v1pem));
    assert!(e.ok(&["cert", "show", "--id", &id]).contains("history"));

    // The GmSSL ciphertext of sessionkey.bin decrypts with the imported key.
    e.ok(&[
        "--pin",
        PIN,
        "decrypt",
        "--container",
        "bidder",
        gm("sessionkey.sm2enc.der").to_str().unwrap(),
        "-o",
        "sk.bin",
    ]);
    assert_eq!(
        e.read("sk.bin"),
        std::fs::read(gm("sessionkey.bin")).unwrap()
    );

    // A certificate of another key is refused, naming the file.
    let err = e.fail(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "bidder",
        "--enc",
        gm("ca.cert.pem").to_str().unwrap(),
    ]);
    assert!(err.contains("ca.cert.pem"), "{err}");
}

#[test]
fn key_import_errors_name_the_file() {
    let e = Env::new();
    e.token("t");
    let key = gm("sign.key.pem");
    // Wrong password.
    let err = e.fail(&[
        "--pin",
        PIN,
        "key",
        "import",
        "--container",
        "c",
        "--password",
        "nope",
        key.to_str().unwrap(),
    ]);
    assert!(
        err.contains("sign.key.pem") && err.contains("password"),
        "{err}"
    );
    // No password and no terminal.
    let err = e.fail(&[
        "--pin",
        PIN,
        "key",
        "import",
        "--container",
        "c",
        key.to_str().unwrap(),
    ]);
    assert!(err.contains("--password"), "{err}");
    // Garbage and a missing file.
    let bad = e.write(
        "bad.pem",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let err = e.fail(&[
        "--pin",
        PIN,
        "key",
        "import",
        "--container",
        "c",
        bad.to_str().unwrap(),
    ]);
    assert!(err.contains("bad.pem"), "{err}");
    let err = e.fail(&[
        "--pin",
        PIN,
        "key",
        "import",
        "--container",
        "c",
        "nothere.pem",
    ]);
    assert!(err.contains("nothere.pem"), "{err}");
    // Nothing was changed by the failures (no container made).
    assert_eq!(e.json(&["container", "list"]).as_array().unwrap().len(), 0);
    // The password from the environment works, and the signing key verifies the GmSSL
    // signature made with it... by signing anew and checking with the public key.
    let o = e
        .cmd()
        .args([
            "--pin",
            PIN,
            "key",
            "import",
            "--container",
            "c",
            key.to_str().unwrap(),
        ])
        .env("UKEY_KEY_PASSWORD", "vectorpass")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn key_import_unencrypted_pkcs8_from_openssl() {
    let e = Env::new();
    e.token("t");
    let w = workdir(&e);
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
        &["pkey", "-in", "ec.pem", "-outform", "DER", "-out", "ec.der"],
    );
    openssl(&w, &["genpkey", "-algorithm", "SM2", "-out", "sm2.pem"]);
    e.ok(&["--pin", PIN, "key", "import", "--container", "ec", "ec.der"]);
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "import",
        "--container",
        "sm2",
        "sm2.pem",
    ]);
    let list = e.json(&["container", "list"]);
    let algs: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sign"]["alg"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        algs.contains(&"EC P-256".to_owned()) && algs.contains(&"SM2".to_owned()),
        "{algs:?}"
    );
}

#[test]
fn cert_show_thumbprints_equal_openssl() {
    let e = Env::new();
    e.sm2_container();
    e.ok(&["cert", "export", "--container", "c", "-o", "c.pem"]);
    let w = workdir(&e);
    openssl(
        &w,
        &["x509", "-in", "c.pem", "-outform", "DER", "-out", "c.der"],
    );
    let sha1 = openssl(
        &w,
        &["x509", "-in", "c.pem", "-noout", "-fingerprint", "-sha1"],
    );
    let sha256 = openssl(
        &w,
        &["x509", "-in", "c.pem", "-noout", "-fingerprint", "-sha256"],
    );
    let sm3 = openssl(&w, &["dgst", "-sm3", "c.der"]);
    let serial = openssl(&w, &["x509", "-in", "c.pem", "-noout", "-serial"]);

    for show in [
        e.json(&["cert", "show", "--container", "c"]),
        e.json(&["cert", "show", "c.pem"]),
        e.json(&["cert", "show", "c.der"]),
    ] {
        assert_eq!(hex_of(show["sha1"].as_str().unwrap()), hex_of(sha1.trim()));
        assert_eq!(
            hex_of(show["sha256"].as_str().unwrap()),
            hex_of(sha256.trim())
        );
        assert_eq!(hex_of(show["sm3"].as_str().unwrap()), hex_of(sm3.trim()));
        assert_eq!(show["serial"].as_str().unwrap(), hex_of(serial.trim()));
        assert_eq!(show["public_key_alg"], "SM2");
        assert_eq!(show["usage"], "sign");
    }
    // The human form has the same colon-separated upper-case hex as openssl.
    let human = e.ok(&["cert", "show", "--container", "c"]);
    let want = sha256.trim().rsplit('=').next().unwrap().to_owned();
    assert!(human.contains(&want), "{human}\n{want}");
    for field in [
        "Subject:",
        "Issuer:",
        "Serial:",
        "Usage:",
        "Public key:",
        "Valid from:",
        "Valid to:",
        "SHA-1:",
        "SHA-256:",
        "SM3:",
    ] {
        assert!(human.contains(field), "missing {field} in {human}");
    }
}

#[test]
fn cert_show_of_gm_vectors_and_bad_files() {
    let e = Env::new();
    let show = e.json(&["cert", "show", gm("sign.cert.pem").to_str().unwrap()]);
    assert_eq!(show["usage"], "sign");
    assert!(
        show["issuer"]
            .as_str()
            .unwrap()
            .contains("Example Tendering CA"),
        "{show}"
    );
    let err = e.fail(&["cert", "show", gm("bid.txt").to_str().unwrap()]);
    assert!(err.contains("bid.txt"), "{err}");
    let bad = e.write(
        "trunc.der",
        &std::fs::read(gm("sessionkey.sm2enc.der")).unwrap(),
    );
    let err = e.fail(&["cert", "show", bad.to_str().unwrap()]);
    assert!(err.contains("trunc.der"), "{err}");
    let err = e.fail(&["cert", "show", "absent.pem"]);
    assert!(err.contains("absent.pem"), "{err}");
}

#[test]
fn cert_import_export_delete() {
    let e = Env::new();
    e.token("t");
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "import",
        "--container",
        "s",
        "--password",
        "vectorpass",
        gm("sign.key.pem").to_str().unwrap(),
    ]);
    let err = e.fail(&["cert", "export", "--container", "s"]);
    assert!(err.contains("no certificate"), "{err}");
    // PEM and DER imports; the same certificate twice is kept once; bad files name the file.
    e.ok(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "s",
        gm("sign.cert.pem").to_str().unwrap(),
    ]);
    e.ok(&["cert", "export", "--container", "s", "-o", "s.pem"]);
    let out = e.ok(&["cert", "export", "--container", "s"]);
    assert!(out.starts_with("-----BEGIN CERTIFICATE-----"), "{out}");
    let w = workdir(&e);
    openssl(
        &w,
        &["x509", "-in", "s.pem", "-outform", "DER", "-out", "s.der"],
    );
    e.ok(&["--pin", PIN, "cert", "import", "--container", "s", "s.der"]);
    let bad = e.write(
        "bad.pem",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    let err = e.fail(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "s",
        bad.to_str().unwrap(),
    ]);
    assert!(err.contains("bad.pem"), "{err}");
    assert_eq!(
        e.json(&["cert", "list", "--all"]).as_array().unwrap().len(),
        1
    );

    // Two certificates of one key: delete the current one, then the historical one by id.
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "import",
        "--container",
        "e",
        "--enc",
        "--password",
        "vectorpass",
        gm("enc.key.pem").to_str().unwrap(),
    ]);
    e.ok(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "e",
        "--enc",
        gm("enc.cert.v1.pem").to_str().unwrap(),
    ]);
    e.ok(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "e",
        "--enc",
        gm("enc.cert.v2-renewed.pem").to_str().unwrap(),
    ]);
    e.ok(&["--pin", PIN, "cert", "delete", "--container", "e", "--enc"]);
    let list = e.json(&["--container", "e", "cert", "list", "--all"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["serial"], "6DD4179A3CFDE572B6312E03");
    let id = list[0]["cert_id"].as_u64().unwrap().to_string();
    e.ok(&["--pin", PIN, "cert", "delete", "--id", &id]);
    assert!(
        e.ok(&["--container", "e", "cert", "list", "--all"])
            .contains("no certificates")
    );
    let err = e.fail(&["--pin", PIN, "cert", "delete", "--id", &id]);
    assert!(err.contains("not found"), "{err}");
    let err = e.fail(&["--pin", PIN, "cert", "delete", "--container", "s", "--enc"]);
    assert!(err.contains("no certificate"), "{err}");
    // The signing certificate is untouched.
    assert_eq!(
        e.json(&["cert", "list", "--all"]).as_array().unwrap().len(),
        1
    );
}
