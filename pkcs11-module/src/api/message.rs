//! Message-based functions (PKCS#11 3.0 §5.13–5.17): AEAD encryption and decryption of
//! whole messages or messages in parts (AES-GCM, SM4-GCM), and message-based signing
//! and MACing, where each message is one whole signature under the mechanism given at
//! init.

use cryptoki_sys::*;
use token_hal::crypto::sym::{Direction, SymAlg, SymCipher};
use zeroize::Zeroizing;

use crate::api::crypto::{self, data_err, key_for, latch_role};
use crate::api::objects::key_material;
use crate::error::{Error, Result};
use crate::mechanism::Mech;
use crate::mechanism::vendor::*;
use crate::object::Role;
use crate::session::{MsgOp, MsgPart, MsgSignOp, Ops, Produced, Session, SignOp};
use crate::state;

/// The fields of a caller's `CK_GCM_MESSAGE_PARAMS` (the pointers stay at the C boundary).
#[derive(Clone, Debug)]
pub(crate) struct GcmMsgParam {
    /// `pIv` as given (the fixed part when a generator is named).
    pub iv: Vec<u8>,
    pub fixed_bits: CK_ULONG,
    pub generator: CK_GENERATOR_FUNCTION,
    pub tag_bits: CK_ULONG,
}

impl GcmMsgParam {
    /// The tag length in bytes: 4–16 whole bytes (token-hal's GCM range).
    fn tag_len(&self) -> Result<usize> {
        let b = usize::try_from(self.tag_bits).map_err(|_| Error(CKR_MECHANISM_PARAM_INVALID))?;
        if !(32..=128).contains(&b) || !b.is_multiple_of(8) || self.iv.is_empty() {
            return Err(Error(CKR_MECHANISM_PARAM_INVALID));
        }
        Ok(b / 8)
    }
}

/// The outcome of a `C_*MessageNext` call.
pub(crate) enum MsgNext {
    /// Only the output length is reported (a size query or a short buffer); nothing was
    /// processed and the message goes on.
    Len(usize),
    /// The part was processed: its output, and on the last encryption part the tag.
    Done {
        out: Zeroizing<Vec<u8>>,
        tag: Vec<u8>,
    },
}

fn slot(ops: &mut Ops, dir: Direction) -> &mut Option<MsgOp> {
    match dir {
        Direction::Encrypt => &mut ops.msg_enc,
        Direction::Decrypt => &mut ops.msg_dec,
    }
}

/// `C_MessageEncryptInit` / `C_MessageDecryptInit` (AES-GCM, SM4-GCM).
pub(crate) fn msg_init(
    h: CK_SESSION_HANDLE,
    mech: &Mech,
    kh: CK_OBJECT_HANDLE,
    dir: Direction,
) -> Result<()> {
    state::with_session(h, |m, s| {
        if slot(&mut *s.ops()?, dir).is_some() {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        let alg = match mech.ty {
            CKM_AES_GCM => SymAlg::Aes,
            CKM_UKEY_SM4_GCM => SymAlg::Sm4,
            _ => return Err(Error(CKR_MECHANISM_INVALID)),
        };
        if !m.compat.allows(mech.ty) {
            return Err(Error(CKR_MECHANISM_INVALID));
        }
        let usage = if dir == Direction::Encrypt {
            CKA_ENCRYPT
        } else {
            CKA_DECRYPT
        };
        let (o, a) = key_for(m, s, kh, usage, mech.ty)?;
        crypto::sym_alg(crate::object::AttrsExt::key_type(&a), alg)?;
        let k = key_material(s, &o)?;
        let key = Zeroizing::new(crypto::secret(&k)?.to_vec());
        if !alg.key_len_ok(key.len()) {
            return Err(Error(CKR_KEY_SIZE_RANGE));
        }
        latch_role(s, &o, Role::Crypt)?;
        let mut ops = s.ops()?;
        let sl = slot(&mut ops, dir);
        if sl.is_some() {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        *sl = Some(MsgOp {
            alg,
            key,
            counter: 0,
            part: None,
        });
        Ok(())
    })
}

/// `C_MessageEncryptFinal` / `C_MessageDecryptFinal`: ends the context, and with it any
/// message still in progress.
pub(crate) fn msg_final(h: CK_SESSION_HANDLE, dir: Direction) -> Result<()> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        slot(&mut ops, dir)
            .take()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        Ok(())
    })
}

/// The nonce of an encrypted message: the caller's (`CKG_NO_GENERATE`), or the caller's
/// first `ulIvFixedBits` bits followed by generated bits. `CKG_GENERATE_COUNTER` puts the
/// context's message counter (from 0, big-endian) in the low-order bits;
/// `CKG_GENERATE` and `CKG_GENERATE_RANDOM` fill the free bits from the RNG.
fn message_iv(p: &GcmMsgParam, op: &mut MsgOp) -> Result<Option<Vec<u8>>> {
    let bad = || Error(CKR_MECHANISM_PARAM_INVALID);
    let counter = match p.generator {
        CKG_NO_GENERATE => return Ok(None),
        CKG_GENERATE_COUNTER => true,
        CKG_GENERATE | CKG_GENERATE_RANDOM => false,
        _ => return Err(bad()),
    };
    let len = p.iv.len();
    let total = len.checked_mul(8).ok_or_else(bad)?;
    let fixed = usize::try_from(p.fixed_bits).map_err(|_| bad())?;
    if fixed >= total {
        return Err(bad());
    }
    let free = total - fixed;
    let mut fresh = Zeroizing::new(vec![0u8; len]);
    if counter {
        let n = op.counter;
        if free < 64 && n >> free != 0 {
            // The counter space is used up: a further nonce would repeat one.
            return Err(bad());
        }
        for (i, b) in fresh.iter_mut().rev().take(8).enumerate() {
            *b = (n >> (8 * i)) as u8;
        }
        op.counter = n.checked_add(1).ok_or_else(bad)?;
    } else {
        token_hal::crypto::rng::fill(&mut fresh)?;
    }
    let mut iv = p.iv.clone();
    let (whole, rem) = (fixed / 8, fixed % 8);
    for (i, b) in iv.iter_mut().enumerate() {
        if i < whole {
            continue;
        }
        let keep: u8 = if i == whole && rem > 0 {
            0xFF << (8 - rem)
        } else {
            0
        };
        *b = (*b & keep) | (fresh[i] & !keep);
    }
    Ok(Some(iv))
}

/// One sealed message.
pub(crate) struct Sealed {
    pub ct: Zeroizing<Vec<u8>>,
    /// The generated nonce, to be written back to `pIv`.
    pub iv: Option<Vec<u8>>,
    pub tag: Vec<u8>,
}

/// What a single-call message (`C_EncryptMessage` / `C_DecryptMessage`) needs from the
/// active operation: its algorithm, its key, and for encryption with a generator the
/// nonce made for this message. None: `cap` (the output capacity, None for a size query)
/// cannot take `len` bytes; nothing was done, and no nonce was used up.
type Single = (SymAlg, Zeroizing<Vec<u8>>, Option<Vec<u8>>);

/// The message operation of `dir`, active and with no message in parts.
fn idle(ops: &mut Ops, dir: Direction) -> Result<&mut MsgOp> {
    let op = slot(ops, dir)
        .as_mut()
        .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
    if op.part.is_some() {
        return Err(Error(CKR_OPERATION_ACTIVE));
    }
    Ok(op)
}

fn single_message(
    s: &Session,
    dir: Direction,
    p: &GcmMsgParam,
    len: usize,
    cap: Option<usize>,
) -> Result<Option<Single>> {
    let mut ops = s.ops()?;
    let op = idle(&mut ops, dir)?;
    if cap.is_none_or(|c| c < len) {
        return Ok(None);
    }
    let iv = match dir {
        Direction::Encrypt => message_iv(p, op)?,
        Direction::Decrypt => None,
    };
    Ok(Some((op.alg, op.key.clone(), iv)))
}

/// `C_EncryptMessage`: one GCM message. None: `cap` (the output capacity, None for a
/// size query) cannot take the ciphertext, which is as long as `data`; nothing was done.
pub(crate) fn encrypt_message(
    h: CK_SESSION_HANDLE,
    p: &GcmMsgParam,
    aad: &[u8],
    data: &[u8],
    cap: Option<usize>,
) -> Result<Option<Sealed>> {
    state::with_session(h, |_, s| {
        let tag_len = p.tag_len()?;
        let Some((alg, key, iv)) = single_message(s, Direction::Encrypt, p, data.len(), cap)?
        else {
            return Ok(None);
        };
        let nonce = iv.as_deref().unwrap_or(&p.iv);
        let ct = crypto::gcm(
            &crypto::GcmKey::bytes(alg, &key),
            nonce,
            aad,
            tag_len,
            data,
            Direction::Encrypt,
        )?;
        let split = ct.len() - tag_len;
        Ok(Some(Sealed {
            ct: Zeroizing::new(ct[..split].to_vec()),
            iv,
            tag: ct[split..].to_vec(),
        }))
    })
}

/// `C_DecryptMessage`: one GCM message; the tag comes from the parameter. A generator in
/// the parameter is ignored: `pIv` is the nonce the message was sealed with. None: `cap`
/// cannot take the plaintext, as long as `data`; nothing was done.
pub(crate) fn decrypt_message(
    h: CK_SESSION_HANDLE,
    p: &GcmMsgParam,
    tag: &[u8],
    aad: &[u8],
    data: &[u8],
    cap: Option<usize>,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    state::with_session(h, |_, s| {
        let tag_len = p.tag_len()?;
        if tag.len() != tag_len {
            return Err(Error(CKR_MECHANISM_PARAM_INVALID));
        }
        let Some((alg, key, _)) = single_message(s, Direction::Decrypt, p, data.len(), cap)? else {
            return Ok(None);
        };
        let mut input = Zeroizing::new(Vec::with_capacity(data.len() + tag_len));
        input.extend_from_slice(data);
        input.extend_from_slice(tag);
        crypto::gcm(
            &crypto::GcmKey::bytes(alg, &key),
            &p.iv,
            aad,
            tag_len,
            &input,
            Direction::Decrypt,
        )
        .map(Some)
    })
}

/// `C_EncryptMessageBegin` / `C_DecryptMessageBegin`: starts a message with its nonce
/// and associated data. Returns the generated nonce (encryption with a generator).
pub(crate) fn message_begin(
    h: CK_SESSION_HANDLE,
    p: &GcmMsgParam,
    aad: &[u8],
    dir: Direction,
) -> Result<Option<Vec<u8>>> {
    state::with_session(h, |_, s| {
        let tag_len = p.tag_len()?;
        let mut ops = s.ops()?;
        let op = idle(&mut ops, dir)?;
        let gen_iv = match dir {
            Direction::Encrypt => message_iv(p, op)?,
            Direction::Decrypt => None,
        };
        let nonce = gen_iv.as_deref().unwrap_or(&p.iv);
        let cipher = SymCipher::new_gcm(op.alg, dir, &op.key, nonce, aad, tag_len)
            .map_err(|_| Error(CKR_MECHANISM_PARAM_INVALID))?;
        op.part = Some(MsgPart {
            cipher,
            tag_len,
            len: 0,
        });
        Ok(gen_iv)
    })
}

/// Ends the message in progress, if any (after an error in a `Next` call).
pub(crate) fn end_message(h: CK_SESSION_HANDLE, dir: Direction) {
    if let Ok(m) = state::module()
        && let Ok(s) = m.session(h)
        && let Ok(mut ops) = s.ops()
        && let Some(op) = slot(&mut ops, dir).as_mut()
    {
        op.part = None;
    }
}

/// `C_EncryptMessageNext` / `C_DecryptMessageNext`. `cap` is the output capacity (None:
/// a size query); `last` carries the tag (decryption) or the tag bits the caller's
/// `pTag` holds (encryption) of the `CKF_END_OF_MESSAGE` part.
///
/// Encryption returns each part's ciphertext at once and the tag with the last part.
/// Decryption returns no plaintext before the last part: the ciphertext is held and the
/// whole plaintext is released only once the tag has been checked.
pub(crate) fn message_next(
    h: CK_SESSION_HANDLE,
    data: &[u8],
    cap: Option<usize>,
    last: Option<(CK_ULONG, &[u8])>,
    dir: Direction,
) -> Result<MsgNext> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let op = slot(&mut ops, dir)
            .as_mut()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        let part = op
            .part
            .as_mut()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        let total = part
            .len
            .checked_add(data.len())
            .ok_or(Error(CKR_DATA_LEN_RANGE))?;
        let needed = match (dir, last.is_some()) {
            (Direction::Encrypt, _) => data.len(),
            (Direction::Decrypt, false) => 0,
            (Direction::Decrypt, true) => total,
        };
        if cap.is_none_or(|c| c < needed) {
            return Ok(MsgNext::Len(needed));
        }
        let Some((tag_bits, tag_in)) = last else {
            let mut out = Zeroizing::new(Vec::with_capacity(needed));
            part.cipher
                .update(data, &mut out)
                .map_err(|e| data_err(e, dir))?;
            part.len = total;
            return Ok(MsgNext::Done {
                out,
                tag: Vec::new(),
            });
        };
        if tag_bits != (part.tag_len * 8) as CK_ULONG
            || (dir == Direction::Decrypt && tag_in.len() != part.tag_len)
        {
            return Err(Error(CKR_MECHANISM_PARAM_INVALID));
        }
        let MsgPart {
            mut cipher,
            tag_len,
            ..
        } = op.part.take().ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        let mut out = Zeroizing::new(Vec::with_capacity(needed + tag_len));
        match dir {
            Direction::Encrypt => {
                cipher
                    .update(data, &mut out)
                    .map_err(|e| data_err(e, dir))?;
                let mut tag = Vec::with_capacity(tag_len);
                cipher.finalize(&mut tag).map_err(|e| data_err(e, dir))?;
                Ok(MsgNext::Done { out, tag })
            }
            Direction::Decrypt => {
                let mut none = Vec::new();
                cipher
                    .update(data, &mut none)
                    .map_err(|e| data_err(e, dir))?;
                cipher
                    .update(tag_in, &mut none)
                    .map_err(|e| data_err(e, dir))?;
                cipher.finalize(&mut out).map_err(|e| data_err(e, dir))?;
                Ok(MsgNext::Done {
                    out,
                    tag: Vec::new(),
                })
            }
        }
    })
}

fn sign_slot(ops: &mut Ops, verify: bool) -> &mut Option<MsgSignOp> {
    if verify {
        &mut ops.msg_verify
    } else {
        &mut ops.msg_sign
    }
}

/// `C_MessageSignInit` / `C_MessageVerifyInit`: every mechanism `C_SignInit` takes.
pub(crate) fn msg_sign_init(
    h: CK_SESSION_HANDLE,
    mech: &Mech,
    kh: CK_OBJECT_HANDLE,
    verify: bool,
) -> Result<()> {
    state::with_session(h, |m, s| {
        if sign_slot(&mut *s.ops()?, verify).is_some() {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        if !m.compat.allows(mech.ty) || crate::mechanism::row(mech.ty).is_none() {
            return Err(Error(CKR_MECHANISM_INVALID));
        }
        let usage = if verify { CKA_VERIFY } else { CKA_SIGN };
        let (o, attrs) = key_for(m, s, kh, usage, mech.ty)?;
        let key = key_material(s, &o)?;
        // Checks mechanism, parameter and key type now, as C_SignInit does.
        crypto::sign_op(
            mech,
            crate::object::AttrsExt::key_type(&attrs),
            key.clone(),
            verify,
        )?;
        let mut ops = s.ops()?;
        let sl = sign_slot(&mut ops, verify);
        if sl.is_some() {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        *sl = Some(MsgSignOp {
            mech: mech.clone(),
            attrs,
            key,
            part: None,
            done: None,
        });
        Ok(())
    })
}

/// `C_MessageSignFinal` / `C_MessageVerifyFinal`.
pub(crate) fn msg_sign_final(h: CK_SESSION_HANDLE, verify: bool) -> Result<()> {
    state::with_session(h, |_, s| {
        sign_slot(&mut *s.ops()?, verify)
            .take()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        Ok(())
    })
}

fn new_op(op: &MsgSignOp, verify: bool) -> Result<SignOp> {
    crypto::sign_op(
        &op.mech,
        crate::object::AttrsExt::key_type(&op.attrs),
        op.key.clone(),
        verify,
    )
}

/// Delivers a computed signature under the two-call protocol, keeping it (as `done`,
/// marked with `single`) when the buffer is missing or short.
fn hand_out(
    op: &mut MsgSignOp,
    sig: Zeroizing<Vec<u8>>,
    cap: Option<usize>,
    single: bool,
) -> Produced {
    match cap {
        Some(c) if c >= sig.len() => Produced::Data(sig),
        _ => {
            let n = sig.len();
            op.done = Some((single, sig));
            Produced::Len(n)
        }
    }
}

/// `C_SignMessage`: one message, one signature.
pub(crate) fn sign_message(
    h: CK_SESSION_HANDLE,
    data: &[u8],
    cap: Option<usize>,
) -> Result<Produced> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let op = ops
            .msg_sign
            .as_mut()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        if op.part.is_some() || matches!(op.done, Some((false, _))) {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        let sig = match op.done.take() {
            Some((_, sig)) => sig,
            None => {
                let mut so = new_op(op, false)?;
                crypto::op_update(&mut so, data)?;
                Zeroizing::new(crypto::op_sign(so)?)
            }
        };
        Ok(hand_out(op, sig, cap, true))
    })
}

/// `C_VerifyMessage`.
pub(crate) fn verify_message(h: CK_SESSION_HANDLE, data: &[u8], sig: &[u8]) -> Result<()> {
    state::with_session(h, |_, s| {
        let mut so = {
            let ops = s.ops()?;
            let op = ops
                .msg_verify
                .as_ref()
                .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
            if op.part.is_some() {
                return Err(Error(CKR_OPERATION_ACTIVE));
            }
            new_op(op, true)?
        };
        crypto::op_update(&mut so, data)?;
        crypto::op_verify(so, sig)
    })
}

/// `C_SignMessageBegin` / `C_VerifyMessageBegin`.
pub(crate) fn sign_begin(h: CK_SESSION_HANDLE, verify: bool) -> Result<()> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let op = sign_slot(&mut ops, verify)
            .as_mut()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        if op.part.is_some() || op.done.is_some() {
            return Err(Error(CKR_OPERATION_ACTIVE));
        }
        op.part = Some(new_op(op, verify)?);
        Ok(())
    })
}

/// Ends the message being signed or verified in parts (after an error).
pub(crate) fn end_sign_message(h: CK_SESSION_HANDLE, verify: bool) {
    if let Ok(m) = state::module()
        && let Ok(s) = m.session(h)
        && let Ok(mut ops) = s.ops()
        && let Some(op) = sign_slot(&mut ops, verify).as_mut()
    {
        op.part = None;
        op.done = None;
    }
}

/// `C_SignMessageNext`: `last` is None for a part with more to follow, else the
/// signature buffer's capacity (None inside: a size query).
pub(crate) fn sign_next(
    h: CK_SESSION_HANDLE,
    data: &[u8],
    last: Option<Option<usize>>,
) -> Result<Option<Produced>> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let op = ops
            .msg_sign
            .as_mut()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        let Some(cap) = last else {
            if op.done.is_some() {
                return Err(Error(CKR_OPERATION_ACTIVE));
            }
            let so = op
                .part
                .as_mut()
                .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
            crypto::op_update(so, data)?;
            return Ok(None);
        };
        let sig = match op.done.take() {
            Some((false, sig)) => sig,
            Some((true, _)) => return Err(Error(CKR_OPERATION_ACTIVE)),
            None => {
                let mut so = op.part.take().ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
                crypto::op_update(&mut so, data)?;
                Zeroizing::new(crypto::op_sign(so)?)
            }
        };
        Ok(Some(hand_out(op, sig, cap, false)))
    })
}

/// `C_VerifyMessageNext`: `sig` is None for a part with more to follow.
pub(crate) fn verify_next(h: CK_SESSION_HANDLE, data: &[u8], sig: Option<&[u8]>) -> Result<()> {
    state::with_session(h, |_, s| {
        let mut ops = s.ops()?;
        let op = ops
            .msg_verify
            .as_mut()
            .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        let Some(sig) = sig else {
            let so = op
                .part
                .as_mut()
                .ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
            return crypto::op_update(so, data);
        };
        let mut so = op.part.take().ok_or(Error(CKR_OPERATION_NOT_INITIALIZED))?;
        drop(ops);
        crypto::op_update(&mut so, data)?;
        crypto::op_verify(so, sig)
    })
}
