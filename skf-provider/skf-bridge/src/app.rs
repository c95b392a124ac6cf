//! A vendor application as a token-hal [`Application`].
//!
//! Containers, keys and certificates map as docs/skf-bridge.md says: a container's id is its
//! name's UTF-8 bytes; a key's id and a certificate's id are derived from the container
//! name and the usage; there are no retired keys, no certificate history and no generic
//! objects (the SKF model has none).

use std::sync::{Arc, Mutex, PoisonError};

use skf_sys::*;
use token_hal::crypto::hash::{self, HashAlg};
use token_hal::crypto::{
    DecMech, DeriveMech, DeriveOutput, KeyAlg, PrivateKey, PublicKey, SignMech, sm2,
};
use token_hal::model::{
    AppInfo, Attr, CertId, CertRecord, ContainerInfo, FileInfo, KeyId, KeyInfo, KeyRef, KeyState,
    KeyUsage, LoginState, ObjectId, ObjectRecord, Pin, PinInfo, PinType, Rights,
};
use token_hal::token::Application;
use token_hal::{Error, Result};
use zeroize::Zeroizing;

use crate::blob::{self, c_field, c_string, name_list};
use crate::device::{DevInner, MAX_OUT, Raw, SLACK, sized};
use crate::error::{check, sar};
use crate::sym;

/// Largest certificate accepted from a vendor.
const MAX_CERT: usize = 64 * 1024;

/// A stable 63-bit id of (`kind`, container, usage): the first 8 bytes of SM3 over them.
fn derived_id(kind: &str, container: &str, usage: KeyUsage) -> u64 {
    let mut m = format!("ukey-skf-bridge/{kind}/").into_bytes();
    m.extend_from_slice(container.as_bytes());
    m.push(0);
    m.extend_from_slice(usage.as_str().as_bytes());
    let d = hash::digest(HashAlg::Sm3, &m);
    let mut w = [0u8; 8];
    w.copy_from_slice(&d[..8]);
    u64::from_be_bytes(w) & 0x7FFF_FFFF_FFFF_FFFF
}

/// The [`KeyId`] of a container's key of `usage` (docs/skf-bridge.md).
pub fn key_id(container: &str, usage: KeyUsage) -> KeyId {
    KeyId(derived_id("key", container, usage))
}

/// The [`CertId`] of a container's certificate of `usage` (docs/skf-bridge.md).
pub fn cert_id(container: &str, usage: KeyUsage) -> CertId {
    CertId(derived_id("cert", container, usage))
}

fn pin_type(t: PinType) -> ULONG {
    match t {
        PinType::Admin => ADMIN_TYPE,
        PinType::User => USER_TYPE,
    }
}

fn flag(usage: KeyUsage) -> BOOL {
    match usage {
        KeyUsage::Sign => TRUE,
        KeyUsage::Encrypt => FALSE,
    }
}

/// An application of a vendor device.
pub struct BridgeApp {
    dev: Arc<DevInner>,
    name: String,
    handle: Raw,
    login: Mutex<LoginState>,
    /// Every login and every end of one ([`Application::login_changes`]).
    login_changes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for BridgeApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BridgeApp({}/{})", self.dev.name, self.name)
    }
}

impl Drop for BridgeApp {
    fn drop(&mut self) {
        let _g = self.dev.lock();
        if let Ok(f) = sym!(self.dev.lib, SKF_CloseApplication) {
            // SAFETY: the handle from SKF_OpenApplication, closed once, here.
            unsafe { f(self.handle.0) };
        }
    }
}

/// An open container, closed on drop. Used with the device lock held.
struct Container<'a> {
    app: &'a BridgeApp,
    h: Raw,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if let Ok(f) = sym!(self.app.dev.lib, SKF_CloseContainer) {
            // SAFETY: the handle from SKF_OpenContainer/CreateContainer, closed once.
            unsafe { f(self.h.0) };
        }
    }
}

impl BridgeApp {
    pub(crate) fn open(dev: Arc<DevInner>, name: &str) -> Result<Self> {
        let f = sym!(dev.lib, SKF_OpenApplication)?;
        let n = c_string(name.as_bytes(), "application name")?;
        let mut h: HANDLE = std::ptr::null_mut();
        {
            let d = dev.lock();
            // SAFETY: live device handle; NUL-terminated name; valid out-pointer.
            check("SKF_OpenApplication", unsafe {
                f(d.0, n.as_ptr().cast_mut(), &mut h)
            })?;
        }
        if h.is_null() {
            return Err(Error::Device("SKF_OpenApplication returned NULL".into()));
        }
        Ok(Self {
            dev,
            name: name.to_owned(),
            handle: Raw(h),
            login: Mutex::new(LoginState::None),
            login_changes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn set_login(&self, s: LoginState) {
        *self.login.lock().unwrap_or_else(PoisonError::into_inner) = s;
        self.login_changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Opens (or, with `create`, creates) a container. The caller holds the device lock.
    fn container_handle(&self, name: &str, create: bool) -> Result<Container<'_>> {
        let n = c_string(name.as_bytes(), "container name")?;
        let mut h: HANDLE = std::ptr::null_mut();
        let (func, rv) = if create {
            let f = sym!(self.dev.lib, SKF_CreateContainer)?;
            // SAFETY: live application handle; NUL-terminated name; valid out-pointer.
            ("SKF_CreateContainer", unsafe {
                f(self.handle.0, n.as_ptr().cast_mut(), &mut h)
            })
        } else {
            let f = sym!(self.dev.lib, SKF_OpenContainer)?;
            // SAFETY: as above.
            ("SKF_OpenContainer", unsafe {
                f(self.handle.0, n.as_ptr().cast_mut(), &mut h)
            })
        };
        if rv != SAR_OK {
            return Err(match sar(func, rv) {
                Error::Device(_) | Error::InvalidArgument(_) if !create => {
                    Error::not_found(format!("container {name:?}"))
                }
                e => e,
            });
        }
        if h.is_null() {
            return Err(Error::Device(format!("{func} returned NULL")));
        }
        Ok(Container {
            app: self,
            h: Raw(h),
        })
    }

    fn export_public(&self, c: &Container<'_>, usage: KeyUsage) -> Result<PublicKey> {
        let f = sym!(self.dev.lib, SKF_ExportPublicKey)?;
        let b = sized("SKF_ExportPublicKey", blob::RSA_PUB_LEN, 4096, |p, l| {
            // SAFETY: live container handle; `sized` passes a buffer of `*l` bytes.
            unsafe { f(c.h.0, flag(usage), p, l) }
        })?;
        blob::public_key(&b)
    }

    fn export_cert(&self, c: &Container<'_>, usage: KeyUsage) -> Result<Option<Vec<u8>>> {
        let f = sym!(self.dev.lib, SKF_ExportCertificate)?;
        match sized("SKF_ExportCertificate", 8192, MAX_CERT, |p, l| {
            // SAFETY: live container handle; `sized` passes a buffer of `*l` bytes.
            unsafe { f(c.h.0, flag(usage), p, l) }
        }) {
            Ok(der) if der.is_empty() => Ok(None),
            Ok(der) => Ok(Some(der)),
            Err(Error::DeviceRemoved) => Err(Error::DeviceRemoved),
            Err(_) => Ok(None),
        }
    }

    fn key_info(&self, c: &Container<'_>, name: &str, usage: KeyUsage) -> Result<Option<KeyInfo>> {
        let pk = match self.export_public(c, usage) {
            Ok(pk) => pk,
            Err(Error::DeviceRemoved) => return Err(Error::DeviceRemoved),
            Err(e) => {
                tracing::debug!(container = name, usage = usage.as_str(), error = %e, "no key");
                return Ok(None);
            }
        };
        let certs = self
            .export_cert(c, usage)?
            .map(|der| CertRecord {
                id: cert_id(name, usage),
                der,
                current: true,
                imported_at: 0,
            })
            .into_iter()
            .collect();
        Ok(Some(KeyInfo {
            id: key_id(name, usage),
            alg: pk.alg(),
            usage,
            state: KeyState::Active,
            public_key: pk,
            certs,
        }))
    }

    fn container_info(&self, name: &str) -> Result<ContainerInfo> {
        let id = self.container_id(name)?;
        let _g = self.dev.lock();
        let c = self.container_handle(name, false)?;
        Ok(ContainerInfo {
            name: name.to_owned(),
            id,
            sign: self.key_info(&c, name, KeyUsage::Sign)?,
            enc: self.key_info(&c, name, KeyUsage::Encrypt)?,
            retired: Vec::new(),
        })
    }

    fn container_names(&self) -> Result<Vec<String>> {
        let f = sym!(self.dev.lib, SKF_EnumContainer)?;
        let _g = self.dev.lock();
        let buf = sized("SKF_EnumContainer", 4096, MAX_OUT, |p, l| {
            // SAFETY: live application handle; `sized` passes a buffer of `*l` bytes.
            unsafe { f(self.handle.0, p, l) }
        })?;
        Ok(name_list(&buf))
    }

    /// The container and usage a key reference names.
    fn resolve(&self, key: &KeyRef) -> Result<(String, KeyUsage)> {
        match key {
            KeyRef::Container { container, usage } => Ok((container.clone(), *usage)),
            KeyRef::Id(id) => {
                for name in self.container_names()? {
                    for usage in [KeyUsage::Sign, KeyUsage::Encrypt] {
                        if key_id(&name, usage) == *id {
                            return Ok((name, usage));
                        }
                    }
                }
                Err(Error::not_found("key"))
            }
        }
    }

    /// A PIN call that reports retries: VerifyPIN, ChangePIN, UnblockPIN.
    fn pin_call(&self, func: &str, call: impl FnOnce(*mut ULONG) -> ULONG) -> Result<()> {
        // Padded: a vendor writing a 64-bit count writes into our slack.
        let mut retries = [0u32; 4];
        let rv = call(retries.as_mut_ptr());
        match rv {
            SAR_OK => Ok(()),
            SAR_PIN_INCORRECT if retries[0] == 0 => Err(Error::PinLocked),
            SAR_PIN_INCORRECT => Err(Error::PinIncorrect {
                retries_left: retries[0].min(255),
            }),
            other => Err(sar(func, other)),
        }
    }

    fn do_sign(&self, c: &Container<'_>, alg: KeyAlg, input: &mut [u8]) -> Result<Vec<u8>> {
        let n = ULONG::try_from(input.len()).map_err(|_| Error::invalid_arg("data"))?;
        if alg == KeyAlg::Sm2 {
            let f = sym!(self.dev.lib, SKF_ECCSignData)?;
            let mut sig = vec![0u8; blob::ECC_SIG_LEN + SLACK];
            // SAFETY: live container handle; `input` holds `n` bytes; `sig` is larger than
            // an ECCSIGNATUREBLOB (packed, byte-aligned).
            let rv = unsafe {
                f(
                    c.h.0,
                    input.as_mut_ptr(),
                    n,
                    sig.as_mut_ptr().cast::<ECCSIGNATUREBLOB>(),
                )
            };
            check("SKF_ECCSignData", rv)?;
            blob::ecc_signature(&sig[..blob::ECC_SIG_LEN])
        } else {
            let f = sym!(self.dev.lib, SKF_RSASignData)?;
            sized("SKF_RSASignData", 512, 512, |p, l| {
                // SAFETY: live container handle; `input` holds `n` bytes; `sized` passes
                // a buffer of `*l` bytes.
                unsafe { f(c.h.0, input.as_mut_ptr(), n, p, l) }
            })
        }
    }
}

impl Application for BridgeApp {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> Result<AppInfo> {
        Ok(AppInfo {
            name: self.name.clone(),
            // SKF cannot report it; the bridge says "anyone" and lets the vendor decide.
            create_file_rights: Rights::ANYONE,
            admin_pin: self.pin_info(PinType::Admin)?,
            user_pin: self.pin_info(PinType::User)?,
        })
    }

    fn pin_info(&self, pin_type: PinType) -> Result<PinInfo> {
        let f = sym!(self.dev.lib, SKF_GetPINInfo)?;
        // Each out-value gets 16 bytes: some vendors write BOOL (and even ULONG) as a
        // 64-bit long. Any non-zero byte of the BOOL slot counts as TRUE.
        let mut max = [0u32; 4];
        let mut remaining = [0u32; 4];
        let mut default = [0u32; 4];
        let _g = self.dev.lock();
        // SAFETY: live application handle; each out-pointer points at 16 writable bytes,
        // 4-byte aligned.
        let rv = unsafe {
            f(
                self.handle.0,
                pin_type_arg(pin_type),
                max.as_mut_ptr(),
                remaining.as_mut_ptr(),
                default.as_mut_ptr().cast::<BOOL>(),
            )
        };
        check("SKF_GetPINInfo", rv)?;
        let (max, remaining) = (max[0], remaining[0]);
        if max > 255 || remaining > max {
            return Err(Error::invalid_data(format!(
                "SKF_GetPINInfo: {remaining} of {max} retries"
            )));
        }
        Ok(PinInfo {
            max_retries: max,
            remaining,
            default_pin: default[0] != 0 || default[1] != 0,
            initialized: true,
        })
    }

    fn verify_pin(&self, pin_type: PinType, pin: &Pin) -> Result<()> {
        let f = sym!(self.dev.lib, SKF_VerifyPIN)?;
        let p = c_string(pin.as_bytes(), "PIN")?;
        self.set_login(LoginState::None);
        let _g = self.dev.lock();
        self.pin_call("SKF_VerifyPIN", |r| {
            // SAFETY: live application handle; NUL-terminated PIN; `r` points at 16 bytes.
            unsafe {
                f(
                    self.handle.0,
                    pin_type_arg(pin_type),
                    p.as_ptr().cast_mut(),
                    r,
                )
            }
        })?;
        self.set_login(match pin_type {
            PinType::Admin => LoginState::Admin,
            PinType::User => LoginState::User,
        });
        Ok(())
    }

    fn change_pin(&self, pin_type: PinType, old: &Pin, new: &Pin) -> Result<()> {
        let f = sym!(self.dev.lib, SKF_ChangePIN)?;
        let o = c_string(old.as_bytes(), "PIN")?;
        let n = c_string(new.as_bytes(), "PIN")?;
        let _g = self.dev.lock();
        self.pin_call("SKF_ChangePIN", |r| {
            // SAFETY: live application handle; NUL-terminated PINs; `r` points at 16 bytes.
            unsafe {
                f(
                    self.handle.0,
                    pin_type_arg(pin_type),
                    o.as_ptr().cast_mut(),
                    n.as_ptr().cast_mut(),
                    r,
                )
            }
        })
    }

    fn unblock_pin(&self, admin_pin: &Pin, new_user_pin: &Pin) -> Result<()> {
        let f = sym!(self.dev.lib, SKF_UnblockPIN)?;
        let a = c_string(admin_pin.as_bytes(), "PIN")?;
        let n = c_string(new_user_pin.as_bytes(), "PIN")?;
        let _g = self.dev.lock();
        self.pin_call("SKF_UnblockPIN", |r| {
            // SAFETY: live application handle; NUL-terminated PINs; `r` points at 16 bytes.
            unsafe {
                f(
                    self.handle.0,
                    a.as_ptr().cast_mut(),
                    n.as_ptr().cast_mut(),
                    r,
                )
            }
        })
    }

    fn init_user_pin(&self, _new_user_pin: &Pin) -> Result<()> {
        Err(Error::unsupported(
            "setting the user PIN without the old one on a vendor SKF token (use unblock with the admin PIN)",
        ))
    }

    fn wipe(&self, _admin_pin: &Pin) -> Result<()> {
        Err(Error::unsupported(
            "wiping a vendor SKF application (delete and re-create it after device authentication)",
        ))
    }

    fn logout(&self) {
        self.set_login(LoginState::None);
        if let Ok(f) = sym!(self.dev.lib, SKF_ClearSecureState) {
            let _g = self.dev.lock();
            // SAFETY: live application handle.
            let rv = unsafe { f(self.handle.0) };
            if rv != SAR_OK {
                tracing::debug!(rv, "SKF_ClearSecureState failed");
            }
        }
    }

    fn login_state(&self) -> LoginState {
        *self.login.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn login_changes(&self) -> u64 {
        self.login_changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        let mut out = Vec::new();
        for name in self.container_names()? {
            match self.container_info(&name) {
                Ok(c) => out.push(c),
                Err(Error::DeviceRemoved) => return Err(Error::DeviceRemoved),
                Err(e) => tracing::warn!(container = %name, error = %e, "container skipped"),
            }
        }
        Ok(out)
    }

    fn container(&self, name: &str) -> Result<ContainerInfo> {
        self.container_info(name)
    }

    fn create_container(&self, name: &str, id: Option<&[u8]>) -> Result<ContainerInfo> {
        if name.is_empty() || name.len() > MAX_FILE_CONTAINER_NAME_SIZE {
            return Err(Error::invalid_arg("a container name is 1 to 64 bytes"));
        }
        let id = id.filter(|id| *id != name.as_bytes());
        if id.is_some_and(|id| id.is_empty() || id.len() > 255) {
            return Err(Error::invalid_arg("a container id is 1 to 255 bytes"));
        }
        {
            let _g = self.dev.lock();
            self.container_handle(name, true)?;
        }
        if let Some(id) = id {
            // SKF stores no id: an id file beside the container (docs/skf-bridge.md).
            let mut data = vec![u8::try_from(name.len()).unwrap_or(u8::MAX)];
            data.extend_from_slice(name.as_bytes());
            data.extend_from_slice(id);
            let file = container_id_file(name);
            let size = u32::try_from(data.len()).map_err(|_| Error::invalid_arg("id"))?;
            let made = self
                .create_file(&file, size, Rights::ANYONE, Rights::USER)
                .and_then(|()| self.write_file(&file, 0, &data));
            if let Err(e) = made {
                let _ = self.delete_file(&file);
                let _ = self.delete_container(name);
                return Err(e);
            }
        }
        self.container_info(name)
    }

    fn delete_container(&self, name: &str) -> Result<()> {
        let f = sym!(self.dev.lib, SKF_DeleteContainer)?;
        let n = c_string(name.as_bytes(), "container name")?;
        {
            let _g = self.dev.lock();
            // SAFETY: live application handle; NUL-terminated name.
            check("SKF_DeleteContainer", unsafe {
                f(self.handle.0, n.as_ptr().cast_mut())
            })?;
        }
        let file = container_id_file(name);
        if self.file_info(&file).is_ok() {
            self.delete_file(&file)?;
        }
        Ok(())
    }

    fn generate_key(
        &self,
        container: &str,
        usage: KeyUsage,
        alg: KeyAlg,
        rekey: bool,
    ) -> Result<PublicKey> {
        if usage == KeyUsage::Encrypt {
            // GM/T 0016 generates only signing pairs on the device; encryption pairs come
            // from a KMC in an ENVELOPEDKEYBLOB. The bridge plays the KMC: the pair is made
            // on the host, enveloped to the container's signing key and imported; the host
            // copy is zeroized when dropped (docs/skf-bridge.md).
            if alg != KeyAlg::Sm2 || !self.dev.has_sm2() {
                return Err(Error::unsupported(format!(
                    "an {alg:?} encryption key pair on a vendor SKF token (SM2 only, enveloped)"
                )));
            }
            let key = PrivateKey::generate(KeyAlg::Sm2)?;
            self.import_key(container, KeyUsage::Encrypt, &key, rekey)?;
            return key.public_key();
        }
        let _g = self.dev.lock();
        let c = self.container_handle(container, false)?;
        if !rekey && self.export_public(&c, usage).is_ok() {
            return Err(Error::already_exists(format!(
                "signing key in container {container:?}"
            )));
        }
        match alg {
            KeyAlg::Sm2 => {
                if !self.dev.has_sm2() {
                    return Err(Error::unsupported("SM2 on this RSA-only device"));
                }
                let f = sym!(self.dev.lib, SKF_GenECCKeyPair)?;
                let first = self.dev.lib.sm2_ids(self.dev.asym_cap);
                let mut last = Error::internal("no attempt");
                // The ID set the caps suggest first; on a refusal, the other reading.
                for ids in [first, first.other()] {
                    let mut b = vec![0u8; blob::ECC_PUB_LEN + SLACK];
                    // SAFETY: live container handle; `b` is larger than an
                    // ECCPUBLICKEYBLOB (packed, byte-aligned).
                    let rv = unsafe {
                        f(
                            c.h.0,
                            ids.sign_id(),
                            b.as_mut_ptr().cast::<ECCPUBLICKEYBLOB>(),
                        )
                    };
                    match rv {
                        SAR_OK => {
                            self.dev.lib.learn_sm2_ids(ids);
                            return blob::public_key(&b[..blob::ECC_PUB_LEN]);
                        }
                        SAR_INVALIDPARAMERR | SAR_NOTSUPPORTYETERR | SAR_KEYINFOTYPEERR
                            if self.dev.lib.sm2_ids.is_none() =>
                        {
                            tracing::debug!(?ids, rv, "SKF_GenECCKeyPair refused this SM2 ID");
                            last = sar("SKF_GenECCKeyPair", rv);
                        }
                        other => return Err(sar("SKF_GenECCKeyPair", other)),
                    }
                }
                Err(last)
            }
            KeyAlg::Rsa(bits) if bits == 1024 || bits == 2048 => {
                let f = sym!(self.dev.lib, SKF_GenRSAKeyPair)?;
                let mut b = vec![0u8; blob::RSA_PUB_LEN + SLACK];
                // SAFETY: live container handle; `b` is larger than an RSAPUBLICKEYBLOB.
                let rv = unsafe { f(c.h.0, bits, b.as_mut_ptr().cast::<RSAPUBLICKEYBLOB>()) };
                check("SKF_GenRSAKeyPair", rv)?;
                blob::public_key(&b[..blob::RSA_PUB_LEN])
            }
            other => Err(Error::unsupported(format!(
                "{other:?} keys on a vendor SKF token (SM2, RSA-1024/2048)"
            ))),
        }
    }

    fn import_key(
        &self,
        container: &str,
        usage: KeyUsage,
        key: &PrivateKey,
        rekey: bool,
    ) -> Result<KeyId> {
        if usage == KeyUsage::Sign || key.alg() != KeyAlg::Sm2 {
            return Err(Error::unsupported(
                "SKF imports only an SM2 encryption key pair (as an ENVELOPEDKEYBLOB)",
            ));
        }
        let f = sym!(self.dev.lib, SKF_ImportECCKeyPair)?;
        let _g = self.dev.lock();
        let c = self.container_handle(container, false)?;
        let sign_pub = self.export_public(&c, KeyUsage::Sign).map_err(|_| {
            Error::not_found(format!(
                "signing key of container {container:?} (the envelope is made to it)"
            ))
        })?;
        if !rekey && self.export_public(&c, KeyUsage::Encrypt).is_ok() {
            return Err(Error::already_exists(format!(
                "encryption key in container {container:?}"
            )));
        }
        let mut env = blob::enveloped_key_blob(key, &sign_pub)?;
        // SAFETY: live container handle; `env` holds a whole ENVELOPEDKEYBLOB (208 bytes
        // plus an ECCCIPHERBLOB with its 16-byte C2), packed and byte-aligned.
        let rv = unsafe { f(c.h.0, env.as_mut_ptr().cast::<ENVELOPEDKEYBLOB>()) };
        check("SKF_ImportECCKeyPair", rv)?;
        Ok(key_id(container, usage))
    }

    fn import_enveloped_key(&self, container: &str, blob: &[u8]) -> Result<KeyId> {
        let f = sym!(self.dev.lib, SKF_ImportECCKeyPair)?;
        let fixed = ENVELOPEDKEYBLOB_CIPHER_OFFSET + ECCCIPHERBLOB_HEADER_LEN;
        if blob.len() < fixed {
            return Err(Error::invalid_data("ENVELOPEDKEYBLOB too short"));
        }
        let at = |o: usize| u32::from_ne_bytes([blob[o], blob[o + 1], blob[o + 2], blob[o + 3]]);
        let cipher_len = at(ENVELOPEDKEYBLOB_CIPHER_OFFSET + 160) as usize;
        if blob.len() != fixed + cipher_len {
            return Err(Error::invalid_data("ENVELOPEDKEYBLOB length"));
        }
        // Padded: a vendor that reads a fixed-size C2 reads our zeroes.
        let mut env = Zeroizing::new(blob.to_vec());
        env.resize(blob.len() + SLACK, 0);
        let _g = self.dev.lock();
        let c = self.container_handle(container, false)?;
        // SAFETY: live container handle; `env` holds a whole ENVELOPEDKEYBLOB (its fixed
        // part and CipherLen bytes of C2, checked above), packed and byte-aligned.
        let rv = unsafe { f(c.h.0, env.as_mut_ptr().cast::<ENVELOPEDKEYBLOB>()) };
        check("SKF_ImportECCKeyPair", rv)?;
        Ok(key_id(container, KeyUsage::Encrypt))
    }

    fn delete_key(&self, _key: KeyId) -> Result<()> {
        Err(Error::unsupported(
            "deleting one key on a vendor SKF token (SKF deletes whole containers)",
        ))
    }

    fn export_key(&self, _key: KeyId) -> Result<PrivateKey> {
        Err(Error::unsupported(
            "private keys never leave a vendor SKF token",
        ))
    }

    fn public_key(&self, container: &str, usage: KeyUsage) -> Result<PublicKey> {
        let _g = self.dev.lock();
        let c = self.container_handle(container, false)?;
        self.export_public(&c, usage)
            .map_err(|_| Error::not_found(format!("{} key of {container:?}", usage.as_str())))
    }

    fn import_cert(&self, container: &str, usage: KeyUsage, der: &[u8]) -> Result<CertId> {
        let cert_pub = PublicKey::from_cert(der)?;
        let f = sym!(self.dev.lib, SKF_ImportCertificate)?;
        let _g = self.dev.lock();
        let c = self.container_handle(container, false)?;
        let key = self
            .export_public(&c, usage)
            .map_err(|_| Error::not_found(format!("{} key of {container:?}", usage.as_str())))?;
        if key.spki_der() != cert_pub.spki_der() {
            return Err(Error::invalid_data(
                "the certificate's public key is not the container's",
            ));
        }
        let mut d = der.to_vec();
        let n = ULONG::try_from(d.len()).map_err(|_| Error::invalid_data("certificate size"))?;
        // SAFETY: live container handle; `d` holds `n` bytes.
        let rv = unsafe { f(c.h.0, flag(usage), d.as_mut_ptr(), n) };
        check("SKF_ImportCertificate", rv)?;
        Ok(cert_id(container, usage))
    }

    fn cert(&self, container: &str, usage: KeyUsage) -> Result<Option<Vec<u8>>> {
        let _g = self.dev.lock();
        let c = self.container_handle(container, false)?;
        self.export_cert(&c, usage)
    }

    fn delete_cert(&self, _cert: CertId) -> Result<()> {
        Err(Error::unsupported(
            "deleting a certificate on a vendor SKF token (GM/T 0016 has no such call)",
        ))
    }

    fn sign(&self, key: &KeyRef, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let (container, usage) = self.resolve(key)?;
        if usage != KeyUsage::Sign {
            return Err(Error::KeyUsage(
                "SKF signs with the container's signing key only".into(),
            ));
        }
        let _g = self.dev.lock();
        let c = self.container_handle(&container, false)?;
        let pk = self.export_public(&c, usage)?;
        let mut input: Zeroizing<Vec<u8>> = match (mech, pk.alg()) {
            (SignMech::Sm2Sm3 { id }, KeyAlg::Sm2) => {
                let point = pk.ec_point().ok_or_else(|| Error::KeyType("SM2".into()))?;
                Zeroizing::new(sm2::sign_digest(&point, id, data)?.to_vec())
            }
            (SignMech::Sm2Prehashed, KeyAlg::Sm2) => {
                if data.len() != 32 {
                    return Err(Error::invalid_arg("an SM2 digest is 32 bytes"));
                }
                Zeroizing::new(data.to_vec())
            }
            (SignMech::RsaPkcs1(h), KeyAlg::Rsa(_)) => {
                let mut di = token_hal::crypto::hash::digest_info_prefix(*h).to_vec();
                di.extend_from_slice(&hash::digest(*h, data));
                Zeroizing::new(di)
            }
            (SignMech::RsaPkcs1Raw, KeyAlg::Rsa(bits)) => {
                if data.len() + 11 > (bits / 8) as usize {
                    return Err(Error::invalid_arg("data longer than the modulus minus 11"));
                }
                Zeroizing::new(data.to_vec())
            }
            (m, alg) => {
                return Err(Error::unsupported(format!(
                    "{m:?} with an {alg:?} key on a vendor SKF token"
                )));
            }
        };
        let sig = self.do_sign(&c, pk.alg(), &mut input)?;
        if let Some(n) = pk.alg().signature_len()
            && sig.len() != n
        {
            return Err(Error::invalid_data(format!(
                "vendor signature of {} bytes ({n} expected)",
                sig.len()
            )));
        }
        Ok(sig)
    }

    fn decrypt(&self, key: &KeyRef, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (container, usage) = self.resolve(key)?;
        if usage != KeyUsage::Encrypt {
            return Err(Error::KeyUsage(
                "SKF decrypts with the container's encryption key only".into(),
            ));
        }
        if *mech != DecMech::Sm2 {
            return Err(Error::unsupported(format!(
                "{mech:?} decryption on a vendor SKF token (GM/T 0016 has no RSA private-key \
                 decryption call)"
            )));
        }
        let f = sym!(self.dev.lib, SKF_ECCDecrypt)?;
        let mut cipher = blob::ecc_cipher_blob(data)?;
        let plain_len = cipher.len() - ECCCIPHERBLOB_HEADER_LEN;
        let _g = self.dev.lock();
        let c = self.container_handle(&container, false)?;
        let out = sized("SKF_ECCDecrypt", plain_len, plain_len, |p, l| {
            // SAFETY: live container handle; `cipher` is a whole ECCCIPHERBLOB (header and
            // CipherLen bytes of C2, packed); `sized` passes a buffer of `*l` bytes.
            unsafe { f(c.h.0, cipher.as_mut_ptr().cast::<ECCCIPHERBLOB>(), p, l) }
        })?;
        Ok(Zeroizing::new(out))
    }

    fn derive(&self, _key: &KeyRef, _mech: &DeriveMech) -> Result<DeriveOutput> {
        Err(Error::unsupported(
            "key agreement through the bridge (SKF agreement yields only session-key handles)",
        ))
    }

    fn list_files(&self) -> Result<Vec<FileInfo>> {
        let f = sym!(self.dev.lib, SKF_EnumFiles)?;
        let names = {
            let _g = self.dev.lock();
            let buf = sized("SKF_EnumFiles", 4096, MAX_OUT, |p, l| {
                // SAFETY: live application handle; `sized` passes a buffer of `*l` bytes.
                unsafe { f(self.handle.0, p, l) }
            })?;
            name_list(&buf)
        };
        // Object and container id files are the bridge's, not the caller's
        // (docs/skf-bridge.md).
        names
            .iter()
            .filter(|n| object_file_id(n).is_none() && !n.starts_with(CONTAINER_ID_PREFIX))
            .map(|n| self.file_info(n))
            .collect()
    }

    fn create_file(&self, name: &str, size: u32, read: Rights, write: Rights) -> Result<()> {
        let f = sym!(self.dev.lib, SKF_CreateFile)?;
        let n = c_string(name.as_bytes(), "file name")?;
        let _g = self.dev.lock();
        // SAFETY: live application handle; NUL-terminated name.
        check("SKF_CreateFile", unsafe {
            f(self.handle.0, n.as_ptr().cast_mut(), size, read.0, write.0)
        })
    }

    fn delete_file(&self, name: &str) -> Result<()> {
        let f = sym!(self.dev.lib, SKF_DeleteFile)?;
        let n = c_string(name.as_bytes(), "file name")?;
        let _g = self.dev.lock();
        // SAFETY: live application handle; NUL-terminated name.
        check("SKF_DeleteFile", unsafe {
            f(self.handle.0, n.as_ptr().cast_mut())
        })
    }

    fn file_info(&self, name: &str) -> Result<FileInfo> {
        let f = sym!(self.dev.lib, SKF_GetFileInfo)?;
        let n = c_string(name.as_bytes(), "file name")?;
        let mut buf = vec![0u8; std::mem::size_of::<FILEATTRIBUTE>() + SLACK];
        let _g = self.dev.lock();
        // SAFETY: live application handle; NUL-terminated name; `buf` is larger than a
        // FILEATTRIBUTE (packed, byte-aligned).
        let rv = unsafe {
            f(
                self.handle.0,
                n.as_ptr().cast_mut(),
                buf.as_mut_ptr().cast::<FILEATTRIBUTE>(),
            )
        };
        check("SKF_GetFileInfo", rv)?;
        // SAFETY: `buf` holds a FILEATTRIBUTE's bytes; plain data, read unaligned.
        let a = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<FILEATTRIBUTE>()) };
        let reported = c_field(&a.FileName);
        Ok(FileInfo {
            name: if reported.is_empty() {
                name.to_owned()
            } else {
                reported
            },
            size: a.FileSize,
            read_rights: Rights(a.ReadRights),
            write_rights: Rights(a.WriteRights),
        })
    }

    fn read_file(&self, name: &str, offset: u32, len: u32) -> Result<Vec<u8>> {
        let f = sym!(self.dev.lib, SKF_ReadFile)?;
        let n = c_string(name.as_bytes(), "file name")?;
        let want = (len as usize).min(MAX_OUT);
        let _g = self.dev.lock();
        sized("SKF_ReadFile", want, want, |p, l| {
            // SAFETY: live application handle; NUL-terminated name; `sized` passes a
            // buffer of `*l` bytes, and asks for no more.
            unsafe { f(self.handle.0, n.as_ptr().cast_mut(), offset, *l, p, l) }
        })
    }

    fn write_file(&self, name: &str, offset: u32, data: &[u8]) -> Result<()> {
        let f = sym!(self.dev.lib, SKF_WriteFile)?;
        let n = c_string(name.as_bytes(), "file name")?;
        let mut d = data.to_vec();
        let len = ULONG::try_from(d.len()).map_err(|_| Error::invalid_arg("data"))?;
        let _g = self.dev.lock();
        // SAFETY: live application handle; NUL-terminated name; `d` holds `len` bytes.
        check("SKF_WriteFile", unsafe {
            f(
                self.handle.0,
                n.as_ptr().cast_mut(),
                offset,
                d.as_mut_ptr(),
                len,
            )
        })
    }

    fn create_object(&self, private: bool, attrs: &[Attr]) -> Result<ObjectId> {
        if private && self.login_state() != LoginState::User {
            return Err(Error::NotLoggedIn);
        }
        let taken: Vec<u64> = self.object_files()?.into_iter().map(|(_, id)| id).collect();
        let id = loop {
            let mut r = [0u8; 8];
            token_hal::crypto::rng::fill(&mut r)?;
            let id = u64::from_be_bytes(r) & 0x7FFF_FFFF_FFFF_FFFF;
            if id != 0 && !taken.contains(&id) {
                break ObjectId(id);
            }
        };
        let rec = ObjectRecord {
            id,
            private,
            attrs: attrs.to_vec(),
        };
        self.store_object(&rec, false)?;
        Ok(id)
    }

    fn list_objects(&self) -> Result<Vec<ObjectRecord>> {
        let mut out = Vec::new();
        for (name, id) in self.object_files()? {
            match self.load_object(&name, id) {
                Ok(Some(o)) => out.push(o),
                Ok(None) => {}
                Err(Error::DeviceRemoved) => return Err(Error::DeviceRemoved),
                Err(e) => tracing::warn!(file = %name, error = %e, "object file skipped"),
            }
        }
        Ok(out)
    }

    fn get_object(&self, id: ObjectId) -> Result<ObjectRecord> {
        self.load_object(&object_file(id), id.0)?
            .ok_or_else(|| Error::not_found(format!("object {}", id.0)))
    }

    fn update_object(&self, id: ObjectId, attrs: &[Attr]) -> Result<()> {
        let mut rec = self.get_object(id)?;
        if self.login_state() != LoginState::User
            && (rec.private || rec.attrs.iter().any(|a| a.sensitive))
        {
            // Without login the record read has blanked values: writing it back would
            // lose them.
            return Err(Error::NotLoggedIn);
        }
        for a in attrs {
            match rec.attrs.iter_mut().find(|b| b.ty == a.ty) {
                Some(b) => *b = a.clone(),
                None => rec.attrs.push(a.clone()),
            }
        }
        self.store_object(&rec, true)
    }

    fn delete_object(&self, id: ObjectId) -> Result<()> {
        let name = object_file(id);
        match self.file_info(&name) {
            Ok(_) => self.delete_file(&name),
            Err(Error::DeviceRemoved) => Err(Error::DeviceRemoved),
            Err(_) => Err(Error::not_found(format!("object {}", id.0))),
        }
    }
}

/// The SKF file holding a generic object (docs/skf-bridge.md): `ukey.obj.` and its id in
/// 16 hex digits (25 bytes; GM/T 0016 file names are at most 32).
const OBJECT_FILE_PREFIX: &str = "ukey.obj.";

fn object_file(id: ObjectId) -> String {
    format!("{OBJECT_FILE_PREFIX}{:016x}", id.0)
}

/// The id of an object file's name, if it is one.
fn object_file_id(name: &str) -> Option<u64> {
    let hex = name.strip_prefix(OBJECT_FILE_PREFIX)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The file holding a container's id when it is not its name: `ukey.cid.` and 16 hex
/// digits derived from the name (as key ids are).
const CONTAINER_ID_PREFIX: &str = "ukey.cid.";

fn container_id_file(name: &str) -> String {
    format!(
        "{CONTAINER_ID_PREFIX}{:016x}",
        derived_id("cid", name, KeyUsage::Sign)
    )
}

impl BridgeApp {
    /// A container's id: its id file's (length-prefixed name, then the id), else its name.
    fn container_id(&self, name: &str) -> Result<Vec<u8>> {
        let file = container_id_file(name);
        let info = match self.file_info(&file) {
            Ok(i) => i,
            Err(Error::DeviceRemoved) => return Err(Error::DeviceRemoved),
            Err(_) => return Ok(name.as_bytes().to_vec()),
        };
        let data = self.read_file(&file, 0, info.size)?;
        match data.split_first() {
            Some((&n, rest))
                if rest.len() > usize::from(n) && &rest[..usize::from(n)] == name.as_bytes() =>
            {
                Ok(rest[usize::from(n)..].to_vec())
            }
            _ => Err(Error::invalid_data(format!(
                "container id file {file} does not name {name:?}"
            ))),
        }
    }

    /// The object files of the application: (file name, object id).
    fn object_files(&self) -> Result<Vec<(String, u64)>> {
        let f = sym!(self.dev.lib, SKF_EnumFiles)?;
        let _g = self.dev.lock();
        let buf = sized("SKF_EnumFiles", 4096, MAX_OUT, |p, l| {
            // SAFETY: live application handle; `sized` passes a buffer of `*l` bytes.
            unsafe { f(self.handle.0, p, l) }
        })?;
        Ok(name_list(&buf)
            .into_iter()
            .filter_map(|n| object_file_id(&n).map(|id| (n, id)))
            .collect())
    }

    /// Reads an object file. None for a private object without user login (its file is
    /// readable only after login). Sensitive values are blanked without login.
    fn load_object(&self, name: &str, id: u64) -> Result<Option<ObjectRecord>> {
        let info = self.file_info(name)?;
        let logged_in = self.login_state() == LoginState::User;
        if info.read_rights == Rights::USER && !logged_in {
            return Ok(None);
        }
        let data = Zeroizing::new(self.read_file(name, 0, info.size)?);
        let f = token_hal::apdu::tlv::Fields::parse(&data, &[token_hal::apdu::wire::tag::OBJECT])?;
        let mut rec = token_hal::apdu::wire::object(f.get(token_hal::apdu::wire::tag::OBJECT)?)?;
        if rec.id.0 != id {
            return Err(Error::invalid_data(format!(
                "object file {name} holds object {}",
                rec.id.0
            )));
        }
        if rec.private && !logged_in {
            return Ok(None);
        }
        if !logged_in {
            for a in rec.attrs.iter_mut().filter(|a| a.sensitive) {
                a.value = Zeroizing::new(Vec::new());
            }
        }
        Ok(Some(rec))
    }

    /// Writes an object file: created with the object's size and rights (private: read
    /// and write after user login; public: read by anyone, written after user login).
    /// `replace`: the old file goes first (SKF files keep the size they were made with).
    fn store_object(&self, rec: &ObjectRecord, replace: bool) -> Result<()> {
        let mut w = token_hal::apdu::tlv::Writer::new();
        token_hal::apdu::wire::put_object(&mut w, rec);
        let data = Zeroizing::new(w.finish());
        let size = u32::try_from(data.len()).map_err(|_| Error::invalid_arg("object too large"))?;
        let name = object_file(rec.id);
        let read = if rec.private {
            Rights::USER
        } else {
            Rights::ANYONE
        };
        if replace {
            match self.file_info(&name) {
                Ok(i) if i.size == size && i.read_rights == read => {
                    return self.write_file(&name, 0, &data);
                }
                Ok(_) => self.delete_file(&name)?,
                Err(Error::DeviceRemoved) => return Err(Error::DeviceRemoved),
                Err(_) => {}
            }
        }
        self.create_file(&name, size, read, Rights::USER)?;
        if let Err(e) = self.write_file(&name, 0, &data) {
            let _ = self.delete_file(&name);
            return Err(e);
        }
        Ok(())
    }
}

fn pin_type_arg(t: PinType) -> ULONG {
    pin_type(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        assert_eq!(key_id("c", KeyUsage::Sign), key_id("c", KeyUsage::Sign));
        assert_ne!(key_id("c", KeyUsage::Sign), key_id("c", KeyUsage::Encrypt));
        assert_ne!(key_id("c", KeyUsage::Sign), key_id("d", KeyUsage::Sign));
        assert_ne!(
            key_id("c", KeyUsage::Sign).0,
            cert_id("c", KeyUsage::Sign).0
        );
        assert!(key_id("c", KeyUsage::Sign).0 < 1 << 63);
    }
}
