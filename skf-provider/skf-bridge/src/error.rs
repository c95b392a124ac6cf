//! The one place a vendor's `SAR_*` code becomes a token-hal error.

use skf_sys::*;
use token_hal::Error;

/// The token-hal error of a failed SKF call `func` that returned `rv`.
pub(crate) fn sar(func: &str, rv: ULONG) -> Error {
    match rv {
        SAR_PIN_LOCKED => Error::PinLocked,
        SAR_PIN_INVALID | SAR_PIN_LEN_RANGE => Error::PinInvalid("rejected by the vendor library"),
        SAR_USER_NOT_LOGGED_IN => Error::NotLoggedIn,
        SAR_USER_ALREADY_LOGGED_IN => Error::UserAnotherAlreadyLoggedIn,
        SAR_USER_PIN_NOT_INITIALIZED => Error::PinNotInitialized,
        SAR_APPLICATION_NOT_EXISTS => Error::not_found("application"),
        SAR_APPLICATION_EXISTS => Error::already_exists("application"),
        SAR_FILE_NOT_EXIST => Error::not_found("file"),
        SAR_FILE_ALREADY_EXIST => Error::already_exists("file"),
        SAR_KEYNOTFOUNTERR => Error::not_found("key"),
        SAR_CERTNOTFOUNTERR => Error::not_found("certificate"),
        SAR_DEVICE_REMOVED => Error::DeviceRemoved,
        SAR_NOTSUPPORTYETERR => Error::unsupported(format!("{func} (vendor library)")),
        SAR_NO_ROOM | SAR_REACH_MAX_CONTAINER_COUNT => Error::NoSpace,
        SAR_INVALIDPARAMERR | SAR_NAMELENERR | SAR_INDATALENERR => {
            Error::invalid_arg(format!("{func}: the vendor library refused the arguments"))
        }
        SAR_INDATAERR => Error::invalid_data(format!("{func}: refused the input data")),
        SAR_DECRYPTPADERR | SAR_HASHNOTEQUALERR | SAR_RSADECERR => Error::DecryptFailed,
        SAR_KEYUSAGEERR => Error::KeyUsage(func.to_owned()),
        SAR_TIMEOUTERR => Error::Busy,
        other => Error::Device(format!("{func} returned {other:#010x}")),
    }
}

/// `Ok(())` for `SAR_OK`, else [`sar`].
pub(crate) fn check(func: &str, rv: ULONG) -> token_hal::Result<()> {
    if rv == SAR_OK {
        Ok(())
    } else {
        Err(sar(func, rv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_token_errors() {
        assert!(check("f", SAR_OK).is_ok());
        assert!(matches!(sar("f", SAR_PIN_LOCKED), Error::PinLocked));
        assert!(matches!(
            sar("f", SAR_USER_NOT_LOGGED_IN),
            Error::NotLoggedIn
        ));
        assert!(matches!(sar("f", SAR_DEVICE_REMOVED), Error::DeviceRemoved));
        assert!(matches!(
            sar("f", SAR_NOTSUPPORTYETERR),
            Error::Unsupported(_)
        ));
        let e = sar("SKF_X", 0x0A00_0099);
        assert!(
            e.to_string().contains("SKF_X") && e.to_string().contains("0x0a000099"),
            "{e}"
        );
    }
}
