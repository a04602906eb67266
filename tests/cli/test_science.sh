#!/usr/bin/env bash
# Command-line tests of the science subcommands (pk, eval, infer, calibrate, sample, report):
# runs on small synthetic data, exit codes (0 ok, 1 error, 2 usage) and one-line errors naming the
# file. Run from the repository root; $CGLOW is the tool (run_tests.sh: build/cglow_asan).
set -u
CGLOW=${CGLOW:-build/cglow}
T=$(mktemp -d "${CGLOW_TEST_TMP:-/tmp}/sci.XXXXXX")
trap 'rm -rf "$T"' EXIT
PY=/usr/bin/python3

ok() { echo "PASS $1"; }
bad() { echo "FAIL $1: $2"; }

# expect NAME CODE [PATTERN] -- command...: exit code CODE, and (if PATTERN) a one-line stderr matching it.
expect() {
    local name=$1 code=$2 pat=$3; shift 4
    "$@" > "$T/out" 2> "$T/err"; local rc=$?
    if [ "$rc" != "$code" ]; then bad "$name" "exit $rc, want $code: $(head -c 300 "$T/err")"; return; fi
    if [ -n "$pat" ]; then
        if ! grep -q -- "$pat" "$T/err"; then bad "$name" "stderr lacks '$pat': $(head -c 300 "$T/err")"; return; fi
        local lines; lines=$(grep -c . "$T/err")
        if [ "$code" = 1 ] && [ "$lines" != 1 ]; then bad "$name" "error is $lines lines: $(head -c 300 "$T/err")"; return; fi
    fi
    ok "$name"
}

# Data: 12 simulations x 5 synthetic 16x16 maps; a few bad files.
$CGLOW synth --sims 12 --maps-per-sim 5 --size 16 --seed 1 --out-maps "$T/m.npy" --out-params "$T/p.txt" > /dev/null 2>&1 \
    || { bad synth_setup "cglow synth failed"; exit 1; }
$PY - "$T" <<'PYEOF'
import sys, numpy as np
t = sys.argv[1]
np.save(t + "/nan.npy", np.array([[[1.0, np.nan], [1.0, 1.0]]] * 2, dtype=np.float32))
np.save(t + "/flat.npy", np.ones((4, 16), dtype=np.float32))
np.save(t + "/rect.npy", np.ones((2, 8, 16), dtype=np.float32))
np.save(t + "/f.npy", np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32))
np.save(t + "/theta_bad.npy", np.ones((7, 2)))
np.save(t + "/f12.npy", np.random.default_rng(1).normal(size=(3, 12, 12)).astype(np.float32))
PYEOF
echo "not a npy" > "$T/junk.npy"

# --help of every science subcommand: exit 0, usage on stdout.
for c in pk eval infer calibrate sample report; do
    expect "help_$c" 0 "" -- $CGLOW $c --help
    grep -q "usage: cglow $c" "$T/out" || bad "help_${c}_text" "no usage line"
done

# pk
expect pk_ok 0 "" -- $CGLOW pk --maps "$T/m.npy" --out "$T/pk.json"
$PY -c "import json,sys; d=json.load(open('$T/pk.json')); assert all(k in d for k in ('k','mean','std','counts')) and len(d['k'])==len(d['mean'])==11, d.keys()" \
    && ok pk_json || bad pk_json "keys or bins"
expect pk_higlow 0 "" -- $CGLOW pk --maps "$T/m.npy" --binning higlow --field overdensity --out "$T/pk2.json"
expect pk_raw_log10 0 "" -- $CGLOW pk --maps "$T/f.npy" --units log10 --field raw --out "$T/pk3.json" --per-map --threads 1
expect pk_missing 1 "nope.npy" -- $CGLOW pk --maps "$T/nope.npy" --out "$T/x.json"
expect pk_junk 1 "junk.npy" -- $CGLOW pk --maps "$T/junk.npy" --out "$T/x.json"
expect pk_nan 1 "nan.npy" -- $CGLOW pk --maps "$T/nan.npy" --out "$T/x.json"
expect pk_shape 1 "flat.npy" -- $CGLOW pk --maps "$T/flat.npy" --out "$T/x.json"
expect pk_rect 1 "rect.npy" -- $CGLOW pk --maps "$T/rect.npy" --out "$T/x.json"
expect pk_bad_binning 1 "binning" -- $CGLOW pk --maps "$T/m.npy" --binning nope --out "$T/x.json"
expect pk_bad_flag 2 "unknown flag" -- $CGLOW pk --maps "$T/m.npy" --out "$T/x.json" --bogus 1
expect pk_missing_flag 2 "--out" -- $CGLOW pk --maps "$T/m.npy"
expect pk_bad_number 2 "box" -- $CGLOW pk --maps "$T/m.npy" --out "$T/x.json" --box abc
expect pk_unwritable 1 "" -- $CGLOW pk --maps "$T/m.npy" --out "$T/no/such/dir/x.json"
[ ! -e "$T/x.json" ] && ok pk_no_partial_output || bad pk_no_partial_output "x.json written by a failing run"

# infer / calibrate with the exact likelihood
expect infer_exact 0 "" -- $CGLOW infer --exact --maps "$T/m.npy" --truth "$T/p.txt" --grid 12 --out "$T/inf" --png 1 --quiet
$PY -c "
import numpy as np, json
p = np.load('$T/inf/posterior.npy'); s = json.load(open('$T/inf/summary.json'))
assert p.shape == (60, 12, 12) and p.dtype == np.float64, p.shape
assert abs(p.sum(axis=(1, 2)) - 1).max() < 1e-9
assert len(s['maps']) == 60 and 'calibration' in s and s['grid']['G'] == 12
m = s['maps'][0]
assert abs(sum(m['marginal_omega_m']) - 1) < 1e-9 and len(m['marginal_sigma_8']) == 12 and 'in_hpd68' in m
" && ok infer_outputs || bad infer_outputs "posterior.npy or summary.json"
expect infer_no_scorer 1 "scorer" -- $CGLOW infer --maps "$T/m.npy" --out "$T/inf2"
expect infer_truth_rows 1 "theta_bad.npy" -- $CGLOW infer --exact --maps "$T/m.npy" --truth "$T/theta_bad.npy" --out "$T/inf2"
expect infer_missing_model 1 "nomodel.safetensors" -- $CGLOW infer --model "$T/nomodel.safetensors" --maps "$T/m.npy" --out "$T/inf2"
expect infer_bad_grid 1 "grid" -- $CGLOW infer --exact --maps "$T/m.npy" --grid 1 --out "$T/inf2"
expect infer_bad_box 1 "lo" -- $CGLOW infer --exact --maps "$T/m.npy" --lo 0.5 --hi 0.1,1 --out "$T/inf2"
expect infer_nan_map 1 "nan.npy" -- $CGLOW infer --exact --maps "$T/nan.npy" --out "$T/inf2" --quiet
expect calibrate_exact 0 "" -- $CGLOW calibrate --exact --maps "$T/m.npy" --truth "$T/p.txt" --grid 12 --out "$T/cal" --png 0 --quiet
[ -s "$T/cal/calibration.json" ] && [ -s "$T/cal/posterior_exact.npy" ] && ok calibrate_outputs || bad calibrate_outputs "missing files"
expect calibrate_needs_truth 2 "truth" -- $CGLOW calibrate --exact --maps "$T/m.npy" --out "$T/cal2"

# eval: synthetic vs another synthetic draw
$CGLOW synth --sims 12 --maps-per-sim 5 --size 16 --seed 2 --out-maps "$T/m2.npy" --out-params "$T/p2.txt" > /dev/null 2>&1
expect eval_files 0 "" -- $CGLOW eval --real "$T/m.npy" --gen "$T/m2.npy" --out "$T/ev"
$PY -c "
import json; d = json.load(open('$T/ev/eval.json')); c = d['comparison']
assert c['r2_log10'] > 0.9, c['r2_log10']
" && ok eval_r2_same_universe || bad eval_r2_same_universe "R^2 of two draws of the same universe"
expect eval_conditional_files 0 "" -- $CGLOW eval --real "$T/m.npy" --gen "$T/m2.npy" --params "$T/p.txt" --sim 3 --tag sim3 --out "$T/ev"
expect eval_sim_range 1 "p.txt" -- $CGLOW eval --real "$T/m.npy" --gen "$T/m2.npy" --params "$T/p.txt" --sim 99 --out "$T/ev"
expect eval_size_mismatch 1 "different bins" -- $CGLOW eval --real "$T/m.npy" --gen "$T/f12.npy" --gen-units log10 --out "$T/ev"
$CGLOW synth --sims 4 --maps-per-sim 3 --size 32 --seed 3 --out-maps "$T/m32.npy" --out-params "$T/p32.txt" > /dev/null 2>&1
expect eval_auto_downsample 0 "block-averaged by 2" -- $CGLOW eval --real "$T/m32.npy" --gen "$T/m2.npy" --tag ds --out "$T/ev"
expect pk_downsample 0 "" -- $CGLOW pk --maps "$T/m32.npy" --downsample 2 --out "$T/pkds.json"
$PY -c "
import json, numpy as np
m = np.load('$T/m32.npy').astype(np.float64).reshape(12, 16, 2, 16, 2).mean(axis=(2, 4))
np.save('$T/m32d.npy', m.astype(np.float32))
" && $CGLOW pk --maps "$T/m32d.npy" --out "$T/pkds2.json" 2>/dev/null && $PY -c "
import json; a = json.load(open('$T/pkds.json')); b = json.load(open('$T/pkds2.json'))
assert max(abs(x / y - 1) for x, y in zip(a['mean'], b['mean'])) < 1e-5
" && ok pk_downsample_equals_numpy_block_mean || bad pk_downsample_equals_numpy_block_mean "spectra differ"
expect pk_bad_downsample 1 "downsample" -- $CGLOW pk --maps "$T/m32.npy" --downsample 3 --out "$T/x.json"
expect eval_no_gen 1 "--gen" -- $CGLOW eval --real "$T/m.npy" --out "$T/ev"
expect eval_bad_units 1 "units" -- $CGLOW eval --real "$T/m.npy" --gen "$T/m2.npy" --units kelvin --out "$T/ev"

# sample: bad inputs (a model is the engine's; only the failure paths here)
printf "0.3 0.8\n" > "$T/cond.txt"
printf "0.3\n" > "$T/cond1.txt"
expect sample_missing_model 1 "nomodel.safetensors" -- $CGLOW sample --model "$T/nomodel.safetensors" --cond "$T/cond.txt" --out "$T/s.npy"
expect sample_bad_units 1 "units" -- $CGLOW sample --model "$T/nomodel.safetensors" --cond "$T/cond.txt" --out "$T/s.npy" --units furlongs
expect sample_bad_k 1 "n-per-cond" -- $CGLOW sample --model "$T/nomodel.safetensors" --cond "$T/cond.txt" --out "$T/s.npy" --n-per-cond 0

# With a small fresh model (cglow init): sample, infer --model, calibrate flow vs exact, eval --model.
if $CGLOW init --preset higlow --seed 1 --levels 2 --steps 2 --hidden 4 --size 16 --maps "$T/m.npy" --params "$T/p.txt" \
        --out "$T/tiny.safetensors" > /dev/null 2>&1; then
    printf "0.3 0.8\n0.2 0.9\n0.45 0.65\n" > "$T/cond3.txt"
    expect sample_ok 0 "" -- $CGLOW sample --model "$T/tiny.safetensors" --cond "$T/cond3.txt" --n-per-cond 2 --seed 5 --out "$T/s.npy" --png "$T/s.png"
    expect sample_linear 0 "" -- $CGLOW sample --model "$T/tiny.safetensors" --cond "$T/cond3.txt" --n-per-cond 2 --seed 5 --out "$T/sl.npy" --units linear
    $PY -c "
import numpy as np
a = np.load('$T/s.npy'); b = np.load('$T/sl.npy')
assert a.shape == (6, 16, 16) and a.dtype == np.float32, a.shape
m = np.abs(a) < 30   # an untrained flow can sample extreme values; float32 overflows past 10^38
assert m.mean() > 0.5 and np.allclose(10.0 ** a[m].astype(np.float64), b[m], rtol=1e-4), 'linear = 10^log10'
" && ok sample_shapes_units || bad sample_shapes_units "shape or units"
    [ -s "$T/s.png" ] && head -c 8 "$T/s.png" | grep -q PNG && ok sample_png || bad sample_png "no PNG"
    expect sample_same_seed 0 "" -- $CGLOW sample --model "$T/tiny.safetensors" --cond "$T/cond3.txt" --n-per-cond 2 --seed 5 --out "$T/s2.npy"
    cmp -s "$T/s.npy" "$T/s2.npy" && ok sample_reproducible || bad sample_reproducible "same seed, different maps"
    expect sample_cond_cols 1 "cond1.txt" -- $CGLOW sample --model "$T/tiny.safetensors" --cond "$T/cond1.txt" --out "$T/s3.npy"
    expect infer_model 0 "" -- $CGLOW infer --model "$T/tiny.safetensors" --maps "$T/m.npy" --truth "$T/p.txt" --count 4 --grid 6 --out "$T/infm" --png 1 --quiet
    $PY -c "
import numpy as np; p = np.load('$T/infm/posterior.npy'); assert p.shape == (4, 6, 6) and abs(p.sum() - 4) < 1e-9
" && ok infer_model_outputs || bad infer_model_outputs "posterior.npy"
    expect infer_model_size 1 "do not fit" -- $CGLOW infer --model "$T/tiny.safetensors" --maps "$T/f12.npy" --out "$T/infm2" --quiet
    expect calibrate_both 0 "" -- $CGLOW calibrate --model "$T/tiny.safetensors" --exact --maps "$T/m.npy" --truth "$T/p.txt" --count 6 --grid 6 --out "$T/calb" --png 1 --quiet
    $PY -c "
import json; d = json.load(open('$T/calb/calibration.json'))
assert 'flow' in d and 'exact' in d and 'flow_vs_exact' in d and len(d['flow_vs_exact']['per_map']) == 6
" && ok calibrate_both_json || bad calibrate_both_json "flow/exact/comparison"
    if command -v gnuplot > /dev/null; then
        [ -s "$T/calb/posterior_pair_000.png" ] && [ -s "$T/calb/calibration_flow.png" ] && ok calibrate_both_png || bad calibrate_both_png "pictures"
    fi
    expect eval_model_conditional 0 "" -- $CGLOW eval --real "$T/m.npy" --params "$T/p.txt" --model "$T/tiny.safetensors" --sim 2 --n-gen 4 --tag c2 --out "$T/evm"
    [ -s "$T/evm/c2.json" ] && [ -s "$T/evm/c2_gen.npy" ] && ok eval_model_outputs || bad eval_model_outputs "c2.json, c2_gen.npy"
else
    bad model_setup "cglow init failed"
fi

# report
cp "$T/ev/eval.png" "$T/samples.png" 2>/dev/null || true
echo "cglow eval --real m.npy --gen m2.npy --out ev" > "$T/commands.txt"
mv "$T/ev" "$T/inf" "$T/cal" "$T/commands.txt" "$T/rep/" 2>/dev/null || { mkdir -p "$T/rep"; mv "$T/ev" "$T/inf" "$T/cal" "$T/commands.txt" "$T/rep/"; }
expect report_ok 0 "" -- $CGLOW report --dir "$T/rep"
grep -q "r2_log10" "$T/rep/index.html" && grep -q '<img src="ev/eval.png"' "$T/rep/index.html" && grep -q "cglow eval --real" "$T/rep/index.html" \
    && ok report_content || bad report_content "tables, pictures or commands missing"
expect report_missing 1 "nodir" -- $CGLOW report --dir "$T/nodir"
