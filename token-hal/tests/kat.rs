//! Known-answer tests. Each vector names the standard it comes from.

use token_hal::Error;
use token_hal::crypto::hash::{self, HashAlg};
use token_hal::crypto::sm2::{self, test_seams};
use token_hal::crypto::sym::{self, SymAlg, SymMode};
use token_hal::crypto::{EncMech, KeyAlg, PrivateKey, PublicKey, SignMech, aead, kdf};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

// ---- SM3, GM/T 0004-2012 (GB/T 32905-2016) Appendix A ----

#[test]
fn sm3_gmt0004_example_1_abc() {
    assert_eq!(
        hash::digest(HashAlg::Sm3, b"abc"),
        h("66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 4167c487 5cf2f7a2 297da02b 8f4ba8e0")
    );
}

#[test]
fn sm3_gmt0004_example_2_abcd_x16() {
    let msg = b"abcd".repeat(16);
    assert_eq!(
        hash::digest(HashAlg::Sm3, &msg),
        h("debe9ff9 2275b8a1 38604889 c18e5a4d 6fdb70e5 387e5765 293dcba3 9c0c5732")
    );
    // The same through the streaming interface, fed in odd pieces.
    let mut s = hash::Hasher::new(HashAlg::Sm3);
    for part in msg.chunks(7) {
        s.update(part);
    }
    assert_eq!(s.finish(), hash::digest(HashAlg::Sm3, &msg));
}

// ---- SM4, GM/T 0002-2012 (GB/T 32907-2016) Appendix A ----

const SM4_KEY: &str = "0123456789abcdeffedcba9876543210";

#[test]
fn sm4_gmt0002_example_1_single_block() {
    let key = h(SM4_KEY);
    let block: [u8; 16] = h(SM4_KEY).try_into().unwrap();
    let ct = sym::sm4_ecb_encrypt_block(&key, &block).unwrap();
    assert_eq!(ct, h("681edf34d206965e86b3e94f536e4246"));
    let pt = sym::decrypt(SymAlg::Sm4, SymMode::Ecb, &key, &[], &ct).unwrap();
    assert_eq!(&pt[..], &block[..]);
}

#[test]
#[ignore = "1,000,000 SM4 encryptions; slow in debug builds"]
fn sm4_gmt0002_example_2_million_iterations() {
    let key = h(SM4_KEY);
    let mut block: [u8; 16] = h(SM4_KEY).try_into().unwrap();
    for _ in 0..1_000_000 {
        block = sym::sm4_ecb_encrypt_block(&key, &block)
            .unwrap()
            .try_into()
            .unwrap();
    }
    assert_eq!(block.to_vec(), h("595298c7c6fd271f0402f804c33d3f66"));
}

// ---- SM2, GB/T 32918.2/.4 (GM/T 0003.2/.4-2012), examples on the recommended curve
// as given in GM/T 0003.5-2012 / GB/T 32918.5-2017 Annex A ----

const SM2_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const SM2_PX: &str = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
const SM2_PY: &str = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
const SM2_K: &str = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21";
const SM2_Z: &str = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3";
const SM2_E: &str = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640";
const SM2_R: &str = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
const SM2_S: &str = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";
const SM2_C1X: &str = "04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73";
const SM2_C1Y: &str = "E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0";
const SM2_C3: &str = "59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766";
const SM2_C2: &str = "21886CA989CA9C7D58087307CA93092D651EFA";

fn sm2_point() -> Vec<u8> {
    let mut p = vec![4u8];
    p.extend(h(SM2_PX));
    p.extend(h(SM2_PY));
    p
}

fn sm2_example_ciphertext() -> Vec<u8> {
    let mut c = vec![4u8];
    for part in [SM2_C1X, SM2_C1Y, SM2_C3, SM2_C2] {
        c.extend(h(part));
    }
    c
}

#[test]
fn sm2_example_key_pair_matches() {
    let key = PrivateKey::from_sm2_scalar(&h(SM2_D)).unwrap();
    assert_eq!(key.alg(), KeyAlg::Sm2);
    assert_eq!(key.public_key().unwrap().ec_point().unwrap(), sm2_point());
}

#[test]
fn sm2_example_z_and_e() {
    let p = sm2_point();
    assert_eq!(
        sm2::z_value(&p, sm2::DEFAULT_ID).unwrap().to_vec(),
        h(SM2_Z)
    );
    assert_eq!(
        sm2::sign_digest(&p, sm2::DEFAULT_ID, b"message digest")
            .unwrap()
            .to_vec(),
        h(SM2_E)
    );
}

#[test]
fn sm2_example_signature_verifies() {
    let pk = PublicKey::from_ec_point(KeyAlg::Sm2, &sm2_point()).unwrap();
    let mut sig = h(SM2_R);
    sig.extend(h(SM2_S));
    let mech = SignMech::Sm2Sm3 {
        id: sm2::DEFAULT_ID.to_vec(),
    };
    pk.verify(&mech, b"message digest", &sig).unwrap();
    pk.verify(&SignMech::Sm2Prehashed, &h(SM2_E), &sig).unwrap();
    // A different message, ID or signature fails.
    assert!(matches!(
        pk.verify(&mech, b"message digesT", &sig),
        Err(Error::SignatureInvalid)
    ));
    let other_id = SignMech::Sm2Sm3 {
        id: b"ALICE123@YAHOO.COM".to_vec(),
    };
    assert!(pk.verify(&other_id, b"message digest", &sig).is_err());
    sig[10] ^= 1;
    assert!(pk.verify(&mech, b"message digest", &sig).is_err());
}

#[test]
fn sm2_example_signature_reproduced_with_the_standard_k() {
    let e: [u8; 32] = h(SM2_E).try_into().unwrap();
    let sig = test_seams::sign_with_k(&h(SM2_D), &e, &h(SM2_K)).unwrap();
    let mut want = h(SM2_R);
    want.extend(h(SM2_S));
    assert_eq!(sig.to_vec(), want);
}

#[test]
fn sm2_example_ciphertext_decrypts() {
    let key = PrivateKey::from_sm2_scalar(&h(SM2_D)).unwrap();
    let pt = key
        .decrypt(&EncMech::Sm2, &sm2_example_ciphertext())
        .unwrap();
    assert_eq!(&pt[..], b"encryption standard");
    // The same in GM/T 0009 DER.
    let der = sm2::cipher_raw_to_der(&sm2_example_ciphertext()).unwrap();
    assert_eq!(
        sm2::cipher_der_to_raw(&der).unwrap(),
        sm2_example_ciphertext()
    );
    // Tampering with C3 or C2 is detected.
    let mut bad = sm2_example_ciphertext();
    *bad.last_mut().unwrap() ^= 0x80;
    assert!(matches!(
        key.decrypt(&EncMech::Sm2, &bad),
        Err(Error::DecryptFailed)
    ));
}

#[test]
fn sm2_example_ciphertext_reproduced_with_the_standard_k() {
    let ct = test_seams::encrypt_with_k(&sm2_point(), b"encryption standard", &h(SM2_K)).unwrap();
    assert_eq!(ct, sm2_example_ciphertext());
}

#[test]
fn sm2_generated_key_round_trips() {
    let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let pk = key.public_key().unwrap();
    let mech = SignMech::Sm2Sm3 {
        id: sm2::DEFAULT_ID.to_vec(),
    };
    let sig = key.sign(&mech, b"hello").unwrap();
    assert_eq!(sig.len(), 64);
    pk.verify(&mech, b"hello", &sig).unwrap();
    let ct = pk.encrypt(&EncMech::Sm2, b"secret").unwrap();
    assert_eq!(ct.len(), 65 + 32 + 6);
    assert_eq!(&key.decrypt(&EncMech::Sm2, &ct).unwrap()[..], b"secret");
    // PKCS#8 and PEM round trips keep the key.
    let again = PrivateKey::from_pkcs8_der(&key.to_pkcs8_der()).unwrap();
    assert_eq!(again.public_key().unwrap(), pk);
    assert_eq!(PublicKey::from_pem(&pk.to_pem()).unwrap(), pk);
    assert_eq!(PublicKey::from_spki_der(pk.spki_der()).unwrap(), pk);
    // Debug never shows key material.
    assert_eq!(format!("{key:?}"), "PrivateKey(Sm2)");
}

// ---- HMAC, RFC 4231 test case 2; SHA, FIPS 180-4 examples ("abc") ----

#[test]
fn sha_fips180_abc() {
    for (alg, want) in [
        (HashAlg::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            HashAlg::Sha224,
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
        ),
        (
            HashAlg::Sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            HashAlg::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            HashAlg::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ] {
        assert_eq!(hash::digest(alg, b"abc"), h(want), "{alg:?}");
        assert_eq!(alg.output_len(), h(want).len());
    }
}

#[test]
fn hmac_rfc4231_case_2() {
    let (key, data) = (b"Jefe", b"what do ya want for nothing?");
    for (alg, want) in [
        (
            HashAlg::Sha224,
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
        ),
        (
            HashAlg::Sha256,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            HashAlg::Sha384,
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649",
        ),
        (
            HashAlg::Sha512,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ),
    ] {
        assert_eq!(hash::hmac(alg, key, data), h(want), "{alg:?}");
    }
}

// ---- PBKDF2, RFC 6070 (HMAC-SHA1) and RFC 7914 §11 (HMAC-SHA256) ----

#[test]
fn pbkdf2_rfc6070_and_rfc7914() {
    let k = kdf::pbkdf2(HashAlg::Sha1, b"password", b"salt", 1, 20).unwrap();
    assert_eq!(&k[..], &h("0c60c80f961f0e71f3a9b524af6012062fe037a6")[..]);
    let k = kdf::pbkdf2(HashAlg::Sha1, b"password", b"salt", 4096, 20).unwrap();
    assert_eq!(&k[..], &h("4b007901b765489abead49d926f721d065a429c1")[..]);
    let k = kdf::pbkdf2(HashAlg::Sha256, b"passwd", b"salt", 1, 64).unwrap();
    assert_eq!(
        &k[..],
        &h(
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
            49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        )[..]
    );
    assert!(kdf::pbkdf2(HashAlg::Sm3, b"p", b"s", 0, 32).is_err());
}

#[test]
fn pbkdf2_hmac_sm3_single_iteration_is_hmac_of_salt_and_block_index() {
    // RFC 8018 §5.2: with c = 1 and dkLen = hLen, DK = PRF(P, S ‖ INT(1)).
    let k = kdf::pbkdf2(HashAlg::Sm3, b"vectorpass", b"salt", 1, 32).unwrap();
    assert_eq!(
        &k[..],
        &hash::hmac(HashAlg::Sm3, b"vectorpass", b"salt\0\0\0\x01")[..]
    );
}

// ---- The at-rest AEAD ----

#[test]
fn aead_seal_open() {
    let key = [0x42u8; 32];
    let sealed = aead::seal(&key, b"aad", b"plaintext").unwrap();
    assert_eq!(
        &aead::open(&key, b"aad", &sealed).unwrap()[..],
        b"plaintext"
    );
    assert!(matches!(
        aead::open(&key, b"aaD", &sealed),
        Err(Error::DecryptFailed)
    ));
}
