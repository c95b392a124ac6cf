//! Device management, device authentication, applications and PINs through the SKF ABI,
//! error paths first: bad and stale handles, short buffers, over-long names, wrong PINs
//! until locked, unblocking, the device lock.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::ffi::c_void;
use std::ptr::null_mut;

use skf_common::*;
use skf_sys::*;

type H = *mut c_void;

fn connect() -> H {
    let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
    let connect = skf!(SKF_ConnectDev: fn(*const u8, *mut H));
    let mut buf = vec![0u8; 512];
    let mut len = 512u32;
    // SAFETY: the buffer holds `len` bytes.
    assert_eq!(unsafe { enum_dev(1, buf.as_mut_ptr(), &mut len) }, SAR_OK);
    let mut h: H = null_mut();
    // SAFETY: NUL-terminated name; valid output pointer.
    assert_eq!(unsafe { connect(buf.as_ptr(), &mut h) }, SAR_OK);
    h
}

fn dev_auth(h: H, key: &[u8; 16]) -> u32 {
    dev_auth_with(h, key, 8)
}

/// GenRandom(`n`), zero-pad to a block, SM4-ECB under `key`, DevAuth (GmSSL 3 uses 16,
/// skf-rs and vendor demos 8).
fn dev_auth_with(h: H, key: &[u8; 16], n: u32) -> u32 {
    let random = skf!(SKF_GenRandom: fn(H, *mut u8, u32));
    let auth = skf!(SKF_DevAuth: fn(H, *const u8, u32));
    let mut rnd = [0u8; 16];
    // SAFETY: the buffer holds 8 bytes.
    assert_eq!(unsafe { random(h, rnd.as_mut_ptr(), n) }, SAR_OK);
    let c = token_hal::crypto::sym::sm4_ecb_encrypt_block(key, &rnd).unwrap();
    // SAFETY: 16 bytes.
    unsafe { auth(h, c.as_ptr(), 16) }
}

fn cs(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

#[test]
fn device_auth_apps_pins_and_handles() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    run_child(&conf, "access_child");
}

#[test]
fn access_child() {
    if !is_child("access_child") {
        return;
    }
    let enum_dev = skf!(SKF_EnumDev: fn(i32, *mut u8, *mut u32));
    let connect_dev = skf!(SKF_ConnectDev: fn(*const u8, *mut H));
    let disconnect = skf!(SKF_DisConnectDev: fn(H));
    let state = skf!(SKF_GetDevState: fn(*const u8, *mut u32));
    let set_label = skf!(SKF_SetLabel: fn(H, *const u8));
    let info = skf!(SKF_GetDevInfo: fn(H, *mut DEVINFO));
    let transmit = skf!(SKF_Transmit: fn(H, *const u8, u32, *mut u8, *mut u32));
    let auth = skf!(SKF_DevAuth: fn(H, *const u8, u32));
    let change_auth = skf!(SKF_ChangeDevAuthKey: fn(H, *const u8, u32));
    let create_app =
        skf!(SKF_CreateApplication: fn(H, *const u8, *const u8, u32, *const u8, u32, u32, *mut H));
    let enum_app = skf!(SKF_EnumApplication: fn(H, *mut u8, *mut u32));
    let delete_app = skf!(SKF_DeleteApplication: fn(H, *const u8));
    let open_app = skf!(SKF_OpenApplication: fn(H, *const u8, *mut H));
    let close_app = skf!(SKF_CloseApplication: fn(H));
    let verify = skf!(SKF_VerifyPIN: fn(H, u32, *const u8, *mut u32));
    let change = skf!(SKF_ChangePIN: fn(H, u32, *const u8, *const u8, *mut u32));
    let pin_info = skf!(SKF_GetPINInfo: fn(H, u32, *mut u32, *mut u32, *mut i32));
    let unblock = skf!(SKF_UnblockPIN: fn(H, *const u8, *const u8, *mut u32));
    let clear = skf!(SKF_ClearSecureState: fn(H));
    let create_con = skf!(SKF_CreateContainer: fn(H, *const u8, *mut H));
    let lock = skf!(SKF_LockDev: fn(H, u32));
    let unlock = skf!(SKF_UnlockDev: fn(H));

    // SAFETY: for all calls below, every pointer passed is valid for what the prototype in
    // include/skf.h says, or deliberately null/stale to test the library's checks.
    unsafe {
        // --- enumeration and the size-query convention
        let mut len = 0u32;
        assert_eq!(enum_dev(1, null_mut(), &mut len), SAR_OK);
        let mut one = [0xAAu8; 1];
        let mut one_len = 1u32;
        assert_eq!(
            enum_dev(1, one.as_mut_ptr(), &mut one_len),
            SAR_BUFFER_TOO_SMALL
        );
        assert_eq!((one_len, one), (len, [0xAA]));
        assert_eq!(enum_dev(1, null_mut(), null_mut()), SAR_INVALIDPARAMERR);
        let mut names = vec![0u8; len as usize];
        assert_eq!(enum_dev(0, names.as_mut_ptr(), &mut len), SAR_OK);
        let name_end = names.iter().position(|&b| b == 0).unwrap();
        let dev_name = names[..=name_end].to_vec();

        // --- connect, state, label, info
        let mut h: H = null_mut();
        assert_eq!(
            connect_dev(cs("no such device").as_ptr(), &mut h),
            SAR_INVALIDPARAMERR
        );
        assert_eq!(
            connect_dev(cs(&"x".repeat(300)).as_ptr(), &mut h),
            SAR_NAMELENERR
        );
        assert_eq!(connect_dev(null_mut(), &mut h), SAR_INVALIDPARAMERR);
        assert_eq!(
            connect_dev(dev_name.as_ptr(), null_mut()),
            SAR_INVALIDPARAMERR
        );
        let mut st = 9u32;
        assert_eq!(state(dev_name.as_ptr(), &mut st), SAR_OK);
        assert_eq!(st, DEV_PRESENT_STATE);
        assert_eq!(state(cs("gone").as_ptr(), &mut st), SAR_OK);
        assert_eq!(st, DEV_ABSENT_STATE);
        let d = connect();
        assert_eq!(set_label(d, cs(&"L".repeat(32)).as_ptr()), SAR_NAMELENERR);
        assert_eq!(set_label(d, cs("tender-key").as_ptr()), SAR_OK);
        let mut di: DEVINFO = std::mem::zeroed();
        assert_eq!(info(d, &mut di), SAR_OK);
        assert_eq!(&di.Label[..11], b"tender-key\0");
        assert_eq!({ di.AlgAsymCap } & 0x0002_0F00, 0x0002_0F00);
        assert_eq!(info(d, null_mut()), SAR_INVALIDPARAMERR);
        let apdu = [0u8, 0x84, 0, 0, 8];
        let mut rlen = 64u32;
        let mut resp = [0u8; 64];
        assert_eq!(
            transmit(d, apdu.as_ptr(), 5, resp.as_mut_ptr(), &mut rlen),
            SAR_NOTSUPPORTYETERR
        );

        // --- bad handles
        let bogus = 0x7777_0003usize as H;
        assert_eq!(info(bogus, &mut di), SAR_INVALIDHANDLEERR);
        assert_eq!(info(null_mut(), &mut di), SAR_INVALIDHANDLEERR);
        assert_eq!(disconnect(bogus), SAR_INVALIDHANDLEERR);

        // --- device authentication
        let key = *b"1234567812345678";
        let random = skf!(SKF_GenRandom: fn(H, *mut u8, u32));
        assert_eq!(
            auth(d, [0u8; 16].as_ptr(), 16),
            SAR_FAIL,
            "no challenge yet"
        );
        let mut rnd = [0u8; 8];
        assert_eq!(random(d, rnd.as_mut_ptr(), 8), SAR_OK);
        assert_eq!(
            auth(d, [0u8; 16].as_ptr(), 16),
            SAR_FAIL,
            "wrong cryptogram"
        );
        assert_eq!(auth(d, [0u8; 7].as_ptr(), 7), SAR_INDATALENERR);
        // without device auth, applications cannot be created
        let mut a: H = null_mut();
        assert_ne!(
            create_app(
                d,
                cs("app2").as_ptr(),
                cs("12345678").as_ptr(),
                5,
                cs("123456").as_ptr(),
                3,
                0xFF,
                &mut a
            ),
            SAR_OK
        );
        // the 32-byte form (PKCS#5-padded block) is accepted too
        let mut rnd = [0u8; 16];
        assert_eq!(random(d, rnd.as_mut_ptr(), 8), SAR_OK);
        let mut c = token_hal::crypto::sym::sm4_ecb_encrypt_block(&key, &rnd).unwrap();
        c.extend_from_slice(&[0x10; 16]);
        assert_eq!(auth(d, c.as_ptr(), 32), SAR_OK);
        assert_eq!(
            create_app(
                d,
                cs(&"a".repeat(33)).as_ptr(),
                cs("12345678").as_ptr(),
                5,
                cs("123456").as_ptr(),
                3,
                0xFF,
                &mut a
            ),
            SAR_NAMELENERR
        );
        assert_eq!(
            create_app(
                d,
                cs("bids").as_ptr(),
                cs("12345678").as_ptr(),
                5,
                cs("123456").as_ptr(),
                3,
                0xFF,
                &mut a
            ),
            SAR_APPLICATION_EXISTS
        );
        assert_eq!(
            create_app(
                d,
                cs("app2").as_ptr(),
                cs("12345678").as_ptr(),
                5,
                cs("123456").as_ptr(),
                3,
                0xFF,
                &mut a
            ),
            SAR_OK
        );
        let mut alen = 0u32;
        assert_eq!(enum_app(d, null_mut(), &mut alen), SAR_OK);
        let mut apps = vec![0u8; alen as usize];
        assert_eq!(enum_app(d, apps.as_mut_ptr(), &mut alen), SAR_OK);
        assert_eq!(apps, b"app2\0bids\0\0");

        // --- PINs: wrong until locked, unblock, change, info, logout
        let mut retry = 0u32;
        let (mut max, mut left, mut def) = (0u32, 0u32, 0i32);
        assert_eq!(
            pin_info(a, USER_TYPE, &mut max, &mut left, &mut def),
            SAR_OK
        );
        assert_eq!((max, left), (3, 3));
        assert_eq!(
            pin_info(a, 7, &mut max, &mut left, &mut def),
            SAR_USER_TYPE_INVALID
        );
        assert_eq!(
            verify(a, USER_TYPE, cs("000000").as_ptr(), &mut retry),
            SAR_PIN_INCORRECT
        );
        assert_eq!(retry, 2);
        assert_eq!(
            verify(a, USER_TYPE, cs("000000").as_ptr(), &mut retry),
            SAR_PIN_INCORRECT
        );
        assert_eq!(retry, 1);
        assert_eq!(
            verify(a, USER_TYPE, cs("000000").as_ptr(), &mut retry),
            SAR_PIN_LOCKED
        );
        assert_eq!(retry, 0);
        assert_eq!(
            verify(a, USER_TYPE, cs("123456").as_ptr(), &mut retry),
            SAR_PIN_LOCKED
        );
        assert_eq!(retry, 0);
        assert_eq!(
            pin_info(a, USER_TYPE, &mut max, &mut left, &mut def),
            SAR_OK
        );
        assert_eq!(left, 0);
        assert_eq!(
            unblock(
                a,
                cs("99999999").as_ptr(),
                cs("654321").as_ptr(),
                &mut retry
            ),
            SAR_PIN_INCORRECT
        );
        assert_eq!(retry, 4);
        assert_eq!(
            unblock(
                a,
                cs("12345678").as_ptr(),
                cs("654321").as_ptr(),
                &mut retry
            ),
            SAR_OK
        );
        assert_eq!(
            verify(a, USER_TYPE, cs("654321").as_ptr(), &mut retry),
            SAR_OK
        );
        assert_eq!(
            pin_info(a, USER_TYPE, &mut max, &mut left, &mut def),
            SAR_OK
        );
        assert_eq!(left, 3);
        assert_eq!(
            change(
                a,
                USER_TYPE,
                cs("badpin").as_ptr(),
                cs("111111").as_ptr(),
                &mut retry
            ),
            SAR_PIN_INCORRECT
        );
        assert_eq!(
            change(
                a,
                USER_TYPE,
                cs("654321").as_ptr(),
                cs("111111").as_ptr(),
                &mut retry
            ),
            SAR_OK
        );
        assert_eq!(
            verify(a, USER_TYPE, cs("111111").as_ptr(), &mut retry),
            SAR_OK
        );
        assert_eq!(
            verify(a, USER_TYPE, cs(&"9".repeat(300)).as_ptr(), &mut retry),
            SAR_PIN_LEN_RANGE
        );
        let mut con: H = null_mut();
        assert_eq!(create_con(a, cs("c").as_ptr(), &mut con), SAR_OK);
        assert_eq!(clear(a), SAR_OK);
        assert_eq!(
            create_con(a, cs("c2").as_ptr(), &mut con),
            SAR_USER_NOT_LOGGED_IN
        );

        // --- application handles: stale after close, closed with their device
        assert_eq!(close_app(a), SAR_OK);
        assert_eq!(close_app(a), SAR_INVALIDHANDLEERR);
        assert_eq!(
            verify(a, USER_TYPE, cs("111111").as_ptr(), &mut retry),
            SAR_INVALIDHANDLEERR
        );
        let mut a2: H = null_mut();
        assert_eq!(
            open_app(d, cs("nope").as_ptr(), &mut a2),
            SAR_APPLICATION_NOT_EXISTS
        );
        assert_eq!(open_app(d, cs("app2").as_ptr(), &mut a2), SAR_OK);
        assert_eq!(
            info(a2, &mut di),
            SAR_INVALIDHANDLEERR,
            "an application is not a device"
        );

        // --- the device lock: re-entrant for its holder, a timeout for others
        let other = connect();
        assert_eq!(lock(d, 0xFFFF_FFFF), SAR_OK);
        assert_eq!(lock(d, 0), SAR_OK);
        let t0 = std::time::Instant::now();
        assert_eq!(lock(other, 150), SAR_TIMEOUTERR);
        assert!(t0.elapsed() >= std::time::Duration::from_millis(140));
        assert_eq!(unlock(d), SAR_OK);
        assert_eq!(lock(other, 50), SAR_TIMEOUTERR);
        assert_eq!(unlock(d), SAR_OK);
        assert_eq!(unlock(d), SAR_FAIL, "not held");
        assert_eq!(lock(other, 50), SAR_OK);
        assert_eq!(disconnect(other), SAR_OK, "disconnect releases the lock");
        assert_eq!(lock(d, 50), SAR_OK);
        assert_eq!(unlock(d), SAR_OK);

        // --- change the device key; delete the application with it
        assert_eq!(change_auth(d, b"short".as_ptr(), 5), SAR_INVALIDPARAMERR);
        assert_eq!(change_auth(d, b"8765432187654321".as_ptr(), 16), SAR_OK);
        let d2 = connect();
        assert_eq!(dev_auth(d2, &key), SAR_FAIL);
        assert_eq!(dev_auth(d2, b"8765432187654321"), SAR_OK);
        assert_eq!(dev_auth_with(d2, b"8765432187654321", 16), SAR_OK);
        assert_eq!(delete_app(d2, cs("app2").as_ptr()), SAR_OK);
        assert_eq!(
            delete_app(d2, cs("app2").as_ptr()),
            SAR_APPLICATION_NOT_EXISTS
        );

        // closing the device closes its application handles
        assert_eq!(disconnect(d), SAR_OK);
        assert_eq!(close_app(a2), SAR_INVALIDHANDLEERR);
        assert_eq!(disconnect(d), SAR_INVALIDHANDLEERR);
        assert_eq!(disconnect(d2), SAR_OK);
    }
    println!("access ok");
}
