//! The per-thread session cache of libukey_pkcs11.so (state.rs, `with_session`): a thread
//! that used a session keeps it cached, and must still see the session closed by another
//! thread, the module finalised, and — after `C_Initialize` again, when handle numbers
//! start over — the new session behind an old number, never the old one. Its own process,
//! because it finalises the module.

#![allow(clippy::unwrap_used)]

use std::ptr::null_mut;
use std::sync::mpsc;

use cryptoki_sys::*;

struct Lib {
    _lib: libloading::Library,
    f: &'static CK_FUNCTION_LIST,
}

fn load() -> Lib {
    // SAFETY: loading the module under test.
    let lib = unsafe { libloading::Library::new(ukey_tests::pkcs11_lib()) }.unwrap();
    // SAFETY: the symbol has the C_GetFunctionList prototype.
    let get: libloading::Symbol<'_, unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
        unsafe { lib.get(b"C_GetFunctionList") }.unwrap();
    let mut f: *mut CK_FUNCTION_LIST = null_mut();
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { get(&mut f) }, CKR_OK);
    // SAFETY: the module's static function list, valid while the library is loaded (the
    // test keeps it loaded to the end).
    let f: &'static CK_FUNCTION_LIST = unsafe { &*f };
    Lib { _lib: lib, f }
}

fn initialize(f: &CK_FUNCTION_LIST) {
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: null_mut(),
    };
    // SAFETY: valid arguments.
    let rv = unsafe { f.C_Initialize.unwrap()(&mut args as *mut _ as *mut _) };
    assert_eq!(rv, CKR_OK);
}

fn open(f: &CK_FUNCTION_LIST, slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    let mut h: CK_SESSION_HANDLE = 0;
    // SAFETY: valid out-pointer, no callback.
    let rv = unsafe {
        f.C_OpenSession.unwrap()(
            slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            null_mut(),
            None,
            &mut h,
        )
    };
    assert_eq!(rv, CKR_OK);
    h
}

/// `C_DigestInit` (SHA-256) on session `h`.
fn digest_init(f: &CK_FUNCTION_LIST, h: CK_SESSION_HANDLE) -> CK_RV {
    let mut m = CK_MECHANISM {
        mechanism: CKM_SHA256,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    // SAFETY: a valid mechanism.
    unsafe { f.C_DigestInit.unwrap()(h, &mut m) }
}

/// A whole SHA-256 digest on session `h`: `CKR_OK` or the first error.
fn digest(f: &CK_FUNCTION_LIST, h: CK_SESSION_HANDLE) -> CK_RV {
    let rv = digest_init(f, h);
    if rv != CKR_OK {
        return rv;
    }
    let mut data = *b"abc";
    let mut out = [0u8; 32];
    let mut n: CK_ULONG = 32;
    // SAFETY: valid buffers and lengths.
    let rv = unsafe { f.C_Digest.unwrap()(h, data.as_mut_ptr(), 3, out.as_mut_ptr(), &mut n) };
    if rv == CKR_OK {
        assert_eq!(out[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
    rv
}

/// The slot of the initialised token.
fn token_slot(f: &CK_FUNCTION_LIST) -> CK_SLOT_ID {
    let mut slots = [0 as CK_SLOT_ID; 8];
    let mut n: CK_ULONG = 8;
    // SAFETY: a buffer of n slots.
    let rv = unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, slots.as_mut_ptr(), &mut n) };
    assert_eq!(rv, CKR_OK);
    slots[..n as usize]
        .iter()
        .copied()
        .find(|s| {
            // SAFETY: a plain-data struct, for which all zeroes is a valid value.
            let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
            // SAFETY: a valid out-pointer.
            let rv = unsafe { f.C_GetTokenInfo.unwrap()(*s, &mut info) };
            rv == CKR_OK && info.flags & CKF_TOKEN_INITIALIZED != 0
        })
        .expect("an initialised token")
}

#[test]
fn cached_sessions_follow_close_finalize_and_reinit() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ukey_tests::write_soft_conf(dir.path(), "");
    // SAFETY: set before the module is loaded and before any other thread reads it.
    unsafe { std::env::set_var("UKEY_CONF", &conf) };
    let lib = load();
    let f = lib.f;
    initialize(f);
    let mut slots = [0 as CK_SLOT_ID; 8];
    let mut n: CK_ULONG = 8;
    // SAFETY: a buffer of n slots.
    let rv = unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, slots.as_mut_ptr(), &mut n) };
    assert_eq!(rv, CKR_OK);
    let mut so_pin = *b"12345678";
    let mut label = [b' '; 32];
    label[..5].copy_from_slice(b"cache");
    // SAFETY: valid PIN and 32-byte label.
    let rv =
        unsafe { f.C_InitToken.unwrap()(slots[0], so_pin.as_mut_ptr(), 8, label.as_mut_ptr()) };
    assert_eq!(rv, CKR_OK);
    let slot = token_slot(f);

    // A worker thread that digests on the sessions it is sent; its cache keeps the last.
    let (to_worker, work) = mpsc::channel::<(&'static str, CK_SESSION_HANDLE)>();
    let (done, from_worker) = mpsc::channel::<CK_RV>();
    let worker = std::thread::spawn(move || {
        for (what, h) in work {
            let rv = if what == "init" {
                digest_init(f, h)
            } else {
                digest(f, h)
            };
            done.send(rv).unwrap();
        }
    });
    let ask = |what: &'static str, h: CK_SESSION_HANDLE| {
        to_worker.send((what, h)).unwrap();
        from_worker.recv().unwrap()
    };

    let s1 = open(f, slot);
    assert_eq!(ask("digest", s1), CKR_OK);
    assert_eq!(ask("digest", s1), CKR_OK);
    assert_eq!(digest(f, s1), CKR_OK);
    // Closed by the main thread: the worker's cached entry is not used.
    // SAFETY: a session handle.
    assert_eq!(unsafe { f.C_CloseSession.unwrap()(s1) }, CKR_OK);
    assert_eq!(ask("digest", s1), CKR_SESSION_HANDLE_INVALID);
    assert_eq!(digest(f, s1), CKR_SESSION_HANDLE_INVALID);

    let s2 = open(f, slot);
    assert_eq!(ask("digest", s2), CKR_OK);
    // The worker and the main thread see one session: an operation begun by one is
    // active for the other.
    assert_eq!(digest_init(f, s2), CKR_OK);
    assert_eq!(ask("init", s2), CKR_OPERATION_ACTIVE);
    assert_eq!(digest(f, s2), CKR_OPERATION_ACTIVE);

    // Finalised by the main thread: the worker's cache does not keep the module.
    // SAFETY: no argument.
    assert_eq!(unsafe { f.C_Finalize.unwrap()(null_mut()) }, CKR_OK);
    assert_eq!(ask("digest", s2), CKR_CRYPTOKI_NOT_INITIALIZED);

    // Initialised again: handle numbers start over, so new sessions take the old numbers.
    initialize(f);
    let slot = token_slot(f);
    let t1 = open(f, slot);
    let t2 = open(f, slot);
    assert_eq!((t1, t2), (s1, s2), "handles are expected to start over");
    // The worker's last session number now names t2, a fresh session with no operation,
    // and an operation begun on it here is seen there.
    assert_eq!(ask("digest", s2), CKR_OK);
    assert_eq!(digest_init(f, t2), CKR_OK);
    assert_eq!(ask("init", s2), CKR_OPERATION_ACTIVE);
    // SAFETY: session handles.
    unsafe {
        assert_eq!(f.C_CloseSession.unwrap()(t1), CKR_OK);
        assert_eq!(f.C_CloseSession.unwrap()(t2), CKR_OK);
    }
    assert_eq!(ask("digest", s2), CKR_SESSION_HANDLE_INVALID);
    drop(to_worker);
    worker.join().unwrap();
    // SAFETY: no argument.
    assert_eq!(unsafe { f.C_Finalize.unwrap()(null_mut()) }, CKR_OK);
}
