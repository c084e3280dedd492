"""The graph LangGraph's server serves (`langgraph dev`; see `langgraph.json`), built once at import.

The model loads once per server process, not per request. Settings come from the environment:
`SMARTRAG_POLICY` (a `--policy` value; default the trained embedded policy), `SMARTRAG_RETRIEVER`
(`local` or `web`), `SMARTRAG_CORPUS` (a corpus file or saved index; default the bundled one) and
`SMARTRAG_K`. The server brings its own checkpointer, so threads work without one here.
"""

from __future__ import annotations

import os

from .graph import create_smartrag_graph
from .policy import SmartRAGPolicy
from .retrievers import build_retriever

graph = create_smartrag_graph(
    SmartRAGPolicy.load(os.environ.get("SMARTRAG_POLICY") or None),
    build_retriever(os.environ.get("SMARTRAG_RETRIEVER", "local"), os.environ.get("SMARTRAG_CORPUS") or None,
                    int(os.environ.get("SMARTRAG_K", "4"))),
)
