//! Logging with `tracing`: off by default, switched on by `UKEY_LOG` (a filter such as
//! `info` or `token_hal=debug`) or by `[log] level` in the config. It writes to stderr, or
//! to `$XDG_STATE_HOME/ukey/ukey.log`, capped in size (the old log moves to `ukey.log.1`).
//!
//! Nothing in ukey logs a PIN, a key or plaintext: secrets are types whose `Debug` is
//! redacted, and spans record only lengths and handles.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Mutex, Once};

use tracing_subscriber::EnvFilter;

use crate::config::{Config, DEFAULT_LOG_MAX_BYTES};

static INIT: Once = Once::new();

/// Installs the global subscriber once per process, if logging is switched on.
/// Later calls do nothing. Errors (a bad filter, an unwritable log file) leave
/// logging off rather than failing the caller.
pub fn init(config: &Config) {
    INIT.call_once(|| {
        let level = std::env::var("UKEY_LOG")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| config.log.level.clone());
        let Some(level) = level else { return };
        if level == "off" {
            return;
        }
        let Ok(filter) = EnvFilter::try_new(&level) else {
            return;
        };
        let output = std::env::var("UKEY_LOG_OUTPUT")
            .ok()
            .or_else(|| config.log.output.clone())
            .unwrap_or_else(|| "stderr".into());
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false);
        if output == "stderr" {
            let _ = builder.with_writer(io::stderr).try_init();
        } else {
            let path = if output == "file" {
                config.state_dir.join("ukey.log")
            } else {
                PathBuf::from(output)
            };
            let max = config.log.max_bytes.unwrap_or(DEFAULT_LOG_MAX_BYTES);
            if let Ok(w) = CappedFile::open(path, max) {
                let w = Mutex::new(w);
                let _ = builder.with_writer(w).try_init();
            }
        }
    });
}

/// A log file that moves itself to `<name>.1` when it passes `max` bytes.
pub struct CappedFile {
    path: PathBuf,
    file: File,
    written: u64,
    max: u64,
}

impl CappedFile {
    /// Opens (appending) or creates the log file and its directory.
    pub fn open(path: PathBuf, max: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path,
            file,
            written,
            max: max.max(4096),
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        fs::rename(&self.path, old)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for CappedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.max {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_file_rotates() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log/ukey.log");
        let mut w = CappedFile::open(p.clone(), 4096).unwrap();
        for _ in 0..200 {
            w.write_all(&[b'x'; 100]).unwrap();
        }
        assert!(fs::metadata(&p).unwrap().len() <= 4096);
        assert!(tmp.path().join("log/ukey.log.1").exists());
    }
}
