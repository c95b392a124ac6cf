//! The secure channel of docs/apdu.md §3: an SM2 key exchange (GB/T 32918.3) between a
//! fresh host key and the card's static device key gives two SM4 keys; every later
//! command travels in an SM4-GCM envelope with a strictly increasing counter, so the PIN
//! never crosses the transport in clear and a replayed command is refused.
//!
//! Both sides live here, so the driver and the virtual key cannot drift apart.

use zeroize::Zeroizing;

use super::command::{Command, Response, Sw};
use super::status::sw;
use crate::crypto::sm2::{DEFAULT_ID, ExchangeOutcome, ExchangeRole, Sm2KeyExchange};
use crate::crypto::sym::{SymAlg, gcm_open, gcm_seal};
use crate::crypto::{KeyAlg, PrivateKey, PublicKey};
use crate::error::{Error, Result};

/// The application identifier of the ukey applet (proprietary range).
pub const AID: [u8; 6] = [0xF0, b'u', b'k', b'e', b'y', 0x01];
/// Class byte of inner (and clear proprietary) commands.
pub const CLA: u8 = 0x80;
/// Class byte of an envelope (secure messaging indicated).
pub const CLA_SM: u8 = 0x84;
/// INS of the two secure-channel commands.
pub const INS_SECURE_CHANNEL: u8 = 0xA0;
/// INS of the envelope (ISO ENVELOPE).
pub const INS_ENVELOPE: u8 = 0xC2;

const POINT_LEN: usize = 65;
const CONFIRM_LEN: usize = 32;
const CTR_LEN: usize = 8;

/// The two SM4 keys of an open channel.
struct Keys {
    cmd: Zeroizing<[u8; 16]>,
    rsp: Zeroizing<[u8; 16]>,
}

impl Keys {
    fn from_outcome(o: &ExchangeOutcome) -> Result<Self> {
        let k = o.key.as_slice();
        if k.len() != 32 {
            return Err(Error::Internal("secure channel key length".into()));
        }
        let mut cmd = Zeroizing::new([0u8; 16]);
        let mut rsp = Zeroizing::new([0u8; 16]);
        cmd.copy_from_slice(&k[..16]);
        rsp.copy_from_slice(&k[16..]);
        Ok(Self { cmd, rsp })
    }
}

fn nonce(dir: u8, ctr: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3] = dir;
    n[4..].copy_from_slice(&ctr.to_be_bytes());
    n
}

fn aad(ctr: u64) -> [u8; 12] {
    let mut a = [0u8; 12];
    a[..4].copy_from_slice(&[CLA_SM, INS_ENVELOPE, 0, 0]);
    a[4..].copy_from_slice(&ctr.to_be_bytes());
    a
}

/// The host between `OPEN SECURE CHANNEL` and the card's answer.
pub struct HostHandshake {
    exchange: Sm2KeyExchange,
}

impl std::fmt::Debug for HostHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostHandshake")
    }
}

impl HostHandshake {
    /// A fresh host key and ephemeral key; the `OPEN SECURE CHANNEL` command to send.
    pub fn start() -> Result<(Self, Command)> {
        let host_key = PrivateKey::generate(KeyAlg::Sm2)?;
        let host_point = host_key
            .public_key()?
            .ec_point()
            .ok_or_else(|| Error::Internal("SM2 key without a point".into()))?;
        let exchange = Sm2KeyExchange::new(ExchangeRole::Initiator, &host_key, DEFAULT_ID)?;
        let mut data = host_point;
        data.extend_from_slice(&exchange.ephemeral_point());
        let cmd = Command::new(CLA, INS_SECURE_CHANNEL, 0x00, 0x00)
            .with_data(data)
            .with_le(POINT_LEN + CONFIRM_LEN);
        Ok((Self { exchange }, cmd))
    }

    /// Checks the card's answer RB ‖ SB against its device key: a card that does not
    /// hold the device key fails here. Returns the channel and the `CONFIRM` command.
    pub fn finish(self, device_key: &PublicKey, answer: &[u8]) -> Result<(HostChannel, Command)> {
        if answer.len() != POINT_LEN + CONFIRM_LEN {
            return Err(Error::Device(format!(
                "secure channel answer of {} bytes",
                answer.len()
            )));
        }
        let (rb, sb) = answer.split_at(POINT_LEN);
        let o = self.exchange.finish(device_key, DEFAULT_ID, rb, 32)?;
        o.verify_peer_confirmation(sb).map_err(|_| {
            Error::Device("the card did not prove its device key (secure channel)".into())
        })?;
        let cmd = Command::new(CLA, INS_SECURE_CHANNEL, 0x01, 0x00).with_data(o.confirmation);
        Ok((
            HostChannel {
                keys: Keys::from_outcome(&o)?,
                ctr: 0,
            },
            cmd,
        ))
    }
}

/// The host side of an open channel.
pub struct HostChannel {
    keys: Keys,
    ctr: u64,
}

impl std::fmt::Debug for HostChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostChannel(ctr {})", self.ctr)
    }
}

impl HostChannel {
    /// Wraps an inner command into the next envelope; returns it with its counter.
    pub fn wrap(&mut self, inner: &Command) -> Result<(u64, Command)> {
        self.ctr = self
            .ctr
            .checked_add(1)
            .ok_or_else(|| Error::Device("secure channel counter exhausted".into()))?;
        let ctr = self.ctr;
        let plain = Zeroizing::new(inner.encode_extended()?);
        let sealed = gcm_seal(
            SymAlg::Sm4,
            &*self.keys.cmd,
            &nonce(1, ctr),
            &aad(ctr),
            &plain,
        )?;
        let mut data = ctr.to_be_bytes().to_vec();
        data.extend_from_slice(&sealed);
        Ok((
            ctr,
            Command::new(CLA_SM, INS_ENVELOPE, 0, 0)
                .with_data(data)
                .with_le(super::command::EXTENDED_MAX),
        ))
    }

    /// Opens the card's answer to envelope `ctr`: the inner response. An outer status
    /// other than 90 00 (`6987`/`6988`: the card lost or refused the channel) is
    /// returned as [`ChannelLost`](Error::Device) for the caller to re-open.
    pub fn unwrap(&self, ctr: u64, outer: &Response) -> Result<Response> {
        if outer.sw == sw::SM_MISSING || outer.sw == sw::SM_INCORRECT {
            return Err(channel_lost(outer.sw));
        }
        super::status::check(outer.sw, "secure envelope")?;
        let plain = gcm_open(
            SymAlg::Sm4,
            &*self.keys.rsp,
            &nonce(2, ctr),
            &aad(ctr),
            &outer.data,
        )
        .map_err(|_| Error::Device("secure channel answer fails its integrity check".into()))?;
        Response::parse(&plain)
    }
}

/// The error a lost channel gives; [`is_channel_lost`] recognises it.
fn channel_lost(s: Sw) -> Error {
    Error::Device(format!("secure channel lost (card status {s})"))
}

/// Whether `e` says the card dropped the secure channel (another host opened one).
pub fn is_channel_lost(e: &Error) -> bool {
    matches!(e, Error::Device(m) if m.starts_with("secure channel lost"))
}

/// The card between `OPEN SECURE CHANNEL` and `CONFIRM`.
pub struct CardHandshake {
    outcome: ExchangeOutcome,
}

impl CardHandshake {
    /// Answers `OPEN SECURE CHANNEL` (data = host key ‖ RA) with RB ‖ SB.
    pub fn open(device_key: &PrivateKey, data: &[u8]) -> Result<(Self, Vec<u8>)> {
        if data.len() != 2 * POINT_LEN {
            return Err(Error::invalid_data("secure channel request length"));
        }
        let (host, ra) = data.split_at(POINT_LEN);
        let host_key = PublicKey::from_ec_point(KeyAlg::Sm2, host)?;
        let ex = Sm2KeyExchange::new(ExchangeRole::Responder, device_key, DEFAULT_ID)?;
        let rb = ex.ephemeral_point();
        let outcome = ex.finish(&host_key, DEFAULT_ID, ra, 32)?;
        let mut out = rb.to_vec();
        out.extend_from_slice(&outcome.confirmation);
        Ok((Self { outcome }, out))
    }

    /// Checks SA from `CONFIRM`; the channel is open only if it matches.
    pub fn confirm(self, sa: &[u8]) -> Result<CardChannel> {
        self.outcome
            .verify_peer_confirmation(sa)
            .map_err(|_| Error::invalid_data("secure channel confirmation"))?;
        Ok(CardChannel {
            keys: Keys::from_outcome(&self.outcome)?,
            last: 0,
        })
    }
}

/// The card side of an open channel.
pub struct CardChannel {
    keys: Keys,
    last: u64,
}

impl CardChannel {
    /// Opens an envelope: checks the counter (strictly above the last one accepted)
    /// and the tag, and returns the counter and the inner command. On any failure the
    /// card answers `6988` and its state does not change.
    pub fn unwrap(&mut self, envelope: &Command) -> Result<(u64, Command)> {
        let bad = || Error::invalid_data("secure envelope refused");
        let (head, sealed) = envelope.data.split_at_checked(CTR_LEN).ok_or_else(bad)?;
        let mut c = [0u8; CTR_LEN];
        c.copy_from_slice(head);
        let ctr = u64::from_be_bytes(c);
        if ctr <= self.last {
            return Err(bad());
        }
        let plain = gcm_open(
            SymAlg::Sm4,
            &*self.keys.cmd,
            &nonce(1, ctr),
            &aad(ctr),
            sealed,
        )
        .map_err(|_| bad())?;
        let (inner, _) = Command::decode(&plain)?;
        self.last = ctr;
        Ok((ctr, inner))
    }

    /// Seals the inner response of envelope `ctr`.
    pub fn wrap(&self, ctr: u64, inner: &Response) -> Result<Response> {
        let plain = Zeroizing::new(inner.encode());
        let sealed = gcm_seal(
            SymAlg::Sm4,
            &*self.keys.rsp,
            &nonce(2, ctr),
            &aad(ctr),
            &plain,
        )?;
        Ok(Response::new(sealed, Sw::OK))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn open() -> (HostChannel, CardChannel) {
        let device = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let (hs, cmd) = HostHandshake::start().unwrap();
        let (card_hs, answer) = CardHandshake::open(&device, &cmd.data).unwrap();
        let (host, confirm) = hs.finish(&device.public_key().unwrap(), &answer).unwrap();
        let card = card_hs.confirm(&confirm.data).unwrap();
        (host, card)
    }

    #[test]
    fn envelopes_round_trip_and_hide_the_pin() {
        let (mut host, mut card) = open();
        let verify = Command::new(CLA, 0x20, 0, 1).with_data(b"123456".to_vec());
        let (ctr, env) = host.wrap(&verify).unwrap();
        let wire = env.encode().unwrap();
        assert!(
            !wire.windows(6).any(|w| w == b"123456"),
            "the PIN never crosses in clear"
        );
        let (c, inner) = card.unwrap(&env).unwrap();
        assert_eq!(c, ctr);
        assert_eq!(inner, verify);
        let answer = card
            .wrap(ctr, &Response::new(vec![1, 2, 3], Sw(0x63C2)))
            .unwrap();
        let back = host.unwrap(ctr, &answer).unwrap();
        assert_eq!(back.data, [1, 2, 3]);
        assert_eq!(back.sw, Sw(0x63C2));
    }

    #[test]
    fn replays_tampering_and_wrong_keys_are_refused() {
        let (mut host, mut card) = open();
        let cmd = Command::new(CLA, 0x10, 0, 0).with_le(256);
        let (_, first) = host.wrap(&cmd).unwrap();
        let (_, second) = host.wrap(&cmd).unwrap();
        card.unwrap(&second).unwrap();
        assert!(card.unwrap(&first).is_err(), "an older counter");
        assert!(card.unwrap(&second).is_err(), "a replay");
        let (_, mut third) = host.wrap(&cmd).unwrap();
        let last = third.data.len() - 1;
        third.data[last] ^= 1;
        assert!(card.unwrap(&third).is_err(), "a flipped bit");
        // The refused envelopes left the state alone: the next good one passes.
        let (_, fourth) = host.wrap(&cmd).unwrap();
        card.unwrap(&fourth).unwrap();
        // Another channel's envelope does not open here.
        let (mut other, _) = open();
        let (_, foreign) = other.wrap(&cmd).unwrap();
        assert!(card.unwrap(&foreign).is_err());
        // A lost channel is recognised.
        let e = host
            .unwrap(9, &Response::new(vec![], sw::SM_INCORRECT))
            .unwrap_err();
        assert!(is_channel_lost(&e));
    }

    #[test]
    fn an_impostor_card_is_caught() {
        let device = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let impostor = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let (hs, cmd) = HostHandshake::start().unwrap();
        let (_, answer) = CardHandshake::open(&impostor, &cmd.data).unwrap();
        assert!(hs.finish(&device.public_key().unwrap(), &answer).is_err());
        // Malformed requests and answers are errors.
        assert!(CardHandshake::open(&device, &[4; 10]).is_err());
        let (hs, _) = HostHandshake::start().unwrap();
        assert!(hs.finish(&device.public_key().unwrap(), &[0; 5]).is_err());
    }
}
