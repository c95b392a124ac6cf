//! One model, two faces (docs/mapping.md): what one face or the CLI makes, the other sees.
//!
//! - key pairs made with the `ukey` CLI (the model path C_GenerateKeyPair takes) open as SKF
//!   containers, in another process; keys SKF cannot express are not listed;
//! - a container made through SKF is seen by the CLI (another process);
//! - through PKCS#11 (`pkcs11-tool` in another process, `cryptoki` in the same process as the
//!   SKF library): an SKF container appears as key objects with CKA_ID = the container id;
//!   and back: a PKCS#11 key pair (pkcs11-tool, cryptoki) opens as an SKF container.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::path::PathBuf;
use std::process::Command;

use skf_common::*;
use skf_sys::*;
use token_hal::crypto::{KeyAlg, PublicKey, SignMech};
use ukey_tests::pkcs11_lib;

type H = *mut std::ffi::c_void;

fn cs(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn names(list: &[u8]) -> Vec<String> {
    list.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn enum_containers(app: H) -> Vec<String> {
    let f = skf!(SKF_EnumContainer: fn(H, *mut u8, *mut u32));
    let mut buf = vec![0u8; 4096];
    let mut len = 4096u32;
    // SAFETY: the buffer holds `len` bytes.
    let rv = unsafe { f(app, buf.as_mut_ptr(), &mut len) };
    assert_eq!(rv, SAR_OK);
    names(&buf[..len as usize])
}

fn container_type(c: H) -> u32 {
    let f = skf!(SKF_GetContainerType: fn(H, *mut u32));
    let mut t = 9u32;
    // SAFETY: valid output pointer.
    let rv = unsafe { f(c, &mut t) };
    assert_eq!(rv, SAR_OK);
    t
}

fn cli_pub(conf: &std::path::Path, container: &str, enc: bool) -> PublicKey {
    let mut args = vec!["--token", "bids", "key", "pub", "--container", container];
    if enc {
        args.push("--enc");
    }
    PublicKey::from_pem(&ukey(conf, &args)).unwrap()
}

#[test]
fn cli_keys_open_as_skf_containers() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    let keygen = |args: &[&str]| {
        let mut a = vec!["--token", "bids", "--pin", "123456", "key", "gen"];
        a.extend_from_slice(args);
        ukey(&conf, &a);
    };
    keygen(&["--alg", "sm2", "--container", "sm2c"]);
    keygen(&["--alg", "sm2", "--container", "sm2c", "--enc"]);
    keygen(&["--alg", "rsa-2048", "--container", "rsac", "--no-cert"]);
    keygen(&["--alg", "ec-p256", "--container", "p256c", "--no-cert"]);
    let pubs = [
        cli_pub(&conf, "sm2c", false),
        cli_pub(&conf, "sm2c", true),
        cli_pub(&conf, "rsac", false),
    ];
    std::fs::write(
        tmp.path().join("pubs.pem"),
        pubs.iter()
            .map(PublicKey::to_pem)
            .collect::<Vec<_>>()
            .join(""),
    )
    .unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .env("UKEY_CONF", &conf)
        .env("UKEY_TEST_CHILD", "cli_keys_child")
        .env("PUBS", tmp.path().join("pubs.pem"))
        .args(["--exact", "cli_keys_child", "--nocapture"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cli_keys_child() {
    if !is_child("cli_keys_child") {
        return;
    }
    let pem = std::fs::read_to_string(std::env::var("PUBS").unwrap()).unwrap();
    let pubs: Vec<PublicKey> = pem
        .split_inclusive("-----END PUBLIC KEY-----\n")
        .map(|p| PublicKey::from_pem(p).unwrap())
        .collect();
    let s = Session::open("bids");
    let mut listed = enum_containers(s.app);
    listed.sort();
    assert_eq!(
        listed,
        ["rsac", "sm2c"],
        "the P-256 container is PKCS#11-only"
    );
    let open = skf!(SKF_OpenContainer: fn(H, *const u8, *mut H));
    let mut c: H = std::ptr::null_mut();
    // SAFETY: NUL-terminated name, valid output pointer.
    let rv = unsafe { open(s.app, cs("p256c").as_ptr(), &mut c) };
    assert_ne!(rv, SAR_OK);
    let c = s.container("sm2c", false);
    assert_eq!(container_type(c), CONTAINER_TYPE_ECC);
    assert_eq!(ecc_pub_of_blob(&Session::public_key(c, true)), pubs[0]);
    assert_eq!(ecc_pub_of_blob(&Session::public_key(c, false)), pubs[1]);
    // the CLI's self-signed certificate is the container's signing certificate
    let export = skf!(SKF_ExportCertificate: fn(H, i32, *mut u8, *mut u32));
    let mut len = 0u32;
    // SAFETY: size query.
    let rv = unsafe { export(c, TRUE, std::ptr::null_mut(), &mut len) };
    assert_eq!(rv, SAR_OK);
    let mut cert = vec![0u8; len as usize];
    // SAFETY: the buffer holds `len` bytes.
    let rv = unsafe { export(c, TRUE, cert.as_mut_ptr(), &mut len) };
    assert_eq!(rv, SAR_OK);
    assert_eq!(PublicKey::from_cert(&cert).unwrap(), pubs[0]);
    // SKF signs with the CLI-made key
    let sign = skf!(SKF_ECCSignData: fn(H, *const u8, u32, *mut ECCSIGNATUREBLOB));
    let e = [9u8; 32];
    // SAFETY: an all-zero ECCSIGNATUREBLOB is a valid value.
    let mut sig: ECCSIGNATUREBLOB = unsafe { std::mem::zeroed() };
    // SAFETY: 32 bytes in, a signature blob out.
    let rv = unsafe { sign(c, e.as_ptr(), 32, &mut sig) };
    assert_eq!(rv, SAR_OK);
    let mut rs = sig.r[32..].to_vec();
    rs.extend_from_slice(&sig.s[32..]);
    pubs[0].verify(&SignMech::Sm2Prehashed, &e, &rs).unwrap();
    let r = s.container("rsac", false);
    assert_eq!(container_type(r), CONTAINER_TYPE_RSA);
    let blob = Session::public_key(r, true);
    assert_eq!(blob.len(), 268);
    let (n, _) = pubs[2].rsa_components().unwrap();
    let n = &n[n.iter().position(|&b| b != 0).unwrap()..];
    assert_eq!(&blob[8..264], n);
    assert_eq!(pubs[2].alg(), KeyAlg::Rsa(2048));
}

#[test]
fn skf_containers_are_seen_by_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    let work = tmp.path().join("out");
    std::fs::create_dir(&work).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .env("UKEY_CONF", &conf)
        .env("UKEY_TEST_CHILD", "skf_made_child")
        .env("OUT", &work)
        .args(["--exact", "skf_made_child", "--nocapture"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let sign = ecc_pub_of_blob(&std::fs::read(work.join("sign.blob")).unwrap());
    let enc = ecc_pub_of_blob(&std::fs::read(work.join("enc.blob")).unwrap());
    assert_eq!(cli_pub(&conf, "bidder", false), sign);
    assert_eq!(cli_pub(&conf, "bidder", true), enc);
    let list = ukey(&conf, &["--token", "bids", "--json", "container", "list"]);
    assert!(list.contains("bidder"), "{list}");
    // the CLI decrypts with the key SKF imported
    let msg = tmp.path().join("m.txt");
    std::fs::write(&msg, b"sealed bid").unwrap();
    let pem = tmp.path().join("enc.pub.pem");
    std::fs::write(&pem, enc.to_pem()).unwrap();
    let ct = tmp.path().join("m.sm2");
    let pt = tmp.path().join("m.out");
    ukey(
        &conf,
        &[
            "encrypt",
            "--pub",
            pem.to_str().unwrap(),
            "-o",
            ct.to_str().unwrap(),
            msg.to_str().unwrap(),
        ],
    );
    ukey(
        &conf,
        &[
            "--token",
            "bids",
            "--pin",
            "123456",
            "--container",
            "bidder",
            "decrypt",
            "-o",
            pt.to_str().unwrap(),
            ct.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&pt).unwrap(), b"sealed bid");
}

#[test]
fn skf_made_child() {
    if !is_child("skf_made_child") {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT").unwrap());
    let s = Session::open("bids");
    let c = s.container("bidder", true);
    let sign = Session::gen_sm2(c, SGD_SM2_1);
    let (d, k) = sm2_key();
    let enc_pub = k.public_key().unwrap();
    let mut blob = enveloped_key_blob(&d, &enc_pub, &ecc_pub_of_blob(&sign));
    assert_eq!(Session::import_enc(c, &mut blob), SAR_OK);
    std::fs::write(out.join("sign.blob"), &sign).unwrap();
    std::fs::write(out.join("enc.blob"), ecc_pub_blob(&enc_pub)).unwrap();
}

/// `pkcs11-tool --list-objects` over a container made through SKF (another process).
#[test]
fn skf_container_appears_through_pkcs11_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    let work = tmp.path().join("out");
    std::fs::create_dir(&work).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .env("UKEY_CONF", &conf)
        .env("UKEY_TEST_CHILD", "skf_made_child")
        .env("OUT", &work)
        .args(["--exact", "skf_made_child", "--nocapture"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = sh(Command::new("pkcs11-tool")
        .env("UKEY_CONF", &conf)
        .arg("--module")
        .arg(pkcs11_lib())
        .args(["--login", "--pin", "123456", "--list-objects"]));
    // CKA_ID = the container id = the UTF-8 bytes of its name "bidder"
    let id = hex::encode(b"bidder");
    assert!(text.contains(&format!("ID:         {id}")), "{text}");
    assert!(text.contains("label:      bidder"), "{text}");
    assert!(text.matches("Private Key Object").count() >= 2, "{text}");
}

/// `pkcs11-tool --keypairgen` makes a key pair that opens as an SKF container.
#[test]
fn pkcs11_tool_key_pair_opens_as_skf_container() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    sh(Command::new("pkcs11-tool")
        .env("UKEY_CONF", &conf)
        .arg("--module")
        .arg(pkcs11_lib())
        .args([
            "--login",
            "--pin",
            "123456",
            "--keypairgen",
            "--key-type",
            "rsa:2048",
        ])
        .args(["--id", "a1b2", "--label", "p11rsa", "--usage-sign"]));
    let out = Command::new(std::env::current_exe().unwrap())
        .env("UKEY_CONF", &conf)
        .env("UKEY_TEST_CHILD", "p11_made_child")
        .args(["--exact", "p11_made_child", "--nocapture"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn p11_made_child() {
    if !is_child("p11_made_child") {
        return;
    }
    let s = Session::open("bids");
    assert_eq!(enum_containers(s.app), ["p11rsa"]);
    let c = s.container("p11rsa", false);
    assert_eq!(container_type(c), CONTAINER_TYPE_RSA);
    assert_eq!(Session::public_key(c, true).len(), 268);
}

/// Both libraries in one process: a container made through SKF is found through
/// PKCS#11 (cryptoki) by its CKA_ID, with its signing and encryption keys and the signing
/// public key SKF generated.
#[test]
fn skf_container_seen_by_pkcs11_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    run_child(&conf, "one_process_child");
}

/// Both libraries in one process, the other way: a key pair PKCS#11 generates with a
/// CKA_ID and CKA_SIGN lands in a container that SKF opens.
#[test]
fn pkcs11_key_pair_opens_through_skf_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    run_child(&conf, "one_process_back_child");
}

fn p11_login() -> (cryptoki::context::Pkcs11, cryptoki::session::Session) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let p11 = Pkcs11::new(pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p11.get_slots_with_token().unwrap()[0];
    let session = p11.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new("123456".into())))
        .unwrap();
    (p11, session)
}

#[test]
fn one_process_child() {
    if !is_child("one_process_child") {
        return;
    }
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    let s = Session::open("bids");
    let c = s.container("bidder", true);
    let sign = Session::gen_sm2(c, SGD_SM2_1);
    let (d, k) = sm2_key();
    let mut blob = enveloped_key_blob(&d, &k.public_key().unwrap(), &ecc_pub_of_blob(&sign));
    assert_eq!(Session::import_enc(c, &mut blob), SAR_OK);

    let (p11, session) = p11_login();
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(b"bidder".to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 2, "the signing and the encryption key");
    let verify_keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(b"bidder".to_vec()),
            Attribute::Verify(true),
        ])
        .unwrap();
    assert_eq!(verify_keys.len(), 1);
    let attrs = session
        .get_attributes(verify_keys[0], &[AttributeType::EcPoint])
        .unwrap();
    let Some(Attribute::EcPoint(point)) = attrs.first() else {
        panic!("no CKA_EC_POINT: {attrs:?}");
    };
    let want = ecc_pub_of_blob(&sign).ec_point().unwrap();
    assert!(
        point.ends_with(&want),
        "CKA_EC_POINT is the key SKF generated"
    );
    drop(session);
    p11.finalize().unwrap();
}

#[test]
fn one_process_back_child() {
    if !is_child("one_process_back_child") {
        return;
    }
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::Attribute;
    let s = Session::open("bids");
    let (p11, session) = p11_login();
    session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::Id(b"p11rsa".to_vec()),
                Attribute::Label(b"p11rsa".to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Sign(true),
                Attribute::Id(b"p11rsa".to_vec()),
                Attribute::Label(b"p11rsa".to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(enum_containers(s.app), ["p11rsa"]);
    let r = s.container("p11rsa", false);
    assert_eq!(container_type(r), CONTAINER_TYPE_RSA);
    drop(session);
    p11.finalize().unwrap();
}
