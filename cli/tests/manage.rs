//! `ukey device`, `app`, `pin`, `container`, `file`, `config`: the management commands,
//! with their error paths.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{Env, PIN, SO_PIN};

#[test]
fn device_init_list_info_delete() {
    let e = Env::new();
    assert!(e.ok(&["device", "list"]).contains("no devices"));
    let out = e.ok(&["device", "init", "--label", "first"]);
    assert!(out.contains("Created soft device"), "{out}");
    let list = e.json(&["device", "list"]);
    let devs = list.as_array().unwrap();
    assert_eq!(devs.len(), 1);
    assert_eq!(devs[0]["label"], "first");
    assert_eq!(devs[0]["backend"], "soft");
    let serial = devs[0]["serial"].as_str().unwrap().to_owned();

    let human = e.ok(&["device", "list"]);
    assert!(
        human.contains(&serial) && human.contains("first"),
        "{human}"
    );
    let info = e.ok(&["device", "info"]);
    assert!(info.contains("Serial:") && info.contains(&serial), "{info}");
    assert_eq!(
        e.json(&["device", "info", &serial])["serial"],
        serial.as_str()
    );

    // A second device: `device info` must now be told which.
    e.ok(&["device", "init", "--label", "second"]);
    let err = e.fail(&["device", "info"]);
    assert!(err.contains("--device"), "{err}");
    assert_eq!(
        e.json(&["--device", &serial, "device", "info"])["label"],
        "first"
    );

    // Deletion needs --yes.
    let err = e.fail(&["device", "delete", &serial]);
    assert!(err.contains("--yes"), "{err}");
    e.ok(&["device", "delete", &serial, "--yes"]);
    assert_eq!(e.json(&["device", "list"]).as_array().unwrap().len(), 1);
    let err = e.fail(&["device", "delete", &serial, "--yes"]);
    assert!(err.contains("not found"), "{err}");
    let err = e.fail(&["device", "init", "--label", &"x".repeat(33)]);
    assert!(err.contains("label"), "{err}");
}

#[test]
fn app_create_list_delete() {
    let e = Env::new();
    let err = e.fail(&["app", "create", "a", "--so-pin", SO_PIN, "--pin", PIN]);
    assert!(err.contains("device init"), "{err}");
    e.ok(&["device", "init"]);
    let out = e.ok(&[
        "app",
        "create",
        "alpha",
        "--admin-pin",
        SO_PIN,
        "--pin",
        PIN,
        "--retries",
        "3",
    ]);
    assert!(out.contains("slot"), "{out}");
    e.ok(&["app", "create", "beta", "--so-pin", SO_PIN, "--pin", PIN]);
    let apps = e.json(&["app", "list"]);
    let apps = apps.as_array().unwrap();
    assert_eq!(apps.len(), 2);
    let alpha = apps.iter().find(|a| a["name"] == "alpha").unwrap();
    assert_eq!(alpha["user_pin"]["max_retries"], 3);
    assert!(alpha["slot"].as_u64().unwrap() <= 0x7FFF_FFFF);
    assert!(e.ok(&["app", "list"]).contains("beta"));

    // Duplicates, short PINs, a wrong device key.
    let err = e.fail(&["app", "create", "alpha", "--so-pin", SO_PIN, "--pin", PIN]);
    assert!(err.contains("exists"), "{err}");
    let err = e.fail(&["app", "create", "g", "--so-pin", SO_PIN, "--pin", "12"]);
    assert!(err.contains("PIN"), "{err}");
    let err = e.fail(&[
        "app",
        "create",
        "g",
        "--so-pin",
        SO_PIN,
        "--pin",
        PIN,
        "--auth-key",
        "00000000000000000000000000000000",
    ]);
    assert!(err.contains("authentication"), "{err}");
    let err = e.fail(&[
        "app",
        "create",
        "g",
        "--so-pin",
        SO_PIN,
        "--pin",
        PIN,
        "--auth-key",
        "zz",
    ]);
    assert!(err.contains("--auth-key"), "{err}");
    // No PIN and no terminal: a clear error instead of a hang.
    let err = e.fail(&["app", "create", "g", "--so-pin", SO_PIN]);
    assert!(err.contains("--pin"), "{err}");

    // Several tokens: commands on a token must be told which.
    let err = e.fail(&["container", "list"]);
    assert!(err.contains("--token"), "{err}");

    let err = e.fail(&["app", "delete", "beta"]);
    assert!(err.contains("--yes"), "{err}");
    e.ok(&["app", "delete", "beta", "--yes"]);
    assert_eq!(e.json(&["app", "list"]).as_array().unwrap().len(), 1);
    // With one token left it is chosen without --token.
    assert!(e.ok(&["container", "list"]).contains("no containers"));
    let err = e.fail(&["--token", "beta", "container", "list"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn pin_info_change_unblock_and_lockout() {
    let e = Env::new();
    e.token("t");
    let info = e.json(&["pin", "info"]);
    assert_eq!(info["user_pin"]["remaining"], 5);
    assert!(e.ok(&["pin", "info"]).contains("5/5"));

    // A wrong PIN names the retries left and is persisted.
    let err = e.fail(&["--pin", "000000", "container", "create", "c"]);
    assert!(err.contains("4 retries left"), "{err}");
    assert_eq!(e.json(&["pin", "info"])["user_pin"]["remaining"], 4);
    // A right PIN restores the counter.
    e.ok(&["--pin", PIN, "container", "create", "c"]);
    assert_eq!(e.json(&["pin", "info"])["user_pin"]["remaining"], 5);

    // Change the user PIN (old from --pin, new from --new-pin or UKEY_NEW_PIN).
    e.ok(&["--pin", PIN, "pin", "change", "--new-pin", "654321"]);
    let err = e.fail(&["--pin", PIN, "container", "create", "d"]);
    assert!(err.contains("incorrect PIN"), "{err}");
    let o = e
        .cmd()
        .args(["pin", "change"])
        .env("UKEY_PIN", "654321")
        .env("UKEY_NEW_PIN", PIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    e.ok(&["--pin", PIN, "container", "create", "d"]);
    let err = e.fail(&["--pin", PIN, "pin", "change", "--new-pin", "1"]);
    assert!(err.contains("PIN"), "{err}");

    // Admin PIN change, wrong admin PIN.
    e.ok(&[
        "pin",
        "change",
        "--so",
        "--so-pin",
        SO_PIN,
        "--new-pin",
        "87654321",
    ]);
    let err = e.fail(&[
        "pin",
        "change",
        "--so",
        "--so-pin",
        SO_PIN,
        "--new-pin",
        "11112222",
    ]);
    assert!(err.contains("retries left"), "{err}");

    // Lock the user PIN, then unblock it.
    for left in (0..5).rev() {
        let err = e.fail(&["--pin", "999999", "container", "create", "x"]);
        if left > 0 {
            assert!(err.contains(&format!("{left} retries left")), "{err}");
        } else {
            assert!(err.contains("locked") || err.contains("0 retries"), "{err}");
        }
    }
    let err = e.fail(&["--pin", PIN, "container", "create", "x"]);
    assert!(err.contains("locked"), "{err}");
    assert!(e.ok(&["pin", "info"]).contains("LOCKED"));
    let err = e.fail(&["pin", "unblock", "--so-pin", SO_PIN, "--new-pin", "222222"]);
    assert!(err.contains("retries left"), "{err}");
    e.ok(&[
        "pin",
        "unblock",
        "--so-pin",
        "87654321",
        "--new-pin",
        "222222",
    ]);
    e.ok(&["--pin", "222222", "container", "create", "x"]);
    assert_eq!(e.json(&["pin", "info"])["user_pin"]["remaining"], 5);
}

#[test]
fn container_create_list_delete() {
    let e = Env::new();
    e.token("t");
    e.ok(&["--pin", PIN, "container", "create", "one"]);
    e.ok(&["--pin", PIN, "container", "create", "two", "--id", "a1b2"]);
    let list = e.json(&["container", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let two = list.iter().find(|c| c["name"] == "two").unwrap();
    assert_eq!(two["id"], "a1b2");
    assert!(two["sign"].is_null());
    assert!(e.ok(&["container", "list"]).contains("one"));
    let err = e.fail(&["--pin", PIN, "container", "create", "one"]);
    assert!(err.contains("exists"), "{err}");
    let err = e.fail(&["--pin", PIN, "container", "create", "bad", "--id", "xyz"]);
    assert!(err.contains("hex"), "{err}");
    // Two containers: commands must be told which.
    let err = e.fail(&["key", "pub"]);
    assert!(err.contains("--container"), "{err}");
    let err = e.fail(&["--pin", PIN, "container", "delete", "one"]);
    assert!(err.contains("--yes"), "{err}");
    e.ok(&["--pin", PIN, "container", "delete", "one", "--yes"]);
    let err = e.fail(&["--pin", PIN, "container", "delete", "one", "--yes"]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(e.json(&["container", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn file_write_list_read_delete() {
    let e = Env::new();
    e.token("t");
    let input = e.write("in.bin", b"hello token file\x00\x01\x02");
    e.ok(&[
        "--pin",
        PIN,
        "file",
        "write",
        "notes",
        input.to_str().unwrap(),
    ]);
    e.ok(&[
        "--pin",
        PIN,
        "file",
        "write",
        "secret",
        input.to_str().unwrap(),
        "--read",
        "user",
    ]);
    let list = e.json(&["--pin", PIN, "file", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let notes = list.iter().find(|f| f["name"] == "notes").unwrap();
    assert_eq!(notes["size"], 19);
    assert!(e.ok(&["--pin", PIN, "file", "list"]).contains("notes"));

    // Readable by anyone: no PIN needed; to stdout or to a file.
    let o = e.run(&["file", "read", "notes"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(o.raw_stdout, b"hello token file\x00\x01\x02");
    e.ok(&["file", "read", "notes", "-o", "out.bin"]);
    assert_eq!(e.read("out.bin"), b"hello token file\x00\x01\x02");
    // Readable by the user only: without a PIN (and no terminal) it fails clearly.
    let err = e.fail(&["file", "read", "secret"]);
    assert!(err.contains("PIN"), "{err}");
    e.ok(&["--pin", PIN, "file", "read", "secret", "-o", "s.bin"]);
    assert_eq!(e.read("s.bin"), b"hello token file\x00\x01\x02");

    // Rewrite with other content (a different size).
    let input2 = e.write("in2.bin", b"short");
    e.ok(&[
        "--pin",
        PIN,
        "file",
        "write",
        "notes",
        input2.to_str().unwrap(),
    ]);
    e.ok(&["file", "read", "notes", "-o", "out2.bin"]);
    assert_eq!(e.read("out2.bin"), b"short");

    e.ok(&["--pin", PIN, "file", "delete", "notes"]);
    let err = e.fail(&["file", "read", "notes"]);
    assert!(err.contains("not found"), "{err}");
    let err = e.fail(&["--pin", PIN, "file", "delete", "notes"]);
    assert!(err.contains("not found"), "{err}");
    let err = e.fail(&["--pin", PIN, "file", "write", "x", "missing.bin"]);
    assert!(err.contains("missing.bin"), "{err}");
}

#[test]
fn config_shows_the_data_dir() {
    let e = Env::new();
    let c = e.json(&["config"]);
    assert_eq!(c["data_dir"], e.data_dir().to_str().unwrap());
    assert_eq!(c["kdf_iterations"], 1000);
    assert!(e.ok(&["config"]).contains("UKEY_DATA_DIR"));
    // A broken config is one clear line naming the file.
    std::fs::write(e.dir.path().join("ukey.toml"), "data_dir = [\n").unwrap();
    let err = e.fail(&["config"]);
    assert!(err.contains("ukey.toml"), "{err}");
}

#[test]
fn usage_errors_are_one_line() {
    let e = Env::new();
    let o = e.run(&["key", "gen", "--alg", "dsa", "--container", "c"]);
    assert_eq!(o.code, Some(2));
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.starts_with("ukey: "), "{}", o.stderr);
    let o = e.run(&["--help"]);
    assert_eq!(o.code, Some(0));
    for cmd in [
        "device",
        "app",
        "pin",
        "container",
        "key",
        "cert",
        "file",
        "sign",
        "verify",
        "encrypt",
        "decrypt",
        "softhsm",
        "demo",
    ] {
        assert!(o.stdout.contains(cmd), "help lacks {cmd}");
    }
}

#[test]
fn pin_prompt_on_a_terminal() {
    // `script` (util-linux, Essential on Debian/Ubuntu) gives ukey a terminal.
    let e = Env::new();
    e.token("t");
    let ukey = env!("CARGO_BIN_EXE_ukey");
    let run = |pin: &str, container: &str| {
        let mut child = e
            .cmd_of(std::path::Path::new("script"))
            .args([
                "-qec",
                &format!("{ukey} container create {container}"),
                "/dev/null",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("script(1) from util-linux is needed for the prompt test");
        // Answer once the prompt is up (echo is off by then).
        use std::io::{Read, Write};
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("User PIN for 't': ") {
            assert_eq!(stdout.read(&mut byte).unwrap(), 1, "no prompt: {seen:?}");
            seen.push(byte[0]);
        }
        // rpassword prints the prompt and then turns echo off; typing in between would
        // be echoed by the terminal, so give it ample time to switch.
        std::thread::sleep(std::time::Duration::from_millis(500));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pin}\n").as_bytes())
            .unwrap();
        stdout.read_to_end(&mut seen).unwrap();
        let mut o = common::output(child.wait_with_output().unwrap());
        o.stdout = String::from_utf8_lossy(&seen).into_owned();
        o
    };
    let o = run(PIN, "prompted");
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("User PIN for 't':"), "{}", o.stdout);
    // No echo: the PIN itself is not on the terminal.
    assert!(!o.stdout.contains(PIN), "{}", o.stdout);
    let list = e.json(&["container", "list"]);
    assert_eq!(list[0]["name"], "prompted");
    let o = run("999999", "other");
    assert_ne!(o.code, Some(0));
    assert!(o.stdout.contains("4 retries left"), "{}", o.stdout);
}
