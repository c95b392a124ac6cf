//! The crypto provider's SIMD module (issue 8): the one place in token-hal's tree where
//! `unsafe` is allowed, and only for CPU intrinsics. token-hal itself stays
//! `#![forbid(unsafe_code)]` and calls the safe functions exported here.
//!
//! Every kernel has a portable twin; [`tier::Tier`] picks the fastest one the CPU
//! supports, and `UKEY_CPU_TIER` caps it (tests force every tier this machine has).
//! Each `unsafe` block carries a `// SAFETY:` comment: the only obligations are that
//! the CPU features the intrinsics need were detected at run time, and that pointer
//! arithmetic stays inside the slices it came from.

#![deny(unsafe_code)]

pub mod ctscan;
pub mod ghash;
pub mod sm2ifma;
pub mod sm2p;
pub mod sm3;
pub mod sm4;
pub mod tier;

pub use tier::Tier;
