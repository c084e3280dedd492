#!/bin/bash
# What moves P(search) in PPO's first policy update on the embedded model? One value warm-up iteration from the
# shipped adapter (experiments/decision-drift/configs/smartrag_centered.yaml), then one more iteration per variant, each resumed from
# that same checkpoint (same rollouts, same questions), then every variant's mean P(search) per kind of question.
#   bash experiments/decision-drift/first_update.sh [OUT=runs/first-update]       (about 12 min per variant on 2 AVX2 cores, fp32)
set -euo pipefail
out=${1:-runs/first-update}
config=experiments/decision-drift/configs/smartrag_centered.yaml
shipped=langchain_smartrag/adapters/smartrag-smollm2-135m
mkdir -p "$out"
[ -d "$out/warm/checkpoint-1" ] || smartrag train ppo --config $config --iterations 1 --output-dir "$out/warm" --no-progress
variant() {  # name, flags
  [ -d "$out/$1/final" ] && return
  rm -rf "${out:?}/$1"
  cp -r "$out/warm" "$out/$1"
  smartrag train ppo --config $config --iterations 2 --output-dir "$out/$1" --resume --no-progress "${@:2}"
}
variant c09 --decision-centering 0.9
variant c09-head --decision-centering 0.9 --critic head
variant c09-decisions --decision-centering 0.9 --trained-tokens decisions
variant c09-text --decision-centering 0.9 --trained-tokens text
variant c10 --decision-centering 1.0
variant c09-lr5e-6 --decision-centering 0.9 --learning-rate 5e-6
python experiments/decision-drift/search_shift.py $shipped "$out"/{c09,c09-head,c09-decisions,c09-text,c10,c09-lr5e-6}/final \
  --output "$out/shift.json"
