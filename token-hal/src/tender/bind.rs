//! Account binding: a platform proves that a user holds the signing key of a certificate
//! issued by a CA it accepts, and ties that key to an account.
//!
//! 1. The platform issues a [`Challenge`] ([`Store::issue`]): a 32-byte random nonce, its
//!    platform id, the time of issue and an expiry. The store remembers the nonce.
//! 2. The client answers ([`respond`]) by signing the challenge's exact bytes in the token
//!    with the container's signing key: as a CMS SignedData carrying the certificate (the
//!    default, [`ResponseFormat::Cms`], GM/T 0010 for SM2 keys) or as a small JSON document
//!    ([`ResponseFormat::Json`]: the challenge text, the certificate PEM, the signature).
//!    It refuses a challenge that is not one, or that has expired.
//! 3. The platform verifies ([`Store::verify`]): the signature; the certificate's validity,
//!    key usage and chain to its CA certificates; and that the nonce was issued by this
//!    store for this platform, has not expired and has not been used. The nonce is then
//!    marked used in the same transaction, so a response is accepted once.
//!
//! The identity the platform keeps is the key, not the certificate: the SM3 fingerprint of
//! the signer's SubjectPublicKeyInfo DER ([`Identity::key_sm3`]). A renewed certificate of the
//! same key (same key pair, new serial) therefore keeps its binding; one account may bind
//! several keys; a key is bound to one account at a time until [`Store::unbind`].
//!
//! What the store holds (SQLite, `bind.sqlite` in the state directory): per nonce, the
//! platform id, issue and expiry times and when it was used; per binding, the account, the
//! key fingerprint, and the issuer, serial, subject and validity end of the last certificate
//! seen, with the times of binding and of the last login. No private data, no PIN.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use x509_cert::Certificate;

use crate::cert;
use crate::crypto::hash::HashAlg;
use crate::crypto::sm2::DEFAULT_ID;
use crate::crypto::{KeyAlg, PublicKey, SignMech, rng, sig};
use crate::error::{Error, Result};
use crate::model::{KeyRef, KeyUsage};
use crate::tender::cms::{self, SignOptions, VerifyOptions};
use crate::token::Application;

/// The `type` of a challenge document.
pub const CHALLENGE_TYPE: &str = "ukey-bind-challenge/1";
/// The `type` of a JSON response document.
pub const RESPONSE_TYPE: &str = "ukey-bind-response/1";
/// Longest accepted platform id, in bytes.
const MAX_PLATFORM_LEN: usize = 128;
/// Longest accepted TTL of a challenge: one day.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The file of a [`Store`] in its state directory.
pub const STORE_FILE: &str = "bind.sqlite";

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn rfc3339(secs: u64) -> String {
    der::DateTime::from_unix_duration(Duration::from_secs(secs))
        .map_or_else(|_| secs.to_string(), |d| d.to_string())
}

/// A binding challenge, as the platform sends it (a small JSON document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Always [`CHALLENGE_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The platform's id; the response is accepted only by the same platform.
    pub platform: String,
    /// 32 random bytes, lower-case hex; single use.
    pub nonce: String,
    /// Unix time of issue.
    pub issued_at: u64,
    /// Unix time after which the challenge is refused.
    pub expires_at: u64,
}

impl Challenge {
    /// Parses and checks a challenge document.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let c: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid_data(format!("not a binding challenge: {e}")))?;
        if c.kind != CHALLENGE_TYPE {
            return Err(Error::invalid_data(format!(
                "not a binding challenge: type {:?}, want {CHALLENGE_TYPE:?}",
                c.kind
            )));
        }
        check_platform(&c.platform)?;
        if c.nonce.len() != 64 || hex::decode(&c.nonce).is_err() {
            return Err(Error::invalid_data(
                "challenge nonce is not 32 bytes of hex",
            ));
        }
        if c.expires_at <= c.issued_at {
            return Err(Error::invalid_data("challenge expires before it is issued"));
        }
        Ok(c)
    }

    /// The document's bytes: compact JSON with a final newline. These exact bytes are signed.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec(self)
            .map_err(|e| Error::internal(format!("challenge JSON: {e}")))?;
        v.push(b'\n');
        Ok(v)
    }
}

fn check_platform(p: &str) -> Result<()> {
    if p.is_empty() || p.len() > MAX_PLATFORM_LEN || p.chars().any(char::is_control) {
        return Err(Error::invalid_arg(format!(
            "platform id must be 1..={MAX_PLATFORM_LEN} bytes of printable text"
        )));
    }
    Ok(())
}

/// The form of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat {
    /// CMS SignedData over the challenge bytes, certificate included (GM/T 0010 for SM2).
    Cms,
    /// A JSON document: the challenge text, the certificate PEM and a DER signature.
    Json,
}

/// The JSON response document.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct JsonResponse {
    #[serde(rename = "type")]
    kind: String,
    /// The challenge document, verbatim; its UTF-8 bytes are what was signed.
    challenge: String,
    /// The signing certificate, PEM.
    certificate: String,
    /// `SM2-with-SM3` (Z with the default ID), `ecdsa-with-SHA256` or
    /// `sha256WithRSAEncryption`.
    algorithm: String,
    /// The signature, hex; DER SEQUENCE { r, s } for SM2 and ECDSA.
    signature: String,
}

/// Mechanism and JSON name of the response signature for a key.
fn json_scheme(alg: KeyAlg) -> Result<(SignMech, &'static str)> {
    Ok(match alg {
        KeyAlg::Sm2 => (
            SignMech::Sm2Sm3 {
                id: DEFAULT_ID.to_vec(),
            },
            "SM2-with-SM3",
        ),
        KeyAlg::EcP256 => (SignMech::Ecdsa(HashAlg::Sha256), "ecdsa-with-SHA256"),
        KeyAlg::EcP384 => (SignMech::Ecdsa(HashAlg::Sha384), "ecdsa-with-SHA384"),
        KeyAlg::Rsa(_) => (
            SignMech::RsaPkcs1(HashAlg::Sha256),
            "sha256WithRSAEncryption",
        ),
        other => {
            return Err(Error::KeyType(format!(
                "{} keys cannot answer a binding challenge",
                cert::key_alg_name(other)
            )));
        }
    })
}

/// Answers a challenge with the signing key of `container` (needs user login). Refuses a
/// document that is not a challenge, and an expired challenge (at `now`).
pub fn respond(
    app: &dyn Application,
    container: &str,
    challenge: &[u8],
    format: ResponseFormat,
    now: SystemTime,
) -> Result<Vec<u8>> {
    let c = Challenge::parse(challenge)?;
    if unix(now) > c.expires_at {
        return Err(Error::invalid_data(format!(
            "the challenge expired at {}",
            rfc3339(c.expires_at)
        )));
    }
    match format {
        ResponseFormat::Cms => {
            cms::sign_in_container(app, container, challenge, &SignOptions::default())
        }
        ResponseFormat::Json => {
            let text = std::str::from_utf8(challenge)
                .map_err(|_| Error::invalid_data("challenge is not UTF-8"))?;
            let cert_der = app.cert(container, KeyUsage::Sign)?.ok_or_else(|| {
                Error::not_found(format!(
                    "signing certificate of container '{container}' (import one with \
                     `ukey cert import`)"
                ))
            })?;
            let pk = cert::public_key(&cert_der)?;
            let (mech, name) = json_scheme(pk.alg())?;
            let raw = app.sign(&KeyRef::active(container, KeyUsage::Sign), &mech, challenge)?;
            if pk.verify(&mech, challenge, &raw).is_err() {
                return Err(Error::KeyType(
                    "the token's signature does not verify with the certificate: the \
                     certificate is not the signing key's"
                        .into(),
                ));
            }
            let signature = if pk.alg().field_len().is_some() {
                sig::raw_to_der(&raw)?
            } else {
                raw
            };
            let doc = JsonResponse {
                kind: RESPONSE_TYPE.into(),
                challenge: text.to_owned(),
                certificate: cert::to_pem(&cert_der)?,
                algorithm: name.into(),
                signature: hex::encode(signature),
            };
            let mut v = serde_json::to_vec_pretty(&doc)
                .map_err(|e| Error::internal(format!("response JSON: {e}")))?;
            v.push(b'\n');
            Ok(v)
        }
    }
}

/// Who answered a challenge: the stable identity a platform binds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Certificate issuer (RFC 4514).
    pub issuer: String,
    /// Certificate serial, upper-case hex.
    pub serial: String,
    /// Certificate subject (RFC 4514).
    pub subject: String,
    /// SM3 of the SubjectPublicKeyInfo DER, colon hex: the key, kept across renewals.
    pub key_sm3: String,
    /// End of the certificate's validity (RFC 3339).
    pub not_after: String,
}

/// The binding recorded for an account by [`Store::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum BindOutcome {
    /// The key was not bound before; it now is.
    New,
    /// The key was already bound to this account with this certificate.
    Existing,
    /// The key was bound to this account with another certificate (renewal): the
    /// binding holds and the certificate details are updated.
    Renewed {
        /// The serial of the certificate seen before.
        previous_serial: String,
    },
}

/// A successful verification.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// The signer.
    pub identity: Identity,
    /// The platform of the challenge.
    pub platform: String,
    /// The nonce that was consumed.
    pub nonce: String,
    /// CMS or JSON.
    pub format: &'static str,
    /// When an account was given: what happened to its binding.
    pub binding: Option<BindOutcome>,
}

/// One binding of an account to a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// The account.
    pub account: String,
    /// The last certificate seen for the key.
    pub identity: Identity,
    /// Unix time it was bound.
    pub bound_at: u64,
    /// Unix time of the last successful verification.
    pub last_seen: u64,
}

/// The platform side: issued nonces and bindings, in `bind.sqlite` under a state directory.
pub struct Store {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bind::Store({})", self.path.display())
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nonces (
    nonce      TEXT PRIMARY KEY,
    platform   TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE TABLE IF NOT EXISTS bindings (
    key_sm3    TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    serial     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    not_after  TEXT NOT NULL,
    bound_at   INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bindings_account ON bindings(account);
";

impl Store {
    /// Opens (creating when absent) the store in directory `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        })?;
        let path = dir.join(STORE_FILE);
        let sql = |e: rusqlite::Error| Error::Io {
            path: path.clone(),
            detail: e.to_string(),
        };
        let conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Self { path, conn })
    }

    fn sql(&self, e: rusqlite::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// Issues a challenge for `platform` valid for `ttl` (at most [`MAX_TTL`]) from `now`,
    /// and remembers its nonce. Nonces that expired more than a day ago are forgotten.
    pub fn issue(&self, platform: &str, ttl: Duration, now: SystemTime) -> Result<Challenge> {
        check_platform(platform)?;
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(Error::invalid_arg("challenge TTL must be 1 s to 24 h"));
        }
        let issued_at = unix(now);
        let c = Challenge {
            kind: CHALLENGE_TYPE.into(),
            platform: platform.into(),
            nonce: hex::encode(rng::random_bytes(32)?),
            issued_at,
            expires_at: issued_at + ttl.as_secs().max(1),
        };
        let purge_before = issued_at.saturating_sub(MAX_TTL.as_secs());
        self.conn
            .execute(
                "DELETE FROM nonces WHERE expires_at < ?1",
                params![purge_before as i64],
            )
            .map_err(|e| self.sql(e))?;
        self.conn
            .execute(
                "INSERT INTO nonces (nonce, platform, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![c.nonce, c.platform, c.issued_at as i64, c.expires_at as i64],
            )
            .map_err(|e| self.sql(e))?;
        Ok(c)
    }

    /// Verifies a response (CMS or JSON, detected) against the CA certificates `trust` at
    /// `now`, consumes its nonce, and, when `account` is given, binds the key to it. Nothing
    /// changes unless everything checks out. Errors name what failed: the signature
    /// ([`Error::SignatureInvalid`]), the certificate, an unknown, used (replayed) or
    /// expired challenge, another platform's challenge, or a key bound to another account.
    pub fn verify(
        &mut self,
        response: &[u8],
        trust: &[Vec<u8>],
        now: SystemTime,
        account: Option<&str>,
    ) -> Result<Verification> {
        if trust.is_empty() {
            return Err(Error::invalid_arg("no CA certificate to verify against"));
        }
        if let Some(a) = account {
            check_account(a)?;
        }
        let (challenge_bytes, cert_der, format) = check_response(response, trust, now)?;
        let c = Challenge::parse(&challenge_bytes)?;
        let summary = cert::summarize(&cert_der)?;
        let pk = cert::public_key(&cert_der)?;
        let identity = Identity {
            issuer: summary.issuer,
            serial: summary.serial,
            subject: summary.subject,
            key_sm3: cert::fingerprint(HashAlg::Sm3, pk.spki_der()),
            not_after: summary.not_after,
        };
        let t = unix(now);

        // IMMEDIATE: take the write lock first, so two verifications of one response
        // cannot both read the nonce as unused.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| Error::Io {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        let sql = |e: rusqlite::Error| Error::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let row: Option<(String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT platform, expires_at, used_at FROM nonces WHERE nonce = ?1",
                params![c.nonce],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql)?;
        let Some((platform, expires_at, used_at)) = row else {
            return Err(Error::invalid_data(
                "unknown challenge: this platform did not issue its nonce (or forgot it)",
            ));
        };
        if platform != c.platform {
            return Err(Error::invalid_data(format!(
                "the challenge was issued for platform {platform:?}, not {:?}",
                c.platform
            )));
        }
        if let Some(used) = used_at {
            return Err(Error::invalid_data(format!(
                "challenge already used at {} (replay)",
                rfc3339(used.max(0) as u64)
            )));
        }
        if t as i64 > expires_at {
            return Err(Error::invalid_data(format!(
                "the challenge expired at {}",
                rfc3339(expires_at.max(0) as u64)
            )));
        }
        let binding = match account {
            None => None,
            Some(acct) => {
                let prev: Option<(String, String)> = tx
                    .query_row(
                        "SELECT account, serial FROM bindings WHERE key_sm3 = ?1",
                        params![identity.key_sm3],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(sql)?;
                let outcome = match prev {
                    Some((other, _)) if other != acct => {
                        return Err(Error::AlreadyExists(format!(
                            "a binding of this key to account {other:?}; unbind it first"
                        )));
                    }
                    Some((_, serial)) if serial == identity.serial => BindOutcome::Existing,
                    Some((_, serial)) => BindOutcome::Renewed {
                        previous_serial: serial,
                    },
                    None => BindOutcome::New,
                };
                tx.execute(
                    "INSERT INTO bindings (key_sm3, account, issuer, serial, subject, not_after, \
                     bound_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
                     ON CONFLICT(key_sm3) DO UPDATE SET issuer = ?3, serial = ?4, subject = ?5, \
                     not_after = ?6, last_seen = ?7",
                    params![
                        identity.key_sm3,
                        acct,
                        identity.issuer,
                        identity.serial,
                        identity.subject,
                        identity.not_after,
                        t as i64
                    ],
                )
                .map_err(sql)?;
                Some(outcome)
            }
        };
        let n = tx
            .execute(
                "UPDATE nonces SET used_at = ?1 WHERE nonce = ?2 AND used_at IS NULL",
                params![t as i64, c.nonce],
            )
            .map_err(sql)?;
        if n != 1 {
            return Err(Error::invalid_data("challenge already used (replay)"));
        }
        tx.commit().map_err(sql)?;
        Ok(Verification {
            identity,
            platform: c.platform,
            nonce: c.nonce,
            format,
            binding,
        })
    }

    /// The bindings of one account, or of all accounts.
    pub fn bindings(&self, account: Option<&str>) -> Result<Vec<Binding>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT account, issuer, serial, subject, key_sm3, not_after, bound_at, last_seen \
                 FROM bindings WHERE ?1 IS NULL OR account = ?1 ORDER BY account, bound_at",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![account], |r| {
                Ok(Binding {
                    account: r.get(0)?,
                    identity: Identity {
                        issuer: r.get(1)?,
                        serial: r.get(2)?,
                        subject: r.get(3)?,
                        key_sm3: r.get(4)?,
                        not_after: r.get(5)?,
                    },
                    bound_at: r.get::<_, i64>(6)?.max(0) as u64,
                    last_seen: r.get::<_, i64>(7)?.max(0) as u64,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))
    }

    /// Removes the binding of a key (by its SM3 fingerprint) from an account, which frees
    /// the key for another account.
    pub fn unbind(&self, account: &str, key_sm3: &str) -> Result<()> {
        let n = self
            .conn
            .execute(
                "DELETE FROM bindings WHERE account = ?1 AND key_sm3 = ?2",
                params![account, key_sm3.to_ascii_uppercase()],
            )
            .map_err(|e| self.sql(e))?;
        if n == 0 {
            return Err(Error::not_found(format!(
                "binding of key {key_sm3} to account {account:?}"
            )));
        }
        Ok(())
    }
}

fn check_account(a: &str) -> Result<()> {
    if a.is_empty() || a.len() > 256 || a.chars().any(char::is_control) {
        return Err(Error::invalid_arg(
            "account must be 1..=256 bytes of printable text",
        ));
    }
    Ok(())
}

/// Checks a response's signature and certificate; returns the signed challenge bytes, the
/// signer certificate and the format name.
fn check_response(
    response: &[u8],
    trust: &[Vec<u8>],
    now: SystemTime,
) -> Result<(Vec<u8>, Vec<u8>, &'static str)> {
    let n = response
        .iter()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    if response.get(n) != Some(&b'{') {
        let v = cms::verify(
            response,
            &VerifyOptions {
                detached_content: None,
                trust: Some(trust),
                at: Some(now),
            },
        )?;
        let [signer] = v.signers.as_slice() else {
            return Err(Error::invalid_data(
                "a binding response has exactly one signer",
            ));
        };
        return Ok((v.content, signer.cert_der.clone(), "CMS"));
    }
    let doc: JsonResponse = serde_json::from_slice(response)
        .map_err(|e| Error::invalid_data(format!("not a binding response: {e}")))?;
    if doc.kind != RESPONSE_TYPE {
        return Err(Error::invalid_data(format!(
            "not a binding response: type {:?}",
            doc.kind
        )));
    }
    let cert_der = cert::parse(doc.certificate.as_bytes())?;
    let pk = cert::public_key(&cert_der)?;
    let (mech, name) = json_scheme(pk.alg())?;
    if doc.algorithm != name {
        return Err(Error::invalid_data(format!(
            "algorithm {:?} does not fit the certificate's {} key",
            doc.algorithm,
            cert::key_alg_name(pk.alg())
        )));
    }
    let sig_der = hex::decode(&doc.signature)
        .map_err(|_| Error::invalid_data("response signature is not hex"))?;
    verify_json_signature(&pk, &mech, doc.challenge.as_bytes(), &sig_der)?;
    let leaf = Certificate::from_der_checked(&cert_der)?;
    let anchors = trust
        .iter()
        .map(|d| Certificate::from_der_checked(d))
        .collect::<Result<Vec<_>>>()?;
    cms::check_chain(&leaf, &[], &anchors, now)?;
    Ok((doc.challenge.into_bytes(), cert_der, "JSON"))
}

fn verify_json_signature(
    pk: &PublicKey,
    mech: &SignMech,
    data: &[u8],
    sig_der: &[u8],
) -> Result<()> {
    let raw = match pk.alg().field_len() {
        Some(f) => sig::der_to_raw(sig_der, f).map_err(|_| Error::SignatureInvalid)?,
        None => sig_der.to_vec(),
    };
    pk.verify(mech, data, &raw)
}

/// DER parsing with token-hal's error.
trait FromDerChecked: Sized {
    fn from_der_checked(der: &[u8]) -> Result<Self>;
}

impl FromDerChecked for Certificate {
    fn from_der_checked(der: &[u8]) -> Result<Self> {
        use der::Decode;
        Self::from_der(der)
            .map_err(|e| Error::invalid_data(format!("not an X.509 certificate: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{SelfSignedSpec, self_signed};
    use crate::crypto::PrivateKey;

    fn signer() -> (PrivateKey, Vec<u8>) {
        let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let public = key.public_key().unwrap();
        let spec = SelfSignedSpec::new("bind test", KeyUsage::Sign);
        let der = self_signed(&public, &spec, |m, t| key.sign(m, t)).unwrap();
        (key, der)
    }

    fn json_response(key: &PrivateKey, cert_der: &[u8], challenge: &[u8]) -> Vec<u8> {
        let (mech, name) = json_scheme(KeyAlg::Sm2).unwrap();
        let raw = key.sign(&mech, challenge).unwrap();
        serde_json::to_vec(&JsonResponse {
            kind: RESPONSE_TYPE.into(),
            challenge: String::from_utf8(challenge.to_vec()).unwrap(),
            certificate: cert::to_pem(cert_der).unwrap(),
            algorithm: name.into(),
            signature: hex::encode(sig::raw_to_der(&raw).unwrap()),
        })
        .unwrap()
    }

    #[test]
    fn nonce_is_single_use_expires_and_belongs_to_its_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let (key, cert_der) = signer();
        let trust = vec![cert_der.clone()];
        let t0 = SystemTime::now();
        let secs = |s| t0 + Duration::from_secs(s);

        let c = store.issue("p", Duration::from_secs(60), t0).unwrap();
        let resp = json_response(&key, &cert_der, &c.to_bytes().unwrap());
        // Expired: refused, and the refusal uses nothing up.
        let e = store.verify(&resp, &trust, secs(61), None).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let v = store
            .verify(&resp, &trust, secs(30), Some("alice"))
            .unwrap();
        assert_eq!(v.format, "JSON");
        assert_eq!(v.binding, Some(BindOutcome::New));
        let pk = cert::public_key(&cert_der).unwrap();
        assert_eq!(
            v.identity.key_sm3,
            cert::fingerprint(HashAlg::Sm3, pk.spki_der())
        );
        let e = store.verify(&resp, &trust, secs(31), None).unwrap_err();
        assert!(e.to_string().contains("replay"), "{e}");

        // CMS, made as `respond` makes it.
        let c = store.issue("p", Duration::from_secs(60), t0).unwrap();
        let cms_resp = cms::sign(
            &cert_der,
            &c.to_bytes().unwrap(),
            &SignOptions::default(),
            |m, d| key.sign(m, d),
        )
        .unwrap();
        let v = store
            .verify(&cms_resp, &trust, secs(1), Some("alice"))
            .unwrap();
        assert_eq!(v.format, "CMS");
        assert_eq!(v.binding, Some(BindOutcome::Existing));
        assert_eq!(store.bindings(Some("alice")).unwrap().len(), 1);

        // A challenge of another store is unknown here.
        let other_dir = tempfile::tempdir().unwrap();
        let other = Store::open(other_dir.path()).unwrap();
        let c = other.issue("p", Duration::from_secs(60), t0).unwrap();
        let resp = json_response(&key, &cert_der, &c.to_bytes().unwrap());
        let e = store.verify(&resp, &trust, secs(1), None).unwrap_err();
        assert!(e.to_string().contains("unknown challenge"), "{e}");

        // A signature by another key over a genuine challenge is refused.
        let c = store.issue("p", Duration::from_secs(60), t0).unwrap();
        let (other_key, _) = signer();
        let forged = json_response(&other_key, &cert_der, &c.to_bytes().unwrap());
        assert!(matches!(
            store.verify(&forged, &trust, secs(1), None),
            Err(Error::SignatureInvalid)
        ));
    }

    #[test]
    fn challenge_round_trip_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = SystemTime::now();
        let c = store
            .issue("tender.example", Duration::from_secs(300), now)
            .unwrap();
        let bytes = c.to_bytes().unwrap();
        assert_eq!(Challenge::parse(&bytes).unwrap(), c);
        assert_eq!(c.expires_at - c.issued_at, 300);
        let c2 = store
            .issue("tender.example", Duration::from_secs(300), now)
            .unwrap();
        assert_ne!(c.nonce, c2.nonce);
        assert!(store.issue("", Duration::from_secs(1), now).is_err());
        assert!(store.issue("p", Duration::from_secs(0), now).is_err());
        assert!(store.issue("p", MAX_TTL * 2, now).is_err());
        let mut other = c.clone();
        other.kind = "something else".into();
        assert!(Challenge::parse(&other.to_bytes().unwrap()).is_err());
        let mut short = c.clone();
        short.nonce = "abcd".into();
        assert!(Challenge::parse(&short.to_bytes().unwrap()).is_err());
        assert!(Challenge::parse(b"{}").is_err());
    }
}
