"""What every `smartrag` command shares, the plug-in's own (`ask`) and those a package adds through the
`langchain_smartrag.commands` entry-point group: argparse types for counts, and running a parsed command."""

from __future__ import annotations

import argparse
import logging


def positive_int(text: str) -> int:
    """An argparse type for counts (questions, documents, a batch): 0 or less would mean all, or drop some, or fail."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type for quotas and retries, where 0 means none."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {value}")
    return value


def run_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run a parsed command (`args.run(args)`); a bad value, file or path the user gave is one line and exit 2, not a
    traceback, and so is a file system's refusal (a full disk, a read-only one: an `OSError`, which names the file)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG on import
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        parser.exit(2, f"smartrag: error: {' '.join(str(error).split()) or type(error).__name__}\n")
