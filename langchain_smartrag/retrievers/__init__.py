"""Retrievers that ship with SmartRAG; any LangChain `BaseRetriever` plugs into the graph as well."""

from .bm25 import BM25Retriever, corpus_documents
from .factory import RETRIEVER_KINDS, build_retriever
from .web import DuckDuckGoRetriever

__all__ = ["RETRIEVER_KINDS", "BM25Retriever", "DuckDuckGoRetriever", "build_retriever", "corpus_documents"]
