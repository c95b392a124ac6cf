//! GM/T 0016-2012 (SKF) C types and constants, shared by the SKF provider and the
//! vendor-SKF bridge. `include/skf.h` is the C side of the same definitions.
//!
//! ULONG and BOOL are 32-bit on every platform, as the consensus ABI (see
//! docs and the reference notes on GM/T 0016).

#![allow(non_camel_case_types)]

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
