//! The configuration parser: `Config::resolve` over a `ukey.toml` (the input, up to a
//! `#--softhsm2--` line) and a `softhsm2.conf` (the rest), through the `Env` seam.
//! Invariants: a config that resolves obeys the documented bounds (kdf_iterations ≥ 1000,
//! pin_retries 1..=255, PIN cache minutes from the list, relative paths made absolute
//! against the file); resolving is deterministic; the data dir of a softhsm2.conf is its
//! `directories.tokendir`.
#![no_main]

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use token_hal::config::{self, Config, DataDirSource, Env, PIN_CACHE_MINUTES};

struct FuzzEnv {
    conf: Option<PathBuf>,
    softhsm2: PathBuf,
}

impl Env for FuzzEnv {
    fn var(&self, name: &str) -> Option<OsString> {
        match name {
            "UKEY_CONF" => self.conf.clone().map(Into::into),
            "SOFTHSM2_CONF" => Some(self.softhsm2.clone().into()),
            "HOME" => Some("/nonexistent-ukey-fuzz-home".into()),
            _ => None,
        }
    }
}

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| ukey_fuzz::scratch_dir("config"))
}

fn check(c: &Config) {
    assert!(c.kdf_iterations() >= 1000);
    assert!((1..=255).contains(&c.pin_retries()));
    assert!(PIN_CACHE_MINUTES.contains(&c.pin_cache.minutes()));
    if let Some(f) = &c.file {
        for l in &c.skf_libraries {
            assert!(l.path.is_absolute() || !f.is_absolute());
        }
        for l in &c.pkcs11_libraries {
            assert!(l.path.is_absolute() || !f.is_absolute());
        }
    }
    if let Ok(k) = c.apdu.dev_auth_key() {
        assert_eq!(k.len(), 16);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (ukey, softhsm) = text.split_once("#--softhsm2--\n").unwrap_or((&text, ""));
    let d = dir();
    let conf = d.join("ukey.toml");
    let sh = d.join("softhsm2.conf");
    std::fs::write(&conf, ukey).expect("write the config");
    std::fs::write(&sh, softhsm).expect("write softhsm2.conf");

    let env = FuzzEnv {
        conf: Some(conf.clone()),
        softhsm2: sh.clone(),
    };
    let first = Config::resolve(&env, None);
    if let Ok(c) = &first {
        check(c);
        assert_eq!(c.file.as_deref(), Some(conf.as_path()));
    }
    let second = Config::resolve(&env, None);
    assert_eq!(first.is_ok(), second.is_ok());
    if let (Ok(a), Ok(b)) = (&first, &second) {
        assert_eq!(a, b);
    }
    // Without ukey.toml: the softhsm2.conf decides the data dir.
    let env = FuzzEnv {
        conf: None,
        softhsm2: sh,
    };
    if let Ok(c) = Config::resolve(&env, None) {
        check(&c);
        if let Some(t) = config::softhsm2_value(softhsm, "directories.tokendir") {
            assert_eq!(c.data_dir, PathBuf::from(t));
            assert!(matches!(c.data_dir_source, DataDirSource::SoftHsm2Conf(_)));
        }
    }
});
