"""Paired-decision PPO in the tiny world (`langchain_smartrag.training.tiny_world`), a few seeds, in seconds per run.

    python experiments/decision-drift/tiny_decisions.py [--known-copies 5] [--seeds 0 1] \
        [--set iterations=12 learning_rate=5e-4 ...: any other PPOConfig field]

Each closed-book fact is asked `--known-copies` times as often as each fact only the corpus holds: at 5, a search
pays for 1 question in 6, like the real data sets (where it paid for about 1 in 10), and the shared bias of the
decision gets pulled down much harder than the per-question part is pulled apart. Prints, per setting and seed,
the final P(search) on each kind of question (greedy reward over the 12 questions, each once) and the mean
P(search) per kind over the rollouts of each iteration.

The runs of docs/experiments.md compared decision-centering coefficients side by side (`--centering 0 0.5 1`, and
`--decision-kl-coef`): both PPOConfig fields were removed in the package cleanup, so this runs the plain paired
gradient only. Commit 7feee28 runs those settings: `python benchmarks/tiny_decisions.py --centering 0 0.5 1`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import yaml

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.training.ppo import train
from langchain_smartrag.training.ppo_config import PPOConfig
from langchain_smartrag.training.tiny_world import (
    KNOWN,
    UNKNOWN,
    build_world,
    world_config,
    world_scores,
    write_questions,
)

SET_HERE = {"output_dir", "data", "paired_decisions", "seed"}
"""PPOConfig fields the script sets itself (`--seeds` gives several)."""


def trace(run: Path) -> list[tuple[float, float]]:
    """Per iteration: mean P(search) of the rollouts' closed-book and corpus-only questions."""
    rows: dict[int, dict[bool, list[float]]] = {}
    for line in (run / "rollouts.jsonl").read_text().splitlines():
        episode = json.loads(line)
        if episode["search_probabilities"]:
            kind = episode["question"] in UNKNOWN
            rows.setdefault(episode["iteration"], {False: [], True: []})[kind].append(
                episode["search_probabilities"][0]
            )
    return [tuple(sum(v) / max(len(v), 1) for v in (rows[i][False], rows[i][True])) for i in sorted(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--known-copies", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="PPOConfig fields, each value read as YAML (the world's defaults otherwise)",
    )
    args = parser.parse_args()
    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    overrides: dict = {"iterations": 12}
    for pair in args.set:
        field, _, value = pair.partition("=")
        if field not in fields:
            parser.error(f"--set {pair}: PPOConfig has no field {field!r}")
        overrides[field] = yaml.safe_load(value)
    for field in SET_HERE & overrides.keys():
        parser.error(f"--{field.replace('_', '-')} is set by this script")
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp))
        questions = write_questions(Path(tmp) / "questions.jsonl", args.known_copies)
        print(
            f"{len(KNOWN) * args.known_copies} closed-book + {len(UNKNOWN)} corpus-only questions; "
            f"paired decisions; overrides {overrides}"
        )
        print("| seed | P(search) closed-book | P(search) corpus-only | reward | rollout P(search) by iteration |")
        print("|---|---|---|---|---|")
        for seed in args.seeds:
            run = Path(tmp) / f"run-{seed}"
            start = time.perf_counter()
            final = train(world_config(world, run, data=str(questions), paired_decisions=True, seed=seed, **overrides))
            reward, known, unknown = world_scores(world, SmartRAGPolicy.from_pretrained(final, autocast=False))
            curve = " ".join(f"{k:.2f}/{u:.2f}" for k, u in trace(run))
            print(
                f"| {seed} | {known:.3f} | {unknown:.3f} | {reward:.3f} | {curve} |  "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
