//! Load (issue 7): 16 threads in each of 2 processes on ONE soft token through
//! libukey_pkcs11.so, signing, encrypting, logging in and out, and creating, reading and
//! destroying token objects, for `UKEY_SOAK_SECS` seconds (default 50). At the end every
//! object is accounted for: each one a worker created and did not destroy exists exactly
//! once with its value and privacy, the destroyed ones are gone, nothing else is there, and
//! the store passes SQLite's integrity check.
//!
//! PKCS#11 login state belongs to the application (the process), per token: a C_Logout in
//! one session logs out every session of the process. So in each process, one thread
//! cycles C_Logout / C_Login and checks that private objects and keys are out of reach
//! while logged out; the other 15 take a read gate around the calls that need the login,
//! and make public objects without it, concurrently with the logouts. The two processes
//! log in and out independently (their login states are their own), so the token sees
//! real interleaving of every kind of call while each result stays deterministic.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

const PIN: &str = "123456";
const THREADS: usize = 16;
const PROCESSES: usize = 2;
const P256: &[u8] = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";

fn soak_secs() -> u64 {
    std::env::var("UKEY_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
}

fn is_child(test: &str) -> bool {
    std::env::var("UKEY_SOAK_CHILD").as_deref() == Ok(test)
}

fn soak_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("SOAK_DIR").unwrap())
}

fn p11() -> Pkcs11 {
    let p11 = Pkcs11::new(ukey_tests::pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    p11
}

fn slot(p11: &Pkcs11) -> Slot {
    p11.get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| {
            p11.get_token_info(*s)
                .is_ok_and(|t| t.label().trim() == "soak")
        })
        .expect("the soak token")
}

fn pin() -> AuthPin {
    AuthPin::new(PIN.into())
}

fn rv(e: CkError) -> RvError {
    match e {
        CkError::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other:?}"),
    }
}

fn one(s: &Session, template: &[Attribute]) -> ObjectHandle {
    let v = s.find_objects(template).unwrap();
    assert_eq!(v.len(), 1, "{template:?}");
    v[0]
}

/// Object `i` of thread `t` of process `p`: its label, value and privacy.
fn label(p: usize, t: usize, i: u64) -> String {
    format!("soak-{p}-{t}-{i}")
}

fn value(p: usize, t: usize, i: u64) -> Vec<u8> {
    let n = 16 + (i as usize * 7 + t * 13 + p) % 600;
    (0..n)
        .map(|k| (k + i as usize + t + p * 101) as u8)
        .collect()
}

fn private(i: u64) -> bool {
    i.is_multiple_of(2)
}

/// Runs this binary again on `test` with `envs`, killed (and failed) after `secs`.
fn spawn(test: &str, envs: &[(&str, &Path)], extra: &[(&str, String)]) -> std::process::Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("UKEY_SOAK_CHILD", test)
    .env_remove("UKEY_DATA_DIR")
    .env("UKEY_BACKENDS", "soft")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    for (k, v) in extra {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

fn finish(test: &str, child: std::process::Child, deadline: Instant) -> String {
    ukey_tests::finish_child(child, deadline, test)
}

#[test]
fn soak_two_processes_sixteen_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = ukey_tests::write_soft_conf(tmp.path(), "");
    let out = Command::new(ukey_tests::ukey_bin())
        .env("UKEY_CONF", &conf)
        .env_remove("UKEY_DATA_DIR")
        .args([
            "softhsm",
            "--init-token",
            "--free",
            "--label",
            "soak",
            "--so-pin",
            "12345678",
            "--pin",
            PIN,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let envs: &[(&str, &Path)] = &[("UKEY_CONF", &conf), ("SOAK_DIR", tmp.path())];
    let t0 = Instant::now();
    let c = spawn("child_soak_setup", envs, &[]);
    finish(
        "child_soak_setup",
        c,
        Instant::now() + Duration::from_secs(60),
    );
    let deadline = Instant::now() + Duration::from_secs(soak_secs() + 90);
    let workers: Vec<_> = (0..PROCESSES)
        .map(|p| spawn("child_soak_worker", envs, &[("SOAK_PROC", p.to_string())]))
        .collect();
    for w in workers {
        let text = finish("child_soak_worker", w, deadline);
        for l in text
            .lines()
            .filter_map(|l| l.find("soak: ").map(|i| &l[i..]))
        {
            eprintln!("{l}");
        }
    }
    let c = spawn("child_soak_verify", envs, &[]);
    let text = finish(
        "child_soak_verify",
        c,
        Instant::now() + Duration::from_secs(120),
    );
    for l in text
        .lines()
        .filter_map(|l| l.find("soak: ").map(|i| &l[i..]))
    {
        eprintln!("{l}");
    }
    eprintln!("soak: {:.1} s in all", t0.elapsed().as_secs_f64());
}

#[test]
#[ignore = "run by soak_two_processes_sixteen_threads"]
fn child_soak_setup() {
    if !is_child("child_soak_setup") {
        return;
    }
    let p11 = p11();
    let s = p11.open_rw_session(slot(&p11)).unwrap();
    s.login(UserType::User, Some(&pin())).unwrap();
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::EcParams(P256.to_vec()),
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Label(b"signer".to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Label(b"signer".to_vec()),
        ],
    )
    .unwrap();
    s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::ValueLen(32.into()),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(b"enc".to_vec()),
        ],
    )
    .unwrap();
    drop(s);
    p11.finalize().unwrap();
}

/// Counts of what a worker process did.
#[derive(Default)]
struct Counts {
    signs: AtomicU64,
    encrypts: AtomicU64,
    creates: AtomicU64,
    destroys: AtomicU64,
    reads: AtomicU64,
    logouts: AtomicU64,
}

#[test]
#[ignore = "run by soak_two_processes_sixteen_threads"]
fn child_soak_worker() {
    if !is_child("child_soak_worker") {
        return;
    }
    let p: usize = std::env::var("SOAK_PROC").unwrap().parse().unwrap();
    let p11 = p11();
    let slot = slot(&p11);
    // The login of this process, shared by all its sessions.
    let cycler = p11.open_rw_session(slot).unwrap();
    cycler.login(UserType::User, Some(&pin())).unwrap();
    let gate = RwLock::new(());
    let counts = Counts::default();
    let stop = Instant::now() + Duration::from_secs(soak_secs());
    std::thread::scope(|sc| {
        for t in 0..THREADS - 1 {
            let (p11, gate, counts) = (&p11, &gate, &counts);
            sc.spawn(move || worker(p11, slot, p, t, gate, counts, stop));
        }
        // Thread 15: C_Logout, check the private things are out of reach, C_Login.
        while Instant::now() < stop {
            std::thread::sleep(Duration::from_millis(25));
            let _w = gate.write().unwrap();
            cycler.logout().unwrap();
            let e = cycler
                .find_objects(&[Attribute::Label(b"signer".to_vec())])
                .unwrap();
            assert_eq!(e.len(), 1, "only the public half of signer is visible");
            assert!(
                cycler
                    .find_objects(&[
                        Attribute::Class(ObjectClass::DATA),
                        Attribute::Private(true)
                    ])
                    .unwrap()
                    .is_empty(),
                "private objects are hidden while logged out"
            );
            let e = cycler
                .create_object(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Label(b"never".to_vec()),
                ])
                .unwrap_err();
            assert_eq!(rv(e), RvError::UserNotLoggedIn);
            cycler.login(UserType::User, Some(&pin())).unwrap();
            counts.logouts.fetch_add(1, Ordering::Relaxed);
        }
    });
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "soak: process {p}: {} signs, {} encrypt+decrypt, {} creates, {} destroys, {} reads, {} logout/login cycles",
        c(&counts.signs),
        c(&counts.encrypts),
        c(&counts.creates),
        c(&counts.destroys),
        c(&counts.reads),
        c(&counts.logouts)
    );
    drop(cycler);
    p11.finalize().unwrap();
}

fn worker(
    p11: &Pkcs11,
    slot: Slot,
    p: usize,
    t: usize,
    gate: &RwLock<()>,
    counts: &Counts,
    stop: Instant,
) {
    let s = p11.open_rw_session(slot).unwrap();
    let signer_pub = one(
        &s,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(b"signer".to_vec()),
        ],
    );
    // (object number, handle) of this thread's live objects, oldest first.
    let mut live: std::collections::VecDeque<(u64, ObjectHandle)> = Default::default();
    let mut kept = Vec::new();
    let mut gone = Vec::new();
    let mut i = 0u64;
    let mut step = 0u64;
    while Instant::now() < stop {
        step += 1;
        match (step + t as u64) % 6 {
            0 => {
                let _r = gate.read().unwrap();
                let sk = one(
                    &s,
                    &[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Label(b"signer".to_vec()),
                    ],
                );
                let msg = format!("{p}/{t}/{step}");
                let sig = s.sign(&Mechanism::EcdsaSha256, sk, msg.as_bytes()).unwrap();
                s.verify(&Mechanism::EcdsaSha256, signer_pub, msg.as_bytes(), &sig)
                    .unwrap();
                counts.signs.fetch_add(1, Ordering::Relaxed);
            }
            1 => {
                let _r = gate.read().unwrap();
                let k = one(
                    &s,
                    &[
                        Attribute::KeyType(KeyType::AES),
                        Attribute::Label(b"enc".to_vec()),
                    ],
                );
                let iv = [t as u8; 16];
                let msg = value(p, t, step);
                let ct = s.encrypt(&Mechanism::AesCbcPad(iv), k, &msg).unwrap();
                assert_eq!(s.decrypt(&Mechanism::AesCbcPad(iv), k, &ct).unwrap(), msg);
                counts.encrypts.fetch_add(1, Ordering::Relaxed);
            }
            2 | 3 => {
                let template = [
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Private(private(i)),
                    Attribute::Label(label(p, t, i).into_bytes()),
                    Attribute::Value(value(p, t, i)),
                ];
                // Public objects are made without the gate, while logouts go on.
                let h = if private(i) {
                    let _r = gate.read().unwrap();
                    s.create_object(&template).unwrap()
                } else {
                    s.create_object(&template).unwrap()
                };
                live.push_back((i, h));
                i += 1;
                counts.creates.fetch_add(1, Ordering::Relaxed);
            }
            4 => {
                if let Some((n, h)) = live.pop_front() {
                    if private(n) {
                        let _r = gate.read().unwrap();
                        s.destroy_object(h).unwrap();
                    } else {
                        s.destroy_object(h).unwrap();
                    }
                    // Gone for good: a listing another thread took before the
                    // destroy must not bring it back.
                    let _r = private(n).then(|| gate.read().unwrap());
                    let again = s
                        .find_objects(&[Attribute::Label(label(p, t, n).into_bytes())])
                        .unwrap();
                    assert!(again.is_empty(), "destroyed {} found again", label(p, t, n));
                    gone.push(n);
                    counts.destroys.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                if let Some(&(n, h)) = live.back() {
                    let _r = private(n).then(|| gate.read().unwrap());
                    let attrs = s
                        .get_attributes(h, &[AttributeType::Label, AttributeType::Value])
                        .unwrap();
                    assert_eq!(
                        attrs,
                        vec![
                            Attribute::Label(label(p, t, n).into_bytes()),
                            Attribute::Value(value(p, t, n)),
                        ]
                    );
                    counts.reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    kept.extend(live.iter().map(|(n, _)| *n));
    let dir = soak_dir();
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join("\n");
    std::fs::write(dir.join(format!("p{p}-t{t}.kept")), list(&kept)).unwrap();
    std::fs::write(dir.join(format!("p{p}-t{t}.gone")), list(&gone)).unwrap();
    std::fs::write(dir.join(format!("p{p}-t{t}.made")), i.to_string()).unwrap();
}

fn read_list(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
#[ignore = "run by soak_two_processes_sixteen_threads"]
fn child_soak_verify() {
    if !is_child("child_soak_verify") {
        return;
    }
    let dir = soak_dir();
    // The store opens cleanly and is whole.
    for e in std::fs::read_dir(dir.join("data")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "ukdb") {
            let d = token_hal::soft::SoftDevice::open(&path, &Default::default()).unwrap();
            d.check_integrity().unwrap();
        }
    }
    // What the workers say should be there.
    let mut expect = std::collections::BTreeMap::new();
    let mut destroyed = 0usize;
    let mut made = 0u64;
    for p in 0..PROCESSES {
        for t in 0..THREADS - 1 {
            let kept = read_list(&dir.join(format!("p{p}-t{t}.kept")));
            let gone = read_list(&dir.join(format!("p{p}-t{t}.gone")));
            let n = read_list(&dir.join(format!("p{p}-t{t}.made")))[0];
            made += n;
            let mut all: Vec<u64> = kept.iter().chain(&gone).copied().collect();
            all.sort_unstable();
            assert_eq!(
                all,
                (0..n).collect::<Vec<_>>(),
                "p{p} t{t}: every object made is kept or gone, once"
            );
            destroyed += gone.len();
            for i in kept {
                expect.insert(label(p, t, i), (value(p, t, i), private(i)));
            }
        }
    }
    let p11 = p11();
    let s = p11.open_rw_session(slot(&p11)).unwrap();
    s.login(UserType::User, Some(&pin())).unwrap();
    let mut found = std::collections::BTreeMap::new();
    for h in s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap()
    {
        let attrs = s
            .get_attributes(
                h,
                &[
                    AttributeType::Label,
                    AttributeType::Value,
                    AttributeType::Private,
                ],
            )
            .unwrap();
        let [
            Attribute::Label(l),
            Attribute::Value(v),
            Attribute::Private(private),
        ] = &attrs[..]
        else {
            panic!("{attrs:?}");
        };
        let l = String::from_utf8(l.clone()).unwrap();
        assert!(
            found.insert(l.clone(), (v.clone(), *private)).is_none(),
            "{l} exists more than once"
        );
    }
    let missing: Vec<_> = expect.keys().filter(|k| !found.contains_key(*k)).collect();
    let extra: Vec<_> = found.keys().filter(|k| !expect.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    assert!(
        found == expect,
        "every kept object has its value and privacy"
    );
    // The shared keys, once each, and nothing else.
    let keys = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let keys = s
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let all = s.find_objects(&[]).unwrap();
    assert_eq!(
        all.len(),
        found.len() + 3,
        "data objects and the three keys"
    );
    println!(
        "soak: {made} objects made, {destroyed} destroyed, {} kept and found, none extra",
        found.len()
    );
    assert!(made > 100, "the workers did work");
    drop(s);
    p11.finalize().unwrap();
}
