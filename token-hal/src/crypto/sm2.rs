//! SM2 specifics: the default ID, Z, ciphertext encodings, key exchange.

use der::asn1::{OctetStringRef, UintRef};
use der::{Decode, Encode, Sequence};

use std::sync::OnceLock;

use crate::crypto::hash::Sm3;
use crate::error::{Error, Result};

mod exchange;
pub use exchange::{ExchangeOutcome, ExchangeRole, Sm2KeyExchange, generate_ephemeral};

/// The GM/T 0009 default signer ID.
pub const DEFAULT_ID: &[u8] = b"1234567812345678";

/// Curve coefficient a of the recommended curve (GB/T 32918.5).
const CURVE_A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
/// Curve coefficient b.
const CURVE_B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
/// Base point x.
const GX: [u8; 32] = hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
/// Base point y.
const GY: [u8; 32] = hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

const fn hex32(s: &str) -> [u8; 32] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("bad hex digit"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Length of an uncompressed SM2 point 04‖x‖y.
pub const POINT_LEN: usize = 65;

pub(crate) fn check_point_encoding(public_point: &[u8]) -> Result<()> {
    if public_point.len() != POINT_LEN || public_point[0] != 0x04 {
        return Err(Error::invalid_data(
            "SM2 public key must be an uncompressed point 04||x||y of 65 bytes",
        ));
    }
    Ok(())
}

/// The SM3 state after ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG, the part of Z that does not depend on
/// the key.
fn z_prefix(id: &[u8], entl: u16) -> Sm3 {
    let mut h = Sm3::new();
    h.update(&entl.to_be_bytes());
    h.update(id);
    h.update(&CURVE_A);
    h.update(&CURVE_B);
    h.update(&GX);
    h.update(&GY);
    h
}

/// Checks that `public_point` is an SM2 public key: 04‖x‖y with both coordinates below p
/// and on the curve. The same check as [`crate::crypto::PublicKey::from_ec_point`], for
/// callers that only need the point's bytes (Z, say).
///
/// The last few points found valid are remembered (validity is a property of public
/// bytes and never changes), so a front end handed the same key with every call checks it
/// once.
pub fn check_public_point(public_point: &[u8]) -> Result<()> {
    check_point_encoding(public_point)?;
    let xy = xy_of(public_point)?;
    if known(xy).is_some_and(|k| k.valid) {
        return Ok(());
    }
    if crate::crypto::backend::sm2fast::point_is_valid(public_point) {
        learn(xy, |k| k.valid = true);
        Ok(())
    } else {
        Err(Error::invalid_data("SM2 point is not on the curve"))
    }
}

/// [`check_public_point`] and then [`z_value`]: Z for a point that must be a public key.
/// With the default ID, a point seen lately costs one look-up of the recent points.
pub fn checked_z_value(public_point: &[u8], id: &[u8]) -> Result<[u8; 32]> {
    if id == DEFAULT_ID
        && check_point_encoding(public_point).is_ok()
        && let Some(Known {
            valid: true,
            default_z: Some(z),
        }) = known(xy_of(public_point)?)
    {
        return Ok(z);
    }
    check_public_point(public_point)?;
    z_value(public_point, id)
}

/// x‖y of an encoded point (after [`check_point_encoding`]).
fn xy_of(public_point: &[u8]) -> Result<&[u8; 64]> {
    public_point
        .get(1..)
        .and_then(|xy| xy.try_into().ok())
        .ok_or_else(|| Error::internal("SM2 point length"))
}

/// What is known of a public point seen lately: that it is a valid public key, and its
/// Z with the default ID. Both are functions of public bytes and never change.
#[derive(Clone, Copy, Default)]
struct Known {
    valid: bool,
    default_z: Option<[u8; 32]>,
}

thread_local! {
    /// The last few points [`check_public_point`] and [`z_value`] saw on this thread: a
    /// front end that is handed the public key with every call (SKF_DigestInit,
    /// SKF_ExtECCEncrypt's callers) checks it and computes its Z once, as for a cached
    /// key. Per thread, so a look-up takes no lock (what it holds is public and never
    /// changes; another thread only learns it once for itself).
    static KNOWN: std::cell::RefCell<Ring<Known>> = const {
        std::cell::RefCell::new(Ring::new(Known {
            valid: false,
            default_z: None,
        }))
    };
}

fn known(xy: &[u8; 64]) -> Option<Known> {
    KNOWN.with(|r| r.borrow().get(xy))
}

/// Records a fact about `xy`, in its entry if it has one.
fn learn(xy: &[u8; 64], f: impl FnOnce(&mut Known)) {
    KNOWN.with(|r| {
        let mut ring = r.borrow_mut();
        let mut k = ring.get(xy).unwrap_or_default();
        f(&mut k);
        ring.set(xy, k);
    });
}

/// Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) for an uncompressed public point.
///
/// With the default ID the first 146 bytes are the same for every key: their two
/// compressed blocks are computed once per process and cloned, so Z costs two
/// compressions instead of four.
pub fn z_value(public_point: &[u8], id: &[u8]) -> Result<[u8; 32]> {
    check_point_encoding(public_point)?;
    let entl = u16::try_from(id.len() * 8)
        .ok()
        .filter(|_| id.len() < 8192)
        .ok_or_else(|| Error::invalid_arg("SM2 ID longer than 8191 bytes"))?;
    if id != DEFAULT_ID {
        let mut h = z_prefix(id, entl);
        h.update(&public_point[1..]);
        return Ok(h.finalize());
    }
    let xy = xy_of(public_point)?;
    if let Some(z) = known(xy).and_then(|k| k.default_z) {
        return Ok(z);
    }
    // Only public constants are in this state.
    static DEFAULT_PREFIX: OnceLock<Sm3> = OnceLock::new();
    let mut h = DEFAULT_PREFIX
        .get_or_init(|| z_prefix(DEFAULT_ID, entl))
        .clone();
    h.update(xy);
    let z = h.finalize();
    learn(xy, |k| k.default_z = Some(z));
    Ok(z)
}

const RING: usize = 8;

/// The last [`RING`] public points (x‖y) with a value each, the oldest replaced first.
struct Ring<V: Copy> {
    keys: [[u8; 64]; RING],
    vals: [V; RING],
    used: usize,
    next: usize,
}

impl<V: Copy> Ring<V> {
    const fn new(fill: V) -> Self {
        Self {
            keys: [[0; 64]; RING],
            vals: [fill; RING],
            used: 0,
            next: 0,
        }
    }
    fn find(&self, xy: &[u8; 64]) -> Option<usize> {
        (0..self.used).find(|&i| self.keys[i] == *xy)
    }
    fn get(&self, xy: &[u8; 64]) -> Option<V> {
        self.find(xy).map(|i| self.vals[i])
    }
    /// Sets the value of `xy`: in its entry, else in place of the oldest.
    fn set(&mut self, xy: &[u8; 64], v: V) {
        if let Some(i) = self.find(xy) {
            self.vals[i] = v;
            return;
        }
        let i = self.next;
        self.keys[i] = *xy;
        self.vals[i] = v;
        self.next = (i + 1) % RING;
        self.used = (self.used + 1).min(RING);
    }
}

/// e = SM3(Z ‖ M): the value SM2 signs.
pub fn sign_digest(public_point: &[u8], id: &[u8], msg: &[u8]) -> Result<[u8; 32]> {
    let z = z_value(public_point, id)?;
    let mut h = Sm3::new();
    h.update(&z);
    h.update(msg);
    Ok(h.finalize())
}

#[derive(Sequence)]
struct Sm2CipherDer<'a> {
    x: UintRef<'a>,
    y: UintRef<'a>,
    hash: &'a OctetStringRef,
    ciphertext: &'a OctetStringRef,
}

/// C1‖C3‖C2 (C1 = 04‖x‖y) to the GM/T 0009 DER form SEQUENCE { x, y, hash, ciphertext }.
pub fn cipher_raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.len() < POINT_LEN + 32 || raw[0] != 0x04 {
        return Err(Error::invalid_data(
            "SM2 ciphertext must be C1(04||x||y)||C3(32)||C2",
        ));
    }
    let c = Sm2CipherDer {
        x: UintRef::new(&raw[1..33])?,
        y: UintRef::new(&raw[33..65])?,
        hash: OctetStringRef::new(&raw[65..97])?,
        ciphertext: OctetStringRef::new(&raw[97..])?,
    };
    Ok(c.to_der()?)
}

/// GM/T 0009 DER to C1‖C3‖C2.
pub fn cipher_der_to_raw(der: &[u8]) -> Result<Vec<u8>> {
    let c = Sm2CipherDer::from_der(der)
        .map_err(|e| Error::invalid_data(format!("SM2 ciphertext DER: {e}")))?;
    let (x, y) = (c.x.as_bytes(), c.y.as_bytes());
    if x.len() > 32 || y.len() > 32 {
        return Err(Error::invalid_data(
            "SM2 ciphertext coordinate longer than 32 bytes",
        ));
    }
    if c.hash.as_bytes().len() != 32 {
        return Err(Error::invalid_data("SM2 ciphertext hash is not 32 bytes"));
    }
    let mut out = vec![0u8; POINT_LEN];
    out[0] = 0x04;
    out[33 - x.len()..33].copy_from_slice(x);
    out[65 - y.len()..65].copy_from_slice(y);
    out.extend_from_slice(c.hash.as_bytes());
    out.extend_from_slice(c.ciphertext.as_bytes());
    Ok(out)
}

/// Test-only entry points that take the random k, for the known-answer tests of
/// GB/T 32918. Never compiled into the libraries (feature `test-seams`). They run the
/// default (fast) SM2 code; the `reference_` variants run the portable RustCrypto path.
#[cfg(any(test, feature = "test-seams"))]
pub mod test_seams {
    use super::super::backend::sm2 as imp;
    use super::super::backend::sm2fast::seams as fast;
    use crate::error::{Error, Result};

    fn fixed(k: &[u8]) -> impl FnMut() -> Result<imp::SecretScalar> + '_ {
        let mut used = false;
        move || {
            if used {
                return Err(Error::invalid_arg("the fixed k was rejected"));
            }
            used = true;
            imp::SecretScalar::from_slice(k)
        }
    }

    /// Signs e with private scalar `d` and the given `k`; raw r‖s.
    pub fn sign_with_k(d: &[u8], e: &[u8; 32], k: &[u8]) -> Result<[u8; 64]> {
        fast::sign_with_k(d, e, k)
    }

    /// Encrypts to `point` with the given `k`; C1‖C3‖C2.
    pub fn encrypt_with_k(point: &[u8], msg: &[u8], k: &[u8]) -> Result<Vec<u8>> {
        fast::encrypt_with_k(point, msg, k)
    }

    /// [`sign_with_k`] on the portable reference path.
    pub fn reference_sign_with_k(d: &[u8], e: &[u8; 32], k: &[u8]) -> Result<[u8; 64]> {
        let d = imp::SecretScalar::from_slice(d)?;
        imp::sign_with(&d, e, fixed(k))
    }

    /// [`encrypt_with_k`] on the portable reference path.
    pub fn reference_encrypt_with_k(point: &[u8], msg: &[u8], k: &[u8]) -> Result<Vec<u8>> {
        imp::encrypt_with(&imp::decode_point(point)?, msg, fixed(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Z computed from its definition, without any memo.
    fn direct_z(point: &[u8], id: &[u8]) -> [u8; 32] {
        let mut h = z_prefix(id, u16::try_from(id.len() * 8).unwrap());
        h.update(&point[1..]);
        h.finalize()
    }

    /// The public points of `n` fresh SM2 keys.
    fn fresh_public_points(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                crate::crypto::PrivateKey::generate(crate::crypto::KeyAlg::Sm2)
                    .unwrap()
                    .public_key()
                    .unwrap()
                    .ec_point()
                    .unwrap()
            })
            .collect()
    }

    /// The cached default-ID Z equals Z computed afresh, for more keys than the cache
    /// holds, asked for in an order that evicts and refills it.
    #[test]
    fn cached_default_z_equals_fresh_z() {
        let points: Vec<[u8; 65]> = (0..3 * RING as u8)
            .map(|i| {
                let mut p = [i.wrapping_mul(37); 65];
                p[0] = 4;
                p[64] = i;
                p
            })
            .collect();
        for round in 0..3 {
            for (i, p) in points.iter().enumerate() {
                let p = if round == 1 {
                    &points[(i * 7) % points.len()]
                } else {
                    p
                };
                assert_eq!(z_value(p, DEFAULT_ID).unwrap(), direct_z(p, DEFAULT_ID));
                assert_eq!(z_value(p, DEFAULT_ID).unwrap(), direct_z(p, DEFAULT_ID));
            }
        }
        // Another ID never comes from the default-ID cache.
        assert_eq!(
            z_value(&points[0], b"ALICE123@YAHOO.COM").unwrap(),
            direct_z(&points[0], b"ALICE123@YAHOO.COM")
        );
        assert!(z_value(&points[0][..64], DEFAULT_ID).is_err());
    }

    /// The memo of valid points answers as the full check does: valid keys pass every time,
    /// across evictions; off-curve points and a point differing from a remembered one in one
    /// bit fail every time.
    #[test]
    fn remembered_points_are_checked_alike() {
        let keys = fresh_public_points(2 * RING + 3);
        for round in 0..3 {
            for (i, _k) in keys.iter().enumerate() {
                let k = &keys[(i * (round + 1)) % keys.len()];
                check_public_point(k).unwrap();
                let mut bad = k.clone();
                bad[64] ^= 1;
                assert!(check_public_point(&bad).is_err());
                assert!(check_public_point(&bad).is_err());
                check_public_point(k).unwrap();
            }
        }
        assert!(check_public_point(&keys[0][..64]).is_err());
        let mut high = keys[0].clone();
        high[1..33].fill(0xff);
        assert!(check_public_point(&high).is_err());
    }

    /// `checked_z_value` gives the Z computed from scratch, for the default and another ID,
    /// across evictions of the recent points; a point whose Z was computed unchecked (by
    /// `z_value`, which does not validate) still fails it when it is off the curve.
    #[test]
    fn checked_z_values_are_the_direct_ones_and_only_for_valid_points() {
        let keys = fresh_public_points(2 * RING + 3);
        for round in 0..3 {
            for i in 0..keys.len() {
                let k = &keys[(i * (round + 1)) % keys.len()];
                assert_eq!(
                    checked_z_value(k, DEFAULT_ID).unwrap(),
                    direct_z(k, DEFAULT_ID)
                );
                assert_eq!(
                    checked_z_value(k, DEFAULT_ID).unwrap(),
                    direct_z(k, DEFAULT_ID)
                );
                assert_eq!(checked_z_value(k, b"alice").unwrap(), direct_z(k, b"alice"));
                let mut bad = k.clone();
                bad[64] ^= 1;
                assert_eq!(
                    z_value(&bad, DEFAULT_ID).unwrap(),
                    direct_z(&bad, DEFAULT_ID)
                );
                assert!(checked_z_value(&bad, DEFAULT_ID).is_err());
                assert!(checked_z_value(&bad, b"alice").is_err());
                assert!(check_public_point(&bad).is_err());
            }
        }
        assert!(checked_z_value(&keys[0][..64], DEFAULT_ID).is_err());
    }
}
