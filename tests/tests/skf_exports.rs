//! `nm -D libukey_skf.so` lists every function include/skf.h declares: the 78 of
//! GM/T 0016-2012 §7.1–7.6 and SKF_ECCDecrypt.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use ukey_tests::{repo_root, skf_lib};

#[test]
fn every_declared_function_is_exported() {
    let header = std::fs::read_to_string(repo_root().join("include/skf.h")).unwrap();
    let declared: Vec<&str> = header
        .lines()
        .filter_map(|l| l.strip_prefix("ULONG DEVAPI "))
        .map(|l| &l[..l.find('(').unwrap()])
        .collect();
    assert_eq!(
        declared.len(),
        79,
        "78 GM/T 0016 functions + SKF_ECCDecrypt"
    );
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(skf_lib())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let exported: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).filter(|_| l.contains(" T ")))
        .filter(|s| s.starts_with("SKF_"))
        .collect();
    for f in &declared {
        assert!(exported.contains(f), "{f} is not exported");
    }
    assert_eq!(exported.len(), declared.len(), "{exported:?}");
    for must in [
        "SKF_WaitForDevEvent",
        "SKF_Transmit",
        "SKF_GenerateAgreementDataAndKeyWithECC",
        "SKF_ExtRSAPriKeyOperation",
        "SKF_MacFinal",
        "SKF_CloseHandle",
        "SKF_ECCDecrypt",
    ] {
        assert!(exported.contains(&must), "{must}");
    }
}
