//! Where a PKCS#11 key pair lands (docs/mapping.md, "Where a PKCS#11 key pair lands").
//!
//! A token key pair of a type SKF can express (SM2, RSA of at most 2048 bits) whose private
//! key is sensitive goes into a container slot, so the SKF face and the CLI see it. The
//! PKCS#11 attributes the container model has no place for (label, usage flags, dates,
//! `CKA_EXTRACTABLE`, `CKA_ALLOWED_MECHANISMS`, the role latch, …) are kept in an
//! *overlay*: one record per half in the application's generic object store, bound to the
//! key by its id and a hash of its public key, so an overlay whose key was deleted or
//! replaced through SKF or the CLI applies to nothing. Overlays are never PKCS#11 objects
//! themselves; they hold no secret (the key material stays in the container).

use std::collections::HashMap;
use std::sync::Arc;

use cryptoki_sys::*;
use token_hal::crypto::hash::{self, HashAlg};
use token_hal::crypto::{KeyAlg, PrivateKey};
use token_hal::{Attr, KeyId, KeyInfo, KeyUsage, ObjectId, ObjectRecord};

use crate::error::{Error, Result};
use crate::mechanism::vendor::*;
use crate::object::{self, AttrVal, Attrs, AttrsExt, Loc, Object};
use crate::session::Session;
use crate::state::Module;

/// The two halves of a container key pair, as the handle-table keys name them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    Private,
    Public,
}

impl Half {
    fn tag(self) -> &'static str {
        match self {
            Half::Private => "kp",
            Half::Public => "ku",
        }
    }
    /// The handle-table key of this half of `key`.
    pub fn index_key(self, key: KeyId) -> String {
        format!("{}{}", self.tag(), key.0)
    }
}

/// What binds an overlay to one key: its half, id and public key.
fn binding(half: Half, id: KeyId, spki: &[u8]) -> Vec<u8> {
    let h = hash::digest(HashAlg::Sha256, spki);
    format!("{}{}:{}", half.tag(), id.0, hex::encode(&h[..12])).into_bytes()
}

/// Attributes the container itself answers (never taken from an overlay).
fn computed(ty: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        ty,
        CKA_CLASS
            | CKA_KEY_TYPE
            | CKA_TOKEN
            | CKA_MODULUS
            | CKA_MODULUS_BITS
            | CKA_PUBLIC_EXPONENT
            | CKA_EC_PARAMS
            | CKA_EC_POINT
            | CKA_PUBLIC_KEY_INFO
            | CKA_UNIQUE_ID
            | CKA_VALUE
    ) || object::is_secret_attr(ty, Some(CKO_PRIVATE_KEY))
        || marker(ty)
}

/// The overlay's own bookkeeping attributes.
fn marker(ty: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        ty,
        CKA_UKEY_OVERLAY | CKA_UKEY_HIDDEN | CKA_UKEY_OWNS_CONTAINER | CKA_UKEY_OVERLAY_ID
    )
}

/// The overlay attributes of an object's attribute map.
pub(crate) fn overlay_attrs(a: &Attrs) -> Vec<Attr> {
    a.iter()
        .filter(|(ty, _)| !computed(**ty))
        .map(|(ty, v)| Attr::public(*ty, v.to_vec()))
        .collect()
}

/// Overlay records of an application's object listing, by binding.
pub(crate) struct Overlays(HashMap<Vec<u8>, (ObjectId, Attrs)>);

impl Overlays {
    /// Splits a listing into overlays and the generic objects PKCS#11 shows.
    pub fn split(recs: Vec<ObjectRecord>) -> (Self, Vec<ObjectRecord>) {
        let mut map = HashMap::new();
        let mut rest = Vec::new();
        for r in recs {
            match r.attrs.iter().find(|a| a.ty == CKA_UKEY_OVERLAY) {
                Some(b) => {
                    let attrs: Attrs = r
                        .attrs
                        .iter()
                        .map(|a| (a.ty as CK_ATTRIBUTE_TYPE, AttrVal::new(&a.value)))
                        .collect();
                    map.insert(b.value.to_vec(), (r.id, attrs));
                }
                None => rest.push(r),
            }
        }
        (Self(map), rest)
    }

    /// Applies the overlay of one half of `key` to its mapped attributes. False when the
    /// half was destroyed through PKCS#11 (it is then not an object).
    pub fn apply(&self, half: Half, key: &KeyInfo, a: &mut Attrs) -> bool {
        let b = binding(half, key.id, key.public_key.spki_der());
        let Some((id, ov)) = self.0.get(&b) else {
            return true;
        };
        if ov.flag(CKA_UKEY_HIDDEN) {
            return false;
        }
        for (ty, v) in ov {
            if computed(*ty) {
                continue;
            }
            // An empty subject in the template does not hide the certificate's.
            if *ty == CKA_SUBJECT && v.is_empty() {
                continue;
            }
            a.insert(*ty, v.clone());
        }
        a.set_ulong(CKA_UKEY_OVERLAY_ID, id.0 as CK_ULONG);
        if ov.flag(CKA_UKEY_OWNS_CONTAINER) {
            a.set_bool(CKA_UKEY_OWNS_CONTAINER, true);
        }
        true
    }
}

/// The overlay record of an object, if it has one.
pub(crate) fn overlay_of(a: &Attrs) -> Option<ObjectId> {
    a.ulong(CKA_UKEY_OVERLAY_ID).map(ObjectId)
}

/// Removes the in-memory bookkeeping of an attribute map (before it is copied).
pub(crate) fn strip_markers(a: &mut Attrs) {
    a.retain(|ty, _| !marker(*ty));
}

/// The slot a private-key template asks for (docs/mapping.md): an explicit decrypt or
/// unwrap without an explicit sign means the encryption slot; anything else the signing
/// slot. Read from the caller's template, before defaults are filled.
pub(crate) fn usage_of(tmpl: &Attrs) -> KeyUsage {
    let sign = tmpl.bool_(CKA_SIGN) == Some(true);
    let dec = tmpl.bool_(CKA_DECRYPT) == Some(true) || tmpl.bool_(CKA_UNWRAP) == Some(true);
    if dec && !sign {
        KeyUsage::Encrypt
    } else {
        KeyUsage::Sign
    }
}

/// Whether a key of `alg` with these (completed) private attributes goes to a container.
/// On a device token (a card, a bridged library) a container is the only place a private
/// key can live, so ECDSA P-256 goes there too; SKF shows only the SM2 and RSA slots.
fn landable(alg: KeyAlg, sa: &Attrs, on_device: bool) -> bool {
    let expressible = match alg {
        KeyAlg::Sm2 => true,
        KeyAlg::Rsa(bits) => bits <= 2048,
        KeyAlg::EcP256 => on_device,
        _ => false,
    };
    expressible && sa.flag(CKA_TOKEN) && sa.flag(CKA_SENSITIVE)
}

/// Whether private keys of this token live on a device that makes them itself (a card,
/// a vendor SKF library, another PKCS#11 module) rather than in the soft store.
pub(crate) fn on_device(s: &Session) -> bool {
    s.token.dev_info.backend != token_hal::BackendKind::Soft
}

/// Where the key of a landing comes from.
pub(crate) enum KeySource<'a> {
    /// A key the host holds (imported, unwrapped, or generated on a soft token).
    Import(&'a PrivateKey),
    /// Generated by the device itself; the private key never exists on the host.
    Generate(KeyAlg),
}

impl KeySource<'_> {
    fn alg(&self) -> KeyAlg {
        match self {
            KeySource::Import(k) => k.alg(),
            KeySource::Generate(a) => *a,
        }
    }
}

fn same_family(a: KeyAlg, b: KeyAlg) -> bool {
    matches!(
        (a, b),
        (KeyAlg::Sm2, KeyAlg::Sm2)
            | (KeyAlg::Rsa(_), KeyAlg::Rsa(_))
            | (KeyAlg::EcP256, KeyAlg::EcP256)
    )
}

fn nonempty(v: Option<&[u8]>) -> Option<&[u8]> {
    v.filter(|v| !v.is_empty())
}

/// A free container name: the label when it is a usable, free name, else a fresh one.
fn pick_name(
    taken: &[token_hal::ContainerInfo],
    label: Option<&[u8]>,
    id: Option<&[u8]>,
) -> Result<String> {
    let free = |n: &str| {
        !taken
            .iter()
            .any(|c| c.name == n || (id.is_none() && c.id == n.as_bytes()))
    };
    if let Some(l) = label.and_then(|l| std::str::from_utf8(l).ok())
        && !l.is_empty()
        && l.len() <= 64
        && !l.contains('\0')
        && free(l)
    {
        return Ok(l.to_owned());
    }
    loop {
        let mut r = [0u8; 4];
        token_hal::crypto::rng::fill(&mut r)?;
        let n = format!("p11-{}", hex::encode(r));
        if free(&n) {
            return Ok(n);
        }
    }
}

/// Lands a key pair in a container when the rules allow it: `pa` is the completed public
/// template (None for a lone private key from `C_CreateObject` or `C_UnwrapKey`, whose
/// public half is then not an object). Returns the handles (public, private), or None
/// when the pair stays a generic object.
pub(crate) fn land(
    m: &Module,
    s: &Session,
    key: KeySource<'_>,
    usage: KeyUsage,
    pa: Option<&Attrs>,
    sa: &Attrs,
) -> Result<Option<(Option<CK_OBJECT_HANDLE>, CK_OBJECT_HANDLE)>> {
    let alg = key.alg();
    if !landable(alg, sa, on_device(s)) || pa.is_some_and(|p| !p.flag(CKA_TOKEN)) {
        return Ok(None);
    }
    if !s.user() || !s.rw {
        return Ok(None);
    }
    let app = &s.token.app;
    let id = nonempty(sa.bytes(CKA_ID)).or_else(|| nonempty(pa.and_then(|p| p.bytes(CKA_ID))));
    let label =
        nonempty(sa.bytes(CKA_LABEL)).or_else(|| nonempty(pa.and_then(|p| p.bytes(CKA_LABEL))));
    let containers = app.list_containers()?;
    let (name, owns) = match id.and_then(|id| containers.iter().find(|c| c.id == id)) {
        Some(c) => {
            let other = match usage {
                KeyUsage::Sign => KeyUsage::Encrypt,
                KeyUsage::Encrypt => KeyUsage::Sign,
            };
            // A taken slot, or a container of the other key family: the pair stays a
            // generic object (PKCS#11 allows any number of keys with one CKA_ID).
            if c.key(usage).is_some() || c.key(other).is_some_and(|k| !same_family(k.alg, alg)) {
                return Ok(None);
            }
            (c.name.clone(), false)
        }
        None => {
            let name = pick_name(&containers, label, id)?;
            match app.create_container(&name, id) {
                Ok(_) => {}
                // An id the container model cannot hold (too long, say).
                Err(token_hal::Error::InvalidArgument(_) | token_hal::Error::AlreadyExists(_)) => {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
            (name, true)
        }
    };
    let undo_container = |owns: bool| {
        if owns {
            let _ = app.delete_container(&name);
        }
    };
    let stored = match key {
        KeySource::Import(sk) => app
            .import_key(&name, usage, sk, false)
            .and_then(|id| Ok((id, sk.public_key()?))),
        KeySource::Generate(alg) => app.generate_key(&name, usage, alg, false).and_then(|pk| {
            let c = app.container(&name)?;
            let id = c
                .key(usage)
                .map(|k| k.id)
                .ok_or_else(|| token_hal::Error::Internal("generated key not listed".into()))?;
            Ok((id, pk))
        }),
    };
    let (key_id, pk) = match stored {
        Ok(k) => k,
        Err(e) => {
            undo_container(owns);
            return Err(e.into());
        }
    };
    let spki = pk.spki_der();
    let mut so = overlay_attrs(sa);
    so.push(Attr::public(
        CKA_UKEY_OVERLAY,
        binding(Half::Private, key_id, spki),
    ));
    if owns {
        so.push(Attr::public(CKA_UKEY_OWNS_CONTAINER, vec![1]));
    }
    let mut po = match pa {
        Some(pa) => overlay_attrs(pa),
        None => vec![Attr::public(CKA_UKEY_HIDDEN, vec![1])],
    };
    po.push(Attr::public(
        CKA_UKEY_OVERLAY,
        binding(Half::Public, key_id, spki),
    ));
    let mut made = Vec::new();
    for rec in [so, po] {
        match app.create_object(false, &rec) {
            Ok(o) => made.push(o),
            // A device without generic objects (a vendor SKF library): the key stays, with
            // the fixed attributes of a container key (docs/mapping.md).
            Err(token_hal::Error::Unsupported(_)) => {
                for o in made.drain(..) {
                    let _ = app.delete_object(o);
                }
                break;
            }
            Err(e) => {
                for o in made {
                    let _ = app.delete_object(o);
                }
                let _ = app.delete_key(key_id);
                undo_container(owns);
                return Err(e.into());
            }
        }
    }
    crate::api::objects::sync_store(m, &s.token)?;
    let inner = m.lock()?;
    let handle = |half: Half| {
        inner
            .store_index
            .get(&(s.slot_id, half.index_key(key_id)))
            .copied()
    };
    let sh = handle(Half::Private).ok_or(Error::GENERAL)?;
    let ph = if pa.is_some() {
        Some(handle(Half::Public).ok_or(Error::GENERAL)?)
    } else {
        None
    };
    tracing::info!(container = %name, usage = usage.as_str(), "key pair landed in a container");
    Ok(Some((ph, sh)))
}

/// `C_DestroyObject` of a container key that PKCS#11 made (it has an overlay).
///
/// - The public half: its overlay is marked destroyed; the key pair stays.
/// - The private half: the key pair leaves the container. Its public half (unless
///   destroyed before) and its certificates stay objects, as generic objects with the
///   same handles; the container goes too if PKCS#11 made it and it is now empty.
pub(crate) fn destroy(m: &Module, s: &Session, o: &Object, a: &Attrs) -> Result<()> {
    let ov = overlay_of(a).ok_or(Error(CKR_ACTION_PROHIBITED))?;
    let app = &s.token.app;
    let slot = s.slot_id;
    let key_id = match o.loc {
        Loc::ContainerPub(k) => {
            app.update_object(ov, &[Attr::public(CKA_UKEY_HIDDEN, vec![1])])?;
            let mut inner = m.lock()?;
            inner.objects.remove(&o.handle);
            inner.forget_destroyed(slot, Half::Public.index_key(k));
            return Ok(());
        }
        Loc::ContainerKey(k) => k,
        _ => return Err(Error::GENERAL),
    };
    // What stays: the public half and the certificates, by handle (certificates imported
    // meanwhile through SKF or the CLI get theirs first).
    crate::api::objects::sync_store(m, &s.token)?;
    let container = app
        .list_containers()?
        .into_iter()
        .find(|c| c.all_keys().any(|k| k.id == key_id))
        .ok_or(Error(CKR_OBJECT_HANDLE_INVALID))?;
    let certs: Vec<token_hal::CertId> = container
        .all_keys()
        .find(|k| k.id == key_id)
        .map(|k| k.certs.iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let mut keep: Vec<(String, Arc<Object>)> = Vec::new();
    {
        let inner = m.lock()?;
        let mut find = |key: String| {
            if let Some(h) = inner.store_index.get(&(slot, key.clone()))
                && let Some(obj) = inner.objects.get(h)
            {
                keep.push((key, obj.clone()));
            }
        };
        find(Half::Public.index_key(key_id));
        for c in &certs {
            find(format!("c{}", c.0));
        }
    }
    let mut public_ov = None;
    let mut made: Vec<(String, Arc<Object>, ObjectId, Attrs)> = Vec::new();
    for (key, obj) in keep {
        let mut attrs = obj.attrs()?;
        if matches!(obj.loc, Loc::ContainerPub(_)) {
            public_ov = overlay_of(&attrs);
        }
        if matches!(obj.loc, Loc::ContainerCert(_)) {
            // Certificates of the container were fixed; as generic objects they are the
            // caller's to change and delete.
            attrs.set_bool(CKA_MODIFIABLE, true);
            attrs.set_bool(CKA_DESTROYABLE, true);
            attrs.set_bool(CKA_COPYABLE, true);
        }
        strip_markers(&mut attrs);
        let hal: Vec<Attr> = attrs
            .iter()
            .map(|(ty, v)| Attr::public(*ty, v.to_vec()))
            .collect();
        match app.create_object(attrs.flag(CKA_PRIVATE), &hal) {
            Ok(id) => made.push((key, obj, id, attrs)),
            Err(e) => {
                for (_, _, id, _) in made {
                    let _ = app.delete_object(id);
                }
                return Err(e.into());
            }
        }
    }
    if let Err(e) = app.delete_key(key_id) {
        for (_, _, id, _) in made {
            let _ = app.delete_object(id);
        }
        return Err(e.into());
    }
    let _ = app.delete_object(ov);
    if let Some(p) = public_ov {
        let _ = app.delete_object(p);
    }
    if a.flag(CKA_UKEY_OWNS_CONTAINER)
        && let Ok(c) = app.container(&container.name)
        && c.all_keys().next().is_none()
    {
        let _ = app.delete_container(&container.name);
    }
    let mut inner = m.lock()?;
    inner.objects.remove(&o.handle);
    inner.forget_destroyed(slot, Half::Private.index_key(key_id));
    for (key, obj, id, attrs) in made {
        inner.store_index.remove(&(slot, key));
        inner
            .store_index
            .insert((slot, format!("o{}", id.0)), obj.handle);
        inner.objects.insert(
            obj.handle,
            Arc::new(Object::new(obj.handle, slot, Loc::Store(id), attrs)),
        );
    }
    Ok(())
}
