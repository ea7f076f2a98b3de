"""The language models: token ids and a carried state in, next-token logits and the new state out.

The kinds share one interface, `model(tokens, state, last_only) -> (logits, state)`, so training,
evaluation, prediction and generation treat them alike:

- `RecurrentLM` reads the text left to right with a fused torch RNN/GRU/LSTM stack; its state is
  the hidden state.
- `WindowedBiLM` reads the `context` tokens before each prediction with a bidirectional RNN and
  predicts from both directions' summaries; its state is the last `context` tokens.
- `NgramLM` (ngram.py), the Kneser-Ney baseline, counts instead of learning; its state is the last
  `order - 1` tokens.
- `EnsembleLM` averages the next-token probabilities of several networks of one shape, trained side by
  side from different starting weights; its state is theirs together.
- `MixtureLM` (mixture.py) mixes a neural model, an n-gram and a cache of the text read; its state
  is theirs together. kinds.py says which of these a model directory holds.

All are causal: the logits at position t depend only on tokens 0..t. Nothing about training here.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Iterator, Union

import numpy as np
import torch
from torch import nn

from .config import ModelConfig
from .errors import ConfigError
from .ngram import NgramLM
from .tokenizer import EOS_ID

# A network's state is a tensor or an LSTM's pair of them; an ensemble's, a tuple of its members' states.
State = Union[torch.Tensor, tuple[Any, ...]]

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class _ReadsFeatures(nn.Module):
    """A neural model as its users see it: `features` after each token, which `decode` turns into the next
    token's logits and `decode_targets` into the log-probabilities of given next tokens."""

    def features(self, tokens: torch.Tensor, state: State | None, last_only: bool) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode_targets(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, tokens: torch.Tensor, state: State | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, State]:
        """Logits (batch, time or 1, vocab) for token ids (batch, time), and the state after them."""
        features, state = self.features(tokens, state, last_only)
        return self.decode(features), state

    def target_logprobs(
        self, tokens: torch.Tensor, targets: torch.Tensor, state: State | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, State]:
        """log P(targets) (batch, time or 1) after the tokens: the training loss, without the full
        distributions when the output layer can avoid them."""
        features, state = self.features(tokens, state, last_only)
        return self.decode_targets(features, targets), state


class _NeuralLM(_ReadsFeatures):
    """What both networks share: an embedding read by a recurrent stack, whose `features` (each model's
    own) feed the output layer `decoder`."""

    decoder: nn.Module
    gives_logprobs = False  # `forward` gives logits, which prediction normalises (an n-gram and a mixture do not)

    def __init__(self, vocab_size: int, cell: str, layers: int, embed: int, hidden: int, dropout: float, **rnn: Any):
        super().__init__()
        self.embedding = ScaledEmbedding(vocab_size, embed)
        self.dropout = nn.Dropout(dropout)
        self.rnn = _CELLS[cell](embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0, **rnn)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(features)

    def decode_targets(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if isinstance(self.decoder, AdaptiveOutput):
            return self.decoder.target_logprobs(features, targets)
        logprobs = torch.log_softmax(self.decoder(features).float(), dim=-1)
        return logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


class ScaledEmbedding(nn.Embedding):
    """Token embeddings that start small and are read at √dim times their size (Vaswani et al. 2017).

    Tied to the output layer, small weights give the first logits a sensible scale; as inputs, the
    same weights at unit scale move the gates from the first step. Inputs as small as the outputs
    need leave an LSTM's gates deaf to them: it then took thousands of steps to learn to carry a
    word across a clause (see the long-range corpus).
    """

    def __init__(self, vocab_size: int, dim: int):
        super().__init__(vocab_size, dim)
        self.scale = math.sqrt(dim)
        nn.init.normal_(self.weight, std=1 / self.scale)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().forward(tokens) * self.scale


class RecurrentLM(_NeuralLM):
    """A causal recurrent language model over a carried hidden state."""

    def __init__(
        self,
        vocab_size: int,
        cell: str,
        layers: int,
        embed: int,
        hidden: int,
        dropout: float,
        cutoffs: list[int] | None = None,
    ):
        super().__init__(vocab_size, cell, layers, embed, hidden, dropout)
        # Tied input and output embeddings (Press & Wolf, 2017): fewer parameters, better perplexity.
        self.decoder = output_layer(hidden, vocab_size, cutoffs, tie_to=self.embedding if embed == hidden else None)

    def features(
        self, tokens: torch.Tensor, state: State | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, State]:
        """What the output layer reads (batch, time or 1, hidden), and the state after the tokens."""
        if tokens.shape[1] == 1 and not self.training:  # one step of prediction or generation
            return one_step(self.rnn, self.embedding(tokens), state)
        hidden, state = self.rnn(self.dropout(self.embedding(tokens)), state)
        if last_only:
            hidden = hidden[:, -1:]
        return self.dropout(hidden), state

    @staticmethod
    def select_state(state: State, rows: torch.Tensor) -> State:
        """The states of batch rows `rows` (used to expand and prune search beams)."""
        return tuple(s[:, rows] for s in state) if isinstance(state, tuple) else state[:, rows]

    @staticmethod
    def join_states(parts: list[State]) -> State:
        """The rows of each of `parts`' states, in order, as one state."""
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(tensors, dim=1) for tensors in zip(*parts))
        return torch.cat(parts, dim=1)


def one_step(rnn: nn.RNNBase, inputs: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
    """`rnn(inputs, state)` for inputs of one time step (batch, 1, features), in eval mode, written out.

    The same arithmetic as torch's fused RNN/GRU/LSTM kernels (gate order i, f, g, o and r, z, n),
    but about four times faster on a CPU for a single step, where the fused kernel's set-up costs
    more than the arithmetic: prediction and generation run one step at a time.
    """
    x = inputs[:, 0]
    rows, size, lstm = x.shape[0], rnn.hidden_size, rnn.mode == "LSTM"
    if state is None:
        zeros = x.new_zeros(rnn.num_layers, rows, size)
        state = (zeros, zeros) if lstm else zeros
    hidden, cell = state if lstm else (state, None)
    new_hidden, new_cell = [], []
    for layer in range(rnn.num_layers):
        weights = [getattr(rnn, f"{name}_l{layer}") for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh")]
        from_input = nn.functional.linear(x, weights[0], weights[1])
        from_hidden = nn.functional.linear(hidden[layer], weights[2], weights[3])
        if lstm:
            i, f, g, o = (from_input + from_hidden).chunk(4, dim=1)
            c = torch.sigmoid(f) * cell[layer] + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(c)
            new_cell.append(c)
        elif rnn.mode == "GRU":
            (i_r, i_z, i_n), (h_r, h_z, h_n) = from_input.chunk(3, dim=1), from_hidden.chunk(3, dim=1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            x = (1 - z) * torch.tanh(i_n + r * h_n) + z * hidden[layer]
        else:
            x = (torch.tanh if rnn.mode == "RNN_TANH" else torch.relu)(from_input + from_hidden)
        new_hidden.append(x)
    hidden = torch.stack(new_hidden)
    return x.unsqueeze(1), ((hidden, torch.stack(new_cell)) if lstm else hidden)


class WindowedBiLM(_NeuralLM):
    """Predicts each token from the `context` tokens before it, read in both directions.

    The window never includes the token being predicted: at position t it holds tokens
    t - context + 1 .. t, and the logits are for token t + 1. Before the text starts, the window
    is filled with line breaks, as training data begins each line after one.
    """

    def __init__(
        self,
        vocab_size: int,
        cell: str,
        layers: int,
        embed: int,
        hidden: int,
        dropout: float,
        context: int,
        pool: str,
        cutoffs: list[int] | None = None,
    ):
        super().__init__(vocab_size, cell, layers, embed, hidden, dropout, bidirectional=True)
        self.context = context
        self.attention = nn.Linear(2 * hidden, 1) if pool == "attention" else None
        self.project = nn.Linear(2 * hidden, embed)
        # The projection makes tying possible at any size.
        self.decoder = output_layer(embed, vocab_size, cutoffs, tie_to=self.embedding)

    def window_features(self, windows: torch.Tensor) -> torch.Tensor:
        """What the output layer reads (n, embed) after each window of token ids (n, context)."""
        outputs, final = self.rnn(self.dropout(self.embedding(windows)))
        if self.attention is not None:
            weights = torch.softmax(self.attention(outputs).squeeze(-1), dim=1)
            summary = (weights.unsqueeze(-1) * outputs).sum(dim=1)
        else:
            last = final[0] if isinstance(final, tuple) else final  # (layers * 2, n, hidden)
            summary = torch.cat([last[-2], last[-1]], dim=-1)  # the top layer's forward and backward states
        return self.dropout(torch.tanh(self.project(summary)))

    def features(
        self, tokens: torch.Tensor, state: torch.Tensor | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the output layer reads (batch, time or 1, embed); the state is the last window."""
        rows, k = tokens.shape[0], self.context
        if state is None:
            state = torch.full((rows, k), EOS_ID, dtype=tokens.dtype, device=tokens.device)
        history = torch.cat([state, tokens], dim=1)
        # Every window of k tokens that ends at one of `tokens`, all encoded as one batch.
        windows = history[:, -k:].unsqueeze(1) if last_only else history.unfold(1, k, 1)[:, 1:]
        features = self.window_features(windows.reshape(-1, k)).reshape(rows, windows.shape[1], -1)
        return features, history[:, -k:]

    @staticmethod
    def select_state(state: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return state[rows]

    @staticmethod
    def join_states(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts)


class EnsembleLM(_ReadsFeatures):
    """Several networks of one shape, their next-token distributions averaged (a seed ensemble).

    A single network that reads a small text many times only overfits it; networks that each read it
    fewer times from their own starting weights make different errors, and their average predicts
    better than each of them (bench/RESULTS.md, "The ensemble built"). They train side by side on the
    same batches, each on its own loss; their average is what validation, the mixture and prediction
    read. Its state is a tuple of the members' states; its features are theirs side by side."""

    gives_logprobs = True  # its average is a distribution already

    def __init__(self, members: list[RecurrentLM | WindowedBiLM]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def features(self, tokens: torch.Tensor, state: tuple | None, last_only: bool) -> tuple[torch.Tensor, tuple]:
        states = state if state is not None else (None,) * len(self.members)
        read = [member.features(tokens, s, last_only) for member, s in zip(self.members, states)]
        return torch.cat([features for features, _ in read], dim=-1), tuple(s for _, s in read)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (..., vocab): the members' distributions averaged."""
        own = [torch.log_softmax(member.decode(f).float(), -1) for member, f in self._split(features)]
        return self._average(torch.stack(own))

    def decode_targets(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """In evaluation, the ensemble's log P(targets); in training, the mean of each member's own, so that
        each learns alone, as in a run of its own (train.py scales the mean back to each member's whole loss,
        and `clip_gradients` bounds each one's gradient)."""
        own = torch.stack([member.decode_targets(f, targets) for member, f in self._split(features)])
        return own.mean(0) if self.training else self._average(own)

    def _split(self, features: torch.Tensor) -> list[tuple[_NeuralLM, torch.Tensor]]:
        return list(zip(self.members, features.chunk(len(self.members), dim=-1)))

    def _average(self, logprobs: torch.Tensor) -> torch.Tensor:
        """log of the mean of the members' probabilities, from their log-probabilities stacked (members, ...)."""
        return torch.logsumexp(logprobs, dim=0) - math.log(len(self.members))

    def select_state(self, state: tuple, rows: torch.Tensor) -> tuple:
        return tuple(member.select_state(s, rows) for member, s in zip(self.members, state))

    def join_states(self, parts: list[tuple]) -> tuple:
        return tuple(member.join_states(list(states)) for member, states in zip(self.members, zip(*parts)))


def networks(model: nn.Module) -> list[nn.Module]:
    """The networks a neural model is made of: an ensemble's members, or the model itself."""
    return list(model.members) if isinstance(model, EnsembleLM) else [model]


def clip_gradients(model: nn.Module, clip: float) -> None:
    """Bound each network's gradient norm by `clip`: an ensemble's members each as in a run of its own."""
    for network in networks(model):
        nn.utils.clip_grad_norm_(network.parameters(), clip)


class AdaptiveOutput(nn.Module):
    """An adaptive softmax (Grave et al., 2017): frequent pieces in a full-size head, rarer ones in
    smaller clusters, so most predictions never touch most of the vocabulary.

    It needs pieces ordered by frequency; `rank[id]` is a piece's place in that order, set from the
    training text's counts with `sort_by` and saved with the weights.
    """

    def __init__(self, features: int, vocab_size: int, cutoffs: list[int]):
        super().__init__()
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(features, vocab_size, cutoffs, div_value=4.0)
        self.register_buffer("rank", torch.arange(vocab_size))

    def sort_by(self, counts: np.ndarray) -> None:
        order = np.argsort(-counts, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self.rank.copy_(torch.from_numpy(rank))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (..., vocab) in piece-id order: they serve as logits."""
        logprobs = self.softmax.log_prob(features.reshape(-1, features.shape[-1]).float())
        return logprobs[:, self.rank].reshape(*features.shape[:-1], -1)

    def target_logprobs(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        flat = features.reshape(-1, features.shape[-1]).float()
        return self.softmax(flat, self.rank[targets.reshape(-1)]).output.reshape(targets.shape)


def adaptive_cutoffs(counts: np.ndarray) -> list[int]:
    """Cluster boundaries by frequency rank: the head holds the pieces that make up 90% of the
    text, the first cluster the next 8%, the tail the rest (each boundary at least 64 apart)."""
    covered = np.cumsum(np.sort(counts)[::-1]) / max(counts.sum(), 1)
    cutoffs: list[int] = []
    for share in (0.90, 0.98):
        cut = int(np.searchsorted(covered, share)) + 1
        cut = max(cut, (cutoffs[-1] if cutoffs else 0) + 64)
        if cut < len(counts) - 64:
            cutoffs.append(cut)
    return cutoffs or [len(counts) // 2]


def output_layer(features: int, vocab_size: int, cutoffs: list[int] | None, tie_to: nn.Embedding | None) -> nn.Module:
    """A linear layer for a full softmax (its weights tied to the embedding when given), or an
    adaptive softmax when `cutoffs` are given."""
    if cutoffs:
        return AdaptiveOutput(features, vocab_size, cutoffs)
    linear = nn.Linear(features, vocab_size)
    if tie_to is not None:
        linear.weight = tie_to.weight
    nn.init.zeros_(linear.bias)
    return linear


LanguageModel = Union[RecurrentLM, WindowedBiLM, EnsembleLM, NgramLM]


def build_model(
    config: ModelConfig, vocab_size: int, cutoffs: list[int] | None = None
) -> RecurrentLM | WindowedBiLM | EnsembleLM:
    """A freshly initialised neural model (an n-gram model is counted, not built: see ngram.py): one
    network, or an ensemble of `config.members`, each drawn from torch's generator in turn.

    `cutoffs` are the adaptive softmax's cluster boundaries (`softmax: adaptive`), kept in the
    model directory's manifest.
    """
    if (config.softmax == "adaptive") != bool(cutoffs):
        raise ValueError("an adaptive softmax needs its cutoffs, and only it takes them")
    size = _weights_bytes(config, vocab_size)
    ensemble = f"{config.members} networks of " if config.members > 1 else ""
    too_large = ConfigError(
        f"the model is too large for memory: {ensemble}{config.cell} with hidden {config.hidden}, "
        f"embed {config.embed}, {config.layers} layers and {vocab_size} pieces needs about "
        f"{size / 2**30:,.1f} GiB for its weights alone; lower --hidden, --embed, --layers, "
        f"--members or --vocab-size"
    )
    if size > _memory_bytes():
        raise too_large  # refused before allocating: an allocation close to the memory's size may succeed
    try:  # and then be killed by the OS while it is filled
        shape = (vocab_size, config.cell, config.layers, config.embed, config.hidden, config.dropout)
        encoder = (config.context, config.pool) if config.bidirectional else ()
        network = WindowedBiLM if config.bidirectional else RecurrentLM
        members = [network(*shape, *encoder, cutoffs) for _ in range(config.members)]
        return members[0] if config.members == 1 else EnsembleLM(members)
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "allocate" not in str(exc):
            raise
        raise too_large from None


def _weights_bytes(config: ModelConfig, vocab_size: int) -> int:
    """About how many bytes a neural model's float32 weights take, counted before any is allocated."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[config.cell]
    directions = 2 if config.bidirectional else 1
    width = config.embed + config.hidden * directions
    recurrent = config.layers * directions * gates * config.hidden * (width + 2)
    return 4 * config.members * (vocab_size * config.embed + recurrent + config.hidden * directions * (vocab_size + 1))


def _memory_bytes() -> int:
    """The machine's physical memory; where it cannot be read, no bound (allocation failures still tell)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 1 << 62


def flat_state(state: Any) -> list[torch.Tensor]:
    """A state's tensors in order: an LSTM's hidden then cell, an ensemble's members one after another."""
    return [t for s in state for t in flat_state(s)] if isinstance(state, tuple) else [state]


def map_state(function: Any, state: Any) -> Any:
    """`function` applied to every tensor of a state: a tensor, a tuple of states (an LSTM's pair, an
    ensemble's members), or None."""
    if state is None:
        return None
    return tuple(map_state(function, s) for s in state) if isinstance(state, (tuple, list)) else function(state)


def detach_state(state: Any) -> Any:
    """The same state cut from the graph, so backpropagation stops at the segment boundary."""
    return map_state(torch.Tensor.detach, state)


def parameter_count(model: nn.Module) -> int:
    """Trained weights; for an n-gram model, its stored n-grams."""
    return model.entries if isinstance(model, NgramLM) else sum(p.numel() for p in model.parameters())


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters(), next(model.buffers(), torch.zeros(0))).device


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """`model` in eval mode (no dropout) inside the block, and each of its modules back in its own mode after it."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:  # each its own: `model.train(mode)` would give its mode to all its parts
            module.training = training
