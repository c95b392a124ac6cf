//! Device management entry points (GM/T 0016-2012 §7.1).

#![allow(non_snake_case)]

use skf_sys::*;

use super::entry::{run, write_sized};
use crate::api::device as api;

/// `SKF_EnumDev` (GM/T 0016-2012 §7.1.2): the NUL-separated, double-NUL-terminated list
/// of device names, with the size-query convention.
///
/// # Safety
/// `pulSize` must be valid; `szNameList`, when non-null, must hold `*pulSize` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SKF_EnumDev(
    bPresent: BOOL,
    szNameList: LPSTR,
    pulSize: *mut ULONG,
) -> ULONG {
    run("SKF_EnumDev", || {
        let names = api::enum_dev(bPresent != FALSE)?;
        let list = api::name_list(&names);
        // SAFETY: the caller's contract above.
        unsafe { write_sized(szNameList, pulSize, &list) }
    })
}
