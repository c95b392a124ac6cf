//! Random numbers from the operating system.

use crate::error::Result;

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) -> Result<()> {
    crate::crypto::provider::provider().rng.fill(buf)
}

/// `len` random bytes.
pub fn random_bytes(len: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    fill(&mut v)?;
    Ok(v)
}
