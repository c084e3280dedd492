"""Where converted models and built indexes are kept between runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "SMARTRAG_CACHE_DIR"


def cache_dir() -> Path:
    """`$SMARTRAG_CACHE_DIR`, else `$XDG_CACHE_HOME/langchain-smartrag`, else `~/.cache/langchain-smartrag`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "langchain-smartrag"


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target`, first calling `build(tmp)` and renaming tmp into place if it is missing.

    The rename is atomic, so an interrupted build leaves no half-written cache behind, and two
    processes building at once both end up with one complete copy.
    """
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    except OSError as error:
        raise RuntimeError(
            f"cannot write the cache in {target.parent} ({error.strerror}): set {CACHE_ENV} to a writable folder"
        ) from error
    try:
        build(tmp)
        os.replace(tmp, target)
    except OSError:
        if not target.exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
