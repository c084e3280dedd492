"""Baselines of the embedded model as it is (no SmartRAG training): every mode on PopQA, AmbigNQ and HotpotQA dev.

    python benchmarks/baselines.py [--n 200]

Writes one results JSON per (data set, mode) under benchmarks/results/baselines/ (a run that finds its file
skips it, so an interrupted run resumes), a threshold sweep plot, and the table between the `baselines`
markers in docs/results.md. The sweep needs no extra model calls: with a quota of one retrieval, the episode at
threshold t is the always-retrieve episode when the first P(search) >= t and the no-retrieval one otherwise
(greedy decoding; the real smartrag run at 0.5 checks this).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import warnings
from pathlib import Path

from langchain_smartrag import BM25Retriever, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.training import MODES, at_threshold, dataset_path, evaluate, load_qa, means, sample

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "baselines"
VARIANTS = {  # name: (data set, row filter)
    "PopQA (subject in corpus)": ("popqa", lambda e: e.extra.get("subject_in_local_corpus")),
    "PopQA (all)": ("popqa", None),
    "AmbigNQ": ("ambignq", None),
    "HotpotQA": ("hotpotqa", None),
}
THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    OUT.mkdir(parents=True, exist_ok=True)
    policy = SmartRAGPolicy.embedded(trained=False)
    graph = create_smartrag_graph(policy, BM25Retriever.bundled(k=4))

    results: dict[tuple[str, str], dict] = {}
    for variant, (name, keep) in VARIANTS.items():
        examples = load_qa(dataset_path(name, "dev"))
        examples = sample([e for e in examples if keep is None or keep(e)], args.n, seed=0)
        for mode in MODES:
            path = OUT / f"{slug(variant)}--{mode}.json"
            if not path.exists():
                run = evaluate(
                    graph,
                    examples,
                    mode=mode,
                    config={
                        "data": f"{name}/dev",
                        "variant": variant,
                        "k": 4,
                        "policy": "embedded SmolLM2-135M-Instruct",
                    },
                )
                path.write_text(json.dumps(run, indent=1, ensure_ascii=False))
            results[variant, mode] = json.loads(path.read_text())
            print(f"{variant:28s} {mode:26s} EM {results[variant, mode]['em']:.3f}", flush=True)

    rows = [
        "| data set | n | mode | EM | F1 | retrieval rate | reward | hit | format errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (variant, mode), r in results.items():
        hit = "-" if r["hit"] is None else f"{r['hit']:.2f}"
        rows.append(
            f"| {variant} | {r['n']} | {mode} | {100 * r['em']:.1f} | {100 * r['f1']:.1f} | "
            f"{r['retrieval_rate']:.2f} | {r['reward']:.3f} | {hit} | {r['format_error_rate']:.2f} |"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    checks = []
    for variant in VARIANTS:
        points = [
            means(at_threshold(results[variant, "always-retrieve"], results[variant, "no-retrieval"], t))
            for t in THRESHOLDS
        ]
        axis.plot([p["retrieval_rate"] for p in points], [100 * p["em"] for p in points], marker="o", label=variant)
        derived = points[THRESHOLDS.index(0.5)]["f1"]
        checks.append(f"{variant}: derived {100 * derived:.2f} vs run {100 * results[variant, 'smartrag']['f1']:.2f}")
    axis.set_xlabel("retrieval rate (retrievals per question)")
    axis.set_ylabel("EM (%)")
    axis.set_title(f"Threshold sweep {THRESHOLDS[0]}..{THRESHOLDS[-1]}, untrained SmolLM2-135M")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(ROOT / "benchmarks" / "results" / "threshold_sweep.png", dpi=110)

    today = datetime.date.today().isoformat()
    table = "\n".join(
        [
            (
                f"Embedded SmolLM2-135M-Instruct, **untrained** for SmartRAG; BM25 (bm25s) over the bundled corpus, "
                f"k=4; dev questions, a seeded sample of up to {args.n} per data set (PopQA's subject-in-corpus subset "
                f"has {results['PopQA (subject in corpus)', 'smartrag']['n']} dev questions); greedy; threshold 0.5; "
                f"reward = EM + F1 - 0.2 x retrievals (EM and F1 here in %, reward on the 0..2 scale); hit = a gold "
                f"answer in the retrieved text, over the questions that retrieved. {today}, {platform.machine()} CPU, "
                f"`python benchmarks/baselines.py --n {args.n}`."
            ),
            "",
            *rows,
            "",
            "![threshold sweep](../benchmarks/results/threshold_sweep.png)",
            "",
            "Sweep check, F1 at threshold 0.5 derived from the forced runs vs the real smartrag run: "
            + "; ".join(checks)
            + ".",
        ]
    )
    readme = (ROOT / "docs" / "results.md").read_text()
    readme = re.sub(
        r"(<!-- baselines:start -->\n).*?(\n<!-- baselines:end -->)",
        lambda m: m.group(1) + table + m.group(2),
        readme,
        flags=re.DOTALL,
    )
    (ROOT / "docs" / "results.md").write_text(readme)
    print(table)


if __name__ == "__main__":
    main()
