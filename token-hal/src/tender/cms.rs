//! Bid signing: CMS SignedData, GM/T 0010 for SM2 keys and RFC 5652 for EC and RSA keys.
//!
//! - [`sign`] builds a SignedData around a certificate and a signing closure, so the private
//!   key stays in the token ([`sign_in_container`] passes [`Application::sign`]). It writes
//!   signed attributes (contentType, messageDigest, signingTime): the token signs their DER,
//!   a few hundred bytes, whatever the size of the bid. [`SignOptions::gmssl_compat`]
//!   instead writes GmSSL 3's profile (below), the token signing a 32-byte SM3 value.
//! - [`verify`] checks every SignerInfo and, given CA certificates, the signer
//!   certificate's validity, key usage and chain. It returns the content and the signers.
//!
//! SM2 (GM/T 0010): content types 1.2.156.10197.6.1.4.2.2 (SignedData) and
//! 1.2.156.10197.6.1.4.2.1 (data), digest SM3 (1.2.156.10197.1.401), signature
//! SM2-with-SM3 (1.2.156.10197.1.501) over SM3(Z ‖ DER(signedAttrs)), Z with the default ID
//! `1234567812345678`; the messageDigest attribute is plain SM3 of the content. On input the
//! RFC 5652 content-type OIDs and the signature OIDs 1.2.156.10197.1.301(.1) are accepted
//! too, and so is the profile GmSSL 3 writes (no Z: e = SM3(DER(EncapsulatedContentInfo) ‖
//! attributes)), which the interop vector `bid.signed.p7.pem` uses.
//!
//! EC and RSA: id-signedData / id-data, SHA-256 (P-384: SHA-384, P-521: SHA-512),
//! ecdsa-with-SHA* or rsaEncryption (PKCS#1 v1.5), as `openssl cms -sign` writes them.

use std::time::SystemTime;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use serde::Serialize;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage as KeyUsageExt, SubjectKeyIdentifier};
use x509_cert::time::Time;

use crate::cert::{self, CertSummary, OID_SM2_WITH_SM3};
use crate::crypto::hash::{HashAlg, digest};
use crate::crypto::sm2::DEFAULT_ID;
use crate::crypto::{KeyAlg, PublicKey, SignMech, sig};
use crate::error::{Error, Result};
use crate::model::{KeyRef, KeyUsage};
use crate::token::Application;

/// GM/T 0010 data content type.
pub const OID_GM_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.6.1.4.2.1");
/// GM/T 0010 SignedData content type.
pub const OID_GM_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.156.10197.6.1.4.2.2");
/// SM3 (GM/T 0006).
pub const OID_SM3: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.401");
/// sm2-1, the SM2 signature algorithm (accepted on input).
pub const OID_SM2_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.301.1");
/// The SM2 curve / key OID, which some writers put as the signature algorithm (accepted on
/// input).
pub const OID_SM2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.301");

/// Dates as `--at` takes them (RFC 3339), re-exported for the front ends.
pub use der::DateTime;

/// Longest certificate chain [`verify`] follows.
const MAX_CHAIN: usize = 8;

/// How [`sign`] writes a SignedData.
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// Leave the content out (a detached signature); the verifier is given it separately.
    pub detached: bool,
    /// The signingTime attribute; `None` means now.
    pub signing_time: Option<SystemTime>,
    /// SM2 only, attached only: write the profile GmSSL 3 writes and verifies (no signed
    /// attributes; the token signs e = SM3(DER(EncapsulatedContentInfo)) without Z), for
    /// platforms built on GmSSL. Not GM/T 0010 as other implementations read it.
    pub gmssl_compat: bool,
}

/// The algorithms used for one key type.
struct Scheme {
    gm: bool,
    hash: HashAlg,
    digest_oid: ObjectIdentifier,
    sig_alg: AlgorithmIdentifierOwned,
    mech: SignMech,
    /// The token returns raw r‖s that CMS carries as DER.
    ec: bool,
}

fn alg_id(oid: ObjectIdentifier, null_params: bool) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: null_params.then(|| Any::from(der::asn1::Null)),
    }
}

fn scheme(alg: KeyAlg) -> Result<Scheme> {
    let ec = |hash, digest_oid, sig_oid| Scheme {
        gm: false,
        hash,
        digest_oid,
        sig_alg: alg_id(sig_oid, false),
        mech: SignMech::Ecdsa(hash),
        ec: true,
    };
    Ok(match alg {
        KeyAlg::Sm2 => Scheme {
            gm: true,
            hash: HashAlg::Sm3,
            digest_oid: OID_SM3,
            sig_alg: alg_id(OID_SM2_WITH_SM3, false),
            mech: SignMech::Sm2Sm3 {
                id: DEFAULT_ID.to_vec(),
            },
            ec: true,
        },
        KeyAlg::EcP256 => ec(
            HashAlg::Sha256,
            rfc5912::ID_SHA_256,
            rfc5912::ECDSA_WITH_SHA_256,
        ),
        KeyAlg::EcP384 => ec(
            HashAlg::Sha384,
            rfc5912::ID_SHA_384,
            rfc5912::ECDSA_WITH_SHA_384,
        ),
        KeyAlg::EcP521 => ec(
            HashAlg::Sha512,
            rfc5912::ID_SHA_512,
            rfc5912::ECDSA_WITH_SHA_512,
        ),
        KeyAlg::Rsa(_) => Scheme {
            gm: false,
            hash: HashAlg::Sha256,
            digest_oid: rfc5912::ID_SHA_256,
            sig_alg: alg_id(rfc5912::RSA_ENCRYPTION, true),
            mech: SignMech::RsaPkcs1(HashAlg::Sha256),
            ec: false,
        },
        other => {
            return Err(Error::KeyType(format!(
                "{} keys cannot make CMS signatures here; use an SM2, EC or RSA key",
                cert::key_alg_name(other)
            )));
        }
    })
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value)?;
    Ok(Attribute { oid, values })
}

fn parse_cert(der: &[u8]) -> Result<Certificate> {
    Certificate::from_der(der)
        .map_err(|e| Error::invalid_data(format!("not an X.509 certificate: {e}")))
}

/// Builds a SignedData (as a DER ContentInfo) over `content`, signed for the key of
/// `cert_der` by `signer`, which is handed the mechanism and the bytes to sign (the DER of
/// the signed attributes) and returns the signature (EC and SM2: raw r‖s, as
/// [`Application::sign`] returns it). The signature is checked against the certificate
/// before anything is returned, so a certificate that does not belong to the key fails here.
pub fn sign(
    cert_der: &[u8],
    content: &[u8],
    opts: &SignOptions,
    signer: impl FnOnce(&SignMech, &[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let certificate = parse_cert(cert_der)?;
    let public = cert::public_key(cert_der)?;
    let s = scheme(public.alg())?;
    let (signed_oid, data_oid) = if s.gm {
        (OID_GM_SIGNED_DATA, OID_GM_DATA)
    } else {
        (rfc5911::ID_SIGNED_DATA, rfc5911::ID_DATA)
    };

    let (signed_attrs, mech, tbs_bytes) = if opts.gmssl_compat {
        if !s.gm || opts.detached {
            return Err(Error::invalid_arg(
                "the GmSSL profile is for attached signatures by SM2 keys",
            ));
        }
        let eci = EncapsulatedContentInfo {
            econtent_type: data_oid,
            econtent: Some(Any::encode_from(&OctetString::new(content)?)?),
        };
        let e = digest(HashAlg::Sm3, &eci.to_der()?);
        (None, SignMech::Sm2Prehashed, e)
    } else {
        let when = opts.signing_time.unwrap_or_else(SystemTime::now);
        let time = Time::try_from(when)
            .map_err(|e| Error::invalid_arg(format!("signing time out of range: {e}")))?;
        let md = digest(s.hash, content);
        let attrs: SignedAttributes = SetOfVec::try_from(vec![
            attribute(rfc5911::ID_CONTENT_TYPE, Any::encode_from(&data_oid)?)?,
            attribute(
                rfc5911::ID_MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(md)?)?,
            )?,
            attribute(rfc5911::ID_SIGNING_TIME, Any::encode_from(&time)?)?,
        ])?;
        let attrs_der = attrs.to_der()?;
        (Some(attrs), s.mech.clone(), attrs_der)
    };

    let raw = signer(&mech, &tbs_bytes)?;
    let signature = if s.ec { sig::raw_to_der(&raw)? } else { raw };
    if verify_signature(&public, &mech, &tbs_bytes, &signature).is_err() {
        return Err(Error::KeyType(
            "the token's signature does not verify with the certificate: the certificate \
             is not the signing key's"
                .into(),
        ));
    }

    let tbs = certificate.tbs_certificate();
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: alg_id(s.digest_oid, false),
        signed_attrs,
        signature_algorithm: s.sig_alg.clone(),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let econtent = if opts.detached {
        None
    } else {
        Some(Any::encode_from(&OctetString::new(content)?)?)
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(alg_id(s.digest_oid, false))?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: data_oid,
            econtent,
        },
        certificates: Some(CertificateSet::try_from(vec![
            CertificateChoices::Certificate(certificate),
        ])?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info])?,
    };
    let ci = ContentInfo {
        content_type: signed_oid,
        content: Any::encode_from(&signed)?,
    };
    Ok(ci.to_der()?)
}

/// Signs `content` with the signing key of `container`, inside the token (needs user
/// login), with the container's current signing certificate included.
pub fn sign_in_container(
    app: &dyn Application,
    container: &str,
    content: &[u8],
    opts: &SignOptions,
) -> Result<Vec<u8>> {
    let cert_der = app.cert(container, KeyUsage::Sign)?.ok_or_else(|| {
        Error::not_found(format!(
            "signing certificate of container '{container}' (import one with `ukey cert import`)"
        ))
    })?;
    let key = KeyRef::active(container, KeyUsage::Sign);
    sign(&cert_der, content, opts, |mech, data| {
        app.sign(&key, mech, data)
    })
}

/// PEM `CMS` text of a DER ContentInfo.
pub fn to_pem(der: &[u8]) -> Result<String> {
    pem_rfc7468::encode_string("CMS", pem_rfc7468::LineEnding::LF, der)
        .map_err(|e| Error::internal(format!("PEM encoding: {e}")))
}

/// The DER of a CMS message given as DER or as PEM (`CMS` or `PKCS7`).
pub fn decode_input(bytes: &[u8]) -> Result<Vec<u8>> {
    let n = bytes.iter().take_while(|c| c.is_ascii_whitespace()).count();
    if bytes[n..].starts_with(b"-----BEGIN") {
        let (label, der) = pem_rfc7468::decode_vec(&bytes[n..])
            .map_err(|e| Error::invalid_data(format!("bad PEM: {e}")))?;
        if label != "CMS" && label != "PKCS7" {
            return Err(Error::invalid_data(format!(
                "PEM label {label} is not CMS or PKCS7"
            )));
        }
        Ok(der)
    } else {
        Ok(bytes.to_vec())
    }
}

/// How [`verify`] checks a SignedData.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions<'a> {
    /// The content of a detached signature.
    pub detached_content: Option<&'a [u8]>,
    /// Trusted CA certificates (DER). When given, every signer certificate must be valid
    /// at `at`, allow signing, and chain to one of them (through certificates in the
    /// message if needed). When `None`, only the signatures are checked.
    pub trust: Option<&'a [Vec<u8>]>,
    /// The time the certificates must be valid at; `None` means now.
    pub at: Option<SystemTime>,
}

/// One signer of a verified SignedData.
#[derive(Clone, Debug, Serialize)]
pub struct Signer {
    /// Subject, issuer, serial, validity and thumbprints of the signer certificate.
    pub cert: CertSummary,
    /// The signingTime attribute, RFC 3339, when present.
    pub signing_time: Option<String>,
    /// Signature algorithm, e.g. `SM2-with-SM3`.
    pub algorithm: String,
    /// Which signing profile verified: `GM/T 0010`, `GmSSL 3, no Z` or `RFC 5652`.
    pub profile: &'static str,
    /// Whether the chain to a trusted CA was checked (the subject of that CA).
    pub chain_to: Option<String>,
    /// SM3 of the signer's SubjectPublicKeyInfo DER, colon hex: the stable key identity.
    pub public_key_sm3: String,
    /// The signer certificate DER.
    #[serde(skip)]
    pub cert_der: Vec<u8>,
}

/// A verified SignedData.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The signed content (the attached one, or the detached one given).
    pub content: Vec<u8>,
    /// Whether the message used the GM/T 0010 content types.
    pub gm_oids: bool,
    /// Every signer; all of them verified.
    pub signers: Vec<Signer>,
}

fn hash_of(oid: &ObjectIdentifier) -> Result<HashAlg> {
    Ok(match *oid {
        OID_SM3 => HashAlg::Sm3,
        rfc5912::ID_SHA_256 => HashAlg::Sha256,
        rfc5912::ID_SHA_384 => HashAlg::Sha384,
        rfc5912::ID_SHA_512 => HashAlg::Sha512,
        other => {
            return Err(Error::unsupported(format!("digest algorithm {other}")));
        }
    })
}

fn verify_signature(pk: &PublicKey, mech: &SignMech, data: &[u8], sig_der: &[u8]) -> Result<()> {
    let raw = match pk.alg().field_len() {
        Some(f) => sig::der_to_raw(sig_der, f).map_err(|_| Error::SignatureInvalid)?,
        None => sig_der.to_vec(),
    };
    pk.verify(mech, data, &raw)
}

/// The mechanism a SignerInfo's algorithms call for with this key.
fn signer_mech(
    pk: &PublicKey,
    digest_oid: &ObjectIdentifier,
    sig_oid: &ObjectIdentifier,
) -> Result<SignMech> {
    let hash = hash_of(digest_oid)?;
    let bad = || {
        Error::invalid_data(format!(
            "signature algorithm {sig_oid} with digest {digest_oid} does not fit a {} key",
            cert::key_alg_name(pk.alg())
        ))
    };
    match pk.alg() {
        KeyAlg::Sm2 => {
            if hash != HashAlg::Sm3
                || !(*sig_oid == OID_SM2_WITH_SM3 || *sig_oid == OID_SM2_1 || *sig_oid == OID_SM2)
            {
                return Err(bad());
            }
            Ok(SignMech::Sm2Sm3 {
                id: DEFAULT_ID.to_vec(),
            })
        }
        KeyAlg::EcP256 | KeyAlg::EcP384 | KeyAlg::EcP521 => {
            let ok = [
                const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
                rfc5912::ECDSA_WITH_SHA_256,
                rfc5912::ECDSA_WITH_SHA_384,
                rfc5912::ECDSA_WITH_SHA_512,
            ];
            if hash == HashAlg::Sm3 || !ok.contains(sig_oid) {
                return Err(bad());
            }
            Ok(SignMech::Ecdsa(hash))
        }
        KeyAlg::Rsa(_) => {
            let ok = [
                rfc5912::RSA_ENCRYPTION,
                rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
                rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
            ];
            if hash == HashAlg::Sm3 || !ok.contains(sig_oid) {
                return Err(bad());
            }
            Ok(SignMech::RsaPkcs1(hash))
        }
        other => Err(Error::unsupported(format!(
            "CMS signatures by {} keys",
            cert::key_alg_name(other)
        ))),
    }
}

fn find_signer_cert<'a>(
    sid: &SignerIdentifier,
    certs: &'a [Certificate],
) -> Result<&'a Certificate> {
    let found = certs.iter().find(|c| {
        let tbs = c.tbs_certificate();
        match sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                tbs.issuer() == &isn.issuer && tbs.serial_number() == &isn.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                matches!(tbs.get_extension::<SubjectKeyIdentifier>(), Ok(Some((_, s))) if &s == ski)
            }
        }
    });
    found.ok_or_else(|| {
        Error::invalid_data("the signer's certificate is not included in the SignedData")
    })
}

fn single_attr(attrs: &SignedAttributes, oid: ObjectIdentifier) -> Result<Option<&Any>> {
    let mut it = attrs.iter().filter(|a| a.oid == oid);
    let Some(a) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() || a.values.len() != 1 {
        return Err(Error::invalid_data(format!(
            "signed attribute {oid} must have exactly one value"
        )));
    }
    Ok(a.values.get(0))
}

/// Checks a SignedData: every signature and, with `opts.trust`, every signer certificate.
/// Errors: [`Error::SignatureInvalid`] when a signature or the message digest does not
/// match; [`Error::InvalidData`] naming the problem for a malformed message, a wrong
/// content type, or a certificate that is expired, not yet valid, not for signing or not
/// issued by a trusted CA.
pub fn verify(input: &[u8], opts: &VerifyOptions<'_>) -> Result<Verified> {
    let der = decode_input(input)?;
    if der.len() > 2 && der[0] == 0x30 && der[1] == 0x80 {
        return Err(Error::invalid_data(
            "BER indefinite-length encoding (as `openssl cms -sign -stream` writes) is not \
             supported; convert it with `openssl cms -cmsout -inform DER -outform DER`",
        ));
    }
    let ci = ContentInfo::from_der(&der)
        .map_err(|e| Error::invalid_data(format!("not a CMS ContentInfo: {e}")))?;
    let gm_oids = match ci.content_type {
        OID_GM_SIGNED_DATA => true,
        rfc5911::ID_SIGNED_DATA => false,
        other => {
            return Err(Error::invalid_data(format!(
                "content type {other} is not SignedData (1.2.156.10197.6.1.4.2.2 or \
                 1.2.840.113549.1.7.2)"
            )));
        }
    };
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| Error::invalid_data(format!("malformed SignedData: {e}")))?;
    let eci = &sd.encap_content_info;
    if eci.econtent_type != OID_GM_DATA && eci.econtent_type != rfc5911::ID_DATA {
        return Err(Error::invalid_data(format!(
            "encapsulated content type {} is not data (1.2.156.10197.6.1.4.2.1 or \
             1.2.840.113549.1.7.1)",
            eci.econtent_type
        )));
    }
    let content: Vec<u8> = match (&eci.econtent, opts.detached_content) {
        (Some(any), None) => any
            .decode_as::<OctetString>()
            .map_err(|e| Error::invalid_data(format!("malformed eContent: {e}")))?
            .into_bytes()
            .into(),
        (None, Some(c)) => c.to_vec(),
        (None, None) => {
            return Err(Error::invalid_arg(
                "the signature is detached: give the signed content too",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Error::invalid_arg(
                "the signature carries its content: do not give the content separately",
            ));
        }
    };
    let certs: Vec<Certificate> = sd
        .certificates
        .as_ref()
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => Some(c.clone()),
                    CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if sd.signer_infos.0.is_empty() {
        return Err(Error::invalid_data("the SignedData has no signer"));
    }
    let trust: Option<Vec<Certificate>> = match opts.trust {
        Some(list) => Some(list.iter().map(|d| parse_cert(d)).collect::<Result<_>>()?),
        None => None,
    };
    let at = opts.at.unwrap_or_else(SystemTime::now);

    let mut signers: Vec<Signer> = Vec::new();
    for si in sd.signer_infos.0.iter() {
        let cert = find_signer_cert(&si.sid, &certs)?;
        let cert_der = cert.to_der()?;
        let pk = cert::public_key(&cert_der)?;
        let mech = signer_mech(&pk, &si.digest_alg.oid, &si.signature_algorithm.oid)?;
        let hash = hash_of(&si.digest_alg.oid)?;
        let sig_bytes = si.signature.as_bytes();
        let mut signing_time = None;
        let profile = match &si.signed_attrs {
            Some(attrs) => {
                let ct = single_attr(attrs, rfc5911::ID_CONTENT_TYPE)?
                    .ok_or_else(|| Error::invalid_data("signed attributes lack contentType"))?
                    .decode_as::<ObjectIdentifier>()?;
                if ct != eci.econtent_type {
                    return Err(Error::invalid_data(format!(
                        "the signed contentType {ct} differs from the content type {}",
                        eci.econtent_type
                    )));
                }
                let md = single_attr(attrs, rfc5911::ID_MESSAGE_DIGEST)?
                    .ok_or_else(|| Error::invalid_data("signed attributes lack messageDigest"))?
                    .decode_as::<OctetString>()?;
                if let Some(t) = single_attr(attrs, rfc5911::ID_SIGNING_TIME)? {
                    signing_time = Some(t.decode_as::<Time>()?.to_string());
                }
                let attrs_der = attrs.to_der()?;
                if md.as_bytes() == digest(hash, &content).as_slice()
                    && verify_signature(&pk, &mech, &attrs_der, sig_bytes).is_ok()
                {
                    if pk.alg() == KeyAlg::Sm2 {
                        "GM/T 0010"
                    } else {
                        "RFC 5652"
                    }
                } else if pk.alg() == KeyAlg::Sm2
                    && gmssl_verifies(&pk, eci, &content, Some(attrs), sig_bytes)?
                {
                    "GmSSL 3, no Z"
                } else {
                    return Err(Error::SignatureInvalid);
                }
            }
            None => {
                if verify_signature(&pk, &mech, &content, sig_bytes).is_ok() {
                    if pk.alg() == KeyAlg::Sm2 {
                        "GM/T 0010"
                    } else {
                        "RFC 5652"
                    }
                } else if pk.alg() == KeyAlg::Sm2
                    && gmssl_verifies(&pk, eci, &content, None, sig_bytes)?
                {
                    "GmSSL 3, no Z"
                } else {
                    return Err(Error::SignatureInvalid);
                }
            }
        };
        let chain_to = match &trust {
            Some(anchors) => Some(check_chain(cert, &certs, anchors, at)?),
            None => None,
        };
        let summary = cert::summarize(&cert_der)?;
        let algorithm = match pk.alg() {
            KeyAlg::Sm2 => "SM2-with-SM3",
            KeyAlg::Rsa(_) => "RSA PKCS#1 v1.5",
            _ => "ECDSA",
        };
        signers.push(Signer {
            algorithm: algorithm.into(),
            cert: summary,
            signing_time,
            profile,
            chain_to,
            public_key_sm3: cert::fingerprint(HashAlg::Sm3, pk.spki_der()),
            cert_der,
        });
    }
    Ok(Verified {
        content,
        gm_oids,
        signers,
    })
}

/// GmSSL 3's SM2 profile: e = SM3(DER(EncapsulatedContentInfo with the content) ‖ the
/// signed attributes' encodings), signed without Z.
fn gmssl_verifies(
    pk: &PublicKey,
    eci: &EncapsulatedContentInfo,
    content: &[u8],
    attrs: Option<&SignedAttributes>,
    sig_der: &[u8],
) -> Result<bool> {
    let with_content = EncapsulatedContentInfo {
        econtent_type: eci.econtent_type,
        econtent: Some(Any::encode_from(&OctetString::new(content)?)?),
    };
    let mut msg = with_content.to_der()?;
    if let Some(attrs) = attrs {
        for a in attrs.iter() {
            msg.extend_from_slice(&a.to_der()?);
        }
    }
    let e = digest(HashAlg::Sm3, &msg);
    Ok(verify_signature(pk, &SignMech::Sm2Prehashed, &e, sig_der).is_ok())
}

/// Checks one certificate's signature with its issuer's public key.
pub fn verify_cert_signature(cert: &Certificate, issuer_key: &PublicKey) -> Result<()> {
    let tbs = cert.tbs_certificate().to_der()?;
    let sig_bytes = cert.signature().raw_bytes();
    let oid = cert.signature_algorithm().oid;
    let mech = match oid {
        OID_SM2_WITH_SM3 => SignMech::Sm2Sm3 {
            id: DEFAULT_ID.to_vec(),
        },
        rfc5912::ECDSA_WITH_SHA_256 => SignMech::Ecdsa(HashAlg::Sha256),
        rfc5912::ECDSA_WITH_SHA_384 => SignMech::Ecdsa(HashAlg::Sha384),
        rfc5912::ECDSA_WITH_SHA_512 => SignMech::Ecdsa(HashAlg::Sha512),
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION => SignMech::RsaPkcs1(HashAlg::Sha256),
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION => SignMech::RsaPkcs1(HashAlg::Sha384),
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION => SignMech::RsaPkcs1(HashAlg::Sha512),
        other => {
            return Err(Error::unsupported(format!(
                "certificate signature algorithm {other}"
            )));
        }
    };
    verify_signature(issuer_key, &mech, &tbs, sig_bytes)
}

fn subject_of(c: &Certificate) -> String {
    c.tbs_certificate().subject().to_string()
}

/// Checks that a certificate is valid at `at`.
pub fn check_validity(c: &Certificate, at: SystemTime) -> Result<()> {
    let v = c.tbs_certificate().validity();
    let from = v.not_before.to_system_time();
    let to = v.not_after.to_system_time();
    if at < from {
        return Err(Error::invalid_data(format!(
            "certificate {} is not valid before {}",
            subject_of(c),
            v.not_before
        )));
    }
    if at > to {
        return Err(Error::invalid_data(format!(
            "certificate {} expired on {}",
            subject_of(c),
            v.not_after
        )));
    }
    Ok(())
}

/// Checks a signer certificate at `at`: valid, keyUsage allowing signatures (when the
/// extension is present), and issued, directly or through `intermediates`, by one of
/// `anchors`, each link's signature and validity checked and each issuer a CA
/// (basicConstraints cA within its pathLenConstraint, keyCertSign). A leaf that is itself one of `anchors` passes.
/// Returns the subject of the anchor.
pub fn check_chain(
    leaf: &Certificate,
    intermediates: &[Certificate],
    anchors: &[Certificate],
    at: SystemTime,
) -> Result<String> {
    check_validity(leaf, at)?;
    match leaf.tbs_certificate().get_extension::<KeyUsageExt>() {
        Ok(Some((_, ku))) if !(ku.digital_signature() || ku.non_repudiation()) => {
            return Err(Error::invalid_data(format!(
                "certificate {} is not for signing (keyUsage has neither digitalSignature \
                 nor nonRepudiation)",
                subject_of(leaf)
            )));
        }
        Err(e) => return Err(Error::invalid_data(format!("bad keyUsage extension: {e}"))),
        _ => {}
    }
    if anchors.iter().any(|a| a == leaf) {
        return Ok(subject_of(leaf));
    }
    let mut current = leaf.clone();
    // `below`: how many intermediate CAs sit between the issuer looked for and the leaf.
    for below in 0..MAX_CHAIN {
        let issuer = current.tbs_certificate().issuer().clone();
        let signed_by = |c: &Certificate| -> bool {
            c.tbs_certificate().subject() == &issuer
                && can_issue(c, below)
                && c.to_der()
                    .ok()
                    .and_then(|d| cert::public_key(&d).ok())
                    .is_some_and(|k| verify_cert_signature(&current, &k).is_ok())
        };
        if let Some(anchor) = anchors.iter().find(|a| signed_by(a)) {
            check_validity(anchor, at)?;
            return Ok(subject_of(anchor));
        }
        let Some(next) = intermediates
            .iter()
            .find(|c| *c != &current && signed_by(c))
        else {
            break;
        };
        check_validity(next, at)?;
        current = next.clone();
    }
    Err(Error::invalid_data(format!(
        "certificate {} (issuer {}) does not chain to a trusted CA",
        subject_of(leaf),
        leaf.tbs_certificate().issuer()
    )))
}

/// Whether a certificate may issue a certificate with `below` intermediate CAs under it:
/// basicConstraints cA with a pathLenConstraint (if any) of at least `below`, and
/// keyCertSign when it has a keyUsage extension.
fn can_issue(c: &Certificate, below: usize) -> bool {
    let tbs = c.tbs_certificate();
    let bc = matches!(tbs.get_extension::<BasicConstraints>(), Ok(Some((_, bc)))
        if bc.ca && bc.path_len_constraint.is_none_or(|n| below <= usize::from(n)));
    let ku = match tbs.get_extension::<KeyUsageExt>() {
        Ok(Some((_, ku))) => ku.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    bc && ku
}

/// Every certificate of a CA file: PEM with one or more `CERTIFICATE` blocks, or one DER
/// certificate. Returns their DER.
pub fn read_ca_file(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let n = bytes.iter().take_while(|c| c.is_ascii_whitespace()).count();
    if !bytes[n..].starts_with(b"-----BEGIN") {
        return Ok(vec![cert::parse(bytes)?]);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid_data("CA file is neither DER nor PEM text"))?;
    let mut out = Vec::new();
    let end_marker = "-----END CERTIFICATE-----";
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let after = &rest[start..];
        let Some(end) = after.find(end_marker) else {
            return Err(Error::invalid_data(
                "unterminated PEM certificate in CA file",
            ));
        };
        let block = &after[..end + end_marker.len()];
        out.push(cert::parse(block.as_bytes())?);
        rest = &after[end + end_marker.len()..];
    }
    if out.is_empty() {
        return Err(Error::invalid_data("no CERTIFICATE in the CA file"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{SelfSignedSpec, self_signed};
    use crate::crypto::PrivateKey;
    use std::time::Duration;

    const GM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/gm-interop/");

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{GM}{name}")).unwrap()
    }

    /// A time inside the validity of the GM vectors' signing certificate.
    fn in_validity() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) // 2027-01-15
    }

    #[test]
    fn gmssl_vector_verifies_against_its_ca() {
        let ca = read_ca_file(&read("ca.cert.pem")).unwrap();
        let v = verify(
            &read("bid.signed.p7.pem"),
            &VerifyOptions {
                trust: Some(&ca),
                at: Some(in_validity()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(v.content, read("bid.txt"));
        assert!(v.gm_oids);
        assert_eq!(v.signers.len(), 1);
        let s = &v.signers[0];
        assert_eq!(s.cert.serial, "0F961F7CA606D8DC59648CE1");
        assert_eq!(s.cert.subject, "CN=Bidder One,O=Bidder One Co,C=CN");
        assert_eq!(s.profile, "GmSSL 3, no Z");
        assert_eq!(
            s.chain_to.as_deref(),
            Some("CN=Example Tendering CA,O=Example CA,C=CN")
        );
    }

    #[test]
    fn gmssl_vector_refused_outside_validity_and_with_wrong_ca() {
        let ca = read_ca_file(&read("ca.cert.pem")).unwrap();
        let input = read("bid.signed.p7.pem");
        let at = |secs| VerifyOptions {
            trust: Some(&ca),
            at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            ..Default::default()
        };
        let e = verify(&input, &at(1_780_000_000)).unwrap_err().to_string(); // 2026-05
        assert!(e.contains("not valid before"), "{e}");
        let e = verify(&input, &at(1_900_000_000)).unwrap_err().to_string(); // 2030-03
        assert!(e.contains("expired"), "{e}");
        // A CA that did not issue it.
        let other = self_signed_cert(KeyAlg::Sm2).1;
        let wrong = vec![other];
        let e = verify(
            &input,
            &VerifyOptions {
                trust: Some(&wrong),
                at: Some(in_validity()),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not chain"), "{e}");
    }

    #[test]
    fn gmssl_vector_tampered_content_fails() {
        let der = decode_input(&read("bid.signed.p7.pem")).unwrap();
        let pos = der.windows(6).position(|w| w == b"Tender").unwrap();
        let mut bad = der.clone();
        bad[pos] = b't';
        assert!(matches!(
            verify(&bad, &VerifyOptions::default()),
            Err(Error::SignatureInvalid)
        ));
    }

    fn self_signed_cert(alg: KeyAlg) -> (PrivateKey, Vec<u8>) {
        let key = PrivateKey::generate(alg).unwrap();
        let public = key.public_key().unwrap();
        let spec = SelfSignedSpec::new("cms test signer", KeyUsage::Sign);
        let der = self_signed(&public, &spec, |m, t| key.sign(m, t)).unwrap();
        (key, der)
    }

    fn round_trip(alg: KeyAlg) {
        let (key, cert_der) = self_signed_cert(alg);
        let content = b"the bid: 1,234,567.00 CNY\n";
        let trust = vec![cert_der.clone()];
        for detached in [false, true] {
            let opts = SignOptions {
                detached,
                ..Default::default()
            };
            let der = sign(&cert_der, content, &opts, |m, d| key.sign(m, d)).unwrap();
            let vopts = VerifyOptions {
                detached_content: detached.then_some(&content[..]),
                trust: Some(&trust),
                at: None,
            };
            let v = verify(&der, &vopts).unwrap();
            assert_eq!(v.content, content);
            assert_eq!(v.gm_oids, alg == KeyAlg::Sm2);
            assert_eq!(
                v.signers[0].profile,
                if alg == KeyAlg::Sm2 {
                    "GM/T 0010"
                } else {
                    "RFC 5652"
                }
            );
            assert!(v.signers[0].signing_time.is_some());
            // PEM goes through too.
            verify(to_pem(&der).unwrap().as_bytes(), &vopts).unwrap();
            // Other content fails.
            let other = b"the bid: 9,234,567.00 CNY\n";
            let r = if detached {
                verify(
                    &der,
                    &VerifyOptions {
                        detached_content: Some(other),
                        ..Default::default()
                    },
                )
            } else {
                let mut bad = der.clone();
                let pos = bad
                    .windows(content.len())
                    .position(|w| w == content)
                    .unwrap();
                bad[pos + 10] = b'9';
                verify(&bad, &VerifyOptions::default())
            };
            assert!(matches!(r, Err(Error::SignatureInvalid)), "{r:?}");
            // Detached without content, attached with extra content: clear errors.
            let e = verify(
                &der,
                &VerifyOptions {
                    detached_content: (!detached).then_some(&content[..]),
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        }
    }

    #[test]
    fn sm2_round_trip() {
        round_trip(KeyAlg::Sm2);
    }

    #[test]
    fn ec_and_rsa_round_trip() {
        round_trip(KeyAlg::EcP256);
        round_trip(KeyAlg::EcP384);
        round_trip(KeyAlg::Rsa(2048));
    }

    #[test]
    fn sm2_signature_uses_z_with_the_default_id() {
        let (key, cert_der) = self_signed_cert(KeyAlg::Sm2);
        let der = sign(&cert_der, b"x", &SignOptions::default(), |m, d| {
            assert_eq!(
                m,
                &SignMech::Sm2Sm3 {
                    id: DEFAULT_ID.to_vec()
                }
            );
            key.sign(m, d)
        })
        .unwrap();
        let ci = ContentInfo::from_der(&der).unwrap();
        assert_eq!(ci.content_type, OID_GM_SIGNED_DATA);
        let sd: SignedData = ci.content.decode_as().unwrap();
        assert_eq!(sd.encap_content_info.econtent_type, OID_GM_DATA);
        let si = sd.signer_infos.0.get(0).unwrap();
        assert_eq!(si.digest_alg.oid, OID_SM3);
        assert_eq!(si.signature_algorithm.oid, OID_SM2_WITH_SM3);
        // The signature verifies as SM3(Z || DER(signedAttrs)) and not without Z.
        let attrs = si.signed_attrs.as_ref().unwrap().to_der().unwrap();
        let pk = key.public_key().unwrap();
        let raw = sig::der_to_raw(si.signature.as_bytes(), 32).unwrap();
        pk.verify(
            &SignMech::Sm2Sm3 {
                id: DEFAULT_ID.to_vec(),
            },
            &attrs,
            &raw,
        )
        .unwrap();
        let e = digest(HashAlg::Sm3, &attrs);
        assert!(pk.verify(&SignMech::Sm2Prehashed, &e, &raw).is_err());
    }

    #[test]
    fn gmssl_profile_is_written_like_the_vector() {
        let (key, cert_der) = self_signed_cert(KeyAlg::Sm2);
        let opts = SignOptions {
            gmssl_compat: true,
            ..Default::default()
        };
        let mut seen = None;
        let der = sign(&cert_der, b"bid", &opts, |m, d| {
            seen = Some((m.clone(), d.to_vec()));
            key.sign(m, d)
        })
        .unwrap();
        let (mech, e) = seen.unwrap();
        assert_eq!(mech, SignMech::Sm2Prehashed);
        assert_eq!(e.len(), 32);
        let trust = vec![cert_der.clone()];
        let v = verify(
            &der,
            &VerifyOptions {
                trust: Some(&trust),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(v.signers[0].profile, "GmSSL 3, no Z");
        assert_eq!(v.content, b"bid");
        // Same shape as the GmSSL vector: no signed attributes, SM3 without parameters.
        let sd: SignedData = ContentInfo::from_der(&der)
            .unwrap()
            .content
            .decode_as()
            .unwrap();
        let si = sd.signer_infos.0.get(0).unwrap();
        assert!(si.signed_attrs.is_none());
        assert!(si.digest_alg.parameters.is_none());
        // Not for detached signatures or non-SM2 keys.
        let detached = SignOptions {
            detached: true,
            gmssl_compat: true,
            ..Default::default()
        };
        assert!(sign(&cert_der, b"x", &detached, |m, d| key.sign(m, d)).is_err());
        let (ec_key, ec_cert) = self_signed_cert(KeyAlg::EcP256);
        assert!(sign(&ec_cert, b"x", &opts, |m, d| ec_key.sign(m, d)).is_err());
    }

    #[test]
    fn wrong_certificate_for_the_key_is_refused_when_signing() {
        let (key, _) = self_signed_cert(KeyAlg::Sm2);
        let (_, other_cert) = self_signed_cert(KeyAlg::Sm2);
        let e = sign(&other_cert, b"x", &SignOptions::default(), |m, d| {
            key.sign(m, d)
        })
        .unwrap_err();
        assert!(matches!(e, Error::KeyType(_)), "{e:?}");
    }

    #[test]
    fn wrong_content_type_oids_are_refused() {
        let (key, cert_der) = self_signed_cert(KeyAlg::Sm2);
        let der = sign(&cert_der, b"bid", &SignOptions::default(), |m, d| {
            key.sign(m, d)
        })
        .unwrap();
        // GM data (…6.1.4.2.1) → GM envelopedData (…6.1.4.2.3) in eContentType.
        let data_oid = OID_GM_DATA.to_der().unwrap();
        let pos = der
            .windows(data_oid.len())
            .position(|w| w == data_oid)
            .unwrap();
        let mut bad = der.clone();
        bad[pos + data_oid.len() - 1] = 3;
        let e = verify(&bad, &VerifyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not data"), "{e}");
        // The outer SignedData type changed.
        let sd_oid = OID_GM_SIGNED_DATA.to_der().unwrap();
        let mut bad = der.clone();
        let pos = bad.windows(sd_oid.len()).position(|w| w == sd_oid).unwrap();
        bad[pos + sd_oid.len() - 1] = 3;
        let e = verify(&bad, &VerifyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not SignedData"), "{e}");
        // Garbage and truncation.
        assert!(verify(b"hello", &VerifyOptions::default()).is_err());
        assert!(verify(&der[..der.len() - 3], &VerifyOptions::default()).is_err());
    }

    #[test]
    fn ca_file_with_several_certificates() {
        let mut pem = String::from_utf8(read("ca.cert.pem")).unwrap();
        pem.push_str(&String::from_utf8(read("enc.cert.v1.pem")).unwrap());
        assert_eq!(read_ca_file(pem.as_bytes()).unwrap().len(), 2);
        assert!(read_ca_file(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
    }
}
