"""The loss of a model over a text: its summed negative log-likelihood, and the perplexities and bits
per character it gives.

Word-level perplexity is exp(total NLL / whitespace-separated words): it does not depend on how
the text was cut into tokens, so models with different tokenizers compare fairly. Training's
validation, the mixture's weights and `nextword evaluate` share this one implementation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .model import LanguageModel, evaluating
from .tokenizer import Tokenizer


@dataclass(frozen=True)
class LossTotals:
    nll: float  # summed negative log-likelihood, in nats
    tokens: int  # scored tokens
    words: int  # whitespace-separated words among them
    chars: int  # characters they stand for (see bits_per_char)

    @property
    def loss(self) -> float:
        """Mean NLL per token (the training loss)."""
        return self.nll / max(self.tokens, 1)

    @property
    def token_perplexity(self) -> float:
        return _safe_exp(self.loss)

    @property
    def word_perplexity(self) -> float:
        return _safe_exp(self.nll / max(self.words, 1))

    @property
    def bits_per_char(self) -> float:
        """Bits per character of `chars`: the characters of the file for `evaluate_file`, those the tokens
        stand for (after SentencePiece's normalisation of spaces) for `stream_loss`."""
        return self.nll / math.log(2) / max(self.chars, 1)


def _safe_exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf


@torch.inference_mode()
def stream_loss(
    model: LanguageModel,
    tokenizer: Tokenizer,
    ids: np.ndarray,
    *,
    seq_len: int,
    device: torch.device,
    streams: int = 16,
    autocast: bool = False,
) -> LossTotals:
    """Score every token of `ids` given all tokens before it, in `streams` parallel slices.

    Each slice starts with an empty state, and the last (len - 1) mod streams tokens are not
    scored; `streams=1` scores every token after the first."""
    streams = max(1, min(streams, (len(ids) - 1) // max(seq_len, 1)))
    stream_len = (len(ids) - 1) // streams
    used = streams * stream_len
    inputs = ids[:used].reshape(streams, stream_len)
    targets = ids[1 : used + 1].reshape(streams, stream_len)
    state, nll = None, torch.zeros((), dtype=torch.float64, device=device)
    words = chars = 0
    with evaluating(model):
        for start in range(0, stream_len, seq_len):
            cut = slice(start, start + seq_len)
            # Counted a segment at a time, like the scoring: a large validation text is never copied whole.
            words += tokenizer.word_count(targets[:, cut])
            chars += tokenizer.char_count(targets[:, cut], inputs[:, cut])
            x = torch.from_numpy(inputs[:, cut].astype(np.int64)).to(device, non_blocking=True)
            y = torch.from_numpy(targets[:, cut].astype(np.int64)).to(device, non_blocking=True)
            # Each model scores its targets itself: the n-gram model and an adaptive softmax never build
            # the full distributions they do not need.
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
                logprobs, state = model.target_logprobs(x, y, state)
            nll -= logprobs.double().sum()
    return LossTotals(nll.item(), used, words, chars)
