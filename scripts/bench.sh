#!/bin/sh
# Crypto benchmark: ukey's provider next to `openssl speed`, in one run.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench -p token-hal --bench crypto "$@"
