//! `ukey demo`: the main job end to end on the embedded default (a soft token in the data
//! directory), printing each step with its timing.
//!
//! PINs: the user PIN comes from `--pin` / `UKEY_PIN`, else the demo default
//! [`DEMO_USER_PIN`]; a new demo token gets the admin PIN [`DEMO_ADMIN_PIN`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use token_hal::cert::{self, SelfSignedSpec};
use token_hal::crypto::{EncMech, KeyAlg, SignMech, sig, sm2};
use token_hal::slot::{slot_id, token_serial};
use token_hal::{AppParams, Error, KeyRef, KeyUsage, Pin, PinType};

use crate::args::DemoArgs;
use crate::ctx::{CliError, Ctx, Res, Token, auth_key, write_file};
use crate::fail;
use crate::keys::generate;

/// The user PIN of the demo token when none is given.
pub const DEMO_USER_PIN: &str = "123456";
/// The admin (SO) PIN of a new demo token.
pub const DEMO_ADMIN_PIN: &str = "12345678";
/// The container the demo makes.
pub const DEMO_CONTAINER: &str = "demo";

struct Steps {
    n: usize,
    total: usize,
    start: Instant,
    times: Vec<(String, f64)>,
}

impl Steps {
    fn run<T>(&mut self, what: &str, f: impl FnOnce() -> Res<(T, String)>) -> Res<T> {
        self.n += 1;
        let t0 = Instant::now();
        let (v, detail) = f()?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        println!(
            "[{}/{}] {what:<48} {ms:>9.1} ms  {detail}",
            self.n, self.total
        );
        self.times.push((what.to_owned(), ms));
        Ok(v)
    }
}

/// `ukey demo`
pub fn demo(ctx: &Ctx, a: &DemoArgs) -> Res<()> {
    let mut s = Steps {
        n: 0,
        total: 8,
        start: Instant::now(),
        times: Vec::new(),
    };
    println!(
        "ukey demo: data directory {} — the main job on a soft token",
        ctx.config.data_dir.display()
    );

    // Work files: a given directory (kept) or a temporary one (removed at the end).
    let tmp;
    let dir: PathBuf = match &a.workdir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| CliError(format!("{}: {e}", d.display())))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("ukey-demo-")
                .tempdir()
                .map_err(|e| CliError(format!("temporary directory: {e}")))?;
            tmp.path().to_path_buf()
        }
    };

    let user_pin = Pin::from(ctx.g.pin.as_deref().map_or(DEMO_USER_PIN, String::as_str));
    let label = a.label.clone();

    let t: Token = s.run("Create or reuse the soft token", || {
        let (device, created) = match ctx.registry()?.find_app(Some(&label)) {
            Ok((d, _)) => (d, false),
            Err(Error::NotFound(_)) => {
                let d = ctx.registry()?.create_soft_device(&label)?;
                d.authenticate_with_key(&auth_key(None)?)?;
                let mut p = AppParams::new(Pin::from(DEMO_ADMIN_PIN), Some(user_pin.clone()));
                p.admin_retries = ctx.config.pin_retries();
                p.user_retries = ctx.config.pin_retries();
                d.create_app(&label, &p)?;
                (d, true)
            }
            Err(e) => return Err(e.into()),
        };
        let serial = device.info()?.serial;
        let app = device.open_app(&label)?;
        let slot = slot_id(&token_serial(&serial, &label));
        let detail = format!(
            "{} token '{label}' on device {serial}, PKCS#11 slot {slot}",
            if created { "created" } else { "reused" }
        );
        Ok((Token { serial, app }, detail))
    })?;

    s.run("Log in with the user PIN", || {
        t.app.verify_pin(PinType::User, &user_pin)?;
        Ok(((), String::new()))
    })?;

    let sign_cert = s.run("SM2 signing key + self-signed certificate", || {
        if t.app.container(DEMO_CONTAINER).is_ok() {
            t.app.delete_container(DEMO_CONTAINER)?;
        }
        let mut spec = SelfSignedSpec::new("ukey demo signer", KeyUsage::Sign);
        spec.organizational_unit = Some(label.clone());
        let der = generate(
            &t,
            DEMO_CONTAINER,
            KeyUsage::Sign,
            KeyAlg::Sm2,
            false,
            Some(spec),
        )?
        .ok_or_else(|| CliError("no certificate made".into()))?;
        let sum = cert::summarize(&der)?;
        Ok((
            der,
            format!(
                "container '{DEMO_CONTAINER}', SHA-256 {}",
                short(&sum.sha256)
            ),
        ))
    })?;

    let enc_cert = s.run("SM2 encryption key + self-signed certificate", || {
        let mut spec = SelfSignedSpec::new("ukey demo encryption", KeyUsage::Encrypt);
        spec.organizational_unit = Some(label.clone());
        let der = generate(
            &t,
            DEMO_CONTAINER,
            KeyUsage::Encrypt,
            KeyAlg::Sm2,
            false,
            Some(spec),
        )?
        .ok_or_else(|| CliError("no certificate made".into()))?;
        let sum = cert::summarize(&der)?;
        Ok((der, format!("SHA-256 {}", short(&sum.sha256))))
    })?;

    let doc = dir.join("bid.txt");
    let body = format!(
        "ukey demo bid\nTender: road works lot 7\nPrice: 1 234 567.00 CNY\nToken: {label}\n"
    );
    save(
        &dir.join("sign.cert.pem"),
        cert::to_pem(&sign_cert)?.as_bytes(),
    )?;
    save(
        &dir.join("enc.cert.pem"),
        cert::to_pem(&enc_cert)?.as_bytes(),
    )?;
    save(&doc, body.as_bytes())?;

    let sig_path = dir.join("bid.sig");
    s.run("Sign the file (SM2 over SM3(Z||M))", || {
        let mech = SignMech::Sm2Sm3 {
            id: sm2::DEFAULT_ID.to_vec(),
        };
        let raw = t.app.sign(
            &KeyRef::active(DEMO_CONTAINER, KeyUsage::Sign),
            &mech,
            body.as_bytes(),
        )?;
        let der = sig::raw_to_der(&raw)?;
        save(&sig_path, &der)?;
        Ok(((), format!("{} -> {}", doc.display(), sig_path.display())))
    })?;

    s.run("Verify the signature with the certificate", || {
        let pk = cert::public_key(&sign_cert)?;
        let der = std::fs::read(&sig_path)
            .map_err(|e| CliError(format!("{}: {e}", sig_path.display())))?;
        let raw = sig::der_to_raw(&der, 32)?;
        pk.verify(
            &SignMech::Sm2Sm3 {
                id: sm2::DEFAULT_ID.to_vec(),
            },
            body.as_bytes(),
            &raw,
        )?;
        Ok(((), "signature OK".into()))
    })?;

    let ct_path = dir.join("bid.sm2");
    s.run("Encrypt the file to the encryption certificate", || {
        let pk = cert::public_key(&enc_cert)?;
        let ct = sm2::cipher_raw_to_der(&pk.encrypt(&EncMech::Sm2, body.as_bytes())?)?;
        save(&ct_path, &ct)?;
        Ok((
            (),
            format!("{} bytes GM/T 0009 DER -> {}", ct.len(), ct_path.display()),
        ))
    })?;

    s.run("Decrypt it in the token", || {
        let der =
            std::fs::read(&ct_path).map_err(|e| CliError(format!("{}: {e}", ct_path.display())))?;
        let plain = t.app.decrypt(
            &KeyRef::active(DEMO_CONTAINER, KeyUsage::Encrypt),
            &EncMech::Sm2,
            &sm2::cipher_der_to_raw(&der)?,
        )?;
        if plain.as_slice() != body.as_bytes() {
            fail!("decrypted text differs from the original");
        }
        save(&dir.join("bid.decrypted.txt"), &plain)?;
        Ok(((), "plaintext matches".into()))
    })?;
    t.app.logout();

    let total = s.start.elapsed().as_secs_f64() * 1000.0;
    println!();
    println!("Summary");
    println!(
        "  token      '{label}' on device {} (PKCS#11 slot {})",
        t.serial,
        slot_id(&token_serial(&t.serial, &label))
    );
    println!(
        "  container  '{DEMO_CONTAINER}': SM2 signing and encryption key pairs with certificates"
    );
    println!("  checks     sign/verify OK, encrypt/decrypt OK");
    match &a.workdir {
        Some(d) => println!("  files      {}", d.display()),
        None => println!(
            "  files      written to a temporary directory, now removed (keep them with --workdir DIR)"
        ),
    }
    println!("  total      {total:.1} ms over {} steps", s.times.len());
    Ok(())
}

fn save(path: &Path, data: &[u8]) -> Res<()> {
    write_file(path, data)
}

fn short(fp: &str) -> String {
    let s: String = fp.chars().take(23).collect();
    format!("{s}...")
}
