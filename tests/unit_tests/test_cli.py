"""`smartrag ask`, in process: local corpus or saved index, web search, JSON output, and clear errors. The installed
console script is `tests/integration_tests/test_console_script.py`."""

import argparse
import json
from pathlib import Path

from langgraph_cli.config import validate_config_file

from langchain_smartrag import BM25Retriever
from langchain_smartrag.cli import LANGGRAPH_CONFIG, add_serve_command, main, serve_command


def ask_json(capsys, *args):
    code = main(["ask", *args, "--json"])
    lines = capsys.readouterr().out.splitlines()
    return code, [json.loads(line) for line in lines]


def test_ask_with_a_corpus_file_prints_the_final_state(capsys, tiny_model_dir, corpus_file):
    code, states = ask_json(
        capsys,
        "Who wrote Hamlet?",
        "Capital of France?",
        "--policy",
        str(tiny_model_dir),
        "--corpus",
        str(corpus_file),
        "--threshold",
        "0",
    )
    assert code == 0 and [s["question"] for s in states] == ["Who wrote Hamlet?", "Capital of France?"]
    assert all(s["retrievals"] == 1 and len(s["queries"]) == 1 for s in states)
    assert all(set(d) == {"page_content", "metadata"} for s in states for d in s["documents"])


def test_ask_with_a_saved_index_and_no_retrieval(capsys, tiny_model_dir, corpus_file, tmp_path):
    BM25Retriever.from_jsonl(corpus_file).save(tmp_path / "index")
    code, (state,) = ask_json(
        capsys, "Paris?", "--policy", str(tiny_model_dir), "--corpus", str(tmp_path / "index"), "--max-retrievals", "0"
    )
    assert code == 0 and state["retrievals"] == 0 and state["search_probabilities"] == []


def test_ask_on_the_web_uses_duckduckgo(capsys, tiny_model_dir, transport):
    code, (state,) = ask_json(
        capsys,
        "capital of France",
        "--policy",
        str(tiny_model_dir),
        "--retriever",
        "web",
        "--threshold",
        "0",
        "--k",
        "2",
    )
    assert code == 0 and transport.calls
    assert [d["metadata"]["url"] for d in state["documents"]] == [
        "https://en.wikipedia.org/wiki/Paris",
        "https://example.org/france",
    ]


def test_a_bad_question_fails_alone_with_a_message(capsys, tiny_model_dir, corpus_file):
    code = main(["ask", "Paris?", "  ", "--policy", str(tiny_model_dir), "--corpus", str(corpus_file)])
    captured = capsys.readouterr()
    assert code == 1 and "Q: Paris?" in captured.out
    assert "question is empty or whitespace only" in captured.err


def test_serve_runs_langgraph_dev_on_the_langgraph_json_the_package_ships():
    """A pip user has no checkout: `smartrag serve` finds the config inside the installed package."""
    parser = argparse.ArgumentParser()
    add_serve_command(parser.add_subparsers())
    args = parser.parse_args(["serve", "--policy", "DIR", "--port", "8123", "--", "--no-reload"])
    command = serve_command(args)
    assert command[1:6] == ["-m", "langgraph_cli", "dev", "--config", str(LANGGRAPH_CONFIG)]
    assert command[6:] == ["--host", "127.0.0.1", "--port", "8123", "--no-reload"]
    assert LANGGRAPH_CONFIG.parent.name == "langchain_smartrag"
    assert validate_config_file(LANGGRAPH_CONFIG)["graphs"] == {"smartrag": "langchain_smartrag.server:graph"}
    checkout = Path(__file__).resolve().parents[2] / "langgraph.json"  # `langgraph dev` / `build` in a clone
    assert json.loads(checkout.read_text()) == json.loads(LANGGRAPH_CONFIG.read_text())
