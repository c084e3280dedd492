"""Evaluation: run QA examples through the SmartRAG graph in one of four modes and score them.

Every mode is the same graph with different settings, and every answer goes through `scoring.py`:
  no-retrieval              the answer is forced (retrieval quota 0)
  always-retrieve-question  retrieve with the question itself, then answer (plain retrieve-then-read)
  always-retrieve           retrieve with the policy's rewritten query, then answer
  smartrag                  the policy decides: retrieve when P(search) >= threshold
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from langchain_smartrag.protocol import parse_action
from langchain_smartrag.scoring import ALPHA, ALPHA_PREVIEW, episode_reward, exact_match, f1_score, has_answer

from .data import QAExample

if TYPE_CHECKING:  # the policy and the graph's settings load torch: `smartrag eval --help` must not
    from langchain_core.runnables import Runnable

    from langchain_smartrag import SmartRAGContext, SmartRAGPolicy

MODES = ("smartrag", "no-retrieval", "always-retrieve", "always-retrieve-question")


def mode_context(
    mode: str, threshold: float | None = None, preview: int | None = None, decision: str | None = None
) -> SmartRAGContext:
    """The per-call graph settings that make a mode. Only `smartrag` decides, so only it may preview (`preview`
    None: the graph's own setting) and only it reads `decision` (gate or token; None: the graph's own) and `threshold`
    (None: the decider's own); the fixed strategies never pay for a preview, nor for a gate's probe."""
    from langchain_smartrag import SmartRAGContext

    contexts = {
        "smartrag": SmartRAGContext(threshold=threshold, preview=preview, decision=decision),  # type: ignore[arg-type]
        "no-retrieval": SmartRAGContext(max_retrievals=0, preview=0, decision="token"),
        "always-retrieve": SmartRAGContext(threshold=0.0, preview=0, decision="token"),
        "always-retrieve-question": SmartRAGContext(threshold=0.0, rewrite_query=False, preview=0, decision="token"),
    }
    if mode not in contexts:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    return contexts[mode]


def score_episode(
    example: QAExample,
    state: dict[str, Any] | BaseException,
    alpha: float = ALPHA,
    alpha_preview: float = ALPHA_PREVIEW,
) -> dict[str, Any]:
    """One question's record: what the graph did and how it scored (an exception scores as a format error)."""
    if isinstance(state, BaseException):
        state = {"answer": "", "well_formed": False, "retrievals": 0, "errors": [f"{type(state).__name__}: {state}"]}
    answer, retrievals, previews = state.get("answer", ""), state.get("retrievals", 0), state.get("previews", 0)
    documents = state.get("documents", [])
    return {
        "id": example.id,
        "question": example.question,
        "golds": example.answers,
        "answer": answer,
        "well_formed": state.get("well_formed", False),
        "queries": state.get("queries", []),
        "retrievals": retrievals,
        "previews": previews,
        "search_probabilities": state.get("search_probabilities", []),
        "hit": has_answer(" ".join(d.page_content for d in documents), example.answers) if retrievals else None,
        "em": exact_match(answer, example.answers),
        "f1": f1_score(answer, example.answers),
        "reward": episode_reward(
            answer,
            example.answers,
            retrievals,
            well_formed=state.get("well_formed", False),
            alpha=alpha,
            previews=previews,
            alpha_preview=alpha_preview,
        ),
        "errors": state.get("errors", []),
    }


def summarize(records: Sequence[dict[str, Any]], seconds: float, config: dict[str, Any]) -> dict[str, Any]:
    """Means over the records; `hit` is over the questions that retrieved (None if none did)."""
    n = len(records)
    hits = [r["hit"] for r in records if r["hit"] is not None]
    free = [r["free_action"] for r in records if "free_action" in r]
    return {
        "n": n,
        "em": sum(r["em"] for r in records) / n,
        "f1": sum(r["f1"] for r in records) / n,
        "reward": sum(r["reward"] for r in records) / n,
        "retrieval_rate": sum(r["retrievals"] for r in records) / n,
        "preview_rate": sum(r.get("previews", 0) for r in records) / n,
        "format_error_rate": sum(not r["well_formed"] for r in records) / n,
        "hit": sum(hits) / len(hits) if hits else None,
        "free_format_error_rate": free.count("invalid") / len(free) if free else None,
        "seconds": seconds,
        "questions_per_second": n / seconds if seconds else None,
        "seconds_per_question": seconds / n,
        "config": {"alpha": ALPHA, "alpha_preview": ALPHA_PREVIEW, **config},
        "records": list(records),
    }


def evaluate(
    graph: Runnable,
    examples: Sequence[QAExample],
    *,
    mode: str = "smartrag",
    threshold: float | None = None,
    batch_size: int = 32,
    progress: bool = True,
    config: dict[str, Any] | None = None,
    format_policy: SmartRAGPolicy | None = None,
    alpha: float = ALPHA,
    preview: int | None = None,
    alpha_preview: float = ALPHA_PREVIEW,
    decision: str | None = None,
) -> dict[str, Any]:
    """Answer every example through `graph` in `mode`, `batch_size` questions at a time, and score them.

    `preview` and `decision` (smartrag mode) override the graph's; each preview (or gate probe) is charged
    `alpha_preview`.

    With `format_policy`, each question's first turn is also generated with no forced action prefix and
    parsed: `free_format_error_rate` is how often the policy, left to itself, writes neither action.
    """
    context = mode_context(mode, threshold, preview, decision)
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tqdm(total=len(examples), desc=mode, file=sys.stderr, disable=not progress) as bar:
        for first in range(0, len(examples), batch_size):
            chunk = examples[first : first + batch_size]
            states = graph.batch(
                [{"question": e.question} for e in chunk],
                {"max_concurrency": batch_size},
                return_exceptions=True,
                context=context,
            )
            records.extend(score_episode(e, s, alpha, alpha_preview) for e, s in zip(chunk, states, strict=True))
            if format_policy is not None:
                free = format_policy.generate_batch([format_policy.prompt(e.question) for e in chunk])
                for record, generation in zip(records[-len(chunk) :], free, strict=True):
                    record["free_action"] = parse_action(generation.text).kind
            bar.update(len(chunk))
    config = {
        "mode": mode,
        "threshold": threshold if mode == "smartrag" else None,
        "decision": decision if mode == "smartrag" else None,
        "alpha": alpha,
        "alpha_preview": alpha_preview,
        **(config or {}),
    }
    return summarize(records, time.perf_counter() - start, config)


def at_threshold(always: dict[str, Any], never: dict[str, Any], threshold: float) -> list[dict[str, Any]]:
    """A smartrag run's records at `threshold`, from the same policy's always-retrieve and no-retrieval runs.

    With a quota of one retrieval and greedy decoding, the smartrag episode IS the always-retrieve one when the
    first P(search) >= threshold and the no-retrieval one otherwise: a whole threshold sweep costs two runs.
    """
    return [
        a if a["search_probabilities"][0] >= threshold else b
        for a, b in zip(always["records"], never["records"], strict=True)
    ]


def means(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """EM, F1, reward and retrieval rate over records."""
    n = len(records)
    return {
        key: sum(r[field] for r in records) / n
        for key, field in (("em", "em"), ("f1", "f1"), ("reward", "reward"), ("retrieval_rate", "retrievals"))
    }


def summary_line(results: dict[str, Any]) -> str:
    """The one-line summary `smartrag eval` prints."""
    hit = "-" if results["hit"] is None else f"{results['hit']:.3f}"
    free = results.get("free_format_error_rate")
    return (
        f"{results['config']['mode']}: n={results['n']} EM={results['em']:.3f} F1={results['f1']:.3f} "
        f"reward={results['reward']:.3f} retrieval_rate={results['retrieval_rate']:.2f} "
        f"previews={results.get('preview_rate', 0):.2f} hit={hit} "
        f"format_errors={results['format_error_rate']:.3f}"
        + ("" if free is None else f" free_format_errors={free:.3f}")
        + f" ({results['questions_per_second']:.2f} q/s, {results['seconds_per_question']:.2f} s/question)"
    )
