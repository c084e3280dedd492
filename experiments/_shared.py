"""What scripts in more than one experiment folder use: helpers of their own, and the names of the shipped
benchmarks (`benchmarks/baselines.py`, `benchmarks/reproduce.py`) they build on.

Not a package (the folders' names have hyphens): a script under `experiments/<folder>/` puts `experiments/` on its
path, from wherever it is run, and imports from here; this module does the same for `benchmarks/`:

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _shared import ...
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root."""
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

from baselines import VARIANTS, slug
from reproduce import DATA_SETS, auc, result_path

from langchain_smartrag.training import dataset_path, load_qa

__all__ = [
    "DATA_SETS",
    "ROOT",
    "VARIANTS",
    "auc",
    "coverage_by_template",
    "forced_pairs",
    "logit",
    "mostly_covered_templates",
    "paired_episodes",
    "result_path",
    "slug",
]


def paired_episodes(run: str | Path) -> list[tuple[int, dict, dict]]:
    """A paired run's questions as (iteration, searched-first episode, answered-first episode), complete pairs only."""
    branches: dict[tuple[int, str], dict[bool, dict]] = defaultdict(dict)
    for line in (Path(run) / "rollouts.jsonl").read_text().splitlines():
        if line.strip():
            episode = json.loads(line)
            branches[episode["iteration"], episode["id"]].setdefault(episode["retrievals"] > 0, episode)
    return [
        (iteration, pair[True], pair[False])
        for (iteration, _), pair in branches.items()
        if len(pair) == 2 and pair[True]["search_probabilities"]
    ]


def forced_pairs(records: Path, variant: str, name: str = "smartrag") -> tuple[list[str], list[float], list[float]]:
    """One data set's two forced runs in a reproduction's results folder, paired by question: (questions, reward with
    the search forced, reward with the answer forced), the questions both runs hold, in the search run's order."""
    runs = {
        mode: {r["id"]: r for r in json.loads(result_path(records, variant, name, mode).read_text())["records"]}
        for mode in ("always-retrieve", "no-retrieval")
    }
    ids = [i for i in runs["always-retrieve"] if i in runs["no-retrieval"]]
    return (
        [runs["always-retrieve"][i]["question"] for i in ids],
        [runs["always-retrieve"][i]["reward"] for i in ids],
        [runs["no-retrieval"][i]["reward"] for i in ids],
    )


def logit(p: float) -> float:
    """log(p / (1 - p)), with p kept within [1e-6, 1 - 1e-6] so a saturated decision gives a finite number."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def coverage_by_template(split: str) -> dict[str, float]:
    """The share of a split's PopQA questions, per template (`prop`), whose subject the bundled corpus holds."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in load_qa(dataset_path("popqa", split)):
        counts[e.extra["prop"]][0] += bool(e.extra["subject_in_local_corpus"])
        counts[e.extra["prop"]][1] += 1
    return {prop: covered / n for prop, (covered, n) in counts.items()}


def mostly_covered_templates(min_coverage: float = 0.5) -> dict[str, float]:
    """The PopQA templates whose subjects the corpus holds for at least `min_coverage` of train questions, with
    that share."""
    return {prop: share for prop, share in coverage_by_template("train").items() if share >= min_coverage}
