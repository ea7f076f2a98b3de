"""Writing files so that a crash never leaves one half-written: temporary file, fsync, rename."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import WriteError

_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside `target`; on success it is fsynced and renamed over `target`.

    On failure the temporary file is removed and `target`, if it existed, is left as it was; an
    OSError while writing (a full disk, say) becomes a one-line `WriteError` that names `target`.
    """
    target = Path(target)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=_prefix(target), suffix=_SUFFIX)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; give it a new file's mode
        os.replace(temporary, target)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise WriteError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    _fsync_dir(target.parent)


def _prefix(target: Path) -> str:
    return f".{target.name}."


def leftover_temporaries(target: str | Path) -> list[Path]:
    """The temporary files of `target` that a killed process left behind (a SIGKILL skips all cleanup).

    A live writer's temporary matches too: ask only while no other process can be writing `target`.
    """
    target = Path(target)
    return sorted(target.parent.glob(f"{glob.escape(_prefix(target))}*{_SUFFIX}"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
