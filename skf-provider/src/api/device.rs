//! Device management (GM/T 0016-2012 §7.1).

use std::sync::OnceLock;

use skf_sys::SAR_FAIL;
use token_hal::config::Config;
use token_hal::registry::Registry;

use crate::error::{Error, Result};

static REGISTRY: OnceLock<std::result::Result<Registry, String>> = OnceLock::new();

/// The registry, built from the configuration on first use.
pub(crate) fn registry() -> Result<&'static Registry> {
    let r = REGISTRY.get_or_init(|| {
        let config = Config::load().map_err(|e| e.to_string())?;
        token_hal::logging::init(&config);
        Ok(Registry::new(config))
    });
    r.as_ref().map_err(|e| {
        tracing::error!(error = %e, "configuration");
        Error(SAR_FAIL)
    })
}

/// `SKF_EnumDev`: names of the devices. Every listed device is present.
pub(crate) fn enum_dev(_present_only: bool) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for d in registry()?.devices()? {
        names.push(d.info()?.name);
    }
    Ok(names)
}

/// Encodes names as GM/T 0016 lists them: each NUL-terminated, the list ending with an
/// extra NUL. An empty list is empty (length 0).
pub(crate) fn name_list(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
    }
    if !out.is_empty() {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lists_end_with_double_nul() {
        assert_eq!(name_list(&[]), b"");
        assert_eq!(name_list(&["a".into(), "bc".into()]), b"a\0bc\0\0");
    }
}
