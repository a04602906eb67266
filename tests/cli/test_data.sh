#!/usr/bin/env bash
# Command-line tests of the data commands: cglow synth and synth-loglike, and their answers to bad
# input (exit 1, one line naming the file) and bad flags (exit 2). Run from the repository root.
set -u
CGLOW=${CGLOW:-build/cglow_asan}
T=$(mktemp -d "${CGLOW_TEST_TMP:-/tmp}/cli-data.XXXXXX")
PY=/usr/bin/python3

. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------- help
run synth --help
check synth-help '[ $rc = 0 ] && [[ "$out" == *"--out-maps"* ]]' "exit $rc"
run synth-loglike --help
check synth-loglike-help '[ $rc = 0 ] && [[ "$out" == *"--out-posterior"* ]]' "exit $rc"

# ---------------------------------------------------------------- synth
run synth --sims 3 --maps-per-sim 5 --size 16 --seed 7 --out-maps "$T/x.npy" --out-params "$T/p.txt"
check synth-runs '[ $rc = 0 ] && [ -s "$T/x.npy" ] && [ -s "$T/p.txt" ]' "exit $rc: $err"
check synth-npy-size '[ $(stat -c %s "$T/x.npy") = $((128 + 15 * 16 * 16 * 4)) ]' "size $(stat -c %s "$T/x.npy" 2>/dev/null)"
check synth-table-layout '[ "$(grep -c -v "^#" "$T/p.txt")" = 3 ] && [ "$(head -1 "$T/p.txt")" = "# Om sigma8 SN1 AGN1 SN2 AGN2" ] && [ "$(sed -n 2p "$T/p.txt" | wc -w)" = 6 ]' "$(cat "$T/p.txt")"
run synth --sims 3 --maps-per-sim 5 --size 16 --seed 7 --threads 1 --out-maps "$T/x1.npy" --out-params "$T/p1.txt"
check synth-deterministic 'cmp -s "$T/x.npy" "$T/x1.npy" && cmp -s "$T/p.txt" "$T/p1.txt"' "seed 7 twice differs"
run synth --sims 3 --maps-per-sim 5 --size 16 --seed 8 --out-maps "$T/x2.npy" --out-params "$T/p2.txt"
check synth-seed-matters '! cmp -s "$T/x.npy" "$T/x2.npy"' "seeds 7 and 8 give the same maps"
check synth-no-temp-files '[ -z "$(ls "$T" | grep tmp)" ]' "$(ls "$T")"

SHARED=${CGLOW_SHARED:-../shared}
run synth --params-table "$SHARED/data/params_LH_IllustrisTNG.txt" --sims 2 --maps-per-sim 2 --size 8 --seed 1 \
    --out-maps "$T/xc.npy" --out-params "$T/pc.txt"
check synth-params-table '[ $rc = 0 ] && [ "$(sed -n 2p "$T/pc.txt")" = "0.30900 0.97900 3.11234 1.12194 0.66850 0.53182" ]' \
    "exit $rc: $err $(sed -n 2p "$T/pc.txt" 2>/dev/null)"

# ---------------------------------------------------------------- synth-loglike
run synth-loglike --maps "$T/x.npy" --params "$T/p.txt" --out "$T/ll.npy" --grid 6 --out-posterior "$T/post.npy"
check synth-loglike-runs '[ $rc = 0 ] && [ $(stat -c %s "$T/ll.npy") = $((128 + 15 * 8)) ] && [ $(stat -c %s "$T/post.npy") = $((128 + 15 * 36 * 8)) ]' \
    "exit $rc: $err"
run synth-loglike --maps "$T/x.npy" --params "$T/p.txt" --out "$T/ll1.npy" --threads 1
check synth-loglike-threads 'cmp -s "$T/ll.npy" "$T/ll1.npy"' "1 and 2 threads differ"
# Wrong parameters fit worse on the whole: the true table beats the other seed's table.
run synth-loglike --maps "$T/x.npy" --params "$T/p2.txt" --out "$T/llw.npy"
check synth-loglike-wrong-params '[ $rc = 0 ] && $PY - "$T/ll.npy" "$T/llw.npy" <<PYEOF
import struct, sys
def ll(p):
    b = open(p, "rb").read()
    return struct.unpack("<15d", b[128:])
sys.exit(0 if sum(ll(sys.argv[1])) > sum(ll(sys.argv[2])) else 1)
PYEOF' "true parameters do not fit better"

# ---------------------------------------------------------------- bad input: exit 1, one line naming the file
expect_fail missing-maps 1 "$T/nope.npy" "cannot open" -- synth-loglike --maps "$T/nope.npy" --params "$T/p.txt" --out "$T/o.npy"
expect_fail missing-params 1 "$T/nope.txt" -- synth-loglike --maps "$T/x.npy" --params "$T/nope.txt" --out "$T/o.npy"
head -c 1000 "$T/x.npy" > "$T/trunc.npy"
expect_fail truncated-npy 1 "$T/trunc.npy" "truncated" -- synth-loglike --maps "$T/trunc.npy" --params "$T/p.txt" --out "$T/o.npy"
head -c 100 "$T/x.npy" > "$T/trunc-header.npy"
expect_fail truncated-header 1 "$T/trunc-header.npy" "truncated" -- synth-loglike --maps "$T/trunc-header.npy" --params "$T/p.txt" --out "$T/o.npy"
$PY - "$T/x.npy" "$T/int.npy" "$T/fortran.npy" "$T/nan.npy" "$T/zero.npy" <<'PYEOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
open(sys.argv[2], "wb").write(bytes(b).replace(b"'<f4'", b"'<i4'", 1))
open(sys.argv[3], "wb").write(bytes(b).replace(b"'fortran_order': False", b"'fortran_order': True ", 1))
nan = bytearray(b); nan[128 + (2 * 256 + 5) * 4: 128 + (2 * 256 + 6) * 4] = b"\x00\x00\xc0\x7f"
open(sys.argv[4], "wb").write(nan)
z = bytearray(b); z[128 + (3 * 256 + 1) * 4: 128 + (3 * 256 + 2) * 4] = b"\x00\x00\x00\x00"
open(sys.argv[5], "wb").write(z)
PYEOF
expect_fail wrong-dtype 1 "$T/int.npy" "'<i4'" -- synth-loglike --maps "$T/int.npy" --params "$T/p.txt" --out "$T/o.npy"
expect_fail fortran-order 1 "$T/fortran.npy" "Fortran" -- synth-loglike --maps "$T/fortran.npy" --params "$T/p.txt" --out "$T/o.npy"
expect_fail nan-in-maps 1 "$T/nan.npy" "map 2 " "NaN" -- synth-loglike --maps "$T/nan.npy" --params "$T/p.txt" --out "$T/o.npy"
expect_fail zero-in-maps 1 "$T/zero.npy" "map 3 " "non-positive" -- synth-loglike --maps "$T/zero.npy" --params "$T/p.txt" --out "$T/o.npy"
printf '# Om s8\n0.3 0.8\n0.2 0.7\n0.25 0.75\n0.3 0.9\n' > "$T/p4.txt"
expect_fail maps-per-sim-does-not-divide 1 "$T/p4.txt" "do not divide" -- synth-loglike --maps "$T/x.npy" --params "$T/p4.txt" --out "$T/o.npy"
printf '# Om s8\n0.3 0.8\n0.2 nan\n0.25 0.75\n' > "$T/pnan.txt"
expect_fail nan-in-params 1 "$T/pnan.txt:3" "not finite" -- synth-loglike --maps "$T/x.npy" --params "$T/pnan.txt" --out "$T/o.npy"
printf '# Om s8\n0.3 0.8\n0.2\n0.25 0.75\n' > "$T/pragged.txt"
expect_fail ragged-params 1 "$T/pragged.txt:3" "ragged" -- synth-loglike --maps "$T/x.npy" --params "$T/pragged.txt" --out "$T/o.npy"
expect_fail params-table-missing 1 "$T/none.txt" -- synth --params-table "$T/none.txt" --maps-per-sim 1 --size 8 --out-maps "$T/o.npy" --out-params "$T/o.txt"
expect_fail unwritable-output 1 "$T/no/such/dir/o.npy" -- synth --sims 1 --maps-per-sim 1 --size 8 --out-maps "$T/no/such/dir/o.npy" --out-params "$T/o.txt"
check no-output-on-error '[ ! -e "$T/o.npy" ] && [ ! -e "$T/o.txt" ]' "$(ls "$T")"

# ---------------------------------------------------------------- bad flags: exit 2
expect_fail unknown-flag 2 "--bogus" -- synth --bogus 1 --sims 1 --out-maps "$T/o.npy" --out-params "$T/o.txt"
expect_fail non-integer-flag 2 "--size" -- synth --sims 1 --size abc --out-maps "$T/o.npy" --out-params "$T/o.txt"
expect_fail missing-required-flag 2 "--out-params" -- synth --sims 1 --out-maps "$T/o.npy"
expect_fail zero-sims 2 "--sims" -- synth --sims 0 --out-maps "$T/o.npy" --out-params "$T/o.txt"
expect_fail grid-without-output 2 "--out-posterior" -- synth-loglike --maps "$T/x.npy" --params "$T/p.txt" --out "$T/o.npy" --grid 5
expect_fail positional-argument 2 "unexpected argument" -- synth-loglike stray --maps "$T/x.npy" --params "$T/p.txt" --out "$T/o.npy"

rm -rf "$T"
