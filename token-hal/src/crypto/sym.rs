//! Symmetric ciphers: SM4 and AES in ECB, CBC, CBC-PAD, CFB, OFB, CTR, GCM; CBC-MAC;
//! AES key wrap (RFC 3394 / 5649).

use crate::error::Result;

/// SM4-ECB encryption of one 16-byte block (device authentication).
pub fn sm4_ecb_encrypt_block(key: &[u8], block: &[u8; 16]) -> Result<Vec<u8>> {
    let _ = (key, block);
    todo!("crypto helper")
}
