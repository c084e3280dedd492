"""Every first-decision strategy read off a question's two forced episodes, and `smartrag eval --compare`."""

import json
import math

import pytest

from langchain_smartrag.gate import DecisionGate
from langchain_smartrag.training.strategies import (
    markdown_table,
    paired_se,
    score_rule_threshold,
    strategy_rewards,
    strategy_table,
)

SEARCHED = [1.0, -0.2, 0.8, -0.2]  # the reward with the search forced
ANSWERED = [0.0, 0.0, 1.0, 1.0]  # and with the answer forced
ROWS = [
    {"hidden": [0.0], "search_logit": 2.0, "index": {"top_score": 9.0, "title_overlap": 0.5}},
    {"hidden": [0.0], "search_logit": 1.0, "index": {"top_score": 2.0, "title_overlap": 0.0}},
    {"hidden": [0.0], "search_logit": -1.0, "index": {"top_score": 8.0, "title_overlap": 0.2}},
    {"hidden": [0.0], "search_logit": -3.0, "index": {"top_score": 1.0, "title_overlap": 0.0}},
]


def test_each_strategy_takes_one_of_the_two_episodes_and_the_rules_pay_the_probe():
    rewards = strategy_rewards(SEARCHED, ANSWERED, ROWS, probe_cost=0.1, score_threshold=5.0)
    assert rewards["never"] == ANSWERED and rewards["always-retrieve"] == SEARCHED
    assert rewards["title rule"] == pytest.approx([0.9, -0.1, 0.7, 0.9])  # searches questions 1 and 3
    assert rewards["score rule"] == pytest.approx([0.9, -0.1, 0.7, 0.9])  # top score >= 5: the same two
    assert rewards["token"] == [1.0, -0.2, 1.0, 1.0]  # P(search) >= 0.5 on the first two; no probe
    assert rewards["oracle"] == [1.0, 0.0, 1.0, 1.0]
    assert "gate" not in rewards  # no gate given


def test_a_gate_decides_at_its_own_threshold():
    gate = DecisionGate(["top_score"], mean=[0.0], scale=[1.0], weights=[1.0], bias=-5.0, threshold=0.5)
    rewards = strategy_rewards(SEARCHED, ANSWERED, ROWS, probe_cost=0.1, gate=gate)
    assert rewards["gate"] == pytest.approx([0.9, -0.1, 0.7, 0.9])  # sigmoid(top - 5) >= 0.5: top scores 9 and 8
    assert "score rule" not in rewards  # no threshold tuned on train pairs: left out, not guessed


def test_the_table_measures_everything_against_the_best_fixed_strategy_with_paired_errors():
    rewards = strategy_rewards(SEARCHED, ANSWERED, ROWS, probe_cost=0.1, score_threshold=5.0)
    table = strategy_table(rewards)
    assert table["n"] == 4 and table["best_fixed"] == "title rule"  # 0.6, against never 0.5 and always 0.35
    oracle = table["strategies"]["oracle"]
    assert oracle["vs_best_fixed"] == pytest.approx(0.75 - 0.6)
    assert oracle["se"] == pytest.approx(paired_se(rewards["oracle"], rewards["title rule"]))
    assert table["strategies"]["title rule"]["vs_best_fixed"] == 0 and table["strategies"]["title rule"]["se"] == 0
    assert "| oracle | 0.750 | +0.150 ±" in markdown_table(table)


def test_the_score_rule_threshold_is_the_best_on_the_pairs_it_is_tuned_on():
    assert score_rule_threshold([9.0, 2.0, 8.0, 1.0], SEARCHED, ANSWERED) == 9.0  # search only question 1
    assert score_rule_threshold([1.0, 2.0], [-0.2, -0.2], [0.0, 0.0]) == math.inf  # searching never pays


def test_eval_compare_reports_every_strategy_on_a_users_questions(tmp_path, tiny_model_dir, corpus_file, capsys):
    from langchain_smartrag.cli import main

    qa = tmp_path / "qa.jsonl"
    rows = [
        {"id": "q1", "question": "Who wrote Hamlet?", "answers": ["William Shakespeare"]},
        {"id": "q2", "question": "What is the capital of France?", "answers": ["Paris"]},
        {"id": "q3", "question": "When did Apollo 11 land?", "answers": ["1969"]},
    ]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = tmp_path / "compare.json"
    flags = ["--data", str(qa), "--corpus", str(corpus_file), "--policy", str(tiny_model_dir), "--output", str(output)]
    assert main(["eval", "--compare", *flags]) == 0
    results = json.loads(output.read_text())
    strategies = results["table"]["strategies"]
    assert list(strategies) == ["never", "always-retrieve", "title rule", "token", "oracle"]  # no gate, no score rule
    assert results["table"]["n"] == 3
    assert {mode: len(run["records"]) for mode, run in results["runs"].items()} == {
        "always-retrieve": 3,
        "no-retrieval": 3,
    }
    assert strategies["oracle"]["reward"] >= max(strategies["never"]["reward"], strategies["always-retrieve"]["reward"])
    assert "| never |" in capsys.readouterr().out
