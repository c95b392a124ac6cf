//! The shape of every entry point: catch panics, open a span, map the result; and the
//! size-query output helper.

use std::panic::{AssertUnwindSafe, catch_unwind};

use skf_sys::*;

use crate::error::{Error, Result};

/// Runs the body of the C function `name`; a panic becomes `SAR_FAIL`.
pub(crate) fn run(name: &'static str, body: impl FnOnce() -> Result<()>) -> ULONG {
    let span = tracing::debug_span!("skf", func = name);
    let _g = span.enter();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SAR_OK,
        Ok(Err(e)) => e.0,
        Err(_) => {
            tracing::error!("panic caught at the C boundary");
            SAR_FAIL
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
    if len.is_null() {
        return Err(Error(SAR_INVALIDPARAMERR));
    }
    let needed = ULONG::try_from(data.len()).map_err(|_| Error(SAR_FAIL))?;
    if buf.is_null() {
        // SAFETY: checked non-null; the caller guarantees validity.
        unsafe { len.write(needed) };
        return Ok(());
    }
    // SAFETY: checked non-null; the caller guarantees validity.
    let cap = unsafe { len.read() };
    if cap < needed {
        // SAFETY: as above.
        unsafe { len.write(needed) };
        return Err(Error(SAR_BUFFER_TOO_SMALL));
    }
    // SAFETY: `buf` holds `cap >= needed` bytes, as the caller declared.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
    // SAFETY: as above.
    unsafe { len.write(needed) };
    Ok(())
}
