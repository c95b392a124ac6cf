//! Signature encodings: raw r‖s and DER SEQUENCE { r INTEGER, s INTEGER }.

use crate::error::Result;

/// Raw r‖s (two equal halves) to DER.
pub fn raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    let _ = raw;
    todo!("crypto helper")
}

/// DER to raw r‖s, each half `field_len` bytes.
pub fn der_to_raw(der: &[u8], field_len: usize) -> Result<Vec<u8>> {
    let _ = (der, field_len);
    todo!("crypto helper")
}
