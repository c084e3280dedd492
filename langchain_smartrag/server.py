"""The graph LangGraph's server serves (`langgraph dev`; see `langgraph.json`), built once at import.

The model loads once per server process, not per request. Settings come from the environment:
`SMARTRAG_POLICY` (a `--policy` value; default the trained embedded policy), `SMARTRAG_RETRIEVER`
(`local` or `web`), `SMARTRAG_CORPUS` (a corpus file or saved index; default the bundled one) and
`SMARTRAG_K`. The server brings its own checkpointer, so threads work without one here.
"""

from __future__ import annotations

import os
from pathlib import Path

from .graph import create_smartrag_graph
from .policy import SmartRAGPolicy
from .retrievers import build_retriever


def _setting(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _k() -> int:
    text = _setting("SMARTRAG_K", "4")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"SMARTRAG_K must be a whole number >= 1 (documents per search), got {text!r}")
    return int(text)


def _policy() -> SmartRAGPolicy:
    source = os.environ.get("SMARTRAG_POLICY") or None
    local = source in (None, "embedded", "embedded-base") or Path(source).exists()
    if not local and os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        raise ValueError(
            f"SMARTRAG_POLICY={source!r}: no such folder, and a hub id cannot load offline "
            "(HF_HUB_OFFLINE is set): give a model or adapter folder, 'embedded' or 'embedded-base'"
        )
    try:
        return SmartRAGPolicy.load(source)
    except (ValueError, OSError) as error:
        raise ValueError(f"SMARTRAG_POLICY={source!r}: {error}") from error


graph = create_smartrag_graph(
    _policy(),
    build_retriever(
        _setting("SMARTRAG_RETRIEVER", "local"),
        os.environ.get("SMARTRAG_CORPUS") or None,
        _k(),
        setting="SMARTRAG_RETRIEVER",
    ),
)
