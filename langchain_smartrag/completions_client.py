"""One OpenAI-compatible `/v1/completions` server (vLLM, SGLang, llama.cpp's server) seen from the policy: requests
with a timeout, retries with backoff, streamed text, and one-line errors that name the server and what to do."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from .policy_protocol import PolicyError

RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth another try: the server is busy, restarting, or failed this request alone."""


class EndpointError(PolicyError):
    """A served policy's server failed a request: down, too slow, an error status, or a reply that is not a
    completion. The message is one line naming the server."""


class _Retry(Exception):
    """A failed try that another may fix (a dropped connection, a timeout, a busy server), and what to say if none
    does."""


def completions_url(base_url: str) -> str:
    """The completions endpoint of a server given as `http://host:port` or `http://host:port/v1`."""
    base = base_url.rstrip("/")
    return f"{base}/completions" if base.endswith("/v1") else f"{base}/v1/completions"


class CompletionsClient:
    """Posts completion requests to one server through a sync client (threads) and an async one per event loop,
    trying each request up to `1 + max_retries` times, `backoff * 2**n` seconds apart (jittered)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
    ) -> None:
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ValueError("timeout must be > 0, max_retries and backoff >= 0")
        self.url = completions_url(base_url)
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = http_client or httpx.Client(timeout=timeout)
        self._given_async_client = http_async_client
        self._async_client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    def _aclient(self) -> httpx.AsyncClient:
        """The async client: the one given, else one per running event loop (a client's pool is bound to its loop)."""
        if self._given_async_client is not None:
            return self._given_async_client
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_client[0] is not loop:
            self._async_client = (loop, httpx.AsyncClient(timeout=self.timeout))
        return self._async_client[1]

    def _pause(self, attempt: int) -> float:
        """Seconds to wait before try `attempt + 1`."""
        return self.backoff * 2**attempt * (0.5 + random.random() / 2)

    # one request, its answer read whole -------------------------------------------------------------
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """The server's JSON answer to a completion request."""
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post(self.url, json=body, headers=self.headers, timeout=self.timeout)
                return self._json(response)
            except (httpx.TransportError, _Retry) as error:
                if attempt == self.max_retries:
                    raise self._gave_up(error) from error
                time.sleep(self._pause(attempt))
        raise AssertionError("unreachable")

    async def apost(self, body: dict[str, Any]) -> dict[str, Any]:
        """`post` for asyncio callers: many requests in flight at once."""
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._aclient().post(self.url, json=body, headers=self.headers, timeout=self.timeout)
                return self._json(response)
            except (httpx.TransportError, _Retry) as error:
                if attempt == self.max_retries:
                    raise self._gave_up(error) from error
                await asyncio.sleep(self._pause(attempt))
        raise AssertionError("unreachable")

    # one request, its answer streamed ----------------------------------------------------------------
    def stream(
        self, body: dict[str, Any], on_chunk: Callable[[dict[str, Any]], bool], on_start: Callable[[], None]
    ) -> None:
        """Stream a completion's chunks to `on_chunk` until it returns True (enough read) or the stream ends. Each try
        calls `on_start` first: a failed try starts over, and `on_chunk` sees the chunks again (it must not repeat
        what it already passed on)."""
        body = {**body, "stream": True}
        for attempt in range(self.max_retries + 1):
            on_start()
            try:
                with self._client.stream(
                    "POST", self.url, json=body, headers=self.headers, timeout=self.timeout
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        self._json(response)  # raises for the status
                    for chunk in self._chunks(response.iter_lines()):
                        if on_chunk(chunk):
                            return
                    return
            except (httpx.TransportError, _Retry) as error:
                if attempt == self.max_retries:
                    raise self._gave_up(error) from error
                time.sleep(self._pause(attempt))

    async def astream(
        self, body: dict[str, Any], on_chunk: Callable[[dict[str, Any]], bool], on_start: Callable[[], None]
    ) -> None:
        """`stream` for asyncio callers."""
        body = {**body, "stream": True}
        for attempt in range(self.max_retries + 1):
            on_start()
            try:
                async with self._aclient().stream(
                    "POST", self.url, json=body, headers=self.headers, timeout=self.timeout
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        self._json(response)
                    async for chunk in self._achunks(response.aiter_lines()):
                        if on_chunk(chunk):
                            return
                    return
            except (httpx.TransportError, _Retry) as error:
                if attempt == self.max_retries:
                    raise self._gave_up(error) from error
                await asyncio.sleep(self._pause(attempt))

    def _chunks(self, lines: Iterator[str]) -> Iterator[dict[str, Any]]:
        """The JSON chunks of a server-sent event stream, up to `data: [DONE]`."""
        for line in lines:
            chunk = self._event(line)
            if chunk is None:
                return
            if chunk:
                yield chunk

    async def _achunks(self, lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
        async for line in lines:
            chunk = self._event(line)
            if chunk is None:
                return
            if chunk:
                yield chunk

    def _event(self, line: str) -> dict[str, Any] | None:
        """One event line's JSON ({} for a line that carries none), or None at `[DONE]`."""
        if not line.startswith("data:"):
            return {}
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return None
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as error:
            raise EndpointError(f"the policy server at {self.url} streamed malformed JSON ({error})") from error
        if not isinstance(chunk, dict):
            raise EndpointError(f"the policy server at {self.url} streamed {type(chunk).__name__}, not a completion")
        if "error" in chunk:
            raise EndpointError(f"the policy server at {self.url} failed mid-stream: {_message(chunk)}")
        return chunk

    # answers ---------------------------------------------------------------------------------------------
    def _json(self, response: httpx.Response) -> dict[str, Any]:
        """A completion's JSON, or the error its status or body means (`_Retry` where another try may help)."""
        if response.status_code in RETRIED_STATUS:
            raise _Retry(f"answered {response.status_code}: {_message(_loads(response))}")
        if response.status_code == 404:
            raise EndpointError(
                f"the policy server at {self.url} answered 404 ({_message(_loads(response))}): the model or adapter "
                "name is not served there (list them at GET .../v1/models; vLLM names adapters with --lora-modules) "
                "or the URL is not an OpenAI-compatible server"
            )
        if response.status_code >= 400:
            message = _message(_loads(response))
            hint = "; shorten the prompt or serve a longer context" if "context" in message.lower() else ""
            raise EndpointError(
                f"the policy server at {self.url} refused the request ({response.status_code}: {message}){hint}"
            )
        body = _loads(response)
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
            raise EndpointError(
                f"the policy server at {self.url} returned malformed JSON ({_preview(response.text)}): is it an "
                "OpenAI-compatible completions server?"
            )
        return body

    def _gave_up(self, error: Exception) -> EndpointError:
        """The one-line error after the last try."""
        tries = f"{self.max_retries + 1} tries"
        if isinstance(error, httpx.TimeoutException):
            return EndpointError(
                f"the policy server at {self.url} gave no answer within {self.timeout} s ({tries}): it is overloaded "
                "or hung; raise timeout= or scale the server"
            )
        if isinstance(error, httpx.TransportError):
            return EndpointError(
                f"the policy server at {self.url} is unreachable ({type(error).__name__}: {error}; {tries}): start it "
                "(README, 'Serve the policy') or fix base_url"
            )
        return EndpointError(f"the policy server at {self.url} {error} ({tries})")

    def close(self) -> None:
        """Close the sync client's connections."""
        self._client.close()


def _loads(response: httpx.Response) -> Any:
    """A response's JSON, or its text when it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text


def _message(body: Any) -> str:
    """What an error body says, on one line: OpenAI's and vLLM's `{"error": {"message": ...}}`, llama.cpp's and
    others' `{"error": "..."}` or `{"message": ...}`, else the start of the text."""
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return _preview(str(message))
    return _preview(str(body))


def _preview(text: str, chars: int = 160) -> str:
    """A text on one line, cut to `chars`."""
    line = " ".join(text.split())
    return line if len(line) <= chars else line[: chars - 3] + "..."
