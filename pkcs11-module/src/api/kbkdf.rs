//! SP 800-108 key-based KDF (counter, feedback, double-pipeline) as PKCS#11 3.0 §2.42
//! describes it, over token-hal's HMAC and CMAC.

use cryptoki_sys::*;
use token_hal::crypto::hash::HashAlg;
use token_hal::crypto::mac::{Mac, MacAlg};
use token_hal::crypto::sym::SymAlg;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mechanism::PrfData;

fn bad() -> Error {
    Error(CKR_MECHANISM_PARAM_INVALID)
}

/// The PRF of a `prfType`.
fn prf_alg(prf: CK_MECHANISM_TYPE) -> Result<MacAlg> {
    Ok(match prf {
        CKM_SHA_1_HMAC => MacAlg::Hmac(HashAlg::Sha1),
        CKM_SHA224_HMAC => MacAlg::Hmac(HashAlg::Sha224),
        CKM_SHA256_HMAC => MacAlg::Hmac(HashAlg::Sha256),
        CKM_SHA384_HMAC => MacAlg::Hmac(HashAlg::Sha384),
        CKM_SHA512_HMAC => MacAlg::Hmac(HashAlg::Sha512),
        CKM_AES_CMAC => MacAlg::Cmac(SymAlg::Aes),
        _ => return Err(bad()),
    })
}

fn encode(v: u64, little: bool, bits: CK_ULONG) -> Vec<u8> {
    let n = (bits / 8) as usize;
    let be = v.to_be_bytes();
    let mut out = be[8 - n..].to_vec();
    if little {
        out.reverse();
    }
    out
}

/// The SP 800-108 modes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Counter,
    Feedback,
    Pipeline,
}

/// Checks the data parameters against the mode (PKCS#11 3.0 §2.42.4–2.42.6).
fn check(mode: Mode, data: &[PrfData]) -> Result<()> {
    let iters: Vec<_> = data
        .iter()
        .filter(|d| matches!(d, PrfData::Iteration(_)))
        .collect();
    if iters.len() != 1 {
        return Err(bad());
    }
    let counter_ok = |bits: CK_ULONG| bits.is_multiple_of(8) && (8..=32).contains(&bits);
    match (mode, iters[0]) {
        (Mode::Counter, PrfData::Iteration(Some((_, bits)))) if counter_ok(*bits) => {}
        (Mode::Feedback | Mode::Pipeline, PrfData::Iteration(None)) => {}
        _ => return Err(bad()),
    }
    let mut dkm = 0;
    for d in data {
        match d {
            PrfData::Counter(_, bits) if mode != Mode::Counter && counter_ok(*bits) => {}
            PrfData::Counter(..) => return Err(bad()),
            PrfData::Dkm(method, _, bits) => {
                dkm += 1;
                if !bits.is_multiple_of(8)
                    || !(8..=64).contains(bits)
                    || !matches!(
                        *method,
                        CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS
                            | CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS
                    )
                {
                    return Err(bad());
                }
            }
            _ => {}
        }
    }
    if dkm > 1 {
        return Err(bad());
    }
    Ok(())
}

/// Derives the keying material for keys of `lens` bytes; returns one value per key.
pub(crate) fn derive(
    mode: Mode,
    prf: CK_MECHANISM_TYPE,
    key: &[u8],
    data: &[PrfData],
    iv: &[u8],
    lens: &[usize],
) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    check(mode, data)?;
    if mode != Mode::Feedback && !iv.is_empty() {
        return Err(bad());
    }
    let alg = prf_alg(prf)?;
    let h = alg.output_len();
    let by_segments = data
        .iter()
        .any(|d| matches!(d, PrfData::Dkm(CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS, ..)));
    let seg = |l: usize| l.div_ceil(h) * h;
    // Where each key starts in the keying material.
    let mut offsets = Vec::new();
    let mut total = 0usize;
    for l in lens {
        offsets.push(total);
        total += if by_segments { seg(*l) } else { *l };
    }
    let l_bits = (total as u64) * 8;
    let mac = |input: &[&[u8]]| -> Result<Zeroizing<Vec<u8>>> {
        let mut m = Mac::new(alg, key).map_err(|_| Error(CKR_KEY_TYPE_INCONSISTENT))?;
        for part in input {
            m.update(part)?;
        }
        Ok(m.finish()?)
    };
    let fixed = |i: u64, chain: &[u8], pipeline_a: bool| -> Vec<Vec<u8>> {
        let mut parts = Vec::new();
        for d in data {
            match d {
                PrfData::Iteration(Some((little, bits))) => parts.push(encode(i, *little, *bits)),
                PrfData::Iteration(None) => parts.push(chain.to_vec()),
                PrfData::Counter(little, bits) => {
                    if !pipeline_a {
                        parts.push(encode(i, *little, *bits));
                    }
                }
                PrfData::Dkm(_, little, bits) => parts.push(encode(l_bits, *little, *bits)),
                PrfData::Bytes(b) => parts.push(b.clone()),
            }
        }
        parts
    };
    let n = total.div_ceil(h) as u64;
    if n > u32::MAX as u64 {
        return Err(bad());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(total + h));
    let mut prev: Zeroizing<Vec<u8>> = Zeroizing::new(iv.to_vec());
    // Double pipeline: A(0) is the fixed input (the data without the iteration variable).
    let mut a: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    if mode == Mode::Pipeline {
        let parts: Vec<Vec<u8>> = fixed(0, &[], true)
            .into_iter()
            .zip(data)
            .filter(|(_, d)| !matches!(d, PrfData::Iteration(_)))
            .map(|(p, _)| p)
            .collect();
        a = Zeroizing::new(parts.concat());
    }
    for i in 1..=n {
        let block = match mode {
            Mode::Counter => {
                let parts = fixed(i, &[], false);
                mac(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>())?
            }
            Mode::Feedback => {
                let parts = fixed(i, &prev, false);
                mac(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>())?
            }
            Mode::Pipeline => {
                a = mac(&[&a])?;
                let parts = fixed(i, &a, false);
                mac(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>())?
            }
        };
        out.extend_from_slice(&block);
        prev = block;
    }
    Ok(offsets
        .iter()
        .zip(lens)
        .map(|(o, l)| Zeroizing::new(out[*o..*o + *l].to_vec()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_mode_hmac_sha256_nist_cavp() {
        // NIST SP 800-108 CAVP, CTRLOCATION=BEFORE_FIXED, RLEN=32_BITS, PRF=HMAC_SHA256, L=128, COUNT=0.
        let ki = hex::decode("dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0")
            .unwrap_or_default();
        let fixed = hex::decode(
            "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b864a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac",
        )
        .unwrap_or_default();
        let data = vec![PrfData::Iteration(Some((false, 32))), PrfData::Bytes(fixed)];
        let k = derive(Mode::Counter, CKM_SHA256_HMAC, &ki, &data, &[], &[16]).unwrap_or_default();
        assert_eq!(hex::encode(&*k[0]), "10621342bfb0fd40046c0e29f2cfdbf0");
    }

    #[test]
    fn modes_refuse_bad_parameters() {
        let k = [1u8; 32];
        let none: Vec<PrfData> = vec![PrfData::Bytes(vec![1])];
        assert!(derive(Mode::Counter, CKM_SHA256_HMAC, &k, &none, &[], &[16]).is_err());
        let fb = vec![PrfData::Iteration(Some((false, 16)))];
        assert!(derive(Mode::Feedback, CKM_SHA256_HMAC, &k, &fb, &[], &[16]).is_err());
        let ok = vec![PrfData::Iteration(None), PrfData::Counter(false, 16)];
        assert!(derive(Mode::Feedback, CKM_SHA256_HMAC, &k, &ok, &[0; 4], &[16, 32]).is_ok());
    }
}
