//! Safe, typed implementations of the entry points.

pub(crate) mod general;
