"""The SmartRAG protocol: prompt templates and the action grammar.

This module is the ONE copy of both. The graph renders every policy prompt here and parses every
policy output here, and training imports the same functions, so what is trained is what is served.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.documents import Document

SEARCH = "[Search]"
ANSWER = "[Answer]"

INSTRUCTIONS = (
    'Answer the question. If you need more information, reply "[Search] <search query>"; '
    'otherwise reply "[Answer] <short answer>".'
)
DOCUMENT_CHARS = 400
"""Each retrieved document enters the observation cut to this many characters (prefill is the cost)."""
OBSERVATION_DOCUMENTS = 8
"""At most this many documents (the retriever's first, best ranked) enter an observation and the state, so a retriever
that returns thousands costs what one that returns eight does."""
DOCUMENT_READ_CHARS = 4 * DOCUMENT_CHARS
"""The characters of a document that are read at all (for the observation, whitespace collapsed, then cut to
DOCUMENT_CHARS; for the injection check): a 50 MB document costs what a short one does."""

PREVIEW_TITLE_CHARS = 40
"""Each title in a preview is cut to this many characters, so the preview's size is fixed by its count."""
PREVIEW_TITLE_WORDS = 6
"""A document without a title shows its first words instead."""

ActionKind = Literal["search", "answer", "invalid"]

_ACTION = re.compile(r"\s*\[(search|answer)\]", re.IGNORECASE)
_ACTION_WORD = re.compile(r"\[(search|answer)\]", re.IGNORECASE)
_NEXT_ACTION = re.compile(r"\[(?:search|answer)\]", re.IGNORECASE)


@dataclass(frozen=True)
class Action:
    """A parsed policy output: its kind, its text (query or answer), and whether it was well-formed."""

    kind: ActionKind
    text: str
    well_formed: bool


def parse_action(output: str) -> Action:
    """Parse a policy output into an `Action`; never raises.

    The first word is the action. Its text is the rest of the first line, cut at any second action
    word. An output that starts with neither action, or an action with no text, is not well-formed.
    """
    if not isinstance(output, str):
        return Action("invalid", "", False)
    match = _ACTION.match(output)
    if match is None:
        return Action("invalid", output.strip(), False)
    rest = output[match.end() :].lstrip().lstrip(":").strip().split("\n", 1)[0]
    rest = _NEXT_ACTION.split(rest, 1)[0].strip()
    return Action(match.group(1).lower(), rest, bool(rest))  # type: ignore[arg-type]


_SURROGATE = re.compile("[\ud800-\udfff]")


def validate_question(question: Any) -> str:
    """Return the question if it is a non-empty string; raise a `ValueError` that says why otherwise."""
    if not isinstance(question, str):
        raise ValueError(f"question must be a string, got {type(question).__name__}")
    if not question.strip():
        raise ValueError("question is empty or whitespace only")
    if (surrogate := _SURROGATE.search(question)) is not None:
        raise ValueError(
            f"question has a lone surrogate (U+{ord(surrogate.group()):04X}) at character "
            f"{surrogate.start()}: it is not valid Unicode text"
        )
    return question


def neutralise_actions(text: str) -> str:
    """The protocol's action words as plain text, for text that is data (a document, a title): `[Answer]` becomes
    `(Answer)`, so a document cannot write the policy's action for it."""
    return _ACTION_WORD.sub(lambda m: f"({m.group(1)})", text)


@functools.lru_cache(maxsize=16)
def _special_strings(tokenizer: Any) -> tuple[str, ...]:
    """The texts a tokenizer turns into special (control) tokens, longest first."""
    specials = set(getattr(tokenizer, "all_special_tokens", None) or [])
    specials.update(t.content for t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values() if t.special)
    return tuple(sorted((t for t in specials if len(t) > 1), key=len, reverse=True))


def as_text(text: str, tokenizer: Any = None) -> str:
    """User text (a question, a document) made safe to template: a special-token string in it, such as
    `<|im_end|>`, gets a zero-width space after its first character so it is encoded as plain text, never as
    a control token; lone surrogates become U+FFFD."""
    text = _SURROGATE.sub("\ufffd", text)
    for special in _special_strings(tokenizer) if tokenizer is not None else ():
        if special in text:
            text = text.replace(special, f"{special[0]}\u200b{special[1:]}")
    return text


def render_observation(documents: Sequence[Document], tokenizer: Any = None, chars: int = DOCUMENT_CHARS) -> str:
    """Retrieved documents as the observation text: the first OBSERVATION_DOCUMENTS, numbered, titled, each cut to
    `chars` (the protocol's DOCUMENT_CHARS; 0: whole, for measuring what the cut loses), with the protocol's action
    words in them written as plain text (`[Answer]` -> `(Answer)`)."""
    lines = []
    for i, doc in enumerate(documents[:OBSERVATION_DOCUMENTS], 1):
        read = doc.page_content[: chars * DOCUMENT_READ_CHARS // DOCUMENT_CHARS] if chars else doc.page_content
        text = neutralise_actions(" ".join(read.split()))
        if chars and len(text) > chars:
            text = text[:chars].rsplit(" ", 1)[0] + " ..."
        title = neutralise_actions(str(doc.metadata.get("title") or ""))
        line = f"({i}) {title}: {text}" if title else f"({i}) {text}"
        lines.append(as_text(line, tokenizer))
    return "\n".join(lines)


def preview_titles(documents: Sequence[Document], count: int) -> list[str]:
    """What a preview shows of the top `count` documents: each one's title (or its first words), cut to a fixed
    size. Never passage text: the preview tells the decision what the index holds, not the answer."""
    titles = []
    for doc in documents[:count]:
        title = str(doc.metadata.get("title") or " ".join(doc.page_content.split()[:PREVIEW_TITLE_WORDS]))
        title = " ".join(title.split())
        titles.append(title if len(title) <= PREVIEW_TITLE_CHARS else title[: PREVIEW_TITLE_CHARS - 3] + "...")
    return titles


def render_preview(titles: Sequence[str], tokenizer: Any = None) -> str:
    """The preview line of a decision prompt: the top hits' titles for the question, or that there were none."""
    return "Search preview: " + (as_text(" | ".join(titles), tokenizer) if titles else "(no results)")


def render_user_message(
    question: str, documents: Sequence[Document] = (), tokenizer: Any = None, preview: Sequence[str] | None = None
) -> str:
    """Turn 1 is instructions + question (+ the preview line, when the decision gets one); turn 2 is the same
    text with the observation after the question, never the preview. User text is made safe for `tokenizer`."""
    message = f"{INSTRUCTIONS}\nQuestion: {as_text(question, tokenizer)}"
    if documents:
        message += f"\nObservation:\n{render_observation(documents, tokenizer)}"
    elif preview is not None:
        message += f"\n{render_preview(preview, tokenizer)}"
    return message


def render_prompt(
    question: str, documents: Sequence[Document] = (), tokenizer: Any = None, preview: Sequence[str] | None = None
) -> str:
    """The full prompt string, through the tokenizer's chat template when it has one.

    The caller appends a forced action prefix (`SEARCH` or `ANSWER`) or lets the model choose. `preview` (the
    titles of the question's top hits, see `preview_titles`) goes into turn 1 only.
    """
    message = render_user_message(question, documents, tokenizer, preview)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
    return f"{message}\nResponse:\n"
