"""LangChain's standard retriever suite (langchain-tests) for both built-in retrievers.

The web retriever runs the real ddgs engine against a fake HTTP transport (conftest.py): no network here.
"""

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_smartrag import BM25Retriever, DuckDuckGoRetriever
from tests.conftest import CORPUS


class TestBM25RetrieverStandard(RetrieversIntegrationTests):
    """The documented constructor, `BM25Retriever(documents=..., k=...)`, as any LangChain retriever is built."""

    @property
    def retriever_constructor(self):
        return BM25Retriever

    @property
    def retriever_constructor_params(self):
        documents = [Document(page_content=row["text"], metadata={"title": row["title"]}) for row in CORPUS]
        return {"documents": documents, "k": 2}

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
