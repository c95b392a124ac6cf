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

static PINNED: Once = Once::new();

/// Keeps this library loaded for the life of the process: Rust thread-local destructors
/// registered by its code would otherwise jump into unmapped memory when a thread exits
/// after the caller's `dlclose`.
pub(crate) fn pin_library() {
    PINNED.call_once(|| {
        let mut info = libc::Dl_info {
            dli_fname: std::ptr::null(),
            dli_fbase: std::ptr::null_mut(),
            dli_sname: std::ptr::null(),
            dli_saddr: std::ptr::null_mut(),
        };
        let addr = pin_library as *const std::ffi::c_void;
        // SAFETY: `addr` is an address inside this library; `info` is a valid out-struct.
        let ok = unsafe { libc::dladdr(addr, &mut info) };
        if ok == 0 || info.dli_fname.is_null() {
            return;
        }
        // SAFETY: `dli_fname` is the NUL-terminated path the loader gave; RTLD_NOLOAD only
        // takes another reference to the already-loaded library, RTLD_NODELETE pins it.
        let h = unsafe {
            libc::dlopen(
                info.dli_fname,
                libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
            )
        };
        if h.is_null() {
            tracing::warn!("could not pin the library in memory");
        }
    });
}
