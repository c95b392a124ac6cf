//! SM3 kernels: GB/T 32905 / GM/T 0004 vectors, the gm-interop bid, HMAC-SM3 (Wycheproof
//! and OpenSSL values), and differential tests against RustCrypto `sm3` on every tier
//! this CPU has (single stream with random split points, and the multi-buffer path).

use hmac::{KeyInit, Mac};
use sm3::Digest;
use ukey_simd::Tier;
use ukey_simd::sm3::{HmacSm3, LengthMismatch, Sm3, compress_with_tier, sm3_many_with_tier};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn reference(data: &[u8]) -> [u8; 32] {
    sm3::Sm3::digest(data).into()
}

/// xorshift64*: deterministic, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }
}

/// GB/T 32905-2016 Appendix A (= GM/T 0004-2012 Appendix A).
const ABC: &str = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0";
const ABCD16: &str = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732";

#[test]
fn standard_vectors_on_every_tier() {
    let abcd16 = b"abcd".repeat(16);
    for t in Tier::available() {
        assert_eq!(hex(&Sm3::digest_with_tier(t, b"abc")), ABC, "{t:?}");
        assert_eq!(hex(&Sm3::digest_with_tier(t, &abcd16)), ABCD16, "{t:?}");
        // Empty message: OpenSSL 3.0 `openssl dgst -sm3 /dev/null`.
        assert_eq!(
            hex(&Sm3::digest_with_tier(t, b"")),
            "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b",
            "{t:?}"
        );
        let mut out = [[0u8; 32]; 20];
        let msgs: Vec<&[u8]> = (0..20)
            .map(|i| if i % 2 == 0 { &b"abc"[..] } else { &abcd16[..] })
            .collect();
        sm3_many_with_tier(t, &msgs, &mut out).expect("lengths match");
        for (i, o) in out.iter().enumerate() {
            assert_eq!(hex(o), if i % 2 == 0 { ABC } else { ABCD16 }, "{t:?} #{i}");
        }
    }
}

#[test]
fn standard_vector_through_the_raw_compression_function() {
    // "abc" padded by hand: one block.
    let mut block = [0u8; 64];
    block[..3].copy_from_slice(b"abc");
    block[3] = 0x80;
    block[63] = 24;
    for t in Tier::available() {
        let mut st = ukey_simd::sm3::IV;
        compress_with_tier(t, &mut st, &[block]);
        let bytes: Vec<u8> = st.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(hex(&bytes), ABC, "{t:?}");
    }
}

/// The gm-interop bid (made by GmSSL 3.3) hashes to the value `openssl dgst -sm3` gives.
#[test]
fn gm_interop_bid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/gm-interop/bid.txt");
    let bid = std::fs::read(&path).expect("tests/data/gm-interop/bid.txt");
    for t in Tier::available() {
        assert_eq!(
            hex(&Sm3::digest_with_tier(t, &bid)),
            "b886dc984171aa413c647f6d9d6f25c01ba1f03358c42749b5242026b01e76d4",
            "{t:?}"
        );
    }
}

#[test]
fn hmac_sm3_vectors() {
    use wycheproof::TestResult;
    use wycheproof::mac::{TestName, TestSet};
    // OpenSSL 3.0 `openssl mac -digest SM3 -macopt key:Jefe HMAC`.
    for t in Tier::available() {
        let mut m = HmacSm3::with_tier(t, b"Jefe");
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&m.finalize()),
            "2e87f1d16862e6d964b50a5200bf2b10b764faa9680a296a2405f24bec39f882"
        );
    }
    let set = TestSet::load(TestName::HmacSm3).expect("wycheproof hmac_sm3");
    let mut n = 0;
    for g in &set.test_groups {
        for tc in &g.tests {
            for t in Tier::available() {
                let mut m = HmacSm3::with_tier(t, &tc.key);
                m.update(&tc.msg);
                let full = m.finalize();
                let tag = &full[..tc.tag.len().min(32)];
                let ok = tag == &tc.tag[..];
                match tc.result {
                    TestResult::Valid => assert!(ok, "wycheproof #{} {t:?}", tc.tc_id),
                    TestResult::Invalid => assert!(!ok, "wycheproof #{} {t:?}", tc.tc_id),
                    TestResult::Acceptable => {}
                }
                n += 1;
            }
        }
    }
    assert!(n > 50, "only {n} Wycheproof cases ran");
}

/// Random messages, each hashed in random pieces, on every tier against RustCrypto;
/// HMAC-SM3 against RustCrypto `hmac` over the same inputs.
#[test]
fn differential_streaming_every_tier() {
    let tiers = Tier::available();
    let mut rng = Rng(0x5eed_0001_u64);
    let mut buf = vec![0u8; 4400];
    const CASES: usize = 100_000;
    for case in 0..CASES * tiers.len() {
        let len = if case % 500 == 0 {
            1000 + rng.below(3200)
        } else {
            rng.below(300)
        };
        rng.fill(&mut buf[..len]);
        let msg = &buf[..len];
        let want = reference(msg);
        let t = tiers[case / CASES];
        let mut h = Sm3::with_tier(t);
        let mut rest = msg;
        while !rest.is_empty() {
            let n = rng
                .below(rest.len() + 1)
                .max(usize::from(rng.below(4) == 0));
            let n = n.min(rest.len());
            h.update(&rest[..n]);
            rest = &rest[n..];
        }
        let forked = h.clone();
        assert_eq!(h.finalize(), want, "case {case} len {len} {t:?}");
        assert_eq!(forked.finalize(), want, "clone, case {case} {t:?}");
        if case % 10 == 0 {
            let key_len = rng.below(150);
            let key = &buf[len..len + key_len];
            let mut r = <hmac::Hmac<sm3::Sm3> as KeyInit>::new_from_slice(key).expect("key");
            r.update(msg);
            let want: [u8; 32] = r.finalize().into_bytes().into();
            let mut m = HmacSm3::with_tier(t, key);
            m.update(msg);
            assert_eq!(m.finalize(), want, "hmac case {case} {t:?}");
        }
    }
    // Every tier also hashes one identical long message the same way.
    rng.fill(&mut buf);
    for t in &tiers {
        assert_eq!(Sm3::digest_with_tier(*t, &buf), reference(&buf), "{t:?}");
    }
}

/// Batches of random messages (lengths 0..300 plus some long ones, batch sizes that
/// leave lanes empty and refill them) on every tier against RustCrypto.
#[test]
fn differential_many_every_tier() {
    let mut rng = Rng(0x5eed_0002_u64);
    for t in Tier::available() {
        let mut total = 0;
        while total < 100_000 {
            let batch = 1 + rng.below(70);
            let msgs: Vec<Vec<u8>> = (0..batch)
                .map(|_| {
                    let len = if rng.below(200) == 0 {
                        500 + rng.below(3000)
                    } else {
                        rng.below(300)
                    };
                    let mut m = vec![0u8; len];
                    rng.fill(&mut m);
                    m
                })
                .collect();
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let mut out = vec![[0u8; 32]; batch];
            sm3_many_with_tier(t, &refs, &mut out).expect("lengths match");
            for (i, (m, o)) in msgs.iter().zip(&out).enumerate() {
                assert_eq!(*o, reference(m), "{t:?} batch {batch} #{i} len {}", m.len());
            }
            total += batch;
        }
    }
}

/// Lengths around the padding boundaries (55, 56, 63, 64, …) on every tier and path.
#[test]
fn padding_boundaries() {
    let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
    let lens: Vec<usize> = (0..=200).collect();
    for t in Tier::available() {
        let msgs: Vec<&[u8]> = lens.iter().map(|&l| &data[..l]).collect();
        let mut out = vec![[0u8; 32]; msgs.len()];
        sm3_many_with_tier(t, &msgs, &mut out).expect("lengths match");
        for (m, o) in msgs.iter().zip(&out) {
            let want = reference(m);
            assert_eq!(*o, want, "many {t:?} len {}", m.len());
            assert_eq!(
                Sm3::digest_with_tier(t, m),
                want,
                "single {t:?} len {}",
                m.len()
            );
        }
    }
}

#[test]
fn many_rejects_mismatched_output_and_writes_nothing() {
    let mut out = [[7u8; 32]; 2];
    let err = sm3_many_with_tier(Tier::current(), &[b"a", b"b", b"c"], &mut out);
    assert_eq!(
        err,
        Err(LengthMismatch {
            messages: 3,
            outputs: 2
        })
    );
    assert_eq!(out, [[7u8; 32]; 2]);
    let mut none: [[u8; 32]; 0] = [];
    assert_eq!(sm3_many_with_tier(Tier::current(), &[], &mut none), Ok(()));
}

#[test]
fn an_unsupported_tier_is_lowered_not_executed() {
    // On a CPU without AVX-512 this must still give the right answer.
    assert_eq!(hex(&Sm3::digest_with_tier(Tier::GfniAvx512, b"abc")), ABC);
    let h = Sm3::with_tier(Tier::GfniAvx512);
    assert!(h.tier().supported());
    assert_eq!(unhex(ABC).len(), 32);
    // Debug output names no state.
    assert_eq!(format!("{:?}", HmacSm3::new(b"secret")), "HmacSm3 { .. }");
    assert!(!format!("{h:?}").contains("state"));
}
