"""The graph LangGraph's server serves (`smartrag serve`, or `langgraph dev` on `langgraph.json`).

Importing this module is quick (LangGraph warns when a graph's import takes over 3 s): it checks the settings, builds
the retriever and starts loading the policy (torch and the model) on a background thread; `graph`, the factory the
server calls for each run, waits for that one build. The model loads once per server process, not per request.
Settings come from the environment: `SMARTRAG_POLICY` (a `--policy` value; default the trained embedded policy),
`SMARTRAG_RETRIEVER` (`local`, `web` or `module:factory`), `SMARTRAG_CORPUS` (a corpus file or saved index; default
the bundled one) and `SMARTRAG_K`. The server brings its own checkpointer, so threads work without one here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .retrievers import build_retriever

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever

    from .graph import SmartRAGGraph
    from .policy import SmartRAGPolicy

T = TypeVar("T")


def _setting(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _k() -> int:
    text = _setting("SMARTRAG_K", "4")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"SMARTRAG_K must be a whole number >= 1 (documents per search), got {text!r}")
    return int(text)


def _policy_source() -> str | None:
    """`SMARTRAG_POLICY`, checked without loading anything: a hub id cannot load offline."""
    source = os.environ.get("SMARTRAG_POLICY") or None
    local = source in (None, "embedded", "embedded-base") or Path(source).exists()
    if not local and os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        raise ValueError(
            f"SMARTRAG_POLICY={source!r}: no such folder, and a hub id cannot load offline "
            "(HF_HUB_OFFLINE is set): give a model or adapter folder, 'embedded' or 'embedded-base'"
        )
    return source


def _policy(source: str | None) -> SmartRAGPolicy:
    """The policy `SMARTRAG_POLICY` names; a failure is a ValueError naming the variable."""
    from .policy import SmartRAGPolicy

    try:
        return SmartRAGPolicy.load(source)
    except (ValueError, OSError) as error:
        raise ValueError(f"SMARTRAG_POLICY={source!r}: {error}") from error


def _build(source: str | None, retriever: BaseRetriever) -> SmartRAGGraph:
    """The served graph: the policy loaded (torch imported here, not at import) over the retriever."""
    from .graph import create_smartrag_graph

    return create_smartrag_graph(_policy(source), retriever)


def _in_background(call: Callable[[], T]) -> Future[T]:
    """`call()` on a daemon thread, its result or exception in the future (logged too: the server shows it at once)."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as error:  # noqa: BLE001 -- every access to the graph re-raises it
            logging.getLogger(__name__).error("the SmartRAG graph failed to build: %s", error)
            future.set_exception(error)

    threading.Thread(target=run, name="smartrag-load", daemon=True).start()
    return future


_source, _retriever = (
    _policy_source(),
    build_retriever(
        _setting("SMARTRAG_RETRIEVER", "local"),
        os.environ.get("SMARTRAG_CORPUS") or None,
        _k(),
        setting="SMARTRAG_RETRIEVER",
    ),
)
_built = _in_background(lambda: _build(_source, _retriever))


def built_graph() -> SmartRAGGraph:
    """The served graph, waiting for its build (for a caller outside the server's event loop)."""
    return _built.result()


async def graph() -> SmartRAGGraph:
    """The served graph, as LangGraph's server asks for it (a graph factory): awaits the build, never blocking the
    event loop, then returns the same graph every time."""
    return await asyncio.wrap_future(_built)
