//! Cryptographic services (GM/T 0016-2012 §7.6) and the SKF_ECCDecrypt extension.

#![allow(non_snake_case)]

use std::sync::{Arc, Mutex};

use skf_sys::*;
use token_hal::crypto::sm2::{ExchangeRole, generate_ephemeral};
use token_hal::crypto::sym::{self, Direction, SymAlg, SymMode};
use token_hal::crypto::{DecMech, EncMech, KeyAlg, PrivateKey, SignMech};
use token_hal::model::{KeyRef, KeyUsage};
use token_hal::tender::keyblob::EnvelopedKeyBlob;
use zeroize::Zeroizing;

use super::entry::{
    bytes, check_sized, cipher_blob, nonnull, read, run, write, write_cipher_blob, write_sized,
};
use super::handles::{self, Obj};
use crate::api::agreement;
use crate::api::blobs;
use crate::api::device::MAX_ECC_BUFFER;
use crate::api::objects::{
    AgreeObj, CipherParams, ConObj, HashObj, MacObj, Pending, SessionKey, check_sym_alg,
};
use crate::error::{Error, Result};

const SM4_KEY: usize = 16;

/// Adds a session key under the device handle `dev` and writes its handle.
///
/// # Safety
/// `ph` valid for a write (checked non-null by the caller).
unsafe fn new_key(dev: usize, alg: ULONG, key: &[u8], ph: *mut HANDLE) -> Result<()> {
    if key.len() != SM4_KEY {
        return Err(Error::DATA);
    }
    let h = handles::insert(
        Obj::Key(Arc::new(Mutex::new(SessionKey::new(alg, key)))),
        Some(dev),
    )?;
    // SAFETY: the caller's contract.
    unsafe { write(ph, handles::to_c(h)) }
}

fn dev_of(c: &ConObj) -> usize {
    c.app.dev_handle
}

fn con_info(c: &ConObj) -> Result<token_hal::model::ContainerInfo> {
    c.app.app.container(&c.name).map_err(Error::container)
}

fn sign_key_alg(c: &ConObj) -> Result<KeyAlg> {
    con_info(c)?.sign.map(|k| k.alg).ok_or(Error::KEY_NOT_FOUND)
}

/// Decrypts with the container's encryption key; when that fails (the C3 or padding
/// check) and the container has retired encryption keys, each is tried in turn.
/// The container listing (a store read) only on the failure path: the active key is
/// tried first, and it is the one almost every call uses.
fn decrypt_enc(c: &ConObj, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    match c.app.app.decrypt(&c.enc_key, mech, data) {
        Ok(v) => Ok(v),
        Err(first) => {
            let info = con_info(c)?;
            if info.enc.is_none() {
                return Err(Error::KEY_NOT_FOUND);
            }
            if matches!(first, token_hal::Error::DecryptFailed) {
                for k in &info.retired {
                    if let Ok(v) = c.app.app.decrypt(&KeyRef::Id(k.id), mech, data) {
                        return Ok(v);
                    }
                }
            }
            Err(Error::key(first))
        }
    }
}

/// Delivers a computed output with the size-query convention; the state change is
/// committed only when the bytes were written.
///
/// # Safety
/// As [`write_sized`].
unsafe fn deliver(buf: *mut u8, len: *mut ULONG, p: Pending<'_>) -> Result<()> {
    // SAFETY: the caller's contract.
    unsafe { check_sized(buf, len, p.out.len()) }?;
    if buf.is_null() {
        return Ok(());
    }
    // SAFETY: checked to hold `p.out.len()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(p.out.as_ptr(), buf, p.out.len()) };
    p.commit();
    Ok(())
}

/// `SKF_GenRandom` (§7.6.2). The bytes are also this handle's device-auth challenge.
///
/// # Safety
/// `pbRandom` valid for `ulRandomLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GenRandom(
    hDev: DEVHANDLE,
    pbRandom: *mut BYTE,
    ulRandomLen: ULONG,
) -> ULONG {
    run("SKF_GenRandom", || {
        let d = handles::dev(hDev)?;
        if pbRandom.is_null()
            || ulRandomLen == 0
            || ulRandomLen as usize > crate::api::device::MAX_BUFFER
        {
            return Err(Error::INVALID_PARAM);
        }
        let r = d
            .device
            .gen_random(ulRandomLen as usize)
            .map_err(|_| Error::GEN_RANDOM)?;
        if r.len() != ulRandomLen as usize {
            return Err(Error::GEN_RANDOM);
        }
        // SAFETY: `pbRandom` holds `ulRandomLen` bytes.
        unsafe { std::ptr::copy_nonoverlapping(r.as_ptr(), pbRandom, r.len()) };
        Ok(())
    })
}

fn rsa_bits(bits: ULONG) -> Result<u32> {
    if (1024..=2048).contains(&bits) && bits.is_multiple_of(8) {
        Ok(bits)
    } else {
        Err(Error::RSA_MODULUS_LEN)
    }
}

/// `SKF_GenExtRSAKey` (§7.6.3): an RSA key pair returned to the caller (fields
/// right-aligned).
///
/// # Safety
/// `pBlob` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GenExtRSAKey(
    hDev: DEVHANDLE,
    ulBitsLen: ULONG,
    pBlob: *mut RSAPRIVATEKEYBLOB,
) -> ULONG {
    run("SKF_GenExtRSAKey", || {
        handles::check_dev(hDev)?;
        nonnull(pBlob)?;
        let k = PrivateKey::generate(KeyAlg::Rsa(rsa_bits(ulBitsLen)?))
            .map_err(|_| Error::GEN_RSA_KEY)?;
        let b = blobs::rsa_priv_blob(&k)?;
        // SAFETY: checked non-null.
        unsafe { write(pBlob, b.0) }
    })
}

/// `SKF_GenRSAKeyPair` (§7.6.4): the container's signing key pair (replacing one).
///
/// # Safety
/// `pBlob` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GenRSAKeyPair(
    hContainer: HCONTAINER,
    ulBitsLen: ULONG,
    pBlob: *mut RSAPUBLICKEYBLOB,
) -> ULONG {
    run("SKF_GenRSAKeyPair", || {
        let c = handles::con(hContainer)?;
        nonnull(pBlob)?;
        let bits = rsa_bits(ulBitsLen)?;
        if crate::ffi::app::container_type(&con_info(&c)?) == CONTAINER_TYPE_ECC {
            return Err(Error::INVALID_PARAM);
        }
        let pk = c
            .app
            .app
            .generate_key(&c.name, KeyUsage::Sign, KeyAlg::Rsa(bits), true)
            .map_err(Error::key)?;
        let b = blobs::rsa_pub_blob(&pk)?;
        // SAFETY: checked non-null.
        unsafe { write(pBlob, b) }
    })
}

/// The length of a DER TLV at the start of `b`, if it is one.
fn der_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    let (hdr, len) = match first {
        n if n < 0x80 => (2, n as usize),
        0x81 => (3, *b.get(2)? as usize),
        0x82 => (4, u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize),
        _ => return None,
    };
    Some(hdr + len).filter(|&t| t <= b.len())
}

/// `SKF_ImportRSAKeyPair` (§7.6.5): the encryption key pair. `pbWrappedKey` is an SM4
/// key RSA-encrypted (PKCS#1 v1.5) to the container's signing key; `pbEncryptedData` is
/// the private key under it in ECB, either as PKCS#1 RSAPrivateKey DER or as an
/// RSAPRIVATEKEYBLOB (trailing padding ignored). An existing encryption pair is retired.
///
/// # Safety
/// The buffers valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ImportRSAKeyPair(
    hContainer: HCONTAINER,
    ulSymAlgId: ULONG,
    pbWrappedKey: *mut BYTE,
    ulWrappedKeyLen: ULONG,
    pbEncryptedData: *mut BYTE,
    ulEncryptedDataLen: ULONG,
) -> ULONG {
    run("SKF_ImportRSAKeyPair", || {
        let c = handles::con(hContainer)?;
        // SAFETY: the caller's contract.
        let (wrapped, enc) = unsafe {
            (
                bytes(pbWrappedKey, ulWrappedKeyLen)?,
                bytes(pbEncryptedData, ulEncryptedDataLen)?,
            )
        };
        check_sym_alg(ulSymAlgId)?;
        if ulSymAlgId != SGD_SM4_ECB {
            return Err(Error::INVALID_PARAM);
        }
        if wrapped.is_empty() || enc.is_empty() || enc.len() % 16 != 0 {
            return Err(Error::DATA_LEN);
        }
        if !matches!(sign_key_alg(&c)?, KeyAlg::Rsa(_)) {
            return Err(Error::KEY_NOT_FOUND);
        }
        let k = c
            .app
            .app
            .decrypt(&c.sign_key, &DecMech::RsaPkcs1, wrapped)
            .map_err(Error::key)?;
        let pt = sym::decrypt(SymAlg::Sm4, SymMode::Ecb, &k, &[], enc)?;
        let key = if pt.first() == Some(&0x30) {
            let n = der_len(&pt).ok_or(Error::DATA)?;
            PrivateKey::from_pkcs1_der(&pt[..n]).map_err(|_| Error::DATA)?
        } else if pt.len() >= size_of::<RSAPRIVATEKEYBLOB>() {
            // SAFETY: `pt` holds at least one RSAPRIVATEKEYBLOB of bytes; the read is
            // unaligned and the type is plain old data.
            let b = Zeroizing::new(blobs::RsaPrivBlob(unsafe {
                read(pt.as_ptr().cast::<RSAPRIVATEKEYBLOB>())
            }?));
            blobs::rsa_priv_key(&b.0)?
        } else {
            return Err(Error::DATA);
        };
        if !matches!(key.alg(), KeyAlg::Rsa(b) if b <= 2048) {
            return Err(Error::RSA_MODULUS_LEN);
        }
        c.app
            .app
            .import_key(&c.name, KeyUsage::Encrypt, &key, true)
            .map(|_| ())
            .map_err(Error::key)
    })
}

/// `SKF_RSASignData` (§7.6.6): PKCS#1 v1.5 over the caller's bytes (a DigestInfo), at
/// most modulus − 11 bytes, with the signing key.
///
/// # Safety
/// `pbData` valid for `ulDataLen` bytes; `pulSignLen` valid; `pbSignature`, when
/// non-null, valid for `*pulSignLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_RSASignData(
    hContainer: HCONTAINER,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pbSignature: *mut BYTE,
    pulSignLen: *mut ULONG,
) -> ULONG {
    run("SKF_RSASignData", || {
        let c = handles::con(hContainer)?;
        // SAFETY: the caller's contract.
        let data = unsafe { bytes(pbData, ulDataLen) }?;
        let KeyAlg::Rsa(bits) = sign_key_alg(&c)? else {
            return Err(Error::KEY_NOT_FOUND);
        };
        let n = bits as usize / 8;
        if data.is_empty() || data.len() > n - 11 {
            return Err(Error::DATA_LEN);
        }
        // SAFETY: the caller's contract.
        unsafe { check_sized(pbSignature, pulSignLen, n) }?;
        if pbSignature.is_null() {
            return Ok(());
        }
        let sig = c
            .app
            .app
            .sign(&c.sign_key, &SignMech::RsaPkcs1Raw, data)
            .map_err(Error::key)?;
        // SAFETY: the caller's contract.
        unsafe { write_sized(pbSignature, pulSignLen, &sig) }
    })
}

/// `SKF_RSAVerify` (§7.6.7).
///
/// # Safety
/// `pRSAPubKeyBlob` valid; the buffers valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_RSAVerify(
    hDev: DEVHANDLE,
    pRSAPubKeyBlob: *mut RSAPUBLICKEYBLOB,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pbSignature: *mut BYTE,
    ulSignLen: ULONG,
) -> ULONG {
    run("SKF_RSAVerify", || {
        handles::check_dev(hDev)?;
        // SAFETY: the caller's contract.
        let (b, data, sig) = unsafe {
            (
                read(pRSAPubKeyBlob)?,
                bytes(pbData, ulDataLen)?,
                bytes(pbSignature, ulSignLen)?,
            )
        };
        let k = blobs::rsa_pub_key(&b)?;
        Ok(k.verify(&SignMech::RsaPkcs1Raw, data, sig)?)
    })
}

/// `SKF_RSAExportSessionKey` (§7.6.8): a new SM4 session key, PKCS#1 v1.5-encrypted to
/// the given public key, and its handle. A NULL `pbData` only reports the length.
///
/// # Safety
/// `pPubKey` valid; `pulDataLen` valid; `pbData`, when non-null, valid for
/// `*pulDataLen` bytes; `phSessionKey` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_RSAExportSessionKey(
    hContainer: HCONTAINER,
    ulAlgId: ULONG,
    pPubKey: *mut RSAPUBLICKEYBLOB,
    pbData: *mut BYTE,
    pulDataLen: *mut ULONG,
    phSessionKey: *mut HANDLE,
) -> ULONG {
    run("SKF_RSAExportSessionKey", || {
        let c = handles::con(hContainer)?;
        check_sym_alg(ulAlgId)?;
        // SAFETY: the caller's contract.
        let b = unsafe { read(pPubKey) }?;
        let pk = blobs::rsa_pub_key(&b)?;
        let KeyAlg::Rsa(bits) = pk.alg() else {
            return Err(Error::IMPORT_PUBKEY);
        };
        // SAFETY: the caller's contract.
        unsafe { check_sized(pbData, pulDataLen, bits as usize / 8) }?;
        if pbData.is_null() {
            return Ok(());
        }
        nonnull(phSessionKey)?;
        let key = Zeroizing::new(
            token_hal::crypto::rng::random_bytes(SM4_KEY).map_err(|_| Error::GEN_RANDOM)?,
        );
        let wrapped = pk
            .encrypt(&EncMech::RsaPkcs1, &key)
            .map_err(|_| Error::RSA_ENC)?;
        // SAFETY: the caller's contract.
        unsafe { write_sized(pbData, pulDataLen, &wrapped) }?;
        // SAFETY: checked non-null.
        unsafe { new_key(dev_of(&c), ulAlgId, &key, phSessionKey) }
    })
}

/// `SKF_ExtRSAPubKeyOperation` (§7.6.9): raw RSA (no padding) with a public key; the
/// input is exactly the modulus length.
///
/// # Safety
/// `pRSAPubKeyBlob` valid; buffers valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExtRSAPubKeyOperation(
    hDev: DEVHANDLE,
    pRSAPubKeyBlob: *mut RSAPUBLICKEYBLOB,
    pbInput: *mut BYTE,
    ulInputLen: ULONG,
    pbOutput: *mut BYTE,
    pulOutputLen: *mut ULONG,
) -> ULONG {
    run("SKF_ExtRSAPubKeyOperation", || {
        handles::check_dev(hDev)?;
        // SAFETY: the caller's contract.
        let (b, input) = unsafe { (read(pRSAPubKeyBlob)?, bytes(pbInput, ulInputLen)?) };
        let out = blobs::rsa_raw_public(&b, input)?;
        // SAFETY: the caller's contract.
        unsafe { write_sized(pbOutput, pulOutputLen, &out) }
    })
}

/// `SKF_ExtRSAPriKeyOperation` (§7.6.10): raw RSA with a private key given in clear.
///
/// # Safety
/// `pRSAPriKeyBlob` valid; buffers valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExtRSAPriKeyOperation(
    hDev: DEVHANDLE,
    pRSAPriKeyBlob: *mut RSAPRIVATEKEYBLOB,
    pbInput: *mut BYTE,
    ulInputLen: ULONG,
    pbOutput: *mut BYTE,
    pulOutputLen: *mut ULONG,
) -> ULONG {
    run("SKF_ExtRSAPriKeyOperation", || {
        handles::check_dev(hDev)?;
        // SAFETY: the caller's contract.
        let b = Zeroizing::new(blobs::RsaPrivBlob(unsafe { read(pRSAPriKeyBlob) }?));
        // SAFETY: as above.
        let input = unsafe { bytes(pbInput, ulInputLen) }?;
        let out = blobs::rsa_raw_private(&b.0, input)?;
        // SAFETY: the caller's contract.
        unsafe { write_sized(pbOutput, pulOutputLen, &out) }
    })
}

/// `SKF_GenECCKeyPair` (§7.6.11): the container's SM2 signing key pair (replacing one).
/// Either reading of SGD_SM2_1 (0x00020200 or the legacy 0x00020100) is accepted, as is
/// any other SM2 ID.
///
/// # Safety
/// `pBlob` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GenECCKeyPair(
    hContainer: HCONTAINER,
    ulAlgId: ULONG,
    pBlob: *mut ECCPUBLICKEYBLOB,
) -> ULONG {
    run("SKF_GenECCKeyPair", || {
        let c = handles::con(hContainer)?;
        if !is_sm2_alg_id(ulAlgId) {
            return Err(Error::INVALID_PARAM);
        }
        nonnull(pBlob)?;
        if crate::ffi::app::container_type(&con_info(&c)?) == CONTAINER_TYPE_RSA {
            return Err(Error::INVALID_PARAM);
        }
        let pk = c
            .app
            .app
            .generate_key(&c.name, KeyUsage::Sign, KeyAlg::Sm2, true)
            .map_err(Error::key)?;
        let b = blobs::ecc_pub_blob(&pk)?;
        // SAFETY: checked non-null.
        unsafe { write(pBlob, b) }
    })
}

/// `SKF_ImportECCKeyPair` (§7.6.12): the encryption key pair from an ENVELOPEDKEYBLOB:
/// the symmetric key is SM2-encrypted to the container's signing key; the 64-byte
/// private-key field is ECB-encrypted under it; d is its last 32 bytes. An existing
/// encryption pair is retired (kept for decryption). The blob is decoded and unwrapped by
/// `token_hal::tender::keyblob`, which `ukey key import-enveloped` shares.
///
/// # Safety
/// `pEnvelopedKeyBlob` valid: 208 bytes plus the ECCCIPHERBLOB with its C2.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ImportECCKeyPair(
    hContainer: HCONTAINER,
    pEnvelopedKeyBlob: *mut ENVELOPEDKEYBLOB,
) -> ULONG {
    run("SKF_ImportECCKeyPair", || {
        let c = handles::con(hContainer)?;
        if pEnvelopedKeyBlob.is_null() {
            return Err(Error::INVALID_PARAM);
        }
        let p = pEnvelopedKeyBlob.cast::<u8>();
        let fixed = ENVELOPEDKEYBLOB_CIPHER_OFFSET + ECCCIPHERBLOB_HEADER_LEN;
        // SAFETY: the blob has its fixed part: 208 bytes and the ECCCIPHERBLOB header.
        let head = unsafe { bytes(p, fixed as ULONG) }?;
        let u32_at =
            |o: usize| ULONG::from_ne_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
        let (version, alg, bits) = (u32_at(0), u32_at(4), u32_at(8));
        let cipher_len = u32_at(ENVELOPEDKEYBLOB_CIPHER_OFFSET + 160);
        if cipher_len as usize > crate::api::device::MAX_BUFFER {
            return Err(Error::DATA_LEN);
        }
        if version != 1 || bits != 256 {
            return Err(Error::DATA);
        }
        check_sym_alg(alg)?;
        if alg != SGD_SM4_ECB {
            return Err(Error::INVALID_PARAM);
        }
        // SAFETY: the ECCCIPHERBLOB carries `CipherLen` bytes after its header.
        let whole = unsafe { bytes(p, fixed as ULONG + cipher_len) }?;
        let blob = EnvelopedKeyBlob::parse(whole)?;
        if sign_key_alg(&c)? != KeyAlg::Sm2 {
            return Err(Error::KEY_NOT_FOUND);
        }
        // A device that unwraps the blob itself (a vendor SKF key behind the bridge).
        match c.app.app.import_enveloped_key(&c.name, whole) {
            Ok(_) => return Ok(()),
            Err(token_hal::Error::Unsupported(_)) => {}
            Err(token_hal::Error::InvalidData(_)) => return Err(Error::DATA),
            Err(e) => return Err(Error::key(e)),
        }
        let key =
            blob.unwrap_with(|wrapped| c.app.app.decrypt(&c.sign_key, &DecMech::Sm2, wrapped));
        let key = match key {
            Ok(k) => k,
            Err(token_hal::Error::InvalidData(_)) => return Err(Error::DATA),
            Err(e) => return Err(Error::key(e)),
        };
        c.app
            .app
            .import_key(&c.name, KeyUsage::Encrypt, &key, true)
            .map(|_| ())
            .map_err(Error::key)
    })
}

/// `SKF_ECCSignData` (§7.6.13): signs the 32-byte e = SM3(Z‖M) with the signing key;
/// r and s right-aligned.
///
/// # Safety
/// `pbDigest` valid for `ulDigestLen` bytes; `pSignature` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ECCSignData(
    hContainer: HCONTAINER,
    pbDigest: *mut BYTE,
    ulDigestLen: ULONG,
    pSignature: *mut ECCSIGNATUREBLOB,
) -> ULONG {
    run("SKF_ECCSignData", || {
        let c = handles::con(hContainer)?;
        // SAFETY: the caller's contract.
        let e = unsafe { bytes(pbDigest, ulDigestLen) }?;
        if e.len() != 32 {
            return Err(Error::DATA_LEN);
        }
        nonnull(pSignature)?;
        // The key's algorithm (a store read) is looked up only when signing fails, to
        // give a non-SM2 key's error.
        let rs = match c.app.app.sign(&c.sign_key, &SignMech::Sm2Prehashed, e) {
            Ok(rs) => rs,
            Err(err) => {
                if sign_key_alg(&c)? != KeyAlg::Sm2 {
                    return Err(Error::KEY_NOT_FOUND);
                }
                return Err(Error::key(err));
            }
        };
        let b = blobs::sig_blob(&rs)?;
        // SAFETY: checked non-null.
        unsafe { write(pSignature, b) }
    })
}

/// Verifies an SM2 signature over a 32-byte e.
fn sm2_verify(pk: &ECCPUBLICKEYBLOB, e: &[u8], sig: &ECCSIGNATUREBLOB) -> Result<()> {
    if e.len() != 32 {
        return Err(Error::DATA_LEN);
    }
    let k = blobs::ecc_pub_key(pk)?;
    Ok(k.verify(&SignMech::Sm2Prehashed, e, &blobs::sig_raw(sig)?)?)
}

/// `SKF_ECCVerify` (§7.6.14): over the 32-byte e.
///
/// # Safety
/// The blobs valid; `pbData` valid for `ulDataLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ECCVerify(
    hDev: DEVHANDLE,
    pECCPubKeyBlob: *mut ECCPUBLICKEYBLOB,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pSignature: *mut ECCSIGNATUREBLOB,
) -> ULONG {
    run("SKF_ECCVerify", || {
        handles::check_dev(hDev)?;
        // SAFETY: the caller's contract.
        let (pk, e, sig) = unsafe {
            (
                read(pECCPubKeyBlob)?,
                bytes(pbData, ulDataLen)?,
                read(pSignature)?,
            )
        };
        sm2_verify(&pk, e, &sig)
    })
}

/// `SKF_ECCExportSessionKey` (§7.6.15): a new SM4 session key, SM2-encrypted to
/// `pPubKey` (an ECCCIPHERBLOB of 164 + 16 bytes), and its handle.
///
/// # Safety
/// `pPubKey` valid; `pData` valid for 180 bytes of writes; `phSessionKey` valid.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ECCExportSessionKey(
    hContainer: HCONTAINER,
    ulAlgId: ULONG,
    pPubKey: *mut ECCPUBLICKEYBLOB,
    pData: *mut ECCCIPHERBLOB,
    phSessionKey: *mut HANDLE,
) -> ULONG {
    run("SKF_ECCExportSessionKey", || {
        let c = handles::con(hContainer)?;
        check_sym_alg(ulAlgId)?;
        // SAFETY: the caller's contract.
        let pk = blobs::ecc_pub_key(&unsafe { read(pPubKey) }?)?;
        nonnull(pData)?;
        nonnull(phSessionKey)?;
        let key = Zeroizing::new(
            token_hal::crypto::rng::random_bytes(SM4_KEY).map_err(|_| Error::GEN_RANDOM)?,
        );
        let ct = pk.encrypt(&EncMech::Sm2, &key)?;
        // SAFETY: the caller's contract.
        unsafe { write_cipher_blob(pData, &ct) }?;
        // SAFETY: checked non-null.
        unsafe { new_key(dev_of(&c), ulAlgId, &key, phSessionKey) }
    })
}

/// `SKF_ExtECCEncrypt` (§7.6.16): SM2 encryption to an external key; the caller's blob
/// holds 164 + `ulPlainTextLen` bytes.
///
/// # Safety
/// `pECCPubKeyBlob` valid; `pbPlainText` valid for its length; `pCipherText` valid for
/// 164 + `ulPlainTextLen` bytes of writes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExtECCEncrypt(
    hDev: DEVHANDLE,
    pECCPubKeyBlob: *mut ECCPUBLICKEYBLOB,
    pbPlainText: *mut BYTE,
    ulPlainTextLen: ULONG,
    pCipherText: *mut ECCCIPHERBLOB,
) -> ULONG {
    run("SKF_ExtECCEncrypt", || {
        handles::check_dev(hDev)?;
        // SAFETY: the caller's contract.
        let (b, m) = unsafe { (read(pECCPubKeyBlob)?, bytes(pbPlainText, ulPlainTextLen)?) };
        if m.is_empty() || m.len() > MAX_ECC_BUFFER {
            return Err(Error::DATA_LEN);
        }
        nonnull(pCipherText)?;
        let ct = blobs::ecc_pub_key(&b)?.encrypt(&EncMech::Sm2, m)?;
        // SAFETY: the caller's contract.
        unsafe { write_cipher_blob(pCipherText, &ct) }
    })
}

/// `SKF_ExtECCDecrypt` (§7.6.17): SM2 decryption with a private key given in clear.
///
/// # Safety
/// The blobs valid; `pulPlainTextLen` valid; `pbPlainText`, when non-null, valid for
/// `*pulPlainTextLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExtECCDecrypt(
    hDev: DEVHANDLE,
    pECCPriKeyBlob: *mut ECCPRIVATEKEYBLOB,
    pCipherText: *mut ECCCIPHERBLOB,
    pbPlainText: *mut BYTE,
    pulPlainTextLen: *mut ULONG,
) -> ULONG {
    run("SKF_ExtECCDecrypt", || {
        handles::check_dev(hDev)?;
        // SAFETY: the caller's contract.
        let (kb, ct) = unsafe { (read(pECCPriKeyBlob)?, cipher_blob(pCipherText)?) };
        let k = blobs::ecc_priv_key(&kb)?;
        let m = k.decrypt(&DecMech::Sm2, &ct)?;
        // SAFETY: the caller's contract.
        unsafe { write_sized(pbPlainText, pulPlainTextLen, &m) }
    })
}

/// `SKF_ExtECCSign` (§7.6.18): signs a 32-byte e with a private key given in clear.
///
/// # Safety
/// The blobs valid; `pbData` valid for `ulDataLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExtECCSign(
    hDev: DEVHANDLE,
    pECCPriKeyBlob: *mut ECCPRIVATEKEYBLOB,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pSignature: *mut ECCSIGNATUREBLOB,
) -> ULONG {
    run("SKF_ExtECCSign", || {
        handles::check_dev(hDev)?;
        // SAFETY: the caller's contract.
        let (kb, e) = unsafe { (read(pECCPriKeyBlob)?, bytes(pbData, ulDataLen)?) };
        if e.len() != 32 {
            return Err(Error::DATA_LEN);
        }
        nonnull(pSignature)?;
        let k = blobs::ecc_priv_key(&kb)?;
        let rs = k.sign(&SignMech::Sm2Prehashed, e)?;
        // SAFETY: checked non-null.
        unsafe { write(pSignature, blobs::sig_blob(&rs)?) }
    })
}

/// `SKF_ExtECCVerify` (§7.6.19).
///
/// # Safety
/// The blobs valid; `pbData` valid for `ulDataLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExtECCVerify(
    hDev: DEVHANDLE,
    pECCPubKeyBlob: *mut ECCPUBLICKEYBLOB,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pSignature: *mut ECCSIGNATUREBLOB,
) -> ULONG {
    run("SKF_ExtECCVerify", || {
        handles::check_dev(hDev)?;
        // SAFETY: the caller's contract.
        let (pk, e, sig) = unsafe {
            (
                read(pECCPubKeyBlob)?,
                bytes(pbData, ulDataLen)?,
                read(pSignature)?,
            )
        };
        sm2_verify(&pk, e, &sig)
    })
}

/// An agreement ID: 1..=32 bytes.
///
/// # Safety
/// `p` valid for `len` bytes.
unsafe fn agreement_id<'a>(p: *const u8, len: ULONG) -> Result<&'a [u8]> {
    if len == 0 || len > 32 {
        return Err(Error::INVALID_PARAM);
    }
    // SAFETY: the caller's contract.
    unsafe { bytes(p, len) }
}

/// `SKF_GenerateAgreementDataWithECC` (§7.6.20): the initiator's ephemeral key. `ulAlgId`
/// is the algorithm of the session key to agree (SGD_SM4_*). The agreement uses the
/// container's encryption key pair (the signing pair if it has none).
///
/// # Safety
/// `pTempECCPubKeyBlob` and `phAgreementHandle` valid for writes; `pbID` for `ulIDLen`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GenerateAgreementDataWithECC(
    hContainer: HCONTAINER,
    ulAlgId: ULONG,
    pTempECCPubKeyBlob: *mut ECCPUBLICKEYBLOB,
    pbID: *mut BYTE,
    ulIDLen: ULONG,
    phAgreementHandle: *mut HANDLE,
) -> ULONG {
    run("SKF_GenerateAgreementDataWithECC", || {
        let c = handles::con(hContainer)?;
        check_sym_alg(ulAlgId)?;
        // SAFETY: the caller's contract.
        let id = unsafe { agreement_id(pbID, ulIDLen) }?;
        nonnull(pTempECCPubKeyBlob)?;
        nonnull(phAgreementHandle)?;
        agreement::agreement_key(c.app.app.as_ref(), &c.name)?;
        let (r, point) = generate_ephemeral()?;
        let blob = blobs::ecc_pub_blob(&token_hal::crypto::PublicKey::from_ec_point(
            KeyAlg::Sm2,
            &point,
        )?)?;
        let dev = dev_of(&c);
        let h = handles::insert(
            Obj::Agree(Arc::new(AgreeObj {
                con: c,
                alg_id: ulAlgId,
                ephemeral: r,
                own_id: id.to_vec(),
            })),
            Some(dev),
        )?;
        // SAFETY: checked non-null.
        unsafe {
            write(pTempECCPubKeyBlob, blob)?;
            write(phAgreementHandle, handles::to_c(h))
        }
    })
}

/// `SKF_GenerateAgreementDataAndKeyWithECC` (§7.6.21): the responder's side: its
/// ephemeral key and the agreed session key.
///
/// # Safety
/// The blobs valid; IDs valid for their lengths; outputs valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GenerateAgreementDataAndKeyWithECC(
    hContainer: HANDLE,
    ulAlgId: ULONG,
    pSponsorECCPubKeyBlob: *mut ECCPUBLICKEYBLOB,
    pSponsorTempECCPubKeyBlob: *mut ECCPUBLICKEYBLOB,
    pTempECCPubKeyBlob: *mut ECCPUBLICKEYBLOB,
    pbID: *mut BYTE,
    ulIDLen: ULONG,
    pbSponsorID: *mut BYTE,
    ulSponsorIDLen: ULONG,
    phKeyHandle: *mut HANDLE,
) -> ULONG {
    run("SKF_GenerateAgreementDataAndKeyWithECC", || {
        let c = handles::con(hContainer)?;
        check_sym_alg(ulAlgId)?;
        // SAFETY: the caller's contract.
        let (sp, stp, id, sid) = unsafe {
            (
                read(pSponsorECCPubKeyBlob)?,
                read(pSponsorTempECCPubKeyBlob)?,
                agreement_id(pbID, ulIDLen)?,
                agreement_id(pbSponsorID, ulSponsorIDLen)?,
            )
        };
        nonnull(pTempECCPubKeyBlob)?;
        nonnull(phKeyHandle)?;
        let peer = blobs::ecc_pub_key(&sp)?;
        let peer_eph = blobs::ecc_point(&stp)?.to_vec();
        let (r, point) = generate_ephemeral()?;
        let key = agreement::agree(
            c.app.app.as_ref(),
            &c.name,
            ExchangeRole::Responder,
            &r,
            id,
            peer,
            sid,
            peer_eph,
        )?;
        let blob = blobs::ecc_pub_blob(&token_hal::crypto::PublicKey::from_ec_point(
            KeyAlg::Sm2,
            &point,
        )?)?;
        // SAFETY: checked non-null.
        unsafe {
            write(pTempECCPubKeyBlob, blob)?;
            new_key(dev_of(&c), ulAlgId, &key, phKeyHandle)
        }
    })
}

/// `SKF_GenerateKeyWithECC` (§7.6.22): the initiator completes the agreement with the
/// responder's static and ephemeral keys and ID.
///
/// # Safety
/// The blobs valid; `pbID` valid for `ulIDLen`; `phKeyHandle` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GenerateKeyWithECC(
    hAgreementHandle: HANDLE,
    pECCPubKeyBlob: *mut ECCPUBLICKEYBLOB,
    pTempECCPubKeyBlob: *mut ECCPUBLICKEYBLOB,
    pbID: *mut BYTE,
    ulIDLen: ULONG,
    phKeyHandle: *mut HANDLE,
) -> ULONG {
    run("SKF_GenerateKeyWithECC", || {
        let a = handles::agree(hAgreementHandle)?;
        // SAFETY: the caller's contract.
        let (p, tp, id) = unsafe {
            (
                read(pECCPubKeyBlob)?,
                read(pTempECCPubKeyBlob)?,
                agreement_id(pbID, ulIDLen)?,
            )
        };
        nonnull(phKeyHandle)?;
        let key = agreement::agree(
            a.con.app.app.as_ref(),
            &a.con.name,
            ExchangeRole::Initiator,
            &a.ephemeral,
            &a.own_id,
            blobs::ecc_pub_key(&p)?,
            id,
            blobs::ecc_point(&tp)?.to_vec(),
        )?;
        // SAFETY: checked non-null.
        unsafe { new_key(dev_of(&a.con), a.alg_id, &key, phKeyHandle) }
    })
}

/// `SKF_ImportSessionKey` (§7.6.24): a session key wrapped to the container's encryption
/// key (an ECCCIPHERBLOB for SM2 containers, PKCS#1 v1.5 for RSA); retired encryption
/// keys are tried when the current one fails.
///
/// # Safety
/// `pbWrapedData` valid for `ulWrapedLen` bytes; `phKey` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ImportSessionKey(
    hContainer: HCONTAINER,
    ulAlgId: ULONG,
    pbWrapedData: *mut BYTE,
    ulWrapedLen: ULONG,
    phKey: *mut HANDLE,
) -> ULONG {
    run("SKF_ImportSessionKey", || {
        let c = handles::con(hContainer)?;
        check_sym_alg(ulAlgId)?;
        // SAFETY: the caller's contract.
        let w = unsafe { bytes(pbWrapedData, ulWrapedLen) }?;
        nonnull(phKey)?;
        let info = con_info(&c)?;
        let alg = info
            .enc
            .as_ref()
            .map(|k| k.alg)
            .ok_or(Error::KEY_NOT_FOUND)?;
        let key = match alg {
            KeyAlg::Sm2 => {
                if w.len() < ECCCIPHERBLOB_HEADER_LEN {
                    return Err(Error::DATA_LEN);
                }
                let mut header = [0u8; ECCCIPHERBLOB_HEADER_LEN];
                header.copy_from_slice(&w[..ECCCIPHERBLOB_HEADER_LEN]);
                let n = ULONG::from_ne_bytes([header[160], header[161], header[162], header[163]])
                    as usize;
                let c2 = w
                    .get(ECCCIPHERBLOB_HEADER_LEN..ECCCIPHERBLOB_HEADER_LEN + n)
                    .ok_or(Error::DATA_LEN)?;
                decrypt_enc(&c, &DecMech::Sm2, &blobs::cipher_raw(&header, c2)?)?
            }
            KeyAlg::Rsa(_) => decrypt_enc(&c, &DecMech::RsaPkcs1, w)?,
            _ => return Err(Error::KEY_NOT_FOUND),
        };
        // SAFETY: checked non-null.
        unsafe { new_key(dev_of(&c), ulAlgId, &key, phKey) }
    })
}

/// `SKF_ECCDecrypt` (extension): SM2 decryption with the container's encryption key
/// (retired ones tried when the current one fails the C3 check).
///
/// # Safety
/// `pCipherText` valid; `pulPlainTextLen` valid; `pbPlainText`, when non-null, valid
/// for `*pulPlainTextLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ECCDecrypt(
    hContainer: HCONTAINER,
    pCipherText: *mut ECCCIPHERBLOB,
    pbPlainText: *mut BYTE,
    pulPlainTextLen: *mut ULONG,
) -> ULONG {
    run("SKF_ECCDecrypt", || {
        let c = handles::con(hContainer)?;
        // SAFETY: the caller's contract.
        let ct = unsafe { cipher_blob(pCipherText) }?;
        nonnull(pulPlainTextLen)?;
        let m = decrypt_enc(&c, &DecMech::Sm2, &ct)?;
        // SAFETY: the caller's contract.
        unsafe { write_sized(pbPlainText, pulPlainTextLen, &m) }
    })
}

/// `SKF_SetSymmKey` (§7.6.25): a plaintext 16-byte SM4 key.
///
/// # Safety
/// `pbKey` valid for 16 bytes; `phKey` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_SetSymmKey(
    hDev: DEVHANDLE,
    pbKey: *mut BYTE,
    ulAlgID: ULONG,
    phKey: *mut HANDLE,
) -> ULONG {
    run("SKF_SetSymmKey", || {
        handles::check_dev(hDev)?;
        check_sym_alg(ulAlgID)?;
        // SAFETY: the caller's contract (an SM4 key is 16 bytes).
        let k = unsafe { bytes(pbKey, SM4_KEY as ULONG) }?;
        nonnull(phKey)?;
        // SAFETY: checked non-null.
        unsafe { new_key(hDev as usize, ulAlgID, k, phKey) }
    })
}

fn init(h: HANDLE, dir: Direction, p: &BLOCKCIPHERPARAM) -> Result<()> {
    let k = handles::key(h)?;
    let params = CipherParams::from_c(p)?;
    let mut k = k.lock().unwrap_or_else(|e| e.into_inner());
    k.init(dir, &params)
}

/// Single-part operation.
///
/// # Safety
/// As the C functions.
unsafe fn single(
    h: HANDLE,
    dir: Direction,
    inp: *const u8,
    n: ULONG,
    out: *mut u8,
    out_len: *mut ULONG,
) -> Result<()> {
    let k = handles::key(h)?;
    // SAFETY: the caller's contract.
    let data = unsafe { bytes(inp, n) }?;
    let mut k = k.lock().unwrap_or_else(|e| e.into_inner());
    // An unpadded operation's output goes straight into the caller's buffer, unless it
    // overlaps the input (in-place calls take the copying path below).
    if let Some(need) = k.single_len(dir, data.len())? {
        // SAFETY: the caller's contract.
        unsafe { check_sized(out, out_len, need) }?;
        if out.is_null() {
            return Ok(());
        }
        let (a, b) = (data.as_ptr() as usize, out as usize);
        if b + need <= a || a + data.len() <= b {
            // SAFETY: check_sized confirmed the caller's buffer holds `need` bytes, it is
            // non-null, and it does not overlap `data`.
            let buf = unsafe { std::slice::from_raw_parts_mut(out, need) };
            return k.single_into(dir, data, buf);
        }
    }
    let p = k.single(dir, data)?;
    // SAFETY: the caller's contract.
    unsafe { deliver(out, out_len, p) }
}

/// Update.
///
/// # Safety
/// As the C functions.
unsafe fn update(
    h: HANDLE,
    dir: Direction,
    inp: *const u8,
    n: ULONG,
    out: *mut u8,
    out_len: *mut ULONG,
) -> Result<()> {
    let k = handles::key(h)?;
    // SAFETY: the caller's contract.
    let data = unsafe { bytes(inp, n) }?;
    let mut k = k.lock().unwrap_or_else(|e| e.into_inner());
    let need = k.update_len(dir, data.len())?;
    // SAFETY: the caller's contract.
    unsafe { check_sized(out, out_len, need) }?;
    if out.is_null() {
        return Ok(());
    }
    let p = k.update(dir, data)?;
    // SAFETY: the caller's contract; `need` bytes fit.
    unsafe { deliver(out, out_len, p) }
}

/// Final.
///
/// # Safety
/// As the C functions.
unsafe fn finish(h: HANDLE, dir: Direction, out: *mut u8, out_len: *mut ULONG) -> Result<()> {
    let k = handles::key(h)?;
    nonnull(out_len)?;
    let mut k = k.lock().unwrap_or_else(|e| e.into_inner());
    let p = k.finish(dir)?;
    // SAFETY: the caller's contract.
    unsafe { deliver(out, out_len, p) }
}

/// `SKF_EncryptInit` (§7.6.26): SM4 in the key's mode; IV (16 bytes) for CBC/CFB/OFB;
/// PaddingType 1 = PKCS#5 for ECB/CBC; FeedBitLen 0 or 128 for CFB/OFB. The parameter
/// is passed by value.
#[unsafe(no_mangle)]
pub extern "system" fn SKF_EncryptInit(hKey: HANDLE, EncryptParam: BLOCKCIPHERPARAM) -> ULONG {
    run("SKF_EncryptInit", || {
        init(hKey, Direction::Encrypt, &EncryptParam)
    })
}

/// `SKF_Encrypt` (§7.6.27): single-part encryption (size-query convention).
///
/// # Safety
/// `pbData` valid for `ulDataLen`; `pulEncryptedLen` valid; `pbEncryptedData`, when
/// non-null, valid for `*pulEncryptedLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_Encrypt(
    hKey: HANDLE,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pbEncryptedData: *mut BYTE,
    pulEncryptedLen: *mut ULONG,
) -> ULONG {
    // SAFETY: the caller's contract.
    run("SKF_Encrypt", || unsafe {
        single(
            hKey,
            Direction::Encrypt,
            pbData,
            ulDataLen,
            pbEncryptedData,
            pulEncryptedLen,
        )
    })
}

/// `SKF_EncryptUpdate` (§7.6.28).
///
/// # Safety
/// As `SKF_Encrypt`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_EncryptUpdate(
    hKey: HANDLE,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pbEncryptedData: *mut BYTE,
    pulEncryptedLen: *mut ULONG,
) -> ULONG {
    // SAFETY: the caller's contract.
    run("SKF_EncryptUpdate", || unsafe {
        update(
            hKey,
            Direction::Encrypt,
            pbData,
            ulDataLen,
            pbEncryptedData,
            pulEncryptedLen,
        )
    })
}

/// `SKF_EncryptFinal` (§7.6.29).
///
/// # Safety
/// `pulEncryptedDataLen` valid; `pbEncryptedData`, when non-null, valid for it.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_EncryptFinal(
    hKey: HANDLE,
    pbEncryptedData: *mut BYTE,
    pulEncryptedDataLen: *mut ULONG,
) -> ULONG {
    // SAFETY: the caller's contract.
    run("SKF_EncryptFinal", || unsafe {
        finish(
            hKey,
            Direction::Encrypt,
            pbEncryptedData,
            pulEncryptedDataLen,
        )
    })
}

/// `SKF_DecryptInit` (§7.6.30): as `SKF_EncryptInit`.
#[unsafe(no_mangle)]
pub extern "system" fn SKF_DecryptInit(hKey: HANDLE, DecryptParam: BLOCKCIPHERPARAM) -> ULONG {
    run("SKF_DecryptInit", || {
        init(hKey, Direction::Decrypt, &DecryptParam)
    })
}

/// `SKF_Decrypt` (§7.6.31): single-part decryption (size-query convention; the length
/// reported is the exact plaintext length).
///
/// # Safety
/// As `SKF_Encrypt`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_Decrypt(
    hKey: HANDLE,
    pbEncryptedData: *mut BYTE,
    ulEncryptedLen: ULONG,
    pbData: *mut BYTE,
    pulDataLen: *mut ULONG,
) -> ULONG {
    // SAFETY: the caller's contract.
    run("SKF_Decrypt", || unsafe {
        single(
            hKey,
            Direction::Decrypt,
            pbEncryptedData,
            ulEncryptedLen,
            pbData,
            pulDataLen,
        )
    })
}

/// `SKF_DecryptUpdate` (§7.6.32). With PKCS#5 padding the last block is kept for Final.
///
/// # Safety
/// As `SKF_Encrypt`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DecryptUpdate(
    hKey: HANDLE,
    pbEncryptedData: *mut BYTE,
    ulEncryptedLen: ULONG,
    pbData: *mut BYTE,
    pulDataLen: *mut ULONG,
) -> ULONG {
    // SAFETY: the caller's contract.
    run("SKF_DecryptUpdate", || unsafe {
        update(
            hKey,
            Direction::Decrypt,
            pbEncryptedData,
            ulEncryptedLen,
            pbData,
            pulDataLen,
        )
    })
}

/// `SKF_DecryptFinal` (§7.6.33).
///
/// # Safety
/// As `SKF_EncryptFinal`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DecryptFinal(
    hKey: HANDLE,
    pbDecryptedData: *mut BYTE,
    pulDecryptedDataLen: *mut ULONG,
) -> ULONG {
    // SAFETY: the caller's contract.
    run("SKF_DecryptFinal", || unsafe {
        finish(
            hKey,
            Direction::Decrypt,
            pbDecryptedData,
            pulDecryptedDataLen,
        )
    })
}

/// `SKF_DigestInit` (§7.6.34): SM3, SHA-1 or SHA-256. With SGD_SM3, a public key and a
/// non-empty ID, Z = SM3(ENTL‖ID‖a‖b‖G‖P) is absorbed first (SM3 with Z, GM/T 0009).
///
/// # Safety
/// `pPubKey` null or valid; `pbID` valid for `ulIDLen`; `phHash` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DigestInit(
    hDev: DEVHANDLE,
    ulAlgID: ULONG,
    pPubKey: *mut ECCPUBLICKEYBLOB,
    pbID: *mut BYTE,
    ulIDLen: ULONG,
    phHash: *mut HANDLE,
) -> ULONG {
    run("SKF_DigestInit", || {
        handles::check_dev(hDev)?;
        nonnull(phHash)?;
        let z = if ulAlgID == SGD_SM3 && !pPubKey.is_null() && ulIDLen != 0 {
            // SAFETY: the caller's contract.
            let (pk, id) = unsafe { (read(pPubKey)?, bytes(pbID, ulIDLen)?) };
            if id.len() > 8191 {
                return Err(Error::INVALID_PARAM);
            }
            // Only the point's bytes go into Z: checked, without making a key of it. (With
            // the ID's length checked above, only a bad point can fail here.)
            let point = blobs::ecc_point(&pk)?;
            Some(
                token_hal::crypto::sm2::checked_z_value(&point, id)
                    .map_err(|_| Error::IMPORT_PUBKEY)?,
            )
        } else {
            None
        };
        let h = HashObj::new(ulAlgID, z)?;
        let hh = handles::insert(
            Obj::Hash(Arc::new(Mutex::new(Some(h)))),
            Some(hDev as usize),
        )?;
        // SAFETY: checked non-null.
        unsafe { write(phHash, handles::to_c(hh)) }
    })
}

/// Finishes a hash into the caller's buffer (size-query convention; a query keeps the
/// hash going).
///
/// # Safety
/// As `SKF_DigestFinal`.
unsafe fn digest_out(h: HANDLE, extra: &[u8], out: *mut u8, out_len: *mut ULONG) -> Result<()> {
    let o = handles::hash(h)?;
    let mut g = o.lock().unwrap_or_else(|e| e.into_inner());
    let n = g.as_ref().ok_or(Error::HASH_OBJ)?.len();
    // SAFETY: the caller's contract.
    unsafe { check_sized(out, out_len, n) }?;
    if out.is_null() {
        return Ok(());
    }
    let mut hobj = g.take().ok_or(Error::HASH_OBJ)?;
    hobj.update(extra);
    let mut d = [0u8; 64];
    let n = hobj.finish_into(&mut d);
    // SAFETY: checked to hold `n` bytes.
    unsafe { write_sized(out, out_len, &d[..n]) }
}

/// `SKF_Digest` (§7.6.35): single-part digest.
///
/// # Safety
/// `pbData` valid for `ulDataLen`; `pulHashLen` valid; `pbHashData`, when non-null,
/// valid for `*pulHashLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_Digest(
    hHash: HANDLE,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pbHashData: *mut BYTE,
    pulHashLen: *mut ULONG,
) -> ULONG {
    run("SKF_Digest", || {
        // SAFETY: the caller's contract.
        let data = unsafe { bytes(pbData, ulDataLen) }?;
        // SAFETY: the caller's contract.
        unsafe { digest_out(hHash, data, pbHashData, pulHashLen) }
    })
}

/// `SKF_DigestUpdate` (§7.6.36).
///
/// # Safety
/// `pbData` valid for `ulDataLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DigestUpdate(
    hHash: HANDLE,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
) -> ULONG {
    run("SKF_DigestUpdate", || {
        let o = handles::hash(hHash)?;
        // SAFETY: the caller's contract.
        let data = unsafe { bytes(pbData, ulDataLen) }?;
        let mut g = o.lock().unwrap_or_else(|e| e.into_inner());
        g.as_mut().ok_or(Error::HASH_OBJ)?.update(data);
        Ok(())
    })
}

/// `SKF_DigestFinal` (§7.6.37).
///
/// # Safety
/// `pulHashLen` valid; `pHashData`, when non-null, valid for `*pulHashLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DigestFinal(
    hHash: HANDLE,
    pHashData: *mut BYTE,
    pulHashLen: *mut ULONG,
) -> ULONG {
    // SAFETY: the caller's contract.
    run("SKF_DigestFinal", || unsafe {
        digest_out(hHash, &[], pHashData, pulHashLen)
    })
}

/// `SKF_MacInit` (§7.6.38): SM4 CBC-MAC with the session key; IV from the parameter
/// (zero when IVLen is 0); PaddingType 1 pads with PKCS#5, 0 needs whole blocks.
///
/// # Safety
/// `pMacParam` valid; `phMac` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_MacInit(
    hKey: HANDLE,
    pMacParam: *mut BLOCKCIPHERPARAM,
    phMac: *mut HANDLE,
) -> ULONG {
    run("SKF_MacInit", || {
        let k = handles::key(hKey)?;
        // SAFETY: the caller's contract.
        let p = CipherParams::from_c(&unsafe { read(pMacParam) }?)?;
        nonnull(phMac)?;
        let m = {
            let k = k.lock().unwrap_or_else(|e| e.into_inner());
            MacObj::new(&k, &p)?
        };
        let parent = handles::parent(hKey)?;
        let h = handles::insert(Obj::Mac(Arc::new(Mutex::new(Some(m)))), parent)?;
        // SAFETY: checked non-null.
        unsafe { write(phMac, handles::to_c(h)) }
    })
}

/// Finishes a MAC into the caller's buffer (16 bytes; a size query keeps it going).
///
/// # Safety
/// As `SKF_MacFinal`.
unsafe fn mac_out(h: HANDLE, extra: &[u8], out: *mut u8, out_len: *mut ULONG) -> Result<()> {
    let o = handles::mac(h)?;
    let mut g = o.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().ok_or(Error::NOT_INITIALIZED)?;
    // SAFETY: the caller's contract.
    unsafe { check_sized(out, out_len, 16) }?;
    if out.is_null() {
        return Ok(());
    }
    let m = g.as_mut().ok_or(Error::NOT_INITIALIZED)?;
    m.update(extra)?;
    let v = m.value()?;
    *g = None;
    // SAFETY: checked to hold 16 bytes.
    unsafe { write_sized(out, out_len, &v) }
}

/// `SKF_Mac` (§7.6.39): single-part MAC.
///
/// # Safety
/// `pbData` valid for `ulDataLen`; `pulMacLen` valid; `pbMacData`, when non-null, valid
/// for `*pulMacLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_Mac(
    hMac: HANDLE,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pbMacData: *mut BYTE,
    pulMacLen: *mut ULONG,
) -> ULONG {
    run("SKF_Mac", || {
        // SAFETY: the caller's contract.
        let data = unsafe { bytes(pbData, ulDataLen) }?;
        // SAFETY: the caller's contract.
        unsafe { mac_out(hMac, data, pbMacData, pulMacLen) }
    })
}

/// `SKF_MacUpdate` (§7.6.40).
///
/// # Safety
/// `pbData` valid for `ulDataLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_MacUpdate(
    hMac: HANDLE,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
) -> ULONG {
    run("SKF_MacUpdate", || {
        let o = handles::mac(hMac)?;
        // SAFETY: the caller's contract.
        let data = unsafe { bytes(pbData, ulDataLen) }?;
        let mut g = o.lock().unwrap_or_else(|e| e.into_inner());
        g.as_mut().ok_or(Error::NOT_INITIALIZED)?.update(data)
    })
}

/// `SKF_MacFinal` (§7.6.41).
///
/// # Safety
/// `pulMacDataLen` valid; `pbMacData`, when non-null, valid for it.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_MacFinal(
    hMac: HANDLE,
    pbMacData: *mut BYTE,
    pulMacDataLen: *mut ULONG,
) -> ULONG {
    // SAFETY: the caller's contract.
    run("SKF_MacFinal", || unsafe {
        mac_out(hMac, &[], pbMacData, pulMacDataLen)
    })
}

/// `SKF_CloseHandle` (§7.6.42): closes a session-key, hash, MAC or agreement handle.
#[unsafe(no_mangle)]
pub extern "system" fn SKF_CloseHandle(hHandle: HANDLE) -> ULONG {
    run("SKF_CloseHandle", || {
        handles::remove(hHandle, |o| {
            matches!(o, Obj::Key(_) | Obj::Hash(_) | Obj::Mac(_) | Obj::Agree(_))
        })
        .map(drop)
    })
}
