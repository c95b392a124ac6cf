//! The shape of every entry point: catch panics, open a span, map the result; and the
//! pointer helpers every entry point validates its arguments with.

use std::panic::{AssertUnwindSafe, catch_unwind};

use skf_sys::*;

use crate::error::{Error, Result, code};

/// The functions still served in the self-test error state: listing, connecting,
/// device state and closing; none of them computes with a key, a PIN or the random
/// generator.
const SERVED_IN_ERROR_STATE: &[&str] = &[
    "SKF_EnumDev",
    "SKF_ConnectDev",
    "SKF_DisConnectDev",
    "SKF_GetDevState",
    "SKF_GetDevInfo",
    "SKF_WaitForDevEvent",
    "SKF_CancelWaitForDevEvent",
    "SKF_LockDev",
    "SKF_UnlockDev",
    "SKF_EnumApplication",
    "SKF_CloseApplication",
    "SKF_CloseContainer",
    "SKF_CloseHandle",
];

/// Runs the body of the C function `name`; a panic becomes `SAR_FAIL`. The first call
/// of the process runs the power-on self-tests; after a failure, every function but
/// those of [`SERVED_IN_ERROR_STATE`] answers `SAR_FAIL` with one error line in the log.
pub(crate) fn run(name: &'static str, body: impl FnOnce() -> Result<()>) -> ULONG {
    let span = tracing::debug_span!("skf", func = name);
    let _g = span.enter();
    crate::api::device::power_on();
    if token_hal::crypto::selftest::failed() && !SERVED_IN_ERROR_STATE.contains(&name) {
        tracing::error!("refused: the library is in the self-test error state");
        return Error::FAIL.0;
    }
    guarded(body)
}

/// Runs a function that configures the library before its power-on (the vendor-SKF
/// bridge's `UKEY_SKF_SetTestDataDir`): no power-on here, since power-on builds the
/// registry from the configuration that call is about to change, and the bridge calls it
/// from inside the power-on of a process that bridges its own library. It computes
/// nothing, so the self-test state does not apply.
pub(crate) fn run_before_power_on(name: &'static str, body: impl FnOnce() -> Result<()>) -> ULONG {
    let span = tracing::debug_span!("skf", func = name);
    let _g = span.enter();
    guarded(body)
}

fn guarded(body: impl FnOnce() -> Result<()>) -> ULONG {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => {
            if let Err(e) = r {
                tracing::debug!(code = format_args!("{:#010x}", e.0), "failed");
            }
            code(r)
        }
        Err(_) => {
            tracing::error!("panic caught at the C boundary");
            Error::FAIL.0
        }
    }
}

/// The GM/T 0016 size-query convention: a NULL buffer asks for the length; a short
/// buffer gets `SAR_BUFFER_TOO_SMALL` and the length; otherwise the bytes and their
/// length. Nothing is written into the buffer on failure.
///
/// # Safety
/// `len` must be null or valid for read and write; `buf`, when non-null, must be valid
/// for `*len` bytes of writes.
pub(crate) unsafe fn write_sized(buf: *mut u8, len: *mut ULONG, data: &[u8]) -> Result<()> {
    // SAFETY: the caller's contract.
    unsafe { check_sized(buf, len, data.len()) }?;
    if buf.is_null() {
        return Ok(());
    }
    // SAFETY: `buf` holds at least `data.len()` bytes (checked above against `*len`).
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
    Ok(())
}

/// The first half of [`write_sized`]: writes `needed` into `*len` and says whether the
/// caller's buffer can take it (`Ok` with a non-null `buf`) or only asked (`Ok` with a
/// null `buf`).
///
/// # Safety
/// As [`write_sized`].
pub(crate) unsafe fn check_sized(buf: *mut u8, len: *mut ULONG, needed: usize) -> Result<()> {
    if len.is_null() {
        return Err(Error::INVALID_PARAM);
    }
    let needed = ULONG::try_from(needed).map_err(|_| Error::FAIL)?;
    if buf.is_null() {
        // SAFETY: checked non-null; the caller guarantees validity.
        unsafe { len.write_unaligned(needed) };
        return Ok(());
    }
    // SAFETY: as above.
    let cap = unsafe { len.read_unaligned() };
    // SAFETY: as above.
    unsafe { len.write_unaligned(needed) };
    if cap < needed {
        return Err(Error::BUFFER_TOO_SMALL);
    }
    Ok(())
}

/// A NUL-terminated string of at most `max` bytes (not counting the NUL).
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string.
pub(crate) unsafe fn cstr(p: *const CHAR, max: usize) -> Result<String> {
    if p.is_null() {
        return Err(Error::INVALID_PARAM);
    }
    // Zeroized when dropped: the string may be a PIN, and error paths drop it here.
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    loop {
        // SAFETY: the caller promises a NUL-terminated string; we stop at the NUL or
        // right after `max` bytes, never reading past the terminator.
        let b = unsafe { p.add(bytes.len()).read() };
        if b == 0 {
            break;
        }
        if bytes.len() == max {
            return Err(Error::NAME_LEN);
        }
        bytes.push(b);
    }
    if bytes.is_empty() {
        return Err(Error::NAME_LEN);
    }
    std::str::from_utf8(&bytes)
        .map(str::to_owned)
        .map_err(|_| Error::INVALID_PARAM)
}

/// A PIN: a NUL-terminated string of 1..=255 bytes, zeroized when dropped.
///
/// # Safety
/// As [`cstr`].
pub(crate) unsafe fn pin(p: *const CHAR) -> Result<token_hal::model::Pin> {
    // SAFETY: the caller's contract.
    match unsafe { cstr(p, token_hal::model::PIN_MAX_LEN) } {
        Ok(s) => Ok(token_hal::model::Pin::new(s.into_bytes())),
        Err(Error::NAME_LEN) => Err(Error::PIN_LEN),
        Err(e) => Err(e),
    }
}

/// An input byte buffer. NULL is allowed only with length 0.
///
/// # Safety
/// `p`, when non-null, must be valid for `len` bytes of reads during `'a`.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: ULONG) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::INVALID_PARAM);
    }
    // SAFETY: non-null and valid for `len` bytes, as the caller guarantees.
    Ok(unsafe { std::slice::from_raw_parts(p, len as usize) })
}

/// Reads a (packed) structure.
///
/// # Safety
/// `p` must be null or valid for a read of `T`.
pub(crate) unsafe fn read<T: Copy>(p: *const T) -> Result<T> {
    if p.is_null() {
        return Err(Error::INVALID_PARAM);
    }
    // SAFETY: non-null, valid as the caller guarantees; unaligned because packed.
    Ok(unsafe { p.read_unaligned() })
}

/// Writes a value to an output pointer.
///
/// # Safety
/// `p` must be null or valid for a write of `T`.
pub(crate) unsafe fn write<T>(p: *mut T, v: T) -> Result<()> {
    if p.is_null() {
        return Err(Error::INVALID_PARAM);
    }
    // SAFETY: non-null, valid as the caller guarantees.
    unsafe { p.write_unaligned(v) };
    Ok(())
}

/// Fails unless an output pointer is non-null (checked before any state changes).
pub(crate) fn nonnull<T>(p: *mut T) -> Result<()> {
    if p.is_null() {
        Err(Error::INVALID_PARAM)
    } else {
        Ok(())
    }
}

/// Reads an ECCCIPHERBLOB (header plus `CipherLen` bytes of C2) as raw C1‖C3‖C2.
///
/// # Safety
/// `p` must be null or point to a blob of 164 + CipherLen readable bytes.
pub(crate) unsafe fn cipher_blob(p: *const ECCCIPHERBLOB) -> Result<Vec<u8>> {
    if p.is_null() {
        return Err(Error::INVALID_PARAM);
    }
    let mut header = [0u8; ECCCIPHERBLOB_HEADER_LEN];
    // SAFETY: the blob has at least its 164-byte header.
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), header.as_mut_ptr(), header.len()) };
    let len = ULONG::from_ne_bytes([header[160], header[161], header[162], header[163]]);
    if len as usize > crate::api::device::MAX_BUFFER {
        return Err(Error::DATA_LEN);
    }
    // SAFETY: the blob carries `CipherLen` bytes after its header.
    let c2 = unsafe { bytes(p.cast::<u8>().add(ECCCIPHERBLOB_HEADER_LEN), len) }?;
    crate::api::blobs::cipher_raw(&header, c2)
}

/// Writes an ECCCIPHERBLOB of raw C1‖C3‖C2. The caller allocated 164 + len bytes; the
/// function has no capacity argument, so it must be trusted (see docs/skf.md).
///
/// # Safety
/// `p` must be null or valid for 164 + C2-length bytes of writes.
pub(crate) unsafe fn write_cipher_blob(p: *mut ECCCIPHERBLOB, raw: &[u8]) -> Result<()> {
    if p.is_null() {
        return Err(Error::INVALID_PARAM);
    }
    let b = crate::api::blobs::cipher_blob_bytes(raw)?;
    // SAFETY: the caller's contract above.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p.cast::<u8>(), b.len()) };
    Ok(())
}

/// The bytes of a packed C structure (for the size-query convention).
pub(crate) fn struct_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: `T` is one of the packed, plain-old-data skf-sys structures (no padding,
    // every byte initialised); the slice borrows `v` for its lifetime.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}
