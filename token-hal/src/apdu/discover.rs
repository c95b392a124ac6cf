//! The card links present now, for the `pcsc` and `hid` backends of the registry.
//!
//! Each list honours `UKEY_BACKENDS` ([`crate::registry::backend_enabled`]): a backend that
//! is switched off lists nothing and touches nothing (no pcscd connection, no hidapi
//! scan). Nothing there (pcscd not running, no reader, no card, no HID key, an empty
//! `[hid]` table) is `Ok(vec![])`, never an error, so the libraries still load and serve
//! the soft tokens. The card driver wraps each transport in an `ApduToken` device.

use std::sync::Arc;

use super::{hid, pcsc, transport::Transport};
use crate::config::Config;
use crate::error::Result;
use crate::registry::backend_enabled;

/// The name of the PC/SC backend in `UKEY_BACKENDS`.
pub const PCSC_BACKEND: &str = "pcsc";
/// The name of the HID backend in `UKEY_BACKENDS`.
pub const HID_BACKEND: &str = "hid";

/// A transport for each PC/SC reader holding a card, unless `pcsc` is switched off.
pub fn pcsc_transports() -> Result<Vec<Arc<dyn Transport>>> {
    if !backend_enabled(PCSC_BACKEND) {
        return Ok(Vec::new());
    }
    Ok(pcsc::transports()?
        .into_iter()
        .map(|t| Arc::new(t) as Arc<dyn Transport>)
        .collect())
}

/// A transport for each HID key of the `[hid]` table plugged in now, unless `hid` is
/// switched off.
pub fn hid_transports(config: &Config) -> Result<Vec<Arc<dyn Transport>>> {
    if !backend_enabled(HID_BACKEND) {
        return Ok(Vec::new());
    }
    Ok(hid::transports(&config.hid)?
        .into_iter()
        .map(|t| Arc::new(t) as Arc<dyn Transport>)
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::{Env, HidDeviceId};

    struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<std::ffi::OsString> {
            None
        }
    }

    #[test]
    fn nothing_there_is_an_empty_list() {
        // No USB on this machine; pcscd may or may not run, with or without readers.
        let mut config = Config::resolve(&NoEnv, None).unwrap();
        config.hid.devices = vec![HidDeviceId {
            vid: 0x096e,
            pid: 0x0807,
        }];
        for t in hid_transports(&config).unwrap() {
            assert!(t.is_present());
        }
        for t in pcsc_transports().unwrap() {
            assert!(t.atr().is_some());
        }
    }
}
