"""Next-word prediction and text generation from a trained model.

Prediction works on whole words although the model predicts subword pieces: a beam search over
pieces, up to the next word boundary, gives each word the probability

    P(word) = P(piece_1) · P(piece_2 | piece_1) · … · P(a word boundary comes next | pieces)

summed over the segmentations it finds. When the text ends inside a word, only pieces that agree
with the typed letters are followed, so the result is the completions of that partial word.
Generation carries the recurrent state forward one token at a time, so each new token costs the
same however long the text already is.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .checkpoint import LoadedModel, load
from .config import Sampling
from .errors import ConfigError, NextwordError
from .model import State, model_device
from .tokenizer import EOS_ID, Tokenizer

_TRAILING_WORD = re.compile(r"(\S*)$")
MAX_WORD_PIECES = 24  # longest word searched, in pieces (a character tokenizer needs the most)
_LEXICON_POOL = 16  # with a lexicon, the search looks at this many extensions for each beam it keeps


def split_partial(text: str) -> tuple[str, str]:
    """(context, partial word): the letters after the last whitespace are a word still being typed."""
    partial = _TRAILING_WORD.search(text).group(1)
    return text[: len(text) - len(partial)], partial


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


class WordSearch:
    """What a model says at one place in a text: `search(partial, k)` gives the k likeliest next words
    (completions of `partial`), `logprobs_of(words)` the log-probability of given words coming next."""

    def __init__(self, predictor: Predictor, logprobs: torch.Tensor, state: State):
        self._predictor, self._logprobs, self._state = predictor, logprobs, state

    @torch.inference_mode()
    def __call__(self, partial: str, k: int) -> list[tuple[str, float]]:
        return self._predictor._search_words(self._logprobs, self._state, partial, k)

    @torch.inference_mode()
    def logprobs_of(self, words: list[str]) -> list[float]:
        return self._predictor._word_logprobs(self._logprobs, self._state, words)


class Predictor:
    """A loaded model with word-level prediction and sampling. Every method returns plain values."""

    def __init__(self, loaded: LoadedModel, any_word: bool = False):
        self.loaded = loaded
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        #: what the word search keeps to (see `_keep_to_lexicon`); None, with `any_word` or for a model
        #: directory from before lexicons, suggests any word the pieces spell
        self.lexicon = None if any_word else loaded.lexicon
        self.device = model_device(self.model)
        tok = self.tokenizer
        def mask(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array.copy()).to(self.device)

        # The masks are kept negated (pieces to rule out), and the word-ending pieces as ids, so that a
        # search step or a sampled piece does not recompute them: those run once per piece.
        self._not_starts, self._not_extends = ~mask(tok.starts_word), ~mask(tok.extends_word)
        self._ends = torch.from_numpy(np.flatnonzero(tok.ends_word)).to(self.device)
        sampleable, word_or_line_start = tok.ordinary.copy(), tok.starts_word.copy()
        sampleable[EOS_ID] = word_or_line_start[EOS_ID] = True
        self._not_sampleable, self._not_word_or_line_start = ~mask(sampleable), ~mask(word_or_line_start)
        self._index = _PieceIndex(tok)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", any_word: bool = False) -> Predictor:
        return cls(load(path, device=device), any_word=any_word)

    # -- shared ----------------------------------------------------------------------------------
    def _context_ids(self, context: str) -> list[int]:
        # A leading line break: text given without history reads like the start of a line.
        return [EOS_ID] + self.tokenizer.encode(context)

    def _run(self, tokens: torch.Tensor | list[int], state: State | None = None) -> tuple[torch.Tensor, State]:
        """Log-probabilities of the next token after each row's last token, and the state after it.

        `tokens` is (rows, time), or a list of ids for a single row.
        """
        tokens = torch.as_tensor(tokens, device=self.device)
        logits, state = self.model(tokens.reshape(1, -1) if tokens.dim() == 1 else tokens, state, last_only=True)
        return torch.log_softmax(logits[:, -1].float(), dim=-1), state

    # -- prediction --------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely next words (or completions of a partial last word), with probabilities."""
        if not text.strip():
            raise NextwordError("the text is empty; give the words that come before the one to predict")
        if k < 1:
            raise ConfigError(f"option 'top_k' must be >= 1; got {k}")
        context, partial = split_partial(text)
        logprobs, state = self._run(self._context_ids(context))
        return self._search_words(logprobs, state, partial, k)

    @torch.inference_mode()
    def searches_along(self, ids: np.ndarray, positions: list[int]) -> Iterator[WordSearch]:
        """At each of `positions` in the encoded text `ids`, a `WordSearch` of the words that may come next.

        `search("", k)` is what `predict` would say given the text before the position, and
        `search("wo", k)` what it would say had "wo" been typed too; the text is read only once.
        """
        state, start = None, 0
        for position in positions:
            # Only the tokens since the last position: `state` has read everything before them.
            tokens = ([EOS_ID] if state is None else []) + [int(i) for i in ids[start:position]]
            logprobs, state = self._run(tokens, state)
            start = position
            yield WordSearch(self, logprobs, state)

    def _search_words(self, logprobs: torch.Tensor, state: State, partial: str, k: int
                      ) -> list[tuple[str, float]]:
        width = max(4 * k, 16)
        # With a lexicon, more extensions are looked at than kept: those that spell no word's beginning go.
        pool = width if self.lexicon is None else width * _LEXICON_POOL
        beams = [_Beam("", 0.0)]
        found: dict[str, float] = {}
        for depth in range(MAX_WORD_PIECES):
            scores = self._extension_scores(beams, logprobs, partial, first=depth == 0)
            self._rule_out_below_kth(scores, found, k)
            top = torch.topk(scores.flatten(), min(pool, scores.numel()))
            keep = torch.isfinite(top.values)
            picked, new_scores = top.indices[keep], top.values[keep]
            rows, pieces = picked // scores.shape[1], picked % scores.shape[1]
            beams = [_Beam(beams[r].text + self.tokenizer.piece_text[p].lstrip(" "), s)
                     for r, p, s in zip(rows.tolist(), pieces.tolist(), new_scores.tolist())]
            if self.lexicon is not None:
                beams, rows, pieces = self._keep_to_lexicon(beams, rows, pieces, width)
            if not beams:
                break
            beams, logprobs, state = self._advance(beams, pieces, rows, state, partial, found, k)
        ranked = sorted(found.items(), key=lambda item: -item[1])[:k]
        return [(word, float(np.exp(logprob))) for word, logprob in ranked]

    def _keep_to_lexicon(self, beams: list[_Beam], rows: torch.Tensor, pieces: torch.Tensor, width: int
                         ) -> tuple[list[_Beam], torch.Tensor, torch.Tensor]:
        """The search's one filter: the (at most `width`) likeliest beams that can still become a word
        the lexicon accepts, a lexicon word or one likely enough to be a new word. The words the others
        spell never count among the k best, and the beam's places go to words instead."""
        kept = [i for i, beam in enumerate(beams) if self.lexicon.leads_to_word(beam.text, beam.logprob)][:width]
        at = torch.tensor(kept, dtype=torch.long, device=rows.device)
        return [beams[i] for i in kept], rows[at], pieces[at]

    def _advance(self, beams: list[_Beam], pieces: torch.Tensor, rows: torch.Tensor, state: State, partial: str,
                 found: dict[str, float], k: int) -> tuple[list[_Beam], torch.Tensor, State]:
        """One step of the model for `beams`, each the beam `rows` of `state` extended by its piece in
        `pieces`; the words they finish are added to `found`. Returns the beams still worth extending,
        their next-piece log-probabilities and their states.

        The 2k likeliest go first: the words they finish usually rule out most of the others before
        those cost a step of the model, the search's main cost.
        """
        lead = 2 * k
        logprobs, after = self._run(pieces[:lead, None], self.model.select_state(state, rows[:lead]))
        self._collect_finished(beams[:lead], logprobs, partial, found)
        threshold = self._kth_best(found, k)  # probabilities only shrink as a word grows
        rest = [i for i in range(lead, len(beams)) if beams[i].logprob >= threshold]
        if rest:
            at = torch.tensor(rest, device=self.device)
            more, more_after = self._run(pieces[at, None], self.model.select_state(state, rows[at]))
            self._collect_finished([beams[i] for i in rest], more, partial, found)
            logprobs, after = torch.cat([logprobs, more]), self.model.join_states(after, more_after)
        return beams[:lead] + [beams[i] for i in rest], logprobs, after

    @staticmethod
    def _kth_best(found: dict[str, float], k: int) -> float:
        """The log-probability a word must beat to be among the k best found so far."""
        return sorted(found.values(), reverse=True)[k - 1] if len(found) >= k else -np.inf

    def _rule_out_below_kth(self, scores: torch.Tensor, found: dict[str, float], k: int) -> None:
        """-inf for each extension that can no longer finish a word among the k best."""
        kth_best = self._kth_best(found, k)
        if kth_best > -np.inf:
            scores.masked_fill_(scores < kth_best, -np.inf)

    def _collect_finished(self, beams: list[_Beam], logprobs: torch.Tensor, partial: str,
                          found: dict[str, float]) -> None:
        """Add each beam that is a whole word (ends here, covers the typed letters) to `found`; with a
        lexicon, only the words it accepts: the others do not count among the k best."""
        ends = torch.logsumexp(logprobs.index_select(1, self._ends), dim=-1).tolist()
        for beam, end in zip(beams, ends):
            word, logprob = beam.text, beam.logprob + end
            if word.startswith(partial) and any(char.isalnum() for char in word) and (
                    self.lexicon is None or word in found or self.lexicon.accepts(word, logprob)):
                # Different segmentations of one word are one word: add their probabilities.
                found[word] = np.logaddexp(found.get(word, -np.inf), logprob)

    def _extension_scores(self, beams: list[_Beam], logprobs: torch.Tensor, partial: str,
                          first: bool) -> torch.Tensor:
        """Log-probability of each (beam, next piece), -inf where the piece may not extend the beam."""
        ruled_out = self._not_starts if first else self._not_extends
        if partial:  # only then do rows differ: each must agree with the letters typed
            ruled_out = ruled_out.expand_as(logprobs).clone()
            for row, beam in enumerate(beams):
                remaining = partial[len(beam.text):] if partial.startswith(beam.text) else None
                if remaining:
                    ruled_out[row] = True
                    ruled_out[row, self._index.agreeing(first, remaining)] = False
        base = torch.tensor([beam.logprob for beam in beams], device=logprobs.device)
        return (logprobs + base[:, None]).masked_fill_(ruled_out, -np.inf)

    def _word_logprobs(self, logprobs: torch.Tensor, state: State, words: list[str]) -> list[float]:
        """log P(word comes next) for each of `words`, given the distribution `logprobs` (1, vocab) over
        the next piece and the `state` it came with: the word's own pieces, then a word boundary."""
        pieces = [self.tokenizer.encode_line(word) for word in words]
        longest = max(map(len, pieces))
        rows = torch.tensor([ids + [EOS_ID] * (longest - len(ids)) for ids in pieces], device=self.device)
        # Every word at once: one row each, all starting from the same state.
        logits, _ = self.model(rows, self.model.select_state(state, torch.zeros(len(words), dtype=torch.long,
                                                                                device=self.device)))
        following = torch.log_softmax(logits.float(), dim=-1)
        before_each = torch.cat([logprobs.expand(len(words), 1, -1), following], dim=1)  # [:, i]: before piece i
        ends = torch.logsumexp(before_each[:, :, self._ends], dim=-1)
        return [float(before_each[row, torch.arange(len(ids)), ids].sum() + ends[row, len(ids)])
                for row, ids in enumerate(pieces)]

    # -- generation --------------------------------------------------------------------------------
    @torch.inference_mode()
    def stream(self, prompt: str, *, seed: int | None = None, **sampling: float) -> Iterator[str]:
        """The continuation of `prompt`, piece by piece, until `max_words` more words have begun.

        Options (see `config.Sampling` for their defaults): max_words, temperature, top_k, top_p.
        The same seed gives the same text.
        """
        options = Sampling(**sampling)
        if not prompt.strip():
            raise NextwordError("the prompt is empty; give the text to continue")
        generator = torch.Generator(device=self.device)
        if seed is None:
            generator.seed()  # fresh randomness, without touching torch's global generator
        else:
            generator.manual_seed(seed)
        logprobs, state = self._run(self._context_ids(prompt))
        # After a typed space or a line break, a new word must begin (as every line does in training).
        must_start_word = prompt[-1].isspace()
        in_space = must_start_word
        words = 0
        for _ in range(options.max_words * MAX_WORD_PIECES):  # a bound, should a model never begin a word
            if must_start_word:
                logprobs = logprobs.masked_fill(self._not_word_or_line_start, -np.inf)
            piece = self._sample(logprobs[0], options, generator)
            text = self.tokenizer.piece_text[piece]
            if in_space and text.startswith(" "):
                text = text[1:]  # the space is already there
            if text.strip() and (in_space or text[0] == " "):  # words counted as str.split() would
                words += 1
                if words > options.max_words:
                    break
            yield text
            if text:
                in_space = text[-1].isspace()
            must_start_word = piece == EOS_ID
            logprobs, state = self._run([piece], state)

    def generate(self, prompt: str, *, seed: int | None = None, **sampling: float) -> str:
        """The continuation of `prompt` as one string (see `stream` for the options)."""
        return "".join(self.stream(prompt, seed=seed, **sampling))

    def _sample(self, logprobs: torch.Tensor, options: Sampling, generator: torch.Generator) -> int:
        logprobs = logprobs.masked_fill(self._not_sampleable, -np.inf)
        if options.temperature == 0:
            return int(logprobs.argmax())
        # In float64 and shifted so the likeliest piece is at 0: any positive temperature, however tiny,
        # then gives finite logits or -inf (greedy at the limit), never NaN.
        logits = (logprobs.double() - logprobs.max()) / options.temperature
        if options.top_k:
            cutoff = torch.topk(logits, min(options.top_k, logits.numel())).values[-1]
            logits = logits.masked_fill(logits < cutoff, -np.inf)
        if options.top_p < 1.0:
            ordered, order = torch.sort(logits, descending=True)
            probabilities = torch.softmax(ordered, dim=-1)
            # Keep the smallest set of pieces whose probability reaches top_p (the first always stays).
            drop = probabilities.cumsum(dim=-1) - probabilities >= options.top_p
            logits = logits.scatter(0, order[drop], -np.inf)
        return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))

