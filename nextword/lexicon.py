"""The words of a model's training text, with their counts: what its suggestions are drawn from.

A model predicts pieces, so its word search can spell strings that are no word at all ("timet",
"zzqxty"). The lexicon keeps to words the training text holds, as `Tokenizer.words_at` cuts them
(and so as `Predictor.predict` returns them): a suggestion is a lexicon word, or a word the model is
very sure of (`NOVEL_WORD_PROBABILITY`), such as a name it has learnt to copy, or a word the document
being read has already used (`DocumentWords`: a play's names, a user's own terms), from then on.

Stored as `lexicon.tsv` in the model directory: a header line, then `word<TAB>count` per line, the
most frequent first. A model directory from before lexicons has none; its suggestions are not filtered."""

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
_NOVEL_LOGPROB = math.log(NOVEL_WORD_PROBABILITY)
_PREFIXES_KEPT = 1 << 16  # the lexicon's answers remembered, at most


class Words:
    """The questions the word search, generation and the CLI ask of the words suggestions keep to;
    a subclass says which words those are (`__contains__`) and which prefixes lead to one."""

    def __contains__(self, word: str) -> bool:
        raise NotImplementedError

    def has_word_starting(self, prefix: str) -> bool:
        raise NotImplementedError

    def accepts(self, word: str, logprob: float) -> bool:
        """Whether `word`, found with log-probability `logprob`, may be suggested."""
        return word in self or logprob >= _NOVEL_LOGPROB

    def leads_to_word(self, prefix: str, logprob: float) -> bool:
        """Whether a word search that has spelt `prefix` with log-probability `logprob` can still reach a
        word `accepts`: one of the words starts with it, or it is likely enough (probabilities only shrink)."""
        return logprob >= _NOVEL_LOGPROB or self.has_word_starting(prefix)


class Lexicon(Words):
    """The training text's words with their counts."""

    def __init__(self, counts: Mapping[str, int]):
        self.counts = dict(counts)
        self._sorted = sorted(self.counts)
        self._starts: dict[str, bool] = {}  # prefix -> has_word_starting: a search asks of the same ones again

    def __contains__(self, word: str) -> bool:
        return word in self.counts

    def has_word_starting(self, prefix: str) -> bool:
        known = self._starts.get(prefix)
        if known is None:
            if len(self._starts) >= _PREFIXES_KEPT:
                self._starts.clear()
            at = bisect.bisect_left(self._sorted, prefix)
            known = self._starts[prefix] = at < len(self._sorted) and self._sorted[at].startswith(prefix)
        return known


class DocumentWords:
    """The words a document has used that `lexicon` lacks, each with the place of its first use (a
    number that grows along the document: a word's index, a character offset)."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon
        self.first: dict[str, int] = {}
        self._sorted: list[str] = []

    def add_words(self, words: list[tuple[int, str]], last_complete: bool = True, place: int | None = None) -> None:
        """Add `words` (as `Tokenizer.words_at` gives them), each at its position, or all at `place`; the
        last only if it is `last_complete` (a text that does not end in whitespace may go on with it)."""
        for position, word in words if last_complete else words[:-1]:
            if word not in self.first and word not in self.lexicon and is_word(word):
                self.first[word] = position if place is None else place
                bisect.insort(self._sorted, word)

    def forget_after(self, place: int) -> None:
        """Forget the words first used after `place` (the document was edited there)."""
        self.first = {word: first for word, first in self.first.items() if first <= place}
        self._sorted = sorted(self.first)

    def before(self, place: float = math.inf) -> Words:
        """The lexicon's words and this document's before `place`: what a suggestion there may be."""
        return _LexiconAndDocument(self, place)

    def used_word_starting(self, prefix: str, before: float) -> bool:
        """Whether a word this document first used before `before` starts with `prefix`."""
        at = bisect.bisect_left(self._sorted, prefix)
        while at < len(self._sorted) and self._sorted[at].startswith(prefix):
            if self.first[self._sorted[at]] < before:
                return True
            at += 1
        return False


class _LexiconAndDocument(Words):
    def __init__(self, document: DocumentWords, before: float):
        self.document, self.before = document, before

    def __contains__(self, word: str) -> bool:
        return word in self.document.lexicon or self.document.first.get(word, math.inf) < self.before

    def has_word_starting(self, prefix: str) -> bool:
        return self.document.lexicon.has_word_starting(prefix) or self.document.used_word_starting(prefix, self.before)


def count_words(tokenizer: Tokenizer, ids: np.ndarray) -> Counter[str]:
    """How often each word of encoded text occurs: `Counter(text for _, text in tokenizer.words_at(ids))`,
    in one vectorised pass, so that a corpus of millions of words costs seconds.

    A word is a word-start piece and the pieces that carry it on; spans of equal pieces are counted
    together with numpy, and only the distinct spans are turned into text."""
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
    kept = [(word, count) for word, count in counts.items() if not any(c in word for c in "\t\r\n")]
    rows = sorted(kept, key=lambda row: (-row[1], row[0]))
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
