#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (docs/fuzzing.md). Needs cargo-fuzz
# (scripts/setup.sh installs it); builds on the stable toolchain with RUSTC_BOOTSTRAP=1.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 60), with
#                                           AddressSanitizer; new inputs go to
#                                           $FUZZ_WORK/<target> (default fuzz/target/corpus),
#                                           the committed seeds in fuzz/corpus/ stay as they are
#   scripts/fuzz.sh --ci [TARGET...]        CI: one build without a sanitizer, then every target
#                                           for FUZZ_CI_SECONDS (default 10) from its seeds;
#                                           with libFuzzer seed FUZZ_SEED (default 1); fails
#                                           on the first crash, leak, timeout or OOM
# A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   cargo fuzz run <target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1 CARGO_INCREMENTAL=0
command -v cargo-fuzz >/dev/null 2>&1 || { echo "fuzz.sh: cargo-fuzz is missing (scripts/setup.sh installs it)" >&2; exit 1; }

ci=0
if [ "${1:-}" = "--ci" ]; then ci=1; shift; fi
if [ "${FUZZ_CI:-0}" = 1 ]; then ci=1; fi
secs=60
if [ "$ci" = 1 ]; then
  secs=${FUZZ_CI_SECONDS:-10}
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  secs=$1; shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then mapfile -t targets < <(cargo fuzz list); fi

# The soft tokens the call-sequence targets make live here; removed on exit.
# A tmpfs when there is one: every store write is an fsync.
shm=/dev/shm; [ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
tmp=$(mktemp -d "$shm/ukey-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export UKEY_FUZZ_TMP=$tmp

if [ "$ci" = 1 ]; then
  # Its own target dir, so CI and ASan builds do not rebuild each other.
  san=(--sanitizer none --target-dir "$PWD/target/ci")
  work=$tmp/corpus
  # A fixed seed, so a CI run is repeatable for the same code (FUZZ_SEED to vary it).
  seed=(-seed="${FUZZ_SEED:-1}")
else
  seed=()
  san=()
  work=${FUZZ_WORK:-$PWD/target/corpus}
fi
echo "== cargo fuzz build ${san[*]}"
cargo fuzz build "${san[@]}"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "corpus/$t"
  log=$tmp/$t.log
  rc=0
  cargo fuzz run "${san[@]}" "$t" "$work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 "${seed[@]}" \
    >"$log" 2>&1 || rc=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  echo "== $t (${secs}s): ${done_line:-no final stats}"
  if [ "$rc" != 0 ]; then
    tail -n 60 "$log"
    failed+=("$t")
    if [ "$ci" = 1 ]; then break; fi
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, no crash"
