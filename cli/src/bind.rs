//! `ukey bind challenge|respond|verify|list|unbind`: binding a token's signing key to a
//! platform account, over token_hal::tender::bind.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use token_hal::tender::bind::{self, BindOutcome, ResponseFormat, Store};
use token_hal::tender::cms;

use crate::cms::write_atomic;
use crate::ctx::{Ctx, Res, file_err, in_file, read_file, write_out};
use crate::out;

/// Response formats on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// CMS SignedData (GM/T 0010 for SM2 keys), PEM.
    Cms,
    /// A JSON document with the challenge, the certificate and the signature.
    Json,
}

/// Where the platform keeps its nonces and bindings.
#[derive(Args)]
pub struct StateArg {
    /// Platform state directory (holds bind.sqlite: issued nonces and bindings).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
}

#[derive(Subcommand)]
pub enum BindCmd {
    /// Platform: issue a single-use challenge (JSON) for a client to sign.
    Challenge {
        #[command(flatten)]
        state: StateArg,
        /// This platform's id; only this platform accepts the answer.
        #[arg(long, value_name = "ID")]
        platform: String,
        /// Seconds the challenge stays valid (1..=86400).
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        ttl: u64,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Client: sign a challenge with the container's signing key.
    Respond {
        /// The challenge file from the platform.
        #[arg(long, value_name = "FILE")]
        challenge: PathBuf,
        /// Response format.
        #[arg(long, value_enum, default_value = "cms")]
        format: FormatArg,
        /// Where to write the response.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: PathBuf,
    },
    /// Platform: check a response and its certificate, consume the nonce, print the
    /// identity, and with --account bind the key to the account.
    Verify {
        #[command(flatten)]
        state: StateArg,
        /// Trusted CA certificates (PEM, one or more, or DER).
        #[arg(long, value_name = "FILE")]
        ca: PathBuf,
        /// Bind the key to this account (a renewed certificate of a bound key keeps it).
        #[arg(long, value_name = "ACCOUNT")]
        account: Option<String>,
        /// The response file (CMS or JSON).
        response: PathBuf,
    },
    /// Platform: list bindings.
    List {
        #[command(flatten)]
        state: StateArg,
        /// Only this account's.
        #[arg(long, value_name = "ACCOUNT")]
        account: Option<String>,
    },
    /// Platform: remove a key's binding from an account (frees the key for another).
    Unbind {
        #[command(flatten)]
        state: StateArg,
        /// The account.
        #[arg(long, value_name = "ACCOUNT")]
        account: String,
        /// The key's SM3 fingerprint as `bind verify` / `bind list` print it.
        #[arg(long, value_name = "FP")]
        key_sm3: String,
    },
}

/// `ukey bind ...`
pub fn bind(ctx: &Ctx, cmd: &BindCmd) -> Res<()> {
    match cmd {
        BindCmd::Challenge {
            state,
            platform,
            ttl,
            out: path,
        } => {
            let store = Store::open(&state.state)?;
            let c = store.issue(platform, Duration::from_secs(*ttl), SystemTime::now())?;
            let bytes = c.to_bytes()?;
            match path {
                Some(p) => write_atomic(p, &bytes)?,
                None => write_out(None, &bytes)?,
            }
        }
        BindCmd::Respond {
            challenge,
            format,
            out: path,
        } => {
            let text = read_file(challenge)?;
            // Check the challenge before asking for the PIN.
            let parsed = in_file(challenge, bind::Challenge::parse(&text))?;
            let t = ctx.token()?;
            let container = ctx.container(t.app.as_ref(), None)?;
            ctx.login(&t)?;
            let fmt = match format {
                FormatArg::Cms => ResponseFormat::Cms,
                FormatArg::Json => ResponseFormat::Json,
            };
            let resp = bind::respond(t.app.as_ref(), &container, &text, fmt, SystemTime::now())
                .map_err(|e| file_err(challenge, e))?;
            let resp = match fmt {
                ResponseFormat::Cms => cms::to_pem(&resp)?.into_bytes(),
                ResponseFormat::Json => resp,
            };
            write_atomic(path, &resp)?;
            if ctx.json() {
                out::json(&json!({
                    "response": path,
                    "container": container,
                    "platform": parsed.platform,
                }));
            } else {
                eprintln!(
                    "Signed the binding challenge of platform {:?} with the signing key of \
                     '{container}' -> {}",
                    parsed.platform,
                    path.display()
                );
            }
        }
        BindCmd::Verify {
            state,
            ca,
            account,
            response,
        } => {
            let trust = in_file(ca, cms::read_ca_file(&read_file(ca)?))?;
            let resp = read_file(response)?;
            let mut store = Store::open(&state.state)?;
            let v = store
                .verify(&resp, &trust, SystemTime::now(), account.as_deref())
                .map_err(|e| match e {
                    token_hal::Error::SignatureInvalid => crate::ctx::CliError(format!(
                        "{}: signature does not verify",
                        response.display()
                    )),
                    e => file_err(response, e),
                })?;
            let binding = v.binding.as_ref().map(|b| match b {
                BindOutcome::New => "new".to_owned(),
                BindOutcome::Existing => "existing".to_owned(),
                BindOutcome::Renewed { previous_serial } => {
                    format!("existing, renewed certificate (was serial {previous_serial})")
                }
            });
            if ctx.json() {
                out::json(&json!({
                    "valid": true,
                    "platform": v.platform,
                    "format": v.format,
                    "issuer": v.identity.issuer,
                    "serial": v.identity.serial,
                    "subject": v.identity.subject,
                    "key_sm3": v.identity.key_sm3,
                    "not_after": v.identity.not_after,
                    "account": account,
                    "binding": binding,
                }));
            } else {
                println!(
                    "Binding response OK ({}, platform {})",
                    v.format, v.platform
                );
                let mut f = vec![
                    ("Subject", v.identity.subject.clone()),
                    ("Issuer", v.identity.issuer.clone()),
                    ("Serial", v.identity.serial.clone()),
                    ("Key SM3", v.identity.key_sm3.clone()),
                    ("Valid to", v.identity.not_after.clone()),
                ];
                if let (Some(a), Some(b)) = (account, binding) {
                    f.push(("Account", a.clone()));
                    f.push(("Binding", b));
                }
                out::fields(&f);
            }
        }
        BindCmd::List { state, account } => {
            let store = Store::open(&state.state)?;
            let all = store.bindings(account.as_deref())?;
            if ctx.json() {
                out::json(&serde_json::to_value(&all).unwrap_or_default());
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|b| {
                        vec![
                            b.account.clone(),
                            b.identity.key_sm3.clone(),
                            b.identity.serial.clone(),
                            b.identity.subject.clone(),
                        ]
                    })
                    .collect();
                out::table(
                    &["ACCOUNT", "KEY SM3", "SERIAL", "SUBJECT"],
                    &rows,
                    "no bindings",
                );
            }
        }
        BindCmd::Unbind {
            state,
            account,
            key_sm3,
        } => {
            let store = Store::open(&state.state)?;
            store.unbind(account, key_sm3)?;
            if ctx.json() {
                out::json(&json!({ "unbound": key_sm3, "account": account }));
            } else {
                println!("Unbound key {key_sm3} from account {account:?}");
            }
        }
    }
    Ok(())
}
