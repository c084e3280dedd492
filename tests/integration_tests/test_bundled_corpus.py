"""The bundled corpus's BM25 index (over 30,000 passages) is built once and cached."""

from langchain_smartrag import BM25Retriever
from langchain_smartrag.retrievers.bm25 import BUNDLED_CORPUS_DIR


def test_bundled_corpus_index_is_built_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTRAG_CACHE_DIR", str(tmp_path))
    retriever = BM25Retriever.bundled(k=3)
    assert len(retriever) > 30_000 and sorted(p.name for p in BUNDLED_CORPUS_DIR.glob("*.jsonl.gz")) == [
        "hotpotqa_paragraphs.jsonl.gz",
        "popqa_passages.jsonl.gz",
        "wiki_vital_summaries.jsonl.gz",
    ]
    assert "John Mayne" in [d.metadata["title"] for d in retriever.invoke("John Mayne occupation")]
    (cached,) = tmp_path.glob("bm25-bundled-*")
    assert BM25Retriever.bundled().invoke("Hamlet") == BM25Retriever.load(cached).invoke("Hamlet")
