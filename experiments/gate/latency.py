"""What the decision gate adds to a decision's latency: the probe search and the head (and, for a gate that reads
the reader, both drafts), on top of the decision pass.

    HF_HUB_OFFLINE=1 python experiments/gate/latency.py --gate runs/gate [--policy DIR] [--n 32] [--repeats 5]

Per question, one at a time (what one `graph.invoke` pays): the decision pass alone (`decide_batch` on one prompt)
against the decision pass plus the probe search and the gate's head; and whole episodes through the graph with
`decision="token"` against `decision="gate"`, and retrieve-then-read with the question (`rewrite_query=False`,
always searching). Best of `--repeats`, in one run, on HotpotQA dev questions.
"""

from __future__ import annotations

import argparse
import time

from langchain_smartrag import (
    ANSWER,
    BM25Retriever,
    DecisionGate,
    SmartRAGContext,
    SmartRAGPolicy,
    create_smartrag_graph,
)
from langchain_smartrag.gate import index_features, reader_features
from langchain_smartrag.training.data import dataset_path, load_qa, sample


def best(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gate", required=True, help="folder holding gate.json")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--policy", help="as SmartRAGPolicy.load reads it (default: the shipped embedded policy)")
    args = parser.parse_args()
    policy, retriever = SmartRAGPolicy.load(args.policy), BM25Retriever.bundled(k=4)
    policy.gate = DecisionGate.load(args.gate)
    questions = [e.question for e in sample(load_qa(dataset_path("hotpotqa", "dev")), args.n, seed=0)]
    prompts = [policy.prompt(q) for q in questions]

    def decide() -> None:
        for prompt in prompts:
            policy.decide_batch([prompt])

    def gated() -> None:
        for question, prompt in zip(questions, prompts, strict=True):
            decision = policy.decide_batch([prompt])[0]
            hits = retriever.invoke(question)
            reader = None
            if policy.gate.reads_reader:
                reader = reader_features(hits, *policy.generate_batch([prompt, policy.prompt(question, hits)], ANSWER))
            policy.gate.p_search(decision.hidden, decision.search_logit, index_features(question, hits), reader)

    decide()  # warm up
    token_s, gate_s = best(args.repeats, decide), best(args.repeats, gated)
    print(
        f"decision: {1000 * token_s / args.n:.1f} ms, with probe and gate {1000 * gate_s / args.n:.1f} ms "
        f"(+{100 * (gate_s / token_s - 1):.1f}%)"
    )
    graphs = {d: create_smartrag_graph(policy, retriever, decision=d) for d in ("token", "gate")}
    plain = SmartRAGContext(threshold=0.0, rewrite_query=False, decision="token")
    runs = {
        "token": (graphs["token"], None),
        "gate": (graphs["gate"], None),
        "retrieve-then-read": (graphs["token"], plain),
    }

    def episodes_of(graph, context) -> float:
        return best(
            max(1, args.repeats // 2), lambda: [graph.invoke({"question": q}, context=context) for q in questions]
        )

    episodes = {name: episodes_of(graph, context) for name, (graph, context) in runs.items()}
    print(
        "episode: "
        + ", ".join(f"{name} {1000 * seconds / args.n:.0f} ms" for name, seconds in episodes.items())
        + " (the gate's episodes search on other questions: their cost differs by what they do, not only by the gate)"
    )


if __name__ == "__main__":
    main()
