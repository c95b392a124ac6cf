//! The C ABI of libukey_pkcs11.so called directly: interfaces, argument checks (NULL →
//! `CKR_ARGUMENTS_BAD`), the two-call length protocol, the init string, and
//! `C_WaitForSlotEvent` (no event, a token made by another thread, `C_Finalize` waking a
//! blocked waiter). One test, because it initialises and finalises the module.

#![allow(clippy::unwrap_used)]

use std::ffi::{CString, c_void};
use std::ptr::{null, null_mut};

use cryptoki_sys::*;

struct Lib {
    _lib: libloading::Library,
    f: &'static CK_FUNCTION_LIST_3_0,
}

fn load() -> Lib {
    // SAFETY: loading the module under test; it runs no code that needs more than the
    // process environment at load time.
    let lib = unsafe { libloading::Library::new(ukey_tests::pkcs11_lib()) }.unwrap();
    // SAFETY: the symbol has the C_GetInterface prototype of PKCS#11 3.0.
    let get: libloading::Symbol<
        '_,
        unsafe extern "C" fn(*mut u8, *mut CK_VERSION, *mut *mut CK_INTERFACE, CK_FLAGS) -> CK_RV,
    > = unsafe { lib.get(b"C_GetInterface") }.unwrap();
    let mut iface: *mut CK_INTERFACE = null_mut();
    assert_eq!(
        // SAFETY: NULL name and version ask for the default interface.
        unsafe { get(null_mut(), null_mut(), &mut iface, 0) },
        CKR_OK
    );
    // SAFETY: the module returned a valid interface with a 3.0 function list.
    let f = unsafe { &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0) };
    assert_eq!((f.version.major, f.version.minor), (3, 0));
    // The 2.40 list is offered too, and NULL out-pointers are refused.
    let name = CString::new("PKCS 11").unwrap();
    let mut v = CK_VERSION {
        major: 2,
        minor: 40,
    };
    let mut i2: *mut CK_INTERFACE = null_mut();
    assert_eq!(
        // SAFETY: valid name, version and out-pointer.
        unsafe { get(name.as_ptr() as *mut u8, &mut v, &mut i2, 0) },
        CKR_OK
    );
    // SAFETY: as above.
    let f2 = unsafe { &*((*i2).pFunctionList as *const CK_FUNCTION_LIST) };
    assert_eq!((f2.version.major, f2.version.minor), (2, 40));
    assert_eq!(
        // SAFETY: a NULL out-pointer must be refused, not written.
        unsafe { get(null_mut(), null_mut(), null_mut(), 0) },
        CKR_ARGUMENTS_BAD
    );
    let f: &'static CK_FUNCTION_LIST_3_0 = Box::leak(Box::new(*f));
    Lib { _lib: lib, f }
}

macro_rules! call {
    ($f:expr, $name:ident $(, $a:expr)*) => {
        // SAFETY: every argument is a valid pointer or value for this call, as built by
        // the test right here.
        unsafe { ($f.$name.unwrap())($($a),*) }
    };
}

fn init_args(reserved: *mut c_void) -> CK_C_INITIALIZE_ARGS {
    CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: reserved,
    }
}

extern "C" fn create_mutex(_: *mut *mut c_void) -> CK_RV {
    CKR_OK
}

#[test]
fn abi_arguments_lengths_and_slot_events() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ukey_tests::write_soft_conf(dir.path(), "");
    let lib = load();
    let f = lib.f;

    // Before C_Initialize.
    let mut info = CK_INFO::default();
    assert_eq!(call!(f, C_GetInfo, &mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
    // Half the mutex callbacks: bad.
    let mut bad = init_args(null_mut());
    bad.CreateMutex = Some(create_mutex);
    assert_eq!(
        call!(f, C_Initialize, &mut bad as *mut _ as *mut c_void),
        CKR_ARGUMENTS_BAD
    );
    // The init string names the config.
    let s = CString::new(format!("ukey_conf={}", conf.display())).unwrap();
    let mut args = init_args(s.as_ptr() as *mut c_void);
    assert_eq!(
        call!(f, C_Initialize, &mut args as *mut _ as *mut c_void),
        CKR_OK
    );
    assert_eq!(
        call!(f, C_Initialize, &mut args as *mut _ as *mut c_void),
        CKR_CRYPTOKI_ALREADY_INITIALIZED
    );
    assert_eq!(call!(f, C_GetInfo, null_mut()), CKR_ARGUMENTS_BAD);
    assert_eq!(call!(f, C_GetInfo, &mut info), CKR_OK);
    assert_eq!(
        (info.cryptokiVersion.major, info.cryptokiVersion.minor),
        (3, 0)
    );

    // Slot list: NULL count, size query, short buffer.
    assert_eq!(
        call!(f, C_GetSlotList, CK_TRUE, null_mut(), null_mut()),
        CKR_ARGUMENTS_BAD
    );
    let mut n: CK_ULONG = 0;
    assert_eq!(call!(f, C_GetSlotList, CK_TRUE, null_mut(), &mut n), CKR_OK);
    assert_eq!(n, 1, "only the free slot");
    let mut slots = vec![0 as CK_SLOT_ID; 1];
    assert_eq!(
        call!(f, C_GetSlotList, CK_TRUE, slots.as_mut_ptr(), &mut n),
        CKR_OK
    );
    let free = slots[0];

    // No event yet.
    let mut ev: CK_SLOT_ID = 0;
    assert_eq!(
        call!(f, C_WaitForSlotEvent, CKF_DONT_BLOCK, &mut ev, null_mut()),
        CKR_NO_EVENT
    );

    // A token made by another thread wakes a blocked waiter.
    let waiter = std::thread::spawn(move || {
        let mut ev: CK_SLOT_ID = CK_SLOT_ID::MAX;
        let rv = call!(f, C_WaitForSlotEvent, 0, &mut ev, null_mut());
        (rv, ev)
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut label = [b' '; 32];
    label[..3].copy_from_slice(b"abi");
    let so = b"12345678";
    assert_eq!(
        call!(
            f,
            C_InitToken,
            free,
            so.as_ptr() as *mut u8,
            8,
            label.as_mut_ptr()
        ),
        CKR_OK
    );
    let (rv, ev) = waiter.join().unwrap();
    assert_eq!((rv, ev), (CKR_OK, free));
    assert_eq!(
        call!(
            f,
            C_WaitForSlotEvent,
            CKF_DONT_BLOCK,
            &mut ev.clone(),
            null_mut()
        ),
        CKR_NO_EVENT
    );

    // The token: SO sets the user PIN; a user session signs.
    let mut h: CK_SESSION_HANDLE = 0;
    assert_eq!(
        call!(
            f,
            C_OpenSession,
            free,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            null_mut(),
            None,
            &mut h
        ),
        CKR_OK
    );
    assert_eq!(
        call!(f, C_OpenSession, free, 0, null_mut(), None, &mut h.clone()),
        CKR_SESSION_PARALLEL_NOT_SUPPORTED
    );
    assert_eq!(
        call!(f, C_Login, h, CKU_SO, so.as_ptr() as *mut u8, 8),
        CKR_OK
    );
    let pin = b"123456";
    assert_eq!(call!(f, C_InitPIN, h, pin.as_ptr() as *mut u8, 6), CKR_OK);
    assert_eq!(call!(f, C_Logout, h), CKR_OK);
    assert_eq!(
        call!(f, C_Login, h, CKU_USER, pin.as_ptr() as *mut u8, 6),
        CKR_OK
    );

    let params = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";
    let yes: CK_BBOOL = CK_TRUE;
    let mut pubt = [CK_ATTRIBUTE {
        type_: CKA_EC_PARAMS,
        pValue: params.as_ptr() as *mut c_void,
        ulValueLen: 10,
    }];
    let mut privt = [CK_ATTRIBUTE {
        type_: CKA_SIGN,
        pValue: &yes as *const _ as *mut c_void,
        ulValueLen: 1,
    }];
    let mut mech = CK_MECHANISM {
        mechanism: CKM_EC_KEY_PAIR_GEN,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    let (mut pk, mut sk) = (0, 0);
    assert_eq!(
        call!(
            f,
            C_GenerateKeyPair,
            h,
            &mut mech,
            pubt.as_mut_ptr(),
            1,
            privt.as_mut_ptr(),
            1,
            &mut pk,
            null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(
            f,
            C_GenerateKeyPair,
            h,
            &mut mech,
            pubt.as_mut_ptr(),
            1,
            privt.as_mut_ptr(),
            1,
            &mut pk,
            &mut sk
        ),
        CKR_OK
    );

    // Two-call protocol on C_Sign; nothing written on a short buffer.
    let mut sm = CK_MECHANISM {
        mechanism: CKM_ECDSA_SHA256,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    assert_eq!(call!(f, C_SignInit, h, null_mut(), sk), CKR_ARGUMENTS_BAD);
    assert_eq!(call!(f, C_SignInit, h, &mut sm, sk), CKR_OK);
    let data = b"message";
    assert_eq!(
        call!(
            f,
            C_Sign,
            h,
            data.as_ptr() as *mut u8,
            7,
            null_mut(),
            null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
    let mut len: CK_ULONG = 0;
    assert_eq!(
        call!(
            f,
            C_Sign,
            h,
            data.as_ptr() as *mut u8,
            7,
            null_mut(),
            &mut len
        ),
        CKR_OK
    );
    assert_eq!(len, 64);
    let mut sig = vec![0xAAu8; 64];
    len = 10;
    assert_eq!(
        call!(
            f,
            C_Sign,
            h,
            data.as_ptr() as *mut u8,
            7,
            sig.as_mut_ptr(),
            &mut len
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(len, 64);
    assert!(sig.iter().all(|b| *b == 0xAA));
    assert_eq!(
        call!(
            f,
            C_Sign,
            h,
            data.as_ptr() as *mut u8,
            7,
            sig.as_mut_ptr(),
            &mut len
        ),
        CKR_OK
    );
    assert_eq!(
        call!(
            f,
            C_Sign,
            h,
            data.as_ptr() as *mut u8,
            7,
            sig.as_mut_ptr(),
            &mut len
        ),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(call!(f, C_VerifyInit, h, &mut sm, pk), CKR_OK);
    assert_eq!(
        call!(
            f,
            C_Verify,
            h,
            data.as_ptr() as *mut u8,
            7,
            sig.as_mut_ptr(),
            64
        ),
        CKR_OK
    );

    // Two-call protocol on C_Encrypt/C_Decrypt (AES-CBC, CBC-PAD, CTR): a size query and a
    // short buffer compute nothing and leave the operation active; a separate buffer gets
    // the output, as does the input buffer itself (in place); all agree.
    let sixteen: CK_ULONG = 16;
    let mut kt = [
        CK_ATTRIBUTE {
            type_: CKA_VALUE_LEN,
            pValue: &sixteen as *const _ as *mut c_void,
            ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_ENCRYPT,
            pValue: &yes as *const _ as *mut c_void,
            ulValueLen: 1,
        },
        CK_ATTRIBUTE {
            type_: CKA_DECRYPT,
            pValue: &yes as *const _ as *mut c_void,
            ulValueLen: 1,
        },
    ];
    let mut kg = CK_MECHANISM {
        mechanism: CKM_AES_KEY_GEN,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    let mut aes = 0;
    assert_eq!(
        call!(f, C_GenerateKey, h, &mut kg, kt.as_mut_ptr(), 3, &mut aes),
        CKR_OK
    );
    let mut iv = [7u8; 16];
    let mut ctr = CK_AES_CTR_PARAMS {
        ulCounterBits: 128,
        cb: [3u8; 16],
    };
    let plain: Vec<u8> = (0..100u8).collect();
    for (mechanism, param, plen, data_len, out_len) in [
        (
            CKM_AES_CBC,
            iv.as_mut_ptr() as *mut c_void,
            16,
            96usize,
            96usize,
        ),
        (
            CKM_AES_CBC_PAD,
            iv.as_mut_ptr() as *mut c_void,
            16,
            100,
            112,
        ),
        (
            CKM_AES_CTR,
            &mut ctr as *mut _ as *mut c_void,
            std::mem::size_of::<CK_AES_CTR_PARAMS>(),
            100,
            100,
        ),
    ] {
        let mut m = CK_MECHANISM {
            mechanism,
            pParameter: param,
            ulParameterLen: plen as CK_ULONG,
        };
        let data = &plain[..data_len];
        let n = data_len as CK_ULONG;
        let enc = |out: *mut u8, len: &mut CK_ULONG| {
            call!(f, C_Encrypt, h, data.as_ptr() as *mut u8, n, out, len)
        };
        assert_eq!(call!(f, C_EncryptInit, h, &mut m, aes), CKR_OK);
        let mut len: CK_ULONG = 0;
        assert_eq!(enc(null_mut(), &mut len), CKR_OK);
        assert_eq!(len as usize, out_len, "{mechanism:#x}");
        let mut ct = vec![0xAAu8; out_len + 8];
        len = 5;
        assert_eq!(enc(ct.as_mut_ptr(), &mut len), CKR_BUFFER_TOO_SMALL);
        assert_eq!(len as usize, out_len);
        assert!(ct.iter().all(|b| *b == 0xAA));
        len = ct.len() as CK_ULONG;
        assert_eq!(enc(ct.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len as usize, out_len);
        assert!(ct[out_len..].iter().all(|b| *b == 0xAA));
        ct.truncate(out_len);
        assert_eq!(
            enc(ct.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        // In place: the input buffer is the output buffer.
        let mut inplace = plain[..data_len].to_vec();
        inplace.resize(out_len, 0);
        assert_eq!(call!(f, C_EncryptInit, h, &mut m, aes), CKR_OK);
        len = out_len as CK_ULONG;
        assert_eq!(
            call!(
                f,
                C_Encrypt,
                h,
                inplace.as_mut_ptr(),
                n,
                inplace.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(inplace, ct, "{mechanism:#x}");
        // Decryption, into a separate buffer and in place.
        assert_eq!(call!(f, C_DecryptInit, h, &mut m, aes), CKR_OK);
        let mut pt = vec![0u8; out_len];
        len = 0;
        let ctn = out_len as CK_ULONG;
        assert_eq!(
            call!(f, C_Decrypt, h, ct.as_mut_ptr(), ctn, null_mut(), &mut len),
            CKR_OK
        );
        assert!(len as usize >= data_len);
        assert_eq!(
            call!(
                f,
                C_Decrypt,
                h,
                ct.as_mut_ptr(),
                ctn,
                pt.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(&pt[..len as usize], data);
        assert_eq!(call!(f, C_DecryptInit, h, &mut m, aes), CKR_OK);
        len = ctn;
        assert_eq!(
            call!(
                f,
                C_Decrypt,
                h,
                ct.as_mut_ptr(),
                ctn,
                ct.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(&ct[..len as usize], data);
    }
    // A CBC input that is not whole blocks: the size query fails and ends the operation.
    let mut m = CK_MECHANISM {
        mechanism: CKM_AES_CBC,
        pParameter: iv.as_mut_ptr() as *mut c_void,
        ulParameterLen: 16,
    };
    assert_eq!(call!(f, C_EncryptInit, h, &mut m, aes), CKR_OK);
    let mut len: CK_ULONG = 0;
    assert_eq!(
        call!(
            f,
            C_Encrypt,
            h,
            plain.as_ptr() as *mut u8,
            100,
            null_mut(),
            &mut len
        ),
        CKR_DATA_LEN_RANGE
    );
    assert_eq!(
        call!(
            f,
            C_Encrypt,
            h,
            plain.as_ptr() as *mut u8,
            96,
            null_mut(),
            &mut len
        ),
        CKR_OPERATION_NOT_INITIALIZED
    );

    // C_GetAttributeValue: short buffer, sensitive value, unknown type, all answered.
    let mut small = [0u8; 2];
    let mut t = [
        CK_ATTRIBUTE {
            type_: CKA_EC_POINT,
            pValue: small.as_mut_ptr() as *mut c_void,
            ulValueLen: 2,
        },
        CK_ATTRIBUTE {
            type_: CKA_EC_PARAMS,
            pValue: null_mut(),
            ulValueLen: 0,
        },
        CK_ATTRIBUTE {
            type_: 0x7777_0000,
            pValue: null_mut(),
            ulValueLen: 0,
        },
    ];
    assert_eq!(
        call!(f, C_GetAttributeValue, h, pk, t.as_mut_ptr(), 3),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(t[1].ulValueLen, 10);
    assert_eq!(t[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    let mut v = [CK_ATTRIBUTE {
        type_: CKA_VALUE,
        pValue: null_mut(),
        ulValueLen: 0,
    }];
    assert_eq!(
        call!(f, C_GetAttributeValue, h, sk, v.as_mut_ptr(), 1),
        CKR_ATTRIBUTE_SENSITIVE
    );
    assert_eq!(v[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(
        call!(f, C_GetAttributeValue, h, 0xdead, v.as_mut_ptr(), 1),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        call!(f, C_GetAttributeValue, 0xdead, sk, v.as_mut_ptr(), 1),
        CKR_SESSION_HANDLE_INVALID
    );

    // C_Finalize wakes a blocked waiter.
    let waiter = std::thread::spawn(move || {
        let mut ev: CK_SLOT_ID = 0;
        call!(f, C_WaitForSlotEvent, 0, &mut ev, null_mut())
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(call!(f, C_Finalize, null_mut()), CKR_OK);
    assert_eq!(waiter.join().unwrap(), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_eq!(
        call!(f, C_Finalize, null_mut()),
        CKR_CRYPTOKI_NOT_INITIALIZED
    );
    let _ = null::<u8>();
}
