#!/usr/bin/env bash
# Side-by-side training cost of the arms of the NRWS comparison (docs/REPRODUCTION.md, "NRWS
# against the baselines users pick"): in each round every protocol config in turn is benched
# (`helmholtz bench`) for one epoch's steps, the Fisher refreshes of that epoch included; the
# epoch time is the mean step times the steps per epoch. Prints every round, then the median
# epoch time of each config, its ratio to the first config's, and the `--epoch-seconds` option that
# puts the comparison's time axis on these times.
#
#   scripts/bench-compare.sh [ROUNDS] [--set KEY=VALUE ...] [CONFIG ...]
#
# Default: 3 rounds of the five configs/compare arms of the 200-100-10 comparison. --set changes
# every config, as in the comparison (e.g. the 11-layer stack of scripts/nrws-comparison.sh).
# HELMHOLTZ names the binary (default: target/release/helmholtz, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${HELMHOLTZ:-target/release/helmholtz}
if [[ ! -x $bin ]]; then
    cargo build --release -p helmholtz-cli
fi
rounds=3
sets=()
configs=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --set)
            [[ $# -ge 2 ]] || { echo "--set needs KEY=VALUE" >&2; exit 2; }
            sets+=(--set "$2")
            shift 2 ;;
        *)
            if [[ $1 =~ ^[0-9]+$ && ${#configs[@]} -eq 0 ]]; then
                rounds=$1
            elif [[ -f $1 ]]; then
                configs+=("$1")
            else
                echo "$1: neither a number of rounds nor a config file" >&2
                exit 2
            fi
            shift ;;
    esac
done
if [[ ${#configs[@]} -eq 0 ]]; then
    configs=(configs/compare/{rws-adam,bihm-adam,nrws-sgd,nrws-nadam,nbihm-adam}.toml)
fi

# Steps per epoch of each config: its training points over its batch size.
steps=()
for c in "${configs[@]}"; do
    header=$("$bin" bench "$c" "${sets[@]}" --batches 1 2>&1) || { echo "$header" >&2; exit 1; }
    batch=$(sed -n 's/.* batch \([0-9]*\),.*/\1/p' <<<"$header")
    points=$(sed -n 's/^projected epoch:.*(\([0-9]*\) points)/\1/p' <<<"$header")
    steps+=($(( (points + batch - 1) / batch )))
done

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
    for i in "${!configs[@]}"; do
        c=${configs[$i]}
        mean=$("$bin" bench "$c" "${sets[@]}" --batches "${steps[$i]}" 2>&1 \
            | awk '/^step \(mean\)/ { print $3 }')
        epoch=$(awk -v m="$mean" -v n="${steps[$i]}" 'BEGIN { printf "%.2f", m * n / 1000 }')
        echo "round $round $c: ${steps[$i]} steps, mean step $mean ms, epoch $epoch s"
        echo "$i $epoch" >>"$results"
    done
done
echo
echo "median epoch (s) over $rounds rounds, and its ratio to ${configs[0]}:"
base=""
given=()
for i in "${!configs[@]}"; do
    median=$(awk -v i="$i" '$1 == i { print $2 }' "$results" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    base=${base:-$median}
    ratio=$(awk -v a="$median" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
    echo "  ${configs[$i]}: $median s (${ratio}x)"
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "${configs[$i]}" | head -1)
    given+=("$name=$median")
done
echo "for the comparison's time axis: --epoch-seconds $(IFS=,; echo "${given[*]}")"
