//! SKF on top of a PKCS#11 token: `libukey_skf.so` with only the `pkcs11` backend
//! (`UKEY_BACKENDS=pkcs11`) and a `[[pkcs11_library]]` naming SoftHSM2. The key pairs are
//! made outside ukey (softhsm2-util and pkcs11-tool); the SKF face must list the RSA one
//! as a container and sign with it, and hide the P-256 one as it hides every non-GM/T 0016
//! key type.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::ffi::c_void;
use std::path::Path;
use std::process::Command;
use std::ptr::null_mut;

use skf_common::*;
use skf_sys::*;
use token_hal::crypto::{HashAlg, KeyAlg, PrivateKey, PublicKey, SignMech};

type H = *mut c_void;

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn skf_over_softhsm2_through_the_pkcs11_bridge() {
    assert!(Path::new(SOFTHSM).exists(), "install softhsm2");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let sh_conf = dir.join("softhsm2.conf");
    std::fs::write(
        &sh_conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    let sh = |args: &[&str]| {
        run(Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &sh_conf)
            .args(args))
    };
    sh(&[
        "--init-token",
        "--free",
        "--label",
        "t",
        "--so-pin",
        "12345678",
        "--pin",
        "123456",
    ]);
    // An RSA key made here, imported with softhsm2-util; its public key is the test's
    // reference for the signature.
    let key = PrivateKey::generate(KeyAlg::Rsa(2048)).unwrap();
    let pem = pem_rfc7468::encode_string(
        "PRIVATE KEY",
        pem_rfc7468::LineEnding::LF,
        &key.to_pkcs8_der(),
    )
    .unwrap();
    let key_file = dir.join("bidder.pem");
    std::fs::write(&key_file, pem).unwrap();
    sh(&[
        "--import",
        key_file.to_str().unwrap(),
        "--token",
        "t",
        "--label",
        "bidder",
        "--id",
        "0a0b",
        "--pin",
        "123456",
    ]);
    std::fs::remove_file(&key_file).unwrap();
    std::fs::write(dir.join("bidder.pub"), key.public_key().unwrap().spki_der()).unwrap();
    // Its certificate, as a CA would issue it (self-signed here), for SKF_ImportCertificate.
    let cert = token_hal::cert::self_signed(
        &key.public_key().unwrap(),
        &token_hal::cert::SelfSignedSpec::new("bidder", token_hal::model::KeyUsage::Sign),
        |mech, tbs| key.sign(mech, tbs),
    )
    .unwrap();
    std::fs::write(dir.join("bidder.cer"), cert).unwrap();
    // An EC pair generated inside the token by pkcs11-tool.
    run(Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &sh_conf)
        .args([
            "--module",
            SOFTHSM,
            "--token-label",
            "t",
            "--login",
            "--pin",
            "123456",
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "0c",
            "--label",
            "ecsig",
        ]));

    let conf = dir.join("ukey.toml");
    std::fs::write(
        &conf,
        format!(
            "data_dir = \"{}\"\n[[pkcs11_library]]\npath = \"{SOFTHSM}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    for (child, backends) in [
        ("p11bridge_child", "pkcs11"),
        ("p11bridge_excluded_child", "soft"),
    ] {
        let out = Command::new(std::env::current_exe().unwrap())
            .env("UKEY_CONF", &conf)
            .env("UKEY_BACKENDS", backends)
            .env("SOFTHSM2_CONF", &sh_conf)
            .env("P11BRIDGE_PUB", dir.join("bidder.pub"))
            .env("P11BRIDGE_CERT", dir.join("bidder.cer"))
            .env("UKEY_TEST_CHILD", child)
            .args(["--exact", child, "--nocapture", "--test-threads", "1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "child {child}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// With `UKEY_BACKENDS` leaving `pkcs11` out, the bridged token is not listed.
#[test]
fn p11bridge_excluded_child() {
    if !is_child("p11bridge_excluded_child") {
        return;
    }
    let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
    let mut buf = vec![0u8; 1024];
    let mut len = 1024u32;
    // SAFETY: the buffer holds `len` bytes.
    assert_eq!(unsafe { enum_dev(1, buf.as_mut_ptr(), &mut len) }, SAR_OK);
    assert!(names(&buf[..len as usize]).is_empty());
}

fn names(buf: &[u8]) -> Vec<String> {
    buf.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn cs(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

#[test]
fn p11bridge_child() {
    if !is_child("p11bridge_child") {
        return;
    }
    let reference =
        PublicKey::from_spki_der(&std::fs::read(std::env::var("P11BRIDGE_PUB").unwrap()).unwrap())
            .unwrap();
    let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
    let connect = skf!(SKF_ConnectDev: fn(*const u8, *mut H));
    let enum_app = skf!(SKF_EnumApplication: fn(H, *mut u8, *mut u32));
    let open_app = skf!(SKF_OpenApplication: fn(H, *const u8, *mut H));
    let verify = skf!(SKF_VerifyPIN: fn(H, u32, *const u8, *mut u32));
    let enum_con = skf!(SKF_EnumContainer: fn(H, *mut u8, *mut u32));
    let open_con = skf!(SKF_OpenContainer: fn(H, *const u8, *mut H));
    let con_type = skf!(SKF_GetContainerType: fn(H, *mut u32));
    let export_pub = skf!(SKF_ExportPublicKey: fn(H, i32, *mut u8, *mut u32));
    let import_cert = skf!(SKF_ImportCertificate: fn(H, i32, *const u8, u32));
    let export_cert = skf!(SKF_ExportCertificate: fn(H, i32, *mut u8, *mut u32));
    let cert = std::fs::read(std::env::var("P11BRIDGE_CERT").unwrap()).unwrap();
    let rsa_sign = skf!(SKF_RSASignData: fn(H, *const u8, u32, *mut u8, *mut u32));

    // SAFETY: every pointer passed is valid for what include/skf.h says.
    unsafe {
        let mut buf = vec![0u8; 1024];
        let mut len = 1024u32;
        assert_eq!(enum_dev(1, buf.as_mut_ptr(), &mut len), SAR_OK);
        let devs = names(&buf[..len as usize]);
        assert_eq!(devs.len(), 1, "{devs:?}");
        assert!(devs[0].starts_with("t ["), "{devs:?}");
        let mut dev: H = null_mut();
        assert_eq!(connect(cs(&devs[0]).as_ptr(), &mut dev), SAR_OK);

        let mut len = 1024u32;
        assert_eq!(enum_app(dev, buf.as_mut_ptr(), &mut len), SAR_OK);
        assert_eq!(names(&buf[..len as usize]), ["t"]);
        let mut app: H = null_mut();
        assert_eq!(open_app(dev, cs("t").as_ptr(), &mut app), SAR_OK);

        // The containers are visible before login from the public keys. The P-256 pair
        // is PKCS#11-only: GM/T 0016 has no container type for it (docs/mapping.md).
        let mut len = 1024u32;
        assert_eq!(enum_con(app, buf.as_mut_ptr(), &mut len), SAR_OK);
        assert_eq!(names(&buf[..len as usize]), ["bidder"]);

        let mut retry = 0u32;
        assert_eq!(
            verify(app, USER_TYPE, cs("111111").as_ptr(), &mut retry),
            SAR_PIN_INCORRECT
        );
        assert!(retry > 0);
        assert_eq!(
            verify(app, USER_TYPE, cs("123456").as_ptr(), &mut retry),
            SAR_OK
        );

        let mut con: H = null_mut();
        assert_eq!(open_con(app, cs("bidder").as_ptr(), &mut con), SAR_OK);
        let mut ty = 0u32;
        assert_eq!(con_type(con, &mut ty), SAR_OK);
        assert_eq!(ty, 1, "an RSA container");
        // RSAPUBLICKEYBLOB: AlgID, BitLen, Modulus[256], PublicExponent[4].
        let mut blob = vec![0u8; 1024];
        let mut blob_len = 1024u32;
        assert_eq!(export_pub(con, 1, blob.as_mut_ptr(), &mut blob_len), SAR_OK);
        let (n, _) = reference.rsa_components().unwrap();
        let n = &n[n.iter().position(|&b| b != 0).unwrap()..];
        assert_eq!(u32::from_ne_bytes(blob[4..8].try_into().unwrap()), 2048);
        assert_eq!(&blob[8..8 + 256], n);

        // SKF_RSASignData signs a DigestInfo (PKCS#1 v1.5).
        let msg = b"tender 2026-001";
        let mut di = vec![
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        di.extend(token_hal::crypto::hash::digest(HashAlg::Sha256, msg));
        let mut sig = vec![0u8; 512];
        let mut sig_len = 512u32;
        assert_eq!(
            rsa_sign(
                con,
                di.as_ptr(),
                di.len() as u32,
                sig.as_mut_ptr(),
                &mut sig_len
            ),
            SAR_OK
        );
        sig.truncate(sig_len as usize);
        assert_eq!(sig.len(), 256);
        reference
            .verify(&SignMech::RsaPkcs1(HashAlg::Sha256), msg, &sig)
            .unwrap();
        assert!(
            reference
                .verify(&SignMech::RsaPkcs1(HashAlg::Sha256), b"other", &sig)
                .is_err()
        );

        // The certificate goes into the token as a CKO_CERTIFICATE and comes back.
        let mut out = vec![0u8; 4096];
        let mut out_len = 4096u32;
        assert_ne!(
            export_cert(con, 1, out.as_mut_ptr(), &mut out_len),
            SAR_OK,
            "no certificate yet"
        );
        assert_eq!(
            import_cert(con, 1, cert.as_ptr(), cert.len() as u32),
            SAR_OK
        );
        let mut out_len = 4096u32;
        assert_eq!(export_cert(con, 1, out.as_mut_ptr(), &mut out_len), SAR_OK);
        assert_eq!(&out[..out_len as usize], &cert[..]);

        let mut ec: H = null_mut();
        assert_ne!(open_con(app, cs("ecsig").as_ptr(), &mut ec), SAR_OK);
    }
}
