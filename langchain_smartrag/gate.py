"""The decision gate: a small head that reads the policy's view of a question (its hidden state and P(search) at the
decision position), the index's view (the scores of a probe search with the question) and, where it was trained to,
the reader's view (the policy's closed-book draft against its draft over the probe's hits) and predicts whether a
search pays for itself. It is learned from paired episodes (`smartrag train gate`) and saved beside the policy."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from ._files import atomic_write_text
from .decoding import Generation
from .scoring import f1_score, has_answer, normalize_answer

GATE_FILE = "gate.json"
"""The gate's file in a policy folder, beside `smartrag.json`."""

INDEX_FEATURES = ("top_score", "score_per_term", "margin", "score_ratio", "title_overlap", "hits")
"""What the gate reads of a probe search: the top score, that score per query term, the gap to the second hit, the
second's share of the first, the share of question words in the top titles, and how many hits came back."""

POLICY_FEATURES = ("search_logit",)
"""What it reads of the policy beside its hidden state: log P(search) - log P(answer) of the action token."""

READER_FEATURES = (
    "closed_mean",
    "closed_first",
    "closed_min",
    "read_mean",
    "read_first",
    "read_min",
    "read_minus_closed",
    "agree",
    "read_in_docs",
    "closed_in_docs",
)
"""What it reads of the policy's two drafts once the probe is made, the closed-book one and the one over the probe's
hits: each draft's mean, first and lowest token log-probability, the gap between the means, how far the drafts agree
(token F1) and whether each is a span of the hits. The gate answers with the draft it picks: neither is paid twice."""

_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(normalize_answer(text)) if len(w) > 2}


def document_score(document: Document) -> float | None:
    """A hit's retrieval score, from `metadata["score"]` (bm25s, this package) or `"relevance_score"` (rerankers and
    LangChain's `*_with_relevance_scores` paths), else None."""
    for key in ("score", "relevance_score"):
        value = document.metadata.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def index_features(question: str, documents: Sequence[Document]) -> dict[str, float] | None:
    """The probe's features (`INDEX_FEATURES`), or None when the retriever reports no scores."""
    scores = [document_score(d) for d in documents]
    if documents and any(s is None for s in scores):
        return None
    ranked = sorted((s for s in scores if s is not None), reverse=True)
    top = ranked[0] if ranked else 0.0
    second = ranked[1] if len(ranked) > 1 else 0.0
    terms = max(len(_words(question)), 1)
    question_words = _words(question)
    titles = " ".join(str(d.metadata.get("title", "")) for d in documents[:3])
    overlap = len(question_words & _words(titles)) / max(len(question_words), 1)
    return {
        "top_score": top,
        "score_per_term": top / terms,
        "margin": top - second,
        "score_ratio": second / top if top > 0 else 0.0,
        "title_overlap": overlap,
        "hits": float(len(documents)),
    }


def reader_features(documents: Sequence[Document], closed: Generation, read: Generation) -> dict[str, float]:
    """The drafts' features (`READER_FEATURES`): `closed` answers the question alone, `read` over `documents`."""
    text = "\n".join(d.page_content for d in documents)
    values = {}
    for name, draft in (("closed", closed), ("read", read)):
        logprobs = draft.logprobs or [-20.0]
        values[f"{name}_mean"] = sum(logprobs) / len(logprobs)
        values[f"{name}_first"] = logprobs[0]
        values[f"{name}_min"] = min(logprobs)
        values[f"{name}_in_docs"] = float(has_answer(text, [draft.text]))
    values["read_minus_closed"] = values["read_mean"] - values["closed_mean"]
    values["agree"] = f1_score(read.text, closed.text)
    return values


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@dataclass
class DecisionGate:
    """P(a search pays) = sigmoid(head(standardised features)); the head is linear, or one tanh layer when `hidden`
    holds weights. `threshold` is the setting it was selected at; `trained_under` records what it was fitted on."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    hidden: list[list[float]] = field(default_factory=list)
    hidden_bias: list[float] = field(default_factory=list)
    threshold: float = 0.5
    hidden_size: int = 0
    """Entries of the policy's hidden state it reads (0: none)."""
    trained_under: dict[str, Any] = field(default_factory=dict)

    @property
    def reads_index(self) -> bool:
        """Whether it reads a probe search with the question, its scores or its hits (else no probe is made)."""
        return self.reads_scores or self.reads_reader

    @property
    def reads_scores(self) -> bool:
        """Whether it reads the probe's scores (`INDEX_FEATURES`)."""
        return any(name in self.features for name in INDEX_FEATURES)

    @property
    def reads_reader(self) -> bool:
        """Whether it reads the two drafts (then the graph drafts both answers and answers with the one it picks)."""
        return any(name in self.features for name in READER_FEATURES)

    def vector(
        self,
        hidden: Sequence[float] | None,
        search_logit: float,
        index: dict[str, float] | None,
        reader: dict[str, float] | None = None,
    ) -> list[float]:
        """The feature values in `features` order (hidden state entries are named `h0`, `h1`, ...)."""
        values = {"search_logit": search_logit, **(index or {}), **(reader or {})}
        out = []
        for name in self.features:
            if name.startswith("h") and name[1:].isdigit():
                if hidden is None:
                    raise ValueError("this gate reads the policy's hidden state, but the policy gave none")
                out.append(float(hidden[int(name[1:])]))
            elif name in values:
                out.append(float(values[name]))
            else:
                raise ValueError(f"the gate reads {name!r}, which this decision does not have")
        return out

    def probability(self, values: Sequence[float]) -> float:
        """P(search pays) for one feature vector."""
        z = [(v - m) / s for v, m, s in zip(values, self.mean, self.scale, strict=True)]
        if self.hidden:
            z = [
                math.tanh(sum(w * x for w, x in zip(row, z, strict=True)) + b)
                for row, b in zip(self.hidden, self.hidden_bias, strict=True)
            ]
        return _sigmoid(sum(w * x for w, x in zip(self.weights, z, strict=True)) + self.bias)

    def p_search(
        self,
        hidden: Sequence[float] | None,
        search_logit: float,
        index: dict[str, float] | None,
        reader: dict[str, float] | None = None,
    ) -> float:
        """P(a search pays) for one decision pass, probe and (if it reads them) drafts (a
        `training.gate.decision_features` row unpacks into it)."""
        return self.probability(self.vector(hidden, search_logit, index, reader))

    def check_scores(self, index: dict[str, float]) -> None:
        """Warn once when the index's scores sit far outside the range the gate was trained on."""
        low, high = self.trained_under.get("top_score_range", (None, None))
        if low is None or getattr(self, "_warned", False):
            return
        top = index["top_score"]
        if top < low / 4 or top > high * 4:
            self._warned = True
            warnings.warn(
                f"this index's top scores ({top:.3g}) sit far outside those the decision gate was trained on "
                f"({low:.3g}-{high:.3g}): fit it to 50-200 of your own questions with `smartrag calibrate --data "
                "YOUR_QA.jsonl --retriever ... --policy POLICY --save-to POLICY`",
                stacklevel=3,
            )

    def save(self, directory: str | Path) -> Path:
        """Write `gate.json` into a policy folder, made if need be (atomically: a temporary file renamed in)."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        return atomic_write_text(Path(directory) / GATE_FILE, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> DecisionGate | None:
        """The gate saved in a policy folder, None if it has none; a corrupt file raises naming it."""
        path = Path(directory) / GATE_FILE
        if not path.is_file():
            return None
        try:
            gate = cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            raise ValueError(
                f"{path}: not a decision gate ({error}): delete it, or rerun `smartrag train gate`"
            ) from error
        try:
            sizes = {len(gate.features), len(gate.mean), len(gate.scale)}
            width = len(gate.hidden_bias) if gate.hidden else len(gate.features)
            matched = len(sizes) == 1 and len(gate.weights) == width
            matched = matched and all(len(row) == len(gate.features) for row in gate.hidden)
        except TypeError:
            matched = False
        if not matched:
            raise ValueError(f"{path}: the gate's weights do not match its feature list: rerun `smartrag train gate`")
        hidden = [v for row in gate.hidden for v in row]
        numbers = [*gate.mean, *gate.scale, *gate.weights, gate.bias, *gate.hidden_bias, *hidden, gate.threshold]
        known = set(INDEX_FEATURES) | set(POLICY_FEATURES) | set(READER_FEATURES)
        if (
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers)
            or not all(s > 0 for s in gate.scale)
            or not all(n in known or (str(n)[:1] == "h" and str(n)[1:].isdigit()) for n in gate.features)
            or not isinstance(gate.trained_under, dict)
        ):
            raise ValueError(
                f"{path}: not a decision gate (a weight that is not a finite number, a scale <= 0, or a feature it "
                "cannot read): delete it, or rerun `smartrag train gate`"
            )
        return gate
