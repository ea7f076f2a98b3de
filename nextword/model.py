"""The recurrent language model: embeddings, a fused torch RNN/GRU/LSTM stack, and an output layer.

Nothing about training lives here. The model maps token ids and a carried state to next-token
logits and the new state, one call for a whole segment (the fused kernels run the time loop).
"""

from __future__ import annotations

from typing import Union

import torch
from torch import nn

from .config import Config

State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentLM(nn.Module):
    """A causal language model: the logits at position t depend only on tokens 0..t."""

    def __init__(self, vocab_size: int, cell: str, layers: int, embed: int, hidden: int, dropout: float):
        super().__init__()
        self.cell, self.layers, self.hidden = cell, layers, hidden
        self.embedding = nn.Embedding(vocab_size, embed)
        self.dropout = nn.Dropout(dropout)
        self.rnn = _CELLS[cell](embed, hidden, num_layers=layers, batch_first=True,
                                dropout=dropout if layers > 1 else 0.0)
        self.decoder = nn.Linear(hidden, vocab_size)
        # Tied input and output embeddings (Press & Wolf, 2017): fewer parameters, better perplexity.
        self.tied = embed == hidden
        if self.tied:
            self.decoder.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    @classmethod
    def from_config(cls, config: Config, vocab_size: int) -> RecurrentLM:
        return cls(vocab_size, config.cell, config.layers, config.embed, config.hidden, config.dropout)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        zeros = torch.zeros(self.layers, batch_size, self.hidden, device=device)
        return (zeros, zeros.clone()) if self.cell == "lstm" else zeros

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits (batch, time, vocab) for token ids (batch, time), and the state after the last step."""
        hidden, state = self.rnn(self.dropout(self.embedding(tokens)), state)
        return self.decoder(self.dropout(hidden)), state


def detach_state(state: State) -> State:
    """The same state cut from the graph, so backpropagation stops at the segment boundary."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def select_state(state: State, index: torch.Tensor) -> State:
    """The states of the batch rows `index` (used to expand and prune search beams)."""
    return tuple(s[:, index] for s in state) if isinstance(state, tuple) else state[:, index]


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
