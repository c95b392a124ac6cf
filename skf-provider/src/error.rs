//! The single mapping from errors to `SAR_*` codes. No other file names a `SAR_*` code
//! except the success value.

#![forbid(unsafe_code)]

use skf_sys::*;

/// An SKF error: the code to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(pub ULONG);

/// The provider's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Generic failure.
    pub const FAIL: Self = Self(SAR_FAIL);
    /// Not implementable here (SM1, SSF33, soft-device APDUs; see docs/skf.md).
    pub const NOT_SUPPORTED: Self = Self(SAR_NOTSUPPORTYETERR);
    /// A null, stale, closed or foreign handle.
    pub const INVALID_HANDLE: Self = Self(SAR_INVALIDHANDLEERR);
    /// A null pointer or an out-of-range argument.
    pub const INVALID_PARAM: Self = Self(SAR_INVALIDPARAMERR);
    /// A name too long, empty or not UTF-8.
    pub const NAME_LEN: Self = Self(SAR_NAMELENERR);
    /// The output buffer is too small; the length was written.
    pub const BUFFER_TOO_SMALL: Self = Self(SAR_BUFFER_TOO_SMALL);
    /// Input length wrong for the operation.
    pub const DATA_LEN: Self = Self(SAR_INDATALENERR);
    /// Input data malformed.
    pub const DATA: Self = Self(SAR_INDATAERR);
    /// The container has no key of the kind asked for.
    pub const KEY_NOT_FOUND: Self = Self(SAR_KEYNOTFOUNTERR);
    /// No certificate in that slot.
    pub const CERT_NOT_FOUND: Self = Self(SAR_CERTNOTFOUNTERR);
    /// An operation was used before its Init.
    pub const NOT_INITIALIZED: Self = Self(SAR_NOTINITIALIZEERR);
    /// Bad PKCS#5 padding on decryption.
    pub const PADDING: Self = Self(SAR_DECRYPTPADERR);
    /// A timeout (SKF_LockDev).
    pub const TIMEOUT: Self = Self(SAR_TIMEOUTERR);
    /// A PIN type other than ADMIN_TYPE / USER_TYPE.
    pub const USER_TYPE: Self = Self(SAR_USER_TYPE_INVALID);
    /// The PIN was wrong.
    pub const PIN_INCORRECT: Self = Self(SAR_PIN_INCORRECT);
    /// The PIN is locked.
    pub const PIN_LOCKED: Self = Self(SAR_PIN_LOCKED);
    /// A waiter was cancelled (SKF_CancelWaitForDevEvent).
    pub const NO_EVENT: Self = Self(SAR_NOT_EVENTERR);
    /// RSA modulus length outside what the blobs hold.
    pub const RSA_MODULUS_LEN: Self = Self(SAR_RSAMODULUSLENERR);
    /// RSA key generation failed.
    pub const GEN_RSA_KEY: Self = Self(SAR_GENRSAKEYERR);
    /// Random generation failed.
    pub const GEN_RANDOM: Self = Self(SAR_GENRANDERR);
    /// A public key blob could not be imported.
    pub const IMPORT_PUBKEY: Self = Self(SAR_CSPIMPRTPUBKEYERR);
    /// RSA encryption failed.
    pub const RSA_ENC: Self = Self(SAR_RSAENCERR);
    /// RSA decryption failed.
    pub const RSA_DEC: Self = Self(SAR_RSADECERR);
    /// The MAC input has a wrong length.
    pub const MAC_LEN: Self = Self(SAR_MACLENERR);
    /// The hash object is not usable.
    pub const HASH_OBJ: Self = Self(SAR_HASHOBJERR);
    /// A PIN outside the accepted length range.
    pub const PIN_LEN: Self = Self(SAR_PIN_LEN_RANGE);
    /// Device authentication has not been done on this handle.
    pub const NOT_AUTHENTICATED: Self = Self(SAR_USER_NOT_LOGGED_IN);
    /// The file does not exist.
    pub const FILE_NOT_EXIST: Self = Self(SAR_FILE_NOT_EXIST);

    /// A token-hal error met while handling applications.
    pub fn app(e: token_hal::Error) -> Self {
        match e {
            token_hal::Error::NotFound(_) => Self(SAR_APPLICATION_NOT_EXISTS),
            token_hal::Error::AlreadyExists(_) => Self(SAR_APPLICATION_EXISTS),
            token_hal::Error::InvalidArgument(_) => Self(SAR_APPLICATION_NAME_INVALID),
            e => e.into(),
        }
    }
    /// A token-hal error met while handling files.
    pub fn file(e: token_hal::Error) -> Self {
        match e {
            token_hal::Error::NotFound(_) => Self(SAR_FILE_NOT_EXIST),
            token_hal::Error::AlreadyExists(_) => Self(SAR_FILE_ALREADY_EXIST),
            token_hal::Error::InvalidArgument(_) => Self(SAR_FILEERR),
            e => e.into(),
        }
    }
    /// A token-hal error met while handling containers: a missing container is SAR_FAIL
    /// (the reference's recommendation; no 2012 code names it).
    pub fn container(e: token_hal::Error) -> Self {
        match e {
            token_hal::Error::NotFound(_) => Self(SAR_FAIL),
            token_hal::Error::AlreadyExists(_) => Self(SAR_FAIL),
            e => e.into(),
        }
    }
    /// A token-hal error met while using a key of a container.
    pub fn key(e: token_hal::Error) -> Self {
        match e {
            token_hal::Error::NotFound(_) => Self(SAR_KEYNOTFOUNTERR),
            e => e.into(),
        }
    }
}

impl From<token_hal::Error> for Error {
    fn from(e: token_hal::Error) -> Self {
        use token_hal::Error as E;
        tracing::debug!(error = %e, "token-hal error");
        Self(match e {
            E::PinIncorrect { .. } => SAR_PIN_INCORRECT,
            E::PinLocked => SAR_PIN_LOCKED,
            E::PinInvalid(_) => SAR_PIN_LEN_RANGE,
            E::PinNotInitialized => SAR_USER_PIN_NOT_INITIALIZED,
            E::NotLoggedIn | E::AccessDenied(_) | E::DeviceAuthRequired => SAR_USER_NOT_LOGGED_IN,
            E::UserAnotherAlreadyLoggedIn => SAR_USER_ALREADY_LOGGED_IN,
            E::DeviceAuthFailed => SAR_FAIL,
            E::KeyUsage(_) | E::KeyType(_) => SAR_KEYUSAGEERR,
            E::BufferTooSmall { .. } => SAR_BUFFER_TOO_SMALL,
            E::InvalidData(_) => SAR_INDATAERR,
            E::InvalidArgument(_) => SAR_INVALIDPARAMERR,
            E::NotFound(_) => SAR_FAIL,
            E::SignatureInvalid => SAR_FAIL,
            E::DecryptFailed => SAR_FAIL,
            E::DeviceRemoved => SAR_DEVICE_REMOVED,
            E::NoSpace | E::DiskFull { .. } => SAR_NO_ROOM,
            E::Unsupported(_) => SAR_NOTSUPPORTYETERR,
            E::Busy => SAR_TIMEOUTERR,
            E::Corrupt { .. } | E::SchemaTooNew { .. } | E::Io { .. } => SAR_FILEERR,
            _ => SAR_FAIL,
        })
    }
}

/// The code of a result.
pub fn code(r: Result<()>) -> ULONG {
    match r {
        Ok(()) => SAR_OK,
        Err(e) => e.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_map_to_spec_codes() {
        let sar = |e: token_hal::Error| Error::from(e).0;
        assert_eq!(
            sar(token_hal::Error::PinIncorrect { retries_left: 1 }),
            SAR_PIN_INCORRECT
        );
        assert_eq!(sar(token_hal::Error::PinLocked), SAR_PIN_LOCKED);
        assert_eq!(sar(token_hal::Error::DeviceRemoved), SAR_DEVICE_REMOVED);
        assert_eq!(
            sar(token_hal::Error::DiskFull {
                path: "/d/t.ukdb".into(),
                detail: "database or disk is full".into()
            }),
            SAR_NO_ROOM
        );
        assert_eq!(
            Error::app(token_hal::Error::already_exists("a")).0,
            SAR_APPLICATION_EXISTS
        );
        assert_eq!(
            Error::file(token_hal::Error::not_found("f")).0,
            SAR_FILE_NOT_EXIST
        );
    }
}
