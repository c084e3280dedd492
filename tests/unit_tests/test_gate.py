"""The decision gate: what it reads of a probe search (`index_features`), how it is saved beside a policy and loaded
with it, how the graph lets it take the first decision (and when the action token decides instead), how it is fitted
on paired episodes, and how those pairs are played and resumed."""

import json
import math
import random
import re
import shutil
import warnings
from typing import ClassVar

import pytest
import torch
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_smartrag import DuckDuckGoRetriever, SmartRAGContext, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.cli import main
from langchain_smartrag.gate import GATE_FILE, INDEX_FEATURES, DecisionGate, index_features
from langchain_smartrag.scoring import ALPHA, ALPHA_PREVIEW, episode_reward
from langchain_smartrag.training.data import QAExample
from langchain_smartrag.training.evaluate import score_episode
from langchain_smartrag.training.gate import (
    THRESHOLDS,
    Candidate,
    calibrate,
    cross_validate,
    curve,
    design,
    fit_gate,
    fit_head,
    oracle_share,
    probabilities,
    select_threshold,
)
from langchain_smartrag.training.pairs import drawn_apart, play_pairs, read_pairs


def scored(title: str, score: float, key: str = "score") -> Document:
    return Document(page_content=f"{title} text", metadata={"title": title, key: score})


def gate(bias: float, weights=None, features=("h0", "search_logit", "top_score", "hits"), **kwargs) -> DecisionGate:
    """A hand-made gate on unstandardised features: P = sigmoid(weights . features + bias)."""
    n = len(features)
    return DecisionGate(list(features), [0.0] * n, [1.0] * n, list(weights or [0.0] * n), bias, **kwargs)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# -- what the gate reads of the index ----------------------------------------------------------


def test_the_probe_features_describe_the_scores_and_titles_of_the_hits():
    features = index_features("Who wrote Hamlet?", [scored("Hamlet", 3.0), scored("Paris", 1.0)])
    # question words (longer than two letters): who, wrote, hamlet; "hamlet" is in the top titles
    assert features == pytest.approx(
        {
            "top_score": 3.0,
            "score_per_term": 1.0,
            "margin": 2.0,
            "score_ratio": 1 / 3,
            "title_overlap": 1 / 3,
            "hits": 2.0,
        }
    )
    assert set(features) == set(INDEX_FEATURES)


def test_a_rerankers_relevance_score_counts_as_a_score_and_hits_are_ranked_by_it():
    features = index_features(
        "Capital of France?", [scored("Seine", 0.2, "relevance_score"), scored("Paris", 0.8, "relevance_score")]
    )
    assert features["top_score"] == pytest.approx(0.8) and features["margin"] == pytest.approx(0.6)
    assert features["score_ratio"] == pytest.approx(0.25)


def test_no_hits_is_information_but_a_hit_without_a_score_makes_the_probe_unreadable():
    assert index_features("Zebra quokka?", []) == {name: 0.0 for name in INDEX_FEATURES}
    assert index_features("Who?", [scored("Hamlet", 3.0), Document(page_content="no score")]) is None
    assert index_features("Who?", [Document(page_content="x", metadata={"score": True})]) is None  # not a number
    assert index_features("Who?", [Document(page_content="x", metadata={"score": math.nan})]) is None


def test_a_score_far_outside_the_training_range_warns_once():
    trained = gate(0.0, trained_under={"top_score_range": [5.0, 10.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trained.check_scores({"top_score": 7.0})  # inside: nothing
    with pytest.warns(UserWarning, match="far outside those the decision gate was trained on") as caught:
        trained.check_scores({"top_score": 100.0})
    advice = re.search(r"`smartrag ([a-z ]+)", str(caught[0].message)).group(1).split()
    with pytest.raises(SystemExit) as exited:  # the command it advises exists
        main([*advice, "--help"])
    assert exited.value.code == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trained.check_scores({"top_score": 0.1})  # once per gate
        gate(0.0).check_scores({"top_score": 1e9})  # a gate that records no range checks nothing


# -- gate.json beside a policy ----------------------------------------------------------------


def test_a_saved_gate_loads_back_equal_and_a_folder_without_one_has_none(tmp_path):
    assert DecisionGate.load(tmp_path) is None
    original = DecisionGate(
        ["h0", "search_logit", "top_score"],
        [0.1, -1.0, 4.0],
        [1.0, 2.0, 3.0],
        [0.5, -0.25],
        0.75,
        hidden=[[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]],
        hidden_bias=[0.0, 0.1],
        threshold=0.35,
        hidden_size=1,
        trained_under={"pairs": 40, "top_score_range": [1.0, 9.0]},
    )
    assert original.save(tmp_path) == tmp_path / GATE_FILE
    assert DecisionGate.load(tmp_path) == original
    assert [p.name for p in tmp_path.iterdir()] == [GATE_FILE]  # written through a temporary file, renamed


@pytest.mark.parametrize(
    "text",
    [
        '{"features": ["top_score"], "mean": [0.0], "sca',  # cut short
        "[1, 2, 3]",  # JSON, but not a gate
        '{"features": ["top_score"], "mean": [0.0]}',  # fields missing
        '{"features": ["top_score"], "mean": [0.0], "scale": [1.0], "weights": ["x"], "bias": 0.0}',  # not numbers
        '{"features": ["top_score"], "mean": [0.0], "scale": [0.0], "weights": [1.0], "bias": 0.0}',  # a zero scale
        '{"features": ["nonsense"], "mean": [0.0], "scale": [1.0], "weights": [1.0], "bias": 0.0}',  # unknown feature
        (
            '{"features": ["top_score"], "mean": [0.0], "scale": [1.0], "weights": [1.0], "bias": 0.0, '
            '"threshold": "high"}'
        ),
        (
            '{"features": ["top_score"], "mean": [0.0], "scale": [1.0], "weights": [1.0], "bias": 0.0, '
            '"trained_under": []}'
        ),
    ],
)
def test_a_corrupt_gate_file_is_a_clear_error_naming_it(tmp_path, text):
    (tmp_path / GATE_FILE).write_text(text)
    with pytest.raises(ValueError, match=f"{tmp_path / GATE_FILE}.*smartrag train gate"):
        DecisionGate.load(tmp_path)


@pytest.mark.parametrize(
    "broken",
    [
        {"weights": [1.0, 2.0]},  # two weights, three features
        {"mean": [0.0, 0.0]},
        {"hidden": [[1.0, 1.0, 1.0], [1.0, 1.0]], "hidden_bias": [0.0, 0.0], "weights": [1.0, 1.0]},  # a short row
        {"hidden": [[1.0, 1.0, 1.0]], "hidden_bias": [0.0], "weights": [1.0, 1.0, 1.0]},  # weights for the inputs
        {"hidden": [1.0, 1.0], "hidden_bias": [0.0, 0.0], "weights": [1.0, 1.0]},  # rows that are not lists
        {"features": 3},
    ],
)
def test_a_gate_whose_weights_do_not_match_its_features_is_a_clear_error(tmp_path, broken):
    fields = {
        "features": ["h0", "search_logit", "top_score"],
        "mean": [0.0] * 3,
        "scale": [1.0] * 3,
        "weights": [1.0] * 3,
        "bias": 0.0,
        **broken,
    }
    (tmp_path / GATE_FILE).write_text(json.dumps(fields))
    with pytest.raises(ValueError, match=f"{tmp_path / GATE_FILE}: the gate's weights do not match its feature list"):
        DecisionGate.load(tmp_path)


def test_a_policy_folder_with_a_gate_loads_with_it(tiny_model_dir, tmp_path):
    folder = tmp_path / "policy"
    shutil.copytree(tiny_model_dir, folder)
    assert SmartRAGPolicy.from_pretrained(folder, autocast=False).gate is None
    saved = gate(1.0, threshold=0.4)
    saved.save(folder)
    assert SmartRAGPolicy.from_pretrained(folder, autocast=False).gate == saved
    (folder / GATE_FILE).write_text("{")
    with pytest.raises(ValueError, match=f"{folder / GATE_FILE}: not a decision gate"):
        SmartRAGPolicy.from_pretrained(folder, autocast=False)


def test_an_adapter_folder_carries_its_own_gate(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = SmartRAGPolicy.from_pretrained(tiny_model_dir, autocast=False)
    lora = get_peft_model(base.model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(tmp_path / "adapter")
    saved = gate(-1.0, threshold=0.6)
    saved.save(tmp_path / "adapter")
    assert SmartRAGPolicy.from_pretrained(tmp_path / "adapter", autocast=False).gate == saved
    assert SmartRAGPolicy.from_pretrained(tiny_model_dir, autocast=False).gate is None  # the base has none


# -- the gate in the graph ----------------------------------------------------------------------


class DecideRecorder(BaseCallbackHandler):
    """The decide node's invocation parameters and the P(search) its run reports."""

    def __init__(self) -> None:
        self.params, self.probabilities = [], []

    def on_chat_model_start(self, serialized, messages, *, invocation_params=None, **kwargs):
        if invocation_params.get("node") == "decide":
            self.params.append(invocation_params)

    def on_llm_end(self, response, **kwargs):
        metadata = response.generations[0][0].message.response_metadata
        if "search_probability" in metadata:
            self.probabilities.append(metadata["search_probability"])


def test_a_graph_cannot_be_told_to_use_a_gate_the_policy_lacks(policy, retriever):
    assert policy.gate is None
    with pytest.raises(ValueError, match="no decision gate.*`smartrag train gate`"):
        create_smartrag_graph(policy, retriever, decision="gate")
    with pytest.raises(ValueError, match="decision must be 'gate' or 'token'"):
        create_smartrag_graph(policy, retriever, decision="coin")
    graph = create_smartrag_graph(policy, retriever)  # by default the token decides: nothing to train first
    with pytest.raises(ValueError, match="`smartrag train gate`"):
        graph.invoke({"question": "Who wrote Hamlet?"}, context=SmartRAGContext(decision="gate"))


def test_a_gate_sure_a_search_pays_searches_whatever_the_token_says(answering_policy, retriever):
    answering_policy.gate = gate(50.0)
    recorder = DecideRecorder()
    out = create_smartrag_graph(answering_policy, retriever).invoke(
        {"question": "Who wrote Hamlet?"}, {"callbacks": [recorder]}
    )
    assert out["retrievals"] == 1 and out["previews"] == 1  # the probe, then the search the gate chose
    assert out["search_probabilities"] == [pytest.approx(1.0)]  # the gate's P, not the token's (~0)
    assert out["probe"] == index_features("Who wrote Hamlet?", retriever.invoke("Who wrote Hamlet?"))
    assert recorder.params[0]["decision"] == "gate" and recorder.probabilities == out["search_probabilities"]


def test_a_gate_sure_a_search_does_not_pay_never_searches(searching_policy, retriever):
    searching_policy.gate = gate(-50.0)
    recorder = DecideRecorder()
    out = create_smartrag_graph(searching_policy, retriever).invoke(
        {"question": "Who wrote Hamlet?"}, {"callbacks": [recorder]}
    )
    assert out["retrievals"] == 0 and out["previews"] == 1 and out["queries"] == []
    assert out["search_probabilities"][0] < 1e-9 and recorder.probabilities == out["search_probabilities"]
    record = score_episode(QAExample("q", "Who wrote Hamlet?", ["Shakespeare"]), out)
    unprobed = episode_reward(out["answer"], ["Shakespeare"], 0, well_formed=out["well_formed"])
    assert record["reward"] == pytest.approx(unprobed - ALPHA_PREVIEW)  # the probe is charged like a preview


def test_the_gate_reads_the_probes_scores_and_decides_at_its_own_threshold(searching_policy, retriever):
    # P = sigmoid(0.5 * top_score + 0.25 * hits - 0.3); the gate was selected at threshold 0.35
    searching_policy.gate = gate(-0.3, [0.5, 0.25], features=("top_score", "hits"), threshold=0.35)
    recorder = DecideRecorder()
    graph = create_smartrag_graph(searching_policy, retriever)
    out = graph.invoke({"question": "Who wrote Hamlet?"}, {"callbacks": [recorder]})
    expected = sigmoid(0.5 * out["probe"]["top_score"] + 0.25 * out["probe"]["hits"] - 0.3)
    assert out["search_probabilities"][0] == pytest.approx(expected) == recorder.probabilities[0]
    assert recorder.params[0]["threshold"] == 0.35 and out["retrievals"] == 1
    # no hits: P = sigmoid(-0.3) = 0.43 >= 0.35 searches at the gate's threshold, not at a call's 0.5
    assert graph.invoke({"question": "Zebra quokka?"})["retrievals"] == 1
    assert graph.invoke({"question": "Zebra quokka?"}, context=SmartRAGContext(threshold=0.5))["retrievals"] == 0


def test_the_gate_tells_covered_questions_from_uncovered_ones(answering_policy, retriever):
    answering_policy.gate = gate(-5.0, [10.0], features=("hits",))  # search when the index has any hit
    graph = create_smartrag_graph(answering_policy, retriever)
    covered, uncovered = graph.batch([{"question": "Who wrote Hamlet?"}, {"question": "Zebra quokka?"}])
    assert covered["retrievals"] == 1 and uncovered["retrievals"] == 0
    assert uncovered["probe"]["hits"] == 0 and uncovered["previews"] == 1


def test_the_gate_takes_only_the_first_decision_the_token_takes_the_later_ones(answering_policy, retriever):
    answering_policy.gate = gate(50.0, threshold=0.35)
    recorder = DecideRecorder()
    out = create_smartrag_graph(answering_policy, retriever, max_retrievals=2).invoke(
        {"question": "Who wrote Hamlet?"}, {"callbacks": [recorder]}
    )
    assert out["retrievals"] == 1 and out["previews"] == 1  # one probe per question, not one per decision
    first, second = out["search_probabilities"]
    assert first == pytest.approx(1.0) and second < 0.01  # the gate's, then the answering token's
    assert [(p["decision"], p["threshold"]) for p in recorder.params] == [("gate", 0.35), ("token", 0.5)]


def test_the_token_decides_when_told_so_and_then_no_probe_is_made(searching_policy, retriever):
    searching_policy.gate = gate(-50.0)  # would never search
    out = create_smartrag_graph(searching_policy, retriever, decision="token").invoke({"question": "Who wrote Hamlet?"})
    assert out["retrievals"] == 1 and out["previews"] == 0 and out["probe"] is None
    assert out["search_probabilities"][0] > 0.99  # the token's P(search)
    per_call = create_smartrag_graph(searching_policy, retriever).invoke(
        {"question": "Who wrote Hamlet?"}, context=SmartRAGContext(decision="token")
    )
    assert per_call["retrievals"] == 1 and per_call["previews"] == 0 and per_call["probe"] is None


def test_web_search_keeps_the_token_deciding_by_default(answering_policy, transport):
    answering_policy.gate = gate(50.0)  # would always search: a probe there is a real web search
    out = create_smartrag_graph(answering_policy, DuckDuckGoRetriever()).invoke({"question": "Capital of France?"})
    assert out["retrievals"] == 0 and out["previews"] == 0 and transport.calls == []


class Unscored(BaseRetriever):
    """A retriever whose documents carry no scores."""

    calls: ClassVar[list[str]] = []

    def _get_relevant_documents(self, query, *, run_manager):
        self.calls.append(query)
        return [Document(page_content="Hamlet is a tragedy by William Shakespeare.", metadata={"title": "Hamlet"})]


def test_a_retriever_without_scores_warns_once_and_the_token_decides(searching_policy):
    searching_policy.gate = gate(-50.0)  # would never search
    graph = create_smartrag_graph(searching_policy, Unscored())
    with pytest.warns(UserWarning, match="gives no scores.*the action token decides instead"):
        out = graph.invoke({"question": "Who wrote Hamlet?"})
    assert out["retrievals"] == 1 and out["search_probabilities"][0] > 0.99  # the token's decision
    assert out["probe"] is None and out["previews"] == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = graph.invoke({"question": "Who wrote Hamlet?"})
    assert again["retrievals"] == 1 and not [w for w in caught if "gives no scores" in str(w.message)]


# -- fitting the gate on paired episodes ----------------------------------------------------------


def synthetic_pairs(n: int = 60, seed: int = 0):
    """Questions whose top score says whether a search pays: the index covers them (top score ~8: searching finds
    the answer, answering closed-book misses it) or not (~2: the search misses, the policy knows the answer).
    Everything else the gate could read is noise."""
    draw = random.Random(seed)
    rows, pairs = [], []
    for i in range(n):
        covered = i % 2 == 0
        top = (8.0 if covered else 2.0) + draw.gauss(0, 1)
        second = top * draw.uniform(0.2, 0.9)
        rows.append(
            {
                "hidden": [draw.gauss(0, 1), draw.gauss(0, 1)],
                "search_logit": draw.gauss(0, 1),
                "index": {
                    "top_score": top,
                    "score_per_term": top / 3,
                    "margin": top - second,
                    "score_ratio": second / top,
                    "title_overlap": draw.random(),
                    "hits": 4.0,
                },
            }
        )
        searched, answered = (2 - ALPHA, 0.0) if covered else (-ALPHA, 2.0)
        pairs.append(
            {"id": str(i), "search": {"reward": searched}, "answer": {"reward": answered}, "delta": searched - answered}
        )
    return rows, pairs


def rewards(pairs):
    return (torch.tensor([p["search"]["reward"] for p in pairs]), torch.tensor([p["answer"]["reward"] for p in pairs]))


SMALL = [Candidate("index", 0, 1e-2), Candidate("hidden+token", 0, 1e-2)]


def test_cross_validation_prefers_the_features_that_carry_the_signal():
    rows, pairs = synthetic_pairs()
    searched, answered = rewards(pairs)
    scores = cross_validate(rows, searched, answered, SMALL, k=3)
    best, noise = scores
    assert best["candidate"].family == "index" and best["auc"] > 0.9
    assert best["reward"] > max(float(searched.mean()), float(answered.mean()))  # beats never and always
    assert noise["auc"] < best["auc"] and noise["reward"] < best["reward"]
    assert best["retrieval_rate"] == pytest.approx(0.5, abs=0.1)


def test_a_fitted_head_separates_the_pairs_and_serves_as_it_was_trained():
    rows, pairs = synthetic_pairs()
    searched, answered = rewards(pairs)
    for candidate in (Candidate("index", 0, 1e-2), Candidate("token+index", 4, 1e-1)):
        names, x = design(rows, candidate.family)
        head = DecisionGate(names, **fit_head(x, searched - answered, candidate))
        p = probabilities(head, x)
        assert ((p >= 0.5) == (searched > answered)).float().mean() > 0.9
        # what the graph computes from gate.json is what training computed
        served = [head.p_search(**r) for r in rows]
        assert served == pytest.approx(p.tolist(), abs=1e-5)


def test_the_threshold_is_the_best_on_held_out_pairs_nearest_one_half_among_ties():
    searched, answered = torch.tensor([1.8, 1.8, -0.2, -0.2]), torch.tensor([0.0, 0.0, 2.0, 2.0])
    assert select_threshold(torch.tensor([0.9, 0.8, 0.1, 0.2]), searched, answered, ALPHA_PREVIEW) == 0.5
    # a gate that is right but shy: every threshold in (0.2, 0.3] is best; 0.3 is the nearest 0.5
    assert select_threshold(torch.tensor([0.3, 0.3, 0.1, 0.2]), searched, answered, ALPHA_PREVIEW) == 0.3
    points = curve(torch.tensor([0.9, 0.8, 0.1, 0.2]), searched, answered, ALPHA_PREVIEW)
    assert [p["threshold"] for p in points] == list(THRESHOLDS)
    assert points[0]["retrieval_rate"] == 1 and points[0]["reward"] == pytest.approx(0.8 - ALPHA_PREVIEW)  # always
    assert points[-1]["retrieval_rate"] == 0 and points[-1]["reward"] == pytest.approx(1.0 - ALPHA_PREVIEW)  # never


def test_the_fitted_gate_beats_both_fixed_strategies_on_held_out_pairs():
    rows, pairs = synthetic_pairs()
    fitted, report = fit_gate(rows, pairs, probe_cost=ALPHA_PREVIEW, candidates=SMALL, trained_under={"k": 2})
    assert report["candidate"]["family"] == "index" and report["held_out"] == 15 and report["held_out_auc"] > 0.9
    assert report["held_out_reward"] > max(report["held_out_never"], report["held_out_always"])
    assert report["held_out_oracle_share"] > 0.8
    assert fitted.features == list(INDEX_FEATURES) and fitted.threshold == report["threshold"]
    assert fitted.hidden_size == 0 and fitted.reads_index
    tops = [r["index"]["top_score"] for r in rows]
    assert fitted.trained_under["top_score_range"] == [min(tops), max(tops)] and fitted.trained_under["k"] == 2


def test_the_oracle_share_runs_from_the_best_fixed_strategy_to_the_oracle():
    searched, answered = torch.tensor([1.8, -0.2]), torch.tensor([0.0, 2.0])  # always 0.8, never 1.0, oracle 1.9
    assert oracle_share(1.9, searched, answered) == pytest.approx(1.0)
    assert oracle_share(1.0, searched, answered) == pytest.approx(0.0)
    assert oracle_share(1.45, searched, answered) == pytest.approx(0.5)
    assert math.isnan(oracle_share(1.0, torch.tensor([1.0]), torch.tensor([1.0])))  # no gap to close


# -- playing the pairs ----------------------------------------------------------------------------

EXAMPLES = [
    QAExample("q1", "Who wrote Hamlet?", ["William Shakespeare"]),
    QAExample("q2", "What is the capital of France?", ["Paris"]),
    QAExample("q3", "When did Apollo 11 land on the Moon?", ["1969"], {"source": "test"}),
]


class Spy:
    """The graph, with the questions it was asked to play recorded."""

    def __init__(self, graph) -> None:
        self.graph, self.questions = graph, []

    def batch(self, inputs, config=None, **kwargs):
        self.questions += [i["question"] for i in inputs]
        return self.graph.batch(inputs, config, **kwargs)


def test_each_question_is_played_searched_and_answered_and_written_as_one_line(policy, retriever, tmp_path):
    path = tmp_path / "pairs" / "pairs.jsonl"
    graph = create_smartrag_graph(policy, retriever, decision="token")
    pairs = play_pairs(graph, EXAMPLES, path, batch_size=2, chunk=2, progress=False)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == pairs and [p["id"] for p in pairs] == ["q1", "q2", "q3"]
    for pair, example in zip(pairs, EXAMPLES):
        assert (pair["question"], pair["golds"], pair["extra"]) == (example.question, example.answers, example.extra)
        assert pair["search"]["retrievals"] == 1 and pair["answer"]["retrievals"] == 0
        assert pair["search"]["previews"] == pair["answer"]["previews"] == 0  # forced branches pay no probe
        assert pair["delta"] == pytest.approx(pair["search"]["reward"] - pair["answer"]["reward"])
        assert pair["search"]["reward"] <= 2 - ALPHA


def test_a_run_killed_mid_line_resumes_with_only_the_torn_question_played_again(policy, retriever, tmp_path):
    path = tmp_path / "pairs.jsonl"
    graph = create_smartrag_graph(policy, retriever, decision="token")
    play_pairs(graph, EXAMPLES, path, progress=False)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # the last line cut short, as by a kill
    assert [p["id"] for p in read_pairs(path)] == ["q1", "q2"]
    spy = Spy(graph)
    pairs = play_pairs(spy, EXAMPLES, path, progress=False)
    assert spy.questions == [EXAMPLES[2].question] * 2  # once searched, once answered
    assert [p["id"] for p in pairs] == [p["id"] for p in read_pairs(path)] == ["q1", "q2", "q3"]
    assert len(path.read_text().splitlines()) == 3
    done = Spy(graph)
    assert play_pairs(done, EXAMPLES, path, progress=False) == pairs and done.questions == []


def test_questions_are_drawn_apart_from_each_set_interleaved_and_never_twice():
    sets = {
        "a": [QAExample(f"a{i}", f"A {i}?", ["x"]) for i in range(10)],
        "b": [QAExample(f"b{i}", f"B {i}?", ["x"]) for i in range(3)],
    }
    drawn = drawn_apart(sets, {"a": 4, "b": 3}, seed=0, exclude=frozenset({"a0", "a1"}))
    ids = [e.id for e in drawn]
    assert len(ids) == len(set(ids)) == 7 and not {"a0", "a1"} & set(ids)
    assert [i[0] for i in ids] == ["a", "b", "a", "b", "a", "b", "a"]
    assert drawn == drawn_apart(sets, {"a": 4, "b": 3}, seed=0, exclude=frozenset({"a0", "a1"}))


# -- calibrating a trained gate to your own index ------------------------------------------------------------------


def test_calibrating_reads_a_corpus_whose_scores_sit_elsewhere_relative_to_that_corpus():
    rows, pairs = synthetic_pairs(80)
    trained, _ = fit_gate(rows, pairs, probe_cost=ALPHA_PREVIEW, candidates=[Candidate("index", 0, 1e-2)])
    for row in rows:  # the same questions on an index whose scores run 100 times higher (another scorer)
        row["index"] = {
            k: v * 100 if k in ("top_score", "score_per_term", "margin") else v for k, v in row["index"].items()
        }
    calibrated, report = calibrate(trained, rows, pairs, probe_cost=ALPHA_PREVIEW)
    assert report["chosen"] == "threshold + score scale"
    cv = report["cross_validated_reward"]
    assert cv["threshold + score scale"] > max(cv["as trained"], report["never"], report["always"]) + 0.5
    assert calibrated.weights == trained.weights  # the head stays as trained; only how it reads the scores moves
    assert calibrated.trained_under["calibrated"] == {"questions": 80, "chosen": "threshold + score scale"}


def test_smartrag_calibrate_fits_a_policys_gate_to_your_questions_and_retriever(tiny_model_dir, corpus_file, tmp_path):
    folder = tmp_path / "policy"
    shutil.copytree(tiny_model_dir, folder)
    gate(0.0, features=("top_score", "hits"), weights=[1.0, 0.0]).save(folder)
    questions = tmp_path / "qa.jsonl"
    asked = ["Who wrote Hamlet?", "What is the capital of France?", "When did Apollo 11 land?", "Who is Zorblax?"]
    questions.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"{asked[i % 4]} ({i})", "answers": ["x"]}) + "\n" for i in range(24)
        )
    )
    args = ["calibrate", "--data", str(questions), "--policy", str(folder), "--corpus", str(corpus_file), "--k", "2"]
    assert main([*args, "--output-dir", str(tmp_path / "run"), "--save-to", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["questions"] == 24 and set(report["cross_validated_reward"]) >= {"as trained", "threshold"}
    assert DecisionGate.load(tmp_path / "out").trained_under["calibrated"]["questions"] == 24


def test_calibrating_on_too_few_questions_or_without_a_gate_is_a_clear_error(
    tiny_model_dir, corpus_file, tmp_path, capsys
):
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"id": str(i), "question": "Who?", "answers": ["x"]}) + "\n" for i in range(5)))
    with pytest.raises(SystemExit):
        main(["calibrate", "--data", str(few), "--policy", str(tiny_model_dir), "--corpus", str(corpus_file)])
    assert "no decision gate (gate.json) to calibrate" in capsys.readouterr().err
    folder = tmp_path / "policy"
    shutil.copytree(tiny_model_dir, folder)
    gate(0.0, features=("top_score",), weights=[1.0]).save(folder)
    with pytest.raises(SystemExit):
        main(["calibrate", "--data", str(few), "--policy", str(folder), "--corpus", str(corpus_file)])
    assert "few.jsonl: 5 labelled questions; calibrating needs at least 20" in capsys.readouterr().err
