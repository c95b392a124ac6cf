#!/usr/bin/env bash
# Runs pcscd with the vsmartcard vpcd reader (/etc/reader.conf.d/vpcd, TCP 35963), so that
# `ukey sim --vpcd 127.0.0.1:35963` can put the virtual key into the real pcscd.
#
#   scripts/pcscd-vpcd.sh run     pcscd in the foreground (used by token-hal/tests/pcsc_vpcd.rs)
#   scripts/pcscd-vpcd.sh start   the same in the background; pid in $UKEY_PCSCD_PID
#   scripts/pcscd-vpcd.sh stop    stops the pcscd that `start` started
#
# One pcscd per machine: a lock (/tmp/ukey-pcscd.lock) is taken before anything else and
# held by pcscd itself (inherited fd 9) until it exits, so concurrent test runs queue up
# instead of killing each other's pcscd. A pcscd not started this way (the package's,
# socket-activated by systemd) is stopped first. Needs root (pcscd's socket is in /run).
set -euo pipefail
LOCK=${UKEY_PCSCD_LOCK:-/tmp/ukey-pcscd.lock}
PIDFILE=${UKEY_PCSCD_PID:-/tmp/ukey-pcscd.pid}
PCSCD=${PCSCD:-pcscd}

stop_foreign() {
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl stop pcscd.socket pcscd.service 2>/dev/null || true
  fi
  local pidf=/run/pcscd/pcscd.pid
  if [ -s "$pidf" ]; then
    local pid
    pid=$(cat "$pidf")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      echo "pcscd-vpcd.sh: stopping the running pcscd (pid $pid)" >&2
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
}

case "${1:-}" in
  run)
    [ -f /etc/reader.conf.d/vpcd ] || { echo "pcscd-vpcd.sh: vsmartcard-vpcd is not installed" >&2; exit 3; }
    exec 9>"$LOCK"
    flock -w "${UKEY_PCSCD_LOCK_WAIT:-600}" 9 || { echo "pcscd-vpcd.sh: $LOCK is busy" >&2; exit 75; }
    stop_foreign
    exec "$PCSCD" -f
    ;;
  start)
    setsid "$0" run >"${UKEY_PCSCD_LOG:-/tmp/ukey-pcscd.log}" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 100); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.1; done
    echo "pcscd-vpcd.sh: pcscd pid $(cat "$PIDFILE"), vpcd on 127.0.0.1:35963"
    ;;
  stop)
    if [ -s "$PIDFILE" ]; then
      pid=$(cat "$PIDFILE")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
    fi
    ;;
  *)
    echo "usage: $0 run|start|stop" >&2
    exit 2
    ;;
esac
