//! Key derivation: PBKDF2 (HMAC-SM3 and HMAC-SHA-*).

use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::error::Result;

/// PBKDF2 with HMAC over `prf`.
pub fn pbkdf2(
    prf: HashAlg,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let _ = (prf, password, salt, iterations, out_len);
    todo!("crypto helper")
}
