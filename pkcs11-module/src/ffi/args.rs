//! Pointer and length checks at the C boundary, and the two-call length protocol.
//!
//! Every reader checks for null (→ `CKR_ARGUMENTS_BAD`) before building a Rust reference;
//! every writer writes only on success.

use cryptoki_sys::*;

use crate::error::{Error, Result};

/// A byte slice from `(p, len)`. A null pointer is allowed only with length 0.
///
/// # Safety
/// A non-null `p` must be valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::ARGS);
    }
    let n = usize::try_from(len).map_err(|_| Error::ARGS)?;
    // SAFETY: non-null, and the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A slice of `T` from `(p, count)`; null only with count 0.
///
/// # Safety
/// A non-null `p` must be valid for reads of `count` values for `'a`.
pub(crate) unsafe fn slice<'a, T>(p: *const T, count: CK_ULONG) -> Result<&'a [T]> {
    if count == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::ARGS);
    }
    let n = usize::try_from(count).map_err(|_| Error::ARGS)?;
    // SAFETY: non-null, and the caller guarantees `count` readable values.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Writes `value` through an out-pointer; null → `CKR_ARGUMENTS_BAD`.
///
/// # Safety
/// A non-null `p` must be valid for a write of `T`.
pub(crate) unsafe fn write<T>(p: *mut T, value: T) -> Result<()> {
    if p.is_null() {
        return Err(Error::ARGS);
    }
    // SAFETY: non-null and valid for writes, as the caller guarantees.
    unsafe { p.write(value) };
    Ok(())
}

/// Reads a value through an in-pointer; null → `CKR_ARGUMENTS_BAD`.
///
/// # Safety
/// A non-null `p` must be valid for a read of `T`.
pub(crate) unsafe fn read<T: Copy>(p: *const T) -> Result<T> {
    if p.is_null() {
        return Err(Error::ARGS);
    }
    // SAFETY: non-null and valid for reads, as the caller guarantees.
    Ok(unsafe { p.read() })
}

/// The caller's output buffer `(pBuf, pulLen)` of the two-call length protocol.
pub(crate) struct OutBuf {
    buf: *mut u8,
    len: *mut CK_ULONG,
    cap: Option<usize>,
}

impl OutBuf {
    /// Checks `pulLen` and reads the capacity (None: a size query, `pBuf` null).
    ///
    /// # Safety
    /// `len` must be null or valid for reads and writes of a `CK_ULONG`; a non-null `buf`
    /// must be valid for writes of `*len` bytes.
    pub(crate) unsafe fn new(buf: *mut u8, len: *mut CK_ULONG) -> Result<Self> {
        if len.is_null() {
            return Err(Error::ARGS);
        }
        let cap = if buf.is_null() {
            None
        } else {
            // SAFETY: checked non-null; the caller guarantees validity.
            Some(usize::try_from(unsafe { len.read() }).unwrap_or(usize::MAX))
        };
        Ok(Self { buf, len, cap })
    }

    /// The capacity, or None for a size query.
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.cap
    }

    /// The caller's buffer as a mutable slice of its declared capacity, when there is one
    /// (not a size query), it is not empty and it does not overlap `input` (PKCS#11 lets
    /// C_Encrypt/C_Decrypt work in place; those calls get `None` and the copying path).
    ///
    /// # Safety
    /// The contract of [`OutBuf::new`]; no other reference to the buffer may be used
    /// while the slice lives.
    pub(crate) unsafe fn disjoint_from<'a>(&self, input: &[u8]) -> Option<&'a mut [u8]> {
        let cap = self.cap.filter(|&c| c > 0 && isize::try_from(c).is_ok())?;
        let out_start = self.buf as usize;
        let out_end = out_start.checked_add(cap)?;
        let in_start = input.as_ptr() as usize;
        let in_end = in_start + input.len();
        if !input.is_empty() && in_start < out_end && out_start < in_end {
            return None;
        }
        // SAFETY: `buf` is non-null (cap is Some) and valid for writes of `cap` bytes, as
        // the caller declared through `*len`; it overlaps no live reference (checked above
        // for the input).
        Some(unsafe { std::slice::from_raw_parts_mut(self.buf, cap) })
    }

    /// Reports `needed` as the length (a size query, or a short buffer).
    pub(crate) fn set_len(&self, needed: usize) -> Result<()> {
        // SAFETY: `len` was checked non-null in `new`; the caller guaranteed validity.
        unsafe { write(self.len, needed as CK_ULONG) }
    }

    /// Delivers a result: copies `data` if it fits (writing the length), else writes the
    /// needed length and fails with `CKR_BUFFER_TOO_SMALL`; a size query writes the
    /// length only.
    pub(crate) fn deliver(&self, data: &[u8]) -> Result<()> {
        match self.cap {
            None => self.set_len(data.len()),
            Some(cap) if cap < data.len() => {
                self.set_len(data.len())?;
                Err(Error(CKR_BUFFER_TOO_SMALL))
            }
            Some(_) => {
                if !data.is_empty() {
                    // SAFETY: `buf` is non-null (cap is Some) and holds `cap >= data.len()`
                    // bytes, as the caller declared through `*len`.
                    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.buf, data.len()) };
                }
                self.set_len(data.len())
            }
        }
    }
}
