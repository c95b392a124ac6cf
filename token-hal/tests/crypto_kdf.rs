//! KDFs: SP 800-108 KBKDF, ANSI X9.63, SP 800-56A one-step.
//!
//! Vectors: NIST CAVP SP 800-108 sample vectors (tests/data/kbkdf_cavp.txt: counter,
//! feedback with and without a zero IV and counter, double-pipeline with and without
//! counter, every counter position and width, CMAC-AES and HMAC-SHA-1/2 PRFs); NIST
//! CAVS `ansx963_2001` (SHA-1, SHA-256); for SP 800-56A with SHA-256, the vector of the
//! `cryptoki` 0.12.1 test `derive_key_sp800` (X25519 + CKD_SHA256_SP800).
#![allow(clippy::unwrap_used)]

use token_hal::crypto::kdf::{
    self, CounterFormat, DkmFormat, DkmMethod, Kbkdf, KbkdfMode, KbkdfPrf, PrfData,
};
use token_hal::crypto::sym::SymAlg;
use token_hal::crypto::{DeriveMech, HashAlg, KeyAlg, PrivateKey};

fn h(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    hex::decode(s).unwrap()
}

#[test]
fn cavp_sp800_108() {
    let text = include_str!("data/kbkdf_cavp.txt");
    let mut n = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split(' ').collect();
        let (mode, prf, loc, rlen, l) = (f[0], f[1], f[2], f[3], f[4]);
        let (ki, iv, fixed, before, after, ko) =
            (h(f[5]), h(f[6]), h(f[7]), h(f[8]), h(f[9]), h(f[10]));
        let prf = match prf {
            "CMAC_AES128" | "CMAC_AES192" | "CMAC_AES256" => KbkdfPrf::Cmac(SymAlg::Aes),
            "HMAC_SHA1" => KbkdfPrf::Hmac(HashAlg::Sha1),
            "HMAC_SHA224" => KbkdfPrf::Hmac(HashAlg::Sha224),
            "HMAC_SHA256" => KbkdfPrf::Hmac(HashAlg::Sha256),
            "HMAC_SHA384" => KbkdfPrf::Hmac(HashAlg::Sha384),
            "HMAC_SHA512" => KbkdfPrf::Hmac(HashAlg::Sha512),
            other => panic!("{other}"),
        };
        let fmt = CounterFormat {
            little_endian: false,
            width_bits: rlen.parse().unwrap(),
        };
        let (mode, data) = match mode {
            "counter" => {
                let it = PrfData::IterationVariable(Some(fmt));
                let data = match loc {
                    "BEFORE_FIXED" => vec![it, PrfData::ByteArray(fixed)],
                    "AFTER_FIXED" => vec![PrfData::ByteArray(fixed), it],
                    "MIDDLE_FIXED" => {
                        vec![PrfData::ByteArray(before), it, PrfData::ByteArray(after)]
                    }
                    other => panic!("{other}"),
                };
                (KbkdfMode::Counter, data)
            }
            m @ ("feedback" | "pipeline") => {
                let it = PrfData::IterationVariable(None);
                let c = PrfData::Counter(fmt);
                let fx = PrfData::ByteArray(fixed);
                let data = match loc {
                    "BEFORE_ITER" => vec![c, it, fx],
                    "AFTER_ITER" => vec![it, c, fx],
                    "AFTER_FIXED" => vec![it, fx, c],
                    "NONE" => vec![it, fx],
                    other => panic!("{other}"),
                };
                let mode = if m == "feedback" {
                    KbkdfMode::Feedback { iv }
                } else {
                    KbkdfMode::DoublePipeline
                };
                (mode, data)
            }
            other => panic!("{other}"),
        };
        let k = Kbkdf { prf, mode, data };
        let len: usize = l.parse::<usize>().unwrap() / 8;
        let got = k.derive(&ki, &[len]).unwrap();
        assert_eq!(hex::encode(&*got[0]), hex::encode(&ko), "{line}");
        n += 1;
    }
    assert!(n > 500, "{n} vectors");
}

fn cryptoki_counter_params() -> Kbkdf {
    // The shape of the cryptoki test kbkdf_counter_mode.
    Kbkdf {
        prf: KbkdfPrf::Cmac(SymAlg::Aes),
        mode: KbkdfMode::Counter,
        data: vec![
            PrfData::IterationVariable(Some(CounterFormat {
                little_endian: false,
                width_bits: 16,
            })),
            PrfData::ByteArray(b"test_label".to_vec()),
            PrfData::ByteArray(vec![0]),
            PrfData::ByteArray(b"\xfe\xed\xbe\xef".to_vec()),
            PrfData::DkmLength(DkmFormat {
                method: DkmMethod::SumOfSegments,
                little_endian: false,
                width_bits: 32,
            }),
        ],
    }
}

#[test]
fn kbkdf_structure_additional_keys_and_dkm() {
    let key = [7u8; 32];
    let p = cryptoki_counter_params();
    // Same as computing the PRF blocks by hand.
    let one = p.derive(&key, &[32]).unwrap();
    let block = |i: u8, l_bits: u32| {
        let mut m = token_hal::crypto::mac::Mac::new(
            token_hal::crypto::mac::MacAlg::Cmac(SymAlg::Aes),
            &key,
        )
        .unwrap();
        m.update(&[0, i]).unwrap();
        m.update(b"test_label\x00\xfe\xed\xbe\xef").unwrap();
        m.update(&l_bits.to_be_bytes()).unwrap();
        m.finish().unwrap().to_vec()
    };
    let mut want = block(1, 256);
    want.extend(block(2, 256));
    assert_eq!(one[0].to_vec(), want);
    // Additional keys: each starts on a segment boundary; sum of segments is 48 bytes
    // (16 + 16 + 16) for keys of 16, 5 and 16 bytes.
    let three = p.derive(&key, &[16, 5, 16]).unwrap();
    let segs: Vec<Vec<u8>> = (1..=3).map(|i| block(i, 48 * 8)).collect();
    assert_eq!(three[0].to_vec(), segs[0]);
    assert_eq!(three[1].to_vec(), segs[1][..5].to_vec());
    assert_eq!(three[2].to_vec(), segs[2]);
    // Sum of keys counts 37 bytes.
    let mut p2 = p.clone();
    p2.data[4] = PrfData::DkmLength(DkmFormat {
        method: DkmMethod::SumOfKeys,
        little_endian: true,
        width_bits: 16,
    });
    let k = p2.derive(&key, &[16, 5, 16]).unwrap();
    let mut m =
        token_hal::crypto::mac::Mac::new(token_hal::crypto::mac::MacAlg::Cmac(SymAlg::Aes), &key)
            .unwrap();
    m.update(&[0, 1]).unwrap();
    m.update(b"test_label\x00\xfe\xed\xbe\xef").unwrap();
    m.update(&(37u16 * 8).to_le_bytes()).unwrap();
    assert_eq!(k[0].to_vec(), m.finish().unwrap().to_vec());
    // HMAC-SM3 and SM4-CMAC PRFs work too, and differ.
    for prf in [KbkdfPrf::Hmac(HashAlg::Sm3), KbkdfPrf::Cmac(SymAlg::Sm4)] {
        let mut q = p.clone();
        q.prf = prf;
        let k = q.derive(&key[..16], &[40]).unwrap();
        assert_eq!(k[0].len(), 40);
        assert_ne!(k[0].to_vec(), p.derive(&key, &[40]).unwrap()[0].to_vec());
    }
    // Feedback: the chaining value is the previous block; with an IV, K(0) = IV.
    let fb = Kbkdf {
        prf: KbkdfPrf::Hmac(HashAlg::Sha256),
        mode: KbkdfMode::Feedback {
            iv: b"sixteen bytes iv".to_vec(),
        },
        data: vec![
            PrfData::IterationVariable(None),
            PrfData::Counter(CounterFormat {
                little_endian: false,
                width_bits: 16,
            }),
        ],
    };
    let out = fb.derive(&key, &[64]).unwrap();
    let k1 = token_hal::crypto::hash::hmac(HashAlg::Sha256, &key, b"sixteen bytes iv\x00\x01");
    let mut in2 = k1.clone();
    in2.extend_from_slice(&[0, 2]);
    let k2 = token_hal::crypto::hash::hmac(HashAlg::Sha256, &key, &in2);
    assert_eq!(out[0][..32], k1[..]);
    assert_eq!(out[0][32..], k2[..]);
}

#[test]
fn kbkdf_invalid_parameters() {
    let key = [1u8; 32];
    let fmt = CounterFormat {
        little_endian: false,
        width_bits: 16,
    };
    let base = cryptoki_counter_params();
    let cases: Vec<(KbkdfMode, Vec<PrfData>)> = vec![
        // The four invalid shapes of the cryptoki test kbkdf_invalid_data_params_counter_mode.
        (KbkdfMode::Counter, base.data[1..].to_vec()),
        (KbkdfMode::Counter, {
            let mut d = base.data.clone();
            d[0] = PrfData::IterationVariable(None);
            d
        }),
        (KbkdfMode::Counter, {
            let mut d = base.data.clone();
            d.insert(1, PrfData::Counter(fmt));
            d
        }),
        (KbkdfMode::Counter, {
            let mut d = base.data.clone();
            d.push(d[4].clone());
            d
        }),
        // Feedback: a formatted iteration variable, two iteration variables, two counters.
        (
            KbkdfMode::Feedback { iv: vec![] },
            vec![PrfData::IterationVariable(Some(fmt))],
        ),
        (
            KbkdfMode::DoublePipeline,
            vec![
                PrfData::IterationVariable(None),
                PrfData::IterationVariable(None),
            ],
        ),
        (
            KbkdfMode::DoublePipeline,
            vec![
                PrfData::IterationVariable(None),
                PrfData::Counter(fmt),
                PrfData::Counter(fmt),
            ],
        ),
        // Bad widths.
        (
            KbkdfMode::Counter,
            vec![PrfData::IterationVariable(Some(CounterFormat {
                little_endian: false,
                width_bits: 12,
            }))],
        ),
        (
            KbkdfMode::DoublePipeline,
            vec![
                PrfData::IterationVariable(None),
                PrfData::DkmLength(DkmFormat {
                    method: DkmMethod::SumOfKeys,
                    little_endian: false,
                    width_bits: 72,
                }),
            ],
        ),
    ];
    for (mode, data) in cases {
        let k = Kbkdf {
            prf: KbkdfPrf::Cmac(SymAlg::Aes),
            mode,
            data,
        };
        assert!(
            matches!(
                k.derive(&key, &[32]),
                Err(token_hal::Error::InvalidArgument(_))
            ),
            "{k:?}"
        );
    }
    // An 8-bit counter allows 255 blocks of 16 bytes, not 256.
    let mut p = base.clone();
    p.data[0] = PrfData::IterationVariable(Some(CounterFormat {
        little_endian: false,
        width_bits: 8,
    }));
    assert_eq!(p.derive(&key, &[255 * 16]).unwrap()[0].len(), 255 * 16);
    assert!(p.derive(&key, &[256 * 16]).is_err());
    // Zero lengths, no keys, a CMAC key of the wrong size.
    assert!(base.derive(&key, &[0]).is_err());
    assert!(base.derive(&key, &[]).is_err());
    assert!(base.derive(&key[..20], &[16]).is_err());
}

#[test]
fn x963_and_sp800_56a() {
    // NIST CAVS ansx963_2001.rsp.
    assert_eq!(
        hex::encode(
            &*kdf::x963_kdf(
                HashAlg::Sha256,
                &h("96c05619d56c328ab95fe84b18264b08725b85e33fd34f08"),
                &[],
                16
            )
            .unwrap()
        ),
        "443024c3dae66b95e6f5670601558f71"
    );
    assert_eq!(
        hex::encode(
            &*kdf::x963_kdf(
                HashAlg::Sha1,
                &h("1c7d7b5f0597b03d06a018466ed1a93e30ed4b04dc64ccdd"),
                &[],
                16
            )
            .unwrap()
        ),
        "bf71dffd8f4d99223936beb46fee8ccc"
    );
    assert_eq!(
        hex::encode(
            &*kdf::x963_kdf(
                HashAlg::Sha256,
                &h("22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d"),
                &h("75eef81aa3041e33b80971203d2c0c52"),
                128
            )
            .unwrap()
        ),
        "c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf92f30d0097111485500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21"
    );
    assert!(kdf::x963_kdf(HashAlg::Sha256, b"z", &[], 0).is_err());

    // cryptoki 0.12.1 derive_key_sp800: X25519 then CKD_SHA256_SP800 with this OtherInfo.
    let k = PrivateKey::from_raw_private(
        KeyAlg::X25519,
        &h("f00670c5f139e7e6c2511ea04ff507afbbe237ce3c71a89ca59a1c5cf8856562"),
    )
    .unwrap();
    let z = k
        .derive(&DeriveMech::Ecdh {
            peer_point: h("533b3f09e53b3deed661a13f7a7d9694ab71ce156c728e00dee87a1ee3a14c4a"),
        })
        .unwrap()
        .secret;
    let other = h(
        "0a2b0601040197550105011203010807416e6f6e796d6f75732053656e646572202020205633a4c5ae4305bc0fe2abb699a8ee54632790a0",
    );
    assert_eq!(
        hex::encode(&*kdf::sp800_56a_kdf(HashAlg::Sha256, &z, &other, 16).unwrap()),
        "af8ce51d0139a6d60831a9babab20186"
    );
}
