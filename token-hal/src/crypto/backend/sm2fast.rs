//! SM2 (GB/T 32918) on arithmetic specialised for the SM2 curve: the fast default.
//!
//! - `field` / `scalar`: Montgomery arithmetic mod p and mod n on 4×64-bit limbs
//!   (fiat-crypto's verified code), constant-time inversion.
//! - `point`: Jacobian a = −3 formulas, mixed addition with affine table points.
//! - `table`: k·G from a 150 KiB table of 7-bit signed windows (37 constant-time
//!   table scans and mixed additions, no doublings); constant-time k·P with 5-bit
//!   signed windows; variable-time s·G + t·P (verification) with a width-6 wNAF of t
//!   over a per-public-key table.
//!
//! On top: a per-key signing context (d, (1 + d)^−1, the public point, Z for the
//! default ID, all computed once per loaded key), a per-thread pool of precomputed
//! nonces (k, k·G) made 32 at a time with one batched inversion, and a bounded cache of
//! verification tables keyed by the public point. [`super::sm2::RustCryptoSm2`] stays
//! as the portable reference; the differential tests run this code against it.

mod field;
mod ifma;
mod point;
mod scalar;
mod table;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use ukey_simd::sm2ifma::Ifma;
use zeroize::{Zeroize, Zeroizing};

use self::field::{Backend, Backends, Op};
use self::point::{Affine, G, Jac, batch_to_affine};
use self::scalar::Sc;
use self::table::PubTable;
use crate::crypto::hash::{HashAlg, Hasher};
use crate::crypto::keys::{DecMech, EncMech, KeyAlg, PublicKey, SignMech};
use crate::crypto::provider::{AsymProvider, PrivateKeyOps};
use crate::crypto::sm2 as front;
use crate::error::{Error, Result};

use super::sm2 as reference;

/// The fast SM2 implementation (the default provider's).
#[derive(Debug)]
pub struct FastSm2;

/// A secret scalar mod n (Montgomery form), zeroized on drop, never printed.
pub(crate) struct SecretSc(Sc);

impl Drop for SecretSc {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl SecretSc {
    /// From 32 big-endian bytes in [1, n − 1].
    pub(crate) fn from_slice(b: &[u8]) -> Result<Self> {
        let arr: &[u8; 32] = b
            .try_into()
            .map_err(|_| Error::invalid_data("SM2 private key must be 32 bytes"))?;
        let s = Sc::from_be_bytes(arr)
            .ok_or_else(|| Error::invalid_data("SM2 private key is zero or not below n"))?;
        if bool::from(s.is_zero()) {
            return Err(Error::invalid_data(
                "SM2 private key is zero or not below n",
            ));
        }
        Ok(Self(s))
    }

    /// A uniformly random scalar in [1, n − 1] from the OS.
    pub(crate) fn random() -> Result<Self> {
        let mut buf = Zeroizing::new([0u8; 32]);
        loop {
            getrandom::fill(&mut buf[..])
                .map_err(|e| Error::internal(format!("OS random source: {e}")))?;
            if let Ok(s) = Self::from_slice(&buf[..]) {
                return Ok(s);
            }
        }
    }

    fn canonical(&self) -> Zeroizing<[u64; 4]> {
        Zeroizing::new(self.0.to_canonical())
    }

    fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_be_bytes())
    }
}

/// The portable reference computes k·P when the fast formulas flag the negligible
/// P + P case (see `point`); `p = None` means G.
fn reference_mul(p: Option<&Affine>, k: &[u64; 4]) -> Result<Option<Affine>> {
    use elliptic_curve::Group;
    use sm2::ProjectivePoint;
    let kb = Zeroizing::new(scalar::canonical_to_be(k));
    let ks = reference::SecretScalar::from_slice(&kb[..])?;
    let base = match p {
        None => ProjectivePoint::generator(),
        Some(a) => ProjectivePoint::from(reference::decode_point(&a.to_uncompressed())?),
    };
    let r = base * *ks.scalar().as_ref();
    if bool::from(r.is_identity()) {
        return Ok(None);
    }
    let enc = reference::encode_point(&r.to_affine());
    Ok(Affine::from_uncompressed(&enc))
}

// The high-level operations, each run once on the backend `Backends::current` picks
// (see `field::Op`): everything below `run` is inlined, so on the `mulx` backend the
// whole operation is compiled with BMI2 and ADX.

/// k·G, affine, and the exceptional-case flag.
struct MulG<'a>(&'a [u64; 4]);

impl Op for MulG<'_> {
    type Out = (Option<Affine>, Choice);
    #[inline(always)]
    fn run<B: Backend>(self, be: B) -> Self::Out {
        let (j, exc) = table::mul_g_ct(be, self.0);
        (j.to_affine(be), exc)
    }
}

/// k·P, affine, and the exceptional-case flag.
struct MulPoint<'a>(&'a Affine, &'a [u64; 4]);

impl Op for MulPoint<'_> {
    type Out = (Option<Affine>, Choice);
    #[inline(always)]
    fn run<B: Backend>(self, be: B) -> Self::Out {
        let (j, exc) = table::mul_ct(be, self.0, self.1);
        (j.to_affine(be), exc)
    }
}

/// k·P from P's fixed-base table, affine, and the exceptional-case flag.
struct MulComb<'a>(&'a table::KeyComb, &'a [u64; 4]);

impl Op for MulComb<'_> {
    type Out = (Option<Affine>, Choice);
    #[inline(always)]
    fn run<B: Backend>(self, be: B) -> Self::Out {
        let (j, exc) = table::mul_comb_ct(be, self.0, self.1);
        (j.to_affine(be), exc)
    }
}

/// k·G for a batch of k, with one inversion; the flags mark the (negligible) exceptional
/// cases, whose points are placeholders the caller recomputes. With an IFMA proof the
/// multiplications run eight at a time (`ifma::mul_g8`), else one at a time.
struct MulGBatch<'a>(&'a [Zeroizing<[u64; 4]>], Option<Ifma>);

impl Op for MulGBatch<'_> {
    type Out = (Vec<Affine>, Vec<Choice>);
    #[inline(always)]
    fn run<B: Backend>(self, be: B) -> Self::Out {
        let mut jacs = Vec::with_capacity(self.0.len());
        let mut excs = Vec::with_capacity(self.0.len());
        let mut push = |j: Jac, exc: Choice| {
            jacs.push(Jac::conditional_select(&j, &G.to_jac(), exc));
            excs.push(exc);
        };
        match self.1 {
            Some(f) => {
                for chunk in self.0.chunks(8) {
                    let refs: Vec<&[u64; 4]> = chunk.iter().map(|k| &**k).collect();
                    for (j, exc) in ifma::mul_g8(be, f, &refs) {
                        push(j, exc);
                    }
                }
            }
            None => {
                for k in self.0 {
                    let (j, exc) = table::mul_g_ct(be, k);
                    push(j, exc);
                }
            }
        }
        (batch_to_affine(be, &jacs), excs)
    }
}

/// s·G + t·P (verification), affine; `None` for the identity.
struct DoubleMul<'a> {
    s: &'a [u64; 4],
    t: &'a [u64; 4],
    table: &'a PubTable,
    comb: Option<&'a table::KeyComb>,
}

impl Op for DoubleMul<'_> {
    type Out = Option<Affine>;
    #[inline(always)]
    fn run<B: Backend>(self, be: B) -> Self::Out {
        let p = match self.comb {
            Some(c) => table::double_mul_comb_vartime(be, self.s, self.t, c),
            None => table::double_mul_vartime(be, self.s, self.t, self.table),
        };
        p.to_affine(be)
    }
}

/// A public key's verification table.
struct BuildPubTable<'a>(&'a Affine);

impl Op for BuildPubTable<'_> {
    type Out = PubTable;
    #[inline(always)]
    fn run<B: Backend>(self, be: B) -> PubTable {
        PubTable::new(be, self.0)
    }
}

/// A public key's fixed-base table.
struct BuildKeyComb<'a>(&'a Affine);

impl Op for BuildKeyComb<'_> {
    type Out = table::KeyComb;
    #[inline(always)]
    fn run<B: Backend>(self, be: B) -> table::KeyComb {
        table::key_comb(be, self.0)
    }
}

/// k·G (k in [1, n − 1]), affine, constant-time in k.
fn mul_g(k: &[u64; 4]) -> Result<Affine> {
    let (a, exc) = Backends::current().run(MulG(k));
    let a = if bool::from(exc) {
        reference_mul(None, k)?
    } else {
        a
    };
    a.ok_or_else(|| Error::internal("SM2 scalar multiple is the identity"))
}

/// k·P, affine (`None` for the identity), constant-time in k.
fn mul_point(p: &Affine, k: &[u64; 4]) -> Result<Option<Affine>> {
    let (a, exc) = Backends::current().run(MulPoint(p, k));
    if bool::from(exc) {
        return reference_mul(Some(p), k);
    }
    Ok(a)
}

/// Whether `p` is 04‖x‖y with both coordinates below p, on the curve (so not the
/// identity), the same check as the reference's `decode_point` on this backend's field.
pub(crate) fn point_is_valid(p: &[u8]) -> bool {
    Affine::from_uncompressed(p).is_some()
}

/// One precomputed nonce: k, x1 mod n and C1 = k·G.
struct Nonce {
    k: Sc,
    x1: Sc,
    point: Affine,
}

impl Drop for Nonce {
    fn drop(&mut self) {
        self.k.zeroize();
        self.x1.zeroize();
        self.point.x.0.zeroize();
        self.point.y.0.zeroize();
    }
}

/// The most nonces one refill makes (one batched inversion for all of them). A thread's
/// first refill makes `POOL_FIRST`, and each later one twice as many up to this, so a
/// thread that signs once does not pay for 32 nonces.
const POOL_BATCH: usize = 32;
const POOL_FIRST: usize = 4;

/// This thread's unused nonces. Each is handed out once and dropped (zeroized). The
/// pool remembers the process id it was filled in: after a fork the child discards
/// what it inherited, so parent and child never sign with the same k.
#[derive(Default)]
struct NoncePool {
    pid: u32,
    items: Vec<Nonce>,
    next_batch: usize,
}

impl NoncePool {
    fn take(&mut self) -> Result<Nonce> {
        let pid = std::process::id();
        if pid != self.pid {
            self.items.clear();
            self.pid = pid;
        }
        if self.items.is_empty() {
            let batch = self.next_batch.clamp(POOL_FIRST, POOL_BATCH);
            self.items = make_nonces(batch)?;
            self.next_batch = (batch * 2).min(POOL_BATCH);
        }
        self.items
            .pop()
            .ok_or_else(|| Error::internal("SM2 nonce pool is empty"))
    }
}

/// `count` fresh nonces: random k, k·G by the table, one inversion for all.
fn make_nonces(count: usize) -> Result<Vec<Nonce>> {
    let mut ks = Vec::with_capacity(count);
    let mut kcs = Vec::with_capacity(count);
    // One read of the OS random source for the whole batch (one system call instead of
    // `count`). A 32-byte piece outside [1, n − 1] (probability about 2^−32) is replaced
    // by a fresh draw, so every k stays uniform in [1, n − 1].
    let mut buf = Zeroizing::new(vec![0u8; 32 * count]);
    getrandom::fill(&mut buf[..]).map_err(|e| Error::internal(format!("OS random source: {e}")))?;
    for piece in buf.chunks_exact(32) {
        let k = match SecretSc::from_slice(piece) {
            Ok(k) => k,
            Err(_) => SecretSc::random()?,
        };
        kcs.push(k.canonical());
        ks.push(k);
    }
    let (mut affs, excs) = Backends::current().run(MulGBatch(&kcs, Ifma::get()));
    for ((a, exc), kc) in affs.iter_mut().zip(&excs).zip(&kcs) {
        if bool::from(*exc) {
            *a = mul_g(kc)?;
        }
    }
    Ok(ks
        .iter()
        .zip(affs)
        .map(|(k, point)| Nonce {
            k: k.0,
            x1: Sc::reduce_limbs(point.x.to_canonical()),
            point,
        })
        .collect())
}

thread_local! {
    static POOL: RefCell<NoncePool> = RefCell::new(NoncePool::default());
}

fn next_nonce() -> Result<Nonce> {
    POOL.with(|p| p.borrow_mut().take())
}

/// A nonce for a given k (the test seams).
#[cfg(any(test, feature = "test-seams"))]
fn nonce_for(k: &SecretSc) -> Result<Nonce> {
    let point = mul_g(&k.canonical())?;
    Ok(Nonce {
        k: k.0,
        x1: Sc::reduce_limbs(point.x.to_canonical()),
        point,
    })
}

/// The signing context of one private key.
struct SignCtx {
    /// (1 + d)^−1 mod n.
    dinv1: SecretSc,
    /// Z for the default ID.
    z_default: [u8; 32],
}

/// SM2 private key: d, its public point and, once first needed, the signing context.
struct FastPrivate {
    d: SecretSc,
    point: [u8; 65],
    ctx: OnceLock<std::result::Result<SignCtx, String>>,
}

fn sign_ctx_for(d: &SecretSc, point: &[u8; 65]) -> std::result::Result<SignCtx, String> {
    let d1 = d.0.add(&Sc::ONE);
    if bool::from(d1.is_zero()) {
        return Err("SM2 private key d = n-1 cannot sign".into());
    }
    let z_default = front::z_value(point, front::DEFAULT_ID).map_err(|e| e.to_string())?;
    Ok(SignCtx {
        dinv1: SecretSc(d1.invert()),
        z_default,
    })
}

impl FastPrivate {
    fn new(d: SecretSc) -> Result<Self> {
        let point = mul_g(&d.canonical())?.to_uncompressed();
        Ok(Self {
            d,
            point,
            ctx: OnceLock::new(),
        })
    }

    fn ctx(&self) -> Result<&SignCtx> {
        self.ctx
            .get_or_init(|| sign_ctx_for(&self.d, &self.point))
            .as_ref()
            .map_err(|e| Error::invalid_data(e.clone()))
    }
}

/// e = SM3(Z ‖ M), with ukey-simd's SM3 on the stack (the provider's `Hasher` boxes its
/// context and returns a `Vec`: two allocations per signature).
fn e_from_z(z: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut h = ukey_simd::sm3::Sm3::new();
    h.update(z);
    h.update(msg);
    h.finalize()
}

fn prehashed(data: &[u8]) -> Result<[u8; 32]> {
    data.try_into().map_err(|_| {
        Error::invalid_arg(format!(
            "SM2 prehashed input must be 32 bytes, got {}",
            data.len()
        ))
    })
}

/// GB/T 32918.2 §6.1 A5–A7 for e with the nonce `n`; `None` when this k must be
/// discarded (r = 0, r + k = n or s = 0). Constant-time in d and k apart from that
/// answer.
fn sign_core(d: &Sc, dinv1: &Sc, e: &Sc, n: &Nonce) -> Option<[u8; 64]> {
    // A5: r = (e + x1) mod n.
    let r = e.add(&n.x1);
    let bad = r.is_zero() | r.add(&n.k).is_zero();
    // A6: s = (1 + d)^−1 (k − r·d) mod n.
    let mut rd = r.mul(d);
    let mut t = n.k.sub(&rd);
    let s = dinv1.mul(&t);
    rd.zeroize();
    t.zeroize();
    if bool::from(bad | s.is_zero()) {
        return None;
    }
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&r.to_be_bytes());
    out[32..].copy_from_slice(&s.to_be_bytes());
    Some(out)
}

/// Signs e, drawing nonces from `next` until one is usable.
fn sign_e(
    d: &Sc,
    dinv1: &Sc,
    e: &[u8; 32],
    mut next: impl FnMut() -> Result<Nonce>,
) -> Result<[u8; 64]> {
    let e = Sc::reduce_be_bytes(e);
    for _ in 0..64 {
        if let Some(sig) = sign_core(d, dinv1, &e, &next()?) {
            return Ok(sig);
        }
    }
    Err(Error::internal("SM2 signing found no usable k"))
}

/// r and s as canonical limbs in [1, n − 1].
fn sig_scalars(sig: &[u8]) -> Option<(Sc, Sc)> {
    if sig.len() != 64 {
        return None;
    }
    let mut rb = [0u8; 32];
    let mut sb = [0u8; 32];
    rb.copy_from_slice(&sig[..32]);
    sb.copy_from_slice(&sig[32..]);
    let r = Sc::from_be_bytes(&rb)?;
    let s = Sc::from_be_bytes(&sb)?;
    if bool::from(r.is_zero() | s.is_zero()) {
        return None;
    }
    Some((r, s))
}

/// GB/T 32918.2 §7.1 B1, B2, B5–B7 over e (variable-time: everything is public),
/// with P's fixed-base table when there is one, else its wNAF table.
fn verify_e(
    table: &PubTable,
    comb: Option<&table::KeyComb>,
    e: &[u8; 32],
    sig: &[u8],
) -> Result<()> {
    // B1, B2.
    let (r, s) = sig_scalars(sig).ok_or(Error::SignatureInvalid)?;
    let e = Sc::reduce_be_bytes(e);
    // B5: t = (r + s) mod n != 0.
    let t = r.add(&s);
    if bool::from(t.is_zero()) {
        return Err(Error::SignatureInvalid);
    }
    // B6: (x1', y1') = [s]G + [t]P.
    let p = Backends::current().run(DoubleMul {
        s: &s.to_canonical(),
        t: &t.to_canonical(),
        table,
        comb,
    });
    let Some(p) = p else {
        return Err(Error::SignatureInvalid);
    };
    // B7: (e + x1') mod n == r.
    let big_r = e.add(&Sc::reduce_limbs(p.x.to_canonical()));
    if bool::from(big_r.ct_eq(&r)) {
        Ok(())
    } else {
        Err(Error::SignatureInvalid)
    }
}

/// A public key in the cache: the point, its small wNAF table, its default-ID Z and,
/// once the key has been used `COMB_AFTER` times, its fixed-base table.
struct PubEntry {
    affine: Affine,
    table: PubTable,
    z_default: OnceLock<Result<[u8; 32]>>,
    uses: AtomicU32,
    comb: OnceLock<table::KeyComb>,
}

/// Uses of one public key after which its 53 KiB fixed-base table is built (the build
/// costs about as much as ten verifications and then makes each one about twice as fast).
const COMB_AFTER: u32 = 16;

impl PubEntry {
    /// The fixed-base table, when the key is used often enough to deserve one.
    fn comb(&self) -> Option<&table::KeyComb> {
        if let Some(c) = self.comb.get() {
            return Some(c);
        }
        if self.uses.fetch_add(1, Ordering::Relaxed) + 1 >= COMB_AFTER {
            return Some(
                self.comb
                    .get_or_init(|| Backends::current().run(BuildKeyComb(&self.affine))),
            );
        }
        None
    }
}

/// How many public keys the cache keeps before it starts over (at most about 3.5 MiB
/// with every key's fixed-base table built).
const PUB_CACHE_MAX: usize = 64;

fn pub_entry(point: &[u8]) -> Result<Arc<PubEntry>> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 65], Arc<PubEntry>>>> = OnceLock::new();
    front::check_point_encoding(point)?;
    let mut key = [0u8; 65];
    key.copy_from_slice(point);
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(hit) = cache.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(hit);
    }
    let affine = Affine::from_uncompressed(point)
        .ok_or_else(|| Error::invalid_data("SM2 point is not on the curve"))?;
    let entry = Arc::new(PubEntry {
        affine,
        table: Backends::current().run(BuildPubTable(&affine)),
        z_default: OnceLock::new(),
        uses: AtomicU32::new(0),
        comb: OnceLock::new(),
    });
    if let Ok(mut m) = cache.lock() {
        if m.len() >= PUB_CACHE_MAX {
            m.clear();
        }
        m.insert(key, entry.clone());
    }
    Ok(entry)
}

/// KDF of GB/T 32918.4 §5.4.3: SM3 in counter mode over `z`, XORed into `data`.
/// Returns whether the key stream was all zero.
fn kdf_xor(z: &[&[u8]], data: &mut [u8]) -> bool {
    let mut ct: u32 = 1;
    let mut acc = 0u8;
    for chunk in data.chunks_mut(32) {
        let mut h = Hasher::new(HashAlg::Sm3);
        for part in z {
            h.update(part);
        }
        h.update(&ct.to_be_bytes());
        let mut t = Zeroizing::new(h.finish());
        for (c, k) in chunk.iter_mut().zip(t.iter()) {
            *c ^= k;
            acc |= k;
        }
        t.zeroize();
        ct = ct.wrapping_add(1);
    }
    acc == 0
}

fn sm3_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Hasher::new(HashAlg::Sm3);
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finish());
    out
}

/// GB/T 32918.4 §6.1 A1–A8, C1‖C3‖C2, drawing nonces from `next`; k·P from P's
/// fixed-base table when there is one.
fn encrypt_to(
    p: &Affine,
    comb: Option<&table::KeyComb>,
    msg: &[u8],
    mut next: impl FnMut() -> Result<Nonce>,
) -> Result<Vec<u8>> {
    if msg.is_empty() {
        return Err(Error::invalid_arg("SM2 cannot encrypt an empty message"));
    }
    for _ in 0..64 {
        let n = next()?;
        // A2: C1 = [k]G. A4: (x2, y2) = [k]P.
        let kc = Zeroizing::new(n.k.to_canonical());
        let kp = match comb {
            Some(c) => {
                let (a, exc) = Backends::current().run(MulComb(c, &kc));
                if bool::from(exc) {
                    reference_mul(Some(p), &kc)?
                } else {
                    a
                }
            }
            None => mul_point(p, &kc)?,
        };
        let Some(kp) = kp else {
            continue;
        };
        let x2 = Zeroizing::new(kp.x.to_be_bytes());
        let y2 = Zeroizing::new(kp.y.to_be_bytes());
        // A5: t = KDF(x2‖y2, klen), retry if all zero; A6: C2 = M xor t.
        let mut out = Vec::with_capacity(65 + 32 + msg.len());
        out.extend_from_slice(&n.point.to_uncompressed());
        // A7: C3 = SM3(x2‖M‖y2).
        out.extend_from_slice(&sm3_parts(&[&x2[..], msg, &y2[..]]));
        out.extend_from_slice(msg);
        if kdf_xor(&[&x2[..], &y2[..]], &mut out[97..]) {
            continue;
        }
        return Ok(out);
    }
    Err(Error::internal("SM2 encryption found no usable k"))
}

/// GB/T 32918.4 §7.1 B1–B7 on C1‖C3‖C2.
fn decrypt_with(d: &SecretSc, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if ct.len() < 65 + 32 + 1 {
        return Err(Error::DecryptFailed);
    }
    // B1: C1 on the curve (h = 1, so B2 holds too).
    let c1 = Affine::from_uncompressed(&ct[..65]).ok_or(Error::DecryptFailed)?;
    let (c3, c2) = ct[65..].split_at(32);
    // B3: (x2, y2) = [d]C1.
    let s = mul_point(&c1, &d.canonical())?.ok_or(Error::DecryptFailed)?;
    let x2 = Zeroizing::new(s.x.to_be_bytes());
    let y2 = Zeroizing::new(s.y.to_be_bytes());
    // B4, B5: M' = C2 xor KDF(x2‖y2, klen), the key stream not all zero.
    let mut m = Zeroizing::new(c2.to_vec());
    if kdf_xor(&[&x2[..], &y2[..]], &mut m) {
        return Err(Error::DecryptFailed);
    }
    // B6: u = SM3(x2‖M'‖y2) == C3.
    let u = sm3_parts(&[&x2[..], &m[..], &y2[..]]);
    if bool::from(u.ct_eq(c3)) {
        Ok(m)
    } else {
        Err(Error::DecryptFailed)
    }
}

impl PrivateKeyOps for FastPrivate {
    fn public_spki(&self) -> Result<std::sync::Arc<[u8]>> {
        crate::crypto::keys::ec_spki_der(KeyAlg::Sm2, &self.point)
    }

    fn sign(&self, mech: &SignMech, data: &[u8]) -> Result<Vec<u8>> {
        let ctx = self.ctx()?;
        let e = match mech {
            SignMech::Sm2Sm3 { id } if id.as_slice() == front::DEFAULT_ID => {
                e_from_z(&ctx.z_default, data)
            }
            SignMech::Sm2Sm3 { id } => e_from_z(&front::z_value(&self.point, id)?, data),
            SignMech::Sm2Prehashed => prehashed(data)?,
            other => {
                return Err(Error::KeyType(format!(
                    "{other:?} cannot be used with an SM2 key"
                )));
            }
        };
        Ok(sign_e(&self.d.0, &ctx.dinv1.0, &e, next_nonce)?.to_vec())
    }

    fn decrypt(&self, mech: &DecMech, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        match mech {
            EncMech::Sm2 => decrypt_with(&self.d, data),
            other => Err(Error::KeyType(format!(
                "{other:?} cannot be used with an SM2 key"
            ))),
        }
    }

    /// Plain ECDH on the SM2 curve (PKCS#11 CKM_ECDH1_DERIVE on an SM2 key): x([d]Q),
    /// the peer point checked to be on the curve.
    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        front::check_point_encoding(peer_point)?;
        let q = Affine::from_uncompressed(peer_point)
            .ok_or_else(|| Error::invalid_data("SM2 point is not on the curve"))?;
        let shared = mul_point(&q, &self.d.canonical())?
            .ok_or_else(|| Error::invalid_data("SM2 ECDH result is the identity"))?;
        Ok(Zeroizing::new(shared.x.to_be_bytes().to_vec()))
    }
}

/// The DER of an SM2 PKCS#8 PrivateKeyInfo (id-ecPublicKey, the SM2 curve, an
/// ECPrivateKey with the public key), as RustCrypto `sm2` encodes it, around d
/// (32 bytes at `PKCS8_D_AT`) and the point (65 bytes at `PKCS8_POINT_AT`).
const PKCS8_HEAD: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d, 0x04, 0x6d, 0x30, 0x6b, 0x02,
    0x01, 0x01, 0x04, 0x20,
];
const PKCS8_MID: [u8; 7] = [0xa1, 0x44, 0x03, 0x42, 0x00, 0x04, 0x00];
const PKCS8_LEN: usize = PKCS8_HEAD.len() + 32 + 5 + 65;

fn pkcs8_for(d: &SecretSc, point: &[u8; 65]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(PKCS8_LEN));
    out.extend_from_slice(&PKCS8_HEAD);
    out.extend_from_slice(&d.to_bytes()[..]);
    out.extend_from_slice(&PKCS8_MID[..5]);
    out.extend_from_slice(point);
    out
}

impl AsymProvider for FastSm2 {
    fn generate(&self, alg: KeyAlg) -> Result<Zeroizing<Vec<u8>>> {
        if alg != KeyAlg::Sm2 {
            return Err(Error::KeyType(format!("{alg:?} is not SM2")));
        }
        let d = SecretSc::random()?;
        let point = mul_g(&d.canonical())?.to_uncompressed();
        Ok(pkcs8_for(&d, &point))
    }

    fn load_private(&self, alg: KeyAlg, pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>> {
        if alg != KeyAlg::Sm2 {
            return Err(Error::KeyType(format!("{alg:?} is not SM2")));
        }
        let d = reference::scalar_from_pkcs8(pkcs8)?;
        let d = SecretSc::from_slice(&d.to_bytes()[..])?;
        Ok(Box::new(FastPrivate::new(d)?))
    }

    fn verify(&self, key: &PublicKey, mech: &SignMech, data: &[u8], sig: &[u8]) -> Result<()> {
        let point = key
            .ec_point()
            .ok_or_else(|| Error::invalid_data("SM2 public key without a point"))?;
        let entry = pub_entry(&point)?;
        let e = match mech {
            SignMech::Sm2Sm3 { id } if id.as_slice() == front::DEFAULT_ID => {
                let z = entry
                    .z_default
                    .get_or_init(|| front::z_value(&point, front::DEFAULT_ID));
                match z {
                    Ok(z) => e_from_z(z, data),
                    Err(e) => return Err(Error::invalid_data(e.to_string())),
                }
            }
            SignMech::Sm2Sm3 { id } => e_from_z(&front::z_value(&point, id)?, data),
            SignMech::Sm2Prehashed => prehashed(data)?,
            other => {
                return Err(Error::KeyType(format!(
                    "{other:?} cannot be used with an SM2 key"
                )));
            }
        };
        verify_e(&entry.table, entry.comb(), &e, sig)
    }

    fn encrypt(&self, key: &PublicKey, mech: &EncMech, data: &[u8]) -> Result<Vec<u8>> {
        if *mech != EncMech::Sm2 {
            return Err(Error::KeyType(format!(
                "{mech:?} cannot be used with an SM2 key"
            )));
        }
        let point = key
            .ec_point()
            .ok_or_else(|| Error::invalid_data("SM2 public key without a point"))?;
        let entry = pub_entry(&point)?;
        encrypt_to(&entry.affine, entry.comb(), data, next_nonce)
    }
}

/// Test-only entry points with a given k (GB/T 32918 known answers through this code).
#[cfg(any(test, feature = "test-seams"))]
pub(crate) mod seams {
    use super::*;

    fn fixed(k: &[u8]) -> impl FnMut() -> Result<Nonce> + '_ {
        let mut used = false;
        move || {
            if used {
                return Err(Error::invalid_arg("the fixed k was rejected"));
            }
            used = true;
            nonce_for(&SecretSc::from_slice(k)?)
        }
    }

    /// Signs e with d and the given k; raw r‖s.
    pub(crate) fn sign_with_k(d: &[u8], e: &[u8; 32], k: &[u8]) -> Result<[u8; 64]> {
        let d = SecretSc::from_slice(d)?;
        let ctx = sign_ctx_for(&d, &mul_g(&d.canonical())?.to_uncompressed())
            .map_err(Error::invalid_data)?;
        sign_e(&d.0, &ctx.dinv1.0, e, fixed(k))
    }

    /// Encrypts to `point` with the given k; C1‖C3‖C2.
    pub(crate) fn encrypt_with_k(point: &[u8], msg: &[u8], k: &[u8]) -> Result<Vec<u8>> {
        front::check_point_encoding(point)?;
        let p = Affine::from_uncompressed(point)
            .ok_or_else(|| Error::invalid_data("SM2 point is not on the curve"))?;
        encrypt_to(&p, None, msg, fixed(k))
    }
}

#[cfg(test)]
mod tests;
