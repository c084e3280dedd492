"""A preview-trained policy against every baseline on the reproduce table's dev rows, on the same questions.

    python experiments/preview/preview_policy.py --policy runs/preview/sft/final [--n 100]

Runs the policy in smartrag mode (its own preview setting, threshold 0.5, greedy) on the first `--n` questions of
each row's seeded dev sample, the questions the recorded baselines of `benchmarks/results/reproduce/` start with,
and compares it per question (paired mean and standard error) with: no-retrieval, always-retrieve-question,
always-retrieve, the shipped question-only adapter, and the title and score rules of `preview_rules.py` (threshold
from its results). AUC: the policy's first P(search) against "search paid" read off the SFT policy's two forced
episodes (the recorded ones; the policy's own forced runs would cost two more runs per row).
Writes experiments/preview/results/preview_policy/<row>.json (its run) and table.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: _shared.py

from _shared import DATA_SETS, ROOT, slug
from preview_rules import auc, paired, title_rule, top_score

from langchain_smartrag import BM25Retriever, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.scoring import ALPHA_PREVIEW
from langchain_smartrag.training import dataset_path, evaluate, load_qa, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--results", default=str(ROOT / "benchmarks/results/reproduce"))
    parser.add_argument("--rules", default=str(ROOT / "experiments/preview/results/preview_rules/rules.json"))
    parser.add_argument("--out", default=str(ROOT / "experiments/preview/results/preview_policy"))
    args = parser.parse_args()
    threshold = json.loads(Path(args.rules).read_text())["score_threshold"]
    retriever = BM25Retriever.bundled(k=4)
    policy = SmartRAGPolicy.from_pretrained(args.policy, merge=True)
    graph = create_smartrag_graph(policy, retriever)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def records(variant: str, name: str, mode: str) -> list[dict]:
        return json.loads((Path(args.results) / f"{slug(variant)}--{name}--{mode}.json").read_text())["records"][
            : args.n
        ]

    header = (
        "| data set | n | preview policy | its retrieval rate | best baseline | policy - best (SE) | "
        "policy - shipped (SE) | policy EM / always-retrieve-question EM | AUC P(search) vs search paid |"
    )
    lines = [header, "|---" * 9 + "|"]
    for variant, (data, keep) in DATA_SETS.items():
        examples = sample([e for e in load_qa(dataset_path(data, "dev")) if keep is None or keep(e)], args.n, seed=0)
        never, always = records(variant, "sft", "no-retrieval"), records(variant, "sft", "always-retrieve-question")
        rewritten, shipped = records(variant, "sft", "always-retrieve"), records(variant, "smartrag", "smartrag")
        assert [e.id for e in examples] == [r["id"] for r in never]
        path = out / f"{slug(variant)}.json"
        if not path.exists():
            run = evaluate(
                graph,
                examples,
                mode="smartrag",
                config={"variant": variant, "policy": args.policy, "preview": policy.preview},
            )
            path.write_text(json.dumps(run, indent=1, ensure_ascii=False))
        run = json.loads(path.read_text())["records"]
        hits = [retriever.invoke(e.question) for e in examples]
        reward = {
            "no-retrieval": [r["reward"] for r in never],
            "always-retrieve-question": [r["reward"] for r in always],
            "always-retrieve": [r["reward"] for r in rewritten],
            "shipped SmartRAG": [r["reward"] for r in shipped],
            "title rule": [
                (a["reward"] if title_rule(e.question, d) else b["reward"]) - ALPHA_PREVIEW
                for a, b, e, d in zip(always, never, examples, hits, strict=True)
            ],
            "score rule": [
                (a["reward"] if top_score(d) >= threshold else b["reward"]) - ALPHA_PREVIEW
                for a, b, d in zip(always, never, hits, strict=True)
            ],
        }
        mine = [r["reward"] for r in run]
        best = max(reward, key=lambda k: statistics.fmean(reward[k]))
        gap, gap_se = paired(mine, reward[best])
        ship, ship_se = paired(mine, reward["shipped SmartRAG"])
        untied = [i for i, (a, b) in enumerate(zip(always, never, strict=True)) if a["reward"] != b["reward"]]
        area = auc(
            [run[i]["search_probabilities"][0] for i in untied],
            [always[i]["reward"] > never[i]["reward"] for i in untied],
        )
        em = statistics.fmean(r["em"] for r in run), statistics.fmean(r["em"] for r in always)
        lines.append(
            f"| {variant} | {len(run)} | {statistics.fmean(mine):.3f} | "
            f"{statistics.fmean(r['retrievals'] for r in run):.2f} | {best} {statistics.fmean(reward[best]):.3f} | "
            f"{gap:+.3f} ({gap_se:.3f}) | {ship:+.3f} ({ship_se:.3f}) | {em[0]:.3f} / {em[1]:.3f} | "
            f"{'-' if area is None else f'{area:.2f}'} |"
        )
        print(lines[-1], flush=True)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
