//! Stable identifiers: the PKCS#11 token serial and slot ID of a (device, application).
//!
//! Every front end and the CLI use these functions, so a token keeps its slot ID across
//! processes, restarts and re-enumeration.

use crate::crypto::hash::{HashAlg, digest};

/// The 16-character token serial of an application on a device (PKCS#11
/// `CK_TOKEN_INFO.serialNumber`): upper-case hex of SM3(device serial ‖ 0 ‖ app name).
pub fn token_serial(device_serial: &str, app_name: &str) -> String {
    let mut input = Vec::with_capacity(device_serial.len() + 1 + app_name.len());
    input.extend_from_slice(device_serial.as_bytes());
    input.push(0);
    input.extend_from_slice(app_name.as_bytes());
    let h = digest(HashAlg::Sm3, &input);
    hex::encode_upper(&h[..8])
}

/// The slot ID of a token, derived from its serial: 31 bits, never 0.
pub fn slot_id(token_serial: &str) -> u32 {
    let h = digest(HashAlg::Sm3, token_serial.as_bytes());
    let v = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7FFF_FFFF;
    if v == 0 { 1 } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_id_is_stable_and_31_bits() {
        let s = token_serial("UKSOFT0001", "ukey");
        assert_eq!(s.len(), 16);
        assert_eq!(s, token_serial("UKSOFT0001", "ukey"));
        assert_ne!(s, token_serial("UKSOFT0001", "other"));
        let id = slot_id(&s);
        assert!(id <= 0x7FFF_FFFF && id != 0);
        assert_eq!(id, slot_id(&s));
    }
}
