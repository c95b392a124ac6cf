//! X.509 certificates: reading, summaries for `cert show`, self-signed certificates for new keys.
//!
//! - [`parse`] takes a certificate file's bytes (PEM or DER) and returns the DER after checking
//!   that it is an X.509 certificate.
//! - [`summarize`] gives what CA clients show: subject, issuer, serial, sign or encrypt usage,
//!   public-key algorithm, validity and the SHA-1, SHA-256 and SM3 thumbprints of the DER.
//! - [`self_signed`] builds a self-signed certificate for a key that lives in a token: the
//!   to-be-signed bytes are handed to a closure (usually [`Application::sign`]), so the private
//!   key never leaves the token. [`self_signed_in_container`] does exactly that for a container
//!   slot.
//!
//! Signature algorithms: SM2-with-SM3 (1.2.156.10197.1.501, signer ID `1234567812345678`) for
//! SM2 keys, ecdsa-with-SHA256/SHA384 for P-256/P-384 and sha256WithRSAEncryption for RSA.

use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, OctetString, Utf8StringRef};
use der::{Decode, Encode, Sequence};
use serde::Serialize;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage as KeyUsageExt, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::name::{Name, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::crypto::hash::{HashAlg, digest};
use crate::crypto::sm2::DEFAULT_ID;
use crate::crypto::{KeyAlg, PublicKey, SignMech};
use crate::error::{Error, Result};
use crate::model::{KeyRef, KeyUsage};
use crate::token::Application;

/// OID of SM2-with-SM3 signatures (GM/T 0006).
pub const OID_SM2_WITH_SM3: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.501");
/// OID of ecdsa-with-SHA256.
pub const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// OID of ecdsa-with-SHA384.
pub const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// OID of sha256WithRSAEncryption.
pub const OID_SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const OID_OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");

/// Reads a certificate given as PEM (`CERTIFICATE`) or DER and returns its DER, after
/// checking that it parses as an X.509 certificate. Errors are [`Error::InvalidData`].
pub fn parse(bytes: &[u8]) -> Result<Vec<u8>> {
    let trimmed = trim_ascii_start(bytes);
    if trimmed.starts_with(b"-----BEGIN") {
        // The certificate's own bytes, not a re-encoding: a re-encoding would drop
        // anything the parser tolerates but DER forbids (an explicit default version, say),
        // and the signature covers the bytes as issued.
        let (label, der) = pem_rfc7468::decode_vec(trimmed)
            .map_err(|e| Error::invalid_data(format!("not a PEM X.509 certificate: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(Error::invalid_data(format!(
                "not a PEM X.509 certificate: the PEM holds a {label}"
            )));
        }
        Certificate::from_der(&der)
            .map_err(|e| Error::invalid_data(format!("not an X.509 certificate: {e}")))?;
        Ok(der)
    } else {
        Certificate::from_der(bytes)
            .map_err(|e| Error::invalid_data(format!("not an X.509 certificate: {e}")))?;
        Ok(bytes.to_vec())
    }
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// PEM `CERTIFICATE` text of a DER certificate (64-column base64, LF line endings).
pub fn to_pem(der: &[u8]) -> Result<String> {
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der)
        .map_err(|e| Error::internal(format!("PEM encoding: {e}")))
}

/// A thumbprint as `openssl x509 -fingerprint` prints it: colon-separated upper-case hex.
pub fn fingerprint(alg: HashAlg, der: &[u8]) -> String {
    colon_hex(&digest(alg, der))
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What CA clients show about a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// Subject, RFC 4514 string.
    pub subject: String,
    /// Issuer, RFC 4514 string.
    pub issuer: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// Signing or encryption certificate, from keyUsage; `None` when keyUsage is absent or
    /// names both.
    pub usage: Option<KeyUsage>,
    /// The keyUsage bits that are set, by their RFC 5280 names.
    pub key_usage: Vec<&'static str>,
    /// Public-key algorithm, such as `SM2`, `EC P-256` or `RSA 2048`.
    pub public_key_alg: String,
    /// The public-key algorithm as parsed, when token-hal supports it.
    #[serde(skip)]
    pub public_key: Option<KeyAlg>,
    /// Signature algorithm, by name when known, else its OID.
    pub signature_alg: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before_unix: u64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after_unix: u64,
    /// Subject equals issuer.
    pub self_issued: bool,
    /// SHA-1 thumbprint of the DER.
    pub sha1: String,
    /// SHA-256 thumbprint of the DER.
    pub sha256: String,
    /// SM3 thumbprint of the DER.
    pub sm3: String,
}

/// Human name of a key algorithm: `SM2`, `EC P-256`, `EC P-384`, `RSA 2048`.
pub fn key_alg_name(alg: KeyAlg) -> String {
    match alg {
        KeyAlg::Sm2 => "SM2".into(),
        KeyAlg::EcP256 => "EC P-256".into(),
        KeyAlg::EcP384 => "EC P-384".into(),
        KeyAlg::EcP521 => "EC P-521".into(),
        KeyAlg::Ed25519 => "Ed25519".into(),
        KeyAlg::Ed448 => "Ed448".into(),
        KeyAlg::X25519 => "X25519".into(),
        KeyAlg::Rsa(bits) => format!("RSA {bits}"),
    }
}

fn signature_alg_name(oid: &ObjectIdentifier) -> String {
    let known: &[(&str, &str)] = &[
        ("1.2.156.10197.1.501", "SM2-with-SM3"),
        ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
        ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
        ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
        ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
        ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
        ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
        ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
        ("1.2.840.113549.1.1.10", "RSASSA-PSS"),
        ("1.3.101.112", "Ed25519"),
    ];
    let s = oid.to_string();
    known
        .iter()
        .find(|(o, _)| *o == s)
        .map_or(s.clone(), |(_, n)| (*n).to_owned())
}

fn spki_alg_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.10045.2.1" => "EC".into(),
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.2.156.10197.1.301" => "SM2".into(),
        "1.3.101.112" => "Ed25519".into(),
        other => other.to_owned(),
    }
}

/// Summarises a DER certificate for `cert show`.
pub fn summarize(der: &[u8]) -> Result<CertSummary> {
    let cert = Certificate::from_der(der)
        .map_err(|e| Error::invalid_data(format!("not an X.509 certificate: {e}")))?;
    let tbs = cert.tbs_certificate();
    let (usage, key_usage) = match tbs.get_extension::<KeyUsageExt>() {
        Ok(Some((_, ku))) => usage_of(&ku),
        Ok(None) => (None, Vec::new()),
        Err(e) => return Err(Error::invalid_data(format!("bad keyUsage extension: {e}"))),
    };
    let spki = tbs.subject_public_key_info();
    let spki_der = spki.to_der()?;
    let public_key = PublicKey::from_spki_der(&spki_der).ok().map(|k| k.alg());
    let public_key_alg = match public_key {
        Some(a) => key_alg_name(a),
        None => spki_alg_name(&spki.algorithm.oid),
    };
    let validity = tbs.validity();
    Ok(CertSummary {
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        serial: serial_hex(tbs.serial_number().as_bytes()),
        usage,
        key_usage,
        public_key_alg,
        public_key,
        signature_alg: signature_alg_name(&cert.signature_algorithm().oid),
        not_before: validity.not_before.to_string(),
        not_after: validity.not_after.to_string(),
        not_before_unix: validity.not_before.to_unix_duration().as_secs(),
        not_after_unix: validity.not_after.to_unix_duration().as_secs(),
        self_issued: tbs.subject() == tbs.issuer(),
        sha1: fingerprint(HashAlg::Sha1, der),
        sha256: fingerprint(HashAlg::Sha256, der),
        sm3: fingerprint(HashAlg::Sm3, der),
    })
}

/// Upper-case hex of a serial number's magnitude, as OpenSSL prints it (no sign byte).
fn serial_hex(bytes: &[u8]) -> String {
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let digits = &bytes[skip.min(bytes.len().saturating_sub(1))..];
    hex::encode_upper(digits)
}

fn usage_of(ku: &KeyUsageExt) -> (Option<KeyUsage>, Vec<&'static str>) {
    let mut names = Vec::new();
    let flags: [(bool, &'static str); 9] = [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ];
    for (set, name) in flags {
        if set {
            names.push(name);
        }
    }
    let sign = ku.digital_signature() || ku.non_repudiation();
    let enc = ku.key_encipherment() || ku.data_encipherment() || ku.key_agreement();
    let usage = match (sign, enc) {
        (true, false) => Some(KeyUsage::Sign),
        (false, true) => Some(KeyUsage::Encrypt),
        _ => None,
    };
    (usage, names)
}

/// The subject public key of a certificate, in token-hal's terms.
pub fn public_key(der: &[u8]) -> Result<PublicKey> {
    let cert = Certificate::from_der(der)
        .map_err(|e| Error::invalid_data(format!("not an X.509 certificate: {e}")))?;
    let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
    PublicKey::from_spki_der(&spki)
}

/// What goes into a self-signed certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfSignedSpec {
    /// Subject (and issuer) common name.
    pub common_name: String,
    /// Organisational unit, if any (the CLI uses the application name).
    pub organizational_unit: Option<String>,
    /// Organisation, if any.
    pub organization: Option<String>,
    /// Which slot the key is in; selects the keyUsage bits.
    pub usage: KeyUsage,
    /// Validity in days from now (notBefore is backdated by one minute for clock skew).
    pub days: u32,
}

impl SelfSignedSpec {
    /// A spec with the defaults ukey uses: O=ukey, ten years.
    pub fn new(common_name: impl Into<String>, usage: KeyUsage) -> Self {
        Self {
            common_name: common_name.into(),
            organizational_unit: None,
            organization: Some("ukey".into()),
            usage,
            days: 3650,
        }
    }
}

/// TBSCertificate as we write it: v3, always with extensions.
#[derive(Sequence)]
struct TbsOut {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: u8,
    serial_number: SerialNumber,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    extensions: Vec<Extension>,
}

/// Certificate as we write it, with the TBS kept as its DER.
#[derive(Sequence)]
struct CertOut {
    tbs_certificate: Any,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// The signature mechanism, the AlgorithmIdentifier, and whether the token's raw r‖s must be
/// DER-encoded, for a key algorithm.
pub(crate) fn signature_scheme(alg: KeyAlg) -> Result<(SignMech, AlgorithmIdentifierOwned, bool)> {
    let none = |oid| AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    };
    Ok(match alg {
        KeyAlg::Sm2 => (
            SignMech::Sm2Sm3 {
                id: DEFAULT_ID.to_vec(),
            },
            none(OID_SM2_WITH_SM3),
            true,
        ),
        KeyAlg::EcP256 => (
            SignMech::Ecdsa(HashAlg::Sha256),
            none(OID_ECDSA_SHA256),
            true,
        ),
        KeyAlg::EcP384 => (
            SignMech::Ecdsa(HashAlg::Sha384),
            none(OID_ECDSA_SHA384),
            true,
        ),
        KeyAlg::EcP521 => (
            SignMech::Ecdsa(HashAlg::Sha512),
            none(ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4")),
            true,
        ),
        // RFC 8410: the signature is the raw RFC 8032 signature.
        KeyAlg::Ed25519 | KeyAlg::Ed448 => (
            SignMech::EdDsa {
                ph: false,
                context: None,
            },
            none(
                alg.curve_oid()
                    .ok_or_else(|| Error::internal("Edwards OID"))?,
            ),
            false,
        ),
        KeyAlg::X25519 => {
            return Err(Error::KeyType(
                "X25519 keys cannot sign certificates".into(),
            ));
        }
        KeyAlg::Rsa(_) => (
            SignMech::RsaPkcs1(HashAlg::Sha256),
            AlgorithmIdentifierOwned {
                oid: OID_SHA256_RSA,
                parameters: Some(Any::from(der::asn1::Null)),
            },
            false,
        ),
    })
}

fn name(spec: &SelfSignedSpec) -> Result<Name> {
    let mut rdns: Vec<RelativeDistinguishedName> = Vec::new();
    let mut push = |oid: ObjectIdentifier, value: &str| -> Result<()> {
        if value.is_empty() || value.len() > 64 {
            return Err(Error::invalid_arg(format!(
                "certificate name attribute must be 1..=64 bytes: {value:?}"
            )));
        }
        let value = Any::encode_from(&Utf8StringRef::new(value)?)?;
        let rdn = RelativeDistinguishedName::try_from(vec![AttributeTypeAndValue { oid, value }])?;
        rdns.push(rdn);
        Ok(())
    };
    if let Some(o) = &spec.organization {
        push(OID_O, o)?;
    }
    if let Some(ou) = &spec.organizational_unit {
        push(OID_OU, ou)?;
    }
    push(OID_CN, &spec.common_name)?;
    Ok(Name::from_der(&rdns.to_der()?)?)
}

fn extension(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn random_serial() -> Result<SerialNumber> {
    let mut bytes = crate::crypto::rng::random_bytes(16)?;
    bytes[0] &= 0x7F;
    if bytes[0] == 0 {
        bytes[0] = 0x01;
    }
    Ok(SerialNumber::new(&bytes)?)
}

/// Builds a self-signed certificate for `public`, signed through `sign`, which receives the
/// mechanism and the DER TBSCertificate and returns the signature as the token gives it
/// (EC and SM2: raw r‖s; RSA: the PKCS#1 v1.5 signature). Returns the certificate DER.
pub fn self_signed<F>(public: &PublicKey, spec: &SelfSignedSpec, sign: F) -> Result<Vec<u8>>
where
    F: FnOnce(&SignMech, &[u8]) -> Result<Vec<u8>>,
{
    let (mech, sig_alg, raw_to_der) = signature_scheme(public.alg())?;
    let spki = SubjectPublicKeyInfoOwned::from_der(public.spki_der())?;
    let subject = name(spec)?;

    let now = SystemTime::now();
    let not_before = now
        .checked_sub(Duration::from_secs(60))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let not_after = now
        .checked_add(Duration::from_secs(u64::from(spec.days) * 86_400))
        .ok_or_else(|| Error::invalid_arg("validity too long"))?;
    let validity = Validity::new(Time::try_from(not_before)?, Time::try_from(not_after)?);

    let key_id = digest(HashAlg::Sha1, spki.subject_public_key.raw_bytes());
    let ku = match spec.usage {
        KeyUsage::Sign => KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
        KeyUsage::Encrypt => {
            KeyUsages::KeyEncipherment | KeyUsages::DataEncipherment | KeyUsages::KeyAgreement
        }
    };
    let extensions = vec![
        extension(
            const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?,
        extension(
            const_oid::db::rfc5280::ID_CE_KEY_USAGE,
            true,
            &KeyUsageExt(ku),
        )?,
        extension(
            const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(OctetString::new(key_id.clone())?),
        )?,
        extension(
            const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(key_id)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
    ];

    let tbs = TbsOut {
        version: 2,
        serial_number: random_serial()?,
        signature: sig_alg.clone(),
        issuer: subject.clone(),
        validity,
        subject,
        subject_public_key_info: spki,
        extensions,
    };
    let tbs_der = tbs.to_der()?;
    let sig = sign(&mech, &tbs_der)?;
    let sig = if raw_to_der {
        crate::crypto::sig::raw_to_der(&sig)?
    } else {
        sig
    };
    let cert = CertOut {
        tbs_certificate: Any::from_der(&tbs_der)?,
        signature_algorithm: sig_alg,
        signature: BitString::from_bytes(&sig)?,
    };
    let der = cert.to_der()?;
    // What we wrote must read back as a certificate.
    Certificate::from_der(&der)
        .map_err(|e| Error::internal(format!("self-signed certificate does not parse: {e}")))?;
    Ok(der)
}

/// Makes a self-signed certificate for the active key of a container slot, signed by that
/// key inside the token (needs user login), and returns its DER. It is not stored; pass it
/// to [`Application::import_cert`].
pub fn self_signed_in_container(
    app: &dyn Application,
    container: &str,
    usage: KeyUsage,
    spec: &SelfSignedSpec,
) -> Result<Vec<u8>> {
    let public = app.public_key(container, usage)?;
    let key = KeyRef::active(container, usage);
    self_signed(&public, spec, |mech, tbs| app.sign(&key, mech, tbs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PrivateKey;

    const GM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/gm-interop/");

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{GM}{name}")).unwrap()
    }

    #[test]
    fn parses_pem_and_der() {
        let pem = read("enc.cert.v1.pem");
        let der = parse(&pem).unwrap();
        assert_eq!(parse(&der).unwrap(), der);
        let back = to_pem(&der).unwrap();
        assert_eq!(parse(back.as_bytes()).unwrap(), der);
    }

    /// A certificate the parser tolerates but that is not DER (here an explicit default
    /// version, `A0 03 02 01 00`, found by the x509_cert fuzz target) keeps its bytes
    /// through PEM too: the PEM path once returned a re-encoding, whose signature no
    /// longer matched.
    #[test]
    fn pem_keeps_the_bytes_as_issued() {
        let der = parse(&read("enc.cert.v1.pem")).unwrap();
        // Outer SEQUENCE and TBS SEQUENCE (4-byte headers each), then `[0] INTEGER 2`
        // (v3): made `[0] INTEGER 0`, v1 spelled out where DER omits the default.
        assert_eq!(der[8..13], [0xa0, 0x03, 0x02, 0x01, 0x02]);
        let mut odd = der.clone();
        odd[12] = 0;
        assert_eq!(parse(&odd).unwrap(), odd);
        let pem = to_pem(&odd).unwrap();
        assert_eq!(parse(pem.as_bytes()).unwrap(), odd);
        let key =
            pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der).unwrap();
        assert!(matches!(parse(key.as_bytes()), Err(Error::InvalidData(_))));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(parse(b"hello"), Err(Error::InvalidData(_))));
        assert!(matches!(
            parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(Error::InvalidData(_))
        ));
        let der = parse(&read("enc.cert.v1.pem")).unwrap();
        assert!(parse(&der[..der.len() - 5]).is_err());
    }

    #[test]
    fn summary_of_gm_vectors() {
        let der = parse(&read("enc.cert.v1.pem")).unwrap();
        let s = summarize(&der).unwrap();
        assert_eq!(s.serial, "6DD4179A3CFDE572B6312E03");
        let v2 = summarize(&parse(&read("enc.cert.v2-renewed.pem")).unwrap()).unwrap();
        assert_eq!(v2.serial, "D308E9F75934F44B1E58A524");
        assert_eq!(s.usage, Some(KeyUsage::Encrypt));
        assert_eq!(s.public_key_alg, "SM2");
        assert_eq!(s.signature_alg, "SM2-with-SM3");
        assert_eq!(s.sha256.len(), 32 * 3 - 1);
        assert_eq!(s.sha1.len(), 20 * 3 - 1);
        assert!(s.not_after_unix > s.not_before_unix);
        let sign = summarize(&parse(&read("sign.cert.pem")).unwrap()).unwrap();
        assert_eq!(sign.usage, Some(KeyUsage::Sign));
        assert!(sign.key_usage.contains(&"nonRepudiation"));
        assert!(sign.subject != sign.issuer);
        let ca = summarize(&parse(&read("ca.cert.pem")).unwrap()).unwrap();
        assert!(ca.self_issued);
    }

    fn self_signed_verifies(alg: KeyAlg, usage: KeyUsage) {
        let key = PrivateKey::generate(alg).unwrap();
        let public = key.public_key().unwrap();
        let spec = SelfSignedSpec::new("test, with \"odd\" chars", usage);
        let der = self_signed(&public, &spec, |mech, tbs| key.sign(mech, tbs)).unwrap();
        let s = summarize(&der).unwrap();
        assert_eq!(s.usage, Some(usage));
        assert!(s.self_issued);
        assert_eq!(s.public_key, Some(alg));
        assert_eq!(public_key(&der).unwrap(), public);
        // The signature verifies with the certificate's own key.
        let cert = Certificate::from_der(&der).unwrap();
        let tbs = cert.tbs_certificate().to_der().unwrap();
        let sig = cert.signature().raw_bytes();
        let (mech, _, is_ec) = signature_scheme(alg).unwrap();
        let sig = if is_ec {
            crate::crypto::sig::der_to_raw(sig, if alg == KeyAlg::EcP384 { 48 } else { 32 })
                .unwrap()
        } else {
            sig.to_vec()
        };
        public.verify(&mech, &tbs, &sig).unwrap();
    }

    #[test]
    fn self_signed_sm2() {
        self_signed_verifies(KeyAlg::Sm2, KeyUsage::Sign);
        self_signed_verifies(KeyAlg::Sm2, KeyUsage::Encrypt);
    }

    #[test]
    fn self_signed_ec_and_rsa() {
        self_signed_verifies(KeyAlg::EcP256, KeyUsage::Sign);
        self_signed_verifies(KeyAlg::EcP384, KeyUsage::Encrypt);
        self_signed_verifies(KeyAlg::Rsa(2048), KeyUsage::Sign);
    }

    #[test]
    fn signer_errors_propagate() {
        let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let public = key.public_key().unwrap();
        let spec = SelfSignedSpec::new("x", KeyUsage::Sign);
        let e = self_signed(&public, &spec, |_, _| Err(Error::NotLoggedIn)).unwrap_err();
        assert!(matches!(e, Error::NotLoggedIn));
        let long = SelfSignedSpec::new("x".repeat(65), KeyUsage::Sign);
        assert!(self_signed(&public, &long, |m, t| key.sign(m, t)).is_err());
    }
}
