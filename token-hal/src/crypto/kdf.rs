//! Key derivation: PBKDF2 (HMAC-SM3 and HMAC-SHA-*).

use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::crypto::provider::provider;
use crate::error::{Error, Result};

/// PBKDF2 with HMAC over `prf`.
pub fn pbkdf2(
    prf: HashAlg,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    if iterations == 0 {
        return Err(Error::invalid_arg(
            "PBKDF2 iteration count must be at least 1",
        ));
    }
    if out_len == 0 || out_len > 1024 {
        return Err(Error::invalid_arg(
            "PBKDF2 output length must be 1..=1024 bytes",
        ));
    }
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    provider()
        .hash
        .pbkdf2(prf, password, salt, iterations, &mut out);
    Ok(out)
}
