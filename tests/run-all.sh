#!/usr/bin/env bash
# run-all.sh -- THE test command of Sockeye (README and .ci/run call exactly this).
#
# Stages, in order; the first failing stage ends the run:
#   asan      ASan+UBSan build in build-asan/, `ctest` there: unit + conformance (+ integration).
#             Sanitizer reports of every process (also `sockeye` children spawned by the node
#             tests, whose stderr the tests swallow) go to build-asan/sanitizer-logs/; any
#             report there fails the stage.
#   fuzz      clang + libFuzzer + ASan/UBSan in build-fuzz/, `ctest -L fuzz`, each fuzzer
#             bounded to SOCKEYE_FUZZ_SECONDS (default 30).
#   valgrind  plain RelWithDebInfo build in build/, every unit test under valgrind
#             (--error-exitcode=99 --leak-check=full).
# The last line is "N passed, N failed", summed over the stages' test counts (a build
# that does not compile counts as one failure).
#
# env: SOCKEYE_STAGES="asan fuzz valgrind"  SOCKEYE_FUZZ_SECONDS=30
#      SOCKEYE_TEST_JOBS=<nproc>  (parallel ctest jobs and build jobs)
#      SOCKEYE_SKIP_DEPS=1       (skip cluster/install-deps.sh)
# Budget: all three stages stay under 20 minutes on 2 cores.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

STAGES=${SOCKEYE_STAGES:-asan fuzz valgrind}
JOBS=${SOCKEYE_TEST_JOBS:-$(nproc)}
FUZZ_SECONDS=${SOCKEYE_FUZZ_SECONDS:-30}
PASSED=0
FAILED=0
T0=$SECONDS

log() { printf '\n==> [%4ds] %s\n' "$((SECONDS - T0))" "$*"; }
summary() { printf '%s passed, %s failed\n' "$PASSED" "$FAILED"; }
fail_run() {
    log "FAILED: $*"
    summary
    exit 1
}

# many sockets: the end-to-end tests hold many clients at once
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------ helpers

# Runs cmake with the given arguments, quietly; prints the tail of the output on failure.
quiet_cmake() {
    local out
    if ! out=$(cmake "$@" 2>&1); then
        printf '%s\n' "$out" | tail -n 200
        return 1
    fi
}

# configure_and_build DIR [TARGET...] -- uses CMAKE_ARGS (array) for the configure step.
configure_and_build() {
    local dir=$1
    shift
    local targets=()
    [ "$#" -gt 0 ] && targets=(--target "$@")
    quiet_cmake -S "$ROOT" -B "$dir" "${CMAKE_ARGS[@]}" || {
        FAILED=$((FAILED + 1))
        fail_run "configure of $dir"
    }
    quiet_cmake --build "$dir" -j "$JOBS" "${targets[@]}" || {
        FAILED=$((FAILED + 1))
        fail_run "build in $dir"
    }
}

# run_ctest DIR [ctest args...] -- runs ctest in DIR, adds its counts to PASSED/FAILED,
# returns ctest's status. "N% tests passed, F tests failed out of T" is ctest's summary.
run_ctest() {
    local dir=$1
    shift
    local out rc=0 line total failed
    out=$(mktemp /tmp/sockeye-ctest.XXXXXX)
    (cd "$dir" && ctest --output-on-failure "$@") 2>&1 | tee "$out" || rc=$?
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n 1 || true)
    if [ -n "$line" ]; then
        failed=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
        total=$(sed -E 's/.*failed out of ([0-9]+).*/\1/' <<<"$line")
        PASSED=$((PASSED + total - failed))
        FAILED=$((FAILED + failed))
    elif grep -q 'No tests were found' "$out"; then
        echo "(no tests in this stage yet)"
    elif [ "$rc" -ne 0 ]; then
        FAILED=$((FAILED + 1)) # ctest itself failed before running anything
    fi
    rm -f "$out"
    return "$rc"
}

# --- redis for tests that need one (integration tests). Free port from 6390, no
# persistence, loopback only, stopped by PID on exit. Exports SOCKEYE_TEST_REDIS=host:port.
REDIS_PID=""
REDIS_DIR=""
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_test_redis() {
    local port=6390 i
    while port_busy "$port"; do
        port=$((port + 1))
        [ "$port" -lt 6490 ] || fail_run "no free port for redis-server in 6390..6489"
    done
    REDIS_DIR=$(mktemp -d /tmp/sockeye-redis.XXXXXX)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" &
    REDIS_PID=$!
    for i in $(seq 50); do
        if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
            export SOCKEYE_TEST_REDIS="127.0.0.1:$port"
            log "redis-server (pid $REDIS_PID) on $SOCKEYE_TEST_REDIS"
            return 0
        fi
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$REDIS_DIR/redis.log" >&2 2>/dev/null || true
    fail_run "redis-server did not start (try $i)"
}
stop_pid() { # SIGTERM, up to 3 s grace, then SIGKILL; only what we started
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    if [ -n "$REDIS_PID" ]; then stop_pid "$REDIS_PID"; fi
    if [ -n "$REDIS_DIR" ]; then rm -rf "$REDIS_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ stages

stage_asan() {
    log "stage asan: ASan+UBSan build in build-asan/, unit + conformance tests"
    CMAKE_ARGS=("-DSOCKEYE_SANITIZE=address,undefined" -DSOCKEYE_FUZZ=OFF)
    configure_and_build build-asan
    local logs=$ROOT/build-asan/sanitizer-logs rc=0
    rm -rf "$logs"
    mkdir -p "$logs"
    if compgen -G "tests/integration/*.test.js" >/dev/null && [ -z "${SOCKEYE_TEST_REDIS:-}" ]; then
        start_test_redis
    fi
    ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan" \
        run_ctest build-asan -j "$JOBS" || rc=$?
    if compgen -G "$logs/*" >/dev/null; then
        local f
        for f in "$logs"/*; do
            echo "---- sanitizer report $f"
            head -n 80 "$f"
        done
        [ "$rc" -ne 0 ] || FAILED=$((FAILED + 1))
        fail_run "stage asan: sanitizer reports (above, in $logs)"
    fi
    [ "$rc" -eq 0 ] || fail_run "stage asan"
}

stage_fuzz() {
    log "stage fuzz: libFuzzer targets in build-fuzz/, ${FUZZ_SECONDS} s each"
    local targets=() src rc=0
    for src in tests/fuzz/fuzz_*.c; do
        [ -e "$src" ] || continue
        targets+=("$(basename "$src" .c)")
    done
    if [ "${#targets[@]}" -eq 0 ]; then
        echo "(no fuzzers yet)"
        return 0
    fi
    CMAKE_ARGS=(-DCMAKE_C_COMPILER=clang -DSOCKEYE_FUZZ=ON "-DSOCKEYE_SANITIZE=address,undefined"
        "-DSOCKEYE_FUZZ_SECONDS=$FUZZ_SECONDS")
    # only the fuzzers: the rest of the tree was built and tested in the asan stage
    CC=clang configure_and_build build-fuzz "${targets[@]}"
    ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        run_ctest build-fuzz -L fuzz -j "$JOBS" || rc=$?
    [ "$rc" -eq 0 ] || fail_run "stage fuzz"
}

stage_valgrind() {
    log "stage valgrind: RelWithDebInfo build in build/, unit tests under valgrind"
    CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOCKEYE_SANITIZE= -DSOCKEYE_FUZZ=OFF)
    configure_and_build build
    local supp=() list name cwd cmd vlog status n_ok=0 n_bad=0
    [ -f tests/valgrind.supp ] && supp=(--suppressions="$ROOT/tests/valgrind.supp")
    # The unit tests' commands as ctest knows them: "name<TAB>cwd<TAB>argv..." per line.
    list=$( (cd build && ctest -L unit --show-only=json-v1) | node -e '
        const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
        for (const t of j.tests || []) {
            const wd = (t.properties || []).find((p) => p.name === "WORKING_DIRECTORY");
            console.log([t.name, wd ? wd.value : ".", ...t.command].join("\t"));
        }') || fail_run "cannot list the unit tests of build/"
    if [ -z "$list" ]; then
        echo "(no unit tests yet)"
        return 0
    fi
    vlog=$(mktemp /tmp/sockeye-valgrind.XXXXXX)
    while IFS=$'\t' read -r -a cmd; do
        name=${cmd[0]}
        cwd=${cmd[1]}
        [ "$cwd" = . ] && cwd=$ROOT/build
        status=0
        (cd "$cwd" && timeout 300 valgrind --quiet --error-exitcode=99 --leak-check=full \
            --show-leak-kinds=definite,indirect,possible \
            --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes \
            "${supp[@]}" "${cmd[@]:2}") </dev/null >"$vlog" 2>&1 || status=$?
        if [ "$status" -eq 0 ]; then
            n_ok=$((n_ok + 1))
            printf '  valgrind %-40s Passed\n' "$name"
        else
            n_bad=$((n_bad + 1))
            printf '  valgrind %-40s FAILED (exit %s)\n' "$name" "$status"
            cat "$vlog"
        fi
    done <<<"$list"
    rm -f "$vlog"
    echo "valgrind: $n_ok passed, $n_bad failed of $((n_ok + n_bad)) unit tests"
    PASSED=$((PASSED + n_ok))
    FAILED=$((FAILED + n_bad))
    [ "$n_bad" -eq 0 ] || fail_run "stage valgrind"
}

# ------------------------------------------------------------ main

if [ -z "${SOCKEYE_SKIP_DEPS:-}" ]; then
    log "dependencies"
    bash "$ROOT/cluster/install-deps.sh" || fail_run "cluster/install-deps.sh"
fi

for stage in $STAGES; do
    case $stage in
    asan) stage_asan ;;
    fuzz) stage_fuzz ;;
    valgrind) stage_valgrind ;;
    *) fail_run "unknown stage '$stage' (asan fuzz valgrind)" ;;
    esac
done

log "all stages passed in $((SECONDS - T0)) s"
summary
