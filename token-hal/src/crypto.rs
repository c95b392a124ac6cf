//! The crypto provider: every algorithm token-hal uses, behind one provider.
//!
//! National algorithms come from RustCrypto (`sm2`, `sm3`, `sm4`); NIST curves, RSA, AES
//! and SHA-2 from `aws-lc-rs`, with RustCrypto filling the gaps. Callers use the
//! free functions and key types of the submodules; these dispatch through
//! [`provider::provider()`], so a backend can change per algorithm without touching
//! the front ends.

pub mod aead;
mod backend;
pub mod hash;
pub mod kdf;
pub mod keyfile;
pub mod keys;
pub mod mac;
pub mod provider;
pub mod rng;
pub mod selftest;
pub mod sig;
pub mod sm2;
pub mod sym;

pub use hash::HashAlg;
pub use keys::{
    DecMech, DeriveMech, DeriveOutput, EncMech, KeyAlg, PrivateKey, PublicKey, SignMech,
};
