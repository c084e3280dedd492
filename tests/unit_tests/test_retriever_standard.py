"""LangChain's standard retriever suite (langchain-tests) for both built-in retrievers.

The web retriever runs the real ddgs engine against a fake HTTP transport (conftest.py): no network here.
"""

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_smartrag import BM25Retriever, DuckDuckGoRetriever
from tests.conftest import CORPUS


class BundledStyleBM25(BM25Retriever):
    """BM25Retriever over the test corpus, constructible with keyword arguments only (what the suite needs)."""

    def __init__(self, **kwargs):
        built = BM25Retriever.from_texts([row["text"] for row in CORPUS], [{"title": row["title"]} for row in CORPUS])
        super().__init__(built._index, built._documents, **kwargs)


class TestBM25RetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self):
        return BundledStyleBM25

    @property
    def retriever_constructor_params(self):
        return {"k": 2}

    @property
    def retriever_query_example(self):
        return "the first capital city written in 1969 1843 1600 Moon France"


class TestDuckDuckGoRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _offline(self, transport):
        return transport

    @property
    def retriever_constructor(self):
        return DuckDuckGoRetriever

    @property
    def retriever_constructor_params(self):
        return {"k": 2}

    @property
    def retriever_query_example(self):
        return "capital of France"
