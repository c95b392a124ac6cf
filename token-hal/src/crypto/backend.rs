//! The default provider's implementations. Front ends never name these; they go
//! through [`crate::crypto::provider::provider()`].

pub mod awslc;
pub mod edwards;
pub mod gcm;
pub mod hash;
pub mod rsa;
pub mod sm2;
pub mod sm2fast;
pub mod sm4fast;
pub mod symmetric;

use crate::crypto::provider::RngProvider;
use crate::error::{Error, Result};

/// `getrandom`: the operating system's CSPRNG.
#[derive(Debug)]
pub struct OsRng;

impl RngProvider for OsRng {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        getrandom::fill(buf).map_err(|e| Error::internal(format!("OS random source: {e}")))
    }
}
