"""Generation: the continuation of a text, sampled one piece at a time.

The recurrent state is carried forward one token at a time, so each new token costs the same
however long the text already is.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .config import Sampling
from .errors import NextwordError
from .model import State
from .pieces import PieceModel
from .search import MAX_WORD_PIECES
from .tokenizer import EOS_ID


def check_prompt(prompt: str) -> None:
    if not prompt.strip():
        raise NextwordError("the prompt is empty; give the text to continue")


@torch.inference_mode()
def stream(pieces: PieceModel, logprobs: torch.Tensor, state: State, after_space: bool, options: Sampling,
           seed: int | None) -> Iterator[str]:
    """The continuation, piece by piece, of a text the model has read (`logprobs` (1, vocab) and `state`
    after it; `after_space` when it ends in whitespace), until `options.max_words` more words have begun.
    The same seed gives the same text.
    """
    generator = torch.Generator(device=pieces.device)
    if seed is None:
        generator.seed()  # fresh randomness, without touching torch's global generator
    else:
        generator.manual_seed(seed)
    # After a typed space or a line break, a new word must begin (as every line does in training).
    must_start_word = in_space = after_space
    words = 0
    for _ in range(options.max_words * MAX_WORD_PIECES):  # a bound, should a model never begin a word
        if must_start_word:
            logprobs = logprobs.masked_fill(pieces.not_word_or_line_start, -np.inf)
        piece = _sample(logprobs[0].masked_fill(pieces.not_sampleable, -np.inf), options, generator)
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
