"""Next-word prediction and text generation from a trained model: `Predictor`, what the CLI and the
library's users call.

The work lives in small pieces, one place each: the model read over pieces (pieces.py), the beam
search that turns pieces into whole words (search.py), sampling (sampling.py) and sessions that
keep a growing document's state (session.py). A `Predictor` answers each call from scratch; a
`Session` answers the same for a document it keeps, at the cost of what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .checkpoint import LoadedModel, load
from .lexicon import DocumentWords
from .model import State
from .pieces import PieceModel
from .search import MAX_WORD_PIECES, WordSearch, WordSearcher, split_partial
from .session import Reader, Session
from .tokenizer import EOS_ID

__all__ = ["MAX_WORD_PIECES", "Predictor", "Session", "WordSearch", "split_partial"]


class Predictor(Reader):
    """A loaded model with word-level prediction and sampling. Every method returns plain values."""

    def __init__(self, loaded: LoadedModel, component: str | None = None, any_word: bool = False):
        """Predict with the loaded model, or with one of its `components()` named by `component`; with
        `any_word`, suggest any word the pieces spell, not only the words of the training text."""
        self.loaded = loaded
        self.model, self.tokenizer = loaded.component(component), loaded.tokenizer
        #: what the word search keeps to (see search.py); None, with `any_word` or for a model directory
        #: from before lexicons, suggests any word the pieces spell
        self.lexicon = None if any_word else loaded.lexicon
        self.pieces = PieceModel(loaded, self.model)
        self.device = self.pieces.device
        self.searcher = WordSearcher(self.pieces, self.lexicon)

    @classmethod
    def load(
        cls, path: str | Path, device: str = "cpu", component: str | None = None, any_word: bool = False
    ) -> Predictor:
        return cls(load(path, device=device), component, any_word)

    def session(self) -> Session:
        """A document to grow and edit, answered at the cost of what changed (see session.py)."""
        return Session(self.pieces, self.searcher)

    def predict(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely next words (or completions of a partial last word), with probabilities."""
        return self._predict(text, k)

    @torch.inference_mode()
    def searches_along(self, ids: np.ndarray, positions: list[int]) -> Iterator[WordSearch]:
        """At each of `positions` in the encoded text `ids`, a `WordSearch` of the words that may come next.

        `search("", k)` is what `predict` would say given the text before the position, and
        `search("wo", k)` what it would say had "wo" been typed too; the text is read only once."""
        state, start, document = None, 0, self.searcher.document(ids)
        for position in positions:
            # Only the tokens since the last position: `state` has read everything before them.
            tokens = ([EOS_ID] if state is None else []) + [int(i) for i in ids[start:position]]
            logprobs, state = self.pieces.run(tokens, state)
            start = position
            yield WordSearch(self.searcher, logprobs, state, document, before=position)

    def stream(self, prompt: str, *, seed: int | None = None, **options: float) -> Iterator[str]:
        """The continuation of `prompt`, piece by piece, until `max_words` more words have begun.

        Options (see `config.Sampling` for their defaults): max_words, temperature, top_k, top_p.
        The same seed gives the same text."""
        return self._stream(prompt, seed, options)

    def generate(self, prompt: str, *, seed: int | None = None, **options: float) -> str:
        """The continuation of `prompt` as one string (see `stream` for the options)."""
        return "".join(self.stream(prompt, seed=seed, **options))

    @torch.inference_mode()
    def _read_to(self, text: str, end: int) -> tuple[torch.Tensor, State, DocumentWords | None]:
        ids = self.pieces.context_ids(text[:end])  # from scratch: a Predictor keeps no text
        logprobs, state = self.pieces.run(ids)
        return logprobs, state, self.searcher.document(ids, last_complete=text[:end][-1:].isspace())
