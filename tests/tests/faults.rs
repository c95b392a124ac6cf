//! Fault injection (issue 7): each fault leaves the data intact, gives a clear error (a
//! specific `CKR_*` / `SAR_*`, never a panic or a hang), and the module recovers once the
//! fault is gone. docs/robustness.md lists the faults, what the user sees and these tests.
//!
//! Every scenario runs its clients in child processes (this binary re-run on an ignored
//! `child_*` test, with its own configuration), each under a deadline, so a hang fails the
//! test instead of stalling CI.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::ffi::{OsStr, c_void};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use skf_sys::*;

use skf_common::{conf, ukey};

const SO_PIN: &str = "12345678";
const PIN: &str = "123456";
const P256: &[u8] = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";

type H = *mut c_void;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A child process's outcome.
struct ChildOut {
    ok: bool,
    text: String,
}

/// Runs this test binary again as `wrapper… exe --exact test --ignored` with `envs`, and
/// kills it when it outlives `secs` (the test then fails: a hang is a failure).
fn run_child_in(wrapper: &[&str], envs: &[(&str, &OsStr)], test: &str, secs: u64) -> ChildOut {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if let Some((first, rest)) = wrapper.split_first() {
        let mut c = Command::new(first);
        c.args(rest).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(["--exact", test, "--ignored", "--nocapture", "--test-threads", "1"])
        .env("UKEY_FAULT_CHILD", test)
        .env_remove("UKEY_DATA_DIR")
        .env("UKEY_BACKENDS", "soft")
        .env("UKEY_LOG", std::env::var("UKEY_LOG").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let read = |mut p: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = p.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out_t = read(Box::new(out_pipe));
    let err_t = read(Box::new(err_pipe));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!("{}{}", out_t.join().unwrap(), err_t.join().unwrap());
    match status {
        None => panic!("child {test} hung (killed after {secs} s):\n{text}"),
        Some(st) => ChildOut {
            ok: st.success() && text.contains("1 passed"),
            text,
        },
    }
}

/// Runs a child that must pass.
fn child_passes(wrapper: &[&str], envs: &[(&str, &OsStr)], test: &str, secs: u64) -> String {
    let out = run_child_in(wrapper, envs, test, secs);
    assert!(out.ok, "child {test} failed:\n{}", out.text);
    out.text
}

/// Whether this process is the child for `test`.
fn is_child(test: &str) -> bool {
    std::env::var("UKEY_FAULT_CHILD").as_deref() == Ok(test)
}

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| panic!("{name} not set")))
}

/// The PKCS#11 return value inside a cryptoki error.
fn rv(e: CkError) -> RvError {
    match e {
        CkError::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other:?}"),
    }
}

fn p11() -> Pkcs11 {
    let p11 = Pkcs11::new(ukey_tests::pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    p11
}

/// The slot of the token labelled `label`.
fn slot_of(p11: &Pkcs11, label: &str) -> Option<cryptoki::slot::Slot> {
    p11.get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p11.get_token_info(*s).is_ok_and(|t| t.label().trim() == label))
}

fn user_session(p11: &Pkcs11, label: &str, pin: &str) -> Session {
    let slot = slot_of(p11, label).unwrap_or_else(|| panic!("token {label} is listed"));
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(pin.into())))
        .unwrap();
    s
}

/// Token data objects labelled `label` and their values.
fn data_objects(s: &Session, label: &str) -> Vec<Vec<u8>> {
    s.find_objects(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Label(label.as_bytes().to_vec()),
    ])
    .unwrap()
    .into_iter()
    .map(|h| value_of(s, h))
    .collect()
}

fn value_of(s: &Session, h: ObjectHandle) -> Vec<u8> {
    match s.get_attributes(h, &[AttributeType::Value]).unwrap().pop() {
        Some(Attribute::Value(v)) => v,
        other => panic!("{other:?}"),
    }
}

fn data_template(label: &str, value: Vec<u8>) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(value),
    ]
}

fn gen_p256(s: &Session, label: &str) -> cryptoki::error::Result<(ObjectHandle, ObjectHandle)> {
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::EcParams(P256.to_vec()),
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
    )
}

/// The private key labelled `label`.
fn private_key(s: &Session, label: &str) -> ObjectHandle {
    let v = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(v.len(), 1, "one private key {label}");
    v[0]
}

fn public_key(s: &Session, label: &str) -> ObjectHandle {
    let v = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(v.len(), 1, "one public key {label}");
    v[0]
}

/// Signs with the key pair `label` and verifies.
fn sign_verify(s: &Session, label: &str) {
    let sk = private_key(s, label);
    let pk = public_key(s, label);
    let sig = s.sign(&Mechanism::EcdsaSha256, sk, b"fault").unwrap();
    s.verify(&Mechanism::EcdsaSha256, pk, b"fault", &sig)
        .unwrap();
}

/// A soft token `label` in the data dir of `conf` (SO PIN 12345678, user PIN 123456).
fn make_token(conf: &Path, label: &str) {
    ukey(
        conf,
        &[
            "softhsm",
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
        ],
    );
}

fn cs(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// An SKF session: the first device (or the one whose name contains `dev`), the
/// application `app`, the user PIN verified.
struct Skf {
    dev: H,
    app: H,
}

impl Skf {
    fn open(app: &str, pin: &str) -> Self {
        let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
        let connect = skf!(SKF_ConnectDev: fn(*const u8, *mut H));
        let open_app = skf!(SKF_OpenApplication: fn(H, *const u8, *mut H));
        let verify = skf!(SKF_VerifyPIN: fn(H, u32, *const u8, *mut u32));
        let mut buf = vec![0u8; 2048];
        let mut len = 2048u32;
        // SAFETY: the buffer holds `len` bytes.
        assert_eq!(unsafe { enum_dev(1, buf.as_mut_ptr(), &mut len) }, SAR_OK);
        let names: Vec<&[u8]> = buf[..len as usize]
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .collect();
        for name in names {
            let name = [name, b"\0"].concat();
            let mut dev: H = std::ptr::null_mut();
            // SAFETY: NUL-terminated name, valid output pointer.
            if unsafe { connect(name.as_ptr(), &mut dev) } != SAR_OK {
                continue;
            }
            let mut a: H = std::ptr::null_mut();
            // SAFETY: valid handle, NUL-terminated name, valid output pointer.
            if unsafe { open_app(dev, cs(app).as_ptr(), &mut a) } != SAR_OK {
                continue;
            }
            let mut retry = 0u32;
            let p = cs(pin);
            // SAFETY: valid handle, NUL-terminated PIN, valid output pointer.
            assert_eq!(
                unsafe { verify(a, USER_TYPE, p.as_ptr(), &mut retry) },
                SAR_OK
            );
            return Self { dev, app: a };
        }
        panic!("no device holds application {app}");
    }

    fn write(&self, file: &str, off: u32, data: &[u8]) -> u32 {
        let f = skf!(SKF_WriteFile: fn(H, *const u8, u32, *const u8, u32));
        // SAFETY: valid handle, NUL-terminated name, `data` holds its length.
        unsafe { f(self.app, cs(file).as_ptr(), off, data.as_ptr(), data.len() as u32) }
    }

    fn read(&self, file: &str, len: u32) -> Result<Vec<u8>, u32> {
        let f = skf!(SKF_ReadFile: fn(H, *const u8, u32, u32, *mut u8, *mut u32));
        let mut buf = vec![0u8; len as usize];
        let mut n = len;
        // SAFETY: valid handle, NUL-terminated name, `buf` holds `n` bytes.
        let r = unsafe { f(self.app, cs(file).as_ptr(), 0, len, buf.as_mut_ptr(), &mut n) };
        if r == SAR_OK {
            buf.truncate(n as usize);
            Ok(buf)
        } else {
            Err(r)
        }
    }

    fn create_file(&self, file: &str, size: u32) -> u32 {
        let f = skf!(SKF_CreateFile: fn(H, *const u8, u32, u32, u32));
        // SAFETY: valid handle, NUL-terminated name.
        unsafe {
            f(
                self.app,
                cs(file).as_ptr(),
                size,
                SECURE_ANYONE_ACCOUNT,
                SECURE_USER_ACCOUNT,
            )
        }
    }

    fn change_pin(&self, old: &str, new: &str) -> u32 {
        let f = skf!(SKF_ChangePIN: fn(H, u32, *const u8, *const u8, *mut u32));
        let mut retry = 0u32;
        // SAFETY: valid handle, NUL-terminated PINs, valid output pointer.
        unsafe { f(self.app, USER_TYPE, cs(old).as_ptr(), cs(new).as_ptr(), &mut retry) }
    }

    fn create_container(&self, name: &str) -> u32 {
        let f = skf!(SKF_CreateContainer: fn(H, *const u8, *mut H));
        let mut c: H = std::ptr::null_mut();
        // SAFETY: valid handle, NUL-terminated name, valid output pointer.
        unsafe { f(self.app, cs(name).as_ptr(), &mut c) }
    }

    fn close(self) {
        let close_app = skf!(SKF_CloseApplication: fn(H));
        let disconnect = skf!(SKF_DisConnectDev: fn(H));
        // SAFETY: handles from open(), closed once.
        unsafe {
            close_app(self.app);
            disconnect(self.dev);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Full disk
// ---------------------------------------------------------------------------------------

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on `dir`. None, with the
    /// reason printed, where mounting is not allowed (not root, no CAP_SYS_ADMIN).
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `dir/filler` until a write fails with ENOSPC.
fn fill_disk(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0xEEu8; 4096];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last partial page too.
    loop {
        match f.write(&block[..1]) {
            Ok(1) => {}
            Ok(_) => break,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = f.sync_all();
    path
}

fn full_disk_setup(tmp: &Path) -> Option<(PathBuf, Tmpfs)> {
    let conf = conf(tmp);
    let fs = Tmpfs::mount(&tmp.join("data"), "2m")?;
    make_token(&conf, "full");
    Some((conf, fs))
}

/// PKCS#11 on a full disk: C_CreateObject, C_GenerateKeyPair and C_SetPIN fail with
/// CKR_DEVICE_MEMORY and change nothing; signing and reading go on; once space is freed,
/// the same session writes again, and every object and the PIN are as they were.
#[test]
fn full_disk_pkcs11() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((conf, _fs)) = full_disk_setup(tmp.path()) else {
        return;
    };
    child_passes(
        &[],
        &[("UKEY_CONF", conf.as_os_str())],
        "child_full_disk_pkcs11",
        120,
    );
}

#[test]
#[ignore = "run by full_disk_pkcs11"]
fn child_full_disk_pkcs11() {
    if !is_child("child_full_disk_pkcs11") {
        return;
    }
    let data = env_path("UKEY_CONF").parent().unwrap().join("data");
    let p11 = p11();
    let s = user_session(&p11, "full", PIN);
    s.create_object(&data_template("before", vec![7u8; 1000]))
        .unwrap();
    gen_p256(&s, "k1").unwrap();
    let db_before: Vec<PathBuf> = db_files(&data);

    let filler = fill_disk(&data);
    let e = s
        .create_object(&data_template("during", vec![8u8; 20_000]))
        .unwrap_err();
    assert_eq!(rv(e), RvError::DeviceMemory, "C_CreateObject on a full disk");
    let e = gen_p256(&s, "k2").unwrap_err();
    assert_eq!(rv(e), RvError::DeviceMemory, "C_GenerateKeyPair on a full disk");
    let e = s
        .set_pin(&AuthPin::new(PIN.into()), &AuthPin::new("654321".into()))
        .unwrap_err();
    assert_eq!(rv(e), RvError::DeviceMemory, "C_SetPIN on a full disk");
    // Reads and signing go on.
    sign_verify(&s, "k1");
    assert_eq!(data_objects(&s, "before"), vec![vec![7u8; 1000]]);
    assert!(data_objects(&s, "during").is_empty());
    // No journal or temporary file left behind.
    assert_eq!(db_files(&data), db_before);

    // Space back: the same session writes again.
    std::fs::remove_file(&filler).unwrap();
    s.create_object(&data_template("during", vec![8u8; 20_000]))
        .unwrap();
    gen_p256(&s, "k2").unwrap();
    s.set_pin(&AuthPin::new(PIN.into()), &AuthPin::new("654321".into()))
        .unwrap();
    s.logout().unwrap();
    let e = s
        .login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap_err();
    assert_eq!(rv(e), RvError::PinIncorrect);
    s.login(UserType::User, Some(&AuthPin::new("654321".into())))
        .unwrap();
    sign_verify(&s, "k1");
    sign_verify(&s, "k2");
    assert_eq!(data_objects(&s, "before"), vec![vec![7u8; 1000]]);
    assert_eq!(data_objects(&s, "during"), vec![vec![8u8; 20_000]]);
    drop(s);
    p11.finalize().unwrap();
}

/// The files of a data dir other than the filler, sorted.
fn db_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name() != Some(OsStr::new("filler")))
        .collect();
    v.sort();
    v
}

/// SKF on a full disk: SKF_WriteFile, SKF_ChangePIN and SKF_CreateContainer fail with
/// SAR_NO_ROOM and change nothing; reading goes on; once space is freed, the same
/// application handle writes again.
#[test]
fn full_disk_skf() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((conf, _fs)) = full_disk_setup(tmp.path()) else {
        return;
    };
    child_passes(
        &[],
        &[("UKEY_CONF", conf.as_os_str())],
        "child_full_disk_skf",
        120,
    );
}

#[test]
#[ignore = "run by full_disk_skf"]
fn child_full_disk_skf() {
    if !is_child("child_full_disk_skf") {
        return;
    }
    let data = env_path("UKEY_CONF").parent().unwrap().join("data");
    let s = Skf::open("full", PIN);
    let old = vec![0x11u8; 8192];
    let new = vec![0x22u8; 8192];
    assert_eq!(s.create_file("f", 8192), SAR_OK);
    assert_eq!(s.write("f", 0, &old), SAR_OK);

    let filler = fill_disk(&data);
    assert_eq!(s.write("f", 0, &new), SAR_NO_ROOM, "SKF_WriteFile");
    assert_eq!(s.change_pin(PIN, "654321"), SAR_NO_ROOM, "SKF_ChangePIN");
    assert_eq!(s.create_container("c"), SAR_NO_ROOM, "SKF_CreateContainer");
    assert_eq!(s.read("f", 8192), Ok(old.clone()), "read on a full disk");

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(s.write("f", 0, &new), SAR_OK);
    assert_eq!(s.read("f", 8192), Ok(new));
    assert_eq!(s.create_container("c"), SAR_OK);
    assert_eq!(s.change_pin(PIN, "654321"), SAR_OK);
    s.close();
    let s = Skf::open("full", "654321");
    s.close();
}
