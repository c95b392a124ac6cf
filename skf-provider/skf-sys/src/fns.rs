//! Function-pointer types of the SKF entry points, after the prototypes of
//! `include/skf.h`, for code that resolves them from a vendor library at run time (the
//! vendor-SKF bridge). Each type is named after its function.

use crate::{
    BOOL, BYTE, DEVHANDLE, DEVINFO, DWORD, ECCCIPHERBLOB, ECCPUBLICKEYBLOB, ECCSIGNATUREBLOB,
    ENVELOPEDKEYBLOB, FILEATTRIBUTE, HANDLE, HAPPLICATION, HCONTAINER, LPSTR, RSAPUBLICKEYBLOB,
    ULONG,
};

macro_rules! fn_types {
    ($($name:ident ( $($arg:ty),* );)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "` (include/skf.h).")]
            pub type $name = unsafe extern "system" fn($($arg),*) -> ULONG;
        )*
    };
}

fn_types! {
    SKF_EnumDev(BOOL, LPSTR, *mut ULONG);
    SKF_ConnectDev(LPSTR, *mut DEVHANDLE);
    SKF_DisConnectDev(DEVHANDLE);
    SKF_GetDevInfo(DEVHANDLE, *mut DEVINFO);
    SKF_SetLabel(DEVHANDLE, LPSTR);
    SKF_GenRandom(DEVHANDLE, *mut BYTE, ULONG);
    SKF_DevAuth(DEVHANDLE, *mut BYTE, ULONG);
    SKF_ChangeDevAuthKey(DEVHANDLE, *mut BYTE, ULONG);
    SKF_ChangePIN(HAPPLICATION, ULONG, LPSTR, LPSTR, *mut ULONG);
    SKF_GetPINInfo(HAPPLICATION, ULONG, *mut ULONG, *mut ULONG, *mut BOOL);
    SKF_VerifyPIN(HAPPLICATION, ULONG, LPSTR, *mut ULONG);
    SKF_UnblockPIN(HAPPLICATION, LPSTR, LPSTR, *mut ULONG);
    SKF_ClearSecureState(HAPPLICATION);
    SKF_CreateApplication(DEVHANDLE, LPSTR, LPSTR, DWORD, LPSTR, DWORD, DWORD, *mut HAPPLICATION);
    SKF_EnumApplication(DEVHANDLE, LPSTR, *mut ULONG);
    SKF_DeleteApplication(DEVHANDLE, LPSTR);
    SKF_OpenApplication(DEVHANDLE, LPSTR, *mut HAPPLICATION);
    SKF_CloseApplication(HAPPLICATION);
    SKF_CreateFile(HAPPLICATION, LPSTR, ULONG, ULONG, ULONG);
    SKF_DeleteFile(HAPPLICATION, LPSTR);
    SKF_EnumFiles(HAPPLICATION, LPSTR, *mut ULONG);
    SKF_GetFileInfo(HAPPLICATION, LPSTR, *mut FILEATTRIBUTE);
    SKF_ReadFile(HAPPLICATION, LPSTR, ULONG, ULONG, *mut BYTE, *mut ULONG);
    SKF_WriteFile(HAPPLICATION, LPSTR, ULONG, *mut BYTE, ULONG);
    SKF_CreateContainer(HAPPLICATION, LPSTR, *mut HCONTAINER);
    SKF_DeleteContainer(HAPPLICATION, LPSTR);
    SKF_OpenContainer(HAPPLICATION, LPSTR, *mut HCONTAINER);
    SKF_CloseContainer(HCONTAINER);
    SKF_EnumContainer(HAPPLICATION, LPSTR, *mut ULONG);
    SKF_GetContainerType(HCONTAINER, *mut ULONG);
    SKF_ImportCertificate(HCONTAINER, BOOL, *mut BYTE, ULONG);
    SKF_ExportCertificate(HCONTAINER, BOOL, *mut BYTE, *mut ULONG);
    SKF_GenRSAKeyPair(HCONTAINER, ULONG, *mut RSAPUBLICKEYBLOB);
    SKF_RSASignData(HCONTAINER, *mut BYTE, ULONG, *mut BYTE, *mut ULONG);
    SKF_GenECCKeyPair(HCONTAINER, ULONG, *mut ECCPUBLICKEYBLOB);
    SKF_ImportECCKeyPair(HCONTAINER, *mut ENVELOPEDKEYBLOB);
    SKF_ECCSignData(HCONTAINER, *mut BYTE, ULONG, *mut ECCSIGNATUREBLOB);
    SKF_ExportPublicKey(HCONTAINER, BOOL, *mut BYTE, *mut ULONG);
    SKF_ECCDecrypt(HCONTAINER, *mut ECCCIPHERBLOB, *mut BYTE, *mut ULONG);
    SKF_CloseHandle(HANDLE);
}
