//! PKCS#11 benchmark: libukey_pkcs11.so and SoftHSM2 through one harness (the `cryptoki`
//! crate), side by side in one run, next to the same operations called directly on
//! token-hal's crypto backend.
//!
//! `scripts/bench-pkcs11.sh` builds the release module and runs this
//! (`cargo bench -p ukey-tests --bench p11bench`). Environment:
//! - `P11BENCH_MODULE`: the ukey module (default `target/release/libukey_pkcs11.so`);
//! - `P11BENCH_PEER`: the peer (default `/usr/lib/softhsm/libsofthsm2.so`);
//! - `P11BENCH_SECS`: each column runs 3 × this in all (default 0.5), split into
//!   `P11BENCH_ROUNDS` samples (default 15);
//! - `P11BENCH_ONLY`: only the rows whose name contains this (for profiling).
//!
//! Each row runs rounds that sample its three columns (ukey, SoftHSM2, backend) back to
//! back, and the ratios are medians of per-round ratios, so a change of the shared
//! machine's speed between rounds cancels out of them; rates are per second of the
//! calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so time the machine gives to
//! other processes is not counted (every module works in the calling thread).
//!
//! Both modules get a fresh token in a temporary directory, initialised through PKCS#11
//! (`C_InitToken` on the free slot, `C_InitPIN`), and the same calls: token keys for sign,
//! verify and encryption; session objects for key-pair generation. Single-part calls go
//! through cryptoki's two-call length protocol on both. The process re-runs itself with
//! `UKEY_CONF` and `SOFTHSM2_CONF` pointing at the temporary stores, so nothing outside it
//! is read or written.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use token_hal::crypto::hash::{self, HashAlg};
use token_hal::crypto::sm2::DEFAULT_ID;
use token_hal::crypto::sym::{Direction, SymAlg, SymCipher, SymMode};
use token_hal::crypto::{KeyAlg, PrivateKey, SignMech};

const MIB: usize = 1 << 20;
const SO_PIN: &str = "12345678";
const PIN: &str = "123456";
/// OID 1.2.840.10045.3.1.7 (P-256) as CKA_EC_PARAMS.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// OID 1.2.156.10197.1.301 (SM2) as CKA_EC_PARAMS.
const SM2_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
/// DigestInfo prefix of SHA-256 (19 bytes); with the digest, 51 bytes.
const SHA256_DI: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

// ukey's vendor values (include/ukey_pkcs11.h).
const CKK_SM2: u64 = 0x8000_0004;
const CKK_SM4: u64 = 0x8000_0002;
const CKM_SM2_KEY_PAIR_GEN: u64 = 0x8000_8001;
const CKM_SM3_SM2: u64 = 0x8000_8100;
const CKM_SM3: u64 = 0x8000_0005;
const CKM_SM4_KEY_GEN: u64 = 0x8000_0107;
const CKM_SM4_CBC: u64 = 0x8000_0109;
const CKM_UKEY_SM4_CTR: u64 = 0x8055_4B02;

fn main() {
    if std::env::var_os("P11BENCH_CHILD").is_none() {
        std::process::exit(parent());
    }
    child();
}

/// Makes the temporary stores and runs this binary again with them in the environment.
fn parent() -> i32 {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let module = std::env::var_os("P11BENCH_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/libukey_pkcs11.so"));
    if !module.exists() {
        eprintln!(
            "{} is missing: `cargo build --release -p pkcs11-module` (scripts/bench-pkcs11.sh does)",
            module.display()
        );
        return 1;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let conf = tmp.path().join("ukey.toml");
    std::fs::write(
        &conf,
        format!(
            "data_dir = \"{}\"\n[soft]\nkdf_iterations = 1000\n",
            tmp.path().join("ukey-data").display()
        ),
    )
    .expect("write ukey.toml");
    let tokens = tmp.path().join("softhsm-tokens");
    std::fs::create_dir_all(&tokens).expect("tokendir");
    let shconf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &shconf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("write softhsm2.conf");
    let status = Command::new(std::env::current_exe().expect("own path"))
        .args(std::env::args_os().skip(1))
        .env("P11BENCH_CHILD", "1")
        .env("P11BENCH_MODULE", &module)
        .env("UKEY_CONF", &conf)
        .env_remove("UKEY_DATA_DIR")
        .env("SOFTHSM2_CONF", &shconf)
        .status()
        .expect("run the benchmark child");
    status.code().unwrap_or(1)
}

/// One benchmarked operation: a plain call, or a call that returns the duration of its
/// timed part (setup and cleanup excluded).
enum Op<'a> {
    Plain(Box<dyn FnMut() -> Result<(), String> + 'a>),
    /// Runs a batch and returns the CPU time of its timed part and how many calls it made.
    Timed(Box<dyn FnMut() -> Result<(Duration, u64), String> + 'a>),
}

impl<'a> Op<'a> {
    fn plain(f: impl FnMut() -> Result<(), String> + 'a) -> Self {
        Op::Plain(Box::new(f))
    }
    fn timed(f: impl FnMut() -> Result<(Duration, u64), String> + 'a) -> Self {
        Op::Timed(Box::new(f))
    }
    /// Calls per second of this thread's CPU time, over about `secs` seconds of wall
    /// time (timed part only for `Timed`).
    fn sample(&mut self, secs: f64) -> Result<f64, String> {
        let start = Instant::now();
        let mut n = 0u64;
        match self {
            Op::Plain(f) => {
                let cpu = cpu_now();
                while start.elapsed().as_secs_f64() < secs {
                    f()?;
                    n += 1;
                }
                Ok(n as f64 / (cpu_now() - cpu).as_secs_f64())
            }
            Op::Timed(f) => {
                let mut busy = Duration::ZERO;
                while start.elapsed().as_secs_f64() < secs {
                    let (t, k) = f()?;
                    busy += t;
                    n += k;
                }
                Ok(n as f64 / busy.as_secs_f64())
            }
        }
    }
}

/// CPU time of the calling thread. Every module does its work in the calling thread, so
/// rates per CPU second do not count the time the shared machine gives to other processes.
fn cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The columns measured side by side: ukey, SoftHSM2, the backend.
const COLS: [&str; 3] = ["ukey", "SoftHSM2", "backend"];

/// What [`measure`] found for one row: each column's rate (the median of its samples), and
/// ukey against SoftHSM2 and against the backend as medians of per-round ratios.
struct Measured {
    rate: [Option<f64>; 3],
    vs_peer: Option<f64>,
    vs_backend: Option<f64>,
}

/// Measures one row: each column warms up for 0.1 s, then `rounds` rounds each take one
/// short sample (`3 × secs / rounds` s) of every column back to back, in a rotating order.
/// Rates are the medians of the samples; the ratios are medians of the ratios within a
/// round, a paired comparison that a change of the shared machine's speed between rounds
/// does not move.
fn measure(secs: f64, rounds: usize, what: &str, ops: &mut [Option<Op<'_>>; 3]) -> Measured {
    let mut samples: [Vec<f64>; 3] = Default::default();
    let mut vs: [Vec<f64>; 3] = Default::default();
    for (c, op) in ops.iter_mut().enumerate() {
        if let Some(o) = op
            && let Err(err) = o.sample(0.1)
        {
            eprintln!("  {}: {what}: {err}", COLS[c]);
            *op = None;
        }
    }
    let rounds = rounds.max(3);
    let slice = 3.0 * secs / rounds as f64;
    for round in 0..rounds {
        let mut this: [Option<f64>; 3] = [None; 3];
        for k in 0..ops.len() {
            let c = (k + round) % ops.len();
            if let Some(o) = &mut ops[c] {
                match o.sample(slice) {
                    Ok(v) => {
                        samples[c].push(v);
                        this[c] = Some(v);
                    }
                    Err(err) => {
                        eprintln!("  {}: {what}: {err}", COLS[c]);
                        ops[c] = None;
                    }
                }
            }
        }
        if let Some(u) = this[0] {
            for c in [1, 2] {
                if let Some(v) = this[c].filter(|v| *v > 0.0) {
                    vs[c].push(u / v);
                }
            }
        }
    }
    let median = |v: &mut Vec<f64>| -> Option<f64> {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        (n > 0).then(|| {
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        })
    };
    let alive = |c: usize| ops[c].is_some();
    let rate = std::array::from_fn(|c| alive(c).then(|| median(&mut samples[c])).flatten());
    let mut paired = |c: usize| (alive(0) && alive(c)).then(|| median(&mut vs[c])).flatten();
    Measured {
        vs_peer: paired(1),
        vs_backend: paired(2),
        rate,
    }
}

fn e(x: impl std::fmt::Display) -> String {
    x.to_string()
}

/// One module with a logged-in session on a fresh token.
struct Module {
    name: &'static str,
    // The session borrows nothing, but must be dropped before the context is finalised.
    session: Session,
    _p11: Pkcs11,
}

impl Module {
    fn open(name: &'static str, path: &PathBuf, label: &str) -> Result<Module, String> {
        let p11 = Pkcs11::new(path).map_err(e)?;
        p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(e)?;
        let free = p11
            .get_slots_with_token()
            .map_err(e)?
            .into_iter()
            .find(|s| p11.get_token_info(*s).is_ok_and(|t| !t.token_initialized()))
            .ok_or("no free slot")?;
        p11.init_token(free, &AuthPin::new(SO_PIN.into()), label)
            .map_err(e)?;
        // Slot ids may change after C_InitToken (SoftHSM2 reassigns them): find it by label.
        let slot = p11
            .get_slots_with_token()
            .map_err(e)?
            .into_iter()
            .find(|s| p11.get_token_info(*s).is_ok_and(|t| t.label() == label))
            .ok_or("the new token is not listed")?;
        {
            let so = p11.open_rw_session(slot).map_err(e)?;
            so.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
                .map_err(e)?;
            so.init_pin(&AuthPin::new(PIN.into())).map_err(e)?;
        }
        let session = p11.open_rw_session(slot).map_err(e)?;
        session
            .login(UserType::User, Some(&AuthPin::new(PIN.into())))
            .map_err(e)?;
        Ok(Module {
            name,
            session,
            _p11: p11,
        })
    }

    /// The public and private templates of a signing key pair.
    fn pair_templates(
        mut public: Vec<Attribute>,
        mut private: Vec<Attribute>,
        token: bool,
    ) -> (Vec<Attribute>, Vec<Attribute>) {
        public.extend([Attribute::Token(token), Attribute::Verify(true)]);
        private.extend([
            Attribute::Token(token),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
        ]);
        (public, private)
    }

    fn keypair(
        &self,
        mech: &Mechanism,
        public: Vec<Attribute>,
        private: Vec<Attribute>,
        token: bool,
    ) -> Result<(ObjectHandle, ObjectHandle), String> {
        let (public, private) = Self::pair_templates(public, private, token);
        self.session
            .generate_key_pair(mech, &public, &private)
            .map_err(e)
    }

    fn secret(&self, mech: &Mechanism, extra: Vec<Attribute>) -> Result<ObjectHandle, String> {
        let mut t = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ];
        t.extend(extra);
        self.session.generate_key(mech, &t).map_err(e)
    }
}

fn vendor(m: u64) -> MechanismType {
    MechanismType::new_vendor_defined(m).expect("a vendor mechanism value")
}

/// The rows: operation, unit, target of ukey/SoftHSM2, and whether a call handles 1 MiB
/// (the figure is then MB/s).
const ROWS: [(&str, &str, &str, bool); 12] = [
    ("ECDSA P-256 sign (CKM_ECDSA)", "ops/s", ">=1.5x", false),
    ("ECDSA P-256 verify", "ops/s", ">=1x", false),
    (
        "RSA-2048 sign (CKM_RSA_PKCS, 51 B)",
        "ops/s",
        ">=1.5x",
        false,
    ),
    ("AES-128-CBC encrypt, 1 MiB", "MB/s", ">=1.5x", true),
    ("SHA-256, 1 MiB", "MB/s", "-", true),
    ("P-256 key-pair gen (session)", "ops/s", ">=1.5x", false),
    ("C_GetSessionInfo", "calls/s", ">=1.5x", false),
    ("SM2 sign (CKM_SM3_SM2, 32 B)", "ops/s", "-", false),
    ("SM2 verify (CKM_SM3_SM2)", "ops/s", "-", false),
    ("SM4-CBC encrypt, 1 MiB", "MB/s", "-", true),
    ("SM4-CTR encrypt, 1 MiB", "MB/s", "-", true),
    ("SM3, 1 MiB", "MB/s", "-", true),
];
const ECDSA_SIGN: usize = 0;
const ECDSA_VERIFY: usize = 1;
const RSA_SIGN: usize = 2;
const AES_CBC: usize = 3;
const SHA256: usize = 4;
const P256_KEYGEN: usize = 5;
const SESSION_INFO: usize = 6;
const SM2_SIGN: usize = 7;
const SM2_VERIFY: usize = 8;
const SM4_CBC: usize = 9;
const SM4_CTR: usize = 10;
const SM3: usize = 11;

/// The operations of one column, by row; `None` where it does not offer one.
type Ops<'a> = Vec<Option<Op<'a>>>;

/// The inputs every column works on.
struct Inputs {
    /// SHA-256 of a short message: the ECDSA and SM2 input.
    hash32: Vec<u8>,
    /// The SHA-256 DigestInfo of `hash32` (51 bytes): the RSA input.
    di: Vec<u8>,
    /// 1 MiB for the bulk rows.
    data: Vec<u8>,
    iv: [u8; 16],
    ctr: cryptoki_sys::CK_AES_CTR_PARAMS,
}

impl Inputs {
    fn new() -> Self {
        let hash32 = hash::digest(HashAlg::Sha256, b"benchmark message");
        let mut di = SHA256_DI.to_vec();
        di.extend_from_slice(&hash32);
        Inputs {
            hash32,
            di,
            data: vec![0xa5u8; MIB],
            iv: [9u8; 16],
            ctr: cryptoki_sys::CK_AES_CTR_PARAMS {
                ulCounterBits: 128,
                cb: [3u8; 16],
            },
        }
    }
}

fn no_ops<'a>() -> Ops<'a> {
    (0..ROWS.len()).map(|_| None).collect()
}

/// Sets up the keys of a module and returns its operations. Both modules get the same
/// calls through cryptoki: single-part calls use its two-call length protocol (a size
/// query, then the call with a fresh buffer of that size).
fn module_ops<'a>(m: &'a Module, inp: &'a Inputs, sm: bool) -> Ops<'a> {
    let s = &m.session;
    let mut ops = no_ops();
    let fail = |what: &str, err: String| eprintln!("  {}: {what}: {err}", m.name);

    // ECDSA P-256 (token key pair), CKM_ECDSA over a 32-byte hash.
    match m.keypair(
        &Mechanism::EccKeyPairGen,
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
        true,
    ) {
        Ok((pubk, privk)) => {
            ops[ECDSA_SIGN] = Some(Op::plain(move || {
                s.sign(&Mechanism::Ecdsa, privk, black_box(&inp.hash32))
                    .map(drop)
                    .map_err(e)
            }));
            match s.sign(&Mechanism::Ecdsa, privk, &inp.hash32) {
                Ok(sig) => {
                    ops[ECDSA_VERIFY] = Some(Op::plain(move || {
                        s.verify(&Mechanism::Ecdsa, pubk, black_box(&inp.hash32), &sig)
                            .map_err(e)
                    }))
                }
                Err(err) => fail("ECDSA sign", e(err)),
            }
        }
        Err(err) => fail("P-256 key pair", err),
    }

    // RSA-2048 CKM_RSA_PKCS over a 51-byte DigestInfo.
    match m.keypair(
        &Mechanism::RsaPkcsKeyPairGen,
        vec![
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
        ],
        vec![],
        true,
    ) {
        Ok((_, privk)) => {
            ops[RSA_SIGN] = Some(Op::plain(move || {
                s.sign(&Mechanism::RsaPkcs, privk, black_box(&inp.di))
                    .map(drop)
                    .map_err(e)
            }))
        }
        Err(err) => fail("RSA key pair", err),
    }

    // AES-128-CBC encryption of 1 MiB per call.
    match m.secret(&Mechanism::AesKeyGen, vec![Attribute::ValueLen(16.into())]) {
        Ok(k) => {
            ops[AES_CBC] = Some(Op::plain(move || {
                s.encrypt(&Mechanism::AesCbc([7u8; 16]), k, black_box(&inp.data))
                    .map(drop)
                    .map_err(e)
            }))
        }
        Err(err) => fail("AES key", err),
    }

    // SHA-256 of 1 MiB per call.
    ops[SHA256] = Some(Op::plain(move || {
        s.digest(&Mechanism::Sha256, black_box(&inp.data))
            .map(drop)
            .map_err(e)
    }));

    // P-256 key-pair generation as session objects, timed in batches (one pair of clock
    // readings per batch, not per call: reading the thread's CPU clock is a system call
    // of about 0.35 µs here) and destroyed outside the timed part.
    ops[P256_KEYGEN] = Some(Op::timed(move || {
        const BATCH: usize = 16;
        // The caller's templates are ready before the clock starts, as an application's
        // would be; cryptoki still converts them on every call.
        let (public, private) = Module::pair_templates(
            vec![Attribute::EcParams(P256_PARAMS.to_vec())],
            vec![],
            false,
        );
        let mut made = Vec::with_capacity(BATCH);
        let t = cpu_now();
        for _ in 0..BATCH {
            made.push(
                m.session
                    .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
                    .map_err(e)?,
            );
        }
        let took = cpu_now() - t;
        for (a, b) in made {
            s.destroy_object(a).map_err(e)?;
            s.destroy_object(b).map_err(e)?;
        }
        Ok((took, BATCH as u64))
    }));

    // The per-call floor.
    ops[SESSION_INFO] = Some(Op::plain(move || s.get_session_info().map(drop).map_err(e)));

    if !sm {
        return ops;
    }
    // SM2 (token key pair): SM3-with-SM2 with the default ID over a 32-byte message.
    let sm3sm2 =
        Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(vendor(CKM_SM3_SM2), None));
    match m.keypair(
        &Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
            vendor(CKM_SM2_KEY_PAIR_GEN),
            None,
        )),
        vec![
            Attribute::KeyType(KeyType::new_vendor_defined(CKK_SM2).expect("CKK_SM2")),
            Attribute::EcParams(SM2_PARAMS.to_vec()),
        ],
        vec![Attribute::KeyType(
            KeyType::new_vendor_defined(CKK_SM2).expect("CKK_SM2"),
        )],
        true,
    ) {
        Ok((pubk, privk)) => {
            let mech = Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
                vendor(CKM_SM3_SM2),
                None,
            ));
            ops[SM2_SIGN] = Some(Op::plain(move || {
                s.sign(&mech, privk, black_box(&inp.hash32))
                    .map(drop)
                    .map_err(e)
            }));
            match s.sign(&sm3sm2, privk, &inp.hash32) {
                Ok(sig) => {
                    ops[SM2_VERIFY] = Some(Op::plain(move || {
                        s.verify(&sm3sm2, pubk, black_box(&inp.hash32), &sig)
                            .map_err(e)
                    }))
                }
                Err(err) => fail("SM2 sign", e(err)),
            }
        }
        Err(err) => fail("SM2 key pair", err),
    }

    // SM4-CBC and SM4-CTR, 1 MiB per call.
    match m.secret(
        &Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
            vendor(CKM_SM4_KEY_GEN),
            None,
        )),
        vec![
            Attribute::KeyType(KeyType::new_vendor_defined(CKK_SM4).expect("CKK_SM4")),
            Attribute::ValueLen(16.into()),
        ],
    ) {
        Ok(k) => {
            let cbc = Mechanism::VendorDefined(VendorDefinedMechanism::new(
                vendor(CKM_SM4_CBC),
                Some(&inp.iv),
            ));
            let ctr = Mechanism::VendorDefined(VendorDefinedMechanism::new(
                vendor(CKM_UKEY_SM4_CTR),
                Some(&inp.ctr),
            ));
            ops[SM4_CBC] = Some(Op::plain(move || {
                s.encrypt(&cbc, k, black_box(&inp.data))
                    .map(drop)
                    .map_err(e)
            }));
            ops[SM4_CTR] = Some(Op::plain(move || {
                s.encrypt(&ctr, k, black_box(&inp.data))
                    .map(drop)
                    .map_err(e)
            }));
        }
        Err(err) => fail("SM4 key", err),
    }
    let sm3 = Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(vendor(CKM_SM3), None));
    ops[SM3] = Some(Op::plain(move || {
        s.digest(&sm3, black_box(&inp.data)).map(drop).map_err(e)
    }));
    ops
}

/// The same operations on token-hal's crypto backend, with keys parsed once (as the
/// module does per key handle). Cipher rows start a cipher per call, as C_EncryptInit
/// does, and return the output in a fresh buffer of its size, as the PKCS#11 caller gets.
fn backend_ops(inp: &Inputs) -> Ops<'_> {
    let ok = |r: token_hal::Result<()>| r.map_err(e);
    let mut ops = no_ops();

    let p256 = PrivateKey::generate(KeyAlg::EcP256).expect("P-256 key");
    let p256_pub = p256.public_key().expect("P-256 public key");
    let sig = p256
        .sign(&SignMech::EcdsaPrehashed, &inp.hash32)
        .expect("ECDSA sign");
    ops[ECDSA_SIGN] = Some(Op::plain(move || {
        ok(p256
            .sign(&SignMech::EcdsaPrehashed, black_box(&inp.hash32))
            .map(drop))
    }));
    ops[ECDSA_VERIFY] = Some(Op::plain(move || {
        ok(p256_pub.verify(&SignMech::EcdsaPrehashed, black_box(&inp.hash32), &sig))
    }));
    let rsa = PrivateKey::generate(KeyAlg::Rsa(2048)).expect("RSA key");
    ops[RSA_SIGN] = Some(Op::plain(move || {
        ok(rsa
            .sign(&SignMech::RsaPkcs1Raw, black_box(&inp.di))
            .map(drop))
    }));
    let sym = |alg: SymAlg, mode: SymMode, key: [u8; 16]| {
        Op::plain(move || {
            let c = SymCipher::new(alg, mode, Direction::Encrypt, &key, &[7u8; 16]).map_err(e)?;
            let mut out = vec![0u8; c.single_part_len(MIB).ok_or("no length")?];
            let n = c.finish_into(black_box(&inp.data), &mut out).map_err(e)?;
            black_box(&out[..n]);
            Ok(())
        })
    };
    ops[AES_CBC] = Some(sym(SymAlg::Aes, SymMode::Cbc, [1u8; 16]));
    ops[SHA256] = Some(Op::plain(move || {
        black_box(hash::digest(HashAlg::Sha256, black_box(&inp.data)));
        Ok(())
    }));
    ops[P256_KEYGEN] = Some(Op::plain(move || {
        // A pair: the private key and its public half (C_GenerateKeyPair makes both).
        ok(PrivateKey::generate(KeyAlg::EcP256)
            .and_then(|k| k.public_key().map(|p| drop(black_box((k, p))))))
    }));
    let sm2 = PrivateKey::generate(KeyAlg::Sm2).expect("SM2 key");
    let sm2_pub = sm2.public_key().expect("SM2 public key");
    let mech = SignMech::Sm2Sm3 {
        id: DEFAULT_ID.to_vec(),
    };
    let ssig = sm2.sign(&mech, &inp.hash32).expect("SM2 sign");
    let mech2 = mech.clone();
    ops[SM2_SIGN] = Some(Op::plain(move || {
        ok(sm2.sign(&mech, black_box(&inp.hash32)).map(drop))
    }));
    ops[SM2_VERIFY] = Some(Op::plain(move || {
        ok(sm2_pub.verify(&mech2, black_box(&inp.hash32), &ssig))
    }));
    ops[SM4_CBC] = Some(sym(SymAlg::Sm4, SymMode::Cbc, [1u8; 16]));
    ops[SM4_CTR] = Some(sym(SymAlg::Sm4, SymMode::Ctr, [1u8; 16]));
    ops[SM3] = Some(Op::plain(move || {
        black_box(hash::digest(HashAlg::Sm3, black_box(&inp.data)));
        Ok(())
    }));
    ops
}

fn child() {
    let secs: f64 = std::env::var("P11BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    let rounds: usize = std::env::var("P11BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|r: &usize| *r >= 3)
        .unwrap_or(15);
    // P11BENCH_ONLY=word: only the rows whose name contains it (for profiling).
    let only = std::env::var("P11BENCH_ONLY").unwrap_or_default();
    let module = PathBuf::from(std::env::var_os("P11BENCH_MODULE").expect("P11BENCH_MODULE"));
    let peer = PathBuf::from(
        std::env::var_os("P11BENCH_PEER")
            .unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into()),
    );
    println!("ukey:     {}", module.display());
    println!("SoftHSM2: {}", peer.display());
    println!(
        "({rounds} rounds, each one sample of {:.3} s of every column back to back in a \
         rotating order; rates are medians of the samples, ratios medians of the per-round \
         ratios; per second of the calling thread's CPU time; ops/s, or MB/s = 10^6 B/s)",
        3.0 * secs / rounds as f64
    );

    let inp = Inputs::new();
    let ukey = Module::open("ukey", &module, "bench-ukey")
        .map_err(|err| eprintln!("ukey: cannot open a token: {err}"))
        .ok();
    let softhsm = if peer.exists() {
        Module::open("SoftHSM2", &peer, "bench-softhsm")
            .map_err(|err| eprintln!("SoftHSM2: cannot open a token: {err}"))
            .ok()
    } else {
        eprintln!(
            "{} is missing: run scripts/setup.sh (package softhsm2)",
            peer.display()
        );
        None
    };
    let mut cols: [Ops<'_>; 3] = [
        ukey.as_ref()
            .map_or_else(no_ops, |m| module_ops(m, &inp, true)),
        softhsm
            .as_ref()
            .map_or_else(no_ops, |m| module_ops(m, &inp, false)),
        backend_ops(&inp),
    ];

    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    println!();
    println!(
        "{:<36} {:>7} {:>12} {:>12} {:>9} {:>7} {:>12} {:>11}",
        "operation", "unit", "ukey", "SoftHSM2", "ukey/shsm", "target", "backend", "ukey/backend"
    );
    for (r, (name, unit, target, mb)) in ROWS.iter().enumerate() {
        if !name.contains(only.as_str()) {
            continue;
        }
        let mut ops = [cols[0][r].take(), cols[1][r].take(), cols[2][r].take()];
        let m = measure(secs, rounds, name, &mut ops);
        let f = m
            .rate
            .map(|v| v.map(|ops| if *mb { ops * MIB as f64 / 1e6 } else { ops }));
        let ratio = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
        println!(
            "{:<36} {:>7} {:>12} {:>12} {:>9} {:>7} {:>12} {:>11}",
            name,
            unit,
            fmt(f[0]),
            fmt(f[1]),
            ratio(m.vs_peer),
            target,
            fmt(f[2]),
            ratio(m.vs_backend),
        );
    }
    println!();
    println!(
        "ukey/backend: the PKCS#11 call over the same operation on token-hal's crypto provider \
         (target >= 0.90x; SHA-256 >= 0.95x). The backend has no per-call object or session cost; \
         its C_GetSessionInfo row is empty."
    );
    // The operations borrow the sessions: drop them before the modules are finalised.
    drop(cols);
}
