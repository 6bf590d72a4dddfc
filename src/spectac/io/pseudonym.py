"""Pseudonymous patient ids for imported clinical data.

A clinic's Patient ID (often its medical record number) must not travel with a training dataset:
it would name study folders, cases.csv rows and report captions. ``spectac import`` replaces it
with ``p-`` and the first 12 hex digits of HMAC-SHA256(key, PatientID). The key is a secret that
stays with the clinic (by default ``~/.config/spectac/pseudonym.key``, or the file named by
``$SPECTAC_PSEUDONYM_KEY_FILE``): with the same key a patient gets the same pseudonym in every
import, so new exports extend a dataset consistently; without the key the pseudonym cannot be
traced back by hashing a list of record numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from pathlib import Path

from spectac.volume import SpectacError

KEY_ENV = "SPECTAC_PSEUDONYM_KEY_FILE"
KEY_BYTES = 32
MIN_KEY_BYTES = 16
PREFIX = "p-"
DIGITS = 12


def default_key_file() -> Path:
    """``$SPECTAC_PSEUDONYM_KEY_FILE`` when set, else ``~/.config/spectac/pseudonym.key``."""
    env = os.environ.get(KEY_ENV)
    return Path(env).expanduser() if env else Path.home() / ".config" / "spectac" / "pseudonym.key"


def read_key(path: str | Path) -> bytes | None:
    """The key in ``path`` (its bytes, surrounding whitespace removed), or None when it is missing.

    Raises:
        SpectacError: not a regular file, unreadable, or shorter than 16 bytes.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SpectacError(f"{path}: cannot read the pseudonym key ({exc.strerror})") from exc
    if not stat.S_ISREG(mode):
        raise SpectacError(f"{path}: the pseudonym key must be a regular file")
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise SpectacError(f"{path}: cannot read the pseudonym key ({exc.strerror})") from exc
    if len(key) < MIN_KEY_BYTES:
        raise SpectacError(f"{path}: the pseudonym key holds {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
    return key


def create_key(path: str | Path) -> bytes:
    """Create a key file readable by its owner only (0600): 32 random bytes, written as 64 hex
    digits. If another process created it meanwhile, that key is returned and nothing replaced."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write((secrets.token_hex(KEY_BYTES) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # appears whole, and never replaces an existing key
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise SpectacError(f"{path}: cannot create the pseudonym key ({exc.strerror or exc})") from exc
    key = read_key(path)
    if key is None:
        raise SpectacError(f"{path}: the pseudonym key vanished while it was created")
    return key


def pseudonym(patient_id: str, key: bytes) -> str:
    """``p-`` and 12 hex digits of HMAC-SHA256(key, patient_id): same patient and key, same id."""
    return PREFIX + hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:DIGITS]


def key_id(key: bytes) -> str:
    """A short fingerprint of the key (recorded in dataset.json; it does not reveal the key), so
    two datasets can be checked to share a key."""
    return hashlib.sha256(b"spectac pseudonym key id\0" + key).hexdigest()[:8]
