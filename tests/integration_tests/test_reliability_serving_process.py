"""Serving faults that need a process of their own or the embedded model (issue #25): a hung retriever does not keep
the process alive, and a corrupt converted embedded model is converted again. The rest is
`tests/unit_tests/test_reliability_serving.py`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_smartrag import SmartRAGPolicy


def test_a_hung_retriever_does_not_keep_the_process_alive(tiny_model_dir):
    script = f"""
import threading
from langchain_core.retrievers import BaseRetriever
from langchain_smartrag import SmartRAGPolicy, create_smartrag_graph
class Hung(BaseRetriever):
    def _get_relevant_documents(self, query, *, run_manager):
        threading.Event().wait()
graph = create_smartrag_graph(SmartRAGPolicy.from_pretrained({str(tiny_model_dir)!r}), Hung(), threshold=0.0,
                              retriever_timeout=0.2)
print(graph.invoke({{"question": "Who wrote Hamlet?"}})["errors"])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "TimeoutError" in done.stdout, done.stderr[-2000:]


@pytest.mark.slow
def test_a_corrupt_converted_embedded_model_is_converted_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTRAG_CACHE_DIR", str(tmp_path))
    from langchain_smartrag.models import embedded_cache_path

    cached = embedded_cache_path()
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{not json")
    policy = SmartRAGPolicy.embedded(trained=False)
    assert json.loads((cached / "config.json").read_text())["model_type"] == "llama"
    assert policy.decide_batch([policy.prompt("Who wrote Hamlet?")])[0].p_search > 0
    assert Path(cached / "model.safetensors").exists()
