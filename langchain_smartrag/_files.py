"""Writing outputs so that nothing written before is lost.

An output is checked before the work that fills it (`check_output_file`, `check_output_folder`, `check_run_folder`:
its folder can take a new file, a link is followed and must lead somewhere, a folder is not where a file is meant nor
a file where a folder is), then written to a temporary file beside it and renamed into place only once complete
(`atomic_write_text`), so a full disk, a kill or an encoding error leaves the previous file whole. A link is written
through (the file or folder it points to is replaced), never itself replaced by a file or a folder. Each problem is a
`ValueError` naming the flag (or setting) and the path, which `smartrag` prints as one line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path


def _named(path: str | os.PathLike[str], flag: str | None) -> str:
    return f"{flag} {path}" if flag else str(path)


def resolve_output(path: str | os.PathLike[str], flag: str | None = None) -> Path:
    """Where writing `path` writes: the path itself, absolute, or the end of its chain of links. A link that leads
    nowhere is followed when the folder it points into exists (the write creates the file there), else refused."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    if path.is_symlink() and not target.exists() and not target.parent.is_dir():
        raise ValueError(
            f"{_named(path, flag)}: a link to {os.readlink(path)}, whose folder does not exist: create "
            "that folder, or remove the link"
        )
    return target


def _writable_folder(folder: Path, path: str | os.PathLike[str], flag: str | None, what: str) -> None:
    """Create `folder` if need be and check that it takes a new file (what a write aside, then a rename, needs)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ValueError(
            f"{_named(path, flag)}: cannot write there ({reason}: {error.filename or folder}): choose another {what}"
        ) from error


def check_output_file(path: str | os.PathLike[str], flag: str | None = "--output") -> Path:
    """Fail before the work, not after it: `path` (or what its link points to) must not be a folder, its folder is
    created and must take a new file, and an existing file must be writable. Returns the file to write."""
    target = resolve_output(path, flag)
    if target.is_dir():
        raise ValueError(
            f"{_named(path, flag)}: cannot write there (a folder, not a file): name a file (e.g. "
            f"{Path(path) / 'results.json'})"
        )
    _writable_folder(target.parent, path, flag, "path")
    if target.exists():
        try:
            target.open("a").close()
        except OSError as error:
            raise ValueError(
                f"{_named(path, flag)}: cannot write there ({error.strerror or error}): choose another path"
            ) from error
    return target


def check_output_folder(path: str | os.PathLike[str], flag: str | None = "--output") -> Path:
    """Fail before the work for a folder that is replaced whole (an export, `final/`, `best/`): not a file, not the
    current folder or one holding it (it cannot be renamed away while in use), and the folder it stands in takes a
    new folder. Returns the folder to replace (a link's target: the link stays)."""
    target = resolve_output(path, flag)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{_named(path, flag)}: a file, not a folder: choose another path, or remove the file")
    here = Path.cwd().resolve()
    if target == here or target in here.parents:
        raise ValueError(
            f"{_named(path, flag)}: the current folder (or one holding it), which would be replaced "
            "whole: name a folder of its own (e.g. ./export)"
        )
    _writable_folder(target.parent, path, flag, "folder")
    return target


def check_run_folder(path: str | os.PathLike[str], flag: str | None = "--output-dir") -> Path:
    """A run's folder (checkpoints, logs, `final/`): not a file, created if need be, and it takes new files."""
    target = resolve_output(path, flag)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{_named(path, flag)}: a file, not a folder: choose another {flag or 'folder'}")
    _writable_folder(target, path, flag, "folder")
    return target


@functools.cache
def _new_file_mode() -> int:
    """The mode a plain `open(path, "w")` gives a new file (0o666 less the umask), which mkstemp's 0o600 is not."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to a temporary file beside `path` (beside what its link points to), flush it to disk and rename
    it over `path`: a reader, a kill or a full disk sees the previous file or the new one, never part of either.
    The previous file's permissions are kept. Returns the file written."""
    target = resolve_output(path)
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        mode = _new_file_mode()
    descriptor, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """`atomic_write_bytes` of `text` encoded first: text that cannot be encoded (a lone surrogate) raises before any
    file is touched."""
    return atomic_write_bytes(path, text.encode(encoding))
