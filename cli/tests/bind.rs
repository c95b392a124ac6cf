//! `ukey bind challenge|respond|verify|list|unbind`: account binding end to end, and the
//! refusals: tampered, replayed, expired, foreign and wrong-CA responses.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::PathBuf;

use common::{Env, PIN, gm, openssl};

fn w(e: &Env) -> PathBuf {
    e.dir.path().join("work")
}

/// Token `t`, container `c` with an SM2 key and a self-signed certificate that is its own
/// CA (`ca.pem`).
fn sm2_env() -> Env {
    let e = Env::new();
    e.sm2_container();
    e.ok(&["cert", "export", "--container", "c", "-o", "ca.pem"]);
    e
}

fn challenge(e: &Env, state: &str, out: &str) {
    e.ok(&[
        "bind",
        "challenge",
        "--state",
        state,
        "--platform",
        "tender.example.cn",
        "-o",
        out,
    ]);
}

fn respond(e: &Env, ch: &str, format: &str, container: &str, out: &str) {
    e.ok(&[
        "--pin",
        PIN,
        "bind",
        "respond",
        "--container",
        container,
        "--challenge",
        ch,
        "--format",
        format,
        "-o",
        out,
    ]);
}

/// SM3 of the certificate's SubjectPublicKeyInfo DER, by OpenSSL, colon hex.
fn openssl_key_sm3(e: &Env, cert: &str) -> String {
    let d = w(e);
    openssl(
        &d,
        &["x509", "-in", cert, "-noout", "-pubkey", "-out", "k.pem"],
    );
    openssl(
        &d,
        &[
            "pkey", "-pubin", "-in", "k.pem", "-outform", "DER", "-out", "k.der",
        ],
    );
    let line = openssl(&d, &["dgst", "-sm3", "-r", "k.der"]);
    let hex = line.split_whitespace().next().unwrap().to_uppercase();
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn cms_and_json_responses_verify_once() {
    let e = sm2_env();
    challenge(&e, "st", "ch.json");
    let ch = String::from_utf8(e.read("ch.json")).unwrap();
    assert!(ch.contains("\"type\":\"ukey-bind-challenge/1\""), "{ch}");
    assert!(ch.contains("tender.example.cn"), "{ch}");
    respond(&e, "ch.json", "cms", "c", "r.pem");
    assert!(
        String::from_utf8(e.read("r.pem"))
            .unwrap()
            .starts_with("-----BEGIN CMS-----")
    );
    let j = e.json(&["bind", "verify", "--state", "st", "--ca", "ca.pem", "r.pem"]);
    let cert = e.json(&["cert", "show", "ca.pem"]);
    assert_eq!(j["valid"], true);
    assert_eq!(j["format"], "CMS");
    assert_eq!(j["serial"], cert["serial"]);
    assert_eq!(j["subject"], cert["subject"]);
    assert_eq!(j["issuer"], cert["issuer"]);
    assert_eq!(j["key_sm3"], openssl_key_sm3(&e, "ca.pem").as_str());
    // Replay: the same response again is refused.
    let err = e.fail(&["bind", "verify", "--state", "st", "--ca", "ca.pem", "r.pem"]);
    assert!(
        err.contains("already used") && err.contains("replay"),
        "{err}"
    );

    // The JSON form.
    challenge(&e, "st", "ch2.json");
    respond(&e, "ch2.json", "json", "c", "r2.json");
    let out = e.ok(&[
        "bind", "verify", "--state", "st", "--ca", "ca.pem", "r2.json",
    ]);
    assert!(out.contains("Binding response OK (JSON"), "{out}");
    assert!(out.contains(j["key_sm3"].as_str().unwrap()), "{out}");
    let err = e.fail(&[
        "bind", "verify", "--state", "st", "--ca", "ca.pem", "r2.json",
    ]);
    assert!(err.contains("replay"), "{err}");
}

#[test]
fn tampered_foreign_and_wrong_ca_responses_are_refused_and_consume_nothing() {
    let e = sm2_env();
    challenge(&e, "st", "ch.json");
    respond(&e, "ch.json", "json", "c", "r.json");
    let text = String::from_utf8(e.read("r.json")).unwrap();

    // Tampered: the signed challenge text changed (a later expiry).
    let at = text.find("expires_at").unwrap();
    let mut bad = text.clone().into_bytes();
    let digit = at + "expires_at\\\":".len();
    bad[digit] = if bad[digit] == b'9' { b'8' } else { b'9' };
    e.write("tampered.json", &bad);
    let err = e.fail(&[
        "bind",
        "verify",
        "--state",
        "st",
        "--ca",
        "ca.pem",
        "tampered.json",
    ]);
    assert!(err.contains("does not verify"), "{err}");
    // Tampered: the signature changed.
    let sig_at = text.find("\"signature\": \"").unwrap() + 30;
    let mut bad = text.clone().into_bytes();
    bad[sig_at] = if bad[sig_at] == b'0' { b'1' } else { b'0' };
    e.write("badsig.json", &bad);
    let err = e.fail(&[
        "bind",
        "verify",
        "--state",
        "st",
        "--ca",
        "ca.pem",
        "badsig.json",
    ]);
    assert!(err.contains("does not verify"), "{err}");

    // A CA that did not issue the certificate.
    let err = e.fail(&[
        "bind",
        "verify",
        "--state",
        "st",
        "--ca",
        gm("ca.cert.pem").to_str().unwrap(),
        "r.json",
    ]);
    assert!(err.contains("does not chain to a trusted CA"), "{err}");

    // Another platform's state never issued this nonce.
    let err = e.fail(&[
        "bind", "verify", "--state", "other", "--ca", "ca.pem", "r.json",
    ]);
    assert!(err.contains("unknown challenge"), "{err}");

    // A tampered CMS response (content changed inside the SignedData).
    challenge(&e, "st", "ch2.json");
    respond(&e, "ch2.json", "cms", "c", "r2.pem");
    let d = w(&e);
    let pem = String::from_utf8(e.read("r2.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    e.write("r2.b64", body.as_bytes());
    openssl(
        &d,
        &["base64", "-d", "-A", "-in", "r2.b64", "-out", "r2.der"],
    );
    let der = e.read("r2.der");
    let pos = der.windows(8).position(|x| x == b"platform").unwrap();
    let mut bad = der.clone();
    bad[pos] = b'P';
    e.write("r2bad.der", &bad);
    let err = e.fail(&[
        "bind",
        "verify",
        "--state",
        "st",
        "--ca",
        "ca.pem",
        "r2bad.der",
    ]);
    assert!(err.contains("does not verify"), "{err}");

    // None of the failures used up the nonces: the genuine responses still verify, once.
    e.ok(&[
        "bind", "verify", "--state", "st", "--ca", "ca.pem", "r.json",
    ]);
    e.ok(&[
        "bind", "verify", "--state", "st", "--ca", "ca.pem", "r2.der",
    ]);
    let err = e.fail(&[
        "bind", "verify", "--state", "st", "--ca", "ca.pem", "r2.pem",
    ]);
    assert!(err.contains("replay"), "{err}");
}

#[test]
fn expired_challenges_are_refused() {
    let e = sm2_env();
    e.ok(&[
        "bind",
        "challenge",
        "--state",
        "st",
        "--platform",
        "p",
        "--ttl",
        "1",
        "-o",
        "ch.json",
    ]);
    respond(&e, "ch.json", "cms", "c", "r.pem");
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let err = e.fail(&["bind", "verify", "--state", "st", "--ca", "ca.pem", "r.pem"]);
    assert!(err.contains("challenge expired"), "{err}");
    // The client refuses to sign an expired challenge, and writes nothing.
    let o = e.run(&[
        "--pin",
        PIN,
        "bind",
        "respond",
        "--challenge",
        "ch.json",
        "-o",
        "late.pem",
    ]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("expired"), "{}", o.stderr);
    assert!(!e.path("late.pem").exists());
    // Something that is not a challenge is not signed either.
    e.write("notch.json", b"{\"bid\": \"please sign me\"}");
    let err = e.fail(&[
        "--pin",
        PIN,
        "bind",
        "respond",
        "--challenge",
        "notch.json",
        "-o",
        "x.pem",
    ]);
    assert!(err.contains("not a binding challenge"), "{err}");
    assert!(!e.path("x.pem").exists());
}

/// An OpenSSL CA, two P-256 keys (k1, k2) and certificates for them; k1 gets a second
/// certificate (renewal, same key).
fn ca_and_keys(e: &Env) {
    let d = w(e);
    openssl(
        &d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=Platform CA",
            "-days",
            "30",
        ],
    );
    e.write("ext.cnf", b"keyUsage=critical,digitalSignature\n");
    for (key, certs) in [("k1", &["k1a", "k1b"][..]), ("k2", &["k2a"][..])] {
        let keyfile = format!("{key}.key");
        let csr = format!("{key}.csr");
        openssl(
            &d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &keyfile,
            ],
        );
        let subj = format!("/CN=Employee {key}");
        openssl(
            &d,
            &[
                "req", "-new", "-key", &keyfile, "-subj", &subj, "-out", &csr,
            ],
        );
        for c in certs {
            let out = format!("{c}.pem");
            openssl(
                &d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "30",
                    "-extfile",
                    "ext.cnf",
                    "-out",
                    &out,
                ],
            );
        }
    }
}

#[test]
fn renewal_keeps_the_binding_and_a_key_binds_one_account() {
    let e = Env::new();
    ca_and_keys(&e);
    e.token("t");
    for (c, key, cert) in [("c1", "k1.key", "k1a.pem"), ("c2", "k2.key", "k2a.pem")] {
        e.ok(&["--pin", PIN, "key", "import", "--container", c, key]);
        e.ok(&["--pin", PIN, "cert", "import", "--container", c, cert]);
    }
    let verify = |resp: &str, account: &str| {
        e.json(&[
            "bind",
            "verify",
            "--state",
            "st",
            "--ca",
            "ca.pem",
            "--account",
            account,
            resp,
        ])
    };
    challenge(&e, "st", "ch1.json");
    respond(&e, "ch1.json", "cms", "c1", "r1.pem");
    let first = verify("r1.pem", "alice");
    assert_eq!(first["binding"], "new");
    assert_eq!(first["account"], "alice");

    // Renewal: a new certificate for the same key; the binding holds.
    e.ok(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "c1",
        "k1b.pem",
    ]);
    challenge(&e, "st", "ch2.json");
    respond(&e, "ch2.json", "json", "c1", "r2.json");
    let renewed = verify("r2.json", "alice");
    assert_eq!(renewed["key_sm3"], first["key_sm3"]);
    assert_ne!(renewed["serial"], first["serial"]);
    let b = renewed["binding"].as_str().unwrap();
    assert!(b.starts_with("existing, renewed"), "{b}");
    assert!(b.contains(first["serial"].as_str().unwrap()), "{b}");

    // A second key for the same account.
    challenge(&e, "st", "ch3.json");
    respond(&e, "ch3.json", "cms", "c2", "r3.pem");
    assert_eq!(verify("r3.pem", "alice")["binding"], "new");
    let list = e.json(&["bind", "list", "--state", "st", "--account", "alice"]);
    assert_eq!(list.as_array().unwrap().len(), 2);

    // The first key cannot also bind to bob, until alice unbinds it.
    challenge(&e, "st", "ch4.json");
    respond(&e, "ch4.json", "cms", "c1", "r4.pem");
    let err = e.fail(&[
        "bind",
        "verify",
        "--state",
        "st",
        "--ca",
        "ca.pem",
        "--account",
        "bob",
        "r4.pem",
    ]);
    assert!(err.contains("\"alice\"") && err.contains("unbind"), "{err}");
    let fp = first["key_sm3"].as_str().unwrap();
    e.ok(&[
        "bind",
        "unbind",
        "--state",
        "st",
        "--account",
        "alice",
        "--key-sm3",
        fp,
    ]);
    // The refused attempt did not consume the nonce.
    assert_eq!(verify("r4.pem", "bob")["binding"], "new");
    let all = e.json(&["bind", "list", "--state", "st"]);
    let accounts: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["account"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["alice", "bob"]);
    let err = e.fail(&[
        "bind",
        "unbind",
        "--state",
        "st",
        "--account",
        "alice",
        "--key-sm3",
        fp,
    ]);
    assert!(err.contains("not found"), "{err}");
}
