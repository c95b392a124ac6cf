//! Key management (PKCS#11 3.0 §5.14): generation, wrapping, unwrapping and derivation.

use std::sync::Arc;

use cryptoki_sys::*;
use token_hal::crypto::hash::{HashAlg, digest};
use token_hal::crypto::sym::Direction;
use token_hal::crypto::{DeriveMech, KeyAlg, PrivateKey};
use token_hal::{KeyUsage, LoginState};
use zeroize::Zeroizing;

use crate::api::crypto::{cipher_op, hash_of, key_for, latch_role, run_cipher};
use crate::api::objects::{
    AttrSlices, RawTemplate, Template, key_material, store_new, store_new_pair, visible,
};
use crate::error::{Error, Result};
use crate::keys;
use crate::mechanism::vendor::*;
use crate::mechanism::{Mech, Param};
use crate::object::{self, AttrVal, Attrs, AttrsExt, KeyMaterial, Purpose, Role};
use crate::session::Session;
use crate::state;

/// Checks a secret key's length for its type.
pub(crate) fn check_secret_len(kt: Option<CK_KEY_TYPE>, len: usize) -> Result<()> {
    let ok = match kt {
        Some(CKK_AES) => matches!(len, 16 | 24 | 32),
        Some(CKK_SM4) => len == 16,
        Some(_) => (1..=512).contains(&len),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error(CKR_ATTRIBUTE_VALUE_INVALID))
    }
}

/// `CKA_CHECK_VALUE` of a secret key: the first 3 bytes of encrypting a zero block (AES,
/// SM4) or of SHA-1 of the value (others).
pub(crate) fn set_check_value(a: &mut Attrs, v: &[u8]) {
    use token_hal::crypto::sym::{SymAlg, SymMode, encrypt};
    let cv = match a.key_type() {
        Some(CKK_AES) => encrypt(SymAlg::Aes, SymMode::Ecb, v, &[], &[0u8; 16]).ok(),
        Some(CKK_SM4) => encrypt(SymAlg::Sm4, SymMode::Ecb, v, &[], &[0u8; 16]).ok(),
        _ => Some(digest(HashAlg::Sha1, v)),
    };
    if let Some(cv) = cv {
        a.set_bytes(CKA_CHECK_VALUE, &cv[..3]);
    }
}

fn expect(a: &mut Attrs, ty: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> Result<()> {
    match a.ulong(ty) {
        Some(x) if x != v => Err(Error(CKR_TEMPLATE_INCONSISTENT)),
        _ => {
            a.set_ulong(ty, v);
            Ok(())
        }
    }
}

/// Makes a secret-key object from a value and a template.
fn new_secret(
    s: &crate::session::Session,
    mut a: Attrs,
    value: &[u8],
    mech: Option<CK_MECHANISM_TYPE>,
    local: bool,
) -> Result<(Attrs, Vec<u8>)> {
    expect(&mut a, CKA_CLASS, CKO_SECRET_KEY)?;
    let _ = s;
    check_secret_len(a.key_type(), value.len())?;
    a.set_bytes(CKA_VALUE, value);
    a.set_ulong(CKA_VALUE_LEN, value.len() as CK_ULONG);
    set_check_value(&mut a, value);
    object::complete(&mut a, local, mech)?;
    Ok((a, value.to_vec()))
}

/// `C_GenerateKey`.
pub(crate) fn generate_key(
    h: CK_SESSION_HANDLE,
    mech: &Mech,
    tmpl: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    state::with_session(h, |m, s| {
        if !m.compat.allows(mech.ty) {
            return Err(Error(CKR_MECHANISM_INVALID));
        }
        let mut a = object::parse_template(tmpl, Purpose::Generate, s.token.login())?;
        let kt = match mech.ty {
            CKM_AES_KEY_GEN => CKK_AES,
            CKM_SM4_KEY_GEN => CKK_SM4,
            CKM_GENERIC_SECRET_KEY_GEN => CKK_GENERIC_SECRET,
            CKM_SHA_1_KEY_GEN => CKK_SHA_1_HMAC,
            CKM_SHA224_KEY_GEN => CKK_SHA224_HMAC,
            CKM_SHA256_KEY_GEN => CKK_SHA256_HMAC,
            CKM_SHA384_KEY_GEN => CKK_SHA384_HMAC,
            CKM_SHA512_KEY_GEN => CKK_SHA512_HMAC,
            _ => return Err(Error(CKR_MECHANISM_INVALID)),
        };
        expect(&mut a, CKA_KEY_TYPE, kt)?;
        let len = match (kt, a.ulong(CKA_VALUE_LEN)) {
            (CKK_SM4, None) => 16,
            (_, Some(l)) => l as usize,
            (_, None) => return Err(Error(CKR_TEMPLATE_INCOMPLETE)),
        };
        if a.contains_key(&CKA_VALUE) {
            return Err(Error(CKR_TEMPLATE_INCONSISTENT));
        }
        check_secret_len(Some(kt), len).map_err(|_| Error(CKR_KEY_SIZE_RANGE))?;
        let mut v = Zeroizing::new(vec![0u8; len]);
        token_hal::crypto::rng::fill(&mut v)?;
        let (a, _) = new_secret(s, a, &v, Some(mech.ty), true)?;
        store_new(m, s, a)
    })
}

/// What `C_GenerateKeyPair` makes of a mechanism and two templates before any key
/// exists: the algorithm, the key type, the container slot the pair asks for, and both
/// objects' completed attributes (class defaults and the values the token sets) without
/// key material. Their `CKA_UNIQUE_ID`s are placeholders that each pair replaces.
/// Each pair's objects take these maps as their shared defaults
/// ([`Attrs::based_on_sorted`]) and hold only what differs (the key, the unique ID) as
/// their own. A copy shares the maps.
#[derive(Clone)]
pub(crate) struct PairPrep {
    alg: KeyAlg,
    kt: CK_ULONG,
    usage: KeyUsage,
    pa: Arc<Attrs>,
    sa: Arc<Attrs>,
    /// Whether either half is a token object, and whether each half is private, read
    /// once: the attributes a key adds never change them.
    token: bool,
    private: [bool; 2],
    /// What each object's defaults already give of the key's attributes (its key type,
    /// and the curve when the template named it as the DER OID).
    given: [keys::Given; 2],
}

/// A session's last [`PairPrep`] and what it was made from. [`prepare_pair`] is a pure
/// function of the mechanism, the two templates and the login state, so an application
/// that generates pair after pair with the same templates has them parsed and completed
/// once.
pub(crate) struct PairMemo {
    mech: CK_MECHANISM_TYPE,
    login: LoginState,
    /// The templates as the caller gave them (before any vendor translation).
    pub_t: RawTemplate,
    priv_t: RawTemplate,
    prep: PairPrep,
}

fn same_template(a: &[(CK_ATTRIBUTE_TYPE, AttrVal)], b: &[(CK_ATTRIBUTE_TYPE, &[u8])]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ta, va), (tb, vb))| ta == tb && va.as_slice() == *vb)
}

fn copy_template(t: &[(CK_ATTRIBUTE_TYPE, &[u8])]) -> RawTemplate {
    t.iter().map(|&(ty, v)| (ty, AttrVal::new(v))).collect()
}

fn as_slices(t: &RawTemplate) -> AttrSlices<'_> {
    t.iter().map(|(ty, v)| (*ty, v.as_slice())).collect()
}

/// The preparation of a pair for these inputs: a copy of the session's memo when they are
/// the ones it was made from, else made afresh (and remembered when it succeeds).
fn prepared(
    s: &Session,
    mech_ty: CK_MECHANISM_TYPE,
    pub_t: &[(CK_ATTRIBUTE_TYPE, &[u8])],
    priv_t: &[(CK_ATTRIBUTE_TYPE, &[u8])],
) -> Result<PairPrep> {
    let login = s.token.login();
    {
        let memo = s.pair_memo.lock().map_err(|_| Error::GENERAL)?;
        if let Some(m) = memo.as_deref()
            && m.mech == mech_ty
            && m.login == login
            && same_template(&m.pub_t, pub_t)
            && same_template(&m.priv_t, priv_t)
        {
            return Ok(m.prep.clone());
        }
    }
    // One copy of each template serves both the preparation and the memo's key, so that
    // the two cannot differ even if the caller's memory changed during the call.
    let (pub_t, priv_t) = (copy_template(pub_t), copy_template(priv_t));
    let prep = prepare_pair(
        mech_ty,
        &Template::from_slices(&as_slices(&pub_t)),
        &Template::from_slices(&as_slices(&priv_t)),
        login,
    )?;
    let memo = PairMemo {
        mech: mech_ty,
        login,
        pub_t,
        priv_t,
        prep,
    };
    let prep = memo.prep.clone();
    *s.pair_memo.lock().map_err(|_| Error::GENERAL)? = Some(Box::new(memo));
    Ok(prep)
}

/// Parses and checks a pair's templates against the mechanism and completes both objects
/// (everything of `C_GenerateKeyPair` that comes before the key itself).
fn prepare_pair(
    mech_ty: CK_MECHANISM_TYPE,
    pub_t: &Template,
    priv_t: &Template,
    login: LoginState,
) -> Result<PairPrep> {
    let mut pa = object::parse_template(pub_t, Purpose::Generate, login)?;
    let mut sa = object::parse_template(priv_t, Purpose::Generate, login)?;
    let usage = crate::landing::usage_of(&sa);
    let alg = match mech_ty {
        CKM_RSA_PKCS_KEY_PAIR_GEN => {
            let bits = pa
                .ulong(CKA_MODULUS_BITS)
                .ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
            if let Some(e) = pa.bytes(CKA_PUBLIC_EXPONENT) {
                let e = e
                    .iter()
                    .skip_while(|b| **b == 0)
                    .copied()
                    .collect::<Vec<u8>>();
                if e != [1, 0, 1] {
                    return Err(Error(CKR_TEMPLATE_INCONSISTENT));
                }
            }
            if !(1024..=4096).contains(&bits) {
                return Err(Error(CKR_KEY_SIZE_RANGE));
            }
            KeyAlg::Rsa(bits as u32)
        }
        CKM_EC_KEY_PAIR_GEN | CKM_EC_EDWARDS_KEY_PAIR_GEN | CKM_EC_MONTGOMERY_KEY_PAIR_GEN => {
            let p = pa
                .bytes(CKA_EC_PARAMS)
                .ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
            let alg = keys::ec_alg(p)?;
            let ok = match mech_ty {
                CKM_EC_KEY_PAIR_GEN => alg.is_ec(),
                CKM_EC_EDWARDS_KEY_PAIR_GEN => alg.is_edwards(),
                _ => alg.is_montgomery(),
            };
            if !ok {
                return Err(Error(CKR_TEMPLATE_INCONSISTENT));
            }
            alg
        }
        CKM_SM2_KEY_PAIR_GEN => {
            if let Some(p) = pa.bytes(CKA_EC_PARAMS)
                && keys::ec_alg(p)? != KeyAlg::Sm2
            {
                return Err(Error(CKR_TEMPLATE_INCONSISTENT));
            }
            KeyAlg::Sm2
        }
        _ => return Err(Error(CKR_MECHANISM_INVALID)),
    };
    expect(&mut pa, CKA_CLASS, CKO_PUBLIC_KEY)?;
    expect(&mut sa, CKA_CLASS, CKO_PRIVATE_KEY)?;
    let kt = keys::key_type_of(alg);
    let kt = match (alg, pa.key_type().or(sa.key_type())) {
        (KeyAlg::Sm2, Some(CKK_EC)) => CKK_EC,
        _ => kt,
    };
    expect(&mut pa, CKA_KEY_TYPE, kt)?;
    expect(&mut sa, CKA_KEY_TYPE, kt)?;
    // Completing reads only the templates' own attributes (class, key type, sensitivity
    // and extractability), none of those the key fills in later.
    object::complete(&mut pa, true, Some(mech_ty))?;
    object::complete(&mut sa, true, Some(mech_ty))?;
    let given = |a: &Attrs| keys::Given {
        key_type: a.key_type() == Some(kt),
        ec_params: alg
            .ec_params_der()
            .is_some_and(|p| a.bytes(CKA_EC_PARAMS) == Some(p)),
    };
    Ok(PairPrep {
        alg,
        kt,
        usage,
        given: [given(&pa), given(&sa)],
        token: pa.flag(CKA_TOKEN) || sa.flag(CKA_TOKEN),
        private: [pa.flag(CKA_PRIVATE), sa.flag(CKA_PRIVATE)],
        pa: pa.into_base(),
        sa: sa.into_base(),
    })
}

/// `C_GenerateKeyPair`.
pub(crate) fn generate_key_pair(
    h: CK_SESSION_HANDLE,
    mech: &Mech,
    pub_t: &[(CK_ATTRIBUTE_TYPE, &[u8])],
    priv_t: &[(CK_ATTRIBUTE_TYPE, &[u8])],
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    state::with_session(h, |m, s| {
        if !m.compat.allows(mech.ty)
            || (crate::landing::on_device(s) && crate::api::general::card_lacks(mech.ty))
            || crate::api::general::vendor_skf_lacks(s, mech.ty, CKF_GENERATE_KEY_PAIR)
        {
            return Err(Error(CKR_MECHANISM_INVALID));
        }
        let PairPrep {
            alg,
            kt,
            usage,
            pa,
            sa,
            token,
            private: privacy,
            given,
        } = prepared(s, mech.ty, pub_t, priv_t)?;
        // Check the write rights before the (slow) generation.
        if token && !s.rw {
            return Err(Error(CKR_SESSION_READ_ONLY));
        }
        if crate::landing::on_device(s) && token {
            // A card or a bridged library makes its token keys itself: the private key never
            // exists on the host (docs/mapping.md).
            if !matches!(alg, KeyAlg::Sm2 | KeyAlg::EcP256 | KeyAlg::Rsa(1024..=2048)) {
                return Err(Error(CKR_MECHANISM_INVALID));
            }
            let (mut pa, mut sa) = (Attrs::based_on(pa, 1), Attrs::based_on(sa, 1));
            if !pa.flag(CKA_TOKEN) || !sa.flag(CKA_TOKEN) || !sa.flag(CKA_SENSITIVE) {
                return Err(Error(CKR_TEMPLATE_INCONSISTENT));
            }
            object::renew_unique_id(&mut pa)?;
            object::renew_unique_id(&mut sa)?;
            let landed = crate::landing::land(
                m,
                s,
                crate::landing::KeySource::Generate(alg),
                usage,
                Some(&pa),
                &sa,
            )?;
            return match landed {
                Some((Some(ph), sh)) => Ok((ph, sh)),
                // The CKA_ID names a container whose slot is taken.
                _ => Err(Error(CKR_ATTRIBUTE_VALUE_INVALID)),
            };
        }
        let sk = PrivateKey::generate(alg)?;
        let pk = sk.public_key()?;
        // Each object's own attributes (its unique ID and the key's, with the key type
        // the template asked for: an SM2 pair may be CKK_EC) go in at once, in order.
        let uid = object::unique_id_val;
        let public = keys::public_entries(&pk, kt, given[0], Some(uid()?))?;
        let private = keys::private_entries(&sk, kt, &public, given[1], Some(uid()?))?;
        let pa = Attrs::based_on_sorted(pa, public);
        let sa = Attrs::based_on_sorted(sa, private);
        // SM2 and RSA ≤ 2048 token pairs go into a container (docs/mapping.md).
        if token
            && let Some((Some(ph), sh)) = crate::landing::land(
                m,
                s,
                crate::landing::KeySource::Import(&sk),
                usage,
                Some(&pa),
                &sa,
            )?
        {
            return Ok((ph, sh));
        }
        // The objects' parsed keys are the ones just made: their first use needs no
        // parse. The private one only while the user is logged in, as `key_material`
        // would cache it (logout forgets it).
        let public_key = Some(Arc::new(KeyMaterial::Public(pk)));
        let private_key = s.user().then(|| Arc::new(KeyMaterial::Private(sk)));
        store_new_pair(m, s, (token, privacy), (pa, public_key), (sa, private_key))
    })
}

/// `C_WrapKey`: the wrapped bytes (computed afresh on each call).
pub(crate) fn wrap(
    h: CK_SESSION_HANDLE,
    mech: &Mech,
    wk: CK_OBJECT_HANDLE,
    kh: CK_OBJECT_HANDLE,
) -> Result<Vec<u8>> {
    state::with_session(h, |m, s| {
        if !m.compat.allows(mech.ty) {
            return Err(Error(CKR_MECHANISM_INVALID));
        }
        let (wo, wa) = key_for(m, s, wk, CKA_WRAP, mech.ty).map_err(|e| match e.0 {
            CKR_KEY_HANDLE_INVALID => Error(CKR_WRAPPING_KEY_HANDLE_INVALID),
            CKR_KEY_TYPE_INCONSISTENT => Error(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
            _ => e,
        })?;
        let ko = visible(m, s, kh, CKR_KEY_HANDLE_INVALID)?;
        let ka = crate::api::objects::full_attrs(s, &ko)?;
        if !ka.flag(CKA_EXTRACTABLE) {
            return Err(Error(CKR_KEY_UNEXTRACTABLE));
        }
        if ka.flag(CKA_WRAP_WITH_TRUSTED) && !wa.flag(CKA_TRUSTED) {
            return Err(Error(CKR_KEY_NOT_WRAPPABLE));
        }
        check_wrap_strength(&wa, &ka)?;
        let plain: Zeroizing<Vec<u8>> = match ka.class() {
            Some(CKO_SECRET_KEY) => Zeroizing::new(
                ka.bytes(CKA_VALUE)
                    .ok_or(Error(CKR_KEY_NOT_WRAPPABLE))?
                    .to_vec(),
            ),
            Some(CKO_PRIVATE_KEY) => match &*key_material(s, &ko)? {
                KeyMaterial::Private(sk) => sk.to_pkcs8_der(),
                // A container key PKCS#11 made extractable (docs/mapping.md).
                KeyMaterial::Held(app, id, _) => app.export_key(*id)?.to_pkcs8_der(),
                _ => return Err(Error(CKR_KEY_NOT_WRAPPABLE)),
            },
            _ => return Err(Error(CKR_KEY_NOT_WRAPPABLE)),
        };
        let wkm = key_material(s, &wo)?;
        let op = cipher_op(mech, wa.key_type(), wkm, Direction::Encrypt)?;
        latch_role(s, &wo, Role::Wrap)?;
        if wa.class() == Some(CKO_PUBLIC_KEY) && ka.flag(CKA_SENSITIVE) {
            latch_private_halves(m, s, &wa)?;
        }
        let out = run_cipher(op, &plain, Direction::Encrypt).map_err(|e| match e.0 {
            CKR_DATA_LEN_RANGE => Error(CKR_KEY_SIZE_RANGE),
            _ => e,
        })?;
        Ok(out.to_vec())
    })
}

/// `C_UnwrapKey`.
pub(crate) fn unwrap(
    h: CK_SESSION_HANDLE,
    mech: &Mech,
    uk: CK_OBJECT_HANDLE,
    blob: &[u8],
    tmpl: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    state::with_session(h, |m, s| {
        let (uo, ua) = key_for(m, s, uk, CKA_UNWRAP, mech.ty).map_err(|e| match e.0 {
            CKR_KEY_HANDLE_INVALID => Error(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
            CKR_KEY_TYPE_INCONSISTENT => Error(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
            _ => e,
        })?;
        let mut a = object::parse_template(tmpl, Purpose::Create, s.token.login())?;
        // The wrap format binds no attributes, so the blob does not say how the key was
        // protected: an unwrapped key is sensitive whatever the template asks
        // (docs/security.md, rule 12).
        if a.bool_(CKA_SENSITIVE) == Some(false) {
            return Err(Error(CKR_TEMPLATE_INCONSISTENT));
        }
        a.set_bool(CKA_SENSITIVE, true);
        let usage = crate::landing::usage_of(&a);
        let ukm = key_material(s, &uo)?;
        let op = cipher_op(mech, ua.key_type(), ukm, Direction::Decrypt)?;
        latch_role(s, &uo, Role::Wrap)?;
        let plain = run_cipher(op, blob, Direction::Decrypt).map_err(|e| match e.0 {
            CKR_ENCRYPTED_DATA_INVALID | CKR_ENCRYPTED_DATA_LEN_RANGE => {
                Error(CKR_WRAPPED_KEY_INVALID)
            }
            _ => e,
        })?;
        match a.class() {
            Some(CKO_PRIVATE_KEY) => {
                let sk = PrivateKey::from_pkcs8_der(&plain)
                    .map_err(|_| Error(CKR_WRAPPED_KEY_INVALID))?;
                if a.key_type()
                    .is_some_and(|k| k != keys::key_type_of(sk.alg()))
                {
                    return Err(Error(CKR_TEMPLATE_INCONSISTENT));
                }
                keys::fill_private(&sk, &mut a)?;
                object::complete(&mut a, false, None)?;
                if let Some((_, h)) = crate::landing::land(
                    m,
                    s,
                    crate::landing::KeySource::Import(&sk),
                    usage,
                    None,
                    &a,
                )? {
                    return Ok(h);
                }
                store_new(m, s, a)
            }
            Some(CKO_SECRET_KEY) | None => {
                let mut v = plain.to_vec();
                if let Some(l) = a.ulong(CKA_VALUE_LEN) {
                    if (l as usize) > v.len() {
                        return Err(Error(CKR_TEMPLATE_INCONSISTENT));
                    }
                    v.truncate(l as usize);
                }
                let (a, _) = new_secret(s, a, &Zeroizing::new(v), None, false)?;
                store_new(m, s, a)
            }
            _ => Err(Error(CKR_TEMPLATE_INCONSISTENT)),
        }
    })
}

/// The X9.63 / SP 800-56A KDFs of `CKD_*`.
fn ecdh_kdf(kdf: CK_ULONG, z: &[u8], shared: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let (h, sp800) = match kdf {
        CKD_NULL => {
            if len > z.len() {
                return Err(Error(CKR_TEMPLATE_INCONSISTENT));
            }
            return Ok(Zeroizing::new(z[z.len() - len..].to_vec()));
        }
        CKD_SHA1_KDF => (HashAlg::Sha1, false),
        CKD_SHA224_KDF => (HashAlg::Sha224, false),
        CKD_SHA256_KDF => (HashAlg::Sha256, false),
        CKD_SHA384_KDF => (HashAlg::Sha384, false),
        CKD_SHA512_KDF => (HashAlg::Sha512, false),
        CKD_SHA1_KDF_SP800 => (HashAlg::Sha1, true),
        CKD_SHA224_KDF_SP800 => (HashAlg::Sha224, true),
        CKD_SHA256_KDF_SP800 => (HashAlg::Sha256, true),
        CKD_SHA384_KDF_SP800 => (HashAlg::Sha384, true),
        CKD_SHA512_KDF_SP800 => (HashAlg::Sha512, true),
        _ => return Err(Error(CKR_MECHANISM_PARAM_INVALID)),
    };
    let mut out = Zeroizing::new(Vec::with_capacity(len + 64));
    let mut i: u32 = 1;
    while out.len() < len {
        let mut input = Zeroizing::new(Vec::new());
        if sp800 {
            input.extend_from_slice(&i.to_be_bytes());
            input.extend_from_slice(z);
        } else {
            input.extend_from_slice(z);
            input.extend_from_slice(&i.to_be_bytes());
        }
        input.extend_from_slice(shared);
        out.extend_from_slice(&digest(h, &input));
        i += 1;
    }
    out.truncate(len);
    Ok(out)
}

fn default_len(kt: Option<CK_KEY_TYPE>) -> Option<usize> {
    match kt {
        Some(CKK_SM4) => Some(16),
        _ => None,
    }
}

/// Tookan a2 (docs/security.md, rule 7): a public key that wraps latches the private
/// keys of its pair on the token to the wrap role, so none of them can decrypt the blob;
/// if one already decrypts, the wrap is refused. The pair is found by its public key.
fn latch_private_halves(m: &state::Module, s: &crate::session::Session, wa: &Attrs) -> Result<()> {
    crate::api::objects::sync_store(m, &s.token)?;
    let same = |a: &Attrs, ty: CK_ATTRIBUTE_TYPE| matches!((a.bytes(ty), wa.bytes(ty)), (Some(x), Some(y)) if !x.is_empty() && x == y);
    let halves: Vec<_> = m
        .lock()?
        .objects
        .values()
        .filter(|o| o.slot == s.slot_id)
        .filter(|o| {
            o.read_attrs().is_ok_and(|a| {
                a.class() == Some(CKO_PRIVATE_KEY)
                    && (same(&a, CKA_PUBLIC_KEY_INFO)
                        || same(&a, CKA_MODULUS)
                        || same(&a, CKA_EC_POINT))
            })
        })
        .cloned()
        .collect();
    for o in halves {
        latch_role(s, &o, Role::Wrap)?;
    }
    Ok(())
}

/// Whether a key's value has never been known outside the token: generated here and
/// never readable since (docs/security.md, "Trojan" wrapping keys).
fn never_known(a: &Attrs) -> bool {
    a.flag(CKA_LOCAL) && (a.flag(CKA_ALWAYS_SENSITIVE) || a.flag(CKA_NEVER_EXTRACTABLE))
}

/// The rules for wrapping a sensitive key (docs/security.md, rules 9 and 10): the
/// wrapping key must be trusted or one whose value no caller can know (a secret key
/// generated here and never readable, or a public key generated here), and a secret
/// key is never wrapped under a shorter secret key.
fn check_wrap_strength(wa: &Attrs, ka: &Attrs) -> Result<()> {
    if !ka.flag(CKA_SENSITIVE) || wa.flag(CKA_TRUSTED) {
        return Ok(());
    }
    let known = match wa.class() {
        Some(CKO_PUBLIC_KEY) => !wa.flag(CKA_LOCAL),
        _ => !never_known(wa),
    };
    if known {
        return Err(Error(CKR_KEY_NOT_WRAPPABLE));
    }
    if wa.class() == Some(CKO_SECRET_KEY) && ka.class() == Some(CKO_SECRET_KEY) {
        let len = |a: &Attrs| a.ulong(CKA_VALUE_LEN).unwrap_or(0).min(32);
        if len(ka) > len(wa) {
            return Err(Error(CKR_KEY_NOT_WRAPPABLE));
        }
    }
    Ok(())
}

/// Whether a key's value is protected from the caller: unextractable, or sensitive since
/// it was made here (a key imported or once readable in clear is known to someone).
fn protected(a: &Attrs) -> bool {
    !a.bool_(CKA_EXTRACTABLE).unwrap_or(true)
        || (a.flag(CKA_SENSITIVE) && a.flag(CKA_ALWAYS_SENSITIVE))
}

/// The rules for the derivations that copy key bits (concatenation, XOR with data,
/// extraction; docs/security.md rule 11): a key derived from a protected key is
/// sensitive (and unextractable if an input is), and carries at least 16 bytes (or all)
/// of the protected input, so it cannot be read or brute-forced a byte at a time.
/// `base_bytes` and `other_bytes`: how many bytes of the derived value come from the
/// base key and from the second key.
fn check_copying_derive(
    a: &mut Attrs,
    base: &Attrs,
    other: Option<&Attrs>,
    base_bytes: usize,
    other_bytes: usize,
) -> Result<()> {
    let inputs = [Some(base), other];
    let sensitive = inputs.iter().flatten().any(|k| protected(k));
    let unextractable = inputs
        .iter()
        .flatten()
        .any(|k| !k.bool_(CKA_EXTRACTABLE).unwrap_or(true));
    if sensitive {
        if a.bool_(CKA_SENSITIVE) == Some(false) {
            return Err(Error(CKR_TEMPLATE_INCONSISTENT));
        }
        a.set_bool(CKA_SENSITIVE, true);
    }
    if unextractable {
        if a.bool_(CKA_EXTRACTABLE) == Some(true) {
            return Err(Error(CKR_TEMPLATE_INCONSISTENT));
        }
        a.set_bool(CKA_EXTRACTABLE, false);
    }
    let len = |k: &Attrs| k.ulong(CKA_VALUE_LEN).unwrap_or(0) as usize;
    let mut held = 0;
    let mut carried = 0;
    if protected(base) {
        held += len(base);
        carried += base_bytes;
    }
    if let Some(o) = other.filter(|o| protected(o)) {
        held += len(o);
        carried += other_bytes;
    }
    if carried < held.min(16) {
        return Err(Error(CKR_TEMPLATE_INCONSISTENT));
    }
    Ok(())
}

/// `C_DeriveKey`.
pub(crate) fn derive(
    h: CK_SESSION_HANDLE,
    mech: &Mech,
    base: CK_OBJECT_HANDLE,
    tmpl: &Template,
) -> Result<(CK_OBJECT_HANDLE, Vec<CK_OBJECT_HANDLE>)> {
    state::with_session(h, |m, s| {
        if !m.compat.allows(mech.ty) || crate::mechanism::row(mech.ty).is_none() {
            return Err(Error(CKR_MECHANISM_INVALID));
        }
        let (bo, ba) = key_for(m, s, base, CKA_DERIVE, mech.ty)?;
        let prep = |t: &[(CK_ATTRIBUTE_TYPE, crate::object::AttrVal)]| -> Result<Attrs> {
            let mut a = object::parse_template(t, Purpose::Derive, s.token.login())?;
            if a.key_type().is_none() {
                a.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
            }
            // Derived keys may do only what their template says.
            for u in [
                CKA_ENCRYPT,
                CKA_DECRYPT,
                CKA_SIGN,
                CKA_VERIFY,
                CKA_WRAP,
                CKA_UNWRAP,
                CKA_DERIVE,
            ] {
                a.default_bool(u, false);
            }
            Ok(a)
        };
        let a = prep(tmpl)?;
        let finish = |a: Attrs, v: &[u8]| -> Result<CK_OBJECT_HANDLE> {
            let (mut a, _) = new_secret(s, a, v, None, false)?;
            a.set_bool(
                CKA_ALWAYS_SENSITIVE,
                ba.flag(CKA_ALWAYS_SENSITIVE) && a.flag(CKA_SENSITIVE),
            );
            a.set_bool(
                CKA_NEVER_EXTRACTABLE,
                ba.flag(CKA_NEVER_EXTRACTABLE) && !a.flag(CKA_EXTRACTABLE),
            );
            store_new(m, s, a)
        };
        if let Param::Kbkdf {
            prf,
            data,
            iv,
            extra,
        } = &mech.param
        {
            use crate::api::kbkdf::{Mode, derive as kdf};
            let mode = match mech.ty {
                CKM_SP800_108_COUNTER_KDF => Mode::Counter,
                CKM_SP800_108_FEEDBACK_KDF => Mode::Feedback,
                _ => Mode::Pipeline,
            };
            let mut all = vec![a];
            for t in extra {
                all.push(prep(t)?);
            }
            let lens = all
                .iter()
                .map(|a| {
                    a.ulong(CKA_VALUE_LEN)
                        .map(|l| l as usize)
                        .or(default_len(a.key_type()))
                        .ok_or(Error(CKR_TEMPLATE_INCOMPLETE))
                })
                .collect::<Result<Vec<usize>>>()?;
            let KeyMaterial::Secret(kv, _) = &*key_material(s, &bo)? else {
                return Err(Error(CKR_KEY_TYPE_INCONSISTENT));
            };
            let values = kdf(mode, *prf, kv, data, iv, &lens)?;
            let mut handles = Vec::new();
            for (a, v) in all.into_iter().zip(values.iter()) {
                handles.push(finish(a, v)?);
            }
            let first = handles.remove(0);
            return Ok((first, handles));
        }
        let want = a
            .ulong(CKA_VALUE_LEN)
            .map(|l| l as usize)
            .or(default_len(a.key_type()));
        let bk = key_material(s, &bo)?;
        let base_val = || -> Result<&[u8]> {
            match &*bk {
                KeyMaterial::Secret(v, _) => Ok(v),
                _ => Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
            }
        };
        let mut v: Zeroizing<Vec<u8>> = match (mech.ty, &mech.param) {
            (CKM_CONCATENATE_BASE_AND_KEY, Param::Key(other)) => {
                let oo = visible(m, s, *other, CKR_KEY_HANDLE_INVALID)?;
                let ok = key_material(s, &oo)?;
                let KeyMaterial::Secret(ov, _) = &*ok else {
                    return Err(Error(CKR_KEY_TYPE_INCONSISTENT));
                };
                let mut x = Zeroizing::new(base_val()?.to_vec());
                x.extend_from_slice(ov);
                x
            }
            (CKM_CONCATENATE_BASE_AND_DATA, Param::Bytes(d)) => {
                let mut x = Zeroizing::new(base_val()?.to_vec());
                x.extend_from_slice(d);
                x
            }
            (CKM_CONCATENATE_DATA_AND_BASE, Param::Bytes(d)) => {
                let mut x = Zeroizing::new(d.clone());
                x.extend_from_slice(base_val()?);
                x
            }
            (CKM_XOR_BASE_AND_DATA, Param::Bytes(d)) => {
                let b = base_val()?;
                Zeroizing::new(b.iter().zip(d).map(|(x, y)| x ^ y).collect())
            }
            (CKM_EXTRACT_KEY_FROM_KEY, Param::Ulong(bit)) => {
                let b = base_val()?;
                let n = want.ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
                let total = b.len() * 8;
                let mut out = Zeroizing::new(vec![0u8; n]);
                for i in 0..n * 8 {
                    let src = (*bit as usize + i) % total;
                    let bitv = (b[src / 8] >> (7 - src % 8)) & 1;
                    out[i / 8] |= bitv << (7 - i % 8);
                }
                out
            }
            (CKM_AES_CBC_ENCRYPT_DATA | CKM_AES_ECB_ENCRYPT_DATA, p) => {
                use token_hal::crypto::sym::{SymAlg, SymMode, encrypt};
                if ba.key_type() != Some(CKK_AES) {
                    return Err(Error(CKR_KEY_TYPE_INCONSISTENT));
                }
                let r = match p {
                    Param::CbcData { iv, data } => {
                        encrypt(SymAlg::Aes, SymMode::Cbc, base_val()?, iv, data)
                    }
                    Param::Bytes(d) if mech.ty == CKM_AES_ECB_ENCRYPT_DATA => {
                        encrypt(SymAlg::Aes, SymMode::Ecb, base_val()?, &[], d)
                    }
                    _ => return Err(Error(CKR_MECHANISM_PARAM_INVALID)),
                };
                Zeroizing::new(r.map_err(|_| Error(CKR_DATA_LEN_RANGE))?)
            }
            (
                CKM_ECDH1_DERIVE,
                Param::Ecdh {
                    kdf,
                    shared,
                    public,
                },
            ) => {
                let out = match &*bk {
                    KeyMaterial::Private(sk) => sk.derive(&DeriveMech::Ecdh {
                        peer_point: keys::raw_point(sk.alg(), public),
                    }),
                    KeyMaterial::Held(app, id, alg) => app.derive(
                        &token_hal::KeyRef::Id(*id),
                        &DeriveMech::Ecdh {
                            peer_point: keys::raw_point(*alg, public),
                        },
                    ),
                    _ => return Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
                };
                let z = out
                    .map_err(|e| match e {
                        token_hal::Error::InvalidData(_) | token_hal::Error::InvalidArgument(_) => {
                            Error(CKR_MECHANISM_PARAM_INVALID)
                        }
                        e => Error::from(e),
                    })?
                    .secret;
                let n = want.unwrap_or(z.len());
                ecdh_kdf(*kdf, &z, shared, n)?
            }
            (
                CKM_UKEY_SM2_KEY_EXCHANGE,
                Param::Sm2Exchange {
                    initiator,
                    own_id,
                    ephemeral,
                    peer_public,
                    peer_id,
                    peer_ephemeral,
                    confirm,
                },
            ) => {
                use token_hal::crypto::sm2::{DEFAULT_ID, ExchangeRole};
                let klen = want.ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
                let eo = visible(m, s, *ephemeral, CKR_KEY_HANDLE_INVALID)?;
                let r = match &*key_material(s, &eo)? {
                    KeyMaterial::Private(k) if k.alg() == KeyAlg::Sm2 => k
                        .raw_private_value()
                        .ok_or(Error(CKR_KEY_TYPE_INCONSISTENT))?,
                    _ => return Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
                };
                let peer = token_hal::crypto::PublicKey::from_ec_point(KeyAlg::Sm2, peer_public)
                    .map_err(|_| Error(CKR_MECHANISM_PARAM_INVALID))?;
                let id = |v: &Vec<u8>| {
                    if v.is_empty() {
                        DEFAULT_ID.to_vec()
                    } else {
                        v.clone()
                    }
                };
                let dm = DeriveMech::Sm2Exchange {
                    role: if *initiator {
                        ExchangeRole::Initiator
                    } else {
                        ExchangeRole::Responder
                    },
                    own_id: id(own_id),
                    ephemeral: r,
                    peer,
                    peer_id: id(peer_id),
                    peer_ephemeral: peer_ephemeral.clone(),
                    klen,
                };
                let out = match &*bk {
                    KeyMaterial::Private(sk) if sk.alg() == KeyAlg::Sm2 => sk.derive(&dm),
                    KeyMaterial::Held(app, id, KeyAlg::Sm2) => {
                        app.derive(&token_hal::KeyRef::Id(*id), &dm)
                    }
                    _ => return Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
                };
                let out = out.map_err(|e| match e {
                    token_hal::Error::InvalidData(_) | token_hal::Error::InvalidArgument(_) => {
                        Error(CKR_MECHANISM_PARAM_INVALID)
                    }
                    e => Error::from(e),
                })?;
                // Key confirmation: the peer's value is checked before any key is made.
                confirm.settle(out.confirmation, out.expected_peer_confirmation)?;
                out.secret
            }
            _ => return Err(Error(CKR_MECHANISM_PARAM_INVALID)),
        };
        if let Some(n) = want {
            if n > v.len() {
                return Err(Error(CKR_TEMPLATE_INCONSISTENT));
            }
            v.truncate(n);
        } else if a.key_type() == Some(CKK_AES) && !matches!(v.len(), 16 | 24 | 32) {
            return Err(Error(CKR_TEMPLATE_INCOMPLETE));
        }
        let mut a = a;
        let n = v.len();
        let base_len = ba.ulong(CKA_VALUE_LEN).unwrap_or(0) as usize;
        match (mech.ty, &mech.param) {
            (CKM_CONCATENATE_BASE_AND_KEY, Param::Key(other)) => {
                let oa = visible(m, s, *other, CKR_KEY_HANDLE_INVALID)?.attrs()?;
                let from_base = n.min(base_len);
                check_copying_derive(&mut a, &ba, Some(&oa), from_base, n - from_base)?;
            }
            (CKM_CONCATENATE_BASE_AND_DATA, _) => {
                check_copying_derive(&mut a, &ba, None, n.min(base_len), 0)?;
            }
            (CKM_CONCATENATE_DATA_AND_BASE, Param::Bytes(d)) => {
                check_copying_derive(&mut a, &ba, None, n.saturating_sub(d.len()), 0)?;
            }
            (CKM_XOR_BASE_AND_DATA | CKM_EXTRACT_KEY_FROM_KEY, _) => {
                check_copying_derive(&mut a, &ba, None, n, 0)?;
            }
            _ => {}
        }
        let _ = hash_of;
        Ok((finish(a, &v)?, Vec::new()))
    })
}
