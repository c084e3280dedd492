"""A small world where the right decision depends on the question, built locally in seconds.

Closed-book facts (`KNOWN`: a search only costs) and facts only the corpus holds (`UNKNOWN`: a search pays),
with a tiny model fine-tuned to answer both right but to decide by a coin flip, so the decision is left to
PPO. The tests check that PPO learns *when* to search here; `experiments/decision-drift/tiny_decisions.py` runs PPO
settings side by side, also with the closed-book facts repeated so that a search pays for few questions, as in the
real data sets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_smartrag import ANSWER, SEARCH, BM25Retriever, SmartRAGPolicy, create_smartrag_graph

from .data import load_qa
from .evaluate import evaluate
from .ppo_config import PPOConfig
from .sft import SFTConfig
from .sft import train as sft_train
from .tiny import tiny_model, tiny_tokenizer

KNOWN = {
    "What color is the apple?": "red",
    "What color is the sky?": "blue",
    "What color is the grass?": "green",
    "What color is the snow?": "white",
    "What color is the coal?": "black",
    "What color is the sun?": "yellow",
}
"""Facts the SFT model answers closed-book: a search only costs."""
UNKNOWN = {
    "What is the code of zork?": "seven",
    "What is the code of blip?": "three",
    "What is the code of quux?": "nine",
    "What is the code of frob?": "four",
    "What is the code of grue?": "eight",
    "What is the code of snark?": "five",
}
"""Facts it does not know ("unknown" closed-book), which the corpus holds: a search pays."""
ALPHA = 0.5
"""The world's cost per retrieval."""


def write_questions(path: str | Path, known_copies: int = 1) -> Path:
    """The world's questions as QA JSONL, each closed-book fact `known_copies` times (ids "i", then "i.c")."""
    rows: list[dict[str, Any]] = [
        {"id": str(i) if copy == 0 else f"{i}.{copy}", "question": q, "answers": [a]}
        for copy in range(known_copies)
        for i, (q, a) in enumerate(KNOWN.items())
    ]
    rows += [{"id": str(len(KNOWN) + i), "question": q, "answers": [a]} for i, (q, a) in enumerate(UNKNOWN.items())]
    rows.sort(key=lambda row: float(row["id"]))
    path = Path(path)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def build_world(root: str | Path) -> Path:
    """Write the corpus, the questions (`qa.jsonl`), a tiny base model and its SFT (`sft/final`) under `root`.

    SFT sees both actions for every question (P(search) ~ 0.5 everywhere), the closed-book answer
    ("unknown" for UNKNOWN) and the answer after the observation.
    """
    root = Path(root)
    corpus = [
        {"id": f"c{i}", "title": q.split()[-1][:-1], "text": f"The code of {q.split()[-1][:-1]} is {a}."}
        for i, (q, a) in enumerate(UNKNOWN.items())
    ]
    (root / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus))
    write_questions(root / "qa.jsonl")
    tokenizer = tiny_tokenizer([row["text"] for row in corpus] + [*KNOWN, *UNKNOWN, *KNOWN.values(), "unknown"])
    tiny_model(tokenizer, hidden_size=64).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    policy = SmartRAGPolicy.from_pretrained(root / "base", autocast=False)
    retriever = BM25Retriever.from_jsonl(root / "corpus.jsonl", k=2)
    rows = []
    for question, answer in {**KNOWN, **UNKNOWN}.items():
        prompt = policy.prompt(question)
        closed_book = answer if question in KNOWN else "unknown"
        rows += [
            {"prompt": prompt, "completion": f"{ANSWER} {closed_book}"},
            {"prompt": prompt, "completion": f"{SEARCH} {question}"},
        ]
        if question in UNKNOWN:
            rows.append(
                {"prompt": policy.prompt(question, retriever.invoke(question)), "completion": f"{ANSWER} {answer}"}
            )
    (root / "warmup.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    sft_train(
        SFTConfig(
            data=str(root / "warmup.jsonl"),
            output_dir=str(root / "sft"),
            base_model=str(root / "base"),
            lora=False,
            learning_rate=3e-3,
            batch_size=len(rows),
            max_steps=200,
            warmup_steps=5,
            bf16=False,
            save_every=1000,
            log_every=50,
        )
    )
    return root


def world_config(world: str | Path, output_dir: str | Path, **overrides: Any) -> PPOConfig:
    """PPO in the world from its SFT model: 48 episodes an iteration, a fresh LoRA, alpha 0.5, no dev set."""
    world = Path(world)
    values = {
        "output_dir": str(output_dir),
        "base_model": str(world / "sft" / "final"),
        "data": str(world / "qa.jsonl"),
        "corpus": str(world / "corpus.jsonl"),
        "k": 2,
        "dev_dataset": None,
        "iterations": 20,
        "episodes_per_iteration": 48,
        "rollout_batch_size": 48,
        "minibatch_episodes": 16,
        "learning_rate": 2e-3,
        "lora_r": 8,
        "alpha": ALPHA,
        "bf16": False,
        "init_kl_coef": 0.01,
        "progress": False,
    }
    return PPOConfig(**{**values, **overrides})


def world_scores(world: str | Path, policy: SmartRAGPolicy) -> tuple[float, float, float]:
    """Greedy smartrag episodes of each world question once: (mean reward, mean P(search) on KNOWN, on UNKNOWN)."""
    world = Path(world)
    graph = create_smartrag_graph(policy, BM25Retriever.from_jsonl(world / "corpus.jsonl", k=2))
    results = evaluate(graph, load_qa(world / "qa.jsonl"), progress=False, alpha=ALPHA)
    p_search = policy.search_probability_batch([policy.prompt(q) for q in [*KNOWN, *UNKNOWN]])
    return results["reward"], sum(p_search[: len(KNOWN)]) / len(KNOWN), sum(p_search[len(KNOWN) :]) / len(UNKNOWN)
