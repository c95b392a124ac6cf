//! The SKF handle table's per-thread memory of the device and container handles a thread
//! used last (skf-provider `ffi/handles.rs`): a handle a thread has just used is refused
//! once it is closed, whether this thread or another one closed it, and a container
//! closed with its application or device goes with them.

#![allow(clippy::unwrap_used)]

mod skf_common;

use std::ffi::c_void;

use skf_common::*;
use skf_sys::*;

type H = *mut c_void;

/// A handle value that can cross threads (the library's handles are plain numbers).
#[derive(Clone, Copy)]
struct Sendable(usize);

impl Sendable {
    fn of(h: H) -> Self {
        Self(h as usize)
    }
    fn h(self) -> H {
        self.0 as H
    }
}

/// ECCSignData over a fixed e with container `c`: the return code and the signature.
fn sign_sig(c: H) -> (u32, ECCSIGNATUREBLOB) {
    let f = skf!(SKF_ECCSignData: fn(H, *const u8, u32, *mut ECCSIGNATUREBLOB));
    let e = [7u8; 32];
    // SAFETY: an all-zero ECCSIGNATUREBLOB is a valid value of the C struct.
    let mut sig: ECCSIGNATUREBLOB = unsafe { std::mem::zeroed() };
    // SAFETY: 32 bytes in, a signature blob out; the handle may be stale (that is the test).
    let rv = unsafe { f(c, e.as_ptr(), 32, &mut sig) };
    (rv, sig)
}

fn sign(c: H) -> u32 {
    sign_sig(c).0
}

/// ECCVerify on device `d` of `sig` (over the e of [`sign_sig`]) with the public key
/// blob `pk`: a call that only checks the device handle.
fn verify(d: H, pk: &[u8], sig: &ECCSIGNATUREBLOB) -> u32 {
    let f = skf!(SKF_ECCVerify: fn(H, *const u8, *const u8, u32, *const ECCSIGNATUREBLOB));
    let e = [7u8; 32];
    // SAFETY: an ECCPUBLICKEYBLOB, 32 bytes, a signature blob; the handle may be stale.
    unsafe { f(d, pk.as_ptr(), e.as_ptr(), 32, sig) }
}

#[test]
fn closed_handles_are_refused_after_use() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = with_app(tmp.path(), "bids");
    run_child(&conf, "handle_cache_child");
}

#[test]
fn handle_cache_child() {
    if !is_child("handle_cache_child") {
        return;
    }
    let close_con = skf!(SKF_CloseContainer: fn(H));
    let close_app = skf!(SKF_CloseApplication: fn(H));
    let disconnect = skf!(SKF_DisConnectDev: fn(H));

    // Closed by this thread, right after use.
    let s = Session::open("bids");
    let c = s.container("c1", true);
    Session::gen_sm2(c, SGD_SM2_1);
    for _ in 0..3 {
        assert_eq!(sign(c), SAR_OK);
    }
    // SAFETY: an open container handle.
    assert_eq!(unsafe { close_con(c) }, SAR_OK);
    assert_eq!(sign(c), SAR_INVALIDHANDLEERR);
    // Reopened: a new handle value; the old one stays refused.
    let c2 = s.container("c1", false);
    assert_ne!(c2, c);
    assert_eq!(sign(c2), SAR_OK);
    assert_eq!(sign(c), SAR_INVALIDHANDLEERR);

    // Closed by another thread while this one remembers it.
    assert_eq!(sign(c2), SAR_OK);
    let other = Sendable::of(c2);
    std::thread::spawn(move || {
        // SAFETY: an open container handle.
        assert_eq!(unsafe { close_con(other.h()) }, SAR_OK);
    })
    .join()
    .unwrap();
    assert_eq!(sign(c2), SAR_INVALIDHANDLEERR);

    // Used by another thread, closed here: that thread's memory does not keep it open.
    let c3 = s.container("c1", false);
    let used = Sendable::of(c3);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<u32>();
    let t = std::thread::spawn(move || {
        done_tx.send(sign(used.h())).unwrap();
        rx.recv().unwrap();
        done_tx.send(sign(used.h())).unwrap();
    });
    assert_eq!(done_rx.recv().unwrap(), SAR_OK);
    // SAFETY: an open container handle.
    assert_eq!(unsafe { close_con(c3) }, SAR_OK);
    tx.send(()).unwrap();
    assert_eq!(done_rx.recv().unwrap(), SAR_INVALIDHANDLEERR);
    t.join().unwrap();

    // A container goes with its application, and a device's handles with the device.
    let c4 = s.container("c1", false);
    let pk = Session::public_key(c4, true);
    let (rv, sig) = sign_sig(c4);
    assert_eq!(rv, SAR_OK);
    assert_eq!(verify(s.dev, &pk, &sig), SAR_OK);
    // SAFETY: an open application handle.
    assert_eq!(unsafe { close_app(s.app) }, SAR_OK);
    assert_eq!(sign(c4), SAR_INVALIDHANDLEERR);
    assert_eq!(verify(s.dev, &pk, &sig), SAR_OK);
    // SAFETY: an open device handle.
    assert_eq!(unsafe { disconnect(s.dev) }, SAR_OK);
    assert_eq!(verify(s.dev, &pk, &sig), SAR_INVALIDHANDLEERR);

    // The same, the device closed by another thread.
    let s2 = Session::open("bids");
    let c5 = s2.container("c1", false);
    assert_eq!(sign(c5), SAR_OK);
    assert_eq!(verify(s2.dev, &pk, &sig), SAR_OK);
    let d = Sendable::of(s2.dev);
    std::thread::spawn(move || {
        // SAFETY: an open device handle.
        assert_eq!(unsafe { disconnect(d.h()) }, SAR_OK);
    })
    .join()
    .unwrap();
    assert_eq!(sign(c5), SAR_INVALIDHANDLEERR);
    assert_eq!(verify(s2.dev, &pk, &sig), SAR_INVALIDHANDLEERR);
}
