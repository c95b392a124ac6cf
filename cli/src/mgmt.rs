//! `ukey device`, `ukey app`, `ukey pin`, `ukey container`, `ukey config`.

use serde_json::{Value, json};
use token_hal::config::DataDirSource;
use token_hal::slot::{slot_id, token_serial};
use token_hal::{AppParams, ContainerInfo, DeviceInfo, KeyInfo, PinType};

use crate::args::{AppCmd, ContainerCmd, DeviceCmd, PinCmd};
use crate::ctx::{Ctx, Res, auth_key, new_pin, prompt_pin};
use crate::{fail, out};

fn backend_name(b: token_hal::BackendKind) -> &'static str {
    match b {
        token_hal::BackendKind::Soft => "soft",
        token_hal::BackendKind::Apdu => "apdu",
        token_hal::BackendKind::VendorSkf => "vendor-skf",
        token_hal::BackendKind::Pkcs11 => "pkcs11",
    }
}

fn device_json(info: &DeviceInfo, apps: &[String]) -> Value {
    let mut v = serde_json::to_value(info).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("backend".into(), json!(backend_name(info.backend)));
        m.insert(
            "hw_version".into(),
            json!(format!("{}.{}", info.hw_version.0, info.hw_version.1)),
        );
        m.insert(
            "fw_version".into(),
            json!(format!("{}.{}", info.fw_version.0, info.fw_version.1)),
        );
        m.insert("applications".into(), json!(apps));
    }
    v
}

/// `ukey device ...`
pub fn device(ctx: &Ctx, cmd: &DeviceCmd) -> Res<()> {
    match cmd {
        DeviceCmd::List => {
            let mut rows = Vec::new();
            let mut js = Vec::new();
            for d in ctx.devices()? {
                let info = d.info()?;
                let apps = d.list_apps()?;
                rows.push(vec![
                    info.serial.clone(),
                    info.label.clone(),
                    backend_name(info.backend).to_owned(),
                    apps.join(","),
                ]);
                js.push(device_json(&info, &apps));
            }
            // Soft-device files that do not open are not devices, but say so (stderr).
            if token_hal::registry::backend_enabled(token_hal::registry::SOFT_BACKEND) {
                for e in ctx.registry()?.scan()? {
                    if let Err(err) = e.device {
                        eprintln!("ukey: warning: skipped {}: {err}", e.path.display());
                    }
                }
            }
            if ctx.json() {
                out::json(&Value::Array(js));
            } else {
                out::table(
                    &["SERIAL", "LABEL", "BACKEND", "APPLICATIONS"],
                    &rows,
                    "no devices (create one with `ukey device init`)",
                );
            }
        }
        DeviceCmd::Info { serial } => {
            let d = ctx.device(serial.as_deref())?;
            let info = d.info()?;
            let apps = d.list_apps()?;
            if ctx.json() {
                out::json(&device_json(&info, &apps));
            } else {
                out::fields(&[
                    ("Name", info.name.clone()),
                    ("Serial", info.serial.clone()),
                    ("Label", info.label.clone()),
                    ("Manufacturer", info.manufacturer.clone()),
                    ("Issuer", info.issuer.clone()),
                    ("Model", info.model.clone()),
                    (
                        "Hardware version",
                        format!("{}.{}", info.hw_version.0, info.hw_version.1),
                    ),
                    (
                        "Firmware version",
                        format!("{}.{}", info.fw_version.0, info.fw_version.1),
                    ),
                    (
                        "Space",
                        format!("{} free of {} bytes", info.free_space, info.total_space),
                    ),
                    ("Backend", backend_name(info.backend).to_owned()),
                    (
                        "Removable",
                        if info.removable { "yes" } else { "no" }.into(),
                    ),
                    ("Applications", apps.join(", ")),
                ]);
            }
        }
        DeviceCmd::Init { label } => {
            if label.is_empty() || label.len() > 32 {
                fail!("device label must be 1..=32 bytes");
            }
            let d = ctx.registry()?.create_soft_device(label)?;
            let info = d.info()?;
            if ctx.json() {
                out::json(&device_json(&info, &[]));
            } else {
                println!(
                    "Created soft device {} (label '{}') in {}",
                    info.serial,
                    info.label,
                    ctx.config.data_dir.display()
                );
            }
        }
        DeviceCmd::Delete { serial, yes } => {
            let d = ctx.device(serial.as_deref())?;
            let info = d.info()?;
            if !yes {
                fail!(
                    "refusing to delete device {} and everything on it without --yes",
                    info.serial
                );
            }
            drop(d);
            ctx.registry()?.delete_device(&info.serial)?;
            if ctx.json() {
                out::json(&json!({ "deleted": info.serial }));
            } else {
                println!("Deleted device {}", info.serial);
            }
        }
    }
    Ok(())
}

/// `ukey app ...`
pub fn app(ctx: &Ctx, cmd: &AppCmd) -> Res<()> {
    match cmd {
        AppCmd::List => {
            let mut rows = Vec::new();
            let mut js = Vec::new();
            for (d, name) in ctx.all_apps()? {
                let serial = d.info()?.serial;
                let app = d.open_app(&name)?;
                let info = app.info()?;
                let tserial = token_serial(&serial, &name);
                let slot = slot_id(&tserial);
                rows.push(vec![
                    name.clone(),
                    serial.clone(),
                    slot.to_string(),
                    out::pin_state(&info.user_pin),
                    out::pin_state(&info.admin_pin),
                ]);
                js.push(json!({
                    "name": name,
                    "device": serial,
                    "token_serial": tserial,
                    "slot": slot,
                    "user_pin": info.user_pin,
                    "admin_pin": info.admin_pin,
                }));
            }
            if ctx.json() {
                out::json(&Value::Array(js));
            } else {
                out::table(
                    &["TOKEN", "DEVICE", "SLOT", "USER PIN", "ADMIN PIN"],
                    &rows,
                    "no applications (create one with `ukey app create NAME`)",
                );
            }
        }
        AppCmd::Create {
            name,
            admin_pin,
            retries,
            auth,
        } => {
            if name.is_empty() || name.len() > 32 {
                fail!("application name must be 1..=32 bytes");
            }
            let d = ctx.device(None)?;
            let admin = new_pin(
                admin_pin.as_deref().map(String::as_str),
                "admin (SO) PIN",
                "--admin-pin",
            )?;
            let user = new_pin(
                ctx.g.pin.as_deref().map(String::as_str),
                "user PIN",
                "--pin or UKEY_PIN",
            )?;
            let retries = retries.unwrap_or_else(|| ctx.config.pin_retries());
            if retries == 0 || retries > 255 {
                fail!("--retries must be 1..=255");
            }
            let mut params = AppParams::new(admin, Some(user));
            params.admin_retries = retries;
            params.user_retries = retries;
            let key = auth_key(auth.auth_key.as_deref())?;
            d.authenticate_with_key(&key)?;
            d.create_app(name, &params)?;
            let serial = d.info()?.serial;
            let slot = slot_id(&token_serial(&serial, name));
            if ctx.json() {
                out::json(&json!({ "name": name, "device": serial, "slot": slot }));
            } else {
                println!("Created application '{name}' on device {serial} (PKCS#11 slot {slot})");
            }
        }
        AppCmd::Delete { name, yes, auth } => {
            let (d, name) = ctx.registry()?.find_app(Some(name))?;
            if !yes {
                fail!("refusing to delete application '{name}' and everything in it without --yes");
            }
            let key = auth_key(auth.auth_key.as_deref())?;
            d.authenticate_with_key(&key)?;
            d.delete_app(&name)?;
            if ctx.json() {
                out::json(&json!({ "deleted": name }));
            } else {
                println!("Deleted application '{name}'");
            }
        }
    }
    Ok(())
}

/// `ukey pin ...`
pub fn pin(ctx: &Ctx, cmd: &PinCmd) -> Res<()> {
    if let PinCmd::Cache(c) = cmd {
        return crate::agent::pin_cache(ctx, c);
    }
    let t = ctx.token()?;
    match cmd {
        PinCmd::Info => {
            let user = t.app.pin_info(PinType::User)?;
            let admin = t.app.pin_info(PinType::Admin)?;
            if ctx.json() {
                out::json(&json!({ "token": t.label(), "user_pin": user, "admin_pin": admin }));
            } else {
                out::fields(&[
                    ("Token", t.label().to_owned()),
                    ("User PIN", out::pin_state(&user)),
                    ("Admin PIN", out::pin_state(&admin)),
                ]);
            }
        }
        PinCmd::Change {
            so,
            admin_pin,
            new_pin: np,
        } => {
            let (ty, old, what) = if *so {
                let old = match admin_pin {
                    Some(p) => token_hal::Pin::from(p.as_str()),
                    None => prompt_pin("Current admin (SO) PIN: ", "--admin-pin")?,
                };
                (PinType::Admin, old, "admin PIN")
            } else {
                (PinType::User, ctx.user_pin(t.label())?, "user PIN")
            };
            let new = new_pin(
                np.as_deref().map(String::as_str),
                what,
                "--new-pin or UKEY_NEW_PIN",
            )?;
            t.app.change_pin(ty, &old, &new)?;
            crate::agent::forget(ctx, &t);
            if ctx.json() {
                out::json(&json!({ "changed": what }));
            } else {
                println!("Changed the {what} of '{}'", t.label());
            }
        }
        PinCmd::Unblock {
            admin_pin,
            new_pin: np,
        } => {
            let admin = match admin_pin {
                Some(p) => token_hal::Pin::from(p.as_str()),
                None => prompt_pin("Admin (SO) PIN: ", "--admin-pin")?,
            };
            let new = new_pin(
                np.as_deref().map(String::as_str),
                "user PIN",
                "--new-pin or UKEY_NEW_PIN",
            )?;
            t.app.unblock_pin(&admin, &new)?;
            crate::agent::forget(ctx, &t);
            if ctx.json() {
                out::json(&json!({ "unblocked": t.label() }));
            } else {
                println!(
                    "Unblocked the user PIN of '{}' and set a new one",
                    t.label()
                );
            }
        }
        PinCmd::Cache(c) => crate::agent::pin_cache(ctx, c)?,
        PinCmd::Logout => crate::agent::logout(ctx, &t)?,
    }
    Ok(())
}

fn key_summary(k: Option<&KeyInfo>) -> String {
    match k {
        None => "-".into(),
        Some(k) => {
            let cert = if k.current_cert().is_some() {
                "+cert"
            } else {
                ""
            };
            format!("{}{cert}", token_hal::cert::key_alg_name(k.alg))
        }
    }
}

fn key_json(k: &KeyInfo) -> Value {
    json!({
        "key_id": k.id.0,
        "alg": token_hal::cert::key_alg_name(k.alg),
        "usage": k.usage.as_str(),
        "state": format!("{:?}", k.state).to_lowercase(),
        "certificates": k.certs.len(),
        "has_current_cert": k.current_cert().is_some(),
    })
}

/// A container as JSON.
pub fn container_json(c: &ContainerInfo) -> Value {
    json!({
        "name": c.name,
        "id": hex::encode(&c.id),
        "sign": c.sign.as_ref().map(key_json),
        "enc": c.enc.as_ref().map(key_json),
        "retired": c.retired.iter().map(key_json).collect::<Vec<_>>(),
    })
}

/// `ukey container ...`
pub fn container(ctx: &Ctx, cmd: &ContainerCmd) -> Res<()> {
    let t = ctx.token()?;
    match cmd {
        ContainerCmd::List => {
            let all = t.app.list_containers()?;
            if ctx.json() {
                out::json(&Value::Array(all.iter().map(container_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            hex::encode(&c.id),
                            key_summary(c.sign.as_ref()),
                            key_summary(c.enc.as_ref()),
                            c.retired.len().to_string(),
                        ]
                    })
                    .collect();
                out::table(
                    &["CONTAINER", "ID", "SIGN", "ENC", "RETIRED"],
                    &rows,
                    &format!("no containers in '{}'", t.label()),
                );
            }
        }
        ContainerCmd::Create { name, id } => {
            let Some(name) = name.as_deref().or(ctx.g.container.as_deref()) else {
                fail!("name the container: `ukey container create NAME`");
            };
            let id = match id {
                Some(h) => {
                    Some(hex::decode(h).map_err(|_| crate::ctx::CliError("--id: not hex".into()))?)
                }
                None => None,
            };
            ctx.login(&t)?;
            let c = t.app.create_container(name, id.as_deref())?;
            if ctx.json() {
                out::json(&container_json(&c));
            } else {
                println!(
                    "Created container '{}' (id {}) in '{}'",
                    c.name,
                    hex::encode(&c.id),
                    t.label()
                );
            }
        }
        ContainerCmd::Delete { name, yes } => {
            let name = ctx.container(t.app.as_ref(), name.as_deref())?;
            if !yes {
                fail!("refusing to delete container '{name}' with its keys without --yes");
            }
            ctx.login(&t)?;
            t.app.delete_container(&name)?;
            if ctx.json() {
                out::json(&json!({ "deleted": name }));
            } else {
                println!("Deleted container '{name}'");
            }
        }
    }
    Ok(())
}

/// `ukey config`
pub fn config(ctx: &Ctx) -> Res<()> {
    let c = &ctx.config;
    let source = match &c.data_dir_source {
        DataDirSource::Env => "UKEY_DATA_DIR".to_owned(),
        DataDirSource::ConfigFile(p) => format!("data_dir in {}", p.display()),
        DataDirSource::SoftHsm2Conf(p) => format!("directories.tokendir in {}", p.display()),
        DataDirSource::Default => "default".to_owned(),
    };
    let file = c
        .file
        .as_ref()
        .map_or("none".to_owned(), |p| p.display().to_string());
    if ctx.json() {
        out::json(&json!({
            "data_dir": c.data_dir,
            "data_dir_source": source,
            "config_file": file,
            "kdf_iterations": c.kdf_iterations(),
            "pin_retries": c.pin_retries(),
        }));
    } else {
        out::fields(&[
            (
                "Data directory",
                format!("{} ({source})", c.data_dir.display()),
            ),
            ("Config file", file),
            ("KDF iterations", c.kdf_iterations().to_string()),
            ("PIN retries", c.pin_retries().to_string()),
        ]);
    }
    Ok(())
}
