#!/usr/bin/env bash
# THE prepared GPU check (one device call, about 5 minutes, at most ~8): builds the CUDA backend
# with nvcc for sm_90 (+ PTX), runs tests/test_cuda (every kcu_* against the CPU) under plain
# execution and under compute-sanitizer, runs bench_cuda, and the PyTorch reference's GPU bench if
# bench/torch_bench.py is there. Logs go to $OUT (or build/gpu_check when OUT is unset):
#   summary.txt      one line per stage: ok / FAIL / skipped, and the test counts
#   build.log        the machine (nvidia-smi, nvcc), then make cuda with -Xptxas -v (registers,
#                    spills per kernel)
#   test_cuda.log    PASS/FAIL/SKIP lines
#   sanitizer.log    compute-sanitizer memcheck of test_cuda (if the tool runs on this machine)
#   bench_cuda.log   primitive throughput at G = 64 and G = 8
#   torch_bench.log  PyTorch reference on the GPU (train/score/sample)
#   sass.txt         which SASS architectures the objects carry, and a count of FFMA/HMMA per file
# Run from the repository root:  bash bench/gpu_check.sh
# Device tool:  run(command="bash bench/gpu_check.sh", timeout_s=540)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu_check}
mkdir -p "$OUT"
S="$OUT/summary.txt"
: > "$S"
say() { echo "$*" | tee -a "$S"; }
start=$(date +%s)

{
    date -u
    uname -a
    nvidia-smi 2>&1 || echo "nvidia-smi failed"
    command -v nvcc || ls /usr/local/cuda/bin/nvcc
    nvcc --version 2>&1 | tail -2
    gcc --version | head -1
} > "$OUT/build.log" 2>&1
say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"

# The CPU kernels include <cblas.h> (for macros only): supply an empty one if the image has none.
if ! echo '#include <cblas.h>' | gcc -E -x c - >/dev/null 2>&1; then
    mkdir -p build/stub && : > build/stub/cblas.h
    export C_INCLUDE_PATH=$PWD/build/stub${C_INCLUDE_PATH:+:$C_INCLUDE_PATH}
    say "note: no cblas.h on this machine; using an empty stub (the CPU kernels call no BLAS)"
fi

J=$(nproc 2>/dev/null || echo 8)
rm -rf build/cuda build/libcglow_cuda.a   # a fresh nvcc pass, so that -Xptxas -v reports every kernel
if timeout 240 make -j"$J" cuda NVCC_EXTRA='-Xptxas -v' >> "$OUT/build.log" 2>&1; then
    say "build: ok ($(( $(date +%s) - start )) s)"
else
    say "build: FAIL (see build.log)"; tail -30 "$OUT/build.log"; exit 1
fi
spills=$(grep -c 'bytes spill stores' "$OUT/build.log"); nz=$(grep -E '[1-9][0-9]* bytes spill stores' "$OUT/build.log" | wc -l)
say "ptxas: $spills kernel reports, $nz with spill stores"

{
    for o in build/cuda/src/kernels/cuda/*.o; do
        echo "== $o"
        cuobjdump --list-elf "$o" 2>&1 | head -5
        cuobjdump --list-ptx "$o" 2>&1 | head -5
        echo "FFMA: $(cuobjdump --dump-sass "$o" 2>/dev/null | grep -c FFMA)  HMMA: $(cuobjdump --dump-sass "$o" 2>/dev/null | grep -c HMMA)"
    done
} > "$OUT/sass.txt" 2>&1

timeout 180 build/tests/test_cuda > "$OUT/test_cuda.log" 2>&1; rc=$?
say "test_cuda: exit $rc, $(grep -c '^PASS ' "$OUT/test_cuda.log") passed, $(grep -c '^FAIL ' "$OUT/test_cuda.log") failed, $(grep -c '^SKIP ' "$OUT/test_cuda.log") skipped"
grep -E '^(FAIL|SKIP|#)' "$OUT/test_cuda.log" | head -20 | tee -a "$S"

if command -v compute-sanitizer >/dev/null 2>&1; then
    timeout 150 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 7 build/tests/test_cuda \
        > "$OUT/sanitizer.log" 2>&1; rc=$?
    say "compute-sanitizer memcheck: exit $rc ($(grep -c '^PASS ' "$OUT/sanitizer.log") passed; 'ERROR SUMMARY': $(grep 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1))"
else
    say "compute-sanitizer: not installed"
fi

{ timeout 120 build/bench/bench_cuda 64; echo; timeout 60 build/bench/bench_cuda 8; } > "$OUT/bench_cuda.log" 2>&1
say "bench_cuda: exit $? ($(grep -c ' ms ' "$OUT/bench_cuda.log") timings)"
grep -E '^(step|whole)' "$OUT/bench_cuda.log" | tee -a "$S"

left=$(( 480 - ($(date +%s) - start) ))
if [ -f bench/torch_bench.py ] && [ "$left" -gt 60 ]; then
    PYTHONUNBUFFERED=1 timeout "$left" python3 bench/torch_bench.py --device cuda --threads 8 \
        > "$OUT/torch_bench.log" 2>&1
    say "torch_bench --device cuda: exit $? (see torch_bench.log)"
    tail -8 "$OUT/torch_bench.log" | tee -a "$S"
else
    say "torch_bench: skipped (no file or under 60 s left)"
fi
say "total: $(( $(date +%s) - start )) s"
