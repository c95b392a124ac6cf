//! libukey_pkcs11.so: the PKCS#11 face of ukey.
//!
//! Layers (STYLE.md §5): `ffi/` holds every C entry point and all of this crate's `unsafe`;
//! `api/` is safe, typed code over [`state`]; `error.rs` is the one place a `CKR_*` is chosen.
//! This build offers the general-purpose, slot and token functions of the v2.40 list; the
//! rest answer `CKR_FUNCTION_NOT_SUPPORTED` until the PKCS#11 issue lands.

mod api;
pub mod error;
mod ffi;
mod state;

pub use ffi::general::C_GetFunctionList;
