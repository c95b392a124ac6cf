//! CPU tiers: detected once per process, capped by `UKEY_CPU_TIER`.

use std::sync::OnceLock;

/// A set of CPU features a kernel family needs, from slowest to fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Plain Rust, any CPU.
    Portable,
    /// AES-NI + AVX2 (+ PCLMULQDQ, SSSE3, BMI2).
    AesniAvx2,
    /// GFNI + AVX2 (+ AES-NI, PCLMULQDQ, BMI2).
    GfniAvx2,
    /// GFNI + AVX-512 F/BW/VL (+ VAES, VPCLMULQDQ, BMI2).
    GfniAvx512,
}

impl Tier {
    /// Every tier, slowest first.
    pub const ALL: [Tier; 4] = [
        Tier::Portable,
        Tier::AesniAvx2,
        Tier::GfniAvx2,
        Tier::GfniAvx512,
    ];

    /// The name `UKEY_CPU_TIER` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Portable => "portable",
            Tier::AesniAvx2 => "aesni-avx2",
            Tier::GfniAvx2 => "gfni-avx2",
            Tier::GfniAvx512 => "gfni-avx512",
        }
    }

    /// Parses a `UKEY_CPU_TIER` value.
    pub fn from_name(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name() == s.trim())
    }

    /// Whether this CPU has everything the tier needs.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let base = || has!("avx2") && has!("ssse3") && has!("pclmulqdq") && has!("bmi2");
            match self {
                Tier::Portable => true,
                Tier::AesniAvx2 => base() && has!("aes"),
                Tier::GfniAvx2 => base() && has!("aes") && has!("gfni"),
                Tier::GfniAvx512 => {
                    base()
                        && has!("gfni")
                        && has!("avx512f")
                        && has!("avx512bw")
                        && has!("avx512vl")
                        && has!("vaes")
                        && has!("vpclmulqdq")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Tier::Portable
        }
    }

    /// The fastest tier this CPU supports, capped by `UKEY_CPU_TIER` when it is set
    /// (an unknown value caps at [`Tier::Portable`], the safe reading of a typo).
    /// Read once per process.
    pub fn current() -> Tier {
        static CURRENT: OnceLock<Tier> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let cap = match std::env::var("UKEY_CPU_TIER") {
                Ok(v) => Tier::from_name(&v).unwrap_or(Tier::Portable),
                Err(_) => Tier::GfniAvx512,
            };
            Tier::detected_up_to(cap)
        })
    }

    /// The fastest supported tier not above `cap`.
    pub fn detected_up_to(cap: Tier) -> Tier {
        Tier::ALL
            .into_iter()
            .rev()
            .find(|t| *t <= cap && t.supported())
            .unwrap_or(Tier::Portable)
    }

    /// Every tier this CPU supports, slowest first (what differential tests iterate).
    pub fn available() -> Vec<Tier> {
        Tier::ALL.into_iter().filter(|t| t.supported()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_portable_is_always_there() {
        for t in Tier::ALL {
            assert_eq!(Tier::from_name(t.name()), Some(t));
        }
        assert_eq!(Tier::from_name("avx9000"), None);
        assert!(Tier::Portable.supported());
        assert_eq!(Tier::detected_up_to(Tier::Portable), Tier::Portable);
        assert!(Tier::available().contains(&Tier::Portable));
    }
}
