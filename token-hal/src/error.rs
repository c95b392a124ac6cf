//! token-hal errors, in the token's own terms.
//!
//! The front ends map these to `CKR_*` (pkcs11-module/src/error.rs) and `SAR_*`
//! (skf-provider/src/error.rs), each in one place. Nothing here knows either vocabulary.

use std::path::PathBuf;

/// What went wrong, said the way a token would say it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The PIN was wrong; the persisted counter was decremented.
    #[error("incorrect PIN, {retries_left} retries left")]
    PinIncorrect { retries_left: u32 },
    /// The PIN is locked (no retries left) until it is unblocked.
    #[error("PIN locked")]
    PinLocked,
    /// A new PIN is outside the allowed length range or otherwise unacceptable.
    #[error("invalid PIN: {0}")]
    PinInvalid(&'static str),
    /// The PIN has not been set yet (a token after C_InitToken, before C_InitPIN).
    #[error("PIN not initialized")]
    PinNotInitialized,
    /// The operation needs a PIN to have been verified first.
    #[error("not logged in")]
    NotLoggedIn,
    /// Already logged in with another role.
    #[error("another user is already logged in")]
    UserAnotherAlreadyLoggedIn,
    /// Device authentication is required (create/delete application, change auth key).
    #[error("device authentication required")]
    DeviceAuthRequired,
    /// Device authentication failed.
    #[error("device authentication failed")]
    DeviceAuthFailed,
    /// The caller lacks the rights for this file or application operation.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The named thing already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The key exists but may not be used for this (e.g. a retired key asked to sign).
    #[error("key usage not allowed: {0}")]
    KeyUsage(String),
    /// A key is of a type the operation cannot use.
    #[error("key type inconsistent: {0}")]
    KeyType(String),
    /// The output buffer is too small; `needed` bytes are required.
    #[error("buffer too small, {needed} bytes needed")]
    BufferTooSmall { needed: usize },
    /// A stored object or a file on disk is damaged or unreadable.
    #[error("corrupt data in {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// The store was written by a newer ukey than this one.
    #[error("{path}: schema version {found} is newer than supported {supported}")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// A filesystem or database I/O error, naming the file.
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    /// Input data (certificate, key, ciphertext, blob...) is malformed.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// An argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A signature did not verify.
    #[error("signature invalid")]
    SignatureInvalid,
    /// Decryption failed (bad padding, failed integrity check, wrong key).
    #[error("decryption failed")]
    DecryptFailed,
    /// The wrong password was given for an encrypted key file.
    #[error("wrong password or corrupt encrypted key")]
    WrongPassword,
    /// The device was removed or the transport went away.
    #[error("device removed")]
    DeviceRemoved,
    /// The device answered with an error the HAL does not know more about.
    #[error("device error: {0}")]
    Device(String),
    /// The token has no room left.
    #[error("no space left on token")]
    NoSpace,
    /// The disk holding a soft token's file is full (or a file size limit was reached);
    /// nothing was written, and the next write succeeds once space is freed.
    #[error("{path}: no space left on the disk ({detail})")]
    DiskFull { path: PathBuf, detail: String },
    /// The operation or algorithm is not supported by this token or build.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A crypto self-test failed; the module refuses crypto until reloaded.
    #[error("cryptographic self-test failed: {0}")]
    SelfTestFailed(String),
    /// A lock could not be taken in time (another process holds the token).
    #[error("token busy")]
    Busy,
    /// Configuration is invalid.
    #[error("config {path}: {detail}")]
    Config { path: PathBuf, detail: String },
    /// A bug or an impossible state; never caused by caller input.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The token-hal result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::InvalidData`].
    pub fn invalid_data(msg: impl Into<String>) -> Self {
        Self::InvalidData(msg.into())
    }
    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }
    /// Shorthand for [`Error::AlreadyExists`].
    pub fn already_exists(what: impl Into<String>) -> Self {
        Self::AlreadyExists(what.into())
    }
    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(what: impl Into<String>) -> Self {
        Self::Unsupported(what.into())
    }
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid_arg(what: impl Into<String>) -> Self {
        Self::InvalidArgument(what.into())
    }
    /// Shorthand for [`Error::Internal`].
    pub fn internal(what: impl Into<String>) -> Self {
        Self::Internal(what.into())
    }
}

impl From<der::Error> for Error {
    fn from(e: der::Error) -> Self {
        Self::InvalidData(format!("DER: {e}"))
    }
}
