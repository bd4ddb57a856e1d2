#!/usr/bin/env bash
# The NRWS comparison of docs/REPRODUCTION.md ("NRWS against the baselines users pick"): every
# arm is a protocol config of configs/compare/, every (arm, seed) a run directory under runs/.
# Each stage resumes where it stopped (an interrupted run from its last checkpoint) and reuses
# finished runs, so the script can be stopped with Ctrl-C and started again as often as needed.
#
#   scripts/nrws-comparison.sh [STAGE ...]      (default: every stage, in this order)
#
# Stages:
#   mnist      200-100-10 on binarized MNIST, the five protocols, 3 seeds, 30 epochs
#   controls   the mnist stage's two control arms: NRWS-Nadam and NBiHM-Adam without the natural
#              gradient (rws-nadam-b32, bihm-adam-b32), 3 seeds; its report shows all seven arms
#   stack      the 11-layer stack (batch 32, K = 10, k = 1000), the five protocols, 3 seeds, 10 epochs;
#              then BiHM-Adam for 21 epochs, about NBiHM-Adam's 10 epochs of training time
#              (runs/compare-stack-bihm21)
#   fashion    the mnist and controls stages on binarized Fashion-MNIST
#   long       on 200-100-10 for 200 epochs, final test NLL at K = 10^4: RWS-Adam, the best natural
#              variant of the mnist stage (NBiHM-Adam) and its control without the natural
#              gradient (BiHM-Adam at batch 32); test estimates after every 5th epoch
#   bihm12     the bihm README's 12-layer BiHM with Adam, all 100 epochs (no early stopping), final
#              K = 10^4; test estimates (K = 100) after every 5th epoch
#
# HELMHOLTZ names the binary (default: target/release/helmholtz, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${HELMHOLTZ:-target/release/helmholtz}
if [[ ! -x $bin ]]; then
    cargo build --release -p helmholtz-cli
fi
five=(rws-adam bihm-adam nrws-sgd nrws-nadam nbihm-adam)
seven=("${five[@]}" rws-nadam-b32 bihm-adam-b32)
protocols() {
    for name in "$@"; do
        printf -- '--protocol configs/compare/%s.toml ' "$name"
    done
}
stack=(--set 'model.hidden=[300, 200, 100, 75, 50, 35, 25, 20, 15, 10, 10]'
       --set train.batch_size=32 --set train.chunk_points=8)

stage() {
    case $1 in
        mnist)
            # One seed of every arm at a time, so that a short session already compares all arms.
            for seeds in 1 2 3; do
                "$bin" experiment nrws-vs-rws $(protocols "${five[@]}") --seeds $seeds --out runs/compare-mnist
            done ;;
        controls)
            for seeds in 1 2 3; do
                "$bin" experiment nrws-vs-rws $(protocols "${seven[@]}") --seeds $seeds --out runs/compare-mnist
            done ;;
        stack)
            for seeds in 1 2 3; do
                "$bin" experiment nrws-vs-rws $(protocols "${five[@]}") "${stack[@]}" --epochs 10 \
                    --seeds $seeds --out runs/compare-stack
            done
            "$bin" experiment nrws-vs-rws $(protocols bihm-adam) "${stack[@]}" --epochs 21 \
                --seeds 3 --out runs/compare-stack-bihm21 ;;
        fashion)
            for seeds in 1 2 3; do
                "$bin" experiment nrws-vs-rws $(protocols "${seven[@]}") --data fashion-mnist \
                    --seeds $seeds --out runs/compare-fashion
            done ;;
        long)
            # The BiHM protocols' early stopping (patience 10) would end them before 200
            # epochs; a patience past the run's length lets them run all 200.
            "$bin" experiment nrws-vs-rws $(protocols rws-adam nbihm-adam bihm-adam-b32) \
                --epochs 200 --test-every 5 --seeds 1 --set eval.final_k=10000 \
                --set nbihm-adam:eval.patience=1000 --set bihm-adam-b32:eval.patience=1000 \
                --out runs/compare-long ;;
        bihm12)
            # As in the long stage: at least 100 epochs, so a patience past the run's length
            # (the validation curve in metrics.jsonl shows where patience 10 would have stopped).
            "$bin" experiment nrws-vs-rws $(protocols bihm-stack12-adam) --k-eval 100 \
                --test-every 5 --seeds 1 --set eval.patience=1000 --out runs/compare-bihm12 ;;
        *)
            echo "unknown stage $1: give mnist, controls, stack, fashion, long or bihm12" >&2
            exit 2 ;;
    esac
}

if [[ $# -eq 0 ]]; then
    set -- mnist controls stack fashion long bihm12
fi
for s in "$@"; do
    stage "$s"
done
