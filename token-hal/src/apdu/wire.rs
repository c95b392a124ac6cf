//! The fields of the command set (docs/apdu.md §5–§7) as token-hal types: instruction
//! bytes, TLV tags, and the encoders and decoders both the driver and the virtual key use.

use super::tlv::{Fields, Writer, uint};
use crate::crypto::hash::HashAlg;
use crate::crypto::sm2::ExchangeRole;
use crate::crypto::{DecMech, DeriveMech, KeyAlg, PublicKey, SignMech};
use crate::error::{Error, Result};
use crate::model::{
    Attr, CertId, CertRecord, ContainerInfo, DeviceInfo, FileInfo, KeyId, KeyInfo, KeyRef,
    KeyState, KeyUsage, PinInfo, PinType, Rights,
};

/// Instruction bytes (docs/apdu.md §6).
pub mod ins {
    pub const GET_DEVICE_INFO: u8 = 0x10;
    pub const SET_LABEL: u8 = 0x11;
    pub const GET_CHALLENGE: u8 = 0x12;
    pub const DEVICE_AUTH: u8 = 0x13;
    pub const CHANGE_DEV_AUTH_KEY: u8 = 0x14;
    pub const VERIFY_PIN: u8 = 0x20;
    pub const CHANGE_PIN: u8 = 0x21;
    pub const UNBLOCK_PIN: u8 = 0x22;
    pub const INIT_USER_PIN: u8 = 0x23;
    pub const GET_PIN_INFO: u8 = 0x24;
    pub const LOGOUT: u8 = 0x25;
    pub const WIPE: u8 = 0x26;
    pub const LOGIN_STATE: u8 = 0x27;
    pub const LIST_APPS: u8 = 0x30;
    pub const CREATE_APP: u8 = 0x31;
    pub const DELETE_APP: u8 = 0x32;
    pub const OPEN_APP: u8 = 0x33;
    pub const APP_INFO: u8 = 0x34;
    pub const LIST_CONTAINERS: u8 = 0x40;
    pub const CREATE_CONTAINER: u8 = 0x41;
    pub const DELETE_CONTAINER: u8 = 0x42;
    pub const GENERATE_KEY: u8 = 0x43;
    pub const IMPORT_KEY: u8 = 0x44;
    pub const DELETE_KEY: u8 = 0x45;
    pub const IMPORT_CERT: u8 = 0x46;
    pub const DELETE_CERT: u8 = 0x47;
    pub const SIGN: u8 = 0x50;
    pub const DECRYPT: u8 = 0x51;
    pub const DERIVE: u8 = 0x52;
    pub const LIST_FILES: u8 = 0x60;
    pub const CREATE_FILE: u8 = 0x61;
    pub const DELETE_FILE: u8 = 0x62;
    pub const FILE_INFO: u8 = 0x63;
    pub const READ_FILE: u8 = 0x64;
    pub const WRITE_FILE: u8 = 0x65;
    pub const CREATE_OBJECT: u8 = 0x70;
    pub const LIST_OBJECTS: u8 = 0x71;
    pub const GET_OBJECT: u8 = 0x72;
    pub const UPDATE_OBJECT: u8 = 0x73;
    pub const DELETE_OBJECT: u8 = 0x74;
}

/// TLV tags (docs/apdu.md §5).
pub mod tag {
    pub const NAME: u8 = 0x01;
    pub const ID: u8 = 0x02;
    pub const KEY_ID: u8 = 0x03;
    pub const USAGE: u8 = 0x04;
    pub const ALG: u8 = 0x05;
    pub const MECH: u8 = 0x06;
    pub const DATA: u8 = 0x07;
    pub const PUBLIC_KEY: u8 = 0x08;
    pub const PKCS8: u8 = 0x09;
    pub const CERT: u8 = 0x0A;
    pub const CERT_ID: u8 = 0x0B;
    pub const CURRENT: u8 = 0x0C;
    pub const STATE: u8 = 0x0D;
    pub const TIME: u8 = 0x0E;
    pub const FLAG: u8 = 0x0F;
    pub const PIN: u8 = 0x10;
    pub const RETRIES: u8 = 0x11;
    pub const RIGHTS: u8 = 0x12;
    pub const OFFSET: u8 = 0x13;
    pub const LENGTH: u8 = 0x14;
    pub const ATTR: u8 = 0x15;
    pub const ATTR_TYPE: u8 = 0x16;
    pub const OBJECT_ID: u8 = 0x17;
    pub const CONTAINER: u8 = 0x20;
    pub const KEY: u8 = 0x30;
    pub const CERT_RECORD: u8 = 0x31;
    pub const FILE_INFO: u8 = 0x40;
    pub const OBJECT: u8 = 0x41;
    pub const CARD_INFO: u8 = 0xC0;
    pub const VERSION: u8 = 0xC1;
    pub const FLAGS: u8 = 0xC2;
    pub const DEVICE_INFO: u8 = 0xC3;
    pub const SERIAL: u8 = 0xC4;
    pub const LABEL: u8 = 0xC5;
    pub const MANUFACTURER: u8 = 0xC6;
    pub const ISSUER: u8 = 0xC7;
    pub const MODEL: u8 = 0xC8;
    pub const HW_VERSION: u8 = 0xC9;
    pub const FW_VERSION: u8 = 0xCA;
    pub const TOTAL_SPACE: u8 = 0xCB;
    pub const FREE_SPACE: u8 = 0xCC;
    pub const DEV_NAME: u8 = 0xCD;
    pub const FORM: u8 = 0xCE;
    pub const PIN_INFO: u8 = 0xD0;
    pub const REMAINING: u8 = 0xD1;
    pub const DEFAULT_PIN: u8 = 0xD2;
    pub const INITIALIZED: u8 = 0xD3;
}

fn bad(what: &str) -> Error {
    Error::invalid_data(format!("bad {what} field"))
}

/// The P2 of a PIN command.
pub fn pin_p2(t: PinType) -> u8 {
    match t {
        PinType::Admin => 0,
        PinType::User => 1,
    }
}

/// The PIN type of a P2.
pub fn pin_type(p2: u8) -> Result<PinType> {
    match p2 {
        0 => Ok(PinType::Admin),
        1 => Ok(PinType::User),
        _ => Err(Error::invalid_arg("PIN type")),
    }
}

/// The usage byte.
pub fn usage_byte(u: KeyUsage) -> u8 {
    match u {
        KeyUsage::Sign => 0,
        KeyUsage::Encrypt => 1,
    }
}

/// The usage of a byte.
pub fn usage(b: u8) -> Result<KeyUsage> {
    match b {
        0 => Ok(KeyUsage::Sign),
        1 => Ok(KeyUsage::Encrypt),
        _ => Err(bad("usage")),
    }
}

/// The algorithm field of a key algorithm the card carries; others are unsupported.
pub fn alg_bytes(a: KeyAlg) -> Result<Vec<u8>> {
    match a {
        KeyAlg::Sm2 => Ok(vec![1]),
        KeyAlg::EcP256 => Ok(vec![2]),
        KeyAlg::Rsa(bits @ (1024 | 2048)) => {
            let mut v = vec![3];
            v.extend_from_slice(&(bits as u16).to_be_bytes());
            Ok(v)
        }
        other => Err(Error::Unsupported(format!(
            "{other:?} keys on an APDU card (SM2, ECDSA P-256, RSA 1024/2048)"
        ))),
    }
}

/// The key algorithm of an algorithm field.
pub fn alg(v: &[u8]) -> Result<KeyAlg> {
    match v {
        [1] => Ok(KeyAlg::Sm2),
        [2] => Ok(KeyAlg::EcP256),
        [3, h, l] => match u16::from_be_bytes([*h, *l]) {
            b @ (1024 | 2048) => Ok(KeyAlg::Rsa(u32::from(b))),
            _ => Err(Error::Unsupported("RSA size on an APDU card".into())),
        },
        _ => Err(Error::Unsupported("key algorithm on an APDU card".into())),
    }
}

fn hash_byte(h: HashAlg) -> u8 {
    match h {
        HashAlg::Sm3 => 1,
        HashAlg::Sha1 => 2,
        HashAlg::Sha224 => 3,
        HashAlg::Sha256 => 4,
        HashAlg::Sha384 => 5,
        HashAlg::Sha512 => 6,
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

fn hash(b: u8) -> Result<HashAlg> {
    Ok(match b {
        1 => HashAlg::Sm3,
        2 => HashAlg::Sha1,
        3 => HashAlg::Sha224,
        4 => HashAlg::Sha256,
        5 => HashAlg::Sha384,
        6 => HashAlg::Sha512,
        _ => return Err(bad("hash")),
    })
}

/// A card signature mechanism: only the prehashed forms cross the wire (docs/apdu.md §7;
/// the driver hashes on the host).
pub fn sign_mech_bytes(m: &SignMech) -> Result<Vec<u8>> {
    Ok(match m {
        SignMech::Sm2Prehashed => vec![0x01],
        SignMech::EcdsaPrehashed => vec![0x02],
        SignMech::RsaPkcs1Raw => vec![0x03],
        SignMech::RsaPssPrehashed { hash, salt_len } => {
            let s = u16::try_from(*salt_len).map_err(|_| bad("salt length"))?;
            let mut v = vec![0x04, hash_byte(*hash)];
            v.extend_from_slice(&s.to_be_bytes());
            v
        }
        SignMech::RsaRaw => vec![0x05],
        other => {
            return Err(Error::Internal(format!(
                "{other:?} is hashed on the host before it reaches the card"
            )));
        }
    })
}

/// The signature mechanism of a mechanism field.
pub fn sign_mech(v: &[u8]) -> Result<SignMech> {
    Ok(match v {
        [0x01] => SignMech::Sm2Prehashed,
        [0x02] => SignMech::EcdsaPrehashed,
        [0x03] => SignMech::RsaPkcs1Raw,
        [0x04, h, a, b] => SignMech::RsaPssPrehashed {
            hash: hash(*h)?,
            salt_len: usize::from(u16::from_be_bytes([*a, *b])),
        },
        [0x05] => SignMech::RsaRaw,
        _ => return Err(Error::Unsupported("signature mechanism on the card".into())),
    })
}

/// A card decryption mechanism.
pub fn dec_mech_bytes(m: &DecMech) -> Result<Vec<u8>> {
    let oaep = |h: HashAlg, mgf: HashAlg, label: &[u8]| -> Result<Vec<u8>> {
        let n = u16::try_from(label.len()).map_err(|_| bad("OAEP label"))?;
        let mut v = vec![0x13, hash_byte(h), hash_byte(mgf)];
        v.extend_from_slice(&n.to_be_bytes());
        v.extend_from_slice(label);
        Ok(v)
    };
    Ok(match m {
        DecMech::Sm2 => vec![0x11],
        DecMech::RsaPkcs1 => vec![0x12],
        DecMech::RsaOaep { hash, label } => oaep(*hash, *hash, label)?,
        DecMech::RsaOaepMgf { hash, mgf1, label } => oaep(*hash, *mgf1, label)?,
        DecMech::RsaRaw => vec![0x15],
    })
}

/// The decryption mechanism of a mechanism field.
pub fn dec_mech(v: &[u8]) -> Result<DecMech> {
    Ok(match v {
        [0x11] => DecMech::Sm2,
        [0x12] => DecMech::RsaPkcs1,
        [0x13, h, m, a, b, label @ ..] => {
            if label.len() != usize::from(u16::from_be_bytes([*a, *b])) {
                return Err(bad("OAEP label length"));
            }
            DecMech::RsaOaepMgf {
                hash: hash(*h)?,
                mgf1: hash(*m)?,
                label: label.to_vec(),
            }
        }
        [0x15] => DecMech::RsaRaw,
        _ => {
            return Err(Error::Unsupported(
                "decryption mechanism on the card".into(),
            ));
        }
    })
}

/// A card derivation mechanism.
pub fn derive_mech_bytes(m: &DeriveMech) -> Result<Vec<u8>> {
    Ok(match m {
        DeriveMech::Ecdh { peer_point } => {
            let mut v = vec![0x21];
            v.extend_from_slice(peer_point);
            v
        }
        DeriveMech::Sm2Exchange {
            role,
            own_id,
            ephemeral,
            peer,
            peer_id,
            peer_ephemeral,
            klen,
        } => {
            let k = u16::try_from(*klen).map_err(|_| bad("key length"))?;
            let mut v = vec![0x22, u8::from(*role == ExchangeRole::Responder)];
            v.extend_from_slice(&k.to_be_bytes());
            let mut w = Writer::new();
            w.put(tag::DATA, own_id)
                .put(tag::DATA, ephemeral)
                .put(tag::PUBLIC_KEY, peer.spki_der())
                .put(tag::DATA, peer_id)
                .put(tag::DATA, peer_ephemeral);
            v.extend_from_slice(w.as_bytes());
            v
        }
    })
}

/// The derivation mechanism of a mechanism field.
pub fn derive_mech(v: &[u8]) -> Result<DeriveMech> {
    match v {
        [0x21, point @ ..] => Ok(DeriveMech::Ecdh {
            peer_point: point.to_vec(),
        }),
        [0x22, role, a, b, rest @ ..] => {
            let f = Fields::parse(rest, &[tag::DATA, tag::PUBLIC_KEY])?;
            let d: Vec<&[u8]> = f.all(tag::DATA).collect();
            let [own_id, eph, peer_id, peer_eph] = d.as_slice() else {
                return Err(bad("SM2 exchange"));
            };
            Ok(DeriveMech::Sm2Exchange {
                role: match role {
                    0 => ExchangeRole::Initiator,
                    1 => ExchangeRole::Responder,
                    _ => return Err(bad("exchange role")),
                },
                own_id: own_id.to_vec(),
                ephemeral: zeroize::Zeroizing::new(eph.to_vec()),
                peer: PublicKey::from_spki_der(f.get(tag::PUBLIC_KEY)?)?,
                peer_id: peer_id.to_vec(),
                peer_ephemeral: peer_eph.to_vec(),
                klen: usize::from(u16::from_be_bytes([*a, *b])),
            })
        }
        _ => Err(Error::Unsupported(
            "derivation mechanism on the card".into(),
        )),
    }
}

/// Writes a key reference.
pub fn put_key_ref(w: &mut Writer, k: &KeyRef) {
    match k {
        KeyRef::Id(KeyId(id)) => {
            w.put_uint(tag::KEY_ID, *id);
        }
        KeyRef::Container { container, usage } => {
            w.put_str(tag::NAME, container)
                .put_u8(tag::USAGE, usage_byte(*usage));
        }
    }
}

/// Reads a key reference.
pub fn key_ref(f: &Fields<'_>) -> Result<KeyRef> {
    if let Some(id) = f.opt(tag::KEY_ID)? {
        return Ok(KeyRef::Id(KeyId(uint(id)?)));
    }
    Ok(KeyRef::Container {
        container: f.str(tag::NAME)?.to_owned(),
        usage: usage(f.u8(tag::USAGE)?)?,
    })
}

/// Writes a container with its keys and certificates.
pub fn put_container(w: &mut Writer, c: &ContainerInfo) {
    w.nest(tag::CONTAINER, |w| {
        w.put_str(tag::NAME, &c.name).put(tag::ID, &c.id);
        for k in c.all_keys() {
            w.nest(tag::KEY, |w| {
                w.put_uint(tag::KEY_ID, k.id.0);
                if let Ok(a) = alg_bytes(k.alg) {
                    w.put(tag::ALG, &a);
                }
                w.put_u8(tag::USAGE, usage_byte(k.usage))
                    .put_u8(tag::STATE, u8::from(k.state == KeyState::Retired))
                    .put(tag::PUBLIC_KEY, k.public_key.spki_der());
                for c in &k.certs {
                    w.nest(tag::CERT_RECORD, |w| {
                        w.put_uint(tag::CERT_ID, c.id.0)
                            .put(tag::CERT, &c.der)
                            .put_u8(tag::CURRENT, u8::from(c.current))
                            .put(tag::TIME, &c.imported_at.to_be_bytes());
                    });
                }
            });
        }
    });
}

/// Reads a container.
pub fn container(v: &[u8]) -> Result<ContainerInfo> {
    let f = Fields::parse(v, &[tag::NAME, tag::ID, tag::KEY])?;
    let mut c = ContainerInfo {
        name: f.str(tag::NAME)?.to_owned(),
        id: f.get(tag::ID)?.to_vec(),
        sign: None,
        enc: None,
        retired: Vec::new(),
    };
    for kv in f.all(tag::KEY) {
        let k = Fields::parse(
            kv,
            &[
                tag::KEY_ID,
                tag::ALG,
                tag::USAGE,
                tag::STATE,
                tag::PUBLIC_KEY,
                tag::CERT_RECORD,
            ],
        )?;
        let public_key = PublicKey::from_spki_der(k.get(tag::PUBLIC_KEY)?)?;
        let mut certs = Vec::new();
        for cv in k.all(tag::CERT_RECORD) {
            let cf = Fields::parse(cv, &[tag::CERT_ID, tag::CERT, tag::CURRENT, tag::TIME])?;
            certs.push(CertRecord {
                id: CertId(cf.uint(tag::CERT_ID)?),
                der: cf.get(tag::CERT)?.to_vec(),
                current: cf.flag(tag::CURRENT)?,
                imported_at: uint(cf.get(tag::TIME)?)?,
            });
        }
        let info = KeyInfo {
            id: KeyId(k.uint(tag::KEY_ID)?),
            alg: public_key.alg(),
            usage: usage(k.u8(tag::USAGE)?)?,
            state: if k.flag(tag::STATE)? {
                KeyState::Retired
            } else {
                KeyState::Active
            },
            public_key,
            certs,
        };
        match (info.state, info.usage) {
            (KeyState::Retired, _) => c.retired.push(info),
            (KeyState::Active, KeyUsage::Sign) if c.sign.is_none() => c.sign = Some(info),
            (KeyState::Active, KeyUsage::Encrypt) if c.enc.is_none() => c.enc = Some(info),
            _ => return Err(bad("container (two active pairs of one usage)")),
        }
    }
    Ok(c)
}

/// Writes device information.
pub fn put_device_info(w: &mut Writer, d: &DeviceInfo) {
    w.nest(tag::DEVICE_INFO, |w| {
        w.put_str(tag::DEV_NAME, &d.name)
            .put_str(tag::SERIAL, &d.serial)
            .put_str(tag::LABEL, &d.label)
            .put_str(tag::MANUFACTURER, &d.manufacturer)
            .put_str(tag::ISSUER, &d.issuer)
            .put_str(tag::MODEL, &d.model)
            .put(tag::HW_VERSION, &[d.hw_version.0, d.hw_version.1])
            .put(tag::FW_VERSION, &[d.fw_version.0, d.fw_version.1])
            .put(tag::TOTAL_SPACE, &d.total_space.to_be_bytes())
            .put(tag::FREE_SPACE, &d.free_space.to_be_bytes())
            .put_u8(tag::FORM, device_form(d));
    });
}

/// The form byte of DEVICE INFO: [`FORM_SOFTWARE`] and [`FORM_FIXED`] (0: a removable
/// hardware key, which is also what its absence means).
pub fn device_form(d: &DeviceInfo) -> u8 {
    let mut form = 0;
    if !d.hardware {
        form |= FORM_SOFTWARE;
    }
    if !d.removable {
        form |= FORM_FIXED;
    }
    form
}

/// Form bit: the key is implemented in software (a virtual key), not a chip.
pub const FORM_SOFTWARE: u8 = 0x01;
/// Form bit: the key cannot be removed (an embedded secure element), not a USB key or card.
pub const FORM_FIXED: u8 = 0x02;

/// Reads device information as the card says it (its form byte: removable, hardware).
pub fn device_info(v: &[u8]) -> Result<DeviceInfo> {
    let f = Fields::parse(
        v,
        &[
            tag::DEV_NAME,
            tag::SERIAL,
            tag::LABEL,
            tag::MANUFACTURER,
            tag::ISSUER,
            tag::MODEL,
            tag::HW_VERSION,
            tag::FW_VERSION,
            tag::TOTAL_SPACE,
            tag::FREE_SPACE,
            tag::FORM,
        ],
    )?;
    let pair = |t: u8| -> Result<(u8, u8)> {
        match f.get(t)? {
            [a, b] => Ok((*a, *b)),
            _ => Err(bad("version")),
        }
    };
    let form = match f.opt(tag::FORM)? {
        None => 0,
        Some([b]) if b & !(FORM_SOFTWARE | FORM_FIXED) == 0 => *b,
        Some(_) => return Err(bad("device form")),
    };
    Ok(DeviceInfo {
        name: f.str(tag::DEV_NAME)?.to_owned(),
        serial: f.str(tag::SERIAL)?.to_owned(),
        label: f.str(tag::LABEL)?.to_owned(),
        manufacturer: f.str(tag::MANUFACTURER)?.to_owned(),
        issuer: f.str(tag::ISSUER)?.to_owned(),
        model: f.str(tag::MODEL)?.to_owned(),
        hw_version: pair(tag::HW_VERSION)?,
        fw_version: pair(tag::FW_VERSION)?,
        total_space: uint(f.get(tag::TOTAL_SPACE)?)?,
        free_space: uint(f.get(tag::FREE_SPACE)?)?,
        removable: form & FORM_FIXED == 0,
        hardware: form & FORM_SOFTWARE == 0,
        backend: crate::model::BackendKind::Apdu,
    })
}

/// Writes PIN information.
pub fn put_pin_info(w: &mut Writer, p: &PinInfo) {
    w.nest(tag::PIN_INFO, |w| {
        w.put_u8(tag::RETRIES, p.max_retries.min(255) as u8)
            .put_u8(tag::REMAINING, p.remaining.min(255) as u8)
            .put_u8(tag::DEFAULT_PIN, u8::from(p.default_pin))
            .put_u8(tag::INITIALIZED, u8::from(p.initialized));
    });
}

/// Reads PIN information.
pub fn pin_info(v: &[u8]) -> Result<PinInfo> {
    let f = Fields::parse(
        v,
        &[
            tag::RETRIES,
            tag::REMAINING,
            tag::DEFAULT_PIN,
            tag::INITIALIZED,
        ],
    )?;
    Ok(PinInfo {
        max_retries: u32::from(f.u8(tag::RETRIES)?),
        remaining: u32::from(f.u8(tag::REMAINING)?),
        default_pin: f.flag(tag::DEFAULT_PIN)?,
        initialized: f.flag(tag::INITIALIZED)?,
    })
}

/// Writes file information.
pub fn put_file_info(w: &mut Writer, fi: &FileInfo) {
    w.nest(tag::FILE_INFO, |w| {
        w.put_str(tag::NAME, &fi.name)
            .put_uint(tag::LENGTH, u64::from(fi.size))
            .put_u8(tag::RIGHTS, fi.read_rights.0 as u8)
            .put_u8(tag::RIGHTS, fi.write_rights.0 as u8);
    });
}

/// Reads file information.
pub fn file_info(v: &[u8]) -> Result<FileInfo> {
    let f = Fields::parse(v, &[tag::NAME, tag::LENGTH, tag::RIGHTS])?;
    let rights: Vec<&[u8]> = f.all(tag::RIGHTS).collect();
    let [[r], [w]] = rights.as_slice() else {
        return Err(bad("file rights"));
    };
    Ok(FileInfo {
        name: f.str(tag::NAME)?.to_owned(),
        size: u32::try_from(f.uint(tag::LENGTH)?).map_err(|_| bad("file size"))?,
        read_rights: Rights(u32::from(*r)),
        write_rights: Rights(u32::from(*w)),
    })
}

/// An attribute of the wire (docs/apdu.md tag `15`).
pub fn attr(v: &[u8]) -> Result<Attr> {
    let f = Fields::parse(v, &[tag::ATTR_TYPE, tag::FLAG, tag::DATA])?;
    Ok(Attr {
        ty: f.uint(tag::ATTR_TYPE)?,
        value: zeroize::Zeroizing::new(f.get(tag::DATA)?.to_vec()),
        sensitive: f.flag(tag::FLAG)?,
    })
}

/// Writes an attribute (tag `15`).
pub fn put_attr(w: &mut Writer, a: &Attr) {
    w.nest(tag::ATTR, |w| {
        w.put(tag::ATTR_TYPE, &a.ty.to_be_bytes())
            .put_u8(tag::FLAG, u8::from(a.sensitive))
            .put(tag::DATA, &a.value);
    });
}

/// Reads a generic object (the contents of tag `41`).
pub fn object(v: &[u8]) -> Result<crate::model::ObjectRecord> {
    let f = Fields::parse(v, &[tag::OBJECT_ID, tag::FLAG, tag::ATTR])?;
    Ok(crate::model::ObjectRecord {
        id: crate::model::ObjectId(f.uint(tag::OBJECT_ID)?),
        private: f.flag(tag::FLAG)?,
        attrs: f.all(tag::ATTR).map(attr).collect::<Result<Vec<_>>>()?,
    })
}

/// Writes a generic object (tag `41`).
pub fn put_object(w: &mut Writer, o: &crate::model::ObjectRecord) {
    w.nest(tag::OBJECT, |w| {
        w.put_uint(tag::OBJECT_ID, o.id.0)
            .put_u8(tag::FLAG, u8::from(o.private));
        for a in &o.attrs {
            put_attr(w, a);
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::PrivateKey;

    #[test]
    fn mechanisms_round_trip() {
        for m in [
            SignMech::Sm2Prehashed,
            SignMech::EcdsaPrehashed,
            SignMech::RsaPkcs1Raw,
            SignMech::RsaPssPrehashed {
                hash: HashAlg::Sha256,
                salt_len: 32,
            },
            SignMech::RsaRaw,
        ] {
            assert_eq!(sign_mech(&sign_mech_bytes(&m).unwrap()).unwrap(), m);
        }
        assert!(sign_mech_bytes(&SignMech::Sm2Sm3 { id: vec![] }).is_err());
        for m in [
            DecMech::Sm2,
            DecMech::RsaPkcs1,
            DecMech::RsaRaw,
            DecMech::RsaOaepMgf {
                hash: HashAlg::Sha256,
                mgf1: HashAlg::Sha1,
                label: b"L".to_vec(),
            },
        ] {
            assert_eq!(dec_mech(&dec_mech_bytes(&m).unwrap()).unwrap(), m);
        }
        assert!(dec_mech(&[0x13, 4, 4, 0, 5, 1]).is_err(), "label length");
        let peer = PrivateKey::generate(KeyAlg::Sm2)
            .unwrap()
            .public_key()
            .unwrap();
        let d = DeriveMech::Sm2Exchange {
            role: ExchangeRole::Responder,
            own_id: b"me".to_vec(),
            ephemeral: zeroize::Zeroizing::new(vec![7; 32]),
            peer: peer.clone(),
            peer_id: b"you".to_vec(),
            peer_ephemeral: vec![4; 65],
            klen: 16,
        };
        match derive_mech(&derive_mech_bytes(&d).unwrap()).unwrap() {
            DeriveMech::Sm2Exchange {
                role,
                peer: p,
                klen,
                ..
            } => {
                assert_eq!(role, ExchangeRole::Responder);
                assert_eq!(p, peer);
                assert_eq!(klen, 16);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn device_form_round_trips_and_strange_bits_are_refused() {
        let mut d = DeviceInfo {
            name: "k".into(),
            serial: "1".into(),
            label: "l".into(),
            manufacturer: "m".into(),
            issuer: "i".into(),
            model: "x".into(),
            hw_version: (1, 0),
            fw_version: (2, 0),
            total_space: 9,
            free_space: 8,
            removable: true,
            hardware: true,
            backend: crate::model::BackendKind::Apdu,
        };
        for (removable, hardware) in [(true, true), (true, false), (false, false), (false, true)] {
            (d.removable, d.hardware) = (removable, hardware);
            let mut w = Writer::new();
            put_device_info(&mut w, &d);
            let b = w.finish();
            let f = Fields::parse(&b, &[tag::DEVICE_INFO]).unwrap();
            assert_eq!(device_info(f.get(tag::DEVICE_INFO).unwrap()).unwrap(), d);
        }
        // Without the byte: a removable hardware key; an unknown bit: refused.
        let mut w = Writer::new();
        w.put_str(tag::DEV_NAME, "k")
            .put_str(tag::SERIAL, "1")
            .put_str(tag::LABEL, "l")
            .put_str(tag::MANUFACTURER, "m")
            .put_str(tag::ISSUER, "i")
            .put_str(tag::MODEL, "x")
            .put(tag::HW_VERSION, &[1, 0])
            .put(tag::FW_VERSION, &[2, 0])
            .put(tag::TOTAL_SPACE, &9u64.to_be_bytes())
            .put(tag::FREE_SPACE, &8u64.to_be_bytes());
        let plain = w.finish();
        let i = device_info(&plain).unwrap();
        assert!(i.removable && i.hardware);
        let mut odd = plain.clone();
        odd.extend_from_slice(&[tag::FORM, 1, 0x04]);
        assert!(device_info(&odd).is_err());
        let mut long = plain;
        long.extend_from_slice(&[tag::FORM, 2, 0, 0]);
        assert!(device_info(&long).is_err());
    }

    #[test]
    fn model_types_round_trip() {
        let pk = PrivateKey::generate(KeyAlg::Sm2)
            .unwrap()
            .public_key()
            .unwrap();
        let key = |id, usage, state| KeyInfo {
            id: KeyId(id),
            alg: KeyAlg::Sm2,
            usage,
            state,
            public_key: pk.clone(),
            certs: vec![CertRecord {
                id: CertId(id + 100),
                der: vec![0x30, 0],
                current: true,
                imported_at: 5,
            }],
        };
        let c = ContainerInfo {
            name: "bidder".into(),
            id: b"bidder".to_vec(),
            sign: Some(key(1, KeyUsage::Sign, KeyState::Active)),
            enc: Some(key(2, KeyUsage::Encrypt, KeyState::Active)),
            retired: vec![key(3, KeyUsage::Encrypt, KeyState::Retired)],
        };
        let mut w = Writer::new();
        put_container(&mut w, &c);
        let enc = w.finish();
        let f = Fields::parse(&enc, &[tag::CONTAINER]).unwrap();
        let back = container(f.get(tag::CONTAINER).unwrap()).unwrap();
        assert_eq!(back.name, "bidder");
        assert_eq!(back.sign.unwrap().certs[0].id, CertId(101));
        assert_eq!(back.retired.len(), 1);
        let fi = FileInfo {
            name: "seal".into(),
            size: 4096,
            read_rights: Rights::ANYONE,
            write_rights: Rights::USER,
        };
        let mut w = Writer::new();
        put_file_info(&mut w, &fi);
        let enc = w.finish();
        let f = Fields::parse(&enc, &[tag::FILE_INFO]).unwrap();
        assert_eq!(file_info(f.get(tag::FILE_INFO).unwrap()).unwrap(), fi);
        for a in [KeyAlg::Sm2, KeyAlg::EcP256, KeyAlg::Rsa(2048)] {
            assert_eq!(alg(&alg_bytes(a).unwrap()).unwrap(), a);
        }
        assert!(alg_bytes(KeyAlg::Ed25519).is_err());
        assert!(alg(&[3, 0x0C, 0]).is_err(), "RSA-3072 is not on the card");
    }
}
