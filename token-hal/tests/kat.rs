//! Known-answer tests. Each vector names the standard it comes from.

#![allow(clippy::unwrap_used)] // tests may unwrap

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

// ---- HMAC-SM3 and PBKDF2-HMAC-SM3 have no official vectors; these values were
// computed with OpenSSL 3.0 (`openssl mac -digest SM3 HMAC`, `openssl kdf PBKDF2`),
// an independent implementation ----

#[test]
fn hmac_sm3_and_pbkdf2_sm3_match_openssl() {
    assert_eq!(
        hash::hmac(HashAlg::Sm3, b"Jefe", b"what do ya want for nothing?"),
        h("2E87F1D16862E6D964B50A5200BF2B10B764FAA9680A296A2405F24BEC39F882")
    );
    let k = kdf::pbkdf2(HashAlg::Sm3, b"password", b"salt", 4096, 32).unwrap();
    assert_eq!(
        &k[..],
        &h("B6E8F2074C87432B78F62E5CED980FDFF89E86AF2F693DAB1638E2B3683045DD")[..]
    );
}

// ---- AES, FIPS-197 Appendix C and NIST SP 800-38A Appendix F (F.1.1, F.2.1, F.3.13,
// F.4.1, F.5.1: the first two blocks) ----

const SP800_38A_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const SP800_38A_IV: &str = "000102030405060708090a0b0c0d0e0f";
const SP800_38A_PT: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51";

#[test]
fn aes_fips197_appendix_c() {
    let pt = h("00112233445566778899aabbccddeeff");
    for (key, want) in [
        (
            "000102030405060708090a0b0c0d0e0f",
            "69c4e0d86a7b0430d8cdb78070b4c55a",
        ),
        (
            "000102030405060708090a0b0c0d0e0f1011121314151617",
            "dda97ca4864cdfe06eaf70a0ec0d7191",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "8ea2b7ca516745bfeafc49904b496089",
        ),
    ] {
        let ct = sym::encrypt(SymAlg::Aes, SymMode::Ecb, &h(key), &[], &pt).unwrap();
        assert_eq!(ct, h(want));
        let back = sym::decrypt(SymAlg::Aes, SymMode::Ecb, &h(key), &[], &ct).unwrap();
        assert_eq!(&back[..], &pt[..]);
    }
}

#[test]
fn aes_sp800_38a_modes() {
    let (key, iv, pt) = (h(SP800_38A_KEY), h(SP800_38A_IV), h(SP800_38A_PT));
    let ctr_iv = h("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    for (mode, iv, want) in [
        (
            SymMode::Ecb,
            vec![],
            "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf",
        ),
        (
            SymMode::Cbc,
            iv.clone(),
            "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2",
        ),
        (
            SymMode::Cfb,
            iv.clone(),
            "3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b",
        ),
        (
            SymMode::Ofb,
            iv.clone(),
            "3b3fd92eb72dad20333449f8e83cfb4a7789508d16918f03f53c52dac54ed825",
        ),
        (
            SymMode::Ctr,
            ctr_iv,
            "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff",
        ),
    ] {
        let ct = sym::encrypt(SymAlg::Aes, mode, &key, &iv, &pt).unwrap();
        assert_eq!(ct, h(want), "{mode:?}");
        let back = sym::decrypt(SymAlg::Aes, mode, &key, &iv, &ct).unwrap();
        assert_eq!(&back[..], &pt[..], "{mode:?}");
    }
}

// ---- AES-GCM, McGrew & Viega "The GCM mode of operation", test cases 2 and 4 ----

#[test]
fn aes_gcm_test_cases_2_and_4() {
    let ct = sym::gcm_seal(SymAlg::Aes, &[0u8; 16], &[0u8; 12], &[], &[0u8; 16]).unwrap();
    assert_eq!(
        ct,
        h("0388dace60b6a392f328c2b971b2fe78 ab6e47d42cec13bdf53a67b21257bddf")
    );

    let key = h("feffe9928665731c6d6a8f9467308308");
    let iv = h("cafebabefacedbaddecaf888");
    let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let pt = h(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    let want = h(
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                  21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091\
                  5bc94fbc3221a5db94fae95ae7121a47",
    );
    let ct = sym::gcm_seal(SymAlg::Aes, &key, &iv, &aad, &pt).unwrap();
    assert_eq!(ct, want);
    assert_eq!(
        &sym::gcm_open(SymAlg::Aes, &key, &iv, &aad, &ct).unwrap()[..],
        &pt[..]
    );
    let mut bad = ct.clone();
    bad[0] ^= 1;
    assert!(matches!(
        sym::gcm_open(SymAlg::Aes, &key, &iv, &aad, &bad),
        Err(Error::DecryptFailed)
    ));
    assert!(matches!(
        sym::gcm_open(SymAlg::Aes, &key, &iv, b"x", &ct),
        Err(Error::DecryptFailed)
    ));
}

// ---- AES key wrap, RFC 3394 §4.1 and §4.6; with padding, RFC 5649 §6 ----

#[test]
fn aes_key_wrap_rfc3394_and_rfc5649() {
    let kek = h("000102030405060708090A0B0C0D0E0F");
    let key = h("00112233445566778899AABBCCDDEEFF");
    let w = sym::aes_key_wrap(&kek, &key).unwrap();
    assert_eq!(w, h("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"));
    assert_eq!(&sym::aes_key_unwrap(&kek, &w).unwrap()[..], &key[..]);

    let kek = h("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
    let key = h("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
    let w = sym::aes_key_wrap(&kek, &key).unwrap();
    assert_eq!(
        w,
        h("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
    );
    let mut bad = w.clone();
    bad[5] ^= 1;
    assert!(matches!(
        sym::aes_key_unwrap(&kek, &bad),
        Err(Error::DecryptFailed)
    ));

    let kek = h("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
    let key = h("c37b7e6492584340bed12207808941155068f738");
    let w = sym::aes_key_wrap_pad(&kek, &key).unwrap();
    assert_eq!(
        w,
        h("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a")
    );
    assert_eq!(&sym::aes_key_unwrap_pad(&kek, &w).unwrap()[..], &key[..]);
    let w = sym::aes_key_wrap_pad(&kek, &h("466f7250617369")).unwrap();
    assert_eq!(w, h("afbeb0f07dfbf5419200f2ccb50bb24f"));
    assert_eq!(
        &sym::aes_key_unwrap_pad(&kek, &w).unwrap()[..],
        &h("466f7250617369")[..]
    );
}

// ---- SM4 modes. GB/T 32907 defines only the block cipher; the CBC/CFB/OFB/CTR values
// were computed with OpenSSL 3.0 `openssl enc -sm4-*` (an independent implementation).
// SM4-GCM is RFC 8998 Appendix A.1 ----

#[test]
fn sm4_modes_match_openssl() {
    let key = h(SM4_KEY);
    let iv = h("000102030405060708090a0b0c0d0e0f");
    let pt36 = h("0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210aabbccdd");
    let pt32 = &pt36[..32];
    for (mode, pt, want) in [
        (
            SymMode::Cbc,
            pt32,
            "a9a268883a336315bac0c9c9ff350ab1b236a4a85616d4aabf0a83555c7d4115",
        ),
        (
            SymMode::CbcPad,
            &pt36[..],
            "a9a268883a336315bac0c9c9ff350ab1b236a4a85616d4aabf0a83555c7d4115\
             5a098adba1860e905040d3217a0f872a",
        ),
        (
            SymMode::Cfb,
            &pt36[..],
            "07bbd906b40da542d4514d1a97fccb7ab08042271f518c5ff71a31881413a02daef14a9e",
        ),
        (
            SymMode::Ofb,
            &pt36[..],
            "07bbd906b40da542d4514d1a97fccb7af2cc072b3e2897929f83560cab77da30f1fc5495",
        ),
        (
            SymMode::Ctr,
            &pt36[..],
            "07bbd906b40da542d4514d1a97fccb7a6e24482cc90831ee244da97df7549f0ab6619e3d",
        ),
    ] {
        let ct = sym::encrypt(SymAlg::Sm4, mode, &key, &iv, pt).unwrap();
        assert_eq!(ct, h(want), "{mode:?}");
        assert_eq!(
            &sym::decrypt(SymAlg::Sm4, mode, &key, &iv, &ct).unwrap()[..],
            pt,
            "{mode:?}"
        );
    }
}

#[test]
fn sm4_gcm_rfc8998() {
    let key = h("0123456789ABCDEFFEDCBA9876543210");
    let iv = h("00001234567800000000ABCD");
    let aad = h("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
    let pt = h(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
                EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
    );
    let want = h(
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
                  D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D\
                  83DE3541E4C2B58177E065A9BF7B62EC",
    );
    let ct = sym::gcm_seal(SymAlg::Sm4, &key, &iv, &aad, &pt).unwrap();
    assert_eq!(ct, want);
    assert_eq!(
        &sym::gcm_open(SymAlg::Sm4, &key, &iv, &aad, &ct).unwrap()[..],
        &pt[..]
    );
}

#[test]
fn streaming_matches_one_shot_for_every_mode_and_chunking() {
    use sym::{Direction, SymCipher};
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
    for alg in [SymAlg::Sm4, SymAlg::Aes] {
        let key = vec![0x11u8; 16];
        for mode in [
            SymMode::EcbPad,
            SymMode::CbcPad,
            SymMode::Cfb,
            SymMode::Ofb,
            SymMode::Ctr,
            SymMode::Gcm,
        ] {
            let iv = match mode {
                SymMode::EcbPad => vec![],
                SymMode::Gcm => vec![9u8; 12],
                _ => vec![9u8; 16],
            };
            let one = sym::encrypt(alg, mode, &key, &iv, &data).unwrap();
            for chunk in [1usize, 15, 16, 17, 333] {
                let mut c = SymCipher::new(alg, mode, Direction::Encrypt, &key, &iv).unwrap();
                let mut out = Vec::new();
                for part in data.chunks(chunk) {
                    c.update(part, &mut out).unwrap();
                }
                c.finalize(&mut out).unwrap();
                assert_eq!(out, one, "{alg:?} {mode:?} chunk {chunk}");

                let mut d = SymCipher::new(alg, mode, Direction::Decrypt, &key, &iv).unwrap();
                let mut back = Vec::new();
                for part in one.chunks(chunk) {
                    d.update(part, &mut back).unwrap();
                }
                d.finalize(&mut back).unwrap();
                assert_eq!(back, data, "{alg:?} {mode:?} chunk {chunk}");
            }
        }
    }
}

#[test]
fn padding_and_length_errors() {
    let key = [1u8; 16];
    let iv = [2u8; 16];
    // Unpadded CBC refuses a partial block on both sides.
    assert!(matches!(
        sym::encrypt(SymAlg::Sm4, SymMode::Cbc, &key, &iv, &[0u8; 17]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        sym::decrypt(SymAlg::Sm4, SymMode::Cbc, &key, &iv, &[0u8; 17]),
        Err(Error::InvalidData(_))
    ));
    // Bad padding is a decryption failure.
    let mut ct = sym::encrypt(SymAlg::Aes, SymMode::CbcPad, &key, &iv, b"hello").unwrap();
    assert_eq!(ct.len(), 16);
    ct[15] ^= 0x55;
    assert!(matches!(
        sym::decrypt(SymAlg::Aes, SymMode::CbcPad, &key, &iv, &ct),
        Err(Error::DecryptFailed)
    ));
    // An exact multiple gets a whole block of padding.
    assert_eq!(
        sym::encrypt(SymAlg::Sm4, SymMode::CbcPad, &key, &iv, &[0u8; 32])
            .unwrap()
            .len(),
        48
    );
    // Bad key and IV lengths.
    assert!(sym::encrypt(SymAlg::Sm4, SymMode::Cbc, &[0u8; 24], &iv, &[0u8; 16]).is_err());
    assert!(sym::encrypt(SymAlg::Aes, SymMode::Cbc, &key, &[0u8; 8], &[0u8; 16]).is_err());
    assert!(sym::encrypt(SymAlg::Aes, SymMode::Ecb, &key, &iv, &[0u8; 16]).is_err());
}

#[test]
fn cbc_mac_is_the_last_cbc_block() {
    let key = h(SM4_KEY);
    let data = h("0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210");
    let mac = sym::cbc_mac(SymAlg::Sm4, &key, &[0u8; 16], &data, false).unwrap();
    let ct = sym::encrypt(SymAlg::Sm4, SymMode::Cbc, &key, &[0u8; 16], &data).unwrap();
    assert_eq!(mac.to_vec(), ct[16..].to_vec());
    assert!(sym::cbc_mac(SymAlg::Sm4, &key, &[0u8; 16], &data[..20], false).is_err());
    let padded = sym::cbc_mac(SymAlg::Sm4, &key, &[0u8; 16], &data[..20], true).unwrap();
    assert_ne!(padded, mac);
}

// ---- ECDSA P-256/P-384 and RSA: sign/verify and encrypt/decrypt round trips ----

#[test]
fn ecdsa_round_trips() {
    for (alg, len) in [(KeyAlg::EcP256, 64), (KeyAlg::EcP384, 96)] {
        let key = PrivateKey::generate(alg).unwrap();
        let pk = key.public_key().unwrap();
        assert_eq!(pk.alg(), alg);
        for hash in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let sig = key.sign(&SignMech::Ecdsa(hash), b"data").unwrap();
            assert_eq!(sig.len(), len);
            pk.verify(&SignMech::Ecdsa(hash), b"data", &sig).unwrap();
            // The prehashed form over the same digest verifies the same signature.
            let d = hash::digest(hash, b"data");
            pk.verify(&SignMech::EcdsaPrehashed, &d, &sig).unwrap();
            assert!(pk.verify(&SignMech::Ecdsa(hash), b"datA", &sig).is_err());
        }
        let again = PrivateKey::from_pkcs8_der(&key.to_pkcs8_der()).unwrap();
        assert_eq!(again.public_key().unwrap(), pk);
        let pt = PublicKey::from_ec_point(alg, &pk.ec_point().unwrap()).unwrap();
        assert_eq!(pt, pk);
    }
}

#[test]
fn ec_point_not_on_curve_is_rejected() {
    let mut p = sm2_point();
    p[64] ^= 1;
    assert!(matches!(
        PublicKey::from_ec_point(KeyAlg::Sm2, &p),
        Err(Error::InvalidData(_))
    ));
    let key = PrivateKey::generate(KeyAlg::EcP256).unwrap();
    let mut p = key.public_key().unwrap().ec_point().unwrap();
    p[64] ^= 1;
    assert!(matches!(
        PublicKey::from_ec_point(KeyAlg::EcP256, &p),
        Err(Error::InvalidData(_))
    ));
}

fn rsa_round_trip(key: &PrivateKey) {
    let pk = key.public_key().unwrap();
    let mechs = [
        SignMech::RsaPkcs1(HashAlg::Sha1),
        SignMech::RsaPkcs1(HashAlg::Sha256),
        SignMech::RsaPkcs1(HashAlg::Sha512),
        SignMech::RsaPss {
            hash: HashAlg::Sha256,
            salt_len: 32,
        },
        SignMech::RsaPss {
            hash: HashAlg::Sha384,
            salt_len: 20,
        },
    ];
    for m in &mechs {
        let sig = key.sign(m, b"message").unwrap();
        pk.verify(m, b"message", &sig).unwrap();
        assert!(
            matches!(pk.verify(m, b"messagE", &sig), Err(Error::SignatureInvalid)),
            "{m:?}"
        );
    }
    // CKM_RSA_PKCS over a SHA-256 DigestInfo equals PKCS#1 v1.5 with SHA-256.
    let mut di = h("3031300d060960864801650304020105000420");
    di.extend(hash::digest(HashAlg::Sha256, b"message"));
    let raw = key.sign(&SignMech::RsaPkcs1Raw, &di).unwrap();
    assert_eq!(
        raw,
        key.sign(&SignMech::RsaPkcs1(HashAlg::Sha256), b"message")
            .unwrap()
    );
    pk.verify(&SignMech::RsaPkcs1Raw, &di, &raw).unwrap();
    // PSS over a digest.
    let d = hash::digest(HashAlg::Sha256, b"message");
    let m = SignMech::RsaPssPrehashed {
        hash: HashAlg::Sha256,
        salt_len: 32,
    };
    let sig = key.sign(&m, &d).unwrap();
    pk.verify(
        &SignMech::RsaPss {
            hash: HashAlg::Sha256,
            salt_len: 32,
        },
        b"message",
        &sig,
    )
    .unwrap();

    for m in [
        EncMech::RsaPkcs1,
        EncMech::RsaOaep {
            hash: HashAlg::Sha1,
            label: vec![],
        },
        EncMech::RsaOaep {
            hash: HashAlg::Sha256,
            label: b"label".to_vec(),
        },
    ] {
        let ct = pk.encrypt(&m, b"secret").unwrap();
        assert_eq!(&key.decrypt(&m, &ct).unwrap()[..], b"secret", "{m:?}");
        let mut bad = ct.clone();
        bad[10] ^= 1;
        // PKCS#1 v1.5 decryption may use implicit rejection (a synthetic plaintext instead
        // of an error, against Bleichenbacher/Marvin timing); either way not the secret.
        assert!(
            key.decrypt(&m, &bad).map_or(true, |p| &p[..] != b"secret"),
            "{m:?}"
        );
    }
    let (n, e) = pk.rsa_components().unwrap();
    assert_eq!(PublicKey::from_rsa_components(&n, &e).unwrap(), pk);
}

#[test]
fn rsa_1024_and_2048_round_trips() {
    for bits in [1024, 2048] {
        let key = PrivateKey::generate(KeyAlg::Rsa(bits)).unwrap();
        assert_eq!(key.alg(), KeyAlg::Rsa(bits));
        rsa_round_trip(&key);
        let again = PrivateKey::from_pkcs8_der(&key.to_pkcs8_der()).unwrap();
        assert_eq!(again.public_key().unwrap(), key.public_key().unwrap());
    }
    assert!(matches!(
        PrivateKey::generate(KeyAlg::Rsa(512)),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        PrivateKey::generate(KeyAlg::Rsa(8192)),
        Err(Error::Unsupported(_))
    ));
}

// ---- SM2 key exchange, GB/T 32918.3 §6 with the recommended-curve example of
// GM/T 0003.5-2012 (both IDs 1234567812345678, klen = 128 bits) ----

#[test]
fn sm2_key_exchange_example_through_the_seam() {
    use sm2::{ExchangeRole, Sm2KeyExchange};
    let a = PrivateKey::from_sm2_scalar(&h(
        "81EB26E941BB5AF16DF116495F90695272AE2CD63D6C4AE1678418BE48230029",
    ))
    .unwrap();
    let b = PrivateKey::from_sm2_scalar(&h(
        "785129917D45A9EA5437A59356B82338EAADDA6CEB199088F14AE10DEFA229B5",
    ))
    .unwrap();
    let (pa, pb) = (a.public_key().unwrap(), b.public_key().unwrap());
    assert_eq!(
        pa.ec_point().unwrap(),
        h(
            "04 160E12897DF4EDB61DD812FEB96748FBD3CCF4FFE26AA6F6DB9540AF49C94232\
              4A7DAD08BB9A459531694BEB20AA489D6649975E1BFCF8C4741B78B4B223007F"
        )
    );
    let id = sm2::DEFAULT_ID;
    assert_eq!(
        sm2::z_value(&pa.ec_point().unwrap(), id).unwrap().to_vec(),
        h("3B85A57179E11E7E513AA622991F2CA74D1807A0BD4D4B38F90987A17AC245B1")
    );
    assert_eq!(
        sm2::z_value(&pb.ec_point().unwrap(), id).unwrap().to_vec(),
        h("79C988D63229D97EF19FE02CA1056E01E6A7411ED24694AA8F834F4A4AB022F7")
    );
    let ra = h("D4DE15474DB74D06491C440D305E012400990F3E390C7E87153C12DB2EA60BB3");
    let rb = h("7E07124814B309489125EAED101113164EBF0F3458C5BD88335C1F9D596243D6");
    let xa =
        Sm2KeyExchange::new_with_ephemeral_for_test(ExchangeRole::Initiator, &a, id, &ra).unwrap();
    let xb =
        Sm2KeyExchange::new_with_ephemeral_for_test(ExchangeRole::Responder, &b, id, &rb).unwrap();
    let (ra_pt, rb_pt) = (xa.ephemeral_point(), xb.ephemeral_point());
    assert_eq!(
        ra_pt.to_vec(),
        h(
            "04 64CED1BDBC99D590049B434D0FD73428CF608A5DB8FE5CE07F15026940BAE40E\
              376629C7AB21E7DB260922499DDB118F07CE8EAAE3E7720AFEF6A5CC062070C0"
        )
    );
    assert_eq!(
        rb_pt.to_vec(),
        h(
            "04 ACC27688A6F7B706098BC91FF3AD1BFF7DC2802CDB14CCCCDB0A90471F9BD707\
              2FEDAC0494B2FFC4D6853876C79B8F301C6573AD0AA50F39FC87181E1A1B46FE"
        )
    );
    let kb = xb.finish(&pa, id, &ra_pt, 16).unwrap();
    let ka = xa.finish(&pb, id, &rb_pt, 16).unwrap();
    assert_eq!(&ka.key[..], &h("6C89347354DE2484C60B4AB1FDE4C6E5")[..]);
    assert_eq!(&kb.key[..], &ka.key[..]);
    // Optional confirmation: A checks SB (A9), B checks SA (B10).
    ka.verify_peer_confirmation(&kb.confirmation).unwrap();
    kb.verify_peer_confirmation(&ka.confirmation).unwrap();
    assert!(ka.verify_peer_confirmation(&ka.confirmation).is_err());
}

#[test]
fn sm2_key_exchange_random_and_bad_peer_point() {
    use sm2::{ExchangeRole, Sm2KeyExchange};
    let a = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let b = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    let xa = Sm2KeyExchange::new(ExchangeRole::Initiator, &a, b"alice").unwrap();
    let xb = Sm2KeyExchange::new(ExchangeRole::Responder, &b, b"bob").unwrap();
    let (ra, rb) = (xa.ephemeral_point(), xb.ephemeral_point());
    let kb = xb
        .finish(&a.public_key().unwrap(), b"alice", &ra, 48)
        .unwrap();
    let ka = xa
        .finish(&b.public_key().unwrap(), b"bob", &rb, 48)
        .unwrap();
    assert_eq!(&ka.key[..], &kb.key[..]);
    let mut bad = ra;
    bad[64] ^= 1;
    let xb2 = Sm2KeyExchange::new(ExchangeRole::Responder, &b, b"bob").unwrap();
    assert!(matches!(
        xb2.finish(&a.public_key().unwrap(), b"alice", &bad, 16),
        Err(Error::InvalidData(_))
    ));
}

#[test]
fn sm2_spki_with_the_sm2_oid_as_algorithm_is_accepted_and_normalised() {
    // SEQUENCE { SEQUENCE { OID 1.2.156.10197.1.301 }, BIT STRING 04‖x‖y }
    let mut der = h("3050 300a 0608 2a811ccf5501822d 0342 00");
    der.extend(sm2_point());
    let pk = PublicKey::from_spki_der(&der).unwrap();
    assert_eq!(pk.alg(), KeyAlg::Sm2);
    assert_eq!(
        pk,
        PublicKey::from_ec_point(KeyAlg::Sm2, &sm2_point()).unwrap()
    );
    assert_ne!(pk.spki_der(), &der[..]); // re-encoded with id-ecPublicKey + curve
}
