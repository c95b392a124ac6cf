//! `[pkcs11] vendor_values = "sansec"`: the module speaks the SANSEC values of the SM
//! mechanisms and key types (include/ukey_pkcs11.h). One test: it owns the environment.

#![allow(clippy::unwrap_used)]

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

fn mech(v: u64) -> MechanismType {
    MechanismType::new_vendor_defined(v).unwrap()
}

#[test]
fn sansec_values_are_spoken() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ukey_tests::write_soft_conf(dir.path(), "[pkcs11]\nvendor_values = \"sansec\"\n");
    // SAFETY: this test binary has one test; set before the module loads.
    unsafe { std::env::set_var("UKEY_CONF", &conf) };
    let p11 = Pkcs11::new(ukey_tests::pkcs11_lib()).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p11.get_all_slots().unwrap()[0];
    p11.init_token(slot, &AuthPin::new("12345678".into()), "sansec")
        .unwrap();
    // (cryptoki's mechanism list drops vendor values it does not know; ask one by one.)
    assert!(
        p11.get_mechanism_info(slot, mech(0x8000_9001)).is_ok(),
        "SANSEC SM3"
    );
    assert!(
        p11.get_mechanism_info(slot, mech(0x8000_8104)).is_ok(),
        "SANSEC SM2 sign"
    );
    assert!(
        p11.get_mechanism_info(slot, mech(0x8000_010A)).is_ok(),
        "SANSEC SM4-CTR"
    );
    assert!(matches!(
        p11.get_mechanism_info(slot, mech(0x8000_0005)),
        Err(Error::Pkcs11(RvError::MechanismInvalid, _))
    ));
    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::new("12345678".into())))
        .unwrap();
    s.init_pin(&AuthPin::new("123456".into())).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&AuthPin::new("123456".into())))
        .unwrap();
    let sm3 = |v| Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(mech(v), None));
    let d = s.digest(&sm3(0x8000_9001), b"abc").unwrap();
    assert_eq!(
        d,
        hex::decode("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0").unwrap()
    );
    assert!(matches!(
        s.digest(&sm3(0x8000_0005), b"abc"),
        Err(Error::Pkcs11(RvError::MechanismInvalid, _))
    ));
    let k = s
        .generate_key(
            &sm3(0x8000_0107),
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    let kt = s.get_attributes(k, &[AttributeType::KeyType]).unwrap();
    assert_eq!(
        kt[0],
        Attribute::KeyType(KeyType::new_vendor_defined(0x8000_0106).unwrap())
    );
    let found = s
        .find_objects(&[Attribute::KeyType(
            KeyType::new_vendor_defined(0x8000_0106).unwrap(),
        )])
        .unwrap();
    assert_eq!(found, vec![k]);
    p11.finalize().unwrap();
}
