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
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ])
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
    p11.get_slots_with_token().unwrap().into_iter().find(|s| {
        p11.get_token_info(*s)
            .is_ok_and(|t| t.label().trim() == label)
    })
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
            let r = unsafe { verify(a, USER_TYPE, p.as_ptr(), &mut retry) };
            assert_eq!(r, SAR_OK);
            return Self { dev, app: a };
        }
        panic!("no device holds application {app}");
    }

    fn write(&self, file: &str, off: u32, data: &[u8]) -> u32 {
        let f = skf!(SKF_WriteFile: fn(H, *const u8, u32, *const u8, u32));
        // SAFETY: valid handle, NUL-terminated name, `data` holds its length.
        unsafe {
            f(
                self.app,
                cs(file).as_ptr(),
                off,
                data.as_ptr(),
                data.len() as u32,
            )
        }
    }

    fn read(&self, file: &str, len: u32) -> Result<Vec<u8>, u32> {
        let f = skf!(SKF_ReadFile: fn(H, *const u8, u32, u32, *mut u8, *mut u32));
        let mut buf = vec![0u8; len as usize];
        let mut n = len;
        // SAFETY: valid handle, NUL-terminated name, `buf` holds `n` bytes.
        let r = unsafe {
            f(
                self.app,
                cs(file).as_ptr(),
                0,
                len,
                buf.as_mut_ptr(),
                &mut n,
            )
        };
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
        unsafe {
            f(
                self.app,
                USER_TYPE,
                cs(old).as_ptr(),
                cs(new).as_ptr(),
                &mut retry,
            )
        }
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
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
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
    assert_eq!(
        rv(e),
        RvError::DeviceMemory,
        "C_CreateObject on a full disk"
    );
    let e = gen_p256(&s, "k2").unwrap_err();
    assert_eq!(
        rv(e),
        RvError::DeviceMemory,
        "C_GenerateKeyPair on a full disk"
    );
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
    // C_Login persists the retry counter before it checks the PIN, so it fails closed.
    s.logout().unwrap();
    let e = s
        .login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap_err();
    assert_eq!(rv(e), RvError::DeviceMemory, "C_Login on a full disk");

    // Space back: the same session logs in and writes again.
    std::fs::remove_file(&filler).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap();
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

// ---------------------------------------------------------------------------------------
// A data dir that cannot be written
// ---------------------------------------------------------------------------------------

/// Runs the child as root without any capability (no CAP_DAC_OVERRIDE), so file modes
/// bind it as they bind any user.
const NO_CAPS: &[&str] = &[
    "setpriv",
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--bounding-set=-all",
    "--",
];

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Makes the data dir and every file in it read-only (dir 0500, files 0400), or writable
/// again (0700, 0600).
fn data_dir_writable(dir: &Path, writable: bool) {
    for e in std::fs::read_dir(dir).unwrap() {
        set_mode(&e.unwrap().path(), if writable { 0o600 } else { 0o400 });
    }
    set_mode(dir, if writable { 0o700 } else { 0o500 });
}

fn ukey_raw(wrapper: &[&str], conf: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let bin = ukey_tests::ukey_bin();
    let mut cmd = if let Some((first, rest)) = wrapper.split_first() {
        let mut c = Command::new(first);
        c.args(rest).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let mut child = cmd
        .env("UKEY_CONF", conf)
        .env_remove("UKEY_DATA_DIR")
        .env("UKEY_BACKENDS", "soft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn assert_clear_cli_error(out: &std::process::Output, what: &str, must_name: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(
        err.starts_with("ukey: ") && err.trim_end().lines().count() == 1,
        "{what}: one line `ukey: …`: {err}"
    );
    assert!(err.contains(must_name), "{what}: names {must_name}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

/// A data dir made read-only before the clients start (dir 0500, files 0400, clients
/// without CAP_DAC_OVERRIDE): everything that only reads works (token listed, public
/// objects, SKF_ReadFile, `ukey file read`); every write, C_Login included (it must
/// persist the retry counter first), fails with CKR_DEVICE_ERROR / SAR_FILEERR / a
/// one-line CLI error naming the database, and the file is unchanged. Made writable
/// again, the same things succeed.
#[test]
fn unwritable_data_dir() {
    if Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let conf = conf(tmp.path());
    let data = tmp.path().join("data");
    make_token(&conf, "ro");
    let envs: &[(&str, &OsStr)] = &[("UKEY_CONF", conf.as_os_str())];
    child_passes(&[], envs, "child_ro_prepare", 60);
    let out = ukey_raw(
        &[],
        &conf,
        &["--pin", PIN, "file", "write", "notes", "--read", "anyone"],
        b"hello",
    );
    assert!(out.status.success(), "{out:?}");
    let db = db_files(&data)
        .into_iter()
        .find(|p| p.extension() == Some(OsStr::new("ukdb")))
        .unwrap();
    let before = std::fs::read(&db).unwrap();

    data_dir_writable(&data, false);
    let out = ukey_raw(NO_CAPS, &conf, &["file", "read", "notes"], b"");
    assert!(out.status.success(), "read-only reads: {out:?}");
    assert_eq!(out.stdout, b"hello");
    let out = ukey_raw(
        NO_CAPS,
        &conf,
        &["--pin", PIN, "file", "write", "other"],
        b"x",
    );
    assert_clear_cli_error(&out, "file write", &db.display().to_string());
    let out = ukey_raw(
        NO_CAPS,
        &conf,
        &["--pin", PIN, "pin", "change", "--new-pin", "654321"],
        b"",
    );
    assert_clear_cli_error(&out, "pin change", &db.display().to_string());
    child_passes(NO_CAPS, envs, "child_ro_fresh", 60);
    assert_eq!(std::fs::read(&db).unwrap(), before, "nothing written");

    // Writable again: a new client writes.
    data_dir_writable(&data, true);
    let out = ukey_raw(
        NO_CAPS,
        &conf,
        &["--pin", PIN, "file", "write", "other"],
        b"x",
    );
    assert!(out.status.success(), "{out:?}");
    // Read-only in the middle of a session, and writable again in the same process.
    child_passes(NO_CAPS, envs, "child_ro_mid_session", 60);
    data_dir_writable(&data, true);
}

#[test]
#[ignore = "run by unwritable_data_dir"]
fn child_ro_prepare() {
    if !is_child("child_ro_prepare") {
        return;
    }
    let p11 = p11();
    let s = user_session(&p11, "ro", PIN);
    let mut t = data_template("pub", b"public value".to_vec());
    t[2] = Attribute::Private(false);
    s.create_object(&t).unwrap();
    gen_p256(&s, "k1").unwrap();
    drop(s);
    p11.finalize().unwrap();
}

#[test]
#[ignore = "run by unwritable_data_dir"]
fn child_ro_fresh() {
    if !is_child("child_ro_fresh") {
        return;
    }
    let p11 = p11();
    let slot = slot_of(&p11, "ro").expect("a read-only token is still listed");
    let s = p11.open_rw_session(slot).unwrap();
    let pubs = s
        .find_objects(&[Attribute::Label(b"pub".to_vec())])
        .unwrap();
    assert_eq!(pubs.len(), 1);
    assert_eq!(value_of(&s, pubs[0]), b"public value");
    public_key(&s, "k1");
    // C_Login must persist the retry counter before it checks the PIN.
    let e = s
        .login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap_err();
    assert_eq!(rv(e), RvError::DeviceError, "C_Login on a read-only store");
    drop(s);
    p11.finalize().unwrap();

    // SKF: a file anyone may read is read; verifying the PIN fails clearly.
    let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
    let connect = skf!(SKF_ConnectDev: fn(*const u8, *mut H));
    let open_app = skf!(SKF_OpenApplication: fn(H, *const u8, *mut H));
    let verify = skf!(SKF_VerifyPIN: fn(H, u32, *const u8, *mut u32));
    let read = skf!(SKF_ReadFile: fn(H, *const u8, u32, u32, *mut u8, *mut u32));
    let mut buf = vec![0u8; 1024];
    let mut len = 1024u32;
    let mut dev: H = std::ptr::null_mut();
    let mut app: H = std::ptr::null_mut();
    let mut retry = 0u32;
    let mut out = [0u8; 16];
    let mut n = 16u32;
    // SAFETY: buffers hold what their lengths say; names NUL-terminated; handles from
    // the calls before.
    unsafe {
        assert_eq!(enum_dev(1, buf.as_mut_ptr(), &mut len), SAR_OK);
        assert_eq!(connect(buf.as_ptr(), &mut dev), SAR_OK);
        assert_eq!(open_app(dev, cs("ro").as_ptr(), &mut app), SAR_OK);
        assert_eq!(
            read(app, cs("notes").as_ptr(), 0, 16, out.as_mut_ptr(), &mut n),
            SAR_OK
        );
        assert_eq!(&out[..n as usize], b"hello");
        assert_eq!(
            verify(app, USER_TYPE, cs(PIN).as_ptr(), &mut retry),
            SAR_FILEERR,
            "SKF_VerifyPIN on a read-only store"
        );
    }
}

#[test]
#[ignore = "run by unwritable_data_dir"]
fn child_ro_mid_session() {
    if !is_child("child_ro_mid_session") {
        return;
    }
    let data = env_path("UKEY_CONF").parent().unwrap().join("data");
    let p11 = p11();
    let s = user_session(&p11, "ro", PIN);
    s.create_object(&data_template("mid", b"1".to_vec()))
        .unwrap();
    data_dir_writable(&data, false);
    let e = s
        .create_object(&data_template("mid", b"2".to_vec()))
        .unwrap_err();
    assert_eq!(rv(e), RvError::DeviceError, "C_CreateObject, read-only");
    let e = gen_p256(&s, "k2").unwrap_err();
    assert_eq!(rv(e), RvError::DeviceError, "C_GenerateKeyPair, read-only");
    let e = s
        .set_pin(&AuthPin::new(PIN.into()), &AuthPin::new("654321".into()))
        .unwrap_err();
    assert_eq!(rv(e), RvError::DeviceError, "C_SetPIN, read-only");
    // What is logged in goes on: signing and reading.
    sign_verify(&s, "k1");
    assert_eq!(data_objects(&s, "mid"), vec![b"1".to_vec()]);
    data_dir_writable(&data, true);
    s.create_object(&data_template("mid", b"2".to_vec()))
        .unwrap();
    gen_p256(&s, "k2").unwrap();
    sign_verify(&s, "k2");
    let mut got = data_objects(&s, "mid");
    got.sort();
    assert_eq!(got, vec![b"1".to_vec(), b"2".to_vec()]);
    drop(s);
    p11.finalize().unwrap();
}

// ---------------------------------------------------------------------------------------
// A store file truncated or bit-flipped
// ---------------------------------------------------------------------------------------

/// What a client sees of the token "bad" (or of its absence), as one comparable text.
fn snapshot(p11: &Pkcs11) -> Result<String, RvError> {
    let Some(slot) = slot_of(p11, "bad") else {
        return Err(RvError::TokenNotPresent);
    };
    let s = p11.open_rw_session(slot).map_err(rv)?;
    s.login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .map_err(rv)?;
    let mut lines = Vec::new();
    for h in s.find_objects(&[]).map_err(rv)? {
        let attrs = s
            .get_attributes(
                h,
                &[
                    AttributeType::Class,
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::Value,
                    AttributeType::EcPoint,
                ],
            )
            .map_err(rv)?;
        lines.push(format!("{attrs:?}"));
    }
    lines.sort();
    // The private key signs, and the signature verifies under the public key (whose
    // point is in the view, compared with the one seen before the damage).
    let sk = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .map_err(rv)?;
    let pk = s
        .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])
        .map_err(rv)?;
    for (k, p) in sk.into_iter().zip(pk) {
        let sig = s.sign(&Mechanism::EcdsaSha256, k, b"probe").map_err(rv)?;
        let ok = s.verify(&Mechanism::EcdsaSha256, p, b"probe", &sig).is_ok();
        lines.push(format!("signature verifies: {ok}"));
    }
    Ok(lines.join("\n"))
}

/// The damage scenario: two soft devices in one data dir, "good" and "bad"; the file of
/// "bad" is damaged in many ways, and after each a client must (a) still use "good",
/// (b) see "bad" absent, or get CKR_DEVICE_ERROR from it, or see exactly what it saw
/// before, never different data, never a crash or a hang, and (c) leave the damaged
/// file as it was. The file restored, "bad" works again.
#[test]
fn damaged_store_file() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = conf(tmp.path());
    let data = tmp.path().join("data");
    make_token(&conf, "good");
    // The second device is made in a data dir of its own, then moved beside the first.
    let other = tmp.path().join("other");
    let out = Command::new(ukey_tests::ukey_bin())
        .env("UKEY_CONF", &conf)
        .env("UKEY_DATA_DIR", &other)
        .args([
            "softhsm",
            "--init-token",
            "--free",
            "--label",
            "bad",
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut bad_db = None;
    for e in std::fs::read_dir(&other).unwrap() {
        let p = e.unwrap().path();
        let to = data.join(p.file_name().unwrap());
        std::fs::rename(&p, &to).unwrap();
        if to.extension() == Some(OsStr::new("ukdb")) {
            bad_db = Some(to);
        }
    }
    let db = bad_db.unwrap();
    let bad_serial = db.file_stem().unwrap().to_string_lossy().into_owned();
    let envs: &[(&str, &OsStr)] = &[
        ("UKEY_CONF", conf.as_os_str()),
        ("FAULT_DIR", tmp.path().as_os_str()),
    ];
    child_passes(&[], envs, "child_damage_prepare", 60);
    let pristine_view = std::fs::read_to_string(tmp.path().join("view")).unwrap();
    let good = std::fs::read(&db).unwrap();
    let page = 4096usize;
    assert_eq!(good.len() % page, 0);

    // Where the sealed private key and the sealed master-key wrap of the user PIN sit.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let sealed: Vec<u8> = conn
        .query_row(
            "SELECT sealed_pkcs8 FROM key UNION ALL SELECT value FROM attr WHERE sensitive = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let at = |needle: &[u8]| {
        good.windows(needle.len())
            .position(|w| w == needle)
            .expect("the sealed value is stored inline")
    };
    let key_at = at(&sealed);

    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("truncated to 100 bytes".into(), good[..100].to_vec()),
        ("truncated to one page".into(), good[..page].to_vec()),
        ("truncated to half".into(), good[..good.len() / 2].to_vec()),
        (
            "last page cut off".into(),
            good[..good.len() - page].to_vec(),
        ),
        (
            "truncated mid-page".into(),
            good[..good.len() - page / 2].to_vec(),
        ),
    ];
    let flip = |off: usize, mask: u8, what: &str| {
        let mut b = good.clone();
        b[off] ^= mask;
        (format!("{what} (byte {off} ^ {mask:#04x})"), b)
    };
    cases.push(flip(0, 0x01, "header magic"));
    cases.push(flip(16, 0x10, "page size"));
    cases.push(flip(60, 0x40, "schema version"));
    cases.push(flip(68, 0x01, "application id"));
    // The b-tree header of every page after the first: its type byte and its cell count.
    for p in 1..good.len() / page {
        cases.push(flip(p * page, 0x08, &format!("page {} type", p + 1)));
        cases.push(flip(
            p * page + 4,
            0x40,
            &format!("page {} cell count", p + 1),
        ));
    }
    // Inside the sealed private key (its ciphertext, then its tag).
    cases.push(flip(key_at + sealed.len() / 2, 0x01, "sealed private key"));
    cases.push(flip(key_at + sealed.len() - 1, 0x80, "sealed key tag"));
    // Inside a value stored in clear (the public data object's CKA_VALUE), where the
    // b-tree stays well formed: the row checksums catch it.
    let clear_at = at(&[0x43; 300]);
    cases.push(flip(clear_at + 150, 0x02, "clear value"));

    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (what, bytes) in &cases {
        std::fs::write(&db, bytes).unwrap();
        let out = run_child_in(&[], envs, "child_damage_check", 60);
        assert!(out.ok, "{what}: the client failed:\n{}", out.text);
        let verdict = std::fs::read_to_string(tmp.path().join("verdict")).unwrap();
        eprintln!("{what}: {}", verdict.lines().next().unwrap());
        if std::env::var_os("FAULT_DEBUG").is_some() {
            eprintln!("{}", out.text);
        }
        if let Some(view) = verdict.strip_prefix("intact\n") {
            assert_eq!(view, pristine_view, "{what}: different data, silently");
        } else {
            assert!(
                verdict == "absent" || verdict == "DeviceError",
                "{what}: {verdict}"
            );
        }
        *outcomes
            .entry(verdict.lines().next().unwrap().to_owned())
            .or_default() += 1;
        // The file is left as it was, but for SQLite's change counter (bytes 24..28 and
        // 92..96 of the header): C_Login persists the retry counter before it checks the
        // PIN (and restores it), which is a commit, wherever the damage is found later.
        let mask = |b: &[u8]| {
            let mut b = b.to_vec();
            for i in (24..28).chain(92..96) {
                if let Some(x) = b.get_mut(i) {
                    *x = 0;
                }
            }
            b
        };
        assert!(
            verdict.starts_with("intact") || mask(&std::fs::read(&db).unwrap()) == mask(bytes),
            "{what}: the damaged file was changed"
        );
        if what.starts_with("clear") {
            assert_ne!(
                verdict.lines().next(),
                Some("intact"),
                "{what}: not detected"
            );
        }
        if what.starts_with("sealed") {
            // The row checksum refuses the file at open (absent); AES-GCM would refuse
            // the key at use (DeviceError). Never a different key.
            assert!(
                verdict == "absent" || verdict == "DeviceError",
                "{what}: never a wrong key ({verdict})"
            );
        }
    }
    eprintln!("damage outcomes over {} cases: {outcomes:?}", cases.len());
    std::fs::write(&db, &good).unwrap();
    let out = run_child_in(&[], envs, "child_damage_check", 60);
    assert!(out.ok, "{}", out.text);
    let verdict = std::fs::read_to_string(tmp.path().join("verdict")).unwrap();
    assert_eq!(verdict, format!("intact\n{pristine_view}"), "restored");
    // The CLI: one clear line for the damaged device, and the good one still listed.
    std::fs::write(&db, &good[..good.len() / 2]).unwrap();
    let out = ukey_raw(
        &[],
        &conf,
        &["--device", &bad_serial, "device", "info"],
        b"",
    );
    assert_clear_cli_error(&out, "device info", &db.display().to_string());
    let out = ukey_raw(&[], &conf, &["device", "list"], b"");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("good"),
        "{out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ukey: warning: skipped ") && err.contains(&db.display().to_string()),
        "device list names the damaged file: {err}"
    );
}

#[test]
#[ignore = "run by damaged_store_file"]
fn child_damage_prepare() {
    if !is_child("child_damage_prepare") {
        return;
    }
    let dir = env_path("FAULT_DIR");
    let p11 = p11();
    let s = user_session(&p11, "bad", PIN);
    s.create_object(&data_template("private", vec![0x42; 300]))
        .unwrap();
    let mut t = data_template("public", vec![0x43; 300]);
    t[2] = Attribute::Private(false);
    s.create_object(&t).unwrap();
    gen_p256(&s, "key").unwrap();
    drop(s);
    std::fs::write(dir.join("view"), snapshot(&p11).unwrap()).unwrap();
    p11.finalize().unwrap();
}

#[test]
#[ignore = "run by damaged_store_file"]
fn child_damage_check() {
    if !is_child("child_damage_check") {
        return;
    }
    let dir = env_path("FAULT_DIR");
    let p11 = p11();
    // The good token works whatever happened to the other.
    let s = user_session(&p11, "good", PIN);
    s.create_object(&data_template("still-good", vec![1]))
        .unwrap();
    drop(s);
    let verdict = match snapshot(&p11) {
        Ok(view) => format!("intact\n{view}"),
        Err(RvError::TokenNotPresent) => "absent".into(),
        Err(e) => format!("{e:?}"),
    };
    std::fs::write(dir.join("verdict"), verdict).unwrap();
    p11.finalize().unwrap();
}

// ---------------------------------------------------------------------------------------
// SIGKILL mid-write
// ---------------------------------------------------------------------------------------

const PIN2: &str = "246810";

/// A small deterministic generator (xorshift64*), so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The value of object `n`: its number, then a pattern of 1–4 KiB.
fn kill_value(n: u64) -> Vec<u8> {
    let len = 1024 + (n * 977 % 3072) as usize;
    let mut v = n.to_be_bytes().to_vec();
    v.extend((0..len).map(|i| (n as usize * 31 + i) as u8));
    v
}

/// The writer's ledger: what it saw committed, one line per call that returned OK.
/// `C n` created object n, `D n` destroyed it, `P pin` set the user PIN.
struct Ledger {
    live: std::collections::BTreeSet<u64>,
    next: u64,
    pin: String,
}

fn read_ledger(path: &Path) -> Ledger {
    let mut l = Ledger {
        live: Default::default(),
        next: 0,
        pin: PIN.into(),
    };
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let (op, arg) = line.split_once(' ').unwrap();
        match op {
            "C" => {
                let n: u64 = arg.parse().unwrap();
                assert!(l.live.insert(n));
                l.next = l.next.max(n + 1);
            }
            "D" => assert!(l.live.remove(&arg.parse().unwrap())),
            "P" => l.pin = arg.into(),
            _ => panic!("ledger line {line:?}"),
        }
    }
    l
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// SIGKILL mid-write, 20 times: a writer process creates and destroys token objects and
/// changes the user PIN in a loop, noting each call that returned OK, and is killed at a
/// random moment. After every kill a new process finds the store whole (integrity check),
/// the PIN the last committed C_SetPIN set (or the one in flight), and exactly the objects
/// the ledger says, each with its value, give or take the one call in flight.
#[test]
fn sigkill_mid_write() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = conf(tmp.path());
    make_token(&conf, "kill");
    let ledger = tmp.path().join("ledger");
    let envs: &[(&str, &OsStr)] = &[
        ("UKEY_CONF", conf.as_os_str()),
        ("FAULT_LEDGER", ledger.as_os_str()),
    ];
    let seed = std::env::var("UKEY_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64 ^ u64::from(std::process::id()));
    eprintln!("sigkill_mid_write: UKEY_FAULT_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let exe = std::env::current_exe().unwrap();
    let mut killed_mid_call = 0;
    for round in 0..20 {
        let lines_before = std::fs::read_to_string(&ledger)
            .unwrap_or_default()
            .lines()
            .count();
        let mut child = Command::new(&exe)
            .args(["--exact", "child_kill_writer", "--ignored", "--nocapture"])
            .env("UKEY_FAULT_CHILD", "child_kill_writer")
            .env_remove("UKEY_DATA_DIR")
            .env("UKEY_BACKENDS", "soft")
            .env("UKEY_CONF", &conf)
            .env("FAULT_LEDGER", &ledger)
            .env("FAULT_SEED", (seed + round).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Once it has committed something this round, let it run 0–250 ms more.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = std::fs::read_to_string(&ledger)
                .unwrap_or_default()
                .lines()
                .count();
            if n > lines_before {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: the writer ended early"
            );
            assert!(Instant::now() < deadline, "round {round}: no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(250)));
        assert!(child.try_wait().unwrap().is_none(), "the writer ended");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let text = child_passes(&[], envs, "child_kill_verify", 60);
        if text.contains("in flight: committed") {
            killed_mid_call += 1;
        }
    }
    let l = read_ledger(&ledger);
    eprintln!(
        "sigkill_mid_write: {} objects live, {} made, {killed_mid_call} kills landed after a commit the writer had not noted",
        l.live.len(),
        l.next
    );
    assert!(l.next > 20, "the writers made progress");
}

#[test]
#[ignore = "run by sigkill_mid_write"]
fn child_kill_writer() {
    if !is_child("child_kill_writer") {
        return;
    }
    let ledger = env_path("FAULT_LEDGER");
    let mut rng = Rng(std::env::var("FAULT_SEED").unwrap().parse::<u64>().unwrap() | 1);
    let mut l = read_ledger(&ledger);
    let p11 = p11();
    let s = user_session(&p11, "kill", &l.pin);
    loop {
        match rng.below(8) {
            0 => {
                let new = if l.pin == PIN { PIN2 } else { PIN };
                // Before the call: what is in flight, for the verifier.
                std::fs::write(ledger.with_extension("flight"), format!("P {new}")).unwrap();
                s.set_pin(
                    &AuthPin::new(l.pin.clone().into()),
                    &AuthPin::new(new.into()),
                )
                .unwrap();
                append(&ledger, &format!("P {new}"));
                l.pin = new.into();
            }
            1 | 2 if !l.live.is_empty() => {
                let pick = rng.below(l.live.len() as u64) as usize;
                let n = *l.live.iter().nth(pick).unwrap();
                let h = s
                    .find_objects(&[Attribute::Label(format!("k{n}").into_bytes())])
                    .unwrap();
                assert_eq!(h.len(), 1);
                std::fs::write(ledger.with_extension("flight"), format!("D {n}")).unwrap();
                s.destroy_object(h[0]).unwrap();
                append(&ledger, &format!("D {n}"));
                l.live.remove(&n);
            }
            _ => {
                let n = l.next;
                std::fs::write(ledger.with_extension("flight"), format!("C {n}")).unwrap();
                s.create_object(&data_template(&format!("k{n}"), kill_value(n)))
                    .unwrap();
                append(&ledger, &format!("C {n}"));
                l.live.insert(n);
                l.next += 1;
            }
        }
    }
}

#[test]
#[ignore = "run by sigkill_mid_write"]
fn child_kill_verify() {
    if !is_child("child_kill_verify") {
        return;
    }
    let ledger = env_path("FAULT_LEDGER");
    let flight_path = ledger.with_extension("flight");
    let l = read_ledger(&ledger);
    // The call in flight when the writer died, unless the ledger already has it.
    let flight = std::fs::read_to_string(&flight_path).unwrap_or_default();
    let noted = std::fs::read_to_string(&ledger)
        .unwrap_or_default()
        .lines()
        .last()
        .is_some_and(|last| last == flight);
    let flight = (!noted && !flight.is_empty()).then_some(flight);

    // The store opens and is whole.
    let data = env_path("UKEY_CONF").parent().unwrap().join("data");
    for db in db_files(&data) {
        if db.extension() == Some(OsStr::new("ukdb")) {
            let d = token_hal::soft::SoftDevice::open(&db, &Default::default()).unwrap();
            d.check_integrity().unwrap();
        }
    }
    let p11 = p11();
    let slot = slot_of(&p11, "kill").unwrap();
    let s = p11.open_rw_session(slot).unwrap();
    let mut committed = false;
    if let Err(e) = s.login(UserType::User, Some(&AuthPin::new(l.pin.clone().into()))) {
        assert_eq!(rv(e), RvError::PinIncorrect);
        // Only a C_SetPIN in flight may have changed it.
        let new = flight
            .as_deref()
            .and_then(|f| f.strip_prefix("P "))
            .expect("the PIN changed with no C_SetPIN in flight");
        s.login(UserType::User, Some(&AuthPin::new(new.into())))
            .unwrap();
        committed = true;
    }
    let mut found = std::collections::BTreeMap::new();
    for h in s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap()
    {
        let attrs = s
            .get_attributes(h, &[AttributeType::Label, AttributeType::Value])
            .unwrap();
        let (Attribute::Label(label), Attribute::Value(value)) = (&attrs[0], &attrs[1]) else {
            panic!("{attrs:?}");
        };
        let n: u64 = String::from_utf8_lossy(label)[1..].parse().unwrap();
        assert_eq!(*value, kill_value(n), "object {n} intact");
        assert!(found.insert(n, ()).is_none(), "object {n} exactly once");
    }
    let found: std::collections::BTreeSet<u64> = found.into_keys().collect();
    if found != l.live {
        // The difference must be exactly the call in flight, committed.
        let f = flight
            .as_deref()
            .expect("objects differ with nothing in flight");
        let (op, arg) = f.split_once(' ').unwrap();
        let n: u64 = arg.parse().unwrap();
        let mut expect = l.live.clone();
        match op {
            "C" => assert!(expect.insert(n)),
            "D" => assert!(expect.remove(&n)),
            _ => panic!("objects differ, in flight {f}"),
        }
        assert_eq!(found, expect, "committed objects, in flight {f}");
        committed = true;
    }
    if committed {
        append(&ledger, flight.as_deref().unwrap());
        println!("in flight: committed");
    }
    let _ = std::fs::remove_file(&flight_path);
    drop(s);
    p11.finalize().unwrap();
}

// ---------------------------------------------------------------------------------------
// pcscd killed and restarted mid-session; the virtual key pulled mid-operation
// ---------------------------------------------------------------------------------------

fn wait_file(path: &Path, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{what}: {} never came",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The virtual key in pcscd with application "bids"; None when pcscd or vpcd is missing.
fn card_with_app(tmp: &Path) -> Option<(PathBuf, ukey_tests::VirtualKeyInPcscd)> {
    let conf = conf(tmp);
    let sim = ukey_tests::VirtualKeyInPcscd::start(&conf, &tmp.join("card"))?;
    let out = Command::new(ukey_tests::ukey_bin())
        .env("UKEY_CONF", &conf)
        .env("UKEY_BACKENDS", "pcsc")
        .args(["--pin", PIN, "app", "create", "bids", "--so-pin", SO_PIN])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    Some((conf, sim))
}

/// Starts a child on the card (backend `pcsc` only); returns it and the rendezvous dir.
fn card_child(conf: &Path, dir: &Path, test: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("UKEY_FAULT_CHILD", test)
        .env("UKEY_CONF", conf)
        .env("UKEY_BACKENDS", "pcsc")
        .env("FAULT_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish_child(child: std::process::Child, secs: u64, test: &str) -> String {
    ukey_tests::finish_child(child, Instant::now() + Duration::from_secs(secs), test)
}

/// pcscd killed (SIGKILL) while a PKCS#11 client signs on the virtual key in a loop: the
/// call in flight fails at once with CKR_DEVICE_REMOVED or CKR_DEVICE_ERROR, nothing
/// hangs; pcscd restarted (same script, same lock) and the key back, the same process
/// finds the token again and a new session signs with the same key.
#[test]
fn pcscd_killed_mid_session() {
    pcscd_killed("child_pcscd_pkcs11");
}

/// The same through SKF: SKF_ECCSignData in flight fails with SAR_DEVICE_REMOVED, and
/// after the restart a new SKF_ConnectDev signs with the same container.
#[test]
fn pcscd_killed_mid_session_skf() {
    pcscd_killed("child_pcscd_skf");
}

fn pcscd_killed(test: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let Some((conf, mut sim)) = card_with_app(tmp.path()) else {
        return;
    };
    let child = card_child(&conf, tmp.path(), test);
    wait_file(&tmp.path().join("ready"), 120, test);
    std::thread::sleep(Duration::from_millis(300));
    sim.kill_pcscd();
    // The client must notice by itself, in bounded time.
    wait_file(&tmp.path().join("failed"), 30, "the call in flight failed");
    sim.restart_pcscd();
    std::fs::write(tmp.path().join("restarted"), b"").unwrap();
    let text = finish_child(child, 120, test);
    eprintln!(
        "{}",
        text.lines()
            .filter_map(|l| l.find("fault: ").map(|i| &l[i..]))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
#[ignore = "run by pcscd_killed_mid_session"]
fn child_pcscd_pkcs11() {
    if !is_child("child_pcscd_pkcs11") {
        return;
    }
    let dir = env_path("FAULT_DIR");
    let p11 = p11();
    let s = user_session(&p11, "bids", PIN);
    gen_p256(&s, "k1").unwrap();
    sign_verify(&s, "k1");
    let sk = private_key(&s, "k1");
    std::fs::write(dir.join("ready"), b"").unwrap();
    let t0 = Instant::now();
    let (err, took) = loop {
        let t = Instant::now();
        match s.sign(&Mechanism::EcdsaSha256, sk, b"in flight") {
            Ok(_) => assert!(t0.elapsed() < Duration::from_secs(60), "pcscd never died"),
            Err(e) => break (rv(e), t.elapsed()),
        }
    };
    println!("fault: C_Sign with pcscd killed: {err:?} after {took:?}");
    assert!(
        matches!(err, RvError::DeviceRemoved | RvError::DeviceError),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    std::fs::write(dir.join("failed"), b"").unwrap();
    wait_file(&dir.join("restarted"), 120, "restart");
    let deadline = Instant::now() + Duration::from_secs(60);
    let slot = loop {
        if let Some(slot) = slot_of(&p11, "bids") {
            break slot;
        }
        assert!(Instant::now() < deadline, "the token never came back");
        std::thread::sleep(Duration::from_millis(200));
    };
    let s2 = p11.open_rw_session(slot).unwrap();
    s2.login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap();
    sign_verify(&s2, "k1");
    drop(s2);
    drop(s);
    p11.finalize().unwrap();
}

/// SKF on the card: open the application with the PIN, retrying while the key is away.
fn skf_open_retry(app: &str, secs: u64) -> Skf {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match std::panic::catch_unwind(|| Skf::open(app, PIN)) {
            Ok(s) => return s,
            Err(_) => {
                assert!(Instant::now() < deadline, "the key never came back");
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
}

fn skf_sign(c: H) -> u32 {
    let sign = skf!(SKF_ECCSignData: fn(H, *const u8, u32, *mut ECCSIGNATUREBLOB));
    let digest = [0x5Au8; 32];
    // SAFETY: plain-old-data blob written by the call.
    let mut sig: ECCSIGNATUREBLOB = unsafe { std::mem::zeroed() };
    // SAFETY: valid container handle, 32-byte digest, output blob.
    unsafe { sign(c, digest.as_ptr(), 32, &mut sig) }
}

fn skf_container(app: H, name: &str, create: bool) -> H {
    let f = if create {
        skf!(SKF_CreateContainer: fn(H, *const u8, *mut H))
    } else {
        skf!(SKF_OpenContainer: fn(H, *const u8, *mut H))
    };
    let mut c: H = std::ptr::null_mut();
    // SAFETY: valid handle, NUL-terminated name, valid output pointer.
    assert_eq!(unsafe { f(app, cs(name).as_ptr(), &mut c) }, SAR_OK);
    c
}

#[test]
#[ignore = "run by pcscd_killed_mid_session_skf"]
fn child_pcscd_skf() {
    if !is_child("child_pcscd_skf") {
        return;
    }
    let dir = env_path("FAULT_DIR");
    let s = Skf::open("bids", PIN);
    let c = skf_container(s.app, "c1", true);
    let gen_key = skf!(SKF_GenECCKeyPair: fn(H, u32, *mut u8));
    let mut blob = [0u8; 132];
    // SAFETY: valid container, the buffer holds an ECCPUBLICKEYBLOB.
    assert_eq!(unsafe { gen_key(c, SGD_SM2_1, blob.as_mut_ptr()) }, SAR_OK);
    assert_eq!(skf_sign(c), SAR_OK);
    std::fs::write(dir.join("ready"), b"").unwrap();
    let t0 = Instant::now();
    let (err, took) = loop {
        let t = Instant::now();
        match skf_sign(c) {
            SAR_OK => assert!(t0.elapsed() < Duration::from_secs(60), "pcscd never died"),
            e => break (e, t.elapsed()),
        }
    };
    println!("fault: SKF_ECCSignData with pcscd killed: {err:#x} after {took:?}");
    assert_eq!(err, SAR_DEVICE_REMOVED);
    assert!(took < Duration::from_secs(10), "{took:?}");
    std::fs::write(dir.join("failed"), b"").unwrap();
    wait_file(&dir.join("restarted"), 120, "restart");
    let s2 = skf_open_retry("bids", 60);
    let c2 = skf_container(s2.app, "c1", false);
    assert_eq!(skf_sign(c2), SAR_OK);
    s2.close();
}

/// The virtual key pulled while SKF_WriteFile sends a 16 KiB file (one command chained
/// over many APDUs inside the secure channel), at a random moment: the call fails with
/// SAR_DEVICE_REMOVED in bounded time; plugged back, a new connection reads the file
/// whole, either the last version written or the one in flight, never a mix.
/// (Pulling it while idle and hot-plug events: apdu_pcscd.rs.)
#[test]
fn key_pulled_mid_write_skf() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((conf, mut sim)) = card_with_app(tmp.path()) else {
        return;
    };
    let child = card_child(&conf, tmp.path(), "child_pull_skf");
    wait_file(&tmp.path().join("ready"), 120, "ready");
    let mut rng = Rng(u64::from(std::process::id()) | 1);
    std::thread::sleep(Duration::from_millis(100 + rng.below(600)));
    sim.pull();
    wait_file(&tmp.path().join("failed"), 30, "the write in flight failed");
    sim.insert();
    std::fs::write(tmp.path().join("restarted"), b"").unwrap();
    let text = finish_child(child, 120, "child_pull_skf");
    eprintln!(
        "{}",
        text.lines()
            .filter_map(|l| l.find("fault: ").map(|i| &l[i..]))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
#[ignore = "run by key_pulled_mid_write_skf"]
fn child_pull_skf() {
    if !is_child("child_pull_skf") {
        return;
    }
    const SIZE: u32 = 16 * 1024;
    let dir = env_path("FAULT_DIR");
    let s = Skf::open("bids", PIN);
    assert_eq!(s.create_file("big", SIZE), SAR_OK);
    let mut version = 1u8;
    assert_eq!(s.write("big", 0, &[version; SIZE as usize]), SAR_OK);
    std::fs::write(dir.join("ready"), b"").unwrap();
    let t0 = Instant::now();
    let (err, took) = loop {
        let t = Instant::now();
        match s.write("big", 0, &[version.wrapping_add(1); SIZE as usize]) {
            SAR_OK => {
                version = version.wrapping_add(1);
                assert!(t0.elapsed() < Duration::from_secs(60), "never pulled");
            }
            e => break (e, t.elapsed()),
        }
    };
    println!(
        "fault: SKF_WriteFile with the key pulled: {err:#x} after {took:?}, {version} versions written"
    );
    assert_eq!(err, SAR_DEVICE_REMOVED);
    assert!(took < Duration::from_secs(10), "{took:?}");
    std::fs::write(dir.join("failed"), b"").unwrap();
    wait_file(&dir.join("restarted"), 120, "re-insert");
    let s2 = skf_open_retry("bids", 60);
    let data = s2.read("big", SIZE).unwrap();
    assert_eq!(data.len(), SIZE as usize);
    let v = data[0];
    assert!(
        data.iter().all(|b| *b == v),
        "the file is one version, not a mix"
    );
    assert!(
        v == version || v == version.wrapping_add(1),
        "version {v}, last written {version}"
    );
    println!("fault: after re-insertion the file is version {v} (last acknowledged {version})");
    s2.close();
}
