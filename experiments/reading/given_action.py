"""Rewrite a warm-up file's reading rows as `smartrag train warmup` now writes them: the action word `[Answer]` moves
from the completion to `given` (forced by the graph: read, not trained on). Other rows are copied as they are.

    python experiments/reading/given_action.py runs/reading/warmup.jsonl runs/reading/warmup_given.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from langchain_smartrag import ANSWER


def main(source: Path, target: Path) -> None:
    lines = []
    for line in source.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("kind") == "reading" and row["completion"].startswith(ANSWER):
            row["given"], row["completion"] = ANSWER, row["completion"][len(ANSWER) :]
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    target.write_text("".join(lines), encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Move the reading rows' action word from completion to given.")
    parser.add_argument("source", type=Path, help="a warm-up file (JSONL) as `smartrag train warmup` wrote it")
    parser.add_argument("target", type=Path, help="where the rewritten rows go")
    args = parser.parse_args()
    main(args.source, args.target)
