//! PKCS#11 attribute templates and mechanism parameters: a logged-in read/write session,
//! then `C_CreateObject`, `C_FindObjectsInit`, `C_Get/SetAttributeValue`, `C_CopyObject`,
//! key generation, the crypto `*Init` calls, wrap, unwrap and derive with templates and
//! parameter structures (GCM, CTR, OAEP, PSS, ECDH, SP 800-108, SM2 key exchange...) built
//! from the input (see `ukey_fuzz::p11`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ukey_fuzz::p11::{Profile, run};

fuzz_target!(|data: &[u8]| run(data, Profile::Templates));
