"""Sessions: one growing document, asked after every key, at a cost that does not grow with it.

A session keeps what the model has read at *settled* places of its text, the positions right after
a space or a line break. There the ids of the text so far are a prefix of the ids of any longer
text: SentencePiece begins every word at the space before it, strips a line's trailing spaces and
collapses runs of them, and a line break is the end-of-line id between lines encoded apart. So the
text after a settled place encodes on its own to the rest of the whole text's ids, and the model
reads on from the state saved there: a key costs the pieces typed since the last settled place,
whatever the document's length (a bidirectional-encoded model's state is its window: it costs that).

Editing back (`set_text`) keeps the saved readings inside the prefix the old and new texts share,
the newest densely (every settled place) and older ones ever more sparsely, so memory stays
bounded and an edit near the end costs little.

The words the document has used, which suggestions may be besides the lexicon's (see lexicon.py),
are gathered from the pieces as they are read, each keyed by where the stretch that held it ends,
so that an edit forgets those after it."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Iterator

import torch

from . import sampling
from .config import Sampling
from .lexicon import DocumentWords
from .model import State
from .pieces import PieceModel
from .search import WordSearcher, check_query, split_partial

_SETTLED = re.compile(r"[ \n]")  # a settled place is just after one of these
RECENT = 32  # the newest settled places are all kept
OLD = 32  # at most this many (twice, just before a thinning) kept before them


@dataclass(frozen=True)
class _Reading:
    """What the model has read after the text's first `position` characters."""

    position: int
    logprobs: torch.Tensor  # the next piece (1, vocab)
    state: State


class Reader:
    """What a `Predictor` and a `Session` both answer, a text's next words and its continuation, from what a
    subclass's `_read_to(text, end)` says after `text[:end]`: next-piece log-probabilities, state, words read."""

    pieces: PieceModel
    searcher: WordSearcher

    def _predict(self, text: str, k: int) -> list[tuple[str, float]]:
        check_query(k)
        context, partial = split_partial(text)
        logprobs, state, document = self._read_to(text, len(context))
        return self.searcher.words(logprobs, state, partial, k, document)

    def _stream(self, text: str, seed: int | None, options: dict[str, float]) -> Iterator[str]:
        chosen = Sampling(**options)
        logprobs, state, document = self._read_to(text, len(text))
        allowed = self.searcher.allowed(document)
        # The pieces it writes are read against the caches of the text, not into them: see `PieceModel.writer`.
        yield from sampling.stream(self.pieces.writer, logprobs, state, text, chosen, seed, allowed)


class Session(Reader):
    """One document and what the model has read of it: `predict` answers what `Predictor.predict`
    answers for `text`, `generate` what `Predictor.generate` does, at the cost of what changed."""

    def __init__(self, pieces: PieceModel, searcher: WordSearcher):
        self.pieces, self.searcher = pieces, searcher
        self._text = ""
        self._saved: list[_Reading] = []  # at settled places, by position; the first at 0
        self._latest: _Reading | None = None  # the last reading asked for, settled or not
        self._document = searcher.document()  # its words, by the end of the stretch read that held them

    @property
    def text(self) -> str:
        return self._text

    def append(self, text: str) -> None:
        self._text += text  # every saved reading stays a reading of this text

    def set_text(self, text: str) -> None:
        """Make the document `text`; what was read of the prefix it shares with the old one is kept."""
        shared = common_prefix_length(self._text, text)
        self._text = text
        del self._saved[bisect.bisect_right([r.position for r in self._saved], shared) :]
        if self._latest is not None and self._latest.position > shared:
            self._latest = None
        if self._document is not None:
            self._document.forget_after(shared)

    def reset(self) -> None:
        self.set_text("")

    def predict(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely next words (or completions of a partial last word), with probabilities."""
        return self._predict(self._text, k)

    def stream(self, *, seed: int | None = None, **options: float) -> Iterator[str]:
        """The continuation of the text, piece by piece (see `Predictor.stream`); the text stays as it is."""
        return self._stream(self._text, seed, options)

    def generate(self, *, seed: int | None = None, **options: float) -> str:
        return "".join(self.stream(seed=seed, **options))

    @torch.inference_mode()
    def _read_to(self, text: str, end: int) -> tuple[torch.Tensor, State, DocumentWords | None]:
        """After the document's (`text`'s) first `end` characters, read on from the last reading saved before them."""
        if self._latest is None or self._latest.position != end:
            if not self._saved:
                self._saved.append(_Reading(0, *self.pieces.run(self.pieces.context_ids(""))))
            at = bisect.bisect_right([r.position for r in self._saved], end)
            reading, read = self._saved[at - 1], []
            for stop in _spread([m.end() for m in _SETTLED.finditer(text, self._saved[at - 1].position, end)]):
                reading = self._read_on(reading, stop)
                read.append(reading)
            self._saved[at:at] = read
            self._thin()
            self._latest = self._read_on(reading, end)
        return self._latest.logprobs, self._latest.state, self._document

    def _read_on(self, reading: _Reading, stop: int) -> _Reading:
        text = self._text[reading.position : stop]
        ids = self.pieces.tokenizer.encode(text)
        if self._document is not None:
            self._document.add_words(self.pieces.tokenizer.words_at(ids), text[-1:].isspace(), place=stop)
        if not ids:  # spaces only: nothing new to read
            return _Reading(stop, reading.logprobs, reading.state)
        return _Reading(stop, *self.pieces.run(ids, reading.state))

    def _thin(self) -> None:
        """Keep the first reading, the RECENT newest, and every second one between once they are too many."""
        older = self._saved[1:-RECENT]
        if len(older) > OLD:
            self._saved[1:-RECENT] = older[1::2]


def _spread(settled: list[int]) -> list[int]:
    """Where to save readings among the settled places of a stretch read at once (a paste, a loaded
    document): the RECENT last, and at most OLD evenly spaced before them."""
    older = settled[:-RECENT]
    step = -(-len(older) // OLD) or 1
    return older[::step] + settled[-RECENT:]


def common_prefix_length(a: str, b: str) -> int:
    """How many characters `a` and `b` share at their start, in a few whole-slice comparisons."""
    if b.startswith(a):
        return len(a)
    low, high = 0, min(len(a), len(b))  # a[:low] == b[:low]; they differ somewhere before `high`
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low
