#!/usr/bin/env bash
# Fuzzes the .npy reader (and the table parser), or the safetensors reader and checkpoint loader,
# with libFuzzer under ASan/UBSan for a fixed time.
#   bash bench/fuzz.sh [SECONDS=60] [npy|safetensors]
# Builds build/fuzz/fuzz_npy with clang-14, seeds a corpus with valid and broken .npy files and
# text tables, runs one job, and reports executions and whether anything crashed.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
target=${2:-npy}
CC=${FUZZ_CC:-clang-14}
out=build/fuzz
mkdir -p "$out/corpus" "$out/crashes"
if [ "$target" = safetensors ]; then
    mkdir -p "$out/st-corpus" "$out/st-crashes"
    $CC -g -O1 -std=c11 -D_GNU_SOURCE -DCGLOW_LIBFUZZER -fopenmp -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu bench/fuzz_safetensors.c \
        $(find src -name '*.c' -not -path 'src/cli/*' -not -path 'src/kernels/cuda/*') \
        -lopenblas -lfftw3f -lfftw3 -lpng -lcjson -lm -o "$out/fuzz_safetensors"
    # seeds: small checkpoints of both prior kinds and the tiny reference fixtures
    make -s build/cglow >/dev/null
    build/cglow init --levels 1 --steps 1 --hidden 2 --size 4 --out "$out/st-corpus/seed-cond.safetensors" >/dev/null
    build/cglow init --levels 1 --steps 1 --hidden 2 --size 4 --prior learned --out "$out/st-corpus/seed-learned.safetensors" >/dev/null
    for f in ../shared/fixtures/tiny-*/model.safetensors; do [ -f "$f" ] && cp "$f" "$out/st-corpus/seed-$(basename $(dirname $f)).safetensors"; done
    log=$out/fuzz_safetensors.log
    set +e
    OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 "$out/fuzz_safetensors" "$out/st-corpus" -max_total_time="$secs" \
        -max_len=70000 -rss_limit_mb=2048 -artifact_prefix="$out/st-crashes/" -print_final_stats=1 > "$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    crashes=$(ls "$out/st-crashes" | wc -l)
    echo "fuzz_safetensors: ${secs} s, ${execs} executions, corpus $(ls "$out/st-corpus" | wc -l) files, crashes: ${crashes}, exit ${rc}"
    [ "$rc" = 0 ] && [ "$crashes" = 0 ]
    exit
fi
$CC -g -O1 -std=c11 -D_GNU_SOURCE -DCGLOW_LIBFUZZER -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Iinclude -Isrc bench/fuzz_npy.c src/io/npy.c src/data/table.c src/util/fileio.c src/util/error.c -lm -o "$out/fuzz_npy"

# Seeds: .npy files of every version, dtype and rank that cglow and numpy write, and a table.
/usr/bin/python3 - "$out/corpus" <<'PY'
import sys, os
try:
    import numpy as np
except ImportError:
    np = None
d = sys.argv[1]
if np is not None:
    for v in [(1, 0), (2, 0), (3, 0)]:
        for dt in ["<f4", "<f8", "<i4", ">f4"]:
            for shape in [(3,), (2, 3), (2, 1, 2, 2)]:
                with open(os.path.join(d, f"seed-v{v[0]}{dt[1:]}{len(shape)}.npy"), "wb") as f:
                    np.lib.format.write_array(f, np.arange(np.prod(shape)).reshape(shape).astype(dt), version=v)
    with open(os.path.join(d, "seed-fortran.npy"), "wb") as f:
        np.lib.format.write_array(f, np.asfortranarray(np.ones((2, 3), "<f4")))
open(os.path.join(d, "seed-table.txt"), "w").write("# Om s8\n0.3 0.8\n0.2 0.7\n")
PY

export ASAN_OPTIONS=detect_leaks=1
log=$out/fuzz.log
set +e
"$out/fuzz_npy" "$out/corpus" -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 \
    -artifact_prefix="$out/crashes/" -print_final_stats=1 > "$log" 2>&1
rc=$?
set -e
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || echo "cov: ?")
crashes=$(ls "$out/crashes" | wc -l)
echo "fuzz_npy: ${secs} s, ${execs} executions, ${cov}, corpus $(ls "$out/corpus" | wc -l) files, crashes: ${crashes}, exit ${rc}"
[ "$rc" = 0 ] && [ "$crashes" = 0 ]
