//! The single mapping from errors to `SAR_*` codes.

use skf_sys::*;

/// An SKF error: the code to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(pub ULONG);

/// The provider's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl From<token_hal::Error> for Error {
    fn from(e: token_hal::Error) -> Self {
        use token_hal::Error as E;
        tracing::debug!(error = %e, "token-hal error");
        Self(match e {
            E::PinIncorrect { .. } => SAR_PIN_INCORRECT,
            E::PinLocked => SAR_PIN_LOCKED,
            E::PinInvalid(_) => SAR_PIN_LEN_RANGE,
            E::NotLoggedIn | E::AccessDenied(_) | E::DeviceAuthRequired => SAR_USER_NOT_LOGGED_IN,
            E::DeviceAuthFailed => SAR_FAIL,
            E::KeyUsage(_) => SAR_KEYUSAGEERR,
            E::BufferTooSmall { .. } => SAR_BUFFER_TOO_SMALL,
            E::InvalidData(_) => SAR_INDATAERR,
            E::InvalidArgument(_) => SAR_INVALIDPARAMERR,
            E::SignatureInvalid => SAR_FAIL,
            E::DecryptFailed => SAR_FAIL,
            E::DeviceRemoved => SAR_DEVICE_REMOVED,
            E::NoSpace => SAR_NO_ROOM,
            E::Unsupported(_) => SAR_NOTSUPPORTYETERR,
            E::Corrupt { .. } | E::SchemaTooNew { .. } | E::Io { .. } => SAR_FILEERR,
            _ => SAR_FAIL,
        })
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
    }
}
