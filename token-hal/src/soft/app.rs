//! A soft application: PINs, containers with their keys and certificates, files and the
//! generic object store. Login state and the unwrapped master key live in the handle.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{OptionalExtension, Transaction, params};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::MAX_FILE_SIZE;
use super::secrets::{self, Key32, NewKek, PinWrap};
use super::store::{Store, TxResult, now};
use crate::crypto::{
    DecMech, DeriveMech, DeriveOutput, KeyAlg, PrivateKey, PublicKey, SignMech, aead, rng,
};
use crate::error::{Error, Result};
use crate::model::{
    AppInfo, AppParams, Attr, CertId, CertRecord, ContainerInfo, FileInfo, KeyId, KeyInfo, KeyRef,
    KeyState, KeyUsage, LoginState, ObjectId, ObjectRecord, Pin, PinInfo, PinType, Rights,
};
use crate::token::Application;

/// Longest application name, in bytes (a PKCS#11 token label).
pub(crate) const MAX_APP_NAME: usize = 32;
/// Longest container name, in bytes.
pub(crate) const MAX_CONTAINER_NAME: usize = 64;
/// Longest container id (CKA_ID), in bytes.
pub(crate) const MAX_CONTAINER_ID: usize = 255;
/// Longest file name, in bytes.
pub(crate) const MAX_FILE_NAME: usize = 32;

fn pin_code(t: PinType) -> i64 {
    match t {
        PinType::Admin => 0,
        PinType::User => 1,
    }
}

fn usage_code(u: KeyUsage) -> i64 {
    match u {
        KeyUsage::Sign => 0,
        KeyUsage::Encrypt => 1,
    }
}

fn usage_from(code: i64) -> rusqlite::Result<KeyUsage> {
    match code {
        0 => Ok(KeyUsage::Sign),
        1 => Ok(KeyUsage::Encrypt),
        _ => Err(rusqlite::Error::IntegralValueOutOfRange(0, code)),
    }
}

const STATE_ACTIVE: i64 = 0;
const STATE_RETIRED: i64 = 1;

/// The stored name of a key algorithm.
fn alg_name(alg: KeyAlg) -> String {
    match alg {
        KeyAlg::Sm2 => "sm2".into(),
        KeyAlg::EcP256 => "ec-p256".into(),
        KeyAlg::EcP384 => "ec-p384".into(),
        KeyAlg::EcP521 => "ec-p521".into(),
        KeyAlg::Ed25519 => "ed25519".into(),
        KeyAlg::Ed448 => "ed448".into(),
        KeyAlg::X25519 => "x25519".into(),
        KeyAlg::Rsa(bits) => format!("rsa-{bits}"),
    }
}

fn rights(v: i64) -> Rights {
    Rights(u32::try_from(v).unwrap_or(0))
}

fn name_check(what: &str, name: &str, max: usize) -> Result<()> {
    if name.is_empty() || name.len() > max || name.contains('\0') {
        return Err(Error::invalid_arg(format!(
            "{what} name must be 1 to {max} bytes, without NUL"
        )));
    }
    Ok(())
}

/// Checks an application name.
pub(crate) fn check_app_name(name: &str) -> Result<()> {
    name_check("application", name, MAX_APP_NAME)
}

fn check_retries(n: u32) -> Result<()> {
    if n == 0 || n > 255 {
        return Err(Error::invalid_arg("PIN retry limit must be 1..=255"));
    }
    Ok(())
}

/// What a new application's rows hold, computed before the write lock is taken.
pub(crate) struct AppRows {
    generation: [u8; 16],
    admin: PinWrap,
    admin_retries: u32,
    user: Option<PinWrap>,
    user_retries: u32,
    create_file_rights: Rights,
}

/// Checks `params`, makes a master key and wraps it under both PINs.
pub(crate) fn create_app_rows(params: &AppParams, iterations: u32) -> Result<AppRows> {
    params.admin_pin.check_policy()?;
    if let Some(p) = &params.user_pin {
        p.check_policy()?;
    }
    check_retries(params.admin_retries)?;
    check_retries(params.user_retries)?;
    let mut generation = [0u8; 16];
    rng::fill(&mut generation)?;
    let mk = secrets::random_key()?;
    let admin =
        NewKek::derive(&params.admin_pin, iterations)?.wrap(&mk, &generation, PinType::Admin)?;
    let user = match &params.user_pin {
        Some(p) => Some(NewKek::derive(p, iterations)?.wrap(&mk, &generation, PinType::User)?),
        None => None,
    };
    Ok(AppRows {
        generation,
        admin,
        admin_retries: params.admin_retries,
        user,
        user_retries: params.user_retries,
        create_file_rights: params.create_file_rights,
    })
}

impl AppRows {
    pub(crate) fn insert(&self, tx: &Transaction<'_>, name: &str) -> TxResult<()> {
        tx.execute(
            "INSERT INTO app (name, generation, epoch, create_file_rights, created_at)
             VALUES (?1, ?2, 0, ?3, ?4)",
            params![
                name,
                &self.generation[..],
                i64::from(self.create_file_rights.0),
                now()
            ],
        )?;
        let app_id = tx.last_insert_rowid();
        insert_pin(
            tx,
            app_id,
            PinType::Admin,
            self.admin_retries,
            Some(&self.admin),
        )?;
        insert_pin(
            tx,
            app_id,
            PinType::User,
            self.user_retries,
            self.user.as_ref(),
        )?;
        Ok(())
    }
}

fn insert_pin(
    tx: &Transaction<'_>,
    app_id: i64,
    t: PinType,
    retries: u32,
    wrap: Option<&PinWrap>,
) -> TxResult<()> {
    tx.execute(
        "INSERT INTO pin (app_id, pin_type, max_retries, remaining, default_pin,
                          kdf, iterations, salt, wrapped_mk)
         VALUES (?1, ?2, ?3, ?3, 1, ?4, ?5, ?6, ?7)",
        params![
            app_id,
            pin_code(t),
            i64::from(retries),
            wrap.map(|w| w.kdf.as_str()),
            wrap.map(|w| i64::from(w.iterations)),
            wrap.map(|w| w.salt.as_slice()),
            wrap.map(|w| w.wrapped.as_slice()),
        ],
    )?;
    Ok(())
}

fn store_wrap(tx: &Transaction<'_>, app_id: i64, t: PinType, wrap: &PinWrap) -> TxResult<()> {
    tx.execute(
        "UPDATE pin SET kdf = ?3, iterations = ?4, salt = ?5, wrapped_mk = ?6,
                        remaining = max_retries, default_pin = 0
         WHERE app_id = ?1 AND pin_type = ?2",
        params![
            app_id,
            pin_code(t),
            wrap.kdf,
            i64::from(wrap.iterations),
            wrap.salt,
            wrap.wrapped
        ],
    )?;
    Ok(())
}

/// The application row as read at the start of a call.
struct AppRow {
    id: i64,
    epoch: i64,
    create_file_rights: Rights,
}

/// A PIN row.
struct PinRow {
    max_retries: u32,
    remaining: u32,
    default_pin: bool,
    wrap: Option<PinWrap>,
}

impl PinRow {
    fn info(&self) -> PinInfo {
        PinInfo {
            max_retries: self.max_retries,
            remaining: self.remaining,
            default_pin: self.default_pin,
            initialized: self.wrap.is_some(),
        }
    }
}

/// A private key already unsealed and parsed, kept while the user is logged in. It is
/// used only while its row still holds the same sealed bytes (a fresh nonce makes every
/// seal differ), so a key replaced or deleted elsewhere is never used from the cache.
struct CachedKey {
    sealed: Vec<u8>,
    key: Arc<PrivateKey>,
}

/// How many parsed keys a handle keeps.
const KEY_CACHE_MAX: usize = 64;

/// A key reference resolved at a database version: while nothing in the database
/// changed, the same reference finds the same key, so the hot path (sign, decrypt) skips
/// the lookup.
struct Resolved {
    key: KeyRef,
    version: (i64, u64),
    state: i64,
    private: Arc<PrivateKey>,
}

/// Login state of a handle.
struct Session {
    login: LoginState,
    /// Every login and every end of one ([`Application::login_changes`]).
    changes: u64,
    mk: Option<Key32>,
    epoch: i64,
    keys: HashMap<i64, CachedKey>,
    resolved: Vec<Resolved>,
}

impl Session {
    fn clear(&mut self) {
        self.changes += 1;
        self.login = LoginState::None;
        self.mk = None;
        self.keys.clear();
        self.resolved.clear();
    }
}

/// A key row resolved for use.
struct KeyUse {
    id: i64,
    state: i64,
    sealed: Vec<u8>,
}

/// A soft application handle. Its login state is its own; other handles (and other
/// processes) log in separately.
pub struct SoftApp {
    store: Arc<Store>,
    name: String,
    app_id: i64,
    generation: Vec<u8>,
    session: Mutex<Session>,
    /// `session.login`, republished whenever a [`SessionGuard`] is released, so that
    /// [`Application::login_state`] (asked on every use of a private key by PKCS#11) is
    /// one atomic load instead of a lock round trip.
    login: AtomicU8,
}

/// The lock on a [`SoftApp`]'s session. Whatever the holder changed, the login state is
/// published to `SoftApp::login` before the lock is released.
struct SessionGuard<'a> {
    guard: MutexGuard<'a, Session>,
    published: &'a AtomicU8,
}

impl std::ops::Deref for SessionGuard<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.guard
    }
}

impl std::ops::DerefMut for SessionGuard<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.guard
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.published
            .store(login_code(self.guard.login), Ordering::Release);
    }
}

fn login_code(l: LoginState) -> u8 {
    match l {
        LoginState::None => 0,
        LoginState::User => 1,
        LoginState::Admin => 2,
    }
}

fn login_of(code: u8) -> LoginState {
    match code {
        1 => LoginState::User,
        2 => LoginState::Admin,
        _ => LoginState::None,
    }
}

impl std::fmt::Debug for SoftApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SoftApp({:?} on {})", self.name, self.store.serial())
    }
}

impl SoftApp {
    pub(crate) fn open(store: Arc<Store>, name: &str) -> Result<Self> {
        let row: Option<(i64, Vec<u8>, i64)> = store.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT id, generation, epoch FROM app WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?)
        })?;
        let (app_id, generation, epoch) =
            row.ok_or_else(|| Error::not_found(format!("application {name:?}")))?;
        Ok(Self {
            store,
            name: name.to_owned(),
            app_id,
            generation,
            session: Mutex::new(Session {
                login: LoginState::None,
                changes: 0,
                mk: None,
                epoch,
                keys: HashMap::new(),
                resolved: Vec::new(),
            }),
            login: AtomicU8::new(login_code(LoginState::None)),
        })
    }

    fn session(&self) -> SessionGuard<'_> {
        SessionGuard {
            guard: self.session.lock().unwrap_or_else(|p| p.into_inner()),
            published: &self.login,
        }
    }

    fn not_found(&self) -> Error {
        Error::not_found(format!("application {:?}", self.name))
    }

    /// The application row, checking that it is still the application this handle
    /// opened (not deleted, not deleted and re-created by someone else).
    fn app(&self, tx: &Transaction<'_>) -> TxResult<AppRow> {
        let row: Option<(i64, Vec<u8>, i64, i64)> = tx
            .prepare_cached(
                "SELECT id, generation, epoch, create_file_rights FROM app WHERE name = ?1",
            )?
            .query_row([&self.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        match row {
            Some((id, generation, epoch, cfr))
                if id == self.app_id && generation == self.generation =>
            {
                Ok(AppRow {
                    id,
                    epoch,
                    create_file_rights: rights(cfr),
                })
            }
            _ => {
                self.session().clear();
                Err(self.not_found().into())
            }
        }
    }

    /// Who is logged in, given the application's current epoch. A wipe elsewhere ends
    /// this handle's login.
    fn login_now(&self, app: &AppRow) -> LoginState {
        let mut s = self.session();
        if s.epoch != app.epoch {
            s.clear();
            s.epoch = app.epoch;
        }
        s.login
    }

    /// The master key, if the user is logged in.
    fn user_mk(&self, app: &AppRow) -> TxResult<Key32> {
        if self.login_now(app) != LoginState::User {
            return Err(Error::NotLoggedIn.into());
        }
        self.session()
            .mk
            .clone()
            .ok_or_else(|| Error::NotLoggedIn.into())
    }

    fn pin_row(&self, tx: &Transaction<'_>, app: &AppRow, t: PinType) -> TxResult<PinRow> {
        let row = tx
            .query_row(
                "SELECT max_retries, remaining, default_pin, kdf, iterations, salt, wrapped_mk
                 FROM pin WHERE app_id = ?1 AND pin_type = ?2",
                params![app.id, pin_code(t)],
                |r| {
                    let wrapped: Option<Vec<u8>> = r.get(6)?;
                    let wrap = match wrapped {
                        Some(wrapped) => Some(PinWrap {
                            kdf: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                            iterations: r.get(4)?,
                            salt: r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default(),
                            wrapped,
                        }),
                        None => None,
                    };
                    Ok(PinRow {
                        max_retries: r.get(0)?,
                        remaining: r.get(1)?,
                        default_pin: r.get(2)?,
                        wrap,
                    })
                },
            )
            .optional()?;
        row.ok_or_else(|| {
            Error::Corrupt {
                what: self.store.path().display().to_string(),
                detail: format!("PIN record of application {:?} missing", self.name),
            }
            .into()
        })
    }

    /// One PIN attempt inside the caller's write transaction: the counter goes down
    /// first, and back up to the limit on success. The outer `Err` rolls back; the inner
    /// one (a wrong or locked PIN) is committed.
    fn attempt(
        &self,
        tx: &Transaction<'_>,
        app: &AppRow,
        t: PinType,
        pin: &Pin,
    ) -> TxResult<Result<Key32>> {
        let row = self.pin_row(tx, app, t)?;
        let Some(wrap) = &row.wrap else {
            return Ok(Err(Error::PinNotInitialized));
        };
        if row.remaining == 0 {
            return Ok(Err(Error::PinLocked));
        }
        let left = row.remaining - 1;
        tx.execute(
            "UPDATE pin SET remaining = ?3 WHERE app_id = ?1 AND pin_type = ?2",
            params![app.id, pin_code(t), left],
        )?;
        match secrets::unwrap_mk(wrap, pin, &self.generation, t)? {
            Some(mk) => {
                tx.execute(
                    "UPDATE pin SET remaining = max_retries WHERE app_id = ?1 AND pin_type = ?2",
                    params![app.id, pin_code(t)],
                )?;
                Ok(Ok(mk))
            }
            None => {
                tracing::warn!(app = %self.name, pin = ?t, retries_left = left, "wrong PIN");
                Ok(Err(Error::PinIncorrect { retries_left: left }))
            }
        }
    }

    fn container_id(&self, tx: &Transaction<'_>, app: &AppRow, name: &str) -> TxResult<i64> {
        tx.query_row(
            "SELECT id FROM container WHERE app_id = ?1 AND name = ?2",
            params![app.id, name],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| Error::not_found(format!("container {name:?}")).into())
    }

    fn load_keys(&self, tx: &Transaction<'_>, container_id: i64) -> TxResult<Vec<KeyInfo>> {
        let mut st = tx.prepare(
            "SELECT id, usage, state, spki FROM key WHERE container_id = ?1 ORDER BY id DESC",
        )?;
        let rows = st
            .query_map([container_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    usage_from(r.get(1)?)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut cst = tx.prepare(
            "SELECT id, der, current, imported_at FROM cert WHERE key_id = ?1
             ORDER BY current DESC, imported_at DESC, id DESC",
        )?;
        let mut keys = Vec::with_capacity(rows.len());
        for (id, usage, state, spki) in rows {
            let public_key = PublicKey::from_spki_der(&spki).map_err(|e| Error::Corrupt {
                what: format!("key {id} in {}", self.store.path().display()),
                detail: e.to_string(),
            })?;
            let certs = cst
                .query_map([id], |r| {
                    Ok(CertRecord {
                        id: CertId(r.get::<_, i64>(0)?.max(0) as u64),
                        der: r.get(1)?,
                        current: r.get(2)?,
                        imported_at: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            keys.push(KeyInfo {
                id: KeyId(u64::try_from(id).unwrap_or_default()),
                alg: public_key.alg(),
                usage,
                state: if state == STATE_ACTIVE {
                    KeyState::Active
                } else {
                    KeyState::Retired
                },
                public_key,
                certs,
            });
        }
        Ok(keys)
    }

    fn load_container(
        &self,
        tx: &Transaction<'_>,
        id: i64,
        name: String,
        ckaid: Vec<u8>,
    ) -> TxResult<ContainerInfo> {
        let mut info = ContainerInfo {
            name,
            id: ckaid,
            sign: None,
            enc: None,
            retired: Vec::new(),
        };
        for k in self.load_keys(tx, id)? {
            match (k.state, k.usage) {
                (KeyState::Active, KeyUsage::Sign) => info.sign = Some(k),
                (KeyState::Active, KeyUsage::Encrypt) => info.enc = Some(k),
                (KeyState::Retired, _) => info.retired.push(k),
            }
        }
        Ok(info)
    }

    /// Stores a private key in a container slot, applying the `rekey` rule.
    fn store_key(
        &self,
        container: &str,
        usage: KeyUsage,
        key: &PrivateKey,
        rekey: bool,
    ) -> Result<KeyId> {
        let spki = key.public_key()?.spki_der().to_vec();
        let pkcs8 = key.to_pkcs8_der();
        let alg = alg_name(key.alg());
        let id = self.store.write(|tx| {
            let app = self.app(tx)?;
            let mk = self.user_mk(&app)?;
            let cid = self.container_id(tx, &app, container)?;
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT id FROM key WHERE container_id = ?1 AND usage = ?2 AND state = 0",
                    params![cid, usage_code(usage)],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(old) = existing {
                if !rekey {
                    return Err(Error::already_exists(format!(
                        "{} key pair in container {container:?}",
                        usage.as_str()
                    ))
                    .into());
                }
                match usage {
                    // The old encryption pair stays, decrypt-only, with its certificates.
                    KeyUsage::Encrypt => {
                        tx.execute(
                            "UPDATE key SET state = ?2 WHERE id = ?1",
                            params![old, STATE_RETIRED],
                        )?;
                    }
                    KeyUsage::Sign => {
                        tx.execute("DELETE FROM key WHERE id = ?1", [old])?;
                    }
                }
            }
            tx.execute(
                "INSERT INTO key (container_id, usage, state, alg, spki, sealed_pkcs8, created_at)
                 VALUES (?1, ?2, 0, ?3, ?4, x'', ?5)",
                params![cid, usage_code(usage), alg, spki, now()],
            )?;
            let id = tx.last_insert_rowid();
            let sealed = aead::seal(&mk, &secrets::key_aad(&self.generation, id), &pkcs8)?;
            tx.execute(
                "UPDATE key SET sealed_pkcs8 = ?2 WHERE id = ?1",
                params![id, sealed],
            )?;
            Ok(id)
        })?;
        tracing::info!(app = %self.name, container, usage = usage.as_str(), key = id, "stored key");
        Ok(KeyId(u64::try_from(id).unwrap_or_default()))
    }

    /// Checks the user is logged in (for calls that do slow work before their transaction).
    fn check_user(&self) -> Result<()> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            self.user_mk(&app)?;
            Ok(())
        })
    }

    /// Finds a key, checks login, and returns its private key and state.
    fn private_key(&self, key: &KeyRef) -> Result<(Arc<PrivateKey>, i64)> {
        let version = self.store.version()?;
        {
            let s = self.session();
            if s.login == LoginState::User
                && let Some(r) = s
                    .resolved
                    .iter()
                    .find(|r| r.version == version && r.key == *key)
            {
                return Ok((r.private.clone(), r.state));
            }
        }
        let (private, state) = self.lookup_private_key(key)?;
        let mut s = self.session();
        if s.login == LoginState::User {
            if s.resolved.len() >= KEY_CACHE_MAX {
                s.resolved.clear();
            }
            s.resolved.retain(|r| r.version == version);
            s.resolved.push(Resolved {
                key: key.clone(),
                version,
                state,
                private: private.clone(),
            });
        }
        Ok((private, state))
    }

    /// [`Self::private_key`] through the database.
    fn lookup_private_key(&self, key: &KeyRef) -> Result<(Arc<PrivateKey>, i64)> {
        let row = |r: &rusqlite::Row<'_>| {
            Ok(KeyUse {
                id: r.get(0)?,
                state: r.get(1)?,
                sealed: r.get(2)?,
            })
        };
        let (mk, k) = self.store.read(|tx| {
            let app = self.app(tx)?;
            let mk = self.user_mk(&app)?;
            let k = match key {
                KeyRef::Container { container, usage } => tx
                    .prepare_cached(
                        "SELECT k.id, k.state, k.sealed_pkcs8 FROM key k
                         JOIN container c ON k.container_id = c.id
                         WHERE c.app_id = ?1 AND c.name = ?2 AND k.usage = ?3 AND k.state = 0",
                    )?
                    .query_row(params![app.id, container, usage_code(*usage)], row)
                    .optional()?
                    .ok_or_else(|| {
                        Error::not_found(format!(
                            "{} key in container {container:?}",
                            usage.as_str()
                        ))
                    })?,
                KeyRef::Id(KeyId(id)) => {
                    let id = i64::try_from(*id).map_err(|_| Error::not_found("key"))?;
                    tx.prepare_cached(
                        "SELECT k.id, k.state, k.sealed_pkcs8 FROM key k
                         JOIN container c ON k.container_id = c.id
                         WHERE k.id = ?1 AND c.app_id = ?2",
                    )?
                    .query_row(params![id, app.id], row)
                    .optional()?
                    .ok_or_else(|| Error::not_found(format!("key {id}")))?
                }
            };
            Ok((mk, k))
        })?;
        if let Some(c) = self.session().keys.get(&k.id)
            && c.sealed == k.sealed
        {
            return Ok((c.key.clone(), k.state));
        }
        let pkcs8 = aead::open(&mk, &secrets::key_aad(&self.generation, k.id), &k.sealed).map_err(
            |_| Error::Corrupt {
                what: format!("key {} in {}", k.id, self.store.path().display()),
                detail: "the sealed private key fails its integrity check".into(),
            },
        )?;
        let parsed = Arc::new(PrivateKey::from_pkcs8_der(&pkcs8)?);
        let mut s = self.session();
        // Only while still logged in with the key this was opened with.
        if s.login == LoginState::User
            && s.mk
                .as_ref()
                .is_some_and(|m| bool::from(m[..].ct_eq(&mk[..])))
        {
            if s.keys.len() >= KEY_CACHE_MAX {
                s.keys.clear();
            }
            s.keys.insert(
                k.id,
                CachedKey {
                    sealed: k.sealed,
                    key: parsed.clone(),
                },
            );
        }
        Ok((parsed, k.state))
    }

    /// Deletes the row `id` of a key or certificate of this application (`sql` takes the
    /// id and the application id), with user login; NotFound when nothing matched.
    fn delete_owned(&self, what: &str, id: u64, sql: &str) -> Result<()> {
        let id = i64::try_from(id).map_err(|_| Error::not_found(what))?;
        self.store.write(|tx| {
            let app = self.app(tx)?;
            self.user_mk(&app)?;
            if tx.execute(sql, params![id, app.id])? == 0 {
                return Err(Error::not_found(format!("{what} {id}")).into());
            }
            Ok(())
        })
    }

    fn file_rights(
        &self,
        tx: &Transaction<'_>,
        app: &AppRow,
        name: &str,
    ) -> TxResult<(Rights, Rights, Vec<u8>)> {
        tx.query_row(
            "SELECT read_rights, write_rights, data FROM file WHERE app_id = ?1 AND name = ?2",
            params![app.id, name],
            |r| Ok((rights(r.get(0)?), rights(r.get(1)?), r.get(2)?)),
        )
        .optional()?
        .ok_or_else(|| Error::not_found(format!("file {name:?}")).into())
    }

    fn object_private(
        &self,
        tx: &Transaction<'_>,
        app: &AppRow,
        id: ObjectId,
        login: LoginState,
    ) -> TxResult<(i64, bool)> {
        let oid = i64::try_from(id.0).map_err(|_| Error::not_found(format!("object {}", id.0)))?;
        let private: Option<bool> = tx
            .query_row(
                "SELECT private FROM object WHERE id = ?1 AND app_id = ?2",
                params![oid, app.id],
                |r| r.get(0),
            )
            .optional()?;
        match private {
            // Private objects are invisible without user login.
            Some(p) if !p || login == LoginState::User => Ok((oid, p)),
            _ => Err(Error::not_found(format!("object {}", id.0)).into()),
        }
    }

    fn load_object(
        &self,
        tx: &Transaction<'_>,
        oid: i64,
        private: bool,
        mk: Option<&Key32>,
    ) -> TxResult<ObjectRecord> {
        let mut st = tx.prepare_cached(
            "SELECT ty, sensitive, value FROM attr WHERE object_id = ?1 ORDER BY ty",
        )?;
        let rows = st
            .query_map([oid], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut attrs = Vec::with_capacity(rows.len());
        for (ty, sensitive, value) in rows {
            let ty = ty as u64;
            let value = if !sensitive {
                Zeroizing::new(value)
            } else if let Some(mk) = mk {
                aead::open(mk, &secrets::attr_aad(&self.generation, oid, ty), &value).map_err(
                    |_| Error::Corrupt {
                        what: format!("object {oid} in {}", self.store.path().display()),
                        detail: format!("sealed attribute {ty:#x} fails its integrity check"),
                    },
                )?
            } else {
                Zeroizing::new(Vec::new())
            };
            attrs.push(Attr {
                ty,
                value,
                sensitive,
            });
        }
        Ok(ObjectRecord {
            id: ObjectId(u64::try_from(oid).unwrap_or_default()),
            private,
            attrs,
        })
    }

    fn put_attrs(
        &self,
        tx: &Transaction<'_>,
        oid: i64,
        attrs: &[Attr],
        mk: Option<&Key32>,
    ) -> TxResult<()> {
        for a in attrs {
            let ty = a.ty as i64;
            let value = if a.sensitive {
                let mk = mk.ok_or(Error::NotLoggedIn)?;
                aead::seal(
                    mk,
                    &secrets::attr_aad(&self.generation, oid, a.ty),
                    &a.value,
                )?
            } else {
                a.value.to_vec()
            };
            tx.execute(
                "INSERT OR REPLACE INTO attr (object_id, ty, sensitive, value) VALUES (?1, ?2, ?3, ?4)",
                params![oid, ty, a.sensitive, value],
            )?;
        }
        Ok(())
    }
}

/// The login a file right needs: `NotLoggedIn` when nobody is, `AccessDenied` otherwise.
fn check_right(right: Rights, login: LoginState, what: &str) -> Result<()> {
    if right.allows(login) {
        Ok(())
    } else if right == Rights::NEVER || login != LoginState::None {
        Err(Error::AccessDenied(format!("{what} (needs {right:?})")))
    } else {
        Err(Error::NotLoggedIn)
    }
}

fn check_dup_types(attrs: &[Attr]) -> Result<()> {
    let mut seen = HashSet::new();
    for a in attrs {
        if !seen.insert(a.ty) {
            return Err(Error::invalid_arg(format!(
                "attribute {:#x} given twice",
                a.ty
            )));
        }
    }
    Ok(())
}

/// Same key: same algorithm and the same point or modulus (SPKI encodings of SM2 keys
/// differ between tools).
fn same_public_key(a: &PublicKey, b: &PublicKey) -> bool {
    if a.spki_der() == b.spki_der() {
        return true;
    }
    if a.alg() != b.alg() {
        return false;
    }
    match (a.ec_point(), b.ec_point()) {
        (Some(x), Some(y)) => return x == y,
        (None, None) => {}
        _ => return false,
    }
    match (a.rsa_components(), b.rsa_components()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Certificate bytes as DER (PEM accepted).
fn cert_der(bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid_data("certificate is neither DER nor PEM"))?;
    let (label, der) = pem_rfc7468::decode_vec(text.trim().as_bytes())
        .map_err(|e| Error::invalid_data(format!("certificate PEM: {e}")))?;
    if label != "CERTIFICATE" {
        return Err(Error::invalid_data(format!(
            "expected a CERTIFICATE, found {label}"
        )));
    }
    Ok(der)
}

impl Application for SoftApp {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> Result<AppInfo> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            Ok(AppInfo {
                name: self.name.clone(),
                create_file_rights: app.create_file_rights,
                admin_pin: self.pin_row(tx, &app, PinType::Admin)?.info(),
                user_pin: self.pin_row(tx, &app, PinType::User)?.info(),
            })
        })
    }

    fn pin_info(&self, pin_type: PinType) -> Result<PinInfo> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            Ok(self.pin_row(tx, &app, pin_type)?.info())
        })
    }

    fn verify_pin(&self, pin_type: PinType, pin: &Pin) -> Result<()> {
        pin.check_policy()?;
        let (mk, epoch) = self
            .store
            .write(|tx| {
                let app = self.app(tx)?;
                Ok(self
                    .attempt(tx, &app, pin_type, pin)?
                    .map(|mk| (mk, app.epoch)))
            })
            .and_then(|r| r)?;
        let mut s = self.session();
        s.changes += 1;
        s.login = match pin_type {
            PinType::Admin => LoginState::Admin,
            PinType::User => LoginState::User,
        };
        s.mk = Some(mk);
        s.epoch = epoch;
        tracing::debug!(app = %self.name, pin = ?pin_type, "logged in");
        Ok(())
    }

    fn change_pin(&self, pin_type: PinType, old: &Pin, new: &Pin) -> Result<()> {
        old.check_policy()?;
        new.check_policy()?;
        let kek = NewKek::derive(new, self.store.opts().kdf_iterations)?;
        self.store
            .write(|tx| {
                let app = self.app(tx)?;
                Ok(match self.attempt(tx, &app, pin_type, old)? {
                    Ok(mk) => {
                        let wrap = kek.wrap(&mk, &self.generation, pin_type)?;
                        store_wrap(tx, app.id, pin_type, &wrap)?;
                        Ok(())
                    }
                    Err(e) => Err(e),
                })
            })
            .and_then(|r| r)
    }

    fn unblock_pin(&self, admin_pin: &Pin, new_user_pin: &Pin) -> Result<()> {
        admin_pin.check_policy()?;
        new_user_pin.check_policy()?;
        let kek = NewKek::derive(new_user_pin, self.store.opts().kdf_iterations)?;
        self.store
            .write(|tx| {
                let app = self.app(tx)?;
                Ok(match self.attempt(tx, &app, PinType::Admin, admin_pin)? {
                    Ok(mk) => {
                        let wrap = kek.wrap(&mk, &self.generation, PinType::User)?;
                        store_wrap(tx, app.id, PinType::User, &wrap)?;
                        Ok(())
                    }
                    Err(e) => Err(e),
                })
            })
            .and_then(|r| r)
    }

    fn init_user_pin(&self, new_user_pin: &Pin) -> Result<()> {
        new_user_pin.check_policy()?;
        let kek = NewKek::derive(new_user_pin, self.store.opts().kdf_iterations)?;
        self.store.write(|tx| {
            let app = self.app(tx)?;
            if self.login_now(&app) != LoginState::Admin {
                return Err(Error::NotLoggedIn.into());
            }
            let mk = self.session().mk.clone().ok_or(Error::NotLoggedIn)?;
            let wrap = kek.wrap(&mk, &self.generation, PinType::User)?;
            store_wrap(tx, app.id, PinType::User, &wrap)?;
            Ok(())
        })
    }

    fn wipe(&self, admin_pin: &Pin) -> Result<()> {
        admin_pin.check_policy()?;
        // A wipe also replaces the master key, so nothing sealed before it (or a copy of
        // an old user-PIN wrap) opens anything made after it.
        let kek = NewKek::derive(admin_pin, self.store.opts().kdf_iterations)?;
        let new_mk = secrets::random_key()?;
        self.store
            .write(|tx| {
                let app = self.app(tx)?;
                Ok(match self.attempt(tx, &app, PinType::Admin, admin_pin)? {
                    Ok(_old) => {
                        tx.execute("DELETE FROM container WHERE app_id = ?1", [app.id])?;
                        tx.execute("DELETE FROM file WHERE app_id = ?1", [app.id])?;
                        tx.execute("DELETE FROM object WHERE app_id = ?1", [app.id])?;
                        let wrap = kek.wrap(&new_mk, &self.generation, PinType::Admin)?;
                        store_wrap(tx, app.id, PinType::Admin, &wrap)?;
                        tx.execute(
                            "UPDATE pin SET kdf = NULL, iterations = NULL, salt = NULL,
                                            wrapped_mk = NULL, remaining = max_retries,
                                            default_pin = 1
                             WHERE app_id = ?1 AND pin_type = 1",
                            [app.id],
                        )?;
                        tx.execute("UPDATE app SET epoch = epoch + 1 WHERE id = ?1", [app.id])?;
                        Ok(())
                    }
                    Err(e) => Err(e),
                })
            })
            .and_then(|r| r)?;
        self.session().clear();
        tracing::info!(app = %self.name, "wiped application");
        Ok(())
    }

    fn logout(&self) {
        self.session().clear();
    }

    fn login_state(&self) -> LoginState {
        login_of(self.login.load(Ordering::Acquire))
    }

    fn login_changes(&self) -> u64 {
        self.session().changes
    }

    fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            let rows = {
                let mut st = tx.prepare(
                    "SELECT id, name, ckaid FROM container WHERE app_id = ?1 ORDER BY name",
                )?;
                st.query_map([app.id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            rows.into_iter()
                .map(|(id, name, ckaid)| self.load_container(tx, id, name, ckaid))
                .collect()
        })
    }

    fn container(&self, name: &str) -> Result<ContainerInfo> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            let (id, ckaid): (i64, Vec<u8>) = tx
                .query_row(
                    "SELECT id, ckaid FROM container WHERE app_id = ?1 AND name = ?2",
                    params![app.id, name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| Error::not_found(format!("container {name:?}")))?;
            self.load_container(tx, id, name.to_owned(), ckaid)
        })
    }

    fn create_container(&self, name: &str, id: Option<&[u8]>) -> Result<ContainerInfo> {
        name_check("container", name, MAX_CONTAINER_NAME)?;
        // docs/mapping.md: without a CKA_ID, the id is the name's UTF-8 bytes.
        let ckaid = id.unwrap_or(name.as_bytes()).to_vec();
        if ckaid.is_empty() || ckaid.len() > MAX_CONTAINER_ID {
            return Err(Error::invalid_arg(format!(
                "container id must be 1 to {MAX_CONTAINER_ID} bytes"
            )));
        }
        self.store.write(|tx| {
            let app = self.app(tx)?;
            self.user_mk(&app)?;
            let by_name: Option<i64> = tx
                .query_row(
                    "SELECT id FROM container WHERE app_id = ?1 AND name = ?2",
                    params![app.id, name],
                    |r| r.get(0),
                )
                .optional()?;
            if by_name.is_some() {
                return Err(Error::already_exists(format!("container {name:?}")).into());
            }
            let by_id: Option<String> = tx
                .query_row(
                    "SELECT name FROM container WHERE app_id = ?1 AND ckaid = ?2",
                    params![app.id, ckaid],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(other) = by_id {
                return Err(Error::already_exists(format!(
                    "container id {} (used by container {other:?})",
                    hex::encode(&ckaid)
                ))
                .into());
            }
            tx.execute(
                "INSERT INTO container (app_id, name, ckaid, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![app.id, name, ckaid, now()],
            )?;
            Ok(ContainerInfo {
                name: name.to_owned(),
                id: ckaid.clone(),
                sign: None,
                enc: None,
                retired: Vec::new(),
            })
        })
    }

    fn delete_container(&self, name: &str) -> Result<()> {
        self.store.write(|tx| {
            let app = self.app(tx)?;
            self.user_mk(&app)?;
            let n = tx.execute(
                "DELETE FROM container WHERE app_id = ?1 AND name = ?2",
                params![app.id, name],
            )?;
            if n == 0 {
                return Err(Error::not_found(format!("container {name:?}")).into());
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
        // Fail early rather than after a slow RSA generation; checked again when stored.
        self.check_user()?;
        let key = PrivateKey::generate(alg)?;
        self.store_key(container, usage, &key, rekey)?;
        key.public_key()
    }

    fn import_key(
        &self,
        container: &str,
        usage: KeyUsage,
        key: &PrivateKey,
        rekey: bool,
    ) -> Result<KeyId> {
        self.store_key(container, usage, key, rekey)
    }

    fn delete_key(&self, key: KeyId) -> Result<()> {
        self.delete_owned(
            "key",
            key.0,
            "DELETE FROM key WHERE id = ?1 AND container_id IN
               (SELECT id FROM container WHERE app_id = ?2)",
        )?;
        tracing::info!(app = %self.name, key = key.0, "deleted key");
        Ok(())
    }

    fn export_key(&self, key: KeyId) -> Result<PrivateKey> {
        let (pk, _) = self.private_key(&KeyRef::Id(key))?;
        PrivateKey::from_pkcs8_der(&pk.to_pkcs8_der())
    }

    fn public_key(&self, container: &str, usage: KeyUsage) -> Result<PublicKey> {
        let spki: Vec<u8> = self.store.read(|tx| {
            let app = self.app(tx)?;
            let cid = self.container_id(tx, &app, container)?;
            Ok(tx
                .query_row(
                    "SELECT spki FROM key WHERE container_id = ?1 AND usage = ?2 AND state = 0",
                    params![cid, usage_code(usage)],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| {
                    Error::not_found(format!("{} key in container {container:?}", usage.as_str()))
                })?)
        })?;
        PublicKey::from_spki_der(&spki)
    }

    fn import_cert(&self, container: &str, usage: KeyUsage, der: &[u8]) -> Result<CertId> {
        let der = cert_der(der)?;
        let cert_key = PublicKey::from_cert(&der)?;
        let id = self.store.write(|tx| {
            let app = self.app(tx)?;
            self.user_mk(&app)?;
            let cid = self.container_id(tx, &app, container)?;
            let (key_id, spki): (i64, Vec<u8>) = tx
                .query_row(
                    "SELECT id, spki FROM key WHERE container_id = ?1 AND usage = ?2 AND state = 0",
                    params![cid, usage_code(usage)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| {
                    Error::not_found(format!("{} key in container {container:?}", usage.as_str()))
                })?;
            let key = PublicKey::from_spki_der(&spki)?;
            if !same_public_key(&key, &cert_key) {
                return Err(Error::invalid_data(format!(
                    "the certificate's public key is not the {} key of container {container:?}",
                    usage.as_str()
                ))
                .into());
            }
            let same: Option<i64> = tx
                .query_row(
                    "SELECT id FROM cert WHERE key_id = ?1 AND der = ?2",
                    params![key_id, der],
                    |r| r.get(0),
                )
                .optional()?;
            // The previous current certificate stays as history.
            tx.execute(
                "UPDATE cert SET current = 0 WHERE key_id = ?1 AND current = 1",
                [key_id],
            )?;
            let id = if let Some(id) = same {
                tx.execute("UPDATE cert SET current = 1 WHERE id = ?1", [id])?;
                id
            } else {
                tx.execute(
                    "INSERT INTO cert (key_id, der, current, imported_at) VALUES (?1, ?2, 1, ?3)",
                    params![key_id, der, now()],
                )?;
                tx.last_insert_rowid()
            };
            Ok(id)
        })?;
        Ok(CertId(u64::try_from(id).unwrap_or_default()))
    }

    fn cert(&self, container: &str, usage: KeyUsage) -> Result<Option<Vec<u8>>> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            let cid = self.container_id(tx, &app, container)?;
            Ok(tx
                .query_row(
                    "SELECT c.der FROM cert c JOIN key k ON c.key_id = k.id
                     WHERE k.container_id = ?1 AND k.usage = ?2 AND k.state = 0 AND c.current = 1",
                    params![cid, usage_code(usage)],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    fn delete_cert(&self, cert: CertId) -> Result<()> {
        self.delete_owned(
            "certificate",
            cert.0,
            "DELETE FROM cert WHERE id = ?1 AND key_id IN
               (SELECT k.id FROM key k JOIN container c ON k.container_id = c.id
                WHERE c.app_id = ?2)",
        )
    }

    fn sign(&self, key: &KeyRef, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let (pk, state) = self.private_key(key)?;
        if state == STATE_RETIRED {
            return Err(Error::KeyUsage(
                "a retired encryption key can only decrypt".into(),
            ));
        }
        pk.sign(mech, data)
    }

    fn decrypt(&self, key: &KeyRef, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (pk, _) = self.private_key(key)?;
        pk.decrypt(mech, data)
    }

    fn derive(&self, key: &KeyRef, mech: &DeriveMech) -> Result<DeriveOutput> {
        let (pk, _) = self.private_key(key)?;
        pk.derive(mech)
    }

    fn list_files(&self) -> Result<Vec<FileInfo>> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            let mut st = tx.prepare(
                "SELECT name, length(data), read_rights, write_rights FROM file
                 WHERE app_id = ?1 ORDER BY name",
            )?;
            let files = st
                .query_map([app.id], |r| {
                    Ok(FileInfo {
                        name: r.get(0)?,
                        size: r.get(1)?,
                        read_rights: rights(r.get(2)?),
                        write_rights: rights(r.get(3)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(files)
        })
    }

    fn create_file(&self, name: &str, size: u32, read: Rights, write: Rights) -> Result<()> {
        name_check("file", name, MAX_FILE_NAME)?;
        if size > MAX_FILE_SIZE {
            return Err(Error::invalid_arg(format!(
                "a file holds at most {MAX_FILE_SIZE} bytes"
            )));
        }
        self.store.write(|tx| {
            let app = self.app(tx)?;
            check_right(
                app.create_file_rights,
                self.login_now(&app),
                "creating files in this application",
            )?;
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM file WHERE app_id = ?1 AND name = ?2",
                    params![app.id, name],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(Error::already_exists(format!("file {name:?}")).into());
            }
            tx.execute(
                "INSERT INTO file (app_id, name, read_rights, write_rights, data)
                 VALUES (?1, ?2, ?3, ?4, zeroblob(?5))",
                params![
                    app.id,
                    name,
                    i64::from(read.0),
                    i64::from(write.0),
                    i64::from(size)
                ],
            )?;
            Ok(())
        })
    }

    fn delete_file(&self, name: &str) -> Result<()> {
        self.store.write(|tx| {
            let app = self.app(tx)?;
            let (_, w, _) = self.file_rights(tx, &app, name)?;
            check_right(w, self.login_now(&app), &format!("deleting file {name:?}"))?;
            tx.execute(
                "DELETE FROM file WHERE app_id = ?1 AND name = ?2",
                params![app.id, name],
            )?;
            Ok(())
        })
    }

    fn file_info(&self, name: &str) -> Result<FileInfo> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            let (r, w, data) = self.file_rights(tx, &app, name)?;
            Ok(FileInfo {
                name: name.to_owned(),
                size: u32::try_from(data.len()).unwrap_or(u32::MAX),
                read_rights: r,
                write_rights: w,
            })
        })
    }

    fn read_file(&self, name: &str, offset: u32, len: u32) -> Result<Vec<u8>> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            let (r, _, data) = self.file_rights(tx, &app, name)?;
            check_right(r, self.login_now(&app), &format!("reading file {name:?}"))?;
            let start = offset as usize;
            if start > data.len() {
                return Err(Error::invalid_arg(format!(
                    "offset {offset} is past the end of file {name:?} ({} bytes)",
                    data.len()
                ))
                .into());
            }
            let end = start.saturating_add(len as usize).min(data.len());
            Ok(data[start..end].to_vec())
        })
    }

    fn write_file(&self, name: &str, offset: u32, data: &[u8]) -> Result<()> {
        self.store.write(|tx| {
            let app = self.app(tx)?;
            let (_, w, mut content) = self.file_rights(tx, &app, name)?;
            check_right(w, self.login_now(&app), &format!("writing file {name:?}"))?;
            let start = offset as usize;
            let end = start.saturating_add(data.len());
            if end > content.len() {
                return Err(Error::invalid_arg(format!(
                    "writing {} bytes at {offset} goes past the end of file {name:?} ({} bytes)",
                    data.len(),
                    content.len()
                ))
                .into());
            }
            content[start..end].copy_from_slice(data);
            tx.execute(
                "UPDATE file SET data = ?3 WHERE app_id = ?1 AND name = ?2",
                params![app.id, name, content],
            )?;
            Ok(())
        })
    }

    fn create_object(&self, private: bool, attrs: &[Attr]) -> Result<ObjectId> {
        check_dup_types(attrs)?;
        let needs_user = private || attrs.iter().any(|a| a.sensitive);
        let id = self.store.write(|tx| {
            let app = self.app(tx)?;
            let mk = if needs_user {
                Some(self.user_mk(&app)?)
            } else {
                None
            };
            tx.execute(
                "INSERT INTO object (app_id, private) VALUES (?1, ?2)",
                params![app.id, private],
            )?;
            let oid = tx.last_insert_rowid();
            self.put_attrs(tx, oid, attrs, mk.as_ref())?;
            Ok(oid)
        })?;
        Ok(ObjectId(u64::try_from(id).unwrap_or_default()))
    }

    fn list_objects(&self) -> Result<Vec<ObjectRecord>> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            let user = self.login_now(&app) == LoginState::User;
            let mk = if user {
                self.session().mk.clone()
            } else {
                None
            };
            let rows = {
                let mut st = tx.prepare(
                    "SELECT id, private FROM object WHERE app_id = ?1 AND (private = 0 OR ?2)
                     ORDER BY id",
                )?;
                st.query_map(params![app.id, user], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            rows.into_iter()
                .map(|(oid, private)| self.load_object(tx, oid, private, mk.as_ref()))
                .collect()
        })
    }

    fn get_object(&self, id: ObjectId) -> Result<ObjectRecord> {
        self.store.read(|tx| {
            let app = self.app(tx)?;
            let login = self.login_now(&app);
            let (oid, private) = self.object_private(tx, &app, id, login)?;
            let mk = if login == LoginState::User {
                self.session().mk.clone()
            } else {
                None
            };
            self.load_object(tx, oid, private, mk.as_ref())
        })
    }

    fn update_object(&self, id: ObjectId, attrs: &[Attr]) -> Result<()> {
        check_dup_types(attrs)?;
        self.store.write(|tx| {
            let app = self.app(tx)?;
            let login = self.login_now(&app);
            let (oid, private) = self.object_private(tx, &app, id, login)?;
            let mk = if private || attrs.iter().any(|a| a.sensitive) {
                Some(self.user_mk(&app)?)
            } else {
                None
            };
            self.put_attrs(tx, oid, attrs, mk.as_ref())
        })
    }

    fn delete_object(&self, id: ObjectId) -> Result<()> {
        self.store.write(|tx| {
            let app = self.app(tx)?;
            let login = self.login_now(&app);
            let (oid, _) = self.object_private(tx, &app, id, login)?;
            tx.execute("DELETE FROM object WHERE id = ?1", [oid])?;
            Ok(())
        })
    }
}
