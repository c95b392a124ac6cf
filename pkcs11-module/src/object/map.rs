//! [`AttrMap`]: an object's attributes as one vector sorted by type. Objects carry a few
//! dozen attributes, so a binary search and a short `memmove` beat a B-tree's node
//! allocations, and a complete object costs one allocation instead of one per node.
//!
//! Most of an object's attributes are its class's defaults (`CKA_COPYABLE`, the dates,
//! `CKA_DERIVE`, …), the same for every object of the class. A completed map keeps them
//! by reference ([`AttrMap::merge_defaults`] names a shared, static map of them) and holds
//! only its own attributes, which take precedence: completing, copying and dropping an
//! object then touch a handful of entries, not some thirty. Reads see one map. An edit
//! that would have to hide a default (removing it, or `retain`) first copies the
//! defaults in.
//!
//! The same holds one level up for key-pair generation: a session's prepared templates,
//! completed with their class defaults, are one shared map ([`AttrMap::into_base`]), and
//! each generated object holds only its key and unique ID as its own entries, which the
//! key fills hand over already in type order ([`AttrMap::based_on_sorted`]: no search,
//! no copy).
//!
//! Values up to [`AttrVal`]'s inline size live in the vector itself, so shifting or
//! regrowing it would leave byte copies of (possibly secret) values behind. Every
//! operation that can leave such a copy in the vector's spare capacity zeroizes it, and
//! growth moves the entries into a new buffer and zeroizes the old one. The static
//! defaults hold no secrets; a shared map's values are zeroized like any others when its
//! last holder drops it.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroize;

use cryptoki_sys::CK_ATTRIBUTE_TYPE;

use super::AttrVal;

/// Attributes sorted by type, each type at most once. The subset of `BTreeMap`'s API the
/// module uses, with the same meaning (iteration in ascending type order).
#[derive(Clone, Default)]
pub(crate) struct AttrMap {
    /// This map's own attributes, sorted by type.
    own: Vec<(CK_ATTRIBUTE_TYPE, AttrVal)>,
    /// The defaults: the value of every type `own` lacks. A base never has a base.
    base: Option<Base>,
}

/// Where a map's defaults are: a class's static table, or a map several objects share (a
/// session's prepared key-pair templates, completed with their class's defaults).
#[derive(Clone)]
enum Base {
    Static(&'static AttrMap),
    Shared(Arc<AttrMap>),
}

impl Base {
    fn map(&self) -> &AttrMap {
        match self {
            Base::Static(m) => m,
            Base::Shared(m) => m,
        }
    }
}

/// The first capacity: room for a completed key object's own attributes (a generated
/// private key has about 17; its defaults stay in the class table), and at 32 bytes an
/// entry (640 B) small enough for the allocator's per-thread cache, which takes blocks up
/// to about 1 KiB. (With the 1 KiB of 32 entries, every new object went through glibc's
/// slower bins and set off `malloc_consolidate`.)
const TYPICAL: usize = 20;

impl AttrMap {
    /// An empty map.
    pub(crate) fn new() -> Self {
        Self::default()
    }
    fn find(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<usize, usize> {
        self.own.binary_search_by_key(&ty, |(t, _)| *t)
    }
    fn base_get(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&AttrVal> {
        self.base.as_ref().and_then(|b| b.map().get(&ty))
    }
    /// Inserts at `i` (from a failed [`Self::find`]), growing through a zeroized move.
    fn insert_at(&mut self, i: usize, ty: CK_ATTRIBUTE_TYPE, v: AttrVal) {
        self.room_for(1);
        self.own.insert(i, (ty, v));
    }
    /// Makes room for `n` more entries without a reallocation that would leave the old
    /// buffer's bytes behind: a vector too full moves into a larger one and the old
    /// buffer is zeroized.
    fn room_for(&mut self, n: usize) {
        if self.own.capacity() - self.own.len() < n {
            let want = (self.own.capacity() * 2)
                .max(TYPICAL)
                .max(self.own.len() + n);
            let mut grown = Vec::with_capacity(want);
            let held = self.own.len();
            grown.append(&mut self.own);
            wipe(&mut self.own.spare_capacity_mut()[..held]);
            self.own = grown;
        }
    }
    /// This map, with every default it does not override copied in, as the shared base
    /// of maps made by [`Self::based_on`].
    pub(crate) fn into_base(mut self) -> Arc<Self> {
        self.flatten();
        Arc::new(self)
    }
    /// An empty map whose defaults are `base` (from [`Self::into_base`]), with room for
    /// `room` entries of its own.
    pub(crate) fn based_on(base: Arc<Self>, room: usize) -> Self {
        debug_assert!(base.base.is_none(), "defaults are one level deep");
        Self {
            own: Vec::with_capacity(room),
            base: Some(Base::Shared(base)),
        }
    }
    /// A map whose defaults are `base` (from [`Self::into_base`]) and whose own entries
    /// are `own`: a new object's unique ID and key, which the key fills list in ascending
    /// type order, go in with no search and no copy. Entries out of order (or a type
    /// twice) are put one by one instead, later ones winning.
    pub(crate) fn based_on_sorted(base: Arc<Self>, own: Vec<(CK_ATTRIBUTE_TYPE, AttrVal)>) -> Self {
        if own.windows(2).all(|w| w[0].0 < w[1].0) {
            debug_assert!(base.base.is_none(), "defaults are one level deep");
            return Self {
                own,
                base: Some(Base::Shared(base)),
            };
        }
        let mut m = Self::based_on(base, own.len());
        m.absorb(own.into_iter().collect());
        m
    }
    /// Copies every default this map does not override into it and drops the base, so
    /// that an edit can remove any attribute.
    fn flatten(&mut self) {
        let Some(base) = self.base.take() else {
            return;
        };
        let missing: Vec<_> = base
            .map()
            .own
            .iter()
            .filter(|(t, _)| self.find(*t).is_err())
            .cloned()
            .collect();
        self.room_for(missing.len());
        for (t, v) in missing {
            if let Err(i) = self.find(t) {
                self.own.insert(i, (t, v));
            }
        }
    }
    /// Takes `defaults` as the value of every attribute this map lacks: nothing is
    /// copied; the map refers to them (a static table per class, which has no defaults
    /// of its own). A map that already had defaults gets the old ones copied in first.
    pub(crate) fn merge_defaults(&mut self, defaults: &'static AttrMap) {
        debug_assert!(defaults.base.is_none(), "defaults are one level deep");
        self.flatten();
        self.base = Some(Base::Static(defaults));
    }
    /// The value of `ty`.
    pub(crate) fn get(&self, ty: &CK_ATTRIBUTE_TYPE) -> Option<&AttrVal> {
        match self.find(*ty) {
            Ok(i) => Some(&self.own[i].1),
            Err(_) => self.base_get(*ty),
        }
    }
    /// Whether `ty` is present.
    pub(crate) fn contains_key(&self, ty: &CK_ATTRIBUTE_TYPE) -> bool {
        self.get(ty).is_some()
    }
    /// Sets `ty`; the previous value, if any.
    pub(crate) fn insert(&mut self, ty: CK_ATTRIBUTE_TYPE, v: AttrVal) -> Option<AttrVal> {
        match self.find(ty) {
            Ok(i) => Some(std::mem::replace(&mut self.own[i].1, v)),
            Err(i) => {
                let was = self.base_get(ty).cloned();
                self.insert_at(i, ty, v);
                was
            }
        }
    }
    /// Sets `ty`, dropping any previous value ([`Self::insert`] without looking up the
    /// value it replaces among the defaults). A value the defaults already give is not
    /// copied in (reads see the same either way).
    pub(crate) fn put(&mut self, ty: CK_ATTRIBUTE_TYPE, v: AttrVal) {
        match self.find(ty) {
            Ok(i) => self.own[i].1 = v,
            Err(i) => {
                if self
                    .base_get(ty)
                    .is_none_or(|d| d.as_slice() != v.as_slice())
                {
                    self.insert_at(i, ty, v);
                }
            }
        }
    }
    /// Removes `ty`; its value, if it was present.
    pub(crate) fn remove(&mut self, ty: &CK_ATTRIBUTE_TYPE) -> Option<AttrVal> {
        if self.base_get(*ty).is_some() {
            self.flatten();
        }
        let i = self.find(*ty).ok()?;
        let v = self.own.remove(i).1;
        // The shift left leaves a copy of the last entry in the first spare slot.
        wipe(&mut self.own.spare_capacity_mut()[..1]);
        Some(v)
    }
    /// Sets every attribute of `other` (its values win), emptying it.
    pub(crate) fn absorb(&mut self, mut other: AttrMap) {
        other.flatten();
        let held = other.own.len();
        for (t, v) in other.own.drain(..) {
            self.put(t, v);
        }
        // Draining moved the values out bytewise: clear what they left behind.
        wipe(&mut other.own.spare_capacity_mut()[..held]);
    }
    /// The slot for `ty`, present or not. A default becomes this map's own entry.
    pub(crate) fn entry(&mut self, ty: CK_ATTRIBUTE_TYPE) -> Entry<'_> {
        let mut at = self.find(ty);
        if let Err(i) = at
            && let Some(v) = self.base_get(ty).cloned()
        {
            self.insert_at(i, ty, v);
            at = Ok(i);
        }
        Entry { map: self, ty, at }
    }
    /// (type, value) pairs in ascending type order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            own: &self.own,
            base: self.base.as_ref().map_or(&[][..], |b| &b.map().own[..]),
        }
    }
    /// The values, in ascending type order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &AttrVal> {
        self.iter().map(|(_, v)| v)
    }
    /// Keeps only the attributes `f` accepts.
    pub(crate) fn retain(&mut self, mut f: impl FnMut(&CK_ATTRIBUTE_TYPE, &mut AttrVal) -> bool) {
        self.flatten();
        let before = self.own.len();
        self.own.retain_mut(|(t, v)| f(t, v));
        // The compaction leaves copies in as many slots past the new end as it dropped.
        let gone = before - self.own.len();
        wipe(&mut self.own.spare_capacity_mut()[..gone]);
    }
}

/// An [`AttrMap`]'s pairs in ascending type order: its own entries merged with the
/// defaults they do not override.
#[derive(Clone)]
pub(crate) struct Iter<'a> {
    own: &'a [(CK_ATTRIBUTE_TYPE, AttrVal)],
    base: &'a [(CK_ATTRIBUTE_TYPE, AttrVal)],
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a CK_ATTRIBUTE_TYPE, &'a AttrVal);
    fn next(&mut self) -> Option<Self::Item> {
        let take_own = match (self.own.first(), self.base.first()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((a, _)), Some((b, _))) => {
                if a == b {
                    // Overridden: skip the default.
                    self.base = &self.base[1..];
                }
                a <= b
            }
        };
        let src = if take_own {
            &mut self.own
        } else {
            &mut self.base
        };
        let (first, rest) = src.split_first()?;
        *src = rest;
        Some((&first.0, &first.1))
    }
}

impl PartialEq for AttrMap {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for AttrMap {}

/// Zeroizes slots that values were moved or removed from, one volatile write per slot
/// (zeroize's slice form writes byte by byte, several times slower).
fn wipe(slots: &mut [std::mem::MaybeUninit<(CK_ATTRIBUTE_TYPE, AttrVal)>]) {
    slots.iter_mut().for_each(Zeroize::zeroize);
}

/// One type's slot in an [`AttrMap`], as `BTreeMap::entry` gives it.
pub(crate) struct Entry<'a> {
    map: &'a mut AttrMap,
    ty: CK_ATTRIBUTE_TYPE,
    at: Result<usize, usize>,
}

impl<'a> Entry<'a> {
    /// The value, inserting `f()` first if absent.
    pub(crate) fn or_insert_with(self, f: impl FnOnce() -> AttrVal) -> &'a mut AttrVal {
        let i = match self.at {
            Ok(i) => i,
            Err(i) => {
                self.map.insert_at(i, self.ty, f());
                i
            }
        };
        &mut self.map.own[i].1
    }
    /// The value, inserting an empty one first if absent.
    pub(crate) fn or_default(self) -> &'a mut AttrVal {
        self.or_insert_with(AttrVal::default)
    }
}

impl Extend<(CK_ATTRIBUTE_TYPE, AttrVal)> for AttrMap {
    fn extend<I: IntoIterator<Item = (CK_ATTRIBUTE_TYPE, AttrVal)>>(&mut self, it: I) {
        for (t, v) in it {
            self.put(t, v);
        }
    }
}

impl FromIterator<(CK_ATTRIBUTE_TYPE, AttrVal)> for AttrMap {
    /// Later pairs win over earlier ones of the same type, as in a `BTreeMap`.
    fn from_iter<I: IntoIterator<Item = (CK_ATTRIBUTE_TYPE, AttrVal)>>(it: I) -> Self {
        let mut m = Self::new();
        m.extend(it);
        m
    }
}

impl<'a> IntoIterator for &'a AttrMap {
    type Item = (&'a CK_ATTRIBUTE_TYPE, &'a AttrVal);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for AttrMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Random operations give the same contents and order as a `BTreeMap`, on a plain
    /// map, on one whose defaults come from a static base, and on one whose defaults are a
    /// shared map ([`AttrMap::into_base`]) that had a static base of its own.
    #[test]
    fn behaves_like_a_btreemap() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for based in 0..3 {
            let mut a = AttrMap::new();
            let mut b: BTreeMap<CK_ATTRIBUTE_TYPE, AttrVal> = BTreeMap::new();
            if based > 0 {
                let mut defaults = AttrMap::new();
                for _ in 0..30 {
                    defaults.insert(next() % 64, AttrVal::new(&[next() as u8; 2]));
                }
                if based == 2 {
                    // A prepared map: own entries over a static base, then shared.
                    let mut prepared = AttrMap::new();
                    for _ in 0..12 {
                        prepared.insert(next() % 64, AttrVal::new(&[next() as u8; 3]));
                    }
                    prepared.merge_defaults(Box::leak(Box::new(defaults)));
                    for (t, v) in &prepared {
                        b.insert(*t, v.clone());
                    }
                    a = AttrMap::based_on(prepared.into_base(), 4);
                } else {
                    for (t, v) in &defaults {
                        b.insert(*t, v.clone());
                    }
                    a.merge_defaults(Box::leak(Box::new(defaults)));
                }
            }
            for round in 0..20_000 {
                let ty = next() % 64;
                let v = AttrVal::new(&next().to_le_bytes()[..(next() % 9) as usize]);
                match next() % 7 {
                    0 => assert_eq!(a.insert(ty, v.clone()), b.insert(ty, v)),
                    6 if round % 2 == 0 => {
                        a.put(ty, v.clone());
                        b.insert(ty, v);
                    }
                    1 => assert_eq!(a.remove(&ty), b.remove(&ty)),
                    2 => assert_eq!(
                        a.entry(ty).or_insert_with(|| v.clone()).clone(),
                        b.entry(ty).or_insert(v).clone()
                    ),
                    3 => assert_eq!(a.get(&ty), b.get(&ty)),
                    4 if round % 97 == 0 => {
                        let keep = next();
                        a.retain(|t, _| (keep >> (t % 64)) & 1 == 1);
                        b.retain(|t, _| (keep >> (t % 64)) & 1 == 1);
                    }
                    5 => {
                        let copy = a.clone();
                        assert!(copy == a && copy.iter().eq(b.iter()));
                    }
                    _ => assert_eq!(a.contains_key(&ty), b.contains_key(&ty)),
                }
                assert_eq!(a.iter().count(), b.len());
            }
            assert!(a.iter().eq(b.iter()));
        }
        let pairs: Vec<_> = (0..50u64)
            .map(|i| (i % 7, AttrVal::new(&[i as u8])))
            .collect();
        let from_a: AttrMap = pairs.clone().into_iter().collect();
        let from_b: BTreeMap<_, _> = pairs.into_iter().collect();
        assert!(from_a.iter().eq(from_b.iter()));
    }

    /// A new object's entries over a shared base read as the base overridden by them,
    /// whether they come in order (taken as they are) or not (put one by one).
    #[test]
    fn based_on_sorted_reads_as_base_then_entries() {
        let mut base = AttrMap::new();
        for t in [1u64, 4, 9, 0x100, 0x180] {
            base.insert(t, AttrVal::new(&[t as u8; 3]));
        }
        let base = base.into_base();
        let cases: [&[(u64, u8)]; 4] = [
            &[(2, 7), (4, 8), (0x181, 9)],
            &[],
            &[(0x181, 9), (2, 7), (4, 8)],
            &[(4, 8), (4, 5), (2, 7)],
        ];
        for entries in cases {
            let mut want: BTreeMap<_, _> = base.iter().map(|(t, v)| (*t, v.clone())).collect();
            for &(t, b) in entries {
                want.insert(t, AttrVal::new(&[b]));
            }
            let own = entries
                .iter()
                .map(|&(t, b)| (t, AttrVal::new(&[b])))
                .collect();
            let m = AttrMap::based_on_sorted(base.clone(), own);
            assert!(m.iter().eq(want.iter()));
            for t in 0..0x200 {
                assert_eq!(m.get(&t), want.get(&t));
            }
        }
    }

    #[test]
    fn merge_defaults_adds_only_what_is_missing() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5_000 {
            let mut a = AttrMap::new();
            let mut b: BTreeMap<CK_ATTRIBUTE_TYPE, AttrVal> = BTreeMap::new();
            for _ in 0..next() % 50 {
                let (ty, v) = (next() % 80, AttrVal::new(&next().to_le_bytes()[..3]));
                a.insert(ty, v.clone());
                b.insert(ty, v);
            }
            let mut defaults = AttrMap::new();
            for _ in 0..next() % 45 {
                defaults.insert(next() % 90, AttrVal::new(&[next() as u8]));
            }
            let defaults: &'static AttrMap = Box::leak(Box::new(defaults));
            a.merge_defaults(defaults);
            for (ty, v) in defaults {
                b.entry(*ty).or_insert_with(|| v.clone());
            }
            assert!(a.iter().eq(b.iter()));
            // Copying the map copies only its own entries; the copy reads the same.
            assert!(a.clone().iter().eq(b.iter()));
        }
    }
}
