//! Digests and HMAC: SM3 and HMAC-SM3 through ukey-simd's kernels (chosen per CPU tier;
//! RustCrypto `sm3` stays the reference their differential tests compare against),
//! SHA-1/2 through aws-lc-rs.

use aws_lc_rs::{digest as lc_digest, hmac as lc_hmac};
use hmac::{Hmac, KeyInit, Mac};
use sm3::Digest;
use ukey_simd::sm3::{HmacSm3, Sm3};
use zeroize::Zeroize;

use crate::crypto::hash::HashAlg;
use crate::crypto::provider::{HashContext, HashProvider};

/// SM3 via ukey-simd; SHA via aws-lc-rs; PBKDF2 via ukey-simd's HMAC-SM3 (SM3), RustCrypto
/// `pbkdf2` (MD5, SHA-224) and aws-lc-rs (SHA).
#[derive(Debug)]
pub struct DefaultHash;

fn lc_digest_alg(alg: HashAlg) -> Option<&'static lc_digest::Algorithm> {
    Some(match alg {
        HashAlg::Sm3 | HashAlg::Md5 => return None,
        HashAlg::Sha1 => &lc_digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha224 => &lc_digest::SHA224,
        HashAlg::Sha256 => &lc_digest::SHA256,
        HashAlg::Sha384 => &lc_digest::SHA384,
        HashAlg::Sha512 => &lc_digest::SHA512,
    })
}

fn lc_hmac_alg(alg: HashAlg) -> Option<lc_hmac::Algorithm> {
    Some(match alg {
        HashAlg::Sm3 | HashAlg::Md5 => return None,
        HashAlg::Sha1 => lc_hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha224 => lc_hmac::HMAC_SHA224,
        HashAlg::Sha256 => lc_hmac::HMAC_SHA256,
        HashAlg::Sha384 => lc_hmac::HMAC_SHA384,
        HashAlg::Sha512 => lc_hmac::HMAC_SHA512,
    })
}

struct Sm3Ctx(Sm3);
impl HashContext for Sm3Ctx {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

struct Md5Ctx(md5::Md5);
impl HashContext for Md5Ctx {
    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

struct HmacMd5Ctx(Hmac<md5::Md5>);
impl HashContext for HmacMd5Ctx {
    fn update(&mut self, data: &[u8]) {
        Mac::update(&mut self.0, data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finalize().into_bytes().to_vec()
    }
}

struct HmacSm3Ctx(HmacSm3);
impl HashContext for HmacSm3Ctx {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

/// PBKDF2 (RFC 8018 §5.2) with HMAC-SM3: the keyed inner and outer states are computed
/// once and cloned per iteration, so each iteration costs two compressions.
fn pbkdf2_hmac_sm3(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let keyed = HmacSm3::new(password);
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let mut mac = keyed.clone();
        mac.update(salt);
        // Blocks are numbered from 1; `out` would have to exceed 2^32 * 32 bytes to wrap.
        mac.update(&(i as u32).wrapping_add(1).to_be_bytes());
        let mut u = mac.finalize();
        let mut t = u;
        for _ in 1..iterations {
            let mut mac = keyed.clone();
            mac.update(&u);
            u = mac.finalize();
            for (a, b) in t.iter_mut().zip(&u) {
                *a ^= b;
            }
        }
        chunk.copy_from_slice(&t[..chunk.len()]);
        u.zeroize();
        t.zeroize();
    }
}

struct LcDigestCtx(lc_digest::Context);
impl HashContext for LcDigestCtx {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

struct LcHmacCtx(lc_hmac::Context);
impl HashContext for LcHmacCtx {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.sign().as_ref().to_vec()
    }
}

impl HashProvider for DefaultHash {
    fn digest_context(&self, alg: HashAlg) -> Box<dyn HashContext> {
        match lc_digest_alg(alg) {
            None if alg == HashAlg::Md5 => Box::new(Md5Ctx(md5::Md5::new())),
            None => Box::new(Sm3Ctx(Sm3::new())),
            Some(a) => Box::new(LcDigestCtx(lc_digest::Context::new(a))),
        }
    }

    fn hmac_context(&self, alg: HashAlg, key: &[u8]) -> Box<dyn HashContext> {
        match lc_hmac_alg(alg) {
            None if alg == HashAlg::Md5 => match <Hmac<md5::Md5> as KeyInit>::new_from_slice(key) {
                Ok(m) => Box::new(HmacMd5Ctx(m)),
                // HMAC accepts keys of any length; this arm cannot be reached.
                Err(_) => Box::new(HmacMd5Ctx(<Hmac<md5::Md5> as KeyInit>::new(
                    &Default::default(),
                ))),
            },
            None => Box::new(HmacSm3Ctx(HmacSm3::new(key))),
            Some(a) => Box::new(LcHmacCtx(lc_hmac::Context::with_key(&lc_hmac::Key::new(
                a, key,
            )))),
        }
    }

    fn pbkdf2(&self, prf: HashAlg, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        use aws_lc_rs::pbkdf2 as lc;
        let Some(iters) = std::num::NonZeroU32::new(iterations) else {
            return;
        };
        match prf {
            HashAlg::Sm3 => pbkdf2_hmac_sm3(password, salt, iterations, out),
            HashAlg::Md5 => pbkdf2::pbkdf2_hmac::<md5::Md5>(password, salt, iterations, out),
            HashAlg::Sha1 => lc::derive(lc::PBKDF2_HMAC_SHA1, iters, salt, password, out),
            HashAlg::Sha224 => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha224>(password, salt, iterations, out);
            }
            HashAlg::Sha256 => lc::derive(lc::PBKDF2_HMAC_SHA256, iters, salt, password, out),
            HashAlg::Sha384 => lc::derive(lc::PBKDF2_HMAC_SHA384, iters, salt, password, out),
            HashAlg::Sha512 => lc::derive(lc::PBKDF2_HMAC_SHA512, iters, salt, password, out),
        }
    }
}
