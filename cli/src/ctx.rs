//! What every command needs: the configuration, the device registry, the global options,
//! and the rules for choosing a device, token and container and for getting PINs.

use std::fmt;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::sync::Arc;

use token_hal::config::Config;
use token_hal::registry::Registry;
use token_hal::{Application, Device, Error, Pin};
use zeroize::Zeroizing;

use crate::args::Global;

/// A command failure: one line for stderr.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        Self(e.to_string())
    }
}

/// The CLI result type.
pub type Res<T> = Result<T, CliError>;

/// Builds a [`CliError`] from a format string.
#[macro_export]
macro_rules! fail {
    ($($t:tt)*) => { return Err($crate::ctx::CliError(format!($($t)*))) };
}

/// Prefixes an error with the file it concerns.
pub fn in_file<T>(path: &Path, r: token_hal::Result<T>) -> Res<T> {
    r.map_err(|e| CliError(format!("{}: {e}", path.display())))
}

/// An error about a file.
pub fn file_err(path: &Path, e: Error) -> CliError {
    CliError(format!("{}: {e}", path.display()))
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| CliError(format!("{}: {e}", path.display())))
}

/// Writes a whole file, naming it in the error.
pub fn write_file(path: &Path, data: &[u8]) -> Res<()> {
    std::fs::write(path, data).map_err(|e| CliError(format!("{}: {e}", path.display())))
}

/// Writes to a file, or to stdout when no file is given.
pub fn write_out(path: Option<&Path>, data: &[u8]) -> Res<()> {
    match path {
        Some(p) => write_file(p, data),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)
                .and_then(|()| out.flush())
                .map_err(|e| CliError(format!("stdout: {e}")))
        }
    }
}

/// Reads stdin to the end.
pub fn read_stdin() -> Res<Vec<u8>> {
    let mut v = Vec::new();
    std::io::stdin()
        .read_to_end(&mut v)
        .map_err(|e| CliError(format!("stdin: {e}")))?;
    Ok(v)
}

/// The selected token: a device and one of its applications.
pub struct Token {
    /// The device serial.
    pub serial: String,
    /// The open application.
    pub app: Arc<dyn Application>,
}

impl Token {
    /// The application (= token) label.
    pub fn label(&self) -> &str {
        self.app.name()
    }
}

/// Everything a command runs with.
pub struct Ctx {
    /// The resolved configuration.
    pub config: Config,
    /// The device registry over the data directory, opened on first use.
    registry: std::cell::OnceCell<Registry>,
    /// Global options.
    pub g: Global,
}

impl Ctx {
    /// Loads the configuration, starts logging and opens the registry.
    pub fn new(g: Global) -> Res<Self> {
        let config = Config::load()?;
        token_hal::logging::init(&config);
        ukey_p11_bridge::register(&config);
        ukey_skf_bridge::register(&config);
        Ok(Self {
            config,
            registry: std::cell::OnceCell::new(),
            g,
        })
    }

    /// The device registry (opened on first use, so commands that need no token never
    /// touch the data directory).
    pub fn registry(&self) -> Res<&Registry> {
        if let Some(r) = self.registry.get() {
            return Ok(r);
        }
        let r = Registry::new(self.config.clone());
        Ok(self.registry.get_or_init(|| r))
    }

    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        self.g.json
    }

    /// Every device.
    pub fn devices(&self) -> Res<Vec<Arc<dyn Device>>> {
        Ok(self.registry()?.devices()?)
    }

    /// The device named by `serial`, else `--device`, else the only device.
    pub fn device(&self, serial: Option<&str>) -> Res<Arc<dyn Device>> {
        if let Some(s) = serial.or(self.g.device.as_deref()) {
            return Ok(self.registry()?.find_device(s)?);
        }
        let devs = self.devices()?;
        match devs.len() {
            0 => fail!("no device; create a soft device with `ukey device init`"),
            1 => Ok(devs
                .into_iter()
                .next()
                .ok_or_else(|| CliError("no device".into()))?),
            _ => {
                let serials: Vec<String> = devs
                    .iter()
                    .filter_map(|d| d.info().ok().map(|i| i.serial))
                    .collect();
                fail!(
                    "{} devices ({}); choose one with --device SERIAL",
                    devs.len(),
                    serials.join(", ")
                )
            }
        }
    }

    /// Every (device, application name) pair.
    pub fn all_apps(&self) -> Res<Vec<(Arc<dyn Device>, String)>> {
        let mut v = Vec::new();
        for d in self.devices()? {
            for a in d.list_apps()? {
                v.push((d.clone(), a));
            }
        }
        Ok(v)
    }

    /// The token named by `--token`, else the only one.
    pub fn token(&self) -> Res<Token> {
        let (device, name) = match &self.g.token {
            Some(label) => self.registry()?.find_app(Some(label))?,
            None => {
                let mut all = self.all_apps()?;
                match all.len() {
                    0 => fail!(
                        "no token; create one with `ukey app create NAME` (or run `ukey demo`)"
                    ),
                    1 => all.remove(0),
                    n => {
                        let names: Vec<&str> = all.iter().map(|(_, a)| a.as_str()).collect();
                        fail!(
                            "{n} tokens ({}); choose one with --token LABEL",
                            names.join(", ")
                        )
                    }
                }
            }
        };
        let app = device.open_app(&name)?;
        let serial = device.info()?.serial;
        Ok(Token { serial, app })
    }

    /// The container named by `explicit`, else `--container`, else the only one.
    pub fn container(&self, app: &dyn Application, explicit: Option<&str>) -> Res<String> {
        if let Some(c) = explicit.or(self.g.container.as_deref()) {
            return Ok(c.to_owned());
        }
        let all = app.list_containers()?;
        match all.len() {
            0 => fail!(
                "token '{}' has no container; name one with --container",
                app.name()
            ),
            1 => Ok(all[0].name.clone()),
            n => {
                let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
                fail!(
                    "{n} containers ({}); choose one with --container NAME",
                    names.join(", ")
                )
            }
        }
    }

    /// The user PIN: `--pin`, `UKEY_PIN`, or a prompt.
    pub fn user_pin(&self, label: &str) -> Res<Pin> {
        match &self.g.pin {
            Some(p) => Ok(Pin::from(p.as_str())),
            None => prompt_pin(&format!("User PIN for '{label}': "), "--pin or UKEY_PIN"),
        }
    }

    /// Logs in as user: with the PIN cache on and no `--pin`, a cached PIN first; else
    /// [`Ctx::user_pin`]. A PIN that verifies is cached when the cache is on.
    pub fn login(&self, token: &Token) -> Res<()> {
        crate::agent::login(self, token, true)
    }

    /// Logs in as user with a PIN entered now, never the cached one (deleting certificates
    /// asks for the PIN, as CA clients do).
    pub fn login_fresh(&self, token: &Token) -> Res<()> {
        crate::agent::login(self, token, false)
    }
}

/// Reads a secret without echo when a terminal is present; else fails naming the options.
pub fn prompt_secret(prompt: &str, alternatives: &str) -> Res<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        fail!(
            "no terminal to ask for it: {} ({alternatives})",
            prompt.trim_end_matches([':', ' '])
        );
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|e| CliError(format!("reading the PIN: {e}")))
}

/// A PIN from the terminal.
pub fn prompt_pin(prompt: &str, alternatives: &str) -> Res<Pin> {
    let s = prompt_secret(prompt, alternatives)?;
    Ok(Pin::from(s.as_str()))
}

/// A new PIN: given, or asked twice on the terminal.
pub fn new_pin(given: Option<&str>, what: &str, alternatives: &str) -> Res<Pin> {
    if let Some(p) = given {
        let pin = Pin::from(p);
        pin.check_policy()?;
        return Ok(pin);
    }
    let a = prompt_secret(&format!("New {what}: "), alternatives)?;
    let b = prompt_secret(&format!("Repeat the new {what}: "), alternatives)?;
    if a != b {
        fail!("the two {what}s differ");
    }
    let pin = Pin::from(a.as_str());
    pin.check_policy()?;
    Ok(pin)
}

/// The device authentication key: 32 hex digits, default ASCII "1234567812345678".
pub fn auth_key(hex_key: Option<&str>) -> Res<Zeroizing<Vec<u8>>> {
    match hex_key {
        None => Ok(Zeroizing::new(
            token_hal::soft::DEFAULT_DEV_AUTH_KEY.to_vec(),
        )),
        Some(h) => {
            let k = hex::decode(h.trim()).map_err(|_| CliError("--auth-key: not hex".into()))?;
            if k.len() != 16 {
                fail!(
                    "--auth-key: must be 16 bytes (32 hex digits), got {}",
                    k.len()
                );
            }
            Ok(Zeroizing::new(k))
        }
    }
}
