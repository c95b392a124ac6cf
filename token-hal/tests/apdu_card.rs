//! The card driver against the virtual key, in-process: every Device/Application call the
//! faces make goes through docs/apdu.md and back, over short (chained, GET RESPONSE) and
//! extended links. Checked on the wire and in the key's own log: the PIN never crosses in
//! clear, every transaction ends logged out, two hosts sharing one card both keep
//! working, and a pulled card is an error, not a hang.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use token_hal::Error;
use token_hal::apdu::applet::{ATR, VirtualKey};
use token_hal::apdu::driver::ApduDevice;
use token_hal::apdu::exchange::LinkCaps;
use token_hal::apdu::transport::{CardHandler, Transaction, Transport};
use token_hal::apdu::wire::ins;
use token_hal::crypto::hash::HashAlg;
use token_hal::crypto::{DecMech, EncMech, KeyAlg, PrivateKey, SignMech, sm2};
use token_hal::soft::{DEFAULT_DEV_AUTH_KEY, SoftOptions};
use token_hal::{AppParams, Device, KeyRef, KeyUsage, LoginState, Pin, PinType, Rights};

/// An in-process card with a wire log and a presence switch.
struct Wire {
    card: Mutex<VirtualKey>,
    hold: Mutex<()>,
    seen: Mutex<Vec<u8>>,
    present: AtomicBool,
}

struct Held<'a>(#[allow(dead_code)] std::sync::MutexGuard<'a, ()>);
impl Transaction for Held<'_> {}

impl Transport for Wire {
    fn id(&self) -> String {
        "test-wire".into()
    }
    fn atr(&self) -> Option<Vec<u8>> {
        Some(ATR.to_vec())
    }
    fn transmit(&self, apdu: &[u8]) -> token_hal::Result<Vec<u8>> {
        if !self.present.load(Ordering::SeqCst) {
            return Err(Error::DeviceRemoved);
        }
        let r = self.card.lock().unwrap().process(apdu);
        let mut seen = self.seen.lock().unwrap();
        seen.extend_from_slice(apdu);
        seen.extend_from_slice(&r);
        Ok(r)
    }
    fn begin(&self) -> token_hal::Result<Box<dyn Transaction + '_>> {
        Ok(Box::new(Held(self.hold.lock().unwrap())))
    }
    fn is_present(&self) -> bool {
        self.present.load(Ordering::SeqCst)
    }
}

fn card(dir: &std::path::Path) -> (Arc<Wire>, token_hal::apdu::applet::ServedLog) {
    let opts = SoftOptions {
        kdf_iterations: 1000,
        ..SoftOptions::default()
    };
    let mut key = VirtualKey::open(dir, "virtual key", &opts).unwrap();
    let log = key.log();
    key.power_on();
    (
        Arc::new(Wire {
            card: Mutex::new(key),
            hold: Mutex::new(()),
            seen: Mutex::new(Vec::new()),
            present: AtomicBool::new(true),
        }),
        log,
    )
}

fn with_app(dev: &ApduDevice) -> Arc<dyn token_hal::Application> {
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
    let mut p = AppParams::new(Pin::from("12345678"), Some(Pin::from("123456")));
    p.user_retries = 3;
    p.create_file_rights = Rights::USER;
    dev.create_app("bids", &p).unwrap();
    dev.open_app("bids").unwrap()
}

#[test]
fn the_whole_model_through_the_card() {
    for caps in [LinkCaps::SHORT, LinkCaps::EXTENDED] {
        let tmp = tempfile::tempdir().unwrap();
        let (wire, log) = card(tmp.path());
        let dev = ApduDevice::new(wire.clone(), caps, None);
        let info = dev.info().unwrap();
        assert_eq!(info.backend, token_hal::BackendKind::Apdu);
        // The virtual key says what it is (DEVICE INFO's form byte): software, removable.
        assert!(info.removable && !info.hardware);
        // Creating an application needs device authentication.
        let p = AppParams::new(Pin::from("12345678"), Some(Pin::from("123456")));
        assert!(matches!(
            dev.create_app("x", &p),
            Err(Error::DeviceAuthRequired)
        ));
        let app = with_app(&dev);
        assert_eq!(dev.list_apps().unwrap(), ["bids"]);

        // PINs: wrong, right; the login lives on the host handle.
        assert!(matches!(
            app.verify_pin(PinType::User, &Pin::from("000000")),
            Err(Error::PinIncorrect { retries_left: 2 })
        ));
        assert!(matches!(
            app.create_container("c", None),
            Err(Error::NotLoggedIn)
        ));
        app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
        assert_eq!(app.login_state(), LoginState::User);
        assert_eq!(app.pin_info(PinType::User).unwrap().remaining, 3);

        // Keys on the card; digests on the host.
        app.create_container("c", Some(b"c1")).unwrap();
        let sign_pub = app
            .generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, false)
            .unwrap();
        let mech = SignMech::Sm2Sm3 {
            id: sm2::DEFAULT_ID.to_vec(),
        };
        let msg = vec![0x5A; 3000];
        let sig = app
            .sign(&KeyRef::active("c", KeyUsage::Sign), &mech, &msg)
            .unwrap();
        sign_pub.verify(&mech, &msg, &sig).unwrap();
        // An imported RSA key signs exactly as the same key in software.
        let rsa = PrivateKey::generate(KeyAlg::Rsa(2048)).unwrap();
        app.create_container("r", None).unwrap();
        let kid = app.import_key("r", KeyUsage::Sign, &rsa, false).unwrap();
        for m in [
            SignMech::RsaPkcs1(HashAlg::Sha256),
            SignMech::RsaPkcs1(HashAlg::Sha1),
        ] {
            assert_eq!(
                app.sign(&KeyRef::Id(kid), &m, b"bid").unwrap(),
                rsa.sign(&m, b"bid").unwrap(),
                "{m:?}"
            );
        }
        let pss = SignMech::RsaPss {
            hash: HashAlg::Sha256,
            salt_len: 32,
        };
        let s = app.sign(&KeyRef::Id(kid), &pss, b"bid").unwrap();
        rsa.public_key().unwrap().verify(&pss, b"bid", &s).unwrap();
        // Decryption with an encryption pair.
        let enc_pub = app
            .generate_key("c", KeyUsage::Encrypt, KeyAlg::Sm2, false)
            .unwrap();
        let ct = enc_pub.encrypt(&EncMech::Sm2, b"session key").unwrap();
        let pt = app
            .decrypt(&KeyRef::active("c", KeyUsage::Encrypt), &DecMech::Sm2, &ct)
            .unwrap();
        assert_eq!(pt.as_slice(), b"session key");
        // Keys never leave.
        assert!(matches!(app.export_key(kid), Err(Error::Unsupported(_))));
        let c = app.container("c").unwrap();
        assert_eq!(c.id, b"c1");
        assert!(c.sign.is_some() && c.enc.is_some());

        // Files and generic objects, with long data (chaining and GET RESPONSE).
        app.create_file("seal", 4000, Rights::ANYONE, Rights::USER)
            .unwrap();
        let big: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        app.write_file("seal", 0, &big).unwrap();
        assert_eq!(app.read_file("seal", 0, 4000).unwrap(), big);
        let id = app
            .create_object(
                true,
                &[
                    token_hal::Attr::public(0, vec![4, 0, 0, 0, 0, 0, 0, 0]),
                    token_hal::Attr {
                        ty: 0x11,
                        value: zeroize::Zeroizing::new(vec![9; 32]),
                        sensitive: true,
                    },
                ],
            )
            .unwrap();
        let rec = app.get_object(id).unwrap();
        assert_eq!(rec.get(0x11).unwrap().value.as_slice(), [9; 32]);
        assert_eq!(app.list_objects().unwrap().len(), 1);
        app.delete_object(id).unwrap();

        // What crossed the wire: never the PIN, and every secure transaction ended with
        // LOGOUT in the card's own log.
        let seen = wire.seen.lock().unwrap().clone();
        assert!(!seen.windows(6).any(|w| w == b"123456"), "PIN in clear");
        assert!(
            !seen.windows(8).any(|w| w == b"12345678"),
            "SO PIN in clear"
        );
        let served = log.lock().unwrap().clone();
        assert!(served.iter().any(|s| s.header[1] == ins::SIGN && s.secure));
        let opens: Vec<usize> = served
            .iter()
            .enumerate()
            .filter(|(_, s)| s.secure && s.header[1] == ins::OPEN_APP)
            .map(|(i, _)| i)
            .collect();
        assert!(opens.len() > 10);
        for w in opens.windows(2) {
            let between = &served[w[0]..w[1]];
            assert_eq!(
                between.iter().rev().find(|s| s.secure).unwrap().header[1],
                ins::LOGOUT,
                "a transaction that did not end logged out: {between:?}"
            );
        }
        app.logout();
        assert!(matches!(
            app.sign(&KeyRef::active("c", KeyUsage::Sign), &mech, b"x"),
            Err(Error::NotLoggedIn)
        ));
    }
}

/// Two hosts (two processes, say) share one card: each opening its channel drops the
/// other's; both recover by re-opening and re-verifying, and neither inherits the other's
/// login.
#[test]
fn two_hosts_share_one_card() {
    let tmp = tempfile::tempdir().unwrap();
    let (wire, _) = card(tmp.path());
    let a = ApduDevice::new(wire.clone(), LinkCaps::EXTENDED, None);
    let b = ApduDevice::new(wire.clone(), LinkCaps::EXTENDED, None);
    let app_a = with_app(&a);
    app_a
        .verify_pin(PinType::User, &Pin::from("123456"))
        .unwrap();
    app_a.create_container("c", None).unwrap();
    let pk = app_a
        .generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    let app_b = b.open_app("bids").unwrap();
    let mech = SignMech::Sm2Sm3 {
        id: sm2::DEFAULT_ID.to_vec(),
    };
    for i in 0..3 {
        // B is not logged in: A's login does not carry over.
        assert!(matches!(
            app_b.sign(&KeyRef::active("c", KeyUsage::Sign), &mech, b"b"),
            Err(Error::NotLoggedIn)
        ));
        let sig = app_a
            .sign(&KeyRef::active("c", KeyUsage::Sign), &mech, &[i])
            .unwrap();
        pk.verify(&mech, &[i], &sig).unwrap();
    }
    app_b
        .verify_pin(PinType::User, &Pin::from("123456"))
        .unwrap();
    let sig = app_b
        .sign(&KeyRef::active("c", KeyUsage::Sign), &mech, b"b")
        .unwrap();
    pk.verify(&mech, b"b", &sig).unwrap();
}

#[test]
fn pulled_card_is_an_error_and_state_persists() {
    let tmp = tempfile::tempdir().unwrap();
    let (wire, _) = card(tmp.path());
    let dev = ApduDevice::new(wire.clone(), LinkCaps::SHORT, None);
    let app = with_app(&dev);
    app.verify_pin(PinType::User, &Pin::from("123456")).unwrap();
    app.create_container("kept", None).unwrap();
    wire.present.store(false, Ordering::SeqCst);
    assert!(matches!(app.list_containers(), Err(Error::DeviceRemoved)));
    assert!(matches!(dev.info(), Err(Error::DeviceRemoved)));
    // Re-inserted (powered on again), the card kept its state; the volatile part is
    // gone, so the driver opens a new channel.
    wire.card.lock().unwrap().power_on();
    wire.present.store(true, Ordering::SeqCst);
    assert_eq!(app.list_containers().unwrap()[0].name, "kept");
    // A new virtual key over the same directory is the same card.
    drop(dev);
    let (wire2, _) = {
        let opts = SoftOptions {
            kdf_iterations: 1000,
            ..SoftOptions::default()
        };
        let mut key = VirtualKey::open(tmp.path(), "ignored", &opts).unwrap();
        key.power_on();
        (
            Arc::new(Wire {
                card: Mutex::new(key),
                hold: Mutex::new(()),
                seen: Mutex::new(Vec::new()),
                present: AtomicBool::new(true),
            }),
            (),
        )
    };
    let dev2 = ApduDevice::new(wire2, LinkCaps::EXTENDED, None);
    assert_eq!(dev2.list_apps().unwrap(), ["bids"]);
    // Wrong PINs persist across "power cycles".
    let app2 = dev2.open_app("bids").unwrap();
    assert!(
        app2.verify_pin(PinType::User, &Pin::from("999999"))
            .is_err()
    );
    assert_eq!(app2.pin_info(PinType::User).unwrap().remaining, 2);
}

/// Malformed and hostile commands get status words, never a panic.
#[test]
fn hostile_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let (wire, _) = card(tmp.path());
    let mut card = wire.card.lock().unwrap();
    for apdu in [
        &[][..],
        &[0x80],
        &[0x80, 0x43, 0, 0, 5, 1],
        &[0x84, 0xC2, 0, 0, 2, 0, 0],
        &[0x00, 0xC0, 0, 0, 0],
        &[0x80, 0xA0, 0, 0, 1, 4],
        &[0x80, 0x11, 0, 0, 1, 0],
    ] {
        let r = card.process(apdu);
        assert!(r.len() >= 2, "{apdu:02x?}");
        assert_ne!(&r[r.len() - 2..], [0x90, 0x00], "{apdu:02x?}");
    }
    // Before SELECT nothing but SELECT answers; in clear after SELECT, only the
    // secure-channel commands do.
    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x06, 0xF0, b'u', b'k', b'e', b'y', 0x01, 0x00,
    ];
    let r = card.process(&select);
    assert_eq!(&r[r.len() - 2..], [0x90, 0x00]);
    let r = card.process(&[0x80, 0x10, 0, 0, 0]);
    assert_eq!(&r[r.len() - 2..], [0x69, 0x87]);
    let r = card.process(&[0x84, 0xC2, 0, 0, 3, 0, 0, 1]);
    assert_eq!(&r[r.len() - 2..], [0x69, 0x87], "no channel");
}

/// Cards as a registry backend: one device per present card, the same device (and its
/// secure channel) across scans, none once the card is pulled.
#[test]
fn backend_tracks_present_cards() {
    use token_hal::apdu::backend::ApduBackend;
    use token_hal::registry::Backend;
    let tmp = tempfile::tempdir().unwrap();
    let (wire, log) = card(tmp.path());
    let w = wire.clone();
    let backend = ApduBackend::new(
        "test",
        LinkCaps::SHORT,
        Box::new(move || Ok(vec![w.clone() as Arc<dyn Transport>])),
        Default::default(),
    );
    let first = backend.devices().unwrap();
    assert_eq!(first.len(), 1);
    first[0].info().unwrap();
    let second = backend.devices().unwrap();
    assert!(Arc::ptr_eq(&first[0], &second[0]), "the same device");
    second[0].info().unwrap();
    let opens = log
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.header[1] == 0xA0 && s.header[2] == 0)
        .count();
    assert_eq!(opens, 1, "one secure channel for both scans");
    wire.present.store(false, Ordering::SeqCst);
    assert!(backend.devices().unwrap().is_empty());
}

/// A [`HidLink`] that records every 64-byte report both ways: the traffic log of the HID
/// transport.
struct RecordingLink {
    inner: token_hal::apdu::hid::LoopbackHidLink,
    reports: Arc<Mutex<Vec<token_hal::apdu::hid::Report>>>,
}

impl token_hal::apdu::hid::HidLink for RecordingLink {
    fn id(&self) -> String {
        self.inner.id()
    }
    fn write_report(&mut self, report: &token_hal::apdu::hid::Report) -> token_hal::Result<()> {
        self.reports.lock().unwrap().push(*report);
        self.inner.write_report(report)
    }
    fn read_report(
        &mut self,
        timeout: std::time::Duration,
    ) -> token_hal::Result<Option<token_hal::apdu::hid::Report>> {
        let r = self.inner.read_report(timeout)?;
        if let Some(r) = &r {
            self.reports.lock().unwrap().push(*r);
        }
        Ok(r)
    }
}

/// PIN capture over the HID framing: every report that crossed the link (both ways) is
/// logged while the PINs are set, verified (wrong and right), changed and unblocked; no
/// PIN's bytes appear in the log, though the PIN commands did cross it (encrypted).
#[test]
fn pins_never_cross_the_hid_reports_in_clear() {
    use token_hal::apdu::hid::{HidTransport, LoopbackHidLink};
    let tmp = tempfile::tempdir().unwrap();
    let opts = SoftOptions {
        kdf_iterations: 1000,
        ..SoftOptions::default()
    };
    let key = VirtualKey::open(tmp.path(), "hid key", &opts).unwrap();
    let log = key.log();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let link = RecordingLink {
        inner: LoopbackHidLink::new("hid-recorded", Box::new(key)),
        reports: reports.clone(),
    };
    let dev = ApduDevice::new(Arc::new(HidTransport::new(link)), LinkCaps::EXTENDED, None);
    let (so, user, user2, user3) = ("86204517", "731946", "552093", "640871");
    dev.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
    let p = AppParams::new(Pin::from(so), Some(Pin::from(user)));
    dev.create_app("bids", &p).unwrap();
    let app = dev.open_app("bids").unwrap();
    assert!(matches!(
        app.verify_pin(PinType::User, &Pin::from("000000")),
        Err(Error::PinIncorrect { .. })
    ));
    app.verify_pin(PinType::User, &Pin::from(user)).unwrap();
    app.change_pin(PinType::User, &Pin::from(user), &Pin::from(user2))
        .unwrap();
    app.unblock_pin(&Pin::from(so), &Pin::from(user3)).unwrap();
    app.verify_pin(PinType::User, &Pin::from(user3)).unwrap();
    app.verify_pin(PinType::Admin, &Pin::from(so)).unwrap();

    let reports = reports.lock().unwrap();
    assert!(reports.len() > 20, "{} reports", reports.len());
    let bytes: Vec<u8> = reports.iter().flatten().copied().collect();
    for pin in [so, user, user2, user3] {
        assert!(
            !bytes.windows(pin.len()).any(|w| w == pin.as_bytes()),
            "PIN {pin} in clear in the HID reports"
        );
    }
    // The PIN commands reached the key, inside the secure channel.
    let served = log.lock().unwrap();
    for i in [ins::VERIFY_PIN, ins::CHANGE_PIN, ins::UNBLOCK_PIN] {
        assert!(
            served.iter().any(|s| s.secure && s.header[1] == i),
            "INS {i:02X} not served"
        );
    }
}
