//! A call-sequence interpreter for the PKCS#11 module, in the way of p11-kit's RPC fuzzer
//! and OpenSC's `fuzz_pkcs11`: the input is read as a sequence of `C_*` calls with their
//! arguments (session and object handles, live or stale or made up, templates, mechanism
//! parameters, output buffers that are NULL, short or large), run in-process against a
//! soft token in a scratch directory.
//!
//! Every pointer handed to the module is valid for the length it is given with (a caller
//! lying about lengths is the caller's undefined behaviour, not a module bug); NULL is
//! used freely. Invariants checked besides "no crash": a successful size query is honoured
//! by the next call; a sensitive or unextractable key never gives its value out.

use std::any::Any;
use std::ffi::c_void;
use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::{Arc, OnceLock};

use cryptoki_sys::*;
use token_hal::soft::SoftDevice;

use crate::Reader;

/// Vendor values of include/ukey_pkcs11.h.
mod vendor {
    use cryptoki_sys::CK_ULONG;
    pub const CKK_SM2: CK_ULONG = 0x8000_0004;
    pub const CKK_SM4: CK_ULONG = 0x8000_0002;
    pub const CKM_SM2: CK_ULONG = 0x8000_8000;
    pub const CKM_SM2_KEY_PAIR_GEN: CK_ULONG = 0x8000_8001;
    pub const CKM_SM3_SM2: CK_ULONG = 0x8000_8100;
    pub const CKM_SM2_ENCRYPT: CK_ULONG = 0x8000_8200;
    pub const CKM_SM3: CK_ULONG = 0x8000_0005;
    pub const CKM_SM4_KEY_GEN: CK_ULONG = 0x8000_0107;
    pub const CKM_SM4_ECB: CK_ULONG = 0x8000_0108;
    pub const CKM_SM4_CBC: CK_ULONG = 0x8000_0109;
    pub const CKM_SM4_MAC: CK_ULONG = 0x8000_010A;
    pub const CKM_SM4_MAC_GENERAL: CK_ULONG = 0x8000_010B;
    pub const CKM_UKEY_SM4_CBC_PAD: CK_ULONG = 0x8055_4B01;
    pub const CKM_UKEY_SM4_CTR: CK_ULONG = 0x8055_4B02;
    pub const CKM_UKEY_SM4_GCM: CK_ULONG = 0x8055_4B03;
    pub const CKM_UKEY_SM3_HMAC: CK_ULONG = 0x8055_4B04;
    pub const CKM_UKEY_SM2_KEY_EXCHANGE: CK_ULONG = 0x8055_4B05;
}
use vendor::*;

/// `CK_UKEY_SM2_EXCHANGE_PARAMS` (include/ukey_pkcs11.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct Sm2Exchange {
    is_initiator: CK_BBOOL,
    own_id: *mut u8,
    own_id_len: CK_ULONG,
    own_ephemeral: CK_OBJECT_HANDLE,
    peer_public: *mut u8,
    peer_public_len: CK_ULONG,
    peer_id: *mut u8,
    peer_id_len: CK_ULONG,
    peer_ephemeral: *mut u8,
    peer_ephemeral_len: CK_ULONG,
}

/// `CK_UKEY_SM2_EXCHANGE_CONFIRM_PARAMS`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Sm2ExchangeConfirm {
    base: Sm2Exchange,
    confirmation: *mut u8,
    confirmation_len: CK_ULONG,
    expected: *mut u8,
    expected_len: CK_ULONG,
    peer_confirmation: *mut u8,
    peer_confirmation_len: CK_ULONG,
}

const SM2_PARAMS: &[u8] = b"\x06\x08\x2a\x81\x1c\xcf\x55\x01\x82\x2d";
const P256_PARAMS: &[u8] = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";
const ED25519_PARAMS: &[u8] = b"\x06\x03\x2b\x65\x70";
const CERT_DER: &[u8] = include_bytes!("../data/sign.cert.der");

const ATTRS: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_APPLICATION,
    CKA_VALUE,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_SUBJECT,
    CKA_ID,
    CKA_KEY_TYPE,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_SIGN_RECOVER,
    CKA_DERIVE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_VALUE_LEN,
    CKA_EXTRACTABLE,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_DERIVE_TEMPLATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_CHECK_VALUE,
    CKA_START_DATE,
    CKA_KEY_GEN_MECHANISM,
    CKA_PUBLIC_KEY_INFO,
    CKA_VENDOR_DEFINED,
];

const ULONGS: &[CK_ULONG] = &[
    CKO_DATA,
    CKO_CERTIFICATE,
    CKO_PUBLIC_KEY,
    CKO_PRIVATE_KEY,
    CKO_SECRET_KEY,
    CKK_RSA,
    CKK_EC,
    CKK_AES,
    CKK_GENERIC_SECRET,
    CKK_EC_EDWARDS,
    CKK_SM2,
    CKK_SM4,
    CKC_X_509,
    16,
    32,
    0,
    2048,
    CK_UNAVAILABLE_INFORMATION,
];

const MECHS: &[CK_MECHANISM_TYPE] = &[
    CKM_AES_KEY_GEN,
    CKM_AES_ECB,
    CKM_AES_CBC,
    CKM_AES_CBC_PAD,
    CKM_AES_CTR,
    CKM_AES_GCM,
    CKM_AES_CMAC,
    CKM_AES_CMAC_GENERAL,
    CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_PAD,
    CKM_SHA_1,
    CKM_SHA256,
    CKM_SHA512,
    CKM_SHA256_HMAC,
    CKM_GENERIC_SECRET_KEY_GEN,
    CKM_EC_KEY_PAIR_GEN,
    CKM_ECDSA,
    CKM_ECDSA_SHA256,
    CKM_ECDH1_DERIVE,
    CKM_RSA_PKCS,
    CKM_RSA_PKCS_OAEP,
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS,
    CKM_EC_EDWARDS_KEY_PAIR_GEN,
    CKM_EDDSA,
    CKM_CONCATENATE_BASE_AND_DATA,
    CKM_CONCATENATE_BASE_AND_KEY,
    CKM_XOR_BASE_AND_DATA,
    CKM_EXTRACT_KEY_FROM_KEY,
    CKM_AES_ECB_ENCRYPT_DATA,
    CKM_AES_CBC_ENCRYPT_DATA,
    CKM_SP800_108_COUNTER_KDF,
    CKM_SP800_108_FEEDBACK_KDF,
    CKM_SP800_108_DOUBLE_PIPELINE_KDF,
    CKM_SM2,
    CKM_SM2_KEY_PAIR_GEN,
    CKM_SM3_SM2,
    CKM_SM2_ENCRYPT,
    CKM_SM3,
    CKM_SM4_KEY_GEN,
    CKM_SM4_ECB,
    CKM_SM4_CBC,
    CKM_SM4_MAC,
    CKM_SM4_MAC_GENERAL,
    CKM_UKEY_SM4_CBC_PAD,
    CKM_UKEY_SM4_CTR,
    CKM_UKEY_SM4_GCM,
    CKM_UKEY_SM3_HMAC,
    CKM_UKEY_SM2_KEY_EXCHANGE,
];

/// Owns everything pointed to during one call.
#[derive(Default)]
struct Arena {
    bufs: Vec<Vec<u8>>,
    other: Vec<Box<dyn Any>>,
}

impl Arena {
    fn buf(&mut self, v: Vec<u8>) -> (*mut u8, CK_ULONG) {
        let n = v.len() as CK_ULONG;
        self.bufs.push(v);
        let last = self.bufs.last_mut().expect("just pushed");
        if last.is_empty() {
            // A valid non-null pointer for zero bytes.
            (std::ptr::NonNull::dangling().as_ptr(), 0)
        } else {
            (last.as_mut_ptr(), n)
        }
    }
    fn keep<T: 'static>(&mut self, v: T) -> *mut T {
        let mut b = Box::new(v);
        let p: *mut T = &mut *b;
        self.other.push(b);
        p
    }
}

fn pod<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: `T` is a plain C structure or integer; its bytes are readable.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// What the input says the session is restricted to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Any call, in any order.
    Calls,
    /// A logged-in read/write session, then only the calls that take templates and
    /// mechanism parameters.
    Templates,
}

struct Env {
    fl: &'static CK_FUNCTION_LIST,
    dev: Arc<SoftDevice>,
    _dir: PathBuf,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // Once, before the module runs, while the fuzzer is single-threaded.
        let (dir, dev) = crate::library_env("p11");
        let mut fl: *mut CK_FUNCTION_LIST = null_mut();
        // SAFETY: a valid out pointer.
        let rv = unsafe { ukey_pkcs11::C_GetFunctionList(&mut fl) };
        assert_eq!(rv, CKR_OK);
        // SAFETY: the module's function list is a static.
        let fl = unsafe { &*fl };
        Env { fl, dev, _dir: dir }
    })
}

struct Run<'a> {
    fl: &'static CK_FUNCTION_LIST,
    r: Reader<'a>,
    slot: CK_SLOT_ID,
    sessions: Vec<CK_SESSION_HANDLE>,
    objects: Vec<CK_OBJECT_HANDLE>,
}

macro_rules! call {
    ($fl:expr, $f:ident ( $($a:expr),* )) => {
        // SAFETY: every pointer argument is null or valid for the length passed with it.
        unsafe { ($fl.$f.expect(stringify!($f)))($($a),*) }
    };
}

/// Runs one input against the module.
pub fn run(data: &[u8], profile: Profile) {
    let e = env();
    crate::reset_token(&*e.dev);
    let fl = e.fl;
    let rv = call!(fl, C_Initialize(null_mut()));
    assert_eq!(rv, CKR_OK, "C_Initialize");
    let mut slots = [0 as CK_SLOT_ID; 8];
    let mut n: CK_ULONG = slots.len() as CK_ULONG;
    let rv = call!(fl, C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n));
    assert_eq!(rv, CKR_OK, "C_GetSlotList");
    assert!(n >= 1, "the fuzz token has no slot");
    let mut run = Run {
        fl,
        r: Reader::new(data),
        slot: slots[0],
        sessions: Vec::new(),
        objects: Vec::new(),
    };
    if profile == Profile::Templates {
        let mut h = 0;
        let rv = call!(
            fl,
            C_OpenSession(
                run.slot,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                null_mut(),
                None,
                &mut h
            )
        );
        assert_eq!(rv, CKR_OK);
        run.sessions.push(h);
        let mut pin = crate::USER_PIN.to_vec();
        let rv = call!(
            fl,
            C_Login(h, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG)
        );
        assert_eq!(rv, CKR_OK);
    }
    let mut ops = 0;
    while !run.r.done() && ops < 64 {
        ops += 1;
        run.step(profile);
    }
    let rv = call!(fl, C_Finalize(null_mut()));
    assert_eq!(rv, CKR_OK, "C_Finalize");
}

impl Run<'_> {
    fn session(&mut self) -> CK_SESSION_HANDLE {
        let b = self.r.u8();
        if b < 0xF0 && !self.sessions.is_empty() {
            self.sessions[usize::from(b) % self.sessions.len()]
        } else {
            [0, 1, 0xFFFF_FFFF, CK_ULONG::from(self.r.u32())][usize::from(b & 3)]
        }
    }

    fn object(&mut self) -> CK_OBJECT_HANDLE {
        let b = self.r.u8();
        if b < 0xF0 && !self.objects.is_empty() {
            self.objects[usize::from(b) % self.objects.len()]
        } else {
            [0, 1, 0xFFFF_FFFF, CK_ULONG::from(self.r.u32())][usize::from(b & 3)]
        }
    }

    fn pin(&mut self, a: &mut Arena) -> (*mut u8, CK_ULONG) {
        match self.r.u8() % 6 {
            0 => a.buf(crate::USER_PIN.to_vec()),
            1 => a.buf(crate::SO_PIN.to_vec()),
            2 => a.buf(b"000000".to_vec()),
            3 => (null_mut(), 0),
            4 => (null_mut(), 6),
            _ => {
                let v = self.r.bytes(40);
                a.buf(v)
            }
        }
    }

    fn value(
        &mut self,
        a: &mut Arena,
        ty: CK_ATTRIBUTE_TYPE,
        depth: u8,
    ) -> (*mut c_void, CK_ULONG) {
        let (p, n) = match self.r.u8() % 8 {
            0 => a.buf(vec![self.r.u8() & 1]),
            1 => {
                let v = self.r.pick(ULONGS);
                a.buf(pod(&v))
            }
            2 => {
                let v = self.r.bytes(96);
                a.buf(v)
            }
            3 => (null_mut(), 0),
            4 => (null_mut(), CK_ULONG::from(self.r.u8())),
            5 => match ty {
                CKA_EC_PARAMS => {
                    let v = self.r.pick(&[SM2_PARAMS, P256_PARAMS, ED25519_PARAMS]);
                    a.buf(v.to_vec())
                }
                CKA_VALUE => a.buf(CERT_DER.to_vec()),
                CKA_ALLOWED_MECHANISMS => {
                    let ms: Vec<u8> = (0..self.r.u8() % 4)
                        .flat_map(|_| pod(&self.r.pick(MECHS)))
                        .collect();
                    a.buf(ms)
                }
                _ => {
                    let v = CK_ULONG::from(self.r.u32());
                    a.buf(pod(&v))
                }
            },
            6 if depth == 0 => {
                let (t, n) = self.template(a, 1);
                (t.cast::<u8>(), n * size_of::<CK_ATTRIBUTE>() as CK_ULONG)
            }
            _ => {
                let v = self.r.bytes(2048);
                a.buf(v)
            }
        };
        (p.cast::<c_void>(), n)
    }

    fn attr_type(&mut self) -> CK_ATTRIBUTE_TYPE {
        let b = self.r.u8();
        if b == 0xFF {
            CK_ULONG::from(self.r.u32())
        } else {
            ATTRS[usize::from(b) % ATTRS.len()]
        }
    }

    fn template(&mut self, a: &mut Arena, depth: u8) -> (*mut CK_ATTRIBUTE, CK_ULONG) {
        let n = self.r.u8() % 10;
        if n == 9 {
            return (null_mut(), CK_ULONG::from(self.r.u8() % 3));
        }
        let mut t = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let ty = self.attr_type();
            let (p, len) = self.value(a, ty, depth);
            t.push(CK_ATTRIBUTE {
                type_: ty,
                pValue: p,
                ulValueLen: len,
            });
        }
        let len = t.len() as CK_ULONG;
        let v = a.keep(t);
        // SAFETY: `v` points at the vector just kept alive in the arena.
        let ptr = unsafe { (*v).as_mut_ptr() };
        if len == 0 {
            (std::ptr::NonNull::dangling().as_ptr(), 0)
        } else {
            (ptr, len)
        }
    }

    fn mechanism(&mut self, a: &mut Arena) -> *mut CK_MECHANISM {
        let b = self.r.u8();
        let ty = if b == 0xFF {
            CK_ULONG::from(self.r.u32())
        } else {
            MECHS[usize::from(b) % MECHS.len()]
        };
        let (p, n): (*mut c_void, CK_ULONG) = match self.r.u8() % 5 {
            0 => (null_mut(), 0),
            1 => {
                // Raw bytes never have the size of a parameter structure that holds
                // pointers (all are multiples of 8, 16 bytes or more): the module would take
                // fuzz bytes for pointers, which is the caller's undefined behaviour.
                let mut v = self.r.bytes(64);
                if v.len() >= 16 && v.len() % 8 == 0 {
                    v.pop();
                }
                let (p, n) = a.buf(v);
                (p.cast(), n)
            }
            2 => (null_mut(), CK_ULONG::from(self.r.u8())),
            _ => self.mech_param(a, ty),
        };
        a.keep(CK_MECHANISM {
            mechanism: ty,
            pParameter: p,
            ulParameterLen: n,
        })
    }

    fn opt_buf(&mut self, a: &mut Arena, max: usize) -> (*mut u8, CK_ULONG) {
        if self.r.u8().is_multiple_of(5) {
            (null_mut(), 0)
        } else {
            let v = self.r.bytes(max);
            a.buf(v)
        }
    }

    fn mech_param(&mut self, a: &mut Arena, ty: CK_MECHANISM_TYPE) -> (*mut c_void, CK_ULONG) {
        fn s<T: 'static>(a: &mut Arena, v: T) -> (*mut c_void, CK_ULONG) {
            (a.keep(v).cast(), size_of::<T>() as CK_ULONG)
        }
        match ty {
            CKM_AES_GCM | CKM_UKEY_SM4_GCM => {
                let (iv, iv_len) = self.opt_buf(a, 32);
                let (aad, aad_len) = self.opt_buf(a, 64);
                let bits = CK_ULONG::from(self.r.pick(&[128u8, 96, 64, 32, 0, 255]));
                s(
                    a,
                    CK_GCM_PARAMS {
                        pIv: iv,
                        ulIvLen: iv_len,
                        ulIvBits: iv_len * 8,
                        pAAD: aad,
                        ulAADLen: aad_len,
                        ulTagBits: bits,
                    },
                )
            }
            CKM_AES_CTR | CKM_UKEY_SM4_CTR => {
                let mut cb = [0u8; 16];
                cb.iter_mut().for_each(|b| *b = self.r.u8());
                s(
                    a,
                    CK_AES_CTR_PARAMS {
                        ulCounterBits: CK_ULONG::from(self.r.u8()),
                        cb,
                    },
                )
            }
            CKM_RSA_PKCS_OAEP => {
                let (l, ln) = self.opt_buf(a, 32);
                s(
                    a,
                    CK_RSA_PKCS_OAEP_PARAMS {
                        hashAlg: self.r.pick(&[CKM_SHA_1, CKM_SHA256, CKM_SHA512, CKM_SM3]),
                        mgf: self.r.pick(&[CKG_MGF1_SHA1, CKG_MGF1_SHA256, 0]),
                        source: self.r.pick(&[CKZ_DATA_SPECIFIED, 0, 7]),
                        pSourceData: l.cast(),
                        ulSourceDataLen: ln,
                    },
                )
            }
            CKM_RSA_PKCS_PSS => s(
                a,
                CK_RSA_PKCS_PSS_PARAMS {
                    hashAlg: self.r.pick(&[CKM_SHA_1, CKM_SHA256, CKM_SHA512]),
                    mgf: self.r.pick(&[CKG_MGF1_SHA1, CKG_MGF1_SHA256, 0]),
                    sLen: CK_ULONG::from(self.r.u16()),
                },
            ),
            CKM_ECDH1_DERIVE => {
                let (sh, shn) = self.opt_buf(a, 32);
                let (pb, pbn) = self.opt_buf(a, 140);
                s(
                    a,
                    CK_ECDH1_DERIVE_PARAMS {
                        kdf: self.r.pick(&[CKD_NULL, CKD_SHA256_KDF, 77]),
                        ulSharedDataLen: shn,
                        pSharedData: sh,
                        ulPublicDataLen: pbn,
                        pPublicData: pb,
                    },
                )
            }
            CKM_EDDSA => {
                let (c, cn) = self.opt_buf(a, 300);
                s(
                    a,
                    CK_EDDSA_PARAMS {
                        phFlag: self.r.u8() & 1,
                        ulContextDataLen: cn,
                        pContextData: c,
                    },
                )
            }
            CKM_CONCATENATE_BASE_AND_DATA
            | CKM_CONCATENATE_DATA_AND_BASE
            | CKM_XOR_BASE_AND_DATA
            | CKM_AES_ECB_ENCRYPT_DATA => {
                let (d, dn) = self.opt_buf(a, 64);
                s(
                    a,
                    CK_KEY_DERIVATION_STRING_DATA {
                        pData: d,
                        ulLen: dn,
                    },
                )
            }
            CKM_CONCATENATE_BASE_AND_KEY => {
                let h = self.object();
                s(a, h)
            }
            CKM_EXTRACT_KEY_FROM_KEY | CKM_AES_CMAC_GENERAL | CKM_SM4_MAC_GENERAL => {
                let v = CK_ULONG::from(self.r.u16());
                s(a, v)
            }
            CKM_AES_CBC_ENCRYPT_DATA => {
                let mut iv = [0u8; 16];
                iv.iter_mut().for_each(|b| *b = self.r.u8());
                let (d, dn) = self.opt_buf(a, 64);
                s(
                    a,
                    CK_AES_CBC_ENCRYPT_DATA_PARAMS {
                        iv,
                        pData: d,
                        length: dn,
                    },
                )
            }
            CKM_SP800_108_COUNTER_KDF
            | CKM_SP800_108_FEEDBACK_KDF
            | CKM_SP800_108_DOUBLE_PIPELINE_KDF => {
                let mut data = Vec::new();
                for _ in 0..self.r.u8() % 5 {
                    let kind = self.r.pick(&[
                        CK_SP800_108_ITERATION_VARIABLE,
                        CK_SP800_108_COUNTER,
                        CK_SP800_108_DKM_LENGTH,
                        CK_SP800_108_BYTE_ARRAY,
                        9,
                    ]);
                    let (p, n): (*mut c_void, CK_ULONG) = match kind {
                        CK_SP800_108_ITERATION_VARIABLE | CK_SP800_108_COUNTER if self.r.bool() => {
                            s(
                                a,
                                CK_SP800_108_COUNTER_FORMAT {
                                    bLittleEndian: self.r.u8() & 1,
                                    ulWidthInBits: CK_ULONG::from(self.r.u8()),
                                },
                            )
                        }
                        CK_SP800_108_DKM_LENGTH if self.r.bool() => s(
                            a,
                            CK_SP800_108_DKM_LENGTH_FORMAT {
                                dkmLengthMethod: CK_ULONG::from(self.r.u8() % 3),
                                bLittleEndian: self.r.u8() & 1,
                                ulWidthInBits: CK_ULONG::from(self.r.u8()),
                            },
                        ),
                        _ => {
                            let (p, n) = self.opt_buf(a, 32);
                            (p.cast(), n)
                        }
                    };
                    data.push(CK_PRF_DATA_PARAM {
                        type_: kind,
                        pValue: p,
                        ulValueLen: n,
                    });
                }
                let nd = data.len() as CK_ULONG;
                let dp = a.keep(data);
                // SAFETY: kept alive in the arena.
                let dptr = unsafe { (*dp).as_mut_ptr() };
                let mut extra = Vec::new();
                for _ in 0..self.r.u8() % 3 {
                    let (t, tn) = self.template(a, 1);
                    let h = a.keep(0 as CK_OBJECT_HANDLE);
                    extra.push(CK_DERIVED_KEY {
                        pTemplate: t,
                        ulAttributeCount: tn,
                        phKey: if self.r.u8() == 0 { null_mut() } else { h },
                    });
                }
                let ne = extra.len() as CK_ULONG;
                let ep = a.keep(extra);
                // SAFETY: kept alive in the arena.
                let eptr = unsafe { (*ep).as_mut_ptr() };
                let prf = self.r.pick(&[
                    CKM_SHA256_HMAC,
                    CKM_AES_CMAC,
                    CKM_SHA_1_HMAC,
                    CKM_UKEY_SM3_HMAC,
                    0,
                ]);
                if ty == CKM_SP800_108_FEEDBACK_KDF {
                    let (iv, ivn) = self.opt_buf(a, 32);
                    s(
                        a,
                        CK_SP800_108_FEEDBACK_KDF_PARAMS {
                            prfType: prf,
                            ulNumberOfDataParams: nd,
                            pDataParams: dptr,
                            ulIVLen: ivn,
                            pIV: iv,
                            ulAdditionalDerivedKeys: ne,
                            pAdditionalDerivedKeys: eptr,
                        },
                    )
                } else {
                    s(
                        a,
                        CK_SP800_108_KDF_PARAMS {
                            prfType: prf,
                            ulNumberOfDataParams: nd,
                            pDataParams: dptr,
                            ulAdditionalDerivedKeys: ne,
                            pAdditionalDerivedKeys: eptr,
                        },
                    )
                }
            }
            CKM_UKEY_SM2_KEY_EXCHANGE => {
                let (oi, oin) = self.opt_buf(a, 32);
                let (pp, ppn) = self.opt_buf(a, 70);
                let (pi, pin) = self.opt_buf(a, 32);
                let (pe, pen) = self.opt_buf(a, 70);
                let base = Sm2Exchange {
                    is_initiator: self.r.u8() & 1,
                    own_id: oi,
                    own_id_len: oin,
                    own_ephemeral: self.object(),
                    peer_public: pp,
                    peer_public_len: ppn,
                    peer_id: pi,
                    peer_id_len: pin,
                    peer_ephemeral: pe,
                    peer_ephemeral_len: pen,
                };
                if self.r.bool() {
                    let (c, cn) = self.opt_buf(a, 40);
                    let (x, xn) = self.opt_buf(a, 40);
                    let (p, pn) = self.opt_buf(a, 40);
                    s(
                        a,
                        Sm2ExchangeConfirm {
                            base,
                            confirmation: c,
                            confirmation_len: cn,
                            expected: x,
                            expected_len: xn,
                            peer_confirmation: p,
                            peer_confirmation_len: pn,
                        },
                    )
                } else {
                    s(a, base)
                }
            }
            _ => {
                let v = self.r.bytes(32);
                let (p, n) = a.buf(v);
                (p.cast(), n)
            }
        }
    }

    /// An output buffer: NULL (a size query), or a buffer of a chosen size.
    fn out(&mut self, a: &mut Arena) -> (*mut u8, CK_ULONG) {
        match self.r.u8() % 4 {
            0 => (null_mut(), 0),
            1 => a.buf(vec![0; usize::from(self.r.u8() % 64)]),
            _ => a.buf(vec![0; 4096]),
        }
    }

    /// Calls `f(out, &mut len)`; after a successful size query, checks that a buffer of the
    /// announced size is accepted.
    fn two_call(&mut self, a: &mut Arena, mut f: impl FnMut(*mut u8, *mut CK_ULONG) -> CK_RV) {
        let (p, n) = self.out(a);
        let mut len = n;
        let rv = f(p, &mut len);
        if p.is_null() && rv == CKR_OK {
            assert!(len < 1 << 24, "an absurd announced length {len}");
            let (p2, _) = a.buf(vec![0; len as usize]);
            let mut len2 = len;
            let rv2 = f(p2, &mut len2);
            assert_ne!(
                rv2, CKR_BUFFER_TOO_SMALL,
                "the announced length {len} was too small"
            );
            if rv2 == CKR_OK {
                assert!(len2 <= len);
            }
        } else if rv == CKR_OK {
            assert!(len <= n, "wrote {len} bytes into {n}");
        }
    }

    fn data(&mut self, a: &mut Arena) -> (*mut u8, CK_ULONG) {
        match self.r.u8() % 8 {
            0 => (null_mut(), 0),
            1 => (null_mut(), 16),
            2 => a.buf(vec![0x11; 16]),
            3 => a.buf(vec![0x22; 32]),
            _ => {
                let v = self.r.bytes(300);
                a.buf(v)
            }
        }
    }

    fn step(&mut self, profile: Profile) {
        let fl = self.fl;
        let mut a = Arena::default();
        let op = self.r.u8();
        let op = if profile == Profile::Templates {
            [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 18, 19, 20][usize::from(op) % 15]
        } else {
            op % 32
        };
        match op {
            0 => {
                let flags = self.r.pick(&[
                    CKF_SERIAL_SESSION | CKF_RW_SESSION,
                    CKF_SERIAL_SESSION,
                    0,
                    CKF_RW_SESSION,
                ]);
                let slot = if self.r.u8() == 0xFF {
                    CK_ULONG::from(self.r.u32())
                } else {
                    self.slot
                };
                let mut h = 0;
                if call!(fl, C_OpenSession(slot, flags, null_mut(), None, &mut h)) == CKR_OK {
                    self.sessions.push(h);
                }
            }
            1 => {
                let s = self.session();
                call!(fl, C_CloseSession(s));
            }
            2 => {
                let s = self.session();
                let who = self.r.pick(&[CKU_USER, CKU_SO, CKU_CONTEXT_SPECIFIC, 7]);
                let (p, n) = self.pin(&mut a);
                call!(fl, C_Login(s, who, p, n));
            }
            3 => {
                let s = self.session();
                call!(fl, C_Logout(s));
            }
            4 => {
                let s = self.session();
                let (t, n) = self.template(&mut a, 0);
                let mut h = 0;
                if call!(fl, C_CreateObject(s, t, n, &mut h)) == CKR_OK {
                    self.objects.push(h);
                }
            }
            5 => {
                let s = self.session();
                let (t, n) = self.template(&mut a, 0);
                if call!(fl, C_FindObjectsInit(s, t, n)) == CKR_OK {
                    let mut found = [0 as CK_OBJECT_HANDLE; 16];
                    let mut k: CK_ULONG = 0;
                    let max = CK_ULONG::from(self.r.u8() % 17);
                    let rv = call!(fl, C_FindObjects(s, found.as_mut_ptr(), max, &mut k));
                    if rv == CKR_OK {
                        assert!(k <= max);
                        self.objects.extend_from_slice(&found[..k as usize]);
                    }
                    call!(fl, C_FindObjectsFinal(s));
                }
            }
            6 => self.get_attributes(&mut a),
            7 => {
                let s = self.session();
                let o = self.object();
                let (t, n) = self.template(&mut a, 0);
                call!(fl, C_SetAttributeValue(s, o, t, n));
            }
            8 => {
                let s = self.session();
                let o = self.object();
                let (t, n) = self.template(&mut a, 0);
                let mut h = 0;
                if call!(fl, C_CopyObject(s, o, t, n, &mut h)) == CKR_OK {
                    self.objects.push(h);
                }
            }
            9 => {
                let s = self.session();
                let o = self.object();
                call!(fl, C_DestroyObject(s, o));
            }
            10 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                let (t, n) = self.template(&mut a, 0);
                let mut h = 0;
                if call!(fl, C_GenerateKey(s, m, t, n, &mut h)) == CKR_OK {
                    self.objects.push(h);
                }
            }
            11 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                // No RSA key generation: far too slow for a fuzzer.
                // SAFETY: `m` points into the arena.
                if unsafe { (*m).mechanism } == CKM_RSA_PKCS_KEY_PAIR_GEN {
                    return;
                }
                let (pt, pn) = self.template(&mut a, 0);
                let (st, sn) = self.template(&mut a, 0);
                let (mut hp, mut hs) = (0, 0);
                if call!(
                    fl,
                    C_GenerateKeyPair(s, m, pt, pn, st, sn, &mut hp, &mut hs)
                ) == CKR_OK
                {
                    self.objects.push(hp);
                    self.objects.push(hs);
                }
            }
            12 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                let k = self.object();
                if call!(fl, C_EncryptInit(s, m, k)) == CKR_OK {
                    let (d, dn) = self.data(&mut a);
                    self.two_call(&mut a, |p, l| call!(fl, C_Encrypt(s, d, dn, p, l)));
                }
            }
            13 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                let k = self.object();
                if call!(fl, C_DecryptInit(s, m, k)) == CKR_OK {
                    let (d, dn) = self.data(&mut a);
                    self.two_call(&mut a, |p, l| call!(fl, C_Decrypt(s, d, dn, p, l)));
                }
            }
            14 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                let k = self.object();
                if call!(fl, C_SignInit(s, m, k)) == CKR_OK {
                    let (d, dn) = self.data(&mut a);
                    self.two_call(&mut a, |p, l| call!(fl, C_Sign(s, d, dn, p, l)));
                }
            }
            15 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                let k = self.object();
                if call!(fl, C_VerifyInit(s, m, k)) == CKR_OK {
                    let (d, dn) = self.data(&mut a);
                    let (g, gn) = self.data(&mut a);
                    call!(fl, C_Verify(s, d, dn, g, gn));
                }
            }
            16 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                if call!(fl, C_DigestInit(s, m)) == CKR_OK {
                    let (d, dn) = self.data(&mut a);
                    self.two_call(&mut a, |p, l| call!(fl, C_Digest(s, d, dn, p, l)));
                }
            }
            17 => self.multi_part(&mut a),
            18 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                let w = self.object();
                let k = self.object();
                self.two_call(&mut a, |p, l| call!(fl, C_WrapKey(s, m, w, k, p, l)));
            }
            19 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                let w = self.object();
                let (d, dn) = self.data(&mut a);
                let (t, n) = self.template(&mut a, 0);
                let mut h = 0;
                if call!(fl, C_UnwrapKey(s, m, w, d, dn, t, n, &mut h)) == CKR_OK {
                    self.objects.push(h);
                }
            }
            20 => {
                let s = self.session();
                let m = self.mechanism(&mut a);
                let b = self.object();
                let (t, n) = self.template(&mut a, 0);
                let mut h = 0;
                if call!(fl, C_DeriveKey(s, m, b, t, n, &mut h)) == CKR_OK {
                    self.objects.push(h);
                }
            }
            21 => {
                let s = self.session();
                let (p, n) = self.out(&mut a);
                call!(fl, C_GenerateRandom(s, p, n));
                let (d, dn) = self.data(&mut a);
                call!(fl, C_SeedRandom(s, d, dn));
            }
            22 => {
                let mut n: CK_ULONG = 0;
                let slot = if self.r.bool() {
                    self.slot
                } else {
                    CK_ULONG::from(self.r.u32())
                };
                if call!(fl, C_GetMechanismList(slot, null_mut(), &mut n)) == CKR_OK {
                    let mut v = vec![0 as CK_MECHANISM_TYPE; n as usize];
                    let mut n2 = n;
                    assert_eq!(
                        call!(fl, C_GetMechanismList(slot, v.as_mut_ptr(), &mut n2)),
                        CKR_OK
                    );
                    assert_eq!(n2, n);
                    for m in v {
                        let mut info: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
                        assert_eq!(call!(fl, C_GetMechanismInfo(slot, m, &mut info)), CKR_OK);
                    }
                }
                let mut ti: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
                call!(fl, C_GetTokenInfo(slot, &mut ti));
                let mut si: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
                call!(fl, C_GetSlotInfo(slot, &mut si));
                call!(fl, C_GetTokenInfo(slot, null_mut()));
            }
            23 => {
                let s = self.session();
                let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
                call!(fl, C_GetSessionInfo(s, &mut info));
                call!(fl, C_GetSessionInfo(s, null_mut()));
            }
            24 => {
                let s = self.session();
                let (p, n) = self.pin(&mut a);
                call!(fl, C_InitPIN(s, p, n));
            }
            25 => {
                let s = self.session();
                let (o, on) = self.pin(&mut a);
                let (p, n) = self.pin(&mut a);
                call!(fl, C_SetPIN(s, o, on, p, n));
            }
            26 => {
                call!(fl, C_CloseAllSessions(self.slot));
            }
            27 => {
                // Finalize and start again: every handle held goes stale.
                assert_eq!(call!(fl, C_Finalize(null_mut())), CKR_OK);
                assert_eq!(call!(fl, C_Initialize(null_mut())), CKR_OK);
            }
            28 => {
                let s = self.session();
                self.two_call(&mut a, |p, l| call!(fl, C_GetOperationState(s, p, l)));
            }
            29 => {
                let (p, n) = self.pin(&mut a);
                let mut label = [b' '; 32];
                let l = self.r.bytes(32);
                label[..l.len()].copy_from_slice(&l);
                call!(fl, C_InitToken(self.slot, p, n, label.as_mut_ptr()));
            }
            30 => {
                let s = self.session();
                let o = self.object();
                let mut size: CK_ULONG = 0;
                call!(fl, C_GetObjectSize(s, o, &mut size));
            }
            _ => {
                let s = self.session();
                call!(fl, C_GetFunctionStatus(s));
                call!(fl, C_CancelFunction(s));
            }
        }
    }

    fn multi_part(&mut self, a: &mut Arena) {
        let fl = self.fl;
        let s = self.session();
        let m = self.mechanism(a);
        let k = self.object();
        let kind = self.r.u8() % 5;
        let rv = match kind {
            0 => call!(fl, C_EncryptInit(s, m, k)),
            1 => call!(fl, C_DecryptInit(s, m, k)),
            2 => call!(fl, C_SignInit(s, m, k)),
            3 => call!(fl, C_VerifyInit(s, m, k)),
            _ => call!(fl, C_DigestInit(s, m)),
        };
        if rv != CKR_OK {
            return;
        }
        for _ in 0..self.r.u8() % 4 {
            let (d, dn) = self.data(a);
            match kind {
                0 => self.two_call(a, |p, l| call!(fl, C_EncryptUpdate(s, d, dn, p, l))),
                1 => self.two_call(a, |p, l| call!(fl, C_DecryptUpdate(s, d, dn, p, l))),
                2 => {
                    call!(fl, C_SignUpdate(s, d, dn));
                }
                3 => {
                    call!(fl, C_VerifyUpdate(s, d, dn));
                }
                _ => {
                    call!(fl, C_DigestUpdate(s, d, dn));
                    let k2 = self.object();
                    call!(fl, C_DigestKey(s, k2));
                }
            }
        }
        match kind {
            0 => self.two_call(a, |p, l| call!(fl, C_EncryptFinal(s, p, l))),
            1 => self.two_call(a, |p, l| call!(fl, C_DecryptFinal(s, p, l))),
            2 => self.two_call(a, |p, l| call!(fl, C_SignFinal(s, p, l))),
            3 => {
                let (g, gn) = self.data(a);
                call!(fl, C_VerifyFinal(s, g, gn));
            }
            _ => self.two_call(a, |p, l| call!(fl, C_DigestFinal(s, p, l))),
        }
    }

    /// `C_GetAttributeValue` with NULL, short and large buffers; a sensitive or
    /// unextractable key must not give its value out.
    fn get_attributes(&mut self, a: &mut Arena) {
        let fl = self.fl;
        let s = self.session();
        let o = self.object();
        let n = self.r.u8() % 8;
        let mut t = Vec::new();
        for _ in 0..n {
            let ty = self.attr_type();
            let (p, len) = match self.r.u8() % 3 {
                0 => (null_mut(), 0),
                1 => a.buf(vec![0; usize::from(self.r.u8() % 16)]),
                _ => a.buf(vec![0; 4096]),
            };
            t.push(CK_ATTRIBUTE {
                type_: ty,
                pValue: p.cast(),
                ulValueLen: len,
            });
        }
        let sizes: Vec<CK_ULONG> = t.iter().map(|x| x.ulValueLen).collect();
        let rv = call!(
            fl,
            C_GetAttributeValue(s, o, t.as_mut_ptr(), t.len() as CK_ULONG)
        );
        if !matches!(
            rv,
            CKR_OK | CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID | CKR_BUFFER_TOO_SMALL
        ) {
            return;
        }
        for (x, cap) in t.iter().zip(sizes) {
            if !x.pValue.is_null() && x.ulValueLen != CK_UNAVAILABLE_INFORMATION {
                assert!(
                    x.ulValueLen <= cap,
                    "attribute {:#x}: {} bytes written into {cap}",
                    x.type_,
                    x.ulValueLen
                );
            }
        }
        // The object's class and protection flags, read on their own.
        let mut class: CK_ULONG = CK_UNAVAILABLE_INFORMATION;
        let (mut sens, mut extr) = (0u8, 1u8);
        let mut q = [
            CK_ATTRIBUTE {
                type_: CKA_CLASS,
                pValue: (&mut class as *mut CK_ULONG).cast(),
                ulValueLen: size_of::<CK_ULONG>() as CK_ULONG,
            },
            CK_ATTRIBUTE {
                type_: CKA_SENSITIVE,
                pValue: (&mut sens as *mut u8).cast(),
                ulValueLen: 1,
            },
            CK_ATTRIBUTE {
                type_: CKA_EXTRACTABLE,
                pValue: (&mut extr as *mut u8).cast(),
                ulValueLen: 1,
            },
        ];
        let rv = call!(fl, C_GetAttributeValue(s, o, q.as_mut_ptr(), 3));
        let protected = rv == CKR_OK
            && (class == CKO_SECRET_KEY || class == CKO_PRIVATE_KEY)
            && (sens != 0 || extr == 0);
        if protected {
            for x in &t {
                if matches!(x.type_, CKA_VALUE | CKA_PRIVATE_EXPONENT | CKA_PRIME_1) {
                    assert_eq!(
                        x.ulValueLen, CK_UNAVAILABLE_INFORMATION,
                        "a protected key gave out attribute {:#x}",
                        x.type_
                    );
                }
            }
        }
    }
}
