"""DuckDuckGo web search (`ddgs`) as a LangChain retriever whose failures reach the graph's `errors`."""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

NO_RESULTS = "No results found."
"""What ddgs raises (a bare `DDGSException`) when every engine answered and none found anything: an empty result,
not a failure."""


class DuckDuckGoRetriever(BaseRetriever):
    """Top-`k` DuckDuckGo results as Documents (snippet as text; title and url in the metadata).

    The backend is pinned (ddgs' "auto" shuffles engines, so results would vary run to run). A search that finds
    nothing returns no documents; a failed one (offline, rate-limited, timed out) raises ddgs' exception, so the
    graph records it in `errors` and the caller can tell "nothing found" from "not searched".
    """

    k: int = Field(default=4, ge=1)
    backend: str = "duckduckgo"
    region: str = "us-en"
    safesearch: str = "moderate"
    timeout: int = 5

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """Up to `k` (default `self.k`) search results; none when the search finds nothing; raises when it fails."""
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException

        k = k or self.k
        try:
            results = DDGS(timeout=self.timeout).text(
                query, region=self.region, safesearch=self.safesearch, max_results=k, backend=self.backend
            )
        except DDGSException as error:
            if type(error) is DDGSException and str(error) == NO_RESULTS:
                return []
            raise
        return [
            Document(page_content=r.get("body", ""), metadata={"title": r.get("title", ""), "url": r.get("href", "")})
            for r in results[:k]
        ]
