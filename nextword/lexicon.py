"""The words of a model's training text, with their counts: what its suggestions are drawn from.

A model predicts pieces, so its word search can spell strings that are no word at all ("timet",
"zzqxty"). The lexicon keeps to words the training text holds, as `Tokenizer.words_at` cuts them
(and so as `Predictor.predict` returns them): a suggestion is a lexicon word, or a word the model is
very sure of (`NOVEL_WORD_PROBABILITY`), such as a name it has learnt to copy.

Stored as `lexicon.tsv` in the model directory: a header line, then `word<TAB>count` per line, the
most frequent first. A model directory from before lexicons has none; its suggestions are not filtered.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import ModelDirError
from .files import write_text
from .tokenizer import Tokenizer, is_word

NOVEL_WORD_PROBABILITY = 0.5  # a word outside the lexicon is suggested only when the model gives it this much
_HEADER = "word\tcount"


class Lexicon:
    """Word counts, and the questions the word search and the CLI ask of them."""

    def __init__(self, counts: Mapping[str, int]):
        self.counts = dict(counts)
        self._sorted = sorted(self.counts)
        self._novel_logprob = math.log(NOVEL_WORD_PROBABILITY)

    def __contains__(self, word: str) -> bool:
        return word in self.counts

    def __len__(self) -> int:
        return len(self.counts)

    def accepts(self, word: str, logprob: float) -> bool:
        """Whether `word`, found with log-probability `logprob`, may be suggested."""
        return word in self.counts or logprob >= self._novel_logprob

    def leads_to_word(self, prefix: str, logprob: float) -> bool:
        """Whether a word search that has spelt `prefix` with log-probability `logprob` can still reach a
        word `accepts`: a lexicon word starts with it, or it is likely enough (probabilities only shrink)."""
        return logprob >= self._novel_logprob or self.has_word_starting(prefix)

    def has_word_starting(self, prefix: str) -> bool:
        at = bisect.bisect_left(self._sorted, prefix)
        return at < len(self._sorted) and self._sorted[at].startswith(prefix)


def count_words(tokenizer: Tokenizer, ids: np.ndarray) -> Counter[str]:
    """How often each word of encoded text occurs: `Counter(text for _, text in tokenizer.words_at(ids))`,
    in one vectorised pass, so that a corpus of millions of words costs seconds.

    A word is a word-start piece and the pieces that carry it on; spans of equal pieces are counted
    together with numpy, and only the distinct spans are turned into text.
    """
    ids = np.asarray(ids)
    starts = np.flatnonzero(tokenizer.starts_word[ids])
    breaks = np.append(np.flatnonzero(~tokenizer.extends_word[ids]), len(ids))
    ends = breaks[np.searchsorted(breaks, starts, side="right")]  # the first piece after each word
    counts: Counter[str] = Counter()
    lengths = ends - starts
    for length in np.unique(lengths):
        at = starts[lengths == length]
        spans = ids[at[:, None] + np.arange(length)]
        distinct, times = np.unique(spans, axis=0, return_counts=True)
        for pieces, count in zip(distinct.tolist(), times.tolist()):
            text = "".join(tokenizer.piece_text[i] for i in pieces).lstrip(" ")
            if is_word(text):
                counts[text] += count  # other segmentations of the same word add up
    return counts


def write_lexicon(path: Path, counts: Mapping[str, int]) -> None:
    """The counts as TSV, most frequent first (ties in alphabetical order), written atomically."""
    rows = sorted(((word, count) for word, count in counts.items() if not any(c in word for c in "\t\r\n")),
                  key=lambda row: (-row[1], row[0]))
    write_text(path, _HEADER + "\n" + "".join(f"{word}\t{count}\n" for word, count in rows))


def read_lexicon(path: Path) -> Lexicon | None:
    """The lexicon at `path`; None when there is none (a model directory from before lexicons)."""
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise ModelDirError(f"{path} is damaged (not UTF-8 text)") from None
    if lines[0] != _HEADER:
        raise ModelDirError(f"{path} is damaged (its first line is not '{_HEADER}')")
    counts = {}
    for number, line in enumerate(lines[1:], 2):
        if not line:
            continue
        word, _, count = line.partition("\t")
        if not word or not count.isdigit():
            raise ModelDirError(f"{path} is damaged (line {number} is not word<TAB>count)")
        counts[word] = int(count)
    return Lexicon(counts)
