//! Applications (§7.3), files (§7.4) and containers (§7.5).

#![allow(non_snake_case)]

use std::sync::Arc;

use skf_sys::*;
use token_hal::crypto::KeyAlg;
use token_hal::model::{AppParams, ContainerInfo, KeyUsage, Rights};

use super::entry::{bytes, cstr, nonnull, pin, run, struct_bytes, write, write_sized};
use super::handles::{self, Obj};
use crate::api::device::name_list;
use crate::api::objects::{AppObj, ConObj};
use crate::error::{Error, Result};

/// Longest application name (bytes).
pub(crate) const MAX_APP_NAME: usize = 32;
/// Longest container name (bytes).
pub(crate) const MAX_CONTAINER_NAME: usize = MAX_FILE_CONTAINER_NAME_SIZE;
/// Longest file name (bytes).
pub(crate) const MAX_FILE_NAME: usize = MAX_FILE_NAME_SIZE;

fn retries(n: DWORD) -> Result<u32> {
    if (1..=255).contains(&n) {
        Ok(n)
    } else {
        Err(Error::INVALID_PARAM)
    }
}

/// `SKF_CreateApplication` (§7.3.2): needs device authentication on `hDev`.
///
/// # Safety
/// The strings NUL-terminated; `phApplication` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_CreateApplication(
    hDev: DEVHANDLE,
    szAppName: LPSTR,
    szAdminPin: LPSTR,
    dwAdminPinRetryCount: DWORD,
    szUserPin: LPSTR,
    dwUserPinRetryCount: DWORD,
    dwCreateFileRights: DWORD,
    phApplication: *mut HAPPLICATION,
) -> ULONG {
    run("SKF_CreateApplication", || {
        let d = handles::dev(hDev)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szAppName, MAX_APP_NAME) }?;
        // SAFETY: as above.
        let (admin, user) = unsafe { (pin(szAdminPin)?, pin(szUserPin)?) };
        admin.check_policy().map_err(|_| Error::PIN_LEN)?;
        user.check_policy().map_err(|_| Error::PIN_LEN)?;
        nonnull(phApplication)?;
        let params = AppParams {
            admin_pin: admin,
            admin_retries: retries(dwAdminPinRetryCount)?,
            user_pin: Some(user),
            user_retries: retries(dwUserPinRetryCount)?,
            create_file_rights: Rights(dwCreateFileRights),
        };
        d.device.create_app(&name, &params).map_err(Error::app)?;
        let app = d.device.open_app(&name).map_err(Error::app)?;
        let h = handles::insert(
            Obj::App(Arc::new(AppObj {
                dev_handle: hDev as usize,
                app,
            })),
            Some(hDev as usize),
        )?;
        // SAFETY: checked non-null.
        unsafe { write(phApplication, handles::to_c(h)) }
    })
}

/// `SKF_EnumApplication` (§7.3.3).
///
/// # Safety
/// `pulSize` valid; `szAppName`, when non-null, valid for `*pulSize` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_EnumApplication(
    hDev: DEVHANDLE,
    szAppName: LPSTR,
    pulSize: *mut ULONG,
) -> ULONG {
    run("SKF_EnumApplication", || {
        let d = handles::dev(hDev)?;
        let list = name_list(&d.device.list_apps()?);
        // SAFETY: the caller's contract.
        unsafe { write_sized(szAppName, pulSize, &list) }
    })
}

/// `SKF_DeleteApplication` (§7.3.4): needs device authentication on `hDev`.
///
/// # Safety
/// `szAppName` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DeleteApplication(hDev: DEVHANDLE, szAppName: LPSTR) -> ULONG {
    run("SKF_DeleteApplication", || {
        let d = handles::dev(hDev)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szAppName, MAX_APP_NAME) }?;
        d.device.delete_app(&name).map_err(Error::app)
    })
}

/// `SKF_OpenApplication` (§7.3.5).
///
/// # Safety
/// `szAppName` NUL-terminated; `phApplication` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_OpenApplication(
    hDev: DEVHANDLE,
    szAppName: LPSTR,
    phApplication: *mut HAPPLICATION,
) -> ULONG {
    run("SKF_OpenApplication", || {
        let d = handles::dev(hDev)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szAppName, MAX_APP_NAME) }?;
        nonnull(phApplication)?;
        let app = d.device.open_app(&name).map_err(Error::app)?;
        let h = handles::insert(
            Obj::App(Arc::new(AppObj {
                dev_handle: hDev as usize,
                app,
            })),
            Some(hDev as usize),
        )?;
        // SAFETY: checked non-null.
        unsafe { write(phApplication, handles::to_c(h)) }
    })
}

/// `SKF_CloseApplication` (§7.3.6): closes the handle and its containers; logs out.
#[unsafe(no_mangle)]
pub extern "system" fn SKF_CloseApplication(hApplication: HAPPLICATION) -> ULONG {
    run("SKF_CloseApplication", || {
        let Obj::App(a) = handles::remove(hApplication, |o| matches!(o, Obj::App(_)))? else {
            return Err(Error::INVALID_HANDLE);
        };
        a.app.logout();
        Ok(())
    })
}

// --- §7.4 files ---------------------------------------------------------------------------

/// `SKF_CreateFile` (§7.4.2): a zero-filled file of fixed size; needs the application's
/// create-file right.
///
/// # Safety
/// `szFileName` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_CreateFile(
    hApplication: HAPPLICATION,
    szFileName: LPSTR,
    ulFileSize: ULONG,
    ulReadRights: ULONG,
    ulWriteRights: ULONG,
) -> ULONG {
    run("SKF_CreateFile", || {
        let a = handles::app(hApplication)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szFileName, MAX_FILE_NAME) }?;
        a.app
            .create_file(
                &name,
                ulFileSize,
                Rights(ulReadRights),
                Rights(ulWriteRights),
            )
            .map_err(Error::file)
    })
}

/// `SKF_DeleteFile` (§7.4.3): needs the file's write right.
///
/// # Safety
/// `szFileName` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DeleteFile(
    hApplication: HAPPLICATION,
    szFileName: LPSTR,
) -> ULONG {
    run("SKF_DeleteFile", || {
        let a = handles::app(hApplication)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szFileName, MAX_FILE_NAME) }?;
        a.app.delete_file(&name).map_err(Error::file)
    })
}

/// `SKF_EnumFiles` (§7.4.4).
///
/// # Safety
/// `pulSize` valid; `szFileList`, when non-null, valid for `*pulSize` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_EnumFiles(
    hApplication: HAPPLICATION,
    szFileList: LPSTR,
    pulSize: *mut ULONG,
) -> ULONG {
    run("SKF_EnumFiles", || {
        let a = handles::app(hApplication)?;
        let names: Vec<String> = a.app.list_files()?.into_iter().map(|f| f.name).collect();
        // SAFETY: the caller's contract.
        unsafe { write_sized(szFileList, pulSize, &name_list(&names)) }
    })
}

/// `SKF_GetFileInfo` (§7.4.5).
///
/// # Safety
/// `szFileName` NUL-terminated; `pFileInfo` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GetFileInfo(
    hApplication: HAPPLICATION,
    szFileName: LPSTR,
    pFileInfo: *mut FILEATTRIBUTE,
) -> ULONG {
    run("SKF_GetFileInfo", || {
        let a = handles::app(hApplication)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szFileName, MAX_FILE_NAME) }?;
        nonnull(pFileInfo)?;
        let i = a.app.file_info(&name).map_err(Error::file)?;
        let mut fname = [0u8; 32];
        let n = i.name.len().min(31);
        fname[..n].copy_from_slice(&i.name.as_bytes()[..n]);
        let fa = FILEATTRIBUTE {
            FileName: fname,
            FileSize: i.size,
            ReadRights: i.read_rights.0,
            WriteRights: i.write_rights.0,
        };
        // SAFETY: checked non-null.
        unsafe { write(pFileInfo, fa) }
    })
}

/// `SKF_ReadFile` (§7.4.6): up to `ulSize` bytes at `ulOffset` (fewer at the end of the
/// file); needs the read right. `*pulOutLen` is the buffer capacity on input.
///
/// # Safety
/// `szFileName` NUL-terminated; `pulOutLen` valid; `pbOutData`, when non-null, valid for
/// `*pulOutLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ReadFile(
    hApplication: HAPPLICATION,
    szFileName: LPSTR,
    ulOffset: ULONG,
    ulSize: ULONG,
    pbOutData: *mut BYTE,
    pulOutLen: *mut ULONG,
) -> ULONG {
    run("SKF_ReadFile", || {
        let a = handles::app(hApplication)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szFileName, MAX_FILE_NAME) }?;
        nonnull(pulOutLen)?;
        let info = a.app.file_info(&name).map_err(Error::file)?;
        if ulOffset > info.size {
            return Err(Error::INVALID_PARAM);
        }
        let data = a
            .app
            .read_file(&name, ulOffset, ulSize)
            .map_err(Error::file)?;
        // SAFETY: the caller's contract.
        unsafe { write_sized(pbOutData, pulOutLen, &data) }
    })
}

/// `SKF_WriteFile` (§7.4.7): needs the write right; the file does not grow.
///
/// # Safety
/// `szFileName` NUL-terminated; `pbData` valid for `ulSize` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_WriteFile(
    hApplication: HAPPLICATION,
    szFileName: LPSTR,
    ulOffset: ULONG,
    pbData: *mut BYTE,
    ulSize: ULONG,
) -> ULONG {
    run("SKF_WriteFile", || {
        let a = handles::app(hApplication)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szFileName, MAX_FILE_NAME) }?;
        // SAFETY: as above.
        let data = unsafe { bytes(pbData, ulSize) }?;
        a.app.write_file(&name, ulOffset, data).map_err(Error::file)
    })
}

// --- §7.5 containers ------------------------------------------------------------------------

/// The SKF type of a key algorithm: 2 for SM2, 1 for RSA ≤ 2048, None otherwise.
fn skf_type(alg: KeyAlg) -> Option<ULONG> {
    match alg {
        KeyAlg::Sm2 => Some(CONTAINER_TYPE_ECC),
        KeyAlg::Rsa(b) if b <= 2048 => Some(CONTAINER_TYPE_RSA),
        _ => None,
    }
}

/// The container type the SKF face shows (docs/mapping.md).
pub(crate) fn container_type(c: &ContainerInfo) -> ULONG {
    [c.sign.as_ref(), c.enc.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|k| skf_type(k.alg))
        .unwrap_or(CONTAINER_TYPE_EMPTY)
}

/// Whether the SKF face lists a container: empty ones and those with an SM2 or
/// RSA-2048 key; containers holding only keys SKF cannot express are PKCS#11-only.
fn listed(c: &ContainerInfo) -> bool {
    (c.sign.is_none() && c.enc.is_none()) || container_type(c) != CONTAINER_TYPE_EMPTY
}

fn open_container(hApplication: HAPPLICATION, name: String, create: bool) -> Result<usize> {
    let a = handles::app(hApplication)?;
    if create {
        a.app
            .create_container(&name, None)
            .map_err(Error::container)?;
    } else {
        let c = a.app.container(&name).map_err(Error::container)?;
        if !listed(&c) {
            return Err(Error::FAIL);
        }
    }
    handles::insert(
        Obj::Con(Arc::new(ConObj::new(a, name))),
        Some(hApplication as usize),
    )
}

/// `SKF_CreateContainer` (§7.5.2): needs the user PIN. Its PKCS#11 CKA_ID is its name.
///
/// # Safety
/// `szContainerName` NUL-terminated; `phContainer` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_CreateContainer(
    hApplication: HAPPLICATION,
    szContainerName: LPSTR,
    phContainer: *mut HCONTAINER,
) -> ULONG {
    run("SKF_CreateContainer", || {
        handles::check_app(hApplication)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szContainerName, MAX_CONTAINER_NAME) }?;
        nonnull(phContainer)?;
        let h = open_container(hApplication, name, true)?;
        // SAFETY: checked non-null.
        unsafe { write(phContainer, handles::to_c(h)) }
    })
}

/// `SKF_DeleteContainer` (§7.5.3): needs the user PIN.
///
/// # Safety
/// `szContainerName` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DeleteContainer(
    hApplication: HAPPLICATION,
    szContainerName: LPSTR,
) -> ULONG {
    run("SKF_DeleteContainer", || {
        let a = handles::app(hApplication)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szContainerName, MAX_CONTAINER_NAME) }?;
        a.app.delete_container(&name).map_err(Error::container)
    })
}

/// `SKF_OpenContainer` (§7.5.4).
///
/// # Safety
/// `szContainerName` NUL-terminated; `phContainer` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_OpenContainer(
    hApplication: HAPPLICATION,
    szContainerName: LPSTR,
    phContainer: *mut HCONTAINER,
) -> ULONG {
    run("SKF_OpenContainer", || {
        handles::check_app(hApplication)?;
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szContainerName, MAX_CONTAINER_NAME) }?;
        nonnull(phContainer)?;
        let h = open_container(hApplication, name, false)?;
        // SAFETY: checked non-null.
        unsafe { write(phContainer, handles::to_c(h)) }
    })
}

/// `SKF_CloseContainer` (§7.5.5).
#[unsafe(no_mangle)]
pub extern "system" fn SKF_CloseContainer(hContainer: HCONTAINER) -> ULONG {
    run("SKF_CloseContainer", || {
        handles::remove(hContainer, |o| matches!(o, Obj::Con(_))).map(drop)
    })
}

/// `SKF_EnumContainer` (§7.5.6): the containers the SKF face shows (docs/mapping.md).
///
/// # Safety
/// `pulSize` valid; `szContainerName`, when non-null, valid for `*pulSize` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_EnumContainer(
    hApplication: HAPPLICATION,
    szContainerName: LPSTR,
    pulSize: *mut ULONG,
) -> ULONG {
    run("SKF_EnumContainer", || {
        let a = handles::app(hApplication)?;
        let names: Vec<String> = a
            .app
            .list_containers()?
            .into_iter()
            .filter(listed)
            .map(|c| c.name)
            .collect();
        // SAFETY: the caller's contract.
        unsafe { write_sized(szContainerName, pulSize, &name_list(&names)) }
    })
}

/// `SKF_GetContainerType` (§7.5.7): 0 empty, 1 RSA, 2 SM2.
///
/// # Safety
/// `pulContainerType` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GetContainerType(
    hContainer: HCONTAINER,
    pulContainerType: *mut ULONG,
) -> ULONG {
    run("SKF_GetContainerType", || {
        let c = handles::con(hContainer)?;
        nonnull(pulContainerType)?;
        let info = c.app.app.container(&c.name).map_err(Error::container)?;
        // SAFETY: checked non-null.
        unsafe { write(pulContainerType, container_type(&info)) }
    })
}

pub(crate) fn usage(sign: BOOL) -> KeyUsage {
    if sign != FALSE {
        KeyUsage::Sign
    } else {
        KeyUsage::Encrypt
    }
}

/// `SKF_ImportCertificate` (§7.5.8): the certificate of the signing (TRUE) or encryption
/// (FALSE) key; its public key must match. A previous certificate stays in the key's
/// history (renewal). Needs the user PIN.
///
/// # Safety
/// `pbCert` valid for `ulCertLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ImportCertificate(
    hContainer: HCONTAINER,
    bSignFlag: BOOL,
    pbCert: *mut BYTE,
    ulCertLen: ULONG,
) -> ULONG {
    run("SKF_ImportCertificate", || {
        let c = handles::con(hContainer)?;
        // SAFETY: the caller's contract.
        let der = unsafe { bytes(pbCert, ulCertLen) }?;
        if der.is_empty() {
            return Err(Error::INVALID_PARAM);
        }
        c.app
            .app
            .import_cert(&c.name, usage(bSignFlag), der)
            .map(|_| ())
            .map_err(Error::key)
    })
}

/// `SKF_ExportCertificate` (§7.5.9): the current certificate of a slot (DER).
///
/// # Safety
/// `pulCertLen` valid; `pbCert`, when non-null, valid for `*pulCertLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExportCertificate(
    hContainer: HCONTAINER,
    bSignFlag: BOOL,
    pbCert: *mut BYTE,
    pulCertLen: *mut ULONG,
) -> ULONG {
    run("SKF_ExportCertificate", || {
        let c = handles::con(hContainer)?;
        let der = c
            .app
            .app
            .cert(&c.name, usage(bSignFlag))
            .map_err(Error::container)?
            .ok_or(Error::CERT_NOT_FOUND)?;
        // SAFETY: the caller's contract.
        unsafe { write_sized(pbCert, pulCertLen, &der) }
    })
}

/// `SKF_ExportPublicKey` (§7.6.33): ECCPUBLICKEYBLOB (132 bytes) or RSAPUBLICKEYBLOB
/// (268 bytes) of a slot's key.
///
/// # Safety
/// `pulBlobLen` valid; `pbBlob`, when non-null, valid for `*pulBlobLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExportPublicKey(
    hContainer: HCONTAINER,
    bSignFlag: BOOL,
    pbBlob: *mut BYTE,
    pulBlobLen: *mut ULONG,
) -> ULONG {
    run("SKF_ExportPublicKey", || {
        let c = handles::con(hContainer)?;
        let k = c
            .app
            .app
            .public_key(&c.name, usage(bSignFlag))
            .map_err(Error::key)?;
        let blob = match k.alg() {
            KeyAlg::Sm2 => struct_bytes(&crate::api::blobs::ecc_pub_blob(&k)?).to_vec(),
            KeyAlg::Rsa(_) => struct_bytes(&crate::api::blobs::rsa_pub_blob(&k)?).to_vec(),
            _ => return Err(Error::KEY_NOT_FOUND),
        };
        // SAFETY: the caller's contract.
        unsafe { write_sized(pbBlob, pulBlobLen, &blob) }
    })
}
