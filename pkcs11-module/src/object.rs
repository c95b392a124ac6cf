//! Objects: attribute maps, the per-attribute rules of PKCS#11 §4 and the key policy of
//! docs/security.md (sensitive/extractable stickiness, token-only attributes, trusted
//! wrapping, the wrap/encrypt role latch).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LockResult, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cryptoki_sys::*;
use token_hal::crypto::{PrivateKey, PublicKey};
use token_hal::{LoginState, ObjectId};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mechanism::vendor::*;

mod map;
mod value;
pub(crate) use value::AttrVal;

/// An attribute map: type → raw value bytes (CK_ULONG native-endian, CK_BBOOL one byte).
pub(crate) type Attrs = map::AttrMap;

/// Where an object lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Loc {
    /// A session object of this session.
    Session(CK_SESSION_HANDLE),
    /// A token object in the application's generic object store.
    Store(ObjectId),
    /// The private half of a container key pair (docs/mapping.md).
    ContainerKey(token_hal::KeyId),
    /// The public half of a container key pair.
    ContainerPub(token_hal::KeyId),
    /// A certificate of a container key (current or historical).
    ContainerCert(token_hal::CertId),
    /// An SKF file (`CKO_DATA`).
    File,
}

/// Parsed key material of an object, made once per handle and dropped at logout.
pub(crate) enum KeyMaterial {
    /// A secret key's value, and its prepared SM4 schedule (made on first SM4 use).
    Secret(Zeroizing<Vec<u8>>, Sm4Cache),
    Private(PrivateKey),
    Public(PublicKey),
    /// A container key: operations go to the application (the key never leaves it).
    Held(
        Arc<dyn token_hal::Application>,
        token_hal::KeyId,
        token_hal::crypto::KeyAlg,
    ),
}

/// A secret key's SM4 schedule (and GCM's GHASH key powers), made on the first SM4
/// operation with the key and kept, like the parsed key, until the key material is
/// dropped (zeroized with it): "parse keys once per key, not once per operation".
#[derive(Default)]
pub(crate) struct Sm4Cache(std::sync::OnceLock<Option<token_hal::crypto::sym::SymKey>>);

impl Sm4Cache {
    /// The prepared key for `value` (this cache's key's value), or `None` when `value` is
    /// not an SM4 key.
    pub(crate) fn get(&self, value: &[u8]) -> Option<&token_hal::crypto::sym::SymKey> {
        self.0
            .get_or_init(|| {
                token_hal::crypto::sym::SymKey::new(token_hal::crypto::sym::SymAlg::Sm4, value).ok()
            })
            .as_ref()
    }
}

/// One object.
pub(crate) struct Object {
    pub handle: CK_OBJECT_HANDLE,
    pub slot: CK_SLOT_ID,
    pub loc: Loc,
    /// Read through [`Object::read_attrs`]; written only through [`Object::write_attrs`],
    /// which counts the change.
    attrs: RwLock<Attrs>,
    pub key: Mutex<Option<Arc<KeyMaterial>>>,
    /// When this handle entry was made, on the [`epoch`] clock.
    pub born: u64,
}

/// A process-wide clock of handle entries: each [`Object::new`] ticks it.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The current value of the handle-entry clock. An entry made after a reading has
/// `born` greater than it: a listing of the store that began at that reading may not
/// show its object yet (`sync_store` keeps such entries).
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

/// Advances the handle-entry clock and returns the new reading.
pub(crate) fn tick() -> u64 {
    EPOCH.fetch_add(1, Ordering::SeqCst) + 1
}

/// A process-wide count of changes to objects: every attribute write, and every removal
/// or replacement of a handle's entry, advances it. A result computed from objects while
/// it read `n` still holds while it reads `n` (the sessions' key-check memos).
static CHANGES: AtomicU64 = AtomicU64::new(0);

/// The current count of object changes. Read it before the reads it vouches for.
pub(crate) fn changes() -> u64 {
    CHANGES.load(Ordering::SeqCst)
}

/// Counts one change to an object (its attributes, or its handle's entry).
pub(crate) fn changed() {
    CHANGES.fetch_add(1, Ordering::SeqCst);
}

impl Object {
    pub fn new(handle: CK_OBJECT_HANDLE, slot: CK_SLOT_ID, loc: Loc, attrs: Attrs) -> Self {
        Self::with_key(handle, slot, loc, attrs, None)
    }
    /// [`Object::new`] with the object's parsed key already known (a key just made).
    pub fn with_key(
        handle: CK_OBJECT_HANDLE,
        slot: CK_SLOT_ID,
        loc: Loc,
        attrs: Attrs,
        key: Option<Arc<KeyMaterial>>,
    ) -> Self {
        Self {
            handle,
            slot,
            loc,
            attrs: RwLock::new(attrs),
            key: Mutex::new(key),
            born: tick(),
        }
    }
    /// A copy of the attributes.
    pub fn attrs(&self) -> Result<Attrs> {
        Ok(self.attrs.read().map_err(|_| Error::GENERAL)?.clone())
    }
    /// The attributes, for reading.
    pub fn read_attrs(&self) -> LockResult<RwLockReadGuard<'_, Attrs>> {
        self.attrs.read()
    }
    /// The attributes, for writing. The change is counted ([`changes`]) once the lock is
    /// held, before anything is written, so that no reader trusts a check made before it.
    pub fn write_attrs(&self) -> LockResult<RwLockWriteGuard<'_, Attrs>> {
        let g = self.attrs.write();
        changed();
        g
    }
    /// Forgets cached key material (logout). Counts as a change to objects, so that no
    /// memo hands out the material it named (another session's running operation may
    /// still hold it).
    pub fn forget_key(&self) {
        if let Ok(mut k) = self.key.lock() {
            *k = None;
        }
        changed();
    }
}

/// Typed reads of an attribute map.
pub(crate) trait AttrsExt {
    fn bool_(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<bool>;
    fn ulong(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG>;
    fn flag(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        self.bool_(ty).unwrap_or(false)
    }
    fn class(&self) -> Option<CK_OBJECT_CLASS> {
        self.ulong(CKA_CLASS)
    }
    fn key_type(&self) -> Option<CK_KEY_TYPE> {
        self.ulong(CKA_KEY_TYPE)
    }
    fn set_bool(&mut self, ty: CK_ATTRIBUTE_TYPE, v: bool);
    fn set_ulong(&mut self, ty: CK_ATTRIBUTE_TYPE, v: CK_ULONG);
    fn set_bytes(&mut self, ty: CK_ATTRIBUTE_TYPE, v: &[u8]);
    fn default_bool(&mut self, ty: CK_ATTRIBUTE_TYPE, v: bool);
    fn bytes(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]>;
}

impl AttrsExt for Attrs {
    fn bool_(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<bool> {
        self.get(&ty).and_then(|v| v.first().map(|b| *b != 0))
    }
    fn ulong(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
        self.get(&ty).and_then(|v| {
            let a: [u8; std::mem::size_of::<CK_ULONG>()] = v.as_slice().try_into().ok()?;
            Some(CK_ULONG::from_ne_bytes(a))
        })
    }
    fn set_bool(&mut self, ty: CK_ATTRIBUTE_TYPE, v: bool) {
        self.put(ty, AttrVal::new(&[u8::from(v)]));
    }
    fn set_ulong(&mut self, ty: CK_ATTRIBUTE_TYPE, v: CK_ULONG) {
        self.put(ty, AttrVal::new(&v.to_ne_bytes()));
    }
    fn set_bytes(&mut self, ty: CK_ATTRIBUTE_TYPE, v: &[u8]) {
        self.put(ty, AttrVal::new(v));
    }
    fn default_bool(&mut self, ty: CK_ATTRIBUTE_TYPE, v: bool) {
        self.entry(ty)
            .or_insert_with(|| AttrVal::new(&[u8::from(v)]));
    }
    fn bytes(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.get(&ty).map(|v| v.as_slice())
    }
}

/// How an attribute's value is shaped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Ulong,
    Bytes,
    Date,
    MechList,
}

fn kind(ty: CK_ATTRIBUTE_TYPE) -> Option<Kind> {
    use Kind::*;
    Some(match ty {
        CKA_TOKEN
        | CKA_PRIVATE
        | CKA_MODIFIABLE
        | CKA_COPYABLE
        | CKA_DESTROYABLE
        | CKA_TRUSTED
        | CKA_SENSITIVE
        | CKA_ENCRYPT
        | CKA_DECRYPT
        | CKA_WRAP
        | CKA_UNWRAP
        | CKA_SIGN
        | CKA_SIGN_RECOVER
        | CKA_VERIFY
        | CKA_VERIFY_RECOVER
        | CKA_DERIVE
        | CKA_EXTRACTABLE
        | CKA_LOCAL
        | CKA_NEVER_EXTRACTABLE
        | CKA_ALWAYS_SENSITIVE
        | CKA_WRAP_WITH_TRUSTED
        | CKA_ALWAYS_AUTHENTICATE => Bool,
        CKA_CLASS
        | CKA_KEY_TYPE
        | CKA_CERTIFICATE_TYPE
        | CKA_CERTIFICATE_CATEGORY
        | CKA_VALUE_LEN
        | CKA_MODULUS_BITS
        | CKA_KEY_GEN_MECHANISM
        | CKA_JAVA_MIDP_SECURITY_DOMAIN
        | CKA_NAME_HASH_ALGORITHM => Ulong,
        CKA_START_DATE | CKA_END_DATE => Date,
        CKA_ALLOWED_MECHANISMS => MechList,
        CKA_LABEL
        | CKA_APPLICATION
        | CKA_VALUE
        | CKA_OBJECT_ID
        | CKA_ID
        | CKA_SUBJECT
        | CKA_ISSUER
        | CKA_SERIAL_NUMBER
        | CKA_OWNER
        | CKA_AC_ISSUER
        | CKA_ATTR_TYPES
        | CKA_CHECK_VALUE
        | CKA_URL
        | CKA_HASH_OF_SUBJECT_PUBLIC_KEY
        | CKA_HASH_OF_ISSUER_PUBLIC_KEY
        | CKA_MODULUS
        | CKA_PUBLIC_EXPONENT
        | CKA_PRIVATE_EXPONENT
        | CKA_PRIME_1
        | CKA_PRIME_2
        | CKA_EXPONENT_1
        | CKA_EXPONENT_2
        | CKA_COEFFICIENT
        | CKA_EC_PARAMS
        | CKA_EC_POINT
        | CKA_UNIQUE_ID
        | CKA_PUBLIC_KEY_INFO
        | CKA_PRIME
        | CKA_SUBPRIME
        | CKA_BASE => Bytes,
        _ => return None,
    })
}

/// Attributes whose value is secret: sealed at rest, never readable when the object is
/// sensitive or unextractable.
pub(crate) fn is_secret_attr(ty: CK_ATTRIBUTE_TYPE, class: Option<CK_OBJECT_CLASS>) -> bool {
    match ty {
        CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1 | CKA_EXPONENT_2
        | CKA_COEFFICIENT | CKA_UKEY_PKCS8 => true,
        CKA_VALUE => matches!(class, Some(CKO_SECRET_KEY) | Some(CKO_PRIVATE_KEY)),
        _ => false,
    }
}

/// Attributes only the token sets.
fn token_only(ty: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        ty,
        CKA_LOCAL
            | CKA_ALWAYS_SENSITIVE
            | CKA_NEVER_EXTRACTABLE
            | CKA_KEY_GEN_MECHANISM
            | CKA_UNIQUE_ID
            | CKA_UKEY_PKCS8
            | CKA_UKEY_ROLE
    )
}

/// Why a template is being checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Create,
    Generate,
    Copy,
    Set,
    Derive,
}

/// A template from the caller, validated into an attribute map.
pub(crate) fn parse_template(
    tmpl: &[(CK_ATTRIBUTE_TYPE, AttrVal)],
    purpose: Purpose,
    login: LoginState,
) -> Result<Attrs> {
    // No capacity from the template's length: the first insert makes room for a whole
    // object (`TYPICAL`), so completing it later does not grow the map again.
    let mut out = Attrs::new();
    for (ty, v) in tmpl {
        let k = kind(*ty).ok_or(Error(CKR_ATTRIBUTE_TYPE_INVALID))?;
        let ok = match k {
            Kind::Bool => v.len() == 1,
            Kind::Ulong => v.len() == std::mem::size_of::<CK_ULONG>(),
            Kind::Date => v.is_empty() || v.len() == 8,
            Kind::MechList => v.len() % std::mem::size_of::<CK_ULONG>() == 0,
            Kind::Bytes => true,
        };
        if !ok {
            return Err(Error(CKR_ATTRIBUTE_VALUE_INVALID));
        }
        if *ty == CKA_UNIQUE_ID {
            return Err(Error(CKR_ATTRIBUTE_TYPE_INVALID));
        }
        if token_only(*ty) {
            return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
        }
        if *ty == CKA_TRUSTED && v.first().is_some_and(|b| *b != 0) && login != LoginState::Admin {
            return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
        }
        if let Some(prev) = out.get(ty)
            && prev.as_slice() != v.as_slice()
        {
            return Err(Error(CKR_TEMPLATE_INCONSISTENT));
        }
        let _ = purpose;
        out.put(*ty, v.clone());
    }
    Ok(out)
}

/// Fills the defaults of a new object of `class` and checks consistency. `local`: made
/// by the token (generate/derive) rather than imported.
pub(crate) fn complete(
    a: &mut Attrs,
    local: bool,
    keygen_mech: Option<CK_MECHANISM_TYPE>,
) -> Result<()> {
    let class = a.class().ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
    let which = match class {
        CKO_DATA => Class::Data,
        CKO_CERTIFICATE => {
            if a.ulong(CKA_CERTIFICATE_TYPE).is_none() || !a.contains_key(&CKA_VALUE) {
                return Err(Error(CKR_TEMPLATE_INCOMPLETE));
            }
            Class::Cert
        }
        CKO_SECRET_KEY | CKO_PRIVATE_KEY | CKO_PUBLIC_KEY if a.key_type().is_none() => {
            return Err(Error(CKR_TEMPLATE_INCOMPLETE));
        }
        CKO_SECRET_KEY => Class::Secret,
        CKO_PRIVATE_KEY => Class::Private,
        CKO_PUBLIC_KEY => Class::Public,
        _ => return Err(Error(CKR_ATTRIBUTE_VALUE_INVALID)),
    };
    let unique = AttrVal::small(new_unique_id()?);
    let (table, base) = class_defaults(which);
    a.merge_defaults(base);
    // The values the token sets (placeholders in `base`; these entries are the map's own).
    let flag = |b: bool| AttrVal::small([u8::from(b)]);
    let sens = a.flag(CKA_SENSITIVE);
    let ext = a.flag(CKA_EXTRACTABLE);
    let mut unique = Some(unique);
    for &(ty, d) in table {
        let v = match d {
            Dflt::Local => flag(local),
            Dflt::KeyGenMech => AttrVal::small(
                keygen_mech
                    .unwrap_or(CK_UNAVAILABLE_INFORMATION)
                    .to_ne_bytes(),
            ),
            Dflt::AlwaysSensitive => flag(local && sens),
            Dflt::NeverExtractable => flag(local && !ext),
            Dflt::UniqueId => unique.take().unwrap_or_default(),
            Dflt::True | Dflt::False | Dflt::Empty | Dflt::Zero => continue,
        };
        a.put(ty, v);
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Class {
    Data,
    Cert,
    Secret,
    Private,
    Public,
}

/// A class's table and the same as a ready attribute map (values the token sets are
/// empty placeholders there), built once.
fn class_defaults(c: Class) -> (&'static [(CK_ATTRIBUTE_TYPE, Dflt)], &'static Attrs) {
    static BASES: std::sync::LazyLock<[Attrs; 5]> = std::sync::LazyLock::new(|| {
        [
            &DATA_DEFAULTS[..],
            &CERT_DEFAULTS,
            &SECRET_DEFAULTS,
            &PRIVATE_DEFAULTS,
            &PUBLIC_DEFAULTS,
        ]
        .map(|t| {
            t.iter()
                .map(|&(ty, d)| {
                    let v = match d {
                        Dflt::True => AttrVal::small([1]),
                        Dflt::False => AttrVal::small([0]),
                        Dflt::Zero => AttrVal::small((0 as CK_ULONG).to_ne_bytes()),
                        _ => AttrVal::default(),
                    };
                    (ty, v)
                })
                .collect()
        })
    });
    let table: &'static [(CK_ATTRIBUTE_TYPE, Dflt)] = match c {
        Class::Data => &DATA_DEFAULTS,
        Class::Cert => &CERT_DEFAULTS,
        Class::Secret => &SECRET_DEFAULTS,
        Class::Private => &PRIVATE_DEFAULTS,
        Class::Public => &PUBLIC_DEFAULTS,
    };
    (table, &BASES[c as usize])
}

/// One attribute of an object class's table in [`complete`]: a default, or a value the
/// token always sets.
#[derive(Clone, Copy)]
enum Dflt {
    /// Default `CK_TRUE`.
    True,
    /// Default `CK_FALSE`.
    False,
    /// Default empty value.
    Empty,
    /// Default `CK_ULONG` 0.
    Zero,
    /// Set: `CKA_LOCAL`, whether the token made the key.
    Local,
    /// Set: the mechanism that made the key, else `CK_UNAVAILABLE_INFORMATION`.
    KeyGenMech,
    /// Set: local and sensitive.
    AlwaysSensitive,
    /// Set: local and not extractable.
    NeverExtractable,
    /// Set: a fresh `CKA_UNIQUE_ID`.
    UniqueId,
}

/// The tables are sorted by attribute type (checked at compile time below), so that each
/// builds a sorted map directly.
const DATA_DEFAULTS: [(CK_ATTRIBUTE_TYPE, Dflt); 10] = [
    (CKA_TOKEN, Dflt::False),
    (CKA_PRIVATE, Dflt::False),
    (CKA_LABEL, Dflt::Empty),
    (CKA_UNIQUE_ID, Dflt::UniqueId),
    (CKA_APPLICATION, Dflt::Empty),
    (CKA_VALUE, Dflt::Empty),
    (CKA_OBJECT_ID, Dflt::Empty),
    (CKA_MODIFIABLE, Dflt::True),
    (CKA_COPYABLE, Dflt::True),
    (CKA_DESTROYABLE, Dflt::True),
];
const CERT_DEFAULTS: [(CK_ATTRIBUTE_TYPE, Dflt); 10] = [
    (CKA_TOKEN, Dflt::False),
    (CKA_PRIVATE, Dflt::False),
    (CKA_LABEL, Dflt::Empty),
    (CKA_UNIQUE_ID, Dflt::UniqueId),
    (CKA_TRUSTED, Dflt::False),
    (CKA_CERTIFICATE_CATEGORY, Dflt::Zero),
    (CKA_ID, Dflt::Empty),
    (CKA_MODIFIABLE, Dflt::True),
    (CKA_COPYABLE, Dflt::True),
    (CKA_DESTROYABLE, Dflt::True),
];
/// Secret and private keys may do everything their type can unless the template says
/// otherwise; the role latch (security.md) keeps wrap/unwrap and encrypt/decrypt apart
/// at use time.
const SECRET_DEFAULTS: [(CK_ATTRIBUTE_TYPE, Dflt); 26] = [
    (CKA_TOKEN, Dflt::False),
    (CKA_PRIVATE, Dflt::True),
    (CKA_LABEL, Dflt::Empty),
    (CKA_UNIQUE_ID, Dflt::UniqueId),
    (CKA_TRUSTED, Dflt::False),
    (CKA_ID, Dflt::Empty),
    (CKA_SENSITIVE, Dflt::True),
    (CKA_ENCRYPT, Dflt::True),
    (CKA_DECRYPT, Dflt::True),
    (CKA_WRAP, Dflt::True),
    (CKA_UNWRAP, Dflt::True),
    (CKA_SIGN, Dflt::True),
    (CKA_SIGN_RECOVER, Dflt::False),
    (CKA_VERIFY, Dflt::True),
    (CKA_DERIVE, Dflt::False),
    (CKA_START_DATE, Dflt::Empty),
    (CKA_END_DATE, Dflt::Empty),
    (CKA_EXTRACTABLE, Dflt::True),
    (CKA_LOCAL, Dflt::Local),
    (CKA_NEVER_EXTRACTABLE, Dflt::NeverExtractable),
    (CKA_ALWAYS_SENSITIVE, Dflt::AlwaysSensitive),
    (CKA_KEY_GEN_MECHANISM, Dflt::KeyGenMech),
    (CKA_MODIFIABLE, Dflt::True),
    (CKA_COPYABLE, Dflt::True),
    (CKA_DESTROYABLE, Dflt::True),
    (CKA_WRAP_WITH_TRUSTED, Dflt::False),
];
const PRIVATE_DEFAULTS: [(CK_ATTRIBUTE_TYPE, Dflt); 24] = [
    (CKA_TOKEN, Dflt::False),
    (CKA_PRIVATE, Dflt::True),
    (CKA_LABEL, Dflt::Empty),
    (CKA_UNIQUE_ID, Dflt::UniqueId),
    (CKA_SUBJECT, Dflt::Empty),
    (CKA_ID, Dflt::Empty),
    (CKA_SENSITIVE, Dflt::True),
    (CKA_DECRYPT, Dflt::True),
    (CKA_UNWRAP, Dflt::True),
    (CKA_SIGN, Dflt::True),
    (CKA_SIGN_RECOVER, Dflt::False),
    (CKA_DERIVE, Dflt::False),
    (CKA_START_DATE, Dflt::Empty),
    (CKA_END_DATE, Dflt::Empty),
    (CKA_EXTRACTABLE, Dflt::True),
    (CKA_LOCAL, Dflt::Local),
    (CKA_NEVER_EXTRACTABLE, Dflt::NeverExtractable),
    (CKA_ALWAYS_SENSITIVE, Dflt::AlwaysSensitive),
    (CKA_KEY_GEN_MECHANISM, Dflt::KeyGenMech),
    (CKA_MODIFIABLE, Dflt::True),
    (CKA_COPYABLE, Dflt::True),
    (CKA_DESTROYABLE, Dflt::True),
    (CKA_ALWAYS_AUTHENTICATE, Dflt::False),
    (CKA_WRAP_WITH_TRUSTED, Dflt::False),
];
const PUBLIC_DEFAULTS: [(CK_ATTRIBUTE_TYPE, Dflt); 19] = [
    (CKA_TOKEN, Dflt::False),
    (CKA_PRIVATE, Dflt::False),
    (CKA_LABEL, Dflt::Empty),
    (CKA_UNIQUE_ID, Dflt::UniqueId),
    (CKA_TRUSTED, Dflt::False),
    (CKA_SUBJECT, Dflt::Empty),
    (CKA_ID, Dflt::Empty),
    (CKA_ENCRYPT, Dflt::True),
    (CKA_WRAP, Dflt::True),
    (CKA_VERIFY, Dflt::True),
    (CKA_VERIFY_RECOVER, Dflt::False),
    (CKA_DERIVE, Dflt::False),
    (CKA_START_DATE, Dflt::Empty),
    (CKA_END_DATE, Dflt::Empty),
    (CKA_LOCAL, Dflt::Local),
    (CKA_KEY_GEN_MECHANISM, Dflt::KeyGenMech),
    (CKA_MODIFIABLE, Dflt::True),
    (CKA_COPYABLE, Dflt::True),
    (CKA_DESTROYABLE, Dflt::True),
];

const fn sorted_by_type(t: &[(CK_ATTRIBUTE_TYPE, Dflt)]) -> bool {
    let mut i = 1;
    while i < t.len() {
        if t[i - 1].0 >= t[i].0 {
            return false;
        }
        i += 1;
    }
    true
}
const _: () = assert!(
    sorted_by_type(&DATA_DEFAULTS)
        && sorted_by_type(&CERT_DEFAULTS)
        && sorted_by_type(&SECRET_DEFAULTS)
        && sorted_by_type(&PRIVATE_DEFAULTS)
        && sorted_by_type(&PUBLIC_DEFAULTS)
);

/// The URL-safe base64 alphabet (RFC 4648 §5) of [`new_unique_id`].
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A fresh `CKA_UNIQUE_ID`: 22 characters of the URL-safe base64 alphabet, 11 for a
/// random 64-bit prefix drawn once per process and 11 for a 64-bit counter (big-endian,
/// six bits a character). Unique across processes (the prefix) and within one (the
/// counter) without a trip to the OS random source per object; the value is an
/// identifier, not a secret. 22 bytes fit an attribute value inline (no allocation).
pub(crate) fn new_unique_id() -> Result<[u8; 22]> {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    /// 66 bits for 64: the first character carries the top 4 bits.
    fn encode(v: u64) -> [u8; 11] {
        let mut out = [0u8; 11];
        for (i, c) in out.iter_mut().enumerate() {
            *c = B64[((v >> ((10 - i) * 6)) & 63) as usize];
        }
        out
    }
    /// The prefix's characters, encoded once.
    static PREFIX: OnceLock<[u8; 11]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = match PREFIX.get() {
        Some(p) => *p,
        None => {
            let mut b = [0u8; 8];
            token_hal::crypto::rng::fill(&mut b).map_err(Error::from)?;
            *PREFIX.get_or_init(|| encode(u64::from_ne_bytes(b)))
        }
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 22];
    out[..11].copy_from_slice(&prefix);
    out[11..].copy_from_slice(&encode(n));
    Ok(out)
}

/// Gives a completed object a fresh `CKA_UNIQUE_ID` (a copy of a prepared object carries
/// its placeholder).
pub(crate) fn renew_unique_id(a: &mut Attrs) -> Result<()> {
    a.put(CKA_UNIQUE_ID, unique_id_val()?);
    Ok(())
}

/// A fresh `CKA_UNIQUE_ID` value.
pub(crate) fn unique_id_val() -> Result<AttrVal> {
    Ok(AttrVal::small(new_unique_id()?))
}

/// Checks a `C_SetAttributeValue` (or the template of `C_CopyObject`) against the object.
pub(crate) fn check_set(obj: &Attrs, changes: &Attrs, copy: bool) -> Result<()> {
    if !copy && !obj.bool_(CKA_MODIFIABLE).unwrap_or(true) {
        return Err(Error(CKR_ACTION_PROHIBITED));
    }
    let class = obj.class();
    for (ty, v) in changes {
        let new_true = v.first().is_some_and(|b| *b != 0);
        match *ty {
            CKA_CLASS
            | CKA_KEY_TYPE
            | CKA_CERTIFICATE_TYPE
            | CKA_MODULUS_BITS
            | CKA_VALUE_LEN
            | CKA_MODULUS
            | CKA_PUBLIC_EXPONENT
            | CKA_PRIVATE_EXPONENT
            | CKA_PRIME_1
            | CKA_PRIME_2
            | CKA_EXPONENT_1
            | CKA_EXPONENT_2
            | CKA_COEFFICIENT
            | CKA_EC_PARAMS
            | CKA_EC_POINT
            | CKA_ALWAYS_AUTHENTICATE
                if obj.bytes(*ty) != Some(v.as_slice()) =>
            {
                return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
            }
            CKA_VALUE
                if matches!(
                    class,
                    Some(CKO_SECRET_KEY | CKO_PRIVATE_KEY | CKO_PUBLIC_KEY | CKO_CERTIFICATE)
                ) && obj.bytes(*ty) != Some(v.as_slice()) =>
            {
                return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
            }
            CKA_TOKEN | CKA_PRIVATE | CKA_MODIFIABLE | CKA_COPYABLE | CKA_DESTROYABLE
                if !copy && obj.bytes(*ty) != Some(v.as_slice()) =>
            {
                return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
            }
            CKA_COPYABLE if copy && new_true && !obj.bool_(CKA_COPYABLE).unwrap_or(true) => {
                return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
            }
            CKA_MODIFIABLE if copy && new_true && !obj.bool_(CKA_MODIFIABLE).unwrap_or(true) => {
                return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
            }
            CKA_SENSITIVE if !new_true && obj.flag(CKA_SENSITIVE) => {
                return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
            }
            CKA_EXTRACTABLE if new_true && !obj.bool_(CKA_EXTRACTABLE).unwrap_or(true) => {
                return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
            }
            CKA_WRAP_WITH_TRUSTED if !new_true && obj.flag(CKA_WRAP_WITH_TRUSTED) => {
                return Err(Error(CKR_ATTRIBUTE_READ_ONLY));
            }
            _ => {}
        }
    }
    Ok(())
}

/// What `C_GetAttributeValue` may say about one attribute.
pub(crate) enum Read<'a> {
    Value(&'a [u8]),
    Sensitive,
    Invalid,
}

/// The read rule: secret attributes of a sensitive OR unextractable key are never
/// readable; internal attributes do not exist for callers.
pub(crate) fn read(a: &Attrs, ty: CK_ATTRIBUTE_TYPE) -> Read<'_> {
    if CKA_UKEY_INTERNAL.contains(&ty) {
        return Read::Invalid;
    }
    let class = a.class();
    if is_secret_attr(ty, class)
        && matches!(class, Some(CKO_SECRET_KEY | CKO_PRIVATE_KEY))
        && (a.flag(CKA_SENSITIVE) || !a.bool_(CKA_EXTRACTABLE).unwrap_or(false))
    {
        return Read::Sensitive;
    }
    match a.get(&ty) {
        Some(v) => Read::Value(v),
        None => Read::Invalid,
    }
}

/// The two roles a secret or private key may serve; a key is latched to the first one
/// it is used for (docs/security.md).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Crypt = 1,
    Wrap = 2,
}

/// Checks and latches the role of a key. Returns true if the latch must be persisted.
pub(crate) fn latch(a: &mut Attrs, role: Role) -> Result<bool> {
    if latched(a, role)? {
        return Ok(false);
    }
    a.set_ulong(CKA_UKEY_ROLE, role as CK_ULONG);
    Ok(true)
}

/// Whether the key is latched to `role` already (false: to no role yet); latched to the
/// other role, `CKR_KEY_FUNCTION_NOT_PERMITTED`.
pub(crate) fn latched(a: &Attrs, role: Role) -> Result<bool> {
    match a.ulong(CKA_UKEY_ROLE) {
        Some(r) if r == role as CK_ULONG => Ok(true),
        Some(_) => Err(Error(CKR_KEY_FUNCTION_NOT_PERMITTED)),
        None => Ok(false),
    }
}

/// Whether objects of `a`'s class take a role latch (secret and private keys).
pub(crate) fn latches(a: &Attrs) -> bool {
    matches!(a.class(), Some(CKO_SECRET_KEY | CKO_PRIVATE_KEY))
}

/// Checks `CKA_ALLOWED_MECHANISMS`.
pub(crate) fn mechanism_allowed(a: &Attrs, m: CK_MECHANISM_TYPE) -> Result<()> {
    if let Some(list) = a.bytes(CKA_ALLOWED_MECHANISMS) {
        if list.is_empty() {
            return Ok(());
        }
        let n = std::mem::size_of::<CK_ULONG>();
        let ok = list.chunks_exact(n).any(|c| {
            let mut b = [0u8; std::mem::size_of::<CK_ULONG>()];
            b.copy_from_slice(c);
            CK_ULONG::from_ne_bytes(b) == m
        });
        if !ok {
            return Err(Error(CKR_MECHANISM_INVALID));
        }
    }
    Ok(())
}

/// The usage attribute an operation needs.
pub(crate) fn require(a: &Attrs, usage: CK_ATTRIBUTE_TYPE) -> Result<()> {
    if a.flag(usage) {
        Ok(())
    } else {
        Err(Error(CKR_KEY_FUNCTION_NOT_PERMITTED))
    }
}

/// Whether an object matches a search template.
pub(crate) fn matches(a: &Attrs, tmpl: &[(CK_ATTRIBUTE_TYPE, AttrVal)]) -> bool {
    tmpl.iter().all(|(ty, v)| match read(a, *ty) {
        Read::Value(x) => x == v.as_slice(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_are_a_fixed_prefix_and_a_counter_in_base64() {
        let (a, b) = (new_unique_id().unwrap(), new_unique_id().unwrap());
        for id in [&a, &b] {
            assert!(id.iter().all(|c| B64.contains(c)));
            // The first character of each half carries 4 bits.
            assert!(id[0] < b'Q' && id[11] < b'Q');
        }
        assert_eq!(a[..11], b[..11], "one prefix per process");
        let value = |half: &[u8]| {
            half.iter().fold(0u64, |v, c| {
                (v << 6) | B64.iter().position(|x| x == c).unwrap() as u64
            })
        };
        // Other tests may take IDs in between, but never the same one.
        assert!(value(&b[11..]) > value(&a[11..]));
        // The halves decode to 64-bit values: the prefix round-trips through them.
        assert_ne!(value(&a[..11]), 0);
    }

    /// The per-attribute `complete` this module had before the sorted tables; the
    /// tables must give the same objects.
    #[allow(clippy::too_many_lines)]
    fn complete_reference(
        a: &mut Attrs,
        local: bool,
        keygen_mech: Option<CK_MECHANISM_TYPE>,
    ) -> Result<()> {
        let class = a.class().ok_or(Error(CKR_TEMPLATE_INCOMPLETE))?;
        a.default_bool(CKA_TOKEN, false);
        a.default_bool(CKA_MODIFIABLE, true);
        a.default_bool(CKA_COPYABLE, true);
        a.default_bool(CKA_DESTROYABLE, true);
        a.entry(CKA_LABEL).or_default();
        let is_key = matches!(class, CKO_SECRET_KEY | CKO_PRIVATE_KEY | CKO_PUBLIC_KEY);
        a.default_bool(
            CKA_PRIVATE,
            matches!(class, CKO_SECRET_KEY | CKO_PRIVATE_KEY),
        );
        match class {
            CKO_DATA => {
                a.entry(CKA_APPLICATION).or_default();
                a.entry(CKA_OBJECT_ID).or_default();
                a.entry(CKA_VALUE).or_default();
            }
            CKO_CERTIFICATE => {
                if a.ulong(CKA_CERTIFICATE_TYPE).is_none() {
                    return Err(Error(CKR_TEMPLATE_INCOMPLETE));
                }
                a.default_bool(CKA_TRUSTED, false);
                a.entry(CKA_ID).or_default();
                if !a.contains_key(&CKA_CERTIFICATE_CATEGORY) {
                    a.set_ulong(CKA_CERTIFICATE_CATEGORY, 0);
                }
                if !a.contains_key(&CKA_VALUE) {
                    return Err(Error(CKR_TEMPLATE_INCOMPLETE));
                }
            }
            CKO_SECRET_KEY | CKO_PRIVATE_KEY | CKO_PUBLIC_KEY => {}
            _ => return Err(Error(CKR_ATTRIBUTE_VALUE_INVALID)),
        }
        if is_key {
            if a.key_type().is_none() {
                return Err(Error(CKR_TEMPLATE_INCOMPLETE));
            }
            a.entry(CKA_ID).or_default();
            a.entry(CKA_START_DATE).or_default();
            a.entry(CKA_END_DATE).or_default();
            a.default_bool(CKA_DERIVE, false);
            a.set_bool(CKA_LOCAL, local);
            a.set_ulong(
                CKA_KEY_GEN_MECHANISM,
                keygen_mech.unwrap_or(CK_UNAVAILABLE_INFORMATION),
            );
        }
        match class {
            CKO_SECRET_KEY | CKO_PRIVATE_KEY => {
                // Usage defaults: everything the key type can do is allowed unless the
                // template says otherwise; the role latch (security.md) keeps wrap/unwrap and
                // encrypt/decrypt apart at use time.
                let secret = class == CKO_SECRET_KEY;
                a.default_bool(CKA_SENSITIVE, true);
                a.default_bool(CKA_EXTRACTABLE, true);
                for t in [CKA_DECRYPT, CKA_SIGN, CKA_UNWRAP] {
                    a.default_bool(t, true);
                }
                a.default_bool(CKA_SIGN_RECOVER, false);
                if secret {
                    for t in [CKA_ENCRYPT, CKA_VERIFY, CKA_WRAP] {
                        a.default_bool(t, true);
                    }
                    a.default_bool(CKA_TRUSTED, false);
                    a.default_bool(CKA_WRAP_WITH_TRUSTED, false);
                } else {
                    a.default_bool(CKA_WRAP_WITH_TRUSTED, false);
                    a.default_bool(CKA_ALWAYS_AUTHENTICATE, false);
                }
                let sens = a.flag(CKA_SENSITIVE);
                let ext = a.flag(CKA_EXTRACTABLE);
                a.set_bool(CKA_ALWAYS_SENSITIVE, local && sens);
                a.set_bool(CKA_NEVER_EXTRACTABLE, local && !ext);
            }
            CKO_PUBLIC_KEY => {
                for t in [CKA_ENCRYPT, CKA_VERIFY, CKA_WRAP] {
                    a.default_bool(t, true);
                }
                a.default_bool(CKA_VERIFY_RECOVER, false);
                a.default_bool(CKA_TRUSTED, false);
                a.entry(CKA_SUBJECT).or_default();
            }
            _ => {}
        }
        if class == CKO_PRIVATE_KEY {
            a.entry(CKA_SUBJECT).or_default();
        }
        a.set_bytes(CKA_UNIQUE_ID, &new_unique_id()?);
        Ok(())
    }

    #[test]
    fn complete_matches_the_per_attribute_reference() {
        let types = [
            CKA_TOKEN,
            CKA_PRIVATE,
            CKA_LABEL,
            CKA_APPLICATION,
            CKA_VALUE,
            CKA_OBJECT_ID,
            CKA_TRUSTED,
            CKA_CERTIFICATE_CATEGORY,
            CKA_SUBJECT,
            CKA_ID,
            CKA_SENSITIVE,
            CKA_ENCRYPT,
            CKA_DECRYPT,
            CKA_WRAP,
            CKA_UNWRAP,
            CKA_SIGN,
            CKA_SIGN_RECOVER,
            CKA_VERIFY,
            CKA_VERIFY_RECOVER,
            CKA_DERIVE,
            CKA_START_DATE,
            CKA_END_DATE,
            CKA_EXTRACTABLE,
            CKA_LOCAL,
            CKA_NEVER_EXTRACTABLE,
            CKA_ALWAYS_SENSITIVE,
            CKA_KEY_GEN_MECHANISM,
            CKA_MODIFIABLE,
            CKA_COPYABLE,
            CKA_DESTROYABLE,
            CKA_ALWAYS_AUTHENTICATE,
            CKA_WRAP_WITH_TRUSTED,
            CKA_MODULUS_BITS,
            CKA_EC_PARAMS,
        ];
        let classes = [
            CKO_DATA,
            CKO_CERTIFICATE,
            CKO_SECRET_KEY,
            CKO_PRIVATE_KEY,
            CKO_PUBLIC_KEY,
            CKO_HW_FEATURE,
        ];
        let mut x: u64 = 0x853c_49e6_748f_ea9b;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..4_000 {
            let mut a = Attrs::new();
            if next() % 8 != 0 {
                a.set_ulong(CKA_CLASS, classes[(next() % 6) as usize]);
            }
            if next() % 6 != 0 {
                a.set_ulong(CKA_KEY_TYPE, CKK_EC);
            }
            if next() % 4 != 0 {
                a.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
            }
            for _ in 0..next() % 12 {
                let ty = types[(next() % types.len() as u64) as usize];
                let len = [0usize, 1, 1, 1, 8][(next() % 5) as usize];
                a.set_bytes(ty, &next().to_le_bytes()[..len]);
            }
            let local = next() % 2 == 0;
            let mech = [None, Some(CKM_EC_KEY_PAIR_GEN)][(next() % 2) as usize];
            let (mut new, mut old) = (a.clone(), a);
            let (rn, ro) = (
                complete(&mut new, local, mech),
                complete_reference(&mut old, local, mech),
            );
            assert_eq!(rn.map_err(|e| e.0), ro.map_err(|e| e.0));
            if rn.is_ok() {
                // The unique IDs differ (a counter); everything else must not.
                assert_ne!(new.bytes(CKA_UNIQUE_ID), old.bytes(CKA_UNIQUE_ID));
                new.remove(&CKA_UNIQUE_ID);
                old.remove(&CKA_UNIQUE_ID);
                assert_eq!(new, old);
            }
        }
    }

    fn key(sensitive: bool, extractable: bool) -> Attrs {
        let mut a = Attrs::new();
        a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        a.set_ulong(CKA_KEY_TYPE, CKK_AES);
        a.set_bytes(CKA_VALUE, &[1; 16]);
        a.set_bool(CKA_SENSITIVE, sensitive);
        a.set_bool(CKA_EXTRACTABLE, extractable);
        a
    }

    #[test]
    fn sensitive_or_unextractable_is_never_readable() {
        for (s, e, readable) in [
            (false, true, true),
            (true, true, false),
            (false, false, false),
            (true, false, false),
        ] {
            let a = key(s, e);
            assert_eq!(
                matches!(read(&a, CKA_VALUE), Read::Value(_)),
                readable,
                "s={s} e={e}"
            );
        }
    }

    #[test]
    fn sticky_attributes() {
        let a = key(true, false);
        let mut c = Attrs::new();
        c.set_bool(CKA_SENSITIVE, false);
        assert!(check_set(&a, &c, false).is_err());
        let mut c = Attrs::new();
        c.set_bool(CKA_EXTRACTABLE, true);
        assert!(check_set(&a, &c, true).is_err());
        let b = key(false, true);
        let mut c = Attrs::new();
        c.set_bool(CKA_SENSITIVE, true);
        c.set_bool(CKA_EXTRACTABLE, false);
        assert!(check_set(&b, &c, false).is_ok());
    }

    #[test]
    fn token_only_attributes_are_refused() {
        let t = vec![(CKA_ALWAYS_SENSITIVE, AttrVal::small([1]))];
        assert_eq!(
            parse_template(&t, Purpose::Create, LoginState::User).err(),
            Some(Error(CKR_ATTRIBUTE_READ_ONLY))
        );
        let t = vec![(CKA_TRUSTED, AttrVal::small([1]))];
        assert!(parse_template(&t, Purpose::Create, LoginState::User).is_err());
        assert!(parse_template(&t, Purpose::Create, LoginState::Admin).is_ok());
    }

    #[test]
    fn role_latch() {
        let mut a = key(true, true);
        assert!(latch(&mut a, Role::Wrap).unwrap());
        assert!(!latch(&mut a, Role::Wrap).unwrap());
        assert!(latch(&mut a, Role::Crypt).is_err());
    }
}
