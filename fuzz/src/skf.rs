//! A call-sequence interpreter for the SKF (GM/T 0016) library: the input is read as a
//! sequence of `SKF_*` calls with their arguments (device, application, container and key
//! handles, live, closed or made up; names; PINs; blobs; output buffers that are NULL,
//! short or large), run in-process against a soft device in a scratch directory.
//!
//! As in `p11`, every pointer handed over is valid for what the call's contract says it
//! reads or writes (an ECCCIPHERBLOB always has its `CipherLen` bytes); NULL is used
//! freely. Invariants besides "no crash": a successful size query is honoured by the next
//! call, and a buffer is never reported filled beyond its size.

use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::{Arc, OnceLock};

use skf_sys::*;
use token_hal::soft::{DEFAULT_DEV_AUTH_KEY, SoftDevice};
use ukey_skf::*;

use crate::Reader;

/// `BLOCKCIPHERPARAM.IV` length.
const IV_LEN: usize = 32;
/// Symmetric algorithm ids (GM/T 0006) and a few bad ones.
const SYM_ALGS: &[ULONG] = &[
    0x401,
    0x402,
    0x404,
    0x408,
    0x410,
    0x101,
    0x102,
    0x1001,
    0x1002,
    0,
    0xFFFF_FFFF,
];
/// SM2 and hash algorithm ids.
const ASYM_ALGS: &[ULONG] = &[
    0x0002_0100,
    0x0002_0200,
    0x0002_0400,
    0x0002_0800,
    0x0001_0000,
    1,
    2,
    4,
    0,
];

struct Env {
    dev: Arc<SoftDevice>,
    _dir: PathBuf,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // Once, before the library runs, while the fuzzer is single-threaded.
        let (dir, dev) = crate::library_env("skf");
        Env { dev, _dir: dir }
    })
}

/// Owns everything pointed to during one call.
#[derive(Default)]
struct Arena {
    bufs: Vec<Vec<u8>>,
}

impl Arena {
    fn buf(&mut self, v: Vec<u8>) -> (*mut u8, ULONG) {
        let n = v.len() as ULONG;
        self.bufs.push(v);
        let last = self.bufs.last_mut().expect("just pushed");
        if last.is_empty() {
            (std::ptr::NonNull::dangling().as_ptr(), 0)
        } else {
            (last.as_mut_ptr(), n)
        }
    }
    /// A NUL-terminated string.
    fn cstr(&mut self, mut v: Vec<u8>) -> LPSTR {
        v.retain(|&b| b != 0);
        v.push(0);
        self.buf(v).0.cast()
    }
    /// A zeroed value of `T` (a C structure) followed by `extra` bytes.
    fn zeroed<T>(&mut self, extra: usize) -> *mut T {
        self.buf(vec![0; size_of::<T>() + extra]).0.cast()
    }
}

/// The handles the run holds, by kind.
#[derive(Default)]
struct Handles {
    devs: Vec<HANDLE>,
    apps: Vec<HANDLE>,
    cons: Vec<HANDLE>,
    keys: Vec<HANDLE>,
}

struct Run<'a> {
    r: Reader<'a>,
    h: Handles,
    names: Vec<Vec<u8>>,
}

/// Runs one input against the library.
pub fn run(data: &[u8], blobs_only: bool) {
    let e = env();
    crate::reset_token(&*e.dev);
    let mut run = Run {
        r: Reader::new(data),
        h: Handles::default(),
        names: Vec::new(),
    };
    run.enum_dev();
    if blobs_only {
        run.open_fuzz_container();
    }
    let mut ops = 0;
    while !run.r.done() && ops < 64 {
        ops += 1;
        run.step(blobs_only);
    }
    for k in run.h.keys.drain(..) {
        SKF_CloseHandle(k);
    }
    for d in std::mem::take(&mut run.h.devs) {
        SKF_DisConnectDev(d);
    }
}

fn pick_h(r: &mut Reader<'_>, list: &[HANDLE]) -> HANDLE {
    let b = r.u8();
    if b < 0xF0 && !list.is_empty() {
        list[usize::from(b) % list.len()]
    } else {
        [
            null_mut(),
            1 as HANDLE,
            0xFFFF_FFFF as HANDLE,
            r.u32() as usize as HANDLE,
        ][usize::from(b & 3)]
    }
}

impl Run<'_> {
    fn enum_dev(&mut self) {
        let mut a = Arena::default();
        let mut size: ULONG = 0;
        // SAFETY: valid pointers.
        if unsafe { SKF_EnumDev(TRUE, null_mut(), &mut size) } != SAR_OK {
            return;
        }
        let (p, _) = a.buf(vec![0; size as usize]);
        let mut size2 = size;
        // SAFETY: `p` holds `size` bytes.
        let rv = unsafe { SKF_EnumDev(TRUE, p.cast(), &mut size2) };
        assert_eq!(rv, SAR_OK, "SKF_EnumDev with the size it announced");
        assert!(size2 <= size);
        let list = &a.bufs[0][..size2 as usize];
        self.names = list
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        assert!(!self.names.is_empty(), "the fuzz device is not listed");
    }

    fn open_fuzz_container(&mut self) {
        let mut a = Arena::default();
        let name = a.cstr(self.names[0].clone());
        let mut dev: DEVHANDLE = null_mut();
        // SAFETY: valid pointers.
        assert_eq!(unsafe { SKF_ConnectDev(name, &mut dev) }, SAR_OK);
        self.h.devs.push(dev);
        let app_name = a.cstr(crate::APP.as_bytes().to_vec());
        let mut app: HAPPLICATION = null_mut();
        // SAFETY: valid pointers.
        assert_eq!(
            unsafe { SKF_OpenApplication(dev, app_name, &mut app) },
            SAR_OK
        );
        self.h.apps.push(app);
        let pin = a.cstr(crate::USER_PIN.to_vec());
        let mut retry: ULONG = 0;
        // SAFETY: valid pointers.
        assert_eq!(
            unsafe { SKF_VerifyPIN(app, USER_TYPE, pin, &mut retry) },
            SAR_OK
        );
        let cname = a.cstr(b"c1".to_vec());
        let mut con: HCONTAINER = null_mut();
        // SAFETY: valid pointers.
        assert_eq!(unsafe { SKF_CreateContainer(app, cname, &mut con) }, SAR_OK);
        self.h.cons.push(con);
        let blob = a.zeroed::<ECCPUBLICKEYBLOB>(0);
        // SAFETY: valid pointers.
        assert_eq!(unsafe { SKF_GenECCKeyPair(con, SGD_SM2_1, blob) }, SAR_OK);
    }

    fn dev(&mut self) -> HANDLE {
        pick_h(&mut self.r, &self.h.devs)
    }
    fn app(&mut self) -> HANDLE {
        pick_h(&mut self.r, &self.h.apps)
    }
    fn con(&mut self) -> HANDLE {
        pick_h(&mut self.r, &self.h.cons)
    }
    fn key(&mut self) -> HANDLE {
        pick_h(&mut self.r, &self.h.keys)
    }
    fn any(&mut self) -> HANDLE {
        match self.r.u8() % 4 {
            0 => self.dev(),
            1 => self.app(),
            2 => self.con(),
            _ => self.key(),
        }
    }

    fn name(&mut self, a: &mut Arena, known: &[&[u8]]) -> LPSTR {
        match self.r.u8() % 4 {
            0 => null_mut(),
            1 => {
                let v = self.r.bytes(80);
                a.cstr(v)
            }
            _ => {
                let v = self.r.pick(known);
                a.cstr(v.to_vec())
            }
        }
    }

    fn pin(&mut self, a: &mut Arena) -> LPSTR {
        self.name(a, &[crate::USER_PIN, crate::SO_PIN, b"000000", b""])
    }

    fn data(&mut self, a: &mut Arena) -> (*mut u8, ULONG) {
        match self.r.u8() % 8 {
            0 => (null_mut(), 0),
            1 => (null_mut(), 16),
            2 => a.buf(vec![0x11; 32]),
            _ => {
                let v = self.r.bytes(600);
                a.buf(v)
            }
        }
    }

    /// Bytes for a C structure of type `T`: fuzz bytes, zero-padded to its size.
    fn blob<T>(&mut self, a: &mut Arena, extra: usize) -> *mut T {
        if self.r.u8().is_multiple_of(8) {
            return null_mut();
        }
        let mut v = self.r.bytes(size_of::<T>() + extra);
        v.resize(size_of::<T>() + extra, 0);
        a.buf(v).0.cast()
    }

    /// An ECCCIPHERBLOB whose `CipherLen` bytes are really there.
    fn cipher_blob(&mut self, a: &mut Arena, at: usize) -> *mut u8 {
        if self.r.u8().is_multiple_of(8) {
            return null_mut();
        }
        let clen = usize::from(self.r.u16()) % 1024;
        let mut v = self.r.bytes(at + ECCCIPHERBLOB_HEADER_LEN + clen);
        v.resize(at + ECCCIPHERBLOB_HEADER_LEN + clen, 0);
        v[at + 160..at + 164].copy_from_slice(&(clen as u32).to_ne_bytes());
        a.buf(v).0
    }

    fn out(&mut self, a: &mut Arena) -> (*mut u8, ULONG) {
        match self.r.u8() % 4 {
            0 => (null_mut(), 0),
            1 => a.buf(vec![0; usize::from(self.r.u8() % 64)]),
            _ => a.buf(vec![0; 8192]),
        }
    }

    /// Calls `f(out, &mut len)`; after a successful size query, a buffer of the announced
    /// size must be accepted.
    fn two_call(&mut self, a: &mut Arena, mut f: impl FnMut(*mut u8, *mut ULONG) -> ULONG) {
        let (p, n) = self.out(a);
        let mut len = n;
        let rv = f(p, &mut len);
        if p.is_null() && rv == SAR_OK {
            assert!(len < 1 << 24, "an absurd announced length {len}");
            let (p2, _) = a.buf(vec![0; len as usize]);
            let mut len2 = len;
            let rv2 = f(p2, &mut len2);
            assert_ne!(
                rv2, SAR_BUFFER_TOO_SMALL,
                "the announced length {len} was too small"
            );
            if rv2 == SAR_OK {
                assert!(len2 <= len);
            }
        } else if rv == SAR_OK && !p.is_null() {
            assert!(len <= n, "wrote {len} bytes into {n}");
        }
    }

    fn cipher_param(&mut self) -> BLOCKCIPHERPARAM {
        let mut iv = [0u8; IV_LEN];
        let v = self.r.bytes(IV_LEN);
        iv[..v.len()].copy_from_slice(&v);
        BLOCKCIPHERPARAM {
            IV: iv,
            IVLen: ULONG::from(self.r.pick(&[16u8, 0, 12, 32, 255])),
            PaddingType: ULONG::from(self.r.u8() % 3),
            FeedBitLen: ULONG::from(self.r.pick(&[0u8, 8, 64, 128, 1])),
        }
    }

    #[allow(clippy::too_many_lines)]
    fn step(&mut self, blobs_only: bool) {
        let mut a = Arena::default();
        let op = self.r.u8();
        let op = if blobs_only {
            [8, 9, 10, 11, 12, 13, 15, 17, 18][usize::from(op) % 9]
        } else {
            op % 22
        };
        // SAFETY (for every call below): each pointer is null or valid for what the
        // function reads or writes; handles are checked by the library.
        unsafe {
            match op {
                0 => {
                    let owned = self.names.clone();
                    let names: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
                    let n = self.name(&mut a, &names);
                    let mut d: DEVHANDLE = null_mut();
                    if SKF_ConnectDev(n, &mut d) == SAR_OK {
                        self.h.devs.push(d);
                    }
                    let present = self.r.u8() as BOOL & 1;
                    self.two_call(&mut a, |p, l| SKF_EnumDev(present, p.cast(), l));
                }
                1 => {
                    let d = self.dev();
                    SKF_DisConnectDev(d);
                }
                2 => {
                    let d = self.dev();
                    let info = a.zeroed::<DEVINFO>(0);
                    SKF_GetDevInfo(d, if self.r.bool() { info } else { null_mut() });
                    let owned = self.names.clone();
                    let names: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
                    let n = self.name(&mut a, &names);
                    let mut st: ULONG = 0;
                    SKF_GetDevState(n, &mut st);
                    let label = self.name(&mut a, &[b"fuzzdev", b""]);
                    SKF_SetLabel(d, label);
                }
                3 => {
                    let d = self.dev();
                    let (p, _) = a.buf(vec![0; 16]);
                    if SKF_GenRandom(d, p, 16) == SAR_OK && self.r.bool() {
                        let mut block = [0u8; 16];
                        block.copy_from_slice(&a.bufs[0]);
                        let c = token_hal::crypto::sym::sm4_ecb_encrypt_block(
                            DEFAULT_DEV_AUTH_KEY,
                            &block,
                        )
                        .expect("SM4");
                        let (cp, cn) = a.buf(c);
                        SKF_DevAuth(d, cp, cn);
                        if self.r.bool() {
                            // Only ever to the same key: the reset between inputs needs it.
                            let (kp, kn) = a.buf(DEFAULT_DEV_AUTH_KEY.to_vec());
                            SKF_ChangeDevAuthKey(d, kp, kn);
                        }
                    } else {
                        let (cp, cn) = self.data(&mut a);
                        SKF_DevAuth(d, cp, cn);
                    }
                }
                4 => {
                    let d = self.dev();
                    match self.r.u8() % 4 {
                        0 => {
                            let n = self.name(&mut a, &[crate::APP.as_bytes(), b"other"]);
                            let mut h: HAPPLICATION = null_mut();
                            if SKF_OpenApplication(d, n, &mut h) == SAR_OK {
                                self.h.apps.push(h);
                            }
                        }
                        1 => {
                            let n = self.name(&mut a, &[b"other", crate::APP.as_bytes()]);
                            let so = self.pin(&mut a);
                            let user = self.pin(&mut a);
                            let mut h: HAPPLICATION = null_mut();
                            let rights = self.r.pick(&[
                                SECURE_ANYONE_ACCOUNT,
                                SECURE_USER_ACCOUNT,
                                SECURE_ADM_ACCOUNT,
                                0,
                                0xFF,
                            ]);
                            if SKF_CreateApplication(
                                d,
                                n,
                                so,
                                ULONG::from(self.r.u8() % 16),
                                user,
                                ULONG::from(self.r.u8() % 16),
                                rights,
                                &mut h,
                            ) == SAR_OK
                            {
                                self.h.apps.push(h);
                            }
                        }
                        2 => {
                            let n = self.name(&mut a, &[b"other", crate::APP.as_bytes()]);
                            SKF_DeleteApplication(d, n);
                        }
                        _ => self.two_call(&mut a, |p, l| SKF_EnumApplication(d, p.cast(), l)),
                    }
                }
                5 => {
                    let h = self.app();
                    let t = self.r.pick(&[USER_TYPE, ADMIN_TYPE, 7]);
                    let mut retry: ULONG = 0;
                    match self.r.u8() % 6 {
                        0 => {
                            let p = self.pin(&mut a);
                            SKF_VerifyPIN(h, t, p, &mut retry);
                        }
                        1 => {
                            let (mut m, mut r, mut def) = (0, 0, 0);
                            SKF_GetPINInfo(h, t, &mut m, &mut r, &mut def);
                        }
                        2 => {
                            // The new PIN is one the reset between inputs knows.
                            let old = self.pin(&mut a);
                            let new = a.cstr(if t == ADMIN_TYPE {
                                crate::SO_PIN.to_vec()
                            } else {
                                crate::USER_PIN.to_vec()
                            });
                            SKF_ChangePIN(h, t, old, new, &mut retry);
                        }
                        3 => {
                            let so = self.pin(&mut a);
                            let new = a.cstr(crate::USER_PIN.to_vec());
                            SKF_UnblockPIN(h, so, new, &mut retry);
                        }
                        4 => {
                            SKF_ClearSecureState(h);
                        }
                        _ => {
                            SKF_CloseApplication(h);
                        }
                    }
                }
                6 => {
                    let h = self.app();
                    let n = self.name(&mut a, &[b"f1", b"f2", b""]);
                    match self.r.u8() % 6 {
                        0 => {
                            let size = self.r.pick(&[0u32, 16, 1024, 1 << 23, 0xFFFF_FFFF]);
                            let rr = self
                                .r
                                .pick(&[SECURE_ANYONE_ACCOUNT, SECURE_USER_ACCOUNT, 0]);
                            let wr = self
                                .r
                                .pick(&[SECURE_ANYONE_ACCOUNT, SECURE_USER_ACCOUNT, 0]);
                            SKF_CreateFile(h, n, size, rr, wr);
                        }
                        1 => {
                            let off = self.r.pick(&[0u32, 1, 15, 1000, 0xFFFF_FFFF]);
                            let (d, dn) = self.data(&mut a);
                            SKF_WriteFile(h, n, off, d, dn);
                        }
                        2 => {
                            let off = self.r.pick(&[0u32, 1, 15, 1000, 0xFFFF_FFFF]);
                            let size = self.r.pick(&[0u32, 1, 16, 4096, 0xFFFF_FFFF]);
                            self.two_call(&mut a, |p, l| SKF_ReadFile(h, n, off, size, p, l));
                        }
                        3 => self.two_call(&mut a, |p, l| SKF_EnumFiles(h, p.cast(), l)),
                        4 => {
                            let info = a.zeroed::<FILEATTRIBUTE>(0);
                            SKF_GetFileInfo(h, n, info);
                        }
                        _ => {
                            SKF_DeleteFile(h, n);
                        }
                    }
                }
                7 => {
                    let h = self.app();
                    let n = self.name(&mut a, &[b"c1", b"c2", b""]);
                    match self.r.u8() % 6 {
                        0 => {
                            let mut c: HCONTAINER = null_mut();
                            if SKF_CreateContainer(h, n, &mut c) == SAR_OK {
                                self.h.cons.push(c);
                            }
                        }
                        1 => {
                            let mut c: HCONTAINER = null_mut();
                            if SKF_OpenContainer(h, n, &mut c) == SAR_OK {
                                self.h.cons.push(c);
                            }
                        }
                        2 => self.two_call(&mut a, |p, l| SKF_EnumContainer(h, p.cast(), l)),
                        3 => {
                            SKF_DeleteContainer(h, n);
                        }
                        4 => {
                            let c = self.con();
                            let mut t: ULONG = 0;
                            SKF_GetContainerType(c, &mut t);
                        }
                        _ => {
                            let c = self.con();
                            SKF_CloseContainer(c);
                        }
                    }
                }
                8 => {
                    let c = self.con();
                    let flag = self.r.u8() as BOOL & 1;
                    match self.r.u8() % 4 {
                        0 => {
                            let alg = self.r.pick(ASYM_ALGS);
                            let b = a.zeroed::<ECCPUBLICKEYBLOB>(0);
                            SKF_GenECCKeyPair(c, alg, b);
                        }
                        1 => self.two_call(&mut a, |p, l| SKF_ExportPublicKey(c, flag, p, l)),
                        2 => {
                            let (d, dn) = if self.r.bool() {
                                a.buf(include_bytes!("../data/sign.cert.der").to_vec())
                            } else {
                                self.data(&mut a)
                            };
                            SKF_ImportCertificate(c, flag, d, dn);
                        }
                        _ => self.two_call(&mut a, |p, l| SKF_ExportCertificate(c, flag, p, l)),
                    }
                }
                9 => {
                    let c = self.con();
                    let (d, dn) = self.data(&mut a);
                    let sig = a.zeroed::<ECCSIGNATUREBLOB>(0);
                    let rv = SKF_ECCSignData(c, d, dn, sig);
                    let dev = self.dev();
                    let pk: *mut ECCPUBLICKEYBLOB = self.blob(&mut a, 0);
                    let s2: *mut ECCSIGNATUREBLOB = if rv == SAR_OK && self.r.bool() {
                        sig
                    } else {
                        self.blob(&mut a, 0)
                    };
                    SKF_ECCVerify(dev, pk, d, dn, s2);
                    let pri: *mut ECCPRIVATEKEYBLOB = self.blob(&mut a, 0);
                    SKF_ExtECCSign(dev, pri, d, dn, a.zeroed::<ECCSIGNATUREBLOB>(0));
                    SKF_ExtECCVerify(dev, pk, d, dn, s2);
                }
                10 => {
                    let c = self.con();
                    let b = self.cipher_blob(&mut a, ENVELOPEDKEYBLOB_CIPHER_OFFSET);
                    SKF_ImportECCKeyPair(c, b.cast());
                }
                11 => {
                    let c = self.con();
                    let alg = self.r.pick(SYM_ALGS);
                    if self.r.bool() {
                        let pk: *mut ECCPUBLICKEYBLOB = self.blob(&mut a, 0);
                        let out = a.zeroed::<ECCCIPHERBLOB>(64);
                        let mut k: HANDLE = null_mut();
                        if SKF_ECCExportSessionKey(c, alg, pk, out, &mut k) == SAR_OK {
                            self.h.keys.push(k);
                        }
                    } else {
                        let (d, dn) = if self.r.bool() {
                            let b = self.cipher_blob(&mut a, 0);
                            let n = if b.is_null() {
                                0
                            } else {
                                a.bufs.last().map_or(0, Vec::len) as ULONG
                            };
                            (b, n)
                        } else {
                            self.data(&mut a)
                        };
                        let mut k: HANDLE = null_mut();
                        if SKF_ImportSessionKey(c, alg, d, dn, &mut k) == SAR_OK {
                            self.h.keys.push(k);
                        }
                    }
                }
                12 => {
                    let d = self.dev();
                    let (p, pn) = self.data(&mut a);
                    match self.r.u8() % 3 {
                        0 => {
                            let pk: *mut ECCPUBLICKEYBLOB = self.blob(&mut a, 0);
                            let out = a.zeroed::<ECCCIPHERBLOB>(pn as usize + 64);
                            SKF_ExtECCEncrypt(d, pk, p, pn, out);
                        }
                        1 => {
                            let pri: *mut ECCPRIVATEKEYBLOB = self.blob(&mut a, 0);
                            let ct = self.cipher_blob(&mut a, 0);
                            self.two_call(&mut a, |o, l| {
                                SKF_ExtECCDecrypt(d, pri, ct.cast(), o, l)
                            });
                        }
                        _ => {
                            let c = self.con();
                            let ct = self.cipher_blob(&mut a, 0);
                            self.two_call(&mut a, |o, l| SKF_ECCDecrypt(c, ct.cast(), o, l));
                        }
                    }
                }
                13 => {
                    let k = if self.r.bool() {
                        let d = self.dev();
                        let (kp, _) = if self.r.bool() {
                            a.buf(vec![0x42; 16])
                        } else {
                            (null_mut(), 0)
                        };
                        let alg = self.r.pick(SYM_ALGS);
                        let mut k: HANDLE = null_mut();
                        if SKF_SetSymmKey(d, kp, alg, &mut k) != SAR_OK {
                            return;
                        }
                        self.h.keys.push(k);
                        k
                    } else {
                        self.key()
                    };
                    let enc = self.r.bool();
                    let param = self.cipher_param();
                    let rv = if enc {
                        SKF_EncryptInit(k, param)
                    } else {
                        SKF_DecryptInit(k, param)
                    };
                    if rv != SAR_OK {
                        return;
                    }
                    for _ in 0..self.r.u8() % 3 {
                        let (d, dn) = self.data(&mut a);
                        if enc {
                            self.two_call(&mut a, |o, l| SKF_EncryptUpdate(k, d, dn, o, l));
                        } else {
                            self.two_call(&mut a, |o, l| SKF_DecryptUpdate(k, d, dn, o, l));
                        }
                    }
                    if self.r.bool() {
                        let (d, dn) = self.data(&mut a);
                        if enc {
                            self.two_call(&mut a, |o, l| SKF_Encrypt(k, d, dn, o, l));
                        } else {
                            self.two_call(&mut a, |o, l| SKF_Decrypt(k, d, dn, o, l));
                        }
                    } else if enc {
                        self.two_call(&mut a, |o, l| SKF_EncryptFinal(k, o, l));
                    } else {
                        self.two_call(&mut a, |o, l| SKF_DecryptFinal(k, o, l));
                    }
                }
                14 => {
                    let d = self.dev();
                    let alg = self.r.pick(ASYM_ALGS);
                    let pk: *mut ECCPUBLICKEYBLOB = self.blob(&mut a, 0);
                    let (id, idn) = self.data(&mut a);
                    let mut h: HANDLE = null_mut();
                    if SKF_DigestInit(d, alg, pk, id, idn, &mut h) != SAR_OK {
                        return;
                    }
                    self.h.keys.push(h);
                    for _ in 0..self.r.u8() % 3 {
                        let (x, xn) = self.data(&mut a);
                        SKF_DigestUpdate(h, x, xn);
                    }
                    if self.r.bool() {
                        let (x, xn) = self.data(&mut a);
                        self.two_call(&mut a, |o, l| SKF_Digest(h, x, xn, o, l));
                    } else {
                        self.two_call(&mut a, |o, l| SKF_DigestFinal(h, o, l));
                    }
                }
                15 => {
                    let k = self.key();
                    let mut param = self.cipher_param();
                    let pp = if self.r.u8().is_multiple_of(8) {
                        null_mut()
                    } else {
                        &mut param as *mut BLOCKCIPHERPARAM
                    };
                    let mut m: HANDLE = null_mut();
                    if SKF_MacInit(k, pp, &mut m) != SAR_OK {
                        return;
                    }
                    self.h.keys.push(m);
                    for _ in 0..self.r.u8() % 3 {
                        let (x, xn) = self.data(&mut a);
                        SKF_MacUpdate(m, x, xn);
                    }
                    if self.r.bool() {
                        let (x, xn) = self.data(&mut a);
                        self.two_call(&mut a, |o, l| SKF_Mac(m, x, xn, o, l));
                    } else {
                        self.two_call(&mut a, |o, l| SKF_MacFinal(m, o, l));
                    }
                }
                16 => {
                    let h = self.any();
                    SKF_CloseHandle(h);
                }
                17 => {
                    let d = self.dev();
                    let pk: *mut RSAPUBLICKEYBLOB = self.blob(&mut a, 0);
                    let (x, xn) = self.data(&mut a);
                    self.two_call(&mut a, |o, l| SKF_ExtRSAPubKeyOperation(d, pk, x, xn, o, l));
                    let (s, sn) = self.data(&mut a);
                    SKF_RSAVerify(d, pk, x, xn, s, sn);
                    let c = self.con();
                    let (w, wn) = self.data(&mut a);
                    let (e, en) = self.data(&mut a);
                    SKF_ImportRSAKeyPair(c, self.r.pick(SYM_ALGS), w, wn, e, en);
                }
                18 => {
                    let c = self.con();
                    let alg = self.r.pick(SYM_ALGS);
                    let tmp = a.zeroed::<ECCPUBLICKEYBLOB>(0);
                    let (id, idn) = self.data(&mut a);
                    if self.r.bool() {
                        let mut ah: HANDLE = null_mut();
                        if SKF_GenerateAgreementDataWithECC(c, alg, tmp, id, idn, &mut ah) == SAR_OK
                        {
                            self.h.keys.push(ah);
                            let pk: *mut ECCPUBLICKEYBLOB = self.blob(&mut a, 0);
                            let tk: *mut ECCPUBLICKEYBLOB = self.blob(&mut a, 0);
                            let (pid, pidn) = self.data(&mut a);
                            let mut k: HANDLE = null_mut();
                            if SKF_GenerateKeyWithECC(ah, pk, tk, pid, pidn, &mut k) == SAR_OK {
                                self.h.keys.push(k);
                            }
                        }
                    } else {
                        let spk: *mut ECCPUBLICKEYBLOB = self.blob(&mut a, 0);
                        let stk: *mut ECCPUBLICKEYBLOB = self.blob(&mut a, 0);
                        let (sid, sidn) = self.data(&mut a);
                        let mut k: HANDLE = null_mut();
                        if SKF_GenerateAgreementDataAndKeyWithECC(
                            c, alg, spk, stk, tmp, id, idn, sid, sidn, &mut k,
                        ) == SAR_OK
                        {
                            self.h.keys.push(k);
                        }
                    }
                }
                19 => {
                    let d = self.dev();
                    if SKF_LockDev(d, ULONG::from(self.r.u8() % 4)) == SAR_OK {
                        SKF_UnlockDev(d);
                    }
                    let (c, cn) = self.data(&mut a);
                    self.two_call(&mut a, |o, l| SKF_Transmit(d, c, cn, o, l));
                }
                20 => {
                    let d = self.dev();
                    let (p, n) = self.out(&mut a);
                    SKF_GenRandom(d, p, n);
                }
                _ => {
                    let c = self.con();
                    let (x, xn) = self.data(&mut a);
                    self.two_call(&mut a, |o, l| SKF_RSASignData(c, x, xn, o, l));
                }
            }
        }
    }
}
