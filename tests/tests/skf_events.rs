//! SKF_WaitForDevEvent / SKF_CancelWaitForDevEvent with soft devices created and deleted
//! by the `ukey` CLI, and SKF_LockDev held across processes.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::ffi::c_void;
use std::path::PathBuf;
use std::process::Command;
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use skf_common::*;
use skf_sys::*;

type H = *mut c_void;

fn wait_event() -> (u32, String, u32) {
    let wait = skf!(SKF_WaitForDevEvent: fn(*mut u8, *mut u32, *mut u32));
    let mut name = [0u8; 256];
    let mut len = 256u32;
    let mut ev = 0u32;
    // SAFETY: buffers valid for their lengths.
    let rv = unsafe { wait(name.as_mut_ptr(), &mut len, &mut ev) };
    let n = String::from_utf8_lossy(&name[..(len as usize).saturating_sub(1)]).into_owned();
    (rv, n, ev)
}

#[test]
fn soft_devices_created_and_deleted_are_events() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = device_only(tmp.path());
    run_child(&conf, "events_child");
}

#[test]
fn events_child() {
    if !is_child("events_child") {
        return;
    }
    let conf = PathBuf::from(std::env::var("UKEY_CONF").unwrap());
    let cancel = skf!(SKF_CancelWaitForDevEvent: fn());
    let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
    let mut before = 0u32;
    // SAFETY: size query.
    assert_eq!(unsafe { enum_dev(1, null_mut(), &mut before) }, SAR_OK);

    // inserted
    let waiter = std::thread::spawn(wait_event);
    std::thread::sleep(Duration::from_millis(400));
    ukey(&conf, &["device", "init", "--label", "plugged"]);
    let (rv, name, ev) = waiter.join().unwrap();
    assert_eq!((rv, ev), (SAR_OK, DEV_EVENT_INSERTED), "{name}");
    let mut st = 0u32;
    let get_state = skf!(SKF_GetDevState: fn(*const u8, *mut u32));
    let cname = format!("{name}\0");
    // SAFETY: NUL-terminated name, valid output pointer.
    assert_eq!(unsafe { get_state(cname.as_ptr(), &mut st) }, SAR_OK);
    assert_eq!(st, DEV_PRESENT_STATE);

    // cancel wakes a waiter
    let waiter = std::thread::spawn(wait_event);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    // SAFETY: no arguments.
    assert_eq!(unsafe { cancel() }, SAR_OK);
    let (rv, _, _) = waiter.join().unwrap();
    assert_eq!(rv, SAR_NOT_EVENTERR);
    assert!(t0.elapsed() < Duration::from_secs(2));

    // removed
    let list = ukey(&conf, &["--json", "device", "list"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let serial = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["label"] == "plugged")
        .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiter = std::thread::spawn(wait_event);
    std::thread::sleep(Duration::from_millis(400));
    ukey(&conf, &["device", "delete", &serial, "--yes"]);
    let (rv, gone, ev) = waiter.join().unwrap();
    assert_eq!((rv, ev), (SAR_OK, DEV_EVENT_REMOVED));
    assert_eq!(gone, name);
    // SAFETY: as above.
    assert_eq!(unsafe { get_state(cname.as_ptr(), &mut st) }, SAR_OK);
    assert_eq!(st, DEV_ABSENT_STATE);
    println!("events ok");
}

fn connect_first() -> H {
    let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
    let connect = skf!(SKF_ConnectDev: fn(*const u8, *mut H));
    let mut buf = vec![0u8; 512];
    let mut len = 512u32;
    let mut h: H = null_mut();
    // SAFETY: buffers valid for their lengths.
    unsafe {
        assert_eq!(enum_dev(1, buf.as_mut_ptr(), &mut len), SAR_OK);
        assert_eq!(connect(buf.as_ptr(), &mut h), SAR_OK);
    }
    h
}

#[test]
fn lock_dev_holds_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = device_only(tmp.path());
    let marker = tmp.path().join("locked");
    let holder = Command::new(std::env::current_exe().unwrap())
        .env("UKEY_CONF", &conf)
        .env("UKEY_TEST_CHILD", "lock_holder_child")
        .env("LOCK_MARKER", &marker)
        .args(["--exact", "lock_holder_child", "--nocapture"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !marker.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "holder never locked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run_child(&conf, "lock_waiter_child");
    let out = holder.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lock_holder_child() {
    if !is_child("lock_holder_child") {
        return;
    }
    let lock = skf!(SKF_LockDev: fn(H, u32));
    let unlock = skf!(SKF_UnlockDev: fn(H));
    let d = connect_first();
    // SAFETY: a device handle.
    assert_eq!(unsafe { lock(d, 1000) }, SAR_OK);
    std::fs::write(std::env::var("LOCK_MARKER").unwrap(), b"").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: as above.
    assert_eq!(unsafe { unlock(d) }, SAR_OK);
}

#[test]
fn lock_waiter_child() {
    if !is_child("lock_waiter_child") {
        return;
    }
    let lock = skf!(SKF_LockDev: fn(H, u32));
    let d = connect_first();
    let rv = {
        // SAFETY: a device handle.
        unsafe { lock(d, 200) }
    };
    assert_eq!(rv, SAR_TIMEOUTERR, "another process holds it");
    // SAFETY: as above.
    assert_eq!(unsafe { lock(d, 10_000) }, SAR_OK, "released by the holder");
}
