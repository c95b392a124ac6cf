#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); builds on the stable toolchain with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
export RUSTC_BOOTSTRAP=1
for t in $(cargo fuzz list); do
  echo "== $t (${secs}s)"
  mkdir -p "corpus/$t"
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs"
done
