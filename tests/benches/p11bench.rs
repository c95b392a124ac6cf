//! PKCS#11 benchmark: libukey_pkcs11.so and SoftHSM2 through one harness (the `cryptoki`
//! crate), side by side in one run, next to the same operations called directly on
//! token-hal's crypto backend.
//!
//! `scripts/bench-pkcs11.sh` builds the release module and runs this
//! (`cargo bench -p ukey-tests --bench p11bench`). Environment:
//! - `P11BENCH_MODULE`: the ukey module (default `target/release/libukey_pkcs11.so`);
//! - `P11BENCH_PEER`: the peer (default `/usr/lib/softhsm/libsofthsm2.so`);
//! - `P11BENCH_SECS`: seconds per sample (default 0.5); each figure is the median of 3.
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

/// Median of three samples of `f`, in calls per second.
fn rate(secs: f64, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(100) {
        f()?;
    }
    let mut samples = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            f()?;
            n += 1;
        }
        samples.push(n as f64 / start.elapsed().as_secs_f64());
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok(samples[1])
}

/// Like [`rate`], but only the time inside `f`'s timed part counts (`f` returns it).
fn rate_timed(secs: f64, mut f: impl FnMut() -> Result<Duration, String>) -> Result<f64, String> {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(100) {
        f()?;
    }
    let mut samples = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let mut busy = Duration::ZERO;
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            busy += f()?;
            n += 1;
        }
        samples.push(n as f64 / busy.as_secs_f64());
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok(samples[1])
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

    fn keypair(
        &self,
        mech: &Mechanism,
        mut public: Vec<Attribute>,
        mut private: Vec<Attribute>,
        token: bool,
    ) -> Result<(ObjectHandle, ObjectHandle), String> {
        public.extend([Attribute::Token(token), Attribute::Verify(true)]);
        private.extend([
            Attribute::Token(token),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
        ]);
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

/// The benchmarked operations; `None` where a module does not offer one.
#[derive(Default, Clone, Copy)]
struct Figures {
    ecdsa_sign: Option<f64>,
    ecdsa_verify: Option<f64>,
    rsa_sign: Option<f64>,
    aes_cbc: Option<f64>,
    sha256: Option<f64>,
    p256_keygen: Option<f64>,
    session_info: Option<f64>,
    sm2_sign: Option<f64>,
    sm2_verify: Option<f64>,
    sm4_cbc: Option<f64>,
    sm4_ctr: Option<f64>,
    sm3: Option<f64>,
}

/// Runs one row, printing (not aborting on) an error.
fn row(module: &str, what: &str, r: Result<f64, String>) -> Option<f64> {
    match r {
        Ok(v) => Some(v),
        Err(err) => {
            eprintln!("  {module}: {what}: {err}");
            None
        }
    }
}

fn bench_module(m: &Module, secs: f64, sm: bool) -> Figures {
    let s = &m.session;
    let mut f = Figures::default();
    let hash32 = hash::digest(HashAlg::Sha256, b"benchmark message");
    let data = vec![0xa5u8; MIB];
    let mbs = |r: Result<f64, String>| r.map(|ops| ops * MIB as f64 / 1e6);

    // ECDSA P-256 (token key pair), CKM_ECDSA over a 32-byte hash.
    let ec = m.keypair(
        &Mechanism::EccKeyPairGen,
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
        true,
    );
    match ec {
        Ok((pubk, privk)) => {
            f.ecdsa_sign = row(
                m.name,
                "ECDSA P-256 sign",
                rate(secs, || {
                    s.sign(&Mechanism::Ecdsa, privk, black_box(&hash32))
                        .map(drop)
                        .map_err(e)
                }),
            );
            let sig = s.sign(&Mechanism::Ecdsa, privk, &hash32);
            f.ecdsa_verify = row(
                m.name,
                "ECDSA P-256 verify",
                sig.map_err(e).and_then(|sig| {
                    rate(secs, || {
                        s.verify(&Mechanism::Ecdsa, pubk, black_box(&hash32), &sig)
                            .map_err(e)
                    })
                }),
            );
        }
        Err(err) => eprintln!("  {}: P-256 key pair: {err}", m.name),
    }

    // RSA-2048 CKM_RSA_PKCS over a 51-byte DigestInfo.
    let rsa = m.keypair(
        &Mechanism::RsaPkcsKeyPairGen,
        vec![
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
        ],
        vec![],
        true,
    );
    let mut di = SHA256_DI.to_vec();
    di.extend_from_slice(&hash32);
    f.rsa_sign = row(
        m.name,
        "RSA-2048 sign",
        rsa.and_then(|(_, privk)| {
            rate(secs, || {
                s.sign(&Mechanism::RsaPkcs, privk, black_box(&di))
                    .map(drop)
                    .map_err(e)
            })
        }),
    );

    // AES-128-CBC encryption of 1 MiB per call.
    let aes = m.secret(&Mechanism::AesKeyGen, vec![Attribute::ValueLen(16.into())]);
    f.aes_cbc = row(
        m.name,
        "AES-128-CBC 1 MiB",
        mbs(aes.and_then(|k| {
            rate(secs, || {
                s.encrypt(&Mechanism::AesCbc([7u8; 16]), k, black_box(&data))
                    .map(drop)
                    .map_err(e)
            })
        })),
    );

    // SHA-256 of 1 MiB per call.
    f.sha256 = row(
        m.name,
        "SHA-256 1 MiB",
        mbs(rate(secs, || {
            s.digest(&Mechanism::Sha256, black_box(&data))
                .map(drop)
                .map_err(e)
        })),
    );

    // P-256 key-pair generation as session objects (destroyed outside the timed part).
    f.p256_keygen = row(
        m.name,
        "P-256 key-pair generation",
        rate_timed(secs, || {
            let t = Instant::now();
            let (a, b) = m.keypair(
                &Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(P256_PARAMS.to_vec())],
                vec![],
                false,
            )?;
            let took = t.elapsed();
            s.destroy_object(a).map_err(e)?;
            s.destroy_object(b).map_err(e)?;
            Ok(took)
        }),
    );

    // The per-call floor.
    f.session_info = row(
        m.name,
        "C_GetSessionInfo",
        rate(secs, || s.get_session_info().map(drop).map_err(e)),
    );

    if !sm {
        return f;
    }
    // SM2 (token key pair): SM3-with-SM2 with the default ID over a 32-byte message.
    let sm2 = m.keypair(
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
    );
    let sm3sm2 =
        Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(vendor(CKM_SM3_SM2), None));
    match sm2 {
        Ok((pubk, privk)) => {
            f.sm2_sign = row(
                m.name,
                "SM2 sign",
                rate(secs, || {
                    s.sign(&sm3sm2, privk, black_box(&hash32))
                        .map(drop)
                        .map_err(e)
                }),
            );
            f.sm2_verify = row(
                m.name,
                "SM2 verify",
                s.sign(&sm3sm2, privk, &hash32).map_err(e).and_then(|sig| {
                    rate(secs, || {
                        s.verify(&sm3sm2, pubk, black_box(&hash32), &sig).map_err(e)
                    })
                }),
            );
        }
        Err(err) => eprintln!("  {}: SM2 key pair: {err}", m.name),
    }

    // SM4-CBC and SM4-CTR, 1 MiB per call.
    let sm4 = m.secret(
        &Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
            vendor(CKM_SM4_KEY_GEN),
            None,
        )),
        vec![
            Attribute::KeyType(KeyType::new_vendor_defined(CKK_SM4).expect("CKK_SM4")),
            Attribute::ValueLen(16.into()),
        ],
    );
    let iv = [9u8; 16];
    let cbc = Mechanism::VendorDefined(VendorDefinedMechanism::new(vendor(CKM_SM4_CBC), Some(&iv)));
    let ctr_params = cryptoki_sys::CK_AES_CTR_PARAMS {
        ulCounterBits: 128,
        cb: [3u8; 16],
    };
    let ctr = Mechanism::VendorDefined(VendorDefinedMechanism::new(
        vendor(CKM_UKEY_SM4_CTR),
        Some(&ctr_params),
    ));
    match sm4 {
        Ok(k) => {
            f.sm4_cbc = row(
                m.name,
                "SM4-CBC 1 MiB",
                mbs(rate(secs, || {
                    s.encrypt(&cbc, k, black_box(&data)).map(drop).map_err(e)
                })),
            );
            f.sm4_ctr = row(
                m.name,
                "SM4-CTR 1 MiB",
                mbs(rate(secs, || {
                    s.encrypt(&ctr, k, black_box(&data)).map(drop).map_err(e)
                })),
            );
        }
        Err(err) => eprintln!("  {}: SM4 key: {err}", m.name),
    }
    let sm3 = Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(vendor(CKM_SM3), None));
    f.sm3 = row(
        m.name,
        "SM3 1 MiB",
        mbs(rate(secs, || {
            s.digest(&sm3, black_box(&data)).map(drop).map_err(e)
        })),
    );
    f
}

/// The same operations on token-hal's crypto backend, with keys parsed once.
fn bench_backend(secs: f64) -> Figures {
    let ok = |r: token_hal::Result<()>| r.map_err(e);
    let hash32 = hash::digest(HashAlg::Sha256, b"benchmark message");
    let data = vec![0xa5u8; MIB];
    let mbs = |r: Result<f64, String>| r.map(|ops| ops * MIB as f64 / 1e6);
    let mut f = Figures::default();

    let p256 = PrivateKey::generate(KeyAlg::EcP256).expect("P-256 key");
    let p256_pub = p256.public_key().expect("P-256 public key");
    f.ecdsa_sign = row(
        "backend",
        "ECDSA sign",
        rate(secs, || {
            ok(p256
                .sign(&SignMech::EcdsaPrehashed, black_box(&hash32))
                .map(drop))
        }),
    );
    let sig = p256
        .sign(&SignMech::EcdsaPrehashed, &hash32)
        .expect("ECDSA sign");
    f.ecdsa_verify = row(
        "backend",
        "ECDSA verify",
        rate(secs, || {
            ok(p256_pub.verify(&SignMech::EcdsaPrehashed, black_box(&hash32), &sig))
        }),
    );
    let rsa = PrivateKey::generate(KeyAlg::Rsa(2048)).expect("RSA key");
    let mut di = SHA256_DI.to_vec();
    di.extend_from_slice(&hash32);
    f.rsa_sign = row(
        "backend",
        "RSA sign",
        rate(secs, || {
            ok(rsa.sign(&SignMech::RsaPkcs1Raw, black_box(&di)).map(drop))
        }),
    );
    let sym = |alg: SymAlg, mode: SymMode, key: &[u8]| {
        let mut out = Vec::with_capacity(MIB + 16);
        mbs(rate(secs, || {
            out.clear();
            let mut c =
                SymCipher::new(alg, mode, Direction::Encrypt, key, &[7u8; 16]).map_err(e)?;
            c.update(black_box(&data), &mut out).map_err(e)?;
            c.finalize(&mut out).map_err(e)?;
            black_box(&out);
            Ok(())
        }))
    };
    f.aes_cbc = row(
        "backend",
        "AES-128-CBC",
        sym(SymAlg::Aes, SymMode::Cbc, &[1u8; 16]),
    );
    f.sha256 = row(
        "backend",
        "SHA-256",
        mbs(rate(secs, || {
            black_box(hash::digest(HashAlg::Sha256, black_box(&data)));
            Ok(())
        })),
    );
    f.p256_keygen = row(
        "backend",
        "P-256 keygen",
        rate(secs, || {
            ok(PrivateKey::generate(KeyAlg::EcP256).map(|k| drop(black_box(k))))
        }),
    );
    let sm2 = PrivateKey::generate(KeyAlg::Sm2).expect("SM2 key");
    let sm2_pub = sm2.public_key().expect("SM2 public key");
    let mech = SignMech::Sm2Sm3 {
        id: DEFAULT_ID.to_vec(),
    };
    f.sm2_sign = row(
        "backend",
        "SM2 sign",
        rate(secs, || ok(sm2.sign(&mech, black_box(&hash32)).map(drop))),
    );
    let ssig = sm2.sign(&mech, &hash32).expect("SM2 sign");
    f.sm2_verify = row(
        "backend",
        "SM2 verify",
        rate(secs, || {
            ok(sm2_pub.verify(&mech, black_box(&hash32), &ssig))
        }),
    );
    f.sm4_cbc = row(
        "backend",
        "SM4-CBC",
        sym(SymAlg::Sm4, SymMode::Cbc, &[1u8; 16]),
    );
    f.sm4_ctr = row(
        "backend",
        "SM4-CTR",
        sym(SymAlg::Sm4, SymMode::Ctr, &[1u8; 16]),
    );
    f.sm3 = row(
        "backend",
        "SM3",
        mbs(rate(secs, || {
            black_box(hash::digest(HashAlg::Sm3, black_box(&data)));
            Ok(())
        })),
    );
    f
}

fn child() {
    let secs: f64 = std::env::var("P11BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    let module = PathBuf::from(std::env::var_os("P11BENCH_MODULE").expect("P11BENCH_MODULE"));
    let peer = PathBuf::from(
        std::env::var_os("P11BENCH_PEER")
            .unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into()),
    );
    println!("ukey:     {}", module.display());
    println!("SoftHSM2: {}", peer.display());
    println!("(median of 3 samples of {secs} s each; ops/s, or MB/s = 10^6 B/s)");

    let ukey = match Module::open("ukey", &module, "bench-ukey") {
        Ok(m) => Some(bench_module(&m, secs, true)),
        Err(err) => {
            eprintln!("ukey: cannot open a token: {err}");
            None
        }
    };
    let softhsm = if peer.exists() {
        match Module::open("SoftHSM2", &peer, "bench-softhsm") {
            Ok(m) => Some(bench_module(&m, secs, false)),
            Err(err) => {
                eprintln!("SoftHSM2: cannot open a token: {err}");
                None
            }
        }
    } else {
        eprintln!(
            "{} is missing: run scripts/setup.sh (package softhsm2)",
            peer.display()
        );
        None
    };
    let backend = bench_backend(secs);
    let u = ukey.unwrap_or_default();
    let p = softhsm.unwrap_or_default();

    type Pick = fn(&Figures) -> Option<f64>;
    let rows: [(&str, &str, Pick, &str); 12] = [
        (
            "ECDSA P-256 sign (CKM_ECDSA)",
            "ops/s",
            |f| f.ecdsa_sign,
            ">=1.5x",
        ),
        ("ECDSA P-256 verify", "ops/s", |f| f.ecdsa_verify, ">=1x"),
        (
            "RSA-2048 sign (CKM_RSA_PKCS, 51 B)",
            "ops/s",
            |f| f.rsa_sign,
            ">=1.5x",
        ),
        (
            "AES-128-CBC encrypt, 1 MiB",
            "MB/s",
            |f| f.aes_cbc,
            ">=1.5x",
        ),
        ("SHA-256, 1 MiB", "MB/s", |f| f.sha256, "-"),
        (
            "P-256 key-pair gen (session)",
            "ops/s",
            |f| f.p256_keygen,
            ">=1.5x",
        ),
        ("C_GetSessionInfo", "calls/s", |f| f.session_info, ">=1.5x"),
        ("SM2 sign (CKM_SM3_SM2, 32 B)", "ops/s", |f| f.sm2_sign, "-"),
        ("SM2 verify (CKM_SM3_SM2)", "ops/s", |f| f.sm2_verify, "-"),
        ("SM4-CBC encrypt, 1 MiB", "MB/s", |f| f.sm4_cbc, "-"),
        ("SM4-CTR encrypt, 1 MiB", "MB/s", |f| f.sm4_ctr, "-"),
        ("SM3, 1 MiB", "MB/s", |f| f.sm3, "-"),
    ];
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_string(),
    };
    println!();
    println!(
        "{:<36} {:>7} {:>12} {:>12} {:>9} {:>7} {:>12} {:>11}",
        "operation", "unit", "ukey", "SoftHSM2", "ukey/shsm", "target", "backend", "ukey/backend"
    );
    for (name, unit, pick, target) in rows {
        println!(
            "{:<36} {:>7} {:>12} {:>12} {:>9} {:>7} {:>12} {:>11}",
            name,
            unit,
            fmt(pick(&u)),
            fmt(pick(&p)),
            ratio(pick(&u), pick(&p)),
            target,
            fmt(pick(&backend)),
            ratio(pick(&u), pick(&backend)),
        );
    }
    println!();
    println!(
        "ukey/backend: the PKCS#11 call over the same operation on token-hal's crypto provider \
         (target >= 0.90x; SHA-256 >= 0.95x). The backend has no per-call object or session cost; \
         its C_GetSessionInfo row is empty."
    );
}
