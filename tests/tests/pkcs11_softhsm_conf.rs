//! SoftHSM2 drop-in: with `SOFTHSM2_CONF` set and `UKEY_CONF` not, the module honours the
//! tokendir, `slots.mechanisms` and `slots.removable`. One test: it owns the process
//! environment.

#![allow(clippy::unwrap_used)]

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::MechanismType;
use cryptoki::types::AuthPin;

#[test]
fn softhsm2_conf_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let tokendir = dir.path().join("tokens");
    std::fs::create_dir_all(&tokendir).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "# a SoftHSM2 config\ndirectories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = true\nslots.mechanisms = ALL,-CKM_SHA256,-CKM_AES_ECB\n",
            tokendir.display()
        ),
    )
    .unwrap();
    // SAFETY: this test binary has one test; nothing else reads the environment now.
    unsafe {
        std::env::remove_var("UKEY_CONF");
        std::env::remove_var("UKEY_DATA_DIR");
        std::env::set_var("SOFTHSM2_CONF", &conf);
    }
    let p11 = Pkcs11::new(ukey_tests::pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p11.get_all_slots().unwrap()[0];
    assert!(p11.get_slot_info(slot).unwrap().removable_device());
    p11.init_token(slot, &AuthPin::new("12345678".into()), "conf")
        .unwrap();
    let files: Vec<_> = std::fs::read_dir(&tokendir).unwrap().collect();
    assert!(
        !files.is_empty(),
        "the token was not created in the tokendir"
    );
    let mechs = p11.get_mechanism_list(slot).unwrap();
    assert!(!mechs.contains(&MechanismType::SHA256));
    assert!(!mechs.contains(&MechanismType::AES_ECB));
    assert!(mechs.contains(&MechanismType::SHA1));
    assert!(mechs.contains(&MechanismType::AES_CBC));
    p11.finalize().unwrap();
}
