"""Generation: the continuation of a text, sampled one piece at a time.

The recurrent state is carried forward one token at a time, so each new token costs the same
however long the text already is. With a lexicon, the words written are the lexicon's: a piece
that would spell the beginning of no lexicon word, or end a word that is not one ("The oldn"), is
ruled out and another drawn, which samples from the model's distribution restricted to the pieces
that keep to the lexicon. Words without a letter or digit (dashes, numbers' punctuation) are free,
as the lexicon does not count them; a prompt whose last word can reach no lexicon word goes on as
the model pleases."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .config import Sampling
from .lexicon import Words
from .model import State
from .pieces import PieceModel
from .search import MAX_WORD_PIECES, split_partial
from .tokenizer import EOS_ID, Tokenizer, is_trailing_punctuation, is_word

_REDRAWS = 8  # pieces the lexicon rules out one at a time before it is asked of every piece


class _LexiconWords:
    """The word being written, as `Tokenizer.words_at` cuts words (a word-start piece and the pieces
    that carry it on), and whether a piece keeps the text to the lexicon's words."""

    def __init__(self, tokenizer: Tokenizer, lexicon: Words, text: str):
        self.tokenizer, self.lexicon = tokenizer, lexicon
        partial = split_partial(text)[1]
        # A prompt's last word is carried on only when it is plain (no punctuation has ended it).
        self.word = partial if partial and not any(map(is_trailing_punctuation, partial)) else None
        # Letters glued to the punctuation that ended a word would spell no word of the lexicon ("cat.ntn").
        self.after_punctuation = bool(partial) and is_trailing_punctuation(partial[-1])

    def _reachable(self, prefix: str) -> bool:
        return not is_word(prefix) or self.lexicon.has_word_starting(prefix)

    def allows(self, piece: int) -> bool:
        tok, text = self.tokenizer, self.tokenizer.piece_text[piece]
        if tok.extends_word[piece]:
            if self.word is None:
                return not (self.after_punctuation and is_word(text))
            return self._reachable(self.word + text)
        if self.word is not None and is_word(self.word) and self.word not in self.lexicon:
            return False  # this piece would end a word that is none
        return not tok.starts_word[piece] or self._reachable(text.lstrip(" "))

    def take(self, piece: int) -> None:
        tok, text = self.tokenizer, self.tokenizer.piece_text[piece]
        if tok.starts_word[piece]:
            self.word, self.after_punctuation = text.lstrip(" "), False
        elif not tok.extends_word[piece]:  # a line break or punctuation ends the word
            self.word, self.after_punctuation = None, piece != EOS_ID
        elif self.word is not None:
            self.word += text


@torch.inference_mode()
def stream(
    pieces: PieceModel,
    logprobs: torch.Tensor,
    state: State,
    prompt: str,
    options: Sampling,
    seed: int | None,
    lexicon: Words | None = None,
) -> Iterator[str]:
    """The continuation, piece by piece, of `prompt`, which the model has read (`logprobs` (1, vocab) and
    `state` after it), until `options.max_words` more words have begun; with a `lexicon`, in its words
    (see the module docstring). The same seed gives the same text."""
    generator = torch.Generator(device=pieces.device)
    if seed is None:
        generator.seed()  # fresh randomness, without touching torch's global generator
    else:
        generator.manual_seed(seed)
    # After a typed space or a line break, a new word must begin (as every line does in training); an
    # empty prompt is read as a line break.
    must_start_word = in_space = not prompt or prompt[-1].isspace()
    words, written = 0, None if lexicon is None else _LexiconWords(pieces.tokenizer, lexicon, prompt)
    for _ in range(options.max_words * MAX_WORD_PIECES):  # a bound, should a model never begin a word
        if must_start_word:
            logprobs = logprobs.masked_fill(pieces.not_word_or_line_start, -np.inf)
        piece = _sample_allowed(logprobs[0].masked_fill(pieces.not_sampleable, -np.inf), options, generator, written)
        if written is not None:
            written.take(piece)
        text = pieces.tokenizer.piece_text[piece]
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
        logprobs, state = pieces.run([piece], state)


def _sample_allowed(
    logprobs: torch.Tensor, options: Sampling, generator: torch.Generator, written: _LexiconWords | None
) -> int:
    """A piece drawn from `logprobs`, with `written` from the pieces the lexicon allows: drawn again
    without a piece it rules out, and after _REDRAWS from all the pieces it allows, found one by one
    (the first draw is taken when it allows none)."""
    first = piece = _sample(logprobs, options, generator)
    if written is None:
        return piece
    for _ in range(_REDRAWS):
        if written.allows(piece):
            return piece
        logprobs = logprobs.clone()
        logprobs[piece] = -np.inf
        if torch.isneginf(logprobs).all():
            return first
        piece = _sample(logprobs, options, generator)
    candidates = torch.nonzero(~torch.isneginf(logprobs)).flatten().tolist()
    ruled_out = [i for i in candidates if not written.allows(i)]
    if len(ruled_out) == len(candidates):
        return first
    return _sample(logprobs.index_fill(0, torch.tensor(ruled_out, dtype=torch.long), -np.inf), options, generator)


def _sample(logprobs: torch.Tensor, options: Sampling, generator: torch.Generator) -> int:
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
