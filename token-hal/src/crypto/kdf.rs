//! Key derivation: PBKDF2 (HMAC-SM3 and HMAC-SHA-*); the ANSI X9.63 and SP 800-56A
//! one-step KDFs (PKCS#11 ECDH1 derive); SP 800-108 KBKDF in counter, feedback and
//! double-pipeline modes with HMAC and CMAC PRFs ([`Kbkdf`]).

use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::crypto::provider::provider;
use crate::error::{Error, Result};

/// PBKDF2 with HMAC over `prf`.
pub fn pbkdf2(
    prf: HashAlg,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    if iterations == 0 {
        return Err(Error::invalid_arg(
            "PBKDF2 iteration count must be at least 1",
        ));
    }
    if out_len == 0 || out_len > 1024 {
        return Err(Error::invalid_arg(
            "PBKDF2 output length must be 1..=1024 bytes",
        ));
    }
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    provider()
        .hash
        .pbkdf2(prf, password, salt, iterations, &mut out);
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// ANSI X9.63 and NIST SP 800-56A (concatenation) KDFs: PKCS#11 ECDH1 derive's
// CKD_SHA*_KDF and CKD_SHA*_SP800 key derivation functions.
// ---------------------------------------------------------------------------------------

fn hash_counter_kdf(
    hash: HashAlg,
    out_len: usize,
    mut block: impl FnMut(&mut crate::crypto::hash::Hasher, [u8; 4]),
) -> Result<Zeroizing<Vec<u8>>> {
    let h_len = hash.output_len();
    // Both standards bound the output at (2^32 - 1) hash blocks; we bound it far lower.
    if out_len == 0 || out_len > 1 << 20 {
        return Err(Error::invalid_arg(
            "KDF output length must be 1 byte to 1 MiB",
        ));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(out_len + h_len));
    let mut counter: u32 = 1;
    while out.len() < out_len {
        let mut h = crate::crypto::hash::Hasher::new(hash);
        block(&mut h, counter.to_be_bytes());
        out.extend_from_slice(&Zeroizing::new(h.finish()));
        counter = counter
            .checked_add(1)
            .ok_or_else(|| Error::invalid_arg("KDF counter overflow"))?;
    }
    out.truncate(out_len);
    Ok(out)
}

/// ANSI X9.63 KDF (SEC 1 §3.6.1; PKCS#11 `CKD_SHA*_KDF`):
/// K = H(Z ‖ 00000001 ‖ SharedInfo) ‖ H(Z ‖ 00000002 ‖ SharedInfo) ‖ …, truncated.
pub fn x963_kdf(
    hash: HashAlg,
    z: &[u8],
    shared_info: &[u8],
    out_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    hash_counter_kdf(hash, out_len, |h, ctr| {
        h.update(z);
        h.update(&ctr);
        h.update(shared_info);
    })
}

/// NIST SP 800-56A rev. 3 §5.8.2.1.1 one-step KDF with a hash (the "concatenation
/// KDF"; PKCS#11 `CKD_SHA*_SP800`): K = H(00000001 ‖ Z ‖ OtherInfo) ‖ …, truncated.
pub fn sp800_56a_kdf(
    hash: HashAlg,
    z: &[u8],
    other_info: &[u8],
    out_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    hash_counter_kdf(hash, out_len, |h, ctr| {
        h.update(&ctr);
        h.update(z);
        h.update(other_info);
    })
}

// ---------------------------------------------------------------------------------------
// NIST SP 800-108 KBKDF with the parameter model of PKCS#11 3.0 `CK_SP800_108_KDF_PARAMS`.
// ---------------------------------------------------------------------------------------

/// The PRF of a KBKDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KbkdfPrf {
    /// HMAC over this hash (PKCS#11 `CKM_SHA*_HMAC`, and `CKM_SM3_HMAC`).
    Hmac(HashAlg),
    /// CMAC over this block cipher (PKCS#11 `CKM_AES_CMAC`; SM4 as a vendor extension).
    Cmac(crate::crypto::sym::SymAlg),
}

impl KbkdfPrf {
    fn mac_alg(self) -> crate::crypto::mac::MacAlg {
        match self {
            Self::Hmac(h) => crate::crypto::mac::MacAlg::Hmac(h),
            Self::Cmac(c) => crate::crypto::mac::MacAlg::Cmac(c),
        }
    }
    /// The PRF output (segment) length in bytes.
    pub fn output_len(self) -> usize {
        self.mac_alg().output_len()
    }
}

/// The KBKDF mode (PKCS#11 `CKM_SP800_108_COUNTER_KDF`, `_FEEDBACK_KDF`,
/// `_DOUBLE_PIPELINE_KDF`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KbkdfMode {
    /// Counter mode (SP 800-108 §5.1): the iteration variable is the counter i.
    Counter,
    /// Feedback mode (§5.2): the iteration variable is K(i-1), K(0) = `iv` (may be
    /// empty; PKCS#11 `CK_SP800_108_FEEDBACK_KDF_PARAMS.pIV`).
    Feedback {
        /// K(0).
        iv: Vec<u8>,
    },
    /// Double-pipeline mode (§5.3): the iteration variable is A(i), with
    /// A(1) = PRF(the data parameters without the optional counter, the iteration
    /// variable contributing nothing), A(i) = PRF(A(i-1)).
    DoublePipeline,
}

/// How a counter is encoded (PKCS#11 `CK_SP800_108_COUNTER_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterFormat {
    /// Little-endian instead of big-endian.
    pub little_endian: bool,
    /// Width in bits: 8, 16, 24 or 32.
    pub width_bits: u32,
}

/// What the DKM length field counts (PKCS#11 `CK_SP800_108_DKM_LENGTH_METHOD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DkmMethod {
    /// The sum of the lengths of all derived keys (`..._SUM_OF_KEYS`).
    SumOfKeys,
    /// The sum of the lengths of the PRF segments the keys occupy, each key rounded up
    /// to whole segments (`..._SUM_OF_SEGMENTS`).
    SumOfSegments,
}

/// How the DKM length is encoded (PKCS#11 `CK_SP800_108_DKM_LENGTH_FORMAT`). The value
/// is in bits, reduced modulo 2^width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DkmFormat {
    /// What is counted.
    pub method: DkmMethod,
    /// Little-endian instead of big-endian.
    pub little_endian: bool,
    /// Width in bits: 8, 16, …, 64.
    pub width_bits: u32,
}

/// One PRF input element, in order (PKCS#11 `CK_PRF_DATA_PARAM`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrfData {
    /// `CK_SP800_108_ITERATION_VARIABLE`: in counter mode the counter, whose format
    /// must be given; in feedback and double-pipeline mode the chaining value, with no
    /// format. Exactly one is required.
    IterationVariable(Option<CounterFormat>),
    /// `CK_SP800_108_OPTIONAL_COUNTER` (feedback and double-pipeline modes only; at
    /// most one).
    Counter(CounterFormat),
    /// `CK_SP800_108_DKM_LENGTH` (at most one).
    DkmLength(DkmFormat),
    /// `CK_SP800_108_BYTE_ARRAY`: bytes fed as they are.
    ByteArray(Vec<u8>),
}

/// A KBKDF instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kbkdf {
    /// The PRF.
    pub prf: KbkdfPrf,
    /// The mode.
    pub mode: KbkdfMode,
    /// The PRF input elements, in order.
    pub data: Vec<PrfData>,
}

fn encode_int(out: &mut Vec<u8>, v: u64, width_bits: u32, little_endian: bool) {
    let n = (width_bits / 8) as usize;
    let be = v.to_be_bytes();
    let field = &be[8 - n..];
    if little_endian {
        out.extend(field.iter().rev());
    } else {
        out.extend_from_slice(field);
    }
}

impl Kbkdf {
    /// Checks the parameters as PKCS#11 3.0 §2.42 requires. Every violation is
    /// `Error::InvalidArgument` (PKCS#11 `CKR_MECHANISM_PARAM_INVALID`).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::invalid_arg(format!("SP 800-108 parameters: {m}")));
        let (mut iter, mut ctr, mut dkm) = (0, 0, 0);
        for d in &self.data {
            match d {
                PrfData::IterationVariable(f) => {
                    iter += 1;
                    match (&self.mode, f) {
                        (KbkdfMode::Counter, None) => {
                            return bad("counter mode needs the iteration variable's format");
                        }
                        (KbkdfMode::Counter, Some(f)) => check_counter(f)?,
                        (_, Some(_)) => {
                            return bad("the chaining iteration variable takes no format");
                        }
                        (_, None) => {}
                    }
                }
                PrfData::Counter(f) => {
                    if self.mode == KbkdfMode::Counter {
                        return bad("counter mode takes no optional counter");
                    }
                    check_counter(f)?;
                    ctr += 1;
                }
                PrfData::DkmLength(f) => {
                    if f.width_bits == 0 || f.width_bits > 64 || f.width_bits % 8 != 0 {
                        return bad("DKM length width must be 8, 16, ..., 64 bits");
                    }
                    dkm += 1;
                }
                PrfData::ByteArray(_) => {}
            }
        }
        if iter != 1 {
            return bad("exactly one iteration variable is required");
        }
        if ctr > 1 {
            return bad("at most one optional counter");
        }
        if dkm > 1 {
            return bad("at most one DKM length");
        }
        Ok(())
    }

    /// The counter width limiting the number of iterations (2^r - 1).
    fn counter_width(&self) -> u32 {
        self.data
            .iter()
            .find_map(|d| match (d, &self.mode) {
                (PrfData::IterationVariable(Some(f)), KbkdfMode::Counter) => Some(f.width_bits),
                (PrfData::Counter(f), _) => Some(f.width_bits),
                _ => None,
            })
            .unwrap_or(32)
    }

    fn feed(
        &self,
        mac: &mut crate::crypto::mac::Mac,
        counter: u32,
        chaining: &[u8],
        dkm: (u64, u64),
        skip_counter: bool,
    ) -> Result<()> {
        let mut buf = Vec::with_capacity(8);
        for d in &self.data {
            buf.clear();
            match d {
                PrfData::IterationVariable(Some(f)) => {
                    encode_int(&mut buf, u64::from(counter), f.width_bits, f.little_endian);
                    mac.update(&buf)?;
                }
                PrfData::IterationVariable(None) => mac.update(chaining)?,
                PrfData::Counter(_) if skip_counter => {}
                PrfData::Counter(f) => {
                    encode_int(&mut buf, u64::from(counter), f.width_bits, f.little_endian);
                    mac.update(&buf)?;
                }
                PrfData::DkmLength(f) => {
                    let bits = match f.method {
                        DkmMethod::SumOfKeys => dkm.0,
                        DkmMethod::SumOfSegments => dkm.1,
                    };
                    let v = if f.width_bits >= 64 {
                        bits
                    } else {
                        bits & ((1u64 << f.width_bits) - 1)
                    };
                    encode_int(&mut buf, v, f.width_bits, f.little_endian);
                    mac.update(&buf)?;
                }
                PrfData::ByteArray(b) => mac.update(b)?,
            }
        }
        Ok(())
    }

    /// Derives keys of `key_lens` bytes each (the base key first, then PKCS#11's
    /// additional derived keys, in order) from the key-derivation key `key`. Each key
    /// starts on a PRF-segment boundary, as NSS and kryoptic lay them out; the DKM
    /// length counts bits. Errors: `InvalidArgument` for bad parameters, a zero or
    /// over-long length, or more iterations than the counter width allows; the PRF's
    /// own key errors (e.g. a CMAC key of the wrong size).
    pub fn derive(&self, key: &[u8], key_lens: &[usize]) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        self.validate()?;
        let seg = self.prf.output_len();
        if key_lens.is_empty() || key_lens.iter().any(|&l| l == 0 || l > 1 << 20) {
            return Err(Error::invalid_arg(
                "SP 800-108 derived keys must be 1 byte to 1 MiB each",
            ));
        }
        let slots: Vec<usize> = key_lens.iter().map(|l| l.div_ceil(seg) * seg).collect();
        let total: usize = slots.iter().sum();
        let iterations = total / seg;
        let r = self.counter_width();
        if u64::try_from(iterations).unwrap_or(u64::MAX) >= (1u64 << r) {
            return Err(Error::invalid_arg(format!(
                "SP 800-108: {iterations} iterations do not fit a {r}-bit counter"
            )));
        }
        let sum_keys = key_lens.iter().map(|&l| l as u64 * 8).sum::<u64>();
        let dkm = (sum_keys, total as u64 * 8);
        let alg = self.prf.mac_alg();
        let mut out = Zeroizing::new(Vec::with_capacity(total));
        let mut chaining: Zeroizing<Vec<u8>> = Zeroizing::new(match &self.mode {
            KbkdfMode::Feedback { iv } => iv.clone(),
            _ => Vec::new(),
        });
        let mut a: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
        for i in 1..=iterations {
            let counter = u32::try_from(i).map_err(|_| Error::invalid_arg("SP 800-108 counter"))?;
            let mut mac = crate::crypto::mac::Mac::new(alg, key)?;
            match self.mode {
                KbkdfMode::Counter => self.feed(&mut mac, counter, &[], dkm, false)?,
                KbkdfMode::Feedback { .. } => {
                    self.feed(&mut mac, counter, &chaining, dkm, false)?
                }
                KbkdfMode::DoublePipeline => {
                    // First pipeline: A(1) = PRF(data without the counter, empty
                    // iteration variable); A(i) = PRF(A(i-1)).
                    let mut first = crate::crypto::mac::Mac::new(alg, key)?;
                    if i == 1 {
                        self.feed(&mut first, counter, &[], dkm, true)?;
                    } else {
                        first.update(&a)?;
                    }
                    a = first.finish()?;
                    self.feed(&mut mac, counter, &a, dkm, false)?;
                }
            }
            let k = mac.finish()?;
            out.extend_from_slice(&k);
            chaining = k;
        }
        let mut keys = Vec::with_capacity(key_lens.len());
        let mut at = 0;
        for (len, slot) in key_lens.iter().zip(&slots) {
            keys.push(Zeroizing::new(out[at..at + len].to_vec()));
            at += slot;
        }
        Ok(keys)
    }
}

fn check_counter(f: &CounterFormat) -> Result<()> {
    if matches!(f.width_bits, 8 | 16 | 24 | 32) {
        Ok(())
    } else {
        Err(Error::invalid_arg(
            "SP 800-108 counter width must be 8, 16, 24 or 32 bits",
        ))
    }
}
