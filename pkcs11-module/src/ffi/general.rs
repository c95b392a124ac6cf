//! General-purpose, slot and token entry points, and the v2.40 function list.

#![allow(non_snake_case)]

use std::ffi::{CStr, c_void};

use cryptoki_sys::*;

use super::entry::run;
use super::unsupported::*;
use crate::api::general as api;
use crate::error::{Error, Result};

/// Writes `value` through a caller's out-pointer.
///
/// # Safety
/// `ptr` must be null or valid for a write of `T`.
unsafe fn write_out<T>(ptr: *mut T, value: T) -> Result<()> {
    if ptr.is_null() {
        return Err(Error(CKR_ARGUMENTS_BAD));
    }
    // SAFETY: non-null, and the caller guarantees validity for writes of T.
    unsafe { ptr.write(value) };
    Ok(())
}

/// `C_Initialize` (PKCS#11 v2.40 §5.4). Accepts null args, `CKF_OS_LOCKING_OK` and
/// application-supplied mutex callbacks (all four or none); `pReserved` may carry the
/// init string `ukey_conf=/path`.
pub(crate) extern "C" fn C_Initialize(pInitArgs: *mut c_void) -> CK_RV {
    run("C_Initialize", || {
        let mut init_string = None;
        if !pInitArgs.is_null() {
            // SAFETY: PKCS#11 says a non-null pInitArgs points to a CK_C_INITIALIZE_ARGS.
            let args = unsafe { &*(pInitArgs as *const CK_C_INITIALIZE_ARGS) };
            let fns = [
                args.CreateMutex.is_some(),
                args.DestroyMutex.is_some(),
                args.LockMutex.is_some(),
                args.UnlockMutex.is_some(),
            ];
            if fns.iter().any(|&b| b) && !fns.iter().all(|&b| b) {
                return Err(Error(CKR_ARGUMENTS_BAD));
            }
            if !args.pReserved.is_null() {
                // SAFETY: our documented init string is a NUL-terminated C string.
                let s = unsafe { CStr::from_ptr(args.pReserved as *const _) };
                init_string = Some(s.to_str().map_err(|_| Error(CKR_ARGUMENTS_BAD))?.to_owned());
            }
        }
        api::initialize(init_string.as_deref())
    })
}

/// `C_Finalize`.
pub(crate) extern "C" fn C_Finalize(pReserved: *mut c_void) -> CK_RV {
    run("C_Finalize", || {
        if !pReserved.is_null() {
            return Err(Error(CKR_ARGUMENTS_BAD));
        }
        api::finalize()
    })
}

/// `C_GetInfo`.
pub(crate) extern "C" fn C_GetInfo(pInfo: *mut CK_INFO) -> CK_RV {
    run("C_GetInfo", || {
        if pInfo.is_null() {
            return Err(Error(CKR_ARGUMENTS_BAD));
        }
        let info = api::info()?;
        // SAFETY: checked non-null; the caller provides a CK_INFO.
        unsafe { write_out(pInfo, info) }
    })
}

/// `C_GetSlotList`, with the two-call length protocol.
pub(crate) extern "C" fn C_GetSlotList(
    tokenPresent: CK_BBOOL,
    pSlotList: *mut CK_SLOT_ID,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    run("C_GetSlotList", || {
        if pulCount.is_null() {
            return Err(Error(CKR_ARGUMENTS_BAD));
        }
        let slots = api::slot_list(tokenPresent != 0)?;
        let n = slots.len() as CK_ULONG;
        if pSlotList.is_null() {
            // SAFETY: checked non-null.
            return unsafe { write_out(pulCount, n) };
        }
        // SAFETY: checked non-null; the caller's count gives the buffer capacity.
        let cap = unsafe { pulCount.read() };
        if cap < n {
            // SAFETY: checked non-null.
            unsafe { write_out(pulCount, n)? };
            return Err(Error(CKR_BUFFER_TOO_SMALL));
        }
        // SAFETY: pSlotList holds at least `cap >= n` slot IDs, as the caller declared.
        let out = unsafe { std::slice::from_raw_parts_mut(pSlotList, slots.len()) };
        out.copy_from_slice(&slots);
        // SAFETY: checked non-null.
        unsafe { write_out(pulCount, n) }
    })
}

/// `C_GetSlotInfo`.
pub(crate) extern "C" fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) -> CK_RV {
    run("C_GetSlotInfo", || {
        if pInfo.is_null() {
            return Err(Error(CKR_ARGUMENTS_BAD));
        }
        let info = api::slot_info(slotID)?;
        // SAFETY: checked non-null; the caller provides a CK_SLOT_INFO.
        unsafe { write_out(pInfo, info) }
    })
}

/// `C_GetTokenInfo`.
pub(crate) extern "C" fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) -> CK_RV {
    run("C_GetTokenInfo", || {
        if pInfo.is_null() {
            return Err(Error(CKR_ARGUMENTS_BAD));
        }
        let info = api::token_info(slotID)?;
        // SAFETY: checked non-null; the caller provides a CK_TOKEN_INFO.
        unsafe { write_out(pInfo, info) }
    })
}

/// `C_GetFunctionList`: the v2.40 function list. Exported.
///
/// # Safety
/// `ppFunctionList` must be null or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    run("C_GetFunctionList", || {
        let list = &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        // SAFETY: the caller passes null (rejected) or a valid out-pointer.
        unsafe { write_out(ppFunctionList, list) }
    })
}

extern "C" fn get_function_list(pp: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    // SAFETY: same contract as the exported function.
    unsafe { C_GetFunctionList(pp) }
}

static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(get_function_list),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};
