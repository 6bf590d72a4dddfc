"""Output locations checked before the slow work: a command that cannot write its result says so
at once, in one line, instead of failing with a traceback after minutes of computing."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from spectac.volume import SpectacError


def ensure_writable_parent(path: str | Path, *, folder: bool = False) -> Path:
    """Refuse an output whose folder cannot be made or written.

    The nearest existing ancestor of ``path``'s parent (with ``folder``: of ``path`` itself, a
    folder the command creates or writes into) must be a folder in which a new file can be made
    (probed with an anonymous temporary file: nothing is left behind). Whether an existing output
    may be replaced is the writer's business (each refuses existing outputs its own way).

    Returns:
        ``path`` as a Path.

    Raises:
        SpectacError: "<path>: cannot write (<reason>)" when a parent is a regular file, the
            folder is read-only or not writable by this user, or the file system refuses a file.
    """
    path = Path(path)
    probe = Path(os.path.abspath(path))
    probe = probe if folder else probe.parent
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():  # a regular file (or a dangling link) where a folder must be
        raise SpectacError(f"{path}: cannot write ({os.strerror(errno.ENOTDIR)})")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise SpectacError(f"{path}: cannot write ({exc.strerror or os.strerror(errno.EACCES)})") from None
    return path
