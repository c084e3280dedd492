"""SmartRAGPolicy: batched decisions and generation that agree with plain full-sequence forward passes."""

import json

import pytest
import torch
from langchain_core.documents import Document

from langchain_smartrag import ANSWER, SEARCH, SmartRAGPolicy
from langchain_smartrag.hardware import bf16_is_fast

QUESTIONS = ["Who wrote Hamlet?", "When did Apollo 11 land on the Moon, and who walked on it first?", "Paris?"]


def sequence_logprob(policy, prompt_ids, continuation_ids):
    """log P(continuation | prompt) from one unpadded forward pass over the whole sequence."""
    with torch.no_grad():
        logits = policy.model(torch.tensor([prompt_ids + continuation_ids])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return sum(logprobs[len(prompt_ids) - 1 + i, t].item() for i, t in enumerate(continuation_ids))


def test_search_probability_matches_full_sequence_scoring(policy):
    prompts = [policy.prompt(q) for q in QUESTIONS]  # different lengths: exercises left padding
    batched = policy.search_probability(prompts)
    for prompt, p_search in zip(prompts, batched):
        ids = policy.encode(prompt)
        log_s, log_a = (sequence_logprob(policy, ids, policy.encode(a)) for a in (SEARCH, ANSWER))
        assert p_search == pytest.approx(1 / (1 + torch.exp(torch.tensor(log_a - log_s)).item()), abs=1e-4)


def test_forced_policies_decide_both_ways(searching_policy, answering_policy):
    prompts = [searching_policy.prompt(q) for q in QUESTIONS]
    assert min(searching_policy.search_probability(prompts)) > 0.99
    assert max(answering_policy.search_probability(prompts)) < 0.01


def test_batched_generation_equals_one_at_a_time(policy):
    prompts = [policy.prompt(q) for q in QUESTIONS]
    batched = policy.generate(prompts, ANSWER)
    assert [g.token_ids for g in batched] == [policy.generate([p], ANSWER)[0].token_ids for p in prompts]


def test_recorded_logprobs_are_the_models(policy):
    prompt = policy.prompt(QUESTIONS[0])
    (generation,) = policy.generate([prompt], SEARCH, sample=True, seeds=[0])
    ids = policy.encode(prompt) + policy.encode(SEARCH)
    recomputed = [
        sequence_logprob(policy, ids + generation.token_ids[:i], [t]) for i, t in enumerate(generation.token_ids)
    ]
    assert generation.logprobs == pytest.approx(recomputed, abs=1e-4)


def test_generation_stops_at_max_new_tokens_and_says_so(searching_policy):
    (generation,) = searching_policy.generate([searching_policy.prompt("q?")], ANSWER, max_new_tokens=5)
    assert len(generation.token_ids) == 5 and not generation.finished


def test_a_seeded_row_samples_the_same_text_whatever_shares_its_batch(policy):
    prompts = [policy.prompt(q) for q in QUESTIONS]
    together = policy.generate_batch(prompts, SEARCH, sample=True, top_k=0, seeds=range(len(prompts)))
    alone = [policy.generate_batch([p], SEARCH, sample=True, top_k=0, seeds=[i])[0] for i, p in enumerate(prompts)]
    other_seed = policy.generate_batch(prompts, SEARCH, sample=True, top_k=0, seeds=range(100, 100 + len(prompts)))
    assert [g.token_ids for g in together] == [g.token_ids for g in alone] != [g.token_ids for g in other_seed]


def test_empty_batches_run_nothing(policy):
    assert policy.search_probability([]) == [] and policy.generate([], ANSWER) == []


def test_a_huge_question_is_cut_from_the_middle_with_a_warning(policy):
    question = "start " + "filler " * 5000 + "end?"
    with pytest.warns(UserWarning, match="truncated from the middle"):
        prompt = policy.prompt(question)
    assert "start" in prompt and "end?" in prompt
    assert len(policy.encode(prompt)) < policy.max_question_tokens + 200


def test_documents_that_do_not_fit_are_dropped_last_first(tiny_tokenizer):
    from langchain_smartrag.protocol import render_prompt
    from langchain_smartrag.training.tiny import tiny_model

    policy = SmartRAGPolicy(tiny_model(tiny_tokenizer), tiny_tokenizer, max_new_tokens=8, autocast=False)
    documents = [Document(page_content=f"document number {i} " * 10, metadata={"title": f"D{i}"}) for i in range(6)]
    two_fit = render_prompt("Who?", documents[:2], tiny_tokenizer)
    policy.max_context = len(policy.encode(two_fit)) + policy.max_new_tokens + len(policy.encode(ANSWER))
    assert policy.prompt("Who?", documents) == two_fit


def test_from_pretrained_round_trip_and_peft_adapter(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    policy = SmartRAGPolicy.from_pretrained(tiny_model_dir, autocast=False)
    assert policy.tokenizer.padding_side == "left"
    lora = get_peft_model(policy.model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)

    base = SmartRAGPolicy.from_pretrained(tiny_model_dir, autocast=False)
    adapted = SmartRAGPolicy.from_pretrained(tiny_model_dir, adapter=tmp_path / "adapter", autocast=False)
    by_directory = SmartRAGPolicy.from_pretrained(tmp_path / "adapter", autocast=False)
    prompt = [base.prompt("Who wrote Hamlet?")]
    assert adapted.search_probability(prompt) == by_directory.search_probability(prompt)
    assert adapted.search_probability(prompt) != base.search_probability(prompt)


def test_a_corrupt_checkpoint_is_a_clear_error(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in tiny_model_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="could not load a policy from"):
        SmartRAGPolicy.from_pretrained(broken)


def test_bf16_autocast_is_on_by_default_only_where_the_hardware_makes_it_faster(tiny_model_dir):
    """On a CPU without native bf16 (AVX2 only), autocast emulates it: several times slower than fp32."""
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert bf16_is_fast("meta") is False
    assert SmartRAGPolicy.from_pretrained(tiny_model_dir).autocast == native
    assert SmartRAGPolicy.from_pretrained(tiny_model_dir, autocast=True).autocast is True
    assert SmartRAGPolicy.from_pretrained(tiny_model_dir, autocast=False).autocast is False


def test_chunked_prefill_gives_the_same_results_as_one_pass(tiny_tokenizer):
    from langchain_smartrag.training.tiny import tiny_model

    model = tiny_model(tiny_tokenizer)
    one_pass = SmartRAGPolicy(model, tiny_tokenizer, max_new_tokens=8, autocast=False, prefill_chunk_tokens=10**9)
    row_by_row = SmartRAGPolicy(model, tiny_tokenizer, max_new_tokens=8, autocast=False, prefill_chunk_tokens=1)
    prompts = [one_pass.prompt(q) for q in QUESTIONS * 2]
    assert row_by_row.search_probability_batch(prompts) == pytest.approx(
        one_pass.search_probability_batch(prompts), abs=1e-5
    )
    assert [g.token_ids for g in row_by_row.generate_batch(prompts, ANSWER)] == [
        g.token_ids for g in one_pass.generate_batch(prompts, ANSWER)
    ]


def test_generation_after_a_decision_reuses_its_prompt_pass(tiny_tokenizer):
    from langchain_smartrag.training.tiny import tiny_model

    model = tiny_model(tiny_tokenizer)
    deciding = SmartRAGPolicy(model, tiny_tokenizer, max_new_tokens=4, autocast=False)
    fresh = SmartRAGPolicy(model, tiny_tokenizer, max_new_tokens=4, autocast=False)
    prompts = [deciding.prompt(q) for q in QUESTIONS]
    deciding.search_probability_batch(prompts)
    passes = []
    hook = model.register_forward_hook(lambda module, args, kwargs_or_out, *rest: passes.append(1))
    try:
        reused = deciding.generate_batch(prompts, [SEARCH, ANSWER, SEARCH])
    finally:
        hook.remove()
    assert len(passes) <= 3  # decode steps only (max_new_tokens - 1 of them): no prompt pass
    expected = fresh.generate_batch(prompts, [SEARCH, ANSWER, SEARCH])
    assert [g.token_ids for g in reused] == [g.token_ids for g in expected]
    assert [g.logprobs for g in reused] == [pytest.approx(g.logprobs, abs=1e-4) for g in expected]
    assert len(deciding.prefix_cache) == 0  # each entry is used once, its sibling branch dropped with it


def test_a_weight_update_between_decision_and_generation_is_never_served_stale(tiny_tokenizer):
    from langchain_smartrag.training.tiny import tiny_model

    model = tiny_model(tiny_tokenizer)
    policy = SmartRAGPolicy(model, tiny_tokenizer, max_new_tokens=4, autocast=False)
    prompts = [policy.prompt(q) for q in QUESTIONS]
    policy.search_probability_batch(prompts)  # keeps the prompts' caches for the next generation
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)  # what an optimizer step does: an in-place change
    after_update = policy.generate_batch(prompts, ANSWER)
    fresh = SmartRAGPolicy(model, tiny_tokenizer, max_new_tokens=4, autocast=False).generate_batch(prompts, ANSWER)
    assert [g.logprobs for g in after_update] == [pytest.approx(g.logprobs, abs=1e-4) for g in fresh]


def test_from_pretrained_takes_dtype_device_and_model_kwargs(tiny_model_dir):
    """float32 on a CPU by default; bf16 weights on a CPU work too; model kwargs reach transformers, policy
    kwargs the policy."""
    default = SmartRAGPolicy.from_pretrained(tiny_model_dir, max_batch_size=3)
    assert default.model.dtype == torch.float32 and default.model.device.type == "cpu" and default.max_batch_size == 3
    bf16 = SmartRAGPolicy.from_pretrained(
        tiny_model_dir, dtype=torch.bfloat16, device="cpu", attn_implementation="eager", autocast=False
    )
    assert bf16.model.dtype == torch.bfloat16 and bf16.model.config._attn_implementation == "eager"
    prompt = bf16.prompt("Who wrote Hamlet?")
    assert 0 <= bf16.search_probability_batch([prompt])[0] <= 1
    assert bf16.generate_batch([prompt], "[Answer]")[0].token_ids
