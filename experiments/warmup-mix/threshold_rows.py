"""A policy's dev rows at chosen thresholds, read off its two forced runs (no model runs).

    python experiments/warmup-mix/threshold_rows.py experiments/warmup-mix/results/decisions3x/dev \
        [--name smartrag] [--thresholds 0.3 0.5]

`reproduce.py --only NAME --out DIR` leaves, per data set, one adapter's always-retrieve and no-retrieval runs;
with a retrieval quota of one and greedy decoding they give that policy at every threshold (`at_threshold`).
Choose the threshold on held-out train questions (`compare.py --validation ... --threshold T`), never on these.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: _shared.py

from _shared import DATA_SETS, result_path

from langchain_smartrag.training import at_threshold, means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a reproduce.py --out directory")
    parser.add_argument("--name", default="smartrag", choices=("sft", "smartrag"))
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5])
    args = parser.parse_args()
    print("| data set | n | threshold | EM | F1 | retrieval rate | reward |\n|---|---|---|---|---|---|---|")
    for variant in DATA_SETS:
        runs = {
            mode: result_path(Path(args.results), variant, args.name, mode)
            for mode in ("always-retrieve", "no-retrieval")
        }
        if not all(path.exists() for path in runs.values()):
            continue
        always, never = (json.loads(path.read_text()) for path in runs.values())
        for threshold in args.thresholds:
            m = means(at_threshold(always, never, threshold))
            print(
                f"| {variant} | {always['n']} | {threshold} | {100 * m['em']:.1f} | {100 * m['f1']:.1f} | "
                f"{m['retrieval_rate']:.2f} | {m['reward']:.3f} |"
            )


if __name__ == "__main__":
    main()
