"""The classic baseline: an interpolated modified Kneser-Ney n-gram model over tokenizer pieces.

    P(w | h) = max(c(h, w) - D(c), 0) / c(h) + γ(h) · P(w | h without its first token)

with three discounts per order, D1, D2 and D3+, from the counts of counts (Chen & Goodman, 1998),
raw counts at the highest order and continuation counts (how many different tokens come before)
below it, and the uniform distribution under the unigrams, so every piece has a probability and
the distribution sums to 1. γ(h) is the mass the discounts took from h's followers.

It has the same interface as the neural models, `model(tokens, state, last_only) -> (log-probs,
state)` with the last `order - 1` tokens as the state, so prediction, generation, evaluation
and comparison use it unchanged. Its tables are buffers, saved in the same safetensors file."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from .tokenizer import EOS_ID

MAX_ORDER = 6
# Lower bounds of the classes of a context's count that `NgramLM.context_buckets` tells apart.
COUNT_CLASSES = np.array([1, 2, 4, 16, 256])


def max_order(vocab_size: int) -> int:
    """The highest order whose contexts (order - 1 tokens) pack into one int64 key."""
    order = 1
    while order < MAX_ORDER and vocab_size**order < 2**63:
        order += 1
    return order


def _pack(columns: list[np.ndarray], vocab_size: int, rows: int) -> np.ndarray:
    """One int64 key for each of `rows` rows of token columns, read as digits in base vocab_size."""
    key = np.zeros(rows, dtype=np.int64)
    for column in columns:
        key = key * vocab_size + column
    return key


def _unique_pairs(contexts: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (context, word) pairs, sorted by context then word, and how often each occurs."""
    order = np.lexsort((words, contexts))
    contexts, words = contexts[order], words[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (contexts[1:] != contexts[:-1]) | (words[1:] != words[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(order)))
    return contexts[starts], words[starts], counts


def _discounts(counts: np.ndarray) -> np.ndarray:
    """D1, D2, D3+ from the counts of counts (Chen & Goodman's estimate), each kept in (0, k]."""
    n = [np.count_nonzero(counts == k) for k in range(1, 5)]
    if n[0] == 0 or n[1] == 0:
        return np.array([0.5, 1.0, 1.5])  # too few n-grams to estimate from
    y = n[0] / (n[0] + 2 * n[1])
    estimates = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / max(n[2], 1)]
    return np.array([min(max(d, 0.05), k) for k, d in enumerate(estimates, 1)])


def count_ngrams(ids: np.ndarray, vocab_size: int, order: int) -> dict[str, torch.Tensor]:
    """The tables of an order-`order` model of the token ids, ready for `NgramLM`.

    For each context length m < order: the sorted context keys, the offset of each context's
    followers, the followers' ids and their counts (raw at the top, continuation counts below)."""
    if not 1 <= order <= max_order(vocab_size):
        raise ValueError(f"order must be between 1 and {max_order(vocab_size)} for a vocabulary of {vocab_size}")
    ids = np.asarray(ids, dtype=np.int64)
    top = order - 1
    n = len(ids) - top
    if n < 1:
        raise ValueError(f"{len(ids)} tokens are too few for an order-{order} model")
    contexts, words, counts = _unique_pairs(_pack([ids[j : j + n] for j in range(top)], vocab_size, n), ids[top:])
    tables: dict[str, torch.Tensor] = {}
    for m in range(top, -1, -1):
        keys, starts = np.unique(contexts, return_index=True)
        offsets = np.append(starts, len(words))
        tables |= {f"contexts_{m}": keys, f"offsets_{m}": offsets, f"words_{m}": words, f"counts_{m}": counts}
        if m:  # the next lower order counts the distinct tokens seen before each shorter n-gram
            contexts, words, counts = _unique_pairs(contexts % vocab_size ** (m - 1), words)
    return {name: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for name, a in tables.items()}


class _Joined:
    """Every order's tables as one, so that a lookup takes all orders at once: the contexts of every
    length m in one numbering (length by length, each length's keys offset by Σ_{k<m} V^k so that
    the joined keys stay sorted), each context's total count, back-off weight γ and followers,
    each follower's own share max(c - D, 0) / c(h), and the unigram distribution."""

    def __init__(self, levels: list[tuple[np.ndarray, ...]], vocab_size: int):
        self.vocab_size, self.powers = vocab_size, vocab_size ** np.arange(len(levels), dtype=np.int64)
        self.bases = np.cumsum(np.append(0, self.powers))  # where each length's keys start
        contexts, entries = sum(len(level[0]) for level in levels), sum(len(level[2]) for level in levels)
        self.keys, self.offsets, self.totals = (np.empty(size, np.int64) for size in (contexts, contexts + 1, contexts))
        self.words, self.pairs = np.empty(entries, np.int64), np.empty(entries, np.int64)
        self.backoffs, self.shares = np.empty(contexts), np.empty(entries)
        c = e = 0  # where this length's contexts and followers start, filled in place (no copy to concatenate)
        for m, (keys, offsets, followers, counts) in enumerate(levels):
            if (
                len(offsets) != len(keys) + 1
                or offsets[-1] != len(followers)
                or len(counts) != len(followers)
                or (len(followers) and (followers.min() < 0 or followers.max() >= vocab_size or counts.min() < 1))
            ):
                raise ValueError(f"the order-{m + 1} n-gram tables are inconsistent")
            discount = _discounts(counts)[np.minimum(counts, 3) - 1]
            total = np.add.reduceat(counts, offsets[:-1]) if len(keys) else np.zeros(0, np.int64)
            taken = np.add.reduceat(discount, offsets[:-1]) if len(keys) else np.zeros(0)
            at, to = slice(c, c + len(keys)), slice(e, e + len(followers))
            self.keys[at], self.offsets[at], self.totals[at] = keys + self.bases[m], offsets[:-1] + e, total
            self.backoffs[at], self.words[to] = taken / np.maximum(total, 1), followers
            self.shares[to] = (counts - discount) / np.repeat(total, np.diff(offsets))
            # Followers are sorted by word within each context, so (context number, word) keys are sorted.
            self.pairs[to] = np.repeat(np.arange(c, c + len(keys)), np.diff(offsets)) * vocab_size + followers
            c, e = c + len(keys), e + len(followers)
        self.offsets[-1] = e
        self.unigram = np.full(vocab_size, self.backoffs[0] / vocab_size)  # the empty context is number 0
        self.unigram[self.words[: self.offsets[1]]] += self.shares[: self.offsets[1]]

    def find(self, history: np.ndarray) -> np.ndarray:
        """(order - 1, rows): the number of each row's last m tokens as a context, m = 1 .. order - 1, or -1."""
        width = history.shape[1]
        keys = (np.cumsum(history[:, ::-1] * self.powers[:width], axis=1) + self.bases[1 : width + 1]).T
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[at] == keys, at, -1)

    def followers(self, found: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """P(next piece) at rows whose contexts are `found` (see `find`) in parts, so that a mixture adds them
        without a dense array, the recursion unrolled, P = (Π_m γ_m) P_unigram + Σ_m (Π_{k>m} γ_k) own_m: the
        scale of P_unigram (rows,), and what each order's followers add to it, as their rows, their places in
        (rows, vocab) flattened, and their values."""
        seen = found >= 0
        gammas = np.where(seen, self.backoffs[found], 1.0)
        above = np.ones_like(gammas)  # [m]: the product of the back-off weights of the longer contexts
        above[:-1] = np.cumprod(gammas[:0:-1], axis=0)[::-1]
        level, row = np.nonzero(seen)
        context = found[level, row]
        starts, lengths = self.offsets[context], self.offsets[context + 1] - self.offsets[context]
        # Every (row, follower) pair at once: follower i of a context sits at its start + i.
        span = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths - starts, lengths)
        scale = above[0] * gammas[0] if len(found) else np.ones(found.shape[1])
        rows, values = np.repeat(row, lengths), self.shares[span] * np.repeat(above[level, row], lengths)
        return scale, rows, rows * self.vocab_size + self.words[span], values


class NgramLM(nn.Module):
    """Interpolated modified Kneser-Ney over pieces; see the module docstring."""

    gives_logprobs = True  # `forward` gives log P itself, not logits still to be normalised

    def __init__(self, vocab_size: int, order: int, tables: Mapping[str, torch.Tensor]):
        super().__init__()
        self.vocab_size, self.order = vocab_size, order
        names = ("contexts", "offsets", "words", "counts")
        for m in range(order):
            for name in names:
                key = f"{name}_{m}"
                if key not in tables:
                    raise ValueError(f"the n-gram tables lack {key}")
                self.register_buffer(key, tables[key].to("cpu", torch.int64).contiguous())
        self._joined = _Joined(
            [tuple(getattr(self, f"{name}_{m}").numpy() for name in names) for m in range(order)], vocab_size
        )
        self.unigram = self._joined.unigram  # P(next piece) with no context (vocab,): every context backs off to it

    @property
    def entries(self) -> int:
        """Stored n-grams: what counts as this model's parameters."""
        return len(self._joined.words)

    def contexts_found(self, history: np.ndarray) -> np.ndarray:
        return self._joined.find(history)  # see _Joined.find

    def context_buckets(self, found: np.ndarray) -> np.ndarray:
        """For each row, a bucket of how much the model knows of its context (see `contexts_found`): the
        longest context length it has seen (0 .. order - 1) and that context's count, in COUNT_CLASSES,
        as one number below `buckets`."""
        length = (found >= 0).sum(0)  # a longer context seen means every shorter one was seen too
        total = np.full(found.shape[1], np.iinfo(np.int64).max)
        if len(found):
            longest = found[np.maximum(length - 1, 0), np.arange(found.shape[1])]
            total = np.where(length > 0, self._joined.totals[longest], total)
        return length * len(COUNT_CLASSES) + np.searchsorted(COUNT_CLASSES, total, side="right") - 1

    @property
    def buckets(self) -> int:
        return self.order * len(COUNT_CLASSES)

    def followers(self, found: np.ndarray) -> tuple[np.ndarray, ...]:
        return self._joined.followers(found)  # see _Joined.followers

    def distributions(self, history: np.ndarray) -> np.ndarray:
        """P(next piece) (rows, vocab) float64 after each row of `history`: `followers` added up."""
        scale, _, places, values = self.followers(self.contexts_found(history))
        p = np.bincount(places, values, len(history) * self.vocab_size)
        return p.reshape(len(history), self.vocab_size) + scale[:, None] * self.unigram

    def probabilities(self, history: np.ndarray, words: np.ndarray, found: np.ndarray | None = None) -> np.ndarray:
        """P(words[row] | history[row]) for each row: the same recursion, for one word only."""
        joined = self._joined
        p = joined.unigram[words]
        for at in self.contexts_found(history) if found is None else found:  # from the shortest context up
            seen = at >= 0
            keys = np.where(seen, at, 0) * self.vocab_size + words
            i = np.minimum(np.searchsorted(joined.pairs, keys), len(joined.pairs) - 1)
            own = np.where(seen & (joined.pairs[i] == keys), joined.shares[i], 0.0)
            p = np.where(seen, own + joined.backoffs[at] * p, p)
        return p

    def histories(
        self, tokens: torch.Tensor, state: np.ndarray | None, last_only: bool
    ) -> tuple[np.ndarray, int, np.ndarray]:
        """The order - 1 tokens before each prediction, one row per prediction (row-major over batch and
        time), the number of predictions per batch row (time, or 1), and the new state. The state is
        numpy, as the tables are: a step's lookups then start without a torch call."""
        rows, width = tokens.shape[0], self.order - 1
        if state is None:  # before the text starts: line breaks, as training text begins after one
            state = np.full((rows, width), EOS_ID, dtype=np.int64)
        history = np.concatenate([state, tokens.cpu().numpy()], axis=1, dtype=np.int64)
        steps, new_state = 1 if last_only else tokens.shape[1], history[:, history.shape[1] - width :]
        windows = new_state  # the last window; before each token, `width` columns shifted one step per token
        if not last_only:
            windows = np.lib.stride_tricks.sliding_window_view(
                history[:, history.shape[1] - width - steps :], width, axis=1
            )[:, 1:].reshape(rows * steps, width)
        return windows, steps, new_state

    def forward(
        self, tokens: torch.Tensor, state: np.ndarray | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Log-probabilities (batch, time or 1, vocab) of the piece after each of `tokens` (batch, time);
        the state is the last order - 1 tokens."""
        windows, steps, state = self.histories(tokens, state, last_only)
        logprobs = torch.from_numpy(np.log(self.distributions(windows))).float()
        return logprobs.reshape(tokens.shape[0], steps, -1).to(tokens.device), state

    def target_logprobs(
        self, tokens: torch.Tensor, targets: torch.Tensor, state: np.ndarray | None = None
    ) -> tuple[torch.Tensor, np.ndarray]:
        """log P(targets[b, t] | tokens up to [b, t]) (batch, time) without the full distributions:
        what evaluation needs, at a fraction of the cost."""
        windows, _, state = self.histories(tokens, state, last_only=False)
        p = self.probabilities(windows, targets.cpu().numpy().reshape(-1))
        return torch.from_numpy(np.log(p)).reshape(targets.shape).to(tokens.device), state

    @staticmethod
    def select_state(state: np.ndarray, rows: torch.Tensor) -> np.ndarray:
        return state[rows.cpu().numpy()]

    @staticmethod
    def join_states(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts)
