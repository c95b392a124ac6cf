//! Object functions (PKCS#11 3.0 §5.7): create, copy, destroy, attributes, search; and the
//! mapping of token objects onto token-hal's generic object store.

use std::sync::Arc;

use cryptoki_sys::*;
use token_hal::{Attr, LoginState};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys;
use crate::landing::{self, Half, Overlays};
use crate::object::{self, AttrVal, Attrs, AttrsExt, KeyMaterial, Loc, Object, Purpose, Read};
use crate::session::Session;
use crate::state::{self, Module, Token};

/// The attributes of a template, as copied from the caller (the extra templates of a
/// KBKDF derivation stay in this form). Values up to 22 bytes (flags, numbers, short IDs)
/// are stored inline, so copying a template makes no allocation per attribute; every value
/// may be key material (`CKA_VALUE` of an imported key) and is zeroized when dropped.
pub(crate) type RawTemplate = Vec<(CK_ATTRIBUTE_TYPE, AttrVal)>;

/// A caller's template.
#[derive(Default)]
pub(crate) struct Template(pub RawTemplate);

/// A caller's template as it is in the caller's memory: (type, value) pairs borrowed, not
/// copied (no allocation for up to eight attributes). [`Template::from_slices`] makes the
/// copy most calls work on; `C_GenerateKeyPair` compares these with its memo first.
pub(crate) type AttrSlices<'a> = smallvec::SmallVec<[(CK_ATTRIBUTE_TYPE, &'a [u8]); 8]>;

impl Template {
    /// A copy of a caller's template, with vendor key types and mechanisms translated.
    pub(crate) fn from_slices(t: &[(CK_ATTRIBUTE_TYPE, &[u8])]) -> Self {
        t.iter()
            .map(|&(ty, v)| (ty, crate::mechanism::translated_attr(ty, v)))
            .collect()
    }
}

impl std::ops::Deref for Template {
    type Target = [(CK_ATTRIBUTE_TYPE, AttrVal)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromIterator<(CK_ATTRIBUTE_TYPE, AttrVal)> for Template {
    fn from_iter<I: IntoIterator<Item = (CK_ATTRIBUTE_TYPE, AttrVal)>>(it: I) -> Self {
        Self(it.into_iter().collect())
    }
}

/// token-hal attributes of an attribute map (secret ones sealed).
fn to_hal(a: &Attrs) -> Vec<Attr> {
    let class = a.class();
    a.iter()
        .map(|(ty, v)| Attr {
            ty: *ty,
            value: v.to_zeroizing(),
            sensitive: object::is_secret_attr(*ty, class),
        })
        .collect()
}

fn from_hal(attrs: &[Attr]) -> Attrs {
    attrs
        .iter()
        .map(|a| (a.ty as CK_ATTRIBUTE_TYPE, AttrVal::new(&a.value)))
        .collect()
}

/// Gives a listed object the attributes the store lists for it. An object whose
/// attributes are already those is not written: a write counts as a change to objects
/// ([`object::changes`]), and a listing that changed nothing must not make every
/// session's key checks stale.
fn replace_attrs(o: &Object, listed: Attrs) {
    if o.read_attrs().is_ok_and(|a| *a == listed) {
        return;
    }
    if let Ok(mut a) = o.write_attrs() {
        *a = listed;
    }
}

/// Re-reads the token's object store into the handle table (new objects get handles,
/// vanished ones lose theirs).
pub(crate) fn sync_store(m: &Module, t: &Token) -> Result<()> {
    // The listing is a snapshot: objects other threads make (and logins they change)
    // while it is taken may be missing from it, and must keep their handles.
    let start = object::epoch();
    let changes = t.app.login_changes();
    let user_before = t.login() == LoginState::User;
    let (overlays, recs) = Overlays::split(t.app.list_objects()?);
    let mapped = mapped_objects(t, &overlays)?;
    let mut inner = m.lock()?;
    let mut seen = Vec::new();
    for (key, loc, attrs) in mapped {
        if inner.destroyed_since(t.slot_id, &key, start) {
            continue;
        }
        let (h, new) = inner.token_handle(t.slot_id, key);
        seen.push(h);
        match inner.objects.get(&h) {
            Some(o) if !new => replace_attrs(o, attrs),
            _ => {
                inner
                    .objects
                    .insert(h, Arc::new(Object::new(h, t.slot_id, loc, attrs)));
            }
        }
    }
    for r in recs {
        if inner.destroyed_since(t.slot_id, &format!("o{}", r.id.0), start) {
            continue;
        }
        let (h, new) = inner.store_handle(t.slot_id, r.id);
        seen.push(h);
        let attrs = from_hal(&r.attrs);
        match inner.objects.get(&h) {
            Some(o) if !new => {
                // Keep sealed values read earlier when this listing has them empty.
                let mut merged = attrs;
                if let Ok(a) = o.read_attrs() {
                    for (ty, v) in a.iter() {
                        if merged.get(ty).is_some_and(|x| x.is_empty()) && !v.is_empty() {
                            merged.insert(*ty, v.clone());
                        }
                    }
                }
                replace_attrs(o, merged);
            }
            _ => {
                inner.objects.insert(
                    h,
                    Arc::new(Object::new(h, t.slot_id, Loc::Store(r.id), attrs)),
                );
            }
        }
    }
    let slot = t.slot_id;
    // Logged in all along: a logout and login again while the listing was taken (another
    // thread cycling them) would leave private objects out of it.
    let user = user_before && t.login() == LoginState::User && t.app.login_changes() == changes;
    inner.objects.retain(|h, o| {
        o.slot != slot
            || matches!(o.loc, Loc::Session(_))
            || seen.contains(h)
            || o.born > start
            || (!user && o.read_attrs().map(|a| a.flag(CKA_PRIVATE)).unwrap_or(false))
    });
    Ok(())
}

/// The objects docs/mapping.md derives from containers and files: every key pair (active
/// and retired) as a private and a public key, every certificate (current and historical),
/// every file as `CKO_DATA`. Keyed by a stable name for their handles.
fn mapped_objects(t: &Token, overlays: &Overlays) -> Result<Vec<(String, Loc, Attrs)>> {
    use token_hal::{KeyState, KeyUsage, Rights};
    let mut out = Vec::new();
    let base = |class: CK_OBJECT_CLASS, id: &[u8], label: &str, private: bool| {
        let mut a = Attrs::new();
        a.set_ulong(CKA_CLASS, class);
        a.set_bool(CKA_TOKEN, true);
        a.set_bool(CKA_PRIVATE, private);
        a.set_bool(CKA_MODIFIABLE, false);
        a.set_bool(CKA_COPYABLE, false);
        a.set_bool(CKA_DESTROYABLE, false);
        a.set_bytes(CKA_ID, id);
        a.set_bytes(CKA_LABEL, label.as_bytes());
        a
    };
    for c in t.app.list_containers()? {
        for key in c.all_keys() {
            let retired_n = c.retired.iter().position(|r| r.id == key.id);
            let (id, label) = match retired_n {
                None => (c.id.clone(), c.name.clone()),
                Some(n) => {
                    let mut id = c.id.clone();
                    id.extend_from_slice(format!("-r{}", n + 1).as_bytes());
                    (id, format!("{} (retired {})", c.name, n + 1))
                }
            };
            let active = key.state == KeyState::Active;
            let sign = active && key.usage == KeyUsage::Sign;
            let dec = key.usage == KeyUsage::Encrypt || !active;
            let ec = key.alg.is_ec();
            let mut sk = base(CKO_PRIVATE_KEY, &id, &label, true);
            keys::fill_public(&key.public_key, &mut sk)?;
            sk.remove(&CKA_PUBLIC_KEY_INFO);
            sk.set_bool(CKA_SENSITIVE, true);
            sk.set_bool(CKA_EXTRACTABLE, false);
            sk.set_bool(CKA_ALWAYS_SENSITIVE, true);
            sk.set_bool(CKA_NEVER_EXTRACTABLE, true);
            sk.set_bool(CKA_LOCAL, false);
            sk.set_bool(CKA_SIGN, sign);
            sk.set_bool(CKA_SIGN_RECOVER, false);
            sk.set_bool(CKA_DECRYPT, dec);
            sk.set_bool(CKA_UNWRAP, dec && !ec);
            sk.set_bool(CKA_DERIVE, ec && dec);
            sk.set_bool(CKA_WRAP_WITH_TRUSTED, false);
            sk.set_bool(CKA_ALWAYS_AUTHENTICATE, false);
            sk.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
            let mut pk = base(CKO_PUBLIC_KEY, &id, &label, false);
            keys::fill_public(&key.public_key, &mut pk)?;
            pk.set_bool(CKA_VERIFY, key.usage == KeyUsage::Sign);
            pk.set_bool(CKA_ENCRYPT, key.usage == KeyUsage::Encrypt && active);
            pk.set_bool(CKA_WRAP, key.usage == KeyUsage::Encrypt && active && !ec);
            pk.set_bool(CKA_DERIVE, false);
            pk.set_bool(CKA_TRUSTED, false);
            pk.set_bool(CKA_LOCAL, false);
            for (a, tag) in [(&mut sk, "kp"), (&mut pk, "ku")] {
                a.set_bytes(
                    CKA_UNIQUE_ID,
                    format!("{}-{tag}{}", t.serial, key.id.0).as_bytes(),
                );
                a.entry(CKA_START_DATE).or_default();
                a.entry(CKA_END_DATE).or_default();
                a.entry(CKA_SUBJECT).or_default();
            }
            // PKCS#11's own attributes of a pair it made (src/landing.rs).
            let show_sk = overlays.apply(Half::Private, key, &mut sk);
            let show_pk = overlays.apply(Half::Public, key, &mut pk);
            let mut hist = 0;
            for cert in &key.certs {
                let (cid, clabel) = if cert.current {
                    (id.clone(), label.clone())
                } else {
                    hist += 1;
                    let mut x = id.clone();
                    x.extend_from_slice(format!("-h{hist}").as_bytes());
                    (x, format!("{label} (old {hist})"))
                };
                let mut ca = base(CKO_CERTIFICATE, &cid, &clabel, false);
                ca.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
                ca.set_ulong(CKA_CERTIFICATE_CATEGORY, 1);
                ca.set_bool(CKA_TRUSTED, false);
                ca.set_bytes(CKA_VALUE, &cert.der);
                if let Ok(fields) = cert_fields(&cert.der) {
                    for (ty, v) in fields {
                        ca.set_bytes(ty, &v);
                    }
                }
                ca.set_bytes(
                    CKA_UNIQUE_ID,
                    format!("{}-c{}", t.serial, cert.id.0).as_bytes(),
                );
                if let Some(s) = ca.bytes(CKA_SUBJECT).filter(|_| cert.current) {
                    sk.set_bytes(CKA_SUBJECT, s);
                    pk.set_bytes(CKA_SUBJECT, s);
                }
                out.push((format!("c{}", cert.id.0), Loc::ContainerCert(cert.id), ca));
            }
            if show_sk {
                out.push((
                    Half::Private.index_key(key.id),
                    Loc::ContainerKey(key.id),
                    sk,
                ));
            }
            if show_pk {
                out.push((
                    Half::Public.index_key(key.id),
                    Loc::ContainerPub(key.id),
                    pk,
                ));
            }
        }
    }
    for f in t.app.list_files()? {
        let private = f.read_rights != Rights::ANYONE;
        let mut a = base(CKO_DATA, &[], &f.name, private);
        a.remove(&CKA_ID);
        a.set_bytes(CKA_APPLICATION, t.app_name.as_bytes());
        a.set_bytes(CKA_OBJECT_ID, &[]);
        let value = t.app.read_file(&f.name, 0, f.size).unwrap_or_default();
        a.set_bytes(CKA_VALUE, &value);
        a.set_bytes(
            CKA_UNIQUE_ID,
            format!("{}-f{}", t.serial, f.name).as_bytes(),
        );
        out.push((format!("f{}", f.name), Loc::File, a));
    }
    Ok(out)
}

/// An object the session may see; `err` is the code for a bad handle.
pub(crate) fn visible(
    m: &Module,
    s: &Session,
    h: CK_OBJECT_HANDLE,
    err: CK_RV,
) -> Result<Arc<Object>> {
    let o = m.lock()?.objects.get(&h).cloned().ok_or(Error(err))?;
    if o.slot != s.slot_id {
        return Err(Error(err));
    }
    if o.read_attrs()
        .map_err(|_| Error::GENERAL)?
        .flag(CKA_PRIVATE)
        && !s.user()
    {
        return Err(Error(err));
    }
    Ok(o)
}

/// Writes an object's attributes back to the store (token objects).
pub(crate) fn persist(s: &Session, o: &Object, a: &Attrs) -> Result<()> {
    match o.loc {
        Loc::Store(id) => s.token.app.update_object(id, &to_hal(a))?,
        Loc::ContainerKey(_) | Loc::ContainerPub(_) => {
            if let Some(ov) = landing::overlay_of(a) {
                s.token.app.update_object(ov, &landing::overlay_attrs(a))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks that the session may create or change an object with these attributes.
fn check_write(s: &Session, a: &Attrs) -> Result<()> {
    if a.flag(CKA_TOKEN) && !s.rw {
        return Err(Error(CKR_SESSION_READ_ONLY));
    }
    if a.flag(CKA_PRIVATE) && !s.user() {
        return Err(Error(CKR_USER_NOT_LOGGED_IN));
    }
    Ok(())
}

/// Stores a completed new object and returns its handle.
pub(crate) fn store_new(m: &Module, s: &Session, a: Attrs) -> Result<CK_OBJECT_HANDLE> {
    store_new_keyed(m, s, a, None)
}

/// [`store_new`], with the object's parsed key already known (a key just generated):
/// its first use then skips parsing it back from the attributes.
pub(crate) fn store_new_keyed(
    m: &Module,
    s: &Session,
    a: Attrs,
    key: Option<Arc<KeyMaterial>>,
) -> Result<CK_OBJECT_HANDLE> {
    check_write(s, &a)?;
    let made = |h, loc, a| new_object(s, h, loc, a, key);
    if a.flag(CKA_TOKEN) {
        let id = s
            .token
            .app
            .create_object(a.flag(CKA_PRIVATE), &to_hal(&a))?;
        let mut inner = m.lock()?;
        let (h, _) = inner.store_handle(s.slot_id, id);
        inner.objects.insert(h, made(h, Loc::Store(id), a));
        Ok(h)
    } else {
        let mut inner = m.lock()?;
        let h = inner.new_object_handle();
        inner.objects.insert(h, made(h, Loc::Session(s.handle), a));
        Ok(h)
    }
}

/// A new handle entry, with its parsed key when it is known.
fn new_object(
    s: &Session,
    h: CK_OBJECT_HANDLE,
    loc: Loc,
    a: Attrs,
    key: Option<Arc<KeyMaterial>>,
) -> Arc<Object> {
    Arc::new(Object::with_key(h, s.slot_id, loc, a, key))
}

/// Stores a generated pair's objects as [`store_new_keyed`] does each; two session objects
/// go in under one lock of the object table. Either both are stored or neither is.
/// `token` and `private` are the pair's `CKA_TOKEN` (either half's) and each half's
/// `CKA_PRIVATE`, as the caller read them from the prepared templates.
pub(crate) fn store_new_pair(
    m: &Module,
    s: &Session,
    (token, private): (bool, [bool; 2]),
    (pa, pk): (Attrs, Option<Arc<KeyMaterial>>),
    (sa, sk): (Attrs, Option<Arc<KeyMaterial>>),
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    debug_assert_eq!(token, pa.flag(CKA_TOKEN) || sa.flag(CKA_TOKEN));
    debug_assert_eq!(private, [pa.flag(CKA_PRIVATE), sa.flag(CKA_PRIVATE)]);
    if token {
        let ph = store_new_keyed(m, s, pa, pk)?;
        return match store_new_keyed(m, s, sa, sk) {
            Ok(sh) => Ok((ph, sh)),
            Err(e) => {
                let _ = destroy(s.handle, ph);
                Err(e)
            }
        };
    }
    // Session objects: `check_write` with the flags known.
    if (private[0] || private[1]) && !s.user() {
        return Err(Error(CKR_USER_NOT_LOGGED_IN));
    }
    let mut inner = m.lock()?;
    let ph = inner.new_object_handle();
    let sh = inner.new_object_handle();
    let loc = Loc::Session(s.handle);
    inner.objects.insert(ph, new_object(s, ph, loc, pa, pk));
    inner.objects.insert(sh, new_object(s, sh, loc, sa, sk));
    Ok((ph, sh))
}

/// Fills what a new object's content implies: certificate fields, key sizes, check
/// values, and the key's own parsed form for private keys.
fn derive_content(a: &mut Attrs) -> Result<()> {
    match a.class() {
        Some(CKO_CERTIFICATE) if a.ulong(CKA_CERTIFICATE_TYPE) == Some(CKC_X_509) => {
            let der = a.bytes(CKA_VALUE).unwrap_or_default().to_vec();
            if let Ok(f) = cert_fields(&der) {
                for (ty, v) in f {
                    if a.bytes(ty).is_none_or(|x| x.is_empty()) {
                        a.set_bytes(ty, &v);
                    }
                }
            }
            a.entry(CKA_SUBJECT).or_default();
            a.entry(CKA_ISSUER).or_default();
            a.entry(CKA_SERIAL_NUMBER).or_default();
        }
        Some(CKO_SECRET_KEY) => {
            let v = a
                .bytes(CKA_VALUE)
                .ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?
                .to_vec();
            crate::api::keys::check_secret_len(a.key_type(), v.len())?;
            a.set_ulong(CKA_VALUE_LEN, v.len() as CK_ULONG);
            crate::api::keys::set_check_value(a, &v);
        }
        Some(CKO_PRIVATE_KEY) => {
            let sk = keys::private_from_attrs(a)?;
            let kt = a.key_type();
            keys::fill_private(&sk, a)?;
            if let Some(kt) = kt {
                a.set_ulong(CKA_KEY_TYPE, kt);
            }
        }
        Some(CKO_PUBLIC_KEY) => match keys::public_from_attrs(a) {
            Ok(pk) => {
                let kt = a.key_type();
                keys::fill_public(&pk, a)?;
                if let Some(kt) = kt {
                    a.set_ulong(CKA_KEY_TYPE, kt);
                }
            }
            // An RSA public key outside the sizes this token computes with is still
            // stored (an imported certificate's key, say); using it fails later.
            Err(_) if a.key_type() == Some(CKK_RSA) => {
                let n = a.bytes(CKA_MODULUS).ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
                let bits = (n.len() * 8) as CK_ULONG;
                a.bytes(CKA_PUBLIC_EXPONENT)
                    .ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
                a.set_ulong(CKA_MODULUS_BITS, bits);
            }
            Err(e) => return Err(e),
        },
        _ => {}
    }
    Ok(())
}

/// Subject, issuer and serial of an X.509 certificate.
fn cert_fields(der: &[u8]) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    use der::{Decode, Encode};
    let c =
        x509_cert::Certificate::from_der(der).map_err(|_| Error(CKR_ATTRIBUTE_VALUE_INVALID))?;
    let t = c.tbs_certificate();
    let enc = |r: der::Result<Vec<u8>>| r.map_err(|_| Error(CKR_ATTRIBUTE_VALUE_INVALID));
    Ok(vec![
        (CKA_SERIAL_NUMBER, enc(t.serial_number().to_der())?),
        (CKA_ISSUER, enc(t.issuer().to_der())?),
        (CKA_SUBJECT, enc(t.subject().to_der())?),
    ])
}

/// `C_CreateObject`.
pub(crate) fn create(h: CK_SESSION_HANDLE, tmpl: &Template) -> Result<CK_OBJECT_HANDLE> {
    state::with_session(h, |m, s| {
        let mut a = object::parse_template(tmpl, Purpose::Create, s.token.login())?;
        let usage = landing::usage_of(&a);
        check_write(s, &a)?;
        object::complete(&mut a, false, None)?;
        derive_content(&mut a)?;
        if a.class() == Some(CKO_PRIVATE_KEY) {
            let sk = keys::private_from_attrs(&a)?;
            if let Some((_, h)) =
                landing::land(m, s, landing::KeySource::Import(&sk), usage, None, &a)?
            {
                return Ok(h);
            }
        }
        store_new(m, s, a)
    })
}

/// `C_CopyObject`: the copy's template may only tighten (security.md).
pub(crate) fn copy(
    h: CK_SESSION_HANDLE,
    src: CK_OBJECT_HANDLE,
    tmpl: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    state::with_session(h, |m, s| {
        let o = visible(m, s, src, CKR_OBJECT_HANDLE_INVALID)?;
        let mut a = full_attrs(s, &o)?;
        if !a.bool_(CKA_COPYABLE).unwrap_or(true) {
            return Err(Error(CKR_ACTION_PROHIBITED));
        }
        let changes = object::parse_template(tmpl, Purpose::Copy, s.token.login())?;
        object::check_set(&a, &changes, true)?;
        // A key copied before its first use would give two unlatched keys of one value, one
        // to wrap and one to decrypt with: the original and the copy are latched to the crypt
        // role now (docs/security.md, rule 7).
        if matches!(a.class(), Some(CKO_SECRET_KEY | CKO_PRIVATE_KEY))
            && a.ulong(crate::mechanism::vendor::CKA_UKEY_ROLE).is_none()
        {
            crate::api::crypto::latch_role(s, &o, object::Role::Crypt)?;
            a.set_ulong(
                crate::mechanism::vendor::CKA_UKEY_ROLE,
                object::Role::Crypt as CK_ULONG,
            );
        }
        a.absorb(changes);
        landing::strip_markers(&mut a);
        // The copy of a container key is a generic object holding the key itself.
        if let Loc::ContainerKey(kid) = o.loc {
            if !s.user() {
                return Err(Error(CKR_USER_NOT_LOGGED_IN));
            }
            let sk = s.token.app.export_key(kid)?;
            keys::fill_private(&sk, &mut a)?;
        }
        a.set_bytes(CKA_UNIQUE_ID, &object::new_unique_id()?);
        store_new(m, s, a)
    })
}

/// The attributes of an object with its sealed values (fetched from the store).
pub(crate) fn full_attrs(s: &Session, o: &Object) -> Result<Attrs> {
    let mut a = o.attrs()?;
    if let Loc::Store(id) = o.loc {
        let needs = a
            .iter()
            .any(|(ty, v)| object::is_secret_attr(*ty, a.class()) && v.is_empty());
        if needs && s.user() {
            let rec = s.token.app.get_object(id)?;
            a = from_hal(&rec.attrs);
            if let Ok(mut w) = o.write_attrs() {
                *w = a.clone();
            }
        }
    }
    Ok(a)
}

/// `C_DestroyObject`.
pub(crate) fn destroy(h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<()> {
    state::with_session(h, |m, s| {
        let o = visible(m, s, oh, CKR_OBJECT_HANDLE_INVALID)?;
        {
            // Read in place: a copy of the attributes cost more than the rest of a
            // session object's destruction.
            let a = o.read_attrs().map_err(|_| Error::GENERAL)?;
            if !a.bool_(CKA_DESTROYABLE).unwrap_or(true) {
                return Err(Error(CKR_ACTION_PROHIBITED));
            }
            check_write(s, &a)?;
        }
        if matches!(o.loc, Loc::ContainerKey(_) | Loc::ContainerPub(_)) {
            return landing::destroy(m, s, &o, &o.attrs()?);
        }
        if let Loc::Store(id) = o.loc {
            s.token.app.delete_object(id)?;
        }
        let mut inner = m.lock()?;
        inner.objects.remove(&oh);
        if let Loc::Store(id) = o.loc {
            inner.forget_destroyed(o.slot, format!("o{}", id.0));
        }
        Ok(())
    })
}

/// `C_GetObjectSize`: the bytes of its attribute values.
pub(crate) fn size(h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<CK_ULONG> {
    state::with_session(h, |m, s| {
        let o = visible(m, s, oh, CKR_OBJECT_HANDLE_INVALID)?;
        Ok(o.attrs()?.values().map(|v| v.len() as CK_ULONG).sum())
    })
}

/// One attribute's answer to `C_GetAttributeValue`.
pub(crate) enum AttrAnswer {
    Value(Zeroizing<Vec<u8>>),
    Sensitive,
    Invalid,
}

/// `C_GetAttributeValue`, before the per-attribute length handling.
pub(crate) fn get_attrs(
    h: CK_SESSION_HANDLE,
    oh: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
) -> Result<Vec<AttrAnswer>> {
    state::with_session(h, |m, s| {
        let o = visible(m, s, oh, CKR_OBJECT_HANDLE_INVALID)?;
        let a = full_attrs(s, &o)?;
        Ok(types
            .iter()
            .map(|ty| match object::read(&a, *ty) {
                Read::Value(v) => AttrAnswer::Value(Zeroizing::new(v.to_vec())),
                Read::Sensitive => AttrAnswer::Sensitive,
                Read::Invalid => AttrAnswer::Invalid,
            })
            .collect())
    })
}

/// `C_SetAttributeValue`.
pub(crate) fn set_attrs(h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE, tmpl: &Template) -> Result<()> {
    state::with_session(h, |m, s| {
        let o = visible(m, s, oh, CKR_OBJECT_HANDLE_INVALID)?;
        let mut a = full_attrs(s, &o)?;
        check_write(s, &a)?;
        let changes = object::parse_template(tmpl, Purpose::Set, s.token.login())?;
        object::check_set(&a, &changes, false)?;
        a.absorb(changes);
        persist(s, &o, &a)?;
        *o.write_attrs().map_err(|_| Error::GENERAL)? = a;
        Ok(())
    })
}

/// `C_FindObjectsInit`.
pub(crate) fn find_init(h: CK_SESSION_HANDLE, tmpl: &Template) -> Result<()> {
    state::with_session(h, |m, s| {
        if s.ops()?.find.is_some() {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        sync_store(m, &s.token)?;
        let user = s.user();
        let mut found: Vec<CK_OBJECT_HANDLE> = {
            let inner = m.lock()?;
            inner
                .objects
                .values()
                .filter(|o| o.slot == s.slot_id)
                .filter_map(|o| {
                    let a = o.read_attrs().ok()?;
                    if a.flag(CKA_PRIVATE) && !user {
                        return None;
                    }
                    object::matches(&a, tmpl).then_some(o.handle)
                })
                .collect()
        };
        found.sort_unstable();
        s.ops()?.find = Some((found, 0));
        Ok(())
    })
}

/// `C_FindObjects`.
pub(crate) fn find(h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let (list, pos) = ops
            .find
            .as_mut()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        let end = (*pos + max).min(list.len());
        let out = list[*pos..end].to_vec();
        *pos = end;
        Ok(out)
    })
}

/// `C_FindObjectsFinal`.
pub(crate) fn find_final(h: CK_SESSION_HANDLE) -> Result<()> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        ops.find
            .take()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        Ok(())
    })
}

/// The parsed key of an object, made once per handle until logout.
pub(crate) fn key_material(s: &Session, o: &Object) -> Result<Arc<KeyMaterial>> {
    if let Some(k) = o.key.lock().map_err(|_| Error::GENERAL)?.as_ref() {
        return Ok(k.clone());
    }
    let a = full_attrs(s, o)?;
    let k = match a.class() {
        Some(CKO_SECRET_KEY) => KeyMaterial::Secret(
            Zeroizing::new(
                a.bytes(CKA_VALUE)
                    .ok_or(Error(CKR_KEY_HANDLE_INVALID))?
                    .to_vec(),
            ),
            Default::default(),
        ),
        Some(CKO_PRIVATE_KEY) => {
            if !s.user() {
                return Err(Error(CKR_USER_NOT_LOGGED_IN));
            }
            match o.loc {
                Loc::ContainerKey(id) => {
                    let alg = keys::public_from_attrs(&a)?.alg();
                    KeyMaterial::Held(s.token.app.clone(), id, alg)
                }
                _ => KeyMaterial::Private(keys::private_from_attrs(&a)?),
            }
        }
        Some(CKO_PUBLIC_KEY) => KeyMaterial::Public(keys::public_from_attrs(&a)?),
        _ => return Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
    };
    let k = Arc::new(k);
    *o.key.lock().map_err(|_| Error::GENERAL)? = Some(k.clone());
    Ok(k)
}
