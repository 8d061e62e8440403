#!/usr/bin/env bash
# The anchors' acceptance scenario (shared/anchors/recovery-test.js, official socket.io-client)
# against two Sockeye nodes on one redis-server, both cut kinds, N times each:
#   destroy: client A's TCP socket is destroyed, A reconnects to node 2;
#   kill:    node 1 (A's node) gets SIGKILL, A reconnects to node 2; node 1 is restarted
#            before the next run.
# Prints one line per run and the counts; exits 1 when any run failed.
#
# usage: tests/chaos/anchors-recovery.sh [N]          (default 20)
# env:   SOCKEYE_BIN (default build/sockeye), ANCHORS (a copy of shared/anchors with
#        node_modules: `cp -r shared/anchors /tmp/anchors && (cd /tmp/anchors && npm ci)`),
#        PORTS="5201 5202", OUT (results file, default tests/chaos/results/anchors-recovery.txt)
# Everything started here is stopped on exit, by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
N=${1:-20}
BIN=${SOCKEYE_BIN:-$HERE/../../build/sockeye}
ANCHORS=${ANCHORS:-/tmp/anchors}
read -r -a PORTS <<< "${PORTS:-5201 5202}"
OUT=${OUT:-$HERE/results/anchors-recovery.txt}
[ -x "$BIN" ] || { echo "no sockeye binary at $BIN (set SOCKEYE_BIN)" >&2; exit 2; }
[ -d "$ANCHORS/node_modules" ] || { echo "no $ANCHORS/node_modules (see the header)" >&2; exit 2; }
command -v redis-server > /dev/null || { echo "redis-server not on PATH" >&2; exit 2; }

WORK=$(mktemp -d /tmp/sockeye-anchors.XXXX)
REDIS_PID="" N1="" N2=""
# shellcheck source=tests/chaos/lib.sh
. "$HERE/lib.sh"
cleanup() { stop_pid "$N1"; stop_pid "$N2"; stop_pid "$REDIS_PID"; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

start_redis

start_node() { # $1 = index (1|2); sets N1/N2 to the node's PID
  # the node runs under a subshell that waits for it, so its SIGKILL is not reported
  # as a job status line by this shell
  ( "$BIN" --host 127.0.0.1 --port "${PORTS[$1 - 1]}" --redis "$REDIS" --log-level warn \
      >> "$WORK/node$1.log" 2>&1 &
    echo $! > "$WORK/node$1.pid"
    wait ) 2> /dev/null &
  wait_port "${PORTS[$1 - 1]}"
  eval "N$1=$(cat "$WORK/node$1.pid")"
}
start_node 1
start_node 2

declare -A pass fail
pass[destroy]=0 fail[destroy]=0 pass[kill]=0 fail[kill]=0
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
for kind in destroy kill; do
  for i in $(seq "$N"); do
    args=(--node1 "127.0.0.1:${PORTS[0]}" --node2 "127.0.0.1:${PORTS[1]}")
    [ "$kind" = kill ] && args+=(--kill-pid "$N1")
    res=$(cd "$ANCHORS" && timeout 60 node recovery-test.js "${args[@]}" || true)
    line=$(tail -n 1 <<< "$res")
    echo "$kind $i: $line" | tee -a "$OUT"
    case "$line" in PASS*) ;; *) head -n -1 <<< "$res" >> "$OUT" ;; esac # details of a failure
    case "$line" in PASS*) pass[$kind]=$((pass[$kind] + 1)) ;; *) fail[$kind]=$((fail[$kind] + 1)) ;; esac
    if [ "$kind" = kill ]; then
      for _ in $(seq 100); do kill -0 "$N1" 2> /dev/null || break; sleep 0.05; done
      start_node 1
    fi
  done
done
{
  echo "destroy: ${pass[destroy]} PASS / ${fail[destroy]} FAIL of $N"
  echo "kill:    ${pass[kill]} PASS / ${fail[kill]} FAIL of $N"
} | tee -a "$OUT"
[ "${fail[destroy]}" = 0 ] && [ "${fail[kill]}" = 0 ]
