//! The single mapping from errors to `CKR_*` codes.

use cryptoki_sys::*;

/// A PKCS#11 error: the return value to give the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(pub CK_RV);

impl Error {
    /// `CKR_ARGUMENTS_BAD`.
    pub const ARGS: Self = Self(CKR_ARGUMENTS_BAD);
    /// `CKR_GENERAL_ERROR`.
    pub const GENERAL: Self = Self(CKR_GENERAL_ERROR);
    /// A key-confirmation value from the peer (SM2 key exchange SB / SA) that does not
    /// match: `CKR_SIGNATURE_INVALID`, as for any MAC that fails to verify; no key is made.
    pub const KEY_CONFIRMATION: Self = Self(CKR_SIGNATURE_INVALID);
}

/// The module's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl From<CK_RV> for Error {
    fn from(rv: CK_RV) -> Self {
        Self(rv)
    }
}

impl From<token_hal::Error> for Error {
    fn from(e: token_hal::Error) -> Self {
        use token_hal::Error as E;
        tracing::debug!(error = %e, "token-hal error");
        Self(match e {
            E::PinIncorrect { .. } => CKR_PIN_INCORRECT,
            E::PinLocked => CKR_PIN_LOCKED,
            E::PinInvalid(_) => CKR_PIN_LEN_RANGE,
            E::PinNotInitialized => CKR_USER_PIN_NOT_INITIALIZED,
            E::SelfTestFailed(_) => CKR_GENERAL_ERROR,
            E::NotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            E::UserAnotherAlreadyLoggedIn => CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
            E::DeviceAuthRequired | E::DeviceAuthFailed | E::AccessDenied(_) => {
                CKR_USER_NOT_LOGGED_IN
            }
            E::NotFound(_) => CKR_OBJECT_HANDLE_INVALID,
            E::AlreadyExists(_) => CKR_ATTRIBUTE_VALUE_INVALID,
            E::KeyUsage(_) => CKR_KEY_FUNCTION_NOT_PERMITTED,
            E::KeyType(_) => CKR_KEY_TYPE_INCONSISTENT,
            E::BufferTooSmall { .. } => CKR_BUFFER_TOO_SMALL,
            E::InvalidData(_) => CKR_DATA_INVALID,
            E::Internal(_) => CKR_GENERAL_ERROR,
            E::InvalidArgument(_) => CKR_ARGUMENTS_BAD,
            E::SignatureInvalid => CKR_SIGNATURE_INVALID,
            E::DecryptFailed => CKR_ENCRYPTED_DATA_INVALID,
            E::WrongPassword => CKR_PIN_INCORRECT,
            E::DeviceRemoved => CKR_DEVICE_REMOVED,
            E::NoSpace | E::DiskFull { .. } => CKR_DEVICE_MEMORY,
            E::Unsupported(_) => CKR_FUNCTION_NOT_SUPPORTED,
            E::Busy => CKR_FUNCTION_FAILED,
            E::Corrupt { .. }
            | E::SchemaTooNew { .. }
            | E::Io { .. }
            | E::Device(_)
            | E::Config { .. } => CKR_DEVICE_ERROR,
            _ => CKR_GENERAL_ERROR,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_map_to_spec_codes() {
        let rv = |e: token_hal::Error| Error::from(e).0;
        assert_eq!(
            rv(token_hal::Error::PinIncorrect { retries_left: 3 }),
            CKR_PIN_INCORRECT
        );
        assert_eq!(rv(token_hal::Error::PinLocked), CKR_PIN_LOCKED);
        assert_eq!(rv(token_hal::Error::DeviceRemoved), CKR_DEVICE_REMOVED);
        assert_eq!(rv(token_hal::Error::internal("x")), CKR_GENERAL_ERROR);
        assert_eq!(
            rv(token_hal::Error::DiskFull {
                path: "/d/t.ukdb".into(),
                detail: "database or disk is full".into()
            }),
            CKR_DEVICE_MEMORY
        );
    }
}
