#!/usr/bin/env bash
# THE prepared GPU check (one device call, about 6 minutes, at most ~8). Everything it measures is
# printed and kept in $OUT (or build/gpu_check when OUT is unset); summary.txt holds every number.
#
#   1. kernels: `make cuda` with nvcc for sm_90 (+ PTX; -Xptxas -v: registers and spills),
#      tests/test_cuda (every kcu_* against the CPU kernels)                     build.log, test_cuda.log
#   2. the whole model: tests/test_flow_cuda (log p, latents, inverse, samples, the gradient of every
#      tensor, Adam steps, checkpoints: device against the CPU backend, small configs and the
#      default preset; max relative errors printed)                              test_flow_cuda.log
#   3. speed, default preset: bench_flow_cuda (30x30 posterior of one map = 900 conditions in one
#      call, with and without CUDA graphs; training steps at batch 64 and 512; sampling; the paper's
#      13,000 maps x 1,000 epochs extrapolated)                                   bench_flow_cuda.log
#   4. the tool: cglow synth -> cglow train --device cuda at batch 64 and 512, cglow infer and
#      cglow sample --device cuda (wall clock, what a user gets)                  cli.log
#   5. PyTorch reference on the same GPU (bench/torch_bench.py --device cuda: train batch 64 and
#      512, score, sample) and the ratios against issue 5's targets             torch_bench*.log
#   6. if time is left: bench_cuda (per-layer ms), compute-sanitizer memcheck of test_cuda
#
# The model-level programs need OpenBLAS, FFTW, libpng and cJSON. If the GPU machine lacks them,
# build them here first and carry them:
#     make gpu-bundle      # build/gpu-bundle: cglow, test_flow_cuda, bench_flow_cuda (+ test_cuda,
#                          # bench_cuda) for x86-64-v3 and the shared libraries they need (~47 MB)
#     run(command="bash bench/gpu_check.sh", carry=["build/gpu-bundle"], timeout_s=570)
# Without a carried bundle and without those libraries there, stages 2-4 are skipped (said so).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu_check}
mkdir -p "$OUT"
S="$OUT/summary.txt"
: > "$S"
say() { echo "$*" | tee -a "$S"; }
start=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-480}
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
# cap T: at most T seconds, and no more than what is left of the budget (at least 20)
cap() { local l; l=$(left); [ "$l" -lt "$1" ] && echo $(( l > 20 ? l : 20 )) || echo "$1"; }

{
    date -u
    uname -a
    nvidia-smi 2>&1 || echo "nvidia-smi failed"
    command -v nvcc || ls /usr/local/cuda/bin/nvcc
    nvcc --version 2>&1 | tail -2
    gcc --version | head -1
    nproc
} > "$OUT/build.log" 2>&1
say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
J=$(nproc 2>/dev/null || echo 8)
NVCC_BIN=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CUDA_LIB=$(dirname "$(dirname "$NVCC_BIN")")/lib64

# ---------------------------------------------------------------- 1. kernels
# The CPU kernels include <cblas.h> (for macros only): an empty one if the image has none.
if ! echo '#include <cblas.h>' | gcc -E -x c - >/dev/null 2>&1; then
    mkdir -p build/stub && : > build/stub/cblas.h
    export C_INCLUDE_PATH=$PWD/build/stub${C_INCLUDE_PATH:+:$C_INCLUDE_PATH}
    say "note: no cblas.h on this machine; using an empty stub for the kernel-level build"
    have_deps=0
else
    have_deps=1
fi
rm -rf build/cuda build/libcglow_cuda.a   # a fresh nvcc pass, so that -Xptxas -v reports every kernel
if timeout "$(cap 200)" make -j"$J" cuda NVCC_EXTRA='-Xptxas -v' >> "$OUT/build.log" 2>&1; then
    say "build (make cuda): ok ($(( $(date +%s) - start )) s)"
    TC=build/tests/test_cuda; BC=build/bench/bench_cuda
else
    say "build (make cuda): FAIL (see build.log)"; tail -20 "$OUT/build.log"
    TC=build/gpu-bundle/test_cuda; BC=build/gpu-bundle/bench_cuda
fi
spills=$(grep -c 'bytes spill stores' "$OUT/build.log"); nz=$(grep -E '[1-9][0-9]* bytes spill stores' "$OUT/build.log" | wc -l)
say "ptxas: $spills kernel reports, $nz with spill stores"
{
    for o in build/cuda/src/kernels/cuda/*.o; do
        echo "== $o"
        cuobjdump --list-elf "$o" 2>&1 | head -5
        echo "FFMA: $(cuobjdump --dump-sass "$o" 2>/dev/null | grep -c FFMA)  DFMA: $(cuobjdump --dump-sass "$o" 2>/dev/null | grep -c DFMA)"
    done
} > "$OUT/sass.txt" 2>&1

if [ -d build/gpu-bundle ]; then
    export LD_LIBRARY_PATH=$PWD/build/gpu-bundle/lib:$CUDA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
timeout "$(cap 150)" "$TC" > "$OUT/test_cuda.log" 2>&1; rc=$?
say "test_cuda: exit $rc, $(grep -c '^PASS ' "$OUT/test_cuda.log") passed, $(grep -c '^FAIL ' "$OUT/test_cuda.log") failed, $(grep -c '^SKIP ' "$OUT/test_cuda.log") skipped"
grep -E '^(FAIL|#)|check failed' "$OUT/test_cuda.log" | head -12 | tee -a "$S"

# ---------------------------------------------------------------- the model-level programs
CG= ; TF= ; BF=
if [ "$have_deps" = 1 ] && echo 'int main(void){return 0;}' | gcc -x c - -o /tmp/gpu_check_link -lopenblas -lfftw3f -lfftw3 -lpng -lcjson 2>/dev/null \
   && timeout "$(cap 200)" make -j"$J" cuda-model >> "$OUT/build.log" 2>&1; then
    CG=build/cglow; TF=build/tests/test_flow_cuda; BF=build/bench/bench_flow_cuda
    say "build (make cuda-model, here): ok ($(( $(date +%s) - start )) s)"
elif [ -x build/gpu-bundle/cglow ]; then
    CG=build/gpu-bundle/cglow; TF=build/gpu-bundle/test_flow_cuda; BF=build/gpu-bundle/bench_flow_cuda
    say "model-level programs: the carried build/gpu-bundle (commit $(cat build/gpu-bundle/COMMIT 2>/dev/null))"
    missing=$(ldd "$CG" 2>&1 | grep 'not found' | tr -s ' \t' ' ')
    [ -n "$missing" ] && say "  ldd: $missing"
else
    say "model-level programs: SKIPPED (no OpenBLAS/FFTW/libpng/cJSON here and no carried build/gpu-bundle: run 'make gpu-bundle' first and carry it)"
fi

# ---------------------------------------------------------------- 2. whole model: device vs CPU
if [ -n "$TF" ]; then
    OMP_NUM_THREADS=$J CGLOW_TEST_TMP=/tmp timeout "$(cap 150)" "$TF" > "$OUT/test_flow_cuda.log" 2>&1; rc=$?
    say "test_flow_cuda: exit $rc, $(grep -c '^PASS ' "$OUT/test_flow_cuda.log") passed, $(grep -c '^FAIL ' "$OUT/test_flow_cuda.log") failed, $(grep -c '^SKIP ' "$OUT/test_flow_cuda.log") skipped"
    grep -E '^(FAIL|#)|check failed|^  ' "$OUT/test_flow_cuda.log" | head -30 | tee -a "$S"
fi

# ---------------------------------------------------------------- 3. speed of the whole model
if [ -n "$BF" ]; then
    OMP_NUM_THREADS=$J timeout "$(cap 150)" "$BF" --json "$OUT/bench_flow_cuda.json" > "$OUT/bench_flow_cuda.log" 2>&1; rc=$?
    say "bench_flow_cuda: exit $rc"
    cat "$OUT/bench_flow_cuda.log" | tee -a "$S"
fi

# ---------------------------------------------------------------- 4. the command-line tool
if [ -n "$CG" ] && [ "$(left)" -gt 120 ]; then
    D=/tmp/gpu_check_cli; rm -rf "$D"; mkdir -p "$D"
    {
        t0=$(date +%s%N)
        $CG synth --sims 48 --maps-per-sim 15 --size 64 --seed 1 --out-maps "$D/maps.npy" --out-params "$D/params.txt"
        echo "synth: 720 maps, wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        for B in 64 512; do
            S_=$([ $B = 64 ] && echo 60 || echo 12)
            t0=$(date +%s%N)
            timeout 120 $CG train --maps "$D/maps.npy" --params "$D/params.txt" --out "$D/run$B" --batch $B --steps $S_ \
                --split holdout --holdout-fraction 0 --checkpoint-every 100000 --quiet --device cuda
            echo "train --device cuda --batch $B --steps $S_: exit $?, wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        done
        M=$D/run64/model.safetensors
        head -n 5 "$D/params.txt" > "$D/truth5.txt"
        t0=$(date +%s%N)
        timeout 60 $CG infer --model "$M" --maps "$D/maps.npy" --count 4 --grid 30 --png 0 --quiet --out "$D/inf" --device cuda
        echo "infer --device cuda, 4 maps at 30x30 (model load included): exit $?, wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        t0=$(date +%s%N)
        timeout 60 $CG sample --model "$M" --cond "$D/truth5.txt" --n-per-cond 200 --out "$D/s.npy" --device cuda
        echo "sample --device cuda, 1000 maps (model load included): exit $?, wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        $CG synth --sims 4 --maps-per-sim 15 --size 64 --seed 2 --out-maps "$D/m60.npy" --out-params "$D/p60.txt" > /dev/null
        timeout 60 $CG logprob --model "$M" --maps "$D/m60.npy" --cond "$D/p60.txt" --out "$D/lpd.npy" --batch 60 --device cuda
        timeout 60 $CG logprob --model "$M" --maps "$D/m60.npy" --cond "$D/p60.txt" --out "$D/lpc.npy" --batch 60
        python3 - "$D/lpd.npy" "$D/lpc.npy" <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
print("logprob of 60 maps, device vs cpu: max relative difference %.3g" % float(np.max(np.abs(a - b) / np.abs(b))))
PY
    } > "$OUT/cli.log" 2>&1
    grep -E "maps/s|exit|wall|relative|synth" "$OUT/cli.log" | grep -v '^training' | tee -a "$S"
else
    [ -n "$CG" ] && say "cli: skipped (under 120 s left)"
fi

# ---------------------------------------------------------------- 5. PyTorch on the same GPU
if [ -f bench/torch_bench.py ] && [ "$(left)" -gt 60 ]; then
    PYTHONUNBUFFERED=1 timeout "$(cap 150)" python3 bench/torch_bench.py --device cuda --threads 8 --reps 3 \
        --json "$OUT/torch_bench.json" > "$OUT/torch_bench.log" 2>&1
    say "torch_bench --device cuda (batch 64, score, sample): exit $?"
    tail -8 "$OUT/torch_bench.log" | tee -a "$S"
    if [ "$(left)" -gt 45 ]; then
        PYTHONUNBUFFERED=1 timeout "$(cap 90)" python3 bench/torch_bench.py --device cuda --threads 8 --only train \
            --batch 512 --steps 3 --json "$OUT/torch_bench512.json" > "$OUT/torch_bench512.log" 2>&1
        say "torch_bench --device cuda --batch 512 --only train: exit $?"
        tail -3 "$OUT/torch_bench512.log" | tee -a "$S"
    fi
    python3 - "$OUT" <<'PY' 2>&1 | tee -a "$S"
import json, os, sys
d = sys.argv[1]
def load(n):
    try:
        return json.load(open(os.path.join(d, n)))
    except Exception:
        return {}
c, t, t5 = load("bench_flow_cuda.json"), load("torch_bench.json"), load("torch_bench512.json")
print("issue 5 targets (cglow on this GPU against PyTorch on this GPU):")
for b, tk, src in ((64, "train_maps_per_s", t), (512, "train_maps_per_s", t5)):
    cv, tv = c.get("train_maps_per_s_%d" % b), src.get(tk)
    if cv and tv:
        print("  train batch %3d: cglow %.1f maps/s, PyTorch %.1f maps/s: %.2fx (target >= 3x: %s)" %
              (b, cv, tv, cv / tv, "met" if cv / tv >= 3 else "NOT met"))
if c.get("score_ms_graph"):
    ts = t.get("score_evals_per_s_best")
    print("  30x30 posterior: cglow %.2f ms (target < 20 ms: %s)%s" % (c["score_ms_graph"],
          "met" if c["score_ms_graph"] < 20 else "NOT met", ", PyTorch %.2f ms" % (900e3 / ts) if ts else ""))
if c.get("paper_hours_64"):
    h = min(c["paper_hours_64"], c.get("paper_hours_512") or 1e9)
    print("  13,000 maps x 1,000 epochs: %.2f h at batch 64, %.2f h at batch 512 (target < 1 h: %s)" %
          (c["paper_hours_64"], c.get("paper_hours_512", float("nan")), "met" if h < 1 else "NOT met"))
if c.get("sample_maps_per_s_64") and t.get("sample_maps_per_s"):
    print("  sampling: cglow %.1f maps/s (64 per call), PyTorch %.1f maps/s" % (c["sample_maps_per_s_64"], t["sample_maps_per_s"]))
PY
else
    say "torch_bench: skipped (no file or under 60 s left)"
fi

# ---------------------------------------------------------------- 6. if time is left
if [ "$(left)" -gt 60 ] && [ -x "$BC" ]; then
    timeout "$(cap 60)" "$BC" 64 > "$OUT/bench_cuda.log" 2>&1
    say "bench_cuda 64: exit $? ($(grep -c ' ms ' "$OUT/bench_cuda.log") timings)"
    grep -E '^(step|whole)' "$OUT/bench_cuda.log" | tee -a "$S"
fi
if [ "$(left)" -gt 60 ] && command -v compute-sanitizer >/dev/null 2>&1; then
    timeout "$(cap 120)" compute-sanitizer --tool memcheck --leak-check full --error-exitcode 7 "$TC" \
        > "$OUT/sanitizer.log" 2>&1; rc=$?
    say "compute-sanitizer memcheck (test_cuda): exit $rc ($(grep -c '^PASS ' "$OUT/sanitizer.log") passed; $(grep 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1))"
else
    say "compute-sanitizer: skipped (not installed or under 60 s left)"
fi
say "total: $(( $(date +%s) - start )) s"
