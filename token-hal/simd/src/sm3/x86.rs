//! Single-stream SM3 on x86-64: the portable unrolled kernel compiled a second time
//! with BMI2, so every rotate is a flag-free, non-destructive `rorx` (fewer `mov`s, no
//! flag dependencies), as libgcrypt's AVX/BMI2 assembly does for its rounds.
//!
//! A SIMD message expansion (W and W' four words at a time in XMM registers, with
//! AVX-512VL `vprold`) was built and measured too: on this machine's Xeon it was 3–14%
//! slower than this kernel, because the rounds are bound by the latency of the E chain
//! (about 7 cycles a round), not by the expansion's uops, and moving W from vector to
//! scalar registers costs more than computing it there. It is in the git history
//! (commit "simd/sm3: interleaved message schedule"); docs/perf-sm3.md has the figures.
//!
//! The function here is `#[target_feature]`; `sm3.rs` calls it only after
//! [`crate::Tier::detected_up_to`] has confirmed BMI2.

#![allow(unsafe_code)]

use super::portable::compress_body;

/// The scalar kernel compiled with BMI2 (`rorx`).
#[target_feature(enable = "bmi2")]
pub(crate) fn compress_bmi2(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    compress_body(state, blocks);
}
