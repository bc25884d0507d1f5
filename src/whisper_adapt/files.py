"""Files on disk: written whole or not at all, and identified by their content."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from whisper_adapt.errors import WhisperAdaptError

_CHUNK = 1 << 22


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary file beside `path`, sync it, then rename it into place: readers and
    crashes never see half a file. Opened with "x" rather than mkstemp so the file gets the user's usual
    permissions, not 0600; being in the same directory makes the rename atomic."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    """`text` as UTF-8 with LF line ends, written whole or not at all (missing directories are created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def files_sha256(paths: Iterable[Path]) -> str:
    """One sha256 over the contents of `paths`, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
        except OSError as e:
            raise WhisperAdaptError(f"cannot read the file ({e.strerror})", path) from e
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    return files_sha256([path])
