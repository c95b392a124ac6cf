//! [`AttrVal`]: one attribute's value bytes, zeroized on drop. Short values (flags,
//! `CK_ULONG`s, short IDs and dates) are stored inline, so filling in an object's
//! defaults makes no heap allocation per attribute.

use std::fmt;
use std::ops::Deref;

use zeroize::{Zeroize, Zeroizing};

/// The longest value kept inline.
const INLINE: usize = 22;

/// An attribute value: bytes, zeroized when dropped. `Debug` shows the length only.
#[derive(Clone)]
pub(crate) struct AttrVal(Repr);

#[derive(Clone)]
enum Repr {
    Inline(Inline),
    /// A boxed slice, not a vector: 16 bytes, so a value is 24 and a map entry 32.
    Heap(Zeroizing<Box<[u8]>>),
    /// A public value several objects hold (a generated key pair's SPKI and EC point, in
    /// both halves): a clone shares it. Never a secret, so nothing to zeroize.
    Shared(std::sync::Arc<[u8]>),
}

/// A short value in place. `Copy`, so cloning a value copies it as one block: a clone
/// built field by field (a byte, then the bytes) and read back whole stalled store
/// forwarding, which made filling in an object's defaults cost about 0.5 µs.
#[derive(Clone, Copy)]
struct Inline {
    buf: [u8; INLINE],
    len: u8,
}

impl AttrVal {
    /// A copy of `b`.
    pub(crate) fn new(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Self(Repr::Inline(Inline {
                len: b.len() as u8,
                buf,
            }))
        } else {
            Self(Repr::Heap(Zeroizing::new(b.into())))
        }
    }
    /// A value of `N` bytes known at compile time, inline (`N` ≤ 22).
    pub(crate) const fn small<const N: usize>(b: [u8; N]) -> Self {
        assert!(N <= INLINE);
        let mut buf = [0u8; INLINE];
        let mut i = 0;
        while i < N {
            buf[i] = b[i];
            i += 1;
        }
        Self(Repr::Inline(Inline { len: N as u8, buf }))
    }
    /// A copy of the public value `b` that clones share instead of copying (short values
    /// stay inline). For public values only: a shared value is not zeroized.
    pub(crate) fn public(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            Self::new(b)
        } else {
            Self(Repr::Shared(b.into()))
        }
    }
    /// The public value `b`, shared (no copy; short values are copied inline). For
    /// public values only, as [`Self::public`].
    pub(crate) fn shared(b: std::sync::Arc<[u8]>) -> Self {
        if b.len() <= INLINE {
            Self::new(&b)
        } else {
            Self(Repr::Shared(b))
        }
    }
    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(Inline { len, buf }) => &buf[..usize::from(*len)],
            Repr::Heap(v) => v,
            Repr::Shared(v) => v,
        }
    }
    /// The bytes in a zeroizing vector of their own.
    pub(crate) fn to_zeroizing(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.as_slice().to_vec())
    }
}

impl Default for AttrVal {
    fn default() -> Self {
        Self(Repr::Inline(Inline {
            len: 0,
            buf: [0; INLINE],
        }))
    }
}

impl Drop for AttrVal {
    fn drop(&mut self) {
        // A heap value zeroizes itself (Zeroizing). Inline bytes past `len` are zero from
        // `new` on (nothing writes to a value after it is made).
        if let Repr::Inline(Inline { len, buf }) = &mut self.0 {
            buf[..usize::from(*len)].zeroize();
        }
    }
}

impl Deref for AttrVal {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for AttrVal {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for AttrVal {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for AttrVal {}

impl fmt::Debug for AttrVal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttrVal({} bytes)", self.len())
    }
}

impl From<&[u8]> for AttrVal {
    fn from(b: &[u8]) -> Self {
        Self::new(b)
    }
}

impl From<Vec<u8>> for AttrVal {
    fn from(v: Vec<u8>) -> Self {
        Zeroizing::new(v).into()
    }
}

impl From<Zeroizing<Vec<u8>>> for AttrVal {
    /// A long value in an exactly full vector is moved in, not copied; others are
    /// copied (inline when short) and the vector is zeroized as it drops.
    fn from(v: Zeroizing<Vec<u8>>) -> Self {
        if v.len() <= INLINE || v.capacity() != v.len() {
            // Copied (a shrinking reallocation would leave the bytes behind unzeroized);
            // the vector is zeroized as it drops.
            Self::new(&v)
        } else {
            let mut v = v;
            Self(Repr::Heap(Zeroizing::new(
                std::mem::take(&mut *v).into_boxed_slice(),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 24 bytes a value, 32 an entry of a map: a key object's thirty-odd attributes fit
    /// one allocation the allocator serves from its per-thread cache.
    #[test]
    fn a_value_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<AttrVal>(), 24);
        assert_eq!(
            std::mem::size_of::<(cryptoki_sys::CK_ATTRIBUTE_TYPE, AttrVal)>(),
            32
        );
    }

    #[test]
    fn short_and_long_values_read_back() {
        for n in [0usize, 1, 8, INLINE, INLINE + 1, 300] {
            let b: Vec<u8> = (0..n).map(|i| i as u8).collect();
            assert_eq!(AttrVal::new(&b).as_slice(), &b[..]);
            assert_eq!(&*AttrVal::from(b.clone()), &b[..]);
            // A vector with spare room is copied, not shrunk in place.
            let mut roomy = Vec::with_capacity(n + 9);
            roomy.extend_from_slice(&b);
            assert_eq!(&*AttrVal::from(roomy), &b[..]);
            assert_eq!(&*AttrVal::from(Zeroizing::new(b.clone())), &b[..]);
            assert_eq!(AttrVal::new(&b).clone(), AttrVal::new(&b));
        }
        assert!(AttrVal::default().is_empty());
        assert_eq!(format!("{:?}", AttrVal::new(b"secret")), "AttrVal(6 bytes)");
    }
}
