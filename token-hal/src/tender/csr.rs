//! PKCS#10 certificate requests (RFC 2986) signed inside the token: the first step of getting
//! a certificate from a CA (new issue, reissue, rekey).
//!
//! The CertificationRequestInfo is built here and its DER handed to a signer, usually
//! [`Application::sign`] on a container's key, so the private key never leaves the token.
//! SM2 keys sign with SM2-with-SM3 (1.2.156.10197.1.501) and the GM/T 0009 default signer ID
//! `1234567812345678`; P-256/P-384 keys with ECDSA-SHA256/384; RSA keys with
//! sha256WithRSAEncryption. The request types are x509-cert's.

use std::str::FromStr;

use der::asn1::BitString;
use der::{Decode, DecodePem, Encode, EncodePem};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::cert::{OID_ECDSA_SHA256, OID_ECDSA_SHA384, OID_SHA256_RSA, OID_SM2_WITH_SM3};
use crate::crypto::hash::HashAlg;
use crate::crypto::sm2::DEFAULT_ID;
use crate::crypto::{KeyAlg, PublicKey, SignMech};
use crate::error::{Error, Result};
use crate::model::{KeyRef, KeyUsage};
use crate::token::Application;

/// Parses a subject given as an RFC 4514 string (`CN=Bidder One,O=Example Co,C=CN`; the
/// most specific attribute first, as OpenSSL prints with `-nameopt RFC2253`). Attribute
/// values are UTF-8 strings (C as PrintableString), so Chinese names work. An empty or
/// unparsable subject is an error.
pub fn parse_subject(subject: &str) -> Result<Name> {
    let s = trim_unescaped(subject);
    if s.is_empty() {
        return Err(Error::invalid_arg("the subject is empty"));
    }
    let bad = |why: String| {
        Error::invalid_arg(format!(
            "subject {subject:?} is not an RFC 4514 name like \"CN=Name,O=Org,C=CN\": {why}"
        ))
    };
    if s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1 {
        return Err(bad("it ends with a lone backslash".into()));
    }
    let name = Name::from_str(s).map_err(|e| bad(e.to_string()))?;
    if name.is_empty() {
        return Err(Error::invalid_arg("the subject is empty"));
    }
    // What we accept must print to a string that reads back as the same name, since the
    // printed form is what a request, a log line and the CLI show.
    let printed = name.to_string();
    if trim_unescaped(&printed) != printed || Name::from_str(&printed).ok().as_ref() != Some(&name)
    {
        return Err(bad("its escapes do not survive printing".into()));
    }
    Ok(name)
}

/// `subject` without leading ASCII whitespace, nor trailing ASCII whitespace that is not
/// escaped: in `CN=a\ ` the space belongs to the value. Other Unicode spaces (U+0085,
/// U+3000) are part of a value, as RFC 4514 printers leave them unescaped.
fn trim_unescaped(subject: &str) -> &str {
    let s = subject.trim_ascii_start();
    let t = s.trim_ascii_end();
    let escapes = t.bytes().rev().take_while(|&b| b == b'\\').count();
    match s[t.len()..].chars().next() {
        Some(c) if escapes % 2 == 1 => &s[..t.len() + c.len_utf8()],
        _ => t,
    }
}

/// Builds a request for `public` with `subject`, signed through `sign`, which receives the
/// mechanism and the DER CertificationRequestInfo and returns the signature as the token gives
/// it (EC and SM2: raw r‖s; RSA: the PKCS#1 v1.5 signature). Returns the request DER.
pub fn build<F>(public: &PublicKey, subject: &Name, sign: F) -> Result<Vec<u8>>
where
    F: FnOnce(&SignMech, &[u8]) -> Result<Vec<u8>>,
{
    let (mech, algorithm, raw_to_der) = crate::cert::signature_scheme(public.alg())?;
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key: SubjectPublicKeyInfoOwned::from_der(public.spki_der())?,
        attributes: Default::default(),
    };
    let info_der = info.to_der()?;
    let sig = sign(&mech, &info_der)?;
    let sig = if raw_to_der {
        crate::crypto::sig::raw_to_der(&sig)?
    } else {
        sig
    };
    let req = CertReq {
        info,
        algorithm,
        signature: BitString::from_bytes(&sig)?,
    };
    let der = req.to_der()?;
    // What we wrote must check out with its own key.
    verify(&der).map_err(|e| Error::internal(format!("the new request does not verify: {e}")))?;
    Ok(der)
}

/// Builds a request for the active key of a container slot, signed by that key inside the
/// token (needs user login). Returns the request DER.
pub fn in_container(
    app: &dyn Application,
    container: &str,
    usage: KeyUsage,
    subject: &Name,
) -> Result<Vec<u8>> {
    let public = app.public_key(container, usage)?;
    let key = KeyRef::active(container, usage);
    build(&public, subject, |mech, tbs| app.sign(&key, mech, tbs))
}

/// PEM (`CERTIFICATE REQUEST`) of a request DER.
pub fn to_pem(der: &[u8]) -> Result<String> {
    let req = CertReq::from_der(der)?;
    req.to_pem(der::pem::LineEnding::LF)
        .map_err(|e| Error::invalid_data(format!("PEM: {e}")))
}

/// What a parsed request says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrSummary {
    /// The subject, RFC 4514.
    pub subject: String,
    /// The public key.
    pub public_key: PublicKey,
    /// The signature algorithm's name.
    pub signature_alg: &'static str,
}

/// Reads a request (PEM or DER), checks its signature with its own public key (SM2 with the
/// default signer ID) and returns its summary.
pub fn verify(bytes: &[u8]) -> Result<CsrSummary> {
    let trimmed = bytes.trim_ascii_start();
    let req = if trimmed.starts_with(b"-----BEGIN") {
        CertReq::from_pem(trimmed)
    } else {
        CertReq::from_der(bytes)
    }
    .map_err(|e| Error::invalid_data(format!("not a PKCS#10 certificate request: {e}")))?;
    let public = PublicKey::from_spki_der(&req.info.public_key.to_der()?)?;
    let info_der = req.info.to_der()?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| Error::invalid_data("request signature has unused bits"))?;
    let (mech, name, field): (SignMech, &'static str, Option<usize>) =
        match (req.algorithm.oid, public.alg()) {
            (o, KeyAlg::Sm2) if o == OID_SM2_WITH_SM3 => (
                SignMech::Sm2Sm3 {
                    id: DEFAULT_ID.to_vec(),
                },
                "SM2-with-SM3",
                Some(32),
            ),
            (o, KeyAlg::EcP256) if o == OID_ECDSA_SHA256 => (
                SignMech::Ecdsa(HashAlg::Sha256),
                "ecdsa-with-SHA256",
                Some(32),
            ),
            (o, KeyAlg::EcP384) if o == OID_ECDSA_SHA384 => (
                SignMech::Ecdsa(HashAlg::Sha384),
                "ecdsa-with-SHA384",
                Some(48),
            ),
            (o, KeyAlg::Rsa(_)) if o == OID_SHA256_RSA => (
                SignMech::RsaPkcs1(HashAlg::Sha256),
                "sha256WithRSAEncryption",
                None,
            ),
            (o, alg) => {
                return Err(Error::unsupported(format!(
                    "request signature algorithm {o} with a {alg:?} key"
                )));
            }
        };
    let sig = match field {
        Some(n) => crate::crypto::sig::der_to_raw(sig, n)?,
        None => sig.to_vec(),
    };
    public.verify(&mech, &info_der, &sig)?;
    Ok(CsrSummary {
        subject: req.info.subject.to_string(),
        public_key: public,
        signature_alg: name,
    })
}

/// The AlgorithmIdentifier a request for a key algorithm is signed with.
pub fn signature_algorithm(alg: KeyAlg) -> Result<AlgorithmIdentifierOwned> {
    Ok(crate::cert::signature_scheme(alg)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PrivateKey;

    fn round_trip(alg: KeyAlg) {
        let key = PrivateKey::generate(alg).unwrap();
        let public = key.public_key().unwrap();
        let subject = parse_subject("CN=投标人一号,O=Example Co,C=CN").unwrap();
        let der = build(&public, &subject, |m, t| key.sign(m, t)).unwrap();
        let s = verify(&der).unwrap();
        assert_eq!(s.public_key, public);
        assert_eq!(s.subject, "CN=投标人一号,O=Example Co,C=CN");
        let pem = to_pem(&der).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert_eq!(verify(pem.as_bytes()).unwrap(), s);
        // One flipped bit in the signed part fails the check.
        let mut bad = der.clone();
        let i = bad.len() / 3;
        bad[i] ^= 1;
        assert!(verify(&bad).is_err());
    }

    #[test]
    fn sm2_ec_rsa_requests_verify() {
        round_trip(KeyAlg::Sm2);
        round_trip(KeyAlg::EcP256);
        round_trip(KeyAlg::Rsa(2048));
    }

    #[test]
    fn bad_subjects_are_refused() {
        assert!(parse_subject("").is_err());
        assert!(parse_subject("no equals sign").is_err());
        assert!(parse_subject("XX=foo").is_err());
        assert!(parse_subject("CN=a\\").is_err());
        assert!(parse_subject("CN=a\\\\\\").is_err());
    }

    /// The printed form of a parsed subject parses back to it, escaped edge spaces included
    /// (two inputs the fuzzer found: `trim` used to eat an escaped trailing space).
    #[test]
    fn printed_subjects_parse_back() {
        let cases: [&[u8]; 6] = [
            b"CN=a\xc2\x85,O=\xe3\x80\x80b\xe3\x80\x80",
            b"CN==\n-----END CERTIFICATE REQUEST\\ xamp[\\\\ \\ ",
            b"CN=a\\ ,O=\\  b \\ ",
            b"  CN=x\\\\\\   \t",
            b"CN=\xe6\x8a\x85  \"  \x00\x00ids+O=C \x00BidsU=Bids+O=Co,OU=B+O=C!\x00+O=    +O=C0!",
            b"CN=\\         \\ ",
        ];
        for case in cases {
            let text = std::str::from_utf8(case).unwrap();
            let name = parse_subject(text).unwrap();
            let printed = name.to_string();
            let again = parse_subject(&printed).unwrap();
            assert_eq!(again, name, "{text:?} printed as {printed:?}");
            assert_eq!(again.to_string(), printed);
        }
        // The fuzzer's own inputs: refused or round-tripped.
        let found: [&[u8]; 3] = [
            b"CN=a\xc2\x85 \xc2\x85,O=\\  \xc2\x85\xe3\x80\x80",
            b"CN==\n-----END CERTIFICATE REQUEST\\ xamp[\\\\ \\",
            b"CN=\xe6\x8a\x85  \"            \x00\x00\x00\x00\x00ids+O=C \x00BidsU=Bids+O=Co,OU=Bids+O=C!\x00CN=\xe6\x8a\x95\xe6\xa0\x87w\x00\x00\x00\x00\x00\x00\x00ids+O=C \x00BidsU=Bids+O=Co,OU=Bids+O=C!\x00\x00\x00\x00\x00+O=         +O=C0!",
        ];
        for case in found {
            if let Ok(name) = parse_subject(std::str::from_utf8(case).unwrap()) {
                let printed = name.to_string();
                assert_eq!(parse_subject(&printed).unwrap().to_string(), printed);
            }
        }
        // The escaped space stays in the value.
        let name = parse_subject("CN=a\\ ").unwrap();
        assert_eq!(name.to_string(), "CN=a\\ ");
    }

    #[test]
    fn reads_the_gmssl_request() {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/gm-interop/sign.req.pem"
        ))
        .unwrap();
        let s = verify(&pem).unwrap();
        assert_eq!(s.public_key.alg(), KeyAlg::Sm2);
        assert_eq!(s.signature_alg, "SM2-with-SM3");
    }
}
