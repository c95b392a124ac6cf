//! The C ABI: every exported `SKF_*` function, and all of this crate's `unsafe`.

pub(crate) mod app;
pub(crate) mod crypto;
pub(crate) mod device;
pub(crate) mod entry;
pub(crate) mod handles;
