#!/bin/sh
# The national-algorithm benchmark of issue 8: one table, from one run, of SM2, SM3 and SM4
# through token-hal's crypto provider ("raw"), libukey_pkcs11.so and libukey_skf.so, next to
# OpenSSL 3, with the ratios and the issue's targets (tests/benches/gmbench.rs, docs/bench.md).
# Not a timed test: compare the ratios it prints, never absolute figures across runs.
#   scripts/bench.sh                         # the table (about 2 minutes)
#   GMBENCH_SECS=1 scripts/bench.sh          # longer runs (default 0.5 s: 15 rounds of 0.1 s)
#   GMBENCH_ONLY=sm4 scripts/bench.sh        # only the rows whose name contains "sm4"
#   UKEY_CPU_TIER=gfni-avx2 scripts/bench.sh # cap the provider's SIMD tier
#   scripts/bench.sh --kernels               # the provider alone next to `openssl speed`
#                                            # (cargo bench -p token-hal --bench crypto)
set -eu
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--kernels" ]; then
  shift
  exec cargo bench --locked -p token-hal --bench crypto "$@"
fi
cargo build --release --locked -q -p pkcs11-module -p skf-provider
exec cargo bench --locked -q -p ukey-tests --bench gmbench "$@"
