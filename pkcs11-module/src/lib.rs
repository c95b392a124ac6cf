//! libukey_pkcs11.so: the PKCS#11 face of ukey.
//!
//! Layers (STYLE.md §5): `ffi/` holds every C entry point and all of this crate's `unsafe`;
//! `api/` is safe, typed code over [`state`], [`session`] and [`object`]; `error.rs` is
//! the one place a `CKR_*` is chosen.

mod api;
mod compat;
pub mod error;
mod ffi;
mod keys;
mod landing;
mod mechanism;
mod object;
mod session;
mod state;

pub use ffi::lists::{C_GetFunctionList, C_GetInterface, C_GetInterfaceList};
