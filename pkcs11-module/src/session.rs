//! Sessions and the operations running in them.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use cryptoki_sys::*;
use token_hal::LoginState;
use token_hal::crypto::hash::Hasher;
use token_hal::crypto::sym::SymCipher;
use token_hal::crypto::{EncMech, SignMech};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mechanism::Mech;
use crate::object::{KeyMaterial, Object};
use crate::state::Token;

/// A signing or verifying operation.
pub(crate) enum SignOp {
    /// HMAC, streaming; `len` is the MAC length to output.
    Hmac { h: Hasher, len: usize },
    /// A CBC-MAC over SM4/AES (data accumulated).
    CbcMac {
        alg: token_hal::crypto::sym::SymAlg,
        key: Zeroizing<Vec<u8>>,
        data: Vec<u8>,
        len: usize,
    },
    /// A CMAC over AES (data accumulated).
    Cmac {
        alg: token_hal::crypto::sym::SymAlg,
        key: Zeroizing<Vec<u8>>,
        data: Vec<u8>,
        len: usize,
    },
    /// An asymmetric signature; data accumulated until the final call.
    Asym {
        key: Arc<KeyMaterial>,
        mech: std::borrow::Cow<'static, SignMech>,
        data: Vec<u8>,
        updated: bool,
    },
}

/// An encryption or decryption operation.
pub(crate) enum CryptOp {
    Sym(SymCipher),
    /// Asymmetric (single-part): key and mechanism, data accumulated.
    Asym {
        key: Arc<KeyMaterial>,
        mech: EncMech,
        data: Vec<u8>,
    },
    /// GCM with any tag length (data accumulated; the tag is checked before any
    /// plaintext is released).
    Gcm {
        alg: token_hal::crypto::sym::SymAlg,
        /// The key object's material: its value, and its prepared schedule when it has
        /// one.
        material: Arc<KeyMaterial>,
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_len: usize,
        data: Vec<u8>,
    },
    /// AES key wrap used as a cipher (single-part).
    KeyWrap {
        key: Zeroizing<Vec<u8>>,
        pad: bool,
        data: Vec<u8>,
    },
}

/// A message-based (3.0) AEAD context: the key and mechanism; each message carries its own
/// nonce and AAD.
pub(crate) struct MsgOp {
    pub alg: token_hal::crypto::sym::SymAlg,
    pub key: Zeroizing<Vec<u8>>,
    /// Messages whose nonce came from `CKG_GENERATE_COUNTER` so far (the counter).
    pub counter: u64,
    /// The message being processed in parts (`C_EncryptMessageBegin` … `Next`).
    pub part: Option<MsgPart>,
}

/// One GCM message in progress between `C_*MessageBegin` and the `CKF_END_OF_MESSAGE` part.
pub(crate) struct MsgPart {
    /// GCM streaming cipher (encryption outputs each part at once; decryption holds the
    /// ciphertext until the tag has been checked).
    pub cipher: SymCipher,
    /// Tag length in bytes, fixed at Begin.
    pub tag_len: usize,
    /// Text bytes fed so far.
    pub len: usize,
}

/// A message-based (3.0) signature or MAC context: each message is one whole
/// signature under the mechanism given at init.
pub(crate) struct MsgSignOp {
    pub mech: Mech,
    pub attrs: crate::object::Attrs,
    pub key: Arc<KeyMaterial>,
    /// The message being signed in parts (`C_SignMessageBegin` … `Next`).
    pub part: Option<SignOp>,
    /// A signature computed by a call whose buffer was missing or short, kept for the
    /// repeated call: (made by `C_SignMessage` rather than the last `Next`, value).
    pub done: Option<(bool, Zeroizing<Vec<u8>>)>,
}

/// Which operation a pending (already computed) output belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OpKind {
    Digest,
    Sign,
    Encrypt,
    Decrypt,
}

/// The operations of a session.
#[derive(Default)]
pub(crate) struct Ops {
    pub find: Option<(Vec<CK_OBJECT_HANDLE>, usize)>,
    pub digest: Option<Hasher>,
    pub sign: Option<SignOp>,
    pub verify: Option<SignOp>,
    pub encrypt: Option<CryptOp>,
    pub decrypt: Option<CryptOp>,
    pub msg_enc: Option<MsgOp>,
    pub msg_dec: Option<MsgOp>,
    pub msg_sign: Option<MsgSignOp>,
    pub msg_verify: Option<MsgSignOp>,
    /// Output computed by a call whose buffer was missing or short, kept for the repeat.
    pub pending: Option<(OpKind, Zeroizing<Vec<u8>>)>,
    /// The key material of the last `C_SignInit` / `C_VerifyInit` that passed
    /// (`crate::api::crypto::sign_init`).
    pub sign_memo: Option<KeyCheck<KeyMaterial>>,
    pub verify_memo: Option<KeyCheck<KeyMaterial>>,
}

impl Ops {
    /// `CKR_OPERATION_NOT_INITIALIZED` unless the operation of `kind` is active (`active`)
    /// or the output of an earlier size query of it is waiting to be delivered.
    pub(crate) fn started(&self, active: bool, kind: OpKind) -> Result<()> {
        if active || self.pending.as_ref().is_some_and(|(k, _)| *k == kind) {
            Ok(())
        } else {
            Err(Error(CKR_OPERATION_NOT_INITIALIZED))
        }
    }
}

/// A key check that passed: the key `kh` may serve `mech` for `usage` in this session,
/// and `held` is what the check found (the key object for
/// [`crate::api::crypto::key_checked`], the key material for `C_SignInit`). It is what the
/// check read: while no object has changed since (the count of [`crate::object::changes`]
/// is still `changes`), the object table and the key's attributes still say the same.
pub(crate) struct KeyCheck<T> {
    pub of: KeyUse,
    pub changes: u64,
    /// `CKA_PRIVATE`: the key is visible only while the user is logged in.
    pub private: bool,
    pub key_type: Option<CK_KEY_TYPE>,
    /// Weak, so that a destroyed object, or key material forgotten at logout, is freed as
    /// it would be without the memo.
    pub held: Weak<T>,
}

/// What a key check is of: key `kh` serving `mech` for `usage` (`CKA_SIGN`, …).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyUse {
    pub kh: CK_OBJECT_HANDLE,
    pub usage: CK_ATTRIBUTE_TYPE,
    pub mech: CK_MECHANISM_TYPE,
}

impl<T> KeyCheck<T> {
    /// What the check found, if it answers for `of` at the change count `now` in session
    /// `s` (a `CKA_PRIVATE` key only while the user is logged in).
    pub fn answers(&self, of: KeyUse, now: u64, s: &Session) -> Option<Arc<T>> {
        if self.of == of && self.changes == now && (!self.private || s.user()) {
            self.held.upgrade()
        } else {
            None
        }
    }
}

/// The last few key checks of a session that passed, so that an application that signs
/// (or encrypts, …) again and again with one key pays for the object-table lookup and the
/// attribute reads once, not at every init call.
#[derive(Default)]
pub(crate) struct KeyChecks {
    recent: [Option<KeyCheck<Object>>; 4],
    next: usize,
}

impl KeyChecks {
    /// The key object of a check of `of` that still answers at the change count `now` in
    /// session `s`, with the key's type and `CKA_PRIVATE`.
    pub fn find(
        &self,
        of: KeyUse,
        now: u64,
        s: &Session,
    ) -> Option<(Arc<Object>, Option<CK_KEY_TYPE>, bool)> {
        self.recent
            .iter()
            .flatten()
            .find_map(|c| c.answers(of, now, s).map(|o| (o, c.key_type, c.private)))
    }
    /// Keeps `check`, in place of an older check of the same key, usage and mechanism,
    /// else of the oldest.
    pub fn remember(&mut self, check: KeyCheck<Object>) {
        let same = self
            .recent
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.of == check.of));
        let i = same.unwrap_or_else(|| {
            let i = self.next;
            self.next = (i + 1) % self.recent.len();
            i
        });
        self.recent[i] = Some(check);
    }
}

/// One session.
pub(crate) struct Session {
    pub handle: CK_SESSION_HANDLE,
    pub slot_id: CK_SLOT_ID,
    pub token: Arc<Token>,
    pub rw: bool,
    pub ops: Mutex<Ops>,
    /// Recent key checks that passed (a memo: never the only record of anything).
    pub checks: Mutex<KeyChecks>,
    /// The last key-pair templates this session prepared (a memo, like `checks`).
    pub pair_memo: Mutex<Option<Box<crate::api::keys::PairMemo>>>,
}

impl Session {
    /// Locks the operation state.
    pub fn ops(&self) -> Result<MutexGuard<'_, Ops>> {
        self.ops.lock().map_err(|_| Error::GENERAL)
    }
    /// `CK_STATE` of this session.
    pub fn state(&self) -> CK_STATE {
        match (self.token.login(), self.rw) {
            (LoginState::Admin, _) => CKS_RW_SO_FUNCTIONS,
            (LoginState::User, true) => CKS_RW_USER_FUNCTIONS,
            (LoginState::User, false) => CKS_RO_USER_FUNCTIONS,
            (LoginState::None, true) => CKS_RW_PUBLIC_SESSION,
            (LoginState::None, false) => CKS_RO_PUBLIC_SESSION,
        }
    }
    /// Whether private objects are visible.
    pub fn user(&self) -> bool {
        self.token.login() == LoginState::User
    }
}

/// The result of an output-producing call under the two-call protocol.
pub(crate) enum Produced {
    /// Only the length is known to the caller (size query or short buffer); the output is
    /// kept for the repeated call.
    Len(usize),
    /// The output, delivered; the operation is over (for final calls).
    Data(Zeroizing<Vec<u8>>),
    /// The output (of this many bytes) is already in the caller's buffer.
    Written(usize),
}

/// Runs `f` once and keeps its output until a buffer of `cap` bytes can take it.
pub(crate) fn produce(
    ops: &mut Ops,
    kind: OpKind,
    cap: Option<usize>,
    f: impl FnOnce(&mut Ops) -> Result<Zeroizing<Vec<u8>>>,
) -> Result<Produced> {
    let out = match ops.pending.take() {
        Some((k, v)) if k == kind => v,
        _ => f(ops)?,
    };
    match cap {
        Some(c) if c >= out.len() => Ok(Produced::Data(out)),
        _ => {
            let n = out.len();
            ops.pending = Some((kind, out));
            Ok(Produced::Len(n))
        }
    }
}
