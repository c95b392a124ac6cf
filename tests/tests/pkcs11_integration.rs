//! Registration of `libukey_pkcs11.so` with the stacks that load PKCS#11 modules: p11-kit,
//! NSS, Java SunPKCS11, OpenSSL through libp11's engine, and GnuTLS. Each test runs the real
//! tool against a token made with the `ukey` CLI and checks what the tool reports.
//!
//! Every tool here is installed by scripts/setup.sh; a missing tool fails the test and says so.

#![allow(clippy::unwrap_used)]

mod p11ext_common;

use std::path::Path;
use std::process::Command;

use p11ext_common::{PIN, Store, both, require_tool};
use ukey_tests::{pkcs11_lib, repo_root};

/// A store with token `label` holding container `sig` (CKA_ID 01: EC P-256 key and a
/// self-signed certificate) and container `rsa` (CKA_ID 02: RSA-2048 key and certificate).
fn token_with_certs(label: &str) -> Store {
    let s = Store::new();
    s.init_token(label);
    for (name, id, alg) in [("sig", "01", "ec-p256"), ("rsa", "02", "rsa-2048")] {
        s.ukey(&[
            "--token",
            label,
            "--pin",
            PIN,
            "container",
            "create",
            name,
            "--id",
            id,
        ]);
        s.ukey(&[
            "--token",
            label,
            "--pin",
            PIN,
            "key",
            "gen",
            "--alg",
            alg,
            "--container",
            name,
            "--subject",
            &format!("ukey integration {name}"),
        ]);
    }
    s
}

fn run(what: &str, c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = both(&out);
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// p11-kit picks up the shipped `p11-kit/ukey.module` and lists the module and its token.
///
/// As root p11-kit ignores per-user configuration, so the test runs `p11-kit` in a private
/// mount namespace where a temporary directory holding only the shipped module file is bound
/// over the system module-config directory and one holding the built library over the
/// module directory: the shipped file is loaded exactly as written (relative `module:`), and
/// nothing on the system changes. As another user it installs the file, with the module path
/// made absolute, into `~/.config/pkcs11/modules/` of a temporary HOME.
#[test]
fn p11_kit_lists_the_module() {
    require_tool("p11-kit", "p11-kit");
    let s = token_with_certs("p11kit");
    let shipped = std::fs::read_to_string(repo_root().join("p11-kit/ukey.module")).unwrap();
    let module_line = shipped
        .lines()
        .find(|l| l.starts_with("module:"))
        .expect("a module: line in p11-kit/ukey.module");
    let module_name = module_line["module:".len()..].trim();
    assert_eq!(module_name, "libukey_pkcs11.so");

    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let out = if root {
        let q = |p: &Path| format!("'{}'", p.display());
        let configs = s.path().join("p11-configs");
        let modules = s.path().join("p11-modules");
        std::fs::create_dir_all(&configs).unwrap();
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::write(configs.join("ukey.module"), &shipped).unwrap();
        std::fs::copy(pkcs11_lib(), modules.join(module_name)).unwrap();
        let config_dir = pkg_config_var("p11_module_configs", "/usr/share/p11-kit/modules");
        let module_dir = pkg_config_var("p11_module_path", "/usr/lib/x86_64-linux-gnu/pkcs11");
        let script = format!(
            "set -e; mount --bind {} {config_dir}; mount --bind {} {module_dir}; \
             if [ -d /etc/pkcs11/modules ]; then mount --bind {} /etc/pkcs11/modules; fi; \
             exec p11-kit list-modules",
            q(&configs),
            q(&modules),
            q(&configs)
        );
        let o = s
            .cmd("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "p11-kit list-modules in a private mount namespace (root; p11-kit skips user \
             config for root) failed; unshare needs CAP_SYS_ADMIN:\n{}",
            both(&o)
        );
        both(&o)
    } else {
        let dir = s.path().join("home/.config/pkcs11/modules");
        std::fs::create_dir_all(&dir).unwrap();
        let absolute = shipped.replace(module_line, &format!("module: {}", pkcs11_lib().display()));
        std::fs::write(dir.join("ukey.module"), absolute).unwrap();
        run("p11-kit list-modules", s.cmd("p11-kit").arg("list-modules"))
    };
    assert!(out.lines().any(|l| l.starts_with("ukey: ")), "{out}");
    assert!(out.contains("library-manufacturer: ukey"), "{out}");
    assert!(out.contains("token: p11kit"), "{out}");
}

fn pkg_config_var(var: &str, default: &str) -> String {
    Command::new("pkg-config")
        .args([&format!("--variable={var}"), "p11-kit-1"])
        .output()
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| default.to_string())
}

/// NSS: `modutil -add` registers the module; `certutil -L -h all` lists the token's
/// certificates as `token:nickname`.
#[test]
fn nss_modutil_and_certutil() {
    require_tool("modutil", "libnss3-tools");
    require_tool("certutil", "libnss3-tools");
    let s = token_with_certs("nsstok");
    let db = s.path().join("nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let dbarg = format!("sql:{}", db.display());
    run(
        "certutil -N",
        s.cmd("certutil")
            .args(["-N", "-d", &dbarg, "--empty-password"]),
    );
    run(
        "modutil -add",
        s.cmd("modutil")
            .args(["-dbdir", &dbarg, "-add", "ukey", "-libfile"])
            .arg(pkcs11_lib())
            .arg("-force"),
    );
    let list = run(
        "modutil -list",
        s.cmd("modutil").args(["-dbdir", &dbarg, "-list", "ukey"]),
    );
    assert!(list.contains("nsstok"), "{list}");
    let pwfile = s.path().join("pin.txt");
    std::fs::write(&pwfile, PIN).unwrap();
    let certs = run(
        "certutil -L -h all",
        s.cmd("certutil")
            .args(["-d", &dbarg, "-L", "-h", "all", "-f"])
            .arg(&pwfile),
    );
    let ours: Vec<&str> = certs.lines().filter(|l| l.starts_with("nsstok:")).collect();
    assert!(
        ours.len() >= 2,
        "expected the certificates of containers sig and rsa as nsstok:*:\n{certs}"
    );
    // The nicknames are the containers' certificate labels.
    for nick in ["nsstok:sig", "nsstok:rsa"] {
        assert!(
            ours.iter()
                .any(|l| l.split_whitespace().next() == Some(nick)),
            "{nick} not listed:\n{certs}"
        );
    }
}

/// Java SunPKCS11 (OpenJDK 17): keytool sees the private keys with their certificates.
#[test]
fn java_sunpkcs11_keytool_lists_the_keys() {
    require_tool("keytool", "openjdk-17-jdk-headless");
    let s = token_with_certs("javatok");
    let slot = s.slot_of("javatok");
    let cfg = s.path().join("pkcs11.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = ukey\nlibrary = {}\nslot = {slot}\n",
            pkcs11_lib().display()
        ),
    )
    .unwrap();
    let out = run(
        "keytool -list",
        s.cmd("keytool")
            .args([
                "-list",
                "-keystore",
                "NONE",
                "-storetype",
                "PKCS11",
                "-providerClass",
                "sun.security.pkcs11.SunPKCS11",
                "-providerArg",
            ])
            .arg(&cfg)
            .args(["-storepass", PIN]),
    );
    let entries = out
        .lines()
        .filter(|l| l.contains("PrivateKeyEntry"))
        .count();
    assert!(
        entries >= 2,
        "expected 2 PrivateKeyEntry lines (sig, rsa):\n{out}"
    );
    assert!(
        out.contains("Your keystore contains"),
        "keytool did not open the keystore:\n{out}"
    );
}

/// OpenSSL 3 through libp11's engine: signatures made in the token verify with plain OpenSSL.
#[test]
fn openssl_libp11_engine_signature_verifies() {
    require_tool("openssl", "openssl");
    let engine = Path::new("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so");
    assert!(
        engine.exists() || Path::new("/usr/lib/engines-3/pkcs11.so").exists(),
        "libp11's OpenSSL engine is missing: run scripts/setup.sh (Debian package \
         libengine-pkcs11-openssl); CI installs it"
    );
    let s = token_with_certs("ssltok");
    let data = s.path().join("data.txt");
    std::fs::write(&data, b"tender document: lot 7, price 1,000,000\n").unwrap();
    for (container, id) in [("sig", "%01"), ("rsa", "%02")] {
        let pubkey = s.path().join(format!("{container}.pub.pem"));
        s.ukey(&[
            "--token",
            "ssltok",
            "key",
            "pub",
            "--container",
            container,
            "-o",
            pubkey.to_str().unwrap(),
        ]);
        let sig = s.path().join(format!("{container}.sig"));
        let uri = format!("pkcs11:token=ssltok;id={id};type=private;pin-value={PIN}");
        run(
            &format!("openssl dgst -engine pkcs11 -sign ({container})"),
            s.cmd("openssl")
                .env("PKCS11_MODULE_PATH", pkcs11_lib())
                .args([
                    "dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine", "-sign", &uri,
                    "-out",
                ])
                .arg(&sig)
                .arg(&data),
        );
        let verified = run(
            &format!("openssl dgst -verify ({container})"),
            s.cmd("openssl")
                .args(["dgst", "-sha256", "-verify"])
                .arg(&pubkey)
                .arg("-signature")
                .arg(&sig)
                .arg(&data),
        );
        assert!(verified.contains("Verified OK"), "{container}: {verified}");
        // And a changed document does not verify.
        let other = s.path().join("other.txt");
        std::fs::write(&other, b"tender document: lot 7, price 9,000,000\n").unwrap();
        let o = s
            .cmd("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&pubkey)
            .arg("-signature")
            .arg(&sig)
            .arg(&other)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{container}: {}", both(&o));
    }
}

/// GnuTLS: `p11tool --list-all` lists the token's keys and certificates.
#[test]
fn gnutls_p11tool_lists_objects() {
    require_tool("p11tool", "gnutls-bin");
    let s = token_with_certs("gnutok");
    let out = run(
        "p11tool --list-all",
        s.cmd("p11tool")
            .env("GNUTLS_PIN", PIN)
            .arg("--provider")
            .arg(pkcs11_lib())
            .args(["--list-all", "--login", "pkcs11:token=gnutok"]),
    );
    for (kind, id) in [
        ("type=private", "id=%01"),
        ("type=cert", "id=%01"),
        ("type=private", "id=%02"),
        ("type=cert", "id=%02"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains("URL: pkcs11:") && l.contains(kind) && l.contains(id)),
            "no object with {kind} and {id}:\n{out}"
        );
    }
}
