//! SoftHSM2 drop-in: when `SOFTHSM2_CONF` is set and `UKEY_CONF` is not, the keys of that
//! file ukey can serve (`log.level`, `slots.removable`, `slots.mechanisms`,
//! `library.reset_on_fork`; `directories.tokendir` is read by token-hal's `Config`).

use cryptoki_sys::CK_MECHANISM_TYPE;
use token_hal::config::softhsm2_value;

use crate::mechanism;

/// Settings taken from a SoftHSM2 config, or the native defaults.
#[derive(Clone, Debug, Default)]
pub(crate) struct Compat {
    /// A SoftHSM2 config was read.
    #[allow(dead_code)]
    pub softhsm: bool,
    /// `slots.removable`.
    pub removable: bool,
    /// `library.reset_on_fork` (native default: a forked child may initialise afresh).
    pub reset_on_fork: bool,
    /// `slots.mechanisms`: allow list (None: all) and deny list.
    pub allow: Option<Vec<CK_MECHANISM_TYPE>>,
    pub deny: Vec<CK_MECHANISM_TYPE>,
    /// `log.level` mapped to a tracing filter.
    pub log_level: Option<String>,
}

impl Compat {
    /// Reads `SOFTHSM2_CONF` when it applies.
    pub fn from_env() -> Self {
        let ukey = std::env::var_os("UKEY_CONF").is_some_and(|v| !v.is_empty());
        let path = match std::env::var_os("SOFTHSM2_CONF") {
            Some(p) if !p.is_empty() && !ukey => p,
            _ => {
                return Self {
                    reset_on_fork: true,
                    ..Self::default()
                };
            }
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        Self::parse(&text)
    }

    /// Parses the text of a softhsm2.conf.
    pub fn parse(text: &str) -> Self {
        let flag =
            |k: &str| softhsm2_value(text, k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut allow: Option<Vec<CK_MECHANISM_TYPE>> = None;
        let mut deny = Vec::new();
        if let Some(list) = softhsm2_value(text, "slots.mechanisms") {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if item.eq_ignore_ascii_case("ALL") {
                    continue;
                }
                if let Some(name) = item.strip_prefix('-') {
                    if let Some(m) = mechanism::by_name(name.trim()) {
                        deny.push(m);
                    }
                } else if let Some(m) = mechanism::by_name(item) {
                    allow.get_or_insert_with(Vec::new).push(m);
                }
            }
        }
        let log_level = softhsm2_value(text, "log.level").map(|l| {
            match l.to_ascii_uppercase().as_str() {
                "ERROR" => "error",
                "WARNING" => "warn",
                "INFO" => "info",
                _ => "debug",
            }
            .to_owned()
        });
        Self {
            softhsm: true,
            removable: flag("slots.removable"),
            reset_on_fork: flag("library.reset_on_fork"),
            allow,
            deny,
            log_level,
        }
    }

    /// Whether a mechanism is offered under these settings.
    pub fn allows(&self, m: CK_MECHANISM_TYPE) -> bool {
        if self.deny.contains(&m) {
            return false;
        }
        match &self.allow {
            Some(a) => a.contains(&m),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki_sys::*;

    #[test]
    fn mechanism_lists_and_flags() {
        let c = Compat::parse(
            "slots.removable = true\nslots.mechanisms = ALL,-CKM_SHA256,-CKM_AES_ECB\nlog.level = INFO\n",
        );
        assert!(c.removable && !c.reset_on_fork);
        assert!(!c.allows(CKM_SHA256) && !c.allows(CKM_AES_ECB) && c.allows(CKM_SHA_1));
        assert_eq!(c.log_level.as_deref(), Some("info"));
        let c = Compat::parse("slots.mechanisms = CKM_SHA256\nlibrary.reset_on_fork = true\n");
        assert!(c.allows(CKM_SHA256) && !c.allows(CKM_SHA_1) && c.reset_on_fork);
    }
}
