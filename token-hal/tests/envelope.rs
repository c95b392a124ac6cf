//! SM2 envelopes (GM/T 0010 EnvelopedData) opened with keys in soft tokens found through
//! the registry: the GmSSL vectors after renewal and rekey, the four search steps, one
//! and three recipients, refusals that leave no output, and 256 MiB streamed.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod soft_common;

use std::cell::RefCell;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use der::{Any, Decode, Encode};
use soft_common::*;
use token_hal::crypto::hash::{HashAlg, Hasher};
use token_hal::crypto::{KeyAlg, PrivateKey};
use token_hal::registry::Registry;
use token_hal::soft::DEFAULT_DEV_AUTH_KEY;
use token_hal::tender::envelope::{
    self, Decrypted, MatchKind, Recipient, TokenApp, TokenKeyFinder, tokens_present,
};
use token_hal::{AppParams, Application, Error, KeyUsage, PinType};

/// A registry over a fresh data directory holding `n` soft devices, each with one
/// application `app<i>` (user PIN [`USER`]).
fn registry(dir: &Path, n: usize) -> Registry {
    let reg = Registry::new(config(&dir.join("data")));
    for i in 0..n {
        let d = reg.create_soft_device(&format!("dev{i}")).unwrap();
        d.authenticate_with_key(DEFAULT_DEV_AUTH_KEY).unwrap();
        d.create_app(
            &format!("app{i}"),
            &AppParams::new(ADMIN.into(), Some(USER.into())),
        )
        .unwrap();
    }
    reg
}

fn app(reg: &Registry, name: &str) -> Arc<dyn Application> {
    let (d, a) = reg.find_app(Some(name)).unwrap();
    let app = d.open_app(&a).unwrap();
    app.verify_pin(PinType::User, &USER.into()).unwrap();
    app
}

/// The plaintext and the outcome, or the error.
type Opened = Result<(Vec<u8>, Decrypted), Error>;

/// Decrypts with a finder over the tokens present (fresh handles, so logins happen
/// through the closure), recording which tokens were logged in to.
fn open_with(tokens: Vec<TokenApp>, env: &[u8]) -> (Opened, Vec<String>) {
    let logins = RefCell::new(Vec::new());
    let mut finder = TokenKeyFinder::new(tokens, |t: &TokenApp| {
        logins.borrow_mut().push(t.app.name().to_owned());
        t.app.verify_pin(PinType::User, &USER.into())
    });
    let mut out = Vec::new();
    let r = envelope::decrypt(env, &mut out, &mut finder, &mut |_, _| {});
    drop(finder);
    (r.map(|d| (out, d)), logins.into_inner())
}

fn open(reg: &Registry, env: &[u8]) -> Opened {
    open_with(tokens_present(reg).unwrap(), env).0
}

fn seal(certs: &[&[u8]], data: &[u8]) -> Vec<u8> {
    let r: Vec<Recipient> = certs
        .iter()
        .map(|c| Recipient::from_cert(c).unwrap())
        .collect();
    let mut out = Vec::new();
    envelope::encrypt(&r, data, data.len() as u64, &mut out, &mut |_, _| {}).unwrap();
    out
}

#[test]
fn gm_vectors_open_after_renewal_and_rekey() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path(), 2);
    let bid = gm("bid.txt");
    let v1 = gm("bid.enveloped-to-v1.p7m.pem");
    let two = gm("bid.enveloped-2rcpt.p7m.pem");

    // A stranger's key on the other token.
    let other = app(&reg, "app1");
    other.create_container("stranger", None).unwrap();
    other
        .generate_key("stranger", KeyUsage::Encrypt, KeyAlg::Sm2, false)
        .unwrap();

    // Nothing installed yet: the error names the recipient.
    let e = open(&reg, &v1).unwrap_err().to_string();
    assert!(
        e.contains("serial 6DD4179A3CFDE572B6312E03") && e.contains("Example Tendering CA"),
        "{e}"
    );

    let a = app(&reg, "app0");
    a.create_container("bidder", None).unwrap();
    let key = PrivateKey::from_file_bytes(&gm("enc.key.pem"), Some(b"vectorpass")).unwrap();
    a.import_key("bidder", KeyUsage::Encrypt, &key, false)
        .unwrap();
    a.import_cert("bidder", KeyUsage::Encrypt, &pem_der("enc.cert.v1.pem"))
        .unwrap();

    let (r, logins) = open_with(tokens_present(&reg).unwrap(), &v1);
    let (plain, d) = r.unwrap();
    assert_eq!(plain, bid);
    assert_eq!(d.opened_by.how, MatchKind::IssuerSerial { current: true });
    assert_eq!(d.opened_by.token, "app0");
    assert_eq!(d.opened_by.container, "bidder");
    assert!(!d.opened_by.retired);
    // Only the token holding the key was asked for its PIN.
    assert_eq!(logins, vec!["app0".to_owned()]);
    let (plain, d) = open(&reg, &two).unwrap();
    assert_eq!(plain, bid);
    assert_eq!(d.recipients, 2);

    // Renewal: v2 replaces v1; the envelope to v1 still opens, through the history.
    a.import_cert(
        "bidder",
        KeyUsage::Encrypt,
        &pem_der("enc.cert.v2-renewed.pem"),
    )
    .unwrap();
    assert_eq!(
        a.cert("bidder", KeyUsage::Encrypt).unwrap().unwrap(),
        pem_der("enc.cert.v2-renewed.pem")
    );
    let (plain, d) = open(&reg, &v1).unwrap();
    assert_eq!(plain, bid);
    assert_eq!(d.opened_by.how, MatchKind::IssuerSerial { current: false });

    // Rekey: a new encryption key retires the old one, which still opens the envelope.
    a.generate_key("bidder", KeyUsage::Encrypt, KeyAlg::Sm2, true)
        .unwrap();
    let c = a.container("bidder").unwrap();
    assert_eq!(c.retired.len(), 1);
    let (plain, d) = open(&reg, &v1).unwrap();
    assert_eq!(plain, bid);
    assert!(d.opened_by.retired);
    assert!(matches!(d.opened_by.how, MatchKind::IssuerSerial { .. }));
    let (plain, _) = open(&reg, &two).unwrap();
    assert_eq!(plain, bid);
}

fn pem_der(name: &str) -> Vec<u8> {
    pem_rfc7468::decode_vec(&gm(name)).unwrap().1
}

/// The envelope with its (only) recipient named by a subject key identifier.
fn with_ski(env: &[u8], ski: &[u8]) -> Vec<u8> {
    let ci = ContentInfo::from_der(env).unwrap();
    let mut ed: EnvelopedData = ci.content.decode_as().unwrap();
    let mut ris: Vec<RecipientInfo> = ed.recip_infos.0.iter().cloned().collect();
    let RecipientInfo::Ktri(k) = &mut ris[0] else {
        panic!("not ktri")
    };
    k.rid = RecipientIdentifier::SubjectKeyIdentifier(x509_cert::ext::pkix::SubjectKeyIdentifier(
        der::asn1::OctetString::new(ski).unwrap(),
    ));
    ed.recip_infos = ris.try_into().unwrap();
    ContentInfo {
        content_type: ci.content_type,
        content: Any::encode_from(&ed).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn search_by_ski_public_key_and_trial() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path(), 1);
    let a = app(&reg, "app0");
    a.create_container("c", None).unwrap();
    let pk = a
        .generate_key("c", KeyUsage::Encrypt, KeyAlg::Sm2, false)
        .unwrap();
    // The signing key signs the certificate of the encryption key.
    a.generate_key("c", KeyUsage::Sign, KeyAlg::Sm2, false)
        .unwrap();
    let spec = token_hal::cert::SelfSignedSpec::new("enc", KeyUsage::Encrypt);
    let cert = token_hal::cert::self_signed(&pk, &spec, |m, t| {
        a.sign(&token_hal::KeyRef::active("c", KeyUsage::Sign), m, t)
    })
    .unwrap();
    let cert_id = a.import_cert("c", KeyUsage::Encrypt, &cert).unwrap();
    let data = b"sealed bid".to_vec();
    let env = seal(&[&cert], &data);
    let (plain, d) = open(&reg, &env).unwrap();
    assert_eq!(plain, data);
    assert_eq!(d.opened_by.how, MatchKind::IssuerSerial { current: true });

    // By the SKI of the certificate (SHA-1 of the key: also the key's own SKI).
    let point = pk.ec_point().unwrap();
    let ski = token_hal::crypto::hash::digest(HashAlg::Sha1, &point);
    let by_ski = with_ski(&env, &ski);
    let (plain, d) = open(&reg, &by_ski).unwrap();
    assert_eq!(plain, data);
    assert_eq!(d.opened_by.how, MatchKind::SubjectKeyId);

    // With the certificate gone, the SKI still names the public key.
    a.delete_cert(cert_id).unwrap();
    let (plain, d) = open(&reg, &by_ski).unwrap();
    assert_eq!(plain, data);
    assert_eq!(d.opened_by.how, MatchKind::PublicKey);

    // And the issuer + serial of a certificate the token never saw: trial decryption.
    let (plain, d) = open(&reg, &env).unwrap();
    assert_eq!(plain, data);
    assert_eq!(d.opened_by.how, MatchKind::Trial);

    // An SKI of nobody, encrypted to nobody here: refused, naming it.
    let (_, other_cert) = stranger_cert();
    let env2 = seal(&[&other_cert], &data);
    let e = open(&reg, &with_ski(&env2, &[0xAB; 20])).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(e.to_string().contains("subject key id ABABAB"), "{e}");
}

fn stranger_cert() -> (PrivateKey, Vec<u8>) {
    let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let spec = token_hal::cert::SelfSignedSpec::new("stranger", KeyUsage::Encrypt);
    let der =
        token_hal::cert::self_signed(&key.public_key().unwrap(), &spec, |m, t| key.sign(m, t))
            .unwrap();
    (key, der)
}

/// Three tokens, each with an encryption key and certificate; envelopes to one and to
/// all three.
#[test]
fn one_and_three_recipients() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path(), 3);
    let mut certs = Vec::new();
    for i in 0..3 {
        let a = app(&reg, &format!("app{i}"));
        a.create_container("enc", None).unwrap();
        let pk = a
            .generate_key("enc", KeyUsage::Encrypt, KeyAlg::Sm2, false)
            .unwrap();
        a.generate_key("enc", KeyUsage::Sign, KeyAlg::Sm2, false)
            .unwrap();
        let spec = token_hal::cert::SelfSignedSpec::new(format!("opener {i}"), KeyUsage::Encrypt);
        let cert = token_hal::cert::self_signed(&pk, &spec, |m, t| {
            a.sign(&token_hal::KeyRef::active("enc", KeyUsage::Sign), m, t)
        })
        .unwrap();
        a.import_cert("enc", KeyUsage::Encrypt, &cert).unwrap();
        certs.push(cert);
    }
    // Fresh handles each time, so each open logs in anew.
    let only = |name: &str| -> Vec<TokenApp> {
        tokens_present(&reg)
            .unwrap()
            .into_iter()
            .filter(|t| t.app.name() == name)
            .collect()
    };
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();

    let to_one = seal(&[&certs[1]], &data);
    let (r, _) = open_with(only("app1"), &to_one);
    assert_eq!(r.unwrap().0, data);
    for other in ["app0", "app2"] {
        let (r, _) = open_with(only(other), &to_one);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("CN=opener 1"), "{e}");
    }

    let to_three = seal(&[&certs[0], &certs[1], &certs[2]], &data);
    for name in ["app0", "app1", "app2"] {
        let (r, logins) = open_with(only(name), &to_three);
        let (plain, d) = r.unwrap();
        assert_eq!(plain, data);
        assert_eq!(d.recipients, 3);
        assert_eq!(d.opened_by.token, name);
        assert_eq!(logins, vec![name.to_owned()]);
    }
}

#[test]
fn wrong_pin_and_no_key_leave_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path(), 1);
    let a = app(&reg, "app0");
    a.create_container("bidder", None).unwrap();
    let key = PrivateKey::from_file_bytes(&gm("enc.key.pem"), Some(b"vectorpass")).unwrap();
    a.import_key("bidder", KeyUsage::Encrypt, &key, false)
        .unwrap();
    a.import_cert("bidder", KeyUsage::Encrypt, &pem_der("enc.cert.v1.pem"))
        .unwrap();
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let input = work.join("bid.p7m.pem");
    fs::write(&input, gm("bid.enveloped-to-v1.p7m.pem")).unwrap();
    let out = work.join("bid.txt");

    // A wrong PIN: the error names the token and the retries; no output.
    let mut finder = TokenKeyFinder::new(tokens_present(&reg).unwrap(), |t: &TokenApp| {
        t.app.verify_pin(PinType::User, &"wrong-pin".into())
    });
    let e = envelope::decrypt_file(&input, &out, &mut finder, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("app0") && e.contains("retries left"), "{e}");
    assert_eq!(fs::read_dir(&work).unwrap().count(), 1);

    // The right PIN.
    let mut finder = TokenKeyFinder::new(tokens_present(&reg).unwrap(), |t: &TokenApp| {
        t.app.verify_pin(PinType::User, &USER.into())
    });
    let d = envelope::decrypt_file(&input, &out, &mut finder, &mut |_, _| {}).unwrap();
    assert_eq!(fs::read(&out).unwrap(), gm("bid.txt"));
    assert_eq!(d.bytes, gm("bid.txt").len() as u64);
    fs::remove_file(&out).unwrap();

    // An envelope for someone else: refused, nothing written.
    let (_, c) = stranger_cert();
    let stranger = work.join("other.p7m");
    fs::write(&stranger, seal(&[&c], b"not yours")).unwrap();
    let mut finder = TokenKeyFinder::new(tokens_present(&reg).unwrap(), |t: &TokenApp| {
        t.app.verify_pin(PinType::User, &USER.into())
    });
    let e = envelope::decrypt_file(&stranger, &out, &mut finder, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("CN=stranger"), "{e}");
    assert!(!out.exists());
    assert_eq!(fs::read_dir(&work).unwrap().count(), 2);
}

/// A reader of `len` pseudo-random bytes, hashing what it yields.
struct Pattern {
    left: u64,
    state: u64,
    hash: Hasher,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let b = self.state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

struct HashWriter(Hasher, u64);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 256 MiB (`UKEY_ENVELOPE_TEST_MIB` to change) through encrypt and decrypt, streamed
/// through files, with the token's key.
#[test]
fn streams_256_mib() {
    let mib: u64 = std::env::var("UKEY_ENVELOPE_TEST_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let len = mib << 20;
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path(), 1);
    let a = app(&reg, "app0");
    a.create_container("bidder", None).unwrap();
    let key = PrivateKey::from_file_bytes(&gm("enc.key.pem"), Some(b"vectorpass")).unwrap();
    a.import_key("bidder", KeyUsage::Encrypt, &key, false)
        .unwrap();
    a.import_cert(
        "bidder",
        KeyUsage::Encrypt,
        &pem_der("enc.cert.v2-renewed.pem"),
    )
    .unwrap();
    let v2 = pem_der("enc.cert.v2-renewed.pem");
    let at = token_hal::cert::summarize(&v2).unwrap().not_before_unix + 60;
    let r = Recipient::from_cert_at(&v2, at).unwrap();

    let env_path = tmp.path().join("big.p7m");
    let mut src = Pattern {
        left: len,
        state: 7,
        hash: Hasher::new(HashAlg::Sm3),
    };
    let mut last = (0, None);
    let t0 = Instant::now();
    let n = envelope::encrypt_reader(&[r], &mut src, len, &env_path, false, &mut |d, t| {
        last = (d, t)
    })
    .unwrap();
    let t_enc = t0.elapsed();
    assert_eq!(last, (len, Some(len)));
    assert_eq!(fs::metadata(&env_path).unwrap().len(), n);
    assert!(n > len && n < len + 1024);

    let mut finder = TokenKeyFinder::new(tokens_present(&reg).unwrap(), |t: &TokenApp| {
        t.app.verify_pin(PinType::User, &USER.into())
    });
    let mut sink = HashWriter(Hasher::new(HashAlg::Sm3), 0);
    let t1 = Instant::now();
    let file = std::io::BufReader::with_capacity(1 << 16, fs::File::open(&env_path).unwrap());
    let d = envelope::decrypt(file, &mut sink, &mut finder, &mut |_, _| {}).unwrap();
    let t_dec = t1.elapsed();
    assert_eq!(d.bytes, len);
    assert_eq!(sink.1, len);
    assert_eq!(sink.0.finish(), src.hash.finish());
    eprintln!(
        "{mib} MiB: encrypt {:.1} s ({:.0} MB/s), decrypt {:.1} s ({:.0} MB/s)",
        t_enc.as_secs_f64(),
        len as f64 / 1e6 / t_enc.as_secs_f64(),
        t_dec.as_secs_f64(),
        len as f64 / 1e6 / t_dec.as_secs_f64()
    );
}

/// OpenSSL 3 cross-check of what ukey writes, re-labelled with the RFC 5652 content-type
/// OIDs OpenSSL knows (it does not know the GM/T 0010 ones): `openssl cms -cmsout -print`
/// shows both recipients, and `openssl cms -decrypt` with the SM2 key (as PKCS#8, since
/// OpenSSL 3.0 cannot read GmSSL's PBKDF2-SM3 key files) gives back the bid. (The other
/// way does not work: OpenSSL 3.0's `cms -encrypt` to an SM2 certificate fails with
/// "illegal zero content".)
#[test]
fn openssl_cross_check() {
    use std::process::Command;
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl not installed: cross-check skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cert = pem_der("enc.cert.v2-renewed.pem");
    let bid = b"a bid for OpenSSL\n".to_vec();
    // At a time both certificates are valid (v1 expires in 2027).
    let at = token_hal::cert::summarize(&cert).unwrap().not_before_unix + 60;
    let rs = [
        Recipient::from_cert_at(&cert, at).unwrap(),
        Recipient::from_cert_at(&pem_der("enc.cert.v1.pem"), at).unwrap(),
    ];
    let mut env = Vec::new();
    envelope::encrypt(&rs, &bid[..], bid.len() as u64, &mut env, &mut |_, _| {}).unwrap();
    let ci = ContentInfo::from_der(&env).unwrap();
    let mut ed: EnvelopedData = ci.content.decode_as().unwrap();
    ed.encrypted_content.content_type = envelope::OID_DATA;
    let rfc = ContentInfo {
        content_type: envelope::OID_ENVELOPED_DATA,
        content: Any::encode_from(&ed).unwrap(),
    }
    .to_der()
    .unwrap();
    fs::write(dir.join("rfc.p7m"), &rfc).unwrap();
    let o = Command::new("openssl")
        .args([
            "cms", "-cmsout", "-print", "-inform", "DER", "-in", "rfc.p7m",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(printed.contains("pkcs7-envelopedData"), "{printed}");
    assert!(printed.contains("1.2.156.10197.1.301.3"), "{printed}");
    assert!(printed.contains("sm4-cbc"), "{printed}");
    // Both recipients, by issuer and serial (OpenSSL prints serials in decimal).
    for serial in ["D308E9F75934F44B1E58A524", "6DD4179A3CFDE572B6312E03"] {
        let dec = u128::from_str_radix(serial, 16).unwrap().to_string();
        assert!(printed.contains(&dec), "{serial}: {printed}");
    }
    assert_eq!(printed.matches("d.ktri:").count(), 2, "{printed}");
    let key = PrivateKey::from_file_bytes(&gm("enc.key.pem"), Some(b"vectorpass")).unwrap();
    let pem = pem_rfc7468::encode_string(
        "PRIVATE KEY",
        pem_rfc7468::LineEnding::LF,
        &key.to_pkcs8_der(),
    )
    .unwrap();
    fs::write(
        dir.join("enc.key.pem"),
        zeroize::Zeroizing::new(pem).as_bytes(),
    )
    .unwrap();
    fs::write(dir.join("enc.cert.pem"), gm("enc.cert.v2-renewed.pem")).unwrap();
    let o = Command::new("openssl")
        .args([
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            "rfc.p7m",
            "-recip",
            "enc.cert.pem",
            "-inkey",
            "enc.key.pem",
            "-out",
            "ossl.out",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl cms -decrypt: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(fs::read(dir.join("ossl.out")).unwrap(), bid);
}
