//! Secrets of the soft token: the device key file, application master keys wrapped under
//! PIN-derived keys, and the AAD of every sealed value.

use std::fs;
use std::path::Path;

use zeroize::Zeroizing;

use super::store::write_file_atomic;
use crate::crypto::aead;
use crate::crypto::hash::HashAlg;
use crate::crypto::{kdf, rng};
use crate::error::{Error, Result};
use crate::model::{Pin, PinType};

/// The KDF name stored with each PIN wrap.
pub(crate) const KDF_PBKDF2_SM3: &str = "pbkdf2-hmac-sm3";
/// Salt length of PIN wraps.
const SALT_LEN: usize = 16;

/// A 256-bit secret key, zeroized on drop.
pub(crate) type Key32 = Zeroizing<[u8; 32]>;

/// The device key: seals device secrets. Lives in `<serial>.devkey`.
pub(crate) struct DeviceKey(Key32);

impl DeviceKey {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Self(random_key()?))
    }
}

/// 32 random bytes.
pub(crate) fn random_key() -> Result<Key32> {
    let mut k = Zeroizing::new([0u8; 32]);
    rng::fill(&mut k[..])?;
    Ok(k)
}

fn to_key32(bytes: &[u8]) -> Option<Key32> {
    let arr: [u8; 32] = bytes.try_into().ok()?;
    Some(Zeroizing::new(arr))
}

/// Writes a new device-key file (mode 0600).
pub(crate) fn write_device_key(path: &Path, key: &DeviceKey) -> Result<()> {
    write_file_atomic(path, &key.0[..])
}

/// Reads a device-key file.
pub(crate) fn read_device_key(path: &Path) -> Result<DeviceKey> {
    let bytes = Zeroizing::new(fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        detail: format!("device key: {e}"),
    })?);
    to_key32(&bytes)
        .map(DeviceKey)
        .ok_or_else(|| Error::Corrupt {
            what: path.display().to_string(),
            detail: "a device key file holds 32 bytes".into(),
        })
}

fn auth_key_aad(serial: &str) -> Vec<u8> {
    format!("ukey/v1/dev/{serial}/auth-key").into_bytes()
}

/// Seals the device-authentication key.
pub(crate) fn seal_auth_key(devkey: &DeviceKey, serial: &str, auth_key: &[u8]) -> Result<Vec<u8>> {
    aead::seal(&devkey.0, &auth_key_aad(serial), auth_key)
}

/// Opens the device-authentication key.
pub(crate) fn open_auth_key(
    devkey: &DeviceKey,
    serial: &str,
    sealed: &[u8],
    devkey_path: &Path,
) -> Result<Zeroizing<Vec<u8>>> {
    aead::open(&devkey.0, &auth_key_aad(serial), sealed).map_err(|_| Error::Corrupt {
        what: devkey_path.display().to_string(),
        detail: "the device key does not open the device secrets".into(),
    })
}

/// The AAD prefix of an application: `ukey/v1/app/<generation hex>`.
fn app_prefix(generation: &[u8]) -> String {
    format!("ukey/v1/app/{}", hex::encode(generation))
}

/// AAD of a master-key wrap.
pub(crate) fn mk_aad(generation: &[u8], pin_type: PinType) -> Vec<u8> {
    let role = match pin_type {
        PinType::Admin => "admin",
        PinType::User => "user",
    };
    format!("{}/mk/{role}", app_prefix(generation)).into_bytes()
}

/// AAD of a private key.
pub(crate) fn key_aad(generation: &[u8], key_id: i64) -> Vec<u8> {
    format!("{}/key/{key_id}/pkcs8", app_prefix(generation)).into_bytes()
}

/// AAD of a sensitive object attribute.
pub(crate) fn attr_aad(generation: &[u8], object_id: i64, ty: u64) -> Vec<u8> {
    format!("{}/obj/{object_id}/attr/{ty}", app_prefix(generation)).into_bytes()
}

/// A master key wrapped under a PIN, as stored in the `pin` table.
pub(crate) struct PinWrap {
    pub kdf: String,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub wrapped: Vec<u8>,
}

fn derive(pin: &Pin, salt: &[u8], iterations: u32) -> Result<Key32> {
    let out = kdf::pbkdf2(HashAlg::Sm3, pin.as_bytes(), salt, iterations, 32)?;
    to_key32(&out).ok_or_else(|| Error::internal("PBKDF2 output length"))
}

/// A key freshly derived from a new PIN, ready to wrap a master key. Deriving it is the
/// slow part, so it is done before the write lock is taken.
pub(crate) struct NewKek {
    salt: Vec<u8>,
    iterations: u32,
    kek: Key32,
}

impl NewKek {
    /// Derives a key from `pin` with a fresh salt.
    pub(crate) fn derive(pin: &Pin, iterations: u32) -> Result<Self> {
        let salt = rng::random_bytes(SALT_LEN)?;
        let kek = derive(pin, &salt, iterations)?;
        Ok(Self {
            salt,
            iterations,
            kek,
        })
    }

    /// Wraps `mk` for the PIN this key came from.
    pub(crate) fn wrap(&self, mk: &Key32, generation: &[u8], pin_type: PinType) -> Result<PinWrap> {
        let wrapped = aead::seal(&self.kek, &mk_aad(generation, pin_type), &mk[..])?;
        Ok(PinWrap {
            kdf: KDF_PBKDF2_SM3.to_owned(),
            iterations: self.iterations,
            salt: self.salt.clone(),
            wrapped,
        })
    }
}

/// Unwraps a master key with `pin`. `Ok(None)` means the PIN is wrong.
pub(crate) fn unwrap_mk(
    wrap: &PinWrap,
    pin: &Pin,
    generation: &[u8],
    pin_type: PinType,
) -> Result<Option<Key32>> {
    if wrap.kdf != KDF_PBKDF2_SM3 {
        return Err(Error::Corrupt {
            what: "PIN record".into(),
            detail: format!("unknown KDF {:?}", wrap.kdf),
        });
    }
    let kek = derive(pin, &wrap.salt, wrap.iterations)?;
    match aead::open(&kek, &mk_aad(generation, pin_type), &wrap.wrapped) {
        Ok(mk) => Ok(Some(to_key32(&mk).ok_or_else(|| Error::Corrupt {
            what: "PIN record".into(),
            detail: "master key of the wrong length".into(),
        })?)),
        Err(Error::DecryptFailed) => Ok(None),
        Err(e) => Err(e),
    }
}
