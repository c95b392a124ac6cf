#!/usr/bin/env bash
# Installs the system packages ukey builds and tests against (Debian/Ubuntu).
# Safe to run more than once. Uses sudo when not root.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(
  build-essential pkg-config git curl ca-certificates
  libpcsclite-dev pcscd vsmartcard-vpcd
  libhidapi-dev libudev-dev
  opensc softhsm2 openssl libssl-dev pcsc-tools
  util-linux libcap2-bin gdb
  p11-kit libnss3-tools gnutls-bin libengine-pkcs11-openssl openjdk-17-jdk-headless
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# pcscd may have been started by the package; tests start their own instance.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop pcscd.socket pcscd 2>/dev/null || true; fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup.sh: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
# The fuzz targets (scripts/fuzz.sh) need cargo-fuzz.
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
