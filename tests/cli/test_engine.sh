#!/usr/bin/env bash
# Command-line tests of the engine commands: init, info, logprob, grad, train (checkpoints,
# resume, loss curves) and the demo, and their answers to bad input (exit 1, one line naming the
# file) and bad flags (exit 2). Run from the repository root.
set -u
CGLOW=${CGLOW:-build/cglow_asan}
T=$(mktemp -d "${CGLOW_TEST_TMP:-/tmp}/cli-engine.XXXXXX")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

. "$(dirname "$0")/lib.sh"

for c in init info train logprob grad demo; do
    run $c --help
    check "$c-help" '[ $rc = 0 ] && [[ "$out" == *"--"* ]]' "exit $rc"
done

# ---------------------------------------------------------------- init and info
run init --preset higlow --seed 3 --out "$T/big.safetensors"
check init-preset '[ $rc = 0 ] && [ -s "$T/big.safetensors" ]' "exit $rc: $err"
run info --model "$T/big.safetensors"
check info-preset '[ $rc = 0 ] && [[ "$out" == *"4503312 trainable"* ]] && [[ "$out" == *"109.9 MFLOP"* ]] && [[ "$out" == *"227.5 MFLOP"* ]]' "$out"
run init --levels 2 --steps 2 --hidden 4 --size 8 --seed 1 --out "$T/a.safetensors"
run init --levels 2 --steps 2 --hidden 4 --size 8 --seed 1 --out "$T/b.safetensors"
check init-seeded '[ $rc = 0 ] && cmp -s "$T/a.safetensors" "$T/b.safetensors"' "same seed, different files"
run init --levels 2 --steps 2 --hidden 4 --size 8 --seed 2 --out "$T/c.safetensors"
check init-other-seed '! cmp -s "$T/a.safetensors" "$T/c.safetensors"' "another seed, same file"
expect_fail init-bad-size 1 "divisible" -- init --levels 3 --size 12 --out "$T/x.safetensors"
expect_fail init-bad-preset 1 "preset" -- init --preset nope --out "$T/x.safetensors"
expect_fail init-bad-flag 2 "--bogus" -- init --bogus 1 --out "$T/x.safetensors"
expect_fail init-missing-out 2 "--out" -- init --seed 1
expect_fail info-missing 1 "$T/none.safetensors" "cannot open" -- info --model "$T/none.safetensors"
head -c 1000 "$T/a.safetensors" > "$T/trunc.safetensors"
expect_fail info-truncated 1 "$T/trunc.safetensors" -- info --model "$T/trunc.safetensors"
echo "not a checkpoint at all" > "$T/junk.safetensors"
expect_fail info-junk 1 "$T/junk.safetensors" -- info --model "$T/junk.safetensors"

# ---------------------------------------------------------------- data for the rest
run synth --sims 12 --maps-per-sim 5 --size 8 --seed 4 --out-maps "$T/m.npy" --out-params "$T/p.txt"
check synth-for-engine '[ $rc = 0 ]' "$err"
run init --levels 2 --steps 2 --hidden 4 --maps "$T/m.npy" --params "$T/p.txt" --seed 1 --out "$T/d.safetensors"
check init-from-data '[ $rc = 0 ] && [[ "$out" != *"mu 0.0000"* ]]' "$out $err"

# ---------------------------------------------------------------- logprob and grad
run logprob --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/lp.npy"
check logprob-runs '[ $rc = 0 ] && [ -s "$T/lp.npy" ]' "$err"
run logprob --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/lp10.npy" --space log10 --threads 1
check logprob-log10 '[ $rc = 0 ] && [ -s "$T/lp10.npy" ] && ! cmp -s "$T/lp.npy" "$T/lp10.npy"' "$err"
run logprob --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/lp1.npy" --threads 1 --batch 7
check logprob-threads-batch-invariant 'cmp -s "$T/lp.npy" "$T/lp1.npy"' "different log p with 1 thread and batch 7"
expect_fail logprob-bad-space 1 "--space" -- logprob --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/x.npy" --space linear
expect_fail logprob-wrong-size 1 "$T/m.npy" "8x8" -- logprob --model "$T/big.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/x.npy"
expect_fail logprob-missing-maps 1 "$T/none.npy" -- logprob --model "$T/d.safetensors" --maps "$T/none.npy" --cond "$T/p.txt" --out "$T/x.npy"
head -n 8 "$T/p.txt" > "$T/p5.txt"   # 7 rows: 60 maps do not divide
expect_fail logprob-rows-mismatch 1 "$T/p5.txt" -- logprob --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p5.txt" --out "$T/x.npy"
run grad --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/g.safetensors"
check grad-runs '[ $rc = 0 ] && [ -s "$T/g.safetensors" ] && [[ "$out" == *"nats/pixel"* ]]' "$err"

# ---------------------------------------------------------------- train, resume, interrupt
run train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/run" --levels 2 --flow-steps 2 --hidden 4 --batch 8 --epochs 3 --lr 1e-3 --quiet
check train-runs '[ $rc = 0 ] && [ -s "$T/run/model.safetensors" ] && [ -s "$T/run/model.optim.safetensors" ]' "$err"
check train-loss-csv '[ $(grep -c . "$T/run/loss.csv") = 4 ] && [ $(grep -c . "$T/run/steps.csv") -gt 3 ]' "$(cat $T/run/loss.csv)"
run info --model "$T/run/model.safetensors"
check train-state-saved '[[ "$out" == *"\"epoch\":3"* ]]' "$out"
run train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/run" --epochs 5 --resume --quiet
run train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/run2" --levels 2 --flow-steps 2 --hidden 4 --batch 8 --epochs 5 --lr 1e-3 --quiet
check train-resume-exact 'cmp -s <(cut -d, -f1-5 "$T/run/loss.csv") <(cut -d, -f1-5 "$T/run2/loss.csv")' "resumed and uninterrupted loss curves differ"
run train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/run3" --levels 2 --flow-steps 2 --hidden 4 --batch 8 --steps 4 --checkpoint-every 2 --quiet
check train-steps '[ $rc = 0 ] && [[ "$out" == *"step 4"* ]]' "$out $err"
# an interrupt (SIGINT) saves a checkpoint and exits 130
"$CGLOW" train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/run4" --levels 2 --flow-steps 2 --hidden 4 --batch 8 --epochs 100000 --quiet > "$T/out" 2> "$T/err" &
pid=$!
for _ in $(seq 1 100); do [ -s "$T/run4/steps.csv" ] && [ "$(grep -c . "$T/run4/steps.csv")" -gt 3 ] && break; sleep 0.2; done
kill -INT $pid; wait $pid; rc=$?
check train-interrupt-saves '[ $rc = 130 ] && [ -s "$T/run4/model.safetensors" ] && grep -q "interrupted" "$T/out"' "exit $rc: $(cat $T/out $T/err)"
expect_fail train-bad-batch 1 "--batch" -- train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/x" --batch 0
expect_fail train-resume-nothing 1 "$T/none/model.safetensors" -- train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/none" --resume
python3 - "$T/m.npy" "$T/nan.npy" <<'PY' 2>/dev/null || /usr/bin/python3 - "$T/m.npy" "$T/nan.npy" <<'PY2'
import sys, numpy as np
a = np.load(sys.argv[1]); a[7, 3, 3] = np.nan; np.save(sys.argv[2], a)
PY
import sys, numpy as np
a = np.load(sys.argv[1]); a[7, 3, 3] = np.nan; np.save(sys.argv[2], a)
PY2
expect_fail train-nan-map 1 "$T/nan.npy" "map 7" -- train --maps "$T/nan.npy" --params "$T/p.txt" --out "$T/x" --levels 2 --flow-steps 2 --hidden 4 --quiet

# ---------------------------------------------------------------- --device
# The sanitized tool never has the CUDA backend: --device cuda is refused at once, one line, exit 1,
# by every command that takes it. --device cpu changes nothing.
echo "0.3 0.8" > "$T/c1.txt"
expect_fail device-logprob 1 "--device cuda" "CUDA" -- logprob --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/x.npy" --device cuda
expect_fail device-train 1 "--device cuda" "CUDA" -- train --maps "$T/m.npy" --params "$T/p.txt" --out "$T/xrun" --levels 2 --flow-steps 2 --hidden 4 --steps 1 --quiet --device cuda
expect_fail device-sample 1 "--device cuda" "CUDA" -- sample --model "$T/d.safetensors" --cond "$T/c1.txt" --out "$T/x.npy" --device cuda
expect_fail device-infer 1 "--device cuda" "CUDA" -- infer --model "$T/d.safetensors" --maps "$T/m.npy" --out "$T/xinf" --quiet --device cuda
expect_fail device-unknown 1 "--device" "cpu or cuda" -- logprob --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/x.npy" --device gpu
check device-no-output '[ ! -e "$T/x.npy" ] && [ ! -e "$T/xrun/model.safetensors" ]' "a refused --device still wrote output"
run logprob --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/lpcpu.npy" --device cpu
check device-cpu 'cmp -s "$T/lp.npy" "$T/lpcpu.npy"' "--device cpu changed log p"
# The plain tool (built with nvcc when it was there): on a GPU machine --device cuda runs; without
# a usable device it is refused the same way. Never a crash.
if [ -x build/cglow ]; then
    build/cglow logprob --model "$T/d.safetensors" --maps "$T/m.npy" --cond "$T/p.txt" --out "$T/lpdev.npy" --device cuda > "$T/out" 2> "$T/err"; rc=$?
    check device-plain-tool '{ [ $rc = 0 ] && [ -s "$T/lpdev.npy" ]; } || { [ $rc = 1 ] && [ "$(grep -c . "$T/err")" = 1 ] && grep -q -- "--device cuda" "$T/err"; }' "exit $rc: $(cat "$T/err")"
fi

# ---------------------------------------------------------------- the whole job, tiny
run demo --quick --out "$T/demo"
check demo-quick '[ $rc = 0 ] && [ -s "$T/demo/index.html" ] && [ -s "$T/demo/samples.png" ] && [ -s "$T/demo/train/loss.png" ] && [ -s "$T/demo/calibrate/calibration.json" ]' "exit $rc: $(tail -3 $T/err)"
check demo-report-commands 'grep -q "cglow train" "$T/demo/index.html" && grep -q "cglow calibrate" "$T/demo/commands.txt"' "report lacks the commands"
rm -rf "$T"
