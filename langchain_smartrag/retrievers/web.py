"""DuckDuckGo web search (`ddgs`) as a LangChain retriever that never crashes the graph."""

from __future__ import annotations

import logging

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

logger = logging.getLogger(__name__)


class DuckDuckGoRetriever(BaseRetriever):
    """Top-`k` DuckDuckGo results as Documents (snippet as text; title and url in the metadata).

    The backend is pinned (ddgs' "auto" shuffles engines, so results would vary run to run). A
    failed search (offline, rate-limited, no results) is logged as a warning and returns no documents.
    """

    k: int = Field(default=4, ge=1)
    backend: str = "duckduckgo"
    region: str = "us-en"
    safesearch: str = "moderate"
    timeout: int = 5

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """Up to `k` (default `self.k`) search results; none when the search fails."""
        from ddgs import DDGS

        k = k or self.k
        try:
            results = DDGS(timeout=self.timeout).text(
                query, region=self.region, safesearch=self.safesearch, max_results=k, backend=self.backend
            )
        except Exception as error:  # noqa: BLE001 -- ddgs raises DDGSException subclasses, primp may raise its own
            logger.warning("web search for %r failed: %s", query, error)
            return []
        return [
            Document(page_content=r.get("body", ""), metadata={"title": r.get("title", ""), "url": r.get("href", "")})
            for r in results[:k]
        ]
