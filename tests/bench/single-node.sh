#!/usr/bin/env bash
# single-node.sh -- one Sockeye node against the Node.js reference node, in the same run.
#
# Both servers are measured by the shared harness (shared/anchors: loadgen.js,
# run-baseline.sh, summarize.js) with the same steps, one after the other, on one
# loopback port, with no Redis in the path: the reference runs `ref-server.js
# --adapter memory`, Sockeye runs with its in-memory adapter (no --redis flag).
# Steps: fan-out (1000 subs, 10 rooms, 10 pubs, 1000 msgs/s, 20 s), a short rate sweep,
# idle memory (5000 connections). The table (summarize.js, ratio column = sockeye/ref)
# goes to tests/bench/results/single-node-<date>.md, the raw JSON lines beside it.
#
# The harness folder is read-only and its node_modules is not committed: it is copied to
# a scratch dir under /tmp and `npm ci` runs there (cached by lock-file hash).
# run-baseline.sh also starts a redis-server of its own (free port from 6390) that no
# server here uses; it stops it, and every node, by PID on exit.
#
# usage: bash tests/bench/single-node.sh
# env:   SERVERS="ref sockeye"   which halves to run (the table needs both); add `before`
#                                (SOCKEYE_BEFORE_BIN, another build of sockeye) to measure a
#                                change against its starting point in the same run
#        PORT=5001               the one port the server under test listens on
#        QUICK=1                 smoke run: 3 s fan-out, one 3 s sweep step, 500 idle conns
#        SWEEP_RATES="2000 3000 5000 10000"  FANOUT_S=20  SWEEP_S=10  IDLE_CONNS=5000
#        SOCKEYE_BIN=build/sockeye (built Release in build/ when it is not given)
#        ANCHORS=<repo>/../shared/anchors
#        STEP_TIMEOUT=1200       seconds one server's whole run may take before it is stopped
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

BENCH_NAME=single-node BENCH_COMMAND="bash tests/bench/single-node.sh"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

SERVERS=${SERVERS:-ref sockeye}
PORT=${PORT:-5001}
STEP_TIMEOUT=${STEP_TIMEOUT:-1200}
if [ -n "${QUICK:-}" ]; then
    : "${FANOUT_S:=3}" "${SWEEP_RATES:=2000}" "${SWEEP_S:=3}" "${IDLE_CONNS:=500}"
fi
export FANOUT_SUBS=${FANOUT_SUBS:-1000} ROOMS=${ROOMS:-10} PUBS=${PUBS:-10}
export FANOUT_RATE=${FANOUT_RATE:-1000} FANOUT_S=${FANOUT_S:-20}
export SWEEP_RATES=${SWEEP_RATES:-2000 3000 5000 10000} SWEEP_S=${SWEEP_S:-10}
export IDLE_CONNS=${IDLE_CONNS:-5000} EVENT=${EVENT:-bcast} NSP=${NSP:-/}
export HOST=127.0.0.1 PORTS=$PORT STEPS="fanout sweep idle"

bench_find_anchors
bench_build_sockeye
bench_prepare_harness

# ---- one run of the harness per server, same steps, same port, one after the other
for s in $SERVERS; do
    case $s in
    ref) bench_run ref "node ref-server.js --host 127.0.0.1 --port {port} --adapter memory" memory ;;
    sockeye) bench_run sockeye "$(printf '%q' "$SOCKEYE_BIN") --host 127.0.0.1 --port {port}" memory ;;
    before) bench_run before "$(bench_before_bin) --host 127.0.0.1 --port {port}" memory ;;
    *) die "unknown server '$s' (ref sockeye before)" ;;
    esac
done

# ---- the table
bench_table single-node "Single node: Sockeye vs the Node.js reference" <<EOT
Loadgen, the server and an unused redis-server share these cores; loopback, port $PORT.
Reference: \`node ref-server.js --adapter memory\` (socket.io 4.8.4, in-memory recovery).
Sockeye: \`${SOCKEYE_BIN:-build/sockeye} --host 127.0.0.1 --port $PORT\` (in-memory adapter).${SOCKEYE_BEFORE_BIN:+
Before: \`$SOCKEYE_BEFORE_BIN\`, the same flags.}
Fan-out: $FANOUT_SUBS subs, $ROOMS rooms, $PUBS pubs, $FANOUT_RATE msgs/s for $FANOUT_S s;
sweep: $SWEEP_RATES msgs/s, $SWEEP_S s each; idle: $IDLE_CONNS connections; event $EVENT on $NSP.
EOT
