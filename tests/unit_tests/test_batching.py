"""Dynamic batching: concurrent callers share batched calls, keep their own results, and survive each other's
failures."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from langchain_smartrag.batching import DynamicBatcher


class Squarer:
    """A batched function that records the batch sizes it was called with; negative numbers fail."""

    def __init__(self, delay=0.0):
        self.calls, self.items, self.delay = [], [], delay

    def __call__(self, key, items):
        self.calls.append((key, len(items)))
        self.items.append((key, list(items)))
        time.sleep(self.delay)
        if any(x < 0 for x in items):
            raise ValueError(f"negative item in {items}")
        return [x * x for x in items]


def run_concurrently(fn, args, workers=16):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, args))


def test_concurrent_calls_share_batches_and_get_their_own_results():
    squarer = Squarer(delay=0.01)
    batcher = DynamicBatcher(squarer, max_batch_size=64, max_wait_ms=20)
    results = run_concurrently(lambda i: batcher("k", [i, i + 100]), range(32))
    assert results == [[i * i, (i + 100) ** 2] for i in range(32)]
    assert len(squarer.calls) < 32 / 2  # coalesced: far fewer calls than callers
    assert sum(n for _, n in squarer.calls) == 64


def test_batches_never_exceed_max_batch_size():
    squarer = Squarer(delay=0.01)
    batcher = DynamicBatcher(squarer, max_batch_size=5, max_wait_ms=20)
    run_concurrently(lambda i: batcher("k", [i, i]), range(20))
    assert max(n for _, n in squarer.calls) <= 5


def test_only_equal_keys_share_a_call():
    squarer = Squarer(delay=0.01)
    batcher = DynamicBatcher(squarer, max_batch_size=64, max_wait_ms=20)
    results = run_concurrently(lambda i: batcher(i % 2, [i]), range(16))
    assert results == [[i * i] for i in range(16)]
    assert all(x % 2 == key for key, items in squarer.items for x in items)
    assert len(squarer.calls) < 16


def test_a_failing_caller_does_not_take_the_others_down():
    batcher = DynamicBatcher(Squarer(delay=0.01), max_batch_size=64, max_wait_ms=20)

    def call(i):
        try:
            return batcher("k", [i if i != 7 else -1])
        except ValueError as error:
            return str(error)

    results = run_concurrently(call, range(16))
    assert results[7] == "negative item in [-1]"
    assert [r for i, r in enumerate(results) if i != 7] == [[i * i] for i in range(16) if i != 7]


def test_a_cancelled_async_caller_is_skipped_and_nothing_hangs():
    squarer = Squarer(delay=0.05)
    batcher = DynamicBatcher(squarer, max_batch_size=1, max_wait_ms=0)

    async def main():
        first = asyncio.ensure_future(batcher.acall("k", [1]))  # occupies the worker
        await asyncio.sleep(0.01)
        doomed = asyncio.ensure_future(batcher.acall("k", [2]))
        await asyncio.sleep(0)
        doomed.cancel()
        survivor = await asyncio.wait_for(batcher.acall("k", [3]), 5)
        return await first, survivor, doomed.cancelled()

    assert asyncio.run(main()) == ([1], [9], True)
    assert [n for _, n in squarer.calls] == [1, 1]  # the cancelled request never ran


def test_empty_requests_resolve_immediately_without_a_call():
    squarer = Squarer()
    assert DynamicBatcher(squarer)("k", []) == [] and squarer.calls == []


def test_policy_calls_from_threads_coalesce_into_fewer_forward_passes(policy):
    prompts = [policy.prompt(f"Question number {i}?") for i in range(16)]
    alone = [policy.search_probability_batch([p])[0] for p in prompts]
    passes = []
    hook = policy.model.register_forward_hook(lambda *_: passes.append(1))
    try:
        together = run_concurrently(lambda p: policy.search_probability([p])[0], prompts)
    finally:
        hook.remove()
    assert together == pytest.approx(alone, abs=1e-5)
    assert len(passes) < 16  # each batched call is 2 passes (prompt, then the action prefixes)


def test_concurrent_generation_gives_each_caller_its_own_completion(policy):
    prompts = [policy.prompt(f"Who is person {i}?") for i in range(8)]
    alone = [policy.generate_batch([p], "[Answer]")[0].token_ids for p in prompts]
    together = run_concurrently(lambda p: policy.generate([p], "[Answer]")[0].token_ids, prompts)
    assert together == alone


def test_threads_and_tasks_share_one_worker(policy):
    prompts = [policy.prompt(f"q{i}?") for i in range(4)]

    async def tasks():
        return await asyncio.gather(*(policy.asearch_probability([p]) for p in prompts))

    results = {}
    thread = threading.Thread(
        target=lambda: results.setdefault(
            "threads", run_concurrently(policy.search_probability, [[p] for p in prompts])
        )
    )
    thread.start()
    results["tasks"] = asyncio.run(tasks())
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [p for (p,) in results["tasks"]] == pytest.approx([p for (p,) in results["threads"]], abs=1e-5)
