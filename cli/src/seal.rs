//! `ukey seal ...`: electronic seal images stored in the token (token_hal::tender::seal).

use std::path::Path;

use serde_json::{Value, json};
use token_hal::tender::seal::{SealInfo, SealStore};

use crate::args::SealCmd;
use crate::ctx::{Ctx, Res, read_file, write_out};
use crate::out;

fn info_json(s: &SealInfo) -> Value {
    json!({
        "name": s.name,
        "slot": s.slot,
        "image_type": s.image_type.as_str(),
        "mime": s.image_type.mime(),
        "size": s.size,
        "sm3": s.sm3,
        "written_at": s.written_at_rfc3339(),
        "written_at_unix": s.written_at,
        "parts": s.parts,
    })
}

/// `ukey seal ...`
pub fn seal(ctx: &Ctx, cmd: &SealCmd) -> Res<()> {
    let t = ctx.token()?;
    let store = SealStore::new(t.app.as_ref());
    match cmd {
        SealCmd::Write { image, name } => {
            let name = match name {
                Some(n) => n.clone(),
                None => Path::new(image)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let bytes = read_file(image)?;
            ctx.login(&t)?;
            let info = store
                .write(&name, &bytes)
                .map_err(|e| crate::ctx::CliError(format!("{}: {e}", image.display())))?;
            if ctx.json() {
                out::json(&info_json(&info));
            } else {
                println!(
                    "Stored seal '{}' ({}, {} bytes, SM3 {}) in '{}'",
                    info.name,
                    info.image_type.as_str(),
                    info.size,
                    info.sm3,
                    t.label()
                );
            }
        }
        SealCmd::List => {
            let all = store.list()?;
            if ctx.json() {
                out::json(&Value::Array(all.iter().map(info_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.image_type.as_str().to_owned(),
                            s.size.to_string(),
                            s.written_at_rfc3339(),
                            s.sm3.clone(),
                        ]
                    })
                    .collect();
                out::table(
                    &["NAME", "TYPE", "SIZE", "WRITTEN", "SM3"],
                    &rows,
                    &format!("no seals in '{}'", t.label()),
                );
            }
        }
        SealCmd::Read { name, out: path } => {
            ctx.login(&t)?;
            let (info, image) = store.read(name)?;
            write_out(path.as_deref(), &image)?;
            if path.is_some() {
                if ctx.json() {
                    out::json(&info_json(&info));
                } else {
                    println!(
                        "Read seal '{}' ({}, {} bytes, SM3 verified)",
                        info.name,
                        info.image_type.as_str(),
                        info.size
                    );
                }
            }
        }
        SealCmd::Delete { name } => {
            // Fails before asking for the PIN when there is no such seal.
            store.find(name)?;
            ctx.login(&t)?;
            let info = store.delete(name)?;
            if ctx.json() {
                out::json(&json!({ "deleted": info.name }));
            } else {
                println!("Deleted seal '{}'", info.name);
            }
        }
    }
    Ok(())
}
