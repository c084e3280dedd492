"""SmartRAG for LangChain: one policy LLM decides when to retrieve, rewrites the query, and answers."""

__version__ = "0.2.0"

from .chat_model import SmartRAGChatModel
from .decision import Decision
from .decoding import Generation
from .gate import DecisionGate
from .graph import SmartRAGContext, SmartRAGGraph, SmartRAGInput, SmartRAGOutput, SmartRAGState, create_smartrag_graph
from .policy import SmartRAGPolicy
from .protocol import ANSWER, SEARCH, Action, parse_action, render_prompt
from .retrievers import BM25Retriever, DuckDuckGoRetriever, build_retriever
from .scoring import episode_reward, exact_match, f1_score, normalize_answer

__all__ = [
    "ANSWER",
    "SEARCH",
    "Action",
    "BM25Retriever",
    "Decision",
    "DecisionGate",
    "DuckDuckGoRetriever",
    "Generation",
    "SmartRAGChatModel",
    "SmartRAGContext",
    "SmartRAGGraph",
    "SmartRAGInput",
    "SmartRAGOutput",
    "SmartRAGPolicy",
    "SmartRAGState",
    "build_retriever",
    "create_smartrag_graph",
    "episode_reward",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "parse_action",
    "render_prompt",
]
