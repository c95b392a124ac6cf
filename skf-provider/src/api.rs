//! Safe implementations of the SKF functions.

pub(crate) mod device;
