//! The function lists (v2.40 and 3.0), the interfaces, and the three exported symbols.

#![allow(non_snake_case)]

use std::ffi::CStr;

use cryptoki_sys::*;

use super::args::write;
use super::entry::run;
use super::functions::*;
use crate::error::{Error, Result};

/// The interface name of both lists.
static NAME: &CStr = c"PKCS 11";

/// `C_GetFunctionList`: the v2.40 function list. Exported.
///
/// # Safety
/// `ppFunctionList` must be null or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    run("C_GetFunctionList", || {
        let list = &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        // SAFETY: the caller passes null (rejected) or a valid out-pointer.
        unsafe { write(ppFunctionList, list) }
    })
}

extern "C" fn get_function_list(pp: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    // SAFETY: same contract as the exported function.
    unsafe { C_GetFunctionList(pp) }
}

fn interfaces() -> [CK_INTERFACE; 2] {
    [
        CK_INTERFACE {
            pInterfaceName: NAME.as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: &FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0
                as *mut std::ffi::c_void,
            flags: 0,
        },
        CK_INTERFACE {
            pInterfaceName: NAME.as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut std::ffi::c_void,
            flags: 0,
        },
    ]
}

/// Copies the interfaces under the two-call protocol.
///
/// # Safety
/// `count` must be null or valid; a non-null `list` holds `*count` entries.
unsafe fn interface_list(list: *mut CK_INTERFACE, count: *mut CK_ULONG) -> Result<()> {
    if count.is_null() {
        return Err(Error::ARGS);
    }
    let all = interfaces();
    if list.is_null() {
        // SAFETY: checked non-null.
        return unsafe { write(count, all.len() as CK_ULONG) };
    }
    // SAFETY: checked non-null.
    let cap = unsafe { count.read() };
    // SAFETY: checked non-null.
    unsafe { write(count, all.len() as CK_ULONG) }?;
    if (cap as usize) < all.len() {
        return Err(Error(CKR_BUFFER_TOO_SMALL));
    }
    // SAFETY: the caller's array holds `cap >= all.len()` entries.
    unsafe { std::ptr::copy_nonoverlapping(all.as_ptr(), list, all.len()) };
    Ok(())
}

/// `C_GetInterfaceList` (3.0): "PKCS 11" 3.0, then 2.40. Exported.
///
/// # Safety
/// As PKCS#11 3.0 §5.2.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterfaceList(
    pInterfacesList: *mut CK_INTERFACE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded contract.
    run("C_GetInterfaceList", || unsafe {
        interface_list(pInterfacesList, pulCount)
    })
}

extern "C" fn get_interface_list(p: *mut CK_INTERFACE, c: *mut CK_ULONG) -> CK_RV {
    // SAFETY: same contract as the exported function.
    unsafe { C_GetInterfaceList(p, c) }
}

/// The interface a `C_GetInterface` call asks for.
///
/// # Safety
/// `name` null or a NUL-terminated string; `version` null or valid.
unsafe fn find_interface(
    name: *const CK_UTF8CHAR,
    version: *const CK_VERSION,
    flags: CK_FLAGS,
) -> Result<&'static CK_INTERFACE> {
    use std::sync::OnceLock;
    struct Ifaces([CK_INTERFACE; 2]);
    // SAFETY: the interfaces point at immutable statics only.
    unsafe impl Sync for Ifaces {}
    // SAFETY: as above.
    unsafe impl Send for Ifaces {}
    static IFACES: OnceLock<Ifaces> = OnceLock::new();
    let all = &IFACES.get_or_init(|| Ifaces(interfaces())).0;
    if !name.is_null() {
        // SAFETY: the caller passes a NUL-terminated name.
        let n = unsafe { CStr::from_ptr(name as *const std::ffi::c_char) };
        if n != NAME {
            return Err(Error(CKR_FUNCTION_FAILED));
        }
    }
    if flags != 0 {
        return Err(Error(CKR_FUNCTION_FAILED));
    }
    if version.is_null() {
        return Ok(&all[0]);
    }
    // SAFETY: checked non-null.
    let v = unsafe { version.read() };
    match (v.major, v.minor) {
        (3, 0) => Ok(&all[0]),
        (2, 40) => Ok(&all[1]),
        _ => Err(Error(CKR_FUNCTION_FAILED)),
    }
}

/// `C_GetInterface` (3.0): null name/version give the 3.0 default. Exported.
///
/// # Safety
/// As PKCS#11 3.0 §5.2.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterface(
    pInterfaceName: *mut CK_UTF8CHAR,
    pVersion: *mut CK_VERSION,
    ppInterface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    run("C_GetInterface", || {
        if ppInterface.is_null() {
            return Err(Error::ARGS);
        }
        // SAFETY: forwarded contract.
        let i = unsafe { find_interface(pInterfaceName, pVersion, flags) }?;
        // SAFETY: checked non-null.
        unsafe { write(ppInterface, i as *const CK_INTERFACE as *mut CK_INTERFACE) }
    })
}

extern "C" fn get_interface(
    n: *mut CK_UTF8CHAR,
    v: *mut CK_VERSION,
    pp: *mut *mut CK_INTERFACE,
    f: CK_FLAGS,
) -> CK_RV {
    // SAFETY: same contract as the exported function.
    unsafe { C_GetInterface(n, v, pp, f) }
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

static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = CK_FUNCTION_LIST_3_0 {
    version: CK_VERSION { major: 3, minor: 0 },
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
    C_GetInterfaceList: Some(get_interface_list),
    C_GetInterface: Some(get_interface),
    C_LoginUser: Some(C_LoginUser),
    C_SessionCancel: Some(C_SessionCancel),
    C_MessageEncryptInit: Some(C_MessageEncryptInit),
    C_EncryptMessage: Some(C_EncryptMessage),
    C_EncryptMessageBegin: Some(C_EncryptMessageBegin),
    C_EncryptMessageNext: Some(C_EncryptMessageNext),
    C_MessageEncryptFinal: Some(C_MessageEncryptFinal),
    C_MessageDecryptInit: Some(C_MessageDecryptInit),
    C_DecryptMessage: Some(C_DecryptMessage),
    C_DecryptMessageBegin: Some(C_DecryptMessageBegin),
    C_DecryptMessageNext: Some(C_DecryptMessageNext),
    C_MessageDecryptFinal: Some(C_MessageDecryptFinal),
    C_MessageSignInit: Some(C_MessageSignInit),
    C_SignMessage: Some(C_SignMessage),
    C_SignMessageBegin: Some(C_SignMessageBegin),
    C_SignMessageNext: Some(C_SignMessageNext),
    C_MessageSignFinal: Some(C_MessageSignFinal),
    C_MessageVerifyInit: Some(C_MessageVerifyInit),
    C_VerifyMessage: Some(C_VerifyMessage),
    C_VerifyMessageBegin: Some(C_VerifyMessageBegin),
    C_VerifyMessageNext: Some(C_VerifyMessageNext),
    C_MessageVerifyFinal: Some(C_MessageVerifyFinal),
};
