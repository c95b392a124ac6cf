//! Secret hygiene of libukey_pkcs11.so (issue 7):
//!
//! - after `C_Logout` and `C_Finalize`, a core dump (`gcore`) of a process that logged in
//!   with a distinctive PIN and imported, used and wrapped a distinctive AES key holds
//!   neither;
//! - a full run at the most verbose log level (`UKEY_LOG=trace`) writes neither the PIN nor
//!   the key, raw, in hex or in Base64.
//!
//! Each check runs the flow in a child process: this test binary re-executed to run the
//! ignored test `hygiene_child` with `UKEY_HYGIENE_CHILD` naming the check. The child
//! builds the PIN and the key at run time from masked constants and wipes its own copies,
//! so whatever the core holds came from the library.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

const MASK: u8 = 0x5a;
/// The user PIN, masked with [`MASK`]: "pin-Q7v!k2#Zr9".
const PIN_MASKED: [u8; 14] = [
    0x2a, 0x33, 0x34, 0x77, 0x0b, 0x6d, 0x2c, 0x7b, 0x31, 0x68, 0x79, 0x00, 0x28, 0x63,
];
/// The AES-256 key, masked with [`MASK`].
const KEY_MASKED: [u8; 32] = [
    0xe9, 0x1c, 0x73, 0x48, 0xa7, 0x0e, 0xd2, 0x65, 0x3b, 0xf0, 0x19, 0x8c, 0x44, 0x27, 0xbe, 0x01,
    0x96, 0x5d, 0xca, 0x12, 0x6f, 0xe3, 0x38, 0xb4, 0x0d, 0x81, 0x57, 0xfa, 0x2e, 0x63, 0x99, 0xc5,
];
const SO_PIN: &str = "12345678";
/// A canary the child keeps on its heap, masked: "ukey hygiene canary, kept on purpose".
const CANARY_MASKED: &[u8] = &[
    0x2f, 0x31, 0x3f, 0x23, 0x7a, 0x32, 0x23, 0x3d, 0x33, 0x3f, 0x34, 0x3f, 0x7a, 0x39, 0x3b, 0x34,
    0x3b, 0x28, 0x23, 0x76, 0x7a, 0x31, 0x3f, 0x2a, 0x2e, 0x7a, 0x35, 0x34, 0x7a, 0x2a, 0x2f, 0x28,
    0x2a, 0x35, 0x29, 0x3f,
];

fn unmask(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    out.extend(v.iter().map(|b| b ^ MASK));
    out
}

/// Wipes a buffer the optimiser may not skip.
fn wipe(v: &mut [u8]) {
    for b in v.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// The flow both checks run: token, PIN, login, key generation, signature, import of the
/// known key, encryption and wrapping with it, logout, finalize.
fn flow() {
    let p11 = Pkcs11::new(ukey_tests::pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p11.get_all_slots().unwrap()[0];
    p11.init_token(slot, &AuthPin::new(SO_PIN.into()), "hygiene")
        .unwrap();
    let pin = {
        let mut raw = unmask(&PIN_MASKED);
        let mut s = String::with_capacity(raw.len());
        s.extend(raw.iter().map(|b| char::from(*b)));
        wipe(&mut raw);
        AuthPin::new(s.into_boxed_str())
    };
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
        .unwrap();
    s.init_pin(&pin).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin)).unwrap();
    let (_, ec) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::EcParams(b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07".to_vec()),
            ],
            &[Attribute::Token(true)],
        )
        .unwrap();
    let _ = s.sign(&Mechanism::Ecdsa, ec, &[7u8; 32]).unwrap();
    let mut tmpl = vec![
        Attribute::Token(true),
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Encrypt(true),
        Attribute::Value(unmask(&KEY_MASKED)),
    ];
    let k = s.create_object(&tmpl).unwrap();
    if let Some(Attribute::Value(v)) = tmpl.last_mut() {
        wipe(v);
    }
    drop(tmpl);
    let _ = s
        .encrypt(&Mechanism::AesCbcPad([1; 16]), k, b"hygiene plaintext")
        .unwrap();
    let kek = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
            ],
        )
        .unwrap();
    let fresh = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
            ],
        )
        .unwrap();
    let _ = s.wrap_key(&Mechanism::AesKeyWrap, kek, fresh).unwrap();
    s.logout().unwrap();
    s.close().unwrap();
    drop(pin);
    p11.finalize().unwrap();
}

/// The SKF flow: open the application, verify the PIN, import the key as an SM4 session
/// key (`SKF_SetSymmKey`), encrypt with it, then close the key, clear the secure state,
/// close the application and disconnect.
fn skf_flow() {
    use skf_sys::*;
    type H = *mut std::ffi::c_void;
    let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
    let connect = skf!(SKF_ConnectDev: fn(*const u8, *mut H));
    let open_app = skf!(SKF_OpenApplication: fn(H, *const u8, *mut H));
    let verify = skf!(SKF_VerifyPIN: fn(H, u32, *const u8, *mut u32));
    let set_key = skf!(SKF_SetSymmKey: fn(H, *const u8, u32, *mut H));
    let enc_init = skf!(SKF_EncryptInit: fn(H, BLOCKCIPHERPARAM));
    let enc = skf!(SKF_Encrypt: fn(H, *const u8, u32, *mut u8, *mut u32));
    let close = skf!(SKF_CloseHandle: fn(H));
    let clear = skf!(SKF_ClearSecureState: fn(H));
    let close_app = skf!(SKF_CloseApplication: fn(H));
    let disconnect = skf!(SKF_DisConnectDev: fn(H));
    let mut names = vec![0u8; 1024];
    let mut len = 1024u32;
    let mut dev: H = std::ptr::null_mut();
    let mut app: H = std::ptr::null_mut();
    let mut key: H = std::ptr::null_mut();
    let mut pin = unmask(&PIN_MASKED);
    pin.push(0);
    let mut value = unmask(&KEY_MASKED[..16]);
    let param = BLOCKCIPHERPARAM {
        IV: [0; 32],
        IVLen: 0,
        PaddingType: 0,
        FeedBitLen: 0,
    };
    let mut out = [0u8; 32];
    let mut out_len = 32u32;
    let mut retry = 0u32;
    // SAFETY: every buffer holds the length given with it; names are NUL-terminated;
    // handles come from the library.
    unsafe {
        assert_eq!(enum_dev(1, names.as_mut_ptr(), &mut len), 0);
        assert_eq!(connect(names.as_ptr(), &mut dev), 0);
        assert_eq!(open_app(dev, c"hygiene".as_ptr().cast(), &mut app), 0);
        assert_eq!(verify(app, USER_TYPE, pin.as_ptr(), &mut retry), 0);
        assert_eq!(set_key(dev, value.as_ptr(), SGD_SM4_ECB, &mut key), 0);
        assert_eq!(enc_init(key, param), 0);
        assert_eq!(
            enc(key, [7u8; 16].as_ptr(), 16, out.as_mut_ptr(), &mut out_len),
            0
        );
        assert_eq!(close(key), 0);
        assert_eq!(clear(app), 0);
        assert_eq!(close_app(app), 0);
        assert_eq!(disconnect(dev), 0);
    }
    wipe(&mut pin);
    wipe(&mut value);
}

/// The child side of the checks (run by the tests below, never on its own).
#[test]
#[ignore = "the child process of the secret-hygiene tests"]
fn hygiene_child() {
    let Ok(mode) = std::env::var("UKEY_HYGIENE_CHILD") else {
        return;
    };
    if mode.starts_with("skf") {
        skf_flow();
    } else {
        flow();
    }
    if mode.ends_with("gcore") {
        // A canary left on the heap on purpose: the parent must find it, or its search
        // proves nothing.
        let canary: &'static mut [u8] = Box::leak(unmask(CANARY_MASKED).into_boxed_slice());
        std::hint::black_box(&canary);
        println!("READY");
        std::io::stdout().flush().unwrap();
        // Wait for the parent to take the core dump (it then kills this process).
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}

fn child(mode: &str, conf: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["hygiene_child", "--exact", "--ignored", "--nocapture"])
        .env("UKEY_HYGIENE_CHILD", mode)
        .env("UKEY_CONF", conf)
        .env_remove("UKEY_LOG")
        .env_remove("UKEY_LOG_OUTPUT");
    c
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every form a secret might take in text: raw, hex (both cases), Base64 (and the
/// Base64 of its copies shifted by one and two bytes, which an encoder of a longer
/// buffer would produce).
fn text_forms(secret: &[u8]) -> Vec<Vec<u8>> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b64 = |v: &[u8]| -> Vec<u8> {
        let mut o = Vec::new();
        for c in v.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..=c.len() {
                o.push(B64[((n >> (18 - 6 * i)) & 63) as usize]);
            }
        }
        o
    };
    let mut forms = vec![
        secret.to_vec(),
        hex::encode(secret).into_bytes(),
        hex::encode_upper(secret).into_bytes(),
    ];
    for shift in 0..3 {
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(secret);
        let enc = b64(&padded);
        // Drop the characters that depend on the padding bytes or the tail.
        let start = (shift * 8).div_ceil(6) + 1;
        let end = enc.len().saturating_sub(2);
        if end > start {
            forms.push(enc[start..end].to_vec());
        }
    }
    forms
}

/// Runs the child in `mode`, takes its core with `gcore` once its flow is done, and checks
/// that the core holds neither the PIN nor the key (nor half of it).
fn core_of_child_holds_no_secret(mode: &str, conf: &Path, dir: &Path, key: &[u8]) {
    let mut c = child(mode, conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = c.kill();
            panic!("the child ended before its flow finished: {:?}", c.wait());
        }
        if line.trim() == "READY" {
            break;
        }
    }
    let core = dir.join("core");
    let g = Command::new("gcore")
        .arg("-o")
        .arg(&core)
        .arg(c.id().to_string())
        .output()
        .expect("gcore (gdb) is installed by scripts/setup.sh");
    let _ = c.kill();
    let _ = c.wait();
    let path = dir.join(format!("core.{}", c.id()));
    assert!(
        g.status.success() && path.exists(),
        "gcore failed: {}",
        String::from_utf8_lossy(&g.stderr)
    );
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(bytes.len() > 1 << 20, "a core of {} bytes", bytes.len());
    // The search works: the canary the child left on its heap is found.
    assert!(
        find(&bytes, &unmask(CANARY_MASKED)).is_some(),
        "the canary is not in the core: the search proves nothing"
    );
    let pin = unmask(&PIN_MASKED);
    assert_eq!(
        find(&bytes, &pin),
        None,
        "{mode}: the PIN is in the core dump"
    );
    assert_eq!(
        find(&bytes, key),
        None,
        "{mode}: the key is in the core dump"
    );
    // Half the key is as bad as all of it.
    let h = key.len() / 2;
    assert_eq!(
        find(&bytes, &key[..h]),
        None,
        "{mode}: half the key is in the core"
    );
    assert_eq!(
        find(&bytes, &key[h..]),
        None,
        "{mode}: half the key is in the core"
    );
}

#[test]
fn core_dump_after_logout_and_finalize_holds_no_pin_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ukey_tests::write_soft_conf(dir.path(), "");
    core_of_child_holds_no_secret("gcore", &conf, dir.path(), &unmask(&KEY_MASKED));
}

/// The same through libukey_skf.so: after `SKF_ClearSecureState`,
/// `SKF_CloseApplication` and `SKF_DisConnectDev`.
#[test]
fn skf_core_dump_after_closing_holds_no_pin_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ukey_tests::write_soft_conf(dir.path(), "");
    let pin = String::from_utf8(unmask(&PIN_MASKED)).unwrap();
    skf_common::ukey(
        &conf,
        &[
            "softhsm",
            "--init-token",
            "--free",
            "--label",
            "hygiene",
            "--so-pin",
            SO_PIN,
            "--pin",
            &pin,
        ],
    );
    core_of_child_holds_no_secret("skf-gcore", &conf, dir.path(), &unmask(&KEY_MASKED[..16]));
}

/// Runs the child in `mode` with logging at trace level into a file and checks that the
/// log holds neither PIN nor key in any text form; returns the log.
fn trace_of_child_holds_no_secret(mode: &str, setup: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("trace.log");
    let conf = ukey_tests::write_soft_conf(
        dir.path(),
        &format!("[log]\nlevel = \"trace\"\noutput = \"{}\"\n", log.display()),
    );
    setup(&conf);
    let o = child(mode, &conf).output().unwrap();
    assert!(
        o.status.success(),
        "child: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read(&log).unwrap();
    for (what, secret) in [
        ("PIN", unmask(&PIN_MASKED)),
        ("key", unmask(&KEY_MASKED)),
        ("half the key", unmask(&KEY_MASKED[..16])),
        ("SO PIN", SO_PIN.as_bytes().to_vec()),
    ] {
        for form in text_forms(&secret) {
            assert_eq!(
                find(&text, &form),
                None,
                "{mode}: the {what} is in the trace log as {}",
                String::from_utf8_lossy(&form)
            );
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn trace_log_of_a_full_run_holds_no_pin_or_key() {
    let s = trace_of_child_holds_no_secret("trace", |_| {});
    // The log is really at trace level: the calls are there.
    for f in ["C_InitToken", "C_Login"] {
        assert!(s.contains(f), "{f} not in the trace log:\n{s}");
    }
}

#[test]
fn skf_trace_log_holds_no_pin_or_key() {
    let s = trace_of_child_holds_no_secret("skf-trace", |conf| {
        let pin = String::from_utf8(unmask(&PIN_MASKED)).unwrap();
        skf_common::ukey(
            conf,
            &[
                "softhsm",
                "--init-token",
                "--free",
                "--label",
                "hygiene",
                "--so-pin",
                SO_PIN,
                "--pin",
                &pin,
            ],
        );
    });
    assert!(
        s.contains("SKF_"),
        "the SKF calls are not in the trace log:\n{s}"
    );
}

/// The words that name a secret comparand (snake_case parts of an operand).
const SECRET_WORDS: &[&str] = &[
    "pin",
    "mac",
    "hmac",
    "cmac",
    "cryptogram",
    "confirm",
    "confirmation",
    "kcv",
    "mk",
    "password",
];
/// Parts that make the operand a length, a kind or a count rather than the secret.
const HARMLESS_WORDS: &[&str] = &[
    "len", "type", "kind", "retries", "state", "info", "count", "alg", "id", "usage",
];

fn operand_is_secret(expr: &str) -> bool {
    // A constant (an OID, a class number) is public.
    if expr
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_:".contains(c))
    {
        return false;
    }
    let parts: Vec<String> = expr
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    parts.iter().any(|p| SECRET_WORDS.contains(&p.as_str()))
        && !parts.iter().any(|p| HARMLESS_WORDS.contains(&p.as_str()))
}

/// PIN, MAC, tag and cryptogram comparisons are constant-time (`subtle::ConstantTimeEq`):
/// no `==` or `!=` in the sources of the libraries and token-hal has a PIN, MAC,
/// cryptogram, confirmation value or secret as an operand.
#[test]
fn secret_comparisons_are_constant_time() {
    let root = ukey_tests::repo_root();
    let mut files = Vec::new();
    let mut dirs = vec![
        root.join("token-hal/src"),
        root.join("pkcs11-module/src"),
        root.join("skf-provider/src"),
    ];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(
        files.len() > 50,
        "sources not found under {}",
        root.display()
    );
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for op in ["==", "!="] {
                let mut from = 0;
                while let Some(i) = code[from..].find(op) {
                    let at = from + i;
                    from = at + 2;
                    // Not part of `<=`, `>=`, `=>` or `===`.
                    if code[..at].ends_with(['<', '>', '=', '!']) || code[at + 2..].starts_with('=')
                    {
                        continue;
                    }
                    let left = code[..at].trim_end();
                    let left = left
                        .rsplit(|c: char| c.is_whitespace() || "(,{!&|".contains(c))
                        .next()
                        .unwrap_or("");
                    let right = code[at + 2..].trim_start();
                    let right = right
                        .split(|c: char| c.is_whitespace() || "),{&|;".contains(c))
                        .next()
                        .unwrap_or("");
                    if operand_is_secret(left) || operand_is_secret(right) {
                        found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "compare these with subtle::ConstantTimeEq:\n{}",
        found.join("\n")
    );
    // The check itself sees what it must.
    assert!(operand_is_secret("self.pin"));
    assert!(operand_is_secret("expected_mac[..n]"));
    assert!(!operand_is_secret("pin.len"));
}
