"""The language models: token ids and a carried state in, next-token logits and the new state out.

The kinds share one interface, `model(tokens, state, last_only) -> (logits, state)`, so training,
evaluation, prediction and generation treat them alike:

- `RecurrentLM` reads the text left to right with a fused torch RNN/GRU/LSTM stack; its state is
  the hidden state.
- `WindowedBiLM` reads the `context` tokens before each prediction with a bidirectional RNN and
  predicts from both directions' summaries; its state is the last `context` tokens.
- `NgramLM` (ngram.py), the Kneser-Ney baseline, counts instead of learning; its state is the last
  `order - 1` tokens.

Both are causal: the logits at position t depend only on tokens 0..t. Nothing about training here.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import nn

from .config import Config
from .ngram import NgramLM
from .tokenizer import EOS_ID

State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentLM(nn.Module):
    """A causal recurrent language model over a carried hidden state."""

    def __init__(self, vocab_size: int, cell: str, layers: int, embed: int, hidden: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed)
        self.dropout = nn.Dropout(dropout)
        self.rnn = _CELLS[cell](embed, hidden, num_layers=layers, batch_first=True,
                                dropout=dropout if layers > 1 else 0.0)
        self.decoder = nn.Linear(hidden, vocab_size)
        # Tied input and output embeddings (Press & Wolf, 2017): fewer parameters, better perplexity.
        if embed == hidden:
            self.decoder.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, tokens: torch.Tensor, state: State | None = None,
                last_only: bool = False) -> tuple[torch.Tensor, State]:
        """Logits (batch, time or 1, vocab) for token ids (batch, time), and the state after them."""
        hidden, state = self.rnn(self.dropout(self.embedding(tokens)), state)
        if last_only:
            hidden = hidden[:, -1:]
        return self.decoder(self.dropout(hidden)), state

    @staticmethod
    def select_state(state: State, rows: torch.Tensor) -> State:
        """The states of batch rows `rows` (used to expand and prune search beams)."""
        return tuple(s[:, rows] for s in state) if isinstance(state, tuple) else state[:, rows]


class WindowedBiLM(nn.Module):
    """Predicts each token from the `context` tokens before it, read in both directions.

    The window never includes the token being predicted: at position t it holds tokens
    t - context + 1 .. t, and the logits are for token t + 1. Before the text starts, the window
    is filled with line breaks, as training data begins each line after one.
    """

    def __init__(self, vocab_size: int, cell: str, layers: int, embed: int, hidden: int, dropout: float,
                 context: int, pool: str):
        super().__init__()
        self.context = context
        self.embedding = nn.Embedding(vocab_size, embed)
        self.dropout = nn.Dropout(dropout)
        self.rnn = _CELLS[cell](embed, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                                dropout=dropout if layers > 1 else 0.0)
        self.attention = nn.Linear(2 * hidden, 1) if pool == "attention" else None
        self.project = nn.Linear(2 * hidden, embed)
        self.decoder = nn.Linear(embed, vocab_size)
        self.decoder.weight = self.embedding.weight  # the projection makes tying possible at any size
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def window_logits(self, windows: torch.Tensor) -> torch.Tensor:
        """Next-token logits (n, vocab) after each window of token ids (n, context)."""
        outputs, final = self.rnn(self.dropout(self.embedding(windows)))
        if self.attention is not None:
            weights = torch.softmax(self.attention(outputs).squeeze(-1), dim=1)
            summary = (weights.unsqueeze(-1) * outputs).sum(dim=1)
        else:
            last = final[0] if isinstance(final, tuple) else final  # (layers * 2, n, hidden)
            summary = torch.cat([last[-2], last[-1]], dim=-1)  # the top layer's forward and backward states
        return self.decoder(self.dropout(torch.tanh(self.project(summary))))

    def forward(self, tokens: torch.Tensor, state: torch.Tensor | None = None,
                last_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (batch, time or 1, vocab) for token ids (batch, time); the state is the last window."""
        rows, k = tokens.shape[0], self.context
        if state is None:
            state = torch.full((rows, k), EOS_ID, dtype=tokens.dtype, device=tokens.device)
        history = torch.cat([state, tokens], dim=1)
        # Every window of k tokens that ends at one of `tokens`, all encoded as one batch.
        windows = history[:, -k:].unsqueeze(1) if last_only else history.unfold(1, k, 1)[:, 1:]
        logits = self.window_logits(windows.reshape(-1, k)).reshape(rows, windows.shape[1], -1)
        return logits, history[:, -k:]

    @staticmethod
    def select_state(state: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return state[rows]


LanguageModel = Union[RecurrentLM, WindowedBiLM, NgramLM]


def build_model(config: Config, vocab_size: int) -> RecurrentLM | WindowedBiLM:
    """A freshly initialised neural model (an n-gram model is counted, not built: see ngram.py)."""
    if config.bidirectional:
        return WindowedBiLM(vocab_size, config.cell, config.layers, config.embed, config.hidden, config.dropout,
                            config.context, config.pool)
    return RecurrentLM(vocab_size, config.cell, config.layers, config.embed, config.hidden, config.dropout)


def detach_state(state: State | None) -> State | None:
    """The same state cut from the graph, so backpropagation stops at the segment boundary."""
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def parameter_count(model: nn.Module) -> int:
    """Trained weights; for an n-gram model, its stored n-grams."""
    return model.entries if isinstance(model, NgramLM) else sum(p.numel() for p in model.parameters())


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters(), next(model.buffers(), torch.zeros(0))).device
