//! Translations between token-hal's vocabulary and PKCS#11's: errors, hashes, key
//! algorithms, public keys and EC points.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::mechanism::rsa::PkcsMgfType;
use cryptoki::object::{Attribute, KeyType};
use der::asn1::OctetStringRef;
use der::{Decode, Encode};
use token_hal::crypto::{HashAlg, KeyAlg, PublicKey};
use token_hal::{Error, Result};

/// The vendor key type of SM2 keys (include/ukey_pkcs11.h, the TASS value).
pub(crate) const CKK_SM2: u64 = 0x8000_0004;
/// Raw SM2 signature over a 32-byte e (include/ukey_pkcs11.h, the TASS value).
pub(crate) const CKM_SM2: u64 = 0x8000_8000;
/// Raw SM2 signature over a 32-byte e (the SANSEC value).
pub(crate) const CKM_SANSEC_SM2_SIGN: u64 = 0x8000_8104;

/// A cryptoki error in token-hal's terms. A wrong PIN is reported by the caller, which
/// knows the retries (see `app.rs`).
pub(crate) fn p11_error(e: CkError) -> Error {
    let CkError::Pkcs11(rv, f) = e else {
        return Error::Device(format!("PKCS#11 module: {e}"));
    };
    match rv {
        RvError::PinIncorrect => Error::PinIncorrect { retries_left: 0 },
        RvError::PinLocked => Error::PinLocked,
        RvError::PinInvalid | RvError::PinLenRange | RvError::PinTooWeak => {
            Error::PinInvalid("rejected by the PKCS#11 module")
        }
        RvError::UserPinNotInitialized => Error::PinNotInitialized,
        RvError::UserNotLoggedIn => Error::NotLoggedIn,
        RvError::UserAnotherAlreadyLoggedIn => Error::UserAnotherAlreadyLoggedIn,
        // A session the module no longer knows: the token went away or someone closed
        // every session; the caller's handle opens a new one at its next call.
        RvError::DeviceRemoved
        | RvError::TokenNotPresent
        | RvError::SessionClosed
        | RvError::SessionHandleInvalid => Error::DeviceRemoved,
        RvError::MechanismInvalid
        | RvError::MechanismParamInvalid
        | RvError::CurveNotSupported
        | RvError::DomainParamsInvalid
        | RvError::FunctionNotSupported
        | RvError::KeySizeRange => Error::unsupported(format!("{f} in the PKCS#11 module: {rv}")),
        RvError::KeyTypeInconsistent => Error::KeyType(format!("{f}: {rv}")),
        RvError::KeyFunctionNotPermitted => Error::KeyUsage(format!("{f}: {rv}")),
        RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange => Error::DecryptFailed,
        RvError::SignatureInvalid | RvError::SignatureLenRange => Error::SignatureInvalid,
        RvError::DataInvalid | RvError::DataLenRange => Error::invalid_data(format!("{f}: {rv}")),
        RvError::ArgumentsBad => {
            Error::invalid_arg(format!("{f}: the PKCS#11 module refused the arguments"))
        }
        RvError::DeviceMemory => Error::NoSpace,
        RvError::TokenWriteProtected => Error::AccessDenied(format!("{f}: token write-protected")),
        RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid => {
            Error::not_found(format!("PKCS#11 object ({f})"))
        }
        _ => Error::Device(format!("{f}: {rv}")),
    }
}

/// The PKCS#11 digest mechanism of a hash (for PSS and OAEP parameters).
pub(crate) fn hash_mech(h: HashAlg) -> Result<(MechanismType, PkcsMgfType)> {
    Ok(match h {
        HashAlg::Sha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
        HashAlg::Sha224 => (MechanismType::SHA224, PkcsMgfType::MGF1_SHA224),
        HashAlg::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        HashAlg::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        HashAlg::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
        other => {
            return Err(Error::unsupported(format!(
                "{other:?} in RSA-PSS/OAEP parameters through the PKCS#11 bridge"
            )));
        }
    })
}

/// The key algorithm of a key object from its `CKA_KEY_TYPE`, `CKA_EC_PARAMS` and
/// `CKA_MODULUS`. `None` for key types the bridge does not present.
pub(crate) fn key_alg(attrs: &[Attribute]) -> Option<KeyAlg> {
    let kt = attrs.iter().find_map(|a| match a {
        Attribute::KeyType(k) => Some(*k),
        _ => None,
    })?;
    if kt == KeyType::RSA {
        let n = modulus(attrs)?;
        let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
        return u32::try_from(bits).ok().map(KeyAlg::Rsa);
    }
    if kt == KeyType::EC || u64::from(kt) == CKK_SM2 {
        let params = attrs.iter().find_map(|a| match a {
            Attribute::EcParams(p) => Some(p),
            _ => None,
        });
        return match params {
            Some(p) => KeyAlg::from_ec_params(p).ok().filter(|a| a.is_ec()),
            None if u64::from(kt) == CKK_SM2 => Some(KeyAlg::Sm2),
            None => None,
        };
    }
    None
}

fn modulus(attrs: &[Attribute]) -> Option<&[u8]> {
    attrs.iter().find_map(|a| match a {
        Attribute::Modulus(n) => Some(n.as_slice()),
        _ => None,
    })
}

/// The public key of a public-key object (or an RSA private-key object, whose modulus
/// and exponent are public).
pub(crate) fn public_key(alg: KeyAlg, attrs: &[Attribute]) -> Result<PublicKey> {
    if let KeyAlg::Rsa(_) = alg {
        let e = attrs.iter().find_map(|a| match a {
            Attribute::PublicExponent(e) => Some(e.as_slice()),
            _ => None,
        });
        return match (modulus(attrs), e) {
            (Some(n), Some(e)) => PublicKey::from_rsa_components(n, e),
            _ => Err(Error::invalid_data(
                "RSA key object without modulus/exponent",
            )),
        };
    }
    let point = attrs
        .iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p.as_slice()),
            _ => None,
        })
        .ok_or_else(|| Error::invalid_data("EC key object without CKA_EC_POINT"))?;
    PublicKey::from_ec_point(alg, &unwrap_ec_point(alg, point)?)
}

/// `CKA_EC_POINT` is a DER OCTET STRING holding the point; some modules give it raw.
pub(crate) fn unwrap_ec_point(alg: KeyAlg, value: &[u8]) -> Result<Vec<u8>> {
    let raw_len = alg.public_point_len().unwrap_or(0);
    if value.len() == raw_len && value.first() == Some(&4) {
        return Ok(value.to_vec());
    }
    let os = <&OctetStringRef>::from_der(value)
        .map_err(|e| Error::invalid_data(format!("CKA_EC_POINT: {e}")))?;
    Ok(os.as_bytes().to_vec())
}

/// The DER OCTET STRING `CKA_EC_POINT` value of a point.
pub(crate) fn wrap_ec_point(point: &[u8]) -> Result<Vec<u8>> {
    Ok(OctetStringRef::new(point)?.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use token_hal::crypto::PrivateKey;

    #[test]
    fn digest_info_prefixes_are_well_formed() {
        for h in [
            HashAlg::Md5,
            HashAlg::Sha1,
            HashAlg::Sha224,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
            HashAlg::Sm3,
        ] {
            let p = token_hal::crypto::hash::digest_info_prefix(h);
            // SEQUENCE length covers the rest of the prefix plus the digest.
            assert_eq!(usize::from(p[1]), p.len() - 2 + h.output_len(), "{h:?}");
            assert_eq!(usize::from(p[p.len() - 1]), h.output_len(), "{h:?}");
        }
    }

    #[test]
    fn ec_points_round_trip_and_key_types_are_recognised() {
        let k = PrivateKey::generate(KeyAlg::EcP256).unwrap();
        let point = k.public_key().unwrap().ec_point().unwrap();
        let wrapped = wrap_ec_point(&point).unwrap();
        assert_eq!(unwrap_ec_point(KeyAlg::EcP256, &wrapped).unwrap(), point);
        assert_eq!(unwrap_ec_point(KeyAlg::EcP256, &point).unwrap(), point);
        assert!(unwrap_ec_point(KeyAlg::EcP256, &[4, 5, 2]).is_err());
        let attrs = vec![
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(KeyAlg::EcP256.to_ec_params().unwrap()),
            Attribute::EcPoint(wrapped),
        ];
        assert_eq!(key_alg(&attrs), Some(KeyAlg::EcP256));
        assert_eq!(
            public_key(KeyAlg::EcP256, &attrs).unwrap(),
            k.public_key().unwrap()
        );
        let sm2 = vec![
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(KeyAlg::Sm2.to_ec_params().unwrap()),
        ];
        assert_eq!(key_alg(&sm2), Some(KeyAlg::Sm2));
        let vendor = vec![Attribute::KeyType(
            KeyType::new_vendor_defined(CKK_SM2).unwrap(),
        )];
        assert_eq!(key_alg(&vendor), Some(KeyAlg::Sm2));
        assert_eq!(key_alg(&[Attribute::KeyType(KeyType::AES)]), None);
    }

    #[test]
    fn module_errors_map_to_token_errors() {
        use cryptoki::context::Function;
        let e = |rv| p11_error(CkError::Pkcs11(rv, Function::Sign));
        assert!(matches!(e(RvError::PinLocked), Error::PinLocked));
        assert!(matches!(e(RvError::UserNotLoggedIn), Error::NotLoggedIn));
        assert!(matches!(
            e(RvError::MechanismInvalid),
            Error::Unsupported(_)
        ));
        assert!(matches!(e(RvError::DeviceRemoved), Error::DeviceRemoved));
        assert!(matches!(
            e(RvError::EncryptedDataInvalid),
            Error::DecryptFailed
        ));
        assert!(matches!(e(RvError::GeneralError), Error::Device(_)));
    }
}
