"""Corpus files in, token-id arrays and training batches out.

A corpus is checked (exists, UTF-8 text, not binary, not empty) and hashed in one streaming pass,
then encoded line by line into a flat array of token ids on disk, read back with numpy.memmap.
The encoded array is cached by (corpus content, tokenizer), so a second run on the same corpus
skips encoding. Training batches are consecutive segments of parallel streams (truncated BPTT)."""

from __future__ import annotations

import atexit
import codecs
import hashlib
import io
import itertools
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from .errors import CorpusError
from .files import atomic_path, open_new, open_regular
from .tokenizer import EOS_ID, Tokenizer

_CHUNK = 1 << 20
_LINES_PER_BATCH = 4096
STDIN = "-"  # the corpus path that means standard input


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    size: int
    sha256: str
    lines: int  # line breaks it holds
    characters: int  # what the recipe sizes a model by: a byte is a character in English, not in Russian


def check_corpus(path: str | Path, what: str = "corpus") -> CorpusFile:
    """Check that a file is non-empty UTF-8 text, hash it and count its lines and characters, in one pass
    that needs little memory. `-` is standard input, spooled to a temporary file first (see `spool_stdin`).

    Anything but a regular file (a directory, a FIFO, a device) is refused without being opened; the
    messages call the file `what` (the corpus, a --valid file)."""
    path = spool_stdin() if str(path) == STDIN else Path(path)
    if path.is_fifo():  # /dev/stdin given for a pipe, say: the spelling that works is -
        raise CorpusError(
            f"{what} {path} is a FIFO (named pipe), not a regular file; to read standard input, give - as the {what}"
        )
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines, characters, has_text = 0, 0, 0, False
    with open_regular(path, what, CorpusError) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            lines += chunk.count(b"\n")
            if (nul := chunk.find(b"\0")) >= 0:
                raise CorpusError(f"{path} looks binary (a NUL byte at offset {offset + nul}); give a UTF-8 text file")
            pending = len(decoder.getstate()[0])  # bytes of a character split across chunks
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise CorpusError(
                    f"{path} is not UTF-8 text: invalid byte at offset "
                    f"{offset - pending + exc.start}; convert it to UTF-8"
                ) from None
            has_text = has_text or not text.isspace() and text != ""
            characters += len(text)
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CorpusError(f"{path} is not UTF-8 text: it ends inside a character (offset {offset})") from None
    if not has_text:
        raise CorpusError(f"{path} is empty or holds only whitespace")
    return CorpusFile(path, offset, digest.hexdigest(), lines, characters)


def spool_stdin() -> Path:
    """Standard input copied to a temporary file named `stdin`, removed when the process ends.

    A corpus is read several times (hash, tokenizer, encoding) and a pipe can be read once; as a file,
    its hash and the encoded cache work as for any other corpus."""
    if sys.stdin is None or sys.stdin.isatty():
        raise CorpusError(
            "the corpus '-' is standard input, which is a terminal here; pipe the text in, "
            "e.g. cat notes/*.txt | nextword train - --out models/notes"
        )
    cache_dir().mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="stdin-", dir=cache_dir()))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "stdin"
    with atomic_path(path) as temporary, open_new(temporary) as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool, _CHUNK)
    return path


def cache_dir() -> Path:
    """Where encoded corpora are kept: $NEXTWORD_CACHE, else the user's cache directory."""
    if env := os.environ.get("NEXTWORD_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nextword"


class _Hashing(io.RawIOBase):
    """A binary stream that adds every byte read from it to `digest`."""

    def __init__(self, stream: BinaryIO, digest: Any):
        self.stream, self.digest = stream, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.stream.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count


def _lines(path: Path, digest: Any) -> Iterator[list[str]]:
    """The lines of `path` in batches, every byte read also added to `digest`."""
    # newline=None turns CRLF and CR line ends into "\n", so Windows files encode like any other.
    with (
        open_regular(path, "corpus", CorpusError) as raw,
        io.TextIOWrapper(io.BufferedReader(_Hashing(raw, digest), _CHUNK), encoding="utf-8", newline=None) as stream,
    ):
        while batch := [line.rstrip("\n") for line in itertools.islice(stream, _LINES_PER_BATCH)]:
            yield batch


def encode_corpus(corpus: CorpusFile, tokenizer: Tokenizer) -> np.ndarray:
    """The corpus as a read-only memory-mapped array of token ids, a line break (`eos`) after each line.

    The cache is named by the corpus's hash, so the bytes encoded are hashed too and must be the bytes
    `check_corpus` hashed: a file edited in between is refused, never cached under the old hash."""
    tokenizer_key = hashlib.sha256(tokenizer.proto).hexdigest()[:16]
    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32)
    target = cache_dir() / f"{corpus.sha256[:32]}-{tokenizer_key}.{dtype.name}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        changed = CorpusError(
            f"{corpus.path} changed while nextword was reading it (its content is not the "
            f"one checked when the run started); run again once nothing is writing to it"
        )
        digest = hashlib.sha256()
        with atomic_path(target) as temporary, open_new(temporary) as out:
            try:
                for lines in _lines(corpus.path, digest):
                    for ids in tokenizer.encode_lines(lines):
                        ids.append(EOS_ID)
                        out.write(np.asarray(ids, dtype=dtype).tobytes())
            except UnicodeDecodeError:  # checked as UTF-8 at the start
                raise changed from None
            if digest.hexdigest() != corpus.sha256:
                raise changed
    if target.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(target, dtype=dtype, mode="r")


class StreamBatches:
    """Truncated-BPTT batches: `batch_size` parallel streams over one token array, cut into segments.

    Stream b is the b-th equal slice of the array; segment j of every stream forms batch j, so the
    hidden state at the end of batch j is the right starting state for batch j + 1."""

    carries_state = True

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, part: tuple[int, int] = (0, 1)):
        """`part` (rank, ranks): in a distributed run, each of `ranks` processes takes its own
        `batch_size` streams out of batch_size × ranks, so together they cover the text once."""
        rank, ranks = part
        streams = batch_size * ranks
        stream_len = (len(ids) - 1) // streams
        self.segments = stream_len // seq_len
        if self.segments < 1:
            raise CorpusError(
                f"the text is too small for one batch: {len(ids)} tokens, but batch_size × "
                f"(seq_len + 1) = {streams * (seq_len + 1)} are needed; "
                f"lower --batch-size or --seq-len, or use more text"
            )
        used = streams * stream_len
        mine = slice(rank * batch_size, (rank + 1) * batch_size)
        self.inputs = ids[:used].reshape(streams, stream_len)[mine]
        self.targets = ids[1 : used + 1].reshape(streams, stream_len)[mine]
        self.seq_len = seq_len

    def __len__(self) -> int:
        return self.segments

    def batch(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of segment `index` (every epoch alike), each (batch_size, seq_len), as int64."""
        cut = slice(index * self.seq_len, (index + 1) * self.seq_len)
        return self.inputs[:, cut].astype(np.int64), self.targets[:, cut].astype(np.int64)


START_OF_TEXT_SHARE = 0.1  # of training windows shortened to a text's first few tokens


class WindowBatches:
    """Batches for a windowed model: `count` windows of `context` tokens drawn from anywhere in the
    corpus, each with the token that follows it.

    The draw for a batch depends only on (seed, epoch, index), so a resumed run sees the same ones.
    An epoch is as many batches as it takes to predict about as many tokens as the corpus holds."""

    carries_state = False

    def __init__(self, ids: np.ndarray, count: int, context: int, seed: int, rank: int = 0):
        if len(ids) < context + count:
            raise CorpusError(
                f"the text is too small for one batch: {len(ids)} tokens, but context + "
                f"batch_size × seq_len = {context + count} are needed; lower --context, "
                f"--batch-size or --seq-len, or use more text"
            )
        self.ids, self.count, self.context, self.seed = ids, count, context, seed
        self.draw_key = [seed] if rank == 0 else [seed, rank]  # each rank of a distributed run draws its own
        self.segments = max(1, (len(ids) - context) // count)

    def __len__(self) -> int:
        return self.segments

    def batch(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Windows (count, context) and the token after each (count, 1), as int64."""
        draw = np.random.default_rng([*self.draw_key, epoch, index])
        ends = draw.integers(self.context, len(self.ids), size=self.count)
        windows = self.ids[ends[:, None] + np.arange(-self.context, 0)].astype(np.int64)
        # Some windows start at a text's beginning, padded with line breaks, as in prediction.
        padded = (draw.random(self.count) < START_OF_TEXT_SHARE) & (self.context > 1)
        cut = draw.integers(1, max(self.context, 2), size=self.count)  # real tokens kept: 1 .. context - 1
        windows[padded[:, None] & (np.arange(self.context) < self.context - cut[:, None])] = EOS_ID
        return windows, self.ids[ends][:, None].astype(np.int64)


# Validation runs every few hundred steps: on a large corpus, a share of it would cost more than the
# training between evaluations (5% of 500 MB is about 6M tokens), with no more use as a measure.
MAX_VALID_TOKENS = 100_000


def split_validation(ids: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The corpus's last `fraction` of tokens (at most MAX_VALID_TOKENS) as validation, the rest as training."""
    cut = len(ids) - max(2, min(int(len(ids) * fraction), MAX_VALID_TOKENS))
    if cut < 2:
        raise CorpusError(f"the corpus is too small to hold out a validation split ({len(ids)} tokens)")
    return ids[:cut], ids[cut:]
