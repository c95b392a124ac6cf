//! A vendor device as a token-hal [`Device`]: one `DEVHANDLE`, every call on it
//! serialised by one mutex.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use skf_sys::*;
use token_hal::model::{AppParams, BackendKind, DeviceInfo};
use token_hal::token::{Application, Device};
use token_hal::{Error, Result};
use zeroize::Zeroizing;

use crate::app::BridgeApp;
use crate::blob::{c_field, c_string, name_list};
use crate::error::{check, sar};
use crate::library::VendorLib;
use crate::sym;

/// Slack after every buffer handed to a vendor, so one that writes a little past the
/// length it was given (an 8-byte BOOL, a longer DEVINFO) writes into our memory.
pub(crate) const SLACK: usize = 64;
/// Largest name list, certificate or file chunk accepted from a vendor.
pub(crate) const MAX_OUT: usize = 1 << 20;

/// An SKF handle: an opaque value from the vendor library.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw(pub HANDLE);

// SAFETY: a handle is an opaque value the vendor library made; the bridge passes it back
// to the library only while holding its device's mutex, so no two threads use one device
// at once (the threading model GM/T 0016 libraries expect).
unsafe impl Send for Raw {}
// SAFETY: as above; `Raw` is never dereferenced by the bridge.
unsafe impl Sync for Raw {}

/// The connection shared by a device and the applications opened through it.
pub(crate) struct DevInner {
    pub lib: Arc<VendorLib>,
    pub name: String,
    handle: Mutex<Raw>,
    /// `AlgAsymCap` read at connect.
    pub asym_cap: u32,
}

impl DevInner {
    /// The device handle, locked for one call sequence.
    pub fn lock(&self) -> MutexGuard<'_, Raw> {
        self.handle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the device can do SM2 (else it is RSA-only).
    pub fn has_sm2(&self) -> bool {
        self.asym_cap & 0x0002_0000 != 0 && self.asym_cap & 0x0F00 != 0
    }
}

impl Drop for DevInner {
    fn drop(&mut self) {
        let h = *self.lock();
        if let Ok(f) = sym!(self.lib, SKF_DisConnectDev) {
            // SAFETY: `h` came from SKF_ConnectDev of this library and is disconnected
            // once, here, when nothing else holds the connection.
            let rv = unsafe { f(h.0) };
            if rv != SAR_OK {
                tracing::debug!(device = %self.name, rv, "SKF_DisConnectDev failed");
            }
        }
    }
}

/// Calls `f` with a buffer of `cap` bytes (plus [`SLACK`]) and its length; grows it once
/// when the vendor answers `SAR_BUFFER_TOO_SMALL` with a bigger length (up to `max`).
/// The length the vendor reports is checked against the buffer.
pub(crate) fn sized(
    func: &str,
    cap: usize,
    max: usize,
    mut f: impl FnMut(*mut u8, *mut ULONG) -> ULONG,
) -> Result<Vec<u8>> {
    let mut cap = cap.min(max);
    for _ in 0..2 {
        let mut buf = vec![0u8; cap + SLACK];
        let mut len = ULONG::try_from(cap).map_err(|_| Error::internal("buffer size"))?;
        let rv = f(buf.as_mut_ptr(), &mut len);
        let got = len as usize;
        if rv == SAR_BUFFER_TOO_SMALL && got > cap && got <= max {
            cap = got;
            continue;
        }
        check(func, rv)?;
        if got > cap {
            return Err(Error::invalid_data(format!(
                "{func} reported {got} bytes written into a buffer of {cap}"
            )));
        }
        buf.truncate(got);
        return Ok(buf);
    }
    Err(Error::invalid_data(format!(
        "{func}: the length kept growing"
    )))
}

/// A vendor device.
pub struct BridgeDevice {
    pub(crate) inner: Arc<DevInner>,
}

impl std::fmt::Debug for BridgeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BridgeDevice({:?}, {})", self.inner.lib, self.inner.name)
    }
}

/// Reads DEVINFO into a padded buffer.
fn dev_info(lib: &VendorLib, h: Raw) -> Result<DEVINFO> {
    let f = sym!(lib, SKF_GetDevInfo)?;
    let mut buf = vec![0u8; std::mem::size_of::<DEVINFO>() + 256];
    // SAFETY: `h` is a live device handle of this library; `buf` is larger than DEVINFO
    // (a packed, byte-aligned structure), with room for vendors whose structure is longer.
    let rv = unsafe { f(h.0, buf.as_mut_ptr().cast::<DEVINFO>()) };
    check("SKF_GetDevInfo", rv)?;
    // SAFETY: `buf` holds at least size_of::<DEVINFO>() initialised bytes; DEVINFO is
    // plain data valid for any bit pattern; read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<DEVINFO>()) })
}

impl BridgeDevice {
    /// Connects to the device `name` of `lib`.
    pub fn connect(lib: Arc<VendorLib>, name: &str) -> Result<Self> {
        let f = sym!(lib, SKF_ConnectDev)?;
        let cname = c_string(name.as_bytes(), "device name")?;
        let mut h: HANDLE = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated and outlives the call (the library copies
        // what it keeps); `h` is a valid out-pointer.
        let rv = unsafe { f(cname.as_ptr().cast_mut(), &mut h) };
        check("SKF_ConnectDev", rv)?;
        if h.is_null() {
            return Err(Error::Device(
                "SKF_ConnectDev returned a NULL handle".into(),
            ));
        }
        let caps = match dev_info(&lib, Raw(h)) {
            Ok(i) => i.AlgAsymCap,
            Err(e) => {
                if let Ok(d) = sym!(lib, SKF_DisConnectDev) {
                    // SAFETY: `h` was just connected and is not used again.
                    unsafe { d(h) };
                }
                return Err(e);
            }
        };
        Ok(Self {
            inner: Arc::new(DevInner {
                lib,
                name: name.to_owned(),
                handle: Mutex::new(Raw(h)),
                asym_cap: caps,
            }),
        })
    }

    /// The device name as the library lists it.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl Device for BridgeDevice {
    fn info(&self) -> Result<DeviceInfo> {
        let h = self.inner.lock();
        let i = dev_info(&self.inner.lib, *h)?;
        let serial = c_field(&i.SerialNumber);
        let version = |v: VERSION| (v.major, v.minor);
        Ok(DeviceInfo {
            name: self.inner.name.clone(),
            serial: if serial.is_empty() {
                self.inner.name.clone()
            } else {
                serial
            },
            label: c_field(&i.Label),
            manufacturer: c_field(&i.Manufacturer),
            issuer: c_field(&i.Issuer),
            model: "vendor SKF".into(),
            hw_version: version(i.HWVersion),
            fw_version: version(i.FirmwareVersion),
            total_space: u64::from(i.TotalSpace),
            free_space: u64::from(i.FreeSpace),
            removable: true,
            // SKF has no such flag; a vendor's SKF library drives its own hardware.
            hardware: true,
            backend: BackendKind::VendorSkf,
        })
    }

    fn set_label(&self, label: &str) -> Result<()> {
        if label.len() >= 32 {
            return Err(Error::invalid_arg(
                "a device label is shorter than 32 bytes",
            ));
        }
        let f = sym!(self.inner.lib, SKF_SetLabel)?;
        let l = c_string(label.as_bytes(), "label")?;
        let h = self.inner.lock();
        // SAFETY: live handle; NUL-terminated label.
        check("SKF_SetLabel", unsafe { f(h.0, l.as_ptr().cast_mut()) })
    }

    fn gen_random(&self, len: usize) -> Result<Vec<u8>> {
        if len > MAX_OUT {
            return Err(Error::invalid_arg("random length"));
        }
        let f = sym!(self.inner.lib, SKF_GenRandom)?;
        let n = ULONG::try_from(len).map_err(|_| Error::invalid_arg("random length"))?;
        let mut buf = vec![0u8; len + SLACK];
        let h = self.inner.lock();
        // SAFETY: live handle; `buf` holds `len` (+ slack) bytes.
        check("SKF_GenRandom", unsafe { f(h.0, buf.as_mut_ptr(), n) })?;
        buf.truncate(len);
        Ok(buf)
    }

    fn dev_auth(&self, cryptogram: &[u8]) -> Result<()> {
        let f = sym!(self.inner.lib, SKF_DevAuth)?;
        let mut c = Zeroizing::new(cryptogram.to_vec());
        let n = ULONG::try_from(c.len()).map_err(|_| Error::invalid_arg("cryptogram"))?;
        let h = self.inner.lock();
        // SAFETY: live handle; `c` holds `n` bytes.
        let rv = unsafe { f(h.0, c.as_mut_ptr(), n) };
        if rv == SAR_OK {
            Ok(())
        } else if rv == SAR_FAIL || rv == SAR_INVALIDPARAMERR {
            Err(Error::DeviceAuthFailed)
        } else {
            Err(sar("SKF_DevAuth", rv))
        }
    }

    fn change_dev_auth_key(&self, new_key: &[u8]) -> Result<()> {
        let f = sym!(self.inner.lib, SKF_ChangeDevAuthKey)?;
        let mut k = Zeroizing::new(new_key.to_vec());
        let n = ULONG::try_from(k.len()).map_err(|_| Error::invalid_arg("key"))?;
        let h = self.inner.lock();
        // SAFETY: live handle; `k` holds `n` bytes.
        check("SKF_ChangeDevAuthKey", unsafe { f(h.0, k.as_mut_ptr(), n) })
    }

    /// The default procedure (challenge, SM4-ECB, answer) when the device authenticates
    /// with SM4-ECB; a device whose DevAuthAlgId is another algorithm (SM1, SSF33: not
    /// computable on the host) is `Unsupported` before any attempt, so no wrong cryptogram
    /// spends the device's authentication retries.
    fn authenticate_with_key(&self, auth_key: &[u8]) -> Result<()> {
        let alg = {
            let h = self.inner.lock();
            dev_info(&self.inner.lib, *h)?.DevAuthAlgId
        };
        if alg != SGD_SM4_ECB {
            return Err(Error::unsupported(format!(
                "device authentication with algorithm {alg:#x} (only SM4-ECB can be computed on the host)"
            )));
        }
        let challenge = self.gen_random(16)?;
        let mut block = Zeroizing::new([0u8; 16]);
        block.copy_from_slice(&challenge);
        let cryptogram = token_hal::crypto::sym::sm4_ecb_encrypt_block(auth_key, &block)?;
        self.dev_auth(&cryptogram)
    }

    fn list_apps(&self) -> Result<Vec<String>> {
        let f = sym!(self.inner.lib, SKF_EnumApplication)?;
        let h = self.inner.lock();
        let buf = sized("SKF_EnumApplication", 4096, MAX_OUT, |p, l| {
            // SAFETY: live handle; `sized` passes a buffer of `*l` bytes.
            unsafe { f(h.0, p, l) }
        })?;
        Ok(name_list(&buf))
    }

    fn create_app(&self, name: &str, params: &AppParams) -> Result<()> {
        let f = sym!(self.inner.lib, SKF_CreateApplication)?;
        let user = params.user_pin.as_ref().ok_or_else(|| {
            Error::unsupported("an SKF application without a user PIN (SKF sets both at creation)")
        })?;
        let n = c_string(name.as_bytes(), "application name")?;
        let admin = c_string(params.admin_pin.as_bytes(), "PIN")?;
        let user = c_string(user.as_bytes(), "PIN")?;
        let mut app: HANDLE = std::ptr::null_mut();
        let h = self.inner.lock();
        // SAFETY: live handle; NUL-terminated strings; `app` is a valid out-pointer.
        let rv = unsafe {
            f(
                h.0,
                n.as_ptr().cast_mut(),
                admin.as_ptr().cast_mut(),
                params.admin_retries,
                user.as_ptr().cast_mut(),
                params.user_retries,
                params.create_file_rights.0,
                &mut app,
            )
        };
        check("SKF_CreateApplication", rv)?;
        if !app.is_null()
            && let Ok(close) = sym!(self.inner.lib, SKF_CloseApplication)
        {
            // SAFETY: the handle just made, closed once.
            unsafe { close(app) };
        }
        Ok(())
    }

    fn delete_app(&self, name: &str) -> Result<()> {
        let f = sym!(self.inner.lib, SKF_DeleteApplication)?;
        let n = c_string(name.as_bytes(), "application name")?;
        let h = self.inner.lock();
        // SAFETY: live handle; NUL-terminated name.
        check("SKF_DeleteApplication", unsafe {
            f(h.0, n.as_ptr().cast_mut())
        })
    }

    fn open_app(&self, name: &str) -> Result<Arc<dyn Application>> {
        Ok(Arc::new(BridgeApp::open(self.inner.clone(), name)?))
    }
}
