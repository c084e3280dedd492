#!/bin/bash
# Does decision_kl_coef hold the decisions on the embedded model? One value warm-up iteration from the shipped adapter
# (experiments/decision-kl/configs/smartrag_decision_kl.yaml), then one policy update per coefficient, each resumed from that same
# checkpoint (same 32 questions played both ways); read each update's P(search) before -> after from the metrics
# and `python experiments/decision-drift/paired_rollouts.py OUT/wW`.
#   bash experiments/decision-kl/decision_kl_update.sh [OUT=runs/dkl-probe] [COEFFICIENTS="0 10 1000"]   (~10 min each, 2 AVX2 cores)
set -euo pipefail
out=${1:-runs/dkl-probe}
coefficients=${2:-0 10 1000}
config=experiments/decision-kl/configs/smartrag_decision_kl.yaml
export HF_HUB_OFFLINE=1
mkdir -p "$out"
[ -d "$out/warm/checkpoint-1" ] || smartrag train ppo --config $config --iterations 1 --output-dir "$out/warm" --no-progress
for w in $coefficients; do
  [ -d "$out/w$w/final" ] && continue
  rm -rf "${out:?}/w$w"
  cp -r "$out/warm" "$out/w$w"
  smartrag train ppo --config $config --iterations 2 --output-dir "$out/w$w" --resume --no-progress --decision-kl-coef "$w"
done
