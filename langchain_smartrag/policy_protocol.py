"""What the graph needs of a policy, written down as a protocol and checked when a graph is built.

`SmartRAGPolicy` (transformers in the app's process) and `SmartRAGEndpointPolicy` (a model served over the
OpenAI-compatible completions API) both satisfy it; so may a policy of your own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # the policy's types, without importing torch when only the protocol is read
    from langchain_core.documents import Document

    from .decision import Decision
    from .decoding import Generation
    from .gate import DecisionGate

TokenCallback = Callable[[int, str], None]
"""Called as `on_token(row, new_text)` while a generation streams."""


class PolicyError(RuntimeError):
    """A policy call that failed outside the app's code (a served model's server down, slow or answering nonsense):
    the graph records it in `errors` where the episode can go on, and raises it where it cannot (the answer)."""


@runtime_checkable
class AnsweringPolicy(Protocol):
    """What answering needs of a policy (all `SmartRAGChatModel` uses): the protocol prompt, generation after a
    forced action word, and a name for traces."""

    model_name: str
    """What traces report as `ls_model_name`."""
    max_new_tokens: int
    """The most tokens a query or an answer may take."""

    def prompt(self, question: str, documents: Sequence[Document] = (), preview: Sequence[str] | None = None) -> str:
        """The protocol prompt (`protocol.render_prompt`) for a question, its documents and a preview."""
        ...

    def generate(
        self,
        prompts: Sequence[str],
        prefix: str = "",
        *,
        on_token: TokenCallback | None = None,
        seeds: Sequence[int | None] | None = None,
        **sampling: Any,
    ) -> list[Generation]:
        """Completions of `prompt + prefix` (the forced action word), each cut at its first line; `on_token(row,
        text)` receives each row's new text once, as it is generated."""
        ...

    async def agenerate(
        self,
        prompts: Sequence[str],
        prefix: str = "",
        *,
        on_token: TokenCallback | None = None,
        seeds: Sequence[int | None] | None = None,
        **sampling: Any,
    ) -> list[Generation]:
        """`generate` for asyncio callers."""
        ...


@runtime_checkable
class PolicyLike(AnsweringPolicy, Protocol):
    """The one policy behind every node: besides answering, it decides with P(search), counts tokens and says how
    many inputs to run at once."""

    max_batch_size: int
    """How many inputs `graph.batch` runs at once (what the policy batches, or keeps in flight)."""
    preview: int
    """The preview setting the policy was trained with (0: none)."""
    gate: DecisionGate | None
    """The decision gate that reads `Decision.hidden`, or None: the action token decides."""

    def encode(self, text: str) -> list[int]:
        """A text's token ids without special tokens (what traces count); empty where the tokenizer is unknown."""
        ...

    def decide(self, prompts: Sequence[str]) -> list[Decision]:
        """The retrieve-or-answer decision after each prompt: P(search) and each action word's log-probs."""
        ...

    async def adecide(self, prompts: Sequence[str]) -> list[Decision]:
        """`decide` for asyncio callers."""
        ...


POLICY_METHODS = ("prompt", "encode", "decide", "adecide", "generate", "agenerate")
"""The protocol's methods, which a policy must be able to call."""
POLICY_ATTRIBUTES = ("model_name", "max_new_tokens", "max_batch_size", "preview", "gate")
"""The protocol's attributes."""


def check_policy(policy: Any, where: str = "create_smartrag_graph") -> None:
    """Raise a TypeError naming every member of `PolicyLike` that `policy` lacks (or has but cannot call)."""
    missing = [name for name in POLICY_ATTRIBUTES if not hasattr(policy, name)]
    missing += [name for name in POLICY_METHODS if not callable(getattr(policy, name, None))]
    if missing:
        raise TypeError(
            f"{where}: the policy ({type(policy).__name__}) lacks {', '.join(missing)}: a policy provides what "
            "`langchain_smartrag.PolicyLike` lists (SmartRAGPolicy for a model in this process, "
            "SmartRAGEndpointPolicy for a served one)"
        )
