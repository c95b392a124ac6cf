//! The SKF library driven through its C entry points by call sequences (see
//! `ukey_fuzz::skf`): devices, device authentication, applications, PINs, files,
//! containers, keys, crypto, stale and made-up handles.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ukey_fuzz::skf::run(data, false));
