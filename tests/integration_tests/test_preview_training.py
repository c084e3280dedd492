"""SFT on a previewed warm-up saves the preview setting with the policy. The preview itself, in serving and in
rollouts, is `tests/unit_tests/test_preview.py`."""

import json

from langchain_smartrag import SmartRAGPolicy


def test_sft_on_a_previewed_warm_up_saves_the_setting_with_the_policy(tmp_path, tiny_model_dir):
    from langchain_smartrag.training.sft import SFTConfig, train

    data = tmp_path / "warmup.jsonl"
    data.write_text(
        json.dumps(
            {
                "kind": "search",
                "prompt": "Question: who?\nSearch preview: Hamlet\nResponse:\n",
                "completion": "[Search] who",
            }
        )
        + "\n"
    )
    data.with_suffix(".report.json").write_text(json.dumps({"questions": 1, "preview": 2}))
    final = train(
        SFTConfig(
            data=str(data), base_model=str(tiny_model_dir), max_steps=1, bf16=False, output_dir=str(tmp_path / "sft")
        )
    )
    assert json.loads((final / "smartrag.json").read_text()) == {"preview": 2}
    assert SmartRAGPolicy.from_pretrained(final, autocast=False).preview == 2
