//! The AEAD that seals secrets at rest: AES-256-GCM with a random 96-bit nonce.
//! Sealed form: nonce(12) ‖ ciphertext ‖ tag(16).

use zeroize::Zeroizing;

use crate::crypto::provider::provider;
use crate::crypto::rng;
use crate::error::{Error, Result};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Seals `plaintext` under `key`, binding `aad`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rng::fill(&mut nonce)?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = provider()
        .aead
        .seal_in_place(key, &nonce, aad, &mut out[NONCE_LEN..])?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens what [`seal`] made. A wrong key, wrong AAD or any tampering gives
/// `Error::DecryptFailed`.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::DecryptFailed);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::DecryptFailed)?;
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::DecryptFailed)?;
    let mut buf = Zeroizing::new(ct.to_vec());
    provider()
        .aead
        .open_in_place(key, nonce, aad, &mut buf, tag)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"obj1/attr", b"secret").unwrap();
        assert_eq!(sealed.len(), 12 + 6 + 16);
        assert_eq!(&open(&key, b"obj1/attr", &sealed).unwrap()[..], b"secret");
        assert!(matches!(
            open(&key, b"obj2/attr", &sealed),
            Err(Error::DecryptFailed)
        ));
        let mut bad = sealed.clone();
        bad[14] ^= 1;
        assert!(matches!(
            open(&key, b"obj1/attr", &bad),
            Err(Error::DecryptFailed)
        ));
        assert!(matches!(
            open(&[8u8; 32], b"obj1/attr", &sealed),
            Err(Error::DecryptFailed)
        ));
        assert!(matches!(
            open(&key, b"", &sealed[..20]),
            Err(Error::DecryptFailed)
        ));
        // Two seals of the same plaintext differ (random nonce).
        assert_ne!(sealed, seal(&key, b"obj1/attr", b"secret").unwrap());
    }
}
