//! `ukey file ...`, `ukey sign`, `ukey verify`, `ukey encrypt`, `ukey decrypt`.

use serde_json::{Value, json};
use token_hal::crypto::hash::HashAlg;
use token_hal::crypto::{EncMech, KeyAlg, PublicKey, SignMech, sig, sm2};
use token_hal::{Error, KeyRef, KeyUsage, Rights};

use crate::args::{
    DecryptArgs, EncryptArgs, FileCmd, HashArg, PeerKey, RightsArg, SigFormat, SignArgs, VerifyArgs,
};
use crate::ctx::{
    CliError, Ctx, Res, Token, file_err, in_file, read_file, read_stdin, write_file, write_out,
};
use crate::keys::read_cert;
use crate::{fail, out};

fn rights(r: RightsArg) -> Rights {
    match r {
        RightsArg::Anyone => Rights::ANYONE,
        RightsArg::User => Rights::USER,
        RightsArg::Admin => Rights::ADMIN,
        RightsArg::Never => Rights::NEVER,
    }
}

fn rights_name(r: Rights) -> String {
    format!("{r:?}")
}

/// Runs `f`; when it needs a login that has not happened, logs in and runs it again.
/// With an explicit PIN (`--pin`, `UKEY_PIN`) it logs in first.
fn with_login<T>(ctx: &Ctx, t: &Token, f: impl Fn() -> token_hal::Result<T>) -> Res<T> {
    if ctx.g.pin.is_some() {
        ctx.login(t)?;
        return Ok(f()?);
    }
    match f() {
        Err(Error::NotLoggedIn | Error::AccessDenied(_)) => {
            ctx.login(t)?;
            Ok(f()?)
        }
        r => Ok(r?),
    }
}

/// `ukey file ...`
pub fn file(ctx: &Ctx, cmd: &FileCmd) -> Res<()> {
    let t = ctx.token()?;
    match cmd {
        FileCmd::List => {
            let files = with_login(ctx, &t, || t.app.list_files())?;
            if ctx.json() {
                out::json(&Value::Array(
                    files
                        .iter()
                        .map(|f| {
                            json!({
                                "name": f.name,
                                "size": f.size,
                                "read": rights_name(f.read_rights),
                                "write": rights_name(f.write_rights),
                            })
                        })
                        .collect(),
                ));
            } else {
                let rows: Vec<Vec<String>> = files
                    .iter()
                    .map(|f| {
                        vec![
                            f.name.clone(),
                            f.size.to_string(),
                            rights_name(f.read_rights),
                            rights_name(f.write_rights),
                        ]
                    })
                    .collect();
                out::table(
                    &["FILE", "SIZE", "READ", "WRITE"],
                    &rows,
                    &format!("no files in '{}'", t.label()),
                );
            }
        }
        FileCmd::Read { name, out: path } => {
            let info = t.app.file_info(name)?;
            let data = with_login(ctx, &t, || t.app.read_file(name, 0, info.size))?;
            write_out(path.as_deref(), &data)?;
        }
        FileCmd::Write {
            name,
            input,
            read,
            write,
        } => {
            let data = match input {
                Some(p) => read_file(p)?,
                None => read_stdin()?,
            };
            let size = u32::try_from(data.len())
                .map_err(|_| CliError("input too large for a token file".into()))?;
            with_login(ctx, &t, || {
                match t.app.file_info(name) {
                    Ok(_) => t.app.delete_file(name)?,
                    Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
                t.app
                    .create_file(name, size, rights(*read), rights(*write))?;
                if !data.is_empty() {
                    t.app.write_file(name, 0, &data)?;
                }
                Ok(())
            })?;
            if ctx.json() {
                out::json(&json!({ "name": name, "size": size }));
            } else {
                println!("Wrote {size} bytes to file '{name}' of '{}'", t.label());
            }
        }
        FileCmd::Delete { name } => {
            t.app.file_info(name)?;
            with_login(ctx, &t, || t.app.delete_file(name))?;
            if ctx.json() {
                out::json(&json!({ "deleted": name }));
            } else {
                println!("Deleted file '{name}'");
            }
        }
    }
    Ok(())
}

fn hash(h: HashArg) -> HashAlg {
    match h {
        HashArg::Sha256 => HashAlg::Sha256,
        HashArg::Sha384 => HashAlg::Sha384,
        HashArg::Sha512 => HashAlg::Sha512,
    }
}

/// The signing mechanism for a key, and the field length of EC signatures (0 for RSA).
fn sign_mech(alg: KeyAlg, id: Option<&str>, h: HashArg) -> (SignMech, usize) {
    match alg {
        KeyAlg::Sm2 => (
            SignMech::Sm2Sm3 {
                id: id.map_or_else(|| sm2::DEFAULT_ID.to_vec(), |s| s.as_bytes().to_vec()),
            },
            32,
        ),
        KeyAlg::EcP256 => (SignMech::Ecdsa(hash(h)), 32),
        KeyAlg::EcP384 => (SignMech::Ecdsa(hash(h)), 48),
        KeyAlg::EcP521 => (SignMech::Ecdsa(hash(h)), 66),
        // EdDSA signatures are raw (RFC 8032); there is no DER form. X25519 keys do
        // not sign: the token answers with a key-type error.
        KeyAlg::Ed25519 | KeyAlg::Ed448 | KeyAlg::X25519 => (
            SignMech::EdDsa {
                ph: false,
                context: None,
            },
            0,
        ),
        KeyAlg::Rsa(_) => (SignMech::RsaPkcs1(hash(h)), 0),
    }
}

/// `ukey sign`
pub fn sign(ctx: &Ctx, a: &SignArgs) -> Res<()> {
    if a.cms.cms {
        return crate::cms::sign(ctx, a);
    }
    let t = ctx.token()?;
    let container = ctx.container(t.app.as_ref(), None)?;
    let pk = t.app.public_key(&container, KeyUsage::Sign)?;
    let data = read_file(&a.file)?;
    let (mech, field) = sign_mech(pk.alg(), a.id.as_deref(), a.hash);
    ctx.login(&t)?;
    let raw = t
        .app
        .sign(&KeyRef::active(&container, KeyUsage::Sign), &mech, &data)?;
    let out = if field > 0 && a.format == SigFormat::Der {
        sig::raw_to_der(&raw)?
    } else {
        raw
    };
    write_file(&a.out, &out)?;
    if ctx.json() {
        out::json(&json!({
            "container": container,
            "alg": token_hal::cert::key_alg_name(pk.alg()),
            "signature": a.out,
            "bytes": out.len(),
        }));
    } else {
        eprintln!(
            "Signed {} with the {} key of '{container}' -> {}",
            a.file.display(),
            token_hal::cert::key_alg_name(pk.alg()),
            a.out.display()
        );
    }
    Ok(())
}

/// The public key given by `--pub` or `--cert`.
fn peer_key(k: &PeerKey) -> Res<PublicKey> {
    if let Some(p) = &k.public {
        let bytes = read_file(p)?;
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("-----BEGIN") {
            return in_file(p, PublicKey::from_pem(&text));
        }
        return in_file(p, PublicKey::from_spki_der(&bytes));
    }
    if let Some(c) = &k.cert {
        let der = read_cert(c)?;
        return in_file(c, token_hal::cert::public_key(&der));
    }
    fail!("give --pub PEM or --cert CERT")
}

/// `ukey verify`
pub fn verify(ctx: &Ctx, a: &VerifyArgs) -> Res<()> {
    if a.cms.cms {
        return crate::cms::verify(ctx, a);
    }
    let Some(sig_path) = &a.sig else {
        fail!("give the signed file and the signature");
    };
    let pk = peer_key(&a.key.to_peer())?;
    let data = read_file(&a.file)?;
    let sigbytes = read_file(sig_path)?;
    let (mech, field) = sign_mech(pk.alg(), a.id.as_deref(), a.hash);
    let is_raw = sigbytes.len() == 2 * field && sigbytes.first() != Some(&0x30);
    let raw = if field == 0 || is_raw {
        sigbytes
    } else {
        match sig::der_to_raw(&sigbytes, field) {
            Ok(r) => r,
            Err(_) if sigbytes.len() == 2 * field => sigbytes,
            Err(e) => fail!("{}: {e}", sig_path.display()),
        }
    };
    match pk.verify(&mech, &data, &raw) {
        Ok(()) => {
            if ctx.json() {
                out::json(&json!({ "valid": true }));
            } else {
                println!("Signature OK");
            }
            Ok(())
        }
        Err(Error::SignatureInvalid) => {
            fail!("{}: signature does not verify", sig_path.display())
        }
        Err(e) => fail!("{}: {e}", sig_path.display()),
    }
}

/// `ukey encrypt`
pub fn encrypt(ctx: &Ctx, a: &EncryptArgs) -> Res<()> {
    let pk = peer_key(&a.key)?;
    let data = read_file(&a.file)?;
    let ct = match pk.alg() {
        KeyAlg::Sm2 => sm2::cipher_raw_to_der(&pk.encrypt(&EncMech::Sm2, &data)?)?,
        KeyAlg::Rsa(_) => pk.encrypt(&EncMech::RsaPkcs1, &data)?,
        other => fail!(
            "{} keys cannot encrypt; use an SM2 or RSA key",
            token_hal::cert::key_alg_name(other)
        ),
    };
    write_file(&a.out, &ct)?;
    if ctx.json() {
        out::json(&json!({ "ciphertext": a.out, "bytes": ct.len() }));
    }
    Ok(())
}

/// Decrypts `data` with one key; SM2 ciphertexts may be GM/T 0009 DER or C1C3C2.
fn decrypt_with(
    t: &Token,
    key: &KeyRef,
    alg: KeyAlg,
    data: &[u8],
) -> token_hal::Result<zeroize::Zeroizing<Vec<u8>>> {
    match alg {
        KeyAlg::Sm2 => {
            let raw = if data.first() == Some(&0x04) {
                data.to_vec()
            } else {
                sm2::cipher_der_to_raw(data)?
            };
            t.app.decrypt(key, &EncMech::Sm2, &raw)
        }
        KeyAlg::Rsa(_) => t.app.decrypt(key, &EncMech::RsaPkcs1, data),
        other => Err(Error::KeyType(format!(
            "{} keys cannot decrypt",
            token_hal::cert::key_alg_name(other)
        ))),
    }
}

/// `ukey decrypt`
pub fn decrypt(ctx: &Ctx, a: &DecryptArgs) -> Res<()> {
    let t = ctx.token()?;
    let name = ctx.container(t.app.as_ref(), None)?;
    let c = t.app.container(&name)?;
    let usage = if a.sign {
        KeyUsage::Sign
    } else if a.enc || c.enc.is_some() {
        KeyUsage::Encrypt
    } else {
        KeyUsage::Sign
    };
    let Some(k) = c.key(usage) else {
        fail!("container '{name}' has no {} key pair", usage.as_str());
    };
    if usage == KeyUsage::Sign && !a.sign {
        eprintln!(
            "ukey: notice: '{name}' has no encryption key pair; decrypting with the signing key pair"
        );
    }
    let data = read_file(&a.file)?;
    ctx.login(&t)?;
    let first = decrypt_with(&t, &KeyRef::active(&name, usage), k.alg, &data);
    let plain = match first {
        Ok(p) => p,
        Err(Error::DecryptFailed) if usage == KeyUsage::Encrypt && !c.retired.is_empty() => {
            // Data for an older encryption key: try the retired ones, newest first.
            let mut found = None;
            for r in &c.retired {
                if let Ok(p) = decrypt_with(&t, &KeyRef::Id(r.id), r.alg, &data) {
                    found = Some(p);
                    break;
                }
            }
            match found {
                Some(p) => p,
                None => return Err(file_err(&a.file, Error::DecryptFailed)),
            }
        }
        Err(e) => return Err(file_err(&a.file, e)),
    };
    write_file(&a.out, &plain)?;
    if ctx.json() {
        out::json(&json!({ "plaintext": a.out, "bytes": plain.len() }));
    }
    Ok(())
}
