//! The PKCS#11 3.0 message-based functions of libukey_pkcs11.so, called through its 3.0
//! function list as a C client would: AES-GCM and SM4-GCM messages whole and in parts
//! (known answers, generated nonces, tag mismatch, short buffers, NULL pointers, the
//! state after errors), message-based signing and MACing, and the key confirmation of
//! the SM2 key exchange through `C_DeriveKey`.
//!
//! All tests share one loaded, initialised module; each makes its own token.

#![allow(clippy::unwrap_used)]

use std::ffi::c_void;
use std::ptr::{null, null_mut};
use std::sync::{Mutex, OnceLock};

use cryptoki_sys::*;

const SO_PIN: &[u8] = b"12345678";
const USER_PIN: &[u8] = b"123456";
const CKK_SM4: CK_KEY_TYPE = 0x8000_0002;
const CKM_SM4_GCM: CK_MECHANISM_TYPE = 0x8055_4B03;
const CKM_SM2_KEY_PAIR_GEN: CK_MECHANISM_TYPE = 0x8000_8001;
const CKM_SM3_SM2: CK_MECHANISM_TYPE = 0x8000_8100;
const CKM_SM2_KEY_EXCHANGE: CK_MECHANISM_TYPE = 0x8055_4B05;
const SM2_PARAMS: &[u8] = b"\x06\x08\x2a\x81\x1c\xcf\x55\x01\x82\x2d";
const P256_PARAMS: &[u8] = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";

type Fns = &'static CK_FUNCTION_LIST_3_0;

macro_rules! call {
    ($name:ident $(, $a:expr)*) => {
        // SAFETY: every argument is a valid pointer or value for this call, as built by
        // the test right here (or deliberately NULL where the test says so).
        unsafe { (f().$name.unwrap())($($a),*) }
    };
}

fn f() -> Fns {
    static ENV: OnceLock<(Fns, tempfile::TempDir)> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let conf = ukey_tests::write_soft_conf(dir.path(), "pin_retries = 3\n");
        // SAFETY: set before the module is loaded and before any other thread reads it.
        unsafe { std::env::set_var("UKEY_CONF", &conf) };
        // SAFETY: loading the module under test; it is never unloaded.
        let lib = unsafe { libloading::Library::new(ukey_tests::pkcs11_lib()) }.unwrap();
        // SAFETY: the symbol has the C_GetInterface prototype of PKCS#11 3.0.
        let get: libloading::Symbol<
            '_,
            unsafe extern "C" fn(
                *mut u8,
                *mut CK_VERSION,
                *mut *mut CK_INTERFACE,
                CK_FLAGS,
            ) -> CK_RV,
        > = unsafe { lib.get(b"C_GetInterface") }.unwrap();
        let mut iface: *mut CK_INTERFACE = null_mut();
        // SAFETY: NULL name and version ask for the default (3.0) interface.
        let rv = unsafe { get(null_mut(), null_mut(), &mut iface, 0) };
        assert_eq!(rv, CKR_OK);
        // SAFETY: the module returned a valid interface with a 3.0 function list, which
        // lives as long as the (never unloaded) library.
        let fl: Fns = unsafe { &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0) };
        std::mem::forget(lib);
        // SAFETY: NULL init args.
        assert_eq!(unsafe { (fl.C_Initialize.unwrap())(null_mut()) }, CKR_OK);
        (fl, dir)
    })
    .0
}

/// A fresh token with the user PIN set, and a logged-in RW session on it.
fn user_session(label: &str) -> CK_SESSION_HANDLE {
    static MAKE: Mutex<()> = Mutex::new(());
    let slot = {
        let _g = MAKE.lock().unwrap_or_else(|p| p.into_inner());
        let mut n: CK_ULONG = 0;
        assert_eq!(call!(C_GetSlotList, CK_FALSE, null_mut(), &mut n), CKR_OK);
        let mut slots = vec![0; n as usize];
        assert_eq!(
            call!(C_GetSlotList, CK_FALSE, slots.as_mut_ptr(), &mut n),
            CKR_OK
        );
        let free = *slots
            .iter()
            .find(|&&s| {
                // SAFETY: CK_TOKEN_INFO is plain data; zeroes are a valid value.
                let mut ti: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
                call!(C_GetTokenInfo, s, &mut ti) == CKR_OK && ti.flags & CKF_TOKEN_INITIALIZED == 0
            })
            .unwrap();
        let mut lab = [b' '; 32];
        lab[..label.len()].copy_from_slice(label.as_bytes());
        assert_eq!(
            call!(
                C_InitToken,
                free,
                SO_PIN.as_ptr() as *mut u8,
                SO_PIN.len() as CK_ULONG,
                lab.as_mut_ptr()
            ),
            CKR_OK
        );
        free
    };
    let mut h = 0;
    let fl = CKF_SERIAL_SESSION | CKF_RW_SESSION;
    assert_eq!(
        call!(C_OpenSession, slot, fl, null_mut(), None, &mut h),
        CKR_OK
    );
    let pin = |p: &[u8]| (p.as_ptr() as *mut u8, p.len() as CK_ULONG);
    let (so, so_len) = pin(SO_PIN);
    assert_eq!(call!(C_Login, h, CKU_SO, so, so_len), CKR_OK);
    let (u, u_len) = pin(USER_PIN);
    assert_eq!(call!(C_InitPIN, h, u, u_len), CKR_OK);
    assert_eq!(call!(C_Logout, h), CKR_OK);
    assert_eq!(call!(C_Login, h, CKU_USER, u, u_len), CKR_OK);
    h
}

/// Attribute values, kept alive with the `CK_ATTRIBUTE`s pointing at them.
struct Tmpl {
    _vals: Vec<Vec<u8>>,
    attrs: Vec<CK_ATTRIBUTE>,
}

fn tmpl(items: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>) -> Tmpl {
    let mut vals = Vec::new();
    let mut attrs = Vec::new();
    for (t, v) in items {
        attrs.push(CK_ATTRIBUTE {
            type_: t,
            pValue: v.as_ptr() as *mut c_void,
            ulValueLen: v.len() as CK_ULONG,
        });
        vals.push(v);
    }
    Tmpl { _vals: vals, attrs }
}

fn ul(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn yes() -> Vec<u8> {
    vec![CK_TRUE]
}

fn no() -> Vec<u8> {
    vec![CK_FALSE]
}

fn secret_key(h: CK_SESSION_HANDLE, kt: CK_KEY_TYPE, value: &[u8]) -> CK_OBJECT_HANDLE {
    let mut t = tmpl(vec![
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(kt)),
        (CKA_VALUE, value.to_vec()),
        (CKA_ENCRYPT, yes()),
        (CKA_DECRYPT, yes()),
        (CKA_SIGN, yes()),
        (CKA_VERIFY, yes()),
    ]);
    let mut k = 0;
    assert_eq!(
        call!(
            C_CreateObject,
            h,
            t.attrs.as_mut_ptr(),
            t.attrs.len() as CK_ULONG,
            &mut k
        ),
        CKR_OK
    );
    k
}

fn mech(ty: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: ty,
        pParameter: null_mut(),
        ulParameterLen: 0,
    }
}

fn msg_init(h: CK_SESSION_HANDLE, ty: CK_MECHANISM_TYPE, k: CK_OBJECT_HANDLE, enc: bool) {
    let mut m = mech(ty);
    let rv = if enc {
        call!(C_MessageEncryptInit, h, &mut m, k)
    } else {
        call!(C_MessageDecryptInit, h, &mut m, k)
    };
    assert_eq!(rv, CKR_OK);
}

/// A `CK_GCM_MESSAGE_PARAMS` over caller-owned nonce and tag buffers.
fn gcm_params(
    iv: &mut [u8],
    fixed: CK_ULONG,
    generator: CK_ULONG,
    tag: &mut [u8],
) -> CK_GCM_MESSAGE_PARAMS {
    CK_GCM_MESSAGE_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: iv.len() as CK_ULONG,
        ulIvFixedBits: fixed,
        ivGenerator: generator,
        pTag: tag.as_mut_ptr(),
        ulTagBits: (tag.len() * 8) as CK_ULONG,
    }
}

const GP: CK_ULONG = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG;

fn pp(g: &mut CK_GCM_MESSAGE_PARAMS) -> *mut c_void {
    g as *mut CK_GCM_MESSAGE_PARAMS as *mut c_void
}

/// One whole message: (ciphertext, tag).
fn encrypt_message(
    h: CK_SESSION_HANDLE,
    iv: &mut [u8],
    tag_len: usize,
    aad: &[u8],
    pt: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let mut tag = vec![0u8; tag_len];
    let mut g = gcm_params(iv, 0, CKG_NO_GENERATE, &mut tag);
    let mut n: CK_ULONG = 0;
    let args = |g: &mut CK_GCM_MESSAGE_PARAMS| {
        (
            pp(g),
            aad.as_ptr() as *mut u8,
            aad.len() as CK_ULONG,
            pt.as_ptr() as *mut u8,
            pt.len() as CK_ULONG,
        )
    };
    let (p, a, al, d, dl) = args(&mut g);
    assert_eq!(
        call!(C_EncryptMessage, h, p, GP, a, al, d, dl, null_mut(), &mut n),
        CKR_OK
    );
    assert_eq!(n as usize, pt.len());
    let mut ct = vec![0u8; n as usize];
    assert_eq!(
        call!(
            C_EncryptMessage,
            h,
            p,
            GP,
            a,
            al,
            d,
            dl,
            ct.as_mut_ptr(),
            &mut n
        ),
        CKR_OK
    );
    ct.truncate(n as usize);
    (ct, tag)
}

/// One whole message decrypted: the plaintext or the error.
fn decrypt_message(
    h: CK_SESSION_HANDLE,
    iv: &mut [u8],
    tag: &[u8],
    aad: &[u8],
    ct: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let mut tag = tag.to_vec();
    let mut g = gcm_params(iv, 0, CKG_NO_GENERATE, &mut tag);
    let mut out = vec![0xEEu8; ct.len() + 4];
    let mut n = out.len() as CK_ULONG;
    let rv = call!(
        C_DecryptMessage,
        h,
        pp(&mut g),
        GP,
        aad.as_ptr() as *mut u8,
        aad.len() as CK_ULONG,
        ct.as_ptr() as *mut u8,
        ct.len() as CK_ULONG,
        out.as_mut_ptr(),
        &mut n
    );
    if rv != CKR_OK {
        assert!(out.iter().all(|&b| b == 0xEE), "output written on failure");
        return Err(rv);
    }
    out.truncate(n as usize);
    Ok(out)
}

/// One part through `C_EncryptMessageNext` / `C_DecryptMessageNext` with the two-call
/// protocol: a size query, then the call with a buffer of exactly that size.
fn next(
    h: CK_SESSION_HANDLE,
    enc: bool,
    g: Option<&mut CK_GCM_MESSAGE_PARAMS>,
    part: &[u8],
    end: bool,
) -> Result<Vec<u8>, CK_RV> {
    let (p, plen) = match g {
        Some(g) => (pp(g), GP),
        None => (null_mut(), 0),
    };
    let flags = if end { CKF_END_OF_MESSAGE } else { 0 };
    let run = |out: *mut u8, n: &mut CK_ULONG| {
        let (d, dl) = (part.as_ptr() as *mut u8, part.len() as CK_ULONG);
        if enc {
            call!(C_EncryptMessageNext, h, p, plen, d, dl, out, n, flags)
        } else {
            call!(C_DecryptMessageNext, h, p, plen, d, dl, out, n, flags)
        }
    };
    let mut n: CK_ULONG = 0;
    let rv = run(null_mut(), &mut n);
    if rv != CKR_OK {
        return Err(rv);
    }
    let mut out = vec![0u8; n as usize];
    let rv = run(out.as_mut_ptr(), &mut n);
    if rv != CKR_OK {
        return Err(rv);
    }
    out.truncate(n as usize);
    Ok(out)
}

fn begin(h: CK_SESSION_HANDLE, enc: bool, g: &mut CK_GCM_MESSAGE_PARAMS, aad: &[u8]) -> CK_RV {
    let (a, al) = (aad.as_ptr() as *mut u8, aad.len() as CK_ULONG);
    if enc {
        call!(C_EncryptMessageBegin, h, pp(g), GP, a, al)
    } else {
        call!(C_DecryptMessageBegin, h, pp(g), GP, a, al)
    }
}

/// Encrypts `pt` in the given parts: (ciphertext, tag).
fn encrypt_parts(
    h: CK_SESSION_HANDLE,
    iv: &mut [u8],
    tag_len: usize,
    aad: &[u8],
    parts: &[&[u8]],
) -> (Vec<u8>, Vec<u8>) {
    let mut tag = vec![0u8; tag_len];
    let mut g = gcm_params(iv, 0, CKG_NO_GENERATE, &mut tag);
    assert_eq!(begin(h, true, &mut g, aad), CKR_OK);
    let mut ct = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let out = next(h, true, Some(&mut g), part, last).unwrap();
        assert_eq!(out.len(), part.len(), "encryption streams each part");
        ct.extend_from_slice(&out);
    }
    (ct, tag)
}

/// Decrypts in parts: the plaintext (released only by the last part) or the error.
fn decrypt_parts(
    h: CK_SESSION_HANDLE,
    iv: &mut [u8],
    tag: &[u8],
    aad: &[u8],
    parts: &[&[u8]],
) -> Result<Vec<u8>, CK_RV> {
    let mut tag = tag.to_vec();
    let mut g = gcm_params(iv, 0, CKG_NO_GENERATE, &mut tag);
    let rv = begin(h, false, &mut g, aad);
    if rv != CKR_OK {
        return Err(rv);
    }
    let mut pt = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let out = next(h, false, Some(&mut g), part, last)?;
        if !last {
            assert!(out.is_empty(), "no plaintext before the tag is checked");
        }
        pt.extend_from_slice(&out);
    }
    Ok(pt)
}

fn split(d: &[u8]) -> Vec<&[u8]> {
    let a = d.len() / 5;
    let b = d.len() / 2;
    vec![&d[..a], &d[a..b], &d[b..b], &d[b..]]
}

#[test]
fn gcm_in_parts_matches_whole_messages_for_aes_and_sm4() {
    let h = user_session("msg-gcm-parts");
    for (kt, m, key) in [
        (CKK_AES, CKM_AES_GCM, vec![0x11u8; 32]),
        (CKK_AES, CKM_AES_GCM, vec![0x12u8; 16]),
        (CKK_SM4, CKM_SM4_GCM, vec![0x13u8; 16]),
    ] {
        let k = secret_key(h, kt, &key);
        msg_init(h, m, k, true);
        msg_init(h, m, k, false);
        let pt: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let aad = b"header";
        for (iv_len, tag_len) in [(12usize, 16usize), (16, 12), (7, 4)] {
            let mut iv: Vec<u8> = (0..iv_len as u8).collect();
            // Multi-part encryption → single-part decryption.
            let (ct, tag) = encrypt_parts(h, &mut iv, tag_len, aad, &split(&pt));
            let (ct1, tag1) = encrypt_message(h, &mut iv, tag_len, aad, &pt);
            assert_eq!((&ct, &tag), (&ct1, &tag1));
            assert_eq!(decrypt_message(h, &mut iv, &tag, aad, &ct).unwrap(), pt);
            // Single-part encryption → multi-part decryption.
            assert_eq!(
                decrypt_parts(h, &mut iv, &tag1, aad, &split(&ct1)).unwrap(),
                pt
            );
            // Also one-byte parts and an empty message.
            let parts: Vec<&[u8]> = ct.chunks(1).take(40).collect();
            let head = decrypt_parts(h, &mut iv, &tag, aad, &parts);
            assert_eq!(
                head,
                Err(CKR_ENCRYPTED_DATA_INVALID),
                "a truncated message fails"
            );
            let (ce, te) = encrypt_parts(h, &mut iv, tag_len, aad, &[&[]]);
            assert!(ce.is_empty());
            assert_eq!(decrypt_message(h, &mut iv, &te, aad, &[]).unwrap(), b"");
            assert_eq!(decrypt_parts(h, &mut iv, &te, aad, &[&[]]).unwrap(), b"");
        }
        assert_eq!(call!(C_MessageEncryptFinal, h), CKR_OK);
        assert_eq!(call!(C_MessageDecryptFinal, h), CKR_OK);
        assert_eq!(
            call!(C_MessageEncryptFinal, h),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
}

#[test]
fn gcm_known_answers() {
    let h = user_session("msg-gcm-kat");
    // AES-128-GCM, test case 4 of the GCM specification (McGrew and Viega), the
    // SP 800-38D validation vectors' source.
    let aes = (
        CKK_AES,
        CKM_AES_GCM,
        "feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    );
    // SM4-GCM, RFC 8998 appendix A.1.
    let sm4 = (
        CKK_SM4,
        CKM_SM4_GCM,
        "0123456789abcdeffedcba9876543210",
        "00001234567800000000abcd",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd\
         eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa",
        "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735\
         d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d",
        "83de3541e4c2b58177e065a9bf7b62ec",
    );
    for (kt, m, k, iv, aad, pt, ct, tag) in [aes, sm4] {
        let x = |s: &str| hex::decode(s.replace(' ', "")).unwrap();
        let (k, mut iv, aad, pt, ct, tag) = (x(k), x(iv), x(aad), x(pt), x(ct), x(tag));
        let key = secret_key(h, kt, &k);
        msg_init(h, m, key, true);
        msg_init(h, m, key, false);
        let parts: Vec<&[u8]> = vec![&pt[..13], &pt[13..17], &pt[17..]];
        assert_eq!(
            encrypt_parts(h, &mut iv, 16, &aad, &parts),
            (ct.clone(), tag.clone())
        );
        assert_eq!(
            encrypt_message(h, &mut iv, 16, &aad, &pt),
            (ct.clone(), tag.clone())
        );
        // A shortened tag is the leading bytes of the full one.
        assert_eq!(
            encrypt_message(h, &mut iv, 8, &aad, &pt).1,
            tag[..8].to_vec()
        );
        let cparts: Vec<&[u8]> = vec![&ct[..1], &ct[1..40], &ct[40..]];
        assert_eq!(decrypt_parts(h, &mut iv, &tag, &aad, &cparts).unwrap(), pt);
        assert_eq!(decrypt_message(h, &mut iv, &tag, &aad, &ct).unwrap(), pt);
        assert_eq!(call!(C_MessageEncryptFinal, h), CKR_OK);
        assert_eq!(call!(C_MessageDecryptFinal, h), CKR_OK);
        // The same vectors single-part (C_Encrypt writes straight into the caller's
        // buffer), with the full tag and a shortened one.
        for tag_len in [16usize, 12] {
            let mut gp = CK_GCM_PARAMS {
                pIv: iv.as_mut_ptr(),
                ulIvLen: iv.len() as CK_ULONG,
                ulIvBits: (iv.len() * 8) as CK_ULONG,
                pAAD: aad.as_ptr() as *mut u8,
                ulAADLen: aad.len() as CK_ULONG,
                ulTagBits: (tag_len * 8) as CK_ULONG,
            };
            let mut mm = CK_MECHANISM {
                mechanism: m,
                pParameter: &mut gp as *mut CK_GCM_PARAMS as *mut c_void,
                ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG,
            };
            let mut want = ct.clone();
            want.extend_from_slice(&tag[..tag_len]);
            assert_eq!(call!(C_EncryptInit, h, &mut mm, key), CKR_OK);
            let mut n: CK_ULONG = 0;
            let mut p = pt.clone();
            let pl = p.len() as CK_ULONG;
            assert_eq!(
                call!(C_Encrypt, h, p.as_mut_ptr(), pl, null_mut(), &mut n),
                CKR_OK
            );
            assert_eq!(n as usize, want.len());
            let mut out = vec![0u8; want.len()];
            let mut short = n - 1;
            assert_eq!(
                call!(
                    C_Encrypt,
                    h,
                    p.as_mut_ptr(),
                    pl,
                    out.as_mut_ptr(),
                    &mut short
                ),
                CKR_BUFFER_TOO_SMALL
            );
            assert_eq!(out, vec![0u8; want.len()], "nothing written");
            assert_eq!(
                call!(C_Encrypt, h, p.as_mut_ptr(), pl, out.as_mut_ptr(), &mut n),
                CKR_OK
            );
            assert_eq!(out, want, "single-part GCM, {tag_len}-byte tag");
            assert_eq!(call!(C_DecryptInit, h, &mut mm, key), CKR_OK);
            let mut back = vec![0u8; want.len()];
            let mut bn = back.len() as CK_ULONG;
            let wl = want.len() as CK_ULONG;
            assert_eq!(
                call!(
                    C_Decrypt,
                    h,
                    want.as_mut_ptr(),
                    wl,
                    back.as_mut_ptr(),
                    &mut bn
                ),
                CKR_OK
            );
            assert_eq!(&back[..bn as usize], &pt[..]);
        }
    }
}

#[test]
fn gcm_tag_mismatch_releases_nothing_and_ends_the_message() {
    let h = user_session("msg-gcm-tag");
    let k = secret_key(h, CKK_AES, &[7u8; 16]);
    msg_init(h, CKM_AES_GCM, k, true);
    msg_init(h, CKM_AES_GCM, k, false);
    let mut iv = [9u8; 12];
    let pt = [0x5Au8; 100];
    let (ct, tag) = encrypt_message(h, &mut iv, 16, b"aad", &pt);
    let mut bad_tag = tag.clone();
    bad_tag[15] ^= 1;
    let mut bad_ct = ct.clone();
    bad_ct[50] ^= 0x80;
    for (c, t, a) in [
        (&ct, &bad_tag, &b"aad"[..]),
        (&bad_ct, &tag, &b"aad"[..]),
        (&ct, &tag, &b"aaD"[..]),
    ] {
        assert_eq!(
            decrypt_message(h, &mut iv, t, a, c),
            Err(CKR_ENCRYPTED_DATA_INVALID)
        );
        // In parts: nothing before the end, then the failure.
        let mut tg = t.clone();
        let mut g = gcm_params(&mut iv, 0, CKG_NO_GENERATE, &mut tg);
        assert_eq!(begin(h, false, &mut g, a), CKR_OK);
        assert_eq!(next(h, false, Some(&mut g), &c[..60], false).unwrap(), b"");
        let mut out = [0xEEu8; 100];
        let mut n = out.len() as CK_ULONG;
        assert_eq!(
            call!(
                C_DecryptMessageNext,
                h,
                pp(&mut g),
                GP,
                c[60..].as_ptr() as *mut u8,
                40,
                out.as_mut_ptr(),
                &mut n,
                CKF_END_OF_MESSAGE
            ),
            CKR_ENCRYPTED_DATA_INVALID
        );
        assert!(
            out.iter().all(|&b| b == 0xEE),
            "no plaintext on a tag mismatch"
        );
        assert_eq!(n, 100, "the length is left as given");
        // The message is over; the context is not: a new message decrypts.
        assert_eq!(
            next(h, false, Some(&mut g), &c[..1], true),
            Err(CKR_OPERATION_NOT_INITIALIZED)
        );
        assert_eq!(decrypt_message(h, &mut iv, &tag, b"aad", &ct).unwrap(), pt);
    }
    // The last part must name the tag length given at Begin.
    let mut tag16 = tag.clone();
    let mut g = gcm_params(&mut iv, 0, CKG_NO_GENERATE, &mut tag16);
    assert_eq!(begin(h, false, &mut g, b"aad"), CKR_OK);
    let mut g12 = g;
    g12.ulTagBits = 96;
    assert_eq!(
        next(h, false, Some(&mut g12), &ct, true),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        next(h, false, Some(&mut g), &ct, true),
        Err(CKR_OPERATION_NOT_INITIALIZED)
    );
    // A shorter tag is the leading bytes of the full one (GCM truncation).
    let mut tag12 = tag[..12].to_vec();
    let mut g = gcm_params(&mut iv, 0, CKG_NO_GENERATE, &mut tag12);
    assert_eq!(begin(h, false, &mut g, b"aad"), CKR_OK);
    assert_eq!(next(h, false, Some(&mut g), &ct, true).unwrap(), pt);
}

#[test]
fn gcm_lengths_pointers_and_state() {
    let h = user_session("msg-gcm-args");
    let k = secret_key(h, CKK_SM4, &[3u8; 16]);
    let mut iv = [1u8; 12];
    let mut tag = [0xCCu8; 16];
    let mut g = gcm_params(&mut iv, 0, CKG_NO_GENERATE, &mut tag);
    // Not initialised.
    assert_eq!(begin(h, true, &mut g, b""), CKR_OPERATION_NOT_INITIALIZED);
    msg_init(h, CKM_SM4_GCM, k, true);
    msg_init(h, CKM_SM4_GCM, k, false);
    let mut m = mech(CKM_SM4_GCM);
    assert_eq!(
        call!(C_MessageEncryptInit, h, &mut m, k),
        CKR_OPERATION_ACTIVE
    );
    assert_eq!(
        next(h, true, Some(&mut g), b"x", false),
        Err(CKR_OPERATION_NOT_INITIALIZED)
    );
    // NULL parameter, wrong parameter size, NULL data with a length.
    assert_eq!(
        call!(C_EncryptMessageBegin, h, null_mut(), GP, null_mut(), 0),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(C_EncryptMessageBegin, h, pp(&mut g), GP - 1, null_mut(), 0),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        call!(C_EncryptMessageBegin, h, pp(&mut g), GP, null_mut(), 5),
        CKR_ARGUMENTS_BAD
    );
    let mut no_iv = g;
    no_iv.pIv = null_mut();
    assert_eq!(
        call!(C_EncryptMessageBegin, h, pp(&mut no_iv), GP, null_mut(), 0),
        CKR_ARGUMENTS_BAD
    );
    let mut bad_bits = g;
    bad_bits.ulTagBits = 130;
    assert_eq!(
        begin(h, true, &mut bad_bits, b""),
        CKR_MECHANISM_PARAM_INVALID
    );

    // A message in parts: a second Begin and a whole message are refused meanwhile.
    let pt = [0x42u8; 40];
    assert_eq!(begin(h, true, &mut g, b"A"), CKR_OK);
    assert_eq!(begin(h, true, &mut g, b"A"), CKR_OPERATION_ACTIVE);
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(
            C_EncryptMessage,
            h,
            pp(&mut g),
            GP,
            null_mut(),
            0,
            pt.as_ptr() as *mut u8,
            40,
            pt.as_ptr() as *mut u8,
            &mut n
        ),
        CKR_OPERATION_ACTIVE
    );
    // Short buffer on a middle part: the size, nothing processed, the message goes on.
    let mut out = [0u8; 64];
    let mut n: CK_ULONG = 10;
    let d = pt.as_ptr() as *mut u8;
    assert_eq!(
        call!(
            C_EncryptMessageNext,
            h,
            pp(&mut g),
            GP,
            d,
            20,
            out.as_mut_ptr(),
            &mut n,
            0
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(n, 20);
    assert_eq!(out, [0u8; 64]);
    let mut ct = next(h, true, Some(&mut g), &pt[..20], false).unwrap();
    // A middle part needs no parameter.
    ct.extend(next(h, true, None, &pt[20..30], false).unwrap());
    // The last part: short buffer, then NULL pTag, then done.
    let mut n: CK_ULONG = 3;
    assert_eq!(
        call!(
            C_EncryptMessageNext,
            h,
            pp(&mut g),
            GP,
            d,
            10,
            out.as_mut_ptr(),
            &mut n,
            CKF_END_OF_MESSAGE
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(n, 10);
    assert_eq!(tag, [0xCC; 16], "no tag before the message is done");
    ct.extend(next(h, true, Some(&mut g), &pt[30..], true).unwrap());
    assert_ne!(tag, [0xCC; 16]);
    let tag1 = tag;
    let mut iv2 = [1u8; 12];
    assert_eq!(decrypt_message(h, &mut iv2, &tag1, b"A", &ct).unwrap(), pt);

    // An error other than a short buffer ends the message: NULL length pointer, NULL
    // pTag on the last part, unknown flags.
    for case in 0..3 {
        let mut tag = [0u8; 16];
        let mut g = gcm_params(&mut iv, 0, CKG_NO_GENERATE, &mut tag);
        assert_eq!(begin(h, true, &mut g, b""), CKR_OK);
        let mut n: CK_ULONG = 64;
        let rv = match case {
            0 => call!(
                C_EncryptMessageNext,
                h,
                pp(&mut g),
                GP,
                d,
                4,
                out.as_mut_ptr(),
                null_mut(),
                0
            ),
            1 => {
                let mut gn = g;
                gn.pTag = null_mut();
                call!(
                    C_EncryptMessageNext,
                    h,
                    pp(&mut gn),
                    GP,
                    d,
                    4,
                    out.as_mut_ptr(),
                    &mut n,
                    CKF_END_OF_MESSAGE
                )
            }
            _ => call!(
                C_EncryptMessageNext,
                h,
                pp(&mut g),
                GP,
                d,
                4,
                out.as_mut_ptr(),
                &mut n,
                0x10
            ),
        };
        assert_eq!(rv, CKR_ARGUMENTS_BAD, "case {case}");
        assert_eq!(
            next(h, true, Some(&mut g), b"x", true),
            Err(CKR_OPERATION_NOT_INITIALIZED),
            "case {case}"
        );
    }

    // Decryption: the last part's size is the whole message; short → that size.
    let mut tag2 = tag1;
    let mut iv3 = [1u8; 12];
    let mut g = gcm_params(&mut iv3, 0, CKG_NO_GENERATE, &mut tag2);
    assert_eq!(begin(h, false, &mut g, b"A"), CKR_OK);
    assert_eq!(next(h, false, Some(&mut g), &ct[..25], false).unwrap(), b"");
    let mut n: CK_ULONG = 15;
    let c = ct[25..].as_ptr() as *mut u8;
    assert_eq!(
        call!(
            C_DecryptMessageNext,
            h,
            pp(&mut g),
            GP,
            c,
            15,
            out.as_mut_ptr(),
            &mut n,
            CKF_END_OF_MESSAGE
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(n, 40);
    assert_eq!(out, [0u8; 64]);
    // NULL pTag on the last decryption part.
    let mut gn = g;
    gn.pTag = null_mut();
    let mut n: CK_ULONG = 64;
    assert_eq!(
        call!(
            C_DecryptMessageNext,
            h,
            pp(&mut gn),
            GP,
            c,
            15,
            out.as_mut_ptr(),
            &mut n,
            CKF_END_OF_MESSAGE
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(out, [0u8; 64]);
    // Whole-message decryption: NULL length pointer, short buffer.
    let mut n: CK_ULONG = 39;
    let mut g = gcm_params(&mut iv3, 0, CKG_NO_GENERATE, &mut tag2);
    let cp = ct.as_ptr() as *mut u8;
    let aad = b"A".as_ptr() as *mut u8;
    assert_eq!(
        call!(
            C_DecryptMessage,
            h,
            pp(&mut g),
            GP,
            aad,
            1,
            cp,
            40,
            out.as_mut_ptr(),
            &mut n
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(n, 40);
    assert_eq!(
        call!(
            C_DecryptMessage,
            h,
            pp(&mut g),
            GP,
            aad,
            1,
            cp,
            40,
            out.as_mut_ptr(),
            null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(out, [0u8; 64]);
    let mut n: CK_ULONG = 64;
    assert_eq!(
        call!(
            C_DecryptMessage,
            h,
            pp(&mut g),
            GP,
            aad,
            1,
            cp,
            40,
            out.as_mut_ptr(),
            &mut n
        ),
        CKR_OK
    );
    assert_eq!(&out[..n as usize], &pt);
    // C_MessageEncryptFinal ends a message in progress too.
    let mut g = gcm_params(&mut iv, 0, CKG_NO_GENERATE, &mut tag);
    assert_eq!(begin(h, true, &mut g, b""), CKR_OK);
    assert_eq!(call!(C_MessageEncryptFinal, h), CKR_OK);
    assert_eq!(
        next(h, true, Some(&mut g), b"x", true),
        Err(CKR_OPERATION_NOT_INITIALIZED)
    );
    assert_eq!(call!(C_SessionCancel, h, CKF_MESSAGE_DECRYPT), CKR_OK);
    assert_eq!(
        call!(C_MessageDecryptFinal, h),
        CKR_OPERATION_NOT_INITIALIZED
    );
}

#[test]
fn gcm_generated_nonces() {
    let h = user_session("msg-gcm-iv");
    let k = secret_key(h, CKK_AES, &[5u8; 32]);
    msg_init(h, CKM_AES_GCM, k, true);
    msg_init(h, CKM_AES_GCM, k, false);
    let pt = b"nonce generation";
    // Counter: 32 fixed bits, then the message number from 0.
    let mut seen = Vec::new();
    for i in 0..3u8 {
        let mut iv = [
            0xF0, 0xF1, 0xF2, 0xF3, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA,
        ];
        let mut tag = [0u8; 16];
        let mut g = gcm_params(&mut iv, 32, CKG_GENERATE_COUNTER, &mut tag);
        let ct = if i == 1 {
            // The multi-part path draws from the same counter.
            assert_eq!(begin(h, true, &mut g, b""), CKR_OK);
            next(h, true, Some(&mut g), pt, true).unwrap()
        } else {
            let mut out = [0u8; 16];
            let mut n: CK_ULONG = 16;
            let p = pt.as_ptr() as *mut u8;
            assert_eq!(
                call!(
                    C_EncryptMessage,
                    h,
                    pp(&mut g),
                    GP,
                    null_mut(),
                    0,
                    p,
                    16,
                    out.as_mut_ptr(),
                    &mut n
                ),
                CKR_OK
            );
            out.to_vec()
        };
        assert_eq!(iv, [0xF0, 0xF1, 0xF2, 0xF3, 0, 0, 0, 0, 0, 0, 0, i]);
        assert_eq!(decrypt_message(h, &mut iv, &tag, b"", &ct).unwrap(), pt);
        seen.push(iv);
    }
    // Random: 20 fixed bits (not a whole number of bytes) kept, the rest fresh.
    for generator in [CKG_GENERATE_RANDOM, CKG_GENERATE] {
        let mut ivs = Vec::new();
        for _ in 0..2 {
            let mut iv = [0xABu8; 12];
            let mut tag = [0u8; 16];
            let mut g = gcm_params(&mut iv, 20, generator, &mut tag);
            assert_eq!(begin(h, true, &mut g, b"x"), CKR_OK);
            let ct = next(h, true, Some(&mut g), pt, true).unwrap();
            assert_eq!(&iv[..2], &[0xAB, 0xAB]);
            assert_eq!(iv[2] & 0xF0, 0xA0);
            assert_eq!(decrypt_parts(h, &mut iv, &tag, b"x", &[&ct]).unwrap(), pt);
            ivs.push(iv);
        }
        assert_ne!(ivs[0], ivs[1]);
    }
    // Nothing left to generate, an unknown generator, a small counter running out.
    let mut tag = [0u8; 16];
    for (fixed, gen_fn) in [
        (96, CKG_GENERATE_COUNTER),
        (0, CKG_GENERATE_COUNTER_XOR),
        (0, 77),
    ] {
        let mut iv = [0u8; 12];
        let mut g = gcm_params(&mut iv, fixed, gen_fn, &mut tag);
        assert_eq!(begin(h, true, &mut g, b""), CKR_MECHANISM_PARAM_INVALID);
    }
    assert_eq!(call!(C_MessageEncryptFinal, h), CKR_OK);
    msg_init(h, CKM_AES_GCM, k, true);
    for i in 0..5 {
        let mut iv = [0xFFu8; 2];
        let mut g = gcm_params(&mut iv, 14, CKG_GENERATE_COUNTER, &mut tag);
        let rv = begin(h, true, &mut g, b"");
        if i < 4 {
            assert_eq!(rv, CKR_OK);
            assert_eq!(iv, [0xFF, 0xFC | i as u8]);
            assert_eq!(next(h, true, Some(&mut g), b"", true).unwrap(), b"");
        } else {
            assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID, "2 free bits: 4 nonces");
        }
    }
    // Decryption ignores the generator: pIv is the nonce.
    let mut iv = seen[2];
    let mut tag2 = [0u8; 16];
    let mut g = gcm_params(&mut iv, 32, CKG_GENERATE_COUNTER, &mut tag2);
    assert_eq!(begin(h, false, &mut g, b""), CKR_OK);
    assert_eq!(iv, seen[2]);
}

fn keypair(
    h: CK_SESSION_HANDLE,
    ty: CK_MECHANISM_TYPE,
    public: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
    private: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let mut m = mech(ty);
    let mut pt = tmpl(public);
    let mut st = tmpl(private);
    let (mut p, mut s) = (0, 0);
    assert_eq!(
        call!(
            C_GenerateKeyPair,
            h,
            &mut m,
            pt.attrs.as_mut_ptr(),
            pt.attrs.len() as CK_ULONG,
            st.attrs.as_mut_ptr(),
            st.attrs.len() as CK_ULONG,
            &mut p,
            &mut s
        ),
        CKR_OK
    );
    (p, s)
}

fn sign_classic(
    h: CK_SESSION_HANDLE,
    m: &mut CK_MECHANISM,
    k: CK_OBJECT_HANDLE,
    data: &[u8],
) -> Vec<u8> {
    assert_eq!(call!(C_SignInit, h, m, k), CKR_OK);
    let mut sig = vec![0u8; 600];
    let mut n = sig.len() as CK_ULONG;
    let d = data.as_ptr() as *mut u8;
    assert_eq!(
        call!(
            C_Sign,
            h,
            d,
            data.len() as CK_ULONG,
            sig.as_mut_ptr(),
            &mut n
        ),
        CKR_OK
    );
    sig.truncate(n as usize);
    sig
}

#[test]
fn message_sign_and_verify() {
    let h = user_session("msg-sign");
    let hmac_key = {
        let mut t = tmpl(vec![
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
            (CKA_VALUE, vec![0x0B; 20]),
            (CKA_SIGN, yes()),
            (CKA_VERIFY, yes()),
        ]);
        let mut k = 0;
        assert_eq!(
            call!(
                C_CreateObject,
                h,
                t.attrs.as_mut_ptr(),
                t.attrs.len() as CK_ULONG,
                &mut k
            ),
            CKR_OK
        );
        k
    };
    let cmac_key = secret_key(h, CKK_AES, &[0x2B; 16]);
    let (ec_pub, ec_priv) = keypair(
        h,
        CKM_EC_KEY_PAIR_GEN,
        vec![(CKA_EC_PARAMS, P256_PARAMS.to_vec()), (CKA_VERIFY, yes())],
        vec![(CKA_SIGN, yes())],
    );
    let (sm2_pub, sm2_priv) = keypair(
        h,
        CKM_SM2_KEY_PAIR_GEN,
        vec![(CKA_EC_PARAMS, SM2_PARAMS.to_vec()), (CKA_VERIFY, yes())],
        vec![(CKA_SIGN, yes())],
    );
    let (rsa_pub, rsa_priv) = keypair(
        h,
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        vec![
            (CKA_MODULUS_BITS, ul(2048)),
            (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
            (CKA_VERIFY, yes()),
        ],
        vec![(CKA_SIGN, yes())],
    );
    // (mechanism, sign key, verify key, deterministic)
    let cases = [
        (CKM_SHA256_HMAC, hmac_key, hmac_key, true),
        (CKM_AES_CMAC, cmac_key, cmac_key, true),
        (CKM_ECDSA_SHA256, ec_priv, ec_pub, false),
        (CKM_SM3_SM2, sm2_priv, sm2_pub, false),
        (CKM_SHA256_RSA_PKCS, rsa_priv, rsa_pub, true),
    ];
    let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    for (ty, sk, vk, deterministic) in cases {
        let mut m = mech(ty);
        // The mechanism info says so.
        let mut info = CK_MECHANISM_INFO {
            ulMinKeySize: 0,
            ulMaxKeySize: 0,
            flags: 0,
        };
        let mut si = CK_SESSION_INFO {
            slotID: 0,
            state: 0,
            flags: 0,
            ulDeviceError: 0,
        };
        assert_eq!(call!(C_GetSessionInfo, h, &mut si), CKR_OK);
        assert_eq!(call!(C_GetMechanismInfo, si.slotID, ty, &mut info), CKR_OK);
        assert_ne!(info.flags & CKF_MESSAGE_SIGN, 0, "{ty:#x}");
        assert_ne!(info.flags & CKF_MESSAGE_VERIFY, 0, "{ty:#x}");

        let classic = sign_classic(h, &mut m, sk, &data);
        assert_eq!(call!(C_MessageSignInit, h, &mut m, sk), CKR_OK);
        assert_eq!(
            call!(C_MessageSignInit, h, &mut m, sk),
            CKR_OPERATION_ACTIVE
        );
        let d = data.as_ptr() as *mut u8;
        let dl = data.len() as CK_ULONG;
        // Whole messages, two-call protocol.
        let mut n: CK_ULONG = 0;
        assert_eq!(
            call!(C_SignMessage, h, null_mut(), 0, d, dl, null_mut(), &mut n),
            CKR_OK
        );
        let mut sig = vec![0u8; n as usize];
        let mut short = n - 1;
        assert_eq!(
            call!(
                C_SignMessage,
                h,
                null_mut(),
                0,
                d,
                dl,
                sig.as_mut_ptr(),
                &mut short
            ),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(short, n);
        assert_eq!(
            call!(
                C_SignMessage,
                h,
                null_mut(),
                0,
                d,
                dl,
                sig.as_mut_ptr(),
                &mut n
            ),
            CKR_OK
        );
        sig.truncate(n as usize);
        if deterministic {
            assert_eq!(sig, classic, "{ty:#x}");
        }
        assert_eq!(
            call!(
                C_SignMessage,
                h,
                null_mut(),
                0,
                d,
                dl,
                sig.as_mut_ptr(),
                null_mut()
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            call!(
                C_SignMessage,
                h,
                null_mut(),
                4,
                d,
                dl,
                sig.as_mut_ptr(),
                &mut n
            ),
            CKR_ARGUMENTS_BAD
        );
        let mut junk = [0u8; 4];
        assert_eq!(
            call!(
                C_SignMessage,
                h,
                junk.as_mut_ptr() as *mut c_void,
                4,
                d,
                dl,
                sig.as_mut_ptr(),
                &mut n
            ),
            CKR_MECHANISM_PARAM_INVALID
        );
        // In parts: NULL pulSignatureLen while more parts follow.
        assert_eq!(call!(C_SignMessageBegin, h, null_mut(), 0), CKR_OK);
        assert_eq!(
            call!(C_SignMessageBegin, h, null_mut(), 0),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            call!(
                C_SignMessage,
                h,
                null_mut(),
                0,
                d,
                dl,
                sig.as_mut_ptr(),
                &mut n
            ),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            call!(
                C_SignMessageNext,
                h,
                null_mut(),
                0,
                d,
                100,
                null_mut(),
                null_mut()
            ),
            CKR_OK
        );
        // SAFETY: `d` points into `data`, 300 bytes long.
        let d100 = unsafe { d.add(100) };
        let mut n2: CK_ULONG = 0;
        assert_eq!(
            call!(
                C_SignMessageNext,
                h,
                null_mut(),
                0,
                d100,
                200,
                null_mut(),
                &mut n2
            ),
            CKR_OK
        );
        let mut sig2 = vec![0u8; n2 as usize];
        assert_eq!(
            call!(
                C_SignMessageNext,
                h,
                null_mut(),
                0,
                d100,
                200,
                sig2.as_mut_ptr(),
                &mut n2
            ),
            CKR_OK
        );
        sig2.truncate(n2 as usize);
        if deterministic {
            assert_eq!(sig2, classic);
        }
        // An error ends the message in parts, not the context.
        assert_eq!(call!(C_SignMessageBegin, h, null_mut(), 0), CKR_OK);
        assert_eq!(
            call!(
                C_SignMessageNext,
                h,
                null_mut(),
                0,
                null_mut(),
                5,
                null_mut(),
                null_mut()
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            call!(
                C_SignMessageNext,
                h,
                null_mut(),
                0,
                d,
                dl,
                null_mut(),
                null_mut()
            ),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(call!(C_MessageSignFinal, h), CKR_OK);
        assert_eq!(call!(C_MessageSignFinal, h), CKR_OPERATION_NOT_INITIALIZED);

        // Verification of all three signatures, whole and in parts.
        assert_eq!(call!(C_MessageVerifyInit, h, &mut m, vk), CKR_OK);
        for s in [&classic, &sig, &sig2] {
            let (sp, sl) = (s.as_ptr() as *mut u8, s.len() as CK_ULONG);
            assert_eq!(
                call!(C_VerifyMessage, h, null_mut(), 0, d, dl, sp, sl),
                CKR_OK
            );
            assert_eq!(call!(C_VerifyMessageBegin, h, null_mut(), 0), CKR_OK);
            assert_eq!(
                call!(C_VerifyMessageNext, h, null_mut(), 0, d, 10, null_mut(), 0),
                CKR_OK
            );
            // SAFETY: within `data`.
            let d10 = unsafe { d.add(10) };
            assert_eq!(
                call!(C_VerifyMessageNext, h, null_mut(), 0, d10, 290, sp, sl),
                CKR_OK
            );
        }
        let mut bad = sig.clone();
        bad[3] ^= 1;
        let (bp, bl) = (bad.as_mut_ptr(), bad.len() as CK_ULONG);
        assert_eq!(
            call!(C_VerifyMessage, h, null_mut(), 0, d, dl, bp, bl),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(
            call!(
                C_VerifyMessage,
                h,
                null_mut(),
                0,
                d,
                dl - 1,
                sig.as_mut_ptr(),
                bl
            ),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(call!(C_VerifyMessageBegin, h, null_mut(), 0), CKR_OK);
        assert_eq!(
            call!(C_VerifyMessageNext, h, null_mut(), 0, d, dl, bp, bl),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(
            call!(C_VerifyMessageNext, h, null_mut(), 0, d, dl, bp, bl),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            call!(C_VerifyMessageNext, h, null_mut(), 0, d, dl, null_mut(), 3),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(call!(C_MessageVerifyFinal, h), CKR_OK);
    }
    // A key that cannot sign, and a mechanism that is not a signature.
    let mut m = mech(CKM_ECDSA_SHA256);
    assert_eq!(
        call!(C_MessageSignInit, h, &mut m, ec_pub),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    // Not a signature mechanism: the same answer as C_SignInit.
    let mut m = mech(CKM_AES_GCM);
    assert_eq!(
        call!(C_MessageSignInit, h, &mut m, cmac_key),
        call!(C_SignInit, h, &mut m, cmac_key)
    );
    let mut m = mech(0x8123_4567);
    assert_eq!(
        call!(C_MessageSignInit, h, &mut m, cmac_key),
        CKR_MECHANISM_INVALID
    );
    assert_eq!(
        call!(
            C_SignMessage,
            h,
            null_mut(),
            0,
            null_mut(),
            0,
            null_mut(),
            &mut 0
        ),
        CKR_OPERATION_NOT_INITIALIZED
    );
}

/// `CK_UKEY_SM2_EXCHANGE_CONFIRM_PARAMS` (ukey_pkcs11.h), its `base` flattened.
#[repr(C)]
struct Sm2ExchangeParams {
    is_initiator: CK_BBOOL,
    p_own_id: *const u8,
    ul_own_id_len: CK_ULONG,
    h_own_ephemeral: CK_OBJECT_HANDLE,
    p_peer_public: *const u8,
    ul_peer_public_len: CK_ULONG,
    p_peer_id: *const u8,
    ul_peer_id_len: CK_ULONG,
    p_peer_ephemeral: *const u8,
    ul_peer_ephemeral_len: CK_ULONG,
    p_confirmation: *mut u8,
    ul_confirmation_len: CK_ULONG,
    p_expected_peer_confirmation: *mut u8,
    ul_expected_peer_confirmation_len: CK_ULONG,
    p_peer_confirmation: *const u8,
    ul_peer_confirmation_len: CK_ULONG,
}

fn ec_point(h: CK_SESSION_HANDLE, k: CK_OBJECT_HANDLE) -> Vec<u8> {
    let mut buf = vec![0u8; 100];
    let mut a = [CK_ATTRIBUTE {
        type_: CKA_EC_POINT,
        pValue: buf.as_mut_ptr() as *mut c_void,
        ulValueLen: 100,
    }];
    assert_eq!(call!(C_GetAttributeValue, h, k, a.as_mut_ptr(), 1), CKR_OK);
    buf.truncate(a[0].ulValueLen as usize);
    buf[2..].to_vec()
}

fn key_value(h: CK_SESSION_HANDLE, k: CK_OBJECT_HANDLE) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let mut a = [CK_ATTRIBUTE {
        type_: CKA_VALUE,
        pValue: buf.as_mut_ptr() as *mut c_void,
        ulValueLen: 64,
    }];
    assert_eq!(call!(C_GetAttributeValue, h, k, a.as_mut_ptr(), 1), CKR_OK);
    buf.truncate(a[0].ulValueLen as usize);
    buf
}

fn secret_count(h: CK_SESSION_HANDLE) -> usize {
    let mut t = tmpl(vec![(CKA_CLASS, ul(CKO_SECRET_KEY))]);
    assert_eq!(call!(C_FindObjectsInit, h, t.attrs.as_mut_ptr(), 1), CKR_OK);
    let mut hs = [0; 64];
    let mut n: CK_ULONG = 0;
    assert_eq!(call!(C_FindObjects, h, hs.as_mut_ptr(), 64, &mut n), CKR_OK);
    assert_eq!(call!(C_FindObjectsFinal, h), CKR_OK);
    n as usize
}

/// `C_DeriveKey` with the exchange parameters: the new key's handle or the error.
fn exchange(
    h: CK_SESSION_HANDLE,
    base: CK_OBJECT_HANDLE,
    p: &mut Sm2ExchangeParams,
    size: usize,
) -> Result<CK_OBJECT_HANDLE, CK_RV> {
    let mut m = CK_MECHANISM {
        mechanism: CKM_SM2_KEY_EXCHANGE,
        pParameter: p as *mut Sm2ExchangeParams as *mut c_void,
        ulParameterLen: size as CK_ULONG,
    };
    let mut t = tmpl(vec![
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_VALUE_LEN, ul(16)),
        (CKA_SENSITIVE, no()),
        (CKA_EXTRACTABLE, yes()),
    ]);
    let mut k = 0;
    match call!(
        C_DeriveKey,
        h,
        &mut m,
        base,
        t.attrs.as_mut_ptr(),
        t.attrs.len() as CK_ULONG,
        &mut k
    ) {
        CKR_OK => Ok(k),
        rv => Err(rv),
    }
}

#[test]
fn sm2_exchange_confirmations_both_ways() {
    use token_hal::crypto::sm2::{DEFAULT_ID, ExchangeRole, Sm2KeyExchange};
    use token_hal::crypto::{KeyAlg, PrivateKey, PublicKey};
    let h = user_session("msg-sm2x");
    let keygen = || {
        keypair(
            h,
            CKM_SM2_KEY_PAIR_GEN,
            vec![(CKA_EC_PARAMS, SM2_PARAMS.to_vec())],
            vec![(CKA_DERIVE, yes())],
        )
    };
    let (own_pub, own_priv) = keygen();
    let own_point = ec_point(h, own_pub);
    let own_public = PublicKey::from_ec_point(KeyAlg::Sm2, &own_point).unwrap();
    let peer = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let peer_point = peer.public_key().unwrap().ec_point().unwrap();
    let full = std::mem::size_of::<Sm2ExchangeParams>();
    let params = |initiator: bool, eph: CK_OBJECT_HANDLE, peer_eph: &[u8]| Sm2ExchangeParams {
        is_initiator: initiator as CK_BBOOL,
        p_own_id: null(),
        ul_own_id_len: 0,
        h_own_ephemeral: eph,
        p_peer_public: peer_point.as_ptr(),
        ul_peer_public_len: peer_point.len() as CK_ULONG,
        p_peer_id: null(),
        ul_peer_id_len: 0,
        p_peer_ephemeral: peer_eph.as_ptr(),
        ul_peer_ephemeral_len: peer_eph.len() as CK_ULONG,
        p_confirmation: null_mut(),
        ul_confirmation_len: 0,
        p_expected_peer_confirmation: null_mut(),
        ul_expected_peer_confirmation_len: 0,
        p_peer_confirmation: null(),
        ul_peer_confirmation_len: 0,
    };

    // 1. The token initiates (A); token-hal responds (B) with RB and SB.
    let (ra_pub, ra_priv) = keygen();
    let ra = ec_point(h, ra_pub);
    let bx = Sm2KeyExchange::new(ExchangeRole::Responder, &peer, DEFAULT_ID).unwrap();
    let rb = bx.ephemeral_point();
    let b_out = bx.finish(&own_public, DEFAULT_ID, &ra, 16).unwrap();
    let sb = b_out.confirmation;
    // A wrong SB: no key.
    let before = secret_count(h);
    let mut wrong = sb;
    wrong[0] ^= 1;
    let mut sa = [0u8; 32];
    let mut s1 = [0u8; 32];
    let mut p = params(true, ra_priv, &rb);
    p.p_confirmation = sa.as_mut_ptr();
    p.ul_confirmation_len = 32;
    p.p_expected_peer_confirmation = s1.as_mut_ptr();
    p.ul_expected_peer_confirmation_len = 32;
    p.p_peer_confirmation = wrong.as_ptr();
    p.ul_peer_confirmation_len = 32;
    assert_eq!(
        exchange(h, own_priv, &mut p, full),
        Err(CKR_SIGNATURE_INVALID)
    );
    assert_eq!(
        secret_count(h),
        before,
        "no key after a failed confirmation"
    );
    assert_eq!((sa, s1), ([0; 32], [0; 32]), "nothing written on failure");
    // A confirmation of the wrong length, an output buffer too short.
    p.ul_peer_confirmation_len = 31;
    assert_eq!(
        exchange(h, own_priv, &mut p, full),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    p.ul_peer_confirmation_len = 32;
    p.ul_confirmation_len = 16;
    assert_eq!(
        exchange(h, own_priv, &mut p, full),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    p.ul_confirmation_len = 32;
    p.p_peer_confirmation = null();
    assert_eq!(exchange(h, own_priv, &mut p, full), Err(CKR_ARGUMENTS_BAD));
    // The right SB: the key, SA for B, and S1 = SB.
    p.p_peer_confirmation = sb.as_ptr();
    let k = exchange(h, own_priv, &mut p, full).unwrap();
    assert_eq!(key_value(h, k), b_out.key.to_vec());
    assert_eq!(s1, sb);
    b_out.verify_peer_confirmation(&sa).unwrap();
    assert_eq!(sa, b_out.expected_peer_confirmation());
    // The structure without the confirmation fields still works, and gives none.
    let mut short = params(true, ra_priv, &rb);
    let k = exchange(
        h,
        own_priv,
        &mut short,
        full - 6 * std::mem::size_of::<CK_ULONG>(),
    )
    .unwrap();
    assert_eq!(key_value(h, k), b_out.key.to_vec());

    // 2. token-hal initiates (A) with RA; the token responds (B).
    let (rb_pub, rb_priv) = keygen();
    let rb = ec_point(h, rb_pub);
    let ax = Sm2KeyExchange::new(ExchangeRole::Initiator, &peer, DEFAULT_ID).unwrap();
    let ra = ax.ephemeral_point();
    let mut sb = [0u8; 32];
    let mut s2 = [0u8; 32];
    let mut p = params(false, rb_priv, &ra);
    p.p_confirmation = sb.as_mut_ptr();
    p.ul_confirmation_len = 32;
    p.p_expected_peer_confirmation = s2.as_mut_ptr();
    p.ul_expected_peer_confirmation_len = 40;
    let kb = exchange(h, own_priv, &mut p, full).unwrap();
    // A checks SB and answers SA; B's S2 must equal it.
    let a_out = ax.finish(&own_public, DEFAULT_ID, &rb, 16).unwrap();
    a_out.verify_peer_confirmation(&sb).unwrap();
    let sa = a_out.confirmation;
    assert_eq!(s2, sa);
    assert_eq!(key_value(h, kb), a_out.key.to_vec());
    // B may also let the token check SA: the same derivation with SA given.
    let mut p = params(false, rb_priv, &ra);
    p.p_peer_confirmation = sa.as_ptr();
    p.ul_peer_confirmation_len = 32;
    let kb2 = exchange(h, own_priv, &mut p, full).unwrap();
    assert_eq!(key_value(h, kb2), a_out.key.to_vec());
    let mut bad_sa = sa;
    bad_sa[31] ^= 0x40;
    p.p_peer_confirmation = bad_sa.as_ptr();
    let before = secret_count(h);
    assert_eq!(
        exchange(h, own_priv, &mut p, full),
        Err(CKR_SIGNATURE_INVALID)
    );
    assert_eq!(secret_count(h), before);
    // SB sent by the responder is not SA: giving the token its own value fails too.
    p.p_peer_confirmation = sb.as_ptr();
    assert_eq!(
        exchange(h, own_priv, &mut p, full),
        Err(CKR_SIGNATURE_INVALID)
    );
}
