//! Fork handling: by default a forked child starts with no module state, so its
//! `C_Initialize` succeeds (pkcs11-tool `--test-fork`). With a SoftHSM2 config whose
//! `library.reset_on_fork` is false, the child keeps the parent's state, as SoftHSM2 does.

use std::sync::Once;

static ARMED: Once = Once::new();

extern "C" fn in_child() {
    let reset = crate::state::module()
        .map(|m| m.compat.reset_on_fork)
        .unwrap_or(true);
    if reset {
        crate::state::forget();
    }
}

/// Installs the `pthread_atfork` child handler once.
pub(crate) fn arm() {
    ARMED.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn()` with no captured state as the child
        // handler; the other two handlers are absent.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        if rc != 0 {
            tracing::warn!(rc, "pthread_atfork failed");
        }
    });
}
