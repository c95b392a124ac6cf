//! What SKF handles refer to: devices, applications, containers, and the provider-held
//! session keys, hash, MAC and agreement states.

use std::sync::Arc;

use skf_sys::*;
use token_hal::crypto::hash::{HashAlg, Hasher, Sm3};
use token_hal::crypto::sym::{self, Direction, SymAlg, SymCipher, SymMode};
use token_hal::token::{Application, Device};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A connected device.
pub(crate) struct DevObj {
    pub device: Arc<dyn Device>,
    pub serial: String,
}

/// An opened application.
pub(crate) struct AppObj {
    pub dev_handle: usize,
    pub app: Arc<dyn Application>,
}

/// An opened container.
pub(crate) struct ConObj {
    pub app: Arc<AppObj>,
    pub name: String,
    /// Its active signing and encryption keys, named once (the sign and decrypt calls
    /// pass them on every call).
    pub sign_key: token_hal::KeyRef,
    pub enc_key: token_hal::KeyRef,
}

impl ConObj {
    /// The opened container `name` of `app`.
    pub(crate) fn new(app: Arc<AppObj>, name: String) -> Self {
        use token_hal::{KeyRef, KeyUsage};
        Self {
            sign_key: KeyRef::active(&name, KeyUsage::Sign),
            enc_key: KeyRef::active(&name, KeyUsage::Encrypt),
            app,
            name,
        }
    }
}

/// SM2 key-agreement state of the initiator (GenerateAgreementDataWithECC).
pub(crate) struct AgreeObj {
    pub con: Arc<ConObj>,
    pub alg_id: ULONG,
    pub ephemeral: Zeroizing<Vec<u8>>,
    pub own_id: Vec<u8>,
}

/// Checks a session-key algorithm ID: SM4 modes are supported; SM1 and SSF33 (no public
/// specification, no software implementation) answer NOT_SUPPORTED.
pub(crate) fn check_sym_alg(alg_id: ULONG) -> Result<()> {
    match alg_id & !0xFF {
        0x400 if matches!(alg_id & 0xFF, 0x01 | 0x02 | 0x04 | 0x08 | 0x10) => Ok(()),
        0x100 | 0x200 => Err(Error::NOT_SUPPORTED),
        _ => Err(Error::INVALID_PARAM),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ecb,
    Cbc,
    Cfb,
    Ofb,
}

impl Mode {
    fn stream(self) -> bool {
        matches!(self, Self::Cfb | Self::Ofb)
    }
    fn sym(self) -> SymMode {
        match self {
            Self::Ecb => SymMode::Ecb,
            Self::Cbc => SymMode::Cbc,
            Self::Cfb => SymMode::Cfb,
            Self::Ofb => SymMode::Ofb,
        }
    }
}

/// The parameters of an Encrypt/DecryptInit, read from BLOCKCIPHERPARAM.
pub(crate) struct CipherParams {
    pub iv: Vec<u8>,
    pub padding: ULONG,
    pub feed_bits: ULONG,
}

impl CipherParams {
    /// From the C structure.
    pub fn from_c(p: &BLOCKCIPHERPARAM) -> Result<Self> {
        let len = p.IVLen as usize;
        if len > MAX_IV_LEN {
            return Err(Error::INVALID_PARAM);
        }
        let iv = p.IV;
        Ok(Self {
            iv: iv[..len].to_vec(),
            padding: p.PaddingType,
            feed_bits: p.FeedBitLen,
        })
    }
}

struct CipherOp {
    dir: Direction,
    mode: Mode,
    pad: bool,
    iv: Vec<u8>,
    cipher: SymCipher,
    pending: Zeroizing<Vec<u8>>,
    started: bool,
    final_out: Option<Zeroizing<Vec<u8>>>,
}

/// A session key held by the provider, with its current Encrypt/Decrypt operation.
pub(crate) struct SessionKey {
    pub alg_id: ULONG,
    key: Zeroizing<Vec<u8>>,
    /// The SM4 schedule, made once for the handle (`None` if the key was refused: the
    /// cipher then reports the error at `init`).
    prepared: Option<sym::SymKey>,
    op: Option<CipherOp>,
}

/// What the size-query helper needs: the output, computed without committing, and a
/// commit step run only once the output was delivered.
pub(crate) struct Pending<'a> {
    pub out: Zeroizing<Vec<u8>>,
    commit: Box<dyn FnOnce() + 'a>,
}

impl Pending<'_> {
    /// Commits the state change (the output was written).
    pub fn commit(self) {
        (self.commit)();
    }
}

const BLOCK: usize = 16;

fn pkcs5_pad(data: &mut Vec<u8>) {
    let n = BLOCK - data.len() % BLOCK;
    data.extend(std::iter::repeat_n(n as u8, n));
}

fn pkcs5_unpad(data: &mut Zeroizing<Vec<u8>>) -> Result<()> {
    let n = *data.last().ok_or(Error::PADDING)? as usize;
    if n == 0
        || n > BLOCK
        || n > data.len()
        || data[data.len() - n..].iter().any(|&b| b as usize != n)
    {
        return Err(Error::PADDING);
    }
    let keep = data.len() - n;
    data.truncate(keep);
    Ok(())
}

impl SessionKey {
    /// A key for `alg_id` (checked by the caller).
    pub fn new(alg_id: ULONG, key: &[u8]) -> Self {
        Self {
            alg_id,
            key: Zeroizing::new(key.to_vec()),
            prepared: sym::SymKey::new(SymAlg::Sm4, key).ok(),
            op: None,
        }
    }

    /// The key bytes (for MAC).
    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    /// Encrypt/DecryptInit.
    pub fn init(&mut self, dir: Direction, p: &CipherParams) -> Result<()> {
        check_sym_alg(self.alg_id)?;
        let mode = match self.alg_id & 0xFF {
            0x01 => Mode::Ecb,
            0x02 => Mode::Cbc,
            0x04 => Mode::Cfb,
            0x08 => Mode::Ofb,
            _ => return Err(Error::INVALID_PARAM),
        };
        let pad = match p.padding {
            NO_PADDING => false,
            PKCS5_PADDING => !mode.stream(),
            _ => return Err(Error::INVALID_PARAM),
        };
        if mode.stream() && !matches!(p.feed_bits, 0 | 128) {
            // Only full-block feedback is implemented (see docs/skf.md).
            return Err(Error::NOT_SUPPORTED);
        }
        let iv = if mode == Mode::Ecb {
            Vec::new()
        } else {
            if p.iv.len() < BLOCK {
                return Err(Error::INVALID_PARAM);
            }
            p.iv[..BLOCK].to_vec()
        };
        let cipher = match &self.prepared {
            Some(k) => k.cipher(mode.sym(), dir, &iv, &[])?,
            None => SymCipher::new(SymAlg::Sm4, mode.sym(), dir, &self.key, &iv)?,
        };
        self.op = Some(CipherOp {
            dir,
            mode,
            pad,
            iv,
            cipher,
            pending: Zeroizing::new(Vec::new()),
            started: false,
            final_out: None,
        });
        Ok(())
    }

    fn op(&mut self, dir: Direction) -> Result<&mut CipherOp> {
        match &mut self.op {
            Some(op) if op.dir == dir => Ok(op),
            _ => Err(Error::NOT_INITIALIZED),
        }
    }

    /// The single-part output length when it is known before processing, so the output
    /// can go straight into the caller's buffer ([`Self::single_into`]): every unpadded
    /// operation. `None` for padded ones, whose length the padding decides; they go
    /// through [`Self::single`].
    pub fn single_len(&mut self, dir: Direction, len: usize) -> Result<Option<usize>> {
        let op = self.op(dir)?;
        if op.started {
            return Err(Error::NOT_INITIALIZED);
        }
        if op.pad {
            return Ok(None);
        }
        if !op.mode.stream() && !len.is_multiple_of(BLOCK) {
            return Err(Error::DATA_LEN);
        }
        Ok(Some(len))
    }

    /// Single-part Encrypt/Decrypt of an unpadded operation into `out`, which holds
    /// exactly [`Self::single_len`] bytes, with the cipher set up at Init: no copy of the
    /// input, no intermediate buffer. Ends the operation.
    pub fn single_into(&mut self, dir: Direction, data: &[u8], out: &mut [u8]) -> Result<()> {
        if self.single_len(dir, data.len())? != Some(out.len()) {
            return Err(Error::FAIL);
        }
        let op = self.op.take().ok_or(Error::NOT_INITIALIZED)?;
        let n = op.cipher.finish_into(data, out)?;
        if n != out.len() {
            return Err(Error::FAIL);
        }
        Ok(())
    }

    /// Single-part Encrypt/Decrypt: the whole output of `data`; committing ends the
    /// operation.
    pub fn single(&mut self, dir: Direction, data: &[u8]) -> Result<Pending<'_>> {
        let key = self.key.clone();
        let op = self.op(dir)?;
        if op.started {
            return Err(Error::NOT_INITIALIZED);
        }
        let mut input = Zeroizing::new(data.to_vec());
        if dir == Direction::Encrypt && op.pad {
            pkcs5_pad(&mut input);
        }
        if !op.mode.stream() && !input.len().is_multiple_of(BLOCK) {
            return Err(Error::DATA_LEN);
        }
        let mut out = match dir {
            Direction::Encrypt => Zeroizing::new(sym::encrypt(
                SymAlg::Sm4,
                op.mode.sym(),
                &key,
                &op.iv,
                &input,
            )?),
            Direction::Decrypt => sym::decrypt(SymAlg::Sm4, op.mode.sym(), &key, &op.iv, &input)?,
        };
        if dir == Direction::Decrypt && op.pad {
            pkcs5_unpad(&mut out)?;
        }
        Ok(Pending {
            out,
            commit: Box::new(move || self.op = None),
        })
    }

    /// Encrypt/DecryptUpdate: the output for whole blocks (a padded decryption keeps its
    /// last block back for Final).
    pub fn update(&mut self, dir: Direction, data: &[u8]) -> Result<Pending<'_>> {
        let op = self.op(dir)?;
        if op.final_out.is_some() {
            return Err(Error::NOT_INITIALIZED);
        }
        let total = op.pending.len() + data.len();
        let take = if op.mode.stream() {
            total
        } else {
            let whole = total - total % BLOCK;
            if dir == Direction::Decrypt && op.pad && whole == total && whole > 0 {
                whole - BLOCK
            } else {
                whole
            }
        };
        // The caller checked the output buffer with `update_len` first.
        let mut all = Zeroizing::new(Vec::with_capacity(total));
        all.extend_from_slice(&op.pending);
        all.extend_from_slice(data);
        let mut out = Zeroizing::new(Vec::with_capacity(take));
        op.cipher.update(&all[..take], &mut out)?;
        if out.len() != take {
            return Err(Error::FAIL);
        }
        op.pending = Zeroizing::new(all[take..].to_vec());
        op.started = true;
        Ok(Pending {
            out,
            commit: Box::new(|| {}),
        })
    }

    /// The output length Update would produce for `n` more bytes (the size query).
    pub fn update_len(&mut self, dir: Direction, n: usize) -> Result<usize> {
        let op = self.op(dir)?;
        let total = op.pending.len() + n;
        Ok(if op.mode.stream() {
            total
        } else {
            let whole = total - total % BLOCK;
            if dir == Direction::Decrypt && op.pad && whole == total && whole > 0 {
                whole - BLOCK
            } else {
                whole
            }
        })
    }

    /// Encrypt/DecryptFinal: the rest; committing ends the operation. The output is kept
    /// until delivered, so a size query or a short buffer can be repeated.
    pub fn finish(&mut self, dir: Direction) -> Result<Pending<'_>> {
        let op = self.op(dir)?;
        if op.final_out.is_none() {
            let mut rest = Zeroizing::new(op.pending.to_vec());
            if dir == Direction::Encrypt && op.pad {
                pkcs5_pad(&mut rest);
            }
            if !op.mode.stream() && !rest.len().is_multiple_of(BLOCK) {
                return Err(Error::DATA_LEN);
            }
            let mut out = Zeroizing::new(Vec::new());
            op.cipher.update(&rest, &mut out)?;
            if dir == Direction::Decrypt && op.pad {
                pkcs5_unpad(&mut out)?;
            }
            op.pending = Zeroizing::new(Vec::new());
            op.final_out = Some(out);
        }
        let out = op.final_out.clone().unwrap_or_default();
        Ok(Pending {
            out,
            commit: Box::new(move || self.op = None),
        })
    }
}

/// A digest in progress. SM3, the one every signature's e = SM3(Z‖M) takes, runs on
/// token-hal's allocation-free SM3 (the provider's own kernels) held inline; SHA-1 and
/// SHA-256 go through the provider's streaming [`Hasher`].
pub(crate) enum HashObj {
    Sm3(Sm3),
    Other(Hasher),
}

impl HashObj {
    /// DigestInit: SGD_SM3 with a public key and a non-empty ID absorbs their Z first.
    pub fn new(alg_id: ULONG, z: Option<[u8; 32]>) -> Result<Self> {
        let alg = match alg_id {
            SGD_SM3 => {
                let mut h = Sm3::new();
                if let Some(z) = z {
                    h.update(&z);
                }
                return Ok(Self::Sm3(h));
            }
            SGD_SHA1 => HashAlg::Sha1,
            SGD_SHA256 => HashAlg::Sha256,
            _ => return Err(Error::INVALID_PARAM),
        };
        Ok(Self::Other(Hasher::new(alg)))
    }
    /// The digest length.
    pub fn len(&self) -> usize {
        match self {
            Self::Sm3(_) => HashAlg::Sm3.output_len(),
            Self::Other(h) => h.alg().output_len(),
        }
    }
    /// Absorbs data.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sm3(h) => h.update(data),
            Self::Other(h) => h.update(data),
        }
    }
    /// Finishes into `out` (at least [`Self::len`] bytes); the digest's length.
    pub fn finish_into(self, out: &mut [u8]) -> usize {
        let mut put = |d: &[u8]| {
            out[..d.len()].copy_from_slice(d);
            d.len()
        };
        match self {
            Self::Sm3(h) => put(&h.finalize()),
            Self::Other(h) => put(&h.finish()),
        }
    }
}

/// SM4 CBC-MAC in progress.
pub(crate) struct MacObj {
    key: Zeroizing<Vec<u8>>,
    chain: [u8; BLOCK],
    pending: Zeroizing<Vec<u8>>,
    pad: bool,
}

impl MacObj {
    /// MacInit with the session key and BLOCKCIPHERPARAM (IV, padding).
    pub fn new(key: &SessionKey, p: &CipherParams) -> Result<Self> {
        check_sym_alg(key.alg_id)?;
        let mut chain = [0u8; BLOCK];
        match p.iv.len() {
            0 => {}
            n if n >= BLOCK => chain.copy_from_slice(&p.iv[..BLOCK]),
            _ => return Err(Error::INVALID_PARAM),
        }
        let pad = match p.padding {
            NO_PADDING => false,
            PKCS5_PADDING => true,
            _ => return Err(Error::INVALID_PARAM),
        };
        Ok(Self {
            key: Zeroizing::new(key.key_bytes().to_vec()),
            chain,
            pending: Zeroizing::new(Vec::new()),
            pad,
        })
    }

    /// Absorbs data.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(data);
        let keep = if self.pad && self.pending.len().is_multiple_of(BLOCK) {
            // a padded MAC always has a last block to pad; keep it back
            BLOCK.min(self.pending.len())
        } else {
            self.pending.len() % BLOCK
        };
        let full = self.pending.len() - keep;
        for i in (0..full).step_by(BLOCK) {
            let mut b = [0u8; BLOCK];
            for (j, x) in b.iter_mut().enumerate() {
                *x = self.chain[j] ^ self.pending[i + j];
            }
            let c = sym::sm4_ecb_encrypt_block(&self.key, &b)?;
            self.chain.copy_from_slice(&c);
        }
        let rest = self.pending[full..].to_vec();
        self.pending = Zeroizing::new(rest);
        Ok(())
    }

    /// The MAC of everything absorbed (does not change the state).
    pub fn value(&self) -> Result<[u8; BLOCK]> {
        let mut last = self.pending.to_vec();
        if self.pad {
            pkcs5_pad(&mut last);
        }
        if !last.len().is_multiple_of(BLOCK) {
            return Err(Error::MAC_LEN);
        }
        let mut chain = self.chain;
        for blk in last.chunks(BLOCK) {
            let mut b = [0u8; BLOCK];
            for (j, x) in b.iter_mut().enumerate() {
                *x = chain[j] ^ blk[j];
            }
            let c = sym::sm4_ecb_encrypt_block(&self.key, &b)?;
            chain.copy_from_slice(&c);
        }
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pad: ULONG) -> CipherParams {
        CipherParams {
            iv: vec![7u8; 16],
            padding: pad,
            feed_bits: 0,
        }
    }

    #[test]
    fn streaming_equals_single_part_in_every_mode() {
        let key = [9u8; 16];
        let data: Vec<u8> = (0..77u8).collect();
        for (alg, pad) in [
            (SGD_SM4_ECB, PKCS5_PADDING),
            (SGD_SM4_CBC, PKCS5_PADDING),
            (SGD_SM4_CFB, NO_PADDING),
            (SGD_SM4_OFB, NO_PADDING),
        ] {
            let mut k = SessionKey::new(alg, &key);
            k.init(Direction::Encrypt, &params(pad)).unwrap();
            let p = k.single(Direction::Encrypt, &data).unwrap();
            let ct = p.out.to_vec();
            p.commit();
            k.init(Direction::Encrypt, &params(pad)).unwrap();
            let mut streamed = Vec::new();
            for chunk in data.chunks(10) {
                streamed.extend_from_slice(&k.update(Direction::Encrypt, chunk).unwrap().out);
            }
            let f = k.finish(Direction::Encrypt).unwrap();
            streamed.extend_from_slice(&f.out);
            f.commit();
            assert_eq!(streamed, ct, "alg {alg:#x}");
            k.init(Direction::Decrypt, &params(pad)).unwrap();
            let mut back = Vec::new();
            for chunk in ct.chunks(16) {
                let n = k.update_len(Direction::Decrypt, chunk.len()).unwrap();
                let o = k.update(Direction::Decrypt, chunk).unwrap();
                assert_eq!(o.out.len(), n);
                back.extend_from_slice(&o.out);
            }
            back.extend_from_slice(&k.finish(Direction::Decrypt).unwrap().out);
            assert_eq!(back, data, "alg {alg:#x}");
        }
    }

    #[test]
    fn cbc_mac_matches_token_hal() {
        let key = [3u8; 16];
        let data = [5u8; 40];
        let mut m =
            MacObj::new(&SessionKey::new(SGD_SM4_MAC, &key), &params(PKCS5_PADDING)).unwrap();
        m.update(&data[..7]).unwrap();
        m.update(&data[7..]).unwrap();
        let want = sym::cbc_mac(SymAlg::Sm4, &key, &[7u8; 16], &data, true).unwrap();
        assert_eq!(m.value().unwrap(), want);
    }

    #[test]
    fn sm1_and_ssf33_are_not_supported() {
        assert_eq!(check_sym_alg(SGD_SM1_ECB), Err(Error::NOT_SUPPORTED));
        assert_eq!(check_sym_alg(SGD_SSF33_CBC), Err(Error::NOT_SUPPORTED));
        assert_eq!(check_sym_alg(0x999), Err(Error::INVALID_PARAM));
        assert!(check_sym_alg(SGD_SM4_OFB).is_ok());
    }
}
