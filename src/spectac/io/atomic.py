"""Atomic writes: a file or folder appears whole or not at all.

The work is done under a hidden temporary name beside the target,
``.{name}.{pid}.{random}.tmp{suffix}``, and renamed onto the target only when it is complete. The
pid names the owner: a write killed before it could clean up (SIGKILL, power cut) leaves such a
leftover, and the next atomic write to the same target removes every leftover whose process is no
longer alive (a leftover of a live process, a write under way, is kept).

With ``replace=False`` the publish itself refuses an existing target, with no window between the
check and the rename: two runs racing for one output give one result and one "already exists"
error, never a silent replacement. Files are published with ``os.link`` (fails if the name exists),
folders with ``renameat2(RENAME_NOREPLACE)`` on Linux, elsewhere with ``rename``, which refuses a
non-empty folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from spectac.volume import SpectacError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _ordinary_mode(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the usual permissions."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


# ---- temporary names and their leftovers -------------------------------------------------------


def _prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _leftover_pattern(path: Path) -> re.Pattern[str]:
    # mkstemp/mkdtemp add 8 characters of [a-z0-9_] between prefix and suffix
    return re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[a-z0-9_]{{8}}\.tmp.*", re.DOTALL)


def pid_alive(pid: int) -> bool:
    """Whether a process of this id exists (on this machine)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except OSError:
        return True
    return True


def remove_stale_leftovers(path: str | Path) -> list[Path]:
    """Remove the temporaries of killed atomic writes to ``path`` (their pid is not alive).

    Returns:
        What was removed.
    """
    path = Path(path)
    pattern = _leftover_pattern(path)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:  # another run cleaned it meanwhile
            continue
        except OSError:  # not ours to remove after all (permissions): leave it
            continue
        removed.append(entry)
    return removed


# ---- publishing without replacing --------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _load_renameat2():  # noqa: ANN202 - a ctypes function or None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def _exists_error(path: Path) -> SpectacError:
    return SpectacError(f"{path}: already exists (written meanwhile by another run?); choose another output "
                        "or pass --overwrite for a file")


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError when anything is at ``dst`` (even an empty folder)."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(dst))
        # the file system cannot: fall through to check-then-rename
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "exists", str(dst))
    try:
        os.rename(src, dst)  # fails on a non-empty folder, or a file where a folder goes
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(exc.errno, exc.strerror, str(dst)) from exc
        raise


def _publish_file(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)  # atomic, and fails if the name exists
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError:  # no hard links on this file system
        try:
            _rename_noreplace(tmp, path)
        except FileExistsError:
            raise _exists_error(path) from None
        return
    tmp.unlink()


# ---- the context managers ----------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "", *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it becomes ``path`` only if the block succeeds.

    Args:
        path: the target file.
        suffix: keeps the extension a writer needs (``.nii.gz``) on the temporary name.
        replace: replace an existing ``path`` (atomically); False: refuse it at the publish.

    Raises:
        SpectacError: ``replace=False`` and ``path`` exists when the block ends ("already exists").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            _ordinary_mode(tmp_path, directory=False)
        if replace:
            os.replace(tmp_path, path)
        else:
            _publish_file(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it becomes ``path`` only if the block succeeds.

    Args:
        path: the target folder.
        replace: remove an existing ``path`` first; False: refuse anything at ``path`` when the
            block ends, except an empty folder that was already there when it began (it is taken
            over); a folder or file that appears meanwhile, even an empty one, is refused.

    Raises:
        SpectacError: ``replace=False`` and ``path`` is taken when the block ends ("already exists").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(path)
    empty_before = _empty_dir_id(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _ordinary_mode(tmp, directory=True)
        if replace:
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        else:
            if empty_before is not None and _empty_dir_id(path) == empty_before:
                with contextlib.suppress(OSError):  # someone filled it meanwhile: the rename refuses
                    os.rmdir(path)
            try:
                _rename_noreplace(tmp, path)
            except FileExistsError:
                raise _exists_error(path) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _empty_dir_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path`` when it is an empty folder (not a link), else None."""
    try:
        if path.is_symlink() or not path.is_dir() or any(path.iterdir()):
            return None
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes_atomic(path: str | Path, data: bytes, suffix: str = "") -> Path:
    """Bytes (a PNG figure, say) to a file, atomically (see :func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path, suffix=suffix) as tmp:
        tmp.write_bytes(data)
    return path
