"""LangGraph's own server: `smartrag serve` runs the real `langgraph dev` (langgraph-cli[inmem]) on the shipped
`langgraph.json`, from a folder without one, and serves the graph with threads and schemas.

The graph as an in-process LangGraph graph is `tests/unit_tests/test_langgraph.py`."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_langgraph_dev_serves_the_graph_with_threads_and_schemas(tiny_model_dir, corpus_file, tmp_path):
    """The real `langgraph dev` server (langgraph-cli[inmem]) on a loopback port, driven through langgraph-sdk; the
    graph's import stays under LangGraph's startup warning (3 s) because the model loads in the background."""
    from langgraph_sdk import get_sync_client

    port = free_port()
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        Path(sys.executable).parent / "smartrag",
        "serve",
        "--policy",
        tiny_model_dir,
        "--corpus",
        corpus_file,
        "--port",
        str(port),
        "--no-browser",
        "--",
        "--no-reload",
    ]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([str(c) for c in command], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = get_sync_client(url=f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 90
        while True:
            try:
                assistant = client.assistants.search(graph_id="smartrag")[0]
                break
            except Exception:  # noqa: BLE001 -- not up yet
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[
                    -3000:
                ]
                time.sleep(1)
        schemas = client.assistants.get_schemas(assistant["assistant_id"])
        assert schemas["input_schema"]["properties"].keys() == {"question"}
        assert schemas["output_schema"] and schemas["context_schema"]["properties"]["threshold"]["default"] == 0.5
        thread = client.threads.create()
        runs = [
            client.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"question": q})
            for q in ("Who wrote Hamlet?", "What is the capital of France?")
        ]
        for question, run in zip(("Who wrote Hamlet?", "What is the capital of France?"), runs, strict=True):
            assert run["question"] == question and isinstance(run["answer"], str)
            assert len(run["search_probabilities"]) == run["retrievals"] + (run["retrievals"] < 1)
            assert len(run["queries"]) == run["retrievals"] <= 1
        assert "exceeded the expected startup time" not in (tmp_path / "server.log").read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)
