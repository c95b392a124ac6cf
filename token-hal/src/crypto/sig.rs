//! Signature encodings: raw r‖s and DER SEQUENCE { r INTEGER, s INTEGER }.

use der::asn1::UintRef;
use der::{Decode, Encode, Sequence};

use crate::error::{Error, Result};

#[derive(Sequence)]
struct DerSig<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Raw r‖s (two equal halves) to DER.
pub fn raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 264 {
        return Err(Error::invalid_data(format!(
            "raw signature of {} bytes is not two equal halves",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig = DerSig {
        r: UintRef::new(r)?,
        s: UintRef::new(s)?,
    };
    Ok(sig.to_der()?)
}

/// DER to raw r‖s, each half `field_len` bytes.
pub fn der_to_raw(der: &[u8], field_len: usize) -> Result<Vec<u8>> {
    let sig =
        DerSig::from_der(der).map_err(|e| Error::invalid_data(format!("DER signature: {e}")))?;
    let mut out = vec![0u8; field_len * 2];
    for (i, v) in [sig.r.as_bytes(), sig.s.as_bytes()].into_iter().enumerate() {
        if v.len() > field_len {
            return Err(Error::invalid_data(format!(
                "signature integer of {} bytes exceeds field length {field_len}",
                v.len()
            )));
        }
        let end = (i + 1) * field_len;
        out[end - v.len()..end].copy_from_slice(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_leading_zeros_and_high_bits() {
        let mut raw = vec![0u8; 64];
        raw[1] = 5; // r has a leading zero byte
        raw[32] = 0x80; // s needs a 0x00 prefix in DER
        raw[63] = 1;
        let der = raw_to_der(&raw).unwrap();
        assert_eq!(der_to_raw(&der, 32).unwrap(), raw);
        assert!(der_to_raw(&der, 16).is_err());
        assert!(der_to_raw(&der[..der.len() - 1], 32).is_err());
        assert!(raw_to_der(&raw[..63]).is_err());
    }
}
