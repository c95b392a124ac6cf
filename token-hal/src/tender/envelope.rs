//! Bid encryption and decryption: GM/T 0010 EnvelopedData with SM2 key transport and
//! SM4-CBC content, streamed in constant memory.
//!
//! **Writing** ([`encrypt`]): a random 16-byte SM4 key and IV; the key SM2-encrypted to
//! each recipient certificate (key transport OID 1.2.156.10197.1.301.3, the ciphertext in
//! the GM/T 0009 DER form), each recipient named by issuer and serial; the content
//! SM4-CBC with PKCS#7 padding. Content types are the GM/T 0010 OIDs
//! (envelopedData 1.2.156.10197.6.1.4.2.3, data 1.2.156.10197.6.1.4.2.1). Every length is
//! computed from the input size up front, so the whole envelope is DER with the
//! encrypted content one definite-length `[0]` OCTET STRING, written as it is encrypted.
//!
//! **Reading** ([`decrypt`]): PEM or DER/BER input; the RFC 5652 content-type OIDs are
//! accepted as well as the GM ones; the outer elements and the encrypted content may use
//! BER indefinite lengths and segmented OCTET STRINGs (what `openssl cms -stream`
//! writes); the key transport OID may also be GmSSL's 1.2.156.10197.1.301.2. The
//! recipients are read first, a [`KeyUnwrap`] (usually [`TokenKeyFinder`]) unwraps the
//! content key inside a token, then the content is decrypted as it is read.
//!
//! **Integrity.** SM4-CBC carries no MAC. Truncation and structural tampering (lengths,
//! padding, trailing data, a content that is not whole blocks) are detected. A change
//! inside the encrypted content is *not* detected, except where it breaks the padding:
//! only signed-then-enveloped input (a SignedData inside, checked after decryption) is
//! protected against it. Write the output with [`write_file_atomically`] so that a failure
//! leaves no partial file.

mod ber;
mod keys;
mod pem;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    KeyTransRecipientInfo, OriginatorInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use zeroize::Zeroizing;

use crate::crypto::sym::{Direction, SymAlg, SymCipher, SymMode};
use crate::crypto::{EncMech, KeyAlg, PublicKey, rng, sm2};
use crate::error::{Error, Result};

use ber::{BerReader, Frame, OCTET_STRING, OCTET_STRING_CONS, SEQUENCE, SET, header_bytes};
pub use keys::{KeyMatch, MatchKind, TokenApp, TokenKeyFinder, tokens_present};

/// GM/T 0010 data.
pub const OID_GM_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.6.1.4.2.1");
/// GM/T 0010 signedData.
pub const OID_GM_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.156.10197.6.1.4.2.2");
/// GM/T 0010 envelopedData.
pub const OID_GM_ENVELOPED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.156.10197.6.1.4.2.3");
/// RFC 5652 id-data.
pub const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// RFC 5652 id-signedData.
pub const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// RFC 5652 id-envelopedData.
pub const OID_ENVELOPED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
/// SM2-3, SM2 public-key encryption (GM/T 0006): the key transport OID written.
pub const OID_SM2_ENCRYPT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.301.3");
/// The key transport OID GmSSL 3.3 writes (SM2-2 in GM/T 0006); accepted on input.
pub const OID_SM2_ENCRYPT_GMSSL: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.156.10197.1.301.2");
/// The SM2 algorithm OID itself; some writers put it as key transport. Accepted on input.
pub const OID_SM2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.301");
/// SM4-CBC (GM/T 0006), parameters: the 16-byte IV as an OCTET STRING.
pub const OID_SM4_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.104.2");

/// Content bytes read or written per step.
const CHUNK: usize = 64 * 1024;
/// Largest RecipientInfos (and other small elements) read into memory.
const MAX_SMALL: usize = 1 << 20;

/// A recipient of a new envelope: an SM2 encryption certificate.
#[derive(Clone, Debug)]
pub struct Recipient {
    issuer: Name,
    serial: SerialNumber,
    key: PublicKey,
    /// The certificate subject, RFC 4514.
    pub subject: String,
}

impl Recipient {
    /// A recipient from a certificate (PEM or DER), checked now: an SM2 key, inside its
    /// validity period, and a keyUsage (when present) that allows encryption.
    pub fn from_cert(bytes: &[u8]) -> Result<Self> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::from_cert_at(bytes, now)
    }

    /// [`Recipient::from_cert`] at the given Unix time.
    pub fn from_cert_at(bytes: &[u8], now: u64) -> Result<Self> {
        let der = crate::cert::parse(bytes)?;
        let s = crate::cert::summarize(&der)?;
        let key = crate::cert::public_key(&der)?;
        if key.alg() != KeyAlg::Sm2 {
            return Err(Error::KeyType(format!(
                "certificate of {} has a {} key; SM2 envelopes need an SM2 encryption certificate",
                s.subject,
                crate::cert::key_alg_name(key.alg())
            )));
        }
        if now < s.not_before_unix {
            return Err(Error::invalid_data(format!(
                "certificate of {} (serial {}) is not valid before {}",
                s.subject, s.serial, s.not_before
            )));
        }
        if now > s.not_after_unix {
            return Err(Error::invalid_data(format!(
                "certificate of {} (serial {}) expired on {}",
                s.subject, s.serial, s.not_after
            )));
        }
        let enc_ok = s.key_usage.is_empty()
            || s.key_usage
                .iter()
                .any(|u| matches!(*u, "keyEncipherment" | "dataEncipherment" | "keyAgreement"));
        if !enc_ok {
            return Err(Error::KeyUsage(format!(
                "certificate of {} (serial {}) is not for encryption (keyUsage: {})",
                s.subject,
                s.serial,
                s.key_usage.join(", ")
            )));
        }
        let cert = Certificate::from_der(&der)?;
        let tbs = cert.tbs_certificate();
        Ok(Self {
            issuer: tbs.issuer().clone(),
            serial: SerialNumber::new(tbs.serial_number().as_bytes())?,
            key,
            subject: s.subject,
        })
    }
}

fn oid_der(oid: ObjectIdentifier) -> Result<Vec<u8>> {
    Ok(oid.to_der()?)
}

fn add(a: u64, b: u64) -> Result<u64> {
    a.checked_add(b)
        .ok_or_else(|| Error::invalid_arg("input too large for an envelope"))
}

/// Length of the envelope [`encrypt`] writes for `input_len` bytes of content and
/// these recipients' wrapped keys: everything but the content is a few hundred bytes a
/// recipient.
fn ciphertext_len(input_len: u64) -> Result<u64> {
    (input_len / 16)
        .checked_add(1)
        .and_then(|b| b.checked_mul(16))
        .ok_or_else(|| Error::invalid_arg("input too large for an envelope"))
}

/// Encrypts `input_len` bytes read from `input` into a GM/T 0010 EnvelopedData written
/// to `out` (DER, one definite-length encrypted content). `progress` is called with
/// (content bytes done, total). The input must yield exactly `input_len` bytes.
/// Returns the bytes written.
pub fn encrypt<R: Read, W: Write>(
    recipients: &[Recipient],
    mut input: R,
    input_len: u64,
    mut out: W,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<u64> {
    if recipients.is_empty() {
        return Err(Error::invalid_arg(
            "an envelope needs at least one recipient",
        ));
    }
    let key = Zeroizing::new(rng::random_bytes(16)?);
    let iv = rng::random_bytes(16)?;

    let mut infos = Vec::with_capacity(recipients.len());
    for r in recipients {
        let raw = r.key.encrypt(&EncMech::Sm2, &key)?;
        infos.push(RecipientInfo::Ktri(KeyTransRecipientInfo {
            version: CmsVersion::V1,
            rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: r.issuer.clone(),
                serial_number: r.serial.clone(),
            }),
            key_enc_alg: AlgorithmIdentifierOwned {
                oid: OID_SM2_ENCRYPT,
                parameters: None,
            },
            enc_key: OctetString::new(sm2::cipher_raw_to_der(&raw)?)?,
        }));
    }
    let ris_der = RecipientInfos::try_from(infos)?.to_der()?;
    let alg_der = AlgorithmIdentifierOwned {
        oid: OID_SM4_CBC,
        parameters: Some(Any::encode_from(&OctetString::new(iv.clone())?)?),
    }
    .to_der()?;
    let inner_oid = oid_der(OID_GM_DATA)?;
    let outer_oid = oid_der(OID_GM_ENVELOPED_DATA)?;
    let version = [0x02u8, 0x01, 0x01];

    let ct_len = ciphertext_len(input_len)?;
    let content_hdr = header_bytes(0x80, ct_len);
    let eci_len = add(
        (inner_oid.len() + alg_der.len() + content_hdr.len()) as u64,
        ct_len,
    )?;
    let eci_hdr = header_bytes(SEQUENCE, eci_len);
    let ed_len = add(
        (version.len() + ris_der.len() + eci_hdr.len()) as u64,
        eci_len,
    )?;
    let ed_hdr = header_bytes(SEQUENCE, ed_len);
    let explicit_len = add(ed_hdr.len() as u64, ed_len)?;
    let explicit_hdr = header_bytes(0xA0, explicit_len);
    let ci_len = add((outer_oid.len() + explicit_hdr.len()) as u64, explicit_len)?;
    let ci_hdr = header_bytes(SEQUENCE, ci_len);
    let total = add(ci_hdr.len() as u64, ci_len)?;

    let w = |out: &mut W, b: &[u8]| out.write_all(b).map_err(write_err);
    for part in [
        &ci_hdr[..],
        &outer_oid,
        &explicit_hdr,
        &ed_hdr,
        &version,
        &ris_der,
        &eci_hdr,
        &inner_oid,
        &alg_der,
        &content_hdr,
    ] {
        w(&mut out, part)?;
    }

    let mut cipher = SymCipher::new(SymAlg::Sm4, SymMode::CbcPad, Direction::Encrypt, &key, &iv)?;
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut enc = Vec::with_capacity(CHUNK + 32);
    let mut done: u64 = 0;
    let mut written: u64 = 0;
    progress(0, Some(input_len));
    loop {
        let n = read_some(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        done += n as u64;
        if done > input_len {
            return Err(Error::invalid_data(format!(
                "the input grew while it was being encrypted (expected {input_len} bytes)"
            )));
        }
        enc.clear();
        cipher.update(&buf[..n], &mut enc)?;
        w(&mut out, &enc)?;
        written += enc.len() as u64;
        progress(done, Some(input_len));
    }
    if done != input_len {
        return Err(Error::invalid_data(format!(
            "the input ended after {done} of {input_len} bytes"
        )));
    }
    enc.clear();
    cipher.finalize(&mut enc)?;
    w(&mut out, &enc)?;
    written += enc.len() as u64;
    if written != ct_len {
        return Err(Error::internal(format!(
            "wrote {written} bytes of ciphertext, announced {ct_len}"
        )));
    }
    out.flush().map_err(write_err)?;
    Ok(total)
}

fn read_some<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::invalid_data(format!("reading the input: {e}"))),
        }
    }
    Ok(filled)
}

fn write_err(e: std::io::Error) -> Error {
    Error::invalid_data(format!("writing the output: {e}"))
}

/// How a RecipientInfo names its recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientId {
    /// The issuer and serial number of the recipient's certificate.
    IssuerSerial {
        /// Issuer name.
        issuer: Name,
        /// Serial number.
        serial: SerialNumber,
    },
    /// The subject key identifier of the recipient's certificate or key.
    SubjectKeyId(Vec<u8>),
}

impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IssuerSerial { issuer, serial } => {
                write!(
                    f,
                    "issuer {issuer}, serial {}",
                    serial_hex(serial.as_bytes())
                )
            }
            Self::SubjectKeyId(id) => write!(f, "subject key id {}", hex::encode_upper(id)),
        }
    }
}

fn serial_hex(bytes: &[u8]) -> String {
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    hex::encode_upper(&bytes[skip.min(bytes.len().saturating_sub(1))..])
}

/// One key-transport recipient of an envelope.
#[derive(Clone, Debug)]
pub struct RecipientEntry {
    /// Who it is for.
    pub id: RecipientId,
    /// The key transport algorithm.
    pub key_enc_alg: ObjectIdentifier,
    /// The encrypted content key as found (for SM2: GM/T 0009 DER).
    pub encrypted_key: Vec<u8>,
}

impl RecipientEntry {
    /// Whether the key transport is SM2 encryption (any of the OIDs in use).
    pub fn is_sm2(&self) -> bool {
        [OID_SM2_ENCRYPT, OID_SM2_ENCRYPT_GMSSL, OID_SM2].contains(&self.key_enc_alg)
    }
}

/// What an envelope says before its content.
#[derive(Clone, Debug)]
pub struct EnvelopeInfo {
    /// The content type of the encrypted content (data, or signedData for a
    /// signed-then-enveloped bid).
    pub content_type: ObjectIdentifier,
    /// The key-transport recipients, in order.
    pub recipients: Vec<RecipientEntry>,
    /// Recipients of other kinds (key agreement, KEK, password), which ukey cannot open.
    pub other_recipients: usize,
    /// Certificates carried in originatorInfo (DER).
    pub originator_certs: Vec<Vec<u8>>,
}

impl EnvelopeInfo {
    /// The recipients, for an error message.
    pub fn describe_recipients(&self) -> String {
        let mut v: Vec<String> = self.recipients.iter().map(|r| r.id.to_string()).collect();
        if self.other_recipients > 0 {
            v.push(format!(
                "{} recipient(s) not using key transport",
                self.other_recipients
            ));
        }
        v.join("; ")
    }
}

/// Unwraps the content key of an envelope: finds a key for one of its recipients and
/// decrypts that recipient's encrypted key (inside a token).
pub trait KeyUnwrap {
    /// The 16-byte content key, and which key opened it.
    fn unwrap_key(&mut self, env: &EnvelopeInfo) -> Result<(Zeroizing<Vec<u8>>, KeyMatch)>;
}

/// The outcome of [`decrypt`].
#[derive(Clone, Debug)]
pub struct Decrypted {
    /// The content type of the plaintext (GM or RFC 5652 data or signedData).
    pub content_type: ObjectIdentifier,
    /// Plaintext bytes written.
    pub bytes: u64,
    /// The key that opened it.
    pub opened_by: KeyMatch,
    /// Number of recipients of the envelope.
    pub recipients: usize,
    /// The plaintext begins like a DER CMS SignedData (GM or RFC 5652 OID): a bid signed,
    /// then enveloped.
    pub plaintext_is_signed_data: bool,
}

impl Decrypted {
    /// Whether the plaintext is a SignedData (a signed-then-enveloped bid), which should
    /// be verified: only its signature protects the content against tampering.
    pub fn is_signed_data(&self) -> bool {
        self.content_type == OID_GM_SIGNED_DATA
            || self.content_type == OID_SIGNED_DATA
            || self.plaintext_is_signed_data
    }
}

/// Decrypts an envelope (PEM or DER/BER) from `input`, writing the plaintext to `out`.
/// `progress` is called with (content bytes done, total when known). On error some
/// plaintext may already have been written: write to a temporary file
/// ([`write_file_atomically`]).
pub fn decrypt<R: BufRead, W: Write>(
    mut input: R,
    out: W,
    unwrap: &mut dyn KeyUnwrap,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Decrypted> {
    let first = loop {
        match input.fill_buf() {
            Ok(b) => break b.first().copied(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::invalid_data(format!("reading the envelope: {e}"))),
        }
    };
    match first {
        None => Err(Error::invalid_data("the envelope is empty")),
        Some(0x30) => decrypt_ber(BerReader::new(input), out, unwrap, progress),
        Some(_) => {
            let (label, pem) = pem::PemReader::new(input)
                .map_err(|e| Error::invalid_data(format!("not an envelope: {e}")))?;
            if !matches!(label.as_str(), "CMS" | "PKCS7" | "PKCS #7 SIGNED DATA") {
                return Err(Error::invalid_data(format!(
                    "PEM block is {label:?}, not CMS"
                )));
            }
            let r = BufReader::with_capacity(CHUNK, PemIo(pem));
            decrypt_ber(BerReader::new(r), out, unwrap, progress)
        }
    }
}

/// The PEM reader with its errors marked as envelope errors.
struct PemIo<R>(pem::PemReader<R>);

impl<R: BufRead> Read for PemIo<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

fn read_oid<R: BufRead>(r: &mut BerReader<R>, what: &str) -> Result<ObjectIdentifier> {
    let tlv = r.tlv(ber::OID, 64, what)?;
    ObjectIdentifier::from_der(&tlv)
        .map_err(|e| Error::invalid_data(format!("{what}: bad OID: {e}")))
}

fn decrypt_ber<R: BufRead, W: Write>(
    mut r: BerReader<R>,
    mut out: W,
    unwrap: &mut dyn KeyUnwrap,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Decrypted> {
    // ContentInfo
    let ci = r.open(SEQUENCE, "ContentInfo")?;
    let ct = read_oid(&mut r, "ContentInfo contentType")?;
    if ct != OID_GM_ENVELOPED_DATA && ct != OID_ENVELOPED_DATA {
        return Err(Error::invalid_data(format!(
            "not an EnvelopedData: the content type is {ct} (expected {OID_GM_ENVELOPED_DATA} or {OID_ENVELOPED_DATA})"
        )));
    }
    let explicit = r.open(0xA0, "ContentInfo content [0]")?;
    let ed = r.open(SEQUENCE, "EnvelopedData")?;
    let version = r.tlv(ber::INTEGER, 8, "EnvelopedData version")?;
    if version.len() != 3 || version[2] > 4 {
        return Err(Error::invalid_data("EnvelopedData: unknown version"));
    }
    let mut originator_certs = Vec::new();
    if r.peek_tag()? == Some(0xA0) {
        let tlv = r.tlv(0xA0, MAX_SMALL, "originatorInfo")?;
        originator_certs = originator_certificates(&tlv);
    }
    let ris_der = r.tlv(SET, MAX_SMALL, "RecipientInfos")?;
    let ris = RecipientInfos::from_der(&ris_der)
        .map_err(|e| Error::invalid_data(format!("RecipientInfos: {e}")))?;
    let mut recipients = Vec::new();
    let mut other = 0;
    for ri in ris.0.iter() {
        match ri {
            RecipientInfo::Ktri(k) => recipients.push(RecipientEntry {
                id: match &k.rid {
                    RecipientIdentifier::IssuerAndSerialNumber(is) => RecipientId::IssuerSerial {
                        issuer: is.issuer.clone(),
                        serial: is.serial_number.clone(),
                    },
                    RecipientIdentifier::SubjectKeyIdentifier(ski) => {
                        RecipientId::SubjectKeyId(ski.0.as_bytes().to_vec())
                    }
                },
                key_enc_alg: k.key_enc_alg.oid,
                encrypted_key: k.enc_key.as_bytes().to_vec(),
            }),
            _ => other += 1,
        }
    }

    // EncryptedContentInfo
    let eci = r.open(SEQUENCE, "EncryptedContentInfo")?;
    let content_type = read_oid(&mut r, "EncryptedContentInfo contentType")?;
    if ![OID_GM_DATA, OID_DATA, OID_GM_SIGNED_DATA, OID_SIGNED_DATA].contains(&content_type) {
        return Err(Error::invalid_data(format!(
            "the encrypted content type {content_type} is not data or signedData"
        )));
    }
    let alg_der = r.tlv(SEQUENCE, 4096, "contentEncryptionAlgorithm")?;
    let alg = AlgorithmIdentifierOwned::from_der(&alg_der)
        .map_err(|e| Error::invalid_data(format!("contentEncryptionAlgorithm: {e}")))?;
    if alg.oid != OID_SM4_CBC {
        return Err(Error::unsupported(format!(
            "content encryption {} (only SM4-CBC, {OID_SM4_CBC})",
            alg.oid
        )));
    }
    let iv = alg
        .parameters
        .as_ref()
        .and_then(|p| p.to_der().ok())
        .and_then(|d| OctetString::from_der(&d).ok())
        .map(|o| o.as_bytes().to_vec())
        .filter(|iv| iv.len() == 16)
        .ok_or_else(|| Error::invalid_data("SM4-CBC parameters are not a 16-byte IV"))?;
    if r.at_end(&eci)? {
        return Err(Error::unsupported(
            "the envelope has no encrypted content (detached content is not supported)",
        ));
    }
    let content = r.header()?;
    let total = match (content.tag, content.len) {
        (0x80, Some(l)) => {
            if l == 0 || !l.is_multiple_of(16) {
                return Err(Error::invalid_data(format!(
                    "envelope damaged: the encrypted content is {l} bytes, not a positive multiple of 16"
                )));
            }
            Some(l)
        }
        (0xA0, _) => None,
        (t, _) => {
            return Err(Error::invalid_data(format!(
                "not a valid EnvelopedData: the encrypted content has tag {t:#04x}"
            )));
        }
    };

    let env = EnvelopeInfo {
        content_type,
        recipients,
        other_recipients: other,
        originator_certs,
    };
    let (key, opened_by) = unwrap.unwrap_key(&env)?;
    if key.len() != 16 {
        return Err(Error::DecryptFailed);
    }
    let mut cipher = SymCipher::new(SymAlg::Sm4, SymMode::CbcPad, Direction::Decrypt, &key, &iv)?;
    drop(key);

    let mut st = Stream {
        head: Zeroizing::new(Vec::with_capacity(HEAD)),
        buf: Zeroizing::new(vec![0u8; CHUNK]),
        plain: Zeroizing::new(Vec::with_capacity(CHUNK + 16)),
        done: 0,
        written: 0,
        total,
    };
    progress(0, total);
    match content.len {
        Some(l) if content.tag == 0x80 => {
            st.copy(&mut r, l, &mut cipher, &mut out, progress)?;
        }
        _ => {
            let f = r.enter(content)?;
            st.segments(&mut r, f, 0, &mut cipher, &mut out, progress)?;
        }
    }
    if st.done == 0 || !st.done.is_multiple_of(16) {
        return Err(Error::invalid_data(format!(
            "envelope damaged: the encrypted content is {} bytes, not a positive multiple of 16",
            st.done
        )));
    }
    st.plain.clear();
    let finished = cipher.finalize(&mut st.plain).map_err(|_| {
        Error::invalid_data(
            "the decrypted content ends with wrong padding: the envelope was truncated or altered",
        )
    });
    finished?;
    st.keep_head();
    out.write_all(&st.plain).map_err(write_err)?;
    st.written += st.plain.len() as u64;

    r.close(eci, "EncryptedContentInfo")?;
    if r.peek_tag()? == Some(0xA1) {
        r.skip_element()?;
    }
    r.close(ed, "EnvelopedData")?;
    r.close(explicit, "ContentInfo content")?;
    r.close(ci, "ContentInfo")?;
    if !r.at_eof()? {
        return Err(Error::invalid_data(format!(
            "trailing data after the envelope (at byte {})",
            r.pos()
        )));
    }
    out.flush().map_err(write_err)?;
    Ok(Decrypted {
        content_type,
        bytes: st.written,
        opened_by,
        recipients: env.recipients.len() + env.other_recipients,
        plaintext_is_signed_data: starts_like_signed_data(&st.head),
    })
}

/// Whether bytes begin with a DER ContentInfo whose content type is signedData.
fn starts_like_signed_data(b: &[u8]) -> bool {
    if b.first() != Some(&SEQUENCE) {
        return false;
    }
    let skip = match b.get(1) {
        Some(l) if *l < 0x80 => 2,
        Some(l) if (0x81..=0x84).contains(l) => 2 + usize::from(l & 0x7F),
        Some(0x80) => 2,
        _ => return false,
    };
    let Some(rest) = b.get(skip..) else {
        return false;
    };
    [OID_GM_SIGNED_DATA, OID_SIGNED_DATA].iter().any(|oid| {
        let v = oid.as_bytes();
        rest.len() >= 2 + v.len()
            && rest[0] == ber::OID
            && usize::from(rest[1]) == v.len()
            && &rest[2..2 + v.len()] == v
    })
}

/// Plaintext bytes kept to recognise a signed-then-enveloped bid.
const HEAD: usize = 32;

struct Stream {
    /// The first plaintext bytes.
    head: Zeroizing<Vec<u8>>,
    buf: Zeroizing<Vec<u8>>,
    plain: Zeroizing<Vec<u8>>,
    done: u64,
    written: u64,
    total: Option<u64>,
}

impl Stream {
    fn copy<R: BufRead, W: Write>(
        &mut self,
        r: &mut BerReader<R>,
        mut len: u64,
        cipher: &mut SymCipher,
        out: &mut W,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<()> {
        while len > 0 {
            let n = len.min(CHUNK as u64) as usize;
            r.read_exact(&mut self.buf[..n])?;
            self.plain.clear();
            cipher.update(&self.buf[..n], &mut self.plain)?;
            self.keep_head();
            out.write_all(&self.plain).map_err(write_err)?;
            self.written += self.plain.len() as u64;
            self.done += n as u64;
            len -= n as u64;
            progress(self.done, self.total);
        }
        Ok(())
    }

    fn keep_head(&mut self) {
        let want = HEAD.saturating_sub(self.head.len()).min(self.plain.len());
        self.head.extend_from_slice(&self.plain[..want]);
    }

    fn segments<R: BufRead, W: Write>(
        &mut self,
        r: &mut BerReader<R>,
        f: Frame,
        depth: u32,
        cipher: &mut SymCipher,
        out: &mut W,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<()> {
        if depth > 8 {
            return Err(Error::invalid_data(
                "envelope damaged: encrypted content nested too deeply",
            ));
        }
        while !r.at_end(&f)? {
            let h = r.header()?;
            match (h.tag, h.len) {
                (OCTET_STRING, Some(l)) => self.copy(r, l, cipher, out, progress)?,
                (OCTET_STRING_CONS, _) => {
                    let inner = r.enter(h)?;
                    self.segments(r, inner, depth + 1, cipher, out, progress)?;
                }
                (t, _) => {
                    return Err(Error::invalid_data(format!(
                        "envelope damaged: a segment of the encrypted content has tag {t:#04x}"
                    )));
                }
            }
        }
        r.ended(f, "encrypted content")
    }
}

/// The certificates of an originatorInfo `[0]` element; anything unreadable is ignored
/// (they only help find a recipient by its public key).
fn originator_certificates(tlv: &[u8]) -> Vec<Vec<u8>> {
    // `[0] IMPLICIT OriginatorInfo`: with the SEQUENCE tag back it decodes as one.
    let mut seq = tlv.to_vec();
    seq[0] = SEQUENCE;
    let Ok(info) = OriginatorInfo::from_der(&seq) else {
        return Vec::new();
    };
    info.certs
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => c.to_der().ok(),
                    CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes a file through a temporary file in the same directory, renamed over `path`
/// only when `f` succeeds: a failure leaves no partial output (and an existing file at
/// `path` untouched). With `private`, the file is created owner-only (0600 on Unix).
pub fn write_file_atomically<T>(
    path: &Path,
    private: bool,
    f: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    let io = |p: &Path, e: std::io::Error| Error::Io {
        path: p.to_path_buf(),
        detail: e.to_string(),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid_arg(format!("{}: not a file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}-{}.part",
        name.to_string_lossy(),
        std::process::id(),
        hex::encode(rng::random_bytes(6)?)
    ));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let file = opts.open(&tmp).map_err(|e| io(&tmp, e))?;
    let guard = TempGuard(Some(tmp.clone()));
    let mut w = BufWriter::with_capacity(CHUNK, file);
    let v = f(&mut w)?;
    let file: File = w.into_inner().map_err(|e| io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    guard.disarm();
    Ok(v)
}

/// Removes the temporary file unless disarmed (also on panic).
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Encrypts a file to a file (atomically). Returns the envelope size.
pub fn encrypt_file(
    recipients: &[Recipient],
    input: &Path,
    output: &Path,
    pem: bool,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<u64> {
    let io = |p: &Path, e: std::io::Error| Error::Io {
        path: p.to_path_buf(),
        detail: e.to_string(),
    };
    let file = File::open(input).map_err(|e| io(input, e))?;
    let len = file.metadata().map_err(|e| io(input, e))?.len();
    let reader = BufReader::with_capacity(CHUNK, file).take(len);
    encrypt_reader(recipients, reader, len, output, pem, progress)
}

/// Encrypts `len` bytes of a reader to a file (atomically), DER or PEM (`CMS` label).
pub fn encrypt_reader<R: Read>(
    recipients: &[Recipient],
    reader: R,
    len: u64,
    output: &Path,
    pem: bool,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<u64> {
    write_file_atomically(output, false, |w| {
        if pem {
            let mut p = pem::PemWriter::new(w, "CMS").map_err(write_err)?;
            let n = encrypt(recipients, reader, len, &mut p, progress)?;
            p.finish().map_err(write_err)?;
            Ok(n)
        } else {
            encrypt(recipients, reader, len, w, progress)
        }
    })
}

/// Decrypts an envelope file (PEM or DER) to a file (atomically, owner-only).
pub fn decrypt_file(
    input: &Path,
    output: &Path,
    unwrap: &mut dyn KeyUnwrap,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Decrypted> {
    let file = File::open(input).map_err(|e| Error::Io {
        path: input.to_path_buf(),
        detail: e.to_string(),
    })?;
    let reader = BufReader::with_capacity(CHUNK, file);
    write_file_atomically(output, true, |w| decrypt(reader, w, unwrap, progress))
}

/// The issuer and serial of a certificate, as a recipient id.
pub fn recipient_id_of_cert(der: &[u8]) -> Result<RecipientId> {
    let cert = Certificate::from_der(der)?;
    let tbs = cert.tbs_certificate();
    Ok(RecipientId::IssuerSerial {
        issuer: tbs.issuer().clone(),
        serial: SerialNumber::new(tbs.serial_number().as_bytes())?,
    })
}

#[cfg(test)]
mod tests;
