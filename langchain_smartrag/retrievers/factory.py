"""One retriever from a few settings: what the CLI, the server module and training build from flags."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

from langchain_core.retrievers import BaseRetriever

from .bm25 import BM25Retriever
from .web import DuckDuckGoRetriever

RETRIEVER_KINDS = ("local", "web")


def build_retriever(
    kind: str = "local", corpus: str | Path | None = None, k: int = 4, *, setting: str = "--retriever"
) -> BaseRetriever:
    """`web` is DuckDuckGo; `local` is BM25 over `corpus` (a JSONL(.gz) file or a saved index) or the bundled one;
    `module:factory` is your own: a callable that returns any LangChain retriever (e.g. a vector store's).

    A mistake in a `module:factory` raises a ValueError that starts with `setting` and the spec (the flag, or the
    variable it came from: `SMARTRAG_RETRIEVER`) and says what to fix."""
    if ":" in kind:
        return retriever_from_factory(kind, setting=setting)
    if kind not in RETRIEVER_KINDS:
        raise ValueError(f"retriever must be one of {RETRIEVER_KINDS} or module:factory, got {kind!r}")
    if kind == "web":
        return DuckDuckGoRetriever(k=k)
    if corpus is None:
        return BM25Retriever.bundled(k=k)
    path = Path(corpus)
    return BM25Retriever.load(path, k=k) if path.is_dir() else BM25Retriever.from_jsonl(path, k=k)


DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
"""A module's or a factory's name: identifiers joined by dots (no relative `..x`, no empty part)."""


def retriever_from_factory(spec: str, *, setting: str = "--retriever") -> BaseRetriever:
    """`module:factory` -> `factory()`, which must return a LangChain `BaseRetriever` (so training runs against the
    retriever the app serves with). A malformed spec, a module that does not import, a factory that is not a function
    of no arguments, one that raises or returns something else: each a one-line ValueError naming the spec."""
    where = f"{setting} {spec}"
    module_name, _, attribute = spec.partition(":")
    if not DOTTED_NAME.fullmatch(module_name) or not DOTTED_NAME.fullmatch(attribute):
        raise ValueError(
            f"{where}: expected MODULE:FACTORY, e.g. my_package.retrievers:build (an importable module "
            "and a function in it that takes no arguments and returns a LangChain retriever)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"{where}: cannot import {attribute!r} from {module_name!r} ({error}): is the module's "
            "folder on PYTHONPATH?"
        ) from error
    except Exception as error:  # the module itself raised while importing
        raise ValueError(f"{where}: importing {module_name} raised {type(error).__name__}: {error}") from error
    factory: Any = module
    try:
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except AttributeError as error:
        raise ValueError(f"{where}: cannot import {attribute!r} from {module_name!r} ({error})") from error
    if not callable(factory):
        raise ValueError(
            f"{where}: {module_name}.{attribute} is a {type(factory).__name__}, not a function that returns a retriever"
        )
    try:
        inspect.signature(factory).bind()
    except TypeError:
        needed = [
            name
            for name, p in inspect.signature(factory).parameters.items()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        raise ValueError(
            f"{where}: the factory must take no arguments (it takes {', '.join(needed)}): wrap it in a "
            "function of none that passes them"
        ) from None
    except ValueError:  # a builtin without a signature: call it and see
        pass
    try:
        retriever = factory()
    except Exception as error:
        raise ValueError(f"{where}: the factory raised {type(error).__name__}: {error}") from error
    if not isinstance(retriever, BaseRetriever):
        raise ValueError(f"{where}: the factory returned {type(retriever).__name__}, not a LangChain BaseRetriever")
    return retriever
