//! Cryptographic functions (PKCS#11 3.0 §5.8–5.12): encryption, decryption, digests,
//! signatures and MACs, single- and multi-part (the 3.0 message-based functions are in
//! `message.rs`).

use std::borrow::Cow;
use std::sync::Arc;

use cryptoki_sys::*;
use token_hal::crypto::hash::{HashAlg, Hasher};
use token_hal::crypto::sym::{Direction, SymAlg, SymCipher, SymMode};
use token_hal::crypto::{EncMech, KeyAlg, SignMech};
use zeroize::Zeroizing;

use crate::api::objects::{self, key_material, visible};
use crate::error::{Error, Result};
use crate::mechanism::vendor::*;
use crate::mechanism::{Mech, Param};
use crate::object::{self, Attrs, AttrsExt, KeyMaterial, Role};
use crate::session::{CryptOp, OpKind, Produced, Session, SignOp, produce};
use crate::state::{self, Module};

/// The hash of a digest mechanism (or of a hash named in a parameter).
pub(crate) fn hash_of(m: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match m {
        CKM_SHA_1
        | CKM_SHA_1_HMAC
        | CKM_ECDSA_SHA1
        | CKM_SHA1_RSA_PKCS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA_1_KEY_GEN => HashAlg::Sha1,
        CKM_SHA224
        | CKM_SHA224_HMAC
        | CKM_ECDSA_SHA224
        | CKM_SHA224_RSA_PKCS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA224_KEY_GEN => HashAlg::Sha224,
        CKM_SHA256
        | CKM_SHA256_HMAC
        | CKM_ECDSA_SHA256
        | CKM_SHA256_RSA_PKCS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA256_KEY_GEN => HashAlg::Sha256,
        CKM_SHA384
        | CKM_SHA384_HMAC
        | CKM_ECDSA_SHA384
        | CKM_SHA384_RSA_PKCS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA384_KEY_GEN => HashAlg::Sha384,
        CKM_SHA512
        | CKM_SHA512_HMAC
        | CKM_ECDSA_SHA512
        | CKM_SHA512_RSA_PKCS
        | CKM_SHA512_RSA_PKCS_PSS
        | CKM_SHA512_KEY_GEN => HashAlg::Sha512,
        CKM_SM3 | CKM_UKEY_SM3_HMAC => HashAlg::Sm3,
        _ => return None,
    })
}

fn mgf_hash(mgf: CK_ULONG) -> Option<HashAlg> {
    Some(match mgf {
        CKG_MGF1_SHA1 => HashAlg::Sha1,
        CKG_MGF1_SHA224 => HashAlg::Sha224,
        CKG_MGF1_SHA256 => HashAlg::Sha256,
        CKG_MGF1_SHA384 => HashAlg::Sha384,
        CKG_MGF1_SHA512 => HashAlg::Sha512,
        _ => return None,
    })
}

/// The key object of an operation, with the session, after the policy checks.
pub(crate) fn key_for(
    m: &Module,
    s: &Session,
    kh: CK_OBJECT_HANDLE,
    usage: CK_ATTRIBUTE_TYPE,
    mech: CK_MECHANISM_TYPE,
) -> Result<(Arc<crate::object::Object>, Attrs)> {
    let (o, _) = key_checked(m, s, kh, usage, mech)?;
    let a = o.attrs()?;
    Ok((o, a))
}

/// [`key_for`] without copying the attributes (they are read under the object's lock):
/// the key object and its key type. For the per-operation init calls.
///
/// A check that passed is remembered in the session ([`crate::session::KeyChecks`]) and
/// answers the next one for the same key, usage and mechanism while no object has
/// changed since and, for a private object, the user is still logged in.
pub(crate) fn key_checked(
    m: &Module,
    s: &Session,
    kh: CK_OBJECT_HANDLE,
    usage: CK_ATTRIBUTE_TYPE,
    mech: CK_MECHANISM_TYPE,
) -> Result<(Arc<crate::object::Object>, Option<CK_KEY_TYPE>)> {
    key_checked_private(m, s, kh, usage, mech).map(|(o, kt, _)| (o, kt))
}

/// [`key_checked`], and whether the key is `CKA_PRIVATE` (visible only to the user).
fn key_checked_private(
    m: &Module,
    s: &Session,
    kh: CK_OBJECT_HANDLE,
    usage: CK_ATTRIBUTE_TYPE,
    mech: CK_MECHANISM_TYPE,
) -> Result<(Arc<crate::object::Object>, Option<CK_KEY_TYPE>, bool)> {
    // Read before anything the check reads: a change after this reading makes the memo
    // entry stale even when the check below already saw it.
    let now = object::changes();
    let of = crate::session::KeyUse { kh, usage, mech };
    {
        let checks = s.checks.lock().map_err(|_| Error::GENERAL)?;
        if let Some(found) = checks.find(of, now, s) {
            return Ok(found);
        }
    }
    // `visible` and the key checks under one read of the attributes.
    let o = m
        .lock()?
        .objects
        .get(&kh)
        .cloned()
        .ok_or(Error(CKR_KEY_HANDLE_INVALID))?;
    if o.slot != s.slot_id {
        return Err(Error(CKR_KEY_HANDLE_INVALID));
    }
    let (private, kt) = {
        let a = o.read_attrs().map_err(|_| Error::GENERAL)?;
        let private = a.flag(CKA_PRIVATE);
        if private && !s.user() {
            return Err(Error(CKR_KEY_HANDLE_INVALID));
        }
        if !matches!(
            a.class(),
            Some(CKO_SECRET_KEY | CKO_PRIVATE_KEY | CKO_PUBLIC_KEY)
        ) {
            return Err(Error(CKR_KEY_HANDLE_INVALID));
        }
        object::require(&a, usage)?;
        object::mechanism_allowed(&a, mech)?;
        (private, a.key_type())
    };
    s.checks
        .lock()
        .map_err(|_| Error::GENERAL)?
        .remember(crate::session::KeyCheck {
            of,
            changes: now,
            private,
            key_type: kt,
            held: Arc::downgrade(&o),
        });
    Ok((o, kt, private))
}

/// Latches a key's role (wrap vs encrypt) and persists the latch (security.md).
pub(crate) fn latch_role(s: &Session, o: &crate::object::Object, role: Role) -> Result<()> {
    // Almost every call finds the key latched already (or not a key that latches): a read
    // answers it, with no write (which would count as a change to objects and so make
    // every session's key checks stale).
    {
        let a = o.read_attrs().map_err(|_| Error::GENERAL)?;
        if !object::latches(&a) || object::latched(&a, role)? {
            return Ok(());
        }
    }
    let mut a = o.write_attrs().map_err(|_| Error::GENERAL)?;
    if !object::latches(&a) {
        return Ok(());
    }
    if object::latch(&mut a, role)? {
        let snapshot = a.clone();
        drop(a);
        let record = match o.loc {
            crate::object::Loc::Store(id) => Some(id),
            // A container key PKCS#11 made keeps its latch in its overlay.
            crate::object::Loc::ContainerKey(_) => crate::landing::overlay_of(&snapshot),
            _ => None,
        };
        if let Some(id) = record {
            s.token.app.update_object(
                id,
                &[token_hal::Attr::public(
                    CKA_UKEY_ROLE,
                    (role as CK_ULONG).to_ne_bytes().to_vec(),
                )],
            )?;
        }
        let _ = snapshot;
    }
    Ok(())
}

pub(crate) fn secret(k: &KeyMaterial) -> Result<&[u8]> {
    match k {
        KeyMaterial::Secret(v, _) => Ok(v),
        _ => Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// A secret key's schedule prepared once (SM4), for ciphers of `alg`.
fn prepared(alg: SymAlg, k: &KeyMaterial) -> Option<&token_hal::crypto::sym::SymKey> {
    match (alg, k) {
        (SymAlg::Sm4, KeyMaterial::Secret(v, cache)) => cache.get(v),
        _ => None,
    }
}

pub(crate) fn sym_alg(kt: Option<CK_KEY_TYPE>, want: SymAlg) -> Result<SymAlg> {
    match (kt, want) {
        (Some(CKK_AES), SymAlg::Aes) => Ok(SymAlg::Aes),
        (Some(CKK_SM4), SymAlg::Sm4) => Ok(SymAlg::Sm4),
        _ => Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// The symmetric algorithm and mode of a cipher mechanism.
pub(crate) fn sym_mech(ty: CK_MECHANISM_TYPE) -> Option<(SymAlg, SymMode)> {
    Some(match ty {
        CKM_AES_ECB => (SymAlg::Aes, SymMode::Ecb),
        CKM_AES_CBC => (SymAlg::Aes, SymMode::Cbc),
        CKM_AES_CBC_PAD => (SymAlg::Aes, SymMode::CbcPad),
        CKM_AES_CTR => (SymAlg::Aes, SymMode::Ctr),
        CKM_AES_GCM => (SymAlg::Aes, SymMode::Gcm),
        CKM_SM4_ECB => (SymAlg::Sm4, SymMode::Ecb),
        CKM_SM4_CBC => (SymAlg::Sm4, SymMode::Cbc),
        CKM_UKEY_SM4_CBC_PAD => (SymAlg::Sm4, SymMode::CbcPad),
        CKM_UKEY_SM4_CTR => (SymAlg::Sm4, SymMode::Ctr),
        CKM_UKEY_SM4_GCM => (SymAlg::Sm4, SymMode::Gcm),
        _ => return None,
    })
}

/// Builds a cipher operation for `mech` with key `k` (attributes `a`).
pub(crate) fn cipher_op(
    mech: &Mech,
    kt: Option<CK_KEY_TYPE>,
    k: Arc<KeyMaterial>,
    dir: Direction,
) -> Result<CryptOp> {
    if let Some((alg, mode)) = sym_mech(mech.ty) {
        let alg = sym_alg(kt, alg)?;
        let key = secret(&k)?;
        let (iv, aad): (Vec<u8>, Vec<u8>) = match (&mech.param, mode) {
            (Param::None, SymMode::Ecb) => (Vec::new(), Vec::new()),
            (Param::Bytes(iv), SymMode::Cbc | SymMode::CbcPad) if iv.len() == 16 => {
                (iv.clone(), Vec::new())
            }
            (Param::Ctr { bits, block }, SymMode::Ctr) if *bits == 128 || *bits > 0 => {
                (block.to_vec(), Vec::new())
            }
            (Param::Gcm { iv, aad, tag_bits }, SymMode::Gcm)
                if (32..=128).contains(tag_bits) && tag_bits % 8 == 0 && !iv.is_empty() =>
            {
                return Ok(CryptOp::Gcm {
                    alg,
                    material: k.clone(),
                    iv: iv.clone(),
                    aad: aad.clone(),
                    tag_len: tag_bits / 8,
                    data: Vec::new(),
                });
            }
            _ => return Err(Error(CKR_MECHANISM_PARAM_INVALID)),
        };
        let c = match prepared(alg, &k) {
            Some(sk) => sk.cipher(mode, dir, &iv, &aad),
            None => SymCipher::new_with_aad(alg, mode, dir, key, &iv, &aad),
        }
        .map_err(|_| Error(CKR_MECHANISM_PARAM_INVALID))?;
        return Ok(CryptOp::Sym(c));
    }
    match mech.ty {
        CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_PAD | CKM_AES_KEY_WRAP_KWP => {
            sym_alg(kt, SymAlg::Aes)?;
            if mech.ty == CKM_AES_KEY_WRAP_PAD {
                return Err(Error(CKR_MECHANISM_INVALID));
            }
            Ok(CryptOp::KeyWrap {
                key: Zeroizing::new(secret(&k)?.to_vec()),
                pad: mech.ty != CKM_AES_KEY_WRAP,
                data: Vec::new(),
            })
        }
        CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP | CKM_RSA_X_509 | CKM_SM2_ENCRYPT => {
            let em = enc_mech(mech)?;
            Ok(CryptOp::Asym {
                key: k,
                mech: em,
                data: Vec::new(),
            })
        }
        _ => Err(Error(CKR_MECHANISM_INVALID)),
    }
}

fn enc_mech(mech: &Mech) -> Result<EncMech> {
    Ok(match (mech.ty, &mech.param) {
        (CKM_RSA_PKCS, _) => EncMech::RsaPkcs1,
        (CKM_RSA_X_509, _) => EncMech::RsaRaw,
        (CKM_SM2_ENCRYPT, _) => EncMech::Sm2,
        (CKM_RSA_PKCS_OAEP, Param::Oaep { hash, mgf, label }) => {
            let h = hash_of(*hash).ok_or(Error(CKR_MECHANISM_PARAM_INVALID))?;
            if mgf_hash(*mgf) != Some(h) {
                return Err(Error(CKR_MECHANISM_PARAM_INVALID));
            }
            EncMech::RsaOaep {
                hash: h,
                label: label.clone(),
            }
        }
        _ => return Err(Error(CKR_MECHANISM_PARAM_INVALID)),
    })
}

/// Runs a whole cipher operation over `data` (single-part helper, also used by wrap).
pub(crate) fn run_cipher(op: CryptOp, data: &[u8], dir: Direction) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(data.len() + 32));
    match op {
        CryptOp::Sym(mut c) => {
            c.update(data, &mut out).map_err(|e| data_err(e, dir))?;
            c.finalize(&mut out).map_err(|e| data_err(e, dir))?;
        }
        CryptOp::Gcm {
            alg,
            material,
            iv,
            aad,
            tag_len,
            ..
        } => {
            out = gcm(&GcmKey::of(alg, &material)?, &iv, &aad, tag_len, data, dir)?;
        }
        CryptOp::KeyWrap { key, pad, .. } => {
            let r = match (dir, pad) {
                (Direction::Encrypt, false) => {
                    token_hal::crypto::sym::aes_key_wrap(&key, data).map(Zeroizing::new)
                }
                (Direction::Encrypt, true) => {
                    token_hal::crypto::sym::aes_key_wrap_pad(&key, data).map(Zeroizing::new)
                }
                (Direction::Decrypt, false) => token_hal::crypto::sym::aes_key_unwrap(&key, data),
                (Direction::Decrypt, true) => {
                    token_hal::crypto::sym::aes_key_unwrap_pad(&key, data)
                }
            };
            out = r.map_err(|e| data_err(e, dir))?;
        }
        CryptOp::Asym { key, mech, .. } => {
            out = match (&*key, dir) {
                (KeyMaterial::Public(pk), Direction::Encrypt) => {
                    Zeroizing::new(pk.encrypt(&mech, data).map_err(|e| data_err(e, dir))?)
                }
                (KeyMaterial::Private(sk), Direction::Decrypt) => {
                    let d = if mech == EncMech::Sm2 {
                        sm2_ct(data)
                    } else {
                        data.to_vec()
                    };
                    sk.decrypt(&mech, &d).map_err(|e| data_err(e, dir))?
                }
                (KeyMaterial::Held(app, id, _), Direction::Decrypt) => {
                    let d = if mech == EncMech::Sm2 {
                        sm2_ct(data)
                    } else {
                        data.to_vec()
                    };
                    app.decrypt(&token_hal::KeyRef::Id(*id), &mech, &d)
                        .map_err(|e| data_err(e, dir))?
                }
                _ => return Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
            };
        }
    }
    Ok(out)
}

/// A GCM key as an operation holds it: its bytes, and the key object's prepared
/// schedule when it has one (SM4).
pub(crate) struct GcmKey<'a> {
    alg: SymAlg,
    key: &'a [u8],
    prepared: Option<&'a token_hal::crypto::sym::SymKey>,
}

impl<'a> GcmKey<'a> {
    /// Key bytes with no prepared schedule (the message functions' copy of the key).
    pub(crate) fn bytes(alg: SymAlg, key: &'a [u8]) -> Self {
        Self {
            alg,
            key,
            prepared: None,
        }
    }
    /// A secret key object's material.
    fn of(alg: SymAlg, material: &'a KeyMaterial) -> Result<Self> {
        Ok(Self {
            alg,
            key: secret(material)?,
            prepared: prepared(alg, material),
        })
    }
    /// Starts a GCM cipher (token-hal's GCM takes any nonce length).
    fn start(
        &self,
        dir: Direction,
        iv: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> token_hal::Result<SymCipher> {
        match self.prepared {
            Some(sk) => sk.gcm(dir, iv, aad, tag_len),
            None => SymCipher::new_gcm(self.alg, dir, self.key, iv, aad, tag_len),
        }
    }
}

/// GCM over all of `data` with a tag of `tag_len` bytes.
pub(crate) fn gcm(
    key: &GcmKey<'_>,
    iv: &[u8],
    aad: &[u8],
    tag_len: usize,
    data: &[u8],
    dir: Direction,
) -> Result<Zeroizing<Vec<u8>>> {
    match dir {
        Direction::Encrypt => key
            .start(dir, iv, aad, tag_len)
            .and_then(|c| c.run(data))
            .map_err(|_| Error(CKR_MECHANISM_PARAM_INVALID)),
        Direction::Decrypt => {
            if data.len() < tag_len {
                return Err(Error(CKR_ENCRYPTED_DATA_LEN_RANGE));
            }
            key.start(dir, iv, aad, tag_len)
                .and_then(|c| c.run(data))
                .map_err(|e| data_err(e, dir))
        }
    }
}

/// SM2 ciphertext accepted as 04‖C1‖C3‖C2 or as GM/T 0009 DER.
fn sm2_ct(data: &[u8]) -> Vec<u8> {
    if data.first() == Some(&0x30)
        && let Ok(raw) = token_hal::crypto::sm2::cipher_der_to_raw(data)
    {
        return raw;
    }
    data.to_vec()
}

pub(crate) fn data_err(e: token_hal::Error, dir: Direction) -> Error {
    match (e, dir) {
        (
            token_hal::Error::InvalidArgument(_) | token_hal::Error::InvalidData(_),
            Direction::Encrypt,
        ) => Error(CKR_DATA_LEN_RANGE),
        (
            token_hal::Error::InvalidArgument(_) | token_hal::Error::InvalidData(_),
            Direction::Decrypt,
        ) => Error(CKR_ENCRYPTED_DATA_LEN_RANGE),
        (token_hal::Error::DecryptFailed, _) => Error(CKR_ENCRYPTED_DATA_INVALID),
        (e, _) => Error::from(e),
    }
}

/// `C_EncryptInit` / `C_DecryptInit`.
pub(crate) fn crypt_init(
    h: CK_SESSION_HANDLE,
    mech: &Mech,
    kh: CK_OBJECT_HANDLE,
    dir: Direction,
) -> Result<()> {
    state::with_session(h, |m, s| {
        {
            let ops = s.ops()?;
            let busy = match dir {
                Direction::Encrypt => ops.encrypt.is_some(),
                Direction::Decrypt => ops.decrypt.is_some(),
            };
            if busy {
                return Err(Error(CKR_OPERATION_ACTIVE));
            }
        }
        let flag = if dir == Direction::Encrypt {
            CKF_ENCRYPT
        } else {
            CKF_DECRYPT
        };
        if !m.compat.allows(mech.ty)
            || crate::mechanism::row(mech.ty).is_none()
            || crate::api::general::vendor_skf_lacks(s, mech.ty, flag)
        {
            return Err(Error(CKR_MECHANISM_INVALID));
        }
        let usage = if dir == Direction::Encrypt {
            CKA_ENCRYPT
        } else {
            CKA_DECRYPT
        };
        let (o, kt) = key_checked(m, s, kh, usage, mech.ty)?;
        let k = key_material(s, &o)?;
        let op = cipher_op(mech, kt, k, dir)?;
        latch_role(s, &o, Role::Crypt)?;
        let mut ops = s.ops()?;
        ops.pending = None;
        match dir {
            Direction::Encrypt => ops.encrypt = Some(op),
            Direction::Decrypt => ops.decrypt = Some(op),
        }
        Ok(())
    })
}

fn take_op(ops: &mut crate::session::Ops, dir: Direction) -> Result<CryptOp> {
    match dir {
        Direction::Encrypt => ops.encrypt.take(),
        Direction::Decrypt => ops.decrypt.take(),
    }
    .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))
}

fn kind(dir: Direction) -> OpKind {
    match dir {
        Direction::Encrypt => OpKind::Encrypt,
        Direction::Decrypt => OpKind::Decrypt,
    }
}

/// `C_Encrypt` / `C_Decrypt` (single part). `direct` is the caller's buffer (of `cap`
/// bytes) when it does not overlap `data`.
pub(crate) fn crypt(
    h: CK_SESSION_HANDLE,
    data: &[u8],
    cap: Option<usize>,
    direct: Option<&mut [u8]>,
    dir: Direction,
) -> Result<Produced> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let has = match dir {
            Direction::Encrypt => ops.encrypt.is_some(),
            Direction::Decrypt => ops.decrypt.is_some(),
        };
        ops.started(has, kind(dir))?;
        if let Some(r) = crypt_direct(&mut ops, data, cap, direct, dir) {
            return r;
        }
        let r = produce(&mut ops, kind(dir), cap, |ops| {
            let op = take_op(ops, dir)?;
            run_cipher(op, data, dir)
        });
        match &r {
            Err(_) => {
                ops.pending = None;
                let _ = take_op(&mut ops, dir);
            }
            Ok(Produced::Data(_) | Produced::Written(_)) => {
                let _ = take_op(&mut ops, dir);
            }
            Ok(Produced::Len(_)) => {}
        }
        r
    })
}

/// The single-part fast path of a symmetric cipher whose output length is known before
/// it runs: a size query or a short buffer gets the length and leaves the operation
/// active (nothing is computed); a large enough buffer gets the output written into it
/// directly. `None`: not applicable, the caller computes and keeps the output.
fn crypt_direct(
    ops: &mut crate::session::Ops,
    data: &[u8],
    cap: Option<usize>,
    direct: Option<&mut [u8]>,
    dir: Direction,
) -> Option<Result<Produced>> {
    if ops.pending.is_some() {
        return None;
    }
    let slot = match dir {
        Direction::Encrypt => &mut ops.encrypt,
        Direction::Decrypt => &mut ops.decrypt,
    };
    let n = match slot {
        Some(CryptOp::Sym(c)) => c.single_part_len(data.len())?,
        // GCM encryption: ciphertext and tag. (Decryption keeps the copying path, which
        // checks the tag before any plaintext reaches the caller.)
        Some(CryptOp::Gcm {
            tag_len, data: d, ..
        }) if dir == Direction::Encrypt && d.is_empty() => data.len().checked_add(*tag_len)?,
        _ => return None,
    };
    match (cap, direct) {
        (Some(c), Some(buf)) if c >= n => {
            let r = match slot.take() {
                Some(CryptOp::Sym(c)) => c.finish_into(data, buf).map_err(|e| data_err(e, dir)),
                Some(CryptOp::Gcm {
                    alg,
                    material,
                    iv,
                    aad,
                    tag_len,
                    ..
                }) => GcmKey::of(alg, &material).and_then(|k| {
                    k.start(Direction::Encrypt, &iv, &aad, tag_len)
                        .and_then(|c| c.finish_into(data, buf))
                        // As `gcm`: a nonce or tag the cipher refuses is a parameter error.
                        .map_err(|_| Error(CKR_MECHANISM_PARAM_INVALID))
                }),
                _ => return None,
            };
            Some(r.map(Produced::Written))
        }
        // An overlapping buffer that is large enough: the copying path.
        (Some(c), None) if c >= n => None,
        _ => Some(Ok(Produced::Len(n))),
    }
}

/// `C_EncryptUpdate` / `C_DecryptUpdate`.
pub(crate) fn crypt_update(
    h: CK_SESSION_HANDLE,
    data: &[u8],
    cap: Option<usize>,
    dir: Direction,
) -> Result<Produced> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let r = produce(&mut ops, kind(dir), cap, |ops| {
            let op = match dir {
                Direction::Encrypt => ops.encrypt.as_mut(),
                Direction::Decrypt => ops.decrypt.as_mut(),
            }
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
            let mut out = Zeroizing::new(Vec::new());
            match op {
                CryptOp::Sym(c) => c.update(data, &mut out).map_err(|e| data_err(e, dir))?,
                CryptOp::Asym { data: d, .. }
                | CryptOp::KeyWrap { data: d, .. }
                | CryptOp::Gcm { data: d, .. } => d.extend_from_slice(data),
            }
            Ok(out)
        });
        if r.is_err() {
            ops.pending = None;
            let _ = take_op(&mut ops, dir);
        }
        r
    })
}

/// `C_EncryptFinal` / `C_DecryptFinal`.
pub(crate) fn crypt_final(
    h: CK_SESSION_HANDLE,
    cap: Option<usize>,
    dir: Direction,
) -> Result<Produced> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let has = match dir {
            Direction::Encrypt => ops.encrypt.is_some(),
            Direction::Decrypt => ops.decrypt.is_some(),
        };
        ops.started(has, kind(dir))?;
        let r = produce(&mut ops, kind(dir), cap, |ops| {
            let op = take_op(ops, dir)?;
            match op {
                CryptOp::Sym(c) => {
                    let mut out = Zeroizing::new(Vec::new());
                    c.finalize(&mut out).map_err(|e| data_err(e, dir))?;
                    Ok(out)
                }
                CryptOp::Asym { ref data, .. }
                | CryptOp::KeyWrap { ref data, .. }
                | CryptOp::Gcm { ref data, .. } => {
                    let d = data.clone();
                    run_cipher(op, &d, dir)
                }
            }
        });
        if !matches!(r, Ok(Produced::Len(_))) {
            ops.pending = None;
        }
        r
    })
}

/// `C_DigestInit`.
pub(crate) fn digest_init(h: CK_SESSION_HANDLE, mech: &Mech) -> Result<()> {
    state::with_session(h, |m, s| {
        let mut ops = s.ops()?;
        if ops.digest.is_some() {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        let alg = match mech.ty {
            CKM_MD5 => Some(HashAlg::Md5),
            CKM_SHA_1 | CKM_SHA224 | CKM_SHA256 | CKM_SHA384 | CKM_SHA512 | CKM_SM3 => {
                hash_of(mech.ty)
            }
            _ => None,
        }
        .filter(|_| m.compat.allows(mech.ty))
        .ok_or(Error(CKR_MECHANISM_INVALID))?;
        ops.digest = Some(Hasher::new(alg));
        Ok(())
    })
}

/// `C_Digest`.
pub(crate) fn digest(h: CK_SESSION_HANDLE, data: &[u8], cap: Option<usize>) -> Result<Produced> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        ops.started(ops.digest.is_some(), OpKind::Digest)?;
        let r = produce(&mut ops, OpKind::Digest, cap, |ops| {
            let mut hs = ops
                .digest
                .take()
                .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
            hs.update(data);
            Ok(Zeroizing::new(hs.finish()))
        });
        if !matches!(r, Ok(Produced::Len(_))) {
            ops.digest = None;
        }
        r
    })
}

/// `C_DigestUpdate`.
pub(crate) fn digest_update(h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        ops.digest
            .as_mut()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?
            .update(data);
        Ok(())
    })
}

/// `C_DigestKey`: digests a secret key's value (never of a sensitive... the value stays
/// inside; only its digest leaves, as the spec allows).
pub(crate) fn digest_key(h: CK_SESSION_HANDLE, kh: CK_OBJECT_HANDLE) -> Result<()> {
    state::with_session(h, |m, s| {
        let o = visible(m, s, kh, CKR_KEY_HANDLE_INVALID)?;
        if o.attrs()?.class() != Some(CKO_SECRET_KEY) {
            return Err(Error(CKR_KEY_INDIGESTIBLE));
        }
        let k = key_material(s, &o)?;
        let v = secret(&k)?;
        let mut ops = s.ops()?;
        match ops.digest.as_mut() {
            Some(d) => {
                d.update(v);
                Ok(())
            }
            None => Err(Error(CKR_OPERATION_NOT_INITIALIZED)),
        }
    })
}

/// `C_DigestFinal`.
pub(crate) fn digest_final(h: CK_SESSION_HANDLE, cap: Option<usize>) -> Result<Produced> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        ops.started(ops.digest.is_some(), OpKind::Digest)?;
        let r = produce(&mut ops, OpKind::Digest, cap, |ops| {
            let hs = ops
                .digest
                .take()
                .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
            Ok(Zeroizing::new(hs.finish()))
        });
        if !matches!(r, Ok(Produced::Len(_))) {
            ops.digest = None;
        }
        r
    })
}

/// CKM_SM3_SM2 with the default ID, made once: the common case needs no allocation.
static SM2_SM3_DEFAULT_ID: std::sync::LazyLock<SignMech> =
    std::sync::LazyLock::new(|| SignMech::Sm2Sm3 {
        id: token_hal::crypto::sm2::DEFAULT_ID.to_vec(),
    });

fn sign_mech(mech: &Mech, alg: Option<KeyAlg>) -> Result<Cow<'static, SignMech>> {
    let ec = matches!(alg, Some(KeyAlg::EcP256 | KeyAlg::EcP384 | KeyAlg::EcP521));
    let ed = matches!(alg, Some(KeyAlg::Ed25519 | KeyAlg::Ed448));
    let rsa = matches!(alg, Some(KeyAlg::Rsa(_)));
    let sm2 = alg == Some(KeyAlg::Sm2);
    let bad = || Error(CKR_KEY_TYPE_INCONSISTENT);
    let m = match mech.ty {
        CKM_ECDSA if ec => SignMech::EcdsaPrehashed,
        CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512
            if ec =>
        {
            SignMech::Ecdsa(hash_of(mech.ty).ok_or(bad())?)
        }
        CKM_RSA_PKCS if rsa => SignMech::RsaPkcs1Raw,
        CKM_RSA_X_509 if rsa => SignMech::RsaRaw,
        CKM_SHA1_RSA_PKCS | CKM_SHA224_RSA_PKCS | CKM_SHA256_RSA_PKCS | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS
            if rsa =>
        {
            SignMech::RsaPkcs1(hash_of(mech.ty).ok_or(bad())?)
        }
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS
            if rsa =>
        {
            let Param::Pss {
                hash,
                mgf,
                salt_len,
            } = &mech.param
            else {
                return Err(Error(CKR_MECHANISM_PARAM_INVALID));
            };
            let h = hash_of(*hash).ok_or(Error(CKR_MECHANISM_PARAM_INVALID))?;
            if mgf_hash(*mgf) != Some(h) {
                return Err(Error(CKR_MECHANISM_PARAM_INVALID));
            }
            if mech.ty == CKM_RSA_PKCS_PSS {
                SignMech::RsaPssPrehashed {
                    hash: h,
                    salt_len: *salt_len,
                }
            } else {
                if hash_of(mech.ty) != Some(h) {
                    return Err(Error(CKR_MECHANISM_PARAM_INVALID));
                }
                SignMech::RsaPss {
                    hash: h,
                    salt_len: *salt_len,
                }
            }
        }
        CKM_EDDSA if ed => match &mech.param {
            Param::None => SignMech::EdDsa {
                ph: false,
                context: None,
            },
            Param::Eddsa { ph, context } => SignMech::EdDsa {
                ph: *ph,
                context: context.clone().filter(|c| !c.is_empty() || *ph),
            },
            _ => return Err(Error(CKR_MECHANISM_PARAM_INVALID)),
        },
        CKM_SM2 if sm2 => SignMech::Sm2Prehashed,
        CKM_SM3_SM2 if sm2 => {
            return Ok(match mech.bytes() {
                id if id.is_empty() || id == token_hal::crypto::sm2::DEFAULT_ID => {
                    Cow::Borrowed(&*SM2_SM3_DEFAULT_ID)
                }
                id => Cow::Owned(SignMech::Sm2Sm3 { id: id.to_vec() }),
            });
        }
        CKM_ECDSA
        | CKM_ECDSA_SHA1
        | CKM_ECDSA_SHA224
        | CKM_ECDSA_SHA256
        | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512
        | CKM_RSA_PKCS
        | CKM_RSA_X_509
        | CKM_SHA1_RSA_PKCS
        | CKM_SHA224_RSA_PKCS
        | CKM_SHA256_RSA_PKCS
        | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS
        | CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS
        | CKM_SM2
        | CKM_SM3_SM2
        | CKM_EDDSA => {
            return Err(bad());
        }
        _ => return Err(Error(CKR_MECHANISM_INVALID)),
    };
    Ok(Cow::Owned(m))
}

fn key_alg(k: &KeyMaterial) -> Option<KeyAlg> {
    match k {
        KeyMaterial::Private(p) => Some(p.alg()),
        KeyMaterial::Held(_, _, alg) => Some(*alg),
        KeyMaterial::Public(p) => Some(p.alg()),
        KeyMaterial::Secret(..) => None,
    }
}

/// Builds a sign/verify operation.
pub(crate) fn sign_op(
    mech: &Mech,
    kt: Option<CK_KEY_TYPE>,
    k: Arc<KeyMaterial>,
    verify: bool,
) -> Result<SignOp> {
    if let Some(h) = hash_of(mech.ty).filter(|_| {
        matches!(
            mech.ty,
            CKM_SHA_1_HMAC
                | CKM_SHA224_HMAC
                | CKM_SHA256_HMAC
                | CKM_SHA384_HMAC
                | CKM_SHA512_HMAC
                | CKM_UKEY_SM3_HMAC
        )
    }) {
        if !matches!(
            kt,
            Some(
                CKK_GENERIC_SECRET
                    | CKK_SHA_1_HMAC
                    | CKK_SHA224_HMAC
                    | CKK_SHA256_HMAC
                    | CKK_SHA384_HMAC
                    | CKK_SHA512_HMAC
                    | CKK_AES
                    | CKK_SM4
            )
        ) {
            return Err(Error(CKR_KEY_TYPE_INCONSISTENT));
        }
        let key = secret(&k)?;
        return Ok(SignOp::Hmac {
            h: Hasher::new_hmac(h, key),
            len: h.output_len(),
        });
    }
    if matches!(mech.ty, CKM_AES_CMAC | CKM_AES_CMAC_GENERAL) {
        sym_alg(kt, SymAlg::Aes)?;
        let len = match (&mech.param, mech.ty) {
            (Param::Ulong(l), CKM_AES_CMAC_GENERAL) if (1..=16).contains(l) => *l as usize,
            (_, CKM_AES_CMAC) => 16,
            _ => return Err(Error(CKR_MECHANISM_PARAM_INVALID)),
        };
        return Ok(SignOp::Cmac {
            alg: SymAlg::Aes,
            key: Zeroizing::new(secret(&k)?.to_vec()),
            data: Vec::new(),
            len,
        });
    }
    if matches!(mech.ty, CKM_SM4_MAC | CKM_SM4_MAC_GENERAL) {
        sym_alg(kt, SymAlg::Sm4)?;
        let len = match (&mech.param, mech.ty) {
            (Param::Ulong(l), CKM_SM4_MAC_GENERAL) if (1..=16).contains(l) => *l as usize,
            (_, CKM_SM4_MAC) => 16,
            _ => return Err(Error(CKR_MECHANISM_PARAM_INVALID)),
        };
        return Ok(SignOp::CbcMac {
            alg: SymAlg::Sm4,
            key: Zeroizing::new(secret(&k)?.to_vec()),
            data: Vec::new(),
            len,
        });
    }
    match (&*k, verify) {
        (KeyMaterial::Private(_) | KeyMaterial::Held(..), false)
        | (KeyMaterial::Public(_), true) => {}
        _ => return Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
    }
    let mech = sign_mech(mech, key_alg(&k))?;
    Ok(SignOp::Asym {
        key: k,
        mech,
        data: Vec::new(),
        updated: false,
    })
}

/// `C_SignInit` / `C_VerifyInit`.
///
/// An init with the key and mechanism of the session's last one that passed (of the same
/// direction) takes the key from that one's memo ([`crate::session::KeyCheck`]) under the
/// one lock of the operation state: no object-table lookup, attribute read or key-cache
/// lock. The memo answers only while no object has changed since, the key material it
/// names weakly is still the object's (logout and destroy drop it), and, for a
/// `CKA_PRIVATE` key, the user is still logged in; the mechanism's parameters are checked
/// afresh every time.
pub(crate) fn sign_init(
    h: CK_SESSION_HANDLE,
    mech: &Mech,
    kh: CK_OBJECT_HANDLE,
    verify: bool,
) -> Result<()> {
    let usage = if verify { CKA_VERIFY } else { CKA_SIGN };
    let of = crate::session::KeyUse {
        kh,
        usage,
        mech: mech.ty,
    };
    state::with_session(h, |m, s| {
        let now = object::changes();
        {
            let mut ops = s.ops()?;
            if (verify && ops.verify.is_some()) || (!verify && ops.sign.is_some()) {
                return Err(Error(CKR_OPERATION_ACTIVE));
            }
            let memo = if verify {
                &ops.verify_memo
            } else {
                &ops.sign_memo
            };
            if let Some(c) = memo
                && let Some(k) = c.answers(of, now, s)
            {
                let op = sign_op(mech, c.key_type, k, verify)?;
                ops.pending = None;
                if verify {
                    ops.verify = Some(op);
                } else {
                    ops.sign = Some(op);
                }
                return Ok(());
            }
        }
        let flag = if verify { CKF_VERIFY } else { CKF_SIGN };
        if !m.compat.allows(mech.ty)
            || crate::mechanism::row(mech.ty).is_none()
            || crate::api::general::vendor_skf_lacks(s, mech.ty, flag)
        {
            return Err(Error(CKR_MECHANISM_INVALID));
        }
        let (o, kt, private) = key_checked_private(m, s, kh, usage, mech.ty)?;
        let k = key_material(s, &o)?;
        let memo = crate::session::KeyCheck {
            of,
            changes: now,
            private,
            key_type: kt,
            held: Arc::downgrade(&k),
        };
        let op = sign_op(mech, kt, k, verify)?;
        let mut ops = s.ops()?;
        ops.pending = None;
        if verify {
            ops.verify = Some(op);
            ops.verify_memo = Some(memo);
        } else {
            ops.sign = Some(op);
            ops.sign_memo = Some(memo);
        }
        Ok(())
    })
}

pub(crate) fn op_update(op: &mut SignOp, data: &[u8]) -> Result<()> {
    match op {
        SignOp::Hmac { h, .. } => h.update(data),
        SignOp::CbcMac { data: d, .. } | SignOp::Cmac { data: d, .. } => d.extend_from_slice(data),
        SignOp::Asym {
            data: d, updated, ..
        } => {
            *updated = true;
            d.extend_from_slice(data);
        }
    }
    Ok(())
}

fn cbc_mac(alg: SymAlg, key: &[u8], data: &[u8], len: usize) -> Result<Vec<u8>> {
    let mut padded = data.to_vec();
    while padded.is_empty() || !padded.len().is_multiple_of(16) {
        padded.push(0);
    }
    let mac = token_hal::crypto::sym::cbc_mac(alg, key, &[0u8; 16], &padded, false)?;
    Ok(mac[..len].to_vec())
}

pub(crate) fn op_sign(op: SignOp) -> Result<Vec<u8>> {
    match op {
        SignOp::Hmac { h, len } => Ok(h.finish()[..len].to_vec()),
        SignOp::CbcMac {
            alg,
            key,
            data,
            len,
        } => cbc_mac(alg, &key, &data, len),
        SignOp::Cmac {
            alg,
            key,
            data,
            len,
        } => Ok(cmac(alg, &key, &data)?[..len].to_vec()),
        SignOp::Asym {
            key, mech, data, ..
        } => asym_sign(&key, &mech, &data),
    }
}

/// `C_Sign`'s single part: an asymmetric operation with nothing fed by updates signs the
/// caller's bytes where they are; the others take them as their one update.
pub(crate) fn op_sign_single(mut op: SignOp, data: &[u8]) -> Result<Vec<u8>> {
    if let SignOp::Asym {
        key, mech, data: d, ..
    } = &op
        && d.is_empty()
    {
        return asym_sign(key, mech, data);
    }
    op_update(&mut op, data)?;
    op_sign(op)
}

fn asym_sign(key: &KeyMaterial, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
    let data_err = |e: token_hal::Error| match e {
        token_hal::Error::InvalidArgument(_) | token_hal::Error::InvalidData(_) => {
            Error(CKR_DATA_LEN_RANGE)
        }
        e => Error::from(e),
    };
    match key {
        KeyMaterial::Private(sk) => sk.sign(mech, data).map_err(data_err),
        KeyMaterial::Held(app, id, _) => app
            .sign(&token_hal::KeyRef::Id(*id), mech, data)
            .map_err(data_err),
        _ => Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

pub(crate) fn op_verify(op: SignOp, sig: &[u8]) -> Result<()> {
    use token_hal::crypto::hash::HashAlg as _H;
    let _ = std::marker::PhantomData::<_H>;
    match op {
        SignOp::Hmac { h, len } => {
            let mac = h.finish();
            if sig.len() != len {
                return Err(Error(CKR_SIGNATURE_LEN_RANGE));
            }
            if ct_eq(&mac[..len], sig) {
                Ok(())
            } else {
                Err(Error(CKR_SIGNATURE_INVALID))
            }
        }
        SignOp::Cmac {
            alg,
            key,
            data,
            len,
        } => {
            if sig.len() != len {
                return Err(Error(CKR_SIGNATURE_LEN_RANGE));
            }
            let mac = cmac(alg, &key, &data)?;
            if ct_eq(&mac[..len], sig) {
                Ok(())
            } else {
                Err(Error(CKR_SIGNATURE_INVALID))
            }
        }
        SignOp::CbcMac {
            alg,
            key,
            data,
            len,
        } => {
            if sig.len() != len {
                return Err(Error(CKR_SIGNATURE_LEN_RANGE));
            }
            let mac = cbc_mac(alg, &key, &data, len)?;
            if ct_eq(&mac, sig) {
                Ok(())
            } else {
                Err(Error(CKR_SIGNATURE_INVALID))
            }
        }
        SignOp::Asym {
            key, mech, data, ..
        } => match &*key {
            KeyMaterial::Public(pk) => {
                let fl = pk.alg().field_len();
                if let Some(fl) = fl
                    && sig.len() != 2 * fl
                {
                    return Err(Error(CKR_SIGNATURE_LEN_RANGE));
                }
                pk.verify(&mech, &data, sig).map_err(|e| match e {
                    token_hal::Error::SignatureInvalid => Error(CKR_SIGNATURE_INVALID),
                    token_hal::Error::InvalidData(_) | token_hal::Error::InvalidArgument(_) => {
                        Error(CKR_SIGNATURE_INVALID)
                    }
                    e => Error::from(e),
                })
            }
            _ => Err(Error(CKR_KEY_TYPE_INCONSISTENT)),
        },
    }
}

/// CMAC (NIST SP 800-38B) from token-hal.
fn cmac(alg: SymAlg, key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    use token_hal::crypto::mac::{Mac, MacAlg};
    let mut m = Mac::new(MacAlg::Cmac(alg), key).map_err(|_| Error(CKR_KEY_SIZE_RANGE))?;
    m.update(data)?;
    Ok(m.finish()?)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `C_Sign`: the caller's bytes signed as the operation's only part.
pub(crate) fn sign(h: CK_SESSION_HANDLE, data: &[u8], cap: Option<usize>) -> Result<Produced> {
    sign_produce(h, Some(data), cap)
}

/// `C_Sign` (`Some(data)`, refused after `C_SignUpdate`) and `C_SignFinal` (`None`) under
/// the two-call length protocol: a size query keeps the operation; anything else ends it.
fn sign_produce(
    h: CK_SESSION_HANDLE,
    single: Option<&[u8]>,
    cap: Option<usize>,
) -> Result<Produced> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        ops.started(ops.sign.is_some(), OpKind::Sign)?;
        if single.is_some()
            && let Some(SignOp::Asym { updated: true, .. }) = &ops.sign
        {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        let r = produce(&mut ops, OpKind::Sign, cap, |ops| {
            let op = ops
                .sign
                .take()
                .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
            Ok(Zeroizing::new(match single {
                Some(data) => op_sign_single(op, data)?,
                None => op_sign(op)?,
            }))
        });
        if !matches!(r, Ok(Produced::Len(_))) {
            ops.sign = None;
            if r.is_err() {
                ops.pending = None;
            }
        }
        r
    })
}

/// `C_SignUpdate` / `C_VerifyUpdate`.
pub(crate) fn sign_update(h: CK_SESSION_HANDLE, data: &[u8], verify: bool) -> Result<()> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let slot = if verify {
            &mut ops.verify
        } else {
            &mut ops.sign
        };
        let op = slot.as_mut().ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        let r = op_update(op, data);
        if r.is_err() {
            *slot = None;
        }
        r
    })
}

/// `C_SignFinal`.
pub(crate) fn sign_final(h: CK_SESSION_HANDLE, cap: Option<usize>) -> Result<Produced> {
    sign_produce(h, None, cap)
}

/// `C_Verify` (single part).
pub(crate) fn verify(h: CK_SESSION_HANDLE, data: &[u8], sig: &[u8]) -> Result<()> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        if let Some(SignOp::Asym { updated: true, .. }) = &ops.verify {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        let mut op = ops
            .verify
            .take()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        drop(ops);
        op_update(&mut op, data)?;
        op_verify(op, sig)
    })
}

/// `C_VerifyFinal`.
pub(crate) fn verify_final(h: CK_SESSION_HANDLE, sig: &[u8]) -> Result<()> {
    state::with_session(h, |_, s| {
        let op = s
            .ops()?
            .verify
            .take()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        op_verify(op, sig)
    })
}

#[allow(unused_imports)]
use objects as _objects;
