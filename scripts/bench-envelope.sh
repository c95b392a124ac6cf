#!/bin/sh
# Envelope benchmark (issue 6): encrypts and decrypts a 1 GiB file with the release
# `ukey` and a soft token, and prints MB/s and peak RSS of each step. Target: peak RSS
# below 64 MiB (the envelope code streams in 64 KiB steps).
#
#   scripts/bench-envelope.sh [MIB]        # size in MiB, default 1024
#
# Needs GNU time (/usr/bin/time -v); installed with apt-get when missing and root.
set -eu
cd "$(dirname "$0")/.."
MIB=${1:-1024}

if ! /usr/bin/time -v true >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -qq time >/dev/null
    else
        echo "bench-envelope: needs GNU time (/usr/bin/time): apt-get install time" >&2
        exit 1
    fi
fi

cargo build --release -q -p ukey-cli
UKEY="$PWD/target/release/ukey"
GM="$PWD/tests/data/gm-interop"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ukey-bench-envelope.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
export UKEY_DATA_DIR="$WORK/data" UKEY_CONF="$WORK/ukey.toml" XDG_STATE_HOME="$WORK/state"
unset UKEY_LOG
printf '[soft]\nkdf_iterations = 1000\n' >"$UKEY_CONF"
cd "$WORK"

"$UKEY" device init --label bench >/dev/null
"$UKEY" app create bench --so-pin 12345678 --pin 123456 >/dev/null
"$UKEY" --pin 123456 key import --container opener --enc --password vectorpass \
    "$GM/enc.key.pem" >/dev/null
"$UKEY" --pin 123456 cert import --container opener --enc "$GM/enc.cert.v2-renewed.pem" >/dev/null

head -c "$((MIB * 1024 * 1024))" /dev/urandom >bid.bin
BYTES=$(stat -c %s bid.bin)

# run NAME CMD...: runs under GNU time, prints "NAME: MB/s, peak RSS".
run() {
    name=$1
    shift
    /usr/bin/time -v -o time.txt "$@" 2>/dev/null
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' time.txt)
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' time.txt)
    cpu=$(awk -F': ' '/User time|System time/ { c += $2 } END { print c }' time.txt)
    # MB/s of wall time, and of CPU time (what the machine gives when not shared).
    awk -v n="$name" -v b="$BYTES" -v s="$secs" -v c="$cpu" -v r="$rss" 'BEGIN {
        printf "%-8s %6.0f MiB in %6.2f s  %7.1f MB/s  (CPU %6.2f s, %7.1f MB/s per CPU)  peak RSS %6.1f MiB\n",
            n, b / 1048576, s, (s > 0 ? b / 1e6 / s : 0), c, (c > 0 ? b / 1e6 / c : 0), r / 1024 }'
}

run encrypt "$UKEY" envelope encrypt --to "$GM/enc.cert.v2-renewed.pem" bid.bin -o bid.p7m
run decrypt "$UKEY" --pin 123456 envelope decrypt bid.p7m -o bid.out
cmp bid.bin bid.out
echo "round trip OK ($(stat -c %s bid.p7m) bytes of envelope)"
