//! The SoftHSM2 drop-in: `ukey softhsm <softhsm2-util flags>`, or the binary invoked as
//! `softhsm2-util`. It accepts softhsm2-util's flags and prints what softhsm2-util prints.
//!
//! A token is a (device, application) pair; the application name is the token label, and
//! the slot number is `token_hal::slot::slot_id` of the token serial, as the PKCS#11 module
//! reports it. `--init-token --free` creates a new soft device; a device without
//! applications shows as a slot with an uninitialised token.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use token_hal::slot::{slot_id, token_serial};
use token_hal::{AppParams, Device, Error, Pin, PinType};

use crate::args::{Global, SofthsmArgs};
use crate::ctx::{Ctx, auth_key, new_pin};
use crate::keys::read_key;

/// A softhsm2-util style failure: the whole stderr line.
struct Fail(String);

type R<T> = Result<T, Fail>;

fn err(msg: impl Into<String>) -> Fail {
    Fail(format!("ERROR: {}", msg.into()))
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        err(e.to_string())
    }
}

impl From<crate::ctx::CliError> for Fail {
    fn from(e: crate::ctx::CliError) -> Self {
        err(e.0)
    }
}

/// Runs the drop-in with softhsm2-util's arguments (without the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let mut argv = vec![OsString::from("softhsm2-util")];
    argv.extend(args);
    let a = match SofthsmArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("ERROR: {}", first.trim_start_matches("error: "));
            return ExitCode::FAILURE;
        }
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(line)) => {
            if !line.is_empty() {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(a: &SofthsmArgs) -> R<()> {
    if a.version {
        println!("{} (ukey softhsm2-util drop-in)", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let actions = [
        a.init_token,
        a.show_slots,
        a.delete_token,
        a.import.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if actions == 0 {
        let mut cmd = <SofthsmArgs as clap::CommandFactory>::command();
        let _ = cmd.print_help();
        return Err(Fail(String::new()));
    }
    if actions > 1 {
        return Err(err("Only one action at a time"));
    }
    let ctx = Ctx::new(Global {
        token: None,
        device: None,
        container: None,
        pin: None,
        json: false,
    })?;
    if a.show_slots {
        show_slots(&ctx)
    } else if a.init_token {
        init_token(&ctx, a)
    } else if a.delete_token {
        delete_token(&ctx, a)
    } else {
        import(&ctx, a)
    }
}

/// One slot: a token, or a device without applications (an uninitialised token).
struct Slot {
    id: u32,
    device: Arc<dyn Device>,
    serial: String,
    app: Option<String>,
}

fn slots(ctx: &Ctx) -> R<Vec<Slot>> {
    let mut v = Vec::new();
    for d in ctx.devices()? {
        let serial = d.info()?.serial;
        let apps = d.list_apps()?;
        if apps.is_empty() {
            v.push(Slot {
                id: slot_id(&token_serial(&serial, "")),
                device: d.clone(),
                serial: serial.clone(),
                app: None,
            });
        }
        for app in apps {
            v.push(Slot {
                id: slot_id(&token_serial(&serial, &app)),
                device: d.clone(),
                serial: serial.clone(),
                app: Some(app),
            });
        }
    }
    Ok(v)
}

fn pad(s: &str, n: usize) -> String {
    let mut s: String = s.chars().take(n).collect();
    while s.len() < n {
        s.push(' ');
    }
    s
}

fn show_slots(ctx: &Ctx) -> R<()> {
    println!("Available slots:");
    for s in slots(ctx)? {
        let info = s.device.info()?;
        println!("Slot {}", s.id);
        println!("    Slot info:");
        println!(
            "        Description:      {}",
            pad(&format!("ukey {} device {}", info.label, info.serial), 64)
        );
        println!("        Manufacturer ID:  {}", pad(&info.manufacturer, 32));
        println!(
            "        Hardware version: {}.{}",
            info.hw_version.0, info.hw_version.1
        );
        println!(
            "        Firmware version: {}.{}",
            info.fw_version.0, info.fw_version.1
        );
        println!("        Token present:    yes");
        println!("    Token info:");
        println!("        Manufacturer ID:  {}", pad(&info.manufacturer, 32));
        println!("        Model:            {}", pad(&info.model, 16));
        println!(
            "        Hardware version: {}.{}",
            info.hw_version.0, info.hw_version.1
        );
        println!(
            "        Firmware version: {}.{}",
            info.fw_version.0, info.fw_version.1
        );
        match &s.app {
            Some(app) => {
                let user_init = s
                    .device
                    .open_app(app)
                    .and_then(|a| a.pin_info(PinType::User))
                    .map(|p| p.initialized)
                    .unwrap_or(false);
                println!("        Serial number:    {}", token_serial(&s.serial, app));
                println!("        Initialized:      yes");
                println!(
                    "        User PIN init.:   {}",
                    if user_init { "yes" } else { "no" }
                );
                println!("        Label:            {}", pad(app, 32));
            }
            None => {
                println!("        Serial number:    {}", pad("", 16));
                println!("        Initialized:      no");
                println!("        User PIN init.:   no");
                println!("        Label:            {}", pad("", 32));
            }
        }
    }
    Ok(())
}

/// The slot chosen with --slot, --token or --serial.
fn find_slot(ctx: &Ctx, slot: Option<&str>, a: &SofthsmArgs, announce: bool) -> R<Slot> {
    let all = slots(ctx)?;
    if let Some(n) = slot {
        let n: i64 = n
            .trim()
            .parse()
            .map_err(|_| err("The slot number is not a number."))?;
        if n < 0 {
            return Err(err("The slot number is negative."));
        }
        return all
            .into_iter()
            .find(|s| i64::from(s.id) == n)
            .ok_or_else(|| Fail(format!("CKR_SLOT_ID_INVALID: Slot {n} does not exist.")));
    }
    let (found, how) = if let Some(label) = &a.token {
        (
            all.into_iter()
                .find(|s| s.app.as_deref() == Some(label.as_str())),
            "token label",
        )
    } else if let Some(serial) = &a.serial {
        (
            all.into_iter().find(|s| {
                s.app
                    .as_deref()
                    .is_some_and(|app| token_serial(&s.serial, app) == *serial)
            }),
            "serial number",
        )
    } else {
        return Err(err(
            "A slot/token must be supplied. Use --slot <number>, --serial <serial>, or --token <label>",
        ));
    };
    let s = found.ok_or_else(|| err("Could not find a token using --serial or --token."))?;
    if announce {
        println!("Found slot {} with matching {how}.", s.id);
    }
    Ok(s)
}

fn init_token(ctx: &Ctx, a: &SofthsmArgs) -> R<()> {
    let Some(label) = &a.label else {
        return Err(err(
            "A label for the token must be supplied. Use --label <text>",
        ));
    };
    if label.len() > 32 {
        return Err(err(
            "The token label must not have a length greater than 32 chars.",
        ));
    }
    if label.is_empty() {
        return Err(err("The token label must not be empty."));
    }
    let so = new_pin(
        a.so_pin.as_deref().map(String::as_str),
        "SO PIN",
        "--so-pin",
    )
    .map_err(|e| err(format!("Could not get SO PIN: {}", e.0)))?;
    let user = new_pin(a.pin.as_deref().map(String::as_str), "user PIN", "--pin")
        .map_err(|e| err(format!("Could not get user PIN: {}", e.0)))?;
    let key = auth_key(None)?;

    // The target: a new device (--free, or --slot 0 as scripts written for SoftHSM use),
    // a device without applications, or an existing token to reinitialise.
    let free = a.free || (a.slot.as_deref().map(str::trim) == Some("0") && a.token.is_none());
    let target = if free {
        None
    } else {
        Some(find_slot(ctx, a.slot.as_deref(), a, true)?)
    };
    let device: Arc<dyn Device> = match &target {
        None => {
            let d = ctx.registry()?.create_soft_device(label)?;
            let serial = d.info()?.serial;
            println!(
                "Slot {} has a free/uninitialized token.",
                slot_id(&token_serial(&serial, ""))
            );
            d
        }
        Some(s) => s.device.clone(),
    };
    let serial = device.info()?.serial;
    let mut params = AppParams::new(so.clone(), Some(user.clone()));
    params.admin_retries = ctx.config.pin_retries();
    params.user_retries = ctx.config.pin_retries();

    match target.as_ref().and_then(|s| s.app.clone()) {
        None => {
            device.authenticate_with_key(&key)?;
            device.create_app(label, &params)?;
        }
        Some(old) => {
            let app = device.open_app(&old)?;
            match app.verify_pin(PinType::Admin, &so) {
                Ok(()) => {}
                Err(Error::PinIncorrect { .. } | Error::PinLocked) => {
                    return Err(Fail(
                        "CKR_PIN_INCORRECT: The given SO PIN does not match the one in the token. Needed when reinitializing the token."
                            .into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            if old == *label {
                app.wipe(&so)?;
                app.verify_pin(PinType::Admin, &so)?;
                app.init_user_pin(&user)?;
            } else {
                drop(app);
                device.authenticate_with_key(&key)?;
                device.delete_app(&old)?;
                device.create_app(label, &params)?;
            }
        }
    }
    println!(
        "The token has been initialized and is reassigned to slot {}",
        slot_id(&token_serial(&serial, label))
    );
    Ok(())
}

fn delete_token(ctx: &Ctx, a: &SofthsmArgs) -> R<()> {
    if a.token.is_none() && a.serial.is_none() {
        return Err(err(
            "A token must be supplied. Use --serial <serial> or --token <label>",
        ));
    }
    let s = find_slot(ctx, None, a, false)?;
    let Some(app) = &s.app else {
        return Err(err("Could not find a token using --serial or --token."));
    };
    let tserial = token_serial(&s.serial, app);
    println!("Found token ({tserial}) with matching token label.");
    let key = auth_key(None)?;
    s.device.authenticate_with_key(&key)?;
    s.device.delete_app(app)?;
    // A soft device made for this token goes with its last token.
    let info = s.device.info()?;
    let remaining = s.device.list_apps()?;
    let mut location = format!("application {app} on device {}", info.serial);
    if remaining.is_empty() && info.backend == token_hal::BackendKind::Soft {
        drop(s);
        ctx.registry()?.delete_device(&info.serial)?;
        location = format!("soft device {}", info.serial);
    }
    println!("The token ({location}) has been deleted.");
    Ok(())
}

fn parse_id(hex_id: &str) -> R<Vec<u8>> {
    if hex_id.len() < 2 || !hex_id.len().is_multiple_of(2) {
        return Err(err("Invalid length on hex string."));
    }
    hex::decode(hex_id).map_err(|_| err("Invalid character in hex string."))
}

fn import(ctx: &Ctx, a: &SofthsmArgs) -> R<()> {
    let Some(path) = &a.import else {
        return Err(err("No file given"));
    };
    if a.aes {
        return Err(err("ukey imports key pairs only; --aes is not supported"));
    }
    let Some(label) = &a.label else {
        return Err(err(
            "A label for the object must be supplied. Use --label <text>",
        ));
    };
    let Some(id) = &a.id else {
        return Err(err("An ID for the object must be supplied. Use --id <hex>"));
    };
    let id = parse_id(id)?;
    let s = find_slot(ctx, a.slot.as_deref(), a, true)?;
    let Some(app_name) = &s.app else {
        return Err(err("The token is not initialized."));
    };
    let app = s.device.open_app(app_name)?;
    let pin: Pin = match &a.pin {
        Some(p) => Pin::from(p.as_str()),
        None => crate::ctx::prompt_pin("Enter user PIN: ", "--pin")
            .map_err(|e| err(format!("Could not get user PIN: {}", e.0)))?,
    };
    match app.verify_pin(PinType::User, &pin) {
        Ok(()) => {}
        Err(Error::PinIncorrect { .. }) => {
            return Err(err(
                "The given user PIN does not match the one in the token.",
            ));
        }
        Err(e) => return Err(err(format!("Could not log in on the token: {e}"))),
    }
    let containers = app.list_containers()?;
    if let Some(c) = containers.iter().find(|c| c.id == id)
        && (!a.force || c.name != *label)
    {
        return Err(err(
            "The ID is already assigned to another object. Use --force to override this message.",
        ));
    }
    let key = read_key(path, a.file_pin.as_deref().map(String::as_str)).map_err(|e| err(e.0))?;
    if !containers.iter().any(|c| c.name == *label) {
        app.create_container(label, Some(&id))?;
    }
    app.import_key(label, token_hal::KeyUsage::Sign, &key, a.force)?;
    println!("The key pair has been imported.");
    Ok(())
}
