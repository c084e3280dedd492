"""Dynamic batching: concurrent calls from many threads or tasks share one batched model pass."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    key: Hashable
    items: Sequence[Any]
    future: Future = field(default_factory=Future)


class DynamicBatcher:
    """Coalesces concurrent `submit(key, items)` calls with equal keys into one `run(key, all_items)`.

    One worker thread owns the model. It takes the first waiting request, waits up to `max_wait_ms`
    for more (at most `max_batch_size` items in all), runs each key's items in one call and hands
    every caller its own slice, in order. A caller that was cancelled before its batch ran is
    skipped; if a batched call raises, each of its requests is retried alone, so only the caller
    whose items fail sees the error.
    """

    def __init__(
        self, run: Callable[[Hashable, list[Any]], list[Any]], *, max_batch_size: int = 32, max_wait_ms: float = 5.0
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._carry: _Request | None = None
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, key: Hashable, items: Sequence[Any]) -> Future:
        """Queue items for batching; the future resolves to their results, in order."""
        request = _Request(key, list(items))
        if not request.items:
            request.future.set_result([])
            return request.future
        self._ensure_worker()
        self._queue.put(request)
        return request.future

    def __call__(self, key: Hashable, items: Sequence[Any]) -> list[Any]:
        return self.submit(key, items).result()

    async def acall(self, key: Hashable, items: Sequence[Any]) -> list[Any]:
        """Await the results without holding a thread; cancelling the task cancels a request not yet run."""
        return await asyncio.wrap_future(self.submit(key, items))

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, name="smartrag-batcher", daemon=True)
                self._worker.start()

    def _next_requests(self) -> list[_Request]:
        """Block for one request, then gather what else arrives within the wait window."""
        first, self._carry = self._carry or self._queue.get(), None
        requests, size = [first], len(first.items)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_size:
            try:
                request = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            if size + len(request.items) > self.max_batch_size:
                self._carry = request
                break
            requests.append(request)
            size += len(request.items)
        return requests

    def _loop(self) -> None:
        while True:
            requests = self._next_requests()
            groups: dict[Hashable, list[_Request]] = {}
            for request in requests:
                if request.future.set_running_or_notify_cancel():
                    groups.setdefault(request.key, []).append(request)
            for key, group in groups.items():
                self._run_group(key, group)

    def _run_group(self, key: Hashable, requests: list[_Request]) -> None:
        try:
            results = self._run(key, [item for request in requests for item in request.items])
        except BaseException as error:  # noqa: BLE001 -- whatever the model raised goes to the callers' futures:
            # the worker thread must survive it, or every caller waiting on it would hang
            if len(requests) == 1:
                requests[0].future.set_exception(error)
                return
            logger.debug("batched call failed (%s); retrying its %d requests one by one", error, len(requests))
            for request in requests:
                self._run_group(key, [request])
            return
        start = 0
        for request in requests:
            request.future.set_result(results[start : start + len(request.items)])
            start += len(request.items)
