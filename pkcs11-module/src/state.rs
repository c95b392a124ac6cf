//! The module's global state between `C_Initialize` and `C_Finalize`: tokens (one per
//! (device, application) plus the free slot), sessions, the object handle table and the
//! slot-event queue.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, TryLockError, Weak};
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use token_hal::config::Config;
use token_hal::registry::Registry;
use token_hal::{Application, BackendKind, Device, DeviceInfo, LoginState, ObjectId};

use crate::compat::Compat;
use crate::error::{Error, Result};
use crate::object::Object;
use crate::session::Session;

/// The ID of the first free, uninitialised slot where `C_InitToken` makes a new token.
/// After a token is made there, the token keeps this ID for the rest of the process (as
/// SoftHSM2 does) and the next free slot gets a fresh ID above the 31-bit token IDs.
pub(crate) const FIRST_FREE_SLOT: CK_SLOT_ID = 0;

/// One initialised token: an application on a device.
pub(crate) struct Token {
    pub slot_id: CK_SLOT_ID,
    pub device: Arc<dyn Device>,
    pub dev_info: DeviceInfo,
    pub app_name: String,
    pub app: Arc<dyn Application>,
    pub serial: String,
}

impl Token {
    /// Who is logged in.
    pub fn login(&self) -> LoginState {
        self.app.login_state()
    }
}

/// A map keyed by session or object handles. The module assigns handles (a caller cannot
/// choose them to collide), so one multiplication replaces SipHash on the lookup every
/// call makes.
pub(crate) type HandleMap<V> = HashMap<CK_ULONG, V, BuildHasherDefault<HandleHasher>>;

/// The hasher of [`HandleMap`]: Fibonacci hashing of the handle.
#[derive(Default)]
pub(crate) struct HandleHasher(u64);

impl Hasher for HandleHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The object table: handle → object. Removing or replacing an entry counts as a change
/// to objects ([`crate::object::changes`]), as an attribute write does.
#[derive(Default)]
pub(crate) struct Objects(HandleMap<Arc<Object>>);

impl Objects {
    pub fn get(&self, h: &CK_OBJECT_HANDLE) -> Option<&Arc<Object>> {
        self.0.get(h)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&CK_OBJECT_HANDLE, &Arc<Object>)> {
        self.0.iter()
    }
    pub fn values(&self) -> impl Iterator<Item = &Arc<Object>> {
        self.0.values()
    }
    pub fn insert(&mut self, h: CK_OBJECT_HANDLE, o: Arc<Object>) {
        if self.0.insert(h, o).is_some() {
            crate::object::changed();
        }
    }
    pub fn remove(&mut self, h: &CK_OBJECT_HANDLE) -> Option<Arc<Object>> {
        let gone = self.0.remove(h);
        if gone.is_some() {
            crate::object::changed();
        }
        gone
    }
    pub fn retain(&mut self, keep: impl FnMut(&CK_OBJECT_HANDLE, &mut Arc<Object>) -> bool) {
        let before = self.0.len();
        self.0.retain(keep);
        if self.0.len() != before {
            crate::object::changed();
        }
    }
}

/// Mutable tables, under one short-held lock.
pub(crate) struct Inner {
    /// Initialised tokens in listing order.
    pub tokens: Vec<Arc<Token>>,
    pub sessions: HandleMap<Arc<Session>>,
    next_session: CK_SESSION_HANDLE,
    pub objects: Objects,
    /// Stable handles of token objects: (slot, where) → handle.
    pub store_index: HashMap<(CK_SLOT_ID, String), CK_OBJECT_HANDLE>,
    next_object: CK_OBJECT_HANDLE,
    /// The current free slot.
    pub free_slot: CK_SLOT_ID,
    /// Tokens made in this process keep the ID of the free slot they were made in:
    /// stable ID → ID used in this process.
    pub assigned: HashMap<CK_SLOT_ID, CK_SLOT_ID>,
    /// Token objects destroyed in this process: (slot, where) → (the handle-entry clock
    /// when destroyed, when). A listing of the store that began before the destruction
    /// must not bring them back (`sync_store`); entries go after a minute.
    pub destroyed: HashMap<(CK_SLOT_ID, String), (u64, Instant)>,
}

impl Inner {
    /// A fresh session handle.
    pub fn new_session_handle(&mut self) -> CK_SESSION_HANDLE {
        self.next_session += 1;
        self.next_session
    }
    /// A fresh object handle.
    pub fn new_object_handle(&mut self) -> CK_OBJECT_HANDLE {
        self.next_object += 1;
        self.next_object
    }
    /// The token of a slot, or `CKR_SLOT_ID_INVALID`.
    pub fn token(&self, slot: CK_SLOT_ID) -> Option<Arc<Token>> {
        self.tokens.iter().find(|t| t.slot_id == slot).cloned()
    }
    /// The handle of a store object, made on first sight.
    pub fn store_handle(&mut self, slot: CK_SLOT_ID, id: ObjectId) -> (CK_OBJECT_HANDLE, bool) {
        self.token_handle(slot, format!("o{}", id.0))
    }
    /// Forgets the handle of a destroyed token object named by `key`, and remembers the
    /// destruction for listings already under way.
    pub fn forget_destroyed(&mut self, slot: CK_SLOT_ID, key: String) {
        let now = Instant::now();
        self.destroyed
            .retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
        self.store_index.remove(&(slot, key.clone()));
        self.destroyed
            .insert((slot, key), (crate::object::tick(), now));
    }
    /// Whether the token object named by `key` was destroyed after the handle-entry clock
    /// read `start`.
    pub fn destroyed_since(&self, slot: CK_SLOT_ID, key: &str, start: u64) -> bool {
        self.destroyed
            .get(&(slot, key.to_owned()))
            .is_some_and(|(t, _)| *t > start)
    }
    /// The handle of a token object named by `key`, made on first sight.
    pub fn token_handle(&mut self, slot: CK_SLOT_ID, key: String) -> (CK_OBJECT_HANDLE, bool) {
        if let Some(h) = self.store_index.get(&(slot, key.clone())) {
            return (*h, false);
        }
        let h = self.new_object_handle();
        self.store_index.insert((slot, key), h);
        (h, true)
    }
    /// Sessions open on a slot.
    pub fn sessions_of(&self, slot: CK_SLOT_ID) -> impl Iterator<Item = &Arc<Session>> {
        self.sessions.values().filter(move |s| s.slot_id == slot)
    }
}

/// Slot events for `C_WaitForSlotEvent`.
#[derive(Default)]
pub(crate) struct Events {
    pub queue: Mutex<(VecDeque<CK_SLOT_ID>, bool)>,
    pub cond: Condvar,
}

impl Events {
    /// Queues an event and wakes waiters.
    pub fn push(&self, slot: CK_SLOT_ID) {
        if let Ok(mut q) = self.queue.lock()
            && !q.0.contains(&slot)
        {
            q.0.push_back(slot);
        }
        self.cond.notify_all();
    }
    /// Marks the module finalised and wakes waiters.
    pub fn close(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.1 = true;
        }
        self.cond.notify_all();
    }
}

/// What `C_Initialize` sets up.
pub(crate) struct Module {
    pub config: Config,
    pub registry: Registry,
    pub compat: Compat,
    pub inner: Mutex<Inner>,
    pub events: Events,
    /// Serialises token creation, re-initialisation and slot refreshes.
    pub init_lock: Mutex<()>,
}

static MODULE: RwLock<Option<Arc<Module>>> = RwLock::new(None);

/// Sets the state; `CKR_CRYPTOKI_ALREADY_INITIALIZED` if set.
pub(crate) fn install(config: Config, compat: Compat) -> Result<()> {
    let mut g = MODULE.write().map_err(|_| Error::GENERAL)?;
    if g.is_some() {
        return Err(Error(CKR_CRYPTOKI_ALREADY_INITIALIZED));
    }
    // Vendor SKF libraries of `[[skf_library]]` (unless UKEY_BACKENDS excludes `skf`).
    ukey_skf_bridge::register(&config);
    let registry = Registry::new(config.clone());
    let m = Arc::new(Module {
        config,
        registry,
        compat,
        inner: Mutex::new(Inner {
            tokens: Vec::new(),
            sessions: HandleMap::default(),
            next_session: 0,
            objects: Objects::default(),
            store_index: HashMap::new(),
            next_object: 0,
            free_slot: FIRST_FREE_SLOT,
            assigned: HashMap::new(),
            destroyed: HashMap::new(),
        }),
        events: Events::default(),
        init_lock: Mutex::new(()),
    });
    m.refresh(false)?;
    *g = Some(m);
    drop(g);
    hot::invalidate();
    Ok(())
}

/// Drops the state; `CKR_CRYPTOKI_NOT_INITIALIZED` if unset. Wakes event waiters.
pub(crate) fn remove() -> Result<()> {
    let m = {
        let mut g = MODULE.write().map_err(|_| Error::GENERAL)?;
        g.take().ok_or(Error(CKR_CRYPTOKI_NOT_INITIALIZED))?
    };
    // No thread's cache may keep the module (its tokens, bridged modules) alive.
    hot::clear_all();
    m.events.close();
    if let Ok(inner) = m.inner.lock() {
        for t in &inner.tokens {
            t.app.logout();
        }
    }
    Ok(())
}

/// Forgets the state without finalising (the child after `fork()`).
pub(crate) fn forget() {
    if let Ok(mut g) = MODULE.write()
        && let Some(m) = g.take()
    {
        hot::clear_all();
        m.events.close();
    }
}

/// The module, or `CKR_CRYPTOKI_NOT_INITIALIZED`.
pub(crate) fn module() -> Result<Arc<Module>> {
    let g = MODULE.read().map_err(|_| Error::GENERAL)?;
    g.clone().ok_or(Error(CKR_CRYPTOKI_NOT_INITIALIZED))
}

impl Module {
    /// Locks the tables.
    pub fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| Error::GENERAL)
    }

    /// Re-reads devices and applications. New tokens and vanished ones become slot
    /// events when `events` is set. Tokens that stay keep their handles (and login).
    pub fn refresh(&self, events: bool) -> Result<()> {
        let _g = self.init_lock.lock().map_err(|_| Error::GENERAL)?;
        self.refresh_locked(events)
    }

    /// [`Module::refresh`] with `init_lock` held by the caller: listing and applying are
    /// one step, so a slow concurrent listing never drops a token made meanwhile.
    pub fn refresh_locked(&self, events: bool) -> Result<()> {
        let mut devices: Vec<(DeviceInfo, Arc<dyn Device>)> = Vec::new();
        for d in self.registry.devices()? {
            match d.info() {
                Ok(info) => devices.push((info, d)),
                Err(e) => tracing::warn!(error = %e, "device skipped"),
            }
        }
        let order = self.config.pkcs11.slot_order.clone().unwrap_or_default();
        devices.sort_by_key(|(info, _)| {
            let pos = order
                .iter()
                .position(|s| *s == info.serial)
                .unwrap_or(usize::MAX);
            (pos, info.backend != BackendKind::Soft, info.serial.clone())
        });
        type Found = (CK_SLOT_ID, DeviceInfo, Arc<dyn Device>, String, String);
        let mut found: Vec<Found> = Vec::new();
        for (info, dev) in devices {
            let apps = match dev.list_apps() {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "device applications unreadable");
                    continue;
                }
            };
            for app in apps {
                let serial = token_hal::slot::token_serial(&info.serial, &app);
                let id = CK_SLOT_ID::from(token_hal::slot::slot_id(&serial));
                found.push((id, info.clone(), dev.clone(), app, serial));
            }
        }
        let mut inner = self.lock()?;
        let mut tokens = Vec::new();
        let mut changed = Vec::new();
        for (id, info, dev, app_name, serial) in found {
            let id = inner.assigned.get(&id).copied().unwrap_or(id);
            if let Some(t) = inner.token(id) {
                tokens.push(t);
                continue;
            }
            let app = match dev.open_app(&app_name) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "application unreadable");
                    continue;
                }
            };
            changed.push(id);
            tokens.push(Arc::new(Token {
                slot_id: id,
                device: dev,
                dev_info: info,
                app_name,
                app,
                serial,
            }));
        }
        let gone: Vec<CK_SLOT_ID> = inner
            .tokens
            .iter()
            .filter(|t| !tokens.iter().any(|n| n.slot_id == t.slot_id))
            .map(|t| t.slot_id)
            .collect();
        for g in &gone {
            drop_token_state(&mut inner, *g);
        }
        inner.tokens = tokens;
        drop(inner);
        if events {
            for id in changed.into_iter().chain(gone) {
                self.events.push(id);
            }
        }
        Ok(())
    }

    /// Whether `slot` is the free slot.
    pub fn is_free(&self, slot: CK_SLOT_ID) -> Result<bool> {
        Ok(self.lock()?.free_slot == slot)
    }

    /// Every slot: tokens, then the free slot.
    pub fn slot_ids(&self) -> Result<Vec<CK_SLOT_ID>> {
        let inner = self.lock()?;
        let mut v: Vec<CK_SLOT_ID> = inner.tokens.iter().map(|t| t.slot_id).collect();
        v.push(inner.free_slot);
        Ok(v)
    }

    /// The token of an initialised slot; the free slot gives `CKR_TOKEN_NOT_RECOGNIZED`.
    pub fn token(&self, slot: CK_SLOT_ID) -> Result<Arc<Token>> {
        let inner = self.lock()?;
        match inner.token(slot) {
            Some(t) => Ok(t),
            None if slot == inner.free_slot => Err(Error(CKR_TOKEN_NOT_RECOGNIZED)),
            None => Err(Error(CKR_SLOT_ID_INVALID)),
        }
    }

    /// Whether a slot ID names a slot.
    pub fn slot_exists(&self, slot: CK_SLOT_ID) -> Result<bool> {
        let inner = self.lock()?;
        Ok(slot == inner.free_slot || inner.token(slot).is_some())
    }

    /// A session by handle, or `CKR_SESSION_HANDLE_INVALID`.
    pub fn session(&self, h: CK_SESSION_HANDLE) -> Result<Arc<Session>> {
        self.lock()?
            .sessions
            .get(&h)
            .cloned()
            .ok_or(Error(CKR_SESSION_HANDLE_INVALID))
    }

    /// Waits for a slot event; None after `timeout` (polling other processes' changes).
    pub fn wait_event(&self, block: bool) -> Result<CK_SLOT_ID> {
        loop {
            {
                let mut q = self.events.queue.lock().map_err(|_| Error::GENERAL)?;
                if q.1 {
                    return Err(Error(CKR_CRYPTOKI_NOT_INITIALIZED));
                }
                if let Some(s) = q.0.pop_front() {
                    return Ok(s);
                }
                if block {
                    let (g, _) = self
                        .events
                        .cond
                        .wait_timeout(q, Duration::from_millis(300))
                        .map_err(|_| Error::GENERAL)?;
                    q = g;
                    if q.1 {
                        return Err(Error(CKR_CRYPTOKI_NOT_INITIALIZED));
                    }
                    if let Some(s) = q.0.pop_front() {
                        return Ok(s);
                    }
                }
            }
            self.refresh(true)?;
            let mut q = self.events.queue.lock().map_err(|_| Error::GENERAL)?;
            if let Some(s) = q.0.pop_front() {
                return Ok(s);
            }
            if q.1 {
                return Err(Error(CKR_CRYPTOKI_NOT_INITIALIZED));
            }
            if !block {
                return Err(Error(CKR_NO_EVENT));
            }
            q.0.clear();
        }
    }
}

/// Drops the sessions and objects of a slot whose token went away or was re-initialised.
pub(crate) fn drop_token_state(inner: &mut Inner, slot: CK_SLOT_ID) {
    inner.sessions.retain(|_, s| s.slot_id != slot);
    // The module's lock is held: only mark the caches stale (cells lock before it).
    hot::invalidate();
    inner.objects.retain(|_, o| o.slot != slot);
    inner.store_index.retain(|(s, _), _| *s != slot);
}

/// Objects by handle, sorted, for tests of handle stability.
#[allow(dead_code)]
pub(crate) fn handles(inner: &Inner) -> BTreeMap<CK_OBJECT_HANDLE, CK_SLOT_ID> {
    inner.objects.iter().map(|(h, o)| (*h, o.slot)).collect()
}

/// Runs `f` on the module and session `h`: the calls of one operation (Init, a length query,
/// the call) on one thread find them in that thread's cache, without the module's locks
/// and reference counts. `CKR_CRYPTOKI_NOT_INITIALIZED` / `CKR_SESSION_HANDLE_INVALID` as
/// [`module`] and [`Module::session`].
pub(crate) fn with_session<R>(
    h: CK_SESSION_HANDLE,
    f: impl FnOnce(&Module, &Session) -> Result<R>,
) -> Result<R> {
    hot::with(h, f)
}

/// The per-thread cache of [`with_session`]. A cell holds the module and the session a
/// thread used last, stamped with the epoch it was read in; closing a session, a token
/// going away, `C_Initialize` and `C_Finalize` advance the epoch, so a stamped entry is
/// only used while nothing it depends on has changed. Finalisation and closing also empty
/// every cell not in use, and a call that overlapped them empties its own when it ends, so
/// no cache keeps a closed session or a finalised module alive. Nothing waits for a cell.
///
/// Lock order: a thread's own cell, then the module's locks. Cleaners only try a cell's
/// lock, so they may run anywhere.
mod hot {
    use super::*;

    struct Hot {
        epoch: u64,
        module: Arc<Module>,
        handle: CK_SESSION_HANDLE,
        session: Arc<Session>,
    }

    type Cell = Mutex<Option<Hot>>;

    static EPOCH: AtomicU64 = AtomicU64::new(0);
    static CELLS: Mutex<Vec<Weak<Cell>>> = Mutex::new(Vec::new());

    thread_local! {
        static MINE: OnceCell<Arc<Cell>> = const { OnceCell::new() };
    }

    fn new_cell() -> Arc<Cell> {
        let cell = Arc::new(Mutex::new(None));
        let mut all = CELLS.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&cell));
        drop(all);
        cell
    }

    pub(super) fn with<R>(
        h: CK_SESSION_HANDLE,
        f: impl FnOnce(&Module, &Session) -> Result<R>,
    ) -> Result<R> {
        let mut f = Some(f);
        let cached = MINE.try_with(|c| {
            let cell = c.get_or_init(new_cell);
            let mut g = match cell.try_lock() {
                Ok(g) => g,
                // A panic inside `f` (caught at the C boundary): start the cell afresh.
                Err(TryLockError::Poisoned(p)) => {
                    let mut g = p.into_inner();
                    *g = None;
                    cell.clear_poison();
                    g
                }
                // Re-entered from inside `f`: the uncached path.
                Err(TryLockError::WouldBlock) => return None,
            };
            let epoch = EPOCH.load(Ordering::Acquire);
            if !matches!(&*g, Some(e) if e.epoch == epoch && e.handle == h) {
                *g = None;
                let looked_up = module().and_then(|m| Ok((m.session(h)?, m)));
                let (session, module) = match looked_up {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                };
                *g = Some(Hot {
                    epoch,
                    module,
                    handle: h,
                    session,
                });
            }
            let f = f.take()?;
            let r = {
                let e = g.as_ref()?;
                f(&e.module, &e.session)
            };
            // Something was closed or finalised meanwhile: drop what the entry keeps (a
            // cleaner skipped this cell while it was busy).
            if EPOCH.load(Ordering::Acquire) != epoch {
                *g = None;
            }
            Some(r)
        });
        if let Ok(Some(r)) = cached {
            return r;
        }
        let f = f.take().ok_or(Error::GENERAL)?;
        let m = module()?;
        let s = m.session(h)?;
        f(&m, &s)
    }

    /// Marks every cached entry stale.
    pub(super) fn invalidate() {
        EPOCH.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks every entry stale and empties the cells that are not in use. A cell in use
    /// is never waited for (its call may be a long key generation, or after `fork()` its
    /// thread is gone): that call empties its own cell when it ends, as the epoch moved.
    pub(super) fn clear_all() {
        invalidate();
        let cells: Vec<Arc<Cell>> = CELLS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for cell in cells {
            if let Ok(mut g) = cell.try_lock() {
                *g = None;
            }
        }
    }
}

/// After sessions were closed (no module lock held): no cache keeps them.
pub(crate) fn sessions_closed() {
    hot::clear_all();
}
