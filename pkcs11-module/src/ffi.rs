//! The C ABI: every exported and listed entry point, and all of this crate's `unsafe`.

pub(crate) mod args;
pub(crate) mod entry;
pub(crate) mod fork;
pub(crate) mod functions;
pub(crate) mod lists;
pub(crate) mod mech;
