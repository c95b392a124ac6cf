//! `ukey sign --cms` and `ukey verify --cms`: bid signatures as CMS SignedData (GM/T 0010 for
//! SM2 keys), over token_hal::tender::cms.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::Args;
use serde_json::json;
use token_hal::tender::cms::{self, SignOptions, Verified, VerifyOptions};

use crate::args::{SignArgs, VerifyArgs};
use crate::ctx::{CliError, Ctx, Res, file_err, in_file, read_file};
use crate::{fail, out};

/// `sign` flags for CMS output.
#[derive(Args)]
pub struct CmsSignFlags {
    /// Write a CMS SignedData with the signer's certificate (GM/T 0010 for SM2 keys)
    /// instead of a bare signature.
    #[arg(long)]
    pub cms: bool,
    /// With --cms: leave the content out (a detached signature).
    #[arg(long, requires = "cms")]
    pub detached: bool,
    /// With --cms: write PEM (label CMS) instead of DER.
    #[arg(long, requires = "cms")]
    pub pem: bool,
    /// With --cms, SM2 keys: write the profile GmSSL 3 verifies (no signed attributes, no
    /// Z) for platforms built on GmSSL, instead of standard GM/T 0010.
    #[arg(long, requires = "cms", conflicts_with = "detached")]
    pub gmssl: bool,
}

/// `verify` flags for CMS input.
#[derive(Args)]
pub struct CmsVerifyFlags {
    /// Verify a CMS SignedData (the only file argument) and print its signers.
    #[arg(long, conflicts_with_all = ["public", "cert", "id"])]
    pub cms: bool,
    /// With --cms: trusted CA certificates (PEM, one or more, or DER); the signer
    /// certificate must be valid and chain to one of them.
    #[arg(long, value_name = "FILE", requires = "cms")]
    pub ca: Option<PathBuf>,
    /// With --cms: the signed content of a detached signature.
    #[arg(long, value_name = "FILE", requires = "cms")]
    pub content: Option<PathBuf>,
    /// With --cms and --ca: check the certificates at this time (RFC 3339, e.g.
    /// 2026-12-31T09:00:00Z) instead of now.
    #[arg(long, value_name = "TIME", requires = "ca")]
    pub at: Option<String>,
    /// With --cms: write the signed content to this file.
    #[arg(short = 'o', long = "out", value_name = "FILE", requires = "cms")]
    pub out: Option<PathBuf>,
}

/// Writes `data` to `path` through a temporary file in the same directory, so a failure
/// leaves no partial file and an existing file is replaced whole.
pub fn write_atomic(path: &Path, data: &[u8]) -> Res<()> {
    token_hal::tender::envelope::write_file_atomically(path, true, |w| {
        w.write_all(data).map_err(|e| token_hal::Error::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    })
    .map_err(|e| CliError(format!("{}: {e}", path.display())))
}

/// `ukey sign --cms`
pub fn sign(ctx: &Ctx, a: &SignArgs) -> Res<()> {
    if a.id.is_some() {
        fail!("--id does not apply to --cms: GM/T 0010 signatures use the default SM2 ID");
    }
    let t = ctx.token()?;
    let container = ctx.container(t.app.as_ref(), None)?;
    let content = read_file(&a.file)?;
    if t.app.cert(&container, token_hal::KeyUsage::Sign)?.is_none() {
        fail!(
            "container '{container}' has no signing certificate; import the one your CA \
             issued with `ukey cert import`"
        );
    }
    ctx.login(&t)?;
    let opts = SignOptions {
        detached: a.cms.detached,
        signing_time: None,
        gmssl_compat: a.cms.gmssl,
    };
    let der = cms::sign_in_container(t.app.as_ref(), &container, &content, &opts)?;
    let bytes = if a.cms.pem {
        cms::to_pem(&der)?.into_bytes()
    } else {
        der
    };
    write_atomic(&a.out, &bytes)?;
    let kind = if a.cms.detached {
        "detached"
    } else {
        "attached"
    };
    if ctx.json() {
        out::json(&json!({
            "container": container,
            "signature": a.out,
            "detached": a.cms.detached,
            "bytes": bytes.len(),
        }));
    } else {
        eprintln!(
            "Signed {} with the signing key of '{container}' -> {} (CMS SignedData, {kind})",
            a.file.display(),
            a.out.display()
        );
    }
    Ok(())
}

fn parse_time(s: &str) -> Res<SystemTime> {
    let dt: token_hal::tender::cms::DateTime = s.parse().map_err(|_| {
        CliError(format!(
            "--at: {s:?} is not an RFC 3339 time like 2026-12-31T09:00:00Z"
        ))
    })?;
    Ok(dt.to_system_time())
}

/// `ukey verify --cms`
pub fn verify(ctx: &Ctx, a: &VerifyArgs) -> Res<()> {
    let sig_path = &a.file;
    if a.sig.is_some() {
        fail!("with --cms give only the signature file (and --content FILE for a detached one)");
    }
    let input = read_file(sig_path)?;
    let content = match &a.cms.content {
        Some(p) => Some(read_file(p)?),
        None => None,
    };
    let trust = match &a.cms.ca {
        Some(p) => Some(in_file(p, cms::read_ca_file(&read_file(p)?))?),
        None => None,
    };
    let at = a.cms.at.as_deref().map(parse_time).transpose()?;
    let opts = VerifyOptions {
        detached_content: content.as_deref(),
        trust: trust.as_deref(),
        at,
    };
    let v = cms::verify(&input, &opts).map_err(|e| match e {
        token_hal::Error::SignatureInvalid => {
            CliError(format!("{}: signature does not verify", sig_path.display()))
        }
        e => file_err(sig_path, e),
    })?;
    if let Some(o) = &a.cms.out {
        write_atomic(o, &v.content)?;
    }
    report(ctx, &v, a.cms.ca.is_some());
    Ok(())
}

fn report(ctx: &Ctx, v: &Verified, chain_checked: bool) {
    if ctx.json() {
        out::json(&json!({
            "valid": true,
            "gm_oids": v.gm_oids,
            "content_bytes": v.content.len(),
            "chain_checked": chain_checked,
            "signers": v.signers.iter().map(|s| json!({
                "subject": s.cert.subject,
                "issuer": s.cert.issuer,
                "serial": s.cert.serial,
                "not_before": s.cert.not_before,
                "not_after": s.cert.not_after,
                "signing_time": s.signing_time,
                "algorithm": s.algorithm,
                "profile": s.profile,
                "chain_to": s.chain_to,
                "public_key_sm3": s.public_key_sm3,
                "cert_sm3": s.cert.sm3,
            })).collect::<Vec<_>>(),
        }));
        return;
    }
    let kind = if v.gm_oids { "GM/T 0010" } else { "RFC 5652" };
    println!(
        "Signature OK ({kind} SignedData, {} bytes of content)",
        v.content.len()
    );
    for s in &v.signers {
        out::fields(&[
            ("Signer", s.cert.subject.clone()),
            ("Issuer", s.cert.issuer.clone()),
            ("Serial", s.cert.serial.clone()),
            ("Algorithm", format!("{} ({})", s.algorithm, s.profile)),
            (
                "Signed at",
                s.signing_time
                    .clone()
                    .unwrap_or_else(|| "not stated".into()),
            ),
            (
                "Valid",
                format!("{} to {}", s.cert.not_before, s.cert.not_after),
            ),
            (
                "Chain",
                match &s.chain_to {
                    Some(ca) => format!("verified to {ca}"),
                    None => "not checked (give --ca)".into(),
                },
            ),
            ("Key SM3", s.public_key_sm3.clone()),
        ]);
    }
}
