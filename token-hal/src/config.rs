//! Configuration and where data lives. This is the one place that decides it; the CLI
//! and both libraries call [`Config::load`].
//!
//! The data directory is, in order:
//! 1. `UKEY_DATA_DIR`;
//! 2. `data_dir` in the TOML config found through `UKEY_CONF`, else
//!    `$XDG_CONFIG_HOME/ukey/ukey.toml` (or `~/.config/ukey/ukey.toml`), else
//!    `/etc/ukey/ukey.toml`;
//! 3. when `UKEY_CONF` is unset and `SOFTHSM2_CONF` is set, that file's
//!    `directories.tokendir`;
//! 4. `$XDG_DATA_HOME/ukey` (or `~/.local/share/ukey`).
//!
//! Every key is documented in docs/config.md.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Default PBKDF2-HMAC-SM3 iteration count for PIN-derived keys (about 100 ms here).
pub const DEFAULT_KDF_ITERATIONS: u32 = 200_000;
/// Default size cap of the log file, in bytes.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default label of the soft device made when none exists.
pub const DEFAULT_SOFT_LABEL: &str = "ukey-soft";

/// Where a setting came from, for `ukey` to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataDirSource {
    /// `UKEY_DATA_DIR`.
    Env,
    /// `data_dir` in this config file.
    ConfigFile(PathBuf),
    /// `directories.tokendir` of this SoftHSM2 config.
    SoftHsm2Conf(PathBuf),
    /// The XDG default.
    Default,
}

/// The `[log]` table.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `token_hal=debug`; absent means off.
    pub level: Option<String>,
    /// `stderr` (default) or `file` (`$XDG_STATE_HOME/ukey/ukey.log`) or a path.
    pub output: Option<String>,
    /// Size cap of the log file in bytes.
    pub max_bytes: Option<u64>,
}

/// The `[soft]` table: the soft-token backend.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SoftConfig {
    /// PBKDF2-HMAC-SM3 iterations for PIN-derived keys of newly written wraps.
    pub kdf_iterations: Option<u32>,
    /// Retry limit of new applications' PINs.
    pub pin_retries: Option<u32>,
    /// SQLite busy timeout in milliseconds.
    pub busy_timeout_ms: Option<u32>,
}

/// The `[pkcs11]` table.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Order of slots by device serial; unlisted ones follow, soft tokens first.
    pub slot_order: Option<Vec<String>>,
    /// Vendor values of the SM mechanisms and key types the PKCS#11 module speaks:
    /// `"tass"` (default) or `"sansec"` (include/ukey_pkcs11.h).
    pub vendor_values: Option<String>,
}

/// One HID key model in the `[hid]` table.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct HidDeviceId {
    /// USB vendor ID (TOML takes `0x096e`).
    pub vid: u16,
    /// USB product ID.
    pub pid: u16,
}

/// The `[hid]` table: which HID keys the `hid` transport opens.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HidConfig {
    /// The VID/PID table; empty (the default) means no HID key is opened.
    #[serde(default)]
    pub devices: Vec<HidDeviceId>,
    /// How long to wait for each report of an answer, in milliseconds. Default 30000.
    pub timeout_ms: Option<u64>,
}

/// The `[apdu]` table: cards speaking docs/apdu.md.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApduConfig {
    /// The device authentication key (32 hex digits) `C_InitToken` uses on a card; default
    /// GM/T 0016's customary `1234567812345678`.
    pub dev_auth_key: Option<String>,
    /// Virtual keys served in-process over the loopback link (backend `loopback`), one per
    /// state directory (as `ukey sim --state`). For tests; keep them outside `data_dir`.
    #[serde(default)]
    pub loopback: Vec<PathBuf>,
    /// Virtual keys served in-process behind the HID report framing (backend `hid`), one
    /// per state directory. For tests of the HID path on machines without USB.
    #[serde(default)]
    pub hid_loopback: Vec<PathBuf>,
}

impl ApduConfig {
    /// The device authentication key for `C_InitToken` on a card.
    pub fn dev_auth_key(&self) -> Result<Vec<u8>> {
        match &self.dev_auth_key {
            None => Ok(crate::soft::DEFAULT_DEV_AUTH_KEY.to_vec()),
            Some(h) => match hex::decode(h.trim()) {
                Ok(k) if k.len() == 16 => Ok(k),
                _ => Err(Error::invalid_arg(
                    "apdu.dev_auth_key must be 32 hex digits (16 bytes)",
                )),
            },
        }
    }
}

/// The `[pin_cache]` table: whether `ukey` reuses a verified user PIN through the per-user
/// agent (`ukey agent`), and for how long. The libraries never read it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PinCacheConfig {
    /// Off unless `true`.
    pub enabled: Option<bool>,
    /// Minutes a PIN is reused: 1, 5, 10, 30 or 60 (default 30).
    pub minutes: Option<u32>,
}

/// The minutes a cached PIN may be kept for, as CA clients offer them.
pub const PIN_CACHE_MINUTES: [u32; 5] = [1, 5, 10, 30, 60];
/// Default minutes of the PIN cache.
pub const DEFAULT_PIN_CACHE_MINUTES: u32 = 30;

impl PinCacheConfig {
    /// Whether the cache is switched on.
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }
    /// The minutes a PIN is kept.
    pub fn minutes(&self) -> u32 {
        self.minutes.unwrap_or(DEFAULT_PIN_CACHE_MINUTES)
    }
}

/// One `[[pkcs11_library]]` table: a third-party PKCS#11 module the PKCS#11 bridge
/// (`ukey-p11-bridge`) presents as devices.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11LibraryConfig {
    /// The module file; a relative path is taken from the config file's directory.
    pub path: PathBuf,
    /// Only these slot ids; absent means every slot with an initialised token.
    pub slots: Option<Vec<u64>>,
    /// Only the token with this label.
    pub token_label: Option<String>,
}

/// One `[[skf_library]]` table: a vendor GM/T 0016 library the `skf` backend bridges
/// (docs/skf-bridge.md).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SkfLibraryConfig {
    /// The library file (relative paths are relative to the config file).
    pub path: PathBuf,
    /// Which SM2 algorithm-ID set the library speaks: `"2012"` (SGD_SM2_1 = 0x00020200)
    /// or `"legacy"` (0x00020100). Absent: guessed from its DEVINFO, with a fallback.
    pub sm2_ids: Option<String>,
}

/// The TOML file as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    soft: SoftConfig,
    #[serde(default)]
    pkcs11: Pkcs11Config,
    #[serde(default)]
    hid: HidConfig,
    #[serde(default)]
    apdu: ApduConfig,
    #[serde(default)]
    pin_cache: PinCacheConfig,
    #[serde(default)]
    pkcs11_library: Vec<Pkcs11LibraryConfig>,
    #[serde(default)]
    skf_library: Vec<SkfLibraryConfig>,
}

/// The resolved configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where `data_dir` came from.
    pub data_dir_source: DataDirSource,
    /// Logging.
    pub log: LogConfig,
    /// Soft-token settings.
    pub soft: SoftConfig,
    /// PKCS#11 settings.
    pub pkcs11: Pkcs11Config,
    /// HID keys.
    pub hid: HidConfig,
    /// Cards speaking the ukey command set.
    pub apdu: ApduConfig,
    /// The CLI's PIN cache.
    pub pin_cache: PinCacheConfig,
    /// Third-party PKCS#11 modules for the PKCS#11 bridge (`[[pkcs11_library]]`).
    pub pkcs11_libraries: Vec<Pkcs11LibraryConfig>,
    /// Vendor SKF libraries to bridge (`[[skf_library]]`), paths resolved.
    pub skf_libraries: Vec<SkfLibraryConfig>,
    /// `XDG_STATE_HOME`-based directory for the log file.
    pub state_dir: PathBuf,
}

/// The environment variables the resolution reads; a seam for tests.
pub trait Env {
    /// One variable; empty values count as unset.
    fn var(&self, name: &str) -> Option<OsString>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name).filter(|v| !v.is_empty())
    }
}

impl Config {
    /// Resolves the configuration from the process environment.
    pub fn load() -> Result<Self> {
        Self::resolve(&ProcessEnv, None)
    }

    /// Resolves with an explicit config file (the PKCS#11 init string `ukey_conf=`),
    /// which takes the place of `UKEY_CONF`.
    pub fn load_from(path: &Path) -> Result<Self> {
        Self::resolve(&ProcessEnv, Some(path))
    }

    /// Resolves from `env`; `explicit` overrides `UKEY_CONF`.
    pub fn resolve(env: &dyn Env, explicit: Option<&Path>) -> Result<Self> {
        let home = env.var("HOME").map(PathBuf::from);
        let xdg = |var: &str, fallback: &str| -> PathBuf {
            env.var(var).map(PathBuf::from).unwrap_or_else(|| {
                home.clone()
                    .unwrap_or_else(|| PathBuf::from("/"))
                    .join(fallback)
            })
        };
        let ukey_conf = explicit
            .map(Path::to_path_buf)
            .or_else(|| env.var("UKEY_CONF").map(PathBuf::from));

        // The config file: an explicit one must exist; the implicit ones may not.
        let (file, parsed) = match &ukey_conf {
            Some(p) => (Some(p.clone()), Some(read_config(p)?)),
            None => {
                let user = xdg("XDG_CONFIG_HOME", ".config").join("ukey/ukey.toml");
                let system = PathBuf::from("/etc/ukey/ukey.toml");
                if user.is_file() {
                    (Some(user.clone()), Some(read_config(&user)?))
                } else if system.is_file() {
                    (Some(system.clone()), Some(read_config(&system)?))
                } else {
                    (None, None)
                }
            }
        };
        let parsed = parsed.unwrap_or_default();

        let (data_dir, data_dir_source) = if let Some(d) = env.var("UKEY_DATA_DIR") {
            (PathBuf::from(d), DataDirSource::Env)
        } else if let (Some(d), Some(f)) = (&parsed.data_dir, &file) {
            (resolve_relative(d, f), DataDirSource::ConfigFile(f.clone()))
        } else if let (None, Some(sh)) = (&ukey_conf, env.var("SOFTHSM2_CONF")) {
            let sh = PathBuf::from(sh);
            match softhsm2_tokendir(&sh)? {
                Some(dir) => (dir, DataDirSource::SoftHsm2Conf(sh)),
                None => (
                    xdg("XDG_DATA_HOME", ".local/share").join("ukey"),
                    DataDirSource::Default,
                ),
            }
        } else {
            (
                xdg("XDG_DATA_HOME", ".local/share").join("ukey"),
                DataDirSource::Default,
            )
        };

        let pkcs11_libraries = (parsed.pkcs11_library.into_iter())
            .map(|l| Pkcs11LibraryConfig {
                path: file
                    .as_ref()
                    .map_or(l.path.clone(), |f| resolve_relative(&l.path, f)),
                ..l
            })
            .collect();
        let skf_libraries = parsed
            .skf_library
            .into_iter()
            .map(|mut l| {
                if let Some(f) = &file {
                    l.path = resolve_relative(&l.path, f);
                }
                l
            })
            .collect();
        Ok(Self {
            file,
            data_dir,
            data_dir_source,
            log: parsed.log,
            soft: parsed.soft,
            pkcs11: parsed.pkcs11,
            hid: parsed.hid,
            apdu: parsed.apdu,
            pin_cache: parsed.pin_cache,
            pkcs11_libraries,
            skf_libraries,
            state_dir: xdg("XDG_STATE_HOME", ".local/state").join("ukey"),
        })
    }

    /// PBKDF2 iterations for new PIN wraps.
    pub fn kdf_iterations(&self) -> u32 {
        self.soft.kdf_iterations.unwrap_or(DEFAULT_KDF_ITERATIONS)
    }

    /// Retry limit for new PINs.
    pub fn pin_retries(&self) -> u32 {
        self.soft
            .pin_retries
            .unwrap_or(crate::model::DEFAULT_PIN_RETRIES)
    }
}

fn resolve_relative(p: &Path, config_file: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(p)
    }
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let text = fs::read_to_string(path).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let cfg: ConfigFile = toml::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        detail: e.message().to_owned(),
    })?;
    if cfg.soft.kdf_iterations.is_some_and(|it| it < 1000) {
        return Err(Error::Config {
            path: path.to_path_buf(),
            detail: "soft.kdf_iterations must be at least 1000".into(),
        });
    }
    if cfg.hid.timeout_ms == Some(0) {
        return Err(Error::Config {
            path: path.to_path_buf(),
            detail: "hid.timeout_ms must be at least 1".into(),
        });
    }
    for lib in &cfg.skf_library {
        if lib
            .sm2_ids
            .as_deref()
            .is_some_and(|v| v != "2012" && v != "legacy")
        {
            return Err(Error::Config {
                path: path.to_path_buf(),
                detail: "skf_library.sm2_ids must be \"2012\" or \"legacy\"".into(),
            });
        }
    }
    if cfg.soft.pin_retries.is_some_and(|r| r == 0 || r > 255) {
        return Err(Error::Config {
            path: path.to_path_buf(),
            detail: "soft.pin_retries must be 1..=255".into(),
        });
    }
    if let Some(m) = cfg.pin_cache.minutes
        && !PIN_CACHE_MINUTES.contains(&m)
    {
        return Err(Error::Config {
            path: path.to_path_buf(),
            detail: format!("pin_cache.minutes must be one of 1, 5, 10, 30 or 60, not {m}"),
        });
    }
    Ok(cfg)
}

/// `directories.tokendir` of a softhsm2.conf (`key = value` lines, `#` comments).
fn softhsm2_tokendir(path: &Path) -> Result<Option<PathBuf>> {
    let text = fs::read_to_string(path).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(softhsm2_value(&text, "directories.tokendir").map(PathBuf::from))
}

/// A value of a softhsm2.conf (`key = value` lines, `#` comments).
pub fn softhsm2_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct MapEnv(HashMap<&'static str, String>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<OsString> {
            self.0.get(name).map(OsString::from)
        }
    }

    fn env(pairs: &[(&'static str, &str)]) -> MapEnv {
        MapEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    #[test]
    fn order_of_resolution() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let conf = tmp.path().join("ukey.toml");
        fs::write(&conf, "data_dir = \"/from/conf\"\n").unwrap();
        let sh = tmp.path().join("softhsm2.conf");
        fs::write(
            &sh,
            "# c\ndirectories.tokendir = /from/softhsm\nobjectstore.backend = file\n",
        )
        .unwrap();
        let h = home.to_str().unwrap();

        let c = Config::resolve(&env(&[("HOME", h)]), None).unwrap();
        assert_eq!(c.data_dir, home.join(".local/share/ukey"));
        assert_eq!(c.data_dir_source, DataDirSource::Default);

        let c = Config::resolve(&env(&[("HOME", h), ("XDG_DATA_HOME", "/xdg")]), None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/xdg/ukey"));

        let s = sh.to_str().unwrap();
        let c = Config::resolve(&env(&[("HOME", h), ("SOFTHSM2_CONF", s)]), None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/softhsm"));

        let cf = conf.to_str().unwrap();
        let c = Config::resolve(
            &env(&[("HOME", h), ("SOFTHSM2_CONF", s), ("UKEY_CONF", cf)]),
            None,
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/conf"));

        let c = Config::resolve(
            &env(&[
                ("HOME", h),
                ("UKEY_CONF", cf),
                ("UKEY_DATA_DIR", "/from/env"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.data_dir_source, DataDirSource::Env);

        // The user config is found through XDG_CONFIG_HOME.
        let xdg_conf = tmp.path().join("cfg");
        fs::create_dir_all(xdg_conf.join("ukey")).unwrap();
        fs::write(xdg_conf.join("ukey/ukey.toml"), "data_dir = \"rel\"\n").unwrap();
        let c = Config::resolve(
            &env(&[("HOME", h), ("XDG_CONFIG_HOME", xdg_conf.to_str().unwrap())]),
            None,
        )
        .unwrap();
        assert_eq!(c.data_dir, xdg_conf.join("ukey/rel"));
    }

    #[test]
    fn hid_table() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("ukey.toml");
        let load = |text: &str| {
            fs::write(&conf, text).unwrap();
            Config::resolve(&env(&[("UKEY_CONF", conf.to_str().unwrap())]), None)
        };
        assert_eq!(load("").unwrap().hid, HidConfig::default());
        let c = load(
            "[hid]\ndevices = [{ vid = 0x096e, pid = 0x0807 }, { vid = 0x163c, pid = 0x0407 }]\n\
             timeout_ms = 5000\n",
        )
        .unwrap();
        assert_eq!(
            c.hid.devices,
            [
                HidDeviceId {
                    vid: 0x096e,
                    pid: 0x0807
                },
                HidDeviceId {
                    vid: 0x163c,
                    pid: 0x0407
                }
            ]
        );
        assert_eq!(c.hid.timeout_ms, Some(5000));
        // Out of range, unknown keys and a zero timeout are refused.
        assert!(load("[hid]\ndevices = [{ vid = 0x10000, pid = 1 }]\n").is_err());
        assert!(load("[hid]\ndevices = [{ vid = 1, pid = 1, usage = 2 }]\n").is_err());
        assert!(load("[hid]\ntimeout_ms = 0\n").is_err());
    }

    #[test]
    fn pkcs11_libraries_are_read_relative_to_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("ukey.toml");
        fs::write(
            &conf,
            "[[pkcs11_library]]\npath = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
             token_label = \"t\"\n[[pkcs11_library]]\npath = \"vendor.so\"\nslots = [1, 3]\n",
        )
        .unwrap();
        let c = Config::resolve(&env(&[("UKEY_CONF", conf.to_str().unwrap())]), None).unwrap();
        assert_eq!(c.pkcs11_libraries.len(), 2);
        assert_eq!(c.pkcs11_libraries[0].token_label.as_deref(), Some("t"));
        assert_eq!(c.pkcs11_libraries[1].path, tmp.path().join("vendor.so"));
        assert_eq!(c.pkcs11_libraries[1].slots, Some(vec![1, 3]));
        fs::write(&conf, "[[pkcs11_library]]\nslots = [1]\n").unwrap();
        assert!(Config::resolve(&env(&[("UKEY_CONF", conf.to_str().unwrap())]), None).is_err());
    }

    #[test]
    fn skf_libraries_are_read_with_paths_resolved() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("ukey.toml");
        fs::write(
            &conf,
            "[[skf_library]]\npath = \"vendor/libv.so\"\n\n[[skf_library]]\npath = \"/opt/x.so\"\nsm2_ids = \"legacy\"\n",
        )
        .unwrap();
        let c = Config::resolve(&env(&[("UKEY_CONF", conf.to_str().unwrap())]), None).unwrap();
        assert_eq!(c.skf_libraries.len(), 2);
        assert_eq!(c.skf_libraries[0].path, tmp.path().join("vendor/libv.so"));
        assert_eq!(c.skf_libraries[1].path, PathBuf::from("/opt/x.so"));
        assert_eq!(c.skf_libraries[1].sm2_ids.as_deref(), Some("legacy"));
        fs::write(
            &conf,
            "[[skf_library]]\npath = \"x.so\"\nsm2_ids = \"2016\"\n",
        )
        .unwrap();
        assert!(Config::resolve(&env(&[("UKEY_CONF", conf.to_str().unwrap())]), None).is_err());
    }

    #[test]
    fn bad_config_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("bad.toml");
        fs::write(&conf, "data_dir = [\n").unwrap();
        let e = Config::resolve(&env(&[("UKEY_CONF", conf.to_str().unwrap())]), None).unwrap_err();
        assert!(e.to_string().contains("bad.toml"), "{e}");
        fs::write(&conf, "unknown_key = 1\n").unwrap();
        assert!(Config::resolve(&env(&[("UKEY_CONF", conf.to_str().unwrap())]), None).is_err());
        let missing = tmp.path().join("missing.toml");
        let e =
            Config::resolve(&env(&[("UKEY_CONF", missing.to_str().unwrap())]), None).unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");
    }
}
