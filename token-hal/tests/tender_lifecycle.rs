//! Issue 6, certificate lifecycle and seals, on a soft token: a PKCS#10 request signed in the
//! token, an ENVELOPEDKEYBLOB made outside the token installed (and a second one retiring the
//! first key), and seal images written and read back byte-identical.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod soft_common;

use soft_common::{ADMIN, USER, new_token, user_app};
use token_hal::crypto::{DecMech, EncMech, KeyAlg, PrivateKey};
use token_hal::tender::csr;
use token_hal::tender::keyblob::EnvelopedKeyBlob;
use token_hal::tender::seal::{ImageType, MAX_SEAL_SIZE, SealStore};
use token_hal::{Device, Error, KeyRef, KeyState, KeyUsage, PinType};

fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut x = 0x1234_5678u32;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v
}

#[test]
fn csr_signed_in_the_token_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dev) = new_token(tmp.path());
    let app = user_app(&dev);
    app.create_container("bidder", None).unwrap();
    app.generate_key("bidder", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    let subject = csr::parse_subject("CN=Bidder One,O=Example Co,C=CN").unwrap();
    let der = csr::in_container(app.as_ref(), "bidder", KeyUsage::Sign, &subject).unwrap();
    let s = csr::verify(&der).unwrap();
    assert_eq!(
        s.public_key,
        app.public_key("bidder", KeyUsage::Sign).unwrap()
    );
    assert_eq!(s.subject, "CN=Bidder One,O=Example Co,C=CN");
    // Without login the token refuses to sign.
    app.logout();
    assert!(csr::in_container(app.as_ref(), "bidder", KeyUsage::Sign, &subject).is_err());
}

#[test]
fn enveloped_key_blob_from_outside_is_installed_and_rekey_retires() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dev) = new_token(tmp.path());
    let app = user_app(&dev);
    app.create_container("c", None).unwrap();
    let sign_pub = app
        .generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();

    // The KMC side: a key made outside the token, wrapped to the signing key.
    let enc1 = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let blob = EnvelopedKeyBlob::wrap(&enc1, &sign_pub).unwrap();
    let bytes = blob.to_bytes().unwrap();
    let id1 = EnvelopedKeyBlob::parse_file(&bytes)
        .unwrap()
        .import(app.as_ref(), "c")
        .unwrap();
    assert_eq!(
        app.public_key("c", KeyUsage::Encrypt).unwrap(),
        enc1.public_key().unwrap()
    );
    let ct = enc1
        .public_key()
        .unwrap()
        .encrypt(&EncMech::Sm2, b"bid key one")
        .unwrap();
    assert_eq!(
        &**app.decrypt(&KeyRef::Id(id1), &DecMech::Sm2, &ct).unwrap(),
        b"bid key one"
    );

    // A blob wrapped to another signing key is refused and changes nothing.
    let stranger = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let enc_x = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let bad = EnvelopedKeyBlob::wrap(&enc_x, &stranger.public_key().unwrap()).unwrap();
    assert!(bad.import(app.as_ref(), "c").is_err());
    assert_eq!(
        app.public_key("c", KeyUsage::Encrypt).unwrap(),
        enc1.public_key().unwrap()
    );

    // A new blob (rekey) retires the first key, which still decrypts.
    let enc2 = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    EnvelopedKeyBlob::wrap(&enc2, &sign_pub)
        .unwrap()
        .import(app.as_ref(), "c")
        .unwrap();
    let c = app.container("c").unwrap();
    assert_eq!(
        c.enc.as_ref().unwrap().public_key,
        enc2.public_key().unwrap()
    );
    assert_eq!(c.retired.len(), 1);
    assert_eq!(c.retired[0].state, KeyState::Retired);
    assert_eq!(c.retired[0].id, id1);
    assert_eq!(
        &**app.decrypt(&KeyRef::Id(id1), &DecMech::Sm2, &ct).unwrap(),
        b"bid key one"
    );

    // Without login nothing is installed.
    app.logout();
    let enc3 = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    assert!(
        EnvelopedKeyBlob::wrap(&enc3, &sign_pub)
            .unwrap()
            .import(app.as_ref(), "c")
            .is_err()
    );
}

#[test]
fn seal_round_trip_split_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dev) = new_token(tmp.path());
    let app = user_app(&dev);
    let store = SealStore::new(app.as_ref()).with_chunk(1000).unwrap();

    let small = png(700);
    let big = png(4321);
    let a = store.write("公司公章", &small).unwrap();
    assert_eq!((a.parts, a.image_type, a.size), (1, ImageType::Png, 700));
    let b = store.write("contract seal", &big).unwrap();
    assert_eq!(b.parts, 5);
    assert_ne!(a.slot, b.slot);

    let list = store.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(store.read("公司公章").unwrap().1, small);
    assert_eq!(store.read("contract seal").unwrap().1, big);

    // Refusals leave nothing behind.
    let files_before = app.list_files().unwrap();
    assert!(matches!(
        store.write("公司公章", &small),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        store.write("text", b"just some text"),
        Err(Error::InvalidData(_))
    ));
    assert!(store.write("", &small).is_err());
    assert!(matches!(
        store.write("huge", &png(MAX_SEAL_SIZE + 1)),
        Err(Error::InvalidData(_))
    ));
    assert_eq!(app.list_files().unwrap(), files_before);

    // Listing needs no PIN; the image does; writing does.
    app.logout();
    assert_eq!(store.list().unwrap().len(), 2);
    assert!(store.read("contract seal").is_err());
    assert!(store.write("another", &small).is_err());
    assert_eq!(app.list_files().unwrap(), files_before);

    // A damaged part is detected, not returned.
    app.verify_pin(PinType::User, &USER.into()).unwrap();
    app.write_file(&format!("seal.{}.2", b.slot), 10, b"XX")
        .unwrap();
    assert!(matches!(
        store.read("contract seal"),
        Err(Error::Corrupt { .. })
    ));

    let gone = store.delete("contract seal").unwrap();
    assert_eq!(gone.slot, b.slot);
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(
        app.list_files()
            .unwrap()
            .iter()
            .all(|f| !f.name.starts_with(&format!("seal.{}", b.slot)))
    );
    // The default part size stores a normal image in one file.
    let one = SealStore::new(app.as_ref())
        .write("x", &png(50_000))
        .unwrap();
    assert_eq!(one.parts, 1);
    let _ = (ADMIN, dev.info());
}

#[test]
fn pin_cache_config_is_validated() {
    use token_hal::config::Config;
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("ukey.toml");
    let load = |text: &str| {
        std::fs::write(&conf, text).unwrap();
        Config::load_from(&conf)
    };
    let c = load("").unwrap();
    assert!(!c.pin_cache.is_enabled());
    assert_eq!(c.pin_cache.minutes(), 30);
    assert_eq!(token_hal::tender::pincache::ttl(&c), None);
    let c = load("[pin_cache]\nenabled = true\nminutes = 5\n").unwrap();
    assert!(c.pin_cache.is_enabled());
    if std::env::var_os(token_hal::tender::pincache::TTL_OVERRIDE_VAR).is_none() {
        assert_eq!(
            token_hal::tender::pincache::ttl(&c),
            Some(std::time::Duration::from_secs(300))
        );
    }
    for bad in [
        "[pin_cache]\nminutes = 7\n",
        "[pin_cache]\nminutes = 0\n",
        "[pin_cache]\nenabled = \"yes\"\n",
        "[pin_cache]\nseconds = 5\n",
    ] {
        let e = load(bad).unwrap_err();
        assert!(e.to_string().contains("ukey.toml"), "{bad}: {e}");
    }
}
