//! One token of a third-party PKCS#11 module as a token-hal [`Device`] with one
//! application, named by the token label.

use std::sync::Arc;

use cryptoki::slot::Slot;
use token_hal::model::{AppParams, BackendKind, DeviceInfo};
use token_hal::token::{Application, Device};
use token_hal::{Error, Result};

use crate::Module;
use crate::app::P11App;
use crate::convert::p11_error;

/// A PKCS#11 token as a device.
pub struct P11Device {
    module: Arc<Module>,
    slot: Slot,
}

impl P11Device {
    pub(crate) fn new(module: Arc<Module>, slot: Slot) -> Self {
        Self { module, slot }
    }

    /// The token label (the application's name).
    fn label(&self) -> Result<String> {
        let info = self
            .module
            .ctx
            .get_token_info(self.slot)
            .map_err(p11_error)?;
        Ok(info.label().trim().to_owned())
    }
}

impl Device for P11Device {
    fn info(&self) -> Result<DeviceInfo> {
        let t = self
            .module
            .ctx
            .get_token_info(self.slot)
            .map_err(p11_error)?;
        let (removable, hardware) = self
            .module
            .ctx
            .get_slot_info(self.slot)
            .map(|s| (s.removable_device(), s.hardware_slot()))
            .unwrap_or((true, true));
        let label = t.label().trim().to_owned();
        let serial = t.serial_number().trim().to_owned();
        let mem = |v: Option<usize>| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
        Ok(DeviceInfo {
            // The label alone is not unique across modules; the serial makes it so.
            name: format!("{label} [{serial}]"),
            serial,
            label,
            manufacturer: t.manufacturer_id().trim().to_owned(),
            issuer: self.module.manufacturer.clone(),
            model: t.model().trim().to_owned(),
            hw_version: (t.hardware_version().major(), t.hardware_version().minor()),
            fw_version: (t.firmware_version().major(), t.firmware_version().minor()),
            total_space: mem(t.total_public_memory()).saturating_add(mem(t.total_private_memory())),
            free_space: mem(t.free_public_memory()).saturating_add(mem(t.free_private_memory())),
            removable,
            hardware,
            backend: BackendKind::Pkcs11,
        })
    }

    fn set_label(&self, _label: &str) -> Result<()> {
        Err(Error::unsupported(
            "relabelling a bridged PKCS#11 token (its label changes only with C_InitToken)",
        ))
    }

    fn gen_random(&self, len: usize) -> Result<Vec<u8>> {
        let len = u32::try_from(len).map_err(|_| Error::invalid_arg("random length"))?;
        let s = self
            .module
            .ctx
            .open_ro_session(self.slot)
            .map_err(p11_error)?;
        s.generate_random_vec(len).map_err(p11_error)
    }

    fn dev_auth(&self, _cryptogram: &[u8]) -> Result<()> {
        Err(Error::unsupported(
            "device authentication on a bridged PKCS#11 token (PKCS#11 has none)",
        ))
    }

    fn change_dev_auth_key(&self, _new_key: &[u8]) -> Result<()> {
        Err(Error::unsupported(
            "device authentication on a bridged PKCS#11 token (PKCS#11 has none)",
        ))
    }

    fn list_apps(&self) -> Result<Vec<String>> {
        Ok(vec![self.label()?])
    }

    fn create_app(&self, _name: &str, _params: &AppParams) -> Result<()> {
        Err(Error::unsupported(
            "creating an application on a bridged PKCS#11 token (one token is one application; \
             initialise it with the module's own tool)",
        ))
    }

    fn delete_app(&self, _name: &str) -> Result<()> {
        Err(Error::unsupported(
            "deleting the application of a bridged PKCS#11 token",
        ))
    }

    fn open_app(&self, name: &str) -> Result<Arc<dyn Application>> {
        let label = self.label()?;
        if name != label {
            return Err(Error::not_found(format!("application {name:?}")));
        }
        Ok(Arc::new(P11App::new(self.module.clone(), self.slot, label)))
    }
}
