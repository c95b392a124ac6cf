//! SM3 through the provider (issue 8): the fast kernels behind `hash::Hasher`, HMAC-SM3,
//! PBKDF2-HMAC-SM3, SM2's Z (with the cached default-ID midstate) and the batch API,
//! each against the RustCrypto reference (`sm3`, `hmac`, `pbkdf2`) on random inputs.

use hmac::{KeyInit, Mac};
use sm3::Digest;
use token_hal::crypto::hash::{self, HashAlg, Hasher};
use token_hal::crypto::{KeyAlg, PrivateKey, kdf, sm2};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Random bytes of a random length below `max`.
    fn bytes_below(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

#[test]
fn hasher_and_hmac_match_rustcrypto() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for case in 0..3000 {
        let msg = if case % 100 == 0 {
            rng.bytes(5000)
        } else {
            rng.bytes_below(400)
        };
        let want = sm3::Sm3::digest(&msg).to_vec();
        assert_eq!(hash::digest(HashAlg::Sm3, &msg), want, "case {case}");
        assert_eq!(hash::sm3(&msg).to_vec(), want, "case {case}");
        let mut h = Hasher::new(HashAlg::Sm3);
        let mut rest = &msg[..];
        while !rest.is_empty() {
            let n = rng.below(rest.len() + 1).min(rest.len());
            h.update(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(h.finish(), want, "streamed, case {case}");

        let key = rng.bytes_below(130);
        let mut r = <hmac::Hmac<sm3::Sm3> as KeyInit>::new_from_slice(&key).expect("key");
        r.update(&msg);
        let mac = r.finalize().into_bytes().to_vec();
        assert_eq!(
            hash::hmac(HashAlg::Sm3, &key, &msg),
            mac,
            "hmac case {case}"
        );
        assert!(hash::hmac_verify(HashAlg::Sm3, &key, &msg, &mac).is_ok());
    }
}

#[test]
fn pbkdf2_hmac_sm3_matches_rustcrypto() {
    let mut rng = Rng(42);
    for case in 0..60 {
        let password = rng.bytes_below(100);
        let salt = rng.bytes_below(40);
        let iterations = 1 + rng.below(300) as u32;
        // Lengths that are not a multiple of 32 and span several PBKDF2 blocks.
        let len = 1 + rng.below(100);
        let ours = kdf::pbkdf2(HashAlg::Sm3, &password, &salt, iterations, len).expect("pbkdf2");
        let mut want = vec![0u8; len];
        pbkdf2::pbkdf2_hmac::<sm3::Sm3>(&password, &salt, iterations, &mut want);
        assert_eq!(&ours[..], &want[..], "case {case}");
    }
}

/// Z computed by hand with RustCrypto over the GB/T 32918.5 curve parameters, for the
/// default ID (served from the cached midstate) and for other IDs (computed in full).
#[test]
fn z_value_default_and_custom_ids_match_rustcrypto() {
    let a = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC\
             28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93\
             32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7\
             BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0";
    let curve: Vec<u8> = (0..a.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&a[i..i + 2], 16).expect("hex"))
        .collect();
    for _ in 0..4 {
        let key = PrivateKey::generate(KeyAlg::Sm2).expect("key");
        let point = key.public_key().expect("pub").ec_point().expect("point");
        for id in [
            sm2::DEFAULT_ID,
            b"".as_slice(),
            b"ALICE123@YAHOO.COM",
            &[7u8; 200],
        ] {
            let mut r = sm3::Sm3::new();
            r.update(((id.len() * 8) as u16).to_be_bytes());
            r.update(id);
            r.update(&curve);
            r.update(&point[1..]);
            let z: [u8; 32] = r.finalize().into();
            assert_eq!(sm2::z_value(&point, id).expect("z"), z, "id {id:?}");
            let mut r = sm3::Sm3::new();
            r.update(z);
            r.update(b"bid");
            let e: [u8; 32] = r.finalize().into();
            assert_eq!(sm2::sign_digest(&point, id, b"bid").expect("e"), e);
        }
    }
}

#[test]
fn sm3_many_matches_one_at_a_time() {
    let mut rng = Rng(7);
    let msgs: Vec<Vec<u8>> = (0..300).map(|_| rng.bytes_below(260)).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let mut out = vec![[0u8; 32]; refs.len()];
    hash::sm3_many(&refs, &mut out).expect("batch");
    for (m, o) in msgs.iter().zip(&out) {
        assert_eq!(o.as_slice(), sm3::Sm3::digest(m).as_slice());
    }
    let mut short = vec![[9u8; 32]; 2];
    assert!(matches!(
        hash::sm3_many(&refs[..3], &mut short),
        Err(token_hal::Error::InvalidArgument(_))
    ));
    assert_eq!(short, vec![[9u8; 32]; 2]);
}
