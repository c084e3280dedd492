"""Any causal LM trains: for each tiny random model of `tests/unit_tests/test_architectures.py` (Llama, Qwen2, Phi-3;
byte-level BPE and SentencePiece-style Unigram tokenizers), a few SFT steps then two PPO iterations train and load."""

import json
import math

import pytest

from langchain_smartrag import ANSWER, SEARCH, SmartRAGPolicy
from tests.unit_tests.test_architectures import CASES, PROMPTS, policy


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_a_few_sft_steps_then_two_ppo_iterations_train_and_load(family, kind, world, tmp_path):
    from langchain_smartrag.training.ppo import train as ppo_train
    from langchain_smartrag.training.sft import SFTConfig
    from langchain_smartrag.training.sft import train as sft_train
    from langchain_smartrag.training.tiny_world import world_config

    p = policy(family, kind)
    p.model.save_pretrained(tmp_path / "base")
    p.tokenizer.save_pretrained(tmp_path / "base")
    rows = [
        {"prompt": p.prompt(q), "completion": f"{SEARCH} {q}" if i % 2 else f"{ANSWER} Paris"}
        for i, q in enumerate(PROMPTS)
    ]
    (tmp_path / "warmup.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sft = sft_train(
        SFTConfig(
            data=str(tmp_path / "warmup.jsonl"),
            base_model=str(tmp_path / "base"),
            lora_r=4,
            batch_size=2,
            max_steps=3,
            bf16=False,
            output_dir=str(tmp_path / "sft"),
        )
    )
    final = ppo_train(
        world_config(
            world,
            tmp_path / "ppo",
            base_model=str(tmp_path / "base"),
            init=str(sft),
            lora_r=4,
            iterations=2,
            episodes_per_iteration=4,
            rollout_batch_size=4,
            minibatch_episodes=4,
        )
    )
    log = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2] and all(math.isfinite(r["reward"]) for r in log)
    trained = SmartRAGPolicy.from_pretrained(tmp_path / "base", adapter=final, autocast=False)
    assert all(0 < d.p_search < 1 for d in trained.decide_batch([trained.prompt(q) for q in PROMPTS]))
