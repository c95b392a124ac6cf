//! `CK_MECHANISM` → [`Mech`]: the parameter structures copied into owned values.

use std::mem::size_of;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::args::{bytes, read};
use crate::error::{Error, Result};
use crate::mechanism::vendor::*;
use crate::mechanism::{Mech, Param};

fn param_struct<T: Copy>(m: &CK_MECHANISM) -> Result<T> {
    if m.pParameter.is_null() || m.ulParameterLen as usize != size_of::<T>() {
        return Err(Error(CKR_MECHANISM_PARAM_INVALID));
    }
    // SAFETY: non-null and the caller declared `size_of::<T>()` bytes of a `T` there.
    unsafe { read(m.pParameter as *const T) }
}

fn param_bytes(m: &CK_MECHANISM) -> Result<Vec<u8>> {
    // SAFETY: the caller declared `ulParameterLen` readable bytes at `pParameter`.
    Ok(unsafe { bytes(m.pParameter as *const u8, m.ulParameterLen) }?.to_vec())
}

/// Parses a caller's mechanism.
///
/// # Safety
/// `p` must be null or point to a valid `CK_MECHANISM` whose parameter pointers are valid
/// for the lengths they declare.
pub(crate) unsafe fn parse(p: *const CK_MECHANISM) -> Result<Mech> {
    // SAFETY: forwarded contract.
    let m = unsafe { read(p) }?;
    let param = match m.mechanism {
        CKM_AES_CBC | CKM_AES_CBC_PAD | CKM_SM4_CBC | crate::mechanism::vendor::CKM_UKEY_SM4_CBC_PAD
        | CKM_CONCATENATE_BASE_AND_DATA | CKM_CONCATENATE_DATA_AND_BASE | CKM_XOR_BASE_AND_DATA
        | CKM_AES_ECB_ENCRYPT_DATA => {
            if matches!(m.mechanism, CKM_CONCATENATE_BASE_AND_DATA | CKM_CONCATENATE_DATA_AND_BASE | CKM_XOR_BASE_AND_DATA | CKM_AES_ECB_ENCRYPT_DATA) {
                let d: CK_KEY_DERIVATION_STRING_DATA = param_struct(&m)?;
                // SAFETY: the structure declares `ulLen` readable bytes at `pData`.
                Param::Bytes(unsafe { bytes(d.pData, d.ulLen) }?.to_vec())
            } else {
                Param::Bytes(param_bytes(&m)?)
            }
        }
        CKM_AES_CTR | crate::mechanism::vendor::CKM_UKEY_SM4_CTR => {
            let c: CK_AES_CTR_PARAMS = param_struct(&m)?;
            Param::Ctr { bits: c.ulCounterBits, block: c.cb }
        }
        CKM_AES_GCM | crate::mechanism::vendor::CKM_UKEY_SM4_GCM => {
            if m.pParameter.is_null() {
                Param::None
            } else if m.ulParameterLen as usize == size_of::<CK_GCM_PARAMS>() {
                let g: CK_GCM_PARAMS = param_struct(&m)?;
                // SAFETY: the structure declares its IV and AAD lengths.
                let iv = unsafe { bytes(g.pIv, g.ulIvLen) }?.to_vec();
                // SAFETY: as above.
                let aad = unsafe { bytes(g.pAAD, g.ulAADLen) }?.to_vec();
                Param::Gcm { iv, aad, tag_bits: g.ulTagBits as usize }
            } else {
                Param::Bytes(param_bytes(&m)?)
            }
        }
        CKM_RSA_PKCS_OAEP => {
            let o: CK_RSA_PKCS_OAEP_PARAMS = param_struct(&m)?;
            let label = if o.source == CKZ_DATA_SPECIFIED {
                // SAFETY: the structure declares `ulSourceDataLen` bytes at `pSourceData`.
                unsafe { bytes(o.pSourceData as *const u8, o.ulSourceDataLen) }?.to_vec()
            } else if o.source == 0 {
                Vec::new()
            } else {
                return Err(Error(CKR_MECHANISM_PARAM_INVALID));
            };
            Param::Oaep { hash: o.hashAlg, mgf: o.mgf, label }
        }
        CKM_RSA_PKCS_PSS | CKM_SHA1_RSA_PKCS_PSS | CKM_SHA224_RSA_PKCS_PSS | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS | CKM_SHA512_RSA_PKCS_PSS => {
            let p: CK_RSA_PKCS_PSS_PARAMS = param_struct(&m)?;
            Param::Pss { hash: p.hashAlg, mgf: p.mgf, salt_len: p.sLen as usize }
        }
        CKM_ECDH1_DERIVE => {
            let e: CK_ECDH1_DERIVE_PARAMS = param_struct(&m)?;
            // SAFETY: the structure declares both lengths.
            let shared = unsafe { bytes(e.pSharedData, e.ulSharedDataLen) }?.to_vec();
            // SAFETY: as above.
            let public = unsafe { bytes(e.pPublicData, e.ulPublicDataLen) }?.to_vec();
            Param::Ecdh { kdf: e.kdf, shared, public }
        }
        CKM_EDDSA => {
            if m.pParameter.is_null() {
                Param::None
            } else {
                let e: CK_EDDSA_PARAMS = param_struct(&m)?;
                // SAFETY: the structure declares `ulContextDataLen` bytes.
                let c = unsafe { bytes(e.pContextData, e.ulContextDataLen) }?.to_vec();
                Param::Eddsa { ph: e.phFlag != 0, context: Some(c) }
            }
        }
        CKM_AES_CMAC_GENERAL => Param::Ulong(param_struct::<CK_ULONG>(&m)?),
        CKM_CONCATENATE_BASE_AND_KEY => Param::Key(param_struct::<CK_OBJECT_HANDLE>(&m)?),
        CKM_EXTRACT_KEY_FROM_KEY => Param::Ulong(param_struct::<CK_ULONG>(&m)?),
        crate::mechanism::vendor::CKM_SM4_MAC_GENERAL => Param::Ulong(param_struct::<CK_ULONG>(&m)?),
        CKM_AES_CBC_ENCRYPT_DATA => {
            let c: CK_AES_CBC_ENCRYPT_DATA_PARAMS = param_struct(&m)?;
            // SAFETY: the structure declares `length` bytes at `pData`.
            let data = Zeroizing::new(unsafe { bytes(c.pData, c.length) }?.to_vec());
            Param::CbcData { iv: c.iv, data }
        }
        _ => {
            if m.pParameter.is_null() || m.ulParameterLen == 0 {
                Param::None
            } else {
                Param::Bytes(param_bytes(&m)?)
            }
        }
    };
    Ok(Mech { ty: m.mechanism, param })
}
