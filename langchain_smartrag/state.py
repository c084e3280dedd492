"""The graph's input, output, state channels and per-call context: the types every node and caller share."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, NotRequired

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypedDict

from .policy import SmartRAGPolicy


class SmartRAGInput(TypedDict):
    """What a caller passes: the question (all the model of a tool made by `graph.as_tool()` sees)."""

    question: str


class SmartRAGOutput(TypedDict, total=False):
    """What an episode produces; every list and count is this question's own, whatever the thread held before."""

    question: str
    answer: str
    well_formed: bool
    """Whether the final output parsed as an `[Answer]` with text (the reward's -1 case when False)."""
    retrievals: int
    queries: list[str]
    documents: list[Document]
    search_probabilities: list[float]
    errors: list[str]
    trace: list[dict[str, Any]]
    """With `record=True`: every policy call as {node, prompt, prefix, token_ids, logprobs} (for training)."""
    previews: int
    """Searches made only to show the first decision the top hits' titles (0 with the preview off)."""
    preview: list[str] | None
    """The titles that decision saw (None with the preview off)."""


class SmartRAGState(TypedDict):
    """The graph's channels. Lists and counts accumulate across the nodes of one episode; `begin` clears them."""

    question: str
    answer: NotRequired[str]
    well_formed: NotRequired[bool]
    retrievals: NotRequired[Annotated[int, operator.add]]
    queries: NotRequired[Annotated[list[str], operator.add]]
    documents: NotRequired[Annotated[list[Document], operator.add]]
    search_probabilities: NotRequired[Annotated[list[float], operator.add]]
    errors: NotRequired[Annotated[list[str], operator.add]]
    trace: NotRequired[Annotated[list[dict[str, Any]], operator.add]]
    previews: NotRequired[Annotated[int, operator.add]]
    preview: NotRequired[list[str] | None]


EPISODE_START: dict[str, Any] = {
    "retrievals": 0, "queries": [], "documents": [], "search_probabilities": [], "errors": [], "trace": [],
    "previews": 0,
}
"""Each accumulating channel's value when a question starts (written over whatever a thread or parent held)."""


@dataclass
class SmartRAGContext:
    """Per-call overrides (`graph.invoke(..., context=SmartRAGContext(policy=trained))`); None keeps the default."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(arbitrary_types_allowed=True)

    policy: SkipJsonSchema[SmartRAGPolicy | None] = None
    retriever: SkipJsonSchema[BaseRetriever | None] = None
    threshold: float | None = None
    max_retrievals: int | None = None
    rewrite_query: bool | None = None
    preview: int | None = None
    """Titles of the question's top hits the first decision sees (0: off, the paper's protocol)."""
    sample: bool | None = None
    """Training rollouts: draw the decision from P(search) and sample text (top-k 50) instead of greedy.
    `config["configurable"]["seed"]` seeds an episode's draws, whatever else shares its batches."""
    temperature: float | None = None
    """With `sample`: the text's sampling temperature (default 1)."""
    sample_decision: bool | None = None
    """With `sample`: draw the decision (default), or take it at `threshold` as when serving while the text is
    still sampled (paired PPO rollouts force each branch with threshold 0 and above 1)."""
    record: bool | None = None
    """Append every policy call to the state's `trace`."""
