//! The shape of every entry point: catch panics, open a span, map the result.

use std::panic::{AssertUnwindSafe, catch_unwind};

use cryptoki_sys::{CK_RV, CKR_GENERAL_ERROR, CKR_OK};

use crate::error::Result;

/// Runs the safe body of the C function `name`. A panic becomes `CKR_GENERAL_ERROR`, an
/// `Err` its code. The span carries only the function name, never arguments.
pub(crate) fn run(name: &'static str, body: impl FnOnce() -> Result<()>) -> CK_RV {
    let span = tracing::debug_span!("pkcs11", func = name);
    let _g = span.enter();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => {
            tracing::debug!(rv = e.0, "failed");
            e.0
        }
        Err(_) => {
            tracing::error!("panic caught at the C boundary");
            CKR_GENERAL_ERROR
        }
    }
}
