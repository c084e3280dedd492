"""Any causal LM: tiny random models of three families (Llama, Qwen2, Phi-3) with two tokenizer kinds (byte-level
BPE like SmolLM2's, and a SentencePiece-style Unigram), each with a chat template of its family's shape, built
offline. For each: both action prefixes are scored exactly, the decision's cache hand-off generates what a fresh
prompt pass does, and a batch generates what one prompt at a time does (fp32; bf16 on CPU runs). That each trains
(SFT, then PPO) is in `tests/integration_tests/test_architectures_training.py`."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from langchain_smartrag import ANSWER, SEARCH, SmartRAGPolicy
from langchain_smartrag.protocol import INSTRUCTIONS

TEXTS = [
    INSTRUCTIONS,
    SEARCH,
    ANSWER,
    "Question: Who wrote Hamlet? Observation: Hamlet is a play by Shakespeare.",
    "Paris is the capital of France.",
    "Apollo 11 landed on the Moon in 1969.",
] * 5
TEMPLATES = {  # the family's chat shape, with its own turn markers as special tokens
    "llama": (
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        (
            "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
            "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
        ),
    ),
    "qwen2": (
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        (
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
        ),
    ),
    "phi3": (
        ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"],
        (
            "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
        ),
    ),
}
MODELS = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "phi3": (Phi3Config, Phi3ForCausalLM),
}


def tokenizer(family: str, kind: str) -> PreTrainedTokenizerFast:
    specials, template = TEMPLATES[family]
    if kind == "bpe":
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<pad>", *specials],
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:  # SentencePiece-style: Unigram over Metaspace pieces
        backend = Tokenizer(models.Unigram())
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=300, special_tokens=["<pad>", "<unk>", *specials], unk_token="<unk>", show_progress=False
        )
    backend.train_from_iterator(TEXTS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token=specials[-1],
        unk_token="<unk>" if kind == "unigram" else None,
    )
    fast.chat_template = template
    return fast


def policy(family: str, kind: str, dtype: torch.dtype = torch.float32) -> SmartRAGPolicy:
    tok = tokenizer(family, kind)
    config_class, model_class = MODELS[family]
    torch.manual_seed(0)
    config = config_class(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    return SmartRAGPolicy(model_class(config).to(dtype).eval(), tok, max_new_tokens=6, autocast=False)


CASES = [(family, kind) for family in MODELS for kind in ("bpe", "unigram")]
PROMPTS = ["Who wrote Hamlet?", "What is the capital of France?", "When did Apollo 11 land on the Moon, and who?"]


def brute_force(p: SmartRAGPolicy, prompt: str, prefix: str) -> float:
    """log P(prefix | prompt) from one full-sequence pass over the same token ids the policy uses."""
    prompt_ids, prefix_ids = p.encode(prompt), p.encode(prefix)
    ids = torch.tensor([prompt_ids + prefix_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(p.model(input_ids=ids).logits.float(), dim=-1)[0]
    return sum(float(logprobs[len(prompt_ids) - 1 + j, t]) for j, t in enumerate(prefix_ids))


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_both_action_prefixes_are_scored_exactly(family, kind):
    p = policy(family, kind)
    prompts = [p.prompt(q) for q in PROMPTS]
    for prompt, decision in zip(prompts, p.decide_batch(prompts), strict=True):
        assert sum(decision.search_logprobs) == pytest.approx(brute_force(p, prompt, SEARCH), abs=1e-4)
        assert sum(decision.answer_logprobs) == pytest.approx(brute_force(p, prompt, ANSWER), abs=1e-4)


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_the_decisions_cache_hand_off_generates_what_a_fresh_prompt_pass_does(family, kind):
    p = policy(family, kind)
    prompts = [p.prompt(q) for q in PROMPTS]
    p.decide_batch(prompts)  # keeps both branches' caches
    handed_off = [g.token_ids for g in p.generate_batch(prompts, SEARCH)]
    p.prefix_cache.clear()
    assert [g.token_ids for g in p.generate_batch(prompts, SEARCH)] == handed_off


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_a_batch_generates_what_one_prompt_at_a_time_does(family, kind):
    p = policy(family, kind)
    prompts = [p.prompt(q) for q in PROMPTS]
    together = [g.token_ids for g in p.generate_batch(prompts, ANSWER)]
    assert together == [p.generate_batch([prompt], ANSWER)[0].token_ids for prompt in prompts]


@pytest.mark.parametrize("family", list(MODELS))
def test_bf16_weights_decide_and_generate_on_a_cpu(family):
    p = policy(family, "bpe", torch.bfloat16)
    prompts = [p.prompt(q) for q in PROMPTS]
    assert all(0 < d.p_search < 1 for d in p.decide_batch(prompts))
    assert all(len(g.token_ids) >= 1 for g in p.generate_batch(prompts, ANSWER))
