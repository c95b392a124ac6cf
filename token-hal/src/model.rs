//! The token model of DESIGN.md: devices hold applications; applications hold containers,
//! files and generic objects; containers hold a signing and an encryption key pair, each
//! with its certificate history, plus retired encryption keys.
//!
//! These are plain data types shared by every backend and both front ends.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::{KeyAlg, PublicKey};
use crate::error::{Error, Result};

/// Smallest PIN length accepted (as SoftHSM2).
pub const PIN_MIN_LEN: usize = 4;
/// Largest PIN length accepted (as SoftHSM2).
pub const PIN_MAX_LEN: usize = 255;
/// Default retry limit for both PINs of a new application.
pub const DEFAULT_PIN_RETRIES: u32 = 10;

/// A PIN. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Pin(Vec<u8>);

impl Pin {
    /// Wraps PIN bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
    /// The PIN bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Checks the PIN length policy (4–255 bytes).
    pub fn check_policy(&self) -> Result<()> {
        if self.0.len() < PIN_MIN_LEN {
            return Err(Error::PinInvalid("PIN shorter than 4 bytes"));
        }
        if self.0.len() > PIN_MAX_LEN {
            return Err(Error::PinInvalid("PIN longer than 255 bytes"));
        }
        Ok(())
    }
}

impl From<&str> for Pin {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(***)")
    }
}

/// Which PIN of an application (GM/T 0016 ADMIN_TYPE = 0, USER_TYPE = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PinType {
    /// The administrator PIN; the PKCS#11 SO PIN.
    Admin,
    /// The user PIN.
    User,
}

/// Retry state of one PIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinInfo {
    /// The retry limit.
    pub max_retries: u32,
    /// Attempts left; 0 means locked.
    pub remaining: u32,
    /// The PIN is still the factory default.
    pub default_pin: bool,
    /// The PIN has been set (a PKCS#11 token after C_InitToken has no user PIN yet).
    pub initialized: bool,
}

impl PinInfo {
    /// No attempts left.
    pub fn locked(&self) -> bool {
        self.remaining == 0
    }
}

/// Access rights of files and applications (GM/T 0016 SECURE_*_ACCOUNT).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rights(pub u32);

impl Rights {
    /// Nobody.
    pub const NEVER: Self = Self(0x00);
    /// The administrator.
    pub const ADMIN: Self = Self(0x01);
    /// The user.
    pub const USER: Self = Self(0x10);
    /// Anyone, no login needed.
    pub const ANYONE: Self = Self(0xFF);

    /// Whether a caller with the given login state may act.
    pub fn allows(self, login: LoginState) -> bool {
        if self.0 == Self::ANYONE.0 {
            return true;
        }
        match login {
            LoginState::None => false,
            LoginState::User => self.0 & Self::USER.0 != 0,
            LoginState::Admin => self.0 & Self::ADMIN.0 != 0,
        }
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NEVER => f.write_str("never"),
            Self::ADMIN => f.write_str("admin"),
            Self::USER => f.write_str("user"),
            Self::ANYONE => f.write_str("anyone"),
            Rights(r) => write!(f, "0x{r:02x}"),
        }
    }
}

/// Who is logged in to an application (per process, per application handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginState {
    /// Nobody.
    None,
    /// The user PIN was verified.
    User,
    /// The admin (SO) PIN was verified.
    Admin,
}

/// Kind of backend a device comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendKind {
    /// The encrypted on-disk soft token.
    Soft,
    /// A card or USB key speaking APDUs (PC/SC, HID, loopback).
    Apdu,
    /// A vendor SKF library.
    VendorSkf,
    /// A third-party PKCS#11 module.
    Pkcs11,
}

/// What a device says about itself (SKF DEVINFO; PKCS#11 slot and token info).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Device name as SKF_EnumDev lists it.
    pub name: String,
    /// Stable serial number (≤ 32 chars).
    pub serial: String,
    /// Device label (≤ 32 bytes).
    pub label: String,
    /// Manufacturer (≤ 64 bytes).
    pub manufacturer: String,
    /// Issuer (≤ 64 bytes).
    pub issuer: String,
    /// Model.
    pub model: String,
    /// Hardware version (major, minor).
    pub hw_version: (u8, u8),
    /// Firmware version (major, minor).
    pub fw_version: (u8, u8),
    /// Total storage in bytes.
    pub total_space: u64,
    /// Free storage in bytes.
    pub free_space: u64,
    /// Whether it can be pulled out (USB keys) or not (soft devices).
    pub removable: bool,
    /// Whether it is a hardware device (a USB key, a card), as opposed to a token
    /// implemented in software (the soft token, a virtual key that says it is one).
    #[serde(default)]
    pub hardware: bool,
    /// Backend kind.
    pub backend: BackendKind,
}

/// Parameters of a new application.
#[derive(Clone, Debug)]
pub struct AppParams {
    /// Admin (SO) PIN.
    pub admin_pin: Pin,
    /// Admin PIN retry limit.
    pub admin_retries: u32,
    /// User PIN; `None` leaves it uninitialised (PKCS#11 C_InitToken, then C_InitPIN).
    pub user_pin: Option<Pin>,
    /// User PIN retry limit.
    pub user_retries: u32,
    /// Who may create files in the application.
    pub create_file_rights: Rights,
}

impl AppParams {
    /// Parameters with the default retry limits and file rights.
    pub fn new(admin_pin: Pin, user_pin: Option<Pin>) -> Self {
        Self {
            admin_pin,
            admin_retries: DEFAULT_PIN_RETRIES,
            user_pin,
            user_retries: DEFAULT_PIN_RETRIES,
            create_file_rights: Rights::ANYONE,
        }
    }
}

/// Summary of an application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Application name; the PKCS#11 token label unless configured.
    pub name: String,
    /// Who may create files.
    pub create_file_rights: Rights,
    /// Admin PIN state.
    pub admin_pin: PinInfo,
    /// User PIN state.
    pub user_pin: PinInfo,
}

/// Which key pair of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyUsage {
    /// The signing key pair (SKF bSignFlag = TRUE).
    Sign,
    /// The encryption key pair (SKF bSignFlag = FALSE).
    Encrypt,
}

impl KeyUsage {
    /// "sign" or "enc".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sign => "sign",
            Self::Encrypt => "enc",
        }
    }
}

/// Stable identifier of a key inside an application (survives renewals and rekeys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyId(pub u64);

/// Stable identifier of a certificate inside an application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CertId(pub u64);

/// Stable identifier of a generic object inside an application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId(pub u64);

/// A certificate of a key: the current one, or a historical one kept after renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRecord {
    /// Its id.
    pub id: CertId,
    /// The DER bytes.
    pub der: Vec<u8>,
    /// Whether it is the key's current certificate (false: history).
    pub current: bool,
    /// Unix time of import.
    pub imported_at: u64,
}

/// Whether a key is in use or retired by a rekey (decrypt-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    /// The container's current key of its usage.
    Active,
    /// Replaced by a newer encryption key; usable for decryption only.
    Retired,
}

/// A key pair of a container, with all its certificates.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Its id.
    pub id: KeyId,
    /// Algorithm and size.
    pub alg: KeyAlg,
    /// Signing or encryption pair.
    pub usage: KeyUsage,
    /// Active or retired.
    pub state: KeyState,
    /// The public key.
    pub public_key: PublicKey,
    /// Certificates, current first, then history newest first.
    pub certs: Vec<CertRecord>,
}

impl KeyInfo {
    /// The current certificate, if any.
    pub fn current_cert(&self) -> Option<&CertRecord> {
        self.certs.iter().find(|c| c.current)
    }
}

/// A container and everything in it.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    /// Name (≤ 64 bytes), the PKCS#11 CKA_LABEL of its objects.
    pub name: String,
    /// Id, the PKCS#11 CKA_ID of its objects.
    pub id: Vec<u8>,
    /// The active signing key pair.
    pub sign: Option<KeyInfo>,
    /// The active encryption key pair.
    pub enc: Option<KeyInfo>,
    /// Retired encryption key pairs, newest first.
    pub retired: Vec<KeyInfo>,
}

impl ContainerInfo {
    /// The active key of a usage.
    pub fn key(&self, usage: KeyUsage) -> Option<&KeyInfo> {
        match usage {
            KeyUsage::Sign => self.sign.as_ref(),
            KeyUsage::Encrypt => self.enc.as_ref(),
        }
    }
    /// Every key, active and retired.
    pub fn all_keys(&self) -> impl Iterator<Item = &KeyInfo> {
        self.sign
            .iter()
            .chain(self.enc.iter())
            .chain(self.retired.iter())
    }
}

/// How an operation names a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// The active key pair of a usage in a named container.
    Container { container: String, usage: KeyUsage },
    /// Any key by id, retired keys included.
    Id(KeyId),
}

impl KeyRef {
    /// The active key of `usage` in `container`.
    pub fn active(container: &str, usage: KeyUsage) -> Self {
        Self::Container {
            container: container.to_owned(),
            usage,
        }
    }
}

/// A file's attributes (SKF FILEATTRIBUTE).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Name (≤ 32 bytes).
    pub name: String,
    /// Size in bytes.
    pub size: u32,
    /// Who may read.
    pub read_rights: Rights,
    /// Who may write.
    pub write_rights: Rights,
}

/// One attribute of a generic object: a type number (the front end's, e.g. a CKA_* value)
/// and its bytes. Sensitive values are sealed at rest and redacted in `Debug`.
#[derive(Clone)]
pub struct Attr {
    /// Attribute type number.
    pub ty: u64,
    /// Value bytes.
    pub value: Zeroizing<Vec<u8>>,
    /// Sealed at rest and only readable after login.
    pub sensitive: bool,
}

impl Attr {
    /// A public attribute.
    pub fn public(ty: u64, value: impl Into<Vec<u8>>) -> Self {
        Self {
            ty,
            value: Zeroizing::new(value.into()),
            sensitive: false,
        }
    }
    /// A sensitive attribute.
    pub fn sensitive(ty: u64, value: impl Into<Vec<u8>>) -> Self {
        Self {
            ty,
            value: Zeroizing::new(value.into()),
            sensitive: true,
        }
    }
}

impl fmt::Debug for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sensitive {
            write!(
                f,
                "Attr({:#x}, <sensitive {} bytes>)",
                self.ty,
                self.value.len()
            )
        } else {
            write!(f, "Attr({:#x}, {})", self.ty, hex::encode(&*self.value))
        }
    }
}

/// A generic object of an application's object store.
#[derive(Clone, Debug)]
pub struct ObjectRecord {
    /// Its id.
    pub id: ObjectId,
    /// Private objects are listed and read only after login.
    pub private: bool,
    /// Its attributes. Sensitive values are absent (empty) when read without login.
    pub attrs: Vec<Attr>,
}

impl ObjectRecord {
    /// The value of an attribute type.
    pub fn get(&self, ty: u64) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.ty == ty)
    }
}
