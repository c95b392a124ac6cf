//! The SoftHSM2 drop-in (`ukey softhsm ...` and a `softhsm2-util` link) and `ukey demo`.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{Env, openssl, output};

fn slot_of(init_output: &str) -> String {
    let line = init_output
        .lines()
        .find(|l| l.starts_with("The token has been initialized and is reassigned to slot "))
        .unwrap_or_else(|| panic!("no reassigned line in {init_output}"));
    line.rsplit(' ').next().unwrap().to_owned()
}

#[test]
fn softhsm_init_token_free_and_show_slots() {
    let e = Env::new();
    let out = e.ok(&[
        "softhsm",
        "--init-token",
        "--free",
        "--label",
        "tok1",
        "--so-pin",
        "12345678",
        "--pin",
        "1234",
    ]);
    assert!(out.contains("has a free/uninitialized token."), "{out}");
    let slot = slot_of(&out);
    let n: u64 = slot.parse().unwrap();
    assert!(n > 0 && n <= 0x7FFF_FFFF);

    // The slot is the one `ukey app list` reports, from token_hal::slot.
    let apps = e.json(&["app", "list"]);
    assert_eq!(apps[0]["name"], "tok1");
    assert_eq!(apps[0]["slot"].as_u64().unwrap(), n);

    let show = e.ok(&["softhsm", "--show-slots"]);
    assert!(show.starts_with("Available slots:\n"), "{show}");
    assert!(
        show.contains(&format!("Slot {slot}\n    Slot info:\n")),
        "{show}"
    );
    assert!(show.contains("    Token info:\n"), "{show}");
    assert!(show.contains("        Initialized:      yes"), "{show}");
    assert!(show.contains("        User PIN init.:   yes"), "{show}");
    assert!(
        show.contains(&format!("        Label:            tok1{}", " ".repeat(28))),
        "{show}"
    );
    let serial = apps[0]["token_serial"].as_str().unwrap();
    assert!(
        show.contains(&format!("        Serial number:    {serial}")),
        "{show}"
    );

    // A second token; reinitialise the first by label (wipes it, same slot).
    let out2 = e.ok(&[
        "softhsm",
        "--init-token",
        "--free",
        "--label",
        "tok2",
        "--so-pin",
        "12345678",
        "--pin",
        "1234",
    ]);
    assert_ne!(slot_of(&out2), slot);
    let out3 = e.ok(&[
        "softhsm",
        "--init-token",
        "--token",
        "tok1",
        "--label",
        "tok1",
        "--so-pin",
        "12345678",
        "--pin",
        "5678",
    ]);
    assert!(
        out3.contains(&format!("Found slot {slot} with matching token label.")),
        "{out3}"
    );
    assert_eq!(slot_of(&out3), slot);
    // ...and by slot number, with a wrong SO PIN: SoftHSM's message.
    let o = e.run(&[
        "softhsm",
        "--init-token",
        "--slot",
        &slot,
        "--label",
        "tok1",
        "--so-pin",
        "99999999",
        "--pin",
        "5678",
    ]);
    assert_eq!(o.code, Some(1));
    assert!(
        o.stderr
            .starts_with("CKR_PIN_INCORRECT: The given SO PIN does not match"),
        "{}",
        o.stderr
    );
    let o = e.run(&[
        "softhsm",
        "--init-token",
        "--slot",
        "12345",
        "--label",
        "x",
        "--so-pin",
        "1234",
        "--pin",
        "1234",
    ]);
    assert_eq!(o.code, Some(1));
    assert_eq!(
        o.stderr.trim(),
        "CKR_SLOT_ID_INVALID: Slot 12345 does not exist."
    );
    let o = e.run(&[
        "softhsm",
        "--init-token",
        "--free",
        "--so-pin",
        "1234",
        "--pin",
        "1234",
    ]);
    assert_eq!(o.code, Some(1));
    assert!(
        o.stderr.contains("A label for the token must be supplied"),
        "{}",
        o.stderr
    );
}

#[test]
fn softhsm_import_and_delete_token() {
    let e = Env::new();
    let w = e.dir.path().join("work");
    e.ok(&[
        "softhsm",
        "--init-token",
        "--free",
        "--label",
        "imp",
        "--so-pin",
        "12345678",
        "--pin",
        "1234",
    ]);
    openssl(
        &w,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ],
    );
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
    openssl(&w, &["genpkey", "-algorithm", "SM2", "-out", "sm2.pem"]);
    for (file, label, id) in [
        ("rsa.pem", "rsakey", "01"),
        ("ec.pem", "eckey", "a0b1"),
        ("sm2.pem", "sm2key", "02"),
    ] {
        let out = e.ok(&[
            "softhsm", "--import", file, "--token", "imp", "--label", label, "--id", id, "--pin",
            "1234",
        ]);
        assert!(out.contains("with matching token label."), "{out}");
        assert!(
            out.trim_end().ends_with("The key pair has been imported."),
            "{out}"
        );
    }
    let list = e.json(&["--token", "imp", "container", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let ec = list.iter().find(|c| c["name"] == "eckey").unwrap();
    assert_eq!(ec["id"], "a0b1");
    assert_eq!(ec["sign"]["alg"], "EC P-256");
    // The imported key works: sign with ukey, verify with OpenSSL.
    e.write("f", b"imported");
    e.ok(&[
        "--token",
        "imp",
        "--pin",
        "1234",
        "sign",
        "--container",
        "rsakey",
        "f",
        "-o",
        "f.sig",
    ]);
    openssl(
        &w,
        &["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub"],
    );
    openssl(
        &w,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "rsa.pub",
            "-signature",
            "f.sig",
            "f",
        ],
    );

    // Errors as softhsm2-util words them.
    let o = e.run(&[
        "softhsm", "--import", "ec.pem", "--token", "imp", "--label", "eckey", "--id", "a0b1",
        "--pin", "1234",
    ]);
    assert!(
        o.stderr
            .contains("The ID is already assigned to another object"),
        "{}",
        o.stderr
    );
    let o = e.run(&[
        "softhsm", "--import", "ec.pem", "--token", "imp", "--label", "x", "--id", "0", "--pin",
        "1234",
    ]);
    assert!(
        o.stderr.contains("Invalid length on hex string."),
        "{}",
        o.stderr
    );
    let o = e.run(&[
        "softhsm", "--import", "ec.pem", "--token", "imp", "--label", "x", "--id", "09", "--pin",
        "0000",
    ]);
    assert!(
        o.stderr
            .contains("The given user PIN does not match the one in the token."),
        "{}",
        o.stderr
    );
    assert_eq!(o.code, Some(1));

    let out = e.ok(&["softhsm", "--delete-token", "--token", "imp"]);
    assert!(out.contains("with matching token label."), "{out}");
    assert!(out.contains("has been deleted."), "{out}");
    assert!(e.json(&["app", "list"]).as_array().unwrap().is_empty());
    let o = e.run(&["softhsm", "--delete-token", "--token", "imp"]);
    assert_eq!(o.code, Some(1));
    assert_eq!(
        o.stderr.trim(),
        "ERROR: Could not find a token using --serial or --token."
    );
}

#[test]
fn softhsm2_util_link_behaves_the_same() {
    let e = Env::new();
    let link = e.dir.path().join("softhsm2-util");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ukey"), &link).unwrap();
    let o = output(
        e.cmd_of(&link)
            .args([
                "--init-token",
                "--free",
                "--label",
                "linked",
                "--so-pin",
                "12345678",
                "--pin",
                "1234",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let slot = slot_of(&o.stdout);
    let o = output(e.cmd_of(&link).arg("--show-slots").output().unwrap());
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.contains(&format!("Slot {slot}\n")), "{}", o.stdout);
    assert!(o.stdout.contains("linked"), "{}", o.stdout);
    // Same data as `ukey softhsm --show-slots`.
    assert_eq!(o.stdout, e.ok(&["softhsm", "--show-slots"]));
    let o = output(e.cmd_of(&link).arg("--help").output().unwrap());
    assert_eq!(o.code, Some(0));
    assert!(o.stdout.contains("--init-token"));
}

#[test]
fn demo_runs_on_a_fresh_machine_with_no_config() {
    let e = Env::new();
    let home = e.dir.path().join("home");
    // No UKEY_CONF, no UKEY_DATA_DIR: the embedded default in $HOME.
    let run = || {
        output(
            e.cmd()
                .env_remove("UKEY_CONF")
                .env_remove("UKEY_DATA_DIR")
                .env_remove("XDG_DATA_HOME")
                .env_remove("XDG_CONFIG_HOME")
                .arg("demo")
                .output()
                .unwrap(),
        )
    };
    let o = run();
    assert_eq!(
        o.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        o.stdout,
        o.stderr
    );
    for step in 1..=8 {
        assert!(o.stdout.contains(&format!("[{step}/8]")), "{}", o.stdout);
    }
    assert!(o.stdout.contains(" ms"), "{}", o.stdout);
    assert!(
        o.stdout.contains("created token 'ukey-demo'"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("signature OK") && o.stdout.contains("plaintext matches"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("Summary"), "{}", o.stdout);
    assert!(home.join(".local/share/ukey").is_dir());
    // The second run reuses the token.
    let o = run();
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.stdout.contains("reused token 'ukey-demo'"),
        "{}",
        o.stdout
    );
}

#[test]
fn demo_keeps_files_in_workdir_and_honours_the_pin() {
    let e = Env::new();
    let wd = e.dir.path().join("demo-files");
    let o = output(
        e.cmd()
            .args(["demo", "--label", "d2", "--workdir"])
            .arg(&wd)
            .env("UKEY_PIN", "24682468")
            .output()
            .unwrap(),
    );
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    assert_eq!(
        std::fs::read(wd.join("bid.txt")).unwrap(),
        std::fs::read(wd.join("bid.decrypted.txt")).unwrap()
    );
    // The files check out with OpenSSL.
    let v = openssl(
        &wd,
        &[
            "verify",
            "-vfyopt",
            "distid:1234567812345678",
            "-CAfile",
            "sign.cert.pem",
            "sign.cert.pem",
        ],
    );
    assert!(v.contains("OK"), "{v}");
    openssl(
        &wd,
        &[
            "x509",
            "-in",
            "sign.cert.pem",
            "-pubkey",
            "-noout",
            "-out",
            "pub.pem",
        ],
    );
    let v = openssl(
        &wd,
        &[
            "dgst",
            "-sm3",
            "-verify",
            "pub.pem",
            "-signature",
            "bid.sig",
            "-sigopt",
            "distid:1234567812345678",
            "bid.txt",
        ],
    );
    assert!(v.contains("Verified OK"), "{v}");
    // The demo token's PIN is the one given; a wrong one fails with the retries left.
    let err = output(
        e.cmd()
            .args(["demo", "--label", "d2"])
            .env("UKEY_PIN", "11111111")
            .output()
            .unwrap(),
    );
    assert_ne!(err.code, Some(0));
    assert!(err.stderr.contains("retries left"), "{}", err.stderr);
}
