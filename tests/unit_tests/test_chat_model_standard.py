"""LangChain's standard chat-model unit suite (langchain-tests) for `SmartRAGChatModel` on a tiny local model.

It answers questions in text: no tool calling, structured output or multimodal input, which the suite skips."""

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_smartrag import SmartRAGChatModel, SmartRAGPolicy


@pytest.fixture(scope="module")
def tiny_policy(tiny_model_dir) -> SmartRAGPolicy:
    """The tiny model loaded once for the suite (its init-time benchmark builds the chat model many times)."""
    return SmartRAGPolicy.from_pretrained(tiny_model_dir, max_new_tokens=8, autocast=False)


class TestSmartRAGChatModelStandard(ChatModelUnitTests):
    @pytest.fixture(autouse=True)
    def _policy(self, tiny_policy: SmartRAGPolicy) -> None:
        self.policy = tiny_policy

    @property
    def chat_model_class(self) -> type[SmartRAGChatModel]:
        return SmartRAGChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"policy": self.policy}

    @property
    def supports_model_override(self) -> bool:
        return False  # one chat model serves one policy
