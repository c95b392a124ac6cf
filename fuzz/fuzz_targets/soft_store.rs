//! The soft-token store decoder against a corrupted database file: a real store (an
//! application with PINs, a container with an SM2 key pair and certificate, a file and a
//! generic object) is patched at offsets the input chooses, or truncated, and then opened
//! and read through the `Device`/`Application` API: schema and version checks, the PIN
//! wraps, the sealed key and attribute records, certificates, files, objects.
//! Invariants: nothing panics; the unpatched store opens and serves everything; a store
//! whose sealed records were tampered with never yields a signature that does not verify
//! under the container's public key.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use token_hal::Device;
use token_hal::crypto::{SignMech, sm2::DEFAULT_ID};
use token_hal::model::{Attr, KeyRef, KeyUsage, Pin, PinType, Rights};
use token_hal::soft::{self, devkey_path};
use ukey_fuzz::{APP, Reader, USER_PIN};

struct Template {
    db: Vec<u8>,
    devkey: Vec<u8>,
    dir: PathBuf,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = ukey_fuzz::scratch_dir("store");
        let (db, dev) = ukey_fuzz::make_token(&dir.join("template"), "storedev");
        let app = dev.open_app(APP).expect("app");
        app.verify_pin(PinType::User, &Pin::new(USER_PIN))
            .expect("login");
        app.create_container("c1", None).expect("container");
        app.generate_key("c1", KeyUsage::Sign, token_hal::crypto::KeyAlg::Sm2, false)
            .expect("key");
        let cert = include_bytes!("../data/sign.cert.der");
        let _ = app.import_cert("c1", KeyUsage::Sign, cert);
        app.create_file("f1", 64, Rights::ANYONE, Rights::USER)
            .expect("file");
        app.write_file("f1", 0, b"file content").expect("write");
        app.create_object(
            true,
            &[Attr {
                ty: 0x11,
                value: b"secret object".to_vec().into(),
                sensitive: true,
            }],
        )
        .expect("object");
        drop(app);
        drop(dev);
        Template {
            db: std::fs::read(&db).expect("read the store"),
            devkey: std::fs::read(devkey_path(&db)).expect("read the device key"),
            dir,
        }
    })
}

/// Everything a client reads; returns whether all of it worked.
fn exercise(path: &std::path::Path) -> bool {
    let Ok(dev) = soft::open_soft_device_with(path, &ukey_fuzz::fast_opts()) else {
        return false;
    };
    let mut ok = dev.info().is_ok();
    ok &= dev.list_apps().is_ok();
    let Ok(app) = dev.open_app(APP) else {
        return false;
    };
    ok &= app.info().is_ok();
    ok &= app.pin_info(PinType::User).is_ok();
    ok &= app.verify_pin(PinType::User, &Pin::new(USER_PIN)).is_ok();
    ok &= app.list_containers().is_ok();
    match app.public_key("c1", KeyUsage::Sign) {
        Ok(pk) => {
            let mech = SignMech::Sm2Sm3 {
                id: DEFAULT_ID.to_vec(),
            };
            let key = KeyRef::Container {
                container: "c1".into(),
                usage: KeyUsage::Sign,
            };
            match app.sign(&key, &mech, b"message") {
                Ok(sig) => assert!(
                    pk.verify(&mech, b"message", &sig).is_ok(),
                    "a signature from the store that its own public key rejects"
                ),
                Err(_) => ok = false,
            }
        }
        Err(_) => ok = false,
    }
    ok &= app.cert("c1", KeyUsage::Sign).is_ok();
    ok &= app.list_files().is_ok();
    ok &= app
        .read_file("f1", 0, 12)
        .map(|d| d == b"file content")
        .unwrap_or(false);
    match app.list_objects() {
        Ok(objs) => {
            for o in objs {
                ok &= app.get_object(o.id).is_ok();
            }
        }
        Err(_) => ok = false,
    }
    app.logout();
    ok
}

fuzz_target!(|data: &[u8]| {
    let t = template();
    let mut db = t.db.clone();
    let mut devkey = t.devkey.clone();
    let mut r = Reader::new(data);
    let mut changed = false;
    while !r.done() {
        match r.u8() % 8 {
            0 => {
                let n = usize::from(r.u16()) * 16 % (db.len() + 1);
                db.truncate(n);
            }
            1 => {
                let at = usize::from(r.u8()) % devkey.len().max(1);
                if let Some(b) = devkey.get_mut(at) {
                    *b ^= r.u8().max(1);
                }
            }
            _ => {
                let at = (r.u32() as usize) % db.len().max(1);
                for (i, b) in r.bytes(16).into_iter().enumerate() {
                    if let Some(x) = db.get_mut(at + i) {
                        *x = b;
                    }
                }
            }
        }
        changed = true;
    }
    let dir = t.dir.join("run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("run dir");
    let path = dir.join("fuzz.ukdb");
    std::fs::write(&path, &db).expect("write the store");
    std::fs::write(devkey_path(&path), &devkey).expect("write the device key");
    let ok = exercise(&path);
    if !changed {
        assert!(ok, "the intact store did not serve everything");
    }
});
