//! The card driver: a [`Device`] and its [`Application`]s over any [`Transport`], speaking
//! docs/apdu.md, so the PKCS#11 and SKF faces work on a card unchanged.
//!
//! Every call is one transaction on the link: the card is held, the secure channel is
//! opened if this process has none (or the card dropped ours), the application is
//! opened, the PIN this handle verified is verified again inside the channel, the command
//! runs, and the card is **logged out** before the transaction ends, so no other process
//! inherits an authenticated card (CVE-2023-40660). The PIN stays in host memory only
//! while the handle is logged in, zeroized at logout.
//!
//! Digests and padding run on the host (SM3 with Z, SHA-*, the PKCS#1 DigestInfo); the
//! card does the private-key operation.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use zeroize::Zeroizing;

use super::command::{Command, EXTENDED_MAX, Response};
use super::exchange::{LinkCaps, exchange};
use super::sm::{self, HostChannel, HostHandshake, is_channel_lost};
use super::status::check;
use super::tlv::{Fields, Writer, uint};
use super::transport::Transport;
use super::wire::{self, ins, tag};
use crate::crypto::hash;
use crate::crypto::{
    DecMech, DeriveMech, DeriveOutput, KeyAlg, PrivateKey, PublicKey, SignMech, sm2,
};
use crate::error::{Error, Result};
use crate::model::{
    AppInfo, AppParams, Attr, CertId, ContainerInfo, DeviceInfo, FileInfo, KeyId, KeyRef, KeyUsage,
    LoginState, ObjectId, ObjectRecord, Pin, PinInfo, PinType, Rights,
};
use crate::token::{Application, Device};

/// The link to one card and this process's secure channel on it.
struct Link {
    transport: Arc<dyn Transport>,
    caps: LinkCaps,
    /// The device key the configuration pins, if any.
    pinned: Option<PublicKey>,
    channel: Mutex<Option<HostChannel>>,
}

/// One transaction: the card is held and the channel open.
struct Tx<'a> {
    link: &'a Link,
    channel: MutexGuard<'a, Option<HostChannel>>,
}

impl Link {
    fn clear(&self, cmd: &Command, what: &str) -> Result<Vec<u8>> {
        let r = exchange(&*self.transport, self.caps, cmd)?;
        check(r.sw, what)?;
        Ok(r.data)
    }

    fn open_channel(&self) -> Result<HostChannel> {
        let select = Command::new(0x00, 0xA4, 0x04, 0x00)
            .with_data(sm::AID.to_vec())
            .with_le(256);
        let info = self.clear(&select, "select the ukey application")?;
        let f = Fields::parse(&info, &[tag::CARD_INFO])?;
        let ci = Fields::parse(
            f.get(tag::CARD_INFO)?,
            &[tag::VERSION, tag::PUBLIC_KEY, tag::FLAGS],
        )?;
        if ci.u8(tag::VERSION)? != 1 {
            return Err(Error::Unsupported("card command set version".into()));
        }
        let device_key = PublicKey::from_spki_der(ci.get(tag::PUBLIC_KEY)?)?;
        if device_key.alg() != KeyAlg::Sm2 {
            return Err(Error::Device("the card's device key is not SM2".into()));
        }
        if let Some(p) = &self.pinned
            && *p != device_key
        {
            return Err(Error::Device(
                "the card's device key differs from the configured one".into(),
            ));
        }
        let (hs, open) = HostHandshake::start()?;
        let answer = self.clear(&open, "open the secure channel")?;
        let (channel, confirm) = hs.finish(&device_key, &answer)?;
        self.clear(&confirm, "confirm the secure channel")?;
        Ok(channel)
    }

    /// Runs `f` in one transaction; retried once on a fresh channel if the card dropped
    /// ours (the refused envelope changed nothing on the card).
    fn run<T>(&self, mut f: impl FnMut(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let _hold = self.transport.begin()?;
        let mut guard = self.channel.lock().unwrap_or_else(PoisonError::into_inner);
        for attempt in 0..2 {
            if guard.is_none() {
                *guard = Some(self.open_channel()?);
            }
            let mut tx = Tx {
                link: self,
                channel: guard,
            };
            let r = f(&mut tx);
            guard = tx.channel;
            match r {
                Err(e) if is_channel_lost(&e) && attempt == 0 => {
                    *guard = None;
                }
                Err(e) if is_channel_lost(&e) => {
                    *guard = None;
                    return Err(e);
                }
                other => return other,
            }
        }
        Err(Error::Internal("secure channel retry".into()))
    }
}

impl Tx<'_> {
    /// One inner command; the card's answer data, or the error its status word means.
    fn call(&mut self, ins: u8, p2: u8, data: Vec<u8>, what: &str) -> Result<Vec<u8>> {
        let inner = Command::new(sm::CLA, ins, 0, p2)
            .with_data(data)
            .with_le(EXTENDED_MAX);
        let ch = self
            .channel
            .as_mut()
            .ok_or_else(|| Error::Internal("no secure channel".into()))?;
        let (ctr, env) = ch.wrap(&inner)?;
        let outer = exchange(&*self.link.transport, self.link.caps, &env)?;
        let r: Response = ch.unwrap(ctr, &outer)?;
        check(r.sw, what)?;
        Ok(r.data)
    }
}

/// A card as a ukey device.
pub struct ApduDevice {
    link: Arc<Link>,
}

impl std::fmt::Debug for ApduDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApduDevice({})", self.link.transport.id())
    }
}

impl ApduDevice {
    /// A device over `transport`. `pinned` is the card's device key when the
    /// configuration names one (else the first one seen is trusted).
    pub fn new(transport: Arc<dyn Transport>, caps: LinkCaps, pinned: Option<PublicKey>) -> Self {
        Self {
            link: Arc::new(Link {
                transport,
                caps,
                pinned,
                channel: Mutex::new(None),
            }),
        }
    }

    /// The transport's identifier (reader name, HID path, loopback name).
    pub fn transport_id(&self) -> String {
        self.link.transport.id()
    }
}

impl Device for ApduDevice {
    fn info(&self) -> Result<DeviceInfo> {
        let data = self
            .link
            .run(|tx| tx.call(ins::GET_DEVICE_INFO, 0, Vec::new(), "device information"))?;
        let f = Fields::parse(&data, &[tag::DEVICE_INFO])?;
        let mut info = wire::device_info(f.get(tag::DEVICE_INFO)?)?;
        info.backend = crate::model::BackendKind::Apdu;
        Ok(info)
    }

    fn set_label(&self, label: &str) -> Result<()> {
        let mut w = Writer::new();
        w.put_str(tag::LABEL, label);
        let data = w.finish();
        self.link
            .run(|tx| tx.call(ins::SET_LABEL, 0, data.clone(), "set the label"))
            .map(drop)
    }

    fn gen_random(&self, len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        self.link.run(|tx| {
            out.clear();
            while out.len() < len {
                let n = (len - out.len()).min(64);
                let r = tx.call(ins::GET_CHALLENGE, n as u8, Vec::new(), "random")?;
                if r.len() != n {
                    return Err(Error::Device(
                        "the card gave the wrong number of bytes".into(),
                    ));
                }
                out.extend_from_slice(&r);
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn dev_auth(&self, cryptogram: &[u8]) -> Result<()> {
        self.link
            .run(|tx| {
                tx.call(
                    ins::DEVICE_AUTH,
                    0,
                    cryptogram.to_vec(),
                    "device authentication",
                )
            })
            .map(drop)
    }

    fn change_dev_auth_key(&self, new_key: &[u8]) -> Result<()> {
        let key = Zeroizing::new(new_key.to_vec());
        self.link
            .run(|tx| {
                tx.call(
                    ins::CHANGE_DEV_AUTH_KEY,
                    0,
                    key.to_vec(),
                    "change the device key",
                )
            })
            .map(drop)
    }

    fn list_apps(&self) -> Result<Vec<String>> {
        let data = self
            .link
            .run(|tx| tx.call(ins::LIST_APPS, 0, Vec::new(), "list applications"))?;
        let f = Fields::parse(&data, &[tag::NAME])?;
        f.all(tag::NAME)
            .map(|n| {
                String::from_utf8(n.to_vec()).map_err(|_| Error::invalid_data("application name"))
            })
            .collect()
    }

    fn create_app(&self, name: &str, params: &AppParams) -> Result<()> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, name)
            .put(tag::PIN, params.admin_pin.as_bytes())
            .put_u8(tag::RETRIES, params.admin_retries.min(255) as u8);
        if let Some(u) = &params.user_pin {
            w.put(tag::PIN, u.as_bytes());
        }
        w.put_u8(tag::RETRIES, params.user_retries.min(255) as u8)
            .put_u8(tag::RIGHTS, params.create_file_rights.0 as u8);
        let data = Zeroizing::new(w.finish());
        self.link
            .run(|tx| tx.call(ins::CREATE_APP, 0, data.to_vec(), "create the application"))
            .map(drop)
    }

    fn delete_app(&self, name: &str) -> Result<()> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, name);
        let data = w.finish();
        self.link
            .run(|tx| tx.call(ins::DELETE_APP, 0, data.clone(), "delete the application"))
            .map(drop)
    }

    fn open_app(&self, name: &str) -> Result<Arc<dyn Application>> {
        if !self.list_apps()?.iter().any(|a| a == name) {
            return Err(Error::not_found(format!("application {name:?}")));
        }
        Ok(Arc::new(ApduApp {
            link: self.link.clone(),
            name: name.to_owned(),
            login: Mutex::new(None),
            changes: std::sync::atomic::AtomicU64::new(0),
        }))
    }
}

/// An application on a card.
pub struct ApduApp {
    link: Arc<Link>,
    name: String,
    /// The role and PIN this handle verified (re-verified in every transaction).
    login: Mutex<Option<(PinType, Pin)>>,
    /// Every login and every end of one ([`Application::login_changes`]).
    changes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ApduApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApduApp({})", self.name)
    }
}

impl ApduApp {
    /// Counts a login change ([`Application::login_changes`]).
    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    /// Runs `f` with this application open and, when this handle is logged in, its PIN
    /// verified; logs the card out before the transaction ends.
    fn run<T>(&self, mut f: impl FnMut(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let login = self
            .login
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut open = Writer::new();
        open.put_str(tag::NAME, &self.name);
        let open = open.finish();
        self.link.run(|tx| {
            tx.call(ins::OPEN_APP, 0, open.clone(), "open the application")?;
            let r = (|| {
                if let Some((t, pin)) = &login {
                    let mut w = Writer::new();
                    w.put(tag::PIN, pin.as_bytes());
                    let data = Zeroizing::new(w.finish());
                    tx.call(ins::VERIFY_PIN, wire::pin_p2(*t), data.to_vec(), "PIN")?;
                }
                f(tx)
            })();
            // Whatever happened, the card leaves this transaction logged out.
            let out = tx.call(ins::LOGOUT, 0, Vec::new(), "log out");
            match (r, out) {
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => Err(e),
                (Ok(v), Ok(_)) => Ok(v),
            }
        })
    }

    fn call(&self, ins: u8, p2: u8, w: Writer, what: &str) -> Result<Vec<u8>> {
        let data = Zeroizing::new(w.finish());
        self.run(|tx| tx.call(ins, p2, data.to_vec(), what))
    }

    fn key_op(&self, ins: u8, key: &KeyRef, mech: Vec<u8>, data: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        wire::put_key_ref(&mut w, key);
        w.put(tag::MECH, &mech);
        if let Some(d) = data {
            w.put(tag::DATA, d);
        }
        self.call(ins, 0, w, "private-key operation")
    }

    fn public_of(&self, key: &KeyRef) -> Result<PublicKey> {
        find_public(&self.list_containers()?, key)
    }
}

/// The public key of `key` in a container listing.
fn find_public(all: &[ContainerInfo], key: &KeyRef) -> Result<PublicKey> {
    let found = match key {
        KeyRef::Id(id) => all
            .iter()
            .flat_map(|c| c.all_keys())
            .find(|k| k.id == *id)
            .map(|k| k.public_key.clone()),
        KeyRef::Container { container, usage } => all
            .iter()
            .find(|c| c.name == *container)
            .and_then(|c| c.key(*usage))
            .map(|k| k.public_key.clone()),
    };
    found.ok_or_else(|| Error::not_found("key"))
}

fn containers_of(data: &[u8]) -> Result<Vec<ContainerInfo>> {
    let f = Fields::parse(data, &[tag::CONTAINER])?;
    f.all(tag::CONTAINER).map(wire::container).collect()
}

fn single(data: &[u8], t: u8) -> Result<Vec<u8>> {
    let f = Fields::parse(data, &[t])?;
    Ok(f.get(t)?.to_vec())
}

impl Application for ApduApp {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> Result<AppInfo> {
        let d = self.call(ins::APP_INFO, 0, Writer::new(), "application information")?;
        let f = Fields::parse(&d, &[tag::PIN_INFO, tag::RIGHTS])?;
        let p: Vec<&[u8]> = f.all(tag::PIN_INFO).collect();
        let [admin, user] = p.as_slice() else {
            return Err(Error::invalid_data("application information"));
        };
        Ok(AppInfo {
            name: self.name.clone(),
            create_file_rights: Rights(u32::from(f.u8(tag::RIGHTS)?)),
            admin_pin: wire::pin_info(admin)?,
            user_pin: wire::pin_info(user)?,
        })
    }

    fn pin_info(&self, pin_type: PinType) -> Result<PinInfo> {
        let d = self.call(
            ins::GET_PIN_INFO,
            wire::pin_p2(pin_type),
            Writer::new(),
            "PIN information",
        )?;
        wire::pin_info(&single(&d, tag::PIN_INFO)?)
    }

    fn verify_pin(&self, pin_type: PinType, pin: &Pin) -> Result<()> {
        let mut slot = self.login.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = None;
        self.changed();
        drop(slot);
        let mut w = Writer::new();
        w.put(tag::PIN, pin.as_bytes());
        self.call(ins::VERIFY_PIN, wire::pin_p2(pin_type), w, "PIN")?;
        *self.login.lock().unwrap_or_else(PoisonError::into_inner) = Some((pin_type, pin.clone()));
        self.changed();
        Ok(())
    }

    fn change_pin(&self, pin_type: PinType, old: &Pin, new: &Pin) -> Result<()> {
        let mut w = Writer::new();
        w.put(tag::PIN, old.as_bytes())
            .put(tag::PIN, new.as_bytes());
        self.call(ins::CHANGE_PIN, wire::pin_p2(pin_type), w, "PIN")?;
        let mut slot = self.login.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|(t, _)| *t == pin_type) {
            *slot = Some((pin_type, new.clone()));
        }
        Ok(())
    }

    fn unblock_pin(&self, admin_pin: &Pin, new_user_pin: &Pin) -> Result<()> {
        let mut w = Writer::new();
        w.put(tag::PIN, admin_pin.as_bytes())
            .put(tag::PIN, new_user_pin.as_bytes());
        self.call(ins::UNBLOCK_PIN, 0, w, "PIN").map(drop)
    }

    fn init_user_pin(&self, new_user_pin: &Pin) -> Result<()> {
        let mut w = Writer::new();
        w.put(tag::PIN, new_user_pin.as_bytes());
        self.call(ins::INIT_USER_PIN, 1, w, "PIN").map(drop)
    }

    fn wipe(&self, admin_pin: &Pin) -> Result<()> {
        let mut w = Writer::new();
        w.put(tag::PIN, admin_pin.as_bytes());
        self.call(ins::WIPE, 0, w, "wipe the application")?;
        self.logout();
        Ok(())
    }

    fn logout(&self) {
        *self.login.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.changed();
    }

    fn login_changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn login_state(&self) -> LoginState {
        match &*self.login.lock().unwrap_or_else(PoisonError::into_inner) {
            None => LoginState::None,
            Some((PinType::User, _)) => LoginState::User,
            Some((PinType::Admin, _)) => LoginState::Admin,
        }
    }

    fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        let d = self.call(ins::LIST_CONTAINERS, 0, Writer::new(), "list containers")?;
        containers_of(&d)
    }

    fn container(&self, name: &str) -> Result<ContainerInfo> {
        self.list_containers()?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::not_found(format!("container {name:?}")))
    }

    fn create_container(&self, name: &str, id: Option<&[u8]>) -> Result<ContainerInfo> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, name);
        if let Some(id) = id {
            w.put(tag::ID, id);
        }
        self.call(ins::CREATE_CONTAINER, 0, w, "create the container")?;
        self.container(name)
    }

    fn delete_container(&self, name: &str) -> Result<()> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, name);
        self.call(ins::DELETE_CONTAINER, 0, w, "delete the container")
            .map(drop)
    }

    fn generate_key(
        &self,
        container: &str,
        usage: KeyUsage,
        alg: KeyAlg,
        rekey: bool,
    ) -> Result<PublicKey> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, container)
            .put_u8(tag::USAGE, wire::usage_byte(usage))
            .put(tag::ALG, &wire::alg_bytes(alg)?)
            .put_u8(tag::FLAG, u8::from(rekey));
        let d = self.call(ins::GENERATE_KEY, 0, w, "generate a key pair")?;
        let f = Fields::parse(&d, &[tag::PUBLIC_KEY, tag::KEY_ID])?;
        PublicKey::from_spki_der(f.get(tag::PUBLIC_KEY)?)
    }

    fn import_key(
        &self,
        container: &str,
        usage: KeyUsage,
        key: &PrivateKey,
        rekey: bool,
    ) -> Result<KeyId> {
        wire::alg_bytes(key.alg())?;
        let der = key.to_pkcs8_der();
        let mut w = Writer::new();
        w.put_str(tag::NAME, container)
            .put_u8(tag::USAGE, wire::usage_byte(usage))
            .put(tag::PKCS8, &der)
            .put_u8(tag::FLAG, u8::from(rekey));
        let d = self.call(ins::IMPORT_KEY, 0, w, "import a key pair")?;
        Ok(KeyId(uint(&single(&d, tag::KEY_ID)?)?))
    }

    fn delete_key(&self, key: KeyId) -> Result<()> {
        let mut w = Writer::new();
        w.put_uint(tag::KEY_ID, key.0);
        self.call(ins::DELETE_KEY, 0, w, "delete a key pair")
            .map(drop)
    }

    fn export_key(&self, _key: KeyId) -> Result<PrivateKey> {
        Err(Error::Unsupported("private keys never leave a card".into()))
    }

    fn public_key(&self, container: &str, usage: KeyUsage) -> Result<PublicKey> {
        self.public_of(&KeyRef::active(container, usage))
    }

    fn import_cert(&self, container: &str, usage: KeyUsage, der: &[u8]) -> Result<CertId> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, container)
            .put_u8(tag::USAGE, wire::usage_byte(usage))
            .put(tag::CERT, der);
        let d = self.call(ins::IMPORT_CERT, 0, w, "import a certificate")?;
        Ok(CertId(uint(&single(&d, tag::CERT_ID)?)?))
    }

    fn cert(&self, container: &str, usage: KeyUsage) -> Result<Option<Vec<u8>>> {
        let c = self.container(container)?;
        let k = c
            .key(usage)
            .ok_or_else(|| Error::not_found(format!("{} key", usage.as_str())))?;
        Ok(k.current_cert().map(|c| c.der.clone()))
    }

    fn delete_cert(&self, cert: CertId) -> Result<()> {
        let mut w = Writer::new();
        w.put_uint(tag::CERT_ID, cert.0);
        self.call(ins::DELETE_CERT, 0, w, "delete a certificate")
            .map(drop)
    }

    fn sign(&self, key: &KeyRef, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        // The card signs digests: hash (and build the DigestInfo) here.
        let (card_mech, input): (SignMech, Zeroizing<Vec<u8>>) = match mech {
            SignMech::Sm2Sm3 { id } => {
                // Z needs the public key: read it in the same transaction as the signature.
                let mech = wire::sign_mech_bytes(&SignMech::Sm2Prehashed)?;
                let d = self.run(|tx| {
                    let list = tx.call(ins::LIST_CONTAINERS, 0, Vec::new(), "list containers")?;
                    let pk = find_public(&containers_of(&list)?, key)?;
                    let point = pk
                        .ec_point()
                        .ok_or_else(|| Error::KeyType("not an SM2 key".into()))?;
                    let e = sm2::sign_digest(&point, id, data)?;
                    let mut w = Writer::new();
                    wire::put_key_ref(&mut w, key);
                    w.put(tag::MECH, &mech).put(tag::DATA, &e);
                    tx.call(ins::SIGN, 0, w.finish(), "private-key operation")
                })?;
                return single(&d, tag::DATA);
            }
            SignMech::Ecdsa(h) => (
                SignMech::EcdsaPrehashed,
                Zeroizing::new(hash::digest(*h, data)),
            ),
            SignMech::RsaPkcs1(h) => {
                let mut di = hash::digest_info_prefix(*h).to_vec();
                di.extend_from_slice(&hash::digest(*h, data));
                (SignMech::RsaPkcs1Raw, Zeroizing::new(di))
            }
            SignMech::RsaPss { hash: h, salt_len } => (
                SignMech::RsaPssPrehashed {
                    hash: *h,
                    salt_len: *salt_len,
                },
                Zeroizing::new(hash::digest(*h, data)),
            ),
            SignMech::EdDsa { .. } => {
                return Err(Error::Unsupported("EdDSA on an APDU card".into()));
            }
            other => (other.clone(), Zeroizing::new(data.to_vec())),
        };
        let d = self.key_op(
            ins::SIGN,
            key,
            wire::sign_mech_bytes(&card_mech)?,
            Some(&input),
        )?;
        single(&d, tag::DATA)
    }

    fn decrypt(&self, key: &KeyRef, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let d = Zeroizing::new(self.key_op(
            ins::DECRYPT,
            key,
            wire::dec_mech_bytes(mech)?,
            Some(data),
        )?);
        Ok(Zeroizing::new(single(&d, tag::DATA)?))
    }

    fn derive(&self, key: &KeyRef, mech: &DeriveMech) -> Result<DeriveOutput> {
        let d =
            Zeroizing::new(self.key_op(ins::DERIVE, key, wire::derive_mech_bytes(mech)?, None)?);
        let f = Fields::parse(&d, &[tag::DATA])?;
        let v: Vec<&[u8]> = f.all(tag::DATA).collect();
        let fixed = |b: &[u8]| -> Result<[u8; 32]> {
            b.try_into()
                .map_err(|_| Error::invalid_data("confirmation value"))
        };
        match v.as_slice() {
            [s] => Ok(DeriveOutput {
                secret: Zeroizing::new(s.to_vec()),
                confirmation: None,
                expected_peer_confirmation: None,
            }),
            [s, c, e] => Ok(DeriveOutput {
                secret: Zeroizing::new(s.to_vec()),
                confirmation: Some(fixed(c)?),
                expected_peer_confirmation: Some(fixed(e)?),
            }),
            _ => Err(Error::invalid_data("derive answer")),
        }
    }

    fn list_files(&self) -> Result<Vec<FileInfo>> {
        let d = self.call(ins::LIST_FILES, 0, Writer::new(), "list files")?;
        let f = Fields::parse(&d, &[tag::FILE_INFO])?;
        f.all(tag::FILE_INFO).map(wire::file_info).collect()
    }

    fn create_file(&self, name: &str, size: u32, read: Rights, write: Rights) -> Result<()> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, name)
            .put_uint(tag::LENGTH, u64::from(size))
            .put_u8(tag::RIGHTS, read.0 as u8)
            .put_u8(tag::RIGHTS, write.0 as u8);
        self.call(ins::CREATE_FILE, 0, w, "create a file").map(drop)
    }

    fn delete_file(&self, name: &str) -> Result<()> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, name);
        self.call(ins::DELETE_FILE, 0, w, "delete a file").map(drop)
    }

    fn file_info(&self, name: &str) -> Result<FileInfo> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, name);
        let d = self.call(ins::FILE_INFO, 0, w, "file information")?;
        wire::file_info(&single(&d, tag::FILE_INFO)?)
    }

    fn read_file(&self, name: &str, offset: u32, len: u32) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, name)
            .put_uint(tag::OFFSET, u64::from(offset))
            .put_uint(tag::LENGTH, u64::from(len));
        let d = self.call(ins::READ_FILE, 0, w, "read a file")?;
        let data = single(&d, tag::DATA)?;
        if data.len() > len as usize {
            return Err(Error::Device("the card read more than asked".into()));
        }
        Ok(data)
    }

    fn write_file(&self, name: &str, offset: u32, data: &[u8]) -> Result<()> {
        let mut w = Writer::new();
        w.put_str(tag::NAME, name)
            .put_uint(tag::OFFSET, u64::from(offset))
            .put(tag::DATA, data);
        self.call(ins::WRITE_FILE, 0, w, "write a file").map(drop)
    }

    fn create_object(&self, private: bool, attrs: &[Attr]) -> Result<ObjectId> {
        let mut w = Writer::new();
        w.put_u8(tag::FLAG, u8::from(private));
        for a in attrs {
            wire::put_attr(&mut w, a);
        }
        let d = self.call(ins::CREATE_OBJECT, 0, w, "create an object")?;
        Ok(ObjectId(uint(&single(&d, tag::OBJECT_ID)?)?))
    }

    fn list_objects(&self) -> Result<Vec<ObjectRecord>> {
        let d = Zeroizing::new(self.call(ins::LIST_OBJECTS, 0, Writer::new(), "list objects")?);
        let f = Fields::parse(&d, &[tag::OBJECT])?;
        f.all(tag::OBJECT).map(object).collect()
    }

    fn get_object(&self, id: ObjectId) -> Result<ObjectRecord> {
        let mut w = Writer::new();
        w.put_uint(tag::OBJECT_ID, id.0);
        let d = Zeroizing::new(self.call(ins::GET_OBJECT, 0, w, "read an object")?);
        object(&single(&d, tag::OBJECT)?)
    }

    fn update_object(&self, id: ObjectId, attrs: &[Attr]) -> Result<()> {
        let mut w = Writer::new();
        w.put_uint(tag::OBJECT_ID, id.0);
        for a in attrs {
            wire::put_attr(&mut w, a);
        }
        self.call(ins::UPDATE_OBJECT, 0, w, "update an object")
            .map(drop)
    }

    fn delete_object(&self, id: ObjectId) -> Result<()> {
        let mut w = Writer::new();
        w.put_uint(tag::OBJECT_ID, id.0);
        self.call(ins::DELETE_OBJECT, 0, w, "delete an object")
            .map(drop)
    }
}

fn object(v: &[u8]) -> Result<ObjectRecord> {
    wire::object(v)
}
