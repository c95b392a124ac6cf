//! Arithmetic modulo the SM2 prime p = 2^256 − 2^224 − 2^96 + 2^64 − 1 with BMI2
//! (`mulx`) and ADX, for the fast SM2 backend in token-hal.
//!
//! Two pieces, both behind [`Bmi2Adx`], a zero-sized proof that the CPU has BMI2 and
//! ADX and that `UKEY_CPU_TIER` allows them (it is only obtainable after detection, and
//! `UKEY_CPU_TIER=portable` never yields one):
//!
//! - The field kernels, `core::arch::asm!` blocks in `#[inline(always)]` functions (an
//!   `asm!` block needs no `#[target_feature]`, so they inline into token-hal's point
//!   formulas): [`Bmi2Adx::mul`] / [`Bmi2Adx::square`], Montgomery multiplication and
//!   squaring (R = 2^256) on four little-endian 64-bit limbs, the product with `mulx`
//!   and two carry chains (`adcx`, `adox`), then four Montgomery steps that need no
//!   multiplication (−p^−1 ≡ 1 mod 2^64, and (m·p + m)/2^64 = m·2^192 − m·2^160 −
//!   m·2^32 + m); [`Bmi2Adx::add`] / [`Bmi2Adx::sub`] / [`Bmi2Adx::double`] /
//!   [`Bmi2Adx::neg`] mod p. Branch-free, no memory indexed by data. Inputs must be
//!   below p; results are below p.
//! - [`Bmi2Adx::run`]: the "generic trampoline". It calls a caller-supplied
//!   [`Kernel`] from inside a function compiled with `bmi2,adx`, so that a whole
//!   scalar multiplication written in plain safe Rust in token-hal (marked
//!   `#[inline(always)]`) is compiled with those features.
//!
//! The portable twin of both is token-hal's own `sm2fast::field` code; its differential
//! tests compare the two on every tier this machine can force, and `tests/sm2p.rs`
//! compares the kernels with a slow bit-serial reference.

// `unsafe` here: the call into the `#[target_feature(enable = "bmi2,adx")]` trampoline
// and into the `mulx`/`adcx`/`adox` kernels (a `Bmi2Adx` value proves the CPU supports
// them), and the `asm!` blocks themselves (each with its own SAFETY comment).
#![allow(unsafe_code)]

use crate::Tier;

/// Proof that this CPU has BMI2 and ADX and that the tier cap allows using them.
/// Zero-sized; only [`Bmi2Adx::get`] / [`Bmi2Adx::for_tier`] make one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bmi2Adx {
    _proof: (),
}

/// A computation [`Bmi2Adx::run`] compiles with BMI2 and ADX enabled. Implement `run`
/// with `#[inline(always)]` (and everything it calls likewise) for the features to reach
/// the inner loops; whatever is not inlined still runs correctly, on the baseline
/// target's instructions.
pub trait Kernel {
    /// What the computation returns.
    type Output;
    /// The computation.
    fn run(self) -> Self::Output;
}

impl Bmi2Adx {
    /// The proof for this process's tier ([`Tier::current`]).
    pub fn get() -> Option<Self> {
        Self::for_tier(Tier::current())
    }

    /// The proof, if `tier` is above [`Tier::Portable`] and supported (every x86 tier
    /// above portable includes BMI2) and the CPU also has ADX.
    pub fn for_tier(tier: Tier) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if tier != Tier::Portable
                && tier.supported()
                && std::arch::is_x86_feature_detected!("bmi2")
                && std::arch::is_x86_feature_detected!("adx")
            {
                return Some(Self { _proof: () });
            }
        }
        let _ = tier;
        None
    }

    /// Runs `k` inside a function compiled with `bmi2,adx`.
    #[inline]
    pub fn run<K: Kernel>(self, k: K) -> K::Output {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: a `Bmi2Adx` exists only after `for_tier` detected BMI2 and ADX on
            // this CPU; `run_bmi2_adx` needs nothing else.
            unsafe { x86::run_bmi2_adx(k) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            k.run()
        }
    }

    /// Montgomery product a·b·2^−256 mod p (a, b < p; the result is below p).
    #[inline(always)]
    pub fn mul(self, a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `x86::mul` needs BMI2 and ADX; a `Bmi2Adx` exists only after
            // `for_tier` detected both on this CPU.
            unsafe { x86::mul(a, b) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (a, b);
            unreachable!("no Bmi2Adx proof exists off x86-64")
        }
    }

    /// Montgomery square a²·2^−256 mod p (a < p; the result is below p).
    #[inline(always)]
    pub fn square(self, a: &[u64; 4]) -> [u64; 4] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: as in `mul`.
            unsafe { x86::square(a) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = a;
            unreachable!("no Bmi2Adx proof exists off x86-64")
        }
    }

    /// (a + b) mod p (a, b < p).
    #[inline(always)]
    pub fn add(self, a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        #[cfg(target_arch = "x86_64")]
        {
            x86::add(a, b)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (a, b);
            unreachable!("no Bmi2Adx proof exists off x86-64")
        }
    }

    /// (a − b) mod p (a, b < p).
    #[inline(always)]
    pub fn sub(self, a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        #[cfg(target_arch = "x86_64")]
        {
            x86::sub(a, b)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (a, b);
            unreachable!("no Bmi2Adx proof exists off x86-64")
        }
    }

    /// 2a mod p (a < p).
    #[inline(always)]
    pub fn double(self, a: &[u64; 4]) -> [u64; 4] {
        #[cfg(target_arch = "x86_64")]
        {
            x86::double(a)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = a;
            unreachable!("no Bmi2Adx proof exists off x86-64")
        }
    }

    /// −a mod p (a < p; 0 for 0).
    #[inline(always)]
    pub fn neg(self, a: &[u64; 4]) -> [u64; 4] {
        self.sub(&[0; 4], a)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::asm;

    use super::Kernel;

    #[target_feature(enable = "bmi2,adx")]
    pub(super) fn run_bmi2_adx<K: Kernel>(k: K) -> K::Output {
        k.run()
    }

    // The field kernels are `asm!` blocks in `#[inline(always)]` functions (an `asm!`
    // block needs no `#[target_feature]`, so it inlines into any caller). Register
    // conventions of the multiplication and the squaring: the 512-bit product in
    // r8..r15 (least significant first), rax/rcx scratch, rdx the implicit `mulx`
    // operand; the result in r8..r11.

    /// One row of the schoolbook product: t_i..t_(i+4) += a_i·b, with a_i at
    /// [rsi + off] and b at [rdi]. Two carry chains (`adox` for the low halves, `adcx`
    /// for the high halves), both started clear by the `xor`; t_(i+4) is fresh (the
    /// `mulx` writes it) and takes both chains' last carries. Nothing carries out of
    /// t_(i+4): the running sum (a_0 + … + a_i·2^64i)·b fits in i + 5 limbs.
    macro_rules! mul_row {
        ($off:literal, $t0:literal, $t1:literal, $t2:literal, $t3:literal, $t4:literal) => {
            concat!(
                "xor edx, edx\n",
                "mov rdx, [rsi + ",
                $off,
                "]\n",
                "mulx rcx, rax, [rdi]\n",
                "adox ",
                $t0,
                ", rax\n",
                "adcx ",
                $t1,
                ", rcx\n",
                "mulx rcx, rax, [rdi + 8]\n",
                "adox ",
                $t1,
                ", rax\n",
                "adcx ",
                $t2,
                ", rcx\n",
                "mulx rcx, rax, [rdi + 16]\n",
                "adox ",
                $t2,
                ", rax\n",
                "adcx ",
                $t3,
                ", rcx\n",
                "mulx ",
                $t4,
                ", rax, [rdi + 24]\n",
                "adox ",
                $t3,
                ", rax\n",
                "mov edx, 0\n",
                "adcx ",
                $t4,
                ", rdx\n",
                "adox ",
                $t4,
                ", rdx\n",
            )
        };
    }

    /// One Montgomery step on the low half r = [r0, r1, r2, r3] (< 2^256), with
    /// m = r0 (−p^−1 ≡ 1 mod 2^64): (r + m·p)/2^64 = [r1, r2, r3, 0] + X with
    /// X = m·2^192 − m·2^160 − m·2^32 + m = [m, 0, 0, m] − [lo, hi, lo, hi] for
    /// lo = m << 32, hi = m >> 32. Computed as ([r1, r2, r3, m] + m − [lo, hi, lo, hi])
    /// mod 2^256, which is exact because the result is below 2^256
    /// ((2^256 − 1) + (2^64 − 1)·p < 2^320). The result is [r1, r2, r3, r0]: the
    /// register that held m becomes the top limb.
    macro_rules! mont_step {
        ($r0:literal, $r1:literal, $r2:literal, $r3:literal) => {
            concat!(
                "mov rax, ",
                $r0,
                "\n",
                "shl rax, 32\n",
                "mov rcx, ",
                $r0,
                "\n",
                "shr rcx, 32\n",
                "add ",
                $r1,
                ", ",
                $r0,
                "\n",
                "adc ",
                $r2,
                ", 0\n",
                "adc ",
                $r3,
                ", 0\n",
                "adc ",
                $r0,
                ", 0\n",
                "sub ",
                $r1,
                ", rax\n",
                "sbb ",
                $r2,
                ", rcx\n",
                "sbb ",
                $r3,
                ", rax\n",
                "sbb ",
                $r0,
                ", rcx\n",
            )
        };
    }

    /// From the product t = a·b (a, b < p) in r8..r15 to t·2^−256 mod p in r8..r11.
    /// Four Montgomery steps take the low half L to L' = (L + M·p)/2^256 ≤ p; with
    /// the high half H < p, s = L' + H < 2p, and one subtraction of p (kept when it
    /// does not borrow, selected with `cmov`) gives the result below p.
    macro_rules! reduce {
        () => {
            concat!(
                mont_step!("r8", "r9", "r10", "r11"),
                mont_step!("r9", "r10", "r11", "r8"),
                mont_step!("r10", "r11", "r8", "r9"),
                mont_step!("r11", "r8", "r9", "r10"),
                // s = L' + H, carry in rcx.
                "xor ecx, ecx\n",
                "add r12, r8\n",
                "adc r13, r9\n",
                "adc r14, r10\n",
                "adc r15, r11\n",
                "adc rcx, 0\n",
                // s − p (p's limbs 0 and 2 are all ones: the immediate −1).
                "mov r8, r12\n",
                "mov r9, r13\n",
                "mov r10, r14\n",
                "mov r11, r15\n",
                "mov rax, 0xFFFFFFFF00000000\n",
                "mov rdx, 0xFFFFFFFEFFFFFFFF\n",
                "sub r8, -1\n",
                "sbb r9, rax\n",
                "sbb r10, -1\n",
                "sbb r11, rdx\n",
                // Borrow out of (carry − borrow): set exactly when s + carry·2^256 < p.
                "sbb rcx, 0\n",
                "cmovc r8, r12\n",
                "cmovc r9, r13\n",
                "cmovc r10, r14\n",
                "cmovc r11, r15\n",
            )
        };
    }

    /// Montgomery product a·b·2^−256 mod p for a, b < p. The caller must make sure
    /// the CPU has BMI2 (`mulx`) and ADX (`adcx`, `adox`).
    #[inline(always)]
    pub(super) unsafe fn mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        let (o0, o1, o2, o3): (u64, u64, u64, u64);
        // SAFETY: reads the 32 bytes behind `a` (rsi) and `b` (rdi), both valid
        // references to [u64; 4]; writes only registers, all declared; no stack use.
        // mulx/adcx/adox are present by the caller's obligation.
        unsafe {
            asm!(
                // Row 0: t0..t4 = a_0·b.
                "mov rdx, [rsi]",
                "mulx r9, r8, [rdi]",
                "mulx r10, rax, [rdi + 8]",
                "add r9, rax",
                "mulx r11, rax, [rdi + 16]",
                "adc r10, rax",
                "mulx r12, rax, [rdi + 24]",
                "adc r11, rax",
                "adc r12, 0",
                mul_row!("8", "r9", "r10", "r11", "r12", "r13"),
                mul_row!("16", "r10", "r11", "r12", "r13", "r14"),
                mul_row!("24", "r11", "r12", "r13", "r14", "r15"),
                reduce!(),
                in("rsi") a.as_ptr(),
                in("rdi") b.as_ptr(),
                out("rax") _,
                out("rcx") _,
                out("rdx") _,
                out("r8") o0,
                out("r9") o1,
                out("r10") o2,
                out("r11") o3,
                out("r12") _,
                out("r13") _,
                out("r14") _,
                out("r15") _,
                options(pure, readonly, nostack),
            );
        }
        [o0, o1, o2, o3]
    }

    /// Montgomery square a²·2^−256 mod p for a < p: the six cross products once,
    /// doubled, plus the four squares (10 `mulx` instead of 16). Same obligation as
    /// [`mul`].
    #[inline(always)]
    pub(super) unsafe fn square(a: &[u64; 4]) -> [u64; 4] {
        let (o0, o1, o2, o3): (u64, u64, u64, u64);
        // SAFETY: as in `mul`: reads the 32 bytes behind `a` (rsi) only, writes only
        // declared registers, no stack use; BMI2/ADX by the caller's obligation.
        unsafe {
            asm!(
                // Cross products Σ_(i<j) a_i·a_j·2^(64(i+j)) into r9..r14 (limbs 1..6;
                // the sum is below 2^448).
                "mov rdx, [rsi]",
                "mulx r10, r9, [rsi + 8]",
                "mulx r11, rax, [rsi + 16]",
                "add r10, rax",
                "mulx r12, rax, [rsi + 24]",
                "adc r11, rax",
                "adc r12, 0",
                "xor r15d, r15d",
                "mov rdx, [rsi + 8]",
                "mulx rcx, rax, [rsi + 16]",
                "adox r11, rax",
                "adcx r12, rcx",
                "mulx r13, rax, [rsi + 24]",
                "adox r12, rax",
                "mov rdx, [rsi + 16]",
                "mulx r14, rax, [rsi + 24]",
                "adcx r13, rax",
                "adox r13, r15",
                "adcx r14, r15",
                "adox r14, r15",
                // Double them (the adcx chain, t + t) and add the squares a_i² (the
                // adox chain); r15 = 0 takes the top bit and the last carries.
                "xor r15d, r15d",
                "mov rdx, [rsi]",
                "mulx rax, r8, rdx",
                "adcx r9, r9",
                "adox r9, rax",
                "mov rdx, [rsi + 8]",
                "mulx rcx, rax, rdx",
                "adcx r10, r10",
                "adox r10, rax",
                "adcx r11, r11",
                "adox r11, rcx",
                "mov rdx, [rsi + 16]",
                "mulx rcx, rax, rdx",
                "adcx r12, r12",
                "adox r12, rax",
                "adcx r13, r13",
                "adox r13, rcx",
                "mov rdx, [rsi + 24]",
                "mulx rcx, rax, rdx",
                "adcx r14, r14",
                "adox r14, rax",
                "adcx r15, r15",
                "adox r15, rcx",
                reduce!(),
                in("rsi") a.as_ptr(),
                out("rax") _,
                out("rcx") _,
                out("rdx") _,
                out("r8") o0,
                out("r9") o1,
                out("r10") o2,
                out("r11") o3,
                out("r12") _,
                out("r13") _,
                out("r14") _,
                out("r15") _,
                options(pure, readonly, nostack),
            );
        }
        [o0, o1, o2, o3]
    }

    /// (a + b) mod p for a, b < p: the sum (carry c), then s − p; when that borrows
    /// (s + c·2^256 < p) the register c ends as an all-ones mask and p & mask is added
    /// back, else c ends 0 and the difference stands. p & mask needs only limbs 1 and
    /// 3 in registers (limbs 0 and 2 are all ones, i.e. the mask itself). Baseline
    /// x86-64 instructions only.
    #[inline(always)]
    pub(super) fn add(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        let [mut r0, mut r1, mut r2, mut r3] = *a;
        // SAFETY: reads the 32 bytes behind `b`, a valid &[u64; 4]; writes only the
        // declared registers; baseline instructions; no stack use.
        unsafe {
            asm!(
                "xor {c:e}, {c:e}",
                "add {r0}, [{b}]",
                "adc {r1}, [{b} + 8]",
                "adc {r2}, [{b} + 16]",
                "adc {r3}, [{b} + 24]",
                "adc {c}, 0",
                "mov {p1}, 0xFFFFFFFF00000000",
                "mov {p3}, 0xFFFFFFFEFFFFFFFF",
                "sub {r0}, -1",
                "sbb {r1}, {p1}",
                "sbb {r2}, -1",
                "sbb {r3}, {p3}",
                // c − borrow: 0 when s + c·2^256 ≥ p (c = 1 needs a borrow, since
                // s + 2^256 < 2p), −1 (the mask) when it is below p.
                "sbb {c}, 0",
                "and {p1}, {c}",
                "and {p3}, {c}",
                "add {r0}, {c}",
                "adc {r1}, {p1}",
                "adc {r2}, {c}",
                "adc {r3}, {p3}",
                r0 = inout(reg) r0,
                r1 = inout(reg) r1,
                r2 = inout(reg) r2,
                r3 = inout(reg) r3,
                b = in(reg) b.as_ptr(),
                c = out(reg) _,
                p1 = out(reg) _,
                p3 = out(reg) _,
                options(pure, readonly, nostack),
            );
        }
        [r0, r1, r2, r3]
    }

    /// 2a mod p for a < p: [`add`] with both operands in registers.
    #[inline(always)]
    pub(super) fn double(a: &[u64; 4]) -> [u64; 4] {
        let [mut r0, mut r1, mut r2, mut r3] = *a;
        // SAFETY: registers only (all declared), baseline instructions, no memory.
        unsafe {
            asm!(
                "xor {c:e}, {c:e}",
                "add {r0}, {r0}",
                "adc {r1}, {r1}",
                "adc {r2}, {r2}",
                "adc {r3}, {r3}",
                "adc {c}, 0",
                "mov {p1}, 0xFFFFFFFF00000000",
                "mov {p3}, 0xFFFFFFFEFFFFFFFF",
                "sub {r0}, -1",
                "sbb {r1}, {p1}",
                "sbb {r2}, -1",
                "sbb {r3}, {p3}",
                "sbb {c}, 0",
                "and {p1}, {c}",
                "and {p3}, {c}",
                "add {r0}, {c}",
                "adc {r1}, {p1}",
                "adc {r2}, {c}",
                "adc {r3}, {p3}",
                r0 = inout(reg) r0,
                r1 = inout(reg) r1,
                r2 = inout(reg) r2,
                r3 = inout(reg) r3,
                c = out(reg) _,
                p1 = out(reg) _,
                p3 = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        [r0, r1, r2, r3]
    }

    /// (a − b) mod p for a, b < p: the difference, then p & mask added back, the
    /// mask being all ones exactly when the subtraction borrowed.
    #[inline(always)]
    pub(super) fn sub(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
        let [mut r0, mut r1, mut r2, mut r3] = *a;
        // SAFETY: as in `add`.
        unsafe {
            asm!(
                "sub {r0}, [{b}]",
                "sbb {r1}, [{b} + 8]",
                "sbb {r2}, [{b} + 16]",
                "sbb {r3}, [{b} + 24]",
                "sbb {c}, {c}",
                "mov {p1}, 0xFFFFFFFF00000000",
                "mov {p3}, 0xFFFFFFFEFFFFFFFF",
                "and {p1}, {c}",
                "and {p3}, {c}",
                "add {r0}, {c}",
                "adc {r1}, {p1}",
                "adc {r2}, {c}",
                "adc {r3}, {p3}",
                r0 = inout(reg) r0,
                r1 = inout(reg) r1,
                r2 = inout(reg) r2,
                r3 = inout(reg) r3,
                b = in(reg) b.as_ptr(),
                c = out(reg) _,
                p1 = out(reg) _,
                p3 = out(reg) _,
                options(pure, readonly, nostack),
            );
        }
        [r0, r1, r2, r3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proof_on_the_portable_tier() {
        assert_eq!(Bmi2Adx::for_tier(Tier::Portable), None);
    }

    struct Twice(u64);
    impl Kernel for Twice {
        type Output = u64;
        #[inline(always)]
        fn run(self) -> u64 {
            self.0 * 2
        }
    }

    #[test]
    fn trampoline_runs_the_kernel() {
        for t in Tier::available() {
            if let Some(p) = Bmi2Adx::for_tier(t) {
                assert_eq!(p.run(Twice(21)), 42);
            }
        }
    }
}
