"""Path checks made before the slow work: where outputs may go (outside the inputs, somewhere
writable) and which input files are read (regular files only)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from spectac.errors import SpectacError


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_outside(output: str | Path, *inputs: str | Path | None) -> None:
    """Refuse an output that equals, lies inside or contains one of the inputs.

    Paths are compared after resolving symbolic links and ``..``, so another spelling of the same
    folder is caught too. ``None`` inputs (options not given) are ignored.

    Raises:
        SpectacError: one line naming the output and the input.
    """
    out = Path(output).expanduser().resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).expanduser().resolve()
        if out == source:
            relation = "is the input"
        elif _inside(out, source):
            relation = "lies inside the input"
        elif _inside(source, out):
            relation = "contains the input"
        else:
            continue
        raise SpectacError(f"{output}: the output {relation} {given}; choose an output outside the input folders")


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def regular_files(folder: str | Path) -> tuple[list[Path], list[dict[str, str]]]:
    """The regular files under ``folder`` (recursively, sorted), and what was skipped and why.

    Symbolic links are never followed, neither to files nor to folders: a link may lead out of
    the folder the user named (or loop), so it is reported as skipped. FIFOs, sockets and devices
    are skipped too (reading a FIFO would wait forever). Hidden entries (".name") and DICOMDIR
    index files are left out silently, as they are no image data. ``folder`` itself may be a link.

    Returns:
        (files, skipped): skipped is a list of {"path", "reason"}.
    """
    files: list[Path] = []
    skipped: list[dict[str, str]] = []

    def unreadable(error: OSError) -> None:
        skipped.append({"path": str(error.filename), "reason": f"unreadable folder ({error.strerror})"})

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        keep = []
        for name in sorted(dirs):
            if name.startswith("."):
                continue
            if os.path.islink(os.path.join(root, name)):
                skipped.append({"path": os.path.join(root, name), "reason": "symbolic link to a folder (not followed)"})
            else:
                keep.append(name)
        dirs[:] = keep
        for name in sorted(names):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            path = Path(root) / name
            try:
                mode = path.lstat().st_mode
            except OSError as exc:
                skipped.append({"path": str(path), "reason": f"unreadable ({exc.strerror})"})
                continue
            if stat.S_ISREG(mode):
                files.append(path)
            elif stat.S_ISLNK(mode):
                skipped.append({"path": str(path), "reason": "symbolic link (not followed)"})
            else:
                kind = next((what for test, what in _KINDS if test(mode)), "not a regular file")
                skipped.append({"path": str(path), "reason": kind})
    return files, skipped


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


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes (read in 1 MiB blocks), as hex: weights and datasets in
    training records, the weights a `spectac serve` job ran with."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
