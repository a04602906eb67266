#!/usr/bin/env bash
# --device cuda end to end through the command-line tool, on the CPU emulation of the CUDA backend
# (build/cglow_emul: the sanitized tool linked with src/kernels/cuda built against emul.h): train,
# resume, logprob, sample and infer on the device against the same commands on the CPU. Numbers
# agree to float32 tolerance; a resumed device run equals an uninterrupted one exactly. Without
# build/cglow_emul (EMUL=0) every check is skipped. Run from the repository root.
set -u
E=${CGLOW_EMUL:-build/cglow_emul}
names="device-train device-train-matches-cpu device-resume-exact device-logprob device-sample device-infer"
if [ ! -x "$E" ]; then
    for n in $names; do echo "SKIP $n (no $E: built with EMUL=1)"; done
    exit 0
fi
CGLOW=$E
T=$(mktemp -d "${CGLOW_TEST_TMP:-/tmp}/cli-device.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=/usr/bin/python3
. "$(dirname "$0")/lib.sh"

# close A B TOL: the two .npy arrays agree to TOL (relative, norms)
close() {
    $PY - "$1" "$2" "$3" <<'PYEOF'
import sys, numpy as np
a, b = np.load(sys.argv[1]).astype(np.float64), np.load(sys.argv[2]).astype(np.float64)
e = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)
print("relative error %.3g" % e)
sys.exit(0 if a.shape == b.shape and np.all(np.isfinite(a)) and e <= float(sys.argv[3]) else 1)
PYEOF
}

run synth --sims 12 --maps-per-sim 5 --size 8 --seed 4 --out-maps "$T/m.npy" --out-params "$T/p.txt"
[ $rc = 0 ] || { bad device-setup "synth: $err"; exit 1; }
small="--levels 2 --flow-steps 2 --hidden 4 --batch 8 --lr 1e-3 --no-augment --quiet"

run train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/cpu" $small --steps 6 --device cpu
run train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/dev" $small --steps 6 --device cuda
check device-train '[ $rc = 0 ] && [ -s "$T/dev/model.safetensors" ] && [ -s "$T/dev/model.optim.safetensors" ] && [[ "$out" == *"step 6"* ]]' "exit $rc: $err"
# per step: loss and gradient norm of the device run against the CPU's
d=$(paste -d, "$T/cpu/steps.csv" "$T/dev/steps.csv" | awk -F, 'NR > 1 { a = ($3 - $10) / $3; b = ($5 - $12) / $5;
    if (a < 0) a = -a; if (b < 0) b = -b; if (a > m) m = a; if (b > m) m = b } END { printf "%.3g", m + 0 }')
check device-train-matches-cpu 'awk -v d="$d" "BEGIN { exit !(d < 1e-3) }" && [ $(grep -c . "$T/dev/steps.csv") = 7 ]' "largest relative difference $d"

# resume on the device: the same as running through
run train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/dev" $small --steps 9 --resume --device cuda
run train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/dev9" $small --steps 9 --device cuda
check device-resume-exact '[ $rc = 0 ] && cmp -s <(cut -d, -f1-5 "$T/dev/steps.csv") <(cut -d, -f1-5 "$T/dev9/steps.csv")' \
    "resumed and uninterrupted device runs differ: $(diff "$T/dev/steps.csv" "$T/dev9/steps.csv" | head -4)"

M="$T/dev9/model.safetensors"
run logprob --model "$M" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/lpc.npy"
run logprob --model "$M" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/lpd.npy" --device cuda
check device-logprob '[ $rc = 0 ] && close "$T/lpd.npy" "$T/lpc.npy" 1e-5 > /dev/null' "exit $rc: $err $(close "$T/lpd.npy" "$T/lpc.npy" 1e-5)"

head -n 4 "$T/p.txt" > "$T/c3.txt"
run sample --model "$M" --cond "$T/c3.txt" --n-per-cond 2 --seed 5 --temperature 0.7 --out "$T/sc.npy"
run sample --model "$M" --cond "$T/c3.txt" --n-per-cond 2 --seed 5 --temperature 0.7 --out "$T/sd.npy" --device cuda
check device-sample '[ $rc = 0 ] && close "$T/sd.npy" "$T/sc.npy" 1e-4 > /dev/null' "exit $rc: $err $(close "$T/sd.npy" "$T/sc.npy" 1e-4)"

run infer --model "$M" --maps "$T/m.npy" --truth "$T/p.txt" --count 2 --grid 6 --png 0 --quiet --out "$T/ic"
run infer --model "$M" --maps "$T/m.npy" --truth "$T/p.txt" --count 2 --grid 6 --png 0 --quiet --out "$T/id" --device cuda
check device-infer '[ $rc = 0 ] && close "$T/id/posterior.npy" "$T/ic/posterior.npy" 1e-4 > /dev/null' \
    "exit $rc: $err $(close "$T/id/posterior.npy" "$T/ic/posterior.npy" 1e-4)"
