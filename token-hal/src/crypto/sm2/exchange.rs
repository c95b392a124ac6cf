//! SM2 key exchange, GB/T 32918.3-2016 §6 (GM/T 0003.3), on the recommended curve,
//! built on RustCrypto `sm2`'s scalar and point arithmetic.

use std::fmt;

use elliptic_curve::Group;
use elliptic_curve::ops::Reduce;
use sm2::{FieldBytes, ProjectivePoint, Scalar};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::backend::sm2::{self as imp, SecretScalar};
use crate::crypto::hash::{HashAlg, Hasher};
use crate::crypto::keys::{KeyAlg, PrivateKey, PublicKey};
use crate::error::{Error, Result};

/// Which side of the exchange this party is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeRole {
    /// User A, who sends RA first.
    Initiator,
    /// User B, who answers with RB.
    Responder,
}

/// One party's state between sending its ephemeral point and receiving the peer's.
pub struct Sm2KeyExchange {
    role: ExchangeRole,
    d: SecretScalar,
    point: [u8; 65],
    id: Vec<u8>,
    r: SecretScalar,
    r_point: [u8; 65],
}

impl fmt::Debug for Sm2KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sm2KeyExchange({:?})", self.role)
    }
}

/// A fresh ephemeral key pair for an SM2 key exchange: the scalar r (32 bytes, keep it
/// secret until [`Sm2KeyExchange::with_ephemeral_bytes`]) and the point R = \[r\]G (04‖x‖y)
/// to send to the peer.
pub fn generate_ephemeral() -> Result<(Zeroizing<Vec<u8>>, [u8; 65])> {
    let r = SecretScalar::random()?;
    let point = imp::public_point(&r);
    Ok((Zeroizing::new(r.to_bytes().to_vec()), point))
}

/// The outcome of an exchange: the shared key and the optional confirmation values.
pub struct ExchangeOutcome {
    /// The shared key (KA = KB), `klen` bytes.
    pub key: Zeroizing<Vec<u8>>,
    /// What this party sends to confirm: SB for the responder (B9), SA for the
    /// initiator (A10).
    pub confirmation: [u8; 32],
    /// What the peer's confirmation must equal: S1 for the initiator (A9, compared
    /// with SB), S2 for the responder (B10, compared with SA).
    expected_peer_confirmation: [u8; 32],
}

impl fmt::Debug for ExchangeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExchangeOutcome({} byte key)", self.key.len())
    }
}

impl ExchangeOutcome {
    /// The value the peer's confirmation must equal (S1 at the initiator, S2 at the
    /// responder).
    pub fn expected_peer_confirmation(&self) -> [u8; 32] {
        self.expected_peer_confirmation
    }

    /// Checks the peer's confirmation value (SB at the initiator, SA at the
    /// responder) in constant time; `Error::SignatureInvalid` when it differs.
    pub fn verify_peer_confirmation(&self, value: &[u8]) -> Result<()> {
        if value.len() == 32 && bool::from(value.ct_eq(&self.expected_peer_confirmation)) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }
}

/// x̄ = 2^w + (x AND (2^w − 1)) with w = 127 for the 256-bit order (§6.1).
fn x_bar(point: &[u8; 65]) -> Scalar {
    let mut b = FieldBytes::default();
    b[16..].copy_from_slice(&point[17..33]);
    b[16] |= 0x80;
    <Scalar as Reduce<FieldBytes>>::reduce(&b)
}

fn sm3(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Hasher::new(HashAlg::Sm3);
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finish());
    out
}

fn sm2_key_parts(key: &PrivateKey) -> Result<(SecretScalar, [u8; 65])> {
    if key.alg() != KeyAlg::Sm2 {
        return Err(Error::KeyType(format!(
            "{:?} cannot do SM2 key exchange",
            key.alg()
        )));
    }
    let d = imp::scalar_from_pkcs8(&key.to_pkcs8_der())?;
    let point = imp::public_point(&d);
    Ok((d, point))
}

impl Sm2KeyExchange {
    /// Starts an exchange with a fresh ephemeral key (A1–A3 or B1–B3).
    pub fn new(role: ExchangeRole, own: &PrivateKey, own_id: &[u8]) -> Result<Self> {
        Self::with_ephemeral(role, own, own_id, SecretScalar::random()?)
    }

    pub(crate) fn with_ephemeral(
        role: ExchangeRole,
        own: &PrivateKey,
        own_id: &[u8],
        r: SecretScalar,
    ) -> Result<Self> {
        let (d, point) = sm2_key_parts(own)?;
        let r_point = imp::public_point(&r);
        Ok(Self {
            role,
            d,
            point,
            id: own_id.to_vec(),
            r,
            r_point,
        })
    }

    /// Starts an exchange with a caller-held ephemeral scalar r (32 bytes, from
    /// [`super::generate_ephemeral`]): the SKF/PKCS#11 flows make r in one call and use
    /// it in a later one.
    pub fn with_ephemeral_bytes(
        role: ExchangeRole,
        own: &PrivateKey,
        own_id: &[u8],
        r: &[u8],
    ) -> Result<Self> {
        Self::with_ephemeral(role, own, own_id, SecretScalar::from_slice(r)?)
    }

    /// Test seam: starts an exchange with a given ephemeral scalar r.
    #[cfg(any(test, feature = "test-seams"))]
    pub fn new_with_ephemeral_for_test(
        role: ExchangeRole,
        own: &PrivateKey,
        own_id: &[u8],
        r: &[u8],
    ) -> Result<Self> {
        Self::with_ephemeral(role, own, own_id, SecretScalar::from_slice(r)?)
    }

    /// This party's ephemeral point (RA or RB), 04‖x‖y, to send to the peer.
    pub fn ephemeral_point(&self) -> [u8; 65] {
        self.r_point
    }

    /// Completes the exchange with the peer's static public key, ID and ephemeral point,
    /// deriving `klen` bytes (A4–A10 or B4–B10).
    pub fn finish(
        self,
        peer: &PublicKey,
        peer_id: &[u8],
        peer_ephemeral: &[u8],
        klen: usize,
    ) -> Result<ExchangeOutcome> {
        if peer.alg() != KeyAlg::Sm2 {
            return Err(Error::KeyType(
                "SM2 key exchange needs an SM2 peer key".into(),
            ));
        }
        if klen == 0 || klen > 1 << 16 {
            return Err(Error::invalid_arg("key length must be 1..=65536 bytes"));
        }
        let peer_point_bytes = peer
            .ec_point()
            .ok_or_else(|| Error::invalid_data("SM2 peer key without a point"))?;
        let peer_static = imp::decode_point(&peer_point_bytes)?;
        // A6/B5: the peer's ephemeral point must be on the curve.
        let peer_r = imp::decode_point(peer_ephemeral)?;
        let peer_r_bytes = imp::encode_point(&peer_r);

        // A4–A5 / B3–B4: t = (d + x̄·r) mod n.
        let d: Scalar = *self.d.scalar().as_ref();
        let r: Scalar = *self.r.scalar().as_ref();
        let t = Zeroizing::new(d + x_bar(&self.r_point) * r);
        // A7 / B6: U = [h·t](P_peer + [x̄_peer]R_peer), h = 1; not the identity.
        let sum = ProjectivePoint::from(peer_static)
            + ProjectivePoint::from(peer_r) * x_bar(&peer_r_bytes);
        let u = sum * *t;
        if bool::from(u.is_identity()) {
            return Err(Error::invalid_data(
                "SM2 key exchange produced the point at infinity",
            ));
        }
        let u = imp::encode_point(&u.to_affine());
        let (xu, yu) = (&u[1..33], &u[33..65]);

        let z_own = super::z_value(&self.point, &self.id)?;
        let z_peer = super::z_value(&peer_point_bytes, peer_id)?;
        let (za, zb, ra, rb) = match self.role {
            ExchangeRole::Initiator => (z_own, z_peer, self.r_point, peer_r_bytes),
            ExchangeRole::Responder => (z_peer, z_own, peer_r_bytes, self.r_point),
        };
        // A8 / B7: K = KDF(xU ‖ yU ‖ ZA ‖ ZB, klen).
        let key = imp::kdf(&[xu, yu, &za, &zb], klen);
        // Confirmation: Hash(0x02|0x03 ‖ yU ‖ Hash(xU ‖ ZA ‖ ZB ‖ x1 ‖ y1 ‖ x2 ‖ y2)).
        let inner = sm3(&[
            xu,
            &za,
            &zb,
            &ra[1..33],
            &ra[33..65],
            &rb[1..33],
            &rb[33..65],
        ]);
        let s02 = sm3(&[&[0x02], yu, &inner]);
        let s03 = sm3(&[&[0x03], yu, &inner]);
        let (confirmation, expected_peer_confirmation) = match self.role {
            // The initiator sends SA (0x03) and checks SB against S1 (0x02).
            ExchangeRole::Initiator => (s03, s02),
            // The responder sends SB (0x02) and checks SA against S2 (0x03).
            ExchangeRole::Responder => (s02, s03),
        };
        Ok(ExchangeOutcome {
            key,
            confirmation,
            expected_peer_confirmation,
        })
    }
}
