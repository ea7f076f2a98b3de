"""The neural cache (Grave, Joulin & Usunier 2017, "Improving Neural Language Models with a
Continuous Cache"): the pieces that followed the places of the document most like this one.

Every piece read leaves an entry: the neural model's features at the place before it (normalised
to length 1) and the piece. At a place whose features are h,

    p_cache(v) = Σ_j softmax_j(θ · h · h_j) [piece_j = v]      over the last WINDOW entries j

so a name, a phrase or a speaker's label that followed a similar place earlier comes back. It
holds only text already read, never what follows. θ is chosen on validation (mixture.fit).

At the start of a document, where a place has read fewer than FEWEST_ENTRIES entries, the cache
holds only their `share` of what that many would weigh, those not yet read counted at an entry's
typical weight, measured on validation (`typical_weight`): the mixture gives it that share of its
weight (the rest to the other components), and how sure it is (which the weights depend on) is
its peak times that share. Softmax over a handful of entries puts nearly all the
weight on the closest however far it is, and the mixture, fitted on long texts where such a peak
means a name coming back, repeated the last words of a short prompt ("I will not not"); on short
documents the caches then cost more than they gave (bench/RESULTS.md).

A document's entries are kept once, in a `_Log` that only grows, and a state (`Memory`) names for
each row its log and how far into it the row's text has reached: the many beams of a word search,
and the many places of one reading that evaluate searches from, share their document's entries
instead of copying them. A row whose log another row has already carried on past its place keeps
its new entries as its own `tail`; a tail longer than TAIL_LIMIT moves to a log of its own
(the last WINDOW entries copied). Appending to a log at an end no state has passed adds only what
no existing state can see, so no state ever changes. A log keeps all its document's entries,
4 × dim bytes a piece (1 KB for the small preset; an ensemble's features are its members' side by
side, dim each): a state may go back to any place in it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

WINDOW = 2000  # entries a prediction looks back over (Grave et al.'s choice for wikitext-2)
THETAS = (5.0, 10.0, 20.0, 40.0)  # the sharpness θ that `mixture.fit` chooses from (10 on both shared corpora)
TAIL_LIMIT = 32  # a row's own entries past its log's end, at most, before they move to a log of their own
FEWEST_ENTRIES = 200  # a place is counted as seeing at least this many entries (see `NeuralCache.share`)
_UNSEEN = -(2**62)  # the place given to an entry that is not a row's: no place's window reaches it


@dataclass(frozen=True)
class Peaks:
    """What the mixture needs to know of the cache at each place (..., places): its `peak`, the largest
    probability it gives any piece (0 where it sees no entry); how many entries it sees, `seen`; and
    `log_mean`, the log of their mean weight exp(θ h·h_j) (-inf where none)."""

    peak: torch.Tensor
    seen: torch.Tensor
    log_mean: torch.Tensor


def typical_weight(peaks: Peaks) -> float | None:
    """The log of an entry's typical weight in a document, from the places of one read (flattened) that see
    the most entries (at least half as many as the most any sees): the mean of their `log_mean`. None
    where no place sees an entry."""
    most = peaks.seen.max()
    if most == 0:
        return None
    return peaks.log_mean[2 * peaks.seen >= most].double().mean().item()


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
            grown = keys.new_empty(capacity, keys.shape[1]), pieces.new_empty(capacity)
            grown[0][: self.length], grown[1][: self.length] = self.keys[: self.length], self.pieces[: self.length]
            self.keys, self.pieces = grown
        self.keys[self.length : end], self.pieces[self.length : end] = keys, pieces
        self.length = end


@dataclass(frozen=True)
class Memory:
    """The neural cache's state for a batch of rows: each row's log (`logs[log_of[b]]`) up to `ends[b]`,
    then its `tail` (valid where `tail_valid`, always a row's last entries), and `pending`, the features
    after its last piece, whose entry waits for the piece that follows (none where not `pending_valid`:
    before the first piece)."""

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
        return Memory(
            tuple(_Log(dim, device) for _ in range(rows)),
            tuple(range(rows)),
            (0,) * rows,
            torch.empty(rows, 0, dim, device=device),
            torch.empty(rows, 0, dtype=torch.long, device=device),
            torch.empty(rows, 0, dtype=torch.bool, device=device),
            torch.zeros(rows, dim, device=device),
            torch.zeros(rows, dtype=torch.bool, device=device),
        )

    def unread(self) -> Memory:
        """The same memory, its pending features not to be entered: a read of one piece from it adds no entry."""
        return replace(self, pending_valid=torch.zeros_like(self.pending_valid))

    def select(self, rows: torch.Tensor) -> Memory:
        """The state of `rows`, in that order; only the logs they use are kept."""
        picked = rows.tolist()
        logs, log_of = _used_logs(self.logs, [self.log_of[r] for r in picked])
        tensors = (self.tail_keys, self.tail_pieces, self.tail_valid, self.pending, self.pending_valid)
        ends = tuple(self.ends[r] for r in picked)
        return Memory(logs, log_of, ends, *(tensor.index_select(0, rows) for tensor in tensors))

    @staticmethod
    def joined(parts: list[Memory]) -> Memory:
        """The rows of each of `parts`, in order, as one memory; a log several use is kept once."""
        logs: list[_Log] = []
        place: dict[int, int] = {}
        log_of = []
        for part in parts:
            for i in part.log_of:
                log = part.logs[i]
                if id(log) not in place:
                    place[id(log)] = len(logs)
                    logs.append(log)
                log_of.append(place[id(log)])
        width = max(part.tail_valid.shape[1] for part in parts)
        tensors = (torch.cat(column) for column in zip(*(_row_tensors(part, width) for part in parts)))
        return Memory(tuple(logs), tuple(log_of), sum((part.ends for part in parts), ()), *tensors)


def _used_logs(logs: tuple[_Log, ...] | list[_Log], log_of: list[int]) -> tuple[tuple[_Log, ...], tuple[int, ...]]:
    """Only the logs that `log_of` names, in their order, and `log_of` numbered into them: a state
    holds no log that none of its rows reads."""
    used = sorted(set(log_of))
    renumber = {old: new for new, old in enumerate(used)}
    return tuple(logs[i] for i in used), tuple(renumber[i] for i in log_of)


def _row_tensors(memory: Memory, width: int) -> tuple[torch.Tensor, ...]:
    """The tensors of `memory`, in its fields' order, with the tail `width` entries wide: padded on the
    left, so that a row's valid entries stay its last ones."""
    extra = width - memory.tail_valid.shape[1]
    tail = memory.tail_keys, memory.tail_pieces, memory.tail_valid
    if extra:
        tail = tuple(torch.cat([t.new_zeros(t.shape[0], extra, *t.shape[2:]), t], 1) for t in tail)
    return *tail, memory.pending, memory.pending_valid


class _Own:
    """Each row's entries past its log's end: its tail, then the new ones (entry m: the features before
    token m, the pending ones for m = 0, and token m itself). A row's valid entries are always its
    last ones."""

    def __init__(self, memory: Memory, keys: torch.Tensor, tokens: torch.Tensor):
        rows, time = tokens.shape
        self.keys = torch.cat([memory.tail_keys, memory.pending[:, None], keys[:, :-1]], 1)
        self.pieces = torch.cat([memory.tail_pieces, tokens.long()], 1)
        self.valid = torch.cat(
            [memory.tail_valid, memory.pending_valid[:, None], memory.pending_valid.new_ones(rows, time - 1)], 1
        )


class NeuralCache:
    """The cache of one sharpness θ (or several at once, for fitting) over the last `window` entries; the
    entries not yet read count as `typical` (see `typical_weight`) in its `share`, or not at all where it
    is None (a model directory from before it)."""

    def __init__(self, theta: float, window: int = WINDOW, typical: float | None = None):
        self.theta, self.window, self.typical = float(theta), int(window), typical

    def share(self, peaks: Peaks) -> torch.Tensor:
        """The part of FEWEST_ENTRIES entries' weight that the entries seen at each place carry, those not yet
        read counted at the typical weight: 1 from FEWEST_ENTRIES entries on, 0 where none is seen; without a
        typical weight, 1 wherever one is. Float64: above 0 wherever an entry is seen."""
        seen = peaks.seen.double()
        if self.typical is None:
            return (seen > 0).double()
        # log(weight seen / weight of the entries not yet read): +inf from FEWEST_ENTRIES on, -inf with none seen
        missing = (min(FEWEST_ENTRIES, self.window) - seen).clamp_min(0)
        return torch.sigmoid(seen.log() + peaks.log_mean.double() - missing.log() - self.typical)

    def read(
        self,
        memory: Memory | None,
        features: torch.Tensor,
        tokens: torch.Tensor,
        thetas: tuple[float, ...] | None = None,
        last_only: bool = False,
    ) -> tuple[list[tuple[slice | torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]], Memory]:
        """Read `tokens` (rows, time) whose features are `features` (rows, time, dim): for each group of
        rows that share a log, (their row indices, or every row as a slice, the weights (thetas, rows,
        time or 1, entries) of the entries each place (or the last) sees, all zero where it sees none,
        the entries' pieces (rows, entries), and each place's `seen` (rows, time or 1) and `log_mean`
        (thetas, rows, time or 1) as `Peaks` has them); and the state after the tokens. `thetas` default
        to this cache's θ."""
        rows, time, dim = features.shape
        if memory is None:
            memory = Memory.empty(rows, dim, features.device)
        keys = features.float()
        keys = keys / torch.linalg.vector_norm(keys, dim=-1, keepdim=True).clamp_min(1e-12)  # as normalize does
        own = _Own(memory, keys, tokens)
        theta = self.theta if thetas is None else torch.tensor(thetas, device=keys.device)[:, None, None, None]
        queries, groups = keys[:, -1:] if last_only else keys, []
        for log_index in sorted(set(memory.log_of)):
            at = [b for b, i in enumerate(memory.log_of) if i == log_index]
            index = slice(None) if len(at) == rows else torch.tensor(at, device=keys.device)
            ends = [memory.ends[b] for b in at]
            groups.append((index, *self._group(memory.logs[log_index], ends, queries, own, index, theta)))
        return groups, _after(memory, own, keys[:, -1], self.window)

    def _group(
        self,
        log: _Log,
        ends: list[int],
        queries: torch.Tensor,
        own: _Own,
        index: slice | torch.Tensor,
        theta: float | torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The weights, pieces, entries seen and their log mean weight of `read` for the rows `index` (all
        of them as a slice), which share `log` up to their `ends`, whose `queries` (rows, time or 1, dim)
        are at their new places (or their last) and whose own entries are `own`'s."""

        def rows(tensor: torch.Tensor) -> torch.Tensor:
            return tensor if isinstance(index, slice) else tensor.index_select(0, index)

        queries, keys, valid, count = rows(queries), rows(own.keys), rows(own.valid), queries.shape[1]
        low, high = max(0, min(ends) - self.window), max(ends)
        scores = theta * torch.cat([queries @ log.keys[low:high].T, queries @ keys.transpose(1, 2)], 2)[None]
        width, fits = valid.shape[1], self.window - (high - low)  # own entries that fit beside the log's
        if count == 1 and ends.count(high) == len(ends) and width <= self.window:
            # At the newest place with one end for all: a row sees its valid entries (its last ones), and the
            # log but for its oldest entries where it has more than `fits` of its own.
            scores[..., high - low :].masked_fill_(~valid[:, None], -torch.inf)
            if width > fits:
                cut = torch.arange(width - fits, device=keys.device) < valid.sum(1, keepdim=True) - fits
                scores[..., : width - fits].masked_fill_(cut[:, None], -torch.inf)
        else:
            # Each entry's place counted from its row's end: the log's before it (past it, not that row's text),
            # its own valid entries after it.
            counted = valid.cumsum(1) - 1
            log_places = torch.arange(low, high, device=keys.device) - torch.tensor(ends, device=keys.device)[:, None]
            places = torch.where(torch.cat([log_places < 0, valid], 1), torch.cat([log_places, counted], 1), _UNSEEN)
            age = counted[:, -count:, None] - places[:, None]  # places before the query
            scores = torch.where((age >= 0) & (age < self.window), scores, -torch.inf)
        # The softmax from its normaliser, which the log mean weight needs too: one reduction, not two.
        total = torch.logsumexp(scores, -1)
        weights = (scores - total[..., None]).exp_().nan_to_num_(0.0)  # a place that sees nothing: all zero
        seen = torch.isfinite(scores[0]).sum(-1)
        log_mean = torch.where(seen > 0, total - seen.log(), -torch.inf)
        return weights, torch.cat([log.pieces[low:high].expand(len(keys), -1), rows(own.pieces)], 1), seen, log_mean

    def distributions(
        self,
        memory: Memory | None,
        features: torch.Tensor,
        tokens: torch.Tensor,
        vocab_size: int,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, Peaks, Memory]:
        """p_cache after each of `tokens` (or only the last) (rows, time or 1, vocab), its `Peaks` there
        (rows, time or 1), and the state after the tokens."""
        groups, after = self.read(memory, features, tokens, last_only=last_only)
        time = 1 if last_only else tokens.shape[1]
        out = features.new_zeros(tokens.shape[0], time, vocab_size, dtype=torch.float32)
        seen, log_mean = out.new_zeros(out.shape[:2], dtype=torch.long), out.new_zeros(out.shape[:2])
        for index, weights, pieces, group_seen, group_log_mean in groups:
            found = out if isinstance(index, slice) else out.new_zeros(len(index), time, vocab_size)
            found.scatter_add_(2, pieces[:, None].expand(-1, time, -1), weights[0])
            seen[index], log_mean[index] = group_seen, group_log_mean[0]
            if found is not out:
                out[index] = found
        return out, Peaks(out.amax(-1), seen, log_mean), after

    def target_probabilities(
        self,
        memory: Memory | None,
        features: torch.Tensor,
        tokens: torch.Tensor,
        targets: torch.Tensor,
        thetas: tuple[float, ...] | None = None,
    ) -> tuple[torch.Tensor, Peaks, Memory]:
        """p_cache(targets[b, t]) after tokens up to [b, t], (thetas, rows, time) float64; its `Peaks` there
        (thetas, rows, time; `seen` (rows, time)), float32; and the state after the tokens."""
        groups, after = self.read(memory, features, tokens, thetas)
        out = torch.zeros(len(thetas or (self.theta,)), *tokens.shape, dtype=torch.float64, device=tokens.device)
        peaks, log_mean = torch.zeros(out.shape, device=tokens.device), torch.zeros(out.shape, device=tokens.device)
        seen = torch.zeros(tokens.shape, dtype=torch.long, device=tokens.device)
        for index, weights, pieces, group_seen, group_log_mean in groups:
            seen[index], log_mean[:, index] = group_seen, group_log_mean
            same = pieces[:, None, :] == targets[index][:, :, None]  # (rows, time, entries)
            out[:, index] = (weights.double() * same[None]).sum(-1)
            # Each piece's probability, summed over the distinct pieces the rows see rather than the vocabulary.
            distinct, numbered = torch.unique(pieces, return_inverse=True)
            summed = weights.new_zeros(*weights.shape[:-1], len(distinct))
            peaks[:, index] = summed.scatter_add_(-1, numbered[None, :, None].expand_as(weights), weights).amax(-1)
        return out, Peaks(peaks, seen, log_mean), after


def _after(memory: Memory, own: _Own, last_features: torch.Tensor, window: int) -> Memory:
    """The state once the rows' own entries are kept: a row at its log's end adds them to the log (the
    first such row of a log, the others find the end taken); any other row keeps them as its tail, or
    moves to a log of its own when that grows past TAIL_LIMIT. The columns no row keeps are dropped:
    a row's valid entries are its last ones, so those are the first columns."""
    logs, log_of, ends = list(memory.logs), list(memory.log_of), list(memory.ends)
    counts = own.valid.sum(1).tolist()
    for b, count in enumerate(counts):
        log = logs[log_of[b]]
        if log.length != ends[b] and count <= TAIL_LIMIT:
            continue  # kept as its tail
        if log.length != ends[b]:  # a log of its own: the entries it can still see, then its own
            log = _Log(own.keys.shape[2], own.keys.device)
            low = max(0, ends[b] - window)
            log.append(logs[log_of[b]].keys[low : ends[b]], logs[log_of[b]].pieces[low : ends[b]])
            log_of[b] = len(logs)
            logs.append(log)
        width = own.valid.shape[1]
        log.append(own.keys[b, width - count :], own.pieces[b, width - count :])
        ends[b], counts[b] = log.length, 0
        own.valid[b] = False  # own's tensors are this read's alone: nothing else holds them yet
    width = max(counts, default=0)
    tails = (tensor[:, tensor.shape[1] - width :] for tensor in (own.keys, own.pieces, own.valid))
    return Memory(*_used_logs(logs, log_of), tuple(ends), *tails, last_features, torch.ones_like(memory.pending_valid))
