//! `ukey envelope encrypt|decrypt` and `ukey log export`: the GmSSL envelopes after
//! renewal and rekey, one and three recipients, PEM and DER, bad input refused with no
//! output file. (The OpenSSL 3 cross-check is in token-hal/tests/envelope.rs.)

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::fs;
use std::path::PathBuf;

use common::{Env, PIN, gm, output};

fn work(e: &Env) -> PathBuf {
    e.dir.path().join("work")
}

/// The names in the work directory, sorted.
fn listing(e: &Env) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(work(e))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn gm_str(name: &str) -> String {
    gm(name).to_str().unwrap().to_owned()
}

#[test]
fn gm_envelopes_decrypt_after_renewal_and_rekey() {
    let e = Env::new();
    e.token("t");
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
        &gm_str("enc.key.pem"),
    ]);
    e.ok(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "bidder",
        "--enc",
        &gm_str("enc.cert.v1.pem"),
    ]);
    let bid = fs::read(gm("bid.txt")).unwrap();
    let v1 = gm_str("bid.enveloped-to-v1.p7m.pem");
    let two = gm_str("bid.enveloped-2rcpt.p7m.pem");

    let j = e.json(&["--pin", PIN, "envelope", "decrypt", &v1, "-o", "bid.txt"]);
    assert_eq!(e.read("bid.txt"), bid);
    assert_eq!(j["container"], "bidder");
    assert_eq!(j["retired_key"], false);
    assert_eq!(j["matched_by"], "issuer and serial of its certificate");
    assert_eq!(j["bytes"], bid.len());

    // Renewal.
    e.ok(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "bidder",
        "--enc",
        &gm_str("enc.cert.v2-renewed.pem"),
    ]);
    let j = e.json(&["--pin", PIN, "envelope", "decrypt", &v1, "-o", "bid2.txt"]);
    assert_eq!(e.read("bid2.txt"), bid);
    assert_eq!(
        j["matched_by"],
        "issuer and serial of an earlier certificate of the key"
    );
    let j = e.json(&["--pin", PIN, "envelope", "decrypt", &two, "-o", "bid3.txt"]);
    assert_eq!(e.read("bid3.txt"), bid);
    assert_eq!(j["recipients"], 2);

    // Rekey retires the key; it still opens both envelopes.
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "gen",
        "--container",
        "bidder",
        "--enc",
        "--rekey",
    ]);
    let j = e.json(&["--pin", PIN, "envelope", "decrypt", &v1, "-o", "bid4.txt"]);
    assert_eq!(e.read("bid4.txt"), bid);
    assert_eq!(j["retired_key"], true);
    e.ok(&["--pin", PIN, "envelope", "decrypt", &two, "-o", "bid5.txt"]);
    assert_eq!(e.read("bid5.txt"), bid);

    // Signed, then enveloped (to the new key's certificate): decrypt says to verify.
    common::openssl(
        &work(&e),
        &[
            "asn1parse",
            "-noout",
            "-in",
            &gm_str("bid.signed.p7.pem"),
            "-out",
            "bid.p7s",
        ],
    );
    let signed = e.read("bid.p7s");
    assert_eq!(signed[0], 0x30);
    e.ok(&[
        "cert",
        "export",
        "--container",
        "bidder",
        "--enc",
        "-o",
        "new.pem",
    ]);
    e.ok(&[
        "envelope",
        "encrypt",
        "--to",
        "new.pem",
        "bid.p7s",
        "-o",
        "bid.p7s.p7m",
    ]);
    let o = e.run(&[
        "--pin",
        PIN,
        "envelope",
        "decrypt",
        "bid.p7s.p7m",
        "-o",
        "bid.p7s.out",
    ]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.stderr.contains("SignedData: verify its signature"),
        "{}",
        o.stderr
    );
    assert_eq!(e.read("bid.p7s.out"), signed);
    let j = e.json(&[
        "--pin",
        PIN,
        "envelope",
        "decrypt",
        "bid.p7s.p7m",
        "-o",
        "bid.p7s.out2",
    ]);
    assert_eq!(j["signed_data"], true);

    // Without a PIN and without a terminal: a clear error, no output.
    let err = e.fail(&["envelope", "decrypt", &v1, "-o", "nopin.txt"]);
    assert!(err.contains("--pin or UKEY_PIN"), "{err}");
    assert!(!e.path("nopin.txt").exists());
}

/// Three tokens, each with an encryption key and its self-signed certificate.
fn three_openers(e: &Env) {
    for i in 0..3 {
        let t = format!("t{i}");
        e.token(&t);
        e.ok(&[
            "--token",
            &t,
            "--pin",
            PIN,
            "key",
            "gen",
            "--container",
            "c",
            "--enc",
            "--subject",
            &format!("Opener {i}"),
        ]);
        e.ok(&[
            "--token",
            &t,
            "cert",
            "export",
            "--container",
            "c",
            "--enc",
            "-o",
            &format!("opener{i}.pem"),
        ]);
    }
}

#[test]
fn one_and_three_recipients_der_and_pem() {
    let e = Env::new();
    three_openers(&e);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    e.write("bid.bin", &data);

    // One recipient, DER (the default).
    let j = e.json(&[
        "envelope",
        "encrypt",
        "--to",
        "opener1.pem",
        "bid.bin",
        "-o",
        "one.p7m",
    ]);
    assert_eq!(j["format"], "der");
    assert_eq!(e.read("one.p7m")[0], 0x30);
    let j = e.json(&[
        "--token", "t1", "--pin", PIN, "envelope", "decrypt", "one.p7m", "-o", "one.out",
    ]);
    assert_eq!(e.read("one.out"), data);
    assert_eq!(j["token"], "t1");
    for other in ["t0", "t2"] {
        let err = e.fail(&[
            "--token", other, "--pin", PIN, "envelope", "decrypt", "one.p7m", "-o", "x.out",
        ]);
        assert!(err.contains("CN=Opener 1"), "{err}");
        assert!(!e.path("x.out").exists());
    }
    // Searching all tokens finds it too (only t1 needs the PIN).
    e.ok(&[
        "--pin", PIN, "envelope", "decrypt", "one.p7m", "-o", "one.all",
    ]);
    assert_eq!(e.read("one.all"), data);

    // Three recipients, PEM.
    e.ok(&[
        "envelope",
        "encrypt",
        "--pem",
        "--to",
        "opener0.pem",
        "--to",
        "opener1.pem",
        "--to",
        "opener2.pem",
        "bid.bin",
        "-o",
        "three.p7m.pem",
    ]);
    assert!(
        e.read("three.p7m.pem")
            .starts_with(b"-----BEGIN CMS-----\n")
    );
    for t in ["t0", "t1", "t2"] {
        let out = format!("three.{t}");
        let j = e.json(&[
            "--token",
            t,
            "--pin",
            PIN,
            "envelope",
            "decrypt",
            "three.p7m.pem",
            "-o",
            &out,
        ]);
        assert_eq!(e.read(&out), data);
        assert_eq!(j["recipients"], 3);
        assert_eq!(j["token"], t);
    }
    // In a script, stderr carries the one summary line and no progress bar.
    let o = e.run(&[
        "--token",
        "t2",
        "--pin",
        PIN,
        "envelope",
        "decrypt",
        "three.p7m.pem",
        "-o",
        "q.out",
    ]);
    assert_eq!(o.code, Some(0));
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(
        o.stderr.starts_with("Decrypted three.p7m.pem -> q.out"),
        "{}",
        o.stderr
    );
}

#[test]
fn bad_input_is_refused_without_output() {
    let e = Env::new();
    three_openers(&e);
    let data = vec![b'b'; 5000];
    e.write("bid.bin", &data);
    e.ok(&[
        "envelope",
        "encrypt",
        "--to",
        "opener0.pem",
        "bid.bin",
        "-o",
        "env.p7m",
    ]);
    let env = e.read("env.p7m");
    let before = listing(&e);
    let decrypt = |name: &str| {
        e.fail(&[
            "--token", "t0", "--pin", PIN, "envelope", "decrypt", name, "-o", "out.bin",
        ])
    };

    // Truncated.
    e.write("cut.p7m", &env[..env.len() - 100]);
    let err = decrypt("cut.p7m");
    assert!(
        err.contains("cut.p7m") && err.contains("truncated"),
        "{err}"
    );
    // Truncated on a block boundary with the lengths fixed up is still refused: the
    // padding check (or the lengths) catch it; here the lengths.
    e.write("cut2.p7m", &env[..env.len() - 16]);
    assert!(decrypt("cut2.p7m").contains("truncated"));
    // Tampered length inside the header.
    let mut t = env.clone();
    t[1] ^= 0x01;
    e.write("len.p7m", &t);
    let err = decrypt("len.p7m");
    assert!(err.contains("EnvelopedData"), "{err}");
    // Tampered last block: the padding.
    let mut t = env.clone();
    let n = t.len();
    t[n - 17] ^= 0xFF ^ 0x10;
    e.write("pad.p7m", &t);
    let err = decrypt("pad.p7m");
    assert!(err.contains("padding"), "{err}");
    // Trailing data.
    let mut t = env.clone();
    t.extend_from_slice(b"extra");
    e.write("trail.p7m", &t);
    assert!(decrypt("trail.p7m").contains("trailing data"));
    // Wrong content type: GM envelopedData ...2.3 made GM signedData ...2.2 (same length).
    let mut t = env.clone();
    let oid = [0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x06, 0x01, 0x04, 0x02, 0x03];
    let at = t.windows(oid.len()).position(|w| w == oid).unwrap();
    t[at + oid.len() - 1] = 0x02;
    e.write("type.p7m", &t);
    let err = decrypt("type.p7m");
    assert!(
        err.contains("not an EnvelopedData") && err.contains("1.2.156.10197.6.1.4.2.2"),
        "{err}"
    );
    // Unknown recipient: t1 holds no key for it; the error names the recipient.
    let err = e.fail(&[
        "--token", "t1", "--pin", PIN, "envelope", "decrypt", "env.p7m", "-o", "out.bin",
    ]);
    assert!(
        err.contains("CN=Opener 0") && err.contains("serial"),
        "{err}"
    );
    // Not an envelope at all.
    assert!(decrypt("opener0.pem").contains("CMS"));
    assert!(decrypt("bid.bin").contains("not an envelope"));

    // No output file, no temporary file left behind.
    let mut after = listing(&e);
    after.retain(|n| !n.ends_with(".p7m"));
    let mut expected = before.clone();
    expected.retain(|n| !n.ends_with(".p7m"));
    assert_eq!(after, expected);
    assert!(!e.path("out.bin").exists());

    // Encrypting to a signing certificate, or to nothing readable, is refused too.
    e.ok(&[
        "--token",
        "t0",
        "--pin",
        PIN,
        "key",
        "gen",
        "--container",
        "s",
    ]);
    e.ok(&[
        "--token",
        "t0",
        "cert",
        "export",
        "--container",
        "s",
        "-o",
        "sign.pem",
    ]);
    let err = e.fail(&[
        "envelope", "encrypt", "--to", "sign.pem", "bid.bin", "-o", "no.p7m",
    ]);
    assert!(err.contains("not for encryption"), "{err}");
    let err = e.fail(&[
        "envelope", "encrypt", "--to", "bid.bin", "bid.bin", "-o", "no.p7m",
    ]);
    assert!(err.contains("bid.bin"), "{err}");
    let err = e.fail(&[
        "envelope",
        "encrypt",
        "--to",
        "opener0.pem",
        "missing.bin",
        "-o",
        "no.p7m",
    ]);
    assert!(err.contains("missing.bin"), "{err}");
    // An expired certificate (valid for 0 days from a minute ago).
    e.ok(&[
        "--token",
        "t0",
        "--pin",
        PIN,
        "key",
        "gen",
        "--container",
        "old",
        "--enc",
        "--days",
        "0",
    ]);
    e.ok(&[
        "--token",
        "t0",
        "cert",
        "export",
        "--container",
        "old",
        "--enc",
        "-o",
        "old.pem",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let err = e.fail(&[
        "envelope", "encrypt", "--to", "old.pem", "bid.bin", "-o", "no.p7m",
    ]);
    assert!(err.contains("old.pem") && err.contains("expired"), "{err}");
    assert!(!e.path("no.p7m").exists());
}

#[test]
fn log_export_is_an_envelope_for_support() {
    let e = Env::new();
    three_openers(&e);
    // Nothing logged yet.
    let err = e.fail(&["log", "export", "--to", "opener2.pem", "-o", "log.p7m"]);
    assert!(
        err.contains("no log file") && err.contains("UKEY_LOG"),
        "{err}"
    );

    // Some commands with logging to the file.
    let logged = |args: &[&str]| {
        let o = output(
            e.cmd()
                .env("UKEY_LOG", "debug")
                .env("UKEY_LOG_OUTPUT", "file")
                .args(args)
                .output()
                .unwrap(),
        );
        assert_eq!(o.code, Some(0), "{}", o.stderr);
    };
    logged(&[
        "--token",
        "t0",
        "--pin",
        PIN,
        "key",
        "gen",
        "--container",
        "logged",
    ]);
    logged(&[
        "envelope",
        "encrypt",
        "--to",
        "opener0.pem",
        "opener1.pem",
        "-o",
        "x.p7m",
    ]);
    logged(&["--pin", PIN, "envelope", "decrypt", "x.p7m", "-o", "x.out"]);
    let log = e.dir.path().join("home/.local/state/ukey/ukey.log");
    let text = fs::read(&log).unwrap();
    assert!(!text.is_empty());

    let j = e.json(&["log", "export", "--to", "opener2.pem", "-o", "log.p7m"]);
    assert_eq!(j["log_bytes"], text.len());
    e.ok(&[
        "--token", "t2", "--pin", PIN, "envelope", "decrypt", "log.p7m", "-o", "log.txt",
    ]);
    let back = e.read("log.txt");
    assert_eq!(back, text);
    // The log never holds the PIN.
    let s = String::from_utf8_lossy(&back);
    assert!(
        s.contains("stored key") && s.contains("envelope recipient key found"),
        "{s}"
    );
    assert!(!s.contains(PIN), "{s}");
    // Only the support desk's token opens it.
    let err = e.fail(&[
        "--token", "t0", "--pin", PIN, "envelope", "decrypt", "log.p7m", "-o", "log0.txt",
    ]);
    assert!(err.contains("CN=Opener 2"), "{err}");
}

/// Signed, then enveloped: `decrypt --verify` checks the SignedData inside and writes the
/// bid itself; a tampered ciphertext (which SM4-CBC alone cannot detect) is caught by the
/// signature and leaves no output.
#[test]
fn signed_then_enveloped_is_verified_and_tampering_caught() {
    let e = Env::new();
    e.token("t");
    for args in [
        &[
            "--pin",
            PIN,
            "key",
            "gen",
            "--container",
            "c",
            "--subject",
            "Bidder",
        ][..],
        &[
            "--pin",
            PIN,
            "key",
            "gen",
            "--container",
            "c",
            "--enc",
            "--subject",
            "Opener",
        ],
        &["cert", "export", "--container", "c", "-o", "sign.pem"],
        &[
            "cert",
            "export",
            "--container",
            "c",
            "--enc",
            "-o",
            "enc.pem",
        ],
    ] {
        e.ok(args);
    }
    let bid: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    e.write("bid.bin", &bid);
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--container",
        "c",
        "bid.bin",
        "-o",
        "bid.p7s",
    ]);
    e.ok(&[
        "envelope", "encrypt", "--to", "enc.pem", "bid.p7s", "-o", "bid.p7m",
    ]);
    let j = e.json(&[
        "--pin",
        PIN,
        "envelope",
        "decrypt",
        "--verify",
        "--ca",
        "sign.pem",
        "bid.p7m",
        "-o",
        "opened.bin",
    ]);
    assert_eq!(
        e.read("opened.bin"),
        bid,
        "the bid itself, not the SignedData"
    );
    assert_eq!(j["signers"][0]["profile"], "GM/T 0010");
    // Without --verify the plaintext is the SignedData, with a notice.
    e.ok(&[
        "--pin",
        PIN,
        "envelope",
        "decrypt",
        "bid.p7m",
        "-o",
        "signed.p7s",
    ]);
    assert_eq!(e.read("signed.p7s"), e.read("bid.p7s"));
    // Flip one bit in the middle of the ciphertext: the padding still checks out, the
    // signature does not.
    let mut env = e.read("bid.p7m");
    let mid = env.len() / 2;
    env[mid] ^= 0x01;
    e.write("tampered.p7m", &env);
    let err = e.fail(&[
        "--pin",
        PIN,
        "envelope",
        "decrypt",
        "--verify",
        "tampered.p7m",
        "-o",
        "bad.bin",
    ]);
    assert!(err.contains("no output written"), "{err}");
    assert!(!work(&e).join("bad.bin").exists());
    assert!(
        !listing(&e).iter().any(|n| n.contains("tmp")),
        "{:?}",
        listing(&e)
    );
    // An envelope of plain data is not something --verify can check.
    e.ok(&[
        "envelope",
        "encrypt",
        "--to",
        "enc.pem",
        "bid.bin",
        "-o",
        "plain.p7m",
    ]);
    let err = e.fail(&[
        "--pin",
        PIN,
        "envelope",
        "decrypt",
        "--verify",
        "plain.p7m",
        "-o",
        "p.bin",
    ]);
    assert!(err.contains("not a SignedData"), "{err}");
    assert!(!work(&e).join("p.bin").exists());
}
