//! Unit tests of the soft token: every model operation, PINs, secrets at rest, and
//! damaged or newer databases.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::Connection;
use tempfile::TempDir;

use super::*;
use crate::crypto::{EncMech, KeyAlg, PrivateKey, SignMech, sm2};
use crate::error::Error;
use crate::model::*;
use crate::token::{Application, Device};

const ADMIN: &str = "admin-pin-7773";
const USER: &str = "user-pin-5551";
const GM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/gm-interop");

fn gm(name: &str) -> Vec<u8> {
    fs::read(Path::new(GM).join(name)).unwrap()
}

/// The gm-interop encryption key as PKCS#8 DER (its PBES2 is slow in debug builds, so
/// it is decrypted once).
fn enc_key() -> PrivateKey {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    let der = DER.get_or_init(|| {
        PrivateKey::from_file_bytes(&gm("enc.key.pem"), Some(b"vectorpass"))
            .unwrap()
            .to_pkcs8_der()
            .to_vec()
    });
    PrivateKey::from_pkcs8_der(der).unwrap()
}

fn sign_key() -> PrivateKey {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    let der = DER.get_or_init(|| {
        PrivateKey::from_file_bytes(&gm("sign.key.pem"), Some(b"vectorpass"))
            .unwrap()
            .to_pkcs8_der()
            .to_vec()
    });
    PrivateKey::from_pkcs8_der(der).unwrap()
}

fn opts() -> SoftOptions {
    SoftOptions {
        kdf_iterations: 1000,
        busy_timeout: Duration::from_secs(10),
    }
}

struct Fx {
    dir: TempDir,
    path: PathBuf,
    dev: SoftDevice,
}

impl Fx {
    fn reopen(&self) -> SoftDevice {
        SoftDevice::open(&self.path, &opts()).unwrap()
    }
    fn app(&self) -> Arc<dyn Application> {
        self.dev.open_app("app").unwrap()
    }
    fn user(&self) -> Arc<dyn Application> {
        let a = self.app();
        a.verify_pin(PinType::User, &USER.into()).unwrap();
        a
    }
}

fn params() -> AppParams {
    AppParams::new(ADMIN.into(), Some(USER.into()))
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let path = create_soft_device(dir.path(), "test dev", &opts()).unwrap();
    let dev = SoftDevice::open(&path, &opts()).unwrap();
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
    dev.create_app("app", &params()).unwrap();
    Fx { dir, path, dev }
}

fn sm2_sign() -> SignMech {
    SignMech::Sm2Sm3 {
        id: sm2::DEFAULT_ID.to_vec(),
    }
}

// --- device -----------------------------------------------------------------------------

#[test]
fn device_info_label_and_files() {
    let fx = fixture();
    let info = fx.dev.info().unwrap();
    assert!(
        info.serial.starts_with("UKS") && info.serial.len() == 16,
        "{}",
        info.serial
    );
    assert!(info.serial[3..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(info.label, "test dev");
    assert_eq!(info.manufacturer, "ukey");
    assert_eq!(info.model, "soft token");
    assert_eq!(info.backend, BackendKind::Soft);
    assert!(!info.removable);
    assert_eq!(
        fx.path.file_name().unwrap().to_str().unwrap(),
        format!("{}.ukdb", info.serial)
    );
    // The device key sits beside the database, readable by the owner only.
    let key = devkey_path(&fx.path);
    let meta = fs::metadata(&key).unwrap();
    assert_eq!(meta.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let db_mode = fs::metadata(&fx.path).unwrap().permissions().mode();
        assert_eq!(db_mode & 0o777, 0o600);
    }
    // No temporary files are left behind.
    let names: Vec<String> = fs::read_dir(fx.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    fx.dev.set_label("renamed").unwrap();
    assert_eq!(fx.reopen().info().unwrap().label, "renamed");
    assert!(matches!(
        fx.dev.set_label(&"x".repeat(33)),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(fx.reopen().info().unwrap().serial, info.serial);
}

#[test]
fn device_authentication() {
    let fx = fixture();
    let dev = fx.reopen();
    // Creating and deleting applications needs device authentication.
    assert!(matches!(
        dev.create_app("x", &params()),
        Err(Error::DeviceAuthRequired)
    ));
    assert!(matches!(
        dev.delete_app("app"),
        Err(Error::DeviceAuthRequired)
    ));
    // No challenge, then a wrong cryptogram.
    assert!(matches!(
        dev.dev_auth(&[0; 16]),
        Err(Error::DeviceAuthFailed)
    ));
    dev.gen_random(16).unwrap();
    assert!(matches!(
        dev.dev_auth(&[0; 16]),
        Err(Error::DeviceAuthFailed)
    ));
    // A wrong key.
    assert!(matches!(
        dev.authenticate_with_key(b"0000000000000000"),
        Err(Error::DeviceAuthFailed)
    ));
    // The challenge is used once.
    let ch = dev.gen_random(16).unwrap();
    let mut block = [0u8; 16];
    block.copy_from_slice(&ch);
    let crypt = crate::crypto::sym::sm4_ecb_encrypt_block(DEFAULT_DEV_AUTH_KEY, &block).unwrap();
    dev.dev_auth(&crypt).unwrap();
    assert!(matches!(dev.dev_auth(&crypt), Err(Error::DeviceAuthFailed)));
    assert!(matches!(
        dev.change_dev_auth_key(b"new-key-16-bytes"),
        Err(Error::DeviceAuthRequired)
    ));
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
    assert!(matches!(
        dev.change_dev_auth_key(b"short"),
        Err(Error::InvalidArgument(_))
    ));
    dev.change_dev_auth_key(b"new-key-16-bytes").unwrap();
    let other = fx.reopen();
    assert!(matches!(
        other.authenticate_with_key(DEFAULT_DEV_AUTH_KEY),
        Err(Error::DeviceAuthFailed)
    ));
    other.authenticate_with_key(b"new-key-16-bytes").unwrap();
    other.create_app("second", &params()).unwrap();
    assert_eq!(other.list_apps().unwrap(), vec!["app", "second"]);

    // Without its device key, a device cannot authenticate, and the error names the file.
    fs::remove_file(devkey_path(&fx.path)).unwrap();
    let e = fx
        .reopen()
        .authenticate_with_key(b"new-key-16-bytes")
        .unwrap_err();
    assert!(e.to_string().contains(".devkey"), "{e}");
}

// --- applications -------------------------------------------------------------------------

#[test]
fn applications_create_list_delete() {
    let fx = fixture();
    assert!(matches!(
        fx.dev.create_app("app", &params()),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        fx.dev.create_app("", &params()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        fx.dev.create_app(&"n".repeat(33), &params()),
        Err(Error::InvalidArgument(_))
    ));
    let mut p = params();
    p.admin_pin = "123".into();
    assert!(matches!(
        fx.dev.create_app("b", &p),
        Err(Error::PinInvalid(_))
    ));
    let mut p = params();
    p.user_retries = 0;
    assert!(matches!(
        fx.dev.create_app("b", &p),
        Err(Error::InvalidArgument(_))
    ));

    fx.dev.create_app("b", &params()).unwrap();
    assert_eq!(fx.dev.list_apps().unwrap(), vec!["app", "b"]);
    let info = fx.dev.open_app("b").unwrap().info().unwrap();
    assert_eq!(info.name, "b");
    assert_eq!(info.admin_pin.max_retries, DEFAULT_PIN_RETRIES);
    assert_eq!(info.user_pin.remaining, DEFAULT_PIN_RETRIES);
    assert!(info.user_pin.initialized && info.user_pin.default_pin);
    assert_eq!(info.create_file_rights, Rights::ANYONE);

    // A handle notices its application was deleted, and re-created.
    let b = fx.dev.open_app("b").unwrap();
    b.verify_pin(PinType::User, &USER.into()).unwrap();
    fx.dev.delete_app("b").unwrap();
    assert!(matches!(fx.dev.delete_app("b"), Err(Error::NotFound(_))));
    assert!(matches!(fx.dev.open_app("b"), Err(Error::NotFound(_))));
    assert!(matches!(b.list_containers(), Err(Error::NotFound(_))));
    fx.dev.create_app("b", &params()).unwrap();
    assert!(matches!(
        b.create_container("c", None),
        Err(Error::NotFound(_))
    ));
    assert_eq!(b.login_state(), LoginState::None);
    assert_eq!(fx.dev.list_apps().unwrap(), vec!["app", "b"]);
}

// --- PINs ---------------------------------------------------------------------------------

#[test]
fn wrong_pin_reports_retries_and_persists() {
    let fx = fixture();
    let app = fx.app();
    let e = app
        .verify_pin(PinType::User, &"wrong-pin".into())
        .unwrap_err();
    assert!(
        matches!(e, Error::PinIncorrect { retries_left: 9 }),
        "{e:?}"
    );
    let e = app
        .verify_pin(PinType::User, &"wrong-pin".into())
        .unwrap_err();
    assert!(
        matches!(e, Error::PinIncorrect { retries_left: 8 }),
        "{e:?}"
    );
    assert_eq!(app.login_state(), LoginState::None);
    // Another process (here: another open) sees the counter.
    let dev2 = fx.reopen();
    let app2 = dev2.open_app("app").unwrap();
    assert_eq!(app2.pin_info(PinType::User).unwrap().remaining, 8);
    assert_eq!(app2.pin_info(PinType::Admin).unwrap().remaining, 10);
    // The right PIN restores the counter.
    app2.verify_pin(PinType::User, &USER.into()).unwrap();
    assert_eq!(app2.login_state(), LoginState::User);
    assert_eq!(app.pin_info(PinType::User).unwrap().remaining, 10);
    // Logins are per handle.
    assert_eq!(app.login_state(), LoginState::None);
    app2.logout();
    assert_eq!(app2.login_state(), LoginState::None);
    assert!(matches!(
        app2.create_container("c", None),
        Err(Error::NotLoggedIn)
    ));
}

#[test]
fn pin_lockout_survives_reopen_and_unblock() {
    let fx = fixture();
    let mut p = params();
    p.user_retries = 3;
    p.admin_retries = 2;
    fx.dev.create_app("small", &p).unwrap();
    let app = fx.dev.open_app("small").unwrap();
    for left in [2, 1, 0] {
        let e = app
            .verify_pin(PinType::User, &"bad-pin".into())
            .unwrap_err();
        assert!(
            matches!(e, Error::PinIncorrect { retries_left } if retries_left == left),
            "{e:?}"
        );
    }
    // Locked: even the right PIN is refused, in this process and after a restart.
    assert!(matches!(
        app.verify_pin(PinType::User, &USER.into()),
        Err(Error::PinLocked)
    ));
    let again = fx.reopen().open_app("small").unwrap();
    assert!(again.pin_info(PinType::User).unwrap().locked());
    assert!(matches!(
        again.verify_pin(PinType::User, &USER.into()),
        Err(Error::PinLocked)
    ));
    assert!(matches!(
        again.change_pin(PinType::User, &USER.into(), &"newpin99".into()),
        Err(Error::PinLocked)
    ));
    // Unblock needs the admin PIN, and a wrong one costs an admin attempt.
    let e = again
        .unblock_pin(&"bad-admin".into(), &"fresh-pin".into())
        .unwrap_err();
    assert!(
        matches!(e, Error::PinIncorrect { retries_left: 1 }),
        "{e:?}"
    );
    assert!(matches!(
        again.unblock_pin(&ADMIN.into(), &"abc".into()),
        Err(Error::PinInvalid(_))
    ));
    again
        .unblock_pin(&ADMIN.into(), &"fresh-pin".into())
        .unwrap();
    let info = again.pin_info(PinType::User).unwrap();
    assert_eq!((info.remaining, info.max_retries), (3, 3));
    assert!(!info.default_pin);
    assert_eq!(again.pin_info(PinType::Admin).unwrap().remaining, 2);
    assert!(matches!(
        again.verify_pin(PinType::User, &USER.into()),
        Err(Error::PinIncorrect { retries_left: 2 })
    ));
    again
        .verify_pin(PinType::User, &"fresh-pin".into())
        .unwrap();
    // The master key survived: the new PIN opens what the old one sealed.
    again
        .create_object(true, &[Attr::sensitive(1, b"s3cret".to_vec())])
        .unwrap();

    // A locked admin PIN stays locked too.
    for _ in 0..2 {
        let _ = again.verify_pin(PinType::Admin, &"bad-admin".into());
    }
    assert!(matches!(
        fx.reopen()
            .open_app("small")
            .unwrap()
            .verify_pin(PinType::Admin, &ADMIN.into()),
        Err(Error::PinLocked)
    ));
}

#[test]
fn pin_policy_is_checked_without_costing_attempts() {
    let fx = fixture();
    let app = fx.app();
    let long = "x".repeat(256);
    for bad in ["", "abc", long.as_str()] {
        assert!(matches!(
            app.verify_pin(PinType::User, &bad.into()),
            Err(Error::PinInvalid(_))
        ));
        assert!(matches!(
            app.change_pin(PinType::User, &USER.into(), &bad.into()),
            Err(Error::PinInvalid(_))
        ));
    }
    assert_eq!(app.pin_info(PinType::User).unwrap().remaining, 10);
    // The bounds themselves are fine.
    app.change_pin(PinType::User, &USER.into(), &"abcd".into())
        .unwrap();
    let max = "y".repeat(255);
    app.change_pin(PinType::User, &"abcd".into(), &max.as_str().into())
        .unwrap();
    app.verify_pin(PinType::User, &max.as_str().into()).unwrap();
}

#[test]
fn change_pin() {
    let fx = fixture();
    let app = fx.app();
    let e = app
        .change_pin(PinType::Admin, &"not-admin".into(), &"new-admin".into())
        .unwrap_err();
    assert!(matches!(e, Error::PinIncorrect { retries_left: 9 }));
    app.change_pin(PinType::Admin, &ADMIN.into(), &"new-admin".into())
        .unwrap();
    let info = app.pin_info(PinType::Admin).unwrap();
    assert_eq!(info.remaining, 10);
    assert!(!info.default_pin);
    assert!(app.pin_info(PinType::User).unwrap().default_pin);
    let app = fx.reopen().open_app("app").unwrap();
    assert!(matches!(
        app.verify_pin(PinType::Admin, &ADMIN.into()),
        Err(Error::PinIncorrect { .. })
    ));
    app.verify_pin(PinType::Admin, &"new-admin".into()).unwrap();
    assert_eq!(app.login_state(), LoginState::Admin);
    // Changing the user PIN keeps the keys usable.
    let u = fx.user();
    u.create_container("c", None).unwrap();
    u.import_key("c", KeyUsage::Sign, &sign_key(), false)
        .unwrap();
    u.change_pin(PinType::User, &USER.into(), &"other-user".into())
        .unwrap();
    let u = fx.reopen().open_app("app").unwrap();
    u.verify_pin(PinType::User, &"other-user".into()).unwrap();
    let sig = u
        .sign(&KeyRef::active("c", KeyUsage::Sign), &sm2_sign(), b"msg")
        .unwrap();
    u.public_key("c", KeyUsage::Sign)
        .unwrap()
        .verify(&sm2_sign(), b"msg", &sig)
        .unwrap();
}

#[test]
fn init_user_pin_and_wipe() {
    let fx = fixture();
    fx.dev
        .create_app("p11", &AppParams::new(ADMIN.into(), None))
        .unwrap();
    let app = fx.dev.open_app("p11").unwrap();
    let info = app.pin_info(PinType::User).unwrap();
    assert!(!info.initialized);
    assert!(matches!(
        app.verify_pin(PinType::User, &USER.into()),
        Err(Error::PinNotInitialized)
    ));
    assert!(matches!(
        app.init_user_pin(&USER.into()),
        Err(Error::NotLoggedIn)
    ));
    app.verify_pin(PinType::Admin, &ADMIN.into()).unwrap();
    // The SO cannot use user objects.
    assert!(matches!(
        app.create_container("c", None),
        Err(Error::NotLoggedIn)
    ));
    app.init_user_pin(&USER.into()).unwrap();
    assert!(app.pin_info(PinType::User).unwrap().initialized);

    let user = fx.dev.open_app("p11").unwrap();
    user.verify_pin(PinType::User, &USER.into()).unwrap();
    user.create_container("c", None).unwrap();
    user.create_file("f", 4, Rights::ANYONE, Rights::ANYONE)
        .unwrap();
    user.create_object(false, &[Attr::public(3, b"pub".to_vec())])
        .unwrap();

    // Wipe: needs the admin PIN (a wrong one costs an attempt).
    assert!(matches!(
        app.wipe(&USER.into()),
        Err(Error::PinIncorrect { retries_left: 9 })
    ));
    app.wipe(&ADMIN.into()).unwrap();
    assert!(user.list_containers().unwrap().is_empty());
    assert!(user.list_files().unwrap().is_empty());
    assert!(user.list_objects().unwrap().is_empty());
    let info = user.info().unwrap();
    assert!(!info.user_pin.initialized);
    assert_eq!(info.admin_pin.remaining, 10);
    // Every login, in every handle, ended with the wipe.
    assert_eq!(user.login_state(), LoginState::None);
    assert_eq!(app.login_state(), LoginState::None);
    assert!(matches!(
        user.create_container("c", None),
        Err(Error::NotLoggedIn)
    ));
    // The admin PIN still works, and a new user PIN can be set.
    app.verify_pin(PinType::Admin, &ADMIN.into()).unwrap();
    app.init_user_pin(&"second-user".into()).unwrap();
    user.verify_pin(PinType::User, &"second-user".into())
        .unwrap();
    user.create_container("c", None).unwrap();
}

// --- containers, keys, certificates ---------------------------------------------------------

#[test]
fn containers() {
    let fx = fixture();
    let anon = fx.app();
    assert!(matches!(
        anon.create_container("c", None),
        Err(Error::NotLoggedIn)
    ));
    let u = fx.user();
    let c = u.create_container("signing", None).unwrap();
    assert_eq!(c.id, b"signing");
    assert!(c.sign.is_none() && c.enc.is_none());
    u.create_container("other", Some(&[1, 2, 3])).unwrap();
    assert!(matches!(
        u.create_container("signing", Some(b"x")),
        Err(Error::AlreadyExists(_))
    ));
    let e = u.create_container("third", Some(&[1, 2, 3])).unwrap_err();
    assert!(
        matches!(&e, Error::AlreadyExists(m) if m.contains("010203")),
        "{e}"
    );
    assert!(matches!(
        u.create_container("x", Some(&[])),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        u.create_container(&"n".repeat(65), None),
        Err(Error::InvalidArgument(_))
    ));
    u.create_container(&"n".repeat(64), None).unwrap();
    let names: Vec<String> = anon
        .list_containers()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        vec!["n".repeat(64), "other".into(), "signing".into()]
    );
    assert_eq!(anon.container("other").unwrap().id, vec![1, 2, 3]);
    assert!(matches!(anon.container("nope"), Err(Error::NotFound(_))));
    assert!(matches!(
        anon.delete_container("other"),
        Err(Error::NotLoggedIn)
    ));
    u.delete_container("other").unwrap();
    assert!(matches!(
        u.delete_container("other"),
        Err(Error::NotFound(_))
    ));
    // The id is free again.
    u.create_container("again", Some(&[1, 2, 3])).unwrap();
}

#[test]
fn keys_generate_import_and_rekey() {
    let fx = fixture();
    let u = fx.user();
    u.create_container("c", None).unwrap();
    assert!(matches!(
        fx.app()
            .generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, false),
        Err(Error::NotLoggedIn)
    ));
    assert!(matches!(
        u.generate_key("nope", KeyUsage::Sign, KeyAlg::Sm2, false),
        Err(Error::NotFound(_))
    ));
    let sign_pub = u
        .generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    assert_eq!(sign_pub.alg(), KeyAlg::Sm2);
    assert_eq!(u.public_key("c", KeyUsage::Sign).unwrap(), sign_pub);
    assert!(matches!(
        u.generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, false),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        u.import_key("c", KeyUsage::Sign, &sign_key(), false),
        Err(Error::AlreadyExists(_))
    ));
    let sig = u
        .sign(&KeyRef::active("c", KeyUsage::Sign), &sm2_sign(), b"data")
        .unwrap();
    sign_pub.verify(&sm2_sign(), b"data", &sig).unwrap();

    // Encryption pair, then a rekey: the old pair is retired, decrypt-only.
    let enc1 = u
        .generate_key("c", KeyUsage::Encrypt, KeyAlg::Sm2, false)
        .unwrap();
    let ct1 = enc1.encrypt(&EncMech::Sm2, b"for the first key").unwrap();
    assert!(matches!(
        u.generate_key("c", KeyUsage::Encrypt, KeyAlg::Sm2, false),
        Err(Error::AlreadyExists(_))
    ));
    let enc2 = u
        .generate_key("c", KeyUsage::Encrypt, KeyAlg::Sm2, true)
        .unwrap();
    assert_ne!(enc1, enc2);
    let info = fx.app().container("c").unwrap();
    assert_eq!(info.enc.as_ref().unwrap().public_key, enc2);
    assert_eq!(info.retired.len(), 1);
    let retired = &info.retired[0];
    assert_eq!(retired.public_key, enc1);
    assert_eq!(retired.state, KeyState::Retired);
    assert_eq!(retired.usage, KeyUsage::Encrypt);
    assert_eq!(
        &*u.decrypt(&KeyRef::Id(retired.id), &EncMech::Sm2, &ct1)
            .unwrap(),
        b"for the first key"
    );
    assert!(matches!(
        u.sign(&KeyRef::Id(retired.id), &sm2_sign(), b"x"),
        Err(Error::KeyUsage(_))
    ));
    // The active encryption key does not open the old ciphertext.
    assert!(
        u.decrypt(&KeyRef::active("c", KeyUsage::Encrypt), &EncMech::Sm2, &ct1)
            .is_err()
    );
    let ct2 = enc2.encrypt(&EncMech::Sm2, b"second").unwrap();
    assert_eq!(
        &*u.decrypt(&KeyRef::active("c", KeyUsage::Encrypt), &EncMech::Sm2, &ct2)
            .unwrap(),
        b"second"
    );
    // A second rekey keeps both retired pairs, newest first.
    u.import_key("c", KeyUsage::Encrypt, &enc_key(), true)
        .unwrap();
    let info = fx.app().container("c").unwrap();
    assert_eq!(info.retired.len(), 2);
    assert_eq!(info.retired[0].public_key, enc2);
    assert_eq!(info.retired[1].public_key, enc1);
    assert_eq!(info.all_keys().count(), 4);

    // A signing rekey replaces the pair.
    let sign2 = u
        .generate_key("c", KeyUsage::Sign, KeyAlg::EcP256, true)
        .unwrap();
    let info = fx.app().container("c").unwrap();
    assert_eq!(info.sign.as_ref().unwrap().public_key, sign2);
    assert_eq!(info.retired.len(), 2);
    // Keys are reached only through their own application.
    fx.dev.create_app("other", &params()).unwrap();
    let o = fx.dev.open_app("other").unwrap();
    o.verify_pin(PinType::User, &USER.into()).unwrap();
    assert!(matches!(
        o.decrypt(&KeyRef::Id(retired.id), &EncMech::Sm2, &ct1),
        Err(Error::NotFound(_))
    ));
    // Without login nothing signs.
    assert!(matches!(
        fx.app()
            .sign(&KeyRef::active("c", KeyUsage::Sign), &sm2_sign(), b"x"),
        Err(Error::NotLoggedIn)
    ));
}

#[test]
fn delete_one_key_and_export() {
    let fx = fixture();
    let u = fx.user();
    u.create_container("c", None).unwrap();
    let sk = sign_key();
    let id = u.import_key("c", KeyUsage::Sign, &sk, false).unwrap();
    let ek = u
        .import_key("c", KeyUsage::Encrypt, &enc_key(), false)
        .unwrap();
    // Not logged in: neither export nor delete.
    assert!(matches!(fx.app().export_key(id), Err(Error::NotLoggedIn)));
    assert!(matches!(fx.app().delete_key(id), Err(Error::NotLoggedIn)));
    let back = u.export_key(id).unwrap();
    assert_eq!(back.to_pkcs8_der(), sk.to_pkcs8_der());
    u.delete_key(id).unwrap();
    let c = u.container("c").unwrap();
    assert!(c.sign.is_none(), "the signing pair is gone");
    assert_eq!(
        c.enc.as_ref().map(|k| k.id),
        Some(ek),
        "the other pair stays"
    );
    assert!(matches!(u.delete_key(id), Err(Error::NotFound(_))));
    assert!(matches!(u.export_key(id), Err(Error::NotFound(_))));
    assert!(matches!(
        u.sign(&KeyRef::Id(id), &sm2_sign(), b"x"),
        Err(Error::NotFound(_))
    ));
    // A key of another application is not found through this one.
    assert!(matches!(
        u.delete_key(KeyId(u64::MAX)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn certificate_history_on_renewal() {
    let fx = fixture();
    let u = fx.user();
    u.create_container("bidder", None).unwrap();
    assert!(matches!(
        u.import_cert("bidder", KeyUsage::Encrypt, &gm("enc.cert.v1.pem")),
        Err(Error::NotFound(_))
    ));
    u.import_key("bidder", KeyUsage::Encrypt, &enc_key(), false)
        .unwrap();
    u.import_key("bidder", KeyUsage::Sign, &sign_key(), false)
        .unwrap();
    // A certificate of another key is refused.
    assert!(matches!(
        u.import_cert("bidder", KeyUsage::Encrypt, &gm("sign.cert.pem")),
        Err(Error::InvalidData(_))
    ));
    assert!(
        u.import_cert("bidder", KeyUsage::Encrypt, b"garbage")
            .is_err()
    );
    let v1 = u
        .import_cert("bidder", KeyUsage::Encrypt, &gm("enc.cert.v1.pem"))
        .unwrap();
    u.import_cert("bidder", KeyUsage::Sign, &gm("sign.cert.pem"))
        .unwrap();
    let v2 = u
        .import_cert("bidder", KeyUsage::Encrypt, &gm("enc.cert.v2-renewed.pem"))
        .unwrap();
    assert_ne!(v1, v2);
    let v2_der = pem_rfc7468::decode_vec(&gm("enc.cert.v2-renewed.pem"))
        .unwrap()
        .1;
    let v1_der = pem_rfc7468::decode_vec(&gm("enc.cert.v1.pem")).unwrap().1;
    assert_eq!(
        fx.app().cert("bidder", KeyUsage::Encrypt).unwrap().unwrap(),
        v2_der
    );
    let info = fx
        .reopen()
        .open_app("app")
        .unwrap()
        .container("bidder")
        .unwrap();
    let enc = info.enc.as_ref().unwrap();
    assert_eq!(enc.certs.len(), 2);
    assert!(enc.certs[0].current && enc.certs[0].id == v2 && enc.certs[0].der == v2_der);
    assert!(!enc.certs[1].current && enc.certs[1].id == v1 && enc.certs[1].der == v1_der);
    assert_eq!(enc.current_cert().unwrap().id, v2);
    assert_eq!(info.sign.as_ref().unwrap().certs.len(), 1);

    // The key still decrypts what was sent to the v1 certificate's key.
    let ct = sm2::cipher_der_to_raw(&gm("sessionkey.sm2enc.der")).unwrap();
    let pt = u
        .decrypt(
            &KeyRef::active("bidder", KeyUsage::Encrypt),
            &EncMech::Sm2,
            &ct,
        )
        .unwrap();
    assert_eq!(&*pt, &gm("sessionkey.bin")[..]);

    // Re-importing a historical certificate makes it current again, without a copy.
    assert_eq!(
        u.import_cert("bidder", KeyUsage::Encrypt, &v1_der).unwrap(),
        v1
    );
    let enc = fx.app().container("bidder").unwrap().enc.unwrap();
    assert_eq!(enc.certs.len(), 2);
    assert_eq!(enc.current_cert().unwrap().id, v1);

    // A rekey retires the key with its certificates.
    u.generate_key("bidder", KeyUsage::Encrypt, KeyAlg::Sm2, true)
        .unwrap();
    let info = fx.app().container("bidder").unwrap();
    assert_eq!(info.retired[0].certs.len(), 2);
    assert!(info.enc.unwrap().certs.is_empty());
    assert_eq!(fx.app().cert("bidder", KeyUsage::Encrypt).unwrap(), None);

    // Deleting certificates.
    assert!(matches!(fx.app().delete_cert(v1), Err(Error::NotLoggedIn)));
    u.delete_cert(v1).unwrap();
    assert!(matches!(u.delete_cert(v1), Err(Error::NotFound(_))));
    let info = fx.app().container("bidder").unwrap();
    assert_eq!(info.retired[0].certs.len(), 1);
    assert_eq!(info.retired[0].certs[0].id, v2);
    // Deleting a container deletes its keys and certificates.
    u.delete_container("bidder").unwrap();
    assert!(matches!(u.delete_cert(v2), Err(Error::NotFound(_))));
}

#[test]
fn sealed_values_are_bound_to_their_row() {
    let fx = fixture();
    let u = fx.user();
    u.create_container("a", None).unwrap();
    u.create_container("b", None).unwrap();
    u.import_key("a", KeyUsage::Sign, &sign_key(), false)
        .unwrap();
    u.generate_key("b", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    // Copy a's sealed key over b's: the AAD names the key id, so it must not open.
    let conn = Connection::open(&fx.path).unwrap();
    super::store::register_functions(&conn).unwrap();
    conn.execute(
        "UPDATE key SET sealed_pkcs8 = (SELECT k.sealed_pkcs8 FROM key k JOIN container c
           ON k.container_id = c.id WHERE c.name = 'a')
         WHERE container_id = (SELECT id FROM container WHERE name = 'b')",
        [],
    )
    .unwrap();
    let e = u
        .sign(&KeyRef::active("b", KeyUsage::Sign), &sm2_sign(), b"x")
        .unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    u.sign(&KeyRef::active("a", KeyUsage::Sign), &sm2_sign(), b"x")
        .unwrap();
    // The same for a sensitive attribute moved to another type.
    let id = u
        .create_object(true, &[Attr::sensitive(0x11, b"value".to_vec())])
        .unwrap();
    conn.execute(
        "UPDATE attr SET ty = 0x12 WHERE object_id = ?1",
        [id.0 as i64],
    )
    .unwrap();
    assert!(matches!(u.get_object(id), Err(Error::Corrupt { .. })));
}

// --- files ----------------------------------------------------------------------------------

#[test]
fn files_and_rights() {
    let fx = fixture();
    let anon = fx.app();
    let u = fx.user();
    anon.create_file("public", 8, Rights::ANYONE, Rights::ANYONE)
        .unwrap();
    u.create_file("userfile", 16, Rights::ANYONE, Rights::USER)
        .unwrap();
    u.create_file("secret", 4, Rights::USER, Rights::USER)
        .unwrap();
    u.create_file("adminonly", 4, Rights::ANYONE, Rights::ADMIN)
        .unwrap();
    u.create_file("ro", 4, Rights::ANYONE, Rights::NEVER)
        .unwrap();
    assert!(matches!(
        u.create_file("public", 1, Rights::ANYONE, Rights::ANYONE),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        u.create_file(&"f".repeat(33), 1, Rights::ANYONE, Rights::ANYONE),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        u.create_file("huge", MAX_FILE_SIZE + 1, Rights::ANYONE, Rights::ANYONE),
        Err(Error::InvalidArgument(_))
    ));
    let files = anon.list_files().unwrap();
    assert_eq!(files.len(), 5);
    assert_eq!(
        anon.file_info("userfile").unwrap(),
        FileInfo {
            name: "userfile".into(),
            size: 16,
            read_rights: Rights::ANYONE,
            write_rights: Rights::USER
        }
    );
    // Zero-filled, fixed size.
    assert_eq!(anon.read_file("public", 0, 100).unwrap(), vec![0; 8]);
    anon.write_file("public", 2, b"abc").unwrap();
    assert_eq!(anon.read_file("public", 0, 8).unwrap(), b"\0\0abc\0\0\0");
    assert_eq!(anon.read_file("public", 3, 2).unwrap(), b"bc");
    assert_eq!(anon.read_file("public", 8, 2).unwrap(), b"");
    assert!(matches!(
        anon.read_file("public", 9, 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        anon.write_file("public", 6, b"abc"),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(anon.file_info("public").unwrap().size, 8);

    // Rights against login state.
    assert!(matches!(
        anon.write_file("userfile", 0, b"x"),
        Err(Error::NotLoggedIn)
    ));
    u.write_file("userfile", 0, b"user data").unwrap();
    assert_eq!(&anon.read_file("userfile", 0, 9).unwrap(), b"user data");
    assert!(matches!(
        anon.read_file("secret", 0, 4),
        Err(Error::NotLoggedIn)
    ));
    u.read_file("secret", 0, 4).unwrap();
    assert!(matches!(
        u.write_file("adminonly", 0, b"x"),
        Err(Error::AccessDenied(_))
    ));
    assert!(matches!(
        u.write_file("ro", 0, b"x"),
        Err(Error::AccessDenied(_))
    ));
    assert!(matches!(u.delete_file("ro"), Err(Error::AccessDenied(_))));
    let admin = fx.app();
    admin.verify_pin(PinType::Admin, &ADMIN.into()).unwrap();
    admin.write_file("adminonly", 0, b"adm").unwrap();
    assert!(matches!(
        admin.read_file("secret", 0, 4),
        Err(Error::AccessDenied(_))
    ));
    assert!(matches!(
        anon.delete_file("userfile"),
        Err(Error::NotLoggedIn)
    ));
    u.delete_file("userfile").unwrap();
    assert!(matches!(u.file_info("userfile"), Err(Error::NotFound(_))));
    assert!(matches!(
        u.read_file("userfile", 0, 1),
        Err(Error::NotFound(_))
    ));

    // An application whose files only the admin may create.
    let mut p = params();
    p.create_file_rights = Rights::ADMIN;
    fx.dev.create_app("strict", &p).unwrap();
    let s = fx.dev.open_app("strict").unwrap();
    assert!(matches!(
        s.create_file("f", 1, Rights::ANYONE, Rights::ANYONE),
        Err(Error::NotLoggedIn)
    ));
    s.verify_pin(PinType::User, &USER.into()).unwrap();
    assert!(matches!(
        s.create_file("f", 1, Rights::ANYONE, Rights::ANYONE),
        Err(Error::AccessDenied(_))
    ));
    s.verify_pin(PinType::Admin, &ADMIN.into()).unwrap();
    s.create_file("f", 1, Rights::ANYONE, Rights::ANYONE)
        .unwrap();
    assert_eq!(s.info().unwrap().create_file_rights, Rights::ADMIN);
}

// --- objects ----------------------------------------------------------------------------------

#[test]
fn object_store() {
    let fx = fixture();
    let anon = fx.app();
    let u = fx.user();
    let public = anon
        .create_object(
            false,
            &[
                Attr::public(0x3, b"label".to_vec()),
                Attr::public(0x0, vec![1]),
            ],
        )
        .unwrap();
    assert!(matches!(
        anon.create_object(true, &[Attr::public(0x3, b"x".to_vec())]),
        Err(Error::NotLoggedIn)
    ));
    assert!(matches!(
        anon.create_object(false, &[Attr::sensitive(0x11, b"x".to_vec())]),
        Err(Error::NotLoggedIn)
    ));
    assert!(matches!(
        u.create_object(false, &[Attr::public(1, vec![]), Attr::public(1, vec![])]),
        Err(Error::InvalidArgument(_))
    ));
    let secret = u
        .create_object(
            true,
            &[
                Attr::public(0x3, b"aes key".to_vec()),
                Attr::sensitive(0x11, b"0123456789abcdef".to_vec()),
            ],
        )
        .unwrap();
    let pub_sens = u
        .create_object(false, &[Attr::sensitive(0x11, b"hidden".to_vec())])
        .unwrap();
    assert_ne!(public, secret);

    // Without login: private objects are invisible, sensitive values empty.
    let seen = fx.app().list_objects().unwrap();
    assert_eq!(
        seen.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![public, pub_sens]
    );
    let o = fx.app().get_object(pub_sens).unwrap();
    assert!(o.get(0x11).unwrap().sensitive && o.get(0x11).unwrap().value.is_empty());
    assert!(matches!(
        fx.app().get_object(secret),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        fx.app().delete_object(secret),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        &*fx.app().get_object(public).unwrap().get(3).unwrap().value,
        b"label"
    );

    // With login, through another open of the device.
    let u2 = fx.reopen().open_app("app").unwrap();
    u2.verify_pin(PinType::User, &USER.into()).unwrap();
    assert_eq!(u2.list_objects().unwrap().len(), 3);
    let o = u2.get_object(secret).unwrap();
    assert!(o.private);
    assert_eq!(&*o.get(0x11).unwrap().value, b"0123456789abcdef");
    assert_eq!(&*o.get(0x3).unwrap().value, b"aes key");
    assert_eq!(
        &*u2.get_object(pub_sens).unwrap().get(0x11).unwrap().value,
        b"hidden"
    );

    // Updates replace attributes of the same type and add others.
    u2.update_object(
        secret,
        &[
            Attr::public(0x3, b"renamed".to_vec()),
            Attr::public(0x100, vec![7]),
        ],
    )
    .unwrap();
    let o = u.get_object(secret).unwrap();
    assert_eq!(o.attrs.len(), 3);
    assert_eq!(&*o.get(0x3).unwrap().value, b"renamed");
    assert_eq!(&*o.get(0x11).unwrap().value, b"0123456789abcdef");
    anon.update_object(public, &[Attr::public(0x3, b"new".to_vec())])
        .unwrap();
    assert!(matches!(
        anon.update_object(public, &[Attr::sensitive(0x11, b"new".to_vec())]),
        Err(Error::NotLoggedIn)
    ));
    assert!(matches!(
        anon.update_object(secret, &[Attr::public(0x3, b"x".to_vec())]),
        Err(Error::NotFound(_))
    ));
    // Large type numbers survive the round trip.
    let big = u
        .create_object(false, &[Attr::public(0x8000_0000_0000_0001, vec![9])])
        .unwrap();
    assert_eq!(
        u.get_object(big).unwrap().attrs[0].ty,
        0x8000_0000_0000_0001
    );

    u.delete_object(secret).unwrap();
    assert!(matches!(u.get_object(secret), Err(Error::NotFound(_))));
    anon.delete_object(public).unwrap();
    assert_eq!(u.list_objects().unwrap().len(), 2);
    assert!(matches!(
        u.get_object(ObjectId(u64::MAX)),
        Err(Error::NotFound(_))
    ));
}

// --- secrets at rest ------------------------------------------------------------------------

/// The raw private scalar of an EC PKCS#8 key.
fn ec_scalar(pkcs8_der: &[u8]) -> Vec<u8> {
    use der::Decode;
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8_der).unwrap();
    let ec = sec1::EcPrivateKey::from_der(info.private_key.as_bytes()).unwrap();
    ec.private_key.to_vec()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_private_key_or_pin_in_the_store_files() {
    let fx = fixture();
    let u = fx.user();
    u.create_container("c", None).unwrap();
    let enc = enc_key();
    let sign = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let p256 = PrivateKey::generate(KeyAlg::EcP256).unwrap();
    u.import_key("c", KeyUsage::Encrypt, &enc, false).unwrap();
    u.import_key("c", KeyUsage::Sign, &sign, false).unwrap();
    u.create_container("d", None).unwrap();
    u.import_key("d", KeyUsage::Sign, &p256, false).unwrap();
    u.create_object(
        true,
        &[Attr::sensitive(0x11, b"SENSITIVE-ATTR-VALUE".to_vec())],
    )
    .unwrap();
    u.change_pin(PinType::User, &USER.into(), &"changed-user-pin".into())
        .unwrap();
    let a = fx.app();
    a.unblock_pin(&ADMIN.into(), &"unblocked-user-pin".into())
        .unwrap();
    // Keep a write transaction open so a journal exists while we look.
    let mut needles: Vec<(String, Vec<u8>)> = vec![];
    for (name, k) in [("enc", &enc), ("sign", &sign), ("p256", &p256)] {
        let der = k.to_pkcs8_der();
        needles.push((format!("{name} pkcs8"), der.to_vec()));
        needles.push((format!("{name} scalar"), ec_scalar(&der)));
    }
    for pin in [ADMIN, USER, "changed-user-pin", "unblocked-user-pin"] {
        needles.push((format!("PIN {pin}"), pin.as_bytes().to_vec()));
    }
    needles.push((
        "sensitive attribute".into(),
        b"SENSITIVE-ATTR-VALUE".to_vec(),
    ));
    needles.push(("device auth key".into(), DEFAULT_DEV_AUTH_KEY.to_vec()));

    let scan = |label: &str| {
        let mut scanned = 0;
        for entry in fs::read_dir(fx.dir.path()).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".devkey") {
                continue;
            }
            let bytes = fs::read(&p).unwrap();
            scanned += 1;
            for (what, n) in &needles {
                assert!(!contains(&bytes, n), "{what} found in {name} ({label})");
            }
        }
        scanned
    };
    assert_eq!(scan("at rest"), 1);
    // And with a journal on disk, mid-transaction.
    let mut conn = Connection::open(&fx.path).unwrap();
    super::store::register_functions(&conn).unwrap();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    tx.execute("UPDATE key SET state = state", []).unwrap();
    tx.execute("DELETE FROM attr", []).unwrap();
    tx.execute("DELETE FROM pin", []).unwrap();
    tx.execute("DELETE FROM key", []).unwrap();
    tx.cache_flush().unwrap();
    assert_eq!(scan("with journal"), 2);
    tx.rollback().unwrap();
    // The check itself can fail: the same scan finds a value that is stored in clear.
    u.create_object(false, &[Attr::public(3, USER.as_bytes().to_vec())])
        .unwrap();
    let bytes = fs::read(&fx.path).unwrap();
    assert!(contains(&bytes, USER.as_bytes()));
}

// --- damaged, foreign and newer databases ----------------------------------------------------

fn assert_names_file(e: &Error, path: &Path) {
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(e.to_string().contains(name), "{e} does not name {name}");
}

#[test]
fn newer_schema_is_refused_untouched() {
    let fx = fixture();
    drop(fx.dev);
    let conn = Connection::open(&fx.path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let before = fs::read(&fx.path).unwrap();
    let e = SoftDevice::open(&fx.path, &opts()).unwrap_err();
    match &e {
        Error::SchemaTooNew {
            path,
            found,
            supported,
        } => {
            assert_eq!(path, &fx.path);
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("{other:?}"),
    }
    assert_names_file(&e, &fx.path);
    assert_eq!(fs::read(&fx.path).unwrap(), before);
}

/// Where `needle` sits in `hay`; it must be there exactly once.
fn only_place(hay: &[u8], needle: &[u8]) -> usize {
    let at: Vec<usize> = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "{:?} found {} times", needle, at.len());
    at[0]
}

/// A bit flipped inside a value stored in clear (an object's label, file contents, the
/// device label) leaves the b-tree well formed, so SQLite's checks pass; the row
/// checksums catch it when the store is opened, and the file is left as it was.
#[test]
fn flips_in_clear_values_are_caught_by_row_checksums() {
    let fx = fixture();
    let u = fx.user();
    u.create_object(false, &[Attr::public(3, b"OBJECT-LABEL-MARKER".to_vec())])
        .unwrap();
    u.create_file("f", 32, Rights::ANYONE, Rights::ANYONE)
        .unwrap();
    u.write_file("f", 0, b"FILE-CONTENT-MARKER").unwrap();
    drop(u);
    drop(fx.dev);
    let good = fs::read(&fx.path).unwrap();
    for (marker, table) in [
        (&b"OBJECT-LABEL-MARKER"[..], "attr"),
        (b"FILE-CONTENT-MARKER", "file"),
        (b"test dev", "device"),
    ] {
        let at = only_place(&good, marker) + 3;
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= bit;
            fs::write(&fx.path, &bad).unwrap();
            let e = SoftDevice::open(&fx.path, &opts()).unwrap_err();
            match &e {
                Error::Corrupt { detail, .. } => assert!(
                    detail.contains(&format!("table {table} fails its checksum")),
                    "{detail}"
                ),
                other => panic!("{table}: {other:?}"),
            }
            assert_names_file(&e, &fx.path);
            assert_eq!(
                fs::read(&fx.path).unwrap(),
                bad,
                "the damaged file was written"
            );
        }
    }
    fs::write(&fx.path, &good).unwrap();
    let dev = SoftDevice::open(&fx.path, &opts()).unwrap();
    let u = dev.open_app("app").unwrap();
    assert_eq!(u.read_file("f", 0, 19).unwrap(), b"FILE-CONTENT-MARKER");
}

/// A row whose checksum no longer matches cannot be changed: the trigger refuses the
/// update (a partial file write, a PIN attempt's counter) instead of giving the damage a
/// fresh checksum.
#[test]
fn a_damaged_row_is_not_rewritten() {
    let fx = fixture();
    let u = fx.user();
    u.create_file("f", 8, Rights::ANYONE, Rights::ANYONE)
        .unwrap();
    let conn = Connection::open(&fx.path).unwrap();
    super::store::register_functions(&conn).unwrap();
    // Only the sums change: no trigger fires, as when the disk damages the rows.
    conn.execute_batch("UPDATE file SET sum = x'00'; UPDATE pin SET sum = x'00';")
        .unwrap();
    drop(conn);
    for e in [
        u.write_file("f", 0, b"abc").unwrap_err(),
        u.verify_pin(PinType::User, &USER.into()).unwrap_err(),
    ] {
        match &e {
            Error::Corrupt { detail, .. } => assert!(detail.contains("checksum"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        SoftDevice::open(&fx.path, &opts()),
        Err(Error::Corrupt { .. })
    ));
}

/// A version-1 database (no row checksums) is upgraded when opened: its contents stay,
/// and from then on damage is caught.
#[test]
fn version_1_store_is_upgraded() {
    let fx = fixture();
    let u = fx.user();
    u.create_object(false, &[Attr::public(3, b"OLD-OBJECT-LABEL".to_vec())])
        .unwrap();
    u.create_container("c", None).unwrap();
    drop(u);
    drop(fx.dev);
    {
        let conn = Connection::open(&fx.path).unwrap();
        let tables = [
            "device",
            "app",
            "pin",
            "container",
            "key",
            "cert",
            "file",
            "object",
            "attr",
        ];
        for t in tables {
            for k in ["insert", "check", "update"] {
                conn.execute_batch(&format!("DROP TRIGGER {t}_sum_{k}"))
                    .unwrap();
            }
            conn.execute_batch(&format!("ALTER TABLE {t} DROP COLUMN sum"))
                .unwrap();
        }
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let dev = SoftDevice::open(&fx.path, &opts()).unwrap();
    let conn = Connection::open(&fx.path).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    drop(conn);
    let a = dev.open_app("app").unwrap();
    a.verify_pin(PinType::User, &USER.into()).unwrap();
    assert_eq!(a.list_containers().unwrap().len(), 1);
    let objs = a.list_objects().unwrap();
    assert_eq!(objs.len(), 1);
    assert_eq!(&objs[0].attrs[0].value[..], b"OLD-OBJECT-LABEL");
    a.create_object(false, &[Attr::public(3, b"new".to_vec())])
        .unwrap();
    drop(a);
    drop(dev);
    let good = fs::read(&fx.path).unwrap();
    let mut bad = good.clone();
    bad[only_place(&good, b"OLD-OBJECT-LABEL") + 1] ^= 0x04;
    fs::write(&fx.path, &bad).unwrap();
    assert!(matches!(
        SoftDevice::open(&fx.path, &opts()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn corrupt_truncated_and_foreign_files() {
    let fx = fixture();
    let u = fx.user();
    for i in 0..40 {
        u.create_container(&format!("c{i}"), None).unwrap();
        u.create_object(false, &[Attr::public(1, vec![i as u8; 500])])
            .unwrap();
    }
    drop(u);
    drop(fx.dev);
    let good = fs::read(&fx.path).unwrap();
    assert!(good.len() > 16 * 4096, "{}", good.len());

    let check = |bytes: &[u8], what: &str| {
        fs::write(&fx.path, bytes).unwrap();
        let e = match SoftDevice::open(&fx.path, &opts()) {
            Err(e) => e,
            // Damage a quick check misses must still surface on use, cleanly.
            Ok(d) => match d.open_app("app").and_then(|a| a.list_objects().map(|_| ())) {
                Err(e) => e,
                Ok(()) => panic!("{what}: damage not detected"),
            },
        };
        assert!(
            matches!(e, Error::Corrupt { .. } | Error::Io { .. }),
            "{what}: {e:?}"
        );
        assert_names_file(&e, &fx.path);
        assert_eq!(fs::read(&fx.path).unwrap(), bytes, "{what}: file changed");
    };
    check(&good[..good.len() / 2], "truncated to half");
    check(&good[..100], "truncated to 100 bytes");
    check(&[], "empty");
    check(b"this is not a database at all, just some text\n", "text");
    let mut flipped = good.clone();
    for b in &mut flipped[4096..8192] {
        *b ^= 0x5a;
    }
    check(&flipped, "a damaged page");
    // A SQLite database that is not ours.
    fs::remove_file(&fx.path).unwrap();
    let conn = Connection::open(&fx.path).unwrap();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    let other = fs::read(&fx.path).unwrap();
    check(&other, "foreign database");
    // A directory where a file should be, and a missing file.
    let e = SoftDevice::open(fx.dir.path(), &opts()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    let missing = fx.dir.path().join("missing.ukdb");
    let e = SoftDevice::open(&missing, &opts()).unwrap_err();
    assert_names_file(&e, &missing);
    // The good bytes open again.
    fs::write(&fx.path, &good).unwrap();
    let d = SoftDevice::open(&fx.path, &opts()).unwrap();
    assert_eq!(
        d.open_app("app").unwrap().list_containers().unwrap().len(),
        40
    );
}

#[test]
fn deleted_device_reports_removal() {
    let fx = fixture();
    let app = fx.app();
    // A key in the cache, whose next use checks the file through the kept descriptor.
    let user = fx.user();
    user.create_container("c", None).unwrap();
    user.generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    let r = KeyRef::active("c", KeyUsage::Sign);
    user.sign(&r, &sm2_sign(), b"m").unwrap();
    user.sign(&r, &sm2_sign(), b"m").unwrap();
    delete_soft_device_files(&fx.path).unwrap();
    assert!(!fx.path.exists() && !devkey_path(&fx.path).exists());
    assert!(matches!(fx.dev.info(), Err(Error::DeviceRemoved)));
    assert!(matches!(app.list_containers(), Err(Error::DeviceRemoved)));
    assert!(matches!(
        user.sign(&r, &sm2_sign(), b"m"),
        Err(Error::DeviceRemoved)
    ));
    // A new file at the same path is another device: the old handle stays removed.
    fs::write(&fx.path, b"not a database").unwrap();
    assert!(matches!(
        user.sign(&r, &sm2_sign(), b"m"),
        Err(Error::DeviceRemoved)
    ));
}

#[test]
fn cached_keys_follow_changes_made_elsewhere() {
    let fx = fixture();
    let a = fx.user();
    a.create_container("c", None).unwrap();
    a.generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    let r = KeyRef::active("c", KeyUsage::Sign);
    let old = a.public_key("c", KeyUsage::Sign).unwrap();
    for _ in 0..3 {
        let sig = a.sign(&r, &sm2_sign(), b"m").unwrap();
        old.verify(&sm2_sign(), b"m", &sig).unwrap();
    }
    // Another connection (another process, as far as SQLite knows) replaces the key.
    let other = fx.reopen();
    let b = other.open_app("app").unwrap();
    b.verify_pin(PinType::User, &USER.into()).unwrap();
    let new = b
        .generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, true)
        .unwrap();
    let sig = a.sign(&r, &sm2_sign(), b"m").unwrap();
    new.verify(&sm2_sign(), b"m", &sig).unwrap();
    assert!(old.verify(&sm2_sign(), b"m", &sig).is_err());
    // Another handle on the same connection replaces it again.
    let c = fx.user();
    let newer = c
        .generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, true)
        .unwrap();
    let sig = a.sign(&r, &sm2_sign(), b"m").unwrap();
    newer.verify(&sm2_sign(), b"m", &sig).unwrap();
    // Deleted elsewhere: gone here too.
    b.delete_container("c").unwrap();
    assert!(matches!(
        a.sign(&r, &sm2_sign(), b"m"),
        Err(Error::NotFound(_))
    ));
    // Logging out forgets the keys.
    a.create_container("d", None).unwrap();
    a.generate_key("d", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    let rd = KeyRef::active("d", KeyUsage::Sign);
    a.sign(&rd, &sm2_sign(), b"m").unwrap();
    a.logout();
    assert!(matches!(
        a.sign(&rd, &sm2_sign(), b"m"),
        Err(Error::NotLoggedIn)
    ));
    // A wipe elsewhere ends the login here, cached keys or not.
    a.verify_pin(PinType::User, &USER.into()).unwrap();
    a.sign(&rd, &sm2_sign(), b"m").unwrap();
    other.open_app("app").unwrap().wipe(&ADMIN.into()).unwrap();
    assert!(matches!(
        a.sign(&rd, &sm2_sign(), b"m"),
        Err(Error::NotLoggedIn)
    ));
}
