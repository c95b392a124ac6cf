//! SM2 specifics: the default ID, Z, ciphertext encodings, key exchange.

use crate::error::Result;

/// The GM/T 0009 default signer ID.
pub const DEFAULT_ID: &[u8] = b"1234567812345678";

/// Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) for an uncompressed public point.
pub fn z_value(public_point: &[u8], id: &[u8]) -> Result<[u8; 32]> {
    let _ = (public_point, id);
    todo!("crypto helper")
}

/// C1‖C3‖C2 (C1 = 04‖x‖y) to the GM/T 0009 DER form SEQUENCE { x, y, hash, ciphertext }.
pub fn cipher_raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    let _ = raw;
    todo!("crypto helper")
}

/// GM/T 0009 DER to C1‖C3‖C2.
pub fn cipher_der_to_raw(der: &[u8]) -> Result<Vec<u8>> {
    let _ = der;
    todo!("crypto helper")
}
