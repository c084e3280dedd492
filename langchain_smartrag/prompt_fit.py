"""Fitting a protocol prompt to a model's context: a long question cut from the middle, ranked documents dropped
from the end until the prompt leaves room for the completion."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.documents import Document

from .protocol import render_observation, render_prompt

Encode = Callable[[str], list[int]]
"""A text's token ids, without special tokens."""


def fit_question(question: str, max_tokens: int, encode: Encode, tokenizer: Any) -> str:
    """The question, cut from the middle (with a warning) when it runs over `max_tokens`."""
    ids = encode(question)
    if len(ids) <= max_tokens:
        return question
    head = max_tokens // 2
    tail = max_tokens - head
    warnings.warn(f"question of {len(ids)} tokens truncated from the middle to {max_tokens}", stacklevel=4)
    return f"{tokenizer.decode(ids[:head])} ... {tokenizer.decode(ids[-tail:])}"


def documents_that_fit(
    question: str, documents: Sequence[Document], budget: int, encode: Encode, tokenizer: Any
) -> int:
    """How many of the ranked `documents` the prompt for `question` holds within `budget` tokens.

    An estimate from each document's line, encoded once (linear in the documents, not quadratic), then the exact
    count on the joined prompt: a few encodes of a prompt that fits.
    """
    used = len(encode(render_prompt(question, documents[:1], tokenizer))) - len(
        encode(render_observation(documents[:1], tokenizer))
    )
    kept = 0
    for document in documents:
        used += len(encode(render_observation([document], tokenizer))) + 1
        if used > budget:
            break
        kept += 1

    def fits(n: int) -> bool:
        return len(encode(render_prompt(question, documents[:n], tokenizer))) <= budget

    while kept > 0 and not fits(kept):
        kept -= 1
    while kept < len(documents) and fits(kept + 1):
        kept += 1
    return kept
