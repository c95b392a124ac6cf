//! Helpers of the SKF black-box tests: data directories made with the `ukey` binary,
//! child processes that load `libukey_skf.so` with their own configuration, typed access
//! to the library's symbols, and blob builders that play the CA/KMC outside the token.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use token_hal::crypto::{EncMech, KeyAlg, PrivateKey, PublicKey};
use ukey_tests::{skf_lib, ukey_bin};

/// Writes `DIR/ukey.toml` pointing at `DIR/data`; returns its path.
pub fn conf(dir: &Path) -> PathBuf {
    ukey_tests::write_soft_conf(dir, "")
}

/// Runs the `ukey` CLI with a config; panics with its output on failure.
pub fn ukey(conf: &Path, args: &[&str]) -> String {
    let out = Command::new(ukey_bin())
        .env("UKEY_CONF", conf)
        .env_remove("UKEY_DATA_DIR")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ukey {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A data dir with one soft device and no application.
pub fn device_only(dir: &Path) -> PathBuf {
    let c = conf(dir);
    ukey(&c, &["device", "init", "--label", "skfdev"]);
    c
}

/// A data dir with one soft device holding application `app` (admin PIN 12345678, user
/// PIN 123456).
pub fn with_app(dir: &Path, app: &str) -> PathBuf {
    let c = conf(dir);
    ukey(
        &c,
        &[
            "softhsm",
            "--init-token",
            "--free",
            "--label",
            app,
            "--so-pin",
            "12345678",
            "--pin",
            "123456",
        ],
    );
    c
}

/// Re-runs the current test binary as a child that runs only `test` with this config
/// (the library reads its configuration once per process). Panics with the child's
/// output when it fails; returns its stdout.
pub fn run_child(conf: &Path, test: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("UKEY_CONF", conf)
        .env("UKEY_TEST_CHILD", test)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child {test}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Whether this process is the child for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var("UKEY_TEST_CHILD").as_deref() == Ok(test)
}

/// The loaded library.
pub fn lib() -> &'static libloading::Library {
    use std::sync::OnceLock;
    static LIB: OnceLock<libloading::Library> = OnceLock::new();
    // SAFETY: loading our own library, which has no initialisers with preconditions.
    LIB.get_or_init(|| unsafe { libloading::Library::new(skf_lib()) }.unwrap())
}

/// A symbol of the library as a function pointer of type `T`.
///
/// The caller names `T` after the prototype of include/skf.h (the `skf!` macro does);
/// a wrong type would make calls through it undefined, which is why the only users are
/// the typed `skf!` invocations of these tests.
pub fn sym<T: Copy>(name: &[u8]) -> T {
    // SAFETY: `T` is the C function-pointer type of the symbol's prototype in
    // include/skf.h (see above); the library stays loaded for the process.
    unsafe { *lib().get::<T>(name).unwrap() }
}

/// A function of the library, typed by the caller after include/skf.h.
#[macro_export]
macro_rules! skf {
    ($name:ident : fn($($arg:ty),*)) => {
        $crate::skf_common::sym::<unsafe extern "C" fn($($arg),*) -> u32>(
            concat!(stringify!($name), "\0").as_bytes(),
        )
    };
}

/// 64-byte right-aligned field of a 32-byte value.
pub fn field64(v: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[64 - v.len()..].copy_from_slice(v);
    out
}

/// ECCPUBLICKEYBLOB bytes of an SM2 public key.
pub fn ecc_pub_blob(k: &PublicKey) -> Vec<u8> {
    let p = k.ec_point().unwrap();
    let mut out = 256u32.to_ne_bytes().to_vec();
    out.extend_from_slice(&field64(&p[1..33]));
    out.extend_from_slice(&field64(&p[33..65]));
    out
}

/// The SM2 public key of ECCPUBLICKEYBLOB bytes.
pub fn ecc_pub_of_blob(b: &[u8]) -> PublicKey {
    assert_eq!(b.len(), 132);
    let mut p = vec![4u8];
    p.extend_from_slice(&b[36..68]);
    p.extend_from_slice(&b[100..132]);
    PublicKey::from_ec_point(KeyAlg::Sm2, &p).unwrap()
}

/// ECCCIPHERBLOB bytes of a raw C1‖C3‖C2 ciphertext.
pub fn cipher_blob(raw: &[u8]) -> Vec<u8> {
    let mut out = field64(&raw[1..33]).to_vec();
    out.extend_from_slice(&field64(&raw[33..65]));
    out.extend_from_slice(&raw[65..97]);
    out.extend_from_slice(&u32::try_from(raw.len() - 97).unwrap().to_ne_bytes());
    out.extend_from_slice(&raw[97..]);
    out
}

/// A random SM2 private scalar and its key.
pub fn sm2_key() -> (Vec<u8>, PrivateKey) {
    loop {
        let d = token_hal::crypto::rng::random_bytes(32).unwrap();
        if let Ok(k) = PrivateKey::from_sm2_scalar(&d) {
            return (d, k);
        }
    }
}

/// An ENVELOPEDKEYBLOB, built as a CA's KMC builds one: the 64-byte private-key field
/// (32 zero bytes ‖ d) SM4-ECB-encrypted under a random key, that key SM2-encrypted to
/// `sign_pub` (the container's signing key).
pub fn enveloped_key_blob(d: &[u8], enc_pub: &PublicKey, sign_pub: &PublicKey) -> Vec<u8> {
    use token_hal::crypto::sym::{SymAlg, SymMode, encrypt};
    let k = token_hal::crypto::rng::random_bytes(16).unwrap();
    let field = field64(d);
    let enc = encrypt(SymAlg::Sm4, SymMode::Ecb, &k, &[], &field).unwrap();
    assert_eq!(enc.len(), 64);
    let wrapped = sign_pub.encrypt(&EncMech::Sm2, &k).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&1u32.to_ne_bytes());
    out.extend_from_slice(&0x401u32.to_ne_bytes());
    out.extend_from_slice(&256u32.to_ne_bytes());
    out.extend_from_slice(&enc);
    out.extend_from_slice(&ecc_pub_blob(enc_pub));
    assert_eq!(out.len(), 208);
    out.extend_from_slice(&cipher_blob(&wrapped));
    out
}

/// DER SEQUENCE { r INTEGER, s INTEGER } of an ECCSIGNATUREBLOB (r, s right-aligned).
pub fn sig_der(blob: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let v = &v[v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1)..];
        let mut body = Vec::new();
        if v[0] & 0x80 != 0 {
            body.push(0);
        }
        body.extend_from_slice(v);
        let mut out = vec![2u8, u8::try_from(body.len()).unwrap()];
        out.extend_from_slice(&body);
        out
    }
    let mut body = int(&blob[..64]);
    body.extend_from_slice(&int(&blob[64..128]));
    let mut out = vec![0x30u8, u8::try_from(body.len()).unwrap()];
    out.extend_from_slice(&body);
    out
}

/// Runs a command; panics with its output on failure.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The 32-byte scalar of an SM2 private key.
pub fn sm2_scalar(k: &PrivateKey) -> Vec<u8> {
    use der::Decode;
    let p8 = k.to_pkcs8_der();
    let pki = pkcs8::PrivateKeyInfoRef::from_der(&p8).unwrap();
    let ec = sec1::EcPrivateKey::from_der(pki.private_key.as_bytes()).unwrap();
    let mut d = vec![0u8; 32 - ec.private_key.len()];
    d.extend_from_slice(ec.private_key);
    d
}

/// Handles and calls of a session on the first device: connect, open `app`, verify the
/// user PIN 123456.
pub struct Session {
    pub dev: *mut std::ffi::c_void,
    pub app: *mut std::ffi::c_void,
}

type H = *mut std::ffi::c_void;

impl Session {
    pub fn open(app: &str) -> Self {
        let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
        let connect = skf!(SKF_ConnectDev: fn(*const u8, *mut H));
        let open_app = skf!(SKF_OpenApplication: fn(H, *const u8, *mut H));
        let verify = skf!(SKF_VerifyPIN: fn(H, u32, *const u8, *mut u32));
        let mut buf = vec![0u8; 1024];
        let mut len = 1024u32;
        // SAFETY: the buffer holds `len` bytes.
        assert_eq!(unsafe { enum_dev(1, buf.as_mut_ptr(), &mut len) }, 0);
        let mut dev: H = std::ptr::null_mut();
        // SAFETY: `buf` starts with a NUL-terminated device name.
        assert_eq!(unsafe { connect(buf.as_ptr(), &mut dev) }, 0);
        let mut a: H = std::ptr::null_mut();
        let name = format!("{app}\0");
        // SAFETY: valid handle, NUL-terminated name, valid output pointer.
        assert_eq!(unsafe { open_app(dev, name.as_ptr(), &mut a) }, 0);
        let mut retry = 0u32;
        let rv = {
            // SAFETY: as above.
            unsafe { verify(a, 1, c"123456".as_ptr().cast(), &mut retry) }
        };
        assert_eq!(rv, 0);
        Self { dev, app: a }
    }

    /// Creates (or opens) a container.
    pub fn container(&self, name: &str, create: bool) -> H {
        let f = if create {
            skf!(SKF_CreateContainer: fn(H, *const u8, *mut H))
        } else {
            skf!(SKF_OpenContainer: fn(H, *const u8, *mut H))
        };
        let mut c: H = std::ptr::null_mut();
        let n = format!("{name}\0");
        // SAFETY: valid handle, NUL-terminated name, valid output pointer.
        assert_eq!(unsafe { f(self.app, n.as_ptr(), &mut c) }, 0);
        c
    }

    /// ExportPublicKey.
    pub fn public_key(c: H, sign: bool) -> Vec<u8> {
        let f = skf!(SKF_ExportPublicKey: fn(H, i32, *mut u8, *mut u32));
        let mut b = vec![0u8; 300];
        let mut len = 300u32;
        let rv = {
            // SAFETY: the buffer holds `len` bytes.
            unsafe { f(c, i32::from(sign), b.as_mut_ptr(), &mut len) }
        };
        assert_eq!(rv, 0);
        b.truncate(len as usize);
        b
    }

    /// GenECCKeyPair with this algorithm ID; the public key blob.
    pub fn gen_sm2(c: H, alg: u32) -> Vec<u8> {
        let f = skf!(SKF_GenECCKeyPair: fn(H, u32, *mut u8));
        let mut b = vec![0u8; 132];
        // SAFETY: the buffer holds an ECCPUBLICKEYBLOB.
        assert_eq!(unsafe { f(c, alg, b.as_mut_ptr()) }, 0);
        b
    }

    /// ImportECCKeyPair; the return code.
    pub fn import_enc(c: H, blob: &mut [u8]) -> u32 {
        let f = skf!(SKF_ImportECCKeyPair: fn(H, *mut u8));
        // SAFETY: the blob holds a whole ENVELOPEDKEYBLOB.
        unsafe { f(c, blob.as_mut_ptr()) }
    }

    /// ImportCertificate; the return code.
    pub fn import_cert(c: H, sign: bool, der: &[u8]) -> u32 {
        let f = skf!(SKF_ImportCertificate: fn(H, i32, *const u8, u32));
        // SAFETY: the buffer holds `len` bytes.
        unsafe {
            f(
                c,
                i32::from(sign),
                der.as_ptr(),
                u32::try_from(der.len()).unwrap(),
            )
        }
    }

    /// ImportSessionKey then single-part SM4-CBC (PKCS#5) decryption; the code of the
    /// first failing call, or the plaintext.
    pub fn unwrap_and_decrypt(c: H, wrapped: &[u8], iv: &[u8], ct: &[u8]) -> Result<Vec<u8>, u32> {
        let import = skf!(SKF_ImportSessionKey: fn(H, u32, *const u8, u32, *mut H));
        let init = skf!(SKF_DecryptInit: fn(H, skf_sys::BLOCKCIPHERPARAM));
        let dec = skf!(SKF_Decrypt: fn(H, *const u8, u32, *mut u8, *mut u32));
        let close = skf!(SKF_CloseHandle: fn(H));
        let mut k: H = std::ptr::null_mut();
        // SAFETY: buffers valid for their lengths; valid output pointer.
        let rv = unsafe {
            import(
                c,
                0x402,
                wrapped.as_ptr(),
                u32::try_from(wrapped.len()).unwrap(),
                &mut k,
            )
        };
        if rv != 0 {
            return Err(rv);
        }
        let mut p = skf_sys::BLOCKCIPHERPARAM {
            IV: [0; 32],
            IVLen: 16,
            PaddingType: 1,
            FeedBitLen: 0,
        };
        p.IV[..16].copy_from_slice(iv);
        // SAFETY: a session-key handle and a by-value parameter.
        let rv = unsafe { init(k, p) };
        if rv != 0 {
            return Err(rv);
        }
        let mut out = vec![0u8; ct.len()];
        let mut len = u32::try_from(out.len()).unwrap();
        // SAFETY: buffers valid for their lengths.
        let rv = unsafe {
            dec(
                k,
                ct.as_ptr(),
                u32::try_from(ct.len()).unwrap(),
                out.as_mut_ptr(),
                &mut len,
            )
        };
        // SAFETY: a session-key handle.
        unsafe { close(k) };
        if rv != 0 {
            return Err(rv);
        }
        out.truncate(len as usize);
        Ok(out)
    }
}
