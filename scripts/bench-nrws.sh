#!/usr/bin/env bash
# Side-by-side NRWS step costs of two helmholtz binaries on the 11-layer stack
# (docs/BENCHMARKS.md, "NRWS cost"): for each round and each binary in turn, the mean step of RWS
# and of NRWS with the Fisher factors refreshed every 1000, 10 and 1 steps.
#
#   scripts/bench-nrws.sh OLD_BINARY NEW_BINARY [ROUNDS]
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 OLD_BINARY NEW_BINARY [ROUNDS]" >&2
    exit 2
fi
old=$1
new=$2
rounds=${3:-3}
for binary in "$old" "$new"; do
    [[ -x $binary ]] || { echo "$binary: not an executable" >&2; exit 2; }
done
cd "$(dirname "$0")/.."
config=configs/mnist-nrws-stack.toml
mean() {
    "$@" 2>&1 | awk '/step \(mean\)/ { print $3 }'
}
for round in $(seq "$rounds"); do
    for binary in "$old" "$new"; do
        rws=$(mean "$binary" bench "$config" --batches 200)
        k1000=$(mean "$binary" bench "$config" --batches 1000 --set 'train.natural={ refresh_every = 1000 }')
        k10=$(mean "$binary" bench "$config" --batches 100 --set 'train.natural={ refresh_every = 10 }')
        k1=$(mean "$binary" bench "$config" --batches 30 --set 'train.natural={ refresh_every = 1 }')
        echo "round $round $binary: RWS $rws ms, k=1000 $k1000 ms, k=10 $k10 ms, k=1 $k1 ms"
    done
done
