//! libukey_skf.so: the GM/T 0016 (SKF) face of ukey.
//!
//! `ffi/` holds the exported `SKF_*` functions and all of this crate's `unsafe`; `api/` is
//! safe code over token-hal; `error.rs` is the one place a `SAR_*` code is chosen. This
//! build exports device enumeration; the SKF issue adds the other 77 functions.

mod api;
pub mod error;
mod ffi;

pub use ffi::device::SKF_EnumDev;
