#!/usr/bin/env bash
# External PKCS#11 suites run against the built libukey_pkcs11.so.
#
#   scripts/pkcs11-suites.sh [cryptoki] [--softhsm] [--no-ukey]
#
# cryptoki: the `cryptoki` 0.12.1 crate's own integration tests (tests/*.rs of the crates.io
#   package), copied to target/cryptoki-suite/ (a path without "softhsm", so none of the
#   suite's SoftHSM shortcuts apply) and built there once, with their own CARGO_TARGET_DIR.
#   They run with TEST_PKCS11_MODULE = libukey_pkcs11.so over an EMPTY token store
#   (UKEY_DATA_DIR) and a config with a low kdf_iterations. Only `get_slot_event` and
#   `wait_for_slot_event` are skipped (they assume C_WaitForSlotEvent is not implemented).
#   Lib unit tests and the integration tests run; doctests do not (they are API examples
#   that compile one binary each and need no module).
# --softhsm: the same run against Debian's SoftHSM2, copied to a path without "softhsm"
#   (its baseline without the shortcuts, for comparison; failures there are not ours).
# --no-ukey: skip the ukey run (with --softhsm: the baseline only).
# --card: the same suite against the virtual USB key (`ukey sim`) inside the real pcscd
#   (vsmartcard vpcd), with only the `pcsc` backend active, so every token operation goes
#   through docs/apdu.md over PC/SC. Needs root (pcscd). The virtual key runs as
#   `ukey sim --fixed`: it says it is software and cannot be removed (DEVICE INFO's form
#   byte, docs/apdu.md), which is what get_slot_info_test asserts of the slot (no CKF_HW_SLOT,
#   no CKF_REMOVABLE_DEVICE); the default USB-key form would be truthfully removable. Three
#   more tests are skipped by name there, and no failure is allowed: the EdDSA tests (the
#   card does not advertise Edwards keys: docs/apdu.md §1). They are skipped rather than let
#   fail because a failing test leaves the library initialised in the suite's process, which
#   makes whichever test runs next fail (is_initialized_test did).
#
# UKEY_SUITE_ONLY="test_a test_b": run only the tests of these exact names (any run above),
#   e.g. to look at one failure on the card.
#
# Exit status: 0 when the ukey run has no failures, 1 otherwise. The pkcs11-tool runs, the
# SOFTHSM2_CONF run and the registrations are Rust tests in tests/ (cargo test -p ukey-tests).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

run_ukey=1
run_softhsm=0
run_card=0
for a in "$@"; do
  case "$a" in
    cryptoki) ;;
    --softhsm) run_softhsm=1 ;;
    --no-ukey) run_ukey=0 ;;
    --card) run_card=1 ;;
    *) echo "usage: $0 [cryptoki] [--softhsm] [--no-ukey] [--card]" >&2; exit 2 ;;
  esac
done
CARD_SKIPPED=(sign_verify_eddsa sign_verify_eddsa_with_ed25519_schemes sign_verify_eddsa_with_ed448_schemes)

CRYPTOKI_VERSION=0.12.1
SUITE_DIR="$ROOT/target/cryptoki-suite"
SRC="$SUITE_DIR/cryptoki-$CRYPTOKI_VERSION"
# Per-binary time limit: a test that blocks (e.g. on an event) must not stall CI.
PER_BINARY_TIMEOUT=${UKEY_SUITE_TIMEOUT:-300}
SKIPS=(--skip get_slot_event --skip wait_for_slot_event)
ONLY=()
if [ -n "${UKEY_SUITE_ONLY:-}" ]; then
  read -r -a ONLY <<<"$UKEY_SUITE_ONLY"
  ONLY+=(--exact)
fi

find_crate_source() {
  local d
  for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cryptoki-"$CRYPTOKI_VERSION"; do
    if [ -d "$d/tests" ]; then echo "$d"; return 0; fi
  done
  return 1
}

prepare_suite() {
  local src
  if ! src=$(find_crate_source); then
    echo "== cargo fetch (puts cryptoki $CRYPTOKI_VERSION's source in the cargo registry)"
    cargo fetch --locked >/dev/null
    src=$(find_crate_source) || { echo "cryptoki-$CRYPTOKI_VERSION source not found after cargo fetch" >&2; exit 1; }
  fi
  if [ ! -f "$SRC/.ukey-copied" ]; then
    rm -rf "$SRC"
    mkdir -p "$SUITE_DIR"
    cp -rp "$src" "$SRC"
    chmod -R u+w "$SRC"
    # Its own workspace root: target/ lies inside this repository's workspace.
    printf '\n[workspace]\n' >>"$SRC/Cargo.toml"
    touch "$SRC/.ukey-copied"
  fi
  case "$SRC" in *softhsm*) echo "suite path $SRC contains \"softhsm\"" >&2; exit 1 ;; esac
  echo "== building the cryptoki $CRYPTOKI_VERSION test suite (once; $SUITE_DIR/target)"
  (cd "$SRC" && CARGO_TARGET_DIR="$SUITE_DIR/target" cargo test --tests --no-run -q 2>&1 | grep -v '^ *Executable' || true)
  mapfile -t SUITE_BINS < <(cd "$SRC" && CARGO_TARGET_DIR="$SUITE_DIR/target" \
    cargo test --tests --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    try: m=json.loads(l)
    except Exception: continue
    if m.get("reason")=="compiler-artifact" and m.get("profile",{}).get("test") and m.get("executable"):
        print(m["target"]["name"]+" "+m["executable"])')
  if [ ${#SUITE_BINS[@]} -eq 0 ]; then echo "the cryptoki suite did not build" >&2; exit 1; fi
}

# run_suite NAME MODULE ENV... : runs every test binary, writes $LOGDIR/NAME.log, prints a summary.
# Sets SUITE_FAILED to the number of failing (or unfinished) tests.
run_suite() {
  local name=$1 module=$2; shift 2
  local log="$LOGDIR/$name.log" entry tname bin rc
  : >"$log"
  case "$module" in *softhsm*) echo "module path $module contains \"softhsm\"" >&2; exit 1 ;; esac
  echo "== cryptoki $CRYPTOKI_VERSION suite against $name ($module)"
  for entry in "${SUITE_BINS[@]}"; do
    tname=${entry%% *}; bin=${entry#* }
    echo "-- $tname" >>"$log"
    set +e
    (cd "$SRC" && env -u SOFTHSM2_CONF -u UKEY_CONF -u UKEY_DATA_DIR RUST_BACKTRACE=0 "$@" TEST_PKCS11_MODULE="$module" \
      timeout --kill-after=10 "$PER_BINARY_TIMEOUT" "$bin" "${SKIPS[@]}" "${ONLY[@]}") >"$LOGDIR/$name.$tname.out" 2>&1
    rc=$?
    set -e
    cat "$LOGDIR/$name.$tname.out" >>"$log"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      # Which tests never finished: listed but without a result line.
      (cd "$SRC" && "$bin" --list "${SKIPS[@]}" "${ONLY[@]}" 2>/dev/null | sed -n 's/: test$//p') | sort >"$LOGDIR/$name.$tname.all"
      sed -n 's/^test \(.*\) \.\.\. .*/\1/p' "$LOGDIR/$name.$tname.out" | sort >"$LOGDIR/$name.$tname.done"
      comm -23 "$LOGDIR/$name.$tname.all" "$LOGDIR/$name.$tname.done" |
        sed "s/^/test /; s/\$/ ... TIMEOUT (binary $tname killed after ${PER_BINARY_TIMEOUT}s)/" | tee -a "$log" >/dev/null
    elif [ $rc -ne 0 ] && ! grep -q '^test result:' "$LOGDIR/$name.$tname.out"; then
      echo "test $tname::<binary> ... CRASHED (exit $rc)" >>"$log"
    fi
  done
  local passed failed ignored
  passed=$(grep -cE '^test .* \.\.\. ok$' "$log" || true)
  failed=$(grep -cE '^test .* \.\.\. (FAILED|TIMEOUT|CRASHED)' "$log" || true)
  ignored=$(grep -cE '^test .* \.\.\. ignored' "$log" || true)
  echo "$name: $passed passed, $failed failed, $ignored ignored (skipped by name: get_slot_event, wait_for_slot_event); log: $log"
  if [ "$failed" -gt 0 ]; then
    echo "$name: failing tests (binary: test: where it panicked: message):"
    python3 - "$log" <<'PY'
import re, sys
binary, reasons, failing = None, {}, []
lines = open(sys.argv[1], errors="replace").read().splitlines()
for i, l in enumerate(lines):
    if l.startswith("-- "):
        binary = l[3:]
    m = re.match(r"^test (\S+) \.\.\. (FAILED|TIMEOUT|CRASHED)(.*)", l)
    if m:
        failing.append((binary, m.group(1), m.group(2) + m.group(3)))
    m = re.match(r"^thread '([^']+)'.* panicked at ([^ ]+):$", l)
    if m and i + 1 < len(lines):
        reasons.setdefault((binary, m.group(1)), m.group(2) + " " + lines[i + 1].strip()[:160])
for b, t, kind in sorted(failing):
    why = reasons.get((b, t), kind)
    print(f"  {b}: {t}: {why}")
PY
  fi
  SUITE_FAILED=$failed
}

prepare_suite
LOGDIR="$SUITE_DIR/logs"
mkdir -p "$LOGDIR"
TMP=$(mktemp -d /tmp/ukey-p11suite.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
status=0

if [ $run_ukey -eq 1 ]; then
  echo "== cargo build -p pkcs11-module"
  cargo build -p pkcs11-module --locked -q 2>"$LOGDIR/build-module.log" || { cat "$LOGDIR/build-module.log" >&2; exit 1; }
  MODULE="$ROOT/target/debug/libukey_pkcs11.so"
  case "$MODULE" in
    *softhsm*) mkdir -p "$TMP/lib"; cp "$MODULE" "$TMP/lib/"; MODULE="$TMP/lib/libukey_pkcs11.so" ;;
  esac
  mkdir -p "$TMP/ukey/data"
  printf 'data_dir = "%s"\n[soft]\nkdf_iterations = 1000\n' "$TMP/ukey/data" >"$TMP/ukey/ukey.toml"
  run_suite ukey "$MODULE" UKEY_CONF="$TMP/ukey/ukey.toml" UKEY_DATA_DIR="$TMP/ukey/data"
  [ "$SUITE_FAILED" -eq 0 ] || status=1
fi

if [ $run_card -eq 1 ]; then
  echo "== cargo build (module and ukey binary for the virtual key)"
  cargo build -p pkcs11-module -p ukey-cli --locked -q 2>"$LOGDIR/build-card.log" || { cat "$LOGDIR/build-card.log" >&2; exit 1; }
  MODULE="$ROOT/target/debug/libukey_pkcs11.so"
  mkdir -p "$TMP/card/data"
  printf 'data_dir = "%s"\n[soft]\nkdf_iterations = 1000\n' "$TMP/card/data" >"$TMP/card/ukey.toml"
  "$ROOT/scripts/pcscd-vpcd.sh" run >"$LOGDIR/card-pcscd.log" 2>&1 &
  PCSCD_PID=$!
  SIM_PID=
  stop_card() {
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
    kill -TERM "$PCSCD_PID" 2>/dev/null || true
    wait "$PCSCD_PID" 2>/dev/null || true
    rm -rf "$TMP"
  }
  trap stop_card EXIT
  for _ in $(seq 6000); do grep -q ':8C7B .* 0A ' /proc/net/tcp 2>/dev/null && break; sleep 0.1; done
  UKEY_CONF="$TMP/card/ukey.toml" "$ROOT/target/debug/ukey" sim --fixed --state "$TMP/card/state" \
    --apdu-log "$LOGDIR/card-apdu.log" >"$LOGDIR/card-sim.log" 2>&1 &
  SIM_PID=$!
  ukey_card() { UKEY_CONF="$TMP/card/ukey.toml" UKEY_BACKENDS=pcsc "$ROOT/target/debug/ukey" "$@"; }
  for _ in $(seq 300); do ukey_card --json device list 2>/dev/null | grep -q '"apdu"' && break; sleep 0.2; done
  ukey_card --pin fedcba123456 app create "Test Token" --so-pin abcdef654321 >/dev/null
  : >"$LOGDIR/card-apdu.log"
  SOFT_SKIPS=("${SKIPS[@]}")
  for t in "${CARD_SKIPPED[@]}"; do SKIPS+=(--skip "$t"); done
  run_suite ukey-card "$MODULE" UKEY_CONF="$TMP/card/ukey.toml" UKEY_BACKENDS=pcsc
  SKIPS=("${SOFT_SKIPS[@]}")
  echo "ukey-card: also skipped by name, not applicable to a card: ${CARD_SKIPPED[*]}"
  served=$(grep -c '"secure":true' "$LOGDIR/card-apdu.log" || true)
  echo "ukey-card: the virtual key served $served commands inside the secure channel"
  if [ "$SUITE_FAILED" -ne 0 ]; then
    status=1
  elif [ "${served:-0}" -lt 100 ]; then
    echo "ukey-card: the virtual key's log shows too few commands ($served)"; status=1
  fi
fi

if [ $run_softhsm -eq 1 ]; then
  PEER=/usr/lib/softhsm/libsofthsm2.so
  if [ ! -f "$PEER" ]; then
    echo "$PEER is missing: run scripts/setup.sh (package softhsm2)" >&2
    status=1
  else
    mkdir -p "$TMP/peer/lib" "$TMP/peer/tokens"
    cp "$PEER" "$TMP/peer/lib/libpeerhsm.so"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
      "$TMP/peer/tokens" >"$TMP/peer/peer.conf"
    run_suite softhsm2-no-shortcuts "$TMP/peer/lib/libpeerhsm.so" SOFTHSM2_CONF="$TMP/peer/peer.conf"
  fi
fi
exit $status
