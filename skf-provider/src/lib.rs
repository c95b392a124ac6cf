//! libukey_skf.so: the GM/T 0016 (SKF) face of ukey.
//!
//! `ffi/` holds the exported `SKF_*` functions (all 78 of GM/T 0016-2012 §7.1–7.6 plus
//! `SKF_ECCDecrypt`), the handle table and all of this crate's `unsafe`; `api/` is safe
//! code over token-hal; `error.rs` is the one place a `SAR_*` code is chosen. The
//! behaviour choices are in docs/skf.md.

mod api;
pub mod error;
mod ffi;

pub use ffi::app::*;
pub use ffi::crypto::*;
pub use ffi::device::*;
