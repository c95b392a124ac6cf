//! The application of a bridged PKCS#11 token: PINs through `C_Login`/`C_SetPIN`,
//! containers as key pairs grouped by `CKA_ID`, files as `CKO_DATA` objects, and the
//! private-key operations through `C_Sign`/`C_Decrypt`/`C_DeriveKey`.
//!
//! The handle keeps one R/W session. PKCS#11 login state belongs to the token (every
//! session of the process shares it), so a login or logout through one handle is seen
//! by every handle of the same token in this process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{AuthPin, RawAuthPin};
use der::asn1::UintRef;
use der::{Decode, Encode, Sequence};
use token_hal::crypto::{
    DecMech, DeriveMech, DeriveOutput, KeyAlg, PrivateKey, PublicKey, SignMech, hash,
};
use token_hal::model::{
    AppInfo, Attr, CertId, CertRecord, ContainerInfo, DEFAULT_PIN_RETRIES, FileInfo, KeyId,
    KeyInfo, KeyRef, KeyState, KeyUsage, LoginState, ObjectId, ObjectRecord, Pin, PinInfo, PinType,
    Rights,
};
use token_hal::token::Application;
use token_hal::{Error, Result};
use zeroize::{Zeroize, Zeroizing};

use crate::Module;
use crate::convert::{self, CKM_SANSEC_SM2_SIGN, CKM_SM2, hash_mech, p11_error};

/// The retry limit reported for PINs: PKCS#11 does not expose the module's counters,
/// only the COUNT_LOW / FINAL_TRY / LOCKED flags (docs/bridges.md).
const NOMINAL_RETRIES: u32 = DEFAULT_PIN_RETRIES;
/// What "count low" (at least one wrong attempt, more than one left) is reported as.
const COUNT_LOW_RETRIES: u32 = 2;
/// Longest container name (SKF).
const MAX_CONTAINER_NAME: usize = 64;
/// Longest file name (SKF).
const MAX_FILE_NAME: usize = 32;

/// One key pair found on the token.
#[derive(Clone)]
struct KeyObj {
    priv_h: Option<ObjectHandle>,
    pub_h: Option<ObjectHandle>,
    id: Vec<u8>,
    label: Option<String>,
    usage: KeyUsage,
    alg: KeyAlg,
    public: PublicKey,
}

impl KeyObj {
    fn key_id(&self) -> KeyId {
        KeyId(self.priv_h.or(self.pub_h).map_or(0, |h| h.handle()))
    }
}

/// One X.509 certificate object.
struct CertObj {
    h: ObjectHandle,
    id: Vec<u8>,
    label: Option<String>,
    der: Vec<u8>,
    public: Option<PublicKey>,
    not_before: u64,
}

/// What the token holds, grouped.
struct Scan {
    keys: Vec<KeyObj>,
    certs: Vec<CertObj>,
}

/// The application handle.
pub(crate) struct P11App {
    module: Arc<Module>,
    slot: Slot,
    name: String,
    session: Mutex<Option<Session>>,
    /// Containers made by `create_container` that hold no key yet (name, id). They
    /// live in this handle only; the first key generated or imported makes them real.
    pending: Mutex<Vec<(String, Vec<u8>)>>,
    mechanisms: OnceLock<Vec<MechanismType>>,
    /// Every login and every end of one through this handle
    /// ([`Application::login_changes`]).
    login_changes: std::sync::atomic::AtomicU64,
}

/// Counts a login change when dropped (the end of a login attempt, however it ends).
struct ChangedOnDrop<'a>(&'a P11App);

impl Drop for ChangedOnDrop<'_> {
    fn drop(&mut self) {
        self.0.changed();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn label_of(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match a {
        Attribute::Label(l) if !l.is_empty() => Some(String::from_utf8_lossy(l).into_owned()),
        _ => None,
    })
}

fn id_of(attrs: &[Attribute]) -> Vec<u8> {
    attrs
        .iter()
        .find_map(|a| match a {
            Attribute::Id(i) => Some(i.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn flag(attrs: &[Attribute], ty: AttributeType) -> bool {
    attrs.iter().any(|a| {
        a.attribute_type() == ty
            && matches!(
                a,
                Attribute::Sign(true)
                    | Attribute::Decrypt(true)
                    | Attribute::Unwrap(true)
                    | Attribute::Verify(true)
                    | Attribute::Encrypt(true)
                    | Attribute::Private(true)
            )
    })
}

fn value_of(attrs: &[Attribute]) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match a {
        Attribute::Value(v) => Some(v.clone()),
        _ => None,
    })
}

fn raw_pin(pin: &Pin) -> RawAuthPin {
    RawAuthPin::new(Box::new(pin.as_bytes().to_vec()))
}

/// A PIN as `C_SetPIN`/`C_InitPIN`/`C_InitToken` take it through cryptoki (UTF-8).
fn auth_pin(pin: &Pin) -> Result<AuthPin> {
    let s = std::str::from_utf8(pin.as_bytes())
        .map_err(|_| Error::PinInvalid("the PKCS#11 bridge needs a UTF-8 PIN here"))?;
    Ok(AuthPin::from(s.to_owned()))
}

/// The OAEP label as parameters carry it: no source data for an empty label (some
/// modules, SoftHSM2 among them, refuse a non-null pointer of length zero).
fn oaep_source(label: &[u8]) -> PkcsOaepSource<'_> {
    if label.is_empty() {
        PkcsOaepSource::empty()
    } else {
        PkcsOaepSource::data_specified(label)
    }
}

/// PKCS#1 RSAPrivateKey with the CRT values (RFC 8017 A.1.2, two primes).
#[derive(Sequence)]
struct RsaPrivateKeyDer<'a> {
    version: UintRef<'a>,
    n: UintRef<'a>,
    e: UintRef<'a>,
    d: UintRef<'a>,
    p: UintRef<'a>,
    q: UintRef<'a>,
    dp: UintRef<'a>,
    dq: UintRef<'a>,
    qinv: UintRef<'a>,
}

/// Zeroizes the secret values of a template once the module has taken them.
fn scrub(template: &mut [Attribute]) {
    for a in template {
        if let Attribute::Value(v)
        | Attribute::PrivateExponent(v)
        | Attribute::Prime1(v)
        | Attribute::Prime2(v)
        | Attribute::Exponent1(v)
        | Attribute::Exponent2(v)
        | Attribute::Coefficient(v) = a
        {
            v.zeroize();
        }
    }
}

impl P11App {
    /// Counts a login change ([`Application::login_changes`]).
    fn changed(&self) {
        self.login_changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    pub(crate) fn new(module: Arc<Module>, slot: Slot, name: String) -> Self {
        Self {
            module,
            slot,
            name,
            session: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
            mechanisms: OnceLock::new(),
            login_changes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Runs `f` on the handle's session, opening it when needed. A session the module
    /// says is gone is dropped so the next call opens a new one.
    fn with<T>(&self, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let mut guard = lock(&self.session);
        if guard.is_none() {
            let s = self
                .module
                .ctx
                .open_rw_session(self.slot)
                .map_err(p11_error)?;
            *guard = Some(s);
        }
        let s = guard
            .as_ref()
            .ok_or_else(|| Error::internal("no session"))?;
        let r = f(s);
        if matches!(r, Err(Error::DeviceRemoved)) {
            *guard = None;
        }
        r
    }

    fn require_mech(&self, m: MechanismType, what: &str) -> Result<()> {
        let list = match self.mechanisms.get() {
            Some(l) => l,
            None => {
                let l = self
                    .module
                    .ctx
                    .get_mechanism_list(self.slot)
                    .map_err(p11_error)?;
                self.mechanisms.get_or_init(|| l)
            }
        };
        if list.contains(&m) {
            Ok(())
        } else {
            Err(Error::unsupported(format!(
                "{what}: the PKCS#11 module has no {m}"
            )))
        }
    }

    fn require_user(&self) -> Result<()> {
        match self.login_state() {
            LoginState::User => Ok(()),
            _ => Err(Error::NotLoggedIn),
        }
    }

    /// The retries the token flags suggest for a PIN (see [`NOMINAL_RETRIES`]).
    fn pin_state(&self, pin_type: PinType) -> Result<PinInfo> {
        let t = self
            .module
            .ctx
            .get_token_info(self.slot)
            .map_err(p11_error)?;
        let (locked, final_try, low, to_change, initialized) = match pin_type {
            PinType::User => (
                t.user_pin_locked(),
                t.user_pin_final_try(),
                t.user_pin_count_low(),
                t.user_pin_to_be_changed(),
                t.user_pin_initialized(),
            ),
            PinType::Admin => (
                t.so_pin_locked(),
                t.so_pin_final_try(),
                t.so_pin_count_low(),
                t.so_pin_to_be_changed(),
                t.token_initialized(),
            ),
        };
        let remaining = if locked {
            0
        } else if final_try {
            1
        } else if low {
            COUNT_LOW_RETRIES
        } else {
            NOMINAL_RETRIES
        };
        Ok(PinInfo {
            max_retries: NOMINAL_RETRIES,
            remaining,
            default_pin: to_change,
            initialized,
        })
    }

    /// A PIN-checking call's error with the retries filled in.
    fn pin_error(&self, pin_type: PinType, e: cryptoki::error::Error) -> Error {
        match p11_error(e) {
            Error::PinIncorrect { .. } => match self.pin_state(pin_type) {
                Ok(i) if i.remaining == 0 => Error::PinLocked,
                Ok(i) => Error::PinIncorrect {
                    retries_left: i.remaining,
                },
                Err(e) => e,
            },
            other => other,
        }
    }

    fn find(s: &Session, template: &[Attribute]) -> Result<Vec<ObjectHandle>> {
        s.find_objects(template).map_err(p11_error)
    }

    fn attrs(s: &Session, h: ObjectHandle, types: &[AttributeType]) -> Result<Vec<Attribute>> {
        s.get_attributes(h, types).map_err(p11_error)
    }

    /// Reads every key pair and certificate.
    fn scan(&self) -> Result<Scan> {
        self.with(|s| {
            let key_types = [
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ];
            let mut pubs = Vec::new();
            for h in Self::find(s, &[Attribute::Class(ObjectClass::PUBLIC_KEY)])? {
                let mut t = key_types.to_vec();
                t.extend([
                    AttributeType::EcPoint,
                    AttributeType::Verify,
                    AttributeType::Encrypt,
                ]);
                let a = Self::attrs(s, h, &t)?;
                let Some(alg) = convert::key_alg(&a) else {
                    continue;
                };
                match convert::public_key(alg, &a) {
                    Ok(pk) => pubs.push((h, a, alg, pk)),
                    Err(e) => tracing::debug!(error = %e, "skipping public key object"),
                }
            }
            let mut used = vec![false; pubs.len()];
            let mut keys = Vec::new();
            for h in Self::find(s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)])? {
                let mut t = key_types.to_vec();
                t.extend([
                    AttributeType::Sign,
                    AttributeType::Decrypt,
                    AttributeType::Unwrap,
                ]);
                let a = Self::attrs(s, h, &t)?;
                let Some(alg) = convert::key_alg(&a) else {
                    continue;
                };
                let id = id_of(&a);
                // docs/mapping.md: decrypt or unwrap without sign is the encryption pair.
                let usage = if (flag(&a, AttributeType::Decrypt) || flag(&a, AttributeType::Unwrap))
                    && !flag(&a, AttributeType::Sign)
                {
                    KeyUsage::Encrypt
                } else {
                    KeyUsage::Sign
                };
                let own = convert::public_key(alg, &a).ok();
                let pick = pubs.iter().enumerate().position(|(i, (_, pa, palg, pk))| {
                    !used[i]
                        && *palg == alg
                        && id_of(pa) == id
                        && own.as_ref().is_none_or(|o| o == pk)
                });
                let (pub_h, public) = match (pick, own) {
                    (Some(i), _) => {
                        used[i] = true;
                        (Some(pubs[i].0), pubs[i].3.clone())
                    }
                    (None, Some(o)) => (None, o),
                    (None, None) => {
                        tracing::debug!("skipping EC private key without a public key object");
                        continue;
                    }
                };
                keys.push(KeyObj {
                    priv_h: Some(h),
                    pub_h,
                    label: label_of(&a),
                    id,
                    usage,
                    alg,
                    public,
                });
            }
            // Public keys without a visible private key (not logged in).
            for (i, (h, a, alg, pk)) in pubs.into_iter().enumerate() {
                if used[i] {
                    continue;
                }
                let usage = if flag(&a, AttributeType::Encrypt) && !flag(&a, AttributeType::Verify)
                {
                    KeyUsage::Encrypt
                } else {
                    KeyUsage::Sign
                };
                keys.push(KeyObj {
                    priv_h: None,
                    pub_h: Some(h),
                    label: label_of(&a),
                    id: id_of(&a),
                    usage,
                    alg,
                    public: pk,
                });
            }
            let mut certs = Vec::new();
            for h in Self::find(
                s,
                &[
                    Attribute::Class(ObjectClass::CERTIFICATE),
                    Attribute::CertificateType(CertificateType::X_509),
                ],
            )? {
                let a = Self::attrs(
                    s,
                    h,
                    &[
                        AttributeType::Id,
                        AttributeType::Label,
                        AttributeType::Value,
                    ],
                )?;
                let der = value_of(&a).unwrap_or_default();
                let not_before = x509_cert::Certificate::from_der(&der)
                    .map(|c| {
                        c.tbs_certificate()
                            .validity()
                            .not_before
                            .to_unix_duration()
                            .as_secs()
                    })
                    .unwrap_or(0);
                certs.push(CertObj {
                    h,
                    id: id_of(&a),
                    label: label_of(&a),
                    public: PublicKey::from_cert(&der).ok(),
                    der,
                    not_before,
                });
            }
            Ok(Scan { keys, certs })
        })
    }

    fn key_info(k: &KeyObj, certs: &[CertObj], state: KeyState) -> KeyInfo {
        let mut mine: Vec<&CertObj> = certs
            .iter()
            .filter(|c| c.id == k.id && c.public.as_ref() == Some(&k.public))
            .collect();
        // The newest certificate (latest notBefore) is the current one.
        mine.sort_by_key(|c| std::cmp::Reverse(c.not_before));
        KeyInfo {
            id: k.key_id(),
            alg: k.alg,
            usage: k.usage,
            state,
            public_key: k.public.clone(),
            certs: mine
                .iter()
                .enumerate()
                .map(|(i, c)| CertRecord {
                    id: CertId(c.h.handle()),
                    der: c.der.clone(),
                    current: i == 0,
                    imported_at: c.not_before,
                })
                .collect(),
        }
    }

    /// Groups the scan into containers, pending ones included.
    fn containers(&self, scan: &Scan) -> Vec<ContainerInfo> {
        let mut by_id: BTreeMap<Vec<u8>, ContainerInfo> = BTreeMap::new();
        for k in &scan.keys {
            let c = by_id.entry(k.id.clone()).or_insert_with(|| ContainerInfo {
                name: String::new(),
                id: k.id.clone(),
                sign: None,
                enc: None,
                retired: Vec::new(),
            });
            if c.name.is_empty() {
                c.name = k.label.clone().unwrap_or_default();
            }
            let slot = match k.usage {
                KeyUsage::Sign => &mut c.sign,
                KeyUsage::Encrypt => &mut c.enc,
            };
            if slot.is_none() {
                *slot = Some(Self::key_info(k, &scan.certs, KeyState::Active));
            } else if k.usage == KeyUsage::Encrypt {
                c.retired
                    .push(Self::key_info(k, &scan.certs, KeyState::Retired));
            } else {
                tracing::debug!(id = %hex::encode(&k.id), "second signing key with one CKA_ID ignored");
            }
        }
        for c in by_id.values_mut() {
            if c.name.is_empty() {
                c.name = scan
                    .certs
                    .iter()
                    .find(|x| x.id == c.id)
                    .and_then(|x| x.label.clone())
                    .unwrap_or_else(|| hex::encode(&c.id));
            }
        }
        let mut out: Vec<ContainerInfo> = by_id.into_values().collect();
        for (name, id) in lock(&self.pending).iter() {
            if !out.iter().any(|c| c.id == *id || c.name == *name) {
                out.push(ContainerInfo {
                    name: name.clone(),
                    id: id.clone(),
                    sign: None,
                    enc: None,
                    retired: Vec::new(),
                });
            }
        }
        out
    }

    fn find_container(&self, scan: &Scan, name: &str) -> Result<ContainerInfo> {
        self.containers(scan)
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::not_found(format!("container {name:?}")))
    }

    /// The key object behind a reference, with its private handle.
    fn private_key(&self, key: &KeyRef) -> Result<(ObjectHandle, KeyObj)> {
        let scan = self.scan()?;
        let k = match key {
            KeyRef::Id(id) => scan.keys.iter().find(|k| k.key_id() == *id).cloned(),
            KeyRef::Container { container, usage } => {
                let c = self.find_container(&scan, container)?;
                let kid = c.key(*usage).map(|k| k.id);
                scan.keys.iter().find(|k| Some(k.key_id()) == kid).cloned()
            }
        }
        .ok_or_else(|| Error::not_found(format!("key {key:?}")))?;
        match k.priv_h {
            Some(h) => Ok((h, k)),
            None if self.login_state() != LoginState::User => Err(Error::NotLoggedIn),
            None => Err(Error::not_found("private key of this public key")),
        }
    }

    /// Checks the slot rule before a key goes into a container; returns the container
    /// (name, id) and the key pair to replace afterwards.
    fn prepare_slot(
        &self,
        container: &str,
        usage: KeyUsage,
        rekey: bool,
    ) -> Result<(String, Vec<u8>, Option<KeyObj>)> {
        self.require_user()?;
        let scan = self.scan()?;
        let c = self.find_container(&scan, container)?;
        let old = match c.key(usage) {
            None => None,
            Some(_) if !rekey => {
                return Err(Error::already_exists(format!(
                    "{} key in container {container:?}",
                    usage.as_str()
                )));
            }
            Some(_) if usage == KeyUsage::Encrypt => {
                return Err(Error::unsupported(
                    "rekeying an encryption key through the PKCS#11 bridge (the module has \
                     no place for retired keys); delete the key first",
                ));
            }
            Some(k) => scan.keys.iter().find(|x| x.key_id() == k.id).cloned(),
        };
        Ok((c.name, c.id, old))
    }

    /// Destroys a key pair and its certificates.
    fn destroy_key(&self, k: &KeyObj, certs: &[CertObj]) -> Result<()> {
        self.with(|s| {
            for c in certs
                .iter()
                .filter(|c| c.id == k.id && c.public.as_ref() == Some(&k.public))
            {
                s.destroy_object(c.h).map_err(p11_error)?;
            }
            for h in [k.priv_h, k.pub_h].into_iter().flatten() {
                s.destroy_object(h).map_err(p11_error)?;
            }
            Ok(())
        })
    }

    fn after_key_made(&self, name: &str, old: Option<KeyObj>) -> Result<()> {
        lock(&self.pending).retain(|(n, _)| n != name);
        if let Some(old) = old {
            let scan = self.scan()?;
            self.destroy_key(&old, &scan.certs)?;
        }
        Ok(())
    }

    fn usage_attrs(alg: KeyAlg, usage: KeyUsage) -> (Vec<Attribute>, Vec<Attribute>) {
        let sign = usage == KeyUsage::Sign;
        let rsa = matches!(alg, KeyAlg::Rsa(_));
        let mut public = vec![Attribute::Verify(sign), Attribute::Encrypt(!sign)];
        let mut private = vec![Attribute::Sign(sign), Attribute::Decrypt(!sign)];
        if rsa {
            public.push(Attribute::Wrap(!sign));
            private.push(Attribute::Unwrap(!sign));
        } else {
            private.push(Attribute::Derive(!sign));
        }
        (public, private)
    }

    fn common_attrs(class: ObjectClass, id: &[u8], name: &str, private: bool) -> Vec<Attribute> {
        let mut v = vec![
            Attribute::Class(class),
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Id(id.to_vec()),
            Attribute::Label(name.as_bytes().to_vec()),
        ];
        if private {
            v.push(Attribute::Sensitive(true));
            v.push(Attribute::Extractable(false));
        }
        v
    }

    fn files(&self, s: &Session) -> Result<Vec<(ObjectHandle, FileInfo)>> {
        let mut out = Vec::new();
        for h in Self::find(
            s,
            &[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Application(self.name.as_bytes().to_vec()),
            ],
        )? {
            let a = Self::attrs(
                s,
                h,
                &[
                    AttributeType::Label,
                    AttributeType::Value,
                    AttributeType::Private,
                ],
            )?;
            let Some(name) = label_of(&a) else { continue };
            let size = value_of(&a).map_or(0, |v| v.len());
            let rights = if flag(&a, AttributeType::Private) {
                Rights::USER
            } else {
                Rights::ANYONE
            };
            out.push((
                h,
                FileInfo {
                    name,
                    size: u32::try_from(size).unwrap_or(u32::MAX),
                    read_rights: rights,
                    write_rights: rights,
                },
            ));
        }
        Ok(out)
    }

    fn file(&self, s: &Session, name: &str) -> Result<(ObjectHandle, FileInfo)> {
        self.files(s)?
            .into_iter()
            .find(|(_, f)| f.name == name)
            .ok_or_else(|| Error::not_found(format!("file {name:?}")))
    }

    fn objects_unsupported() -> Error {
        Error::unsupported(
            "generic objects through the PKCS#11 bridge (only key pairs, certificates and \
             data files are presented)",
        )
    }
}

impl Application for P11App {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> Result<AppInfo> {
        Ok(AppInfo {
            name: self.name.clone(),
            create_file_rights: Rights::ANYONE,
            admin_pin: self.pin_state(PinType::Admin)?,
            user_pin: self.pin_state(PinType::User)?,
        })
    }

    fn pin_info(&self, pin_type: PinType) -> Result<PinInfo> {
        self.pin_state(pin_type)
    }

    fn verify_pin(&self, pin_type: PinType, pin: &Pin) -> Result<()> {
        // Counted before and after: a listing that overlaps either end sees the change.
        self.changed();
        let _after = ChangedOnDrop(self);
        let ut = match pin_type {
            PinType::User => UserType::User,
            PinType::Admin => UserType::So,
        };
        self.with(|s| {
            let raw = raw_pin(pin);
            match s.login_with_raw(ut, &raw) {
                Ok(()) => Ok(()),
                Err(cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::UserAlreadyLoggedIn,
                    _,
                )) => {
                    // Logged in through another handle: check this PIN all the same.
                    s.logout().map_err(p11_error)?;
                    s.login_with_raw(ut, &raw)
                        .map_err(|e| self.pin_error(pin_type, e))
                }
                Err(e) => Err(self.pin_error(pin_type, e)),
            }
        })
    }

    fn change_pin(&self, pin_type: PinType, old: &Pin, new: &Pin) -> Result<()> {
        let (o, n) = (auth_pin(old)?, auth_pin(new)?);
        let state = self.login_state();
        match (pin_type, state) {
            // C_SetPIN changes the PIN of whoever is logged in (the user PIN when
            // nobody is), so log in as the PIN's owner first.
            (PinType::Admin, LoginState::Admin) | (PinType::User, LoginState::None) => {}
            (PinType::User, LoginState::User) => {}
            (PinType::Admin, _) => self.verify_pin(PinType::Admin, old)?,
            (PinType::User, LoginState::Admin) => {
                self.logout();
            }
        }
        self.with(|s| s.set_pin(&o, &n).map_err(|e| self.pin_error(pin_type, e)))
    }

    fn unblock_pin(&self, admin_pin: &Pin, new_user_pin: &Pin) -> Result<()> {
        let n = auth_pin(new_user_pin)?;
        if self.login_state() != LoginState::None {
            self.logout();
        }
        self.verify_pin(PinType::Admin, admin_pin)?;
        let r = self.with(|s| s.init_pin(&n).map_err(p11_error));
        self.logout();
        r
    }

    fn init_user_pin(&self, new_user_pin: &Pin) -> Result<()> {
        if self.login_state() != LoginState::Admin {
            return Err(Error::NotLoggedIn);
        }
        let n = auth_pin(new_user_pin)?;
        self.with(|s| s.init_pin(&n).map_err(p11_error))
    }

    fn wipe(&self, admin_pin: &Pin) -> Result<()> {
        let so = auth_pin(admin_pin)?;
        // C_InitToken needs every session of the token closed.
        *lock(&self.session) = None;
        lock(&self.pending).clear();
        self.module
            .ctx
            .init_token(self.slot, &so, &self.name)
            .map_err(|e| self.pin_error(PinType::Admin, e))
    }

    fn logout(&self) {
        self.changed();
        if let Some(s) = lock(&self.session).as_ref()
            && let Err(e) = s.logout()
        {
            tracing::debug!(error = %e, "C_Logout");
        }
    }

    fn login_changes(&self) -> u64 {
        self.login_changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn login_state(&self) -> LoginState {
        let guard = lock(&self.session);
        let Some(s) = guard.as_ref() else {
            return LoginState::None;
        };
        match s.get_session_info().map(|i| i.session_state()) {
            Ok(SessionState::RwUser) | Ok(SessionState::RoUser) => LoginState::User,
            Ok(SessionState::RwSecurityOfficer) => LoginState::Admin,
            _ => LoginState::None,
        }
    }

    fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        let scan = self.scan()?;
        Ok(self.containers(&scan))
    }

    fn container(&self, name: &str) -> Result<ContainerInfo> {
        let scan = self.scan()?;
        self.find_container(&scan, name)
    }

    fn create_container(&self, name: &str, id: Option<&[u8]>) -> Result<ContainerInfo> {
        self.require_user()?;
        if name.is_empty() || name.len() > MAX_CONTAINER_NAME {
            return Err(Error::invalid_arg("container names are 1 to 64 bytes long"));
        }
        // docs/mapping.md: without an id, the id is the name's bytes.
        let id = id.map_or_else(|| name.as_bytes().to_vec(), <[u8]>::to_vec);
        let scan = self.scan()?;
        if self
            .containers(&scan)
            .iter()
            .any(|c| c.name == name || c.id == id)
        {
            return Err(Error::already_exists(format!("container {name:?}")));
        }
        lock(&self.pending).push((name.to_owned(), id.clone()));
        Ok(ContainerInfo {
            name: name.to_owned(),
            id,
            sign: None,
            enc: None,
            retired: Vec::new(),
        })
    }

    fn delete_container(&self, name: &str) -> Result<()> {
        self.require_user()?;
        let scan = self.scan()?;
        let c = self.find_container(&scan, name)?;
        lock(&self.pending).retain(|(n, _)| n != name);
        self.with(|s| {
            for k in scan.keys.iter().filter(|k| k.id == c.id) {
                for h in [k.priv_h, k.pub_h].into_iter().flatten() {
                    s.destroy_object(h).map_err(p11_error)?;
                }
            }
            for x in scan.certs.iter().filter(|x| x.id == c.id) {
                s.destroy_object(x.h).map_err(p11_error)?;
            }
            Ok(())
        })
    }

    fn generate_key(
        &self,
        container: &str,
        usage: KeyUsage,
        alg: KeyAlg,
        rekey: bool,
    ) -> Result<PublicKey> {
        let (name, id, old) = self.prepare_slot(container, usage, rekey)?;
        let (mut pub_t, mut priv_t) = Self::usage_attrs(alg, usage);
        pub_t.extend(Self::common_attrs(
            ObjectClass::PUBLIC_KEY,
            &id,
            &name,
            false,
        ));
        priv_t.extend(Self::common_attrs(
            ObjectClass::PRIVATE_KEY,
            &id,
            &name,
            true,
        ));
        let mech = match alg {
            KeyAlg::Rsa(bits) => {
                pub_t.push(Attribute::ModulusBits(u64::from(bits).into()));
                pub_t.push(Attribute::PublicExponent(vec![1, 0, 1]));
                Mechanism::RsaPkcsKeyPairGen
            }
            KeyAlg::Sm2 | KeyAlg::EcP256 | KeyAlg::EcP384 | KeyAlg::EcP521 => {
                let params = alg
                    .to_ec_params()
                    .ok_or_else(|| Error::internal("EC params"))?;
                pub_t.push(Attribute::EcParams(params));
                Mechanism::EccKeyPairGen
            }
            other => {
                return Err(Error::unsupported(format!(
                    "{other:?} keys through the PKCS#11 bridge"
                )));
            }
        };
        self.require_mech(mech.mechanism_type(), "key generation")?;
        let (pub_h, _) = self.with(|s| {
            s.generate_key_pair(&mech, &pub_t, &priv_t)
                .map_err(p11_error)
        })?;
        let a = self.with(|s| {
            Self::attrs(
                s,
                pub_h,
                &[
                    AttributeType::KeyType,
                    AttributeType::EcParams,
                    AttributeType::EcPoint,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                ],
            )
        })?;
        let public = convert::public_key(alg, &a)?;
        self.after_key_made(&name, old)?;
        Ok(public)
    }

    fn import_key(
        &self,
        container: &str,
        usage: KeyUsage,
        key: &PrivateKey,
        rekey: bool,
    ) -> Result<KeyId> {
        let alg = key.alg();
        let (name, id, old) = self.prepare_slot(container, usage, rekey)?;
        let public = key.public_key()?;
        let (mut pub_t, mut priv_t) = Self::usage_attrs(alg, usage);
        pub_t.extend(Self::common_attrs(
            ObjectClass::PUBLIC_KEY,
            &id,
            &name,
            false,
        ));
        priv_t.extend(Self::common_attrs(
            ObjectClass::PRIVATE_KEY,
            &id,
            &name,
            true,
        ));
        match alg {
            KeyAlg::Rsa(_) => {
                let p8 = key.to_pkcs8_der();
                let pki = pkcs8::PrivateKeyInfoRef::from_der(&p8)
                    .map_err(|e| Error::invalid_data(format!("PKCS#8: {e}")))?;
                let k = RsaPrivateKeyDer::from_der(pki.private_key.as_bytes())
                    .map_err(|e| Error::invalid_data(format!("RSAPrivateKey: {e}")))?;
                let v = |u: &UintRef<'_>| u.as_bytes().to_vec();
                priv_t.push(Attribute::KeyType(KeyType::RSA));
                priv_t.extend([
                    Attribute::Modulus(v(&k.n)),
                    Attribute::PublicExponent(v(&k.e)),
                    Attribute::PrivateExponent(v(&k.d)),
                    Attribute::Prime1(v(&k.p)),
                    Attribute::Prime2(v(&k.q)),
                    Attribute::Exponent1(v(&k.dp)),
                    Attribute::Exponent2(v(&k.dq)),
                    Attribute::Coefficient(v(&k.qinv)),
                ]);
                pub_t.extend([
                    Attribute::KeyType(KeyType::RSA),
                    Attribute::Modulus(v(&k.n)),
                    Attribute::PublicExponent(v(&k.e)),
                ]);
            }
            KeyAlg::Sm2 | KeyAlg::EcP256 | KeyAlg::EcP384 | KeyAlg::EcP521 => {
                let params = alg
                    .to_ec_params()
                    .ok_or_else(|| Error::internal("EC params"))?;
                let d = key
                    .raw_private_value()
                    .ok_or_else(|| Error::internal("EC private value"))?;
                let point = public
                    .ec_point()
                    .ok_or_else(|| Error::internal("EC point"))?;
                priv_t.extend([
                    Attribute::KeyType(KeyType::EC),
                    Attribute::EcParams(params.clone()),
                    Attribute::Value(d.to_vec()),
                ]);
                pub_t.extend([
                    Attribute::KeyType(KeyType::EC),
                    Attribute::EcParams(params),
                    Attribute::EcPoint(convert::wrap_ec_point(&point)?),
                ]);
            }
            other => {
                return Err(Error::unsupported(format!(
                    "{other:?} keys through the PKCS#11 bridge"
                )));
            }
        }
        let r = self.with(|s| {
            let ph = s.create_object(&pub_t).map_err(p11_error)?;
            match s.create_object(&priv_t) {
                Ok(h) => Ok(h),
                Err(e) => {
                    let _ = s.destroy_object(ph);
                    Err(p11_error(e))
                }
            }
        });
        scrub(&mut priv_t);
        let h = r?;
        self.after_key_made(&name, old)?;
        Ok(KeyId(h.handle()))
    }

    fn delete_key(&self, key: KeyId) -> Result<()> {
        self.require_user()?;
        let scan = self.scan()?;
        let k = scan
            .keys
            .iter()
            .find(|k| k.key_id() == key)
            .ok_or_else(|| Error::not_found(format!("key {}", key.0)))?;
        self.destroy_key(k, &scan.certs)
    }

    fn export_key(&self, _key: KeyId) -> Result<PrivateKey> {
        Err(Error::unsupported(
            "exporting a private key from a bridged PKCS#11 token (keys stay in the module)",
        ))
    }

    fn public_key(&self, container: &str, usage: KeyUsage) -> Result<PublicKey> {
        self.container(container)?
            .key(usage)
            .map(|k| k.public_key.clone())
            .ok_or_else(|| Error::not_found(format!("{} key in {container:?}", usage.as_str())))
    }

    fn import_cert(&self, container: &str, usage: KeyUsage, der: &[u8]) -> Result<CertId> {
        self.require_user()?;
        let c = self.container(container)?;
        let key = c
            .key(usage)
            .ok_or_else(|| Error::not_found(format!("{} key in {container:?}", usage.as_str())))?;
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| Error::invalid_data(format!("certificate: {e}")))?;
        if PublicKey::from_cert(der)? != key.public_key {
            return Err(Error::invalid_data(
                "the certificate's public key is not the container key's",
            ));
        }
        let tbs = cert.tbs_certificate();
        let mut t = Self::common_attrs(ObjectClass::CERTIFICATE, &c.id, &c.name, false);
        t.extend([
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Subject(tbs.subject().to_der()?),
            Attribute::Issuer(tbs.issuer().to_der()?),
            Attribute::SerialNumber(tbs.serial_number().to_der()?),
            Attribute::Value(der.to_vec()),
        ]);
        let h = self.with(|s| s.create_object(&t).map_err(p11_error))?;
        Ok(CertId(h.handle()))
    }

    fn cert(&self, container: &str, usage: KeyUsage) -> Result<Option<Vec<u8>>> {
        Ok(self
            .container(container)?
            .key(usage)
            .and_then(|k| k.current_cert().map(|c| c.der.clone())))
    }

    fn delete_cert(&self, cert: CertId) -> Result<()> {
        self.require_user()?;
        let scan = self.scan()?;
        let c = scan
            .certs
            .iter()
            .find(|c| c.h.handle() == cert.0)
            .ok_or_else(|| Error::not_found(format!("certificate {}", cert.0)))?;
        self.with(|s| s.destroy_object(c.h).map_err(p11_error))
    }

    fn sign(&self, key: &KeyRef, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let (h, k) = self.private_key(key)?;
        let input: Vec<u8>;
        let pss;
        let m = match (k.alg, mech) {
            (KeyAlg::Sm2, SignMech::Sm2Sm3 { .. } | SignMech::Sm2Prehashed) => {
                input = match mech {
                    SignMech::Sm2Sm3 { id } => {
                        let point = k
                            .public
                            .ec_point()
                            .ok_or_else(|| Error::internal("SM2 point"))?;
                        token_hal::crypto::sm2::sign_digest(&point, id, data)?.to_vec()
                    }
                    _ => data.to_vec(),
                };
                let vendor = [CKM_SM2, CKM_SANSEC_SM2_SIGN]
                    .into_iter()
                    .filter_map(|v| MechanismType::new_vendor_defined(v).ok())
                    .find(|m| self.require_mech(*m, "SM2 signing").is_ok())
                    .ok_or_else(|| {
                        Error::unsupported("SM2 signing: the PKCS#11 module has no SM2 mechanism")
                    })?;
                Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(vendor, None))
            }
            (KeyAlg::EcP256 | KeyAlg::EcP384 | KeyAlg::EcP521, SignMech::Ecdsa(hh)) => {
                input = hash::digest(*hh, data);
                Mechanism::Ecdsa
            }
            (KeyAlg::EcP256 | KeyAlg::EcP384 | KeyAlg::EcP521, SignMech::EcdsaPrehashed) => {
                input = data.to_vec();
                Mechanism::Ecdsa
            }
            (KeyAlg::Rsa(_), SignMech::RsaPkcs1(hh)) => {
                let mut di = token_hal::crypto::hash::digest_info_prefix(*hh).to_vec();
                di.extend(hash::digest(*hh, data));
                input = di;
                Mechanism::RsaPkcs
            }
            (KeyAlg::Rsa(_), SignMech::RsaPkcs1Raw) => {
                input = data.to_vec();
                Mechanism::RsaPkcs
            }
            (KeyAlg::Rsa(_), SignMech::RsaPss { hash: hh, salt_len })
            | (KeyAlg::Rsa(_), SignMech::RsaPssPrehashed { hash: hh, salt_len }) => {
                input = if matches!(mech, SignMech::RsaPss { .. }) {
                    hash::digest(*hh, data)
                } else {
                    data.to_vec()
                };
                let (hm, mgf) = hash_mech(*hh)?;
                pss = PkcsPssParams {
                    hash_alg: hm,
                    mgf,
                    s_len: u64::try_from(*salt_len)
                        .map_err(|_| Error::invalid_arg("salt length"))?
                        .into(),
                };
                Mechanism::RsaPkcsPss(pss)
            }
            (KeyAlg::Rsa(_), SignMech::RsaRaw) => {
                input = data.to_vec();
                Mechanism::RsaX509
            }
            (alg, m) => {
                return Err(Error::KeyType(format!(
                    "{m:?} with a {alg:?} key through the PKCS#11 bridge"
                )));
            }
        };
        self.require_mech(m.mechanism_type(), "signing")?;
        self.with(|s| s.sign(&m, h, &input).map_err(p11_error))
    }

    fn decrypt(&self, key: &KeyRef, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (h, k) = self.private_key(key)?;
        if !matches!(k.alg, KeyAlg::Rsa(_)) {
            return Err(Error::unsupported(format!(
                "{:?} decryption through the PKCS#11 bridge",
                k.alg
            )));
        }
        let m = match mech {
            DecMech::RsaPkcs1 => Mechanism::RsaPkcs,
            DecMech::RsaRaw => Mechanism::RsaX509,
            DecMech::RsaOaep { hash: hh, label } => {
                let (hm, mgf) = hash_mech(*hh)?;
                Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hm, mgf, oaep_source(label)))
            }
            DecMech::RsaOaepMgf {
                hash: hh,
                mgf1,
                label,
            } => {
                let (hm, _) = hash_mech(*hh)?;
                let (_, mgf) = hash_mech(*mgf1)?;
                Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hm, mgf, oaep_source(label)))
            }
            DecMech::Sm2 => {
                return Err(Error::KeyType("SM2 decryption with an RSA key".into()));
            }
        };
        self.require_mech(m.mechanism_type(), "decryption")?;
        self.with(|s| {
            s.decrypt(&m, h, data)
                .map(Zeroizing::new)
                .map_err(p11_error)
        })
    }

    fn derive(&self, key: &KeyRef, mech: &DeriveMech) -> Result<DeriveOutput> {
        let DeriveMech::Ecdh { peer_point } = mech else {
            return Err(Error::unsupported(
                "SM2 key exchange through the PKCS#11 bridge",
            ));
        };
        let (h, k) = self.private_key(key)?;
        let len = k
            .alg
            .field_len()
            .ok_or_else(|| Error::KeyType(format!("ECDH with a {:?} key", k.alg)))?;
        let m = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), peer_point));
        self.require_mech(m.mechanism_type(), "ECDH")?;
        let t = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(u64::try_from(len).unwrap_or(32).into()),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ];
        let secret = self.with(|s| {
            let dh = s.derive_key(&m, h, &t).map_err(p11_error)?;
            let v = Self::attrs(s, dh, &[AttributeType::Value]);
            let _ = s.destroy_object(dh);
            let mut v = v?;
            let out = value_of(&v).ok_or_else(|| Error::Device("derived key has no value".into()));
            scrub(&mut v);
            out.map(Zeroizing::new)
        })?;
        Ok(DeriveOutput {
            secret,
            confirmation: None,
            expected_peer_confirmation: None,
        })
    }

    fn list_files(&self) -> Result<Vec<FileInfo>> {
        self.with(|s| Ok(self.files(s)?.into_iter().map(|(_, f)| f).collect()))
    }

    fn create_file(&self, name: &str, size: u32, read: Rights, _write: Rights) -> Result<()> {
        if name.is_empty() || name.len() > MAX_FILE_NAME {
            return Err(Error::invalid_arg("file names are 1 to 32 bytes long"));
        }
        let len = usize::try_from(size).map_err(|_| Error::invalid_arg("file size"))?;
        let private = read != Rights::ANYONE;
        if private {
            self.require_user()?;
        }
        self.with(|s| {
            if self.files(s)?.iter().any(|(_, f)| f.name == name) {
                return Err(Error::already_exists(format!("file {name:?}")));
            }
            let t = [
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Modifiable(true),
                Attribute::Application(self.name.as_bytes().to_vec()),
                Attribute::Label(name.as_bytes().to_vec()),
                Attribute::Value(vec![0; len]),
            ];
            s.create_object(&t).map(|_| ()).map_err(p11_error)
        })
    }

    fn delete_file(&self, name: &str) -> Result<()> {
        self.with(|s| {
            let (h, _) = self.file(s, name)?;
            s.destroy_object(h).map_err(p11_error)
        })
    }

    fn file_info(&self, name: &str) -> Result<FileInfo> {
        self.with(|s| self.file(s, name).map(|(_, f)| f))
    }

    fn read_file(&self, name: &str, offset: u32, len: u32) -> Result<Vec<u8>> {
        self.with(|s| {
            let (h, f) = self.file(s, name)?;
            if offset > f.size {
                return Err(Error::invalid_arg(format!(
                    "offset {offset} past the end of {name:?} ({} bytes)",
                    f.size
                )));
            }
            let v = value_of(&Self::attrs(s, h, &[AttributeType::Value])?).unwrap_or_default();
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(v.len());
            let end = start
                .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                .min(v.len());
            Ok(v[start..end].to_vec())
        })
    }

    fn write_file(&self, name: &str, offset: u32, data: &[u8]) -> Result<()> {
        self.with(|s| {
            let (h, f) = self.file(s, name)?;
            let start = usize::try_from(offset).map_err(|_| Error::invalid_arg("offset"))?;
            let end = start
                .checked_add(data.len())
                .filter(|&e| u32::try_from(e).is_ok_and(|e| e <= f.size))
                .ok_or_else(|| {
                    Error::invalid_arg(format!(
                        "writing {} bytes at {offset} overruns {name:?} ({} bytes)",
                        data.len(),
                        f.size
                    ))
                })?;
            let mut v = value_of(&Self::attrs(s, h, &[AttributeType::Value])?).unwrap_or_default();
            v.resize(usize::try_from(f.size).unwrap_or(0), 0);
            v[start..end].copy_from_slice(data);
            match s.update_attributes(h, &[Attribute::Value(v.clone())]) {
                Ok(()) => Ok(()),
                // Modules that keep CKA_VALUE of data objects read-only (SoftHSM2): a
                // new object replaces the old one.
                Err(cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::AttributeReadOnly,
                    _,
                )) => {
                    let t = [
                        Attribute::Class(ObjectClass::DATA),
                        Attribute::Token(true),
                        Attribute::Private(f.read_rights != Rights::ANYONE),
                        Attribute::Modifiable(true),
                        Attribute::Application(self.name.as_bytes().to_vec()),
                        Attribute::Label(name.as_bytes().to_vec()),
                        Attribute::Value(v),
                    ];
                    s.create_object(&t).map_err(p11_error)?;
                    s.destroy_object(h).map_err(p11_error)
                }
                Err(e) => Err(p11_error(e)),
            }
        })
    }

    fn create_object(&self, _private: bool, _attrs: &[Attr]) -> Result<ObjectId> {
        Err(Self::objects_unsupported())
    }

    fn list_objects(&self) -> Result<Vec<ObjectRecord>> {
        Err(Self::objects_unsupported())
    }

    fn get_object(&self, _id: ObjectId) -> Result<ObjectRecord> {
        Err(Self::objects_unsupported())
    }

    fn update_object(&self, _id: ObjectId, _attrs: &[Attr]) -> Result<()> {
        Err(Self::objects_unsupported())
    }

    fn delete_object(&self, _id: ObjectId) -> Result<()> {
        Err(Self::objects_unsupported())
    }
}
