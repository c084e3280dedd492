"""One retriever call as the graph makes it: in a thread of its own (so a hung retriever holds only that thread), its
result checked to be Documents."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from langchain_core.documents import Document

Search = tuple[list[Document], list[str]]
"""One search's documents and the errors to record."""


def in_daemon_thread(call: Callable[[], Any]) -> Future:
    """Run `call` in a new daemon thread (with the caller's context vars) and return its future.

    A retriever that hangs past its timeout holds only its own thread: no pool shared with other graphs or
    with the event loop, and a daemon thread never keeps the process from exiting.
    """
    future: Future = Future()
    context = contextvars.copy_context()

    def run() -> None:
        if not future.set_running_or_notify_cancel():  # a running future can no longer be cancelled under us
            return
        try:
            future.set_result(context.run(call))
        except BaseException as error:  # noqa: BLE001 -- handed to the waiting node, which records it
            future.set_exception(error)

    threading.Thread(target=run, name="smartrag-retrieve", daemon=True).start()
    return future


def as_documents(node: str, result: Any) -> Search:
    """A retriever's result as Documents, with an error for anything that is not one (strings, dicts, None)."""
    if not isinstance(result, (list, tuple)):
        return [], [f"{node}: the retriever returned {type(result).__name__}, not a list of Documents"]
    documents = [d for d in result if isinstance(d, Document)]
    if len(documents) < len(result):
        kinds = sorted({type(d).__name__ for d in result if not isinstance(d, Document)})
        dropped = len(result) - len(documents)
        return documents, [f"{node}: dropped {dropped} results that are not Documents ({', '.join(kinds)})"]
    return documents, []
