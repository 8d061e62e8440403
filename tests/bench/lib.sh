# lib.sh -- what the benchmark scripts share (sourced, after ROOT and BENCH_NAME are set):
# logging, the anchors harness (found, copied to a writable scratch dir with its
# node_modules cached by lock-file hash), the Release build of sockeye, one bounded run of
# run-baseline.sh per server, and the results table.
# shellcheck shell=bash

log() { printf '[%s] %s: %s\n' "$(date +%H:%M:%S)" "$BENCH_NAME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ANCHORS: the env value, or shared/anchors beside the repo. Checks node and redis-server.
bench_find_anchors() {
    local d
    ANCHORS=${ANCHORS:-}
    if [ -z "$ANCHORS" ]; then
        for d in "$ROOT/../shared/anchors" /work/shared/anchors; do
            [ -f "$d/run-baseline.sh" ] && ANCHORS=$(cd "$d" && pwd) && break
        done
    fi
    if [ -z "$ANCHORS" ] || [ ! -f "$ANCHORS/run-baseline.sh" ]; then
        die "shared/anchors not found (set ANCHORS)"
    fi
    command -v node >/dev/null || die "node not found (bash cluster/install-deps.sh)"
    command -v redis-server >/dev/null || die "redis-server not found (bash cluster/install-deps.sh)"
}

# SOCKEYE_BIN: as given, or built Release in build/ (when SERVERS lists sockeye).
bench_build_sockeye() {
    local out
    [[ " $SERVERS " == *" sockeye "* ]] || return 0
    if [ -z "${SOCKEYE_BIN:-}" ]; then
        log "building build/sockeye (Release)"
        out=$(cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DSOCKEYE_SANITIZE= \
            -DSOCKEYE_FUZZ=OFF 2>&1 && cmake --build "$ROOT/build" -j "$(nproc)" --target sockeye 2>&1) || {
            printf '%s\n' "$out" | tail -n 100 >&2
            die "build failed"
        }
        SOCKEYE_BIN=$ROOT/build/sockeye
    fi
    SOCKEYE_BIN=$(realpath "$SOCKEYE_BIN")
    [ -x "$SOCKEYE_BIN" ] || die "$SOCKEYE_BIN is not an executable"
}

# The `before` server of SERVERS: SOCKEYE_BEFORE_BIN, another build of sockeye (a change's
# starting point), quoted for a NODE_CMD template.
bench_before_bin() {
    [ -x "${SOCKEYE_BEFORE_BIN:-}" ] || die "SERVERS has 'before': set SOCKEYE_BEFORE_BIN to an executable"
    printf '%q' "$(realpath "$SOCKEYE_BEFORE_BIN")"
}

# WORK: a writable copy of the harness (it is read-only in shared/) with an empty results/.
bench_prepare_harness() {
    local cache
    WORK=$(mktemp -d /tmp/sockeye-bench.XXXXXX)
    cp -r "$ANCHORS/." "$WORK/"
    chmod -R u+w "$WORK"
    rm -rf "$WORK/node_modules" "$WORK/results"
    mkdir -p "$WORK/results"
    cache=/tmp/sockeye-anchors-modules/$(sha256sum "$ANCHORS/package-lock.json" | cut -c1-16)
    if [ ! -f "$cache/.done" ]; then
        log "npm ci for the harness in $cache"
        rm -rf "$cache"
        mkdir -p "$cache"
        cp "$ANCHORS/package.json" "$ANCHORS/package-lock.json" "$cache/"
        (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
        touch "$cache/.done"
    fi
    ln -s "$cache/node_modules" "$WORK/node_modules"
}

# One server's run: $1 label, $2 NODE_CMD template ("" = the reference's own), $3 the
# run-baseline.sh adapter argument. Checks that the ports in PORTS are free first; the
# whole run is bounded by STEP_TIMEOUT. Raw results in $WORK/results/<label>.jsonl.
bench_run() {
    local label=$1 cmd=$2 mode=$3 rc=0 p
    for p in $PORTS; do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "port $p is in use"
    done
    log "$label: ${cmd:-run-baseline.sh $mode (reference)}  (steps: $STEPS; sweep $SWEEP_RATES)"
    # run-baseline.sh stops its nodes and redis by PID on exit, also on SIGTERM from timeout
    LABEL=$label OUT="$WORK/results/$label.jsonl" NODE_CMD=$cmd \
        timeout --kill-after=10 "$STEP_TIMEOUT" bash "$WORK/run-baseline.sh" "$mode" \
        >"$WORK/$label.table.md" 2>"$WORK/$label.log" || rc=$?
    grep -E '^\[|  (fanout|sweep|idle)-' "$WORK/$label.log" >&2 || true
    [ "$rc" -eq 0 ] || die "$label run failed (exit $rc); see $WORK/$label.log"
}

# The table: $1 results name (single-node, cluster-pubsub ...), $2 title, then the header
# lines describing the run on stdin. Writes tests/bench/results/<name>-<date>.md (the
# summarize.js table, ratio column = sockeye/ref) and the raw JSON lines beside it.
bench_table() {
    local name=$1 title=$2 outdir=$ROOT/tests/bench/results stamp md s commit header
    local files=()
    header=$(cat)
    mkdir -p "$outdir"
    stamp=$(date +%Y-%m-%d)
    md=$outdir/$name-$stamp.md
    for s in $SERVERS; do
        cp "$WORK/results/$s.jsonl" "$outdir/$name-$stamp.$s.jsonl"
        files+=("$s.jsonl")
    done
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    {
        echo "# $title ($stamp)"
        echo
        echo "Produced by \`${BENCH_COMMAND}\` at commit $commit on $(nproc) cores"
        echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))."
        printf '%s\n' "$header"
        echo "Raw results: $name-$stamp.<server>.jsonl beside this file."
        echo
        (cd "$WORK/results" && node "$WORK/summarize.js" "${files[@]}")
    } >"$md"
    log "table -> ${md#"$ROOT"/}"
    cat "$md"
    rm -rf "$WORK"
}
