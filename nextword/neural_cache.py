"""The neural cache (Grave, Joulin & Usunier 2017, "Improving Neural Language Models with a
Continuous Cache"): the pieces that followed the places of the document most like this one.

Every piece read leaves an entry: the neural model's features at the place before it (normalised
to length 1) and the piece. At a place whose features are h,

    p_cache(v) = Σ_j softmax_j(θ · h · h_j) [piece_j = v]      over the last WINDOW entries j

so a name, a phrase or a speaker's label that followed a similar place earlier comes back. It
holds only text already read, never what follows. θ is chosen on validation (mixture.fit).

A document's entries are kept once, in a `_Log` that only grows, and a state (`Memory`) names for
each row its log and how far into it the row's text has reached: the many beams of a word search,
and the many places of one reading that evaluate searches from, share their document's entries
instead of copying them. A row whose log another row has already carried on past its place keeps
its new entries as its own `tail`; a tail longer than TAIL_LIMIT moves to a log of its own
(the last WINDOW entries copied). Appending to a log at an end no state has passed adds only what
no existing state can see, so no state ever changes. A log keeps all its document's entries,
4 × dim bytes a piece (1 KB for the small preset): a state may go back to any place in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

WINDOW = 2000  # entries a prediction looks back over (Grave et al.'s choice for wikitext-2)
THETAS = (5.0, 10.0, 20.0, 40.0)  # the sharpness θ that `mixture.fit` chooses from (10 on both shared corpora)
TAIL_LIMIT = 32  # a row's own entries past its log's end, at most, before they move to a log of their own


class _Log:
    """The entries of one document, in order: keys (length, dim) float32 and pieces (length,) int64."""

    def __init__(self, dim: int, device: torch.device):
        self.keys = torch.empty(0, dim, device=device)
        self.pieces = torch.empty(0, dtype=torch.long, device=device)
        self.length = 0

    def append(self, keys: torch.Tensor, pieces: torch.Tensor) -> None:
        """Add entries at the end, the storage doubled when full (amortised: no copy per piece)."""
        end = self.length + len(pieces)
        if end > len(self.pieces):
            capacity = max(end, 2 * len(self.pieces), 256)
            self.keys = torch.cat([self.keys[:self.length], keys.new_empty(capacity - self.length, keys.shape[1])])
            self.pieces = torch.cat([self.pieces[:self.length], pieces.new_empty(capacity - self.length)])
        self.keys[self.length:end], self.pieces[self.length:end] = keys, pieces
        self.length = end


@dataclass(frozen=True)
class Memory:
    """The neural cache's state for a batch of rows: each row's log (`logs[log_of[b]]`) up to `ends[b]`,
    then its `tail` (valid where `tail_valid`), and `pending`, the features after its last piece, whose
    entry waits for the piece that follows (none where not `pending_valid`: before the first piece)."""

    logs: tuple[_Log, ...]
    log_of: tuple[int, ...]
    ends: tuple[int, ...]
    tail_keys: torch.Tensor  # (rows, tail, dim)
    tail_pieces: torch.Tensor  # (rows, tail)
    tail_valid: torch.Tensor  # (rows, tail) bool
    pending: torch.Tensor  # (rows, dim)
    pending_valid: torch.Tensor  # (rows,) bool

    @staticmethod
    def empty(rows: int, dim: int, device: torch.device) -> Memory:
        return Memory(tuple(_Log(dim, device) for _ in range(rows)), tuple(range(rows)), (0,) * rows,
                      torch.empty(rows, 0, dim, device=device), torch.empty(rows, 0, dtype=torch.long, device=device),
                      torch.empty(rows, 0, dtype=torch.bool, device=device), torch.zeros(rows, dim, device=device),
                      torch.zeros(rows, dtype=torch.bool, device=device))

    def select(self, rows: torch.Tensor) -> Memory:
        """The state of `rows`, in that order; only the logs they use are kept."""
        picked = rows.tolist()
        logs, log_of = _used_logs(self.logs, [self.log_of[r] for r in picked])
        return Memory(logs, log_of, tuple(self.ends[r] for r in picked), self.tail_keys[rows], self.tail_pieces[rows],
                      self.tail_valid[rows], self.pending[rows], self.pending_valid[rows])

    def join(self, other: Memory) -> Memory:
        """The rows of `self`, then those of `other`; a log both use is kept once."""
        logs, log_of = list(self.logs), list(self.log_of)
        place = {id(log): i for i, log in enumerate(logs)}
        for i in other.log_of:
            log = other.logs[i]
            if id(log) not in place:
                place[id(log)] = len(logs)
                logs.append(log)
            log_of.append(place[id(log)])
        width = max(self.tail_valid.shape[1], other.tail_valid.shape[1])
        first, second = _padded_tail(self, width), _padded_tail(other, width)
        return Memory(tuple(logs), tuple(log_of), self.ends + other.ends,
                      *(torch.cat([a, b]) for a, b in zip(first, second)),
                      torch.cat([self.pending, other.pending]), torch.cat([self.pending_valid, other.pending_valid]))


def _used_logs(logs: tuple[_Log, ...] | list[_Log], log_of: list[int]) -> tuple[tuple[_Log, ...], tuple[int, ...]]:
    """Only the logs that `log_of` names, in their order, and `log_of` numbered into them: a state
    holds no log that none of its rows reads."""
    used = sorted(set(log_of))
    renumber = {old: new for new, old in enumerate(used)}
    return tuple(logs[i] for i in used), tuple(renumber[i] for i in log_of)


def _padded_tail(memory: Memory, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    extra = width - memory.tail_valid.shape[1]
    keys, pieces, valid = memory.tail_keys, memory.tail_pieces, memory.tail_valid
    if extra:
        keys = torch.cat([keys, keys.new_zeros(keys.shape[0], extra, keys.shape[2])], 1)
        pieces = torch.cat([pieces, pieces.new_zeros(pieces.shape[0], extra)], 1)
        valid = torch.cat([valid, valid.new_zeros(valid.shape[0], extra)], 1)
    return keys, pieces, valid


class NeuralCache:
    """The cache of one sharpness θ (or several at once, for fitting) over the last `window` entries."""

    def __init__(self, theta: float, window: int = WINDOW):
        self.theta, self.window = float(theta), int(window)

    def read(self, memory: Memory | None, features: torch.Tensor, tokens: torch.Tensor,
             thetas: tuple[float, ...] | None = None, last_only: bool = False
             ) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], torch.Tensor, Memory]:
        """Read `tokens` (rows, time) whose features are `features` (rows, time, dim): for each group of
        rows that share a log, (their row indices, the weights (thetas, rows, time or 1, entries) of
        the entries each place (or the last) sees, all zero where it sees none, and the entries'
        pieces (rows, entries)); and the state after the tokens. `thetas` default to this cache's θ."""
        rows, time, dim = features.shape
        if memory is None:
            memory = Memory.empty(rows, dim, features.device)
        keys = torch.nn.functional.normalize(features.float(), dim=-1)
        # Entry m: the features before token m (the pending ones for m = 0) and token m itself.
        new_keys = torch.cat([memory.pending[:, None], keys[:, :-1]], 1)
        new_valid = torch.cat([memory.pending_valid[:, None], new_keys.new_ones(rows, time - 1, dtype=torch.bool)], 1)
        thetas_t = torch.tensor(thetas or (self.theta,), device=features.device)[:, None, None, None]
        groups = []
        for log_index in sorted(set(memory.log_of)):
            at = [b for b, i in enumerate(memory.log_of) if i == log_index]
            weights, pieces = self._group(memory, memory.logs[log_index], at, keys, new_keys, new_valid, tokens,
                                          thetas_t, last_only)
            groups.append((torch.tensor(at, device=features.device), weights, pieces))
        return groups, _after(memory, new_keys, tokens, new_valid, keys[:, -1], self.window)

    def _group(self, memory: Memory, log: _Log, at: list[int], keys: torch.Tensor, new_keys: torch.Tensor,
               new_valid: torch.Tensor, tokens: torch.Tensor, thetas: torch.Tensor, last_only: bool
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The weights and pieces of `read` for the rows `at`, which share `log`."""
        device = keys.device
        index = torch.tensor(at, device=device)
        ends = torch.tensor([memory.ends[b] for b in at], device=device)
        tail_valid = memory.tail_valid[index]
        tail_count = tail_valid.sum(1)
        low = max(0, min(memory.ends[b] for b in at) - self.window)
        high = max(memory.ends[b] for b in at)
        query = keys[index][:, -1:] if last_only else keys[index]  # (rows, time or 1, dim)
        # Each entry's place in its row's text: the log's, then the tail's valid ones, then the new valid ones.
        log_place = torch.arange(low, high, device=device).expand(len(at), -1)
        tail_place = ends[:, None] + tail_valid.cumsum(1) - 1
        new_place = (ends + tail_count)[:, None] + new_valid[index].cumsum(1) - 1
        places = torch.cat([log_place, tail_place, new_place], 1)  # (rows, entries)
        valid = torch.cat([log_place < ends[:, None], tail_valid, new_valid[index]], 1)
        # The place of the newest entry each query sees: that of the entry holding its own token.
        latest = new_place[:, -1:] if last_only else new_place  # (rows, time or 1)
        visible = (valid[:, None, :] & (places[:, None, :] <= latest[:, :, None])
                   & (places[:, None, :] > latest[:, :, None] - self.window))
        scores = torch.cat([query @ log.keys[low:high].T, query @ memory.tail_keys[index].transpose(1, 2),
                            query @ new_keys[index].transpose(1, 2)], 2)
        scores = (thetas * scores[None]).masked_fill(~visible[None], -torch.inf)
        weights = torch.softmax(scores, -1).nan_to_num(0.0)  # a place that sees nothing: all zero
        pieces = torch.cat([log.pieces[low:high].expand(len(at), -1), memory.tail_pieces[index], tokens[index]], 1)
        return weights, pieces

    def distributions(self, memory: Memory | None, features: torch.Tensor, tokens: torch.Tensor, vocab_size: int,
                      last_only: bool = False) -> tuple[torch.Tensor, torch.Tensor, Memory]:
        """p_cache after each of `tokens` (or only the last) (rows, time or 1, vocab), its peak there
        (rows, time or 1: see `target_probabilities`), and the state after the tokens."""
        groups, after = self.read(memory, features, tokens, last_only=last_only)
        time = 1 if last_only else tokens.shape[1]
        out = features.new_zeros(tokens.shape[0], time, vocab_size, dtype=torch.float32)
        for index, weights, pieces in groups:
            found = out.new_zeros(len(index), time, vocab_size)
            out[index] = found.scatter_add_(2, pieces[:, None].expand(-1, time, -1), weights[0].float())
        return out, out.amax(-1), after

    def target_probabilities(self, memory: Memory | None, features: torch.Tensor, tokens: torch.Tensor,
                             targets: torch.Tensor, thetas: tuple[float, ...] | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor, Memory]:
        """p_cache(targets[b, t]) after tokens up to [b, t], (thetas, rows, time) float64; the cache's
        peak there, the largest probability it gives any piece, (thetas, rows, time) float32, which is
        0 where it holds nothing and says how sure it is; and the state after the tokens."""
        groups, after = self.read(memory, features, tokens, thetas)
        out = torch.zeros(len(thetas or (self.theta,)), *tokens.shape, dtype=torch.float64, device=tokens.device)
        peaks = torch.zeros(out.shape, device=tokens.device)
        for index, weights, pieces in groups:
            same = pieces[:, None, :] == targets[index][:, :, None]  # (rows, time, entries)
            out[:, index] = (weights.double() * same[None]).sum(-1)
            # Each piece's probability, summed over the distinct pieces the rows see rather than the vocabulary.
            distinct, numbered = torch.unique(pieces, return_inverse=True)
            summed = weights.new_zeros(*weights.shape[:-1], len(distinct))
            peaks[:, index] = summed.scatter_add_(-1, numbered[None, :, None].expand_as(weights), weights).amax(-1)
        return out, peaks, after

def _after(memory: Memory, new_keys: torch.Tensor, tokens: torch.Tensor, new_valid: torch.Tensor,
           last_features: torch.Tensor, window: int) -> Memory:
    """The state once the new entries (`new_keys`, `tokens`, where `new_valid`) are added: a row at its
    log's end adds its tail and the new entries to the log (the first such row of a log, the others
    find the end taken); any other row keeps them as its tail, or moves to a log of its own when
    that grows past TAIL_LIMIT."""
    keys = torch.cat([memory.tail_keys, new_keys], 1)
    pieces = torch.cat([memory.tail_pieces, tokens.long()], 1)
    valid = torch.cat([memory.tail_valid, new_valid], 1)
    logs, log_of, ends = list(memory.logs), list(memory.log_of), list(memory.ends)
    counts = valid.sum(1).tolist()
    moved = valid.new_zeros(len(counts))
    for b, count in enumerate(counts):
        log = logs[log_of[b]]
        if log.length != ends[b] and count <= TAIL_LIMIT:
            continue  # kept as its tail
        if log.length != ends[b]:  # a log of its own: the entries it can still see, then its own
            own = _Log(keys.shape[2], keys.device)
            low = max(0, ends[b] - window)
            own.append(log.keys[low:ends[b]], log.pieces[low:ends[b]])
            log_of[b], log = len(logs), own
            logs.append(own)
        log.append(keys[b][valid[b]], pieces[b][valid[b]])
        ends[b], moved[b] = log.length, True
    valid = valid & ~moved[:, None]
    # The valid entries first in each row, then the columns no row uses dropped.
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)
    width = int(valid.sum(1).max()) if len(counts) else 0
    order = order[:, :width]
    return Memory(*_used_logs(logs, log_of), tuple(ends),
                  keys.gather(1, order[..., None].expand(-1, -1, keys.shape[2])),
                  pieces.gather(1, order), valid.gather(1, order), last_features,
                  torch.ones_like(memory.pending_valid))
