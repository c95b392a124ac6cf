//! Safe implementations of the SKF functions.

#![forbid(unsafe_code)]

pub(crate) mod agreement;
pub(crate) mod blobs;
pub(crate) mod device;
pub(crate) mod objects;
