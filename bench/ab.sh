#!/usr/bin/env bash
# Interleaved A/B of two bench_engine binaries: this VM's speed drifts by up to 1.5x within
# minutes (the host's neighbours), so compare binaries run alternately, best of each round.
#   bash bench/ab.sh OLD_BIN NEW_BIN [threads=2] [rounds=3]
# e.g.  git stash; make build/bench/bench_engine; cp build/bench/bench_engine /tmp/A
#       git stash pop; make build/bench/bench_engine; bash bench/ab.sh /tmp/A build/bench/bench_engine
set -eu
A=$1; B=$2; T=${3:-2}; R=${4:-3}
one() {   # one run: train maps/s, score evals/s, sample maps/s
    "$1" "$T" 64 30 1 | awk '/^train/{tr=$4} /^score/{sc=$9} /^sample/{sa=$6}
        END{printf "train %6.1f maps/s  score %6.1f evals/s  sample %6.1f maps/s\n", tr, sc, sa}'
}
for r in $(seq "$R"); do
    echo "round $r  A: $(one "$A")"
    echo "round $r  B: $(one "$B")"
done
