//! `ukey key ...` and `ukey cert ...`.

use std::path::Path;

use serde_json::{Value, json};
use token_hal::cert::{self, CertSummary, SelfSignedSpec};
use token_hal::crypto::{KeyAlg, PrivateKey};
use token_hal::{CertId, CertRecord, ContainerInfo, Error, KeyInfo, KeyState, KeyUsage};

use crate::args::{AlgArg, CertCmd, KeyCmd};
use crate::ctx::{Ctx, Res, Token, in_file, prompt_secret, read_file, write_out};
use crate::{fail, out};

/// The key algorithm of an `--alg` value.
pub fn key_alg(a: AlgArg) -> KeyAlg {
    match a {
        AlgArg::Sm2 => KeyAlg::Sm2,
        AlgArg::EcP256 => KeyAlg::EcP256,
        AlgArg::EcP384 => KeyAlg::EcP384,
        AlgArg::Rsa2048 => KeyAlg::Rsa(2048),
        AlgArg::Rsa3072 => KeyAlg::Rsa(3072),
        AlgArg::Rsa4096 => KeyAlg::Rsa(4096),
    }
}

fn usage_of(enc: bool) -> KeyUsage {
    if enc {
        KeyUsage::Encrypt
    } else {
        KeyUsage::Sign
    }
}

fn usage_word(u: KeyUsage) -> &'static str {
    match u {
        KeyUsage::Sign => "signing",
        KeyUsage::Encrypt => "encryption",
    }
}

/// Generates a key pair in a container (created when absent) and, unless `no_cert`, stores
/// a self-signed certificate for it. Returns the certificate DER, if one was made.
pub fn generate(
    t: &Token,
    container: &str,
    usage: KeyUsage,
    alg: KeyAlg,
    rekey: bool,
    cert_spec: Option<SelfSignedSpec>,
) -> Res<Option<Vec<u8>>> {
    match t.app.container(container) {
        Ok(_) => {}
        Err(Error::NotFound(_)) => {
            t.app.create_container(container, None)?;
        }
        Err(e) => return Err(e.into()),
    }
    t.app.generate_key(container, usage, alg, rekey)?;
    let Some(spec) = cert_spec else {
        return Ok(None);
    };
    let der = cert::self_signed_in_container(t.app.as_ref(), container, usage, &spec)?;
    t.app.import_cert(container, usage, &der)?;
    Ok(Some(der))
}

/// `ukey key ...`
pub fn key(ctx: &Ctx, cmd: &KeyCmd) -> Res<()> {
    let t = ctx.token()?;
    match cmd {
        KeyCmd::Gen {
            alg,
            enc,
            rekey,
            no_cert,
            subject,
            days,
        } => {
            let Some(container) = ctx.g.container.clone() else {
                fail!("name the container with --container NAME (it is created when absent)");
            };
            let usage = usage_of(*enc);
            let alg = key_alg(*alg);
            let spec = (!no_cert).then(|| {
                let mut s = SelfSignedSpec::new(
                    subject.clone().unwrap_or_else(|| container.clone()),
                    usage,
                );
                s.organizational_unit = Some(t.label().to_owned());
                s.days = *days;
                s
            });
            ctx.login(&t)?;
            let der = generate(&t, &container, usage, alg, *rekey, spec)?;
            let sum = der.as_deref().map(cert::summarize).transpose()?;
            if ctx.json() {
                out::json(&json!({
                    "token": t.label(),
                    "container": container,
                    "usage": usage.as_str(),
                    "alg": cert::key_alg_name(alg),
                    "public_key": t.app.public_key(&container, usage)?.to_pem(),
                    "certificate": sum,
                }));
            } else {
                println!(
                    "Generated {} {} key pair in container '{container}' of '{}'",
                    cert::key_alg_name(alg),
                    usage_word(usage),
                    t.label()
                );
                if let Some(s) = sum {
                    println!(
                        "Stored a self-signed certificate: {} (SHA-256 {})",
                        s.subject, s.sha256
                    );
                }
            }
        }
        KeyCmd::Pub { enc, out: path } => {
            let container = ctx.container(t.app.as_ref(), None)?;
            let pk = t.app.public_key(&container, usage_of(*enc))?;
            write_out(path.as_deref(), pk.to_pem().as_bytes())?;
        }
        KeyCmd::ImportEnveloped { file } => crate::csr::import_enveloped(ctx, &t, file)?,
        KeyCmd::Import {
            enc,
            password,
            rekey,
            keyfile,
        } => {
            let container = ctx.container(t.app.as_ref(), None)?;
            let key = read_key(keyfile, password.as_deref().map(String::as_str))?;
            let usage = usage_of(*enc);
            ctx.login(&t)?;
            match t.app.container(&container) {
                Ok(_) => {}
                Err(Error::NotFound(_)) => {
                    t.app.create_container(&container, None)?;
                }
                Err(e) => return Err(e.into()),
            }
            t.app.import_key(&container, usage, &key, *rekey)?;
            if ctx.json() {
                out::json(&json!({
                    "container": container,
                    "usage": usage.as_str(),
                    "alg": cert::key_alg_name(key.alg()),
                }));
            } else {
                println!(
                    "Imported {} {} key into container '{container}' of '{}'",
                    cert::key_alg_name(key.alg()),
                    usage_word(usage),
                    t.label()
                );
            }
        }
    }
    Ok(())
}

/// Reads a private key file; asks for the password of an encrypted one when none is given.
pub fn read_key(path: &Path, password: Option<&str>) -> Res<PrivateKey> {
    let bytes = zeroize::Zeroizing::new(read_file(path)?);
    let encrypted = is_encrypted_key(&bytes);
    let pw = match (password, encrypted) {
        (Some(p), _) => Some(zeroize::Zeroizing::new(p.to_owned())),
        (None, true) => Some(prompt_secret(
            &format!("Password for {}: ", path.display()),
            "--password or UKEY_KEY_PASSWORD",
        )?),
        (None, false) => None,
    };
    in_file(
        path,
        PrivateKey::from_file_bytes(&bytes, pw.as_ref().map(|p| p.as_bytes())),
    )
}

/// Whether a key file is an encrypted PKCS#8 (PEM label, or DER EncryptedPrivateKeyInfo
/// whose first element is an AlgorithmIdentifier SEQUENCE rather than a version INTEGER).
fn is_encrypted_key(bytes: &[u8]) -> bool {
    if bytes.windows(9).any(|w| w == b"ENCRYPTED") {
        return true;
    }
    // DER: 30 len [30 ...] = EncryptedPrivateKeyInfo; 30 len [02 ...] = PrivateKeyInfo.
    if bytes.first() == Some(&0x30) {
        let skip = match bytes.get(1) {
            Some(&l) if l < 0x80 => 2,
            Some(&l) => 2 + usize::from(l & 0x7F),
            None => return false,
        };
        return bytes.get(skip) == Some(&0x30);
    }
    false
}

fn find_cert(
    containers: &[ContainerInfo],
    id: CertId,
) -> Option<(&ContainerInfo, &KeyInfo, &CertRecord)> {
    for c in containers {
        for k in c.all_keys() {
            for r in &k.certs {
                if r.id == id {
                    return Some((c, k, r));
                }
            }
        }
    }
    None
}

/// Human form of a summary.
pub fn print_summary(s: &CertSummary, usage: Option<KeyUsage>, extra: &[(&str, String)]) {
    let usage_text = match usage.or(s.usage) {
        Some(u) => u.as_str().replace("enc", "encrypt"),
        None => "unspecified".into(),
    };
    let ku = if s.key_usage.is_empty() {
        String::new()
    } else {
        format!(" ({})", s.key_usage.join(", "))
    };
    let mut f: Vec<(&str, String)> = extra.to_vec();
    f.extend([
        ("Subject", s.subject.clone()),
        ("Issuer", s.issuer.clone()),
        ("Serial", s.serial.clone()),
        ("Usage", format!("{usage_text}{ku}")),
        ("Public key", s.public_key_alg.clone()),
        ("Signature", s.signature_alg.clone()),
        ("Valid from", s.not_before.clone()),
        ("Valid to", s.not_after.clone()),
        ("SHA-1", s.sha1.clone()),
        ("SHA-256", s.sha256.clone()),
        ("SM3", s.sm3.clone()),
    ]);
    out::fields(&f);
}

fn summary_json(s: &CertSummary, usage: Option<KeyUsage>) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert(
            "usage".into(),
            json!(usage.or(s.usage).map(|u| match u {
                KeyUsage::Sign => "sign",
                KeyUsage::Encrypt => "encrypt",
            })),
        );
    }
    v
}

/// Reads a certificate file (PEM or DER), naming the file in errors.
pub fn read_cert(path: &Path) -> Res<Vec<u8>> {
    let bytes = read_file(path)?;
    in_file(path, cert::parse(&bytes))
}

fn slot_name(k: &KeyInfo) -> &'static str {
    match (k.usage, k.state) {
        (KeyUsage::Sign, KeyState::Active) => "sign",
        (KeyUsage::Encrypt, KeyState::Active) => "enc",
        (KeyUsage::Sign, KeyState::Retired) => "sign (retired)",
        (KeyUsage::Encrypt, KeyState::Retired) => "enc (retired)",
    }
}

/// `ukey cert ...`
pub fn cert_cmd(ctx: &Ctx, cmd: &CertCmd) -> Res<()> {
    // `cert show FILE` needs no token.
    if let CertCmd::Show {
        file: Some(path), ..
    } = cmd
    {
        let der = read_cert(path)?;
        let s = in_file(path, cert::summarize(&der))?;
        if ctx.json() {
            out::json(&summary_json(&s, None));
        } else {
            print_summary(&s, None, &[]);
        }
        return Ok(());
    }
    let t = ctx.token()?;
    match cmd {
        CertCmd::Import { enc, certfile } => {
            let container = ctx.container(t.app.as_ref(), None)?;
            let der = read_cert(certfile)?;
            let usage = if *enc {
                KeyUsage::Encrypt
            } else {
                detect_slot(&t, &container, &der)?
            };
            ctx.login(&t)?;
            let id = in_file(certfile, t.app.import_cert(&container, usage, &der))?;
            let s = cert::summarize(&der)?;
            if ctx.json() {
                let mut v = summary_json(&s, Some(usage));
                if let Value::Object(m) = &mut v {
                    m.insert("cert_id".into(), json!(id.0));
                    m.insert("container".into(), json!(container));
                }
                out::json(&v);
            } else {
                println!(
                    "Imported certificate {} (serial {}) for the {} key of '{container}'",
                    id.0,
                    s.serial,
                    usage_word(usage)
                );
            }
        }
        CertCmd::Export { enc, out: path, id } => {
            let der = match id {
                Some(id) => {
                    let all = t.app.list_containers()?;
                    match find_cert(&all, CertId(*id)) {
                        Some((_, _, r)) => r.der.clone(),
                        None => fail!("certificate {id} not found"),
                    }
                }
                None => {
                    let container = ctx.container(t.app.as_ref(), None)?;
                    match t.app.cert(&container, usage_of(*enc))? {
                        Some(d) => d,
                        None => fail!(
                            "the {} key of '{container}' has no certificate",
                            usage_word(usage_of(*enc))
                        ),
                    }
                }
            };
            write_out(path.as_deref(), cert::to_pem(&der)?.as_bytes())?;
        }
        CertCmd::List { all: everything } => {
            let all = t.app.list_containers()?;
            let only = ctx.g.container.as_deref();
            let mut rows = Vec::new();
            let mut js = Vec::new();
            for c in all.iter().filter(|c| only.is_none_or(|n| n == c.name)) {
                for k in c.all_keys() {
                    for r in &k.certs {
                        if !everything && (k.state == KeyState::Retired || !r.current) {
                            continue;
                        }
                        let s = cert::summarize(&r.der)?;
                        let state = if r.current { "current" } else { "history" };
                        rows.push(vec![
                            r.id.0.to_string(),
                            c.name.clone(),
                            slot_name(k).to_owned(),
                            state.to_owned(),
                            s.serial.clone(),
                            s.not_after.clone(),
                            s.subject.clone(),
                        ]);
                        let mut v = summary_json(&s, Some(k.usage));
                        if let Value::Object(m) = &mut v {
                            m.insert("cert_id".into(), json!(r.id.0));
                            m.insert("container".into(), json!(c.name));
                            m.insert("key_id".into(), json!(k.id.0));
                            m.insert("slot".into(), json!(slot_name(k)));
                            m.insert("current".into(), json!(r.current));
                            m.insert(
                                "key_state".into(),
                                json!(format!("{:?}", k.state).to_lowercase()),
                            );
                        }
                        js.push(v);
                    }
                }
            }
            if ctx.json() {
                out::json(&Value::Array(js));
            } else {
                out::table(
                    &[
                        "ID",
                        "CONTAINER",
                        "KEY",
                        "STATE",
                        "SERIAL",
                        "NOT AFTER",
                        "SUBJECT",
                    ],
                    &rows,
                    &format!("no certificates in '{}'", t.label()),
                );
            }
        }
        CertCmd::Show { enc, id, file: _ } => {
            let (der, usage, extra) = match id {
                Some(id) => {
                    let all = t.app.list_containers()?;
                    let Some((c, k, r)) = find_cert(&all, CertId(*id)) else {
                        fail!("certificate {id} not found");
                    };
                    let state = if r.current { "current" } else { "history" };
                    (
                        r.der.clone(),
                        k.usage,
                        vec![
                            ("Container", c.name.clone()),
                            ("Key", slot_name(k).to_owned()),
                            ("Certificate", format!("{} ({state})", r.id.0)),
                        ],
                    )
                }
                None => {
                    let container = ctx.container(t.app.as_ref(), None)?;
                    let usage = usage_of(*enc);
                    let Some(der) = t.app.cert(&container, usage)? else {
                        fail!(
                            "the {} key of '{container}' has no certificate",
                            usage_word(usage)
                        );
                    };
                    (
                        der,
                        usage,
                        vec![
                            ("Container", container.clone()),
                            ("Key", usage.as_str().to_owned()),
                        ],
                    )
                }
            };
            let s = cert::summarize(&der)?;
            // The slot decides when keyUsage does not.
            let usage = s.usage.or(Some(usage));
            if ctx.json() {
                let mut v = summary_json(&s, usage);
                if let Value::Object(m) = &mut v {
                    for (k, val) in &extra {
                        m.insert(k.to_lowercase(), json!(val));
                    }
                }
                out::json(&v);
            } else {
                print_summary(&s, usage, &extra);
            }
        }
        CertCmd::Delete { enc, id } => {
            let all = t.app.list_containers()?;
            let target = match id {
                Some(id) => CertId(*id),
                None => {
                    let container = ctx.container(t.app.as_ref(), None)?;
                    let usage = usage_of(*enc);
                    let c = t.app.container(&container)?;
                    match c.key(usage).and_then(KeyInfo::current_cert) {
                        Some(r) => r.id,
                        None => fail!(
                            "the {} key of '{container}' has no certificate",
                            usage_word(usage)
                        ),
                    }
                }
            };
            if find_cert(&all, target).is_none() {
                fail!("certificate {} not found", target.0);
            }
            ctx.login_fresh(&t)?;
            t.app.delete_cert(target)?;
            if ctx.json() {
                out::json(&json!({ "deleted": target.0 }));
            } else {
                println!("Deleted certificate {}", target.0);
            }
        }
    }
    Ok(())
}

/// Which slot of `container` a certificate belongs to, by its public key: the encryption slot
/// when it matches the encryption key and not the signing key, else signing.
fn detect_slot(t: &Token, container: &str, der: &[u8]) -> Res<KeyUsage> {
    let Ok(pk) = cert::public_key(der) else {
        return Ok(KeyUsage::Sign);
    };
    let sign = t.app.public_key(container, KeyUsage::Sign).ok();
    let enc = t.app.public_key(container, KeyUsage::Encrypt).ok();
    Ok(if sign.as_ref() != Some(&pk) && enc.as_ref() == Some(&pk) {
        KeyUsage::Encrypt
    } else {
        KeyUsage::Sign
    })
}
