"""Each policy call reported to LangChain callbacks as a chat-model run, so tracers and streaming see it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_callback_manager_for_config
from langgraph.constants import TAG_NOSTREAM

from .policy_protocol import PolicyLike


class PolicyRun:
    """A policy call reported to LangChain callbacks as a chat-model run, so tracers and
    `stream_mode="messages"` see it; generated text streams through `token`."""

    def __init__(self, manager: CallbackManagerForLLMRun | None, model_name: str) -> None:
        self.manager, self.model_name = manager, model_name
        self.message_id = f"lc_run--{manager.run_id}" if manager else None  # chunks and the final message share it

    def token(self, _row: int, text: str) -> None:
        """Stream one piece of generated text (the policy's `on_token` callback)."""
        if self.manager is not None:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text, id=self.message_id))
            self.manager.on_llm_new_token(text, chunk=chunk)

    def end(self, text: str, prompt_tokens: int, completion_tokens: int, **metadata: Any) -> None:
        """Close the run with its text, token usage (as LangChain's chat models report it) and any metadata."""
        if self.manager is None:
            return
        usage = UsageMetadata(
            input_tokens=prompt_tokens, output_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
        )
        message = AIMessage(
            content=text,
            id=self.message_id,
            usage_metadata=usage,
            response_metadata={"model_name": self.model_name, **metadata},
        )
        token_usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        self.manager.on_llm_end(
            LLMResult(
                generations=[[ChatGeneration(message=message)]],
                llm_output={"token_usage": token_usage, "model_name": self.model_name},
            )
        )


@contextlib.contextmanager
def policy_run(
    config: RunnableConfig,
    node: str,
    prompt: str,
    policy: PolicyLike,
    params: dict[str, Any],
    *,
    stream: bool = True,
) -> Iterator[PolicyRun]:
    """Report one policy call as a chat-model run: model name, provider and invocation parameters up front
    (the `ls_*` metadata LangSmith reads), token usage at the end."""
    manager = get_callback_manager_for_config(config)
    if not manager.handlers:
        yield PolicyRun(None, policy.model_name)
        return
    if not stream:
        manager.add_tags([TAG_NOSTREAM], inherit=False)
    manager.add_metadata(
        {
            "ls_provider": getattr(policy, "ls_provider", "huggingface"),
            "ls_model_name": policy.model_name,
            "ls_model_type": "chat",
            "ls_temperature": params.get("temperature"),
            "ls_max_tokens": params.get("max_new_tokens"),
        },
        inherit=False,
    )
    (run,) = manager.on_chat_model_start(
        {"name": type(policy).__name__},
        [[HumanMessage(content=prompt)]],
        name=f"policy:{node}",
        invocation_params={"model": policy.model_name, "node": node, **params},
    )
    try:
        yield PolicyRun(run, policy.model_name)
    except BaseException as error:
        run.on_llm_error(error)
        raise
