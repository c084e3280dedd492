"""The rules a learned preview decision must beat, on the reproduce table's dev rows (issue #11).

    python experiments/preview/preview_rules.py [--results benchmarks/results/reproduce] [--train 300]

Both rules see what a preview shows (the question's top BM25 hits, k=4, over the bundled corpus) and pick, per
question, between the SFT policy's two forced runs that the results table already holds: answer closed-book
(`no-retrieval`) or retrieve with the question and answer (`always-retrieve-question`). Each pays one preview
(ALPHA_PREVIEW) on top of the usual alpha per retrieval. No model runs: the episodes are the recorded ones.

- title rule: search when a preview title shares a content word with the question (no learning);
- score rule: search when the top hit's BM25 score is at least a threshold tuned on TRAIN questions of PopQA,
  AmbigNQ and HotpotQA: the one that best separates questions whose top hits hold a gold answer from the rest
  (Youden's J: hit rate above it minus miss rate above it; plain accuracy would pick "never", as hits are rare).
  No dev question and no model run tunes it.

Prints one table (reward per row, and each rule's gap to the best fixed strategy and to the shipped SmartRAG
adapter, with paired standard errors) and writes it with the per-row numbers to
experiments/preview/results/preview_rules/.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: _shared.py

from _shared import DATA_SETS, ROOT, slug
from bm25s.stopwords import STOPWORDS_EN

from langchain_smartrag import BM25Retriever
from langchain_smartrag.protocol import preview_titles
from langchain_smartrag.scoring import ALPHA_PREVIEW, has_answer
from langchain_smartrag.training import dataset_path, load_qa, sample

PREVIEW = 3
"""Titles a preview shows (the rules read the same view the learned decision would)."""
STOP = set(STOPWORDS_EN) | {"what", "who", "which", "when", "where", "whom", "whose", "how", "many", "much"}


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if w not in STOP and len(w) > 2}


def title_rule(question: str, documents: list) -> bool:
    """Search when some preview title shares a content word with the question."""
    words = content_words(question)
    return any(words & content_words(title) for title in preview_titles(documents, PREVIEW))


def top_score(documents: list) -> float:
    return max((d.metadata.get("score", 0.0) for d in documents), default=0.0)


def tune_score_threshold(retriever: BM25Retriever, n: int) -> tuple[float, float]:
    """The top-score threshold that best separates hits (a gold answer in the top-k text) on train questions, and
    its Youden's J (true positive rate - false positive rate)."""
    scored = []
    for name in ("popqa", "ambignq", "hotpotqa"):
        for e in sample(load_qa(dataset_path(name, "train")), n, seed=1):
            documents = retriever.invoke(e.question)
            scored.append((top_score(documents), has_answer(" ".join(d.page_content for d in documents), e.answers)))
    hits = sum(hit for _, hit in scored)
    misses = len(scored) - hits
    youden = {
        t: sum(s >= t for s, hit in scored if hit) / hits - sum(s >= t for s, hit in scored if not hit) / misses
        for t in sorted({s for s, _ in scored})
    }
    best = max(youden, key=youden.get)
    return best, youden[best]


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """P(a random positive scores above a random negative), ties half."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    return sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a - b and its standard error."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return statistics.fmean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(ROOT / "benchmarks/results/reproduce"))
    parser.add_argument("--train", type=int, default=300, help="train questions per data set to tune the score rule")
    parser.add_argument("--out", default=str(ROOT / "experiments/preview/results/preview_rules"))
    args = parser.parse_args()
    retriever = BM25Retriever.bundled(k=4)
    threshold, train_accuracy = tune_score_threshold(retriever, args.train)
    print(f"score rule: top BM25 score >= {threshold:.2f} (Youden's J on train {train_accuracy:.3f})")
    results = Path(args.results)

    def records(variant: str, name: str, mode: str) -> list[dict]:
        return json.loads((results / f"{slug(variant)}--{name}--{mode}.json").read_text())["records"]

    lines = [
        (
            "| data set | n | no-retrieval | always-retrieve-question | always-retrieve | SmartRAG (shipped) | "
            "title rule | score rule | title - best fixed (SE) | score - best fixed (SE) | score - SmartRAG (SE) | "
            "AUC top score vs search paid |"
        ),
        "|---" * 12 + "|",
    ]
    rows = {}
    for variant in DATA_SETS:
        never, always = records(variant, "sft", "no-retrieval"), records(variant, "sft", "always-retrieve-question")
        rewritten, shipped = records(variant, "sft", "always-retrieve"), records(variant, "smartrag", "smartrag")
        assert [r["id"] for r in never] == [r["id"] for r in always] == [r["id"] for r in shipped]
        hits = [retriever.invoke(r["question"]) for r in never]
        rules = {
            "title": [title_rule(r["question"], d) for r, d in zip(never, hits, strict=True)],
            "score": [top_score(d) >= threshold for d in hits],
        }
        reward = {
            "no-retrieval": [r["reward"] for r in never],
            "always-retrieve-question": [r["reward"] for r in always],
            "always-retrieve": [r["reward"] for r in rewritten],
            "smartrag": [r["reward"] for r in shipped],
        }
        for rule, searches in rules.items():
            reward[rule] = [
                (a["reward"] if s else b["reward"]) - ALPHA_PREVIEW
                for a, b, s in zip(always, never, searches, strict=True)
            ]
        fixed = max(
            ("no-retrieval", "always-retrieve-question", "always-retrieve"), key=lambda k: statistics.fmean(reward[k])
        )
        paid = [a["reward"] > b["reward"] for a, b in zip(always, never, strict=True)]
        tied = [a["reward"] == b["reward"] for a, b in zip(always, never, strict=True)]
        area = auc(
            [top_score(d) for d, t in zip(hits, tied, strict=True) if not t],
            [p for p, t in zip(paid, tied, strict=True) if not t],
        )
        gaps = {
            f"{rule}-{other}": paired(reward[rule], reward[other]) for rule in rules for other in (fixed, "smartrag")
        }
        rows[variant] = {
            "n": len(never),
            "means": {k: statistics.fmean(v) for k, v in reward.items()},
            "retrieval_rate": {k: statistics.fmean(v) for k, v in rules.items()},
            "best_fixed": fixed,
            "gaps": gaps,
            "auc_top_score": area,
        }
        m = rows[variant]["means"]
        fmt = lambda g: f"{g[0]:+.3f} ({g[1]:.3f})"
        lines.append(
            f"| {variant} | {len(never)} | {m['no-retrieval']:.3f} | {m['always-retrieve-question']:.3f} | "
            f"{m['always-retrieve']:.3f} | {m['smartrag']:.3f} | {m['title']:.3f} | {m['score']:.3f} | "
            f"{fmt(gaps['title-' + fixed])} | {fmt(gaps['score-' + fixed])} | {fmt(gaps['score-smartrag'])} | "
            f"{'-' if area is None else f'{area:.2f}'} |"
        )
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rules.json").write_text(
        json.dumps(
            {
                "score_threshold": threshold,
                "train_youden_j": train_accuracy,
                "preview": PREVIEW,
                "alpha_preview": ALPHA_PREVIEW,
                "rows": rows,
            },
            indent=1,
        )
    )
    (out / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
