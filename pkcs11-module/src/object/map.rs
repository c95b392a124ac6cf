//! [`AttrMap`]: an object's attributes as one vector sorted by type. Objects carry a few
//! dozen attributes, so a binary search and a short `memmove` beat a B-tree's node
//! allocations, and a complete object costs one allocation instead of one per node.
//!
//! Values up to [`AttrVal`]'s inline size live in the vector itself, so shifting or
//! regrowing it would leave byte copies of (possibly secret) values behind. Every
//! operation that can leave such a copy in the vector's spare capacity zeroizes it, and
//! growth moves the entries into a new buffer and zeroizes the old one.

use std::fmt;

use zeroize::Zeroize;

use cryptoki_sys::CK_ATTRIBUTE_TYPE;

use super::AttrVal;

/// Attributes sorted by type, each type at most once. The subset of `BTreeMap`'s API the
/// module uses, with the same meaning (iteration in ascending type order).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct AttrMap(Vec<(CK_ATTRIBUTE_TYPE, AttrVal)>);

/// The first capacity: room for most key objects' attributes, and at 32 bytes an entry
/// (1 KiB) small enough for the allocator's per-thread cache.
const TYPICAL: usize = 32;

impl AttrMap {
    /// An empty map.
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }
    /// An empty map with room for `n` entries.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }
    fn find(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<usize, usize> {
        self.0.binary_search_by_key(&ty, |(t, _)| *t)
    }
    /// Inserts at `i` (from a failed [`Self::find`]), growing through a zeroized move.
    fn insert_at(&mut self, i: usize, ty: CK_ATTRIBUTE_TYPE, v: AttrVal) {
        self.room_for(1);
        self.0.insert(i, (ty, v));
    }
    /// Makes room for `n` more entries without a reallocation that would leave the old
    /// buffer's bytes behind: a vector too full moves into a larger one and the old
    /// buffer is zeroized.
    fn room_for(&mut self, n: usize) {
        if self.0.capacity() - self.0.len() < n {
            let want = (self.0.capacity() * 2).max(TYPICAL).max(self.0.len() + n);
            let mut grown = Vec::with_capacity(want);
            let held = self.0.len();
            grown.append(&mut self.0);
            wipe(&mut self.0.spare_capacity_mut()[..held]);
            self.0 = grown;
        }
    }
    /// Adds a copy of each entry of `defaults` whose type this map lacks: the defaults
    /// copied whole into a new vector with room for this map's entries, then each entry
    /// moved over them (a binary search each; a map being completed holds a handful
    /// against some thirty defaults). The old buffer, left holding the moved values'
    /// bytes, is zeroized. (An element-wise merge moved each entry through a stack
    /// temporary in pieces that stalled store forwarding: about 0.5 µs per object.)
    pub(crate) fn merge_defaults(&mut self, defaults: &AttrMap) {
        let held = self.0.len();
        let mut out = Vec::with_capacity(held + defaults.0.len());
        out.extend_from_slice(&defaults.0);
        for (t, v) in self.0.drain(..) {
            match out.binary_search_by_key(&t, |(ty, _)| *ty) {
                Ok(i) => out[i].1 = v,
                // Within the capacity reserved above: no reallocation leaves bytes behind.
                Err(i) => out.insert(i, (t, v)),
            }
        }
        wipe(&mut self.0.spare_capacity_mut()[..held]);
        self.0 = out;
    }
    /// The value of `ty`.
    pub(crate) fn get(&self, ty: &CK_ATTRIBUTE_TYPE) -> Option<&AttrVal> {
        self.find(*ty).ok().map(|i| &self.0[i].1)
    }
    /// Whether `ty` is present.
    pub(crate) fn contains_key(&self, ty: &CK_ATTRIBUTE_TYPE) -> bool {
        self.find(*ty).is_ok()
    }
    /// Sets `ty`; the previous value, if any.
    pub(crate) fn insert(&mut self, ty: CK_ATTRIBUTE_TYPE, v: AttrVal) -> Option<AttrVal> {
        match self.find(ty) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            Err(i) => {
                self.insert_at(i, ty, v);
                None
            }
        }
    }
    /// Removes `ty`; its value, if it was present.
    pub(crate) fn remove(&mut self, ty: &CK_ATTRIBUTE_TYPE) -> Option<AttrVal> {
        let i = self.find(*ty).ok()?;
        let v = self.0.remove(i).1;
        // The shift left leaves a copy of the last entry in the first spare slot.
        wipe(&mut self.0.spare_capacity_mut()[..1]);
        Some(v)
    }
    /// Sets every attribute of `other` (its values win), emptying it.
    pub(crate) fn absorb(&mut self, mut other: AttrMap) {
        let held = other.0.len();
        for (t, v) in other.0.drain(..) {
            self.insert(t, v);
        }
        // Draining moved the values out bytewise: clear what they left behind.
        wipe(&mut other.0.spare_capacity_mut()[..held]);
    }
    /// The slot for `ty`, present or not.
    pub(crate) fn entry(&mut self, ty: CK_ATTRIBUTE_TYPE) -> Entry<'_> {
        let at = self.find(ty);
        Entry { map: self, ty, at }
    }
    /// (type, value) pairs in ascending type order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&CK_ATTRIBUTE_TYPE, &AttrVal)> {
        self.0.iter().map(|(t, v)| (t, v))
    }
    /// The values, in ascending type order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &AttrVal> {
        self.0.iter().map(|(_, v)| v)
    }
    /// Keeps only the attributes `f` accepts.
    pub(crate) fn retain(&mut self, mut f: impl FnMut(&CK_ATTRIBUTE_TYPE, &mut AttrVal) -> bool) {
        let before = self.0.len();
        self.0.retain_mut(|(t, v)| f(t, v));
        // The compaction leaves copies in as many slots past the new end as it dropped.
        let gone = before - self.0.len();
        wipe(&mut self.0.spare_capacity_mut()[..gone]);
    }
}

/// One type's slot in an [`AttrMap`], as `BTreeMap::entry` gives it.
/// Zeroizes slots that values were moved or removed from, one volatile write per slot
/// (zeroize's slice form writes byte by byte, several times slower).
fn wipe(slots: &mut [std::mem::MaybeUninit<(CK_ATTRIBUTE_TYPE, AttrVal)>]) {
    slots.iter_mut().for_each(Zeroize::zeroize);
}

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
        &mut self.map.0[i].1
    }
    /// The value, inserting an empty one first if absent.
    pub(crate) fn or_default(self) -> &'a mut AttrVal {
        self.or_insert_with(AttrVal::default)
    }
}

impl Extend<(CK_ATTRIBUTE_TYPE, AttrVal)> for AttrMap {
    fn extend<I: IntoIterator<Item = (CK_ATTRIBUTE_TYPE, AttrVal)>>(&mut self, it: I) {
        for (t, v) in it {
            self.insert(t, v);
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
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (CK_ATTRIBUTE_TYPE, AttrVal)>,
        fn(&'a (CK_ATTRIBUTE_TYPE, AttrVal)) -> (&'a CK_ATTRIBUTE_TYPE, &'a AttrVal),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(t, v)| (t, v))
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

    /// Random operations give the same contents and order as a `BTreeMap`.
    #[test]
    fn behaves_like_a_btreemap() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut a = AttrMap::new();
        let mut b: BTreeMap<CK_ATTRIBUTE_TYPE, AttrVal> = BTreeMap::new();
        for _ in 0..20_000 {
            let ty = next() % 64;
            let v = AttrVal::new(&next().to_le_bytes()[..(next() % 9) as usize]);
            match next() % 5 {
                0 => assert_eq!(a.insert(ty, v.clone()), b.insert(ty, v)),
                1 => assert_eq!(a.remove(&ty), b.remove(&ty)),
                2 => assert_eq!(
                    a.entry(ty).or_insert_with(|| v.clone()).clone(),
                    b.entry(ty).or_insert(v).clone()
                ),
                3 => assert_eq!(a.get(&ty), b.get(&ty)),
                _ => assert_eq!(a.contains_key(&ty), b.contains_key(&ty)),
            }
            assert_eq!(a.iter().count(), b.len());
        }
        assert!(a.iter().eq(b.iter()));
        let pairs: Vec<_> = (0..50u64)
            .map(|i| (i % 7, AttrVal::new(&[i as u8])))
            .collect();
        let from_a: AttrMap = pairs.clone().into_iter().collect();
        let from_b: BTreeMap<_, _> = pairs.into_iter().collect();
        assert!(from_a.iter().eq(from_b.iter()));
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
            a.merge_defaults(&defaults);
            for (ty, v) in &defaults {
                b.entry(*ty).or_insert_with(|| v.clone());
            }
            assert!(a.iter().eq(b.iter()));
        }
    }
}
