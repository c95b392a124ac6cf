//! Device management (GM/T 0016-2012 §7.1) and access control (§7.2) entry points.

#![allow(non_snake_case)]

use std::sync::Arc;

use skf_sys::*;
use token_hal::model::{PinInfo, PinType};

use super::entry::{bytes, cstr, nonnull, pin, run, run_before_power_on, write, write_sized};
use super::handles::{self, Obj};
use crate::api::device as api;
use crate::error::{Error, Result};

/// Marks this library as ukey's own SKF provider: the vendor-SKF bridge refuses to load
/// it unless its test mode gives it a data directory of its own (docs/skf-bridge.md).
#[unsafe(no_mangle)]
pub static UKEY_SKF_PROVIDER: [u8; 5] = *b"ukey\0";

/// The vendor-SKF bridge's test mode (docs/skf-bridge.md): called by the bridge right
/// after loading this library, before any SKF call, to make this copy serve the soft
/// devices of `szDataDir` (and bridge nothing). `SAR_FAIL` once this copy has started
/// serving (it is the bridging process's own library, not a copy of its own), or for
/// another directory than a previous call's.
///
/// # Safety
/// `szDataDir` is a NUL-terminated path.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn UKEY_SKF_SetTestDataDir(szDataDir: *const CHAR) -> ULONG {
    run_before_power_on("UKEY_SKF_SetTestDataDir", || {
        // SAFETY: the caller's contract.
        let dir = unsafe { cstr(szDataDir, 4096) }?;
        if dir.is_empty() {
            return Err(Error::INVALID_PARAM);
        }
        api::set_test_data_dir(dir.into())
    })
}

/// Longest device name accepted.
const MAX_DEV_NAME: usize = 256;
/// The label is shorter than 32 bytes.
const MAX_LABEL: usize = 31;

/// `SKF_WaitForDevEvent` (§7.1.1): blocks until a soft device is created (event 1) or
/// deleted (event 2), or `SKF_CancelWaitForDevEvent` is called (`SAR_NOT_EVENTERR`).
///
/// # Safety
/// `pulDevNameLen` and `pulEvent` must be valid; `szDevName`, when non-null, must hold
/// `*pulDevNameLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_WaitForDevEvent(
    szDevName: LPSTR,
    pulDevNameLen: *mut ULONG,
    pulEvent: *mut ULONG,
) -> ULONG {
    run("SKF_WaitForDevEvent", || {
        nonnull(pulDevNameLen)?;
        nonnull(pulEvent)?;
        api::wait_event(|name, kind| {
            let mut v = name.as_bytes().to_vec();
            v.push(0);
            // SAFETY: the caller's contract above.
            unsafe { write_sized(szDevName, pulDevNameLen, &v) }?;
            // SAFETY: checked non-null; valid by the caller's contract.
            unsafe { write(pulEvent, kind) }
        })
    })
}

/// `SKF_CancelWaitForDevEvent` (§7.1.1): wakes every `SKF_WaitForDevEvent` waiter.
#[unsafe(no_mangle)]
pub extern "system" fn SKF_CancelWaitForDevEvent() -> ULONG {
    run("SKF_CancelWaitForDevEvent", || {
        api::cancel_wait();
        Ok(())
    })
}

/// `SKF_EnumDev` (§7.1.2): the NUL-separated, double-NUL-terminated list of device
/// names, with the size-query convention.
///
/// # Safety
/// `pulSize` must be valid; `szNameList`, when non-null, must hold `*pulSize` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_EnumDev(
    bPresent: BOOL,
    szNameList: LPSTR,
    pulSize: *mut ULONG,
) -> ULONG {
    run("SKF_EnumDev", || {
        let names = api::enum_dev(bPresent != FALSE)?;
        let list = api::name_list(&names);
        // SAFETY: the caller's contract.
        unsafe { write_sized(szNameList, pulSize, &list) }
    })
}

/// `SKF_ConnectDev` (§7.1.3).
///
/// # Safety
/// `szName` a NUL-terminated string; `phDev` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ConnectDev(szName: LPSTR, phDev: *mut DEVHANDLE) -> ULONG {
    run("SKF_ConnectDev", || {
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szName, MAX_DEV_NAME) }?;
        nonnull(phDev)?;
        let d = api::connect(&name)?;
        let h = handles::insert(Obj::Dev(Arc::new(d)), None)?;
        // SAFETY: checked non-null; valid by the caller's contract.
        unsafe { write(phDev, handles::to_c(h)) }
    })
}

/// `SKF_DisConnectDev` (§7.1.4): closes the device handle and everything opened
/// through it; releases its device lock.
#[unsafe(no_mangle)]
pub extern "system" fn SKF_DisConnectDev(hDev: DEVHANDLE) -> ULONG {
    run("SKF_DisConnectDev", || {
        handles::remove(hDev, |o| matches!(o, Obj::Dev(_)))?;
        api::release_all(hDev as usize);
        Ok(())
    })
}

/// `SKF_GetDevState` (§7.1.5): DEV_PRESENT_STATE or DEV_ABSENT_STATE.
///
/// # Safety
/// `szDevName` a NUL-terminated string; `pulDevState` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GetDevState(szDevName: LPSTR, pulDevState: *mut ULONG) -> ULONG {
    run("SKF_GetDevState", || {
        // SAFETY: the caller's contract.
        let name = unsafe { cstr(szDevName, MAX_DEV_NAME) }?;
        nonnull(pulDevState)?;
        let s = api::state(&name)?;
        // SAFETY: as above.
        unsafe { write(pulDevState, s) }
    })
}

/// `SKF_SetLabel` (§7.1.6): a label shorter than 32 bytes.
///
/// # Safety
/// `szLabel` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_SetLabel(hDev: DEVHANDLE, szLabel: LPSTR) -> ULONG {
    run("SKF_SetLabel", || {
        let d = handles::dev(hDev)?;
        // SAFETY: the caller's contract.
        let label = unsafe { cstr(szLabel, MAX_LABEL) }?;
        Ok(d.device.set_label(&label)?)
    })
}

/// `SKF_GetDevInfo` (§7.1.7).
///
/// # Safety
/// `pDevInfo` valid for a write of DEVINFO.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GetDevInfo(hDev: DEVHANDLE, pDevInfo: *mut DEVINFO) -> ULONG {
    run("SKF_GetDevInfo", || {
        let d = handles::dev(hDev)?;
        nonnull(pDevInfo)?;
        let info = api::dev_info(d.device.as_ref())?;
        // SAFETY: checked non-null; valid by the caller's contract.
        unsafe { write(pDevInfo, info) }
    })
}

/// `SKF_LockDev` (§7.1.8): re-entrant for the holding handle; other handles (in this or
/// another process) wait up to `ulTimeOut` ms (0xFFFFFFFF: forever).
#[unsafe(no_mangle)]
pub extern "system" fn SKF_LockDev(hDev: DEVHANDLE, ulTimeOut: ULONG) -> ULONG {
    run("SKF_LockDev", || {
        let d = handles::dev(hDev)?;
        api::lock(&d, hDev as usize, ulTimeOut)
    })
}

/// `SKF_UnlockDev` (§7.1.9): releases one level of this handle's lock.
#[unsafe(no_mangle)]
pub extern "system" fn SKF_UnlockDev(hDev: DEVHANDLE) -> ULONG {
    run("SKF_UnlockDev", || {
        let d = handles::dev(hDev)?;
        api::unlock(&d, hDev as usize)
    })
}

/// `SKF_Transmit` (§7.1.10): APDU pass-through. Soft devices have no APDU interface and
/// answer `SAR_NOTSUPPORTYETERR` (docs/skf.md); so does every device until token-hal
/// gains an APDU transport.
///
/// # Safety
/// `pbCommand` valid for `ulCommandLen` bytes; `pulDataLen` valid; `pbData`, when
/// non-null, valid for `*pulDataLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_Transmit(
    hDev: DEVHANDLE,
    pbCommand: *mut BYTE,
    ulCommandLen: ULONG,
    pbData: *mut BYTE,
    pulDataLen: *mut ULONG,
) -> ULONG {
    run("SKF_Transmit", || {
        let d = handles::dev(hDev)?;
        // SAFETY: the caller's contract.
        let cmd = unsafe { bytes(pbCommand, ulCommandLen) }?;
        if cmd.len() < 4 {
            return Err(Error::DATA_LEN);
        }
        nonnull(pulDataLen)?;
        let _ = pbData;
        let _ = d.device.info()?;
        Err(Error::NOT_SUPPORTED)
    })
}

// --- §7.2 access control -----------------------------------------------------------------

/// `SKF_ChangeDevAuthKey` (§7.2.2): needs device authentication on this handle; the key
/// is 16 bytes (SM4).
///
/// # Safety
/// `pbKeyValue` valid for `ulKeyLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ChangeDevAuthKey(
    hDev: DEVHANDLE,
    pbKeyValue: *mut BYTE,
    ulKeyLen: ULONG,
) -> ULONG {
    run("SKF_ChangeDevAuthKey", || {
        let d = handles::dev(hDev)?;
        // SAFETY: the caller's contract.
        let key = unsafe { bytes(pbKeyValue, ulKeyLen) }?;
        if key.len() != 16 {
            return Err(Error::INVALID_PARAM);
        }
        Ok(d.device.change_dev_auth_key(key)?)
    })
}

/// `SKF_DevAuth` (§7.2.3): the last `SKF_GenRandom` challenge of this handle (8 or 16
/// bytes), zero-padded to 16, SM4-ECB-encrypted under the device key. 16 bytes, or 32
/// when the client PKCS#5-padded the block (the first block is checked).
///
/// # Safety
/// `pbAuthData` valid for `ulLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DevAuth(
    hDev: DEVHANDLE,
    pbAuthData: *mut BYTE,
    ulLen: ULONG,
) -> ULONG {
    run("SKF_DevAuth", || {
        let d = handles::dev(hDev)?;
        // SAFETY: the caller's contract.
        let data = unsafe { bytes(pbAuthData, ulLen) }?;
        let crypt = match data.len() {
            16 => data,
            32 => &data[..16],
            _ => return Err(Error::DATA_LEN),
        };
        Ok(d.device.dev_auth(crypt)?)
    })
}

fn pin_type(t: ULONG) -> Result<PinType> {
    match t {
        ADMIN_TYPE => Ok(PinType::Admin),
        USER_TYPE => Ok(PinType::User),
        _ => Err(Error::USER_TYPE),
    }
}

/// Runs a PIN operation and reports the retries left (the PIN's remaining count on
/// success, what is left on failure, 0 when locked).
fn with_retries(
    app: &dyn token_hal::token::Application,
    t: PinType,
    op: impl FnOnce() -> token_hal::Result<()>,
) -> (Result<()>, ULONG) {
    match op() {
        Ok(()) => {
            let left = app.pin_info(t).map(|i: PinInfo| i.remaining).unwrap_or(0);
            (Ok(()), left)
        }
        Err(token_hal::Error::PinIncorrect { retries_left }) => {
            let e = if retries_left == 0 {
                Error::PIN_LOCKED
            } else {
                Error::PIN_INCORRECT
            };
            (Err(e), retries_left)
        }
        Err(token_hal::Error::PinLocked) => (Err(Error::PIN_LOCKED), 0),
        Err(e) => (
            Err(e.into()),
            app.pin_info(t).map(|i| i.remaining).unwrap_or(0),
        ),
    }
}

/// `SKF_ChangePIN` (§7.2.4).
///
/// # Safety
/// The strings NUL-terminated; `pulRetryCount` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ChangePIN(
    hApplication: HAPPLICATION,
    ulPINType: ULONG,
    szOldPin: LPSTR,
    szNewPin: LPSTR,
    pulRetryCount: *mut ULONG,
) -> ULONG {
    run("SKF_ChangePIN", || {
        let a = handles::app(hApplication)?;
        let t = pin_type(ulPINType)?;
        // SAFETY: the caller's contract.
        let (old, new) = unsafe { (pin(szOldPin)?, pin(szNewPin)?) };
        nonnull(pulRetryCount)?;
        let (r, left) = with_retries(a.app.as_ref(), t, || a.app.change_pin(t, &old, &new));
        // SAFETY: checked non-null.
        unsafe { write(pulRetryCount, left) }?;
        r
    })
}

/// `SKF_GetPINInfo` (§7.2.5): maximum and remaining retries, and whether the PIN is the
/// default. The BOOL is written as 32 bits.
///
/// # Safety
/// The three output pointers valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GetPINInfo(
    hApplication: HAPPLICATION,
    ulPINType: ULONG,
    pulMaxRetryCount: *mut ULONG,
    pulRemainRetryCount: *mut ULONG,
    pbDefaultPin: *mut BOOL,
) -> ULONG {
    run("SKF_GetPINInfo", || {
        let a = handles::app(hApplication)?;
        let t = pin_type(ulPINType)?;
        nonnull(pulMaxRetryCount)?;
        nonnull(pulRemainRetryCount)?;
        nonnull(pbDefaultPin)?;
        let i = a.app.pin_info(t)?;
        // SAFETY: checked non-null; valid by the caller's contract.
        unsafe {
            write(pulMaxRetryCount, i.max_retries)?;
            write(pulRemainRetryCount, i.remaining)?;
            write(pbDefaultPin, if i.default_pin { TRUE } else { FALSE })
        }
    })
}

/// `SKF_VerifyPIN` (§7.2.6).
///
/// # Safety
/// `szPIN` NUL-terminated; `pulRetryCount` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_VerifyPIN(
    hApplication: HAPPLICATION,
    ulPINType: ULONG,
    szPIN: LPSTR,
    pulRetryCount: *mut ULONG,
) -> ULONG {
    run("SKF_VerifyPIN", || {
        let a = handles::app(hApplication)?;
        let t = pin_type(ulPINType)?;
        // SAFETY: the caller's contract.
        let p = unsafe { pin(szPIN) }?;
        nonnull(pulRetryCount)?;
        let (r, left) = with_retries(a.app.as_ref(), t, || a.app.verify_pin(t, &p));
        // SAFETY: checked non-null.
        unsafe { write(pulRetryCount, left) }?;
        r
    })
}

/// `SKF_UnblockPIN` (§7.2.7): with the admin PIN, sets a new user PIN and resets its
/// counter. `*pulRetryCount` reports the admin PIN's retries on failure.
///
/// # Safety
/// The strings NUL-terminated; `pulRetryCount` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_UnblockPIN(
    hApplication: HAPPLICATION,
    szAdminPIN: LPSTR,
    szNewUserPIN: LPSTR,
    pulRetryCount: *mut ULONG,
) -> ULONG {
    run("SKF_UnblockPIN", || {
        let a = handles::app(hApplication)?;
        // SAFETY: the caller's contract.
        let (admin, new) = unsafe { (pin(szAdminPIN)?, pin(szNewUserPIN)?) };
        nonnull(pulRetryCount)?;
        let (r, left) = with_retries(a.app.as_ref(), PinType::Admin, || {
            a.app.unblock_pin(&admin, &new)
        });
        // SAFETY: checked non-null.
        unsafe { write(pulRetryCount, left) }?;
        r
    })
}

/// `SKF_ClearSecureState` (§7.2.8): logs this application handle out.
#[unsafe(no_mangle)]
pub extern "system" fn SKF_ClearSecureState(hApplication: HAPPLICATION) -> ULONG {
    run("SKF_ClearSecureState", || {
        let a = handles::app(hApplication)?;
        a.app.logout();
        Ok(())
    })
}
