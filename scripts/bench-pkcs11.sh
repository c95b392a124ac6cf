#!/bin/sh
# PKCS#11 benchmark: libukey_pkcs11.so next to SoftHSM2 through one harness (the cryptoki
# crate), and next to the same operations on token-hal's crypto backend, in one run.
# Not a timed test: compare the ratios it prints, never absolute figures across runs.
#   P11BENCH_SECS=1 scripts/bench-pkcs11.sh     # longer runs (default 0.5 s: 15 rounds of 0.1 s)
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p pkcs11-module
P11BENCH_MODULE="${P11BENCH_MODULE:-$(pwd)/target/release/libukey_pkcs11.so}" \
  exec cargo bench --locked -q -p ukey-tests --bench p11bench "$@"
