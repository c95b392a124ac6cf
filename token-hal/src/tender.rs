//! The tendering workflows of MISSION.md as a Rust API the CLI and the libraries share:
//! bid signing (GM/T 0010 SignedData), bid encryption and decryption (GM/T 0010
//! EnvelopedData, SM2 key transport, SM4-CBC content, streamed), certificate lifecycle,
//! account binding, the PIN cache and electronic seals. Each workflow is one submodule;
//! docs/workflows.md walks a user through each with the exact commands.

pub mod bind;
pub mod cms;
pub mod csr;
pub mod envelope;
pub mod keyblob;
#[cfg(target_os = "linux")]
pub mod pincache;
pub mod seal;
