"""The paper's main table at small scale: fixed strategies, SFT only, and SmartRAG (SFT + PPO), one base model.

    python benchmarks/reproduce.py [--sft runs/sft-embedded/final] [--smartrag ADAPTER] [--n 300] [--out DIR]

Every row is the embedded SmolLM2-135M-Instruct with BM25 (k=4) over the bundled corpus, greedy, on **dev**
questions (never trained on; model selection used held-out train questions). The fixed strategies are the SFT
policy with its decision overridden (no-retrieval, always-retrieve-question, always-retrieve with its own
rewrite), so they differ from "SFT only" in the decision alone. SmartRAG is the shipped adapter by default.

With a retrieval quota of one and greedy decoding, a policy's episode at threshold t is its always-retrieve
episode when its first P(search) >= t and its no-retrieval episode otherwise. So the "SFT only" and "SmartRAG"
rows at t = 0.5 and the threshold sweep come from each policy's two forced runs; a real smartrag-mode run of
SmartRAG checks that (bf16 results shift a little with batch composition, so the two agree closely, not exactly).

One results JSON per (data set, policy, mode) under `--out` (a found file is reused if the same adapter wrote it on
the same questions: an interrupted run resumes, a new adapter's runs replace the old one's; an adapter no longer on
disk, such as an SFT adapter trained on another machine, still gives its table rows from its results),
then `sweep.png` and the table between the `reproduce` markers in docs/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import re
import warnings
from pathlib import Path
from typing import Any

from baselines import VARIANTS, slug

from langchain_smartrag import BM25Retriever, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.models import TRAINED_ADAPTER
from langchain_smartrag.training import at_threshold, dataset_path, evaluate, load_qa, means, sample

ROOT = Path(__file__).resolve().parent.parent
DATA_SETS = {**VARIANTS, "TriviaQA (transfer)": ("triviaqa", None)}
"""Table name: (data set, row filter). TriviaQA was never trained on, and the bundled corpus was not built for it."""
FORCED = {
    "sft": ("no-retrieval", "always-retrieve", "always-retrieve-question"),
    "smartrag": ("no-retrieval", "always-retrieve"),
}
THRESHOLDS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01]
ROWS = [  # table row: (policy, mode), a forced run or "derived" (the policy decides at threshold 0.5)
    ("no-retrieval", ("sft", "no-retrieval")),
    ("always-retrieve-question", ("sft", "always-retrieve-question")),
    ("always-retrieve (rewritten)", ("sft", "always-retrieve")),
    ("SFT only", ("sft", "derived")),
    ("SmartRAG (SFT + PPO)", ("smartrag", "derived")),
]


def result_path(out: Path, variant: str, name: str, mode: str) -> Path:
    """Where the results JSON of one (data set, policy, mode) run lives under `out`."""
    return out / f"{slug(variant)}--{name}--{mode}.json"


def fingerprint(adapter: Path) -> str:
    """The first 12 hex digits of the adapter weights' sha256: which adapter a result came from."""
    return hashlib.sha256((adapter / "adapter_model.safetensors").read_bytes()).hexdigest()[:12]


def decided(
    results: dict[tuple[str, str, str], dict[str, Any]], variant: str, name: str, threshold: float
) -> list[dict]:
    """`name`'s records on `variant` when it decides at `threshold`, read off its two forced runs."""
    return at_threshold(results[variant, name, "always-retrieve"], results[variant, name, "no-retrieval"], threshold)


def recorded(out: Path, name: str) -> str:
    """The adapter fingerprint `name`'s results under `out` were written with, where its adapter is not on disk:
    its table rows can still be read (not rerun) as long as every result came from that one adapter."""
    found = {json.loads(path.read_text())["config"].get("adapter_sha256") for path in out.glob(f"*--{name}--*.json")}
    if len(found) != 1:
        raise SystemExit(
            f"--{name}: no adapter there and no results of one adapter in {out} "
            "(train it with benchmarks/train_embedded.sh)"
        )
    return found.pop()


def measured(results: dict[tuple[str, str, str], dict[str, Any]]) -> str:
    """When and on what the results were measured, e.g. "2026-11-25, x86_64 CPU" (a span if they differ)."""
    dates = sorted({r["config"].get("date", "an unrecorded date") for r in results.values()})
    machines = ", ".join(sorted({r["config"].get("machine", "an unrecorded") for r in results.values()}))
    return f"{dates[0]}{' to ' + dates[-1] if len(dates) > 1 else ''}, {machines} CPU"


def run_all(
    adapters: dict[str, Path], hashes: dict[str, str], variants: list[str], n: int, out: Path, check: bool
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every (data set, policy, mode) run of the policies in `adapters` on `variants`, loading each policy once
    and only if one of its runs is missing: a found result is kept if the same adapter (`hashes`) wrote it on
    the same questions."""
    retriever = BM25Retriever.bundled(k=4)
    policies: dict[str, SmartRAGPolicy] = {}
    jobs = [(variant, name, mode) for variant in variants for name, modes in FORCED.items() for mode in modes]
    jobs += [(variant, "smartrag", "smartrag") for variant in variants] if check else []
    jobs = [job for job in jobs if job[1] in adapters]
    results = {}
    for variant, name, mode in jobs:
        path = result_path(out, variant, name, mode)
        data, keep = DATA_SETS[variant]
        examples = sample([e for e in load_qa(dataset_path(data, "dev")) if keep is None or keep(e)], n, seed=0)
        found = json.loads(path.read_text()) if path.exists() else None
        if (
            found is None
            or found["config"].get("adapter_sha256") != hashes[name]
            or [r["id"] for r in found["records"]] != [e.id for e in examples]
        ):
            if not (adapters[name] / "adapter_model.safetensors").exists():
                raise SystemExit(f"--{name} {adapters[name]}: no adapter there, and {path.name} needs a run")
            if name not in policies:
                policies[name] = SmartRAGPolicy.from_pretrained(adapters[name], merge=True)
            found = evaluate(
                create_smartrag_graph(policies[name], retriever),
                examples,
                mode=mode,
                config={
                    "data": f"{data}/dev",
                    "variant": variant,
                    "k": 4,
                    "policy": name,
                    "adapter": str(adapters[name]),
                    "adapter_sha256": hashes[name],
                    "date": datetime.date.today().isoformat(),
                    "machine": platform.machine(),
                },
            )
            path.write_text(json.dumps(found, indent=1, ensure_ascii=False))
        results[variant, name, mode] = found
        print(f"{variant:28s} {name:9s} {mode:25s} reward {found['reward']:.3f}", flush=True)
    return results


def table(results: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
    """The paper-shaped table (`ROWS` per data set), the best reward of each data set in bold."""
    lines = ["| data set | n | row | EM | F1 | retrieval rate | reward |", "|---|---|---|---|---|---|---|"]
    for variant in DATA_SETS:
        cells = []
        for row, (name, mode) in ROWS:
            if mode == "derived":
                chosen = decided(results, variant, name, 0.5)
                cells.append((row, len(chosen), means(chosen)))
            else:
                r = results[variant, name, mode]
                cells.append((row, r["n"], r))
        best = max(c[2]["reward"] for c in cells)
        for row, n, m in cells:
            reward = f"**{m['reward']:.3f}**" if m["reward"] == best else f"{m['reward']:.3f}"
            lines.append(
                f"| {variant} | {n} | {row} | {100 * m['em']:.1f} | {100 * m['f1']:.1f} | "
                f"{m['retrieval_rate']:.2f} | {reward} |"
            )
    return lines


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties half: how well P(search) ranks where a search pays."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


DECISION_NOTE = (
    'Does the decision know *when* to search? Per data set and policy: the mean P(search), its AUC for "the search '
    'episode scored higher than the no-search one" (questions where the two tie are left out; 0.5 = chance), and '
    "the reward of an oracle that takes the better of the two episodes per question: the most any decision could "
    "get out of these weights."
)


def decision_table(results: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
    """Per data set and policy, does P(search) know *when* a search pays? (`DECISION_NOTE`)."""
    lines = [
        (
            '| data set | policy | mean P(search) | AUC: P(search) vs "search paid" | '
            "questions where search paid / hurt | reward at 0.5 | oracle decision's reward |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for variant in DATA_SETS:
        for name, label in (("sft", "SFT only"), ("smartrag", "SmartRAG")):
            always, never = (
                results[variant, name, "always-retrieve"]["records"],
                results[variant, name, "no-retrieval"]["records"],
            )
            pairs = [
                (a["search_probabilities"][0], a["reward"] > b["reward"])
                for a, b in zip(always, never, strict=True)
                if a["reward"] != b["reward"]
            ]
            score = auc([p for p, _ in pairs], [y for _, y in pairs])
            paid = sum(y for _, y in pairs)
            oracle = sum(max(a["reward"], b["reward"]) for a, b in zip(always, never, strict=True)) / len(always)
            at_half = means(decided(results, variant, name, 0.5))
            mean_p = sum(a["search_probabilities"][0] for a in always) / len(always)
            lines.append(
                f"| {variant} | {label} | {mean_p:.2f} | {'-' if score is None else f'{score:.2f}'} | "
                f"{paid} / {len(pairs) - paid} | {at_half['reward']:.3f} | {oracle:.3f} |"
            )
    return lines


def checks(results: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
    """Derived vs real SmartRAG at 0.5, where the real run exists."""
    out = []
    for variant in DATA_SETS:
        real = results.get((variant, "smartrag", "smartrag"))
        if real is not None:
            derived = means(decided(results, variant, "smartrag", 0.5))
            out.append(
                f"{variant}: reward {derived['reward']:.3f} derived vs {real['reward']:.3f} real, retrieval rate "
                f"{derived['retrieval_rate']:.2f} vs {real['retrieval_rate']:.2f}"
            )
    return out


def plot_sweep(results: dict[tuple[str, str, str], dict[str, Any]], path: Path) -> None:
    """Per data set: reward against retrieval rate as the threshold moves, for SFT only and SmartRAG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(DATA_SETS), figsize=(3.4 * len(DATA_SETS), 3.4), sharey=False)
    for axis, variant in zip(axes, DATA_SETS, strict=True):
        for name, style in (("sft", "s--"), ("smartrag", "o-")):
            points = [means(decided(results, variant, name, t)) for t in THRESHOLDS]
            axis.plot(
                [p["retrieval_rate"] for p in points],
                [p["reward"] for p in points],
                style,
                label="SFT only" if name == "sft" else "SmartRAG",
                markersize=4,
            )
            at_half = points[THRESHOLDS.index(0.5)]
            axis.plot([at_half["retrieval_rate"]], [at_half["reward"]], "k*", markersize=9)
        axis.set_title(variant, fontsize=9)
        axis.set_xlabel("retrieval rate")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("reward (EM + F1 - 0.2 x retrievals)")
    axes[0].legend(fontsize=8)
    figure.suptitle("Threshold sweep 0 -> 1 (star: 0.5), dev, SmolLM2-135M + BM25", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sft", default="runs/sft-embedded/final", help="the SFT adapter (benchmarks/train_embedded.sh)"
    )
    parser.add_argument(
        "--smartrag", default=str(TRAINED_ADAPTER), help="the SmartRAG adapter (default: the shipped one)"
    )
    parser.add_argument("--n", type=int, default=300, help="questions per data set (a seeded sample of dev)")
    parser.add_argument("--out", default="benchmarks/results/reproduce")
    parser.add_argument("--no-check", action="store_true", help="skip the real smartrag-mode runs")
    parser.add_argument("--only", choices=sorted(FORCED), help="run one policy's evaluations only (no table)")
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=[slug(v) for v in DATA_SETS],
        help="run these data sets only (no table); several processes can share the work this way",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    adapters = {"sft": Path(args.sft), "smartrag": Path(args.smartrag)}
    adapters = {args.only: adapters[args.only]} if args.only else adapters
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    hashes = {
        name: fingerprint(adapter) if (adapter / "adapter_model.safetensors").exists() else recorded(out, name)
        for name, adapter in adapters.items()
    }
    variants = [v for v in DATA_SETS if args.datasets is None or slug(v) in args.datasets]
    results = run_all(adapters, hashes, variants, args.n, out, check=not args.no_check)
    if args.only or args.datasets:
        return
    plot_sweep(results, out / "sweep.png")
    text = "\n".join(
        [
            (
                f"Embedded SmolLM2-135M-Instruct + LoRA; BM25 (bm25s) over the bundled corpus, k=4; **dev** questions, "
                f"a seeded sample of {args.n} per data set (PopQA's subject-in-corpus subset has only "
                f"{results['PopQA (subject in corpus)', 'sft', 'no-retrieval']['n']}); greedy; retrieval quota 1; "
                f"threshold 0.5; reward = EM + F1 - 0.2 x retrievals (EM and F1 here in %, reward on the 0..2 scale; "
                f"best per data set in bold). SFT adapter {hashes['sft']}, SmartRAG adapter {hashes['smartrag']} "
                f"(sha256 prefixes). Measured {measured(results)}, "
                f"`python benchmarks/reproduce.py --n {args.n}`."
            ),
            "",
            *table(results),
            "",
            f"![threshold sweep](../{(out / 'sweep.png').relative_to(ROOT)})",
            "",
            DECISION_NOTE,
            "",
            *decision_table(results),
            "",
            "Derived vs real smartrag-mode runs of SmartRAG: " + ("; ".join(checks(results)) or "not run") + ".",
        ]
    )
    readme = (ROOT / "docs" / "results.md").read_text()
    readme, found = re.subn(
        r"(<!-- reproduce:start -->\n).*?(\n<!-- reproduce:end -->)",
        lambda m: m.group(1) + text + m.group(2),
        readme,
        flags=re.DOTALL,
    )
    if found:
        (ROOT / "docs" / "results.md").write_text(readme)
    print(text)


if __name__ == "__main__":
    main()
