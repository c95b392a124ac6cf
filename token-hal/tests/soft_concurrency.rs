//! Several processes on one soft token: concurrent writers lose nothing, and concurrent
//! wrong PINs never get more attempts than the limit.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod soft_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use soft_common::*;
use token_hal::crypto::{KeyAlg, SignMech, sm2};
use token_hal::soft::{self, DEFAULT_DEV_AUTH_KEY};
use token_hal::{AppParams, Attr, Device, Error, KeyRef, KeyUsage, PinType, Rights};

const PER_WRITER: usize = 12;
const HAMMER_RETRIES: u32 = 6;
const HAMMER_TRIES: usize = 15;

fn db() -> PathBuf {
    PathBuf::from(std::env::var("UKEY_SOFT_DB").unwrap())
}

/// Waits until `go` exists, so that the children start together.
fn wait_go() {
    let go = PathBuf::from(std::env::var("UKEY_SOFT_GO").unwrap());
    let t = Instant::now();
    while !go.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "no start signal");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn spawn(test: &str, role: &str, db: &Path, go: &Path, tag: &str) -> Child {
    child(test, role)
        .env("UKEY_SOFT_DB", db)
        .env("UKEY_SOFT_GO", go)
        .env("UKEY_SOFT_TAG", tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn writer() {
    let tag = std::env::var("UKEY_SOFT_TAG").unwrap();
    let dev = soft::open_soft_device_with(&db(), &opts()).unwrap();
    let app = user_app(&dev);
    wait_go();
    for i in 0..PER_WRITER {
        let name = format!("{tag}-{i:02}");
        app.create_container(&name, None).unwrap();
        app.generate_key(&name, KeyUsage::Sign, KeyAlg::Sm2, false)
            .unwrap();
        app.create_object(
            true,
            &[
                Attr::public(3, name.as_bytes().to_vec()),
                Attr::sensitive(0x11, format!("v-{name}").into_bytes()),
            ],
        )
        .unwrap();
        app.create_file(&name, 8, Rights::ANYONE, Rights::ANYONE)
            .unwrap();
        app.write_file(&name, 0, tag.as_bytes()).unwrap();
        // Another process's writes are visible at once.
        assert!(app.list_containers().unwrap().len() > i);
    }
    println!("@@DONE {tag}");
}

#[test]
fn two_writers_lose_nothing() {
    if role().as_deref() == Some("writer") {
        return writer();
    }
    let tmp = tempfile::tempdir().unwrap();
    let (db, dev) = new_token(&tmp.path().join("data"));
    let go = tmp.path().join("go");
    let kids: Vec<Child> = ["pa", "pb"]
        .iter()
        .map(|tag| spawn("two_writers_lose_nothing", "writer", &db, &go, tag))
        .collect();
    std::fs::write(&go, b"").unwrap();
    for (k, tag) in kids.into_iter().zip(["pa", "pb"]) {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "writer {tag} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(report_lines(&out.stdout), vec![format!("@@DONE {tag}")]);
    }
    let app = user_app(&dev);
    let containers = app.list_containers().unwrap();
    let objects = app.list_objects().unwrap();
    let files = app.list_files().unwrap();
    assert_eq!(containers.len(), 2 * PER_WRITER);
    assert_eq!(objects.len(), 2 * PER_WRITER);
    assert_eq!(files.len(), 2 * PER_WRITER);
    let mech = SignMech::Sm2Sm3 {
        id: sm2::DEFAULT_ID.to_vec(),
    };
    for tag in ["pa", "pb"] {
        for i in 0..PER_WRITER {
            let name = format!("{tag}-{i:02}");
            let c = containers.iter().find(|c| c.name == name).unwrap();
            let k = c.sign.as_ref().unwrap();
            let sig = app
                .sign(&KeyRef::active(&name, KeyUsage::Sign), &mech, b"m")
                .unwrap();
            k.public_key.verify(&mech, b"m", &sig).unwrap();
            let o = objects
                .iter()
                .find(|o| &**o.get(3).unwrap().value == name.as_bytes())
                .unwrap();
            assert_eq!(
                &**o.get(0x11).unwrap().value,
                format!("v-{name}").as_bytes()
            );
            assert_eq!(&app.read_file(&name, 0, 2).unwrap(), tag.as_bytes());
        }
    }
    dev.check_integrity().unwrap();
}

fn hammer() {
    let dev = soft::open_soft_device_with(&db(), &opts()).unwrap();
    let app = dev.open_app("hammer").unwrap();
    wait_go();
    let (mut incorrect, mut locked) = (0, 0);
    for _ in 0..HAMMER_TRIES {
        match app.verify_pin(PinType::User, &"wrong-pin".into()) {
            Err(Error::PinIncorrect { .. }) => incorrect += 1,
            Err(Error::PinLocked) => locked += 1,
            other => panic!("unexpected: {other:?}"),
        }
    }
    println!("@@COUNTS {incorrect} {locked}");
}

#[test]
fn two_processes_hammering_wrong_pins_get_no_more_than_the_limit() {
    if role().as_deref() == Some("hammer") {
        return hammer();
    }
    let tmp = tempfile::tempdir().unwrap();
    let (db, dev) = new_token(&tmp.path().join("data"));
    let mut p = AppParams::new(ADMIN.into(), Some(USER.into()));
    p.user_retries = HAMMER_RETRIES;
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
    dev.create_app("hammer", &p).unwrap();
    let go = tmp.path().join("go");
    let test = "two_processes_hammering_wrong_pins_get_no_more_than_the_limit";
    let kids: Vec<Child> = ["h1", "h2"]
        .iter()
        .map(|tag| spawn(test, "hammer", &db, &go, tag))
        .collect();
    std::fs::write(&go, b"").unwrap();
    let (mut incorrect, mut locked) = (0u32, 0u32);
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "hammer failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = report_lines(&out.stdout);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let n: Vec<u32> = lines[0]
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        incorrect += n[0];
        locked += n[1];
    }
    // Never more wrong attempts than the limit; each wrong attempt consumed one.
    assert!(incorrect <= HAMMER_RETRIES, "{incorrect} attempts accepted");
    assert_eq!(incorrect, HAMMER_RETRIES);
    assert_eq!(locked as usize, 2 * HAMMER_TRIES - HAMMER_RETRIES as usize);
    let app = dev.open_app("hammer").unwrap();
    assert!(app.pin_info(PinType::User).unwrap().locked());
    assert!(matches!(
        app.verify_pin(PinType::User, &USER.into()),
        Err(Error::PinLocked)
    ));
}
