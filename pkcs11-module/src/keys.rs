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

/// A new key object's own attributes in ascending type order, as
/// [`Attrs::based_on_sorted`] takes them.
pub(crate) type Entries = Vec<(CK_ATTRIBUTE_TYPE, AttrVal)>;

/// Which of a key's attributes a new object's defaults already give with the key's own
/// value (a generated pair's prepared templates): the entry builders leave them out.
#[derive(Clone, Copy, Default)]
pub(crate) struct Given {
    /// `CKA_KEY_TYPE`.
    pub key_type: bool,
    /// `CKA_EC_PARAMS`, as the curve's DER OID.
    pub ec_params: bool,
}

/// Fills the attributes of a public key.
pub(crate) fn fill_public(pk: &PublicKey, a: &mut Attrs) -> Result<()> {
    for (ty, v) in public_entries(pk, key_type_of(pk.alg()), Given::default(), None)? {
        a.put(ty, v);
    }
    Ok(())
}

fn ulong_val(v: CK_ULONG) -> AttrVal {
    AttrVal::new(&v.to_ne_bytes())
}

/// The attributes of a public key of type `kt`, with its unique ID when given, in
/// ascending type order.
pub(crate) fn public_entries(
    pk: &PublicKey,
    kt: CK_KEY_TYPE,
    given: Given,
    unique_id: Option<AttrVal>,
) -> Result<Entries> {
    let alg = pk.alg();
    let mut out = Entries::with_capacity(6);
    if let Some(u) = unique_id {
        out.push((CKA_UNIQUE_ID, u));
    }
    if !given.key_type {
        out.push((CKA_KEY_TYPE, ulong_val(kt)));
    }
    // Public values the private half repeats: shared, not copied (`private_entries`).
    let spki = (CKA_PUBLIC_KEY_INFO, AttrVal::shared(pk.spki_shared()));
    if let Some((n, e)) = pk.rsa_components() {
        out.push((CKA_MODULUS, AttrVal::new(strip(&n))));
        out.push((
            CKA_MODULUS_BITS,
            ulong_val((strip(&n).len() * 8) as CK_ULONG),
        ));
        out.push((CKA_PUBLIC_EXPONENT, AttrVal::new(strip(&e))));
        out.push(spki);
    } else if let Some(p) = pk.ec_point_bytes() {
        out.push(spki);
        if !given.ec_params {
            let params = alg.ec_params_der().ok_or(Error::GENERAL)?;
            out.push((CKA_EC_PARAMS, AttrVal::new(params)));
        }
        // The DER OCTET STRING around the point, made on the stack (the longest point,
        // P-521's 133 bytes, takes a 3-byte header).
        let mut der = [0u8; 3 + 133];
        let n = OctetStringRef::new(p)
            .and_then(|o| o.encode_to_slice(&mut der).map(<[u8]>::len))
            .map_err(|_| Error::GENERAL)?;
        out.push((CKA_EC_POINT, AttrVal::public(&der[..n])));
    } else {
        out.push(spki);
    }
    Ok(out)
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
    let kt = key_type_of(sk.alg());
    let public = public_entries(pk, kt, Given::default(), None)?;
    for (ty, v) in private_entries(sk, kt, &public, Given::default(), None)? {
        a.put(ty, v);
    }
    Ok(())
}

/// The attributes of a private key of type `kt`, with its unique ID when given, in
/// ascending type order. The public values are shared with `public`, the entries
/// [`public_entries`] made for the matching public key (key-pair generation computes
/// them once).
pub(crate) fn private_entries(
    sk: &PrivateKey,
    kt: CK_KEY_TYPE,
    public: &Entries,
    given: Given,
    unique_id: Option<AttrVal>,
) -> Result<Entries> {
    let alg = sk.alg();
    let rsa = matches!(alg, KeyAlg::Rsa(_));
    let mut out = Entries::with_capacity(if rsa { 12 } else { 7 });
    if let Some(u) = unique_id {
        out.push((CKA_UNIQUE_ID, u));
    }
    let p8 = sk.to_pkcs8_der();
    if !rsa && let Some(v) = sk.raw_private_value() {
        out.push((CKA_VALUE, v.into()));
    }
    if !given.key_type {
        out.push((CKA_KEY_TYPE, ulong_val(kt)));
    }
    if rsa {
        let info = pkcs8::PrivateKeyInfoRef::from_der(&p8).map_err(|_| Error::GENERAL)?;
        let r = RsaPriv::from_der(info.private_key.as_bytes()).map_err(|_| Error::GENERAL)?;
        for (ty, v) in [
            (CKA_MODULUS, r.n),
            (CKA_PUBLIC_EXPONENT, r.e),
            (CKA_PRIVATE_EXPONENT, r.d),
            (CKA_PRIME_1, r.p),
            (CKA_PRIME_2, r.q),
            (CKA_EXPONENT_1, r.dp),
            (CKA_EXPONENT_2, r.dq),
            (CKA_COEFFICIENT, r.qinv),
        ] {
            out.push((ty, AttrVal::new(v.as_bytes())));
        }
    }
    let shared = |ty| {
        public
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, v)| v.clone())
    };
    if let Some(v) = shared(CKA_PUBLIC_KEY_INFO) {
        out.push((CKA_PUBLIC_KEY_INFO, v));
    }
    if let Some(p) = alg.ec_params_der()
        && !given.ec_params
    {
        out.push((CKA_EC_PARAMS, AttrVal::new(p)));
    }
    if let Some(v) = shared(CKA_EC_POINT) {
        out.push((CKA_EC_POINT, v));
    }
    // The PKCS#8 itself is moved in, not copied again.
    out.push((CKA_UKEY_PKCS8, p8.into()));
    Ok(out)
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
