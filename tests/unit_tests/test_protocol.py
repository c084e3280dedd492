"""The protocol: one prompt format and one action parser, shared by serving and training."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.documents import Document

from langchain_smartrag.protocol import (
    ANSWER,
    DOCUMENT_CHARS,
    SEARCH,
    Action,
    parse_action,
    render_prompt,
    render_user_message,
    validate_question,
)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("[Search] capital of France", Action("search", "capital of France", True)),
        ("[Answer] Paris", Action("answer", "Paris", True)),
        ("  [answer]:  Paris  \nmore rambling", Action("answer", "Paris", True)),
        ("[Answer]\n\nParis", Action("answer", "Paris", True)),
        ("[Answer] Paris [Search] more", Action("answer", "Paris", True)),
        ("[Answer]", Action("answer", "", False)),
        ("[Search]   ", Action("search", "", False)),
        ("Paris", Action("invalid", "Paris", False)),
        ("Your_ANSWER", Action("invalid", "Your_ANSWER", False)),
        ("", Action("invalid", "", False)),
        ("The answer is [Answer] Paris", Action("invalid", "The answer is [Answer] Paris", False)),
    ],
)
def test_parse_action(output, expected):
    assert parse_action(output) == expected


def test_parse_action_on_non_strings_is_invalid_not_an_exception():
    assert parse_action(None) == Action("invalid", "", False)  # type: ignore[arg-type]


@given(st.text())
def test_parser_never_raises_and_only_well_formed_actions_have_text(output):
    action = parse_action(output)
    assert action.kind in ("search", "answer", "invalid")
    assert action.well_formed == (action.kind != "invalid" and bool(action.text))
    assert "\n" not in action.text or action.kind == "invalid"


@given(st.sampled_from([SEARCH, ANSWER]), st.text(alphabet=st.characters(blacklist_characters="[]\n\r"), min_size=1))
def test_action_round_trip(prefix, text):
    action = parse_action(f"{prefix} {text}")
    expected = text.strip().lstrip(":").strip()
    assert (action.kind, action.text, action.well_formed) == (prefix[1:-1].lower(), expected, bool(expected))


def test_turn_two_inserts_the_observation_after_the_question():
    docs = [Document(page_content="Paris is the capital of France.", metadata={"title": "Paris"})]
    turn1, turn2 = render_user_message("Capital of France?"), render_user_message("Capital of France?", docs)
    assert turn2.startswith(turn1)
    assert turn2[len(turn1) :] == "\nObservation:\n(1) Paris: Paris is the capital of France."


def test_long_documents_are_cut_in_the_observation():
    docs = [Document(page_content="word " * 1000)]
    assert len(render_user_message("q", docs)) < len(render_user_message("q")) + DOCUMENT_CHARS + 50


def test_prompt_uses_the_chat_template_when_there_is_one(tiny_tokenizer):
    prompt = render_prompt("Who wrote Hamlet?", tokenizer=tiny_tokenizer)
    assert prompt.startswith("<|im_start|>user\n") and prompt.endswith("<|im_start|>assistant\n")
    assert "Question: Who wrote Hamlet?" in prompt
    assert render_prompt("Who wrote Hamlet?").endswith("Question: Who wrote Hamlet?\nResponse:\n")


@pytest.mark.parametrize("bad", ["", "   ", "\n\t", None, 42, ["q"]])
def test_validate_question_rejects_empty_and_non_strings(bad):
    with pytest.raises(ValueError, match="question"):
        validate_question(bad)
