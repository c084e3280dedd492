"""Retrievers that ship with SmartRAG; any LangChain `BaseRetriever` plugs into the graph as well."""

from .bm25 import BM25Retriever, corpus_documents
from .web import DuckDuckGoRetriever

__all__ = ["BM25Retriever", "DuckDuckGoRetriever", "corpus_documents"]
