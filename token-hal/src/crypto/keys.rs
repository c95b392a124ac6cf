//! Asymmetric keys: SM2, ECDSA P-256/P-384, RSA 1024–4096.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::error::Result;

/// An asymmetric key algorithm and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlg {
    /// SM2 on the recommended curve (GB/T 32918).
    Sm2,
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
    /// RSA with a modulus of this many bits (1024–4096).
    Rsa(u32),
}

/// How to sign. EC signatures are raw r‖s (fixed length); see [`crate::crypto::sig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignMech {
    /// SM2 over e = SM3(Z‖M), Z computed with this ID (use [`crate::crypto::sm2::DEFAULT_ID`]).
    Sm2Sm3 { id: Vec<u8> },
    /// SM2 over a caller-computed 32-byte e.
    Sm2Prehashed,
    /// ECDSA, hashing the message with this hash.
    Ecdsa(HashAlg),
    /// ECDSA over a caller-computed digest.
    EcdsaPrehashed,
    /// RSA PKCS#1 v1.5 over the message hashed with this hash.
    RsaPkcs1(HashAlg),
    /// RSA PKCS#1 v1.5 over caller-given bytes (a DigestInfo), as CKM_RSA_PKCS.
    RsaPkcs1Raw,
    /// RSA-PSS over the message hashed with `hash`; MGF1 with the same hash.
    RsaPss { hash: HashAlg, salt_len: usize },
    /// RSA-PSS over a caller-computed digest.
    RsaPssPrehashed { hash: HashAlg, salt_len: usize },
}

/// How to encrypt with a public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncMech {
    /// SM2 encryption, output C1‖C3‖C2 (C1 uncompressed, 65 bytes).
    Sm2,
    /// RSA PKCS#1 v1.5.
    RsaPkcs1,
    /// RSA-OAEP with this hash for OAEP and MGF1, and a label.
    RsaOaep { hash: HashAlg, label: Vec<u8> },
}

/// How to decrypt with a private key: the inverse of [`EncMech`].
pub type DecMech = EncMech;

/// A public key, kept as its SubjectPublicKeyInfo DER.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    alg: KeyAlg,
    spki: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKey({:?}, {} bytes SPKI)",
            self.alg,
            self.spki.len()
        )
    }
}

impl PublicKey {
    /// Parses a SubjectPublicKeyInfo (DER). SM2 keys are recognised both with the SM2
    /// curve OID and with id-ecPublicKey + the SM2 curve parameters.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let _ = der;
        todo!("crypto helper")
    }
    /// Parses a PEM `PUBLIC KEY`.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let _ = pem;
        todo!("crypto helper")
    }
    /// Takes the public key of an X.509 certificate (DER or PEM).
    pub fn from_cert(cert: &[u8]) -> Result<Self> {
        let _ = cert;
        todo!("crypto helper")
    }
    /// From an uncompressed EC point (04‖x‖y) on a curve.
    pub fn from_ec_point(alg: KeyAlg, point: &[u8]) -> Result<Self> {
        let _ = (alg, point);
        todo!("crypto helper")
    }
    /// From RSA modulus and public exponent (big-endian).
    pub fn from_rsa_components(n: &[u8], e: &[u8]) -> Result<Self> {
        let _ = (n, e);
        todo!("crypto helper")
    }
    /// The algorithm.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }
    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }
    /// PEM `PUBLIC KEY`.
    pub fn to_pem(&self) -> String {
        todo!("crypto helper")
    }
    /// The uncompressed point 04‖x‖y of an EC or SM2 key.
    pub fn ec_point(&self) -> Option<Vec<u8>> {
        todo!("crypto helper")
    }
    /// (modulus, public exponent) of an RSA key, big-endian.
    pub fn rsa_components(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        todo!("crypto helper")
    }
    /// Verifies a signature made with `mech` (EC: raw r‖s).
    pub fn verify(&self, mech: &SignMech, data: &[u8], sig: &[u8]) -> Result<()> {
        let _ = (mech, data, sig);
        todo!("crypto helper")
    }
    /// Encrypts to this key.
    pub fn encrypt(&self, mech: &EncMech, data: &[u8]) -> Result<Vec<u8>> {
        let _ = (mech, data);
        todo!("crypto helper")
    }
}

/// A private key. Zeroized on drop; `Debug` shows only the algorithm.
pub struct PrivateKey {
    alg: KeyAlg,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?})", self.alg)
    }
}

impl PrivateKey {
    /// Generates a key pair.
    pub fn generate(alg: KeyAlg) -> Result<Self> {
        let _ = alg;
        todo!("crypto helper")
    }
    /// Parses an unencrypted PKCS#8 PrivateKeyInfo (DER).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let _ = der;
        todo!("crypto helper")
    }
    /// Reads a key file: PEM or DER; PKCS#8 `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`
    /// (PBES2 with PBKDF2-HMAC-SM3/SHA-1/SHA-256 and SM4-CBC/AES-CBC, GmSSL's format
    /// included), SEC1 `EC PRIVATE KEY` and PKCS#1 `RSA PRIVATE KEY`. A wrong password
    /// gives `Error::WrongPassword`.
    pub fn from_file_bytes(bytes: &[u8], password: Option<&[u8]>) -> Result<Self> {
        let _ = (bytes, password);
        todo!("crypto helper")
    }
    /// The unencrypted PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }
    /// The algorithm.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }
    /// The matching public key.
    pub fn public_key(&self) -> Result<PublicKey> {
        todo!("crypto helper")
    }
    /// Signs (EC: raw r‖s).
    pub fn sign(&self, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let _ = (mech, data);
        todo!("crypto helper")
    }
    /// Decrypts.
    pub fn decrypt(&self, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let _ = (mech, data);
        todo!("crypto helper")
    }
}
