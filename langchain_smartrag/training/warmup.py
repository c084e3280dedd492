"""Warm-up data for SFT: the three kinds of SmartRAG examples, built with the policy and the retriever in the loop.

- direct:   question -> "[Answer] y" for questions the base policy already answers closed-book;
- search:   question -> "[Search] q" for the others, q being the question itself or a rewrite sampled from
            the policy, whichever first retrieves text that holds a gold answer;
- observed: question + observation -> "[Answer] y", y being the gold alias found in the observation;
- reading:  question + its top hits with its gold passages among them -> "[Answer] y" (`reading_rows`, from
            questions whose data set names the passages that hold the evidence): more answer turns that read.
- no-search (only with `no_search=True`, not the paper's): question -> "[Answer]", the decision word alone, for
            questions that neither the policy closed-book nor any query answers. With a corpus that holds the
            answers to part of the questions, that is the decision the reward pays for (a search costs alpha and
            finds nothing); without it such questions give no decision example, as in the paper, whose web search
            left few of them.

Each question gives at most one decision example (direct, search or no-search), so no two examples disagree about
the same question; the majority decision is cut to at most `max_decision_ratio` times the minority (no-search
examples go before direct ones) so that the retrieve-or-answer choice stays a learned judgement that PPO can still
move, not a per-entity lookup.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from tqdm import tqdm

from langchain_smartrag import ANSWER, SEARCH, SmartRAGPolicy
from langchain_smartrag._files import atomic_write_text
from langchain_smartrag.jsonl import read_jsonl
from langchain_smartrag.protocol import parse_action, preview_titles, render_observation
from langchain_smartrag.scoring import has_answer, normalize_answer

from .data import QAExample


@dataclass
class WarmupExample:
    kind: str
    prompt: str
    completion: str
    id: str
    end: bool = True
    """Whether the completion ends the turn (SFT trains the end-of-turn token after it); False for a decision word."""
    given: str = ""
    """Text between prompt and completion that the graph forces (the action word of an answer turn it does not let
    the policy choose): the policy reads it and is not trained on it."""
    preview: int = 0
    """Titles of the top hits the decision prompts show (the protocol's setting, in every row so a copied file
    trains the same policy)."""


def _alias_in(text: str, golds: Sequence[str]) -> str | None:
    """The first gold alias that occurs in `text` (normalised), as the gold file spells it."""
    return next((g for g in golds if normalize_answer(g) and has_answer(text, [g])), None)


def _text(documents: Sequence[Document]) -> str:
    return " ".join(d.page_content for d in documents)


def build_warmup(
    policy: SmartRAGPolicy,
    retriever: BaseRetriever,
    examples: Sequence[QAExample],
    *,
    rewrites: int = 2,
    max_decision_ratio: float = 2.0,
    batch_size: int = 32,
    seed: int = 0,
    no_search: bool = False,
    preview: int = 0,
) -> tuple[list[WarmupExample], dict[str, Any]]:
    """Build warm-up examples; returns them with a report of the mix.

    With `preview`, the decision examples' prompts show the titles of the question's top hits, as the graph's
    first decision sees them (`protocol.preview_titles`); answers after an observation never do.
    """
    direct, search, observed, abstain, no_hit = [], [], [], [], 0
    for first in tqdm(range(0, len(examples), batch_size), desc="warm-up", unit="batch"):
        chunk = examples[first : first + batch_size]
        plain = [policy.prompt(e.question) for e in chunk]  # what the answer turn sees: never a preview
        prompts = plain
        hits: dict[str, list[Document]] = {}  # a question's own hits serve its preview and its first query
        if preview:
            hits = {e.question: retriever.invoke(e.question) for e in chunk}
            prompts = [policy.prompt(e.question, preview=preview_titles(hits[e.question], preview)) for e in chunk]
        closed_book = policy.generate_batch(plain, ANSWER)
        candidates = [[e.question] for e in chunk]
        if rewrites:
            sampled = policy.generate_batch(
                [p for p in prompts for _ in range(rewrites)],
                SEARCH,
                sample=True,
                seeds=[
                    seed * 1_000_003 + (first + i) * rewrites + j for i in range(len(chunk)) for j in range(rewrites)
                ],
            )
            for i, generation in enumerate(sampled):
                action = parse_action(SEARCH + generation.text)
                if action.well_formed and action.text not in candidates[i // rewrites]:
                    candidates[i // rewrites].append(action.text)
        for e, prompt, plain_prompt, answer, queries in zip(
            chunk, prompts, plain, closed_book, candidates, strict=True
        ):
            known = _alias_in(parse_action(ANSWER + answer.text).text, e.answers)
            if known is not None and prompt == plain_prompt:
                direct.append(WarmupExample("direct", prompt, f"{ANSWER} {known}", e.id))
            elif known is not None:  # with a preview: the decision on its prompt, the answer on the plain one
                direct.append(WarmupExample("direct", prompt, ANSWER, e.id, end=False))
                observed.append(WarmupExample("closed-book", plain_prompt, f"{ANSWER} {known}", e.id))
            for query in queries:
                documents = hits[query] if query in hits else retriever.invoke(query)
                gold = _alias_in(_text(documents), e.answers)
                if gold is None:
                    continue
                if known is None:
                    search.append(WarmupExample("search", prompt, f"{SEARCH} {query}", e.id))
                observed.append(
                    WarmupExample("observed", policy.prompt(e.question, documents), f"{ANSWER} {gold}", e.id)
                )
                break
            else:
                no_hit += 1
                if no_search and known is None:
                    abstain.append(WarmupExample("no-search", prompt, ANSWER, e.id, end=False))
    rng = random.Random(seed)
    minority, majority = sorted([direct + abstain, search], key=len)
    cap = int(max_decision_ratio * len(minority)) if minority else len(majority)
    if majority is search:
        kept_majority = rng.sample(search, min(cap, len(search)))
    else:  # the answer side: direct examples first, they also teach answers
        kept_majority = rng.sample(direct, min(cap, len(direct)))
        kept_majority += rng.sample(abstain, min(cap - len(kept_majority), len(abstain)))
    rows = [dataclasses.replace(r, preview=preview) for r in minority + kept_majority + observed]
    rng.shuffle(rows)
    report = {
        "questions": len(examples),
        "preview": preview,
        "closed_book_right": len(direct),
        "retrieval_found_answer": len(observed),
        "no_query_found_answer": no_hit,
        "dropped_to_balance": len(majority) - len(kept_majority),
        "mix": dict(Counter(r.kind for r in rows)),
    }
    return rows, report


def gold_titles(example: QAExample) -> list[str]:
    """The titles of the passages that hold a question's evidence, where its data set names them (HotpotQA's
    supporting paragraphs, PopQA's subject page); none otherwise."""
    if example.extra.get("supporting_titles"):
        return [str(t) for t in example.extra["supporting_titles"]]
    return [str(example.extra["s_wiki_title"])] if example.extra.get("s_wiki_title") else []


def reading_rows(
    policy: SmartRAGPolicy,
    retriever: BaseRetriever,
    examples: Sequence[QAExample],
    passages: Mapping[str, Document],
    *,
    seed: int = 0,
) -> tuple[list[WarmupExample], dict[str, Any]]:
    """Answer turns that teach reading: each question's hits as the graph shows them, its gold passages (`passages`
    by title) put in at a seeded rank where the search missed them, the last-ranked hits making room. The completion
    is the gold alias the observation shows, else the first gold answer: the answer, never a copy of a document.
    Questions with no gold passage in `passages` give none; the report counts both."""
    rng, rows, shown = random.Random(seed), [], 0
    for e in examples:
        titles = gold_titles(e)
        golds = [passages[t] for t in titles if t in passages]
        if not golds:
            continue
        documents = retriever.invoke(e.question)
        k = max(len(documents), len(golds))
        seen = {d.metadata.get("title") for d in documents}
        for gold in golds:
            if gold.metadata.get("title") not in seen:
                documents.insert(rng.randint(0, min(len(documents), k - 1)), gold)
        documents = documents[:k]
        alias = _alias_in(render_observation(documents), e.answers)
        shown += alias is not None
        rows.append(
            WarmupExample(
                "reading", policy.prompt(e.question, documents), f" {alias or e.answers[0]}", e.id, given=ANSWER
            )
        )
    return rows, {"questions": len(examples), "rows": len(rows), "answer_shown": shown}


def write_warmup(rows: Sequence[WarmupExample], report: dict[str, Any], path: str | Path) -> None:
    """JSONL of {"kind", "prompt", "completion", "id", "end"} (what `training.sft` reads) and a report beside it.

    No rows is a ValueError that says why, from `build_warmup`'s report, and writes nothing: an empty file would
    only fail later, in SFT, far from its cause."""
    if not rows:
        raise ValueError(f"{path}: {why_no_rows(report)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r.__dict__, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(path.with_suffix(".report.json"), json.dumps(report, indent=1))


def why_no_rows(report: dict[str, Any]) -> str:
    """Why `build_warmup` made no rows, and what gets some: every row needs a question the policy answers
    closed-book or one whose query (the question or a sampled rewrite) retrieves a passage holding a gold answer."""
    questions = report.get("questions", 0)
    return (
        f"0 warm-up rows from {questions} question{'' if questions == 1 else 's'}: the policy answered none "
        "closed-book and no query (the question or a sampled rewrite) retrieved a passage that holds a gold answer. "
        "Give a --corpus or --retriever that holds the answers (spelled as in the QA rows' 'answers'), more "
        "questions (--per-dataset) or more --rewrites"
    )


def warmup_ids(path: str | Path) -> frozenset[str]:
    """The question ids a warm-up file holds: what an SFT run on it trained on, to leave out of its evaluations."""
    return frozenset(row["id"] for _, row in read_jsonl(path))


def warmup_protocol(path: str | Path) -> dict[str, Any]:
    """The protocol settings a warm-up file's prompts were built with, from its rows' `preview` (a file written
    before rows carried it: from its report): what an SFT run on it saves beside the policy, e.g. {"preview": 3};
    none for the paper's protocol."""
    settings = {row.get("preview") for _, row in read_jsonl(path)}
    if settings == {None}:
        report = Path(path).with_suffix(".report.json")
        settings = {json.loads(report.read_text()).get("preview", 0) if report.is_file() else 0}
    if len(settings) != 1 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in settings):
        raise ValueError(
            f"{path}: its rows were built with different previews ({sorted(map(str, settings))}): "
            "train on rows of one setting (smartrag train warmup --preview N writes them)"
        )
    (preview,) = settings
    return {"preview": preview} if preview else {}
