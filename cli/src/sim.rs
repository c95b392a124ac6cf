//! `ukey sim`: the virtual key (token-hal `apdu::applet`), attached to the real pcscd
//! through vsmartcard's vpcd reader, so the PC/SC path is tested end to end with no
//! hardware. Its state (a soft device and the card's device key) lives in `--state DIR`,
//! or in a temporary directory that goes when it exits.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Args;
use token_hal::apdu::applet::{ServedLog, VirtualKey};
use token_hal::apdu::transport::CardHandler;
use token_hal::apdu::vicc::{DEFAULT_VPCD_ADDR, Vicc};
use token_hal::soft::SoftOptions;

use crate::ctx::{CliError, Ctx, Res};

/// `ukey sim` options.
#[derive(Args)]
pub struct SimArgs {
    /// vpcd's address (its reader config in /etc/reader.conf.d/vpcd names the port).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_VPCD_ADDR)]
    pub vpcd: String,
    /// The key's state directory, made on first use; a temporary one when absent.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Label of a new key.
    #[arg(long, default_value = "ukey virtual key")]
    pub label: String,
    /// Append every served command to this file as it happens, one JSON line each:
    /// header, sizes, status word, whether it came in the secure channel (never data).
    #[arg(long, value_name = "FILE")]
    pub apdu_log: Option<PathBuf>,
    /// Append the raw bytes that crossed the reader to this file, in hex, a line per
    /// command ("> ") and per response ("< "): the transport's traffic, for tests that
    /// check what an eavesdropper on PC/SC would see (the PIN never, docs/apdu.md §3).
    #[arg(long, value_name = "FILE")]
    pub traffic_log: Option<PathBuf>,
    /// Say the key cannot be removed (an embedded secure element, not a USB key). It
    /// always says it is software (DEVICE INFO's form byte, docs/apdu.md).
    #[arg(long)]
    pub fixed: bool,
    /// Seconds to wait for vpcd to listen (pcscd starting).
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
}

/// The virtual key, writing its APDU log as it serves.
struct Logged {
    key: VirtualKey,
    log: ServedLog,
    written: usize,
    out: Option<File>,
    traffic: Option<File>,
}

impl Logged {
    fn flush_log(&mut self) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let served = match self.log.lock() {
            Ok(l) => l[self.written..].to_vec(),
            Err(_) => return,
        };
        self.written += served.len();
        for s in served {
            let line = serde_json::json!({
                "header": hex::encode(s.header),
                "in": s.data_in,
                "out": s.data_out,
                "sw": format!("{:04X}", s.sw),
                "secure": s.secure,
            });
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

impl CardHandler for Logged {
    fn power_on(&mut self) -> Vec<u8> {
        self.key.power_on()
    }
    fn power_off(&mut self) {
        self.key.power_off();
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        let r = self.key.process(apdu);
        self.flush_log();
        if let Some(t) = self.traffic.as_mut() {
            let _ = writeln!(t, "> {}\n< {}", hex::encode(apdu), hex::encode(&r));
            let _ = t.flush();
        }
        r
    }
}

/// Runs the virtual key until vpcd goes away.
pub fn sim(ctx: &Ctx, a: &SimArgs) -> Res<()> {
    let opts = SoftOptions::from_config(&ctx.config);
    let tmp;
    let dir = match &a.state {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| CliError(format!("temporary state: {e}")))?;
            tmp.path().to_path_buf()
        }
    };
    let mut key = VirtualKey::open(&dir, &a.label, &opts)?;
    key.set_fixed(a.fixed);
    let log = key.log();
    let append = |p: &Option<PathBuf>| -> Res<Option<File>> {
        match p {
            Some(p) => Ok(Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| CliError(format!("{}: {e}", p.display())))?,
            )),
            None => Ok(None),
        }
    };
    let out = append(&a.apdu_log)?;
    let traffic = append(&a.traffic_log)?;
    let handler = Logged {
        key,
        log,
        written: 0,
        out,
        traffic,
    };
    let stop = Arc::new(AtomicBool::new(false));
    eprintln!(
        "ukey sim: virtual key (state {}) connecting to vpcd at {}",
        dir.display(),
        a.vpcd
    );
    let mut vicc = Vicc::connect_retry(&a.vpcd, handler, stop, Duration::from_secs(a.wait))?;
    let stats = vicc.run()?;
    eprintln!("ukey sim: vpcd closed the connection ({stats:?})");
    Ok(())
}
