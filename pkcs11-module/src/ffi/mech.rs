//! `CK_MECHANISM` → [`Mech`]: the parameter structures copied into owned values.

use std::mem::size_of;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::args::{bytes, read};
use crate::error::{Error, Result};
use crate::mechanism::vendor::*;
use crate::mechanism::{Mech, Param, PrfData};

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

/// SP 800-108 data parameters.
///
/// # Safety
/// `p` null or valid for `n` parameters whose values are valid for their lengths.
unsafe fn prf_data(p: *const CK_PRF_DATA_PARAM, n: CK_ULONG) -> Result<Vec<PrfData>> {
    let bad = || Error(CKR_MECHANISM_PARAM_INVALID);
    // SAFETY: forwarded contract.
    let ps = unsafe { super::args::slice(p, n) }?;
    let mut out = Vec::new();
    for d in ps {
        let item = match d.type_ {
            CK_SP800_108_ITERATION_VARIABLE => {
                if d.pValue.is_null() {
                    PrfData::Iteration(None)
                } else {
                    if d.ulValueLen as usize != size_of::<CK_SP800_108_COUNTER_FORMAT>() {
                        return Err(bad());
                    }
                    // SAFETY: checked size, non-null.
                    let f = unsafe { read(d.pValue as *const CK_SP800_108_COUNTER_FORMAT) }?;
                    PrfData::Iteration(Some((f.bLittleEndian != 0, f.ulWidthInBits)))
                }
            }
            CK_SP800_108_COUNTER => {
                if d.pValue.is_null()
                    || d.ulValueLen as usize != size_of::<CK_SP800_108_COUNTER_FORMAT>()
                {
                    return Err(bad());
                }
                // SAFETY: checked size, non-null.
                let f = unsafe { read(d.pValue as *const CK_SP800_108_COUNTER_FORMAT) }?;
                PrfData::Counter(f.bLittleEndian != 0, f.ulWidthInBits)
            }
            CK_SP800_108_DKM_LENGTH => {
                if d.pValue.is_null()
                    || d.ulValueLen as usize != size_of::<CK_SP800_108_DKM_LENGTH_FORMAT>()
                {
                    return Err(bad());
                }
                // SAFETY: checked size, non-null.
                let f = unsafe { read(d.pValue as *const CK_SP800_108_DKM_LENGTH_FORMAT) }?;
                PrfData::Dkm(f.dkmLengthMethod, f.bLittleEndian != 0, f.ulWidthInBits)
            }
            CK_SP800_108_BYTE_ARRAY => {
                // SAFETY: the parameter declares `ulValueLen` bytes.
                let b = unsafe { bytes(d.pValue as *const u8, d.ulValueLen) }?;
                if b.is_empty() {
                    return Err(bad());
                }
                PrfData::Bytes(b.to_vec())
            }
            _ => return Err(bad()),
        };
        out.push(item);
    }
    Ok(out)
}

/// The templates of additional derived keys.
///
/// # Safety
/// `p` null or valid for `n` entries whose templates are valid.
unsafe fn derived_templates(
    p: *const CK_DERIVED_KEY,
    n: CK_ULONG,
) -> Result<Vec<crate::api::objects::RawTemplate>> {
    // SAFETY: forwarded contract.
    let ks = unsafe { super::args::slice(p, n) }?;
    let mut out = Vec::new();
    for k in ks {
        if k.phKey.is_null() {
            return Err(Error::ARGS);
        }
        // SAFETY: the entry declares its template's length.
        let attrs =
            unsafe { super::args::slice(k.pTemplate as *const CK_ATTRIBUTE, k.ulAttributeCount) }?;
        let mut t = Vec::new();
        for a in attrs {
            // SAFETY: each attribute declares its value length.
            t.push((
                a.type_,
                crate::object::AttrVal::new(unsafe { bytes(a.pValue as *const u8, a.ulValueLen) }?),
            ));
        }
        out.push(t);
    }
    Ok(out)
}

/// Where the handles of additional derived keys go.
///
/// # Safety
/// As [`parse`].
pub(crate) unsafe fn derived_key_outputs(p: *const CK_MECHANISM) -> Vec<*mut CK_OBJECT_HANDLE> {
    // SAFETY: forwarded contract; errors were reported by `parse` already.
    let Ok(m) = (unsafe { read(p) }) else {
        return Vec::new();
    };
    let (ptr, n) = match m.mechanism {
        CKM_SP800_108_COUNTER_KDF | CKM_SP800_108_DOUBLE_PIPELINE_KDF => {
            match param_struct::<CK_SP800_108_KDF_PARAMS>(&m) {
                Ok(k) => (k.pAdditionalDerivedKeys, k.ulAdditionalDerivedKeys),
                Err(_) => return Vec::new(),
            }
        }
        CKM_SP800_108_FEEDBACK_KDF => match param_struct::<CK_SP800_108_FEEDBACK_KDF_PARAMS>(&m) {
            Ok(k) => (k.pAdditionalDerivedKeys, k.ulAdditionalDerivedKeys),
            Err(_) => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    // SAFETY: forwarded contract.
    match unsafe { super::args::slice(ptr as *const CK_DERIVED_KEY, n) } {
        Ok(ks) => ks.iter().map(|k| k.phKey).collect(),
        Err(_) => Vec::new(),
    }
}

/// Where the SM2 key exchange's confirmation values go: (this party's value, the
/// expected peer value), each null when not wanted or with the short structure.
///
/// # Safety
/// As [`parse`].
pub(crate) unsafe fn sm2_confirmation_outputs(p: *const CK_MECHANISM) -> (*mut u8, *mut u8) {
    let none = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: forwarded contract; errors were reported by `parse` already.
    let Ok(m) = (unsafe { read(p) }) else {
        return none;
    };
    if crate::mechanism::mech_in(m.mechanism) != CKM_UKEY_SM2_KEY_EXCHANGE {
        return none;
    }
    match param_struct::<crate::mechanism::Sm2ExchangeParamsConfirm>(&m) {
        Ok(c) => (c.p_confirmation, c.p_expected_peer_confirmation),
        Err(_) => none,
    }
}

/// Parses a caller's mechanism.
///
/// # Safety
/// `p` must be null or point to a valid `CK_MECHANISM` whose parameter pointers are valid
/// for the lengths they declare.
pub(crate) unsafe fn parse(p: *const CK_MECHANISM) -> Result<Mech> {
    // SAFETY: forwarded contract.
    let mut m = unsafe { read(p) }?;
    m.mechanism = crate::mechanism::mech_in(m.mechanism);
    let param = match m.mechanism {
        CKM_AES_CBC
        | CKM_AES_CBC_PAD
        | CKM_SM4_CBC
        | crate::mechanism::vendor::CKM_UKEY_SM4_CBC_PAD
        | CKM_CONCATENATE_BASE_AND_DATA
        | CKM_CONCATENATE_DATA_AND_BASE
        | CKM_XOR_BASE_AND_DATA
        | CKM_AES_ECB_ENCRYPT_DATA => {
            if matches!(
                m.mechanism,
                CKM_CONCATENATE_BASE_AND_DATA
                    | CKM_CONCATENATE_DATA_AND_BASE
                    | CKM_XOR_BASE_AND_DATA
                    | CKM_AES_ECB_ENCRYPT_DATA
            ) {
                let d: CK_KEY_DERIVATION_STRING_DATA = param_struct(&m)?;
                // SAFETY: the structure declares `ulLen` readable bytes at `pData`.
                Param::Bytes(unsafe { bytes(d.pData, d.ulLen) }?.to_vec())
            } else {
                Param::Bytes(param_bytes(&m)?)
            }
        }
        CKM_AES_CTR | crate::mechanism::vendor::CKM_UKEY_SM4_CTR => {
            let c: CK_AES_CTR_PARAMS = param_struct(&m)?;
            Param::Ctr {
                bits: c.ulCounterBits,
                block: c.cb,
            }
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
                Param::Gcm {
                    iv,
                    aad,
                    tag_bits: g.ulTagBits as usize,
                }
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
            Param::Oaep {
                hash: o.hashAlg,
                mgf: o.mgf,
                label,
            }
        }
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            let p: CK_RSA_PKCS_PSS_PARAMS = param_struct(&m)?;
            Param::Pss {
                hash: p.hashAlg,
                mgf: p.mgf,
                salt_len: p.sLen as usize,
            }
        }
        CKM_ECDH1_DERIVE => {
            let e: CK_ECDH1_DERIVE_PARAMS = param_struct(&m)?;
            // SAFETY: the structure declares both lengths.
            let shared = unsafe { bytes(e.pSharedData, e.ulSharedDataLen) }?.to_vec();
            // SAFETY: as above.
            let public = unsafe { bytes(e.pPublicData, e.ulPublicDataLen) }?.to_vec();
            Param::Ecdh {
                kdf: e.kdf,
                shared,
                public,
            }
        }
        CKM_EDDSA => {
            if m.pParameter.is_null() {
                Param::None
            } else {
                let e: CK_EDDSA_PARAMS = param_struct(&m)?;
                // SAFETY: the structure declares `ulContextDataLen` bytes.
                let c = unsafe { bytes(e.pContextData, e.ulContextDataLen) }?.to_vec();
                Param::Eddsa {
                    ph: e.phFlag != 0,
                    context: Some(c),
                }
            }
        }
        CKM_AES_CMAC_GENERAL => Param::Ulong(param_struct::<CK_ULONG>(&m)?),
        CKM_UKEY_SM2_KEY_EXCHANGE => {
            use crate::mechanism::{SM2_CONFIRM_LEN, Sm2Confirm, Sm2ExchangeParamsConfirm};
            let (x, confirm) = if m.ulParameterLen as usize == size_of::<Sm2ExchangeParamsConfirm>()
            {
                let c: Sm2ExchangeParamsConfirm = param_struct(&m)?;
                let out_ok =
                    |p: *mut CK_BYTE, len: CK_ULONG| p.is_null() || len as usize >= SM2_CONFIRM_LEN;
                if !out_ok(c.p_confirmation, c.ul_confirmation_len)
                    || !out_ok(
                        c.p_expected_peer_confirmation,
                        c.ul_expected_peer_confirmation_len,
                    )
                {
                    return Err(Error(CKR_MECHANISM_PARAM_INVALID));
                }
                let peer = if c.p_peer_confirmation.is_null() && c.ul_peer_confirmation_len == 0 {
                    None
                } else {
                    // SAFETY: the structure declares `ul_peer_confirmation_len` bytes.
                    let v = unsafe { bytes(c.p_peer_confirmation, c.ul_peer_confirmation_len) }?;
                    if v.len() != SM2_CONFIRM_LEN {
                        return Err(Error(CKR_MECHANISM_PARAM_INVALID));
                    }
                    Some(v.to_vec())
                };
                (
                    c.base,
                    Sm2Confirm {
                        active: true,
                        peer,
                        out: Default::default(),
                    },
                )
            } else {
                let x: crate::mechanism::Sm2ExchangeParams = param_struct(&m)?;
                (x, Sm2Confirm::default())
            };
            // SAFETY: the structure declares each byte string's length.
            let own_id = unsafe { bytes(x.p_own_id, x.ul_own_id_len) }?.to_vec();
            // SAFETY: as above.
            let peer_public = unsafe { bytes(x.p_peer_public, x.ul_peer_public_len) }?.to_vec();
            // SAFETY: as above.
            let peer_id = unsafe { bytes(x.p_peer_id, x.ul_peer_id_len) }?.to_vec();
            // SAFETY: as above.
            let peer_ephemeral =
                unsafe { bytes(x.p_peer_ephemeral, x.ul_peer_ephemeral_len) }?.to_vec();
            Param::Sm2Exchange {
                initiator: x.is_initiator != 0,
                own_id,
                ephemeral: x.h_own_ephemeral,
                peer_public,
                peer_id,
                peer_ephemeral,
                confirm,
            }
        }
        CKM_SP800_108_COUNTER_KDF | CKM_SP800_108_DOUBLE_PIPELINE_KDF => {
            let k: CK_SP800_108_KDF_PARAMS = param_struct(&m)?;
            // SAFETY: the structure declares its arrays' lengths.
            let data = unsafe { prf_data(k.pDataParams, k.ulNumberOfDataParams) }?;
            // SAFETY: as above.
            let extra =
                unsafe { derived_templates(k.pAdditionalDerivedKeys, k.ulAdditionalDerivedKeys) }?;
            Param::Kbkdf {
                prf: k.prfType,
                data,
                iv: Vec::new(),
                extra,
            }
        }
        CKM_SP800_108_FEEDBACK_KDF => {
            let k: CK_SP800_108_FEEDBACK_KDF_PARAMS = param_struct(&m)?;
            // SAFETY: the structure declares its arrays' lengths.
            let data = unsafe { prf_data(k.pDataParams, k.ulNumberOfDataParams) }?;
            // SAFETY: as above.
            let extra =
                unsafe { derived_templates(k.pAdditionalDerivedKeys, k.ulAdditionalDerivedKeys) }?;
            // SAFETY: as above.
            let iv = unsafe { bytes(k.pIV, k.ulIVLen) }?.to_vec();
            Param::Kbkdf {
                prf: k.prfType,
                data,
                iv,
                extra,
            }
        }
        CKM_CONCATENATE_BASE_AND_KEY => Param::Key(param_struct::<CK_OBJECT_HANDLE>(&m)?),
        CKM_EXTRACT_KEY_FROM_KEY => Param::Ulong(param_struct::<CK_ULONG>(&m)?),
        crate::mechanism::vendor::CKM_SM4_MAC_GENERAL => {
            Param::Ulong(param_struct::<CK_ULONG>(&m)?)
        }
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
    Ok(Mech {
        ty: m.mechanism,
        param,
    })
}
