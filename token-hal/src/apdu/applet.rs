//! The virtual key: the card side of docs/apdu.md as a [`CardHandler`].
//!
//! Its state is a soft device (the encrypted SQLite store of `soft/`) in a directory of its
//! own, plus the card's static SM2 *device key* for the secure channel, so it enforces
//! what a real key does with the same code the soft token uses: PIN retry counters that
//! persist, private keys that never leave (there is no command to read one), file and
//! application access rights, device authentication. What a real card keeps in RAM (the
//! selection, the secure channel, the login, a pending GET RESPONSE) is lost at power off.
//!
//! `ukey sim` attaches it to pcscd through vpcd, to the HID framing, or in-process
//! (loopback). It logs every command it served (header, sizes and status word, never
//! data) so tests can prove calls reached it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use zeroize::Zeroizing;

use super::command::{Command, Response, SHORT_MAX_LE, Sw};
use super::sm::{self, CardChannel, CardHandshake};
use super::status::{for_error, sw};
use super::tlv::{Fields, Writer};
use super::transport::CardHandler;
use super::wire::{self, ins, tag};
use crate::crypto::{KeyAlg, PrivateKey};
use crate::error::{Error, Result};
use crate::model::{AppParams, KeyId, LoginState, ObjectId, Pin, Rights};
use crate::soft::{self, DB_EXTENSION, SoftOptions};
use crate::token::{Application, Device};

/// The ATR of the virtual key: T=1, with "ukey" in the historical bytes.
pub const ATR: [u8; 10] = [0x3B, 0x88, 0x80, 0x01, b'u', b'k', b'e', b'y', 0x01, 0x00];
const DEVICE_KEY_FILE: &str = "device-key.p8";

/// One served command in the APDU log: never its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// CLA INS P1 P2 of the command (the inner one for envelopes).
    pub header: [u8; 4],
    /// Data bytes in.
    pub data_in: usize,
    /// Data bytes out.
    pub data_out: usize,
    /// The status word answered.
    pub sw: u16,
    /// Whether it came inside the secure channel.
    pub secure: bool,
}

/// The shared APDU log of a virtual key.
pub type ServedLog = Arc<Mutex<Vec<Served>>>;

/// The virtual key.
pub struct VirtualKey {
    db: PathBuf,
    opts: SoftOptions,
    device: Arc<dyn Device>,
    device_key: PrivateKey,
    log: ServedLog,
    selected: bool,
    handshake: Option<CardHandshake>,
    channel: Option<CardChannel>,
    app: Option<Arc<dyn Application>>,
    pending: Vec<u8>,
    chain: Option<([u8; 4], Vec<u8>)>,
    fixed: bool,
}

impl std::fmt::Debug for VirtualKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VirtualKey({})", self.db.display())
    }
}

impl VirtualKey {
    /// Opens the virtual key whose state is in `dir`, making a fresh one (a new soft
    /// device labelled `label` and a new device key) if the directory holds none.
    pub fn open(dir: &Path, label: &str, opts: &SoftOptions) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let db = match find_db(dir)? {
            Some(p) => p,
            None => soft::create_soft_device(dir, label, opts)?,
        };
        let device_key = device_key(&dir.join(DEVICE_KEY_FILE))?;
        let device: Arc<dyn Device> = soft::open_soft_device_with(&db, opts)?;
        Ok(Self {
            db,
            opts: opts.clone(),
            device,
            device_key,
            log: Arc::new(Mutex::new(Vec::new())),
            selected: false,
            handshake: None,
            channel: None,
            app: None,
            pending: Vec::new(),
            chain: None,
            fixed: false,
        })
    }

    /// Makes the key say it cannot be removed (an embedded secure element rather than a
    /// USB key): DEVICE INFO's form byte, docs/apdu.md.
    pub fn set_fixed(&mut self, fixed: bool) {
        self.fixed = fixed;
    }

    /// The log of served commands (shared; it keeps growing).
    pub fn log(&self) -> ServedLog {
        self.log.clone()
    }

    /// The public half of the device key (what the card info announces).
    pub fn device_public_key(&self) -> Result<crate::crypto::PublicKey> {
        self.device_key.public_key()
    }

    fn reset_volatile(&mut self) {
        self.selected = false;
        self.handshake = None;
        self.channel = None;
        if let Some(a) = self.app.take() {
            a.logout();
        }
        self.pending.clear();
        self.chain = None;
    }

    fn record(&self, header: [u8; 4], data_in: usize, r: &Response, secure: bool) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.push(Served {
            header,
            data_in,
            data_out: r.data.len(),
            sw: r.sw.0,
            secure,
        });
        tracing::debug!(
            cla = header[0],
            ins = header[1],
            data_in,
            data_out = r.data.len(),
            sw = r.sw.0,
            secure,
            "virtual key served"
        );
    }

    /// One command in, one answer out (chaining and GET RESPONSE handled here).
    fn serve(&mut self, apdu: &[u8]) -> Response {
        let Ok((cmd, _)) = Command::decode(apdu) else {
            return Response::new(Vec::new(), sw::WRONG_LENGTH);
        };
        let header = [cmd.cla, cmd.ins, cmd.p1, cmd.p2];
        // GET RESPONSE: the rest of the last answer.
        if cmd.cla == 0x00 && cmd.ins == 0xC0 {
            let r = self.take_pending(cmd.le.unwrap_or(SHORT_MAX_LE));
            self.record(header, 0, &r, false);
            return r;
        }
        self.pending.clear();
        // Command chaining: collect the parts, answer the whole on the last one.
        let cmd = if cmd.cla & super::command::CLA_CHAINING != 0 {
            let base = [
                cmd.cla & !super::command::CLA_CHAINING,
                cmd.ins,
                cmd.p1,
                cmd.p2,
            ];
            match &mut self.chain {
                Some((h, data)) if *h == base => data.extend_from_slice(&cmd.data),
                _ => self.chain = Some((base, cmd.data.clone())),
            }
            if self.chain.as_ref().is_some_and(|(_, d)| d.len() > 1 << 17) {
                self.chain = None;
                return Response::new(Vec::new(), sw::WRONG_LENGTH);
            }
            return Response::new(Vec::new(), sw::OK);
        } else if let Some((h, mut data)) = self.chain.take() {
            if h != [cmd.cla, cmd.ins, cmd.p1, cmd.p2] {
                return Response::new(Vec::new(), sw::CHAIN_LAST_EXPECTED);
            }
            data.extend_from_slice(&cmd.data);
            Command { data, ..cmd }
        } else {
            cmd
        };
        let ne = cmd.le.unwrap_or(0);
        let data_in = cmd.data.len();
        let r = self.dispatch(cmd);
        self.record(header, data_in, &r, false);
        self.limit(r, ne)
    }

    /// Cuts an answer to Ne, keeping the rest for GET RESPONSE (61xx).
    fn limit(&mut self, r: Response, ne: usize) -> Response {
        if r.data.len() <= ne || r.sw != sw::OK {
            return r;
        }
        let mut data = r.data;
        self.pending = data.split_off(ne);
        let more = self.pending.len().min(SHORT_MAX_LE) % 256;
        Response::new(data, Sw(0x6100 | more as u16))
    }

    fn take_pending(&mut self, le: usize) -> Response {
        if self.pending.is_empty() {
            return Response::new(Vec::new(), Sw(0x6985));
        }
        let rest = self.pending.split_off(le.min(self.pending.len()));
        let now = std::mem::replace(&mut self.pending, rest);
        if self.pending.is_empty() {
            Response::new(now, sw::OK)
        } else {
            let more = self.pending.len().min(SHORT_MAX_LE) % 256;
            Response::new(now, Sw(0x6100 | more as u16))
        }
    }

    fn dispatch(&mut self, cmd: Command) -> Response {
        let answer = |r: Result<Vec<u8>>| match r {
            Ok(d) => Response::new(d, sw::OK),
            Err(e) => Response::new(Vec::new(), for_error(&e)),
        };
        match (cmd.cla, cmd.ins) {
            (0x00, 0xA4) => answer(self.select(&cmd)),
            // After a reset an envelope finds no channel: the host re-selects and re-opens.
            (sm::CLA_SM, sm::INS_ENVELOPE) if !self.selected => {
                Response::new(Vec::new(), sw::SM_MISSING)
            }
            _ if !self.selected => Response::new(Vec::new(), sw::FILE_NOT_FOUND),
            (sm::CLA, sm::INS_SECURE_CHANNEL) => answer(self.secure_channel(&cmd)),
            (sm::CLA_SM, sm::INS_ENVELOPE) => self.envelope(&cmd),
            (sm::CLA, _) => Response::new(Vec::new(), sw::SM_MISSING),
            _ => Response::new(Vec::new(), sw::CLA_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, cmd: &Command) -> Result<Vec<u8>> {
        if cmd.p1 != 0x04 || cmd.data != sm::AID {
            return Err(Error::not_found("application identifier"));
        }
        self.reset_volatile();
        self.selected = true;
        let mut w = Writer::new();
        let spki = self.device_key.public_key()?.spki_der().to_vec();
        w.nest(tag::CARD_INFO, |w| {
            w.put_u8(tag::VERSION, 1)
                .put(tag::PUBLIC_KEY, &spki)
                .put_u8(tag::FLAGS, 0);
        });
        Ok(w.finish())
    }

    fn secure_channel(&mut self, cmd: &Command) -> Result<Vec<u8>> {
        match cmd.p1 {
            0x00 => {
                // A new channel ends the old one and everything it authenticated.
                self.channel = None;
                if let Some(a) = self.app.take() {
                    a.logout();
                }
                self.device = soft::open_soft_device_with(&self.db, &self.opts)?;
                let (hs, answer) = CardHandshake::open(&self.device_key, &cmd.data)?;
                self.handshake = Some(hs);
                Ok(answer)
            }
            0x01 => {
                let hs = self
                    .handshake
                    .take()
                    .ok_or_else(|| Error::invalid_arg("no secure channel being opened"))?;
                self.channel = Some(hs.confirm(&cmd.data)?);
                Ok(Vec::new())
            }
            _ => Err(Error::invalid_arg("P1")),
        }
    }

    fn envelope(&mut self, cmd: &Command) -> Response {
        let Some(mut channel) = self.channel.take() else {
            return Response::new(Vec::new(), sw::SM_MISSING);
        };
        let out = match channel.unwrap(cmd) {
            Err(_) => Response::new(Vec::new(), sw::SM_INCORRECT),
            Ok((ctr, inner)) => {
                let r = match self.inner(&inner) {
                    Ok(d) => Response::new(d, sw::OK),
                    Err(e) => Response::new(Vec::new(), for_error(&e)),
                };
                self.record(
                    [inner.cla, inner.ins, inner.p1, inner.p2],
                    inner.data.len(),
                    &r,
                    true,
                );
                channel
                    .wrap(ctr, &r)
                    .unwrap_or_else(|_| Response::new(Vec::new(), sw::UNKNOWN))
            }
        };
        self.channel = Some(channel);
        out
    }

    fn app(&self) -> Result<&Arc<dyn Application>> {
        self.app
            .as_ref()
            .ok_or_else(|| Error::not_found("open application"))
    }

    fn inner(&mut self, c: &Command) -> Result<Vec<u8>> {
        if c.cla != sm::CLA {
            return Err(Error::Unsupported("class byte".into()));
        }
        let d = c.data.as_slice();
        let mut w = Writer::new();
        let fields = |allowed: &[u8]| Fields::parse(d, allowed);
        match c.ins {
            ins::GET_DEVICE_INFO => {
                let mut info = self.device.info()?;
                // What the virtual key is: software, and a USB key unless made fixed.
                info.hardware = false;
                info.removable = !self.fixed;
                wire::put_device_info(&mut w, &info);
            }
            ins::SET_LABEL => {
                let f = fields(&[tag::LABEL])?;
                self.device.set_label(f.str(tag::LABEL)?)?;
            }
            ins::GET_CHALLENGE => {
                let n = usize::from(c.p2);
                if !(1..=64).contains(&n) {
                    return Err(Error::invalid_arg("challenge length"));
                }
                return self.device.gen_random(n);
            }
            ins::DEVICE_AUTH => self.device.dev_auth(d)?,
            ins::CHANGE_DEV_AUTH_KEY => self.device.change_dev_auth_key(d)?,
            ins::VERIFY_PIN => {
                let f = fields(&[tag::PIN])?;
                let pin = Pin::new(f.get(tag::PIN)?.to_vec());
                self.app()?.verify_pin(wire::pin_type(c.p2)?, &pin)?;
            }
            ins::CHANGE_PIN => {
                let f = fields(&[tag::PIN])?;
                let pins: Vec<&[u8]> = f.all(tag::PIN).collect();
                let [old, new] = pins.as_slice() else {
                    return Err(Error::invalid_data("two PINs expected"));
                };
                self.app()?.change_pin(
                    wire::pin_type(c.p2)?,
                    &Pin::new(old.to_vec()),
                    &Pin::new(new.to_vec()),
                )?;
            }
            ins::UNBLOCK_PIN => {
                let f = fields(&[tag::PIN])?;
                let pins: Vec<&[u8]> = f.all(tag::PIN).collect();
                let [admin, new] = pins.as_slice() else {
                    return Err(Error::invalid_data("two PINs expected"));
                };
                self.app()?
                    .unblock_pin(&Pin::new(admin.to_vec()), &Pin::new(new.to_vec()))?;
            }
            ins::INIT_USER_PIN => {
                let f = fields(&[tag::PIN])?;
                self.app()?
                    .init_user_pin(&Pin::new(f.get(tag::PIN)?.to_vec()))?;
            }
            ins::GET_PIN_INFO => {
                let p = self.app()?.pin_info(wire::pin_type(c.p2)?)?;
                wire::put_pin_info(&mut w, &p);
            }
            ins::LOGOUT => {
                if let Some(a) = &self.app {
                    a.logout();
                }
            }
            ins::WIPE => {
                let f = fields(&[tag::PIN])?;
                self.app()?.wipe(&Pin::new(f.get(tag::PIN)?.to_vec()))?;
            }
            ins::LOGIN_STATE => {
                let s = self
                    .app
                    .as_ref()
                    .map_or(LoginState::None, |a| a.login_state());
                return Ok(vec![match s {
                    LoginState::None => 0,
                    LoginState::User => 1,
                    LoginState::Admin => 2,
                }]);
            }
            ins::LIST_APPS => {
                for a in self.device.list_apps()? {
                    w.put_str(tag::NAME, &a);
                }
            }
            ins::CREATE_APP => {
                let f = fields(&[tag::NAME, tag::PIN, tag::RETRIES, tag::RIGHTS])?;
                let pins: Vec<&[u8]> = f.all(tag::PIN).collect();
                let retries: Vec<&[u8]> = f.all(tag::RETRIES).collect();
                let ([admin, rest @ ..], [[ar], [ur]]) = (pins.as_slice(), retries.as_slice())
                else {
                    return Err(Error::invalid_data("application parameters"));
                };
                let user = match rest {
                    [] => None,
                    [u] => Some(Pin::new(u.to_vec())),
                    _ => return Err(Error::invalid_data("too many PINs")),
                };
                let mut p = AppParams::new(Pin::new(admin.to_vec()), user);
                p.admin_retries = u32::from(*ar);
                p.user_retries = u32::from(*ur);
                p.create_file_rights = Rights(u32::from(f.u8(tag::RIGHTS)?));
                self.device.create_app(f.str(tag::NAME)?, &p)?;
            }
            ins::DELETE_APP => {
                let f = fields(&[tag::NAME])?;
                let name = f.str(tag::NAME)?;
                if self.app.as_ref().is_some_and(|a| a.name() == name) {
                    self.app = None;
                }
                self.device.delete_app(name)?;
            }
            ins::OPEN_APP => {
                let f = fields(&[tag::NAME])?;
                if let Some(a) = self.app.take() {
                    a.logout();
                }
                self.app = Some(self.device.open_app(f.str(tag::NAME)?)?);
            }
            ins::APP_INFO => {
                let i = self.app()?.info()?;
                wire::put_pin_info(&mut w, &i.admin_pin);
                wire::put_pin_info(&mut w, &i.user_pin);
                w.put_u8(tag::RIGHTS, i.create_file_rights.0 as u8);
            }
            _ => return self.inner_app(c),
        }
        Ok(w.finish())
    }

    /// Containers, keys, crypto, files and objects: the commands of an open application.
    fn inner_app(&mut self, c: &Command) -> Result<Vec<u8>> {
        let app = self.app()?.clone();
        let d = c.data.as_slice();
        let mut w = Writer::new();
        let key_tags = [tag::KEY_ID, tag::NAME, tag::USAGE, tag::MECH, tag::DATA];
        match c.ins {
            ins::LIST_CONTAINERS => {
                for ci in app.list_containers()? {
                    wire::put_container(&mut w, &ci);
                }
            }
            ins::CREATE_CONTAINER => {
                let f = Fields::parse(d, &[tag::NAME, tag::ID])?;
                app.create_container(f.str(tag::NAME)?, f.opt(tag::ID)?)?;
            }
            ins::DELETE_CONTAINER => {
                let f = Fields::parse(d, &[tag::NAME])?;
                app.delete_container(f.str(tag::NAME)?)?;
            }
            ins::GENERATE_KEY => {
                let f = Fields::parse(d, &[tag::NAME, tag::USAGE, tag::ALG, tag::FLAG])?;
                let alg: KeyAlg = wire::alg(f.get(tag::ALG)?)?;
                let name = f.str(tag::NAME)?;
                let usage = wire::usage(f.u8(tag::USAGE)?)?;
                let pk = app.generate_key(name, usage, alg, f.flag(tag::FLAG)?)?;
                let id = app
                    .container(name)?
                    .key(usage)
                    .map(|k| k.id)
                    .ok_or_else(|| Error::Internal("generated key not found".into()))?;
                w.put(tag::PUBLIC_KEY, pk.spki_der())
                    .put_uint(tag::KEY_ID, id.0);
            }
            ins::IMPORT_KEY => {
                let f = Fields::parse(d, &[tag::NAME, tag::USAGE, tag::PKCS8, tag::FLAG])?;
                let der = Zeroizing::new(f.get(tag::PKCS8)?.to_vec());
                let sk = PrivateKey::from_pkcs8_der(&der)?;
                wire::alg_bytes(sk.alg())?;
                let id = app.import_key(
                    f.str(tag::NAME)?,
                    wire::usage(f.u8(tag::USAGE)?)?,
                    &sk,
                    f.flag(tag::FLAG)?,
                )?;
                w.put_uint(tag::KEY_ID, id.0);
            }
            ins::DELETE_KEY => {
                let f = Fields::parse(d, &[tag::KEY_ID])?;
                app.delete_key(KeyId(f.uint(tag::KEY_ID)?))?;
            }
            ins::IMPORT_CERT => {
                let f = Fields::parse(d, &[tag::NAME, tag::USAGE, tag::CERT])?;
                let id = app.import_cert(
                    f.str(tag::NAME)?,
                    wire::usage(f.u8(tag::USAGE)?)?,
                    f.get(tag::CERT)?,
                )?;
                w.put_uint(tag::CERT_ID, id.0);
            }
            ins::DELETE_CERT => {
                let f = Fields::parse(d, &[tag::CERT_ID])?;
                app.delete_cert(crate::model::CertId(f.uint(tag::CERT_ID)?))?;
            }
            ins::SIGN => {
                let f = Fields::parse(d, &key_tags)?;
                let mech = wire::sign_mech(f.get(tag::MECH)?)?;
                let sig = app.sign(&wire::key_ref(&f)?, &mech, f.get(tag::DATA)?)?;
                w.put(tag::DATA, &sig);
            }
            ins::DECRYPT => {
                let f = Fields::parse(d, &key_tags)?;
                let mech = wire::dec_mech(f.get(tag::MECH)?)?;
                let plain = app.decrypt(&wire::key_ref(&f)?, &mech, f.get(tag::DATA)?)?;
                w.put(tag::DATA, &plain);
            }
            ins::DERIVE => {
                let f = Fields::parse(d, &key_tags)?;
                let mech = wire::derive_mech(f.get(tag::MECH)?)?;
                let out = app.derive(&wire::key_ref(&f)?, &mech)?;
                w.put(tag::DATA, &out.secret);
                if let (Some(a), Some(b)) = (out.confirmation, out.expected_peer_confirmation) {
                    w.put(tag::DATA, &a).put(tag::DATA, &b);
                }
            }
            ins::LIST_FILES => {
                for fi in app.list_files()? {
                    wire::put_file_info(&mut w, &fi);
                }
            }
            ins::CREATE_FILE => {
                let f = Fields::parse(d, &[tag::NAME, tag::LENGTH, tag::RIGHTS])?;
                let r: Vec<&[u8]> = f.all(tag::RIGHTS).collect();
                let [[read], [write]] = r.as_slice() else {
                    return Err(Error::invalid_data("file rights"));
                };
                let size = u32::try_from(f.uint(tag::LENGTH)?)
                    .map_err(|_| Error::invalid_arg("file size"))?;
                app.create_file(
                    f.str(tag::NAME)?,
                    size,
                    Rights(u32::from(*read)),
                    Rights(u32::from(*write)),
                )?;
            }
            ins::DELETE_FILE => {
                let f = Fields::parse(d, &[tag::NAME])?;
                app.delete_file(f.str(tag::NAME)?)?;
            }
            ins::FILE_INFO => {
                let f = Fields::parse(d, &[tag::NAME])?;
                wire::put_file_info(&mut w, &app.file_info(f.str(tag::NAME)?)?);
            }
            ins::READ_FILE => {
                let f = Fields::parse(d, &[tag::NAME, tag::OFFSET, tag::LENGTH])?;
                let n = |t| {
                    f.uint(t)
                        .and_then(|v| u32::try_from(v).map_err(|_| Error::invalid_arg("length")))
                };
                let data = app.read_file(f.str(tag::NAME)?, n(tag::OFFSET)?, n(tag::LENGTH)?)?;
                w.put(tag::DATA, &data);
            }
            ins::WRITE_FILE => {
                let f = Fields::parse(d, &[tag::NAME, tag::OFFSET, tag::DATA])?;
                let off = u32::try_from(f.uint(tag::OFFSET)?)
                    .map_err(|_| Error::invalid_arg("offset"))?;
                app.write_file(f.str(tag::NAME)?, off, f.get(tag::DATA)?)?;
            }
            ins::CREATE_OBJECT => {
                let f = Fields::parse(d, &[tag::FLAG, tag::ATTR])?;
                let attrs = f
                    .all(tag::ATTR)
                    .map(wire::attr)
                    .collect::<Result<Vec<_>>>()?;
                let id = app.create_object(f.flag(tag::FLAG)?, &attrs)?;
                w.put_uint(tag::OBJECT_ID, id.0);
            }
            ins::LIST_OBJECTS => {
                for o in app.list_objects()? {
                    wire::put_object(&mut w, &o);
                }
            }
            ins::GET_OBJECT => {
                let f = Fields::parse(d, &[tag::OBJECT_ID])?;
                wire::put_object(&mut w, &app.get_object(ObjectId(f.uint(tag::OBJECT_ID)?))?);
            }
            ins::UPDATE_OBJECT => {
                let f = Fields::parse(d, &[tag::OBJECT_ID, tag::ATTR])?;
                let attrs = f
                    .all(tag::ATTR)
                    .map(wire::attr)
                    .collect::<Result<Vec<_>>>()?;
                app.update_object(ObjectId(f.uint(tag::OBJECT_ID)?), &attrs)?;
            }
            ins::DELETE_OBJECT => {
                let f = Fields::parse(d, &[tag::OBJECT_ID])?;
                app.delete_object(ObjectId(f.uint(tag::OBJECT_ID)?))?;
            }
            _ => return Err(Error::Unsupported("instruction".into())),
        }
        Ok(w.finish())
    }
}

impl CardHandler for VirtualKey {
    fn power_on(&mut self) -> Vec<u8> {
        self.reset_volatile();
        ATR.to_vec()
    }

    fn power_off(&mut self) {
        self.reset_volatile();
    }

    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.serve(apdu).encode()
    }
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn find_db(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let p = e.map_err(|e| io(dir, e))?.path();
        if p.extension().is_some_and(|x| x == DB_EXTENSION) {
            found.push(p);
        }
    }
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::Config {
            path: dir.to_path_buf(),
            detail: "a virtual key's directory holds more than one device database".into(),
        }),
    }
}

/// Reads the device key, or makes one (owner-only file) when there is none.
fn device_key(path: &Path) -> Result<PrivateKey> {
    match fs::read(path) {
        Ok(der) => {
            let der = Zeroizing::new(der);
            PrivateKey::from_pkcs8_der(&der).map_err(|e| Error::Corrupt {
                what: path.display().to_string(),
                detail: e.to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::generate(KeyAlg::Sm2)?;
            let der = key.to_pkcs8_der();
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| io(path, e))?;
            f.write_all(&der).map_err(|e| io(path, e))?;
            f.sync_all().map_err(|e| io(path, e))?;
            Ok(key)
        }
        Err(e) => Err(io(path, e)),
    }
}
