"""BM25 over a real bm25s index, and the DuckDuckGo adapter against a fake HTTP transport (no network here). The
bundled corpus's index is `tests/integration_tests/test_bundled_corpus.py`."""

import json

import pytest
from ddgs.exceptions import DDGSException
from langchain_core.documents import Document

from langchain_smartrag import BM25Retriever, DuckDuckGoRetriever, create_smartrag_graph


def titles(documents):
    return [doc.metadata["title"] for doc in documents]


def test_bm25_ranks_the_matching_document_first(retriever):
    documents = retriever.invoke("Who wrote Hamlet?")
    assert titles(documents)[0] == "Hamlet"
    assert documents[0].metadata["id"] == "d2" and documents[0].metadata["score"] > 0


def test_bm25_keeps_numbers_and_one_letter_tokens():
    retriever = BM25Retriever.from_texts(
        ["vitamin C is ascorbic acid", "vitamin D is calciferol", "born in 1969", "born in 1843"]
    )
    assert retriever.invoke("vitamin c")[0].page_content == "vitamin C is ascorbic acid"
    assert retriever.invoke("1969")[0].page_content == "born in 1969"


def test_bm25_drops_zero_score_hits(retriever):
    assert retriever.invoke("zebra xylophone") == []
    assert retriever.invoke("the of and") == []  # stopwords only
    assert len(retriever.invoke("Paris")) == 1  # k=2, only one document shares a term


def test_bm25_k_larger_than_the_corpus_is_fine(corpus_file):
    retriever = BM25Retriever.from_jsonl(corpus_file, k=50)
    assert 1 <= len(retriever.invoke("the first in 1969 1843 Paris")) <= 5


def test_bm25_save_and_load_round_trip(retriever, tmp_path):
    retriever.save(tmp_path / "index")
    loaded = BM25Retriever.load(tmp_path / "index")
    assert loaded.k == 2 and len(loaded) == len(retriever)
    assert loaded.invoke("Apollo Moon landing") == retriever.invoke("Apollo Moon landing")
    assert BM25Retriever.load(tmp_path / "index", k=1).k == 1


def test_bm25_load_of_a_corrupt_index_says_so(tmp_path):
    (tmp_path / "broken").mkdir()
    with pytest.raises(ValueError, match="not a readable BM25Retriever index"):
        BM25Retriever.load(tmp_path / "broken")


def test_bm25_is_built_from_documents_by_keyword_like_any_langchain_retriever():
    documents = [Document(page_content="alpha beta", metadata={"title": "Greek"}), Document(page_content="gamma")]
    retriever = BM25Retriever(documents=documents, k=1)
    assert retriever.k == 1 and len(retriever) == 2 and titles(retriever.invoke("greek letters")) == ["Greek"]
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Retriever(documents=[])
    with pytest.raises(ValueError, match="the index holds 2 documents, not 1"):  # an index is for its own documents
        BM25Retriever(documents=documents[:1], index=retriever._index)


def test_bm25_from_documents_and_bad_input(tmp_path):
    retriever = BM25Retriever.from_documents([Document(page_content="alpha beta", metadata={"title": "Greek"})])
    assert titles(retriever.invoke("greek letters")) == ["Greek"]
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Retriever.from_texts([])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": 1, "text": "fine"}) + "\n\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:3"):
        BM25Retriever.from_jsonl(bad)
    bad.write_text(json.dumps({"id": 1, "title": "no text"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: .*'text'"):
        BM25Retriever.from_jsonl(bad)


def test_duckduckgo_results_become_documents(transport):
    documents = DuckDuckGoRetriever(k=2).invoke("capital of France")
    assert [d.page_content for d in documents] == ["Paris is the capital of France.", "France has 13 regions."]
    assert documents[0].metadata == {"title": "Paris - Wikipedia", "url": "https://en.wikipedia.org/wiki/Paris"}
    method, url, kwargs = transport.calls[0]
    assert (method, url, kwargs["data"]["q"]) == ("POST", "https://html.duckduckgo.com/html/", "capital of France")


def test_duckduckgo_returns_at_most_k(transport):
    assert len(DuckDuckGoRetriever(k=1).invoke("France")) == 1


def test_duckduckgo_finding_nothing_is_no_documents(transport):
    transport.page = "<html><body></body></html>"
    assert DuckDuckGoRetriever().invoke("capital of France") == [] and len(transport.calls) == 1


def test_duckduckgo_failure_raises_ddgs_error(transport):
    """A failed search is not an empty result: the caller (the graph's `errors`) can tell them apart."""
    transport.fail = True
    with pytest.raises(DDGSException, match="network unreachable"):
        DuckDuckGoRetriever().invoke("capital of France")


def test_a_failed_web_search_reaches_the_graphs_errors_and_the_answer_still_comes(searching_policy, transport):
    transport.fail = True
    out = create_smartrag_graph(searching_policy, DuckDuckGoRetriever()).invoke({"question": "Capital of France?"})
    assert out["errors"] == ["retrieve: DDGSException: network unreachable"]
    assert out["retrievals"] == 1 and out["documents"] == [] and out["answer"] is not None
