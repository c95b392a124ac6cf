//! RSA: aws-lc-rs for 2048+ bit keys and the common mechanisms, RustCrypto `rsa` for
//! 1024-bit keys and what aws-lc-rs does not offer.

use zeroize::Zeroizing;

use crate::crypto::keys::{DecMech, EncMech, KeyAlg, PublicKey, SignMech};
use crate::crypto::provider::{AsymProvider, PrivateKeyOps};
use crate::error::{Error, Result};

/// The default RSA implementation.
#[derive(Debug)]
pub struct RsaBackend;

impl AsymProvider for RsaBackend {
    fn generate(&self, alg: KeyAlg) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::unsupported(format!(
            "{alg:?} (RSA backend in progress)"
        )))
    }
    fn load_private(&self, alg: KeyAlg, _pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>> {
        Err(Error::unsupported(format!(
            "{alg:?} (RSA backend in progress)"
        )))
    }
    fn verify(&self, _key: &PublicKey, mech: &SignMech, _data: &[u8], _sig: &[u8]) -> Result<()> {
        Err(Error::unsupported(format!(
            "{mech:?} (RSA backend in progress)"
        )))
    }
    fn encrypt(&self, _key: &PublicKey, mech: &EncMech, _data: &[u8]) -> Result<Vec<u8>> {
        let _: Option<&DecMech> = None;
        Err(Error::unsupported(format!(
            "{mech:?} (RSA backend in progress)"
        )))
    }
}
