"""The one place nextword touches files: what it reads must be a regular file, what it writes goes
through a temporary file (fsync, rename) and never through a symbolic link.

Writing: a temporary file is created beside the target with O_CREAT | O_EXCL | O_NOFOLLOW (a name
nobody else holds, never a link), written, fsynced and renamed over the target. A rename replaces a
link at the target's name instead of writing where it points, so a model directory whose files are
links (it may come from a tarball) cannot make nextword write anywhere else. The lock file, the only
file opened in place, is opened with O_NOFOLLOW and refused unless it is a regular file of one link.

Reading: a path is checked with os.stat before it is opened, so a FIFO, a device or a directory is
refused without being opened (opening a FIFO for reading blocks until someone writes to it), and
it is then opened with O_NONBLOCK in case it was swapped for one in between."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import NextwordError, WriteError

_SUFFIX = ".tmp"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows, where links need privileges to make
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def _cannot(exc: OSError) -> str:
    """Why an os call on a path failed, in words that name the real cause."""
    reasons = {
        errno.ENOENT: "not found",
        errno.ELOOP: "a loop of symbolic links",
        errno.EACCES: "not readable (permission denied)",
        errno.EPERM: "not readable (permission denied)",
        errno.ENOTDIR: "not found (a part of the path is a file, not a directory)",
        errno.ENAMETOOLONG: "a name too long for the file system",
    }
    return reasons.get(exc.errno, exc.strerror or str(exc))


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: str | Path, what: str, error: type[NextwordError]) -> None:
    """Refuse `path` unless it is a regular file (links followed), with `error` saying what it is instead.

    Nothing is opened: a FIFO is refused without blocking on it."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise error(
            f"{what} {path} is {_cannot(exc)}" if exc.errno != errno.ENOENT else f"{what} not found: {path}"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path} is {_kind(info.st_mode)}, not a regular file; give a file")


def existing_directory(path: str | Path, what: str, error: type[NextwordError]) -> bool:
    """Whether `path` is a directory (False if nothing is there); `error` if it is something else, or
    cannot be looked at (a loop of links is not 'not found')."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # under a file: nothing there either
        return False
    except OSError as exc:
        raise error(f"{what} {path} is {_cannot(exc)}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise error(
            f"{what} {path} is {_kind(info.st_mode) if not stat.S_ISREG(info.st_mode) else 'a file'}, not a directory"
        )
    return True


@contextlib.contextmanager
def open_regular(path: str | Path, what: str, error: type[NextwordError]) -> Iterator[BinaryIO]:
    """`path` opened for reading in binary, after `regular_file` found it is one."""
    regular_file(path, what, error)
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC | _BINARY)
    except OSError as exc:
        raise error(f"{what} {path} is {_cannot(exc)}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else since the check
        os.close(fd)
        raise error(f"{what} {path} changed into something that is not a regular file while being opened")
    with os.fdopen(fd, "rb") as stream:
        yield stream


def read_bytes(path: str | Path, what: str, error: type[NextwordError]) -> bytes:
    with open_regular(path, what, error) as stream:
        return stream.read()


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside `target`; on success it is fsynced and renamed over `target`.

    The temporary file is new (O_EXCL) and never a link (O_NOFOLLOW), as tempfile.mkstemp makes it,
    and it is opened again without following links to be fsynced. On failure the temporary file is
    removed and `target`, if it existed, is left as it was; an OSError while writing (a full disk, say)
    becomes a one-line `WriteError` that names `target`."""
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=_prefix(target), suffix=_SUFFIX)
        os.close(fd)
    except OSError as exc:
        raise WriteError(f"cannot write {target}: {exc.strerror or exc}") from None
    temporary = Path(name)
    try:
        yield temporary
        replaced = WriteError(
            f"cannot write {target}: its temporary file {temporary} was replaced by "
            f"something else while being written; nothing was changed"
        )
        try:
            fd = os.open(temporary, os.O_RDWR | _NOFOLLOW | _NONBLOCK | _CLOEXEC | _BINARY)
        except OSError as exc:
            raise replaced if exc.errno == errno.ELOOP else exc from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise replaced
            os.fsync(fd)
            _give_new_file_mode(fd, temporary)
        finally:
            os.close(fd)  # before the rename: Windows renames no open file
        os.replace(temporary, target)  # replaces a link at `target` itself, never the file it points to
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()  # a link made there is removed, not followed
        if isinstance(exc, OSError):
            raise WriteError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    _fsync_dir(target.parent)


def _give_new_file_mode(fd: int, temporary: Path) -> None:
    # mkstemp makes the file private; give it the mode any new file gets (umask applied).
    umask = os.umask(0)  # the only way to read it is to set it
    os.umask(umask)
    mode = 0o666 & ~umask
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # Windows: only the read-only bit exists, and there are no links to follow
        os.chmod(temporary, mode)


def _prefix(target: Path) -> str:
    return f".{target.name}."


def leftover_temporaries(target: str | Path) -> list[Path]:
    """The temporary files of `target` that a killed process left behind (a SIGKILL skips all cleanup).

    A live writer's temporary matches too: ask only while no other process can be writing `target`."""
    target = Path(target)
    return sorted(target.parent.glob(f"{glob.escape(_prefix(target))}*{_SUFFIX}"))


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as temporary, open_new(temporary) as stream:
        stream.write(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def open_new(temporary: Path) -> BinaryIO:
    """The temporary file of `atomic_path` opened for writing, without following a link to it."""
    return os.fdopen(os.open(temporary, os.O_WRONLY | os.O_TRUNC | _NOFOLLOW | _CLOEXEC | _BINARY), "wb")


class LockHeld(Exception):
    """Another process holds the lock; `holder` is the process id it wrote, or "?"."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def exclusive_lock(path: Path, error: type[NextwordError]) -> Iterator[None]:
    """Hold an OS lock on the file `path` (made if missing) that holds this process's id.

    The OS releases it when the process ends however it ends, so a crashed run never leaves it stuck.
    Raises `LockHeld` if another process holds it, and `error` if `path` is a link, not a regular
    file, or has other hard links: its id is written into it, and that must land nowhere else."""
    link = f"{path} is a symbolic link; nextword never writes through one: remove it and try again"
    if os.path.islink(path):
        raise error(link)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC | _BINARY, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link made since the check above
            raise error(link) from None
        raise error(f"cannot write the lock file {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"the lock file {path} is {_kind(info.st_mode)}, not a regular file; remove it and try again")
        if info.st_nlink != 1:
            raise error(
                f"the lock file {path} has other hard links, so writing it would change another file; "
                f"remove it and try again"
            )
        _lock(fd)
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, str(os.getpid()).encode())
            yield
        finally:
            _flock(fd, take=False)
    finally:
        os.close(fd)


def _lock(fd: int) -> None:
    """Take the lock without waiting; `LockHeld` naming the holder if another process has it."""
    try:
        _flock(fd, take=True)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
            raise
        holder = "?"
        with contextlib.suppress(OSError):  # Windows forbids reading a locked byte
            os.lseek(fd, 0, os.SEEK_SET)
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
        raise LockHeld(holder) from None


def _flock(fd: int, *, take: bool) -> None:
    """Take the lock without waiting, or release it.

    fcntl exists on POSIX only and msvcrt on Windows only, so each is imported where it is used."""
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK if take else msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if take else fcntl.LOCK_UN)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
