"""Unit tests run torch on one thread: their models are tiny, so a second intra-op thread buys nothing, and on a
machine whose cores are busy (CI, a training run beside the tests) the threads wait on each other, which made this
folder three times slower on two cores. Each module gets the setting back afterwards, for the integration tests."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
