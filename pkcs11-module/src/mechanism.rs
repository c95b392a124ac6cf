//! Mechanisms: the vendor values for SM2/SM3/SM4, the table behind `C_GetMechanismList` /
//! `C_GetMechanismInfo`, and the parsed form of a `CK_MECHANISM`.

use cryptoki_sys::*;
use zeroize::Zeroizing;

/// Vendor-defined values (include/ukey_pkcs11.h). TASS values where TASS defines one; the
/// rest in the ukey block 0x80554Bxx ("UK"), which neither TASS nor SANSEC uses.
pub(crate) mod vendor {
    use cryptoki_sys::{CK_ATTRIBUTE_TYPE, CK_KEY_TYPE, CK_MECHANISM_TYPE};
    pub const CKK_SM2: CK_KEY_TYPE = 0x8000_0004;
    pub const CKK_SM4: CK_KEY_TYPE = 0x8000_0002;
    pub const CKM_SM2: CK_MECHANISM_TYPE = 0x8000_8000;
    pub const CKM_SM2_KEY_PAIR_GEN: CK_MECHANISM_TYPE = 0x8000_8001;
    pub const CKM_SM3_SM2: CK_MECHANISM_TYPE = 0x8000_8100;
    pub const CKM_SM2_ENCRYPT: CK_MECHANISM_TYPE = 0x8000_8200;
    pub const CKM_SM3: CK_MECHANISM_TYPE = 0x8000_0005;
    pub const CKM_SM4_KEY_GEN: CK_MECHANISM_TYPE = 0x8000_0107;
    pub const CKM_SM4_ECB: CK_MECHANISM_TYPE = 0x8000_0108;
    pub const CKM_SM4_CBC: CK_MECHANISM_TYPE = 0x8000_0109;
    pub const CKM_SM4_MAC: CK_MECHANISM_TYPE = 0x8000_010A;
    pub const CKM_SM4_MAC_GENERAL: CK_MECHANISM_TYPE = 0x8000_010B;
    pub const CKM_UKEY_SM4_CBC_PAD: CK_MECHANISM_TYPE = 0x8055_4B01;
    pub const CKM_UKEY_SM4_CTR: CK_MECHANISM_TYPE = 0x8055_4B02;
    pub const CKM_UKEY_SM4_GCM: CK_MECHANISM_TYPE = 0x8055_4B03;
    pub const CKM_UKEY_SM3_HMAC: CK_MECHANISM_TYPE = 0x8055_4B04;
    /// SM2 key exchange (GB/T 32918.3) through `C_DeriveKey`; parameter
    /// [`super::Sm2ExchangeParams`] (`CK_UKEY_SM2_EXCHANGE_PARAMS` in ukey_pkcs11.h).
    pub const CKM_UKEY_SM2_KEY_EXCHANGE: CK_MECHANISM_TYPE = 0x8055_4B05;
    /// Internal: the PKCS#8 form of a private key (sealed; never readable).
    pub const CKA_UKEY_PKCS8: CK_ATTRIBUTE_TYPE = 0x8055_4B80;
    /// Internal: the role a key is latched to (1 = encrypt/decrypt, 2 = wrap/unwrap).
    pub const CKA_UKEY_ROLE: CK_ATTRIBUTE_TYPE = 0x8055_4B81;
    /// Internal: an overlay record's binding to its container key (src/landing.rs).
    pub const CKA_UKEY_OVERLAY: CK_ATTRIBUTE_TYPE = 0x8055_4B82;
    /// Internal: this half of a container key pair was destroyed through PKCS#11.
    pub const CKA_UKEY_HIDDEN: CK_ATTRIBUTE_TYPE = 0x8055_4B83;
    /// Internal: PKCS#11 made the container for this key (it goes when emptied).
    pub const CKA_UKEY_OWNS_CONTAINER: CK_ATTRIBUTE_TYPE = 0x8055_4B84;
    /// Internal, in memory only: the object id of a container key's overlay.
    pub const CKA_UKEY_OVERLAY_ID: CK_ATTRIBUTE_TYPE = 0x8055_4B85;
    /// The range of internal attributes: never readable, never in a template.
    pub const CKA_UKEY_INTERNAL: std::ops::RangeInclusive<CK_ATTRIBUTE_TYPE> =
        0x8055_4B80..=0x8055_4BFF;
}
use vendor::*;

/// The SANSEC value set (`[pkcs11] vendor_values = "sansec"`): the values that differ
/// from TASS, as (internal, SANSEC). SANSEC's 0x8000010A is SM4-CTR, so SM4-MAC moves to
/// the ukey block there.
const SANSEC_MECHS: &[(CK_MECHANISM_TYPE, CK_MECHANISM_TYPE)] = &[
    (CKM_SM2, 0x8000_8104),
    (CKM_SM3, 0x8000_9001),
    (CKM_UKEY_SM4_CTR, 0x8000_010A),
    (CKM_SM4_MAC, 0x8055_4B06),
];
const SANSEC_KEYS: &[(CK_KEY_TYPE, CK_KEY_TYPE)] = &[(CKK_SM4, 0x8000_0106)];

static SANSEC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Selects the vendor value set for this process (at `C_Initialize`).
pub(crate) fn select_vendor_values(sansec: bool) {
    SANSEC.store(sansec, std::sync::atomic::Ordering::Relaxed);
}

fn map(table: &[(CK_ULONG, CK_ULONG)], v: CK_ULONG, outward: bool) -> CK_ULONG {
    if !SANSEC.load(std::sync::atomic::Ordering::Relaxed) {
        return v;
    }
    for (internal, external) in table {
        if outward && v == *internal {
            return *external;
        }
        if !outward && v == *external {
            return *internal;
        }
    }
    // A TASS value that SANSEC gives another meaning is not understood inward.
    if !outward && table.iter().any(|(i, _)| *i == v) {
        return CKM_VENDOR_DEFINED | 0x0055_4BFF;
    }
    v
}

/// A caller's mechanism value → the internal one.
pub(crate) fn mech_in(m: CK_MECHANISM_TYPE) -> CK_MECHANISM_TYPE {
    map(SANSEC_MECHS, m, false)
}
/// An internal mechanism value → the caller's.
pub(crate) fn mech_out(m: CK_MECHANISM_TYPE) -> CK_MECHANISM_TYPE {
    map(SANSEC_MECHS, m, true)
}
/// A caller's key type → the internal one.
pub(crate) fn key_type_in(k: CK_KEY_TYPE) -> CK_KEY_TYPE {
    map(SANSEC_KEYS, k, false)
}
/// An internal key type → the caller's.
pub(crate) fn key_type_out(k: CK_KEY_TYPE) -> CK_KEY_TYPE {
    map(SANSEC_KEYS, k, true)
}

/// Rewrites the value of a mechanism- or key-type-valued attribute, inward or outward.
/// A caller's attribute value, translated inward like [`translate_attr`].
pub(crate) fn translated_attr(ty: CK_ATTRIBUTE_TYPE, v: &[u8]) -> crate::object::AttrVal {
    match ty {
        CKA_KEY_TYPE | CKA_KEY_GEN_MECHANISM | CKA_ALLOWED_MECHANISMS => {
            let mut v = zeroize::Zeroizing::new(v.to_vec());
            translate_attr(ty, &mut v, false);
            v.into()
        }
        _ => crate::object::AttrVal::new(v),
    }
}

pub(crate) fn translate_attr(ty: CK_ATTRIBUTE_TYPE, v: &mut [u8], outward: bool) {
    const N: usize = std::mem::size_of::<CK_ULONG>();
    let f: fn(CK_ULONG) -> CK_ULONG = match (ty, outward) {
        (CKA_KEY_TYPE, false) => key_type_in,
        (CKA_KEY_TYPE, true) => key_type_out,
        (CKA_KEY_GEN_MECHANISM | CKA_ALLOWED_MECHANISMS, false) => mech_in,
        (CKA_KEY_GEN_MECHANISM | CKA_ALLOWED_MECHANISMS, true) => mech_out,
        _ => return,
    };
    for c in v.chunks_exact_mut(N) {
        let mut b = [0u8; N];
        b.copy_from_slice(c);
        c.copy_from_slice(&f(CK_ULONG::from_ne_bytes(b)).to_ne_bytes());
    }
}

/// One row of the mechanism table.
pub(crate) struct MechRow {
    pub ty: CK_MECHANISM_TYPE,
    pub name: &'static str,
    pub min: CK_ULONG,
    pub max: CK_ULONG,
    pub flags: CK_FLAGS,
}

const ENC: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
const SV: CK_FLAGS = CKF_SIGN | CKF_VERIFY | CKF_MESSAGE_SIGN | CKF_MESSAGE_VERIFY;
const WR: CK_FLAGS = CKF_WRAP | CKF_UNWRAP;
const EC_F: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

macro_rules! rows {
    ($($ty:expr, $name:literal, $min:expr, $max:expr, $flags:expr;)*) => {
        &[$(MechRow { ty: $ty, name: $name, min: $min, max: $max, flags: $flags }),*]
    };
}

/// Every mechanism the module offers, with key sizes (bits for RSA/EC, bytes otherwise).
pub(crate) static TABLE: &[MechRow] = rows![
    CKM_MD5, "CKM_MD5", 0, 0, CKF_DIGEST;
    CKM_SHA_1, "CKM_SHA_1", 0, 0, CKF_DIGEST;
    CKM_SHA224, "CKM_SHA224", 0, 0, CKF_DIGEST;
    CKM_SHA256, "CKM_SHA256", 0, 0, CKF_DIGEST;
    CKM_SHA384, "CKM_SHA384", 0, 0, CKF_DIGEST;
    CKM_SHA512, "CKM_SHA512", 0, 0, CKF_DIGEST;
    CKM_SM3, "CKM_SM3", 0, 0, CKF_DIGEST;
    CKM_SHA_1_HMAC, "CKM_SHA_1_HMAC", 1, 512, SV;
    CKM_SHA224_HMAC, "CKM_SHA224_HMAC", 1, 512, SV;
    CKM_SHA256_HMAC, "CKM_SHA256_HMAC", 1, 512, SV;
    CKM_SHA384_HMAC, "CKM_SHA384_HMAC", 1, 512, SV;
    CKM_SHA512_HMAC, "CKM_SHA512_HMAC", 1, 512, SV;
    CKM_UKEY_SM3_HMAC, "CKM_SM3_HMAC", 1, 512, SV;
    CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN", 1, 512, CKF_GENERATE;
    CKM_SHA_1_KEY_GEN, "CKM_SHA_1_KEY_GEN", 1, 512, CKF_GENERATE;
    CKM_SHA224_KEY_GEN, "CKM_SHA224_KEY_GEN", 1, 512, CKF_GENERATE;
    CKM_SHA256_KEY_GEN, "CKM_SHA256_KEY_GEN", 1, 512, CKF_GENERATE;
    CKM_SHA384_KEY_GEN, "CKM_SHA384_KEY_GEN", 1, 512, CKF_GENERATE;
    CKM_SHA512_KEY_GEN, "CKM_SHA512_KEY_GEN", 1, 512, CKF_GENERATE;
    CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN", 16, 32, CKF_GENERATE;
    CKM_AES_ECB, "CKM_AES_ECB", 16, 32, ENC | WR;
    CKM_AES_CBC, "CKM_AES_CBC", 16, 32, ENC | WR;
    CKM_AES_CBC_PAD, "CKM_AES_CBC_PAD", 16, 32, ENC | WR;
    CKM_AES_CTR, "CKM_AES_CTR", 16, 32, ENC;
    CKM_AES_GCM, "CKM_AES_GCM", 16, 32, ENC | CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT;
    CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP", 16, 32, ENC | WR;
    CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD", 16, 32, ENC | WR;
    CKM_AES_KEY_WRAP_KWP, "CKM_AES_KEY_WRAP_KWP", 16, 32, ENC | WR;
    CKM_AES_CBC_ENCRYPT_DATA, "CKM_AES_CBC_ENCRYPT_DATA", 16, 32, CKF_DERIVE;
    CKM_AES_ECB_ENCRYPT_DATA, "CKM_AES_ECB_ENCRYPT_DATA", 16, 32, CKF_DERIVE;
    CKM_SM4_KEY_GEN, "CKM_SM4_KEY_GEN", 16, 16, CKF_GENERATE;
    CKM_SM4_ECB, "CKM_SM4_ECB", 16, 16, ENC | WR;
    CKM_SM4_CBC, "CKM_SM4_CBC", 16, 16, ENC | WR;
    CKM_UKEY_SM4_CBC_PAD, "CKM_SM4_CBC_PAD", 16, 16, ENC | WR;
    CKM_UKEY_SM4_CTR, "CKM_SM4_CTR", 16, 16, ENC;
    CKM_UKEY_SM4_GCM, "CKM_SM4_GCM", 16, 16, ENC | CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT;
    CKM_SM4_MAC, "CKM_SM4_MAC", 16, 16, SV;
    CKM_SM4_MAC_GENERAL, "CKM_SM4_MAC_GENERAL", 16, 16, SV;
    CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN", 1024, 4096, CKF_GENERATE_KEY_PAIR;
    CKM_RSA_PKCS, "CKM_RSA_PKCS", 1024, 4096, ENC | SV | WR;
    CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP", 1024, 4096, ENC | WR;
    CKM_RSA_X_509, "CKM_RSA_X_509", 1024, 4096, ENC | SV;
    CKM_RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS", 1024, 4096, SV;
    CKM_SHA1_RSA_PKCS, "CKM_SHA1_RSA_PKCS", 1024, 4096, SV;
    CKM_SHA224_RSA_PKCS, "CKM_SHA224_RSA_PKCS", 1024, 4096, SV;
    CKM_SHA256_RSA_PKCS, "CKM_SHA256_RSA_PKCS", 1024, 4096, SV;
    CKM_SHA384_RSA_PKCS, "CKM_SHA384_RSA_PKCS", 1024, 4096, SV;
    CKM_SHA512_RSA_PKCS, "CKM_SHA512_RSA_PKCS", 1024, 4096, SV;
    CKM_SHA1_RSA_PKCS_PSS, "CKM_SHA1_RSA_PKCS_PSS", 1024, 4096, SV;
    CKM_SHA224_RSA_PKCS_PSS, "CKM_SHA224_RSA_PKCS_PSS", 1024, 4096, SV;
    CKM_SHA256_RSA_PKCS_PSS, "CKM_SHA256_RSA_PKCS_PSS", 1024, 4096, SV;
    CKM_SHA384_RSA_PKCS_PSS, "CKM_SHA384_RSA_PKCS_PSS", 1024, 4096, SV;
    CKM_SHA512_RSA_PKCS_PSS, "CKM_SHA512_RSA_PKCS_PSS", 1024, 4096, SV;
    CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN", 256, 521, CKF_GENERATE_KEY_PAIR | EC_F;
    CKM_ECDSA, "CKM_ECDSA", 256, 521, SV | EC_F;
    CKM_ECDSA_SHA1, "CKM_ECDSA_SHA1", 256, 521, SV | EC_F;
    CKM_ECDSA_SHA224, "CKM_ECDSA_SHA224", 256, 521, SV | EC_F;
    CKM_ECDSA_SHA256, "CKM_ECDSA_SHA256", 256, 521, SV | EC_F;
    CKM_ECDSA_SHA384, "CKM_ECDSA_SHA384", 256, 521, SV | EC_F;
    CKM_ECDSA_SHA512, "CKM_ECDSA_SHA512", 256, 521, SV | EC_F;
    CKM_ECDH1_DERIVE, "CKM_ECDH1_DERIVE", 255, 521, CKF_DERIVE | EC_F;
    CKM_EC_EDWARDS_KEY_PAIR_GEN, "CKM_EC_EDWARDS_KEY_PAIR_GEN", 255, 448, CKF_GENERATE_KEY_PAIR | CKF_EC_F_P | CKF_EC_NAMEDCURVE;
    CKM_EDDSA, "CKM_EDDSA", 255, 448, SV | CKF_EC_F_P | CKF_EC_NAMEDCURVE;
    CKM_EC_MONTGOMERY_KEY_PAIR_GEN, "CKM_EC_MONTGOMERY_KEY_PAIR_GEN", 255, 255, CKF_GENERATE_KEY_PAIR | CKF_EC_F_P | CKF_EC_NAMEDCURVE;
    CKM_AES_CMAC, "CKM_AES_CMAC", 16, 32, SV;
    CKM_AES_CMAC_GENERAL, "CKM_AES_CMAC_GENERAL", 16, 32, SV;
    CKM_SM2_KEY_PAIR_GEN, "CKM_SM2_KEY_PAIR_GEN", 256, 256, CKF_GENERATE_KEY_PAIR;
    CKM_SM2, "CKM_SM2", 256, 256, SV;
    CKM_SM3_SM2, "CKM_SM3_SM2", 256, 256, SV;
    CKM_SM2_ENCRYPT, "CKM_SM2_ENCRYPT", 256, 256, ENC;
    CKM_CONCATENATE_BASE_AND_KEY, "CKM_CONCATENATE_BASE_AND_KEY", 0, 0, CKF_DERIVE;
    CKM_CONCATENATE_BASE_AND_DATA, "CKM_CONCATENATE_BASE_AND_DATA", 0, 0, CKF_DERIVE;
    CKM_CONCATENATE_DATA_AND_BASE, "CKM_CONCATENATE_DATA_AND_BASE", 0, 0, CKF_DERIVE;
    CKM_XOR_BASE_AND_DATA, "CKM_XOR_BASE_AND_DATA", 0, 0, CKF_DERIVE;
    CKM_EXTRACT_KEY_FROM_KEY, "CKM_EXTRACT_KEY_FROM_KEY", 0, 0, CKF_DERIVE;
    CKM_UKEY_SM2_KEY_EXCHANGE, "CKM_SM2_KEY_EXCHANGE", 256, 256, CKF_DERIVE;
    CKM_SP800_108_COUNTER_KDF, "CKM_SP800_108_COUNTER_KDF", 1, 512, CKF_DERIVE;
    CKM_SP800_108_FEEDBACK_KDF, "CKM_SP800_108_FEEDBACK_KDF", 1, 512, CKF_DERIVE;
    CKM_SP800_108_DOUBLE_PIPELINE_KDF, "CKM_SP800_108_DOUBLE_PIPELINE_KDF", 1, 512, CKF_DERIVE;
];

/// A mechanism by its `CKM_*` name (SoftHSM2's `slots.mechanisms`).
pub(crate) fn by_name(name: &str) -> Option<CK_MECHANISM_TYPE> {
    TABLE.iter().find(|r| r.name == name).map(|r| r.ty)
}

/// The table row of a mechanism.
pub(crate) fn row(ty: CK_MECHANISM_TYPE) -> Option<&'static MechRow> {
    // Sorted by type once: every init call looks its mechanism up (a linear scan of the
    // table walked about 80 rows for the vendor values at its end).
    static BY_TYPE: std::sync::LazyLock<Vec<&'static MechRow>> = std::sync::LazyLock::new(|| {
        let mut v: Vec<&'static MechRow> = TABLE.iter().collect();
        v.sort_by_key(|r| r.ty);
        v
    });
    BY_TYPE
        .binary_search_by_key(&ty, |r| r.ty)
        .ok()
        .map(|i| BY_TYPE[i])
}

/// Parsed mechanism parameters (the C structures copied into owned Rust values).
#[derive(Clone, Default)]
pub(crate) enum Param {
    /// No parameter.
    #[default]
    None,
    /// A byte string: an IV, an SM2 ID, derive data.
    Bytes(Vec<u8>),
    /// GCM: nonce, AAD, tag bits.
    Gcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_bits: usize,
    },
    /// RSA-OAEP.
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_ULONG,
        label: Vec<u8>,
    },
    /// RSA-PSS.
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_ULONG,
        salt_len: usize,
    },
    /// ECDH1 derive.
    Ecdh {
        kdf: CK_ULONG,
        shared: Vec<u8>,
        public: Vec<u8>,
    },
    /// A key handle (CONCATENATE_BASE_AND_KEY).
    Key(CK_OBJECT_HANDLE),
    /// A number (EXTRACT_KEY_FROM_KEY bit index, MAC_GENERAL length).
    Ulong(CK_ULONG),
    /// AES_CBC_ENCRYPT_DATA.
    CbcData {
        iv: [u8; 16],
        data: Zeroizing<Vec<u8>>,
    },
    /// SP 800-108 KBKDF: PRF, mode, data parameters, IV (feedback) and the templates
    /// of additional keys.
    Kbkdf {
        prf: CK_MECHANISM_TYPE,
        data: Vec<PrfData>,
        iv: Vec<u8>,
        extra: Vec<crate::api::objects::RawTemplate>,
    },
    /// SM2 key exchange: role, own ID, own ephemeral key handle, peer static public key,
    /// peer ID, peer ephemeral point.
    Sm2Exchange {
        initiator: bool,
        own_id: Vec<u8>,
        ephemeral: CK_OBJECT_HANDLE,
        peer_public: Vec<u8>,
        peer_id: Vec<u8>,
        peer_ephemeral: Vec<u8>,
        /// The optional key confirmation (the longer form of the structure).
        confirm: Sm2Confirm,
    },
    /// EdDSA: pre-hash flag and context.
    Eddsa { ph: bool, context: Option<Vec<u8>> },
    /// CTR: counter bits and the initial counter block.
    Ctr { bits: CK_ULONG, block: [u8; 16] },
}

/// `CK_UKEY_SM2_EXCHANGE_PARAMS` (include/ukey_pkcs11.h).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Sm2ExchangeParams {
    pub is_initiator: CK_BBOOL,
    pub p_own_id: *mut CK_BYTE,
    pub ul_own_id_len: CK_ULONG,
    pub h_own_ephemeral: CK_OBJECT_HANDLE,
    pub p_peer_public: *mut CK_BYTE,
    pub ul_peer_public_len: CK_ULONG,
    pub p_peer_id: *mut CK_BYTE,
    pub ul_peer_id_len: CK_ULONG,
    pub p_peer_ephemeral: *mut CK_BYTE,
    pub ul_peer_ephemeral_len: CK_ULONG,
}

/// `CK_UKEY_SM2_EXCHANGE_CONFIRM_PARAMS` (include/ukey_pkcs11.h): the structure above
/// followed by three (pointer, length) pairs for the key confirmation. The two forms are
/// told apart by `ulParameterLen`; callers of the short form get no confirmation.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Sm2ExchangeParamsConfirm {
    pub base: Sm2ExchangeParams,
    pub p_confirmation: *mut CK_BYTE,
    pub ul_confirmation_len: CK_ULONG,
    pub p_expected_peer_confirmation: *mut CK_BYTE,
    pub ul_expected_peer_confirmation_len: CK_ULONG,
    pub p_peer_confirmation: *mut CK_BYTE,
    pub ul_peer_confirmation_len: CK_ULONG,
}

/// Length of an SM2 key-confirmation value (an SM3 hash).
pub(crate) const SM2_CONFIRM_LEN: usize = 32;

/// The key confirmation of an SM2 exchange (GB/T 32918.3 §6.1 A9–A10, B8–B10): the peer's
/// value to check (SB at the initiator, SA at the responder), and where the derivation
/// leaves this party's value and the one expected from the peer for the C boundary to
/// write out.
#[derive(Clone, Default)]
pub(crate) struct Sm2Confirm {
    /// The longer structure was given: the values are computed and kept.
    pub active: bool,
    /// The peer's value, checked before the key is made.
    pub peer: Option<Vec<u8>>,
    /// (this party's value: SA or SB; the peer's expected value: S1 or S2).
    pub out: std::sync::Arc<std::sync::Mutex<Option<SecretPair>>>,
}

/// Two confirmation values.
pub(crate) type SecretPair = ([u8; SM2_CONFIRM_LEN], [u8; SM2_CONFIRM_LEN]);

impl Sm2Confirm {
    /// Checks the peer's value against the expected one (constant time) and keeps both
    /// values; `Error::KEY_CONFIRMATION` on a mismatch. Does nothing for the short form.
    pub fn settle(
        &self,
        own: Option<[u8; SM2_CONFIRM_LEN]>,
        expected: Option<[u8; SM2_CONFIRM_LEN]>,
    ) -> crate::error::Result<()> {
        use crate::error::Error;
        if !self.active {
            return Ok(());
        }
        let (Some(own), Some(expected)) = (own, expected) else {
            return Err(Error(CKR_FUNCTION_FAILED));
        };
        if let Some(peer) = &self.peer {
            let diff = peer
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if peer.len() != SM2_CONFIRM_LEN || diff != 0 {
                return Err(Error::KEY_CONFIRMATION);
            }
        }
        *self.out.lock().map_err(|_| Error::GENERAL)? = Some((own, expected));
        Ok(())
    }
}

/// One SP 800-108 data parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PrfData {
    /// The iteration variable: a counter of (little endian, bits), or (None) the
    /// chaining value of feedback and double-pipeline modes.
    Iteration(Option<(bool, CK_ULONG)>),
    /// The optional counter of feedback and double-pipeline modes.
    Counter(bool, CK_ULONG),
    /// The length L of the derived keying material: (method, little endian, bits).
    Dkm(CK_ULONG, bool, CK_ULONG),
    /// Fixed bytes.
    Bytes(Vec<u8>),
}

/// A mechanism with its parameters.
#[derive(Clone)]
pub(crate) struct Mech {
    pub ty: CK_MECHANISM_TYPE,
    pub param: Param,
}

impl Mech {
    /// The parameter as plain bytes (IV, ID), or empty.
    pub fn bytes(&self) -> &[u8] {
        match &self.param {
            Param::Bytes(b) => b,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each mechanism is listed once, `row` finds every row as the table has it, and an
    /// unlisted type has none.
    #[test]
    fn rows_are_unique_and_found() {
        for (i, r) in TABLE.iter().enumerate() {
            assert!(
                TABLE[..i].iter().all(|o| o.ty != r.ty),
                "{} listed twice",
                r.name
            );
            let found = row(r.ty).expect("listed row");
            assert!(std::ptr::eq(found, r), "{}", r.name);
        }
        assert!(row(CKM_VENDOR_DEFINED | 0x7fff_fff0).is_none());
        assert!(row(0xffff_ffff).is_none());
    }
}
