"""One retriever from a few settings: what the CLI, the server module and training build from flags."""

from __future__ import annotations

from pathlib import Path

from langchain_core.retrievers import BaseRetriever

from .bm25 import BM25Retriever
from .web import DuckDuckGoRetriever

RETRIEVER_KINDS = ("local", "web")


def build_retriever(kind: str = "local", corpus: str | Path | None = None, k: int = 4) -> BaseRetriever:
    """`web` is DuckDuckGo; `local` is BM25 over `corpus` (a JSONL(.gz) file or a saved index) or the bundled one."""
    if kind not in RETRIEVER_KINDS:
        raise ValueError(f"retriever kind must be one of {RETRIEVER_KINDS}, got {kind!r}")
    if kind == "web":
        return DuckDuckGoRetriever(k=k)
    if corpus is None:
        return BM25Retriever.bundled(k=k)
    path = Path(corpus)
    return BM25Retriever.load(path, k=k) if path.is_dir() else BM25Retriever.from_jsonl(path, k=k)
