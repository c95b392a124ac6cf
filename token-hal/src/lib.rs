//! token-hal: the hardware abstraction under both of ukey's faces.
//!
//! It holds the token model ([`model`]), the [`token::Device`] / [`token::Application`]
//! traits every backend implements, the crypto provider ([`crypto`]), the soft-token
//! backend ([`soft`]), and the one place that decides where data lives ([`config`]).
//! It knows nothing of `CKR_*`, `SAR_*` or C types.

#![forbid(unsafe_code)]

pub mod apdu;
pub mod cert;
pub mod config;
pub mod crypto;
pub mod error;
pub mod logging;
pub mod model;
pub mod registry;
pub mod slot;
pub mod soft;
pub mod tender;
pub mod token;

pub use error::{Error, Result};
pub use model::*;
pub use token::{Application, Device};
