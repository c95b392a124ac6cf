//! The file system fights back: a data directory that cannot be written or read, and a
//! full disk. Each gets a clear error naming the file, and the data stays intact.
//!
//! These tests run as root in CI, where file modes alone prove nothing, so the checks run in
//! a child process without capabilities (`setpriv`), and the disk fills through
//! `RLIMIT_FSIZE` (`prlimit`).

#![allow(clippy::unwrap_used)] // tests may unwrap

mod soft_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use soft_common::*;
use token_hal::registry::Registry;
use token_hal::soft::{self, SoftDevice};
use token_hal::{Attr, Device, Error, PinType, Rights};

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap())
}

/// Reports one expectation of a child: `@@OK name` or `@@FAIL name: why`.
fn expect(name: &str, ok: bool, detail: impl std::fmt::Display) -> bool {
    if ok {
        println!("@@OK {name}: {detail}");
    } else {
        println!("@@FAIL {name}: {detail}");
    }
    ok
}

/// An `Io` error naming `file`.
fn io_naming(r: &Result<impl Sized, Error>, file: &Path) -> bool {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    matches!(r, Err(Error::Io { .. }) if r.as_ref().err().unwrap().to_string().contains(&name))
}

fn describe<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "succeeded".into(),
        Err(e) => format!("{e:?} / {e}"),
    }
}

fn run_child(mut c: Command, expected_oks: usize) {
    let out: Output = c.output().unwrap();
    let lines = report_lines(&out.stdout);
    eprintln!("{}", lines.join("\n"));
    let fails: Vec<_> = lines.iter().filter(|l| l.starts_with("@@FAIL")).collect();
    assert!(
        out.status.success() && fails.is_empty() && lines.len() == expected_oks,
        "child: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn no_caps() -> Vec<&'static str> {
    drop_caps_prefix().expect("setpriv is needed to drop capabilities (apt-get install util-linux)")
}

/// The child proves it has no capability to bypass file modes.
fn proves_no_override(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let r = fs::write(&probe, b"x");
    expect(
        "cannot bypass file modes",
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied),
        format!("{r:?}"),
    )
}

fn readonly_child() {
    let dir = env_path("UKEY_SOFT_DIR");
    let db = env_path("UKEY_SOFT_DB");
    if !proves_no_override(&dir) {
        return;
    }
    // A new device cannot be made in the directory.
    let r = soft::create_soft_device(&dir, "new", &opts());
    expect(
        "create device in read-only dir",
        matches!(&r, Err(Error::Io { path, .. }) if path.starts_with(&dir)),
        describe(&r),
    );
    let reg = Registry::new(config(&dir));
    let r = reg.create_soft_device("x");
    expect(
        "registry create",
        matches!(r, Err(Error::Io { .. })),
        describe(&r),
    );
    // The existing device still reads.
    let dev = SoftDevice::open(&db, &opts());
    if !expect("open", dev.is_ok(), describe(&dev)) {
        return;
    }
    let dev = dev.unwrap();
    let app = dev.open_app("app").unwrap();
    let r = app.list_containers();
    expect(
        "read containers",
        matches!(&r, Ok(c) if c.len() == 1 && c[0].name == "keep"),
        describe(&r),
    );
    let r = reg.devices();
    expect(
        "registry lists",
        matches!(&r, Ok(d) if d.len() == 1),
        describe(&r),
    );
    // Writes fail with an error naming the database.
    let r = dev.set_label("changed");
    expect("set label", io_naming(&r, &db), describe(&r));
    let r = app.create_file("f", 4, Rights::ANYONE, Rights::ANYONE);
    expect("create file", io_naming(&r, &db), describe(&r));
    // A PIN attempt must persist its counter; when it cannot, there is no login.
    let r = app.verify_pin(PinType::User, &USER.into());
    expect("login refused", io_naming(&r, &db), describe(&r));
    expect(
        "not logged in",
        app.login_state() == token_hal::LoginState::None,
        format!("{:?}", app.login_state()),
    );
}

#[test]
fn unwritable_data_dir_gives_errors_naming_the_file() {
    if role().as_deref() == Some("readonly") {
        return readonly_child();
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (db, dev) = new_token(&dir);
    let app = user_app(&dev);
    app.create_container("keep", None).unwrap();
    drop((app, dev));
    let before = fs::read(&db).unwrap();
    let test = "unwritable_data_dir_gives_errors_naming_the_file";
    // Both a read-only database file and a writable one in a read-only directory (where
    // the journal cannot be made).
    for db_mode in [0o444, 0o644] {
        set_mode(&dir, 0o555);
        set_mode(&db, db_mode);
        let mut c = child_via(&no_caps(), test, "readonly");
        c.env("UKEY_SOFT_DIR", &dir).env("UKEY_SOFT_DB", &db);
        run_child(c, 10);
        set_mode(&dir, 0o700);
        set_mode(&db, 0o600);
        assert_eq!(fs::read(&db).unwrap(), before, "database changed");
    }
    let dev = SoftDevice::open(&db, &opts()).unwrap();
    dev.check_integrity().unwrap();
    assert_eq!(dev.info().unwrap().label, "test");
    let app = dev.open_app("app").unwrap();
    assert_eq!(app.pin_info(PinType::User).unwrap().remaining, 10);
    app.verify_pin(PinType::User, &USER.into()).unwrap();
    assert_eq!(app.list_containers().unwrap().len(), 1);
}

fn unreadable_child() {
    let dir = env_path("UKEY_SOFT_DIR");
    let db = env_path("UKEY_SOFT_DB");
    let locked_db = env_path("UKEY_SOFT_LOCKED_DB");
    let reg = Registry::new(config(&dir));
    let r = reg.devices();
    expect(
        "list devices",
        matches!(&r, Err(Error::Io { path, .. }) if path == &dir),
        describe(&r),
    );
    let r = reg.find_app(None);
    expect(
        "find app",
        matches!(&r, Err(Error::Io { .. })),
        describe(&r),
    );
    let r = SoftDevice::open(&db, &opts());
    expect("open in unreadable dir", io_naming(&r, &db), describe(&r));
    // An unreadable database file in a readable directory.
    let r = SoftDevice::open(&locked_db, &opts());
    expect(
        "open unreadable file",
        io_naming(&r, &locked_db) && r.as_ref().err().unwrap().to_string().contains("denied"),
        describe(&r),
    );
    let reg2 = Registry::new(config(locked_db.parent().unwrap()));
    let scan = reg2.scan().map(|s| {
        s.into_iter()
            .map(|e| (e.path, e.device.err().map(|e| e.to_string())))
            .collect::<Vec<_>>()
    });
    expect(
        "scan reports the unreadable file",
        matches!(&scan, Ok(v) if v.len() == 1 && v[0].1.as_deref().is_some_and(|e| e.contains("denied"))),
        format!("{scan:?}"),
    );
}

#[test]
fn unreadable_data_dir_gives_errors_naming_it() {
    if role().as_deref() == Some("unreadable") {
        return unreadable_child();
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (db, dev) = new_token(&dir);
    drop(dev);
    let other = tmp.path().join("other");
    let (locked_db, dev) = new_token(&other);
    drop(dev);
    set_mode(&dir, 0o000);
    set_mode(&locked_db, 0o000);
    let mut c = child_via(
        &no_caps(),
        "unreadable_data_dir_gives_errors_naming_it",
        "unreadable",
    );
    c.env("UKEY_SOFT_DIR", &dir)
        .env("UKEY_SOFT_DB", &db)
        .env("UKEY_SOFT_LOCKED_DB", &locked_db);
    run_child(c, 5);
    set_mode(&dir, 0o700);
    set_mode(&locked_db, 0o600);
    SoftDevice::open(&db, &opts())
        .unwrap()
        .check_integrity()
        .unwrap();
    SoftDevice::open(&locked_db, &opts()).unwrap();
}

fn disk_full_child() {
    let db = env_path("UKEY_SOFT_DB");
    let dev = SoftDevice::open(&db, &opts()).unwrap();
    // Logging in rewrites a page in place, which still fits.
    let app = user_app(&dev);
    let r = app.create_file("big", 1 << 20, Rights::ANYONE, Rights::ANYONE);
    expect("big file", io_naming(&r, &db), describe(&r));
    let r = app.create_object(true, &[Attr::sensitive(0x11, vec![7u8; 300_000])]);
    expect("big object", io_naming(&r, &db), describe(&r));
    let r = app.list_containers();
    expect(
        "still readable",
        matches!(&r, Ok(c) if c.len() == 1),
        describe(&r),
    );
}

#[test]
fn full_disk_gives_an_error_naming_the_file_and_keeps_the_data() {
    if role().as_deref() == Some("diskfull") {
        return disk_full_child();
    }
    let tmp = tempfile::tempdir().unwrap();
    let (db, dev) = new_token(&tmp.path().join("data"));
    let app = user_app(&dev);
    app.create_container("keep", None).unwrap();
    app.create_file("kept", 16, Rights::ANYONE, Rights::ANYONE)
        .unwrap();
    app.write_file("kept", 0, b"kept data").unwrap();
    drop((app, dev));
    let size = fs::metadata(&db).unwrap().len();
    // The file may not grow: RLIMIT_FSIZE at its current size. SIGXFSZ is ignored (the
    // shell's `trap`, kept across exec) so that writes fail with EFBIG instead.
    let mut c = child_via(
        &[
            "sh",
            "-c",
            "trap '' XFSZ; exec prlimit --fsize=$0 -- \"$@\"",
            &size.to_string(),
        ],
        "full_disk_gives_an_error_naming_the_file_and_keeps_the_data",
        "diskfull",
    );
    c.env("UKEY_SOFT_DB", &db);
    run_child(c, 3);
    let dev = SoftDevice::open(&db, &opts()).unwrap();
    dev.check_integrity().unwrap();
    let app = user_app(&dev);
    assert_eq!(app.list_files().unwrap().len(), 1);
    assert_eq!(&app.read_file("kept", 0, 9).unwrap(), b"kept data");
    assert_eq!(app.list_containers().unwrap().len(), 1);
    assert!(app.list_objects().unwrap().is_empty());
    assert_eq!(app.pin_info(PinType::User).unwrap().remaining, 10);
    // With room again, the same writes work.
    app.create_file("big", 1 << 20, Rights::ANYONE, Rights::ANYONE)
        .unwrap();
}
