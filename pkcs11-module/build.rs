//! Link flags of the shared library.

fn main() {
    // Stay mapped after dlclose (-z nodelete): the crypto libraries inside register
    // per-thread destructors (pthread keys) on the threads that call in. If the host
    // unloaded the library and such a thread exited later, its destructor would jump
    // into unmapped code. OpenSSL's libcrypto pins itself for the same reason.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
