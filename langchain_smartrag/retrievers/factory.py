"""One retriever from a few settings: what the CLI, the server module and training build from flags."""

from __future__ import annotations

import importlib
from pathlib import Path

from langchain_core.retrievers import BaseRetriever

from .bm25 import BM25Retriever
from .web import DuckDuckGoRetriever

RETRIEVER_KINDS = ("local", "web")


def build_retriever(kind: str = "local", corpus: str | Path | None = None, k: int = 4) -> BaseRetriever:
    """`web` is DuckDuckGo; `local` is BM25 over `corpus` (a JSONL(.gz) file or a saved index) or the bundled one;
    `module:factory` is your own: a callable that returns any LangChain retriever (e.g. a vector store's)."""
    if ":" in kind:
        return retriever_from_factory(kind)
    if kind not in RETRIEVER_KINDS:
        raise ValueError(f"retriever must be one of {RETRIEVER_KINDS} or module:factory, got {kind!r}")
    if kind == "web":
        return DuckDuckGoRetriever(k=k)
    if corpus is None:
        return BM25Retriever.bundled(k=k)
    path = Path(corpus)
    return BM25Retriever.load(path, k=k) if path.is_dir() else BM25Retriever.from_jsonl(path, k=k)


def retriever_from_factory(spec: str) -> BaseRetriever:
    """`module:factory` -> `factory()`, which must return a LangChain `BaseRetriever` (so training runs against the
    retriever the app serves with)."""
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"retriever {spec!r}: cannot import {attribute!r} from {module_name!r} ({error})") from error
    retriever = factory()
    if not isinstance(retriever, BaseRetriever):
        raise ValueError(f"retriever {spec!r} returned {type(retriever).__name__}, not a LangChain BaseRetriever")
    return retriever
