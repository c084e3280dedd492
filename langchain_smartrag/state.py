"""The graph's input, output, state channels and per-call context: the types every node and caller share."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar, Literal, NotRequired

from langchain_core.documents import Document
from langchain_core.messages import AnyMessage
from langchain_core.retrievers import BaseRetriever
from langgraph.graph.message import add_messages
from pydantic import ConfigDict
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypedDict

from .policy_protocol import PolicyLike

Decider = Literal["gate", "token"]
"""Who takes the first decision: the policy's decision gate, or the action token's P(search)."""


class SmartRAGInput(TypedDict):
    """What a caller passes: the question (all the model of a tool made by `graph.as_tool()` sees), or a conversation
    whose last human message is the question."""

    question: str
    messages: NotRequired[SkipJsonSchema[list[AnyMessage]]]
    """A conversation (a `MessagesState` parent's, an agent's): without `question`, its last human message is the
    question. Out of the JSON schema, so a form or a model is asked for the question alone."""


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
    """Every policy call as {node, prompt, prefix, token_ids, logprobs} when a training rollout records (empty when
    serving)."""
    previews: int
    """Searches made only for the first decision: to show it the top hits' titles, or their scores to the gate."""
    preview: list[str] | None
    """The titles that decision saw (None with the preview off)."""
    probe: dict[str, float] | None
    """What the decision gate read of the index (`gate.INDEX_FEATURES`; None when no gate decided)."""
    messages: list[AnyMessage]
    """The conversation with the answer appended as an AIMessage, when there is one (the input's `messages`, or a
    thread's); empty for a question asked on its own."""


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
    probe: NotRequired[dict[str, float] | None]
    probe_documents: NotRequired[list[Document]]
    """The probe's hits, kept for a gate that reads them: its search answers from them (the probe is the search)."""
    draft: NotRequired[dict[str, Any] | None]
    """The draft the gate picked (a `Generation`'s fields): the answer node gives it instead of generating anew."""
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    """A conversation outlives its episodes: `begin` never clears it."""


EPISODE_START: dict[str, Any] = {
    "retrievals": 0,
    "queries": [],
    "documents": [],
    "search_probabilities": [],
    "errors": [],
    "trace": [],
    "previews": 0,
}
"""Each accumulating channel's value when a question starts (written over whatever a thread or parent held)."""

EPISODE_CLEARED: dict[str, Any] = {
    "answer": "",
    "well_formed": False,
    "preview": None,
    "probe": None,
    "probe_documents": [],
    "draft": None,
}
"""The other channels a question starts without: no thread ever shows a new question with an earlier answer."""


@dataclass
class SmartRAGContext:
    """A call's settings over the graph's (`graph.invoke(..., context=SmartRAGContext(threshold=0.3))`): a field left
    None keeps the graph's own, which the graph's context JSON schema (what LangGraph Studio shows) gives as its
    default."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(arbitrary_types_allowed=True, use_attribute_docstrings=True)

    policy: SkipJsonSchema[PolicyLike | None] = None
    """Another policy for this call (a trained adapter, say)."""
    retriever: SkipJsonSchema[BaseRetriever | None] = None
    """Another retriever for this call."""
    threshold: float | None = None
    """Search when P(search) is at least this: 0 always searches, above 1 never does (the default is the decider's
    own: a gate's selected threshold, or 0.5 for the action token)."""
    max_retrievals: int | None = None
    """Searches allowed before the answer is forced (the paper's N)."""
    rewrite_query: bool | None = None
    """Whether the policy writes the search query (false: the question itself is the query, retrieve-then-read)."""
    preview: int | None = None
    """Titles of the question's top hits the first decision sees (0: off, the paper's protocol)."""
    decision: Decider | None = None
    """Who takes the first decision: the policy's decision gate (reads the index's scores; the default where the
    policy ships one) or the action token's P(search) (the paper's)."""

    def __post_init__(self) -> None:
        _check(self)


def graph_context_schema(defaults: dict[str, Any]) -> type[SmartRAGContext]:
    """`SmartRAGContext` whose JSON schema gives one graph's `defaults` (a value for every field the schema shows), so
    Studio and the server show the settings a call gets, never null."""

    def show_defaults(schema: dict[str, Any], cls: type) -> None:
        for name, value in defaults.items():
            field = schema["properties"][name]
            types = [t for t in field.pop("anyOf", []) if t.get("type") != "null"]
            field.update(types[0] if len(types) == 1 else {"anyOf": types} if types else {})
            field["default"] = value

    config = ConfigDict(arbitrary_types_allowed=True, use_attribute_docstrings=True, json_schema_extra=show_defaults)
    return type(
        "SmartRAGContext", (SmartRAGContext,), {"__pydantic_config__": config, "__doc__": SmartRAGContext.__doc__}
    )


@dataclass(frozen=True)
class Settings:
    """One call's settings, resolved: the graph's defaults with the call's non-None context fields over them."""

    policy: PolicyLike
    retriever: BaseRetriever
    threshold: float | None
    """None: the decider's own (0.5 for the action token, the gate's selected threshold for a gate)."""
    max_retrievals: int
    rewrite_query: bool
    preview: int
    decision: Decider
    sample: bool
    """Draw the decision from P(search) and sample text (top-k 50) instead of greedy: training rollouts only, set by
    their context (`langchain_smartrag.training.trajectories.RolloutContext`), never by a public one."""
    temperature: float
    """With `sample`: the text's sampling temperature."""
    sample_decision: bool
    """With `sample`: draw the decision, or take it at `threshold` while the text is still sampled."""
    record: bool
    """Append every policy call to the state's `trace`."""

    def __post_init__(self) -> None:
        _check(self)

    def over(self, context: SmartRAGContext | None) -> Settings:
        """These settings with the call's context (its non-None fields) over them."""
        if context is None:
            return self
        return replace(self, **{k: v for k, v in vars(context).items() if v is not None})


def _check(settings: SmartRAGContext | Settings) -> None:
    """Check each setting where it enters: a bad one is a ValueError naming it, never a silent default. The sampling
    settings exist on `Settings` and on a training rollout's context (a `SmartRAGContext` subclass) only."""
    _number("threshold", settings.threshold, low=0.0)  # above 1: never search (P(search) is at most 1)
    _number("temperature", getattr(settings, "temperature", None), low=0.0, low_open=True)
    for name in ("max_retrievals", "preview"):
        value = getattr(settings, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    if settings.decision not in (None, "gate", "token"):
        raise ValueError(f"decision must be 'gate' or 'token', got {settings.decision!r}")
    for name in ("rewrite_query", "sample", "sample_decision", "record"):
        if getattr(settings, name, None) not in (None, True, False):
            raise ValueError(f"{name} must be true or false, got {getattr(settings, name)!r}")


def _number(name: str, value: Any, *, low: float, low_open: bool = False) -> None:
    """A setting that must be a real number above `low` (or None: the default)."""
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < low or (low_open and value == low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
