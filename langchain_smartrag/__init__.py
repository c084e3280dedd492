"""SmartRAG for LangChain: one policy LLM decides when to retrieve, rewrites the query, and answers.

The public names load on first use (PEP 562): `import langchain_smartrag` stays cheap and never imports torch or
transformers, which load when a policy, graph or chat model is first named."""

import importlib as _importlib
import typing as _typing

__version__ = "0.2.0"

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports each name on first use
    from .chat_model import SmartRAGChatModel
    from .decision import Decision
    from .decoding import Generation
    from .endpoint_policy import SmartRAGEndpointPolicy
    from .gate import DecisionGate
    from .graph import (
        SmartRAGContext,
        SmartRAGGraph,
        SmartRAGInput,
        SmartRAGOutput,
        SmartRAGState,
        create_smartrag_graph,
        create_smartrag_tool,
    )
    from .policy import SmartRAGPolicy
    from .policy_protocol import PolicyError, PolicyLike
    from .protocol import ANSWER, SEARCH, Action, parse_action, render_prompt
    from .retrievers import BM25Retriever, DuckDuckGoRetriever, build_retriever
    from .scoring import episode_reward, exact_match, f1_score, normalize_answer

_SOURCES: dict[str, str] = {
    "ANSWER": ".protocol",
    "SEARCH": ".protocol",
    "Action": ".protocol",
    "BM25Retriever": ".retrievers",
    "Decision": ".decision",
    "DecisionGate": ".gate",
    "DuckDuckGoRetriever": ".retrievers",
    "Generation": ".decoding",
    "PolicyError": ".policy_protocol",
    "PolicyLike": ".policy_protocol",
    "SmartRAGChatModel": ".chat_model",
    "SmartRAGContext": ".graph",
    "SmartRAGEndpointPolicy": ".endpoint_policy",
    "SmartRAGGraph": ".graph",
    "SmartRAGInput": ".graph",
    "SmartRAGOutput": ".graph",
    "SmartRAGPolicy": ".policy",
    "SmartRAGState": ".graph",
    "build_retriever": ".retrievers",
    "create_smartrag_graph": ".graph",
    "create_smartrag_tool": ".graph",
    "episode_reward": ".scoring",
    "exact_match": ".scoring",
    "f1_score": ".scoring",
    "normalize_answer": ".scoring",
    "parse_action": ".protocol",
    "render_prompt": ".protocol",
}
"""Each public name and the submodule it comes from (the `TYPE_CHECKING` imports above, as data)."""

__all__ = [
    "ANSWER",
    "SEARCH",
    "Action",
    "BM25Retriever",
    "Decision",
    "DecisionGate",
    "DuckDuckGoRetriever",
    "Generation",
    "PolicyError",
    "PolicyLike",
    "SmartRAGChatModel",
    "SmartRAGContext",
    "SmartRAGEndpointPolicy",
    "SmartRAGGraph",
    "SmartRAGInput",
    "SmartRAGOutput",
    "SmartRAGPolicy",
    "SmartRAGState",
    "build_retriever",
    "create_smartrag_graph",
    "create_smartrag_tool",
    "episode_reward",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "parse_action",
    "render_prompt",
]


if not _typing.TYPE_CHECKING:  # hidden from type checkers, which read the imports above: a typo stays an error there

    def __getattr__(name: str) -> _typing.Any:
        """A public name, imported from its submodule on first use and kept here, so the next use is a plain lookup."""
        source = _SOURCES.get(name)
        if source is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(source, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The module's own names and every public one, loaded or not (what `dir()` and tab completion show)."""
    return sorted({*globals(), *__all__})
