//! The PKCS#11 bridge against SoftHSM2, through token-hal's traits only.
//!
//! A PKCS#11 module reads its configuration once per process, so every test re-runs
//! this binary as a child that runs only that test, with `SOFTHSM2_CONF` pointing at a
//! fresh token directory holding one token `t` (SO PIN 12345678, user PIN 123456).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use token_hal::cert::{SelfSignedSpec, self_signed_in_container};
use token_hal::config::Pkcs11LibraryConfig;
use token_hal::crypto::{DecMech, DeriveMech, EncMech, HashAlg, KeyAlg, PrivateKey, SignMech};
use token_hal::model::{BackendKind, KeyRef, KeyUsage, LoginState, Pin, PinType, Rights};
use token_hal::registry::Backend;
use token_hal::token::{Application, Device};
use token_hal::{Error, Result};
use ukey_p11_bridge::Pkcs11Backend;

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
const CHILD: &str = "P11BRIDGE_TEST_CHILD";

/// Makes a SoftHSM2 token directory with token `t` under `dir`; returns the config path.
fn softhsm_token(dir: &Path) -> PathBuf {
    assert!(
        Path::new(SOFTHSM).exists(),
        "{SOFTHSM} is missing: install the softhsm2 package"
    );
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "t",
            "--so-pin",
            "12345678",
            "--pin",
            "123456",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    conf
}

/// In the parent: runs `test` in a child with its own token and returns `false`. In
/// the child: returns `true` (run the body).
fn in_child(test: &str) -> bool {
    in_child_with(test, &[])
}

/// [`in_child`] with extra environment variables for the child.
fn in_child_with(test: &str, env: &[(&str, &Path)]) -> bool {
    if std::env::var(CHILD).as_deref() == Ok(test) {
        return true;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = softhsm_token(dir.path());
    let out = Command::new(std::env::current_exe().unwrap())
        .env("SOFTHSM2_CONF", &conf)
        .envs(env.iter().copied())
        .env(CHILD, test)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child {test}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

fn device() -> Arc<dyn Device> {
    let backend = Pkcs11Backend::new(vec![Pkcs11LibraryConfig {
        path: SOFTHSM.into(),
        slots: None,
        token_label: None,
    }]);
    assert_eq!(backend.name(), "pkcs11");
    let mut devices = backend.devices().unwrap();
    assert_eq!(devices.len(), 1, "the one initialised SoftHSM2 token");
    devices.remove(0)
}

fn app() -> Arc<dyn Application> {
    device().open_app("t").unwrap()
}

fn login(app: &dyn Application) {
    app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
}

#[test]
fn device_and_application_come_from_the_token() {
    if !in_child("device_and_application_come_from_the_token") {
        return;
    }
    let d = device();
    let info = d.info().unwrap();
    assert_eq!(info.label, "t");
    assert_eq!(info.backend, BackendKind::Pkcs11);
    assert!(info.name.starts_with("t ["), "{}", info.name);
    assert!(!info.serial.is_empty());
    assert_eq!(d.list_apps().unwrap(), vec!["t".to_owned()]);
    assert!(matches!(d.open_app("other"), Err(Error::NotFound(_))));
    assert!(matches!(
        d.create_app(
            "x",
            &token_hal::model::AppParams::new(Pin::from("12345678"), None)
        ),
        Err(Error::Unsupported(_))
    ));
    assert_eq!(d.gen_random(16).unwrap().len(), 16);

    // A label filter that matches nothing hides the token.
    let filtered = Pkcs11Backend::new(vec![Pkcs11LibraryConfig {
        path: SOFTHSM.into(),
        slots: None,
        token_label: Some("nope".into()),
    }]);
    assert!(filtered.devices().unwrap().is_empty());
}

#[test]
fn ukeys_own_module_is_refused_under_another_name() {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/libukey_pkcs11.so");
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("libvendor-p11.so");
    let data = tmp.path().join("data");
    let conf = tmp.path().join("ukey.toml");
    if std::env::var(CHILD).is_err() {
        assert!(
            built.exists(),
            "{} is not built; run `cargo build -p pkcs11-module` first",
            built.display()
        );
        std::fs::copy(&built, &copy).unwrap();
        std::fs::write(&conf, format!("data_dir = {:?}\n", data.to_str().unwrap())).unwrap();
    }
    if !in_child_with(
        "ukeys_own_module_is_refused_under_another_name",
        &[("P11BRIDGE_COPY", &copy), ("UKEY_CONF", &conf)],
    ) {
        return;
    }
    // The copy has an innocent name, so only the C_GetInfo check can catch it.
    let copy = PathBuf::from(std::env::var("P11BRIDGE_COPY").unwrap());
    let e = ukey_p11_bridge::probe(&copy).unwrap_err();
    assert!(e.to_string().contains("refusing"), "{e}");
    // SoftHSM2 itself is accepted.
    assert_eq!(
        ukey_p11_bridge::probe(Path::new(SOFTHSM)).unwrap(),
        "SoftHSM"
    );
}

#[test]
fn login_with_right_and_wrong_pins() {
    if !in_child("login_with_right_and_wrong_pins") {
        return;
    }
    let a = app();
    assert_eq!(a.login_state(), LoginState::None);
    let info = a.pin_info(PinType::User).unwrap();
    assert!(info.initialized);
    assert!(info.remaining > 0);
    match a.verify_pin(PinType::User, &Pin::from("999999")) {
        Err(Error::PinIncorrect { retries_left }) => assert!(retries_left > 0),
        other => panic!("wrong PIN gave {other:?}"),
    }
    assert_eq!(a.login_state(), LoginState::None);
    // Operations that need the user fail cleanly before login.
    assert!(matches!(
        a.generate_key("c", KeyUsage::Sign, KeyAlg::EcP256, false),
        Err(Error::NotLoggedIn) | Err(Error::NotFound(_))
    ));
    login(&*a);
    assert_eq!(a.login_state(), LoginState::User);
    // Logging in again through a second handle (shared login) still checks the PIN.
    let b = app();
    assert!(matches!(
        b.verify_pin(PinType::User, &Pin::from("000000")),
        Err(Error::PinIncorrect { .. })
    ));
    b.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
    a.logout();
    assert_eq!(a.login_state(), LoginState::None);

    // Change the user PIN and use the new one.
    a.change_pin(PinType::User, &Pin::from("123456"), &Pin::from("654321"))
        .unwrap();
    assert!(a.verify_pin(PinType::User, &Pin::from("123456")).is_err());
    a.verify_pin(PinType::User, &Pin::from("654321")).unwrap();
    a.logout();
    // The SO resets it (C_InitPIN).
    a.unblock_pin(&Pin::from("12345678"), &Pin::from("123456"))
        .unwrap();
    login(&*a);
}

#[test]
fn admin_pin_init_user_pin_and_wipe() -> Result<()> {
    if !in_child("admin_pin_init_user_pin_and_wipe") {
        return Ok(());
    }
    let a = app();
    assert!(a.pin_info(PinType::Admin)?.initialized);
    assert!(matches!(
        a.init_user_pin(&Pin::from("111111")),
        Err(Error::NotLoggedIn)
    ));
    assert!(matches!(
        a.verify_pin(PinType::Admin, &Pin::from("87654321")),
        Err(Error::PinIncorrect { .. })
    ));
    a.verify_pin(PinType::Admin, &Pin::from("12345678"))?;
    assert_eq!(a.login_state(), LoginState::Admin);
    a.init_user_pin(&Pin::from("111111"))?;
    a.logout();
    a.verify_pin(PinType::User, &Pin::from("111111"))?;
    a.create_container("gone", None)?;
    a.generate_key("gone", KeyUsage::Sign, KeyAlg::EcP256, false)?;
    a.logout();

    // C_InitToken: the keys go and the user PIN is uninitialised.
    assert!(a.wipe(&Pin::from("00000000")).is_err());
    a.wipe(&Pin::from("12345678"))?;
    assert!(a.list_containers()?.is_empty());
    assert!(!a.pin_info(PinType::User)?.initialized);
    assert!(a.verify_pin(PinType::User, &Pin::from("111111")).is_err());
    Ok(())
}

#[test]
fn rsa_and_ec_pairs_sign_and_verify() -> Result<()> {
    if !in_child("rsa_and_ec_pairs_sign_and_verify") {
        return Ok(());
    }
    let a = app();
    login(&*a);
    a.create_container("rsa", Some(b"\x01\x02"))?;
    assert!(a.container("rsa")?.sign.is_none());
    let rsa_pub = a.generate_key("rsa", KeyUsage::Sign, KeyAlg::Rsa(2048), false)?;
    assert_eq!(rsa_pub.alg(), KeyAlg::Rsa(2048));
    a.create_container("ec", None)?;
    let ec_pub = a.generate_key("ec", KeyUsage::Sign, KeyAlg::EcP256, false)?;
    assert!(matches!(
        a.generate_key("ec", KeyUsage::Sign, KeyAlg::EcP256, false),
        Err(Error::AlreadyExists(_))
    ));

    let names: Vec<String> = a.list_containers()?.into_iter().map(|c| c.name).collect();
    assert!(
        names.contains(&"rsa".to_owned()) && names.contains(&"ec".to_owned()),
        "{names:?}"
    );
    let c = a.container("rsa")?;
    assert_eq!(c.id, vec![1, 2]);
    assert_eq!(c.sign.as_ref().unwrap().public_key, rsa_pub);
    assert_eq!(a.container("ec")?.id, b"ec".to_vec());

    let msg = b"the bid of 2026";
    let rsa = KeyRef::active("rsa", KeyUsage::Sign);
    for mech in [
        SignMech::RsaPkcs1(HashAlg::Sha256),
        SignMech::RsaPkcs1(HashAlg::Sha384),
        SignMech::RsaPss {
            hash: HashAlg::Sha256,
            salt_len: 32,
        },
    ] {
        let sig = a.sign(&rsa, &mech, msg)?;
        rsa_pub.verify(&mech, msg, &sig)?;
        assert!(rsa_pub.verify(&mech, b"another bid", &sig).is_err());
    }
    let ec = KeyRef::active("ec", KeyUsage::Sign);
    let sig = a.sign(&ec, &SignMech::Ecdsa(HashAlg::Sha256), msg)?;
    assert_eq!(sig.len(), 64);
    ec_pub.verify(&SignMech::Ecdsa(HashAlg::Sha256), msg, &sig)?;
    assert!(matches!(
        a.sign(&ec, &SignMech::Sm2Prehashed, &[0; 32]),
        Err(Error::KeyType(_))
    ));
    assert!(matches!(
        a.generate_key("ec", KeyUsage::Encrypt, KeyAlg::Ed25519, false),
        Err(Error::Unsupported(_))
    ));
    // Keys stay in the module.
    let kid = a.container("ec")?.sign.unwrap().id;
    assert!(matches!(a.export_key(kid), Err(Error::Unsupported(_))));

    // Without login the public halves still show the containers, but nothing signs.
    a.logout();
    let c = a.container("ec")?;
    assert_eq!(c.sign.unwrap().public_key, ec_pub);
    assert!(matches!(
        a.sign(&ec, &SignMech::Ecdsa(HashAlg::Sha256), msg),
        Err(Error::NotLoggedIn)
    ));

    login(&*a);
    a.delete_container("ec")?;
    assert!(matches!(a.container("ec"), Err(Error::NotFound(_))));
    Ok(())
}

#[test]
fn rsa_decrypt_and_ecdh() -> Result<()> {
    if !in_child("rsa_decrypt_and_ecdh") {
        return Ok(());
    }
    let a = app();
    login(&*a);
    a.create_container("enc", None)?;
    let public = a.generate_key("enc", KeyUsage::Encrypt, KeyAlg::Rsa(2048), false)?;
    let c = a.container("enc")?;
    assert!(c.sign.is_none() && c.enc.is_some(), "{c:?}");
    let key = KeyRef::active("enc", KeyUsage::Encrypt);
    let ct = public.encrypt(&EncMech::RsaPkcs1, b"sm4 content key!")?;
    assert_eq!(
        &*a.decrypt(&key, &DecMech::RsaPkcs1, &ct)?,
        b"sm4 content key!"
    );
    // SoftHSM2 does OAEP with SHA-1 only; other hashes are refused by the module.
    let oaep = EncMech::RsaOaep {
        hash: HashAlg::Sha1,
        label: Vec::new(),
    };
    let ct = public.encrypt(&oaep, b"oaep")?;
    assert_eq!(&*a.decrypt(&key, &oaep, &ct)?, b"oaep");
    let mut bad = ct.clone();
    bad[10] ^= 1;
    assert!(a.decrypt(&key, &oaep, &bad).is_err());
    assert!(matches!(
        a.generate_key("enc", KeyUsage::Encrypt, KeyAlg::Rsa(2048), true),
        Err(Error::Unsupported(_))
    ));

    // ECDH on an EC encryption key agrees with the peer's view.
    a.create_container("dh", None)?;
    let mine = a.generate_key("dh", KeyUsage::Encrypt, KeyAlg::EcP256, false)?;
    let peer = PrivateKey::generate(KeyAlg::EcP256)?;
    let out = a.derive(
        &KeyRef::active("dh", KeyUsage::Encrypt),
        &DeriveMech::Ecdh {
            peer_point: peer.public_key()?.ec_point().unwrap(),
        },
    )?;
    let theirs = peer.derive(&DeriveMech::Ecdh {
        peer_point: mine.ec_point().unwrap(),
    })?;
    assert_eq!(*out.secret, *theirs.secret);
    Ok(())
}

#[test]
fn imported_keys_and_certificates() -> Result<()> {
    if !in_child("imported_keys_and_certificates") {
        return Ok(());
    }
    let a = app();
    login(&*a);
    a.create_container("imp", None)?;
    let k = PrivateKey::generate(KeyAlg::Rsa(2048))?;
    let kid = a.import_key("imp", KeyUsage::Sign, &k, false)?;
    let c = a.container("imp")?;
    assert_eq!(c.sign.as_ref().unwrap().id, kid);
    assert_eq!(c.sign.unwrap().public_key, k.public_key()?);
    let sig = a.sign(
        &KeyRef::Id(kid),
        &SignMech::RsaPkcs1(HashAlg::Sha256),
        b"imported",
    )?;
    k.public_key()?
        .verify(&SignMech::RsaPkcs1(HashAlg::Sha256), b"imported", &sig)?;

    a.create_container("imp-ec", None)?;
    let e = PrivateKey::generate(KeyAlg::EcP256)?;
    a.import_key("imp-ec", KeyUsage::Sign, &e, false)?;
    let sig = a.sign(
        &KeyRef::active("imp-ec", KeyUsage::Sign),
        &SignMech::EcdsaPrehashed,
        &[7; 32],
    )?;
    e.public_key()?
        .verify(&SignMech::EcdsaPrehashed, &[7; 32], &sig)?;

    // A self-signed certificate made by the token's own key, imported and read back.
    assert_eq!(a.cert("imp", KeyUsage::Sign)?, None);
    let der = self_signed_in_container(
        &*a,
        "imp",
        KeyUsage::Sign,
        &SelfSignedSpec::new("bidder", KeyUsage::Sign),
    )?;
    let cid = a.import_cert("imp", KeyUsage::Sign, &der)?;
    assert_eq!(a.cert("imp", KeyUsage::Sign)?, Some(der.clone()));
    // Another key's certificate is refused.
    assert!(matches!(
        a.import_cert("imp-ec", KeyUsage::Sign, &der),
        Err(Error::InvalidData(_))
    ));
    assert!(a.import_cert("imp", KeyUsage::Sign, b"not a cert").is_err());
    a.delete_cert(cid)?;
    assert_eq!(a.cert("imp", KeyUsage::Sign)?, None);
    a.delete_key(kid)?;
    assert!(a.container("imp").is_err());
    Ok(())
}

#[test]
fn files_are_data_objects() -> Result<()> {
    if !in_child("files_are_data_objects") {
        return Ok(());
    }
    let a = app();
    a.create_file("public", 8, Rights::ANYONE, Rights::ANYONE)?;
    a.write_file("public", 2, b"abc")?;
    assert_eq!(a.read_file("public", 0, 8)?, b"\0\0abc\0\0\0");
    assert_eq!(a.read_file("public", 3, 100)?, b"bc\0\0\0");
    assert!(matches!(
        a.write_file("public", 6, b"abc"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        a.create_file("public", 1, Rights::ANYONE, Rights::ANYONE),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        a.create_file("secret", 4, Rights::USER, Rights::USER),
        Err(Error::NotLoggedIn)
    ));
    login(&*a);
    a.create_file("secret", 4, Rights::USER, Rights::USER)?;
    assert_eq!(a.file_info("secret")?.read_rights, Rights::USER);
    let mut names: Vec<String> = a.list_files()?.into_iter().map(|f| f.name).collect();
    names.sort();
    assert_eq!(names, ["public", "secret"]);
    a.logout();
    // Private files are invisible without login.
    assert_eq!(a.list_files()?.len(), 1);
    a.delete_file("public")?;
    assert!(matches!(a.file_info("public"), Err(Error::NotFound(_))));
    assert!(matches!(a.list_objects(), Err(Error::Unsupported(_))));
    Ok(())
}
