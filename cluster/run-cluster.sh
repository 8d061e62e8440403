#!/usr/bin/env bash
# run-cluster.sh -- the docker-compose topology on loopback, as child processes of this
# script: redis-server, N Sockeye nodes joined to it, HAProxy in front (cluster/haproxy.cfg,
# the same file compose uses, with the local nodes as its server list).
#
# usage: bash cluster/run-cluster.sh [--nodes N] [--port P] [--persist] [--no-sticky]
#                                    [--keep-logs] [-- sockeye flags for every node]
#   --nodes N     Sockeye nodes (default 3), each on a free loopback port
#   --port P      the load balancer's port on 127.0.0.1 (default 3000)
#   --persist     Redis keeps its data (append-only file) in $SOCKEYE_CLUSTER_DATA
#                 (default build/cluster-data); otherwise --save '' --appendonly no
#   --no-sticky   drop the persistence lines of haproxy.cfg: shows that long-polling breaks
#                 without them (websocket-only clients still work)
#   --keep-logs   keep the run directory (logs, generated haproxy.cfg) after the stop
# env: SOCKEYE_BIN  the node binary (default build/sockeye; `bash cluster/run-local.sh
#                   --cluster` builds it and runs this script)
#
# Prints one line per process on stdout, stable for scripts and tests:
#   run-cluster: redis pid <pid> redis://127.0.0.1:<port>
#   run-cluster: node <i> pid <pid> http://127.0.0.1:<port>
#   run-cluster: haproxy pid <pid> http://127.0.0.1:<port>/ stats http://127.0.0.1:<port>/stats
#   run-cluster: ready
# Ctrl-C, SIGTERM or SIGHUP stop everything, each process by its PID: the nodes first
# (SIGTERM: they drain and save their sessions while Redis is still up), then HAProxy and
# Redis; SIGKILL for whatever outlives a bounded wait. A node that dies is reported and the
# rest keeps running (kill one to watch its clients move to the others); if HAProxy or
# Redis dies, or the process that started this script goes away, everything stops.
# Children run in their own sessions, so a terminal's Ctrl-C reaches only this script,
# which then stops them in order.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${SOCKEYE_BIN:-$ROOT/build/sockeye}
CFG=$ROOT/cluster/haproxy.cfg

# Messages go to fd 4 (the original stderr), so they still show while stderr is muted.
exec 4>&2
say() { printf 'run-cluster: %s\n' "$*" >&4; }
die() {
    say "error: $*"
    exit 1
}
usage() {
    sed -n '5,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

NODES=3 PORT=3000 PERSIST=0 STICKY=1 KEEP=0
NODE_ARGS=()
while [ "$#" -gt 0 ]; do
    case $1 in
    --nodes) NODES=${2:?--nodes needs a number} && shift ;;
    --nodes=*) NODES=${1#--nodes=} ;;
    --port) PORT=${2:?--port needs a number} && shift ;;
    --port=*) PORT=${1#--port=} ;;
    --persist) PERSIST=1 ;;
    --no-sticky) STICKY=0 ;;
    --keep-logs) KEEP=1 ;;
    --)
        shift
        NODE_ARGS=("$@")
        break
        ;;
    -h | --help) usage ;;
    *) die "unknown flag $1 (sockeye flags go after --)" ;;
    esac
    shift
done
if ! [[ $NODES =~ ^[0-9]+$ ]] || [ "$NODES" -lt 1 ] || [ "$NODES" -gt 64 ]; then
    die "--nodes: 1..64"
fi
if ! [[ $PORT =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
    die "--port: 1..65535"
fi
for a in "${NODE_ARGS[@]}"; do
    case $a in
    --host | --host=* | --port | --port=* | --redis | --redis=* | --redis-url | --redis-url=*)
        die "$a: the runner sets each node's address and Redis itself" ;;
    esac
done

# ------------------------------------------------------------------ tools

need() { # need COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 || die "$1 missing and no apt-get (Debian 12 expected)"
    [ "$(id -u)" -eq 0 ] || die "$1 missing: run as root once, or apt-get install $2"
    say "installing $2"
    local log
    log=$(mktemp /tmp/run-cluster-apt.XXXXXX)
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2"; } \
        >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "apt-get install $2 failed (log: $log)"
    fi
    rm -f "$log"
    command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing $2"
}
need haproxy haproxy
need redis-server redis-server
need redis-cli redis-tools
[ -x "$BIN" ] || die "no node binary at $BIN: run 'bash cluster/run-local.sh --cluster' (builds it) or set SOCKEYE_BIN"
[ -f "$CFG" ] || die "$CFG missing"

# many clients through one balancer: as many descriptors as allowed
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/sockeye-cluster.XXXXXX)
declare -A NAME=() # pid -> what it is
PARENT=$PPID
STOPPING=0
FAILED=0

# ------------------------------------------------------------------ processes

alive() { # alive PID: running (not exited, not a zombie waiting to be reaped)
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(cut -d')' -f2 "/proc/$1/stat" 2>/dev/null | cut -d' ' -f2) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# stop_pids SIGNAL SECONDS PID...: signal each, wait up to SECONDS for all, SIGKILL the rest.
stop_pids() {
    local sig=$1 secs=$2 p left
    shift 2
    [ "$#" -gt 0 ] || return 0
    for p in "$@"; do kill "-$sig" "$p" 2>/dev/null || true; done
    for ((i = 0; i < secs * 10; i++)); do
        left=0
        for p in "$@"; do alive "$p" && left=1; done
        [ "$left" -eq 0 ] && break
        sleep 0.1
    done
    for p in "$@"; do
        if alive "$p"; then
            say "${NAME[$p]:-pid $p} did not stop within ${secs}s: SIGKILL"
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
        unset "NAME[$p]"
    done
}

cleanup() {
    [ "$STOPPING" -eq 0 ] || return 0
    STOPPING=1
    trap '' INT TERM HUP
    local nodes=() others=() p
    for p in "${!NAME[@]}"; do
        case ${NAME[$p]} in
        node*) nodes+=("$p") ;;
        esac
    done
    # nodes drain while Redis and HAProxy are still there (their own cap is --drain-timeout)
    stop_pids TERM 15 "${nodes[@]}"
    for p in "${!NAME[@]}"; do
        [ "${NAME[$p]}" = haproxy ] && others+=("$p")
    done
    stop_pids TERM 5 "${others[@]}"
    stop_pids TERM 10 "${!NAME[@]}" # redis (and the ticker, if any)
    if [ "$KEEP" -eq 1 ] || [ "$FAILED" -eq 1 ]; then
        say "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
on_signal() {
    say "stopping (signal)"
    cleanup
    exit 0
}
trap on_signal INT TERM HUP
trap 'cleanup' EXIT

fail() {
    FAILED=1
    die "$@"
}

# A port nobody listens on now, below the kernel's ephemeral range (a port taken as the
# local end of some outgoing connection would refuse our bind too). Still a race with other
# programs: the callers retry when the bind fails.
pick_port() {
    local p lo=10000 hi=32767 eph_lo
    read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || eph_lo=32768
    [ "$eph_lo" -gt $((lo + 1000)) ] && hi=$((eph_lo - 1))
    for ((i = 0; i < 200; i++)); do
        p=$((lo + RANDOM % (hi - lo)))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
            echo "$p"
            return 0
        }
    done
    return 1
}

# http_get PORT PATH: the body of a GET on 127.0.0.1 (HTTP/1.0, so the server closes).
http_get() {
    local line body=0
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    while IFS= read -r -t 2 line <&3; do
        line=${line%$'\r'}
        if [ "$body" -eq 1 ]; then
            printf '%s\n' "$line"
        elif [ -z "$line" ]; then
            body=1
        fi
    done
    exec 3<&-
}

tail_log() { tail -n 30 "$1" >&2 || true; }

# ------------------------------------------------------------------ redis

REDIS_PORT="" REDIS_PID=""
if [ "$PERSIST" -eq 1 ]; then
    DATA=${SOCKEYE_CLUSTER_DATA:-$ROOT/build/cluster-data}
    mkdir -p "$DATA"
    REDIS_ARGS=(--appendonly yes --dir "$DATA")
else
    REDIS_ARGS=(--save '' --appendonly no --dir "$WORK")
fi
for ((try = 0; try < 10; try++)); do
    REDIS_PORT=$(pick_port) || fail "no free port for redis-server"
    setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 "${REDIS_ARGS[@]}" \
        >"$WORK/redis.log" 2>&1 4>&- &
    REDIS_PID=$!
    NAME[$REDIS_PID]=redis
    for ((i = 0; i < 100; i++)); do
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break 2
        alive "$REDIS_PID" || break
        sleep 0.1
    done
    stop_pids KILL 1 "$REDIS_PID"
    grep -q "Address already in use" "$WORK/redis.log" || {
        tail_log "$WORK/redis.log"
        fail "redis-server did not start"
    }
done
alive "$REDIS_PID" || fail "no free port for redis-server after 10 tries"
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
echo "run-cluster: redis pid $REDIS_PID $REDIS_URL"

# ------------------------------------------------------------------ nodes

NODE_PIDS=() NODE_PORTS=()
for ((n = 1; n <= NODES; n++)); do
    setsid "$BIN" --host 127.0.0.1 --port 0 --redis "$REDIS_URL" "${NODE_ARGS[@]}" \
        >"$WORK/node$n.log" 2>&1 4>&- &
    NODE_PIDS+=("$!")
    NAME[$!]="node $n"
done
# each node prints "listening on HOST:PORT" once it joined the cluster (sanitizer builds
# start slowly: 60 s)
for ((n = 1; n <= NODES; n++)); do
    pid=${NODE_PIDS[n - 1]} port=""
    for ((i = 0; i < 600; i++)); do
        port=$(sed -n 's/^sockeye: listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$WORK/node$n.log")
        [ -n "$port" ] && break
        alive "$pid" || {
            tail_log "$WORK/node$n.log"
            fail "node $n exited before listening"
        }
        sleep 0.1
    done
    [ -n "$port" ] || fail "node $n not listening after 60 s (log: $WORK/node$n.log)"
    NODE_PORTS+=("$port")
    echo "run-cluster: node $n pid $pid http://127.0.0.1:$port"
done

# ------------------------------------------------------------------ haproxy

servers=""
for ((n = 1; n <= NODES; n++)); do
    servers+="    server node$n 127.0.0.1:${NODE_PORTS[n - 1]}"$'\n'
done
SERVERS=$servers STICKY=$STICKY awk '
    /# BEGIN servers/ { print; printf "%s", ENVIRON["SERVERS"]; skip = 1; next }
    /# END servers/   { skip = 0 }
    skip              { next }
    ENVIRON["STICKY"] == "0" && /# sticky$/ { next }
    { print }
' "$CFG" >"$WORK/haproxy.cfg"

haproxy -c -q -f "$WORK/haproxy.cfg" >"$WORK/haproxy-check.log" 2>&1 || {
    cat "$WORK/haproxy-check.log" >&2
    fail "haproxy rejects $WORK/haproxy.cfg"
}
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && fail "port $PORT is taken (use --port)"
# the stats port is ours to choose: another one if someone took it meanwhile
LB_PID=""
for ((try = 0; try < 5; try++)); do
    STATS_PORT=$(pick_port) || fail "no free port for the stats page"
    export SOCKEYE_LB_BIND=127.0.0.1:$PORT SOCKEYE_LB_STATS_BIND=127.0.0.1:$STATS_PORT
    setsid haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 4>&- &
    LB_PID=$!
    NAME[$LB_PID]=haproxy
    for ((i = 0; i < 50; i++)); do
        # our own stats page answers (not whoever else might hold the port)
        csv=$(http_get "$STATS_PORT" '/stats;csv' 2>/dev/null) || true
        [[ $csv == *$'\n'nodes,* ]] && break 2
        alive "$LB_PID" || break
        sleep 0.1
    done
    stop_pids KILL 1 "$LB_PID"
    grep -q "Address already in use.*:$STATS_PORT\]" "$WORK/haproxy.log" || {
        tail_log "$WORK/haproxy.log"
        fail "haproxy did not start (port $PORT taken?)"
    }
    LB_PID=""
done
[ -n "$LB_PID" ] || fail "no free port for the stats page after 5 tries"
# ready when every node passed its health check
up=0
for ((i = 0; i < 300; i++)); do
    alive "$LB_PID" || {
        tail_log "$WORK/haproxy.log"
        fail "haproxy exited"
    }
    up=$(http_get "$STATS_PORT" '/stats;csv' 2>/dev/null |
        awk -F, '$1 == "nodes" && $2 != "BACKEND" && $18 ~ /^UP/ { n++ } END { print n + 0 }') || true
    [ "$up" -eq "$NODES" ] && break
    sleep 0.1
done
[ "$up" -eq "$NODES" ] || fail "only $up of $NODES nodes healthy behind haproxy after 30 s"
echo "run-cluster: haproxy pid $LB_PID http://127.0.0.1:$PORT/ stats http://127.0.0.1:$STATS_PORT/stats"
say "logs: $WORK   sticky sessions: $([ "$STICKY" -eq 1 ] && echo on || echo OFF)"
say "open http://127.0.0.1:$PORT/ (Ctrl-C stops everything)"
echo "run-cluster: ready"

# ------------------------------------------------------------------ supervise

while :; do
    sleep 1 4>&- &
    tick=$!
    NAME[$tick]=ticker
    gone="" rc=0
    # stderr muted: bash's own "Killed" job notice; the lines below say it better
    exec 2>/dev/null
    wait -n -p gone "${!NAME[@]}" || rc=$?
    exec 2>&4
    [ "$gone" = "$tick" ] || stop_pids KILL 1 "$tick"
    unset "NAME[$tick]"
    if [ -n "$gone" ] && [ "$gone" != "$tick" ]; then
        what=${NAME[$gone]:-pid $gone}
        unset "NAME[$gone]"
        if [ "$rc" -gt 128 ]; then
            say "$what (pid $gone) was killed by signal $((rc - 128))"
        else
            say "$what (pid $gone) exited with status $rc"
        fi
        case $what in
        haproxy | redis) fail "$what is gone: stopping the cluster" ;;
        esac
        left=0
        for p in "${!NAME[@]}"; do [[ ${NAME[$p]} == node* ]] && left=$((left + 1)); done
        say "$left node(s) left"
    fi
    # the process that started us went away (a test runner that died): stop everything
    ppid=$(cut -d')' -f2 /proc/$$/stat | cut -d' ' -f3)
    if [ "$ppid" != "$PARENT" ]; then
        say "parent process $PARENT is gone: stopping"
        cleanup
        exit 0
    fi
done
