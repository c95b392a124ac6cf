//! The PIN cache on the CLI side: `ukey agent` (the per-user agent holding cached PINs),
//! `ukey pin cache enable|disable|status|clear`, `ukey pin logout`, and the login path every
//! command takes ([`login`]). The protocol, the cache state and the client are
//! token_hal::tender::pincache.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use token_hal::PinType;
use token_hal::config::{Config, PIN_CACHE_MINUTES};
use token_hal::registry::Registry;
use token_hal::tender::pincache::{self, After, Cache, Client};

use crate::args::{AgentArgs, PinCacheCmd};
use crate::ctx::{CliError, Ctx, Res, Token};
use crate::{fail, out};

/// How long an agent started by `ukey` stays up with an empty cache.
const SPAWNED_IDLE_EXIT: u64 = 600;

/// Logs in as user. With the cache on, no `--pin`/`UKEY_PIN` and `use_cache`, a cached PIN is
/// tried first; a refused one is forgotten. A PIN that verifies is cached when the cache is on.
/// Problems with the agent never stop the command: the PIN is then simply asked for.
pub fn login(ctx: &Ctx, token: &Token, use_cache: bool) -> Res<()> {
    let ttl = pincache::ttl(&ctx.config);
    let key = pincache::token_key(&token.serial, token.label());
    let client = Client::new();
    if let (Some(ttl), true, None) = (ttl, use_cache, &ctx.g.pin) {
        match client.get(&key, ttl) {
            Ok(Some(pin)) => match token.app.verify_pin(PinType::User, &pin) {
                Ok(()) => {
                    tracing::debug!("user PIN from the cache");
                    return Ok(());
                }
                Err(e) => {
                    let _ = client.forget(&key);
                    fail!("{e} (the cached PIN was refused and forgotten; enter it again)");
                }
            },
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "PIN cache unavailable"),
        }
    }
    let pin = ctx.user_pin(token.label())?;
    token.app.verify_pin(PinType::User, &pin)?;
    if let Some(ttl) = ttl
        && let Err(e) = store(&ctx.config, &client, &key, &pin, ttl)
    {
        eprintln!("ukey: warning: the PIN cache is on but the PIN was not cached: {e}");
    }
    Ok(())
}

/// Stores a PIN with the agent, starting one when none answers.
fn store(
    config: &Config,
    client: &Client,
    key: &str,
    pin: &token_hal::Pin,
    ttl: Duration,
) -> Res<()> {
    if client.status().is_err() {
        spawn_agent(config)?;
        let deadline = Instant::now() + Duration::from_secs(3);
        while client.status().is_err() {
            if Instant::now() > deadline {
                fail!("the PIN agent did not start ({})", client.path().display());
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    client.put(key, pin, ttl)?;
    Ok(())
}

/// Starts `ukey agent` in the background, in its own process group, with no terminal, in
/// `/`, and with this process's data directory and config file as absolute paths (the agent
/// watches the same devices).
fn spawn_agent(config: &Config) -> Res<()> {
    let exe = std::env::current_exe().map_err(|e| CliError(format!("own executable: {e}")))?;
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut cmd = std::process::Command::new(exe);
    cmd.env("UKEY_DATA_DIR", abs(&config.data_dir));
    if let Some(f) = &config.file {
        cmd.env("UKEY_CONF", abs(f));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        cmd.env("XDG_RUNTIME_DIR", abs(Path::new(&d)));
    }
    cmd.args(["agent", "--idle-exit", &SPAWNED_IDLE_EXIT.to_string()])
        .env_remove("UKEY_PIN")
        .env_remove("UKEY_NEW_PIN")
        // Keep no directory busy (a mounted stick, a temporary directory).
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| CliError(format!("starting the PIN agent: {e}")))?;
    Ok(())
}

/// Forgets a token's cached PIN (after a PIN change or unblock), if an agent runs.
pub fn forget(ctx: &Ctx, token: &Token) {
    if pincache::ttl(&ctx.config).is_some() || pincache::socket_path().exists() {
        let _ = Client::new().forget(&pincache::token_key(&token.serial, token.label()));
    }
}

/// `ukey pin logout`
pub fn logout(ctx: &Ctx, token: &Token) -> Res<()> {
    forget(ctx, token);
    token.app.logout();
    if ctx.json() {
        out::json(&json!({ "logged_out": token.label() }));
    } else {
        println!(
            "Logged out of '{}'; its cached PIN, if any, is forgotten",
            token.label()
        );
    }
    Ok(())
}

/// The config file `pin cache enable|disable` edits: the one in use, else the user's.
fn config_target(config: &Config) -> Res<PathBuf> {
    if let Some(f) = &config.file {
        return Ok(f.clone());
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => fail!("neither XDG_CONFIG_HOME nor HOME is set; set UKEY_CONF"),
        },
    };
    Ok(base.join("ukey/ukey.toml"))
}

/// Rewrites the `[pin_cache]` table of a config file, keeping every other line; the result
/// must load, else the file is left as it was.
fn write_pin_cache(path: &Path, enabled: bool, minutes: u32) -> Res<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => fail!("{}: {e}", path.display()),
    };
    let mut text = String::new();
    let mut skipping = false;
    for line in old.as_deref().unwrap_or("").lines() {
        let t = line.trim();
        if t.starts_with('[') {
            skipping = t
                .trim_start_matches('[')
                .trim_start()
                .starts_with("pin_cache")
                && t.trim_end_matches(']').trim_end().ends_with("pin_cache");
        }
        if !skipping {
            text.push_str(line);
            text.push('\n');
        }
    }
    while text.ends_with("\n\n") {
        text.pop();
    }
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&format!(
        "[pin_cache]\nenabled = {enabled}\nminutes = {minutes}\n"
    ));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CliError(format!("{}: {e}", dir.display())))?;
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &text).map_err(|e| CliError(format!("{}: {e}", tmp.display())))?;
    if let Err(e) = Config::load_from(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        fail!("{}: not changed: {e}", path.display());
    }
    std::fs::rename(&tmp, path).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    Ok(())
}

/// `ukey pin cache ...`
pub fn pin_cache(ctx: &Ctx, cmd: &PinCacheCmd) -> Res<()> {
    let client = Client::new();
    let pc = &ctx.config.pin_cache;
    match cmd {
        PinCacheCmd::Enable { minutes } => {
            let m = match minutes {
                Some(m) => m
                    .parse::<u32>()
                    .ok()
                    .filter(|m| PIN_CACHE_MINUTES.contains(m))
                    .ok_or_else(|| CliError("--minutes must be 1, 5, 10, 30 or 60".into()))?,
                None => pc.minutes(),
            };
            let path = config_target(&ctx.config)?;
            write_pin_cache(&path, true, m)?;
            if ctx.json() {
                out::json(&json!({ "enabled": true, "minutes": m, "config": path }));
            } else {
                println!(
                    "PIN cache on: a PIN entered successfully is reused for {m} minute{} ({})",
                    if m == 1 { "" } else { "s" },
                    path.display()
                );
            }
        }
        PinCacheCmd::Disable => {
            let path = config_target(&ctx.config)?;
            write_pin_cache(&path, false, pc.minutes())?;
            let stopped = client.stop().is_ok();
            if ctx.json() {
                out::json(&json!({ "enabled": false, "agent_stopped": stopped, "config": path }));
            } else {
                println!(
                    "PIN cache off{} ({})",
                    if stopped {
                        "; the agent stopped and forgot every PIN"
                    } else {
                        ""
                    },
                    path.display()
                );
            }
        }
        PinCacheCmd::Status => {
            let st = client.status().ok();
            let ttl = pincache::ttl(&ctx.config);
            if ctx.json() {
                out::json(&json!({
                    "enabled": pc.is_enabled(),
                    "minutes": pc.minutes(),
                    "ttl_seconds": ttl.map(|t| t.as_secs()),
                    "socket": client.path(),
                    "agent": st.map(|s| json!({ "pid": s.pid, "entries": s.entries })),
                }));
            } else {
                out::fields(&[
                    (
                        "PIN cache",
                        if pc.is_enabled() {
                            let m = pc.minutes();
                            format!("on, {m} minute{}", if m == 1 { "" } else { "s" })
                        } else {
                            "off".into()
                        },
                    ),
                    (
                        "Agent",
                        match st {
                            Some(s) => {
                                format!("running (pid {}), {} PIN(s) held", s.pid, s.entries)
                            }
                            None => "not running".into(),
                        },
                    ),
                    ("Socket", client.path().display().to_string()),
                ]);
            }
        }
        PinCacheCmd::Clear => {
            // No agent running means nothing is cached.
            let n = client.clear().unwrap_or_default();
            if ctx.json() {
                out::json(&json!({ "cleared": n }));
            } else {
                println!("Forgot {n} cached PIN{}", if n == 1 { "" } else { "s" });
            }
        }
    }
    Ok(())
}

/// The serials of the devices present now; `None` when they cannot be listed (then nothing is
/// dropped for absence).
fn present_serials(config: &Config) -> Option<Vec<String>> {
    let reg = Registry::new(config.clone());
    let devs = reg.devices().ok()?;
    Some(
        devs.iter()
            .filter_map(|d| d.info().ok().map(|i| i.serial))
            .collect(),
    )
}

/// Removes the socket and exits; the cache was cleared by the caller.
fn exit_agent(path: &Path) -> ! {
    let _ = std::fs::remove_file(path);
    std::process::exit(0)
}

/// `ukey agent`: serves the PIN cache on the user's socket until stopped.
pub fn agent(ctx: &Ctx, a: &AgentArgs) -> Res<()> {
    let path = pincache::socket_path();
    let client = Client::at(&path);
    if a.stop {
        client.stop()?;
        if !ctx.json() {
            println!("Stopped the PIN agent; every cached PIN is forgotten");
        }
        return Ok(());
    }
    if let Ok(st) = client.status() {
        fail!(
            "a PIN agent already runs (pid {}) on {}",
            st.pid,
            path.display()
        );
    }
    let dir = path
        .parent()
        .ok_or_else(|| CliError("socket path without a directory".into()))?;
    pincache::prepare_dir(dir)?;
    if let Err(e) = pincache::forbid_dumps() {
        tracing::warn!(error = %e, "could not keep the agent out of core dumps");
    }
    // A socket left by an agent that died: nobody answers on it.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => fail!("{}: {e}", path.display()),
    }
    let listener =
        UnixListener::bind(&path).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    pincache::restrict_socket(&path)?;
    let inode = std::fs::symlink_metadata(&path)
        .map_err(|e| CliError(format!("{}: {e}", path.display())))?
        .ino();
    let me = pincache::own_uid();
    let pid = std::process::id();
    let cache = Arc::new(Mutex::new(Cache::new()));
    let last_busy = Arc::new(Mutex::new(Instant::now()));

    // The watcher: expiry, token removal, idle exit.
    {
        let cache = Arc::clone(&cache);
        let last_busy = Arc::clone(&last_busy);
        let config = ctx.config.clone();
        let poll = Duration::from_secs(a.poll.max(1));
        let idle = a.idle_exit;
        let path = path.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(poll);
                let serials = {
                    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
                    c.expire(Instant::now());
                    c.serials()
                };
                if !serials.is_empty()
                    && let Some(present) = present_serials(&config)
                {
                    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
                    c.retain_present(|s| present.iter().any(|p| p == s));
                }
                let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
                if !c.is_empty() {
                    *last_busy.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                }
                let since = last_busy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .elapsed();
                if idle > 0 && c.is_empty() && since >= Duration::from_secs(idle) {
                    c.clear();
                    exit_agent(&path);
                }
                // A removed or replaced socket means the user cleaned up or another agent
                // took over: this one is no longer reachable.
                if std::fs::symlink_metadata(&path).map(|m| m.ino()).ok() != Some(inode) {
                    c.clear();
                    std::process::exit(0);
                }
            }
        });
    }

    if !ctx.json() {
        eprintln!("ukey agent: serving the PIN cache on {}", path.display());
    }
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        match pincache::peer_uid(&stream) {
            Ok(uid) if uid == me => {}
            Ok(uid) => {
                tracing::warn!(uid, "PIN agent: refused a connection from another user");
                let _ = (&stream).write_all(b"ERR not your agent\n");
                continue;
            }
            Err(_) => continue,
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        if serve(&stream, &cache, pid) == After::Stop {
            exit_agent(&path);
        }
        *last_busy.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
    Ok(())
}

/// Reads one request line (bounded), answers it, zeroizes both.
fn serve(stream: &UnixStream, cache: &Mutex<Cache>, pid: u32) -> After {
    let Ok(Some(line)) = pincache::read_line_zeroizing(stream, pincache::MAX_LINE) else {
        let _ = (&*stream).write_all(b"ERR bad request\n");
        return After::Continue;
    };
    let (answer, after) =
        cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .handle(&line, Instant::now(), pid);
    // Two writes rather than a push that could leave a copy of a PIN in freed memory.
    let _ = (&*stream)
        .write_all(answer.as_bytes())
        .and_then(|()| (&*stream).write_all(b"\n"));
    after
}
