"""LangChain's standard chat-model integration suite (langchain-tests) for `SmartRAGChatModel`: real generations,
streaming, batching, conversations, stop strings and token usage, on a tiny model loaded from its folder as
`SmartRAGChatModel(model=...)` loads any.

It answers questions in text: no tool calling, structured output or multimodal input, which the suite skips."""

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_smartrag import SmartRAGChatModel


class TestSmartRAGChatModelIntegration(ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _model_dir(self, tiny_model_dir) -> None:
        self.model_dir = str(tiny_model_dir)

    @property
    def chat_model_class(self) -> type[SmartRAGChatModel]:
        return SmartRAGChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": self.model_dir}

    @property
    def supports_model_override(self) -> bool:
        return False  # one chat model serves one policy
