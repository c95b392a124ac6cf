//! The shape of every entry point: catch panics, open a span, map the result.
//!
//! [`ck_fn!`] generates each `extern "C"` function of the function lists. Its body is an
//! ordinary Rust block returning [`crate::error::Result<()>`]; the macro wraps it in
//! [`run`], which catches panics (→ `CKR_GENERAL_ERROR`), opens a `tracing` span naming
//! only the function (never an argument, so no PIN or key byte reaches a log) and turns
//! `Err(e)` into its `CKR_*`, chosen in `error.rs`.
//!
//! It also enforces the self-test error state: once the power-on self-tests have failed
//! (token-hal `selftest`, run by `C_Initialize`), every function but the general, slot and
//! session ones answers `CKR_GENERAL_ERROR` with one error line in the log.

use std::panic::{AssertUnwindSafe, catch_unwind};

use cryptoki_sys::{CK_RV, CKR_GENERAL_ERROR, CKR_OK};

use crate::error::Result;

/// The functions still served in the self-test error state: none of them computes with a
/// key, a PIN or the random generator.
const SERVED_IN_ERROR_STATE: &[&str] = &[
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetInterfaceList",
    "C_GetInterface",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_WaitForSlotEvent",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetFunctionStatus",
    "C_CancelFunction",
];

/// Runs the safe body of the C function `name`.
pub(crate) fn run(name: &'static str, body: impl FnOnce() -> Result<()>) -> CK_RV {
    let span = tracing::debug_span!("pkcs11", func = name);
    let _g = span.enter();
    if token_hal::crypto::selftest::failed() && !SERVED_IN_ERROR_STATE.contains(&name) {
        tracing::error!("refused: the module is in the self-test error state");
        return CKR_GENERAL_ERROR;
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => {
            tracing::debug!(rv = format_args!("{:#x}", e.0), "failed");
            e.0
        }
        Err(_) => {
            tracing::error!("panic caught at the C boundary");
            CKR_GENERAL_ERROR
        }
    }
}

/// Defines one `extern "C"` entry point whose body is a `Result<()>` block.
macro_rules! ck_fn {
    ($(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[allow(non_snake_case, clippy::too_many_arguments)]
        pub(crate) extern "C" fn $name($($arg: $ty),*) -> cryptoki_sys::CK_RV {
            $crate::ffi::entry::run(stringify!($name), move || -> $crate::error::Result<()> {
                $body
            })
        }
    };
}
pub(crate) use ck_fn;
