//! The tendering flow from C: a program compiled with `cc` against include/skf.h that
//! `dlopen`s libukey_skf.so, checked by OpenSSL 3 (signature with the default SM2 ID,
//! session key wrapped by OpenSSL's SM2 encryption, data by `openssl enc -sm4-cbc`).

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::path::Path;
use std::process::Command;

use skf_common::*;
use token_hal::crypto::sm2;
use token_hal::model::KeyUsage;
use ukey_tests::{repo_root, skf_lib};

fn build(src: &str, out: &Path) {
    sh(Command::new("cc")
        .args([
            "-std=c11",
            "-D_GNU_SOURCE",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
        ])
        .arg(repo_root().join("include"))
        .arg(repo_root().join("tests/c").join(src))
        .arg("-o")
        .arg(out)
        .arg("-ldl"));
}

#[test]
fn c_program_walks_the_tendering_flow_and_openssl_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = device_only(tmp.path());
    // Soft devices only: not a virtual key another test put in pcscd meanwhile.
    walk(tmp.path(), &conf, &[("UKEY_BACKENDS", "soft")]);
}

/// The same flow on the virtual USB key, inside the real pcscd through vpcd: SKF over the
/// APDU driver, the secure channel and PC/SC.
#[test]
fn c_program_walks_the_tendering_flow_on_the_virtual_key_through_pcscd() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = conf(tmp.path());
    let Some(sim) = ukey_tests::VirtualKeyInPcscd::start(&conf, &tmp.path().join("card")) else {
        return;
    };
    walk(tmp.path(), &conf, &[("UKEY_BACKENDS", "pcsc")]);
    let served = sim.served();
    assert!(
        served.contains(r#""header":"80500000""#),
        "the card signed: {served}"
    );
    assert!(
        served.contains(r#""header":"80510000""#),
        "the card decrypted: {served}"
    );
    sim.assert_pins_never_crossed(&["123456", "12345678"]);
}

/// The same flow over the HID report framing: the virtual key behind the HID loopback link
/// (`[apdu] hid_loopback`), served inside the C program's own process, its state and its
/// served log (token_hal::apdu::backend::SERVED_LOG_FILE) in its directory.
#[test]
fn c_program_walks_the_tendering_flow_on_the_virtual_key_over_hid() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = conf(tmp.path());
    let card = tmp.path().join("hidcard");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "[apdu]\nhid_loopback = [\"{}\"]\n",
        card.display()
    ));
    std::fs::write(&conf, text).unwrap();
    walk(tmp.path(), &conf, &[("UKEY_BACKENDS", "hid")]);
    let served = std::fs::read_to_string(card.join(token_hal::apdu::backend::SERVED_LOG_FILE))
        .unwrap_or_default();
    let lines: Vec<serde_json::Value> = served
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |ins: &str| {
        lines
            .iter()
            .any(|l| l["secure"] == true && l["header"].as_str().unwrap()[2..4] == *ins)
    };
    // Application made, PIN verified, key generated, certificate imported, signed and
    // decrypted (the encryption pair's import and the session key), all by the key.
    for (ins, what) in [
        ("31", "create application"),
        ("20", "verify PIN"),
        ("43", "generate"),
        ("46", "import certificate"),
        ("50", "sign"),
        ("51", "decrypt"),
    ] {
        assert!(has(ins), "the key did not serve {what}: {served}");
    }
}

/// The same flow through the vendor-SKF bridge: libukey_skf.so whose only backend is the
/// bridge (`UKEY_BACKENDS=skf`), the "vendor" library of `[[skf_library]]` being a copy of
/// libukey_skf.so in the bridge's test mode, serving the soft device of a data directory
/// of its own. That device then holds what the C program made through the bridge.
#[test]
fn c_program_walks_the_tendering_flow_through_the_skf_bridge() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor_dir = tmp.path().join("vendor");
    std::fs::create_dir(&vendor_dir).unwrap();
    let vendor_conf = device_only(&vendor_dir);
    // A copy: the process's own libukey_skf.so cannot also be its vendor library.
    let vendor_lib = vendor_dir.join("libukey_skf.so");
    std::fs::copy(skf_lib(), &vendor_lib).unwrap();
    let host = tmp.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let host_conf = conf(&host);
    let mut text = std::fs::read_to_string(&host_conf).unwrap();
    text.push_str(&format!(
        "[[skf_library]]\npath = \"{}\"\n",
        vendor_lib.display()
    ));
    std::fs::write(&host_conf, text).unwrap();
    let vendor_data = vendor_dir.join("data");
    walk(
        &host,
        &host_conf,
        &[
            ("UKEY_BACKENDS", "skf"),
            (
                ukey_skf_bridge::SELF_TEST_ENV,
                vendor_data.to_str().unwrap(),
            ),
        ],
    );
    // The vendor's own device holds the application, the container with both key pairs
    // and the certificate. (Its soft devices only: a virtual key that another test put in
    // pcscd meanwhile may hold an application of the same name.)
    let list = ukey_soft(
        &vendor_conf,
        &[
            "--json",
            "--pin",
            "123456",
            "container",
            "list",
            "--token",
            "tender",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let c = &v[0];
    assert_eq!(c["name"], "bidder", "{list}");
    assert_eq!(c["sign"]["alg"], "SM2", "{list}");
    assert_eq!(c["sign"]["has_current_cert"], true, "{list}");
    assert_eq!(c["enc"]["alg"], "SM2", "{list}");
}

/// `ukey` on the soft devices of `conf` only.
fn ukey_soft(conf: &Path, args: &[&str]) -> String {
    let out = Command::new(ukey_tests::ukey_bin())
        .env("UKEY_CONF", conf)
        .env("UKEY_BACKENDS", "soft")
        .env_remove("UKEY_DATA_DIR")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ukey {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tendering flow of tests/c/skf_tender.c with `env`; `dir` holds the work files.
fn walk(dir: &Path, conf: &Path, env: &[(&str, &str)]) {
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let exe = dir.join("skf_tender");
    build("skf_tender.c", &exe);
    let run = |stage: &str| {
        let mut c = Command::new(&exe);
        c.env("UKEY_CONF", conf)
            .arg(skf_lib())
            .arg(&work)
            .arg(stage);
        for (k, v) in env {
            c.env(k, v);
        }
        sh(&mut c)
    };
    let msg = b"bid for lot 7: 1,000,000 CNY\n";
    std::fs::write(work.join("msg.txt"), msg).unwrap();
    assert!(run("init").contains("init ok"));

    // Outside the token: a certificate for the signing key, the encryption key pair
    // from the "KMC" as an ENVELOPEDKEYBLOB, and a bid encrypted by OpenSSL.
    let sign_pub = ecc_pub_of_blob(&std::fs::read(work.join("signpub.bin")).unwrap());
    let (_, ca) = sm2_key();
    let spec = token_hal::cert::SelfSignedSpec::new("bidder", KeyUsage::Sign);
    let cert = token_hal::cert::self_signed(&sign_pub, &spec, |m, tbs| ca.sign(m, tbs)).unwrap();
    std::fs::write(work.join("cert.der"), &cert).unwrap();
    let (d, enc_key) = sm2_key();
    let enc_pub = enc_key.public_key().unwrap();
    std::fs::write(
        work.join("envelope.bin"),
        enveloped_key_blob(&d, &enc_pub, &sign_pub),
    )
    .unwrap();
    std::fs::write(work.join("enc.pub.pem"), enc_pub.to_pem()).unwrap();
    let session_key = token_hal::crypto::rng::random_bytes(16).unwrap();
    let iv = token_hal::crypto::rng::random_bytes(16).unwrap();
    std::fs::write(work.join("sk.bin"), &session_key).unwrap();
    std::fs::write(work.join("iv.bin"), &iv).unwrap();
    sh(Command::new("openssl")
        .current_dir(&work)
        .args(["pkeyutl", "-encrypt", "-pubin", "-inkey", "enc.pub.pem"])
        .args(["-in", "sk.bin", "-out", "sk.sm2"]));
    let raw = sm2::cipher_der_to_raw(&std::fs::read(work.join("sk.sm2")).unwrap()).unwrap();
    std::fs::write(work.join("sesskey.blob"), cipher_blob(&raw)).unwrap();
    let bid = std::fs::read(repo_root().join("tests/data/gm-interop/bid.txt")).unwrap();
    std::fs::write(work.join("bid.txt"), &bid).unwrap();
    sh(Command::new("openssl")
        .current_dir(&work)
        .args(["enc", "-sm4-cbc", "-K", &hex::encode(&session_key)])
        .args([
            "-iv",
            &hex::encode(&iv),
            "-in",
            "bid.txt",
            "-out",
            "data.enc",
        ]));

    assert!(run("use").contains("use ok"));

    // The token decrypted OpenSSL's session key and the bid with it.
    assert_eq!(std::fs::read(work.join("plain.out")).unwrap(), bid);
    // DigestInit with the key and the default ID computed e = SM3(Z ‖ M).
    let e = sm2::sign_digest(&sign_pub.ec_point().unwrap(), sm2::DEFAULT_ID, msg).unwrap();
    assert_eq!(std::fs::read(work.join("e.bin")).unwrap(), e);
    // OpenSSL 3 verifies the signature over the message with distid 1234567812345678.
    let sig = std::fs::read(work.join("sig.bin")).unwrap();
    std::fs::write(work.join("sig.der"), sig_der(&sig)).unwrap();
    std::fs::write(work.join("sign.pub.pem"), sign_pub.to_pem()).unwrap();
    let out = sh(Command::new("openssl")
        .current_dir(&work)
        .args([
            "dgst",
            "-sm3",
            "-verify",
            "sign.pub.pem",
            "-signature",
            "sig.der",
        ])
        .args(["-sigopt", "distid:1234567812345678", "msg.txt"]));
    assert!(out.contains("Verified OK"), "{out}");
    // A tampered message does not verify.
    std::fs::write(work.join("msg.txt"), b"bid for lot 7: 9,000,000 CNY\n").unwrap();
    let bad = Command::new("openssl")
        .current_dir(&work)
        .args([
            "dgst",
            "-sm3",
            "-verify",
            "sign.pub.pem",
            "-signature",
            "sig.der",
        ])
        .args(["-sigopt", "distid:1234567812345678", "msg.txt"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn header_layout_matches_in_c() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("skf_layout");
    build("skf_layout.c", &exe);
    let out = sh(&mut Command::new(&exe));
    assert!(out.contains("layout ok"), "{out}");
}
