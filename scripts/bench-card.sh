#!/usr/bin/env bash
# The virtual USB key through the real pcscd, next to the soft token, in one run: the APDU
# round trip (µs) and SM2 signatures per second through token-hal's Application (the path the
# PKCS#11 and SKF faces take). Needs root (pcscd). Not a timed test: compare the figures it
# prints within one run.
#   CARDBENCH_SECS=5 scripts/bench-card.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
cargo build --release --locked -q -p ukey-cli
UKEY="$ROOT/target/release/ukey"
TMP=$(mktemp -d /tmp/ukey-cardbench.XXXXXX)
# The virtual key keeps its PINs the way the soft store does (PBKDF2); a real key compares a
# PIN in microseconds, so the bench uses the store's lowest KDF cost for both tokens, and the
# card's PIN re-verification in every transaction (docs/apdu.md §4) costs what it would.
printf 'data_dir = "%s/data"\n[soft]\nkdf_iterations = 1000\n' "$TMP" >"$TMP/ukey.toml"
export UKEY_CONF="$TMP/ukey.toml"
scripts/pcscd-vpcd.sh run >"$TMP/pcscd.log" 2>&1 &
PCSCD=$!
SIM=
cleanup() {
  [ -n "$SIM" ] && kill "$SIM" 2>/dev/null || true
  kill -TERM "$PCSCD" 2>/dev/null || true
  wait "$PCSCD" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
for _ in $(seq 6000); do grep -q ':8C7B .* 0A ' /proc/net/tcp 2>/dev/null && break; sleep 0.1; done
"$UKEY" sim --state "$TMP/card" >"$TMP/sim.log" 2>&1 &
SIM=$!
for _ in $(seq 300); do UKEY_BACKENDS=pcsc "$UKEY" --json device list 2>/dev/null | grep -q '"apdu"' && break; sleep 0.2; done
# The same key setup on the card and on a soft token: application "bench", an SM2 signing
# key in container "c".
UKEY_BACKENDS=pcsc "$UKEY" --pin 123456 app create bench --so-pin 12345678 >/dev/null
UKEY_BACKENDS=pcsc "$UKEY" --token bench --pin 123456 key gen --alg sm2 --container c --no-cert >/dev/null
UKEY_BACKENDS=soft "$UKEY" softhsm --init-token --free --label bench --so-pin 12345678 --pin 123456 >/dev/null
UKEY_BACKENDS=soft "$UKEY" --token bench --pin 123456 key gen --alg sm2 --container c --no-cert >/dev/null
UKEY_BACKENDS=soft,pcsc cargo bench --locked -q -p ukey-tests --bench cardbench
