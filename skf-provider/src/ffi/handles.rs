//! The handle table: every SKF handle is an entry of one checked table. A handle value
//! is `(generation << 16) | (index + 1)`, never a pointer, so a stale, closed or foreign
//! handle is recognised and answered with `SAR_INVALIDHANDLEERR`. Closing an entry closes
//! every entry opened under it (a device's applications, containers, session keys, hash,
//! MAC and agreement handles).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use skf_sys::HANDLE;

use crate::api::objects::{AgreeObj, AppObj, ConObj, DevObj, HashObj, MacObj, SessionKey};
use crate::error::{Error, Result};

/// What a handle refers to.
#[derive(Clone)]
pub(crate) enum Obj {
    Dev(Arc<DevObj>),
    App(Arc<AppObj>),
    Con(Arc<ConObj>),
    Key(Arc<Mutex<SessionKey>>),
    Hash(Arc<Mutex<Option<HashObj>>>),
    Mac(Arc<Mutex<Option<MacObj>>>),
    Agree(Arc<AgreeObj>),
}

struct Slot {
    generation: u32,
    entry: Option<(Obj, Option<usize>)>,
}

struct Table {
    slots: Vec<Slot>,
}

static TABLE: Mutex<Table> = Mutex::new(Table { slots: Vec::new() });

/// Advanced (under the table's lock) whenever a device, application or container handle
/// leaves the table. While it stands still, every such handle a thread has seen open is
/// still open and names the same object: slots are reused with a new generation, so a
/// handle value is never reused.
static CLOSES: AtomicU64 = AtomicU64::new(0);

/// The device and container handles this thread used last, valid while [`CLOSES`]
/// stands at `closes`. Signing in a loop then finds its container and checks its device
/// without the table's lock (two atomic read-modify-writes and a scan each). The
/// container is held weakly: the cache keeps no application, key or login alive after
/// its handle is closed.
struct Recent {
    closes: u64,
    dev: usize,
    con: Option<(usize, Weak<ConObj>)>,
}

thread_local! {
    static RECENT: RefCell<Recent> = const {
        RefCell::new(Recent {
            closes: u64::MAX,
            dev: 0,
            con: None,
        })
    };
}

/// Remembers what this thread found open, as of `closes` (read before the look-up: a
/// close in between leaves the entry already stale).
fn remember(closes: u64, f: impl FnOnce(&mut Recent)) {
    // `try_with`: nothing to remember while the thread is being torn down.
    let _ = RECENT.try_with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            if r.closes != closes {
                *r = Recent {
                    closes,
                    dev: 0,
                    con: None,
                };
            }
            f(&mut r);
        }
    });
}

/// What this thread remembers, if [`CLOSES`] still stands where it was.
fn recall<T>(f: impl FnOnce(&Recent) -> Option<T>) -> Option<T> {
    let now = CLOSES.load(Ordering::Acquire);
    RECENT
        .try_with(|r| {
            r.try_borrow()
                .ok()
                .filter(|r| r.closes == now)
                .and_then(|r| f(&r))
        })
        .ok()
        .flatten()
}

const MAX_SLOTS: usize = 0xFFFF;

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

fn encode(index: usize, generation: u32) -> usize {
    ((generation as usize) << 16) | (index + 1)
}

fn decode(h: usize) -> Option<(usize, u32)> {
    let low = h & 0xFFFF;
    if low == 0 {
        return None;
    }
    Some((low - 1, u32::try_from(h >> 16).ok()?))
}

impl Table {
    fn lookup(&self, h: usize) -> Option<&(Obj, Option<usize>)> {
        let (i, g) = decode(h)?;
        let s = self.slots.get(i)?;
        if s.generation != g {
            return None;
        }
        s.entry.as_ref()
    }
}

/// Adds an object, opened under `parent` (closed with it). Returns the handle value.
pub(crate) fn insert(obj: Obj, parent: Option<usize>) -> Result<usize> {
    let mut t = table();
    if let Some(p) = parent
        && t.lookup(p).is_none()
    {
        return Err(Error::INVALID_HANDLE);
    }
    let index = match t.slots.iter().position(|s| s.entry.is_none()) {
        Some(i) => i,
        None if t.slots.len() < MAX_SLOTS => {
            t.slots.push(Slot {
                generation: 0,
                entry: None,
            });
            t.slots.len() - 1
        }
        None => return Err(Error::FAIL),
    };
    let slot = &mut t.slots[index];
    // Wrapping keeps the handle within 32 bits on 32-bit targets' 16 generation bits;
    // on 64-bit targets a slot is reused only after 2^32 opens.
    slot.generation = slot.generation.wrapping_add(1) & generation_mask();
    slot.entry = Some((obj, parent));
    Ok(encode(index, slot.generation))
}

fn generation_mask() -> u32 {
    if usize::BITS >= 48 { u32::MAX } else { 0xFFFF }
}

/// The object of a handle.
pub(crate) fn get(h: HANDLE) -> Result<Obj> {
    let t = table();
    t.lookup(h as usize)
        .map(|(o, _)| o.clone())
        .ok_or(Error::INVALID_HANDLE)
}

/// Closes a handle of the kind `is` accepts, and everything opened under it; returns the
/// closed object. The kind is checked under the same lock as the removal, so a handle
/// closed and reused by another thread in between is not closed as the wrong kind.
pub(crate) fn remove(h: HANDLE, is: fn(&Obj) -> bool) -> Result<Obj> {
    let mut t = table();
    let h = h as usize;
    let (index, _) = decode(h).ok_or(Error::INVALID_HANDLE)?;
    if !t.lookup(h).is_some_and(|(o, _)| is(o)) {
        return Err(Error::INVALID_HANDLE);
    }
    let (obj, _) = t.slots[index].entry.take().ok_or(Error::INVALID_HANDLE)?;
    if matches!(obj, Obj::Dev(_) | Obj::App(_) | Obj::Con(_)) {
        // Writers hold the table's lock, so a load and a store advance it.
        CLOSES.store(CLOSES.load(Ordering::Relaxed) + 1, Ordering::Release);
    }
    // The handles whose children are still to close (no allocation for a leaf, such as
    // a hash or key handle).
    let mut doomed = Vec::new();
    let mut next = Some(h);
    while let Some(cur) = next {
        for (i, s) in t.slots.iter_mut().enumerate() {
            if let Some((_, Some(p))) = &s.entry
                && *p == cur
            {
                doomed.push(encode(i, s.generation));
                s.entry = None;
            }
        }
        next = doomed.pop();
    }
    drop(t);
    Ok(obj)
}

/// Checks that `h` is an open handle of the kind `is` accepts, without taking a
/// reference to its object (for calls that only need the handle to be valid).
pub(crate) fn check(h: HANDLE, is: fn(&Obj) -> bool) -> Result<()> {
    let t = table();
    match t.lookup(h as usize) {
        Some((o, _)) if is(o) => Ok(()),
        _ => Err(Error::INVALID_HANDLE),
    }
}

/// Checks that `h` is an open device handle.
pub(crate) fn check_dev(h: HANDLE) -> Result<()> {
    let h = h as usize;
    if recall(|r| (r.dev == h && h != 0).then_some(())).is_some() {
        return Ok(());
    }
    let closes = CLOSES.load(Ordering::Acquire);
    check(h as HANDLE, |o| matches!(o, Obj::Dev(_)))?;
    remember(closes, |r| r.dev = h);
    Ok(())
}

/// The object of a container handle; any other kind is an invalid handle.
pub(crate) fn con(h: HANDLE) -> Result<Arc<ConObj>> {
    let hv = h as usize;
    if let Some(c) = recall(|r| match &r.con {
        Some((ch, w)) if *ch == hv => w.upgrade(),
        _ => None,
    }) {
        return Ok(c);
    }
    let closes = CLOSES.load(Ordering::Acquire);
    let c = match get(h)? {
        Obj::Con(c) => c,
        _ => return Err(Error::INVALID_HANDLE),
    };
    remember(closes, |r| r.con = Some((hv, Arc::downgrade(&c))));
    Ok(c)
}

/// Checks that `h` is an open application handle.
pub(crate) fn check_app(h: HANDLE) -> Result<()> {
    check(h, |o| matches!(o, Obj::App(_)))
}

/// The parent handle of a handle.
pub(crate) fn parent(h: HANDLE) -> Result<Option<usize>> {
    let t = table();
    t.lookup(h as usize)
        .map(|(_, p)| *p)
        .ok_or(Error::INVALID_HANDLE)
}

macro_rules! typed {
    ($name:ident, $variant:ident, $t:ty) => {
        /// The object of a handle of this kind; any other kind is an invalid handle.
        pub(crate) fn $name(h: HANDLE) -> Result<$t> {
            match get(h)? {
                Obj::$variant(o) => Ok(o),
                _ => Err(Error::INVALID_HANDLE),
            }
        }
    };
}

typed!(dev, Dev, Arc<DevObj>);
typed!(app, App, Arc<AppObj>);
typed!(key, Key, Arc<Mutex<SessionKey>>);
typed!(hash, Hash, Arc<Mutex<Option<HashObj>>>);
typed!(mac, Mac, Arc<Mutex<Option<MacObj>>>);
typed!(agree, Agree, Arc<AgreeObj>);

/// Converts a handle value into the C type.
pub(crate) fn to_c(h: usize) -> HANDLE {
    h as HANDLE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::objects::SessionKey;

    #[test]
    fn stale_and_foreign_handles_are_refused_and_children_close_with_parents() {
        let k = || Obj::Key(Arc::new(Mutex::new(SessionKey::new(0x401, &[0u8; 16]))));
        let a = insert(k(), None).unwrap();
        let b = insert(k(), Some(a)).unwrap();
        let c = insert(k(), Some(b)).unwrap();
        assert!(get(to_c(c)).is_ok());
        // The kind is checked: a key handle is not closed as a device.
        assert!(remove(to_c(a), |o| matches!(o, Obj::Dev(_))).is_err());
        assert!(get(to_c(a)).is_ok());
        remove(to_c(a), |o| matches!(o, Obj::Key(_))).unwrap();
        for h in [a, b, c] {
            assert!(get(to_c(h)).is_err());
        }
        // The slot is reused with a new generation: the old value stays invalid.
        let d = insert(k(), None).unwrap();
        assert_ne!(d, a);
        assert!(get(to_c(a)).is_err());
        assert!(get(to_c(0x1234_5678)).is_err());
        assert!(get(std::ptr::null_mut()).is_err());
        assert!(dev(to_c(d)).is_err());
        assert!(check_dev(to_c(d)).is_err());
        assert!(check(to_c(d), |o| matches!(o, Obj::Key(_))).is_ok());
        remove(to_c(d), |_| true).unwrap();
        assert!(remove(to_c(d), |_| true).is_err());
    }
}
