//! Key material ↔ PKCS#11 attributes: building `PublicKey`/`PrivateKey` values from
//! templates and filling the attributes of generated or imported keys.

use cryptoki_sys::*;
use der::asn1::{OctetStringRef, UintRef};
use der::{Decode, Encode, Sequence};
use token_hal::crypto::{KeyAlg, PrivateKey, PublicKey};

use crate::error::{Error, Result};
use crate::mechanism::vendor::*;
use crate::object::{AttrVal, Attrs, AttrsExt};

/// PKCS#1 RSAPrivateKey.
#[derive(Sequence)]
struct RsaPriv<'a> {
    version: UintRef<'a>,
    n: UintRef<'a>,
    e: UintRef<'a>,
    d: UintRef<'a>,
    p: UintRef<'a>,
    q: UintRef<'a>,
    dp: UintRef<'a>,
    dq: UintRef<'a>,
    qinv: UintRef<'a>,
}

fn bad_value() -> Error {
    Error(CKR_ATTRIBUTE_VALUE_INVALID)
}

/// The key algorithm named by `CKA_EC_PARAMS` (a DER OID or printable curve name).
pub(crate) fn ec_alg(params: &[u8]) -> Result<KeyAlg> {
    KeyAlg::from_ec_params(params).map_err(|_| Error(CKR_CURVE_NOT_SUPPORTED))
}

/// A raw public key from `CKA_EC_POINT` or ECDH public data: DER OCTET STRING or raw.
pub(crate) fn raw_point(alg: KeyAlg, v: &[u8]) -> Vec<u8> {
    let want = alg.public_point_len().unwrap_or(0);
    if let Ok(o) = <&OctetStringRef>::from_der(v)
        && o.as_bytes().len() == want
    {
        return o.as_bytes().to_vec();
    }
    v.to_vec()
}

/// The PKCS#11 key type of an asymmetric algorithm.
pub(crate) fn key_type_of(alg: KeyAlg) -> CK_KEY_TYPE {
    match alg {
        KeyAlg::Sm2 => CKK_SM2,
        KeyAlg::EcP256 | KeyAlg::EcP384 | KeyAlg::EcP521 => CKK_EC,
        KeyAlg::Ed25519 | KeyAlg::Ed448 => CKK_EC_EDWARDS,
        KeyAlg::X25519 => CKK_EC_MONTGOMERY,
        KeyAlg::Rsa(_) => CKK_RSA,
    }
}

fn check_type(alg: KeyAlg, kt: Option<CK_KEY_TYPE>) -> Result<()> {
    match kt {
        Some(k) if k == key_type_of(alg) => Ok(()),
        // An SM2 curve key may be called CKK_EC by callers that know no vendor types.
        Some(CKK_EC) if alg == KeyAlg::Sm2 => Ok(()),
        _ => Err(Error(CKR_TEMPLATE_INCONSISTENT)),
    }
}

/// A public key from its attributes.
pub(crate) fn public_from_attrs(a: &Attrs) -> Result<PublicKey> {
    match a.key_type() {
        Some(CKK_RSA) => {
            let n = a.bytes(CKA_MODULUS).ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
            let e = a
                .bytes(CKA_PUBLIC_EXPONENT)
                .ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
            PublicKey::from_rsa_components(n, e).map_err(|_| bad_value())
        }
        Some(CKK_EC | CKK_SM2 | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY) => {
            let alg = ec_alg(
                a.bytes(CKA_EC_PARAMS)
                    .ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?,
            )?;
            check_type(alg, a.key_type())?;
            let p = a
                .bytes(CKA_EC_POINT)
                .ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
            PublicKey::from_ec_point(alg, &raw_point(alg, p)).map_err(|_| bad_value())
        }
        _ => Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// Fills the attributes of a public key.
pub(crate) fn fill_public(pk: &PublicKey, a: &mut Attrs) -> Result<()> {
    let alg = pk.alg();
    a.set_ulong(CKA_KEY_TYPE, key_type_of(alg));
    if let Some((n, e)) = pk.rsa_components() {
        a.set_ulong(CKA_MODULUS_BITS, (strip(&n).len() * 8) as CK_ULONG);
        a.set_bytes(CKA_MODULUS, strip(&n));
        a.set_bytes(CKA_PUBLIC_EXPONENT, strip(&e));
    } else if let Some(p) = pk.ec_point_bytes() {
        a.set_bytes(CKA_EC_PARAMS, alg.ec_params_der().ok_or(Error::GENERAL)?);
        // The DER OCTET STRING around the point, made on the stack (the longest point,
        // P-521's 133 bytes, takes a 3-byte header).
        let mut der = [0u8; 3 + 133];
        let n = OctetStringRef::new(p)
            .and_then(|o| o.encode_to_slice(&mut der).map(<[u8]>::len))
            .map_err(|_| Error::GENERAL)?;
        a.put(CKA_EC_POINT, AttrVal::public(&der[..n]));
    }
    // Public values the private half repeats: shared, not copied (`fill_private_from`).
    a.put(CKA_PUBLIC_KEY_INFO, AttrVal::public(pk.spki_der()));
    Ok(())
}

fn strip(b: &[u8]) -> &[u8] {
    let i = b
        .iter()
        .position(|&x| x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    &b[i..]
}

/// Fills the attributes of a private key (public parts, then secret parts, sealed).
pub(crate) fn fill_private(sk: &PrivateKey, a: &mut Attrs) -> Result<()> {
    let pk = sk.public_key().map_err(Error::from)?;
    fill_private_with(sk, &pk, a)
}

/// [`fill_private`] when the caller already holds the public key.
pub(crate) fn fill_private_with(sk: &PrivateKey, pk: &PublicKey, a: &mut Attrs) -> Result<()> {
    let mut public = Attrs::new();
    fill_public(pk, &mut public)?;
    fill_private_from(sk, &public, a)
}

/// [`fill_private`] with the public parts copied from the attributes [`fill_public`]
/// made for the matching public key (key-pair generation computes them once).
pub(crate) fn fill_private_from(sk: &PrivateKey, public: &Attrs, a: &mut Attrs) -> Result<()> {
    let alg = sk.alg();
    a.set_ulong(CKA_KEY_TYPE, key_type_of(alg));
    for ty in [CKA_PUBLIC_KEY_INFO, CKA_EC_PARAMS, CKA_EC_POINT] {
        if let Some(v) = public.get(&ty) {
            a.put(ty, v.clone());
        }
    }
    let p8 = sk.to_pkcs8_der();
    match alg {
        KeyAlg::Rsa(_) => {
            let info = pkcs8::PrivateKeyInfoRef::from_der(&p8).map_err(|_| Error::GENERAL)?;
            let r = RsaPriv::from_der(info.private_key.as_bytes()).map_err(|_| Error::GENERAL)?;
            a.set_bytes(CKA_MODULUS, r.n.as_bytes());
            a.set_bytes(CKA_PUBLIC_EXPONENT, r.e.as_bytes());
            a.set_bytes(CKA_PRIVATE_EXPONENT, r.d.as_bytes());
            a.set_bytes(CKA_PRIME_1, r.p.as_bytes());
            a.set_bytes(CKA_PRIME_2, r.q.as_bytes());
            a.set_bytes(CKA_EXPONENT_1, r.dp.as_bytes());
            a.set_bytes(CKA_EXPONENT_2, r.dq.as_bytes());
            a.set_bytes(CKA_COEFFICIENT, r.qinv.as_bytes());
        }
        _ => {
            if let Some(v) = sk.raw_private_value() {
                a.put(CKA_VALUE, v.into());
            }
        }
    }
    // The PKCS#8 itself is moved in, not copied again.
    a.put(CKA_UKEY_PKCS8, p8.into());
    Ok(())
}

/// A private key from its attributes: the stored PKCS#8, else the components given in
/// a `C_CreateObject` template.
pub(crate) fn private_from_attrs(a: &Attrs) -> Result<PrivateKey> {
    if let Some(p8) = a.bytes(CKA_UKEY_PKCS8) {
        return PrivateKey::from_pkcs8_der(p8).map_err(Error::from);
    }
    match a.key_type() {
        Some(CKK_RSA) => {
            let g = |t| a.bytes(t).ok_or(Error(CKR_TEMPLATE_INCOMPLETE));
            let u = |b| UintRef::new(b).map_err(|_| bad_value());
            let der = RsaPriv {
                version: u(&[0])?,
                n: u(g(CKA_MODULUS)?)?,
                e: u(g(CKA_PUBLIC_EXPONENT)?)?,
                d: u(g(CKA_PRIVATE_EXPONENT)?)?,
                p: u(g(CKA_PRIME_1)?)?,
                q: u(g(CKA_PRIME_2)?)?,
                dp: u(g(CKA_EXPONENT_1)?)?,
                dq: u(g(CKA_EXPONENT_2)?)?,
                qinv: u(g(CKA_COEFFICIENT)?)?,
            }
            .to_der()
            .map_err(|_| bad_value())?;
            PrivateKey::from_pkcs1_der(&der).map_err(|_| bad_value())
        }
        Some(CKK_EC | CKK_SM2 | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY) => {
            let alg = ec_alg(
                a.bytes(CKA_EC_PARAMS)
                    .ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?,
            )?;
            check_type(alg, a.key_type())?;
            let d = a.bytes(CKA_VALUE).ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
            PrivateKey::from_raw_private(alg, d).map_err(|_| bad_value())
        }
        _ => Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
    }
}
