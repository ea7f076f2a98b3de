"""Whole words from a model of pieces: the beam search behind every next-word prediction.

A model predicts subword pieces; a word's probability is

    P(word) = P(piece_1) · P(piece_2 | piece_1) · … · P(a word boundary comes next | pieces)

summed over the segmentations the search finds. A beam search over pieces, up to the next word
boundary, finds the likeliest words. When the text ends inside a word, only pieces that agree with
the typed letters are followed, so the result is the completions of that partial word. With a
lexicon, the words found are its words and those the text before has used (see lexicon.py).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .errors import ConfigError, NextwordError
from .lexicon import DocumentWords, Lexicon, Words
from .model import State
from .pieces import PieceModel
from .tokenizer import EOS_ID, Tokenizer, is_word

MAX_WORD_PIECES = 24  # longest word searched, in pieces (a character tokenizer needs the most)
_LEXICON_POOL = 16  # with a lexicon, the search looks at this many extensions for each beam it keeps


def split_partial(text: str) -> tuple[str, str]:
    """(context, partial word): the letters after the last whitespace are a word still being typed.

    Read back from the end, so a long document costs the length of its last word."""
    start = len(text)
    while start and not text[start - 1].isspace():
        start -= 1
    return text[:start], text[start:]


def check_query(text: str, k: int) -> None:
    """Refuse what no prediction can answer: an empty text, fewer than one word."""
    if not text.strip():
        raise NextwordError("the text is empty; give the words that come before the one to predict")
    if k < 1:
        raise ConfigError(f"option 'top_k' must be >= 1; got {k}")


@dataclass(frozen=True)
class _Beam:
    text: str  # the word built so far, without its leading space
    logprob: float


class _PieceIndex:
    """Which pieces can extend a word so that it still agrees with the letters typed so far."""

    def __init__(self, tokenizer: Tokenizer):
        tables: dict[bool, list[tuple[str, int]]] = {True: [], False: []}
        for i, text in enumerate(tokenizer.piece_text):
            if tokenizer.ordinary[i]:
                tables[bool(tokenizer.starts_word[i])].append((text.lstrip(" "), i))
        self.tables = {first: sorted(table) for first, table in tables.items()}
        self.keys = {first: [text for text, _ in table] for first, table in self.tables.items()}

    def agreeing(self, first: bool, remaining: str) -> list[int]:
        """Ids of word-start (`first`) or continuation pieces that `remaining` starts with, or that start
        with `remaining`: the pieces that keep a word in agreement with the letters typed."""
        table, keys = self.tables[first], self.keys[first]
        found = []
        at = bisect.bisect_left(keys, remaining)
        while at < len(keys) and keys[at].startswith(remaining):
            found.append(table[at][1])
            at += 1
        for cut in range(0 if first else 1, len(remaining)):  # pieces that are a prefix of `remaining`
            prefix = remaining[:cut]
            at = bisect.bisect_left(keys, prefix)
            while at < len(keys) and keys[at] == prefix:
                found.append(table[at][1])
                at += 1
        return found


class WordSearcher:
    """Word search over one model, built once: `words` and `logprobs_of` take the model's next-piece
    log-probabilities (1, vocab) at a place in a text and the state it came with."""

    def __init__(self, pieces: PieceModel, lexicon: Lexicon | None = None):
        """`lexicon`: the words a search may return (and new words it is very sure of); None: any."""
        self.pieces, self.lexicon = pieces, lexicon
        self.index = _PieceIndex(pieces.tokenizer)

    def document(self, ids: Sequence[int] = (), last_complete: bool = True) -> DocumentWords | None:
        """The words of the encoded text `ids` by piece position (the last one only if it is complete):
        what a search after them may suggest besides the lexicon's. None when it keeps to no lexicon."""
        if self.lexicon is None:
            return None
        document = DocumentWords(self.lexicon)
        document.add_words(self.pieces.tokenizer.words_at(ids), last_complete)
        return document

    def allowed(self, document: DocumentWords | None, before: float = math.inf) -> Words | None:
        """What a search may suggest: the lexicon's words and `document`'s before `before`; None: any word."""
        return self.lexicon if document is None else document.before(before)

    @staticmethod
    def accepts(word: str, logprob: float, found: dict[str, float], allowed: Words | None) -> bool:
        """Whether a finished beam's `word` counts as a suggestion: it holds a letter or digit and is one
        of the `allowed` words, if any are given (or likely enough to be a new one; once one
        segmentation made it count, the others add to it)."""
        return is_word(word) and (allowed is None or word in found or allowed.accepts(word, logprob))

    @torch.inference_mode()
    def words(self, logprobs: torch.Tensor, state: State, partial: str, k: int,
              document: DocumentWords | None = None, before: float = math.inf) -> list[tuple[str, float]]:
        """The k likeliest next words that start with `partial`, best first, with their probabilities;
        words of `document` used before `before` count as lexicon words."""
        return _Search(self, partial, k, self.allowed(document, before)).run(logprobs, state)

    @torch.inference_mode()
    def logprobs_of(self, logprobs: torch.Tensor, state: State, words: list[str]) -> list[float]:
        """log P(word comes next) for each of `words`: the word's own pieces, then a word boundary."""
        pieces, tokenizer, ends = self.pieces, self.pieces.tokenizer, self.pieces.ends
        encoded = [tokenizer.encode_line(word) for word in words]
        longest = max(map(len, encoded))
        rows = torch.tensor([ids + [EOS_ID] * (longest - len(ids)) for ids in encoded], device=pieces.device)
        # Every word at once: one row each, all starting from the same state.
        logits, _ = pieces.model(rows, pieces.model.select_state(
            state, torch.zeros(len(words), dtype=torch.long, device=pieces.device)))
        following = torch.log_softmax(logits.float(), dim=-1)
        before_each = torch.cat([logprobs.expand(len(words), 1, -1), following], dim=1)  # [:, i]: before piece i
        boundary = torch.logsumexp(before_each[:, :, ends], dim=-1)
        return [float(before_each[row, torch.arange(len(ids)), ids].sum() + boundary[row, len(ids)])
                for row, ids in enumerate(encoded)]


class WordSearch:
    """What a model says at one place in a text: `search(partial, k)` gives the k likeliest next words
    (completions of `partial`), `logprobs_of(words)` the log-probability of given words coming next."""

    def __init__(self, searcher: WordSearcher, logprobs: torch.Tensor, state: State,
                 document: DocumentWords | None = None, before: float = math.inf):
        self._searcher, self._logprobs, self._state = searcher, logprobs, state
        self._document, self._before = document, before

    def __call__(self, partial: str, k: int) -> list[tuple[str, float]]:
        return self._searcher.words(self._logprobs, self._state, partial, k, self._document, self._before)

    def logprobs_of(self, words: list[str]) -> list[float]:
        return self._searcher.logprobs_of(self._logprobs, self._state, words)


@dataclass
class _Search:
    """One search: the completions of `partial`, the k best kept."""

    searcher: WordSearcher
    partial: str
    k: int
    allowed: Words | None  # what may be suggested (see WordSearcher.allowed); None: any word
    found: dict[str, float] = field(default_factory=dict)  # word -> log-probability, all segmentations

    def run(self, logprobs: torch.Tensor, state: State) -> list[tuple[str, float]]:
        tokenizer, allowed = self.searcher.pieces.tokenizer, self.allowed
        width = max(4 * self.k, 16)
        # With a lexicon, more extensions are looked at than kept: those that spell no word's beginning go.
        pool = width if allowed is None else width * _LEXICON_POOL
        beams = [_Beam("", 0.0)]
        for depth in range(MAX_WORD_PIECES):
            scores = self._extension_scores(beams, logprobs, first=depth == 0)
            kth_best = self._kth_best()
            if kth_best > -np.inf:  # extensions that can no longer finish a word among the k best
                scores.masked_fill_(scores < kth_best, -np.inf)
            top = torch.topk(scores.flatten(), min(pool, scores.numel()))
            keep = torch.isfinite(top.values)
            picked, new_scores = top.indices[keep], top.values[keep]
            rows, pieces = picked // scores.shape[1], picked % scores.shape[1]
            beams = [_Beam(beams[r].text + tokenizer.piece_text[p].lstrip(" "), s)
                     for r, p, s in zip(rows.tolist(), pieces.tolist(), new_scores.tolist())]
            if allowed is not None:
                beams, rows, pieces = self._keep_to_lexicon(beams, rows, pieces, width)
            if not beams:
                break
            beams, logprobs, state = self._advance(beams, pieces, rows, state)
        ranked = sorted(self.found.items(), key=lambda item: -item[1])[: self.k]
        return [(word, float(np.exp(logprob))) for word, logprob in ranked]

    def _advance(self, beams: list[_Beam], pieces: torch.Tensor, rows: torch.Tensor, state: State
                 ) -> tuple[list[_Beam], torch.Tensor, State]:
        """One step of the model for `beams`, each the beam `rows` of `state` extended by its piece in
        `pieces`; the words they finish are collected. Returns the beams still worth extending, their
        next-piece log-probabilities and their states.

        The 2k likeliest go first: the words they finish usually rule out most of the others before
        those cost a step of the model, the search's main cost.
        """
        model, run = self.searcher.pieces.model, self.searcher.pieces.run
        lead = 2 * self.k
        logprobs, after = run(pieces[:lead, None], model.select_state(state, rows[:lead]))
        self._collect_finished(beams[:lead], logprobs)
        threshold = self._kth_best()  # probabilities only shrink as a word grows
        rest = [i for i in range(lead, len(beams)) if beams[i].logprob >= threshold]
        if rest:
            at = torch.tensor(rest, device=logprobs.device)
            more, more_after = run(pieces[at, None], model.select_state(state, rows[at]))
            self._collect_finished([beams[i] for i in rest], more)
            logprobs, after = torch.cat([logprobs, more]), model.join_states(after, more_after)
        return beams[:lead] + [beams[i] for i in rest], logprobs, after

    def _keep_to_lexicon(self, beams: list[_Beam], rows: torch.Tensor, pieces: torch.Tensor, width: int
                         ) -> tuple[list[_Beam], torch.Tensor, torch.Tensor]:
        """The (at most `width`) likeliest beams that can still become a word the lexicon accepts, a
        lexicon word or one likely enough to be a new word: the places of the others go to words."""
        kept = [i for i, beam in enumerate(beams) if self.allowed.leads_to_word(beam.text, beam.logprob)][:width]
        at = torch.tensor(kept, dtype=torch.long, device=rows.device)
        return [beams[i] for i in kept], rows[at], pieces[at]

    def _kth_best(self) -> float:
        """The log-probability a word must beat to be among the k best found so far."""
        return sorted(self.found.values(), reverse=True)[self.k - 1] if len(self.found) >= self.k else -np.inf

    def _collect_finished(self, beams: list[_Beam], logprobs: torch.Tensor) -> None:
        """Accept each beam that is a whole word (ends here, covers the typed letters): the one place
        where a word is found."""
        ends = torch.logsumexp(logprobs.index_select(1, self.searcher.pieces.ends), dim=-1).tolist()
        for beam, end in zip(beams, ends):
            word, logprob = beam.text, beam.logprob + end
            if word.startswith(self.partial) and self.searcher.accepts(word, logprob, self.found, self.allowed):
                # Different segmentations of one word are one word: add their probabilities.
                self.found[word] = np.logaddexp(self.found.get(word, -np.inf), logprob)

    def _extension_scores(self, beams: list[_Beam], logprobs: torch.Tensor, first: bool) -> torch.Tensor:
        """Log-probability of each (beam, next piece), -inf where the piece may not extend the beam."""
        pieces, partial = self.searcher.pieces, self.partial
        ruled_out = pieces.not_starts if first else pieces.not_extends
        if partial:  # only then do rows differ: each must agree with the letters typed
            ruled_out = ruled_out.expand_as(logprobs).clone()
            for row, beam in enumerate(beams):
                remaining = partial[len(beam.text):] if partial.startswith(beam.text) else None
                if remaining:
                    ruled_out[row] = True
                    ruled_out[row, self.searcher.index.agreeing(first, remaining)] = False
        base = torch.tensor([beam.logprob for beam in beams], device=logprobs.device)
        return (logprobs + base[:, None]).masked_fill_(ruled_out, -np.inf)
