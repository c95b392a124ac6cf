//! Files and containers through the SKF ABI: rights enforced, files that do not grow,
//! short buffers, over-long names, missing objects.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::ffi::c_void;
use std::ptr::null_mut;

use skf_common::*;
use skf_sys::*;

type H = *mut c_void;

fn cs(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

#[test]
fn files_and_containers() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    run_child(&conf, "files_child");
}

#[test]
fn files_child() {
    if !is_child("files_child") {
        return;
    }
    let create = skf!(SKF_CreateFile: fn(H, *const u8, u32, u32, u32));
    let delete = skf!(SKF_DeleteFile: fn(H, *const u8));
    let list = skf!(SKF_EnumFiles: fn(H, *mut u8, *mut u32));
    let finfo = skf!(SKF_GetFileInfo: fn(H, *const u8, *mut FILEATTRIBUTE));
    let read = skf!(SKF_ReadFile: fn(H, *const u8, u32, u32, *mut u8, *mut u32));
    let write = skf!(SKF_WriteFile: fn(H, *const u8, u32, *const u8, u32));
    let clear = skf!(SKF_ClearSecureState: fn(H));
    let verify = skf!(SKF_VerifyPIN: fn(H, u32, *const u8, *mut u32));
    let create_con = skf!(SKF_CreateContainer: fn(H, *const u8, *mut H));
    let open_con = skf!(SKF_OpenContainer: fn(H, *const u8, *mut H));
    let close_con = skf!(SKF_CloseContainer: fn(H));
    let delete_con = skf!(SKF_DeleteContainer: fn(H, *const u8));
    let enum_con = skf!(SKF_EnumContainer: fn(H, *mut u8, *mut u32));
    let con_type = skf!(SKF_GetContainerType: fn(H, *mut u32));
    let export_cert = skf!(SKF_ExportCertificate: fn(H, i32, *mut u8, *mut u32));
    let export_pub = skf!(SKF_ExportPublicKey: fn(H, i32, *mut u8, *mut u32));
    let import_cert = skf!(SKF_ImportCertificate: fn(H, i32, *const u8, u32));
    let s = Session::open("bids");
    let a = s.app;
    // SAFETY: for all calls below, pointers valid for what include/skf.h says, or
    // deliberately null/stale to test the library's checks.
    unsafe {
        // --- files
        assert_eq!(
            create(a, cs(&"f".repeat(33)).as_ptr(), 16, 0xFF, 0x10),
            SAR_NAMELENERR
        );
        assert_eq!(
            create(
                a,
                cs("pub").as_ptr(),
                16,
                SECURE_ANYONE_ACCOUNT,
                SECURE_USER_ACCOUNT
            ),
            SAR_OK
        );
        assert_eq!(
            create(a, cs("pub").as_ptr(), 16, 0xFF, 0x10),
            SAR_FILE_ALREADY_EXIST
        );
        assert_eq!(
            create(
                a,
                cs("secret").as_ptr(),
                8,
                SECURE_USER_ACCOUNT,
                SECURE_NEVER_ACCOUNT
            ),
            SAR_OK
        );
        assert_eq!(write(a, cs("pub").as_ptr(), 4, b"abcd".as_ptr(), 4), SAR_OK);
        assert_ne!(
            write(a, cs("pub").as_ptr(), 14, b"abcd".as_ptr(), 4),
            SAR_OK,
            "past the end"
        );
        assert_ne!(
            write(a, cs("secret").as_ptr(), 0, b"x".as_ptr(), 1),
            SAR_OK,
            "never writable"
        );
        assert_eq!(
            write(a, cs("none").as_ptr(), 0, b"x".as_ptr(), 1),
            SAR_FILE_NOT_EXIST
        );
        let mut fa: FILEATTRIBUTE = std::mem::zeroed();
        assert_eq!(finfo(a, cs("pub").as_ptr(), &mut fa), SAR_OK);
        assert_eq!(
            (&fa.FileName[..4], { fa.FileSize }, { fa.ReadRights }, {
                fa.WriteRights
            }),
            (&b"pub\0"[..], 16, 0xFF, 0x10)
        );
        assert_eq!(finfo(a, cs("none").as_ptr(), &mut fa), SAR_FILE_NOT_EXIST);
        let mut buf = [0xAAu8; 16];
        let mut len = 4u32;
        assert_eq!(
            read(a, cs("pub").as_ptr(), 0, 16, buf.as_mut_ptr(), &mut len),
            SAR_BUFFER_TOO_SMALL
        );
        assert_eq!((len, buf[0]), (16, 0xAA));
        assert_eq!(
            read(a, cs("pub").as_ptr(), 0, 16, buf.as_mut_ptr(), &mut len),
            SAR_OK
        );
        assert_eq!(&buf[..8], b"\0\0\0\0abcd");
        assert_eq!(
            read(a, cs("pub").as_ptr(), 17, 1, buf.as_mut_ptr(), &mut len),
            SAR_INVALIDPARAMERR
        );
        let mut flen = 0u32;
        assert_eq!(list(a, null_mut(), &mut flen), SAR_OK);
        let mut names = vec![0u8; flen as usize];
        assert_eq!(list(a, names.as_mut_ptr(), &mut flen), SAR_OK);
        assert_eq!(names, b"pub\0secret\0\0");
        // rights: logged out, the user-readable file cannot be read, the public one can
        assert_eq!(clear(a), SAR_OK);
        let mut len = 16u32;
        assert_eq!(
            read(a, cs("secret").as_ptr(), 0, 8, buf.as_mut_ptr(), &mut len),
            SAR_USER_NOT_LOGGED_IN
        );
        assert_eq!(
            read(a, cs("pub").as_ptr(), 0, 16, buf.as_mut_ptr(), &mut len),
            SAR_OK
        );
        assert_eq!(
            write(a, cs("pub").as_ptr(), 0, b"z".as_ptr(), 1),
            SAR_USER_NOT_LOGGED_IN
        );
        assert_eq!(delete(a, cs("pub").as_ptr()), SAR_USER_NOT_LOGGED_IN);
        let mut retry = 0u32;
        assert_eq!(
            verify(a, USER_TYPE, cs("123456").as_ptr(), &mut retry),
            SAR_OK
        );
        assert_eq!(delete(a, cs("pub").as_ptr()), SAR_OK);
        assert_eq!(delete(a, cs("pub").as_ptr()), SAR_FILE_NOT_EXIST);

        // --- containers
        let mut c: H = null_mut();
        assert_eq!(
            create_con(a, cs(&"c".repeat(65)).as_ptr(), &mut c),
            SAR_NAMELENERR
        );
        assert_eq!(create_con(a, cs(&"c".repeat(64)).as_ptr(), &mut c), SAR_OK);
        assert_eq!(close_con(c), SAR_OK);
        assert_eq!(close_con(c), SAR_INVALIDHANDLEERR);
        assert_eq!(create_con(a, cs("bidder").as_ptr(), &mut c), SAR_OK);
        assert_eq!(
            create_con(a, cs("bidder").as_ptr(), &mut c),
            SAR_FAIL,
            "exists"
        );
        let mut t = 9u32;
        assert_eq!(con_type(c, &mut t), SAR_OK);
        assert_eq!(t, CONTAINER_TYPE_EMPTY);
        let mut clen = 0u32;
        assert_eq!(
            export_cert(c, 1, null_mut(), &mut clen),
            SAR_CERTNOTFOUNTERR
        );
        assert_eq!(export_pub(c, 1, null_mut(), &mut clen), SAR_KEYNOTFOUNTERR);
        let blob = Session::gen_sm2(c, SGD_SM2_1);
        assert_eq!(import_cert(c, 1, b"junk".as_ptr(), 4), SAR_INDATAERR);
        assert_eq!(import_cert(c, 1, null_mut(), 0), SAR_INVALIDPARAMERR);
        assert_eq!(con_type(c, &mut t), SAR_OK);
        assert_eq!(t, CONTAINER_TYPE_ECC);
        let mut plen = 0u32;
        assert_eq!(export_pub(c, 1, null_mut(), &mut plen), SAR_OK);
        assert_eq!(plen, 132);
        let mut short = [0u8; 100];
        let mut slen = 100u32;
        assert_eq!(
            export_pub(c, 1, short.as_mut_ptr(), &mut slen),
            SAR_BUFFER_TOO_SMALL
        );
        assert_eq!(slen, 132);
        assert_eq!(short, [0u8; 100]);
        assert_eq!(Session::public_key(c, true), blob);
        let mut c2: H = null_mut();
        assert_eq!(open_con(a, cs("nobody").as_ptr(), &mut c2), SAR_FAIL);
        assert_eq!(open_con(a, cs("bidder").as_ptr(), &mut c2), SAR_OK);
        assert_eq!(con_type(c2, &mut t), SAR_OK);
        let mut elen = 0u32;
        assert_eq!(enum_con(a, null_mut(), &mut elen), SAR_OK);
        let mut names = vec![0u8; elen as usize];
        assert_eq!(enum_con(a, names.as_mut_ptr(), &mut elen), SAR_OK);
        let listed: Vec<&[u8]> = names.split(|&b| b == 0).filter(|n| !n.is_empty()).collect();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&&b"bidder"[..]));
        assert_eq!(delete_con(a, cs("bidder").as_ptr()), SAR_OK);
        assert_eq!(delete_con(a, cs("bidder").as_ptr()), SAR_FAIL);
        assert_ne!(con_type(c2, &mut t), SAR_OK, "the container is gone");
    }
    println!("files ok");
}
