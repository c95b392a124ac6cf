//! Envelope format tests with in-memory keys: the GmSSL vectors, round trips in DER,
//! PEM and BER, and damaged input. The token search is tested in tests/envelope.rs.

#![allow(clippy::unwrap_used)]

use std::io::Cursor;

use cms::content_info::ContentInfo;
use cms::enveloped_data::EnvelopedData;

use super::*;
use crate::crypto::PrivateKey;

fn gm(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/gm-interop")
            .join(name),
    )
    .unwrap()
}

/// Opens with software keys, trying each on each SM2 recipient.
struct SoftKeys<'a>(Vec<&'a PrivateKey>);

impl KeyUnwrap for SoftKeys<'_> {
    fn unwrap_key(&mut self, env: &EnvelopeInfo) -> Result<(Zeroizing<Vec<u8>>, KeyMatch)> {
        for (ri, r) in env.recipients.iter().enumerate() {
            let raw = sm2::cipher_der_to_raw(&r.encrypted_key)?;
            for k in &self.0 {
                if let Ok(key) = k.decrypt(&EncMech::Sm2, &raw) {
                    return Ok((
                        key,
                        KeyMatch {
                            device: String::new(),
                            token: String::new(),
                            container: String::new(),
                            key: crate::model::KeyId(0),
                            retired: false,
                            how: MatchKind::Trial,
                            recipient: ri,
                        },
                    ));
                }
            }
        }
        Err(Error::not_found(env.describe_recipients()))
    }
}

fn enc_key() -> PrivateKey {
    PrivateKey::from_file_bytes(&gm("enc.key.pem"), Some(b"vectorpass")).unwrap()
}

fn open(env: &[u8], keys: Vec<&PrivateKey>) -> Result<(Vec<u8>, Decrypted)> {
    let mut out = Vec::new();
    let d = decrypt(
        Cursor::new(env),
        &mut out,
        &mut SoftKeys(keys),
        &mut |_, _| {},
    )?;
    Ok((out, d))
}

fn seal(recipients: &[Recipient], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = encrypt(
        recipients,
        data,
        data.len() as u64,
        &mut out,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

/// A self-signed SM2 encryption certificate for a fresh key.
fn sm2_recipient() -> (PrivateKey, Vec<u8>) {
    let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let spec = crate::cert::SelfSignedSpec::new("recipient", crate::KeyUsage::Encrypt);
    let der =
        crate::cert::self_signed(&key.public_key().unwrap(), &spec, |m, t| key.sign(m, t)).unwrap();
    (key, der)
}

#[test]
fn gmssl_envelopes_open() {
    let bid = gm("bid.txt");
    let (plain, d) = open(&gm("bid.enveloped-to-v1.p7m.pem"), vec![&enc_key()]).unwrap();
    assert_eq!(plain, bid);
    assert_eq!(d.content_type, OID_GM_DATA);
    assert_eq!(d.bytes, bid.len() as u64);
    assert_eq!(d.recipients, 1);
    let (plain, d) = open(&gm("bid.enveloped-2rcpt.p7m.pem"), vec![&enc_key()]).unwrap();
    assert_eq!(plain, bid);
    assert_eq!(d.recipients, 2);
    // Another key does not open it, and the error names the recipients.
    let e = open(
        &gm("bid.enveloped-2rcpt.p7m.pem"),
        vec![&PrivateKey::generate(KeyAlg::Sm2).unwrap()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("serial 6DD4179A3CFDE572B6312E03"), "{e}");
    assert!(e.contains("serial 6D2AF294CCD15584ABCD872B"), "{e}");
    assert!(e.contains("Example Tendering CA"), "{e}");
}

#[test]
fn recipient_checks() {
    let v1 = gm("enc.cert.v1.pem");
    let s = crate::cert::summarize(&crate::cert::parse(&v1).unwrap()).unwrap();
    assert!(Recipient::from_cert_at(&v1, s.not_before_unix + 10).is_ok());
    let e = Recipient::from_cert_at(&v1, s.not_after_unix + 10).unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    let e = Recipient::from_cert_at(&v1, s.not_before_unix - 10).unwrap_err();
    assert!(e.to_string().contains("not valid before"), "{e}");
    // The signing certificate is not for encryption.
    let sign = gm("sign.cert.pem");
    let e = Recipient::from_cert_at(&sign, s.not_before_unix + 10).unwrap_err();
    assert!(e.to_string().contains("not for encryption"), "{e}");
    // A P-256 certificate is refused.
    let key = PrivateKey::generate(KeyAlg::EcP256).unwrap();
    let spec = crate::cert::SelfSignedSpec::new("p256", crate::KeyUsage::Encrypt);
    let der =
        crate::cert::self_signed(&key.public_key().unwrap(), &spec, |m, t| key.sign(m, t)).unwrap();
    assert!(matches!(Recipient::from_cert(&der), Err(Error::KeyType(_))));
    assert!(Recipient::from_cert(b"not a certificate").is_err());
}

#[test]
fn round_trips_of_every_length_class() {
    let (k1, c1) = sm2_recipient();
    let (k2, c2) = sm2_recipient();
    let r = vec![
        Recipient::from_cert(&c1).unwrap(),
        Recipient::from_cert(&c2).unwrap(),
    ];
    for n in [
        0usize, 1, 15, 16, 17, 127, 128, 65535, 65536, 65537, 200_000,
    ] {
        let data: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
        let env = seal(&r, &data);
        // It is DER that the cms crate reads, with the GM OIDs.
        let ci = ContentInfo::from_der(&env).unwrap();
        assert_eq!(ci.content_type, OID_GM_ENVELOPED_DATA);
        let ed: EnvelopedData = ci.content.decode_as().unwrap();
        assert_eq!(ed.recip_infos.0.len(), 2);
        assert_eq!(ed.encrypted_content.content_type, OID_GM_DATA);
        assert_eq!(
            ed.encrypted_content
                .encrypted_content
                .unwrap()
                .as_bytes()
                .len(),
            (n / 16 + 1) * 16
        );
        let (plain, d) = open(&env, vec![&k2]).unwrap();
        assert_eq!(plain, data, "length {n}");
        assert_eq!(d.bytes, n as u64);
        let (plain, _) = open(&env, vec![&k1]).unwrap();
        assert_eq!(plain, data);
    }
}

#[test]
fn pem_round_trip() {
    let (k, c) = sm2_recipient();
    let data = b"bid".repeat(1000);
    let mut out = Vec::new();
    {
        let mut p = pem::PemWriter::new(&mut out, "CMS").unwrap();
        encrypt(
            &[Recipient::from_cert(&c).unwrap()],
            &data[..],
            data.len() as u64,
            &mut p,
            &mut |_, _| {},
        )
        .unwrap();
        p.finish().unwrap();
    }
    assert!(out.starts_with(b"-----BEGIN CMS-----\n"));
    let (plain, _) = open(&out, vec![&k]).unwrap();
    assert_eq!(plain, data);
}

/// Re-encodes an envelope in BER the way streaming encoders write it: indefinite lengths
/// on the outer elements and the content in segments, with the given content-type OIDs.
fn to_ber(env: &[u8], outer: ObjectIdentifier, inner: ObjectIdentifier, seg: usize) -> Vec<u8> {
    let ci = ContentInfo::from_der(env).unwrap();
    let ed: EnvelopedData = ci.content.decode_as().unwrap();
    let ct = ed.encrypted_content.encrypted_content.clone().unwrap();
    let mut v = vec![0x30, 0x80];
    v.extend(outer.to_der().unwrap());
    v.extend([0xA0, 0x80, 0x30, 0x80, 0x02, 0x01, 0x00]);
    v.extend(ed.recip_infos.to_der().unwrap());
    v.extend([0x30, 0x80]);
    v.extend(inner.to_der().unwrap());
    v.extend(ed.encrypted_content.content_enc_alg.to_der().unwrap());
    v.extend([0xA0, 0x80]);
    for s in ct.as_bytes().chunks(seg) {
        v.extend(header_bytes(0x04, s.len() as u64));
        v.extend(s);
    }
    v.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v
}

#[test]
fn ber_indefinite_and_rfc_oids_accepted() {
    let (k, c) = sm2_recipient();
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let env = seal(&[Recipient::from_cert(&c).unwrap()], &data);
    for (outer, inner, seg) in [
        (OID_ENVELOPED_DATA, OID_DATA, 1000),
        (OID_GM_ENVELOPED_DATA, OID_GM_DATA, 7),
        (OID_ENVELOPED_DATA, OID_GM_SIGNED_DATA, 4096),
    ] {
        let ber = to_ber(&env, outer, inner, seg);
        let (plain, d) = open(&ber, vec![&k]).unwrap();
        assert_eq!(plain, data);
        assert_eq!(d.content_type, inner);
        assert_eq!(d.is_signed_data(), inner == OID_GM_SIGNED_DATA);
    }
    // Missing end-of-contents: truncated.
    let ber = to_ber(&env, OID_ENVELOPED_DATA, OID_DATA, 1000);
    let e = open(&ber[..ber.len() - 2], vec![&k]).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn wrong_content_types_refused() {
    let (k, c) = sm2_recipient();
    let env = seal(&[Recipient::from_cert(&c).unwrap()], b"x");
    let signed = to_ber(&env, OID_GM_SIGNED_DATA, OID_GM_DATA, 16);
    let e = open(&signed, vec![&k]).unwrap_err().to_string();
    assert!(
        e.contains("not an EnvelopedData") && e.contains("1.2.156.10197.6.1.4.2.2"),
        "{e}"
    );
    let odd = to_ber(
        &env,
        OID_GM_ENVELOPED_DATA,
        ObjectIdentifier::new_unwrap("1.2.3.4"),
        16,
    );
    let e = open(&odd, vec![&k]).unwrap_err().to_string();
    assert!(e.contains("1.2.3.4"), "{e}");
    // A certificate is not an envelope.
    let e = open(&c, vec![&k]).unwrap_err().to_string();
    assert!(e.contains("EnvelopedData"), "{e}");
}

#[test]
fn damaged_envelopes_refused() {
    let (k, c) = sm2_recipient();
    let data = vec![0x5Au8; 1000];
    let env = seal(&[Recipient::from_cert(&c).unwrap()], &data);
    // Every truncation fails.
    for cut in (0..env.len())
        .step_by(37)
        .chain([env.len() - 1, env.len() - 16])
    {
        assert!(open(&env[..cut], vec![&k]).is_err(), "cut at {cut}");
    }
    // Trailing data.
    let mut t = env.clone();
    t.push(0);
    let e = open(&t, vec![&k]).unwrap_err().to_string();
    assert!(e.contains("trailing data"), "{e}");
    // Every length byte of the headers changed: an error, never a wrong success.
    for i in 0..env.len() - data.len() {
        for delta in [1u8, 0x10, 0x80] {
            let mut t = env.clone();
            t[i] ^= delta;
            if let Ok((plain, _)) = open(&t, vec![&k]) {
                // Only a change that does not touch structure or key may pass (e.g. the
                // IV, which garbles the first block): never the whole original plaintext
                // with a different length.
                assert_eq!(plain.len(), data.len(), "byte {i} ^ {delta:#x}");
            }
        }
    }
    // The last block altered: the padding check fails (probability 255/256 per change;
    // this change sets the last byte to a value no padding has).
    let mut t = env.clone();
    let n = t.len();
    t[n - 17] ^= 0xFF ^ 0x10;
    let e = open(&t, vec![&k]).unwrap_err().to_string();
    assert!(e.contains("padding"), "{e}");
}

#[test]
fn encrypt_checks_input_length() {
    let (_, c) = sm2_recipient();
    let r = [Recipient::from_cert(&c).unwrap()];
    let mut out = Vec::new();
    assert!(encrypt(&r, &b"abc"[..], 4, &mut out, &mut |_, _| {}).is_err());
    assert!(encrypt(&r, &b"abcde"[..], 4, &mut out, &mut |_, _| {}).is_err());
    assert!(encrypt(&[], &b"abc"[..], 3, &mut out, &mut |_, _| {}).is_err());
}

#[test]
fn atomic_write_leaves_nothing_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.bin");
    std::fs::write(&p, b"old").unwrap();
    let r: Result<()> = write_file_atomically(&p, true, |w| {
        w.write_all(b"partial").unwrap();
        Err(Error::DecryptFailed)
    });
    assert!(r.is_err());
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    write_file_atomically(&p, true, |w| {
        w.write_all(b"new").unwrap();
        Ok(())
    })
    .unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"new");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn signed_then_enveloped_is_recognised() {
    let (k, c) = sm2_recipient();
    let r = [Recipient::from_cert(&c).unwrap()];
    // The GmSSL SignedData over bid.txt, enveloped as data.
    let signed = pem_rfc7468::decode_vec(&gm("bid.signed.p7.pem")).unwrap().1;
    let (plain, d) = open(&seal(&r, &signed), vec![&k]).unwrap();
    assert_eq!(plain, signed);
    assert_eq!(d.content_type, OID_GM_DATA);
    assert!(d.plaintext_is_signed_data && d.is_signed_data());
    // A plain bid, and an envelope, are not SignedData.
    let (_, d) = open(&seal(&r, &gm("bid.txt")), vec![&k]).unwrap();
    assert!(!d.is_signed_data());
    let env = gm("bid.enveloped-to-v1.p7m.pem");
    let env_der = pem_rfc7468::decode_vec(&env).unwrap().1;
    let (_, d) = open(&seal(&r, &env_der), vec![&k]).unwrap();
    assert!(!d.is_signed_data());
}
