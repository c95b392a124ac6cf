//! Runs one SM2 operation in a loop, for profilers and instruction counters:
//! `valgrind --tool=callgrind target/release/examples/sm2_profile sign 2000`.
//! Operations: sign, verify, encrypt, decrypt, keygen (append `-ref` for the portable
//! RustCrypto reference), and sm3-96 (the hash a signature takes).

use std::hint::black_box;

use token_hal::crypto::hash::{HashAlg, digest};
use token_hal::crypto::provider::REFERENCE_SM2;
use token_hal::crypto::sm2::DEFAULT_ID;
use token_hal::crypto::{EncMech, KeyAlg, PrivateKey, SignMech};

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_else(|| "sign".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let key = PrivateKey::generate(KeyAlg::Sm2).expect("key");
    let public = key.public_key().expect("public");
    let reference = REFERENCE_SM2
        .load_private(KeyAlg::Sm2, &key.to_pkcs8_der())
        .expect("reference key");
    let mech = SignMech::Sm2Sm3 {
        id: DEFAULT_ID.to_vec(),
    };
    let msg = [0x5au8; 20];
    let zm = [0xa5u8; 96];
    let secret = [0x33u8; 32];
    let sig = key.sign(&mech, &msg).expect("sign");
    let ct = public.encrypt(&EncMech::Sm2, &secret).expect("encrypt");
    // Warm the tables and caches once.
    public.verify(&mech, &msg, &sig).expect("verify");
    let start = std::time::Instant::now();
    for _ in 0..n {
        match op.as_str() {
            "sign" => drop(black_box(key.sign(&mech, &msg).expect("sign"))),
            "verify" => public.verify(&mech, &msg, &sig).expect("verify"),
            "encrypt" => drop(black_box(
                public.encrypt(&EncMech::Sm2, &secret).expect("enc"),
            )),
            "decrypt" => drop(black_box(key.decrypt(&EncMech::Sm2, &ct).expect("dec"))),
            "keygen" => drop(black_box(PrivateKey::generate(KeyAlg::Sm2).expect("gen"))),
            // What signing hashes: SM3(Z ‖ M), 96 bytes, two blocks.
            "sm3-96" => drop(black_box(digest(HashAlg::Sm3, black_box(&zm)))),
            "sign-ref" => drop(black_box(reference.sign(&mech, &msg).expect("sign"))),
            "verify-ref" => REFERENCE_SM2
                .verify(&public, &mech, &msg, &sig)
                .expect("verify"),
            "decrypt-ref" => drop(black_box(
                reference.decrypt(&EncMech::Sm2, &ct).expect("dec"),
            )),
            other => panic!("unknown operation {other}"),
        }
    }
    let el = start.elapsed().as_secs_f64();
    println!("{op}: {n} in {el:.3} s = {:.0}/s", n as f64 / el);
}
