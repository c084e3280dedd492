"""BM25 over a local corpus (bm25s), as a LangChain retriever that saves and loads its index."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import bm25s
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr

from ..cache import build_once, cache_dir
from ..jsonl import read_jsonl

TOKEN_PATTERN = r"(?u)\b\w+\b"
"""Every run of word characters is a token: unlike bm25s' default, numbers and one-letter tokens count."""
BUNDLED_CORPUS_DIR = Path(__file__).resolve().parent.parent / "corpus"
_DOCUMENTS_FILE = "documents.jsonl.gz"
_SETTINGS_FILE = "smartrag_bm25.json"


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english").stemWords


def _tokenize(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(
        texts, token_pattern=TOKEN_PATTERN, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False
    )


def corpus_documents(path: str | Path) -> list[Document]:
    """Documents from a corpus JSONL(.gz) of rows {"id", "title", "text", ...}; extra fields become metadata."""
    documents = []
    for number, row in read_jsonl(path):
        if not isinstance(row.get("text"), str):
            raise ValueError(f"{path}:{number}: a corpus row needs a string field 'text'")
        metadata = {key: value for key, value in row.items() if key != "text"}
        documents.append(Document(page_content=row["text"], metadata=metadata))
    return documents


def _build_index(documents: Sequence[Document], files: str = "") -> bm25s.BM25:
    """A BM25 index over `documents` (title, when in the metadata, indexed with the text); its errors name the corpus
    `files` they came from (if any)."""
    where = f" {files}" if files else ""
    if not documents:
        raise ValueError(f"cannot build a BM25 index over an empty corpus{where}")
    tokens = _tokenize([f"{doc.metadata.get('title', '')} {doc.page_content}" for doc in documents])
    if not any(tokens):
        raise ValueError(
            f"no indexable words in corpus{where}: its {len(documents)} documents hold only English "
            "stopwords and punctuation; give it documents with content"
        )
    index = bm25s.BM25()
    index.index(tokens, show_progress=False)
    return index


class BM25Retriever(BaseRetriever):
    """Okapi BM25 (bm25s) over an in-memory corpus, with English stemming and stopwords.

    Returns up to `k` documents with a positive score (documents sharing no term with the query
    are never returned), each with its `score` in the metadata. `BM25Retriever(documents=docs, k=4)` indexes
    `docs`; `from_jsonl`, `load` and `bundled` build one from files.
    """

    k: int = Field(default=4, ge=1)
    _index: bm25s.BM25 = PrivateAttr()
    _documents: list[Document] = PrivateAttr()

    def __init__(self, documents: Iterable[Document], *, index: bm25s.BM25 | None = None, **kwargs: Any) -> None:
        """Index `documents` (keyword arguments set the fields, `k`). `index` is one already built over exactly
        these documents, in this order (what `load` reads back), so none is built."""
        super().__init__(**kwargs)
        self._documents = list(documents)
        if index is None:
            index = _build_index(self._documents)
        elif index.scores["num_docs"] != len(self._documents):
            raise ValueError(f"the index holds {index.scores['num_docs']} documents, not {len(self._documents)}")
        self._index = index

    @property
    def documents(self) -> list[Document]:
        """The indexed documents, in index order (a copy of the list: the index cannot change under it)."""
        return list(self._documents)

    @classmethod
    def from_documents(cls, documents: Iterable[Document], **kwargs: Any) -> BM25Retriever:
        """Index these documents (title, when in the metadata, is indexed with the text): `cls(documents, **kwargs)`,
        LangChain's usual name for it."""
        return cls(documents, **kwargs)

    @classmethod
    def _indexed(cls, documents: list[Document], files: str, **kwargs: Any) -> BM25Retriever:
        """`from_documents`; its errors name the corpus `files` they came from (if any)."""
        return cls(documents, index=_build_index(documents, files), **kwargs)

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], metadatas: Iterable[dict[str, Any]] | None = None, **kwargs: Any
    ) -> BM25Retriever:
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        return cls.from_documents(
            (Document(page_content=t, metadata=m) for t, m in zip(texts, metadatas, strict=True)), **kwargs
        )

    @classmethod
    def from_jsonl(cls, *paths: str | Path, **kwargs: Any) -> BM25Retriever:
        """Index one or more corpus files of rows {"id", "title", "text"} (JSONL, optionally gzipped)."""
        documents = [doc for path in paths for doc in corpus_documents(path)]
        return cls._indexed(documents, ", ".join(map(str, paths)), **kwargs)

    @classmethod
    def bundled(cls, **kwargs: Any) -> BM25Retriever:
        """The corpora shipped with the package in one index, built on first use and cached on disk."""
        paths = sorted(BUNDLED_CORPUS_DIR.glob("*.jsonl.gz"))
        fingerprint = hashlib.sha256()
        for path in paths:
            fingerprint.update(f"{path.name}:{path.stat().st_size}".encode())
        target = cache_dir() / f"bm25-bundled-{fingerprint.hexdigest()[:12]}"
        build_once(target, lambda out: cls.from_jsonl(*paths).save(out))
        return cls.load(target, **kwargs)

    def save(self, directory: str | Path) -> None:
        """Write the index and its documents to a directory that `load` reads back."""
        directory = Path(directory)
        self._index.save(directory, show_progress=False)
        with gzip.open(directory / _DOCUMENTS_FILE, "wt", encoding="utf-8") as f:
            for doc in self._documents:
                f.write(json.dumps({"text": doc.page_content, "metadata": doc.metadata}) + "\n")
        (directory / _SETTINGS_FILE).write_text(json.dumps({"k": self.k, "token_pattern": TOKEN_PATTERN}))

    @classmethod
    def load(cls, directory: str | Path, **kwargs: Any) -> BM25Retriever:
        """The index `save` wrote; a missing, damaged or incomplete one raises saying to rebuild it."""
        directory = Path(directory)
        try:
            settings = json.loads((directory / _SETTINGS_FILE).read_text())
            index = bm25s.BM25.load(directory, show_progress=False)
            documents = [
                Document(page_content=row["text"], metadata=row["metadata"])
                for _, row in read_jsonl(directory / _DOCUMENTS_FILE)
            ]
            if len(documents) != index.scores["num_docs"]:
                raise ValueError(
                    f"{_DOCUMENTS_FILE} holds {len(documents)} documents, the index {index.scores['num_docs']}"
                )
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(
                f"{directory} is not a readable BM25Retriever index ({error}): rebuild it "
                "(BM25Retriever.from_jsonl(corpus).save(directory); a cached one: delete it)"
            ) from error
        return cls(documents, index=index, **{"k": settings["k"], **kwargs})

    def __len__(self) -> int:
        return len(self._documents)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """Up to `k` (default `self.k`) documents with a positive score, best first."""
        tokens = _tokenize([query])
        k = min(k or self.k, len(self._documents))
        if not tokens[0]:
            return []
        ids, scores = self._index.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [
            Document(
                page_content=self._documents[i].page_content,
                metadata={**self._documents[i].metadata, "score": float(s)},
            )
            for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
            if s > 0
        ]
