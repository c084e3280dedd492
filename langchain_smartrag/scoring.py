"""Answer scoring (SQuAD exact match and F1 against the best gold alias) and the SmartRAG episode reward."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

ALPHA = 0.2
"""Cost per retrieval, on the EM + F1 scale of 0..2 (the paper's value)."""
ALPHA_PREVIEW = 0.02
"""Cost per preview (one retrieval whose titles the first decision sees), on the same scale: small, not zero."""
MALFORMED_REWARD = -1.0
"""Correctness term of an episode whose final output is neither action."""

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _golds(golds: str | Iterable[str]) -> list[str]:
    return [golds] if isinstance(golds, str) else list(golds)


def exact_match(prediction: str, golds: str | Iterable[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold alias, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(gold) for gold in _golds(golds)))


def _f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: str | Iterable[str]) -> float:
    """Token F1 of the prediction against its best-matching gold alias."""
    return max((_f1(prediction, gold) for gold in _golds(golds)), default=0.0)


def answer_reward(answer: str, golds: str | Iterable[str], *, well_formed: bool = True) -> float:
    """The correctness term: EM + F1 (0..2), or MALFORMED_REWARD for a final output that is neither action."""
    return exact_match(answer, golds) + f1_score(answer, golds) if well_formed else MALFORMED_REWARD


def episode_reward(
    answer: str,
    golds: str | Iterable[str],
    retrievals: int,
    *,
    well_formed: bool = True,
    alpha: float = ALPHA,
    previews: int = 0,
    alpha_preview: float = ALPHA_PREVIEW,
) -> float:
    """answer_reward - alpha * retrievals - alpha_preview * previews: what an episode earns (PPO pays the same
    terms token by token)."""
    return answer_reward(answer, golds, well_formed=well_formed) - alpha * retrievals - alpha_preview * previews


def has_answer(text: str, golds: str | Iterable[str]) -> bool:
    """Whether any gold alias occurs in the text, both SQuAD-normalised, on word boundaries (retrieval "hit")."""
    haystack = f" {normalize_answer(text)} "
    return any(gold and f" {gold} " in haystack for gold in map(normalize_answer, _golds(golds)))
