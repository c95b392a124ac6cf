//! SM4 and AES modes on RustCrypto block ciphers (`sm4`, `aes` with AES-NI detection),
//! with the `cbc`, `ctr`, `cfb-mode`, `ofb` and `aes-gcm` mode crates; AES key wrap
//! through `aes-kw`. The key schedules zeroize on drop (`zeroize` features).

use std::marker::PhantomData;

use cipher::array::Array;
use cipher::consts::U16;
use cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, BlockSizeUser,
    KeyInit, KeyIvInit, StreamCipher,
};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::provider::{MacOps, SymCipherOps, SymProvider, finish_via_vec};
use crate::crypto::sym::{Direction, SymAlg, SymMode};
use crate::error::{Error, Result};

const BS: usize = 16;

/// SM4 (GB/T 32907) through RustCrypto `sm4`.
#[derive(Debug)]
pub struct RustCryptoSm4;

/// AES through RustCrypto `aes` (AES-NI when the CPU has it) and `aes-kw`.
#[derive(Debug)]
pub struct RustCryptoAes;

/// The bound every block cipher here meets.
pub trait Block128:
    BlockCipherEncrypt
    + BlockCipherDecrypt
    + BlockSizeUser<BlockSize = U16>
    + KeyInit
    + Clone
    + Send
    + 'static
{
}
impl<T> Block128 for T where
    T: BlockCipherEncrypt
        + BlockCipherDecrypt
        + BlockSizeUser<BlockSize = U16>
        + KeyInit
        + Clone
        + Send
        + 'static
{
}

enum Engine<C: Block128> {
    Ecb(C),
    CbcEnc(cbc::Encryptor<C>),
    CbcDec(cbc::Decryptor<C>),
    Stream(Box<dyn StreamCipher + Send>),
    CfbEnc(cfb_mode::BufEncryptor<C>),
    CfbDec(cfb_mode::BufDecryptor<C>),
}

struct Generic<C: Block128> {
    engine: Engine<C>,
    dir: Direction,
    pad: bool,
    /// Bytes not yet processed: a partial block, or the held-back last block of a
    /// padded decryption.
    pending: Zeroizing<Vec<u8>>,
    _c: PhantomData<C>,
}

/// CMAC (NIST SP 800-38B) through RustCrypto `cmac`.
struct CmacOps<M: cmac::Mac + Send>(M);

impl<M: cmac::Mac + Send> MacOps for CmacOps<M> {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self: Box<Self>) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.finalize().into_bytes().to_vec())
    }
}

fn bad_key() -> Error {
    Error::invalid_arg("bad key or IV length")
}

impl<C: Block128> Generic<C>
where
    C: cipher::KeySizeUser,
{
    fn new(mode: SymMode, dir: Direction, key: &[u8], iv: &[u8]) -> Result<Self> {
        let enc = dir == Direction::Encrypt;
        let engine = match mode {
            SymMode::Ecb | SymMode::EcbPad => {
                Engine::Ecb(C::new_from_slice(key).map_err(|_| bad_key())?)
            }
            SymMode::Cbc | SymMode::CbcPad if enc => Engine::CbcEnc(
                cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| bad_key())?,
            ),
            SymMode::Cbc | SymMode::CbcPad => Engine::CbcDec(
                cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| bad_key())?,
            ),
            SymMode::Ctr => Engine::Stream(Box::new(
                ctr::Ctr128BE::<C>::new_from_slices(key, iv).map_err(|_| bad_key())?,
            )),
            SymMode::Ofb => Engine::Stream(Box::new(
                ofb::Ofb::<C>::new_from_slices(key, iv).map_err(|_| bad_key())?,
            )),
            SymMode::Cfb if enc => Engine::CfbEnc(
                cfb_mode::BufEncryptor::<C>::new_from_slices(key, iv).map_err(|_| bad_key())?,
            ),
            SymMode::Cfb => Engine::CfbDec(
                cfb_mode::BufDecryptor::<C>::new_from_slices(key, iv).map_err(|_| bad_key())?,
            ),
            SymMode::Gcm => return Err(Error::internal("GCM is built by backend::gcm")),
        };
        Ok(Self {
            engine,
            dir,
            pad: matches!(mode, SymMode::EcbPad | SymMode::CbcPad),
            pending: Zeroizing::new(Vec::new()),
            _c: PhantomData,
        })
    }

    /// Runs the block engine over whole blocks in place.
    fn blocks(&mut self, buf: &mut [u8]) {
        let (blocks, rest) = Array::<u8, U16>::slice_as_chunks_mut(buf);
        debug_assert!(rest.is_empty());
        match (&mut self.engine, self.dir) {
            (Engine::Ecb(c), Direction::Encrypt) => c.encrypt_blocks(blocks),
            (Engine::Ecb(c), Direction::Decrypt) => c.decrypt_blocks(blocks),
            (Engine::CbcEnc(c), _) => c.encrypt_blocks(blocks),
            (Engine::CbcDec(c), _) => c.decrypt_blocks(blocks),
            _ => {}
        }
    }

    fn is_block_mode(&self) -> bool {
        matches!(
            self.engine,
            Engine::Ecb(_) | Engine::CbcEnc(_) | Engine::CbcDec(_)
        )
    }
}

impl<C: Block128> SymCipherOps for Generic<C>
where
    C: cipher::KeySizeUser,
{
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match &mut self.engine {
            Engine::Stream(s) => {
                let start = out.len();
                out.extend_from_slice(input);
                return s
                    .try_apply_keystream(&mut out[start..])
                    .map_err(|_| Error::invalid_arg("CTR counter space exhausted"));
            }
            Engine::CfbEnc(c) => {
                let start = out.len();
                out.extend_from_slice(input);
                c.encrypt(&mut out[start..]);
                return Ok(());
            }
            Engine::CfbDec(c) => {
                let start = out.len();
                out.extend_from_slice(input);
                c.decrypt(&mut out[start..]);
                return Ok(());
            }
            _ => {}
        }
        debug_assert!(self.is_block_mode());
        let total = self.pending.len() + input.len();
        let mut n = total / BS * BS;
        if self.pad && self.dir == Direction::Decrypt && n == total && n > 0 {
            n -= BS; // keep the last block for padding removal
        }
        if n == 0 {
            self.pending.extend_from_slice(input);
            return Ok(());
        }
        let start = out.len();
        let take = n - self.pending.len();
        out.extend_from_slice(&self.pending);
        out.extend_from_slice(&input[..take]);
        self.pending.zeroize();
        self.pending.extend_from_slice(&input[take..]);
        self.blocks(&mut out[start..]);
        Ok(())
    }

    fn single_part_len(&self, input_len: usize) -> Option<usize> {
        let total = self.pending.len().checked_add(input_len)?;
        if !self.is_block_mode() {
            return Some(total);
        }
        match (self.pad, self.dir) {
            (true, Direction::Encrypt) => (total / BS + 1).checked_mul(BS),
            (true, Direction::Decrypt) => None,
            (false, _) => total.is_multiple_of(BS).then_some(total),
        }
    }

    fn finish_into(mut self: Box<Self>, input: &[u8], out: &mut [u8]) -> Result<usize> {
        let Some(n) = self.single_part_len(input.len()) else {
            return finish_via_vec(self, input, out);
        };
        let Some(dst) = out.get_mut(..n) else {
            return Err(Error::invalid_arg("output buffer too small"));
        };
        // The data goes to the output once and is transformed there in place.
        let p = self.pending.len();
        let total = p + input.len();
        dst[..p].copy_from_slice(&self.pending);
        dst[p..total].copy_from_slice(input);
        self.pending.zeroize();
        let r = match &mut self.engine {
            Engine::Stream(s) => s
                .try_apply_keystream(dst)
                .map_err(|_| Error::invalid_arg("CTR counter space exhausted")),
            Engine::CfbEnc(c) => {
                c.encrypt(dst);
                Ok(())
            }
            Engine::CfbDec(c) => {
                c.decrypt(dst);
                Ok(())
            }
            _ => {
                // Block modes: whole blocks only (checked by `single_part_len`); a padded
                // encryption fills the last block with the PKCS#7 pad byte.
                let pad = u8::try_from(n - total).map_err(|_| Error::internal("padding"))?;
                dst[total..].fill(pad);
                self.blocks(dst);
                Ok(())
            }
        };
        if r.is_err() {
            dst.zeroize();
        }
        r.map(|()| n)
    }

    fn finalize(mut self: Box<Self>, out: &mut Vec<u8>) -> Result<()> {
        if !self.is_block_mode() {
            return Ok(());
        }
        match (self.dir, self.pad) {
            (Direction::Encrypt, false) | (Direction::Decrypt, false) => {
                if self.pending.is_empty() {
                    Ok(())
                } else if self.dir == Direction::Encrypt {
                    Err(Error::invalid_arg(
                        "data length is not a multiple of the 16-byte block (no padding)",
                    ))
                } else {
                    Err(Error::invalid_data(
                        "encrypted data length is not a multiple of the 16-byte block",
                    ))
                }
            }
            (Direction::Encrypt, true) => {
                let mut last = Zeroizing::new([0u8; BS]);
                let n = self.pending.len();
                let p = u8::try_from(BS - n).map_err(|_| Error::internal("padding"))?;
                last[..n].copy_from_slice(&self.pending);
                last[n..].fill(p);
                self.blocks(&mut last[..]);
                out.extend_from_slice(&last[..]);
                Ok(())
            }
            (Direction::Decrypt, true) => {
                if self.pending.len() != BS {
                    return Err(Error::invalid_data(
                        "encrypted data length is not a positive multiple of the 16-byte block",
                    ));
                }
                let mut last = Zeroizing::new([0u8; BS]);
                last.copy_from_slice(&self.pending);
                self.blocks(&mut last[..]);
                let p = last[BS - 1];
                // Check 1 <= p <= 16 and the last p bytes all equal p, without branching
                // on the data.
                let mut ok = !(p.ct_eq(&0)) & !(u8::from(p > 16)).ct_eq(&1);
                for (i, &b) in last.iter().enumerate() {
                    let in_pad = u8::from(BS - i <= usize::from(p));
                    ok &= !(in_pad.ct_eq(&1) & !b.ct_eq(&p));
                }
                if !bool::from(ok) {
                    return Err(Error::DecryptFailed);
                }
                out.extend_from_slice(&last[..BS - usize::from(p)]);
                Ok(())
            }
        }
    }
}

fn generic<C: Block128 + cipher::KeySizeUser>(
    mode: SymMode,
    dir: Direction,
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
) -> Result<Box<dyn SymCipherOps>> {
    if mode == SymMode::Gcm {
        return Ok(Box::new(super::gcm::Gcm::<C>::new(key, dir, iv, aad, 16)?));
    }
    Ok(Box::new(Generic::<C>::new(mode, dir, key, iv)?))
}

impl SymProvider for RustCryptoSm4 {
    fn cipher(
        &self,
        alg: SymAlg,
        mode: SymMode,
        dir: Direction,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
    ) -> Result<Box<dyn SymCipherOps>> {
        if alg != SymAlg::Sm4 {
            return Err(Error::unsupported(format!("{alg:?} in the SM4 provider")));
        }
        generic::<sm4::Sm4>(mode, dir, key, iv, aad)
    }

    fn gcm(
        &self,
        alg: SymAlg,
        dir: Direction,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Box<dyn SymCipherOps>> {
        if alg != SymAlg::Sm4 {
            return Err(Error::unsupported(format!("{alg:?} in the SM4 provider")));
        }
        Ok(Box::new(super::gcm::Gcm::<sm4::Sm4>::new(
            key, dir, nonce, aad, tag_len,
        )?))
    }

    fn cmac(&self, alg: SymAlg, key: &[u8]) -> Result<Box<dyn MacOps>> {
        if alg != SymAlg::Sm4 {
            return Err(Error::unsupported(format!("{alg:?} in the SM4 provider")));
        }
        Ok(Box::new(CmacOps(
            <cmac::Cmac<sm4::Sm4> as cmac::KeyInit>::new_from_slice(key).map_err(|_| bad_key())?,
        )))
    }

    fn encrypt_block(&self, alg: SymAlg, key: &[u8], block: &mut [u8]) -> Result<()> {
        if alg != SymAlg::Sm4 || block.len() != BS {
            return Err(Error::invalid_arg(
                "SM4 block encryption needs a 16-byte block",
            ));
        }
        let c = sm4::Sm4::new_from_slice(key).map_err(|_| bad_key())?;
        let b = Array::<u8, U16>::slice_as_chunks_mut(block).0;
        c.encrypt_blocks(b);
        Ok(())
    }

    fn aes_key_wrap(&self, _kek: &[u8], _key: &[u8], _pad: bool) -> Result<Vec<u8>> {
        Err(Error::unsupported("key wrap with SM4"))
    }

    fn aes_key_unwrap(&self, _: &[u8], _: &[u8], _: bool) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::unsupported("key unwrap with SM4"))
    }
}

impl SymProvider for RustCryptoAes {
    fn cipher(
        &self,
        alg: SymAlg,
        mode: SymMode,
        dir: Direction,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
    ) -> Result<Box<dyn SymCipherOps>> {
        if alg != SymAlg::Aes {
            return Err(Error::unsupported(format!("{alg:?} in the AES provider")));
        }
        match key.len() {
            16 => generic::<aes::Aes128>(mode, dir, key, iv, aad),
            24 => generic::<aes::Aes192>(mode, dir, key, iv, aad),
            32 => generic::<aes::Aes256>(mode, dir, key, iv, aad),
            n => Err(Error::invalid_arg(format!("AES key of {n} bytes"))),
        }
    }

    fn gcm(
        &self,
        alg: SymAlg,
        dir: Direction,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Box<dyn SymCipherOps>> {
        if alg != SymAlg::Aes {
            return Err(Error::unsupported(format!("{alg:?} in the AES provider")));
        }
        use super::gcm::Gcm;
        Ok(match key.len() {
            16 => Box::new(Gcm::<aes::Aes128>::new(key, dir, nonce, aad, tag_len)?),
            24 => Box::new(Gcm::<aes::Aes192>::new(key, dir, nonce, aad, tag_len)?),
            32 => Box::new(Gcm::<aes::Aes256>::new(key, dir, nonce, aad, tag_len)?),
            n => return Err(Error::invalid_arg(format!("AES key of {n} bytes"))),
        })
    }

    fn cmac(&self, alg: SymAlg, key: &[u8]) -> Result<Box<dyn MacOps>> {
        if alg != SymAlg::Aes {
            return Err(Error::unsupported(format!("{alg:?} in the AES provider")));
        }
        use cmac::{Cmac, KeyInit as _};
        Ok(match key.len() {
            16 => Box::new(CmacOps(
                Cmac::<aes::Aes128>::new_from_slice(key).map_err(|_| bad_key())?,
            )),
            24 => Box::new(CmacOps(
                Cmac::<aes::Aes192>::new_from_slice(key).map_err(|_| bad_key())?,
            )),
            32 => Box::new(CmacOps(
                Cmac::<aes::Aes256>::new_from_slice(key).map_err(|_| bad_key())?,
            )),
            n => return Err(Error::invalid_arg(format!("AES key of {n} bytes"))),
        })
    }

    fn encrypt_block(&self, alg: SymAlg, key: &[u8], block: &mut [u8]) -> Result<()> {
        if alg != SymAlg::Aes || block.len() != BS {
            return Err(Error::invalid_arg(
                "AES block encryption needs a 16-byte block",
            ));
        }
        let b = Array::<u8, U16>::slice_as_chunks_mut(block).0;
        match key.len() {
            16 => aes::Aes128::new_from_slice(key)
                .map_err(|_| bad_key())?
                .encrypt_blocks(b),
            24 => aes::Aes192::new_from_slice(key)
                .map_err(|_| bad_key())?
                .encrypt_blocks(b),
            32 => aes::Aes256::new_from_slice(key)
                .map_err(|_| bad_key())?
                .encrypt_blocks(b),
            n => return Err(Error::invalid_arg(format!("AES key of {n} bytes"))),
        }
        Ok(())
    }

    fn aes_key_wrap(&self, kek: &[u8], key: &[u8], pad: bool) -> Result<Vec<u8>> {
        if !pad && (key.len() < 16 || !key.len().is_multiple_of(8)) {
            return Err(Error::invalid_arg(
                "RFC 3394 key wrap needs a key of at least 16 bytes, a multiple of 8",
            ));
        }
        if key.is_empty() || key.len() > 1 << 20 {
            return Err(Error::invalid_arg("key to wrap must be 1 byte to 1 MiB"));
        }
        let mut buf = vec![0u8; key.len() + 16];
        let n = match (kek.len(), pad) {
            (16, false) => aes_kw::KwAes128::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .wrap_key(key, &mut buf)
                .map(<[u8]>::len),
            (24, false) => aes_kw::KwAes192::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .wrap_key(key, &mut buf)
                .map(<[u8]>::len),
            (32, false) => aes_kw::KwAes256::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .wrap_key(key, &mut buf)
                .map(<[u8]>::len),
            (16, true) => aes_kw::KwpAes128::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .wrap_key(key, &mut buf)
                .map(<[u8]>::len),
            (24, true) => aes_kw::KwpAes192::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .wrap_key(key, &mut buf)
                .map(<[u8]>::len),
            (32, true) => aes_kw::KwpAes256::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .wrap_key(key, &mut buf)
                .map(<[u8]>::len),
            (n, _) => return Err(Error::invalid_arg(format!("AES KEK of {n} bytes"))),
        }
        .map_err(|e| Error::invalid_arg(format!("AES key wrap: {e}")))?;
        buf.truncate(n);
        Ok(buf)
    }

    fn aes_key_unwrap(&self, kek: &[u8], wrapped: &[u8], pad: bool) -> Result<Zeroizing<Vec<u8>>> {
        if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
            return Err(Error::invalid_data(
                "wrapped key must be a multiple of 8 bytes, at least 16",
            ));
        }
        let mut buf = Zeroizing::new(vec![0u8; wrapped.len()]);
        let n = match (kek.len(), pad) {
            (16, false) => aes_kw::KwAes128::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .unwrap_key(wrapped, &mut buf)
                .map(<[u8]>::len),
            (24, false) => aes_kw::KwAes192::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .unwrap_key(wrapped, &mut buf)
                .map(<[u8]>::len),
            (32, false) => aes_kw::KwAes256::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .unwrap_key(wrapped, &mut buf)
                .map(<[u8]>::len),
            (16, true) => aes_kw::KwpAes128::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .unwrap_key(wrapped, &mut buf)
                .map(<[u8]>::len),
            (24, true) => aes_kw::KwpAes192::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .unwrap_key(wrapped, &mut buf)
                .map(<[u8]>::len),
            (32, true) => aes_kw::KwpAes256::new_from_slice(kek)
                .map_err(|_| bad_key())?
                .unwrap_key(wrapped, &mut buf)
                .map(<[u8]>::len),
            (n, _) => return Err(Error::invalid_arg(format!("AES KEK of {n} bytes"))),
        }
        .map_err(|_| Error::DecryptFailed)?;
        buf.truncate(n);
        Ok(buf)
    }
}
