"""The optional preview (issue #11): the first decision sees the titles of the question's top hits, never passage
text; the answer turn never sees them; each preview is counted and charged; web search keeps it off by default;
a policy's preview setting travels with it (that SFT saves it: `tests/integration_tests/test_preview_training.py`)."""

import json
import sys
import warnings
from pathlib import Path

import pytest
from langchain_core.documents import Document

from langchain_smartrag import ANSWER, SEARCH, DuckDuckGoRetriever, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.protocol import PREVIEW_TITLE_CHARS, preview_titles, render_prompt
from langchain_smartrag.scoring import ALPHA, ALPHA_PREVIEW, episode_reward
from langchain_smartrag.training.data import QAExample
from langchain_smartrag.training.evaluate import score_episode

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "preview"))


def test_the_preview_shows_titles_cut_to_a_fixed_size_and_no_passage_text():
    documents = [
        Document(page_content="Secret passage text " * 20, metadata={"title": "T" * 200}),
        Document(page_content="An untitled document about the Moon landing in 1969 and more"),
    ]
    titles = preview_titles(documents, 3)
    assert titles == ["T" * (PREVIEW_TITLE_CHARS - 3) + "...", "An untitled document about the Moon"]
    prompt = render_prompt("Who landed?", (), None, titles)
    assert "Search preview: " in prompt and "Secret passage" not in prompt
    assert prompt.count("\n") == render_prompt("Who landed?").count("\n") + 1  # one line
    assert "(no results)" in render_prompt("Who?", (), None, [])


def recording(policy):
    seen = []
    decide, generate = policy.decide, policy.generate
    policy.decide = lambda prompts: seen.append(("decide", prompts[0])) or decide(prompts)
    policy.generate = lambda prompts, prefix, **kw: seen.append((prefix, prompts[0])) or generate(prompts, prefix, **kw)
    return seen


@pytest.mark.parametrize("action", [SEARCH, ANSWER])
def test_only_the_decision_and_its_query_see_the_preview_never_the_answer(
    action, searching_policy, answering_policy, retriever
):
    policy = searching_policy if action == SEARCH else answering_policy
    seen = recording(policy)
    with pytest.warns(UserWarning, match="trained with preview=0"):
        graph = create_smartrag_graph(policy, retriever, preview=2)
    out = graph.invoke({"question": "Who wrote Hamlet?"})
    assert out["previews"] == 1 and out["preview"][0] == "Hamlet"
    for node, prompt in seen:
        assert ("Search preview: Hamlet" in prompt) == (node in ("decide", SEARCH)), node
    assert seen[-1][0] == ANSWER


def test_preview_cost_is_counted_in_the_state_and_charged_in_the_reward(answering_policy, retriever):
    assert episode_reward("x", ["x"], 1, previews=1) == pytest.approx(2 - ALPHA - ALPHA_PREVIEW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = create_smartrag_graph(answering_policy, retriever, preview=3).invoke({"question": "Hamlet?"})
    record = score_episode(QAExample("q", "Hamlet?", [state["answer"] or "x"]), state)
    assert record["previews"] == 1 and record["reward"] == pytest.approx(2 * bool(state["answer"]) - ALPHA_PREVIEW)
    off = create_smartrag_graph(answering_policy, retriever).invoke({"question": "Hamlet?"})
    assert off["previews"] == 0 and off["preview"] is None


def test_web_search_keeps_the_preview_off_by_default(tiny_tokenizer, transport):
    from langchain_smartrag.training.tiny import tiny_model

    policy = SmartRAGPolicy(tiny_model(tiny_tokenizer), tiny_tokenizer, max_new_tokens=4, autocast=False, preview=3)
    with pytest.warns(UserWarning, match="trained with preview=3 but the graph uses preview=0"):
        graph = create_smartrag_graph(policy, DuckDuckGoRetriever(), threshold=2.0)
    assert graph.invoke({"question": "Capital of France?"})["previews"] == 0 and transport.calls == []


def test_a_policys_preview_setting_travels_with_it(tiny_model_dir, tmp_path, retriever):
    import shutil

    trained = tmp_path / "trained"
    shutil.copytree(tiny_model_dir, trained)
    (trained / "smartrag.json").write_text(json.dumps({"preview": 2}))
    policy = SmartRAGPolicy.from_pretrained(trained)
    assert policy.preview == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the policy's own setting: no warning
        assert create_smartrag_graph(policy, retriever).invoke({"question": "Hamlet?"})["previews"] == 1
    with pytest.warns(UserWarning, match="trained with preview=2 but the graph uses preview=0"):
        create_smartrag_graph(policy, retriever, preview=0)


def test_the_rule_baselines_read_the_preview():
    from preview_rules import auc, title_rule

    hamlet = [Document(page_content="...", metadata={"title": "Hamlet"})]
    assert title_rule("Who wrote Hamlet?", hamlet) and not title_rule("Capital of France?", hamlet)
    assert auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0 and auc([0.5, 0.5], [True, False]) == 0.5


@pytest.mark.parametrize("action", [SEARCH, ANSWER])
def test_a_previewed_episodes_token_rewards_add_up_to_its_reward(action, searching_policy, answering_policy, retriever):
    from langchain_smartrag.training.segments import rollout_segments
    from langchain_smartrag.training.trajectories import collect

    policy = searching_policy if action == SEARCH else answering_policy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = create_smartrag_graph(policy, retriever, preview=2)
    episodes = collect(graph, [QAExample("q", "Who wrote Hamlet?", ["William Shakespeare"])], progress=False)
    (segments_sum,) = [sum(sum(s.scores) for s in rollout_segments(episodes, policy.encode))]
    assert episodes[0]["previews"] == 1 and segments_sum == pytest.approx(episodes[0]["reward"])
