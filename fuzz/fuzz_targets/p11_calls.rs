//! The PKCS#11 module driven through its C entry points by call sequences (see
//! `ukey_fuzz::p11`): sessions, logins, objects, keys, crypto, stale and made-up handles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ukey_fuzz::p11::{Profile, run};

fuzz_target!(|data: &[u8]| run(data, Profile::Calls));
