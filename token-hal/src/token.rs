//! The `Device` / `Application` traits every backend implements.
//!
//! A *device* is one USB key, card or soft-token database. It holds *applications*; each
//! application is one PKCS#11 token and one SKF HAPPLICATION. Login state lives in the
//! [`Application`] handle a front end opened, so every front end keeps one handle per
//! application and shares it between its sessions.
//!
//! Every method re-reads the backing store, so a change one process makes is seen by
//! another at its next call.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::{DecMech, DeriveMech, DeriveOutput, KeyAlg, PrivateKey, PublicKey, SignMech};
use crate::error::Result;
use crate::model::{
    AppInfo, AppParams, Attr, CertId, ContainerInfo, DeviceInfo, FileInfo, KeyId, KeyRef, KeyUsage,
    LoginState, ObjectId, ObjectRecord, Pin, PinInfo, PinType, Rights,
};

/// A device: a USB key, a card, or one soft-token database.
pub trait Device: Send + Sync {
    /// Device information (SKF_GetDevInfo; the PKCS#11 slot).
    fn info(&self) -> Result<DeviceInfo>;
    /// Sets the device label (SKF_SetLabel).
    fn set_label(&self, label: &str) -> Result<()>;

    /// Random bytes from the device (SKF_GenRandom). The last challenge is remembered
    /// for [`Device::dev_auth`].
    fn gen_random(&self, len: usize) -> Result<Vec<u8>>;
    /// Device authentication (SKF_DevAuth): `cryptogram` is the last challenge from
    /// [`Device::gen_random`], zero-padded to 16 bytes and SM4-ECB encrypted under the
    /// device authentication key. Success authenticates this device handle.
    fn dev_auth(&self, cryptogram: &[u8]) -> Result<()>;
    /// Replaces the device authentication key (SKF_ChangeDevAuthKey); needs dev auth.
    fn change_dev_auth_key(&self, new_key: &[u8]) -> Result<()>;
    /// Authenticates with a known device key: challenge, encrypt, answer. What the CLI
    /// and `C_InitToken` use.
    fn authenticate_with_key(&self, auth_key: &[u8]) -> Result<()> {
        let challenge = self.gen_random(16)?;
        let mut block = [0u8; 16];
        let n = challenge.len().min(16);
        block[..n].copy_from_slice(&challenge[..n]);
        let cryptogram = crate::crypto::sym::sm4_ecb_encrypt_block(auth_key, &block)?;
        self.dev_auth(&cryptogram)
    }

    /// Names of the applications.
    fn list_apps(&self) -> Result<Vec<String>>;
    /// Creates an application (SKF_CreateApplication; PKCS#11 C_InitToken). Needs dev auth.
    fn create_app(&self, name: &str, params: &AppParams) -> Result<()>;
    /// Deletes an application and everything in it. Needs dev auth.
    fn delete_app(&self, name: &str) -> Result<()>;
    /// Opens an application.
    fn open_app(&self, name: &str) -> Result<Arc<dyn Application>>;
}

/// An application: one PKCS#11 token, one SKF HAPPLICATION.
pub trait Application: Send + Sync {
    /// The application name.
    fn name(&self) -> &str;
    /// Application summary with both PIN states.
    fn info(&self) -> Result<AppInfo>;

    // --- access control -------------------------------------------------------------

    /// PIN retry state (SKF_GetPINInfo).
    fn pin_info(&self, pin_type: PinType) -> Result<PinInfo>;
    /// Verifies a PIN and logs in with that role (SKF_VerifyPIN, C_Login). The persisted
    /// counter is decremented before the check in the same transaction and restored on
    /// success. Errors: `PinIncorrect{retries_left}`, `PinLocked`.
    fn verify_pin(&self, pin_type: PinType, pin: &Pin) -> Result<()>;
    /// Changes a PIN given the old one (SKF_ChangePIN, C_SetPIN). Counts as an attempt.
    fn change_pin(&self, pin_type: PinType, old: &Pin, new: &Pin) -> Result<()>;
    /// Unblocks the user PIN with the admin PIN and sets a new user PIN, resetting its
    /// counter (SKF_UnblockPIN).
    fn unblock_pin(&self, admin_pin: &Pin, new_user_pin: &Pin) -> Result<()>;
    /// Sets the user PIN while logged in as admin (C_InitPIN).
    fn init_user_pin(&self, new_user_pin: &Pin) -> Result<()>;
    /// Wipes the application with the admin PIN: all containers, files and objects go,
    /// the user PIN becomes uninitialised (C_InitToken on an initialised token).
    fn wipe(&self, admin_pin: &Pin) -> Result<()>;
    /// Logs out (SKF_ClearSecureState, C_Logout). Forgets unwrapped secrets.
    fn logout(&self);
    /// Who is logged in through this handle.
    fn login_state(&self) -> LoginState;
    /// How many times this handle's login state has changed (logins, logouts, a wipe
    /// elsewhere ending the login). A caller that reads it before and after some work
    /// knows whether the login stayed the same in between, even if the state it reads at
    /// both ends is the same. Backends that do not count return 0.
    fn login_changes(&self) -> u64 {
        0
    }

    // --- containers and their keys ---------------------------------------------------

    /// Every container with its keys and certificates.
    fn list_containers(&self) -> Result<Vec<ContainerInfo>>;
    /// One container by name.
    fn container(&self, name: &str) -> Result<ContainerInfo>;
    /// Creates an empty container (SKF_CreateContainer). `id` is its CKA_ID; when absent
    /// one is derived as docs/mapping.md says. Needs user login.
    fn create_container(&self, name: &str, id: Option<&[u8]>) -> Result<ContainerInfo>;
    /// Deletes a container with its keys and certificates. Needs user login.
    fn delete_container(&self, name: &str) -> Result<()>;
    /// Generates a key pair in a container slot. With `rekey`, an existing encryption pair
    /// is retired (kept for decryption) instead of failing with AlreadyExists. An existing
    /// signing pair is replaced only with `rekey`. Needs user login.
    fn generate_key(
        &self,
        container: &str,
        usage: KeyUsage,
        alg: KeyAlg,
        rekey: bool,
    ) -> Result<PublicKey>;
    /// Imports a private key into a container slot, with the same `rekey` rule. Returns
    /// the id of the stored key.
    fn import_key(
        &self,
        container: &str,
        usage: KeyUsage,
        key: &PrivateKey,
        rekey: bool,
    ) -> Result<KeyId>;
    /// Imports an SM2 encryption key pair delivered as a GM/T 0016 ENVELOPEDKEYBLOB (its
    /// bytes, already checked by the caller), unwrapped by the device itself with the
    /// container's signing key; an existing encryption pair is replaced. For devices that
    /// cannot decrypt with a signing key on the host's behalf but take the blob whole (a
    /// vendor SKF library). The default is `Unsupported`: the caller then unwraps on the
    /// host with [`Application::decrypt`] and calls [`Application::import_key`].
    fn import_enveloped_key(&self, container: &str, blob: &[u8]) -> Result<KeyId> {
        let _ = (container, blob);
        Err(crate::Error::unsupported(
            "importing an enveloped key blob whole",
        ))
    }
    /// Deletes one key pair of a container (active or retired) with its certificates;
    /// the container stays. What PKCS#11 `C_DestroyObject` of a container key does.
    /// Needs user login.
    fn delete_key(&self, key: KeyId) -> Result<()>;
    /// A copy of a container's private key, for the PKCS#11 face only: `C_WrapKey` of a
    /// key its creator made extractable through PKCS#11, and `C_CopyObject`. The SKF face
    /// never exports a private key. Backends whose keys cannot leave the device (cards)
    /// answer `NotSupported`. Needs user login.
    fn export_key(&self, key: KeyId) -> Result<PrivateKey>;
    /// The public key of the active key pair of a slot.
    fn public_key(&self, container: &str, usage: KeyUsage) -> Result<PublicKey>;
    /// Imports a certificate for the active key of a slot. Its public key must match.
    /// A previous current certificate stays in the key's history. Needs user login.
    fn import_cert(&self, container: &str, usage: KeyUsage, der: &[u8]) -> Result<CertId>;
    /// The current certificate of a slot's active key, if any.
    fn cert(&self, container: &str, usage: KeyUsage) -> Result<Option<Vec<u8>>>;
    /// Deletes one certificate (current or historical). Needs user login.
    fn delete_cert(&self, cert: CertId) -> Result<()>;
    /// Signs with a key (not a retired one). EC signatures are raw r‖s. Needs user login.
    fn sign(&self, key: &KeyRef, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>>;
    /// Decrypts with a key, retired ones included. Needs user login.
    fn decrypt(&self, key: &KeyRef, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    /// Key agreement with a key, retired ones included (PKCS#11 ECDH derive; SKF SM2
    /// agreement). Needs user login.
    fn derive(&self, key: &KeyRef, mech: &DeriveMech) -> Result<DeriveOutput>;

    // --- files -----------------------------------------------------------------------

    /// Every file.
    fn list_files(&self) -> Result<Vec<FileInfo>>;
    /// Creates a file of a fixed size, zero-filled (SKF_CreateFile).
    fn create_file(&self, name: &str, size: u32, read: Rights, write: Rights) -> Result<()>;
    /// Deletes a file (needs its write right).
    fn delete_file(&self, name: &str) -> Result<()>;
    /// A file's attributes.
    fn file_info(&self, name: &str) -> Result<FileInfo>;
    /// Reads up to `len` bytes at `offset` (needs the read right).
    fn read_file(&self, name: &str, offset: u32, len: u32) -> Result<Vec<u8>>;
    /// Writes at `offset` (needs the write right). The file does not grow past its size.
    fn write_file(&self, name: &str, offset: u32, data: &[u8]) -> Result<()>;

    // --- generic objects (what PKCS#11 needs beyond containers) -----------------------

    /// Stores an object. Sensitive attributes are sealed. Private objects need user login.
    fn create_object(&self, private: bool, attrs: &[Attr]) -> Result<ObjectId>;
    /// Every object visible with the current login (private ones need user login).
    fn list_objects(&self) -> Result<Vec<ObjectRecord>>;
    /// One object; sensitive values are empty unless logged in.
    fn get_object(&self, id: ObjectId) -> Result<ObjectRecord>;
    /// Sets attributes of an object (replacing those of the same type).
    fn update_object(&self, id: ObjectId, attrs: &[Attr]) -> Result<()>;
    /// Deletes an object.
    fn delete_object(&self, id: ObjectId) -> Result<()>;
}
