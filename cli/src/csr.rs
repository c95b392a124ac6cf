//! `ukey csr` and `ukey key import-enveloped`: getting a certificate from a CA. The request is
//! signed inside the token; the KMC's encryption key pair arrives wrapped to the container's
//! signing key (GM/T 0016 ENVELOPEDKEYBLOB).

use std::path::Path;

use serde_json::json;
use token_hal::KeyUsage;
use token_hal::cert;
use token_hal::tender::csr;
use token_hal::tender::keyblob::EnvelopedKeyBlob;

use crate::args::CsrArgs;
use crate::ctx::{Ctx, Res, Token, in_file, read_file, write_out};
use crate::out;

/// `ukey csr --container C --subject "CN=…" [-o FILE]`
pub fn csr(ctx: &Ctx, a: &CsrArgs) -> Res<()> {
    let subject = csr::parse_subject(&a.subject)?;
    let t = ctx.token()?;
    let container = ctx.container(t.app.as_ref(), None)?;
    let usage = if a.enc {
        KeyUsage::Encrypt
    } else {
        KeyUsage::Sign
    };
    // Fails before asking for the PIN when the slot has no key.
    let public = t.app.public_key(&container, usage)?;
    ctx.login(&t)?;
    let der = csr::in_container(t.app.as_ref(), &container, usage, &subject)?;
    let bytes = if a.der {
        der.clone()
    } else {
        csr::to_pem(&der)?.into_bytes()
    };
    write_out(a.out.as_deref(), &bytes)?;
    if a.out.is_some() {
        let s = csr::verify(&der)?;
        if ctx.json() {
            out::json(&json!({
                "container": container,
                "usage": usage.as_str(),
                "subject": s.subject,
                "public_key_alg": cert::key_alg_name(public.alg()),
                "signature_alg": s.signature_alg,
            }));
        } else {
            println!(
                "Wrote a certificate request for {} (the {} {} key of '{container}'), {}",
                s.subject,
                cert::key_alg_name(public.alg()),
                if a.enc { "encryption" } else { "signing" },
                s.signature_alg
            );
        }
    }
    Ok(())
}

/// `ukey key import-enveloped FILE`
pub fn import_enveloped(ctx: &Ctx, t: &Token, file: &Path) -> Res<()> {
    let container = ctx.container(t.app.as_ref(), None)?;
    let bytes = zeroize::Zeroizing::new(read_file(file)?);
    let blob = in_file(file, EnvelopedKeyBlob::parse_file(&bytes))?;
    // The container and its signing key must exist before a PIN is asked for.
    t.app.public_key(&container, KeyUsage::Sign)?;
    ctx.login(t)?;
    let before = t.app.container(&container)?.enc.map(|k| k.id);
    let id = in_file(file, blob.import(t.app.as_ref(), &container))?;
    let pk = blob.public_key()?;
    if ctx.json() {
        out::json(&json!({
            "container": container,
            "usage": "enc",
            "key_id": id.0,
            "retired_key_id": before.map(|k| k.0),
            "public_key": pk.to_pem(),
        }));
    } else {
        println!(
            "Installed the SM2 encryption key pair of {} in container '{container}' of '{}'",
            file.display(),
            t.label()
        );
        if let Some(old) = before {
            println!(
                "The previous encryption key ({}) is retired and still decrypts",
                old.0
            );
        }
        println!("Next: ukey cert import --container {container} --enc CERT");
    }
    Ok(())
}
