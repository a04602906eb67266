#!/usr/bin/env bash
# Runs every test: the C test binaries (under ASan/UBSan), the command-line tests and the Python
# interoperability tests (numpy, safetensors, Pylians3, PyTorch in a venv made here).
# Each test prints "PASS name" or "FAIL name" (or "SKIP name (reason)" when it cannot run here, e.g.
# the CUDA tests without a GPU); the last line is "N passed, N failed", with ", N skipped" added
# when some were skipped.
set -u
cd "$(dirname "$0")/.."
export CGLOW_SHARED=${CGLOW_SHARED:-$(cd .. && pwd)/shared}
export CGLOW_TEST_TMP=$(mktemp -d /tmp/cglow-test.XXXXXX)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export CGLOW=build/cglow_asan
log=$CGLOW_TEST_TMP/log
pass=0; fail=0; skip=0

count() {   # $1 = name of the suite, $2 = its output file, $3 = its exit code
    local p f s
    p=$(grep -c '^PASS ' "$2"); f=$(grep -c '^FAIL ' "$2"); s=$(grep -c '^SKIP ' "$2")
    if [ "$3" != 0 ] && [ "$f" = 0 ]; then
        echo "FAIL $1 (exit $3 with no failing test: crash or sanitizer report)"; f=1
    fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
}

for t in build/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "== $name"
    start=$(date +%s%N)
    "$t" > "$log" 2>&1; rc=$?
    cat "$log"
    count "$name" "$log" "$rc"
    echo "   ($name: $(( ($(date +%s%N) - start) / 1000000 )) ms)"
done

for t in tests/cli/test_*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    echo "== $name"
    bash "$t" > "$log" 2>&1; rc=$?
    cat "$log"
    count "$name" "$log" "$rc"
done

if ls tests/py/test_*.py >/dev/null 2>&1; then
    if bash scripts/make-venv.sh > "$CGLOW_TEST_TMP/venv.log" 2>&1; then
        for t in tests/py/test_*.py; do
            name=$(basename "$t" .py)
            echo "== $name"
            build/venv/bin/python "$t" > "$log" 2>&1; rc=$?
            cat "$log"
            count "$name" "$log" "$rc"
        done
    else
        cat "$CGLOW_TEST_TMP/venv.log"
        echo "FAIL python-venv (could not create build/venv)"; fail=$((fail + 1))
    fi
fi

rm -rf "$CGLOW_TEST_TMP"
if [ "$skip" -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" = 0 ]
