//! The vendor-SKF bridge (`ukey-skf-bridge`), tested twice: through ukey's own
//! libukey_skf.so in the bridge's test mode (its own data directory), and through a small
//! C "quirky vendor" library (tests/c/skf_quirky_vendor.c) with each vendor variation the
//! bridge tolerates.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use skf_common::*;
use token_hal::Error;
use token_hal::cert::{SelfSignedSpec, self_signed};
use token_hal::crypto::hash::{HashAlg, digest};
use token_hal::crypto::{EncMech, KeyAlg, PrivateKey, SignMech, sm2};
use token_hal::model::{
    AppParams, Attr, BackendKind, KeyRef, KeyUsage, LoginState, Pin, PinType, Rights,
};
use token_hal::token::Device;
use ukey_skf_bridge::{BridgeDevice, SkfBackend, VendorLib, cert_id, key_id};
use ukey_tests::{repo_root, skf_lib};

const SELF_TEST_CHILD: &str = "own_library_through_the_bridge_child";

/// Compiles the quirky vendor library with extra `defines` into `dir/name`.
fn quirky(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let out = dir.join(name);
    sh(Command::new("cc")
        .args([
            "-std=c11", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
        ])
        .args(defines)
        .arg("-I")
        .arg(repo_root().join("include"))
        .arg(repo_root().join("tests/c/skf_quirky_vendor.c"))
        .arg("-o")
        .arg(&out));
    out
}

fn devices(lib: VendorLib) -> Vec<std::sync::Arc<BridgeDevice>> {
    SkfBackend::with_library(lib).bridge_devices().unwrap()
}

#[test]
fn ukey_own_library_is_refused_outside_the_test_mode() {
    let tmp = tempfile::tempdir().unwrap();
    if std::env::var_os(ukey_skf_bridge::SELF_TEST_ENV).is_some() {
        return; // a developer's shell in test mode; the child test below covers it
    }
    let e = VendorLib::load(&skf_lib(), None, tmp.path()).unwrap_err();
    assert!(e.to_string().contains("UKEY_SKF_DATA_DIR"), "{e}");
    // Renamed, it is still recognised (by its marker symbol).
    let copy = tmp.path().join("libvendor_renamed.so");
    std::fs::copy(skf_lib(), &copy).unwrap();
    let e = VendorLib::load(&copy, None, tmp.path()).unwrap_err();
    assert!(e.to_string().contains("ukey's own"), "{e}");
}

#[test]
fn own_library_through_the_bridge() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    std::fs::create_dir(&b).unwrap();
    let conf = with_app(&b, "bridged");
    let run = |skf_dir: &Path| {
        Command::new(std::env::current_exe().unwrap())
            .env("UKEY_CONF", &conf)
            .env(ukey_skf_bridge::SELF_TEST_ENV, skf_dir)
            .env("UKEY_TEST_CHILD", SELF_TEST_CHILD)
            .env("BRIDGE_HOST_DATA_DIR", tmp.path().join("a"))
            .args([
                "--exact",
                SELF_TEST_CHILD,
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .output()
            .unwrap()
    };
    let out = run(&b.join("data"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("bridge walk done"), "{text}");
}

/// Run as a child by [`own_library_through_the_bridge`]: `UKEY_CONF` is the config of
/// a data dir with one application "bridged", and `UKEY_SKF_DATA_DIR` points at it.
#[test]
fn own_library_through_the_bridge_child() {
    if !is_child(SELF_TEST_CHILD) {
        return;
    }
    let host = PathBuf::from(std::env::var_os("BRIDGE_HOST_DATA_DIR").unwrap());
    // The test mode names this process's own data dir: refused.
    let own = PathBuf::from(std::env::var_os(ukey_skf_bridge::SELF_TEST_ENV).unwrap());
    let e = VendorLib::load(&skf_lib(), None, &own).unwrap_err();
    assert!(e.to_string().contains("own data directory"), "{e}");

    let devs = devices(VendorLib::load(&skf_lib(), None, &host).unwrap());
    assert_eq!(devs.len(), 1);
    let dev = &devs[0];
    let info = dev.info().unwrap();
    assert_eq!(info.backend, BackendKind::VendorSkf);
    assert!(!info.serial.is_empty());
    assert_eq!(dev.list_apps().unwrap(), vec!["bridged".to_string()]);
    let app = dev.open_app("bridged").unwrap();

    // Device authentication with the default key, then an application made and deleted.
    assert!(matches!(
        dev.create_app(
            "second",
            &AppParams::new("12345678".into(), Some("654321".into()))
        ),
        Err(Error::NotLoggedIn | Error::DeviceAuthRequired)
    ));
    assert!(matches!(
        dev.authenticate_with_key(&[0u8; 16]),
        Err(Error::DeviceAuthFailed)
    ));
    dev.authenticate_with_key(b"1234567812345678").unwrap();
    dev.create_app(
        "second",
        &AppParams::new("12345678".into(), Some("654321".into())),
    )
    .unwrap();
    assert_eq!(dev.list_apps().unwrap().len(), 2);
    dev.delete_app("second").unwrap();
    assert_eq!(dev.list_apps().unwrap(), vec!["bridged".to_string()]);

    // PINs: wrong, then right.
    let before = app.pin_info(PinType::User).unwrap();
    assert_eq!(before.remaining, before.max_retries);
    match app.verify_pin(PinType::User, &Pin::from("000000")) {
        Err(Error::PinIncorrect { retries_left }) => {
            assert_eq!(retries_left, before.max_retries - 1)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        app.pin_info(PinType::User).unwrap().remaining,
        before.max_retries - 1
    );
    assert_eq!(app.login_state(), LoginState::None);
    app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
    assert_eq!(app.login_state(), LoginState::User);
    assert_eq!(
        app.pin_info(PinType::User).unwrap().remaining,
        before.max_retries
    );

    // An SM2 signing key, SM3-with-Z signatures verified by token-hal.
    let c = app.create_container("bid", None).unwrap();
    assert_eq!(c.id, b"bid");
    assert!(c.sign.is_none());
    let pk = app
        .generate_key("bid", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    assert!(matches!(
        app.generate_key("bid", KeyUsage::Sign, KeyAlg::Sm2, false),
        Err(Error::AlreadyExists(_))
    ));
    let mech = SignMech::Sm2Sm3 {
        id: sm2::DEFAULT_ID.to_vec(),
    };
    let msg = b"bid for lot 7";
    let sig = app
        .sign(&KeyRef::active("bid", KeyUsage::Sign), &mech, msg)
        .unwrap();
    pk.verify(&mech, msg, &sig).unwrap();
    assert!(pk.verify(&mech, b"bid for lot 8", &sig).is_err());
    let id = key_id("bid", KeyUsage::Sign);
    let sig = app.sign(&KeyRef::Id(id), &mech, msg).unwrap();
    pk.verify(&mech, msg, &sig).unwrap();

    // The public key exported, and listed with its derived id.
    assert_eq!(
        app.public_key("bid", KeyUsage::Sign).unwrap().spki_der(),
        pk.spki_der()
    );
    let all = app.list_containers().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].sign.as_ref().unwrap().id, id);

    // A certificate, signed by the token key itself; one for another key is refused.
    let spec = SelfSignedSpec::new("bidder", KeyUsage::Sign);
    let cert = self_signed(&pk, &spec, |m, tbs| {
        app.sign(&KeyRef::active("bid", KeyUsage::Sign), m, tbs)
    })
    .unwrap();
    assert_eq!(
        app.import_cert("bid", KeyUsage::Sign, &cert).unwrap(),
        cert_id("bid", KeyUsage::Sign)
    );
    assert_eq!(app.cert("bid", KeyUsage::Sign).unwrap(), Some(cert.clone()));
    let (_, other) = sm2_key();
    let other_cert = self_signed(&other.public_key().unwrap(), &spec, |m, tbs| {
        other.sign(m, tbs)
    })
    .unwrap();
    assert!(app.import_cert("bid", KeyUsage::Sign, &other_cert).is_err());
    let listed = app.container("bid").unwrap();
    assert_eq!(listed.sign.unwrap().current_cert().unwrap().der, cert);

    // An encryption pair imported as an ENVELOPEDKEYBLOB built by the bridge; SM2
    // decryption with it through SKF_ECCDecrypt.
    let (_, enc) = sm2_key();
    let enc_pub = enc.public_key().unwrap();
    app.import_key("bid", KeyUsage::Encrypt, &enc, false)
        .unwrap();
    assert_eq!(
        app.public_key("bid", KeyUsage::Encrypt).unwrap().spki_der(),
        enc_pub.spki_der()
    );
    let ct = enc_pub.encrypt(&EncMech::Sm2, b"sixteen byte key").unwrap();
    let pt = app
        .decrypt(
            &KeyRef::active("bid", KeyUsage::Encrypt),
            &EncMech::Sm2,
            &ct,
        )
        .unwrap();
    assert_eq!(&pt[..], b"sixteen byte key");
    assert!(matches!(
        app.import_key("bid", KeyUsage::Sign, &enc, true),
        Err(Error::Unsupported(_))
    ));

    // Files.
    app.create_file("notes", 64, Rights::ANYONE, Rights::USER)
        .unwrap();
    app.write_file("notes", 3, b"hello").unwrap();
    assert_eq!(app.read_file("notes", 3, 5).unwrap(), b"hello");
    let files = app.list_files().unwrap();
    let f = files.iter().find(|f| f.name == "notes").unwrap();
    assert_eq!((f.size, f.write_rights), (64, Rights::USER));
    app.delete_file("notes").unwrap();
    assert!(app.file_info("notes").is_err());

    // Generic objects, each an SKF file: a public one with a sensitive attribute and a
    // private one; updated (a longer value: the file is made again), read back, listed
    // with their privacy, not listed as files, deleted.
    assert!(app.list_objects().unwrap().is_empty());
    let public = app
        .create_object(
            false,
            &[
                Attr::public(0x0, vec![0, 0, 0, 0, 0, 0, 0, 1]),
                Attr::public(0x3, b"cert label".to_vec()),
                Attr::sensitive(0x11, vec![7; 16]),
            ],
        )
        .unwrap();
    let private = app
        .create_object(true, &[Attr::public(0x3, b"secret data".to_vec())])
        .unwrap();
    assert_ne!(public, private);
    app.update_object(
        public,
        &[Attr::public(0x3, b"a longer label than before".to_vec())],
    )
    .unwrap();
    let rec = app.get_object(public).unwrap();
    assert!(!rec.private);
    assert_eq!(
        rec.get(0x3).unwrap().value.as_slice(),
        b"a longer label than before"
    );
    assert_eq!(rec.get(0x11).unwrap().value.as_slice(), [7; 16]);
    assert!(rec.get(0x11).unwrap().sensitive);
    let all = app.list_objects().unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|o| o.id == private && o.private));
    assert!(
        app.list_files().unwrap().is_empty(),
        "object files are not files"
    );
    app.delete_object(private).unwrap();
    assert!(app.get_object(private).is_err());
    assert_eq!(app.list_objects().unwrap().len(), 1);

    // An RSA container: the bridge builds the DigestInfo, the token pads and signs.
    app.create_container("rsa", None).unwrap();
    let rsa_pk = app
        .generate_key("rsa", KeyUsage::Sign, KeyAlg::Rsa(2048), false)
        .unwrap();
    assert_eq!(rsa_pk.alg(), KeyAlg::Rsa(2048));
    let rmech = SignMech::RsaPkcs1(HashAlg::Sha256);
    let rsig = app
        .sign(&KeyRef::active("rsa", KeyUsage::Sign), &rmech, msg)
        .unwrap();
    rsa_pk.verify(&rmech, msg, &rsig).unwrap();
    assert!(rsa_pk.verify(&rmech, b"other", &rsig).is_err());
    app.delete_container("rsa").unwrap();

    // Logged out, the token refuses to sign.
    app.logout();
    assert_eq!(app.login_state(), LoginState::None);
    assert!(matches!(
        app.sign(&KeyRef::active("bid", KeyUsage::Sign), &mech, msg),
        Err(Error::NotLoggedIn)
    ));
    app.delete_container("bid").unwrap_err(); // needs login
    // Logged out: the public object only, its sensitive value blanked; no private object
    // can be made.
    let objs = app.list_objects().unwrap();
    assert_eq!(objs.len(), 1);
    assert!(objs[0].get(0x11).unwrap().value.is_empty());
    assert!(matches!(
        app.create_object(true, &[]),
        Err(Error::NotLoggedIn)
    ));
    app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
    app.delete_object(objs[0].id).unwrap();
    app.delete_container("bid").unwrap();
    assert!(app.list_containers().unwrap().is_empty());
    println!("bridge walk done");
}

#[test]
fn quirky_vendor_variations_are_tolerated() {
    let tmp = tempfile::tempdir().unwrap();
    let path = quirky(tmp.path(), "libquirky.so", &[]);
    let devs = devices(VendorLib::load(&path, None, tmp.path()).unwrap());
    let names: Vec<&str> = devs.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["QUIRK-SM2", "QUIRK-RSA"]);
    let (sm2_dev, rsa_dev) = (&devs[0], &devs[1]);
    let info = sm2_dev.info().unwrap();
    assert_eq!(
        (info.serial.as_str(), info.manufacturer.as_str()),
        ("QS0001", "Quirky Vendor")
    );

    // Missing optional symbols: that operation only is unsupported.
    match sm2_dev.set_label("x") {
        Err(Error::Unsupported(m)) => assert!(m.contains("SKF_SetLabel"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(sm2_dev.gen_random(8), Err(Error::Unsupported(_))));

    // The 8-byte BOOL of SKF_GetPINInfo.
    let app = sm2_dev.open_app("APP").unwrap();
    let user = app.pin_info(PinType::User).unwrap();
    assert_eq!(
        (user.max_retries, user.remaining, user.default_pin),
        (6, 6, true)
    );
    let admin = app.pin_info(PinType::Admin).unwrap();
    assert!(!admin.default_pin);
    assert!(matches!(
        app.verify_pin(PinType::User, &Pin::from("999999")),
        Err(Error::PinIncorrect { retries_left: 5 })
    ));
    app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();

    // The legacy SM2 ID set (caps 0x00020700): GenECCKeyPair gets 0x00020100.
    app.create_container("c1", None).unwrap();
    let pk = app
        .generate_key("c1", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    let g = pk.ec_point().unwrap();
    assert_eq!(hex::encode(&g[1..5]), "32c4ae2c");
    // The bridge hashes on the host: the vendor receives e = SM3(Z || M), and its canned
    // signature echoes it.
    let msg = b"challenge 42";
    let sig = app
        .sign(
            &KeyRef::active("c1", KeyUsage::Sign),
            &SignMech::Sm2Sm3 {
                id: sm2::DEFAULT_ID.to_vec(),
            },
            msg,
        )
        .unwrap();
    let e = sm2::sign_digest(&g, sm2::DEFAULT_ID, msg).unwrap();
    assert_eq!(&sig[..32], &e[..]);
    assert_eq!(&sig[32..], &e[..]);
    // No SKF_ECCDecrypt in this library.
    match app.decrypt(
        &KeyRef::active("c1", KeyUsage::Encrypt),
        &EncMech::Sm2,
        &[4u8; 120],
    ) {
        Err(Error::Unsupported(m)) => assert!(m.contains("SKF_ECCDecrypt"), "{m}"),
        other => panic!("{other:?}"),
    }

    // Device authentication: no SKF_GenRandom on one device, SM1 on the other; neither
    // sends a cryptogram.
    assert!(matches!(
        sm2_dev.authenticate_with_key(b"1234567812345678"),
        Err(Error::Unsupported(_))
    ));
    match rsa_dev.authenticate_with_key(b"1234567812345678") {
        Err(Error::Unsupported(m)) => assert!(m.contains("0x101"), "{m}"),
        other => panic!("{other:?}"),
    }

    // The RSA-only device: no SM2, RSA signatures over a host-built DigestInfo.
    let rapp = rsa_dev.open_app("APP").unwrap();
    rapp.verify_pin(PinType::User, &Pin::from("123456"))
        .unwrap();
    let cs = rapp.list_containers().unwrap();
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].sign.as_ref().unwrap().alg, KeyAlg::Rsa(2048));
    assert!(matches!(
        rapp.generate_key("rsa", KeyUsage::Sign, KeyAlg::Sm2, true),
        Err(Error::Unsupported(_))
    ));
    let sig = rapp
        .sign(
            &KeyRef::active("rsa", KeyUsage::Sign),
            &SignMech::RsaPkcs1(HashAlg::Sha256),
            msg,
        )
        .unwrap();
    assert_eq!(sig.len(), 256);
    let mut di = hex::decode("3031300d060960864801650304020105000420").unwrap();
    di.extend_from_slice(&digest(HashAlg::Sha256, msg));
    assert_eq!(&sig[256 - di.len()..], &di[..]);
    assert!(sig[..256 - di.len()].iter().all(|&b| b == 0xAB));
}

#[test]
fn quirky_vendor_with_2012_caps_falls_back_to_the_legacy_sm2_id() {
    let tmp = tempfile::tempdir().unwrap();
    // Caps claim the 2012 set, yet GenECCKeyPair takes only 0x00020100.
    let path = quirky(tmp.path(), "libquirky2012.so", &["-DCAPS_2012"]);
    let devs = devices(VendorLib::load(&path, None, tmp.path()).unwrap());
    let app = devs[0].open_app("APP").unwrap();
    app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
    app.create_container("c1", None).unwrap();
    app.generate_key("c1", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();

    // Configured as 2012, there is no fallback: the vendor's refusal is reported.
    let path = quirky(tmp.path(), "libquirky2012b.so", &["-DCAPS_2012"]);
    let devs = devices(
        VendorLib::load(&path, Some(ukey_skf_bridge::Sm2Ids::Gmt2012), tmp.path()).unwrap(),
    );
    let app = devs[0].open_app("APP").unwrap();
    app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
    app.create_container("c1", None).unwrap();
    assert!(matches!(
        app.generate_key("c1", KeyUsage::Sign, KeyAlg::Sm2, false),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_library_missing_a_required_symbol_does_not_load() {
    let tmp = tempfile::tempdir().unwrap();
    let path = quirky(tmp.path(), "libquirky_broken.so", &["-DOMIT_REQUIRED"]);
    let e = VendorLib::load(&path, None, tmp.path()).unwrap_err();
    assert!(e.to_string().contains("missing SKF_VerifyPIN"), "{e}");

    // Through the config it is a warning: the backend loads and lists nothing.
    let conf = tmp.path().join("ukey.toml");
    std::fs::write(
        &conf,
        format!(
            "data_dir = \"{}\"\n[[skf_library]]\npath = \"libquirky_broken.so\"\n\n[[skf_library]]\npath = \"missing.so\"\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let config = token_hal::config::Config::load_from(&conf).unwrap();
    assert_eq!(config.skf_libraries[0].path, path);
    let backend = SkfBackend::from_config(&config);
    assert!(backend.library_paths().is_empty());
    assert!(backend.bridge_devices().unwrap().is_empty());
}

#[test]
fn out_of_range_vendor_lengths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = quirky(tmp.path(), "libquirky_lying.so", &["-DLYING_LENGTHS"]);
    let devs = devices(VendorLib::load(&path, None, tmp.path()).unwrap());
    match devs[0].list_apps() {
        Err(Error::InvalidData(m)) => assert!(m.contains("SKF_EnumApplication"), "{m}"),
        other => panic!("{other:?}"),
    }
    let app = devs[0].open_app("APP").unwrap();
    app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
    app.create_container("c1", None).unwrap();
    match app.generate_key("c1", KeyUsage::Sign, KeyAlg::Sm2, false) {
        Err(Error::InvalidData(m)) => assert!(m.contains("4096 bits"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn key_material_never_needed_from_the_vendor() {
    // import_key of a signing key is refused before anything reaches the vendor.
    let tmp = tempfile::tempdir().unwrap();
    let path = quirky(tmp.path(), "libquirky_import.so", &[]);
    let devs = devices(VendorLib::load(&path, None, tmp.path()).unwrap());
    let app = devs[0].open_app("APP").unwrap();
    let k = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    assert!(matches!(
        app.import_key("c1", KeyUsage::Sign, &k, false),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        app.export_key(key_id("c1", KeyUsage::Sign)),
        Err(Error::Unsupported(_))
    ));
}

/// The PKCS#11 module and the CLI on top of the bridge (`UKEY_BACKENDS=skf`): ukey's own
/// libukey_skf.so in the test mode is the "vendor" library of `[[skf_library]]`. The CLI
/// makes a container, an SM2 key and a certificate through the bridge; pkcs11-tool lists
/// them and signs with CKM_SM3_SM2 through libukey_pkcs11.so; token-hal verifies.
#[test]
fn pkcs11_module_and_cli_on_the_bridge() {
    if Command::new("pkcs11-tool").arg("--help").output().is_err() {
        eprintln!("pkcs11-tool (opensc) not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    std::fs::create_dir(&b).unwrap();
    with_app(&b, "bridged");
    let host_conf = tmp.path().join("host.toml");
    std::fs::write(
        &host_conf,
        format!(
            "data_dir = \"{}\"\n[soft]\nkdf_iterations = 1000\n[[skf_library]]\npath = \"{}\"\n",
            tmp.path().join("host-data").display(),
            skf_lib().display()
        ),
    )
    .unwrap();
    let env = |c: &mut Command| -> String {
        sh(c.env("UKEY_CONF", &host_conf)
            .env_remove("UKEY_DATA_DIR")
            .env(ukey_skf_bridge::SELF_TEST_ENV, b.join("data"))
            .env("UKEY_BACKENDS", "skf")
            .env("UKEY_PIN", "123456"))
    };
    let ukey = |args: &[&str]| env(Command::new(ukey_tests::ukey_bin()).args(args));
    let list = ukey(&["device", "list"]);
    assert!(
        list.contains("vendor-skf") && list.contains("bridged"),
        "{list}"
    );
    ukey(&["container", "create", "bidder"]);
    ukey(&["key", "gen", "--container", "bidder"]);
    let pem = ukey(&["key", "pub", "--container", "bidder"]);
    let pk = token_hal::crypto::PublicKey::from_pem(&pem).unwrap();

    let p11 = |args: &[&str]| {
        env(Command::new("pkcs11-tool")
            .arg("--module")
            .arg(ukey_tests::pkcs11_lib())
            .args(args))
    };
    let objects = p11(&["--list-objects", "--login", "--pin", "123456"]);
    assert!(objects.contains("Private Key Object"), "{objects}");
    assert!(objects.contains("Certificate Object"), "{objects}");
    assert!(objects.contains("626964646572"), "{objects}"); // CKA_ID = "bidder"
    let msg = tmp.path().join("msg");
    let sig = tmp.path().join("sig");
    std::fs::write(&msg, b"bid through the bridge").unwrap();
    p11(&[
        "--login",
        "--pin",
        "123456",
        "--sign",
        "-m",
        "0x80008100",
        "--label",
        "bidder",
        "-i",
        msg.to_str().unwrap(),
        "-o",
        sig.to_str().unwrap(),
    ]);
    let mech = SignMech::Sm2Sm3 {
        id: sm2::DEFAULT_ID.to_vec(),
    };
    let s = std::fs::read(&sig).unwrap();
    pk.verify(&mech, b"bid through the bridge", &s).unwrap();
    assert!(pk.verify(&mech, b"another bid", &s).is_err());
}

/// `ukey` on the soft devices of `conf` only (not a virtual key another test put in pcscd).
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

const P11_CHILD: &str = "pkcs11_sm2_rsa_sm4_on_the_bridge_child";

/// A vendor data directory with the application "bridged" and a host configuration
/// bridging ukey's own libukey_skf.so (the test mode) with `UKEY_BACKENDS=skf`: returns
/// (vendor config, host config, environment for the host's processes).
fn bridged_host(tmp: &Path) -> (PathBuf, PathBuf, Vec<(String, String)>) {
    let b = tmp.join("b");
    std::fs::create_dir(&b).unwrap();
    let vendor_conf = with_app(&b, "bridged");
    let host_conf = tmp.join("host.toml");
    std::fs::write(
        &host_conf,
        format!(
            "data_dir = \"{}\"\n[soft]\nkdf_iterations = 1000\n[[skf_library]]\npath = \"{}\"\n",
            tmp.join("host-data").display(),
            skf_lib().display()
        ),
    )
    .unwrap();
    let env = vec![
        ("UKEY_CONF".to_owned(), host_conf.display().to_string()),
        (
            ukey_skf_bridge::SELF_TEST_ENV.to_owned(),
            b.join("data").display().to_string(),
        ),
        ("UKEY_BACKENDS".to_owned(), "skf".to_owned()),
    ];
    (vendor_conf, host_conf, env)
}

/// `pkcs11-tool` on the bridge: an RSA-2048 pair generated by the vendor device, an AES
/// key (an object file), and `--test --login` with no errors (it skips RSA decryption,
/// which the bridged slot does not advertise). The vendor's own device then holds the
/// container and the object file.
#[test]
fn pkcs11_tool_key_set_and_test_on_the_bridge() {
    if Command::new("pkcs11-tool").arg("--help").output().is_err() {
        eprintln!("pkcs11-tool (opensc) not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (vendor_conf, _, env) = bridged_host(tmp.path());
    let p11 = |args: &[&str]| {
        let mut c = Command::new("pkcs11-tool");
        c.env_remove("UKEY_DATA_DIR")
            .arg("--module")
            .arg(ukey_tests::pkcs11_lib())
            .args(["--login", "--pin", "123456"])
            .args(args);
        for (k, v) in &env {
            c.env(k, v);
        }
        let t = sh(&mut c);
        assert!(
            !t.contains("ERR:") && !t.contains("error:"),
            "{args:?}: {t}"
        );
        t
    };
    p11(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--id",
        "01",
        "--label",
        "rsa",
    ]);
    p11(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--id",
        "03",
        "--label",
        "aes",
    ]);
    let t = p11(&["--test"]);
    assert!(t.contains("No errors"), "{t}");
    assert!(t.contains("testing key 0 (rsa)"), "{t}");
    // On the vendor's own device: the RSA container (made by the device) and the AES key
    // as an object file.
    let list = ukey_soft(
        &vendor_conf,
        &[
            "--json",
            "--pin",
            "123456",
            "container",
            "list",
            "--token",
            "bridged",
        ],
    );
    assert!(
        list.contains("\"RSA 2048\"") || list.contains("RSA"),
        "{list}"
    );
    let files = ukey_soft(
        &vendor_conf,
        &["--pin", "123456", "file", "list", "--token", "bridged"],
    );
    assert!(files.contains("ukey.obj."), "{files}");
    assert!(files.contains("ukey.cid."), "the container id 01: {files}");
}

/// The SM2/RSA/SM4 part of the PKCS#11 tests through libukey_pkcs11.so over the bridge:
/// key pairs generated (SM2 signing and RSA by the vendor device, the SM2 encryption pair
/// enveloped to it), SM2 sign/verify and encrypt/decrypt, RSA PKCS#1 v1.5 sign/verify
/// (RSA decryption refused as not offered), an SM4 key with CBC encrypt/decrypt, a data
/// object and a CA certificate object, all found again by a second process.
#[test]
fn pkcs11_sm2_rsa_sm4_on_the_bridge() {
    let tmp = tempfile::tempdir().unwrap();
    let (vendor_conf, _, env) = bridged_host(tmp.path());
    for stage in ["make", "reopen"] {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.env_remove("UKEY_DATA_DIR")
            .env("UKEY_TEST_CHILD", P11_CHILD)
            .env("P11_STAGE", stage)
            .args(["--exact", P11_CHILD, "--nocapture", "--test-threads", "1"]);
        for (k, v) in &env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{stage}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The vendor device itself holds the SM2 container with both pairs and the RSA one.
    let list = ukey_soft(
        &vendor_conf,
        &[
            "--json",
            "--pin",
            "123456",
            "container",
            "list",
            "--token",
            "bridged",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let by = |n: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {list}"))
            .clone()
    };
    let sm2 = by("sm2");
    assert_eq!(
        (&sm2["sign"]["alg"], &sm2["enc"]["alg"]),
        (&"SM2".into(), &"SM2".into()),
        "{list}"
    );
    assert!(
        by("rsa")["sign"]["alg"]
            .as_str()
            .unwrap()
            .starts_with("RSA"),
        "{list}"
    );
}

#[test]
fn pkcs11_sm2_rsa_sm4_on_the_bridge_child() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::mechanism::{Mechanism, MechanismType, vendor_defined::VendorDefinedMechanism};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    if !is_child(P11_CHILD) {
        return;
    }
    const SM2_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
    let vendor = |m: u64| {
        Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
            MechanismType::new_vendor_defined(m).unwrap(),
            None,
        ))
    };
    let p11 = Pkcs11::new(ukey_tests::pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p11.get_token_info(*s).unwrap().label() == "bridged")
        .expect("the bridged token");
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new("123456".into())))
        .unwrap();
    let find = |label: &str, class: ObjectClass| {
        let found = s
            .find_objects(&[
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Class(class),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{label} {class:?}");
        found[0]
    };
    let msg = b"bid for lot 7 through PKCS#11 and the bridge";
    if std::env::var("P11_STAGE").as_deref() == Ok("make") {
        // SM2 signing pair, generated by the vendor device.
        s.generate_key_pair(
            &vendor(0x8000_8001),
            &[
                Attribute::Token(true),
                Attribute::EcParams(SM2_PARAMS.to_vec()),
                Attribute::Verify(true),
                Attribute::Id(b"sm2".to_vec()),
                Attribute::Label(b"sm2".to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Sign(true),
                Attribute::Id(b"sm2".to_vec()),
                Attribute::Label(b"sm2".to_vec()),
            ],
        )
        .unwrap();
        // SM2 encryption pair into the same container (CKA_ID), enveloped to it.
        s.generate_key_pair(
            &vendor(0x8000_8001),
            &[
                Attribute::Token(true),
                Attribute::EcParams(SM2_PARAMS.to_vec()),
                Attribute::Encrypt(true),
                Attribute::Id(b"sm2".to_vec()),
                Attribute::Label(b"sm2-enc".to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Decrypt(true),
                Attribute::Id(b"sm2".to_vec()),
                Attribute::Label(b"sm2-enc".to_vec()),
            ],
        )
        .unwrap();
        // RSA-2048 by the device; an SM4 key; a data object; a CA certificate object.
        s.generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::Verify(true),
                Attribute::Encrypt(true),
                Attribute::Label(b"rsa".to_vec()),
                Attribute::Id(b"rsa".to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Sign(true),
                Attribute::Label(b"rsa".to_vec()),
                Attribute::Id(b"rsa".to_vec()),
            ],
        )
        .unwrap();
        s.generate_key(
            &vendor(0x8000_0107),
            &[
                Attribute::Token(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(b"sm4".to_vec()),
            ],
        )
        .unwrap();
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(b"note".to_vec()),
            Attribute::Application(b"bids".to_vec()),
            Attribute::Value(b"lot 7 reserve price".to_vec()),
        ])
        .unwrap();
        let (_, ca) = sm2_key();
        let spec = SelfSignedSpec::new("bridge CA", KeyUsage::Sign);
        let der = self_signed(&ca.public_key().unwrap(), &spec, |m, tbs| ca.sign(m, tbs)).unwrap();
        s.create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Label(b"ca".to_vec()),
            Attribute::Subject(b"\x30\x00".to_vec()),
            Attribute::Value(der),
        ])
        .unwrap();
    }
    // Every object is found (in the second process: read back from the vendor device).
    let spk = find("sm2", ObjectClass::PUBLIC_KEY);
    let ssk = find("sm2", ObjectClass::PRIVATE_KEY);
    let epk = find("sm2-enc", ObjectClass::PUBLIC_KEY);
    let esk = find("sm2-enc", ObjectClass::PRIVATE_KEY);
    let rpk = find("rsa", ObjectClass::PUBLIC_KEY);
    let rsk = find("rsa", ObjectClass::PRIVATE_KEY);
    let sm4 = find("sm4", ObjectClass::SECRET_KEY);
    let note = find("note", ObjectClass::DATA);
    let ca = find("ca", ObjectClass::CERTIFICATE);

    // SM2: SM3-with-Z signature and verification; SM2 encryption and decryption.
    let sig = s.sign(&vendor(0x8000_8100), ssk, msg).unwrap();
    s.verify(&vendor(0x8000_8100), spk, msg, &sig).unwrap();
    assert!(
        s.verify(&vendor(0x8000_8100), spk, b"another bid", &sig)
            .is_err()
    );
    let ct = s
        .encrypt(&vendor(0x8000_8200), epk, b"sixteen byte key")
        .unwrap();
    assert_eq!(
        s.decrypt(&vendor(0x8000_8200), esk, &ct).unwrap(),
        b"sixteen byte key"
    );
    // RSA: PKCS#1 v1.5 with SHA-256; decryption is not offered on a vendor SKF token.
    let rsig = s.sign(&Mechanism::Sha256RsaPkcs, rsk, msg).unwrap();
    assert_eq!(rsig.len(), 256);
    s.verify(&Mechanism::Sha256RsaPkcs, rpk, msg, &rsig)
        .unwrap();
    assert!(
        s.verify(&Mechanism::Sha256RsaPkcs, rpk, b"x", &rsig)
            .is_err()
    );
    let rct = s.encrypt(&Mechanism::RsaPkcs, rpk, b"k").unwrap();
    match s.decrypt(&Mechanism::RsaPkcs, rsk, &rct) {
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => {
            assert_eq!(rv, cryptoki::error::RvError::MechanismInvalid)
        }
        other => panic!("{other:?}"),
    }
    // SM4-CBC with the token's SM4 key.
    let iv = [7u8; 16];
    let cbc = Mechanism::VendorDefined(VendorDefinedMechanism::new(
        MechanismType::new_vendor_defined(0x8000_0109).unwrap(),
        Some(&iv),
    ));
    let plain = [0x42u8; 48];
    let sct = s.encrypt(&cbc, sm4, &plain).unwrap();
    assert_eq!(sct.len(), 48);
    assert_ne!(&sct[..], &plain[..]);
    assert_eq!(s.decrypt(&cbc, sm4, &sct).unwrap(), plain);
    // The data object and the certificate read back.
    let v = s.get_attributes(note, &[AttributeType::Value]).unwrap();
    assert_eq!(v[0], Attribute::Value(b"lot 7 reserve price".to_vec()));
    let v = s.get_attributes(ca, &[AttributeType::Value]).unwrap();
    assert!(matches!(&v[0], Attribute::Value(d) if d.len() > 100));
    if std::env::var("P11_STAGE").as_deref() == Ok("reopen") {
        s.destroy_object(note).unwrap();
        assert!(
            s.find_objects(&[Attribute::Label(b"note".to_vec())])
                .unwrap()
                .is_empty()
        );
    }
    s.logout().unwrap();
    drop(s);
    p11.finalize().unwrap();
}

/// PKCS#11 on the quirky vendor (an RSA-only device with an 8-byte BOOL and missing
/// optional symbols): its RSA key pair is listed, and SHA256-RSA-PKCS reaches the vendor's
/// `SKF_RSASignData` with the DigestInfo built on the host (the shim's canned signature
/// echoes it; it is not a real signature, so `--test` does not apply to the shim).
#[test]
fn pkcs11_tool_on_the_quirky_vendor() {
    if Command::new("pkcs11-tool").arg("--help").output().is_err() {
        eprintln!("pkcs11-tool (opensc) not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = quirky(tmp.path(), "libquirky.so", &[]);
    let conf = tmp.path().join("ukey.toml");
    std::fs::write(
        &conf,
        format!(
            "data_dir = \"{}\"\n[[skf_library]]\npath = \"{}\"\n",
            tmp.path().join("data").display(),
            lib.display()
        ),
    )
    .unwrap();
    let p11 = |args: &[&str]| {
        sh(Command::new("pkcs11-tool")
            .env("UKEY_CONF", &conf)
            .env_remove("UKEY_DATA_DIR")
            .env("UKEY_BACKENDS", "skf")
            .arg("--module")
            .arg(ukey_tests::pkcs11_lib())
            .args(args))
    };
    let slots = p11(&["-L"]);
    assert!(
        slots.contains("rsa key QR0001") && slots.contains("sm2 key QS0001"),
        "{slots}"
    );
    let login = ["--slot-index", "0", "--login", "--pin", "123456"];
    let mut a = login.to_vec();
    a.push("-O");
    let objects = p11(&a);
    assert!(
        objects.contains("Private Key Object; RSA") && objects.contains("RSA 2048 bits"),
        "{objects}"
    );
    let msg = tmp.path().join("msg");
    let sig = tmp.path().join("sig");
    std::fs::write(&msg, b"bid").unwrap();
    let mut a = login.to_vec();
    a.extend_from_slice(&[
        "--sign",
        "-m",
        "SHA256-RSA-PKCS",
        "-i",
        msg.to_str().unwrap(),
        "-o",
        sig.to_str().unwrap(),
    ]);
    p11(&a);
    let s = std::fs::read(&sig).unwrap();
    let mut di = hex::decode("3031300d060960864801650304020105000420").unwrap();
    di.extend_from_slice(&digest(HashAlg::Sha256, b"bid"));
    assert_eq!(s.len(), 256);
    assert_eq!(&s[256 - di.len()..], &di[..]);
}
