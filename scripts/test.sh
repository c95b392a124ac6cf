#!/usr/bin/env bash
# The whole test suite: formatting, lints, build, and every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the libraries and the ukey binary the black-box tests load)"
cargo build --workspace --locked
echo "== cargo test"
cargo test --workspace --locked
scripts/fuzz.sh --ci  # every fuzz target briefly (docs/fuzzing.md)
echo "== external PKCS#11 suites: cryptoki 0.12.1's own tests against libukey_pkcs11.so on a soft token and on the virtual USB key through pcscd (and SoftHSM2's baseline)"
scripts/pkcs11-suites.sh cryptoki --softhsm --card
