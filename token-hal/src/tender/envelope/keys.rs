//! Finding the key of an envelope's recipient among all tokens present, and unwrapping
//! the content key inside the token that holds it.
//!
//! The search goes in this order, over every recipient and every key of every container
//! of every token (retired encryption keys included):
//! 1. issuer + serial against every certificate a key ever had (current and the history
//!    kept by renewals), so a bid encrypted before a renewal or a rekey still opens;
//! 2. the subject key identifier against the certificates' SKI extensions;
//! 3. the public key: an SKI computed from the key (SHA-1 or SM3 of the public key bits,
//!    RFC 5280 §4.2.1.2 method 1), or a recipient certificate carried in originatorInfo
//!    whose public key is the token key's;
//! 4. last, trial SM2 decryption of each recipient's encrypted key with each SM2
//!    encryption key: SM2's C3 hash makes a wrong key fail reliably.
//!
//! A token is logged in (through the caller's closure) only when one of its keys is
//! about to be used. The private key never leaves the token: the content key is the
//! output of [`Application::decrypt`] with the SM2 mechanism.

use std::fmt;
use std::sync::Arc;

use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use zeroize::Zeroizing;

use der::Decode;

use super::{EnvelopeInfo, KeyUnwrap, RecipientEntry, RecipientId};
use crate::crypto::hash::{HashAlg, digest};
use crate::crypto::{EncMech, KeyAlg, PublicKey, sm2};
use crate::error::{Error, Result};
use crate::model::{KeyId, KeyInfo, KeyRef, KeyState, KeyUsage, LoginState};
use crate::registry::Registry;
use crate::token::Application;

/// One open application (token) of a device.
#[derive(Clone)]
pub struct TokenApp {
    /// The device serial.
    pub device: String,
    /// The application.
    pub app: Arc<dyn Application>,
}

impl fmt::Debug for TokenApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenApp({} on {})", self.app.name(), self.device)
    }
}

/// Every application of every device present, opened. Devices or applications that do
/// not open are skipped with a warning.
pub fn tokens_present(registry: &Registry) -> Result<Vec<TokenApp>> {
    let mut out = Vec::new();
    for d in registry.devices()? {
        let serial = match d.info() {
            Ok(i) => i.serial,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a device");
                continue;
            }
        };
        let apps = match d.list_apps() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(device = %serial, error = %e, "skipping a device");
                continue;
            }
        };
        for name in apps {
            match d.open_app(&name) {
                Ok(app) => out.push(TokenApp {
                    device: serial.clone(),
                    app,
                }),
                Err(e) => tracing::warn!(device = %serial, app = %name, error = %e, "skipping"),
            }
        }
    }
    Ok(out)
}

/// How a recipient was matched to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    /// Issuer and serial of one of the key's certificates (`current`: the current one,
    /// else one kept in its history).
    IssuerSerial {
        /// Whether it was the key's current certificate.
        current: bool,
    },
    /// The subject key identifier of one of the key's certificates.
    SubjectKeyId,
    /// The key's public key.
    PublicKey,
    /// Trial decryption.
    Trial,
}

impl fmt::Display for MatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IssuerSerial { current: true } => "issuer and serial of its certificate",
            Self::IssuerSerial { current: false } => {
                "issuer and serial of an earlier certificate of the key"
            }
            Self::SubjectKeyId => "subject key identifier",
            Self::PublicKey => "public key",
            Self::Trial => "trial decryption",
        })
    }
}

/// The key that opened an envelope.
#[derive(Clone, Debug)]
pub struct KeyMatch {
    /// Device serial.
    pub device: String,
    /// Token (application) name.
    pub token: String,
    /// Container name.
    pub container: String,
    /// The key.
    pub key: KeyId,
    /// Whether the key is retired (replaced by a rekey).
    pub retired: bool,
    /// How it was found.
    pub how: MatchKind,
    /// Which recipient (index into the envelope's key-transport recipients).
    pub recipient: usize,
}

/// One key of one container of one token.
struct Candidate {
    token: usize,
    container: String,
    key: KeyInfo,
    /// Parsed certificates with whether each is current.
    certs: Vec<(Certificate, bool)>,
}

/// Logs a token in as user (asking for its PIN).
pub type LoginFn<'a> = Box<dyn FnMut(&TokenApp) -> Result<()> + 'a>;

/// Finds a recipient's key on the tokens and unwraps the content key there.
pub struct TokenKeyFinder<'a> {
    tokens: Vec<TokenApp>,
    login: LoginFn<'a>,
}

impl<'a> TokenKeyFinder<'a> {
    /// A finder over `tokens`. `login` logs a token in as user when one of its keys is
    /// needed (asking for its PIN); it is not called for tokens already logged in.
    pub fn new(tokens: Vec<TokenApp>, login: impl FnMut(&TokenApp) -> Result<()> + 'a) -> Self {
        Self {
            tokens,
            login: Box::new(login),
        }
    }

    fn candidates(&self) -> Vec<Candidate> {
        let mut out = Vec::new();
        for (ti, t) in self.tokens.iter().enumerate() {
            let containers = match t.app.list_containers() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(token = t.app.name(), error = %e, "cannot list containers");
                    continue;
                }
            };
            for c in containers {
                for k in c.all_keys() {
                    if k.alg != KeyAlg::Sm2 {
                        continue;
                    }
                    let certs = k
                        .certs
                        .iter()
                        .filter_map(|r| Certificate::from_der(&r.der).ok().map(|c| (c, r.current)))
                        .collect();
                    out.push(Candidate {
                        token: ti,
                        container: c.name.clone(),
                        key: k.clone(),
                        certs,
                    });
                }
            }
        }
        out
    }

    fn ensure_login(&mut self, ti: usize) -> Result<()> {
        let t = &self.tokens[ti];
        if t.app.login_state() == LoginState::User {
            return Ok(());
        }
        (self.login)(t)
    }

    /// Decrypts one recipient's encrypted key with one key. `Ok(None)`: not this key.
    fn try_key(
        &mut self,
        cand: &Candidate,
        r: &RecipientEntry,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let raw = match sm2::cipher_der_to_raw(&r.encrypted_key) {
            Ok(raw) => raw,
            Err(_) if r.encrypted_key.first() == Some(&0x04) => r.encrypted_key.clone(),
            Err(e) => return Err(e),
        };
        self.ensure_login(cand.token)?;
        let app = &self.tokens[cand.token].app;
        match app.decrypt(&KeyRef::Id(cand.key.id), &EncMech::Sm2, &raw) {
            Ok(k) if k.len() == 16 => Ok(Some(k)),
            Ok(_) | Err(Error::DecryptFailed | Error::InvalidData(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn ski_of_key(pk: &PublicKey) -> Vec<Vec<u8>> {
    let Some(point) = pk.ec_point() else {
        return Vec::new();
    };
    vec![
        digest(HashAlg::Sha1, &point).to_vec(),
        digest(HashAlg::Sm3, &point).to_vec(),
        digest(HashAlg::Sm3, &point)[..20].to_vec(),
    ]
}

fn cert_ski(c: &Certificate) -> Option<Vec<u8>> {
    match c.tbs_certificate().get_extension::<SubjectKeyIdentifier>() {
        Ok(Some((_, ski))) => Some(ski.0.as_bytes().to_vec()),
        _ => None,
    }
}

fn issued_as(c: &Certificate, id: &RecipientId) -> bool {
    match id {
        RecipientId::IssuerSerial { issuer, serial } => {
            let tbs = c.tbs_certificate();
            tbs.issuer() == issuer && tbs.serial_number().as_bytes() == serial.as_bytes()
        }
        RecipientId::SubjectKeyId(_) => false,
    }
}

impl KeyUnwrap for TokenKeyFinder<'_> {
    fn unwrap_key(&mut self, env: &EnvelopeInfo) -> Result<(Zeroizing<Vec<u8>>, KeyMatch)> {
        let cands = self.candidates();
        let sm2_recipients: Vec<(usize, &RecipientEntry)> = env
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_sm2())
            .collect();
        if sm2_recipients.is_empty() {
            return Err(Error::unsupported(format!(
                "no recipient of this envelope uses SM2 key transport (recipients: {})",
                env.describe_recipients()
            )));
        }
        let originator: Vec<Certificate> = env
            .originator_certs
            .iter()
            .filter_map(|d| Certificate::from_der(d).ok())
            .collect();

        // (candidate, recipient, how), in the order of the search.
        let mut plan: Vec<(usize, usize, MatchKind)> = Vec::new();
        for &(ri, r) in &sm2_recipients {
            for (ci, c) in cands.iter().enumerate() {
                if let Some((_, current)) = c.certs.iter().find(|(cert, _)| issued_as(cert, &r.id))
                {
                    plan.push((ci, ri, MatchKind::IssuerSerial { current: *current }));
                }
            }
        }
        for &(ri, r) in &sm2_recipients {
            if let RecipientId::SubjectKeyId(id) = &r.id {
                for (ci, c) in cands.iter().enumerate() {
                    if c.certs
                        .iter()
                        .any(|(cert, _)| cert_ski(cert).as_ref() == Some(id))
                    {
                        plan.push((ci, ri, MatchKind::SubjectKeyId));
                    }
                }
            }
        }
        for &(ri, r) in &sm2_recipients {
            for (ci, c) in cands.iter().enumerate() {
                let by_ski = matches!(&r.id, RecipientId::SubjectKeyId(id)
                    if ski_of_key(&c.key.public_key).contains(id));
                let by_cert = originator.iter().any(|oc| {
                    issued_as(oc, &r.id)
                        && der::Encode::to_der(oc.tbs_certificate().subject_public_key_info())
                            .ok()
                            .and_then(|spki| PublicKey::from_spki_der(&spki).ok())
                            .is_some_and(|pk| pk == c.key.public_key)
                });
                if by_ski || by_cert {
                    plan.push((ci, ri, MatchKind::PublicKey));
                }
            }
        }
        // Trial decryption: tokens already logged in first, so that a PIN is asked for
        // (or the one given is tried) only when they have no key that opens it.
        let logged_in: Vec<bool> = self
            .tokens
            .iter()
            .map(|t| t.app.login_state() == LoginState::User)
            .collect();
        for first in [true, false] {
            for &(ri, _) in &sm2_recipients {
                for (ci, c) in cands.iter().enumerate() {
                    if c.key.usage == KeyUsage::Encrypt && logged_in[c.token] == first {
                        plan.push((ci, ri, MatchKind::Trial));
                    }
                }
            }
        }

        let mut tried: Vec<(usize, usize)> = Vec::new();
        let mut login_failures: Vec<String> = Vec::new();
        let mut failed_tokens: Vec<usize> = Vec::new();
        for (ci, ri, how) in plan {
            if tried.contains(&(ci, ri)) {
                continue;
            }
            tried.push((ci, ri));
            let c = &cands[ci];
            if failed_tokens.contains(&c.token) {
                continue;
            }
            let r = &env.recipients[ri];
            match self.try_key(c, r) {
                Ok(Some(key)) => {
                    let t = &self.tokens[c.token];
                    let m = KeyMatch {
                        device: t.device.clone(),
                        token: t.app.name().to_owned(),
                        container: c.container.clone(),
                        key: c.key.id,
                        retired: c.key.state == KeyState::Retired,
                        how,
                        recipient: ri,
                    };
                    tracing::info!(
                        token = %m.token,
                        container = %m.container,
                        how = %m.how,
                        "envelope recipient key found"
                    );
                    return Ok((key, m));
                }
                Ok(None) => {}
                // A matched key whose token refuses the PIN: stop, say so (trying the
                // PIN on further tokens would only spend their retries).
                Err(
                    e @ (Error::PinIncorrect { .. }
                    | Error::PinLocked
                    | Error::PinNotInitialized
                    | Error::NotLoggedIn
                    | Error::AccessDenied(_)),
                ) if how != MatchKind::Trial => {
                    let t = &self.tokens[c.token];
                    let why = match e {
                        Error::AccessDenied(m) => m,
                        other => other.to_string(),
                    };
                    return Err(Error::AccessDenied(format!(
                        "token '{}' (device {}) holds the key for this envelope but the login failed: {why}",
                        t.app.name(),
                        t.device
                    )));
                }
                Err(e) => {
                    let t = &self.tokens[c.token];
                    if matches!(
                        e,
                        Error::PinIncorrect { .. }
                            | Error::PinLocked
                            | Error::PinNotInitialized
                            | Error::NotLoggedIn
                            | Error::AccessDenied(_)
                            | Error::InvalidArgument(_)
                    ) {
                        failed_tokens.push(c.token);
                    }
                    login_failures.push(format!("token '{}': {e}", t.app.name()));
                }
            }
        }
        let mut what = format!(
            "decryption key for this envelope (recipients: {}) on the {} token(s) present",
            env.describe_recipients(),
            self.tokens.len()
        );
        if !login_failures.is_empty() {
            login_failures.dedup();
            what.push_str(&format!(" (not searched: {})", login_failures.join("; ")));
        }
        Err(Error::NotFound(what))
    }
}
