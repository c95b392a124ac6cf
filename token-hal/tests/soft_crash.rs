//! Crash consistency: a child process writes to a soft token without pause and is killed
//! with SIGKILL at random points, again and again. After every kill the token must open
//! and be consistent: each container, key, certificate, file and object complete, the
//! master key unwrapping with the right PIN, and the counters sane.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod soft_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use soft_common::*;
use token_hal::crypto::{EncMech, KeyAlg, PrivateKey, PublicKey, SignMech, sm2};
use token_hal::soft::{self, SoftDevice};
use token_hal::{Application, Attr, Device, Error, KeyRef, KeyState, KeyUsage, PinType, Rights};

const KILLS: usize = 50;
/// The user PIN flips between these two while the child runs.
const PIN_A: &str = USER;
const PIN_B: &str = "user-pin-other";

fn sm2_sign() -> SignMech {
    SignMech::Sm2Sm3 {
        id: sm2::DEFAULT_ID.to_vec(),
    }
}

/// Logs in with whichever of the two PINs is current; returns it.
fn login(app: &dyn Application) -> &'static str {
    match app.verify_pin(PinType::User, &PIN_A.into()) {
        Ok(()) => PIN_A,
        Err(Error::PinIncorrect { .. }) => {
            app.verify_pin(PinType::User, &PIN_B.into()).unwrap();
            PIN_B
        }
        Err(e) => panic!("login: {e}"),
    }
}

fn index_of(name: &str) -> u32 {
    name.trim_start_matches('c').parse().unwrap()
}

/// The test data the child needs, prepared once by the parent (the key files' PBES2 is
/// slow in debug builds).
struct Material {
    enc_pkcs8: Vec<u8>,
    v1: Vec<u8>,
    v2: Vec<u8>,
}

fn material_dir_files(dir: &Path) -> Material {
    Material {
        enc_pkcs8: std::fs::read(dir.join("enc.p8")).unwrap(),
        v1: std::fs::read(dir.join("v1.der")).unwrap(),
        v2: std::fs::read(dir.join("v2.der")).unwrap(),
    }
}

/// The DER of the two certificates, as the token stores them (it accepts PEM).
fn cert_ders(dir: &Path, enc: &PrivateKey) -> (Vec<u8>, Vec<u8>) {
    let (_, dev) = new_token(dir);
    let app = user_app(&dev);
    app.create_container("scratch", None).unwrap();
    app.import_key("scratch", KeyUsage::Encrypt, enc, false)
        .unwrap();
    app.import_cert("scratch", KeyUsage::Encrypt, &gm("enc.cert.v1.pem"))
        .unwrap();
    let v1 = app.cert("scratch", KeyUsage::Encrypt).unwrap().unwrap();
    app.import_cert("scratch", KeyUsage::Encrypt, &gm("enc.cert.v2-renewed.pem"))
        .unwrap();
    let v2 = app.cert("scratch", KeyUsage::Encrypt).unwrap().unwrap();
    assert_ne!(v1, v2);
    (v1, v2)
}

/// The child: writes forever.
fn writer(db: &Path, material: &Path) -> ! {
    let m = material_dir_files(material);
    let enc = PrivateKey::from_pkcs8_der(&m.enc_pkcs8).unwrap();
    let dev = soft::open_soft_device_with(db, &opts()).unwrap();
    let app = dev.open_app("app").unwrap();
    let mut pin = login(&*app);
    let mut i = app
        .list_containers()
        .unwrap()
        .iter()
        .map(|c| index_of(&c.name))
        .max()
        .map_or(0, |n| n + 1);
    println!("@@READY {i}");
    std::io::stdout().flush().unwrap();
    loop {
        // Keep the token small: drop what is older than five rounds.
        for c in app.list_containers().unwrap() {
            if index_of(&c.name) + 5 < i {
                app.delete_container(&c.name).unwrap();
            }
        }
        for f in app.list_files().unwrap() {
            if index_of(&f.name) + 5 < i {
                app.delete_file(&f.name).unwrap();
            }
        }
        for o in app.list_objects().unwrap() {
            let label = String::from_utf8(o.get(3).unwrap().value.to_vec()).unwrap();
            if index_of(&label) + 5 < i {
                app.delete_object(o.id).unwrap();
            }
        }
        let name = format!("c{i:05}");
        app.create_container(&name, None).unwrap();
        app.generate_key(&name, KeyUsage::Sign, KeyAlg::Sm2, false)
            .unwrap();
        app.import_key(&name, KeyUsage::Encrypt, &enc, false)
            .unwrap();
        app.import_cert(&name, KeyUsage::Encrypt, &m.v1).unwrap();
        app.import_cert(&name, KeyUsage::Encrypt, &m.v2).unwrap();
        app.generate_key(&name, KeyUsage::Encrypt, KeyAlg::Sm2, true)
            .unwrap();
        app.create_file(&name, 64, Rights::ANYONE, Rights::USER)
            .unwrap();
        app.write_file(&name, 0, &[(i % 251) as u8 + 1; 64])
            .unwrap();
        app.create_object(
            true,
            &[
                Attr::public(3, name.as_bytes().to_vec()),
                Attr::sensitive(0x11, format!("secret-{name}").into_bytes()),
            ],
        )
        .unwrap();
        if i % 2 == 0 {
            let next = if pin == PIN_A { PIN_B } else { PIN_A };
            app.change_pin(PinType::User, &pin.into(), &next.into())
                .unwrap();
            pin = next;
        }
        i += 1;
    }
}

/// Checks the token after a kill. Returns the highest container index seen.
fn check(db: &Path, m: &Material, enc_pub: &PublicKey, round: usize) -> Option<u32> {
    let ctx = |what: &str| format!("after kill {round}: {what}");
    let dev = SoftDevice::open(db, &opts()).unwrap_or_else(|e| panic!("{}", ctx(&e.to_string())));
    dev.check_integrity()
        .unwrap_or_else(|e| panic!("{}", ctx(&e.to_string())));
    let admin = dev.open_app("app").unwrap();
    admin.verify_pin(PinType::Admin, &ADMIN.into()).unwrap();
    let app = dev.open_app("app").unwrap();
    login(&*app);
    for t in [PinType::Admin, PinType::User] {
        let info = app.pin_info(t).unwrap();
        assert!(info.initialized, "{}", ctx("PIN uninitialised"));
        assert_eq!(info.remaining, info.max_retries, "{}", ctx("counter"));
    }
    let session_ct = sm2::cipher_der_to_raw(&gm("sessionkey.sm2enc.der")).unwrap();
    let session_key = gm("sessionkey.bin");
    let containers = app.list_containers().unwrap();
    assert!(
        containers.len() <= 8,
        "{}",
        ctx("old containers not deleted")
    );
    let mut max = None;
    for c in &containers {
        let at = |what: &str| ctx(&format!("container {}: {what}", c.name));
        max = max.max(Some(index_of(&c.name)));
        assert_eq!(c.id, c.name.as_bytes(), "{}", at("id"));
        if let Some(k) = &c.sign {
            assert_eq!(k.state, KeyState::Active);
            assert!(k.certs.is_empty(), "{}", at("sign certs"));
            let sig = app
                .sign(&KeyRef::Id(k.id), &sm2_sign(), b"probe")
                .unwrap_or_else(|e| panic!("{}", at(&e.to_string())));
            k.public_key.verify(&sm2_sign(), b"probe", &sig).unwrap();
        }
        // The imported encryption key goes through: no certs, v1, v1+v2, then retired.
        let imported_certs = |certs: &[token_hal::CertRecord]| {
            let ders: Vec<(&[u8], bool)> = certs
                .iter()
                .map(|c| (c.der.as_slice(), c.current))
                .collect();
            assert!(
                ders.is_empty()
                    || ders == [(m.v1.as_slice(), true)]
                    || ders == [(m.v2.as_slice(), true), (m.v1.as_slice(), false)],
                "{}",
                at("certificate history")
            );
        };
        match (&c.enc, c.retired.as_slice()) {
            (None, []) => {}
            (Some(k), []) => {
                assert_eq!(&k.public_key, enc_pub, "{}", at("imported key"));
                imported_certs(&k.certs);
            }
            (Some(k), [old]) => {
                assert_ne!(&k.public_key, enc_pub);
                assert!(k.certs.is_empty());
                assert_eq!(&old.public_key, enc_pub);
                assert_eq!(old.state, KeyState::Retired);
                assert_eq!(old.certs.len(), 2, "{}", at("retired certs"));
                imported_certs(&old.certs);
                let pt = app
                    .decrypt(&KeyRef::Id(old.id), &EncMech::Sm2, &session_ct)
                    .unwrap();
                assert_eq!(&*pt, &session_key[..], "{}", at("retired decrypt"));
                assert!(matches!(
                    app.sign(&KeyRef::Id(old.id), &sm2_sign(), b"x"),
                    Err(Error::KeyUsage(_))
                ));
                let ct = k.public_key.encrypt(&EncMech::Sm2, b"new key").unwrap();
                let pt = app.decrypt(&KeyRef::Id(k.id), &EncMech::Sm2, &ct).unwrap();
                assert_eq!(&*pt, b"new key");
            }
            _ => panic!("{}", at("unexpected key set")),
        }
    }
    for f in app.list_files().unwrap() {
        let data = app.read_file(&f.name, 0, 64).unwrap();
        assert_eq!(f.size, 64);
        let want = (index_of(&f.name) % 251) as u8 + 1;
        assert!(
            data.iter().all(|b| *b == 0) || data.iter().all(|b| *b == want),
            "{}",
            ctx(&format!("file {} torn", f.name))
        );
    }
    for o in app.list_objects().unwrap() {
        assert!(o.private);
        let label = String::from_utf8(o.get(3).unwrap().value.to_vec()).unwrap();
        let secret = o.get(0x11).unwrap();
        assert_eq!(
            &**secret.value,
            format!("secret-{label}").as_bytes(),
            "{}",
            ctx("object")
        );
    }
    max
}

#[test]
fn sigkill_at_random_points_leaves_the_token_consistent() {
    if role().as_deref() == Some("writer") {
        let db = PathBuf::from(std::env::var("UKEY_SOFT_DB").unwrap());
        let material = PathBuf::from(std::env::var("UKEY_SOFT_MATERIAL").unwrap());
        writer(&db, &material);
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (db, dev) = new_token(&data);
    drop(dev);
    // Material for the child.
    let mdir = tmp.path().join("material");
    std::fs::create_dir(&mdir).unwrap();
    let enc = PrivateKey::from_file_bytes(&gm("enc.key.pem"), Some(b"vectorpass")).unwrap();
    std::fs::write(mdir.join("enc.p8"), &*enc.to_pkcs8_der()).unwrap();
    let (v1, v2) = cert_ders(&tmp.path().join("scratch"), &enc);
    std::fs::write(mdir.join("v1.der"), v1).unwrap();
    std::fs::write(mdir.join("v2.der"), v2).unwrap();
    let m = material_dir_files(&mdir);
    let enc_pub = enc.public_key().unwrap();

    let started = Instant::now();
    let mut progress = Vec::new();
    for round in 0..KILLS {
        let mut c = child(
            "sigkill_at_random_points_leaves_the_token_consistent",
            "writer",
        )
        .env("UKEY_SOFT_DB", &db)
        .env("UKEY_SOFT_MATERIAL", &mdir)
        .env("UKEY_DATA_DIR", &data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        let ready = wait_for_line(&mut c, "@@READY");
        assert!(ready.is_some(), "round {round}: the writer did not start");
        std::thread::sleep(Duration::from_millis(random_below(250)));
        // Still writing when killed (it never stops on its own).
        assert!(
            c.try_wait().unwrap().is_none(),
            "round {round}: writer died"
        );
        c.kill().unwrap(); // SIGKILL
        let status = c.wait().unwrap();
        assert!(!status.success());
        progress.push(check(&db, &m, &enc_pub, round));
    }
    let last = progress.iter().flatten().max().copied().unwrap_or(0);
    eprintln!(
        "{KILLS} kills in {:.1} s; {} containers written in all",
        started.elapsed().as_secs_f64(),
        last + 1
    );
    // The kills landed while real work was going on.
    assert!(last >= 10, "the writer made little progress ({last})");
}
