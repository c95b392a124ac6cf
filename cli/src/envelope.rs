//! `ukey envelope encrypt|decrypt` (GM/T 0010 SM2 envelopes for bids) and
//! `ukey log export` (the log file as an envelope for the support desk), over
//! `token_hal::tender::envelope`.
//!
//! Output files are written through a temporary file in the same directory and renamed
//! on success: a failure leaves no partial file. A progress bar is drawn only when stderr
//! is a terminal.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use token_hal::PinType;
use token_hal::tender::envelope::{self, Recipient, TokenApp, TokenKeyFinder};

use crate::ctx::{CliError, Ctx, Res, file_err, prompt_pin, read_file};
use crate::{fail, out};

#[derive(Subcommand)]
pub enum EnvelopeCmd {
    /// Encrypt a file for the holders of the given encryption certificates (GM/T 0010
    /// EnvelopedData: SM4-CBC content, SM4 key SM2-encrypted to each certificate).
    Encrypt(EncryptArgs),
    /// Decrypt an envelope with a key on any token present (also keys retired by a
    /// rekey and certificates replaced by a renewal).
    Decrypt(DecryptArgs),
}

#[derive(Args)]
pub struct EncryptArgs {
    /// A recipient's SM2 encryption certificate (PEM or DER); repeat for several.
    #[arg(long = "to", value_name = "CERT", required = true)]
    pub to: Vec<PathBuf>,
    /// Write PEM (label CMS) instead of DER.
    #[arg(long)]
    pub pem: bool,
    /// The file to encrypt.
    pub input: PathBuf,
    /// Where to write the envelope.
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct DecryptArgs {
    /// The envelope (PEM or DER).
    pub input: PathBuf,
    /// Where to write the plaintext (created owner-only).
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: PathBuf,
    /// The bid was signed, then enveloped: verify the SignedData inside (the only check
    /// that detects tampering with an SM4-CBC envelope's content) and write the signed
    /// content itself. Nothing is written when the signature does not verify.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: trusted CA certificates (PEM or DER); the signer must chain to one.
    #[arg(long, value_name = "FILE", requires = "verify")]
    pub ca: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum LogCmd {
    /// Export the log file encrypted to the support desk's certificate.
    Export(LogExportArgs),
}

#[derive(Args)]
pub struct LogExportArgs {
    /// The support desk's SM2 encryption certificate (PEM or DER); repeat for several.
    #[arg(long = "to", value_name = "CERT", required = true)]
    pub to: Vec<PathBuf>,
    /// Write PEM (label CMS) instead of DER.
    #[arg(long)]
    pub pem: bool,
    /// Where to write the encrypted log.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
}

/// A progress bar on a terminal; nothing in scripts.
struct Progress(Option<ProgressBar>, u64);

impl Progress {
    /// A bar; `fallback` is its length while the total is unknown (a segmented BER
    /// content: the size of the input file is close enough).
    fn new(what: &str, fallback: u64) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None, fallback);
        }
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Self(Some(bar), fallback)
    }

    fn update(&mut self, done: u64, total: Option<u64>) {
        if let Some(b) = &self.0 {
            b.set_length(total.unwrap_or(self.1).max(done));
            b.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

fn recipients(paths: &[PathBuf]) -> Res<Vec<Recipient>> {
    paths
        .iter()
        .map(|p| Recipient::from_cert(&read_file(p)?).map_err(|e| file_err(p, e)))
        .collect()
}

/// `ukey envelope ...`
pub fn envelope(ctx: &Ctx, cmd: &EnvelopeCmd) -> Res<()> {
    match cmd {
        EnvelopeCmd::Encrypt(a) => encrypt(ctx, a),
        EnvelopeCmd::Decrypt(a) => decrypt(ctx, a),
    }
}

fn encrypt(ctx: &Ctx, a: &EncryptArgs) -> Res<()> {
    let rs = recipients(&a.to)?;
    let mut bar = Progress::new("encrypting", 0);
    let r = envelope::encrypt_file(&rs, &a.input, &a.out, a.pem, &mut |d, t| bar.update(d, t));
    bar.finish();
    let n = r.map_err(|e| file_err(&a.input, e))?;
    let len = std::fs::metadata(&a.input).map_or(0, |m| m.len());
    if ctx.json() {
        out::json(&json!({
            "envelope": a.out,
            "bytes": n,
            "plaintext_bytes": len,
            "recipients": rs.iter().map(|r| r.subject.clone()).collect::<Vec<_>>(),
            "format": if a.pem { "pem" } else { "der" },
        }));
    } else {
        eprintln!(
            "Encrypted {} ({len} bytes) for {} -> {}",
            a.input.display(),
            rs.iter()
                .map(|r| r.subject.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            a.out.display()
        );
    }
    Ok(())
}

/// The tokens to search: `--token` alone when given, else all present.
fn tokens(ctx: &Ctx) -> Res<Vec<TokenApp>> {
    let all = envelope::tokens_present(ctx.registry()?)?;
    let Some(label) = &ctx.g.token else {
        return Ok(all);
    };
    let chosen: Vec<TokenApp> = all.into_iter().filter(|t| t.app.name() == label).collect();
    if chosen.is_empty() {
        fail!("token {label:?} not found");
    }
    Ok(chosen)
}

fn decrypt(ctx: &Ctx, a: &DecryptArgs) -> Res<()> {
    let tokens = tokens(ctx)?;
    let mut finder = TokenKeyFinder::new(tokens, |t: &TokenApp| {
        let pin = match &ctx.g.pin {
            Some(p) => token_hal::Pin::from(p.as_str()),
            None => prompt_pin(
                &format!("User PIN for '{}' (device {}): ", t.app.name(), t.device),
                "--pin or UKEY_PIN",
            )
            .map_err(|e| token_hal::Error::AccessDenied(e.0))?,
        };
        t.app.verify_pin(PinType::User, &pin)
    });
    let size = std::fs::metadata(&a.input).map_or(0, |m| m.len());
    let mut bar = Progress::new("decrypting", size);
    let r = envelope::decrypt_file(&a.input, &a.out, &mut finder, &mut |d, t| bar.update(d, t));
    bar.finish();
    let d = r.map_err(|e| file_err(&a.input, e))?;
    let signers = if a.verify {
        Some(verify_inner(a, d.is_signed_data())?)
    } else {
        None
    };
    let m = &d.opened_by;
    if ctx.json() {
        out::json(&json!({
            "plaintext": a.out,
            "bytes": d.bytes,
            "content_type": d.content_type.to_string(),
            "signed_data": d.is_signed_data(),
            "recipients": d.recipients,
            "device": m.device,
            "token": m.token,
            "container": m.container,
            "retired_key": m.retired,
            "matched_by": m.how.to_string(),
            "signers": signers.as_ref().map(|v| v.iter().map(|s| json!({
                "subject": s.cert.subject,
                "issuer": s.cert.issuer,
                "serial": s.cert.serial,
                "profile": s.profile,
                "chain_to": s.chain_to,
            })).collect::<Vec<_>>()),
        }));
    } else {
        eprintln!(
            "Decrypted {} -> {} ({} bytes) with the {}key of container '{}' on token '{}' (device {}), found by {}",
            a.input.display(),
            a.out.display(),
            d.bytes,
            if m.retired { "retired " } else { "" },
            m.container,
            m.token,
            m.device,
            m.how
        );
        if let Some(v) = &signers {
            for sg in v {
                eprintln!(
                    "Signature verified ({}): signed by {} (serial {}, issuer {}){}",
                    sg.profile,
                    sg.cert.subject,
                    sg.cert.serial,
                    sg.cert.issuer,
                    sg.chain_to
                        .as_ref()
                        .map(|c| format!(", chain to {c}"))
                        .unwrap_or_default()
                );
            }
        } else if d.is_signed_data() {
            eprintln!(
                "The plaintext is a SignedData: verify its signature, which is what protects the bid against tampering."
            );
        }
    }
    Ok(())
}

/// `--verify`: checks the SignedData just decrypted into `a.out` and replaces it with the
/// signed content. On any failure the output is removed: nothing unverified is left.
fn verify_inner(a: &DecryptArgs, signed: bool) -> Res<Vec<token_hal::tender::cms::Signer>> {
    use token_hal::tender::cms;
    let r = (|| -> Res<Vec<cms::Signer>> {
        if !signed {
            fail!("the decrypted bid is not a SignedData, so --verify cannot check it");
        }
        let trust = match &a.ca {
            Some(p) => Some(cms::read_ca_file(&read_file(p)?).map_err(|e| file_err(p, e))?),
            None => None,
        };
        let bytes = read_file(&a.out)?;
        let v = cms::verify(
            &bytes,
            &cms::VerifyOptions {
                trust: trust.as_deref(),
                ..Default::default()
            },
        )
        .map_err(|e| {
            CliError(format!(
                "the signature inside the envelope does not verify: {e}"
            ))
        })?;
        // Replaces the SignedData just written with the content it signs, whole or not at all.
        envelope::write_file_atomically(&a.out, true, |w| {
            w.write_all(&v.content).map_err(|e| token_hal::Error::Io {
                path: a.out.clone(),
                detail: e.to_string(),
            })
        })
        .map_err(|e| file_err(&a.out, e))?;
        Ok(v.signers)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&a.out);
    }
    r.map_err(|e| CliError(format!("{}: {}; no output written", a.input.display(), e.0)))
}

/// The log file as configured (docs/config.md): `UKEY_LOG_OUTPUT`, else `[log] output`;
/// `file` (and the default) is `ukey.log` in the state directory.
fn log_path(ctx: &Ctx) -> PathBuf {
    let output = std::env::var("UKEY_LOG_OUTPUT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| ctx.config.log.output.clone());
    match output.as_deref() {
        Some(p) if p != "file" && p != "stderr" => PathBuf::from(p),
        _ => ctx.config.state_dir.join("ukey.log"),
    }
}

fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// `ukey log ...`
pub fn log(ctx: &Ctx, cmd: &LogCmd) -> Res<()> {
    let LogCmd::Export(a) = cmd;
    let path = log_path(ctx);
    if !path.is_file() {
        fail!(
            "no log file at {}: switch logging on to a file (UKEY_LOG=info UKEY_LOG_OUTPUT=file, or [log] level and output = \"file\" in the config), reproduce the problem, then export",
            path.display()
        );
    }
    let rs = recipients(&a.to)?;
    // The rotated log first, then the current one; each taken at its present length
    // (ukey itself may append while this runs).
    let mut parts: Vec<(PathBuf, File, u64)> = Vec::new();
    for p in [rotated(&path), path.clone()] {
        if !p.is_file() {
            continue;
        }
        let f = File::open(&p).map_err(|e| CliError(format!("{}: {e}", p.display())))?;
        let len = f
            .metadata()
            .map_err(|e| CliError(format!("{}: {e}", p.display())))?
            .len();
        parts.push((p, f, len));
    }
    let total: u64 = parts.iter().map(|(_, _, l)| l).sum();
    let files: Vec<String> = parts
        .iter()
        .map(|(p, _, _)| p.display().to_string())
        .collect();
    let mut reader: Box<dyn Read> = Box::new(std::io::empty());
    for (_, f, len) in parts {
        reader = Box::new(reader.chain(BufReader::with_capacity(1 << 16, f).take(len)));
    }
    let mut bar = Progress::new("encrypting the log", total);
    let r = envelope::encrypt_reader(&rs, reader, total, &a.out, a.pem, &mut |d, t| {
        bar.update(d, t)
    });
    bar.finish();
    let n = r.map_err(|e| file_err(&path, e))?;
    if ctx.json() {
        out::json(&json!({
            "envelope": a.out,
            "bytes": n,
            "log_files": files,
            "log_bytes": total,
            "recipients": rs.iter().map(|r| r.subject.clone()).collect::<Vec<_>>(),
        }));
    } else {
        eprintln!(
            "Encrypted the log ({}, {total} bytes) for {} -> {}",
            files.join(" + "),
            rs.iter()
                .map(|r| r.subject.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            a.out.display()
        );
    }
    Ok(())
}
