#!/usr/bin/env bash
# Interleaved A/B of two bench_engine binaries: this VM's speed drifts by up to 1.5x within
# minutes (the host's neighbours), so compare binaries run alternately; the medians are the
# figures to compare. (For small differences use bench/bench_variants.c: one process.)
#   bash bench/ab.sh OLD_BIN NEW_BIN [threads=2] [rounds=6] [train_steps=6]
# e.g.  git stash; make build/bench/bench_engine; cp build/bench/bench_engine /tmp/A
#       git stash pop; make build/bench/bench_engine; bash bench/ab.sh /tmp/A build/bench/bench_engine
set -eu
A=$1; B=$2; T=${3:-2}; R=${4:-6}; S=${5:-6}
declare -A TR SC
for r in $(seq "$R"); do
    for bin in "$A" "$B"; do
        out=$("$bin" "$T" 64 30 "$S")
        tr=$(awk '/^train/{print $4}' <<<"$out"); sc=$(awk '/^score/{print $9}' <<<"$out")
        echo "round $r  $bin: train $tr maps/s  score $sc evals/s"
        TR[$bin]="${TR[$bin]:-} $tr"; SC[$bin]="${SC[$bin]:-} $sc"
    done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
for bin in "$A" "$B"; do
    echo "median  $bin: train $(median <<<"${TR[$bin]}") maps/s  score $(median <<<"${SC[$bin]}") evals/s"
done
