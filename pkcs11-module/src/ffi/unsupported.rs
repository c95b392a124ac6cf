//! Entry points of the v2.40 function list that this build does not offer yet.
//!
//! Each answers `CKR_FUNCTION_NOT_SUPPORTED`, as PKCS#11 §5 allows for functions a module
//! does not support. Generated from the `cryptoki-sys` prototypes; the PKCS#11 issue replaces
//! them one by one with real entry points.

#![allow(non_snake_case)]

use cryptoki_sys::*;

/// `C_GetMechanismList`: not supported by this build.
pub(crate) extern "C" fn C_GetMechanismList(
    _arg1: CK_SLOT_ID,
    _arg2: *mut CK_MECHANISM_TYPE,
    _arg3: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_GetMechanismInfo`: not supported by this build.
pub(crate) extern "C" fn C_GetMechanismInfo(
    _arg1: CK_SLOT_ID,
    _arg2: CK_MECHANISM_TYPE,
    _arg3: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_InitToken`: not supported by this build.
pub(crate) extern "C" fn C_InitToken(
    _arg1: CK_SLOT_ID,
    _arg2: *mut CK_UTF8CHAR,
    _arg3: CK_ULONG,
    _arg4: *mut CK_UTF8CHAR,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_InitPIN`: not supported by this build.
pub(crate) extern "C" fn C_InitPIN(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_UTF8CHAR,
    _arg3: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SetPIN`: not supported by this build.
pub(crate) extern "C" fn C_SetPIN(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_UTF8CHAR,
    _arg3: CK_ULONG,
    _arg4: *mut CK_UTF8CHAR,
    _arg5: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_OpenSession`: not supported by this build.
pub(crate) extern "C" fn C_OpenSession(
    _arg1: CK_SLOT_ID,
    _arg2: CK_FLAGS,
    _arg3: *mut ::std::os::raw::c_void,
    _arg4: CK_NOTIFY,
    _arg5: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_CloseSession`: not supported by this build.
pub(crate) extern "C" fn C_CloseSession(_arg1: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_CloseAllSessions`: not supported by this build.
pub(crate) extern "C" fn C_CloseAllSessions(_arg1: CK_SLOT_ID) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_GetSessionInfo`: not supported by this build.
pub(crate) extern "C" fn C_GetSessionInfo(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_SESSION_INFO,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_GetOperationState`: not supported by this build.
pub(crate) extern "C" fn C_GetOperationState(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SetOperationState`: not supported by this build.
pub(crate) extern "C" fn C_SetOperationState(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: CK_OBJECT_HANDLE,
    _arg5: CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_Login`: not supported by this build.
pub(crate) extern "C" fn C_Login(
    _arg1: CK_SESSION_HANDLE,
    _arg2: CK_USER_TYPE,
    _arg3: *mut CK_UTF8CHAR,
    _arg4: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_Logout`: not supported by this build.
pub(crate) extern "C" fn C_Logout(_arg1: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_CreateObject`: not supported by this build.
pub(crate) extern "C" fn C_CreateObject(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_ATTRIBUTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_CopyObject`: not supported by this build.
pub(crate) extern "C" fn C_CopyObject(
    _arg1: CK_SESSION_HANDLE,
    _arg2: CK_OBJECT_HANDLE,
    _arg3: *mut CK_ATTRIBUTE,
    _arg4: CK_ULONG,
    _arg5: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DestroyObject`: not supported by this build.
pub(crate) extern "C" fn C_DestroyObject(
    _arg1: CK_SESSION_HANDLE,
    _arg2: CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_GetObjectSize`: not supported by this build.
pub(crate) extern "C" fn C_GetObjectSize(
    _arg1: CK_SESSION_HANDLE,
    _arg2: CK_OBJECT_HANDLE,
    _arg3: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_GetAttributeValue`: not supported by this build.
pub(crate) extern "C" fn C_GetAttributeValue(
    _arg1: CK_SESSION_HANDLE,
    _arg2: CK_OBJECT_HANDLE,
    _arg3: *mut CK_ATTRIBUTE,
    _arg4: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SetAttributeValue`: not supported by this build.
pub(crate) extern "C" fn C_SetAttributeValue(
    _arg1: CK_SESSION_HANDLE,
    _arg2: CK_OBJECT_HANDLE,
    _arg3: *mut CK_ATTRIBUTE,
    _arg4: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_FindObjectsInit`: not supported by this build.
pub(crate) extern "C" fn C_FindObjectsInit(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_ATTRIBUTE,
    _arg3: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_FindObjects`: not supported by this build.
pub(crate) extern "C" fn C_FindObjects(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_OBJECT_HANDLE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_FindObjectsFinal`: not supported by this build.
pub(crate) extern "C" fn C_FindObjectsFinal(_arg1: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_EncryptInit`: not supported by this build.
pub(crate) extern "C" fn C_EncryptInit(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_Encrypt`: not supported by this build.
pub(crate) extern "C" fn C_Encrypt(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_EncryptUpdate`: not supported by this build.
pub(crate) extern "C" fn C_EncryptUpdate(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_EncryptFinal`: not supported by this build.
pub(crate) extern "C" fn C_EncryptFinal(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DecryptInit`: not supported by this build.
pub(crate) extern "C" fn C_DecryptInit(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_Decrypt`: not supported by this build.
pub(crate) extern "C" fn C_Decrypt(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DecryptUpdate`: not supported by this build.
pub(crate) extern "C" fn C_DecryptUpdate(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DecryptFinal`: not supported by this build.
pub(crate) extern "C" fn C_DecryptFinal(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DigestInit`: not supported by this build.
pub(crate) extern "C" fn C_DigestInit(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_MECHANISM) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_Digest`: not supported by this build.
pub(crate) extern "C" fn C_Digest(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DigestUpdate`: not supported by this build.
pub(crate) extern "C" fn C_DigestUpdate(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DigestKey`: not supported by this build.
pub(crate) extern "C" fn C_DigestKey(_arg1: CK_SESSION_HANDLE, _arg2: CK_OBJECT_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DigestFinal`: not supported by this build.
pub(crate) extern "C" fn C_DigestFinal(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SignInit`: not supported by this build.
pub(crate) extern "C" fn C_SignInit(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_Sign`: not supported by this build.
pub(crate) extern "C" fn C_Sign(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SignUpdate`: not supported by this build.
pub(crate) extern "C" fn C_SignUpdate(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SignFinal`: not supported by this build.
pub(crate) extern "C" fn C_SignFinal(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SignRecoverInit`: not supported by this build.
pub(crate) extern "C" fn C_SignRecoverInit(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SignRecover`: not supported by this build.
pub(crate) extern "C" fn C_SignRecover(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_VerifyInit`: not supported by this build.
pub(crate) extern "C" fn C_VerifyInit(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_Verify`: not supported by this build.
pub(crate) extern "C" fn C_Verify(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_VerifyUpdate`: not supported by this build.
pub(crate) extern "C" fn C_VerifyUpdate(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_VerifyFinal`: not supported by this build.
pub(crate) extern "C" fn C_VerifyFinal(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_VerifyRecoverInit`: not supported by this build.
pub(crate) extern "C" fn C_VerifyRecoverInit(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_VerifyRecover`: not supported by this build.
pub(crate) extern "C" fn C_VerifyRecover(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DigestEncryptUpdate`: not supported by this build.
pub(crate) extern "C" fn C_DigestEncryptUpdate(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DecryptDigestUpdate`: not supported by this build.
pub(crate) extern "C" fn C_DecryptDigestUpdate(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SignEncryptUpdate`: not supported by this build.
pub(crate) extern "C" fn C_SignEncryptUpdate(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DecryptVerifyUpdate`: not supported by this build.
pub(crate) extern "C" fn C_DecryptVerifyUpdate(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
    _arg4: *mut CK_BYTE,
    _arg5: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_GenerateKey`: not supported by this build.
pub(crate) extern "C" fn C_GenerateKey(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: *mut CK_ATTRIBUTE,
    _arg4: CK_ULONG,
    _arg5: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_GenerateKeyPair`: not supported by this build.
pub(crate) extern "C" fn C_GenerateKeyPair(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: *mut CK_ATTRIBUTE,
    _arg4: CK_ULONG,
    _arg5: *mut CK_ATTRIBUTE,
    _arg6: CK_ULONG,
    _arg7: *mut CK_OBJECT_HANDLE,
    _arg8: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_WrapKey`: not supported by this build.
pub(crate) extern "C" fn C_WrapKey(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: CK_OBJECT_HANDLE,
    _arg4: CK_OBJECT_HANDLE,
    _arg5: *mut CK_BYTE,
    _arg6: *mut CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_UnwrapKey`: not supported by this build.
pub(crate) extern "C" fn C_UnwrapKey(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: CK_OBJECT_HANDLE,
    _arg4: *mut CK_BYTE,
    _arg5: CK_ULONG,
    _arg6: *mut CK_ATTRIBUTE,
    _arg7: CK_ULONG,
    _arg8: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_DeriveKey`: not supported by this build.
pub(crate) extern "C" fn C_DeriveKey(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_MECHANISM,
    _arg3: CK_OBJECT_HANDLE,
    _arg4: *mut CK_ATTRIBUTE,
    _arg5: CK_ULONG,
    _arg6: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_SeedRandom`: not supported by this build.
pub(crate) extern "C" fn C_SeedRandom(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_GenerateRandom`: not supported by this build.
pub(crate) extern "C" fn C_GenerateRandom(
    _arg1: CK_SESSION_HANDLE,
    _arg2: *mut CK_BYTE,
    _arg3: CK_ULONG,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_GetFunctionStatus`: not supported by this build.
pub(crate) extern "C" fn C_GetFunctionStatus(_arg1: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_CancelFunction`: not supported by this build.
pub(crate) extern "C" fn C_CancelFunction(_arg1: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}

/// `C_WaitForSlotEvent`: not supported by this build.
pub(crate) extern "C" fn C_WaitForSlotEvent(
    _arg1: CK_FLAGS,
    _arg2: *mut CK_SLOT_ID,
    _arg3: *mut ::std::os::raw::c_void,
) -> CK_RV {
    CKR_FUNCTION_NOT_SUPPORTED
}
