//! Safe, typed implementations of the entry points, over [`crate::state`].

pub(crate) mod crypto;
pub(crate) mod general;
pub(crate) mod kbkdf;
pub(crate) mod keys;
pub(crate) mod message;
pub(crate) mod objects;
