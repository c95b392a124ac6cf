//! The registry: finding soft devices and tokens in the data directory.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod soft_common;

use std::fs;

use soft_common::*;
use token_hal::registry::Registry;
use token_hal::soft::DEFAULT_DEV_AUTH_KEY;
use token_hal::{AppParams, Error};

#[test]
fn devices_are_found_sorted_and_damaged_files_do_not_hide_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let reg = Registry::new(config(&data));
    assert_eq!(reg.data_dir(), data);
    // A missing data directory holds no devices.
    assert!(reg.devices().unwrap().is_empty());
    assert!(matches!(reg.find_app(None), Err(Error::NotFound(_))));

    let a = reg.create_soft_device("alpha").unwrap();
    let b = reg.create_soft_device("beta").unwrap();
    let c = reg.create_soft_device("beta").unwrap();
    let mut serials: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|d| d.info().unwrap().serial)
        .collect();
    serials.sort();
    let listed: Vec<String> = reg
        .devices()
        .unwrap()
        .iter()
        .map(|d| d.info().unwrap().serial)
        .collect();
    assert_eq!(listed, serials);

    // A corrupt file is skipped by devices() and reported by scan().
    fs::write(data.join("UKSBROKEN.ukdb"), b"garbage garbage garbage").unwrap();
    assert_eq!(reg.devices().unwrap().len(), 3);
    let scan = reg.scan().unwrap();
    assert_eq!(scan.len(), 4);
    let bad: Vec<_> = scan.iter().filter(|e| e.device.is_err()).collect();
    assert_eq!(bad.len(), 1);
    let e = bad[0].device.as_ref().err().unwrap();
    assert!(e.to_string().contains("UKSBROKEN.ukdb"), "{e}");
    // It can still be deleted by its name.
    reg.delete_device("UKSBROKEN").unwrap();
    assert_eq!(reg.scan().unwrap().len(), 3);

    // By serial, by unique label, and an ambiguous label.
    let sa = a.info().unwrap().serial;
    assert_eq!(reg.find_device(&sa).unwrap().info().unwrap().serial, sa);
    assert_eq!(reg.find_device("alpha").unwrap().info().unwrap().serial, sa);
    let e = reg.find_device("beta").err().unwrap();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains(&b.info().unwrap().serial), "{e}");
    assert!(matches!(reg.find_device("gamma"), Err(Error::NotFound(_))));

    // Deleting removes both files.
    let sb = b.info().unwrap().serial;
    reg.delete_device(&sb).unwrap();
    assert!(!data.join(format!("{sb}.ukdb")).exists());
    assert!(!data.join(format!("{sb}.devkey")).exists());
    assert!(matches!(reg.delete_device(&sb), Err(Error::NotFound(_))));
    assert!(matches!(b.info(), Err(Error::DeviceRemoved)));
    assert_eq!(reg.devices().unwrap().len(), 2);
}

#[test]
fn find_app_and_ensure_app() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(config(&tmp.path().join("data")));
    let params = AppParams::new(ADMIN.into(), Some(USER.into()));

    // From nothing: a device and the application are made.
    let s = reg.ensure_app("ukey", &params).unwrap();
    assert!(s.created_device && s.created_app);
    assert_eq!(s.device.info().unwrap().label, "ukey-soft");
    // Again: reused.
    let s2 = reg.ensure_app("ukey", &params).unwrap();
    assert!(!s2.created_device && !s2.created_app);
    assert_eq!(
        s2.device.info().unwrap().serial,
        s.device.info().unwrap().serial
    );
    // The only application is chosen without a label.
    let (d, name) = reg.find_app(None).unwrap();
    assert_eq!(name, "ukey");
    assert_eq!(d.info().unwrap().serial, s.device.info().unwrap().serial);
    // A second one: now a label is needed, and the error names the choices.
    let other = reg.create_soft_device("other").unwrap();
    other.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
    other.create_app("second", &params).unwrap();
    let e = reg.find_app(None).err().unwrap();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("ukey") && msg.contains("second"), "{msg}");
    let (d, name) = reg.find_app(Some("second")).unwrap();
    assert_eq!(name, "second");
    assert_eq!(d.info().unwrap().label, "other");
    assert!(matches!(
        reg.find_app(Some("third")),
        Err(Error::NotFound(_))
    ));
    // The same name on two devices is ambiguous.
    other.create_app("ukey", &params).unwrap();
    assert!(matches!(
        reg.find_app(Some("ukey")),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(reg.apps().unwrap().len(), 3);
}
