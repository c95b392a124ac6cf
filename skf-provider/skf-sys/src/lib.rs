//! GM/T 0016-2012 (SKF) C types and constants, shared by the SKF provider and the
//! vendor-SKF bridge. `include/skf.h` is the C side of the same definitions.
//!
//! ULONG and BOOL are 32-bit on every platform, as the consensus ABI (see
//! docs and the reference notes on GM/T 0016).

#![allow(non_camel_case_types, non_snake_case)]
#![forbid(unsafe_code)]

pub mod fns;

/// 32-bit unsigned (GM/T 0016 ULONG).
pub type ULONG = u32;
/// 32-bit boolean (GM/T 0016 BOOL).
pub type BOOL = i32;
/// Byte.
pub type BYTE = u8;
/// Character of an 8-bit (UTF-8) string.
pub type CHAR = u8;
/// Pointer to an 8-bit string.
pub type LPSTR = *mut CHAR;
/// Opaque handle.
pub type HANDLE = *mut core::ffi::c_void;
/// Device handle.
pub type DEVHANDLE = HANDLE;
/// Application handle.
pub type HAPPLICATION = HANDLE;
/// Container handle.
pub type HCONTAINER = HANDLE;

/// TRUE.
pub const TRUE: BOOL = 1;
/// FALSE.
pub const FALSE: BOOL = 0;

macro_rules! sar {
    ($($name:ident = $v:expr;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "` (GM/T 0016-2012 Annex A).")]
            pub const $name: ULONG = $v;
        )*
    };
}

sar! {
    SAR_OK = 0;
    SAR_FAIL = 0x0A00_0001;
    SAR_UNKNOWNERR = 0x0A00_0002;
    SAR_NOTSUPPORTYETERR = 0x0A00_0003;
    SAR_FILEERR = 0x0A00_0004;
    SAR_INVALIDHANDLEERR = 0x0A00_0005;
    SAR_INVALIDPARAMERR = 0x0A00_0006;
    SAR_READFILEERR = 0x0A00_0007;
    SAR_WRITEFILEERR = 0x0A00_0008;
    SAR_NAMELENERR = 0x0A00_0009;
    SAR_KEYUSAGEERR = 0x0A00_000A;
    SAR_MODULUSLENERR = 0x0A00_000B;
    SAR_NOTINITIALIZEERR = 0x0A00_000C;
    SAR_OBJERR = 0x0A00_000D;
    SAR_MEMORYERR = 0x0A00_000E;
    SAR_TIMEOUTERR = 0x0A00_000F;
    SAR_INDATALENERR = 0x0A00_0010;
    SAR_INDATAERR = 0x0A00_0011;
    SAR_GENRANDERR = 0x0A00_0012;
    SAR_HASHOBJERR = 0x0A00_0013;
    SAR_HASHERR = 0x0A00_0014;
    SAR_GENRSAKEYERR = 0x0A00_0015;
    SAR_RSAMODULUSLENERR = 0x0A00_0016;
    SAR_CSPIMPRTPUBKEYERR = 0x0A00_0017;
    SAR_RSAENCERR = 0x0A00_0018;
    SAR_RSADECERR = 0x0A00_0019;
    SAR_HASHNOTEQUALERR = 0x0A00_001A;
    SAR_KEYNOTFOUNTERR = 0x0A00_001B;
    SAR_CERTNOTFOUNTERR = 0x0A00_001C;
    SAR_NOTEXPORTERR = 0x0A00_001D;
    SAR_DECRYPTPADERR = 0x0A00_001E;
    SAR_MACLENERR = 0x0A00_001F;
    SAR_BUFFER_TOO_SMALL = 0x0A00_0020;
    SAR_KEYINFOTYPEERR = 0x0A00_0021;
    SAR_NOT_EVENTERR = 0x0A00_0022;
    SAR_DEVICE_REMOVED = 0x0A00_0023;
    SAR_PIN_INCORRECT = 0x0A00_0024;
    SAR_PIN_LOCKED = 0x0A00_0025;
    SAR_PIN_INVALID = 0x0A00_0026;
    SAR_PIN_LEN_RANGE = 0x0A00_0027;
    SAR_USER_ALREADY_LOGGED_IN = 0x0A00_0028;
    SAR_USER_PIN_NOT_INITIALIZED = 0x0A00_0029;
    SAR_USER_TYPE_INVALID = 0x0A00_002A;
    SAR_APPLICATION_NAME_INVALID = 0x0A00_002B;
    SAR_APPLICATION_EXISTS = 0x0A00_002C;
    SAR_USER_NOT_LOGGED_IN = 0x0A00_002D;
    SAR_APPLICATION_NOT_EXISTS = 0x0A00_002E;
    SAR_FILE_ALREADY_EXIST = 0x0A00_002F;
    SAR_NO_ROOM = 0x0A00_0030;
    SAR_FILE_NOT_EXIST = 0x0A00_0031;
    SAR_REACH_MAX_CONTAINER_COUNT = 0x0A00_0032;
}

/// Signed 32-bit (GM/T 0016 LONG).
pub type LONG = i32;
/// 32-bit unsigned (GM/T 0016 DWORD).
pub type DWORD = u32;

// --- sizes -----------------------------------------------------------------------------

/// Longest RSA modulus in bytes (2048 bits).
pub const MAX_RSA_MODULUS_LEN: usize = 256;
/// RSA public exponent field length.
pub const MAX_RSA_EXPONENT_LEN: usize = 4;
/// Bits of an ECC coordinate field.
pub const ECC_MAX_XCOORDINATE_BITS_LEN: usize = 512;
/// Bits of an ECC coordinate field.
pub const ECC_MAX_YCOORDINATE_BITS_LEN: usize = 512;
/// Bits of an ECC private key field.
pub const ECC_MAX_MODULUS_BITS_LEN: usize = 512;
/// Longest IV.
pub const MAX_IV_LEN: usize = 32;
/// Longest file name (bytes).
pub const MAX_FILE_NAME_SIZE: usize = 32;
/// Longest container name (bytes).
pub const MAX_FILE_CONTAINER_NAME_SIZE: usize = 64;

// --- algorithm identifiers (GM/T 0006) ---------------------------------------------------

macro_rules! consts {
    ($doc:literal; $($name:ident = $v:expr;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "` (", $doc, ").")]
            pub const $name: ULONG = $v;
        )*
    };
}

consts! { "GM/T 0006 symmetric algorithm";
    SGD_SM1_ECB = 0x0000_0101;
    SGD_SM1_CBC = 0x0000_0102;
    SGD_SM1_CFB = 0x0000_0104;
    SGD_SM1_OFB = 0x0000_0108;
    SGD_SM1_MAC = 0x0000_0110;
    SGD_SSF33_ECB = 0x0000_0201;
    SGD_SSF33_CBC = 0x0000_0202;
    SGD_SSF33_CFB = 0x0000_0204;
    SGD_SSF33_OFB = 0x0000_0208;
    SGD_SSF33_MAC = 0x0000_0210;
    SGD_SM4_ECB = 0x0000_0401;
    SGD_SM4_CBC = 0x0000_0402;
    SGD_SM4_CFB = 0x0000_0404;
    SGD_SM4_OFB = 0x0000_0408;
    SGD_SM4_MAC = 0x0000_0410;
    SGD_SMS4_ECB = 0x0000_0401;
    SGD_SMS4_CBC = 0x0000_0402;
    SGD_SMS4_CFB = 0x0000_0404;
    SGD_SMS4_OFB = 0x0000_0408;
    SGD_SMS4_MAC = 0x0000_0410;
    SGD_ZUC_EEA3 = 0x0000_0801;
    SGD_ZUC_EIA3 = 0x0000_0802;
}

consts! { "GM/T 0006 hash algorithm";
    SGD_SM3 = 0x0000_0001;
    SGD_SHA1 = 0x0000_0002;
    SGD_SHA256 = 0x0000_0004;
}

consts! { "GM/T 0006 asymmetric algorithm";
    SGD_RSA = 0x0001_0000;
    SGD_SM2 = 0x0002_0100;
    SGD_SM2_1 = 0x0002_0200;
    SGD_SM2_2 = 0x0002_0400;
    SGD_SM2_3 = 0x0002_0800;
    SGD_SM2_1_LEGACY = 0x0002_0100;
    SGD_SM2_2_LEGACY = 0x0002_0200;
    SGD_SM2_3_LEGACY = 0x0002_0400;
}

/// Every SM2 algorithm ID of both readings, ORed: what AlgAsymCap advertises for SM2.
pub const SGD_SM2_ALL: ULONG = 0x0002_0F00;

/// Whether `id` is an SM2 ID of either reading (0x00020100..0x00020800).
pub fn is_sm2_alg_id(id: ULONG) -> bool {
    matches!(id, SGD_SM2 | SGD_SM2_1 | SGD_SM2_2 | SGD_SM2_3)
}

consts! { "block cipher mode bit";
    SGD_ECB = 0x01;
    SGD_CBC = 0x02;
    SGD_CFB = 0x04;
    SGD_OFB = 0x08;
    SGD_MAC = 0x10;
}

consts! { "PIN type";
    ADMIN_TYPE = 0;
    USER_TYPE = 1;
}

consts! { "access right";
    SECURE_NEVER_ACCOUNT = 0x00;
    SECURE_ADM_ACCOUNT = 0x01;
    SECURE_USER_ACCOUNT = 0x10;
    SECURE_ANYONE_ACCOUNT = 0xFF;
    SECURE_EVERYONE_ACCOUNT = 0xFF;
}

consts! { "device state";
    DEV_ABSENT_STATE = 0;
    DEV_PRESENT_STATE = 1;
    DEV_UNKNOW_STATE = 2;
}

consts! { "device event";
    DEV_EVENT_INSERTED = 1;
    DEV_EVENT_REMOVED = 2;
}

consts! { "container type";
    CONTAINER_TYPE_EMPTY = 0;
    CONTAINER_TYPE_RSA = 1;
    CONTAINER_TYPE_ECC = 2;
}

consts! { "padding type";
    NO_PADDING = 0;
    PKCS5_PADDING = 1;
}

// --- structures --------------------------------------------------------------------------

/// VERSION.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VERSION {
    /// Major.
    pub major: BYTE,
    /// Minor.
    pub minor: BYTE,
}

/// DEVINFO (294 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct DEVINFO {
    /// Structure version.
    pub Version: VERSION,
    /// Manufacturer, NUL-terminated.
    pub Manufacturer: [CHAR; 64],
    /// Issuer, NUL-terminated.
    pub Issuer: [CHAR; 64],
    /// Label, NUL-terminated.
    pub Label: [CHAR; 32],
    /// Serial number, NUL-terminated.
    pub SerialNumber: [CHAR; 32],
    /// Hardware version.
    pub HWVersion: VERSION,
    /// Firmware version.
    pub FirmwareVersion: VERSION,
    /// Symmetric algorithms, ORed.
    pub AlgSymCap: ULONG,
    /// Asymmetric algorithms, ORed.
    pub AlgAsymCap: ULONG,
    /// Hash algorithms, ORed.
    pub AlgHashCap: ULONG,
    /// The device authentication algorithm.
    pub DevAuthAlgId: ULONG,
    /// Total storage.
    pub TotalSpace: ULONG,
    /// Free storage.
    pub FreeSpace: ULONG,
    /// Largest ECC plaintext.
    pub MaxECCBufferSize: ULONG,
    /// Largest buffer of a single call.
    pub MaxBufferSize: ULONG,
    /// Reserved.
    pub Reserved: [BYTE; 64],
}

/// RSAPUBLICKEYBLOB (268 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct RSAPUBLICKEYBLOB {
    /// SGD_RSA.
    pub AlgID: ULONG,
    /// Modulus bits.
    pub BitLen: ULONG,
    /// Modulus, big-endian, right-aligned.
    pub Modulus: [BYTE; MAX_RSA_MODULUS_LEN],
    /// Public exponent, big-endian.
    pub PublicExponent: [BYTE; MAX_RSA_EXPONENT_LEN],
}

/// RSAPRIVATEKEYBLOB (1164 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct RSAPRIVATEKEYBLOB {
    /// SGD_RSA.
    pub AlgID: ULONG,
    /// Modulus bits.
    pub BitLen: ULONG,
    /// n.
    pub Modulus: [BYTE; MAX_RSA_MODULUS_LEN],
    /// e.
    pub PublicExponent: [BYTE; MAX_RSA_EXPONENT_LEN],
    /// d.
    pub PrivateExponent: [BYTE; MAX_RSA_MODULUS_LEN],
    /// p.
    pub Prime1: [BYTE; MAX_RSA_MODULUS_LEN / 2],
    /// q.
    pub Prime2: [BYTE; MAX_RSA_MODULUS_LEN / 2],
    /// d mod (p-1).
    pub Prime1Exponent: [BYTE; MAX_RSA_MODULUS_LEN / 2],
    /// d mod (q-1).
    pub Prime2Exponent: [BYTE; MAX_RSA_MODULUS_LEN / 2],
    /// q^-1 mod p.
    pub Coefficient: [BYTE; MAX_RSA_MODULUS_LEN / 2],
}

/// ECCPUBLICKEYBLOB (132 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ECCPUBLICKEYBLOB {
    /// Key bits (256).
    pub BitLen: ULONG,
    /// x, right-aligned.
    pub XCoordinate: [BYTE; ECC_MAX_XCOORDINATE_BITS_LEN / 8],
    /// y, right-aligned.
    pub YCoordinate: [BYTE; ECC_MAX_YCOORDINATE_BITS_LEN / 8],
}

/// ECCPRIVATEKEYBLOB (68 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ECCPRIVATEKEYBLOB {
    /// Key bits (256).
    pub BitLen: ULONG,
    /// d, right-aligned.
    pub PrivateKey: [BYTE; ECC_MAX_MODULUS_BITS_LEN / 8],
}

/// ECCCIPHERBLOB header; `Cipher` has `CipherLen` bytes (allocate 164 + CipherLen).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ECCCIPHERBLOB {
    /// C1 x, right-aligned.
    pub XCoordinate: [BYTE; ECC_MAX_XCOORDINATE_BITS_LEN / 8],
    /// C1 y, right-aligned.
    pub YCoordinate: [BYTE; ECC_MAX_YCOORDINATE_BITS_LEN / 8],
    /// C3 = SM3(x2 ‖ M ‖ y2).
    pub HASH: [BYTE; 32],
    /// Length of C2.
    pub CipherLen: ULONG,
    /// C2 (flexible).
    pub Cipher: [BYTE; 1],
}

/// Offset of `ECCCIPHERBLOB.Cipher`: the blob is this plus `CipherLen` bytes.
pub const ECCCIPHERBLOB_HEADER_LEN: usize = 164;

/// ECCSIGNATUREBLOB (128 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ECCSIGNATUREBLOB {
    /// r, right-aligned.
    pub r: [BYTE; ECC_MAX_XCOORDINATE_BITS_LEN / 8],
    /// s, right-aligned.
    pub s: [BYTE; ECC_MAX_XCOORDINATE_BITS_LEN / 8],
}

/// BLOCKCIPHERPARAM (44 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct BLOCKCIPHERPARAM {
    /// IV.
    pub IV: [BYTE; MAX_IV_LEN],
    /// IV length in bytes.
    pub IVLen: ULONG,
    /// 0 none, 1 PKCS#5.
    pub PaddingType: ULONG,
    /// Feedback bits (CFB/OFB).
    pub FeedBitLen: ULONG,
}

/// ENVELOPEDKEYBLOB: the encryption private key wrapped for ImportECCKeyPair
/// (nominally 373 bytes; `ECCCipherBlob.Cipher` runs on for `CipherLen` bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct ENVELOPEDKEYBLOB {
    /// 1.
    pub Version: ULONG,
    /// Symmetric algorithm (ECB) of cbEncryptedPriKey.
    pub ulSymmAlgID: ULONG,
    /// Key bits (256).
    pub ulBits: ULONG,
    /// The 64-byte private key field, encrypted.
    pub cbEncryptedPriKey: [BYTE; 64],
    /// The encryption public key.
    pub PubKey: ECCPUBLICKEYBLOB,
    /// The symmetric key, SM2-encrypted to the container's signing key.
    pub ECCCipherBlob: ECCCIPHERBLOB,
}

/// Offset of `ENVELOPEDKEYBLOB.ECCCipherBlob`.
pub const ENVELOPEDKEYBLOB_CIPHER_OFFSET: usize = 208;

/// FILEATTRIBUTE (44 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct FILEATTRIBUTE {
    /// Name, NUL-terminated.
    pub FileName: [CHAR; 32],
    /// Size.
    pub FileSize: ULONG,
    /// Read rights.
    pub ReadRights: ULONG,
    /// Write rights.
    pub WriteRights: ULONG,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_the_header() {
        assert_eq!(size_of::<VERSION>(), 2);
        assert_eq!(size_of::<DEVINFO>(), 294);
        assert_eq!(offset_of!(DEVINFO, Manufacturer), 2);
        assert_eq!(offset_of!(DEVINFO, Issuer), 66);
        assert_eq!(offset_of!(DEVINFO, Label), 130);
        assert_eq!(offset_of!(DEVINFO, SerialNumber), 162);
        assert_eq!(offset_of!(DEVINFO, HWVersion), 194);
        assert_eq!(offset_of!(DEVINFO, FirmwareVersion), 196);
        assert_eq!(offset_of!(DEVINFO, AlgSymCap), 198);
        assert_eq!(offset_of!(DEVINFO, AlgAsymCap), 202);
        assert_eq!(offset_of!(DEVINFO, AlgHashCap), 206);
        assert_eq!(offset_of!(DEVINFO, DevAuthAlgId), 210);
        assert_eq!(offset_of!(DEVINFO, TotalSpace), 214);
        assert_eq!(offset_of!(DEVINFO, FreeSpace), 218);
        assert_eq!(offset_of!(DEVINFO, MaxECCBufferSize), 222);
        assert_eq!(offset_of!(DEVINFO, MaxBufferSize), 226);
        assert_eq!(offset_of!(DEVINFO, Reserved), 230);
        assert_eq!(size_of::<RSAPUBLICKEYBLOB>(), 268);
        assert_eq!(offset_of!(RSAPUBLICKEYBLOB, Modulus), 8);
        assert_eq!(offset_of!(RSAPUBLICKEYBLOB, PublicExponent), 264);
        assert_eq!(size_of::<RSAPRIVATEKEYBLOB>(), 1164);
        assert_eq!(offset_of!(RSAPRIVATEKEYBLOB, PrivateExponent), 268);
        assert_eq!(offset_of!(RSAPRIVATEKEYBLOB, Prime1), 524);
        assert_eq!(offset_of!(RSAPRIVATEKEYBLOB, Prime2), 652);
        assert_eq!(offset_of!(RSAPRIVATEKEYBLOB, Prime1Exponent), 780);
        assert_eq!(offset_of!(RSAPRIVATEKEYBLOB, Prime2Exponent), 908);
        assert_eq!(offset_of!(RSAPRIVATEKEYBLOB, Coefficient), 1036);
        assert_eq!(size_of::<ECCPUBLICKEYBLOB>(), 132);
        assert_eq!(offset_of!(ECCPUBLICKEYBLOB, XCoordinate), 4);
        assert_eq!(offset_of!(ECCPUBLICKEYBLOB, YCoordinate), 68);
        assert_eq!(size_of::<ECCPRIVATEKEYBLOB>(), 68);
        assert_eq!(offset_of!(ECCPRIVATEKEYBLOB, PrivateKey), 4);
        assert_eq!(size_of::<ECCCIPHERBLOB>(), 165);
        assert_eq!(offset_of!(ECCCIPHERBLOB, YCoordinate), 64);
        assert_eq!(offset_of!(ECCCIPHERBLOB, HASH), 128);
        assert_eq!(offset_of!(ECCCIPHERBLOB, CipherLen), 160);
        assert_eq!(offset_of!(ECCCIPHERBLOB, Cipher), ECCCIPHERBLOB_HEADER_LEN);
        assert_eq!(size_of::<ECCSIGNATUREBLOB>(), 128);
        assert_eq!(offset_of!(ECCSIGNATUREBLOB, s), 64);
        assert_eq!(size_of::<BLOCKCIPHERPARAM>(), 44);
        assert_eq!(offset_of!(BLOCKCIPHERPARAM, IVLen), 32);
        assert_eq!(offset_of!(BLOCKCIPHERPARAM, PaddingType), 36);
        assert_eq!(offset_of!(BLOCKCIPHERPARAM, FeedBitLen), 40);
        assert_eq!(size_of::<ENVELOPEDKEYBLOB>(), 373);
        assert_eq!(offset_of!(ENVELOPEDKEYBLOB, ulSymmAlgID), 4);
        assert_eq!(offset_of!(ENVELOPEDKEYBLOB, ulBits), 8);
        assert_eq!(offset_of!(ENVELOPEDKEYBLOB, cbEncryptedPriKey), 12);
        assert_eq!(offset_of!(ENVELOPEDKEYBLOB, PubKey), 76);
        assert_eq!(
            offset_of!(ENVELOPEDKEYBLOB, ECCCipherBlob),
            ENVELOPEDKEYBLOB_CIPHER_OFFSET
        );
        assert_eq!(size_of::<FILEATTRIBUTE>(), 44);
        assert_eq!(offset_of!(FILEATTRIBUTE, FileSize), 32);
        assert_eq!(offset_of!(FILEATTRIBUTE, ReadRights), 36);
        assert_eq!(offset_of!(FILEATTRIBUTE, WriteRights), 40);
    }

    #[test]
    fn both_sm2_id_sets_are_recognised() {
        for id in [0x0002_0100, 0x0002_0200, 0x0002_0400, 0x0002_0800] {
            assert!(is_sm2_alg_id(id));
            assert_eq!(SGD_SM2_ALL & id, id);
        }
        assert!(!is_sm2_alg_id(SGD_RSA));
    }
}
