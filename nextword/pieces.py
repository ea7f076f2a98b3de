"""A loaded model as word search, sampling and sessions read it: text in as pieces, the next piece out.

`PieceModel` holds the model, its tokenizer and device, and the per-piece masks those three need
on that device, built once per model: they are consulted once per piece searched or sampled."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .checkpoint import LoadedModel
from .mixture import MixtureLM
from .model import State, model_device
from .tokenizer import EOS_ID


class PieceModel:
    """One model over pieces: `run` steps it, `context_ids` is the text as it reads it."""

    def __init__(self, loaded: LoadedModel, model: torch.nn.Module | None = None):
        """Over `model`, one of the loaded model's components; the loaded model itself by default."""
        self.loaded = loaded
        self.model, self.tokenizer = loaded.model if model is None else model, loaded.tokenizer
        self.device = model_device(self.model)
        tok = self.tokenizer

        def mask(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array.copy()).to(self.device)

        # Kept negated (pieces to rule out), and the word-ending pieces as ids, so that a search step
        # or a sampled piece does not recompute them.
        self.not_starts, self.not_extends = ~mask(tok.starts_word), ~mask(tok.extends_word)
        self.ends = torch.from_numpy(np.flatnonzero(tok.ends_word)).to(self.device)
        sampleable, word_or_line_start = tok.ordinary.copy(), tok.starts_word.copy()
        sampleable[EOS_ID] = word_or_line_start[EOS_ID] = True
        self.not_sampleable, self.not_word_or_line_start = ~mask(sampleable), ~mask(word_or_line_start)

    @functools.cached_property
    def writer(self) -> PieceModel:
        """The model as generation steps it over the pieces it writes: a mixture's caches keep to the text it
        was given (see `MixtureLM.writer`); any other model is itself."""
        return PieceModel(self.loaded, self.model.writer()) if isinstance(self.model, MixtureLM) else self

    def context_ids(self, context: str) -> list[int]:
        """The ids the model reads for `context`. A leading line break: text given without history
        reads like the start of a line."""
        return [EOS_ID] + self.tokenizer.encode(context)

    def run(self, tokens: torch.Tensor | list[int], state: State | None = None) -> tuple[torch.Tensor, State]:
        """Log-probabilities of the next token after each row's last token, and the state after it.

        `tokens` is (rows, time), or a list of ids for a single row."""
        tokens = torch.as_tensor(tokens, device=self.device)
        logits, state = self.model(tokens.reshape(1, -1) if tokens.dim() == 1 else tokens, state, last_only=True)
        return self._normalised(logits[:, -1]), state

    def read(self, tokens: torch.Tensor, state: State | None = None) -> torch.Tensor:
        """Log-probabilities of the next token after every token of `tokens` (rows, time): (rows, time, vocab)."""
        return self._normalised(self.model(tokens, state)[0])

    def _normalised(self, logits: torch.Tensor) -> torch.Tensor:
        # A neural model's logits are normalised here; an n-gram's and a mixture's are log-probabilities already.
        logits = logits.float()
        return logits if self.model.gives_logprobs else torch.log_softmax(logits, dim=-1)

    def word_ends(self, logprobs: torch.Tensor) -> torch.Tensor:
        """log P(a word ends before the next piece) from next-piece `logprobs` (..., vocab): that of the pieces
        that end one, summed."""
        return torch.logsumexp(logprobs.index_select(-1, self.ends), dim=-1)
