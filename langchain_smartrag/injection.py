"""Documents are data, not instructions: a retrieved document that addresses the model (tells it to ignore the
question, what to answer, or which action to write) is kept out of the observation and recorded as an error (the
protocol also writes action words inside any document as plain text: `protocol.neutralise_actions`)."""

from __future__ import annotations

import re

from langchain_core.documents import Document

from .protocol import DOCUMENT_READ_CHARS

_ACTION_WORDS = re.compile(r"\[(search|answer)\]", re.IGNORECASE)

_INSTRUCTIONS = re.compile(
    r"""
    \b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(question|instructions?|documents?|context|above|previous|rules)\b
    | \b(the\s+)?(only\s+)?(correct|right|true|final|real)\s+answer\s+(is|will\s+be|should\s+be|must\s+be)\s*:
    | \b(reply|respond|answer|output)\s+(only\s+)?with\b
    | \b(you|assistant|ai|model|language\s+model)\s+(must|should|are\s+required\s+to|have\s+to|will)
      \s+(answer|reply|respond|say|output|ignore)
    | \b(system\s+prompt|new\s+instructions?)\b
    | (?m:^\s*(system|assistant|user)\s*:)
    """,
    re.IGNORECASE | re.VERBOSE,
)


def reads_as_instructions(text: str) -> bool:
    """Whether a document's text addresses the model (an injection) rather than stating facts."""
    return bool(_ACTION_WORDS.search(text) or _INSTRUCTIONS.search(text))


def split_instructions(documents: list[Document], keep: int | None = None) -> tuple[list[Document], list[Document]]:
    """(documents to read, documents that read as instructions to the model), each judged on its title and the part of
    its text the observation reads; with `keep`, the documents after the first `keep` to read are not judged at all
    (a retriever that returns thousands costs what one that returns `keep` does)."""
    kept: list[Document] = []
    dropped: list[Document] = []
    for document in documents:
        if keep is not None and len(kept) >= keep:
            break
        title = str(document.metadata.get("title") or "")
        text = document.page_content[:DOCUMENT_READ_CHARS]
        (dropped if reads_as_instructions(f"{title}\n{text}") else kept).append(document)
    return kept, dropped
