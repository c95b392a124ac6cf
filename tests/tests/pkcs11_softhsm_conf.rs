//! The SoftHSM2 drop-in: with only `SOFTHSM2_CONF` set (no `UKEY_CONF`), the module honours
//! `directories.tokendir`, `slots.mechanisms` (allow list, `-` = deny), `slots.removable` and
//! `library.reset_on_fork`, so a pipeline written for SoftHSM2 changes only the library path.
//!
//! The module is loaded in a child process (this binary re-run with `UKEY_TEST_CHILD`) whose
//! environment holds `SOFTHSM2_CONF` and nothing else that selects a store; the child prints
//! what the PKCS#11 API reports and the parent checks it.

#![allow(clippy::unwrap_used)]

mod p11ext_common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::MechanismType;
use cryptoki::types::AuthPin;
use p11ext_common::{PIN, SO_PIN, is_child, require_tool, run_child, tool};
use ukey_tests::{pkcs11_lib, ukey_bin};

const CKM_RSA_PKCS: u64 = 0x1;
const CKM_RSA_X_509: u64 = 0x3;
const CKM_SHA256: u64 = 0x250;

/// A temporary directory with a home and SoftHSM2-style configs pointing at `tokens/`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("tokens")).unwrap();
        Setup { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn tokendir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// Writes `name.conf`: the tokendir line, `objectstore.backend = file`, then `extra`.
    fn conf(&self, name: &str, tokendir: &Path, extra: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.conf"));
        std::fs::write(
            &p,
            format!(
                "# SoftHSM v2 configuration file\ndirectories.tokendir = {}\n\
                 objectstore.backend = file\nlog.level = ERROR\n{extra}",
                tokendir.display()
            ),
        )
        .unwrap();
        p
    }

    /// `ukey softhsm --init-token --free` with only `SOFTHSM2_CONF=conf` in the environment.
    fn init_token(&self, conf: &Path, label: &str) {
        let mut c = tool(ukey_bin(), &self.home());
        let out = c
            .env("SOFTHSM2_CONF", conf)
            .args(["softhsm", "--init-token", "--free", "--label", label])
            .args(["--so-pin", SO_PIN, "--pin", PIN])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", p11ext_common::both(&out));
    }

    /// Runs the child `mode` with `SOFTHSM2_CONF=conf`; returns its report.
    fn probe(&self, mode: &str, conf: &Path) -> Report {
        let (ok, out) = run_child(
            "softhsm_conf_child",
            &self.home(),
            &[
                ("SOFTHSM2_CONF", conf.as_os_str()),
                ("UKEY_P11EXT_MODE", OsStr::new(mode)),
            ],
        );
        assert!(ok, "child {mode} failed:\n{out}");
        Report::parse(&out)
    }
}

/// What the child saw, one line per slot with a token.
#[derive(Debug)]
struct Report {
    slots: Vec<SlotReport>,
    text: String,
}

#[derive(Debug)]
struct SlotReport {
    label: String,
    initialized: bool,
    removable: bool,
    mechs: BTreeSet<u64>,
    x509_info: String,
    sha256_info: String,
}

impl Report {
    fn parse(text: &str) -> Report {
        let mut slots = Vec::new();
        for l in text.lines() {
            let Some(rest) = l.find("SLOT ").map(|i| &l[i + 5..]) else {
                continue;
            };
            let f: Vec<&str> = rest.split('|').collect();
            assert_eq!(f.len(), 7, "bad line {l}");
            slots.push(SlotReport {
                label: f[1].to_string(),
                initialized: f[2] == "init",
                removable: f[3] == "removable",
                mechs: f[4]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| u64::from_str_radix(s, 16).unwrap())
                    .collect(),
                x509_info: f[5].to_string(),
                sha256_info: f[6].to_string(),
            });
        }
        Report {
            slots,
            text: text.to_string(),
        }
    }

    fn token(&self, label: &str) -> &SlotReport {
        self.slots
            .iter()
            .find(|s| s.label == label)
            .unwrap_or_else(|| panic!("no token {label}:\n{}", self.text))
    }

    fn has(&self, label: &str) -> bool {
        self.slots.iter().any(|s| s.label == label)
    }
}

/// The child: loads the module, optionally initialises the free slot's token, and prints
/// `SLOT id|label|init?|removable?|mechanisms|C_GetMechanismInfo(RSA_X_509)|(SHA256)` per
/// token.
#[test]
fn softhsm_conf_child() {
    if !is_child("softhsm_conf_child") {
        return;
    }
    let mode = std::env::var("UKEY_P11EXT_MODE").unwrap();
    let p11 = Pkcs11::new(pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    if let Some(label) = mode.strip_prefix("init:") {
        // As SoftHSM-style suites do: the first slot whose token is not initialised.
        let free = p11
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| !p11.get_token_info(*s).unwrap().token_initialized())
            .expect("a free slot with an uninitialised token");
        p11.init_token(free, &AuthPin::new(SO_PIN.into()), label)
            .unwrap();
    }
    for slot in p11.get_slots_with_token().unwrap() {
        let si = p11.get_slot_info(slot).unwrap();
        let ti = p11.get_token_info(slot).unwrap();
        let mechs: Vec<String> = p11
            .get_mechanism_list(slot)
            .unwrap()
            .into_iter()
            .map(|m| format!("{:x}", u64::from(m)))
            .collect();
        let info = |m: MechanismType| match p11.get_mechanism_info(slot, m) {
            Ok(_) => "ok".to_string(),
            Err(cryptoki::error::Error::Pkcs11(rv, _)) => format!("{rv:?}"),
            Err(e) => format!("{e}").replace('|', "/"),
        };
        println!(
            "SLOT {}|{}|{}|{}|{}|{}|{}",
            slot.id(),
            ti.label(),
            if ti.token_initialized() { "init" } else { "-" },
            if si.removable_device() {
                "removable"
            } else {
                "fixed"
            },
            mechs.join(","),
            info(MechanismType::RSA_X_509),
            info(MechanismType::SHA256),
        );
    }
    p11.finalize().unwrap();
}

fn ukdb_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "ukdb")
        })
        .count()
}

#[test]
fn tokendir_is_honoured() {
    let s = Setup::new();
    let conf = s.conf("softhsm2", &s.tokendir(), "");
    s.init_token(&conf, "shtok");
    assert_eq!(
        ukdb_files(&s.tokendir()),
        1,
        "ukey softhsm --init-token did not store the token in directories.tokendir"
    );
    let r = s.probe("list", &conf);
    assert!(r.token("shtok").initialized);

    // Another tokendir does not see it; C_InitToken on its free slot stores the new token
    // there.
    let other_dir = s.dir.path().join("other-tokens");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = s.conf("other", &other_dir, "");
    let r = s.probe("list", &other);
    assert!(!r.has("shtok"), "{}", r.text);
    let r = s.probe("init:viap11", &other);
    assert!(r.token("viap11").initialized, "{}", r.text);
    assert!(!r.has("shtok"), "{}", r.text);
    assert_eq!(ukdb_files(&other_dir), 1);
    assert_eq!(ukdb_files(&s.tokendir()), 1);
    // And the first store still has its token only.
    let r = s.probe("list", &conf);
    assert!(r.has("shtok") && !r.has("viap11"), "{}", r.text);
}

/// A token made under a SoftHSM2 config without `slots.mechanisms`, and its full list.
fn mechanism_setup(label: &str) -> (Setup, BTreeSet<u64>) {
    let s = Setup::new();
    let all = s.conf("all", &s.tokendir(), "");
    s.init_token(&all, label);
    let r = s.probe("list", &all);
    let full = r.token(label).mechs.clone();
    (s, full)
}

#[test]
fn mechanisms_deny_list() {
    let (s, full) = mechanism_setup("deny");
    for m in [CKM_RSA_PKCS, CKM_SHA256] {
        assert!(full.contains(&m), "mechanism {m:#x} not offered: {full:x?}");
    }
    let deny = s.conf("deny", &s.tokendir(), "slots.mechanisms = -CKM_SHA256\n");
    let r = s.probe("list", &deny);
    let t = r.token("deny");
    let mut expected = full.clone();
    expected.remove(&CKM_SHA256);
    assert_eq!(t.mechs, expected, "deny list -CKM_SHA256");
    assert_eq!(
        t.sha256_info, "MechanismInvalid",
        "C_GetMechanismInfo(CKM_SHA256) under the deny list"
    );
    // Two denials, with blanks around the comma.
    let deny2 = s.conf(
        "deny2",
        &s.tokendir(),
        "slots.mechanisms = -CKM_SHA256, -CKM_RSA_PKCS\n",
    );
    expected.remove(&CKM_RSA_PKCS);
    assert_eq!(
        s.probe("list", &deny2).token("deny").mechs,
        expected,
        "deny list -CKM_SHA256, -CKM_RSA_PKCS"
    );
}

/// The deny list of the brief: `-CKM_RSA_X_509` (SoftHSM2 offers CKM_RSA_X_509, so the
/// module must too for a SoftHSM2 setup that denies it to mean anything).
#[test]
fn mechanisms_deny_list_rsa_x_509() {
    let (s, full) = mechanism_setup("x509");
    assert!(
        full.contains(&CKM_RSA_X_509),
        "CKM_RSA_X_509 not offered: {full:x?}"
    );
    let r = s.probe("list", &s.conf("all2", &s.tokendir(), ""));
    assert_eq!(r.token("x509").x509_info, "ok");
    let deny = s.conf("deny", &s.tokendir(), "slots.mechanisms = -CKM_RSA_X_509\n");
    let r = s.probe("list", &deny);
    let t = r.token("x509");
    let mut expected = full.clone();
    expected.remove(&CKM_RSA_X_509);
    assert_eq!(t.mechs, expected, "deny list -CKM_RSA_X_509");
    assert_eq!(
        t.x509_info, "MechanismInvalid",
        "C_GetMechanismInfo(CKM_RSA_X_509) under the deny list"
    );
}

#[test]
fn mechanisms_allow_list() {
    let (s, full) = mechanism_setup("allow");
    assert!(full.len() > 2, "{full:x?}");
    let allow = s.conf(
        "allow",
        &s.tokendir(),
        "slots.mechanisms = CKM_RSA_PKCS,CKM_SHA256\n",
    );
    let r = s.probe("list", &allow);
    let t = r.token("allow");
    assert_eq!(
        t.mechs,
        BTreeSet::from([CKM_RSA_PKCS, CKM_SHA256]),
        "allow list CKM_RSA_PKCS,CKM_SHA256"
    );
    assert_eq!(t.sha256_info, "ok");
    // `ALL` is SoftHSM2's default: everything.
    let all = s.conf("ALL", &s.tokendir(), "slots.mechanisms = ALL\n");
    assert_eq!(s.probe("list", &all).token("allow").mechs, full);
}

#[test]
fn removable_sets_the_slot_flag() {
    let s = Setup::new();
    let plain = s.conf("plain", &s.tokendir(), "");
    s.init_token(&plain, "rem");
    assert!(!s.probe("list", &plain).token("rem").removable);
    let no = s.conf("no", &s.tokendir(), "slots.removable = false\n");
    assert!(!s.probe("list", &no).token("rem").removable);
    let yes = s.conf("yes", &s.tokendir(), "slots.removable = true\n");
    assert!(s.probe("list", &yes).token("rem").removable);
}

/// `library.reset_on_fork`: SoftHSM2's default (false) keeps the parent's state in a forked
/// child, so the child's `C_Initialize` says ALREADY_INITIALIZED; `true` lets it re-initialise.
#[test]
fn reset_on_fork_follows_the_file() {
    require_tool("pkcs11-tool", "opensc");
    let s = Setup::new();
    let default = s.conf("default", &s.tokendir(), "");
    s.init_token(&default, "fork");
    let run = |conf: &Path| {
        let mut c = tool("pkcs11-tool", &s.home());
        let out = c
            .env("SOFTHSM2_CONF", conf)
            .arg("--module")
            .arg(pkcs11_lib())
            .arg("--test-fork")
            .output()
            .unwrap();
        (out.status.success(), p11ext_common::both(&out))
    };
    let (ok, out) = run(&default);
    assert!(
        !ok && out.contains("CKR_CRYPTOKI_ALREADY_INITIALIZED"),
        "reset_on_fork absent (SoftHSM2 default false):\n{out}"
    );
    let off = s.conf("off", &s.tokendir(), "library.reset_on_fork = false\n");
    let (ok, out) = run(&off);
    assert!(
        !ok && out.contains("CKR_CRYPTOKI_ALREADY_INITIALIZED"),
        "reset_on_fork = false:\n{out}"
    );
    let on = s.conf("on", &s.tokendir(), "library.reset_on_fork = true\n");
    let (ok, out) = run(&on);
    assert!(
        ok && !out.contains("error:"),
        "reset_on_fork = true:\n{out}"
    );
}
