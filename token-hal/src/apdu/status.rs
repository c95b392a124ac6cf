//! Status words → token-hal errors, in one table (docs/apdu.md, "Status words").
//!
//! The ISO 7816-4 interindustry values, plus the few ukey's command set adds in the
//! 6Fxx-free ranges it documents. Anything not in the table is [`Error::Device`] naming
//! the status word, so an unknown answer is reported, never taken for success.

use super::command::Sw;
use crate::error::{Error, Result};

/// The status words ukey's command set uses, by name.
pub mod sw {
    use super::Sw;
    /// Normal processing.
    pub const OK: Sw = Sw(0x9000);
    /// Wrong length (Lc or Le).
    pub const WRONG_LENGTH: Sw = Sw(0x6700);
    /// Security status not satisfied (no PIN verified for this).
    pub const SECURITY_STATUS: Sw = Sw(0x6982);
    /// Authentication method blocked (PIN locked).
    pub const AUTH_BLOCKED: Sw = Sw(0x6983);
    /// Reference data not usable (PIN not initialised).
    pub const REF_DATA_NOT_USABLE: Sw = Sw(0x6984);
    /// Conditions of use not satisfied (e.g. a key used for what it may not do).
    pub const CONDITIONS: Sw = Sw(0x6985);
    /// Command not allowed: no current EF / wrong state (device authentication needed).
    pub const NOT_ALLOWED: Sw = Sw(0x6986);
    /// Secure messaging data objects missing.
    pub const SM_MISSING: Sw = Sw(0x6987);
    /// Secure messaging data objects incorrect (bad MAC, replayed counter).
    pub const SM_INCORRECT: Sw = Sw(0x6988);
    /// Incorrect parameters in the data field.
    pub const WRONG_DATA: Sw = Sw(0x6A80);
    /// Function not supported.
    pub const FUNC_NOT_SUPPORTED: Sw = Sw(0x6A81);
    /// File or application not found.
    pub const FILE_NOT_FOUND: Sw = Sw(0x6A82);
    /// Not enough memory space.
    pub const NO_SPACE: Sw = Sw(0x6A84);
    /// Incorrect P1 P2.
    pub const WRONG_P1P2: Sw = Sw(0x6A86);
    /// Referenced data (key, container, object) not found.
    pub const REF_NOT_FOUND: Sw = Sw(0x6A88);
    /// File already exists.
    pub const FILE_EXISTS: Sw = Sw(0x6A89);
    /// DF (application, container) name already exists.
    pub const NAME_EXISTS: Sw = Sw(0x6A8A);
    /// Instruction not supported.
    pub const INS_NOT_SUPPORTED: Sw = Sw(0x6D00);
    /// Class not supported.
    pub const CLA_NOT_SUPPORTED: Sw = Sw(0x6E00);
    /// No precise diagnosis.
    pub const UNKNOWN: Sw = Sw(0x6F00);
    /// Memory failure.
    pub const MEMORY_FAILURE: Sw = Sw(0x6581);
    /// Last command of a chain expected.
    pub const CHAIN_LAST_EXPECTED: Sw = Sw(0x6883);
    /// Command chaining not supported.
    pub const CHAINING_UNSUPPORTED: Sw = Sw(0x6884);
    /// ukey: the signature or MAC in the data field does not verify.
    pub const VERIFY_FAILED: Sw = Sw(0x6A90);
    /// ukey: decryption failed (bad padding, C3 mismatch, wrong key).
    pub const DECRYPT_FAILED: Sw = Sw(0x6A91);
    /// ukey: device authentication failed.
    pub const DEV_AUTH_FAILED: Sw = Sw(0x6A92);
}

/// The error a status word stands for; `Ok` for 90 00. `what` names the operation, for
/// messages.
pub fn check(s: Sw, what: &str) -> Result<()> {
    let e = match s {
        sw::OK => return Ok(()),
        // 63 Cx: verification failed, x retries left (x = 0 means the PIN is now locked).
        Sw(v) if v & 0xFFF0 == 0x63C0 => match v & 0x0F {
            0 => Error::PinLocked,
            n => Error::PinIncorrect {
                retries_left: u32::from(n),
            },
        },
        sw::AUTH_BLOCKED => Error::PinLocked,
        sw::REF_DATA_NOT_USABLE => Error::PinNotInitialized,
        sw::SECURITY_STATUS => Error::NotLoggedIn,
        sw::NOT_ALLOWED => Error::DeviceAuthRequired,
        sw::DEV_AUTH_FAILED => Error::DeviceAuthFailed,
        sw::CONDITIONS => Error::KeyUsage(what.to_owned()),
        sw::FILE_NOT_FOUND | sw::REF_NOT_FOUND => Error::not_found(what),
        sw::FILE_EXISTS | sw::NAME_EXISTS => Error::already_exists(what),
        sw::NO_SPACE | sw::MEMORY_FAILURE => Error::NoSpace,
        sw::WRONG_LENGTH | sw::WRONG_P1P2 | sw::WRONG_DATA => {
            Error::invalid_arg(format!("{what}: the card refused the command ({s})"))
        }
        sw::FUNC_NOT_SUPPORTED | sw::INS_NOT_SUPPORTED | sw::CLA_NOT_SUPPORTED => {
            Error::Unsupported(format!("{what} (card status {s})"))
        }
        sw::VERIFY_FAILED => Error::SignatureInvalid,
        sw::DECRYPT_FAILED => Error::DecryptFailed,
        sw::SM_MISSING | sw::SM_INCORRECT => {
            Error::Device(format!("{what}: secure messaging refused ({s})"))
        }
        other => Error::Device(format!("{what}: card status {other}")),
    };
    Err(e)
}

/// The status word a card answers for a token-hal error (the card side of the table;
/// the virtual key uses it). Inverse of [`check`] for every error the table knows.
pub fn for_error(e: &Error) -> Sw {
    match e {
        Error::PinIncorrect { retries_left } => Sw(0x63C0 | (*retries_left).min(15) as u16),
        Error::PinLocked => sw::AUTH_BLOCKED,
        Error::PinNotInitialized => sw::REF_DATA_NOT_USABLE,
        Error::NotLoggedIn | Error::AccessDenied(_) => sw::SECURITY_STATUS,
        Error::DeviceAuthRequired => sw::NOT_ALLOWED,
        Error::DeviceAuthFailed => sw::DEV_AUTH_FAILED,
        Error::KeyUsage(_) | Error::KeyType(_) => sw::CONDITIONS,
        Error::NotFound(_) => sw::REF_NOT_FOUND,
        Error::AlreadyExists(_) => sw::NAME_EXISTS,
        Error::NoSpace | Error::DiskFull { .. } => sw::NO_SPACE,
        Error::InvalidArgument(_) | Error::PinInvalid(_) | Error::InvalidData(_) => sw::WRONG_DATA,
        Error::Unsupported(_) => sw::FUNC_NOT_SUPPORTED,
        Error::SignatureInvalid => sw::VERIFY_FAILED,
        Error::DecryptFailed | Error::WrongPassword => sw::DECRYPT_FAILED,
        _ => sw::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert!(check(sw::OK, "x").is_ok());
        assert!(matches!(
            check(Sw(0x63C3), "x"),
            Err(Error::PinIncorrect { retries_left: 3 })
        ));
        assert!(matches!(check(Sw(0x63C0), "x"), Err(Error::PinLocked)));
        assert!(matches!(
            check(sw::AUTH_BLOCKED, "x"),
            Err(Error::PinLocked)
        ));
        assert!(matches!(
            check(sw::REF_NOT_FOUND, "key"),
            Err(Error::NotFound(w)) if w == "key"
        ));
        assert!(matches!(check(Sw(0x6123), "x"), Err(Error::Device(_))));
        assert!(matches!(check(Sw(0x0000), "x"), Err(Error::Device(_))));
    }

    #[test]
    fn card_side_is_the_inverse() {
        for e in [
            Error::PinIncorrect { retries_left: 4 },
            Error::PinLocked,
            Error::PinNotInitialized,
            Error::NotLoggedIn,
            Error::DeviceAuthRequired,
            Error::DeviceAuthFailed,
            Error::not_found("k"),
            Error::already_exists("k"),
            Error::NoSpace,
            Error::SignatureInvalid,
            Error::DecryptFailed,
        ] {
            let back = check(for_error(&e), "k").unwrap_err();
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{e:?} -> {back:?}"
            );
        }
        // More than 15 retries still reads as "incorrect", never as "locked".
        assert!(matches!(
            check(for_error(&Error::PinIncorrect { retries_left: 99 }), "x"),
            Err(Error::PinIncorrect { retries_left: 15 })
        ));
    }
}
