//! The C ABI: every exported and listed entry point, and all of this crate's `unsafe`.

pub(crate) mod entry;
pub(crate) mod general;
pub(crate) mod unsupported;
