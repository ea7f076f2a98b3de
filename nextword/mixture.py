"""The mixture: a neural model, a Kneser-Ney n-gram and two caches of the document so far, interpolated
piece by piece (linear interpolation, Jelinek & Mercer 1980; the unigram cache after Kuhn & De Mori
1990, the neural cache after Grave et al. 2017):

    P(piece | h) = λ_neural(b) p_neural(piece | h) + λ_ngram(b) p_ngram(piece | h)
                   + λ_cache(b) p_cache(piece) + λ_neural_cache(b) p_neural_cache(piece | h)

The weights depend on a bucket b of the place. Without the caches it is what the n-gram knows of
the context (the longest context it has seen, and how often: `NgramLM.context_buckets`): where it
has seen the context many times it is worth more than where it backs off to a guess. With them it
is how sure the neural cache is, its peak (the largest probability it gives any piece, times its
share: see below) cut at CONFIDENCE_EDGES, and, in a mixture fitted since, the kind of the place
(PLACES: inside a word, after a line break, elsewhere). Where the cache is sure it may carry a
piece, where it is vague it counts for little; and it is surer of the letters that carry on a name
it has seen spelled than of the word that comes next, so the place tells its weight apart
(bench/RESULTS.md: a five-piece speaker's name in Tiny Shakespeare paid a weight of 0.64 on each
piece the cache was 99% sure of).
`fit` chooses the bucketing on validation: the n-gram's, the confidence's, or confidence and place.
In each bucket the weights lie in [WEIGHT_FLOOR, 1] and sum to 1, fitted by minimising the NLL of
the validation text; a bucket with fewer than MIN_BUCKET_PIECES validation pieces keeps the weights
fitted over all of them.

Two caches adapt the mixture to the text being read; both hold only the text already read, never
what follows:

- the unigram cache, a decaying count of the pieces read so far, `counts <- decay * counts +
  onehot(piece)` after each piece, and p_cache = counts / counts.sum(); its decay chosen on
  validation among half-lives of HALF_LIVES pieces. Until its counts add up to what a long text keeps,
  1 / (1 - decay), it holds their share of its weight (`UnigramCache.share`);
- the neural cache (neural_cache.py): the pieces that followed the places most like this one, by
  the neural model's features; its sharpness chosen on validation among neural_cache.THETAS. In a
  document's first pieces it holds only a share of the weight enough entries would (see
  `NeuralCache.share`).

A cache's weight is scaled by its share, and what that takes away goes to the neural model and the
n-gram in proportion to theirs (`renormalised`): a prompt's few words no longer stand for a document.

It has the interface of every model (see model.py): `forward` gives the log of the mixed
distribution, and the state is (neural state, n-gram state, cache counts (batch, vocab), neural
cache memory or None), which nothing changes."""

from __future__ import annotations

import functools
import math
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from .loss import stream_loss
from .neural_cache import THETAS, Memory, NeuralCache, Peaks, typical_weight
from .ngram import NgramLM
from .tokenizer import EOS_ID, Tokenizer

NAMES = ("neural", "ngram", "cache", "neural cache")  # the components, in the order of the weights' columns
HALF_LIVES = (30, 100, 300, 1000, 3000)  # the cache's half-lives, in pieces, that `fit` chooses from
MIN_BUCKET_PIECES = 200
CONFIDENCE_EDGES = (0.2, 0.5, 0.8, 0.95)  # where the neural cache's peak moves a place to the next bucket
PLACES = ("in a word", "after a line break", "elsewhere")  # what the last piece read was: letters, EOS, other
# No component's weight falls below this: where one was always right on validation, the fit would give it
# all the weight (the logits running off to infinity), and the place it is wrong would then cost without bound.
WEIGHT_FLOOR = 0.02
Array = TypeVar("Array", torch.Tensor, np.ndarray)
_KEPT_LENGTHS = 64  # reads up to this long keep their decays: a search's steps, not whole prompts or documents


def _power(log_decay: float, lag: torch.Tensor) -> torch.Tensor:
    """decay^lag for lags (float64) in pieces: how much a piece counts `lag` pieces after it was read."""
    return torch.exp(lag * log_decay)


@functools.lru_cache(maxsize=64)
def _last_decays(log_decay: float, length: int, device: torch.device) -> tuple[torch.Tensor, float]:
    """`UnigramCache._decays` at the last position alone, all prediction needs, kept for the reads a
    search repeats (one piece at a time); never changed."""
    powers = _power(log_decay, torch.arange(length, -1, -1, device=device, dtype=torch.float64))
    return powers[1:].float(), powers[0].item()


class UnigramCache:
    """The decaying counts of the pieces read so far; the counts are the state, `counts` (batch, vocab)
    float32, and are never changed in place. Within a segment they are reckoned in float64."""

    def __init__(self, half_life: float):
        self.half_life = float(half_life)
        self.log_decay = math.log(0.5) / self.half_life

    def share(self, total: Array) -> Array:
        """The share of its weight the cache holds where its counts add up to `total`: their total against
        what a long text keeps, 1 / (1 - decay). In a document's first pieces a few counts would otherwise
        stand for the whole document (one piece read: p_cache 1), as they never did where the weights were
        fitted. A tensor (fitting) or a numpy array (prediction), as `total` is."""
        return (total * -math.expm1(self.log_decay)).clip(max=1.0)

    def _decays(self, counts: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """How much piece s of `length` new pieces counts at each position t, decay^(t - s) for s <= t
        and 0 after t, (length, length); how much the `counts` from before count there, decay^(t + 1);
        and the total of the counts there (batch, length)."""
        t = torch.arange(length, device=counts.device, dtype=torch.float64)
        lag = t[:, None] - t[None, :]
        weights = torch.where(lag >= 0, _power(self.log_decay, lag.clamp_min(0)), 0.0)
        carry = _power(self.log_decay, t + 1)
        return weights, carry, carry[None, :] * counts.double().sum(1, keepdim=True) + weights.sum(1)[None, :]

    @staticmethod
    def _start(counts: torch.Tensor | None, tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
        if counts is None:
            return torch.zeros(tokens.shape[0], vocab_size, dtype=torch.float32, device=tokens.device)
        return counts

    @staticmethod
    def _after(
        counts: torch.Tensor, tokens: torch.Tensor, last: torch.Tensor, carry: torch.Tensor | float
    ) -> torch.Tensor:
        """The counts after all of `tokens`, from the weights of the last position."""
        return (counts * carry).scatter_add_(1, tokens.long(), last.to(counts.dtype).expand(tokens.shape))

    def distributions(
        self, counts: torch.Tensor | None, tokens: torch.Tensor, vocab_size: int, last_only: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The counts after each of `tokens` (batch, time), or only the last: (batch, time or 1, vocab),
        their totals (batch, time or 1), and the counts after the tokens (the new state)."""
        counts = self._start(counts, tokens, vocab_size)
        length = tokens.shape[1]
        if last_only:  # the counts after the last token are the new state: no need to build the others
            decays = _last_decays if length <= _KEPT_LENGTHS else _last_decays.__wrapped__
            after = self._after(counts, tokens, *decays(self.log_decay, length, tokens.device))
            return after[:, None], after.sum(1, keepdim=True), after
        weights, carry, total = self._decays(counts, length)
        seen = nn.functional.one_hot(tokens.long(), vocab_size).to(torch.float64)
        at = carry[None, :, None] * counts[:, None, :].double() + torch.einsum("ts,bsv->btv", weights, seen)
        return at.float(), total, self._after(counts, tokens, weights[-1], carry[-1])

    def target_probabilities(
        self, counts: torch.Tensor | None, tokens: torch.Tensor, targets: torch.Tensor, vocab_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """p_cache(targets[b, t]) after tokens up to [b, t] (batch, time) without the full distributions,
        the totals of the counts there (batch, time), and the counts after the tokens."""
        counts = self._start(counts, tokens, vocab_size)
        weights, carry, total = self._decays(counts, tokens.shape[1])
        same = (tokens[:, None, :] == targets[:, :, None]).to(torch.float64)  # [b, t, s]: piece s is target t
        found = carry[None, :] * counts.gather(1, targets.long()).double() + (weights[None] * same).sum(-1)
        return found / total.clamp_min(1e-300), total, self._after(counts, tokens, weights[-1], carry[-1])


def renormalised(weights: Array, shares: Array) -> Array:
    """`weights` (..., components) where the caches (the last `shares.shape[-1]` components) hold `shares`
    (..., caches) of what a long text gives them (0 where empty, 1 once full): each cache's weight times its
    share, what that takes away given to the models before them in proportion to theirs. A cache that has
    read little stands in for the document that much less; the models know what any text holds. Tensors
    (fitting) or numpy arrays (prediction, where the weights are looked up), a new one of the same kind."""
    caches = shares.shape[-1]
    out = weights * 1
    out[..., -caches:] *= shares
    models = weights[..., :-caches]
    freed = (weights[..., -caches:] - out[..., -caches:]).sum(-1)[..., None]
    out[..., :-caches] *= 1 + freed / models.sum(-1)[..., None]
    return out


def mix(weights: torch.Tensor, parts: list[torch.Tensor], shares: torch.Tensor | None) -> torch.Tensor:
    """Σ_c weights[..., c] parts[c], the caches (the last parts, if their `shares` are given) holding their
    shares of their weights (see `renormalised`)."""
    if shares is not None:
        weights = renormalised(weights, shares)
    return sum(weights[..., c] * part for c, part in enumerate(parts))


def _mixed(
    logits: torch.Tensor,
    unigram: torch.Tensor,
    followers: tuple[np.ndarray, ...],
    caches: list[torch.Tensor],
    weights: np.ndarray,
) -> torch.Tensor:
    """Σ_c weights[..., c] p_c (batch, steps, vocab) for `weights` (batch, steps, components): in place
    on fresh tensors, one pass over (batch, steps, vocab) each, as prediction does at every step;
    the n-gram's part without its dense distributions, its `unigram` scaled (one pass) and then the
    `followers` its orders add (see `NgramLM.followers`), weighted in numpy before they are tensors."""
    scale, rows, places, values = followers
    ngram = weights[..., 1]
    weights, scale, values, places = (
        torch.from_numpy(part).to(logits.device)
        for part in (
            weights.astype(np.float32)[..., None],
            (ngram * scale.reshape(ngram.shape)).astype(np.float32)[..., None],
            (values * ngram.reshape(-1)[rows]).astype(np.float32),
            places,
        )
    )
    mixed = torch.softmax(logits.float(), dim=-1).mul_(weights[:, :, 0])
    mixed.addcmul_(unigram, scale)
    mixed.view(-1).index_add_(0, places, values)
    for c, part in enumerate(caches, 2):
        mixed.addcmul_(part, weights[:, :, c])
    return mixed


def neural_and_ngram_targets(
    neural: nn.Module, ngram: NgramLM, tokens: torch.Tensor, targets: torch.Tensor, neural_state: Any, ngram_state: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Any, Any]:
    """p_neural and p_ngram of the targets (batch, time) float64, the n-gram's bucket of each
    position (batch, time) in numpy, the neural model's features (batch, time, dim), and both
    models' states after the tokens."""
    features, neural_state = neural.features(tokens, neural_state, False)
    logprobs = neural.decode_targets(features, targets)
    windows, _, ngram_state = ngram.histories(tokens, ngram_state, last_only=False)
    found = ngram.contexts_found(windows)
    ngram_p = ngram.probabilities(windows, targets.cpu().numpy().reshape(-1), found)
    ngram_p = torch.from_numpy(ngram_p).reshape(targets.shape).to(tokens.device)
    buckets = ngram.context_buckets(found).reshape(targets.shape)
    return logprobs.double().exp(), ngram_p, buckets, features, neural_state, ngram_state


class _Weights:
    """A mixture's weights (see `MixtureLM`), checked, and looked up in numpy (where the n-gram's buckets
    are), a few numbers per place: `plain` by n-gram bucket, `with_caches` for the caches' places."""

    def __init__(
        self,
        weights: torch.Tensor,
        cache_weights: torch.Tensor,
        confidence: torch.Tensor | None,
        places: torch.Tensor | None,
        neural_cache: bool,
        ngram_buckets: int,
        vocab_size: int,
    ):
        if confidence is not None and (
            not neural_cache
            or confidence.dim() != 1
            or not torch.all((confidence > 0) & (confidence < 1))
            or not torch.all(confidence[1:] > confidence[:-1])
        ):
            raise ValueError("the confidence edges must increase within (0, 1), and need a neural cache")
        if places is not None and (
            confidence is None or places.shape != (vocab_size,) or not torch.all((places >= 0) & (places < len(PLACES)))
        ):
            raise ValueError(
                f"the places must be one of {len(PLACES)} kinds for each of the {vocab_size} pieces, and need "
                f"confidence edges; got {tuple(places.shape)}"
            )
        buckets = (
            ngram_buckets if confidence is None else (len(confidence) + 1) * (1 if places is None else len(PLACES))
        )
        components = 4 if neural_cache else 3
        if weights.shape != (ngram_buckets, 2) or cache_weights.shape != (buckets, components):
            raise ValueError(
                f"the mixture's weights must be ({ngram_buckets}, 2) and ({buckets}, {components}); "
                f"got {tuple(weights.shape)} and {tuple(cache_weights.shape)}"
            )
        self.plain, self.neural_cache = weights.cpu().numpy(), neural_cache
        self.edges = None if confidence is None else confidence.cpu().numpy()
        self.table = cache_weights.cpu().numpy()

    def with_caches(
        self,
        buckets: np.ndarray | None,
        confidence: np.ndarray | None,
        shares: list[np.ndarray],
        places: np.ndarray | None,
    ) -> np.ndarray:
        """The weights with the caches (float64, a new array) at places in n-gram `buckets` where the
        neural cache's confidence is `confidence`, each cache's share is in `shares` (see `renormalised`) and
        the place kind is `places` (None where they do not count)."""
        if self.neural_cache and self.edges is not None:
            buckets = np.searchsorted(self.edges, confidence, side="right")
            buckets = buckets if places is None else _by_place(buckets, places)
        return renormalised(self.table[buckets], np.stack(np.broadcast_arrays(*shares), -1))


def _sureness(cache: NeuralCache, peaks: Peaks, theta: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The neural cache's confidence (its peak times its share) and share at each place, in numpy, of `peaks`
    (of its `theta`th θ)."""
    share = cache.share(peaks)
    confidence = peaks.peak * share
    if theta is not None:
        share, confidence = share.expand_as(confidence)[theta], confidence[theta]
    return confidence.cpu().numpy(), share.cpu().numpy()


def _place_kinds(places: torch.Tensor | None, tokens: torch.Tensor, last_only: bool) -> np.ndarray | None:
    """The place kind (`places` of each piece) after each of `tokens` (batch, time or 1), where the weights
    depend on it (else None)."""
    if places is None:
        return None
    return places[tokens[:, -1:] if last_only else tokens].cpu().numpy()


class MixtureLM(nn.Module):
    """The neural model, the n-gram and (with `use_cache`) the caches, mixed; see the module docstring.

    `weights` (n-gram buckets, 2) mix the neural model and the n-gram alone; `cache_weights`
    (confidence buckets × places, 4) mix them with both caches, by the neural cache's peak cut at
    `confidence` (increasing, in (0, 1)) and, with `places` (vocabulary,), the place kind each piece
    leaves when read (see `places_of`; row bucket × len(PLACES) + place). A model directory from before
    the places has none (rows: confidence buckets); one from before the confidence buckets no
    `confidence` and `cache_weights` (n-gram buckets, 4); one from before the neural cache no
    `neural_cache` either and (n-gram buckets, 3), the unigram cache alone. Without `adapts` it reads
    against its caches but not into them (see `writer`)."""

    gives_logprobs = True  # `forward` gives log P itself, not logits still to be normalised

    def __init__(
        self,
        neural: nn.Module,
        ngram: NgramLM,
        weights: torch.Tensor,
        cache_weights: torch.Tensor,
        half_life: float,
        neural_cache: NeuralCache | None = None,
        confidence: torch.Tensor | None = None,
        places: torch.Tensor | None = None,
        use_cache: bool = True,
        adapts: bool = True,
    ):
        super().__init__()
        self.neural, self.ngram, self.vocab_size = neural, ngram, ngram.vocab_size
        self.register_buffer("weights", weights.to(torch.float64))
        self.register_buffer("cache_weights", cache_weights.to(torch.float64))
        self.register_buffer("confidence", None if confidence is None else confidence.float())
        self.register_buffer("places", None if places is None else places.long())
        self.register_buffer("_unigram", torch.from_numpy(ngram.unigram).float(), persistent=False)
        self._weights = _Weights(
            self.weights,
            self.cache_weights,
            self.confidence,
            self.places,
            neural_cache is not None,
            ngram.buckets,
            ngram.vocab_size,
        )
        self.cache = UnigramCache(half_life)
        self.neural_cache = neural_cache
        self.use_cache, self.adapts = use_cache, adapts
        self.training = False  # nothing here trains (a new module starts in training mode); its parts keep theirs

    def replaced(
        self, *, ngram: NgramLM | None = None, use_cache: bool | None = None, adapts: bool | None = None
    ) -> MixtureLM:
        """The same mixture, with its weights, but with `ngram` (the same order's, counted over more text),
        `use_cache` or `adapts` in place of its own."""
        ngram = self.ngram if ngram is None else ngram
        parts = (self.neural, ngram, self.weights, self.cache_weights, self.cache.half_life, self.neural_cache)
        use_cache = self.use_cache if use_cache is None else use_cache
        return MixtureLM(*parts, self.confidence, self.places, use_cache, self.adapts if adapts is None else adapts)

    def writer(self) -> MixtureLM:
        """The mixture as generation steps it over the pieces it writes: its caches keep to the text it was
        given, not what the sampler makes of it (which fed loops back). It steps the last place only."""
        return self.replaced(adapts=False)

    @property
    def _remembers(self) -> bool:
        """Whether the neural cache is used: the state then holds its memory."""
        return self.use_cache and self.neural_cache is not None

    def _neural(
        self, tokens: torch.Tensor, state: Any, last_only: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        """The neural model's logits after each of `tokens` (or the last), its features after each
        where the neural cache needs them (else None), and its state."""
        if not self._remembers:
            logits, state = self.neural(tokens, state, last_only)
            return logits, None, state
        features, state = self.neural.features(tokens, state, False)
        return self.neural.decode(features[:, -1:] if last_only else features), features, state

    def forward(
        self, tokens: torch.Tensor, state: tuple | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, tuple]:
        """log P(next piece) (batch, time or 1, vocab) after each of `tokens` (batch, time), and the state."""
        neural_state, ngram_state, counts, memory = state if state is not None else (None,) * 4
        logits, features, neural_state = self._neural(tokens, neural_state, last_only)
        windows, steps, ngram_state = self.ngram.histories(tokens, ngram_state, last_only)
        found, shape = self.ngram.contexts_found(windows), (tokens.shape[0], steps)
        buckets = None  # the n-gram's, which the weights by the neural cache's confidence do not need
        if not (self.use_cache and self.confidence is not None):
            buckets = self.ngram.context_buckets(found).reshape(shape)
        caches = []  # each cache's distribution, or the unigram cache's counts (batch, steps, vocab)
        if self.use_cache:
            if not (self.adapts or last_only):
                raise ValueError("a mixture that does not adapt to what it reads steps its last place only")
            kept, read = (counts, memory), tokens if self.adapts else tokens[:, :0]
            counted, total, counts = self.cache.distributions(counts, read, self.vocab_size, last_only)
            total = total.cpu().numpy()
            caches, sure, shares = [counted], None, [self.cache.share(total)]
            if self._remembers:
                remembered, peaks, memory = self.neural_cache.distributions(
                    memory if self.adapts else memory.unread(), features, tokens, self.vocab_size, last_only
                )
                caches, (sure, share) = caches + [remembered], _sureness(self.neural_cache, peaks)
                shares.append(share)
            counts, memory = (counts, memory) if self.adapts else kept
            weights = self._weights.with_caches(buckets, sure, shares, _place_kinds(self.places, tokens, last_only))
            weights[..., 2] /= total  # the unigram cache's weight per count: its counts (total >= 1) need no dividing
        else:
            weights, counts = self._weights.plain[buckets], tokens.new_zeros(tokens.shape[0], 0, dtype=torch.float32)
        mixed = _mixed(logits, self._unigram, self.ngram.followers(found), caches, weights)
        return mixed.log_(), (neural_state, ngram_state, counts, memory)

    def target_logprobs(
        self, tokens: torch.Tensor, targets: torch.Tensor, state: tuple | None = None
    ) -> tuple[torch.Tensor, tuple]:
        """log P(targets[b, t] | tokens up to [b, t]) (batch, time) without the full distributions."""
        neural_state, ngram_state, counts, memory = state if state is not None else (None,) * 4
        neural_p, ngram_p, buckets, features, neural_state, ngram_state = neural_and_ngram_targets(
            self.neural, self.ngram, tokens, targets, neural_state, ngram_state
        )
        parts = [neural_p, ngram_p]
        if self.use_cache:
            cache_p, total, counts = self.cache.target_probabilities(counts, tokens, targets, self.vocab_size)
            parts, sure, shares = parts + [cache_p], None, [self.cache.share(total).cpu().numpy()]
            if self._remembers:
                remembered, peaks, memory = self.neural_cache.target_probabilities(memory, features, tokens, targets)
                parts, (sure, share) = parts + [remembered[0]], _sureness(self.neural_cache, peaks, theta=0)
                shares.append(share)
            weights = self._weights.with_caches(buckets, sure, shares, _place_kinds(self.places, tokens, False))
        else:
            weights, counts = self._weights.plain[buckets], tokens.new_zeros(tokens.shape[0], 0, dtype=torch.float32)
        mixed = mix(torch.from_numpy(weights).to(tokens.device), parts, None)
        return torch.log(mixed).float(), (neural_state, ngram_state, counts, memory)

    def select_state(self, state: tuple, rows: torch.Tensor) -> tuple:
        neural_state, ngram_state, counts, memory = state
        return (
            self.neural.select_state(neural_state, rows),
            self.ngram.select_state(ngram_state, rows),
            counts.index_select(0, rows),
            None if memory is None else memory.select(rows),
        )

    def join_states(self, parts: list[tuple]) -> tuple:
        neural, ngram, counts, memories = zip(*parts)
        memory = None if memories[0] is None else Memory.joined(list(memories))
        return self.neural.join_states(list(neural)), self.ngram.join_states(list(ngram)), torch.cat(counts), memory


def summary_of(model: MixtureLM) -> dict[str, Any]:
    """The caches' half-life and sharpness and each component's weight, averaged over the buckets (each
    bucket counting once, however many places fall in it)."""
    return {
        "half_life": model.cache.half_life,
        "theta": None if model.neural_cache is None else model.neural_cache.theta,
        "mixture": dict(zip(NAMES, model.weights.mean(0).tolist())),
        "mixture+cache": dict(zip(NAMES, model.cache_weights.mean(0).tolist())),
    }


class _Recorder(nn.Module):
    """A model for `stream_loss` that scores nothing and keeps, for each validation piece, each
    component's probability of it (a unigram cache per half-life, a neural cache per θ), the
    n-gram's bucket, each unigram cache's share of its weight there (see `UnigramCache.share`), and each
    neural cache's `Peaks`: see `columns`."""

    def __init__(self, neural: nn.Module, ngram: NgramLM, caches: list[UnigramCache], thetas: tuple[float, ...]):
        super().__init__()
        self.neural, self.ngram, self.caches = neural, ngram, caches
        # One memory, every θ of `thetas` scored from it at once (the cache's own θ is not used).
        self.neural_cache, self.thetas = NeuralCache(thetas[0]), thetas
        self.rows: list[tuple[torch.Tensor, ...]] = []

    def target_logprobs(
        self, tokens: torch.Tensor, targets: torch.Tensor, state: tuple | None = None
    ) -> tuple[torch.Tensor, tuple]:
        neural_state, ngram_state, counts, memory = state or (None, None, (None,) * len(self.caches), None)
        neural_p, ngram_p, buckets, features, neural_state, ngram_state = neural_and_ngram_targets(
            self.neural, self.ngram, tokens, targets, neural_state, ngram_state
        )
        cache_p, totals, after = zip(
            *(
                cache.target_probabilities(c, tokens, targets, self.ngram.vocab_size)
                for cache, c in zip(self.caches, counts)
            )
        )
        remembered, peaks, memory = self.neural_cache.target_probabilities(
            memory, features, tokens, targets, self.thetas
        )
        shares = torch.stack([cache.share(total) for cache, total in zip(self.caches, totals)])
        kept = (neural_p, ngram_p, torch.from_numpy(buckets), torch.stack(cache_p), shares)
        kept += (remembered, peaks.peak, peaks.seen, peaks.log_mean)
        self.rows.append(tuple(t.flatten(-2).cpu() for t in kept))
        return torch.zeros(targets.shape, device=tokens.device), (neural_state, ngram_state, after, memory)

    def columns(self) -> list[torch.Tensor]:
        """For each validation piece: p_neural, p_ngram, the n-gram's bucket, (pieces,) each; p_cache and
        its share, (half-lives, pieces) each; p_neural_cache (θs, pieces); and its `Peaks`'
        peak (θs, pieces), seen (pieces,) and log_mean (θs, pieces)."""
        return [torch.cat(column, -1) for column in zip(*self.rows)]


def _by_place(confident: torch.Tensor | np.ndarray, place: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """The row of the cache weights for a confidence bucket and a place: each bucket's rows, one a place."""
    return confident * len(PLACES) + place


def places_of(tokenizer: Tokenizer) -> torch.Tensor:
    """The place kind (an index into PLACES) that reading each piece leaves, (vocabulary,)."""
    in_word, line_break, elsewhere = range(len(PLACES))
    places = np.where(tokenizer.starts_word | tokenizer.extends_word, in_word, elsewhere)
    places[EOS_ID] = line_break
    return torch.from_numpy(places)


def _floored(logits: torch.Tensor) -> torch.Tensor:
    """Weights in [WEIGHT_FLOOR, 1] summing to 1 over the last dimension."""
    return WEIGHT_FLOOR + (1 - logits.shape[-1] * WEIGHT_FLOOR) * torch.softmax(logits, -1)


def _nlls(
    weights: torch.Tensor, probabilities: torch.Tensor, buckets: torch.Tensor, shares: torch.Tensor | None
) -> torch.Tensor:
    """The NLL of each piece (pieces,) under `weights` (see `fit_weights`)."""
    return -torch.log(mix(weights[buckets], list(probabilities.T), shares))


def fit_weights(
    probabilities: torch.Tensor, buckets: torch.Tensor, count: int, shares: torch.Tensor | None = None
) -> tuple[torch.Tensor, float]:
    """The weights (count, components) that minimise the mean NLL of pieces whose components gave
    them `probabilities` (pieces, components) in `buckets` (pieces,), the caches holding their `shares`
    (pieces, caches) of their weights (see `renormalised`): first one set shared by all buckets,
    then each bucket's own from there; a bucket with fewer than MIN_BUCKET_PIECES pieces keeps the
    shared set; none below WEIGHT_FLOOR. Returns them and the mean NLL they reach."""
    components = probabilities.shape[1]

    def minimise(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        logits = logits.clone().requires_grad_(True)
        optimiser = torch.optim.LBFGS(
            [logits], lr=1, max_iter=100, tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe"
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = _nlls(_floored(logits), probabilities, rows, shares).mean()
            loss.backward()
            return loss

        optimiser.step(closure)
        return logits.detach()

    shared = minimise(torch.zeros(1, components, dtype=torch.float64), torch.zeros_like(buckets))
    own = minimise(shared.expand(count, components), buckets)
    rare = torch.bincount(buckets, minlength=count) < MIN_BUCKET_PIECES
    weights = _floored(torch.where(rare[:, None], shared, own))
    return weights, _nlls(weights, probabilities, buckets, shares).mean().item()


def held_out_nll(
    probabilities: torch.Tensor, buckets: torch.Tensor, count: int, shares: torch.Tensor | None = None
) -> float:
    """The mean NLL of weights fitted as `fit_weights` does, each half of the pieces scored by the
    weights fitted on the other: a fair comparison of bucketings with different numbers of buckets,
    which the NLL of the pieces fitted on is not (more buckets always fit those better)."""
    halves = (slice(0, len(buckets) // 2), slice(len(buckets) // 2, None))
    folds = [(probabilities[half], buckets[half], None if shares is None else shares[half]) for half in halves]
    total = 0.0
    for (fitted, fitted_buckets, fitted_shares), scored in (folds, folds[::-1]):
        weights, _ = fit_weights(fitted, fitted_buckets, count, fitted_shares)
        total += _nlls(weights, *scored).sum().item()
    return total / len(buckets)


def _bucketings(
    buckets: torch.Tensor, count: int, confidence: torch.Tensor, place: torch.Tensor, places: torch.Tensor
) -> list[tuple[str, torch.Tensor | None, torch.Tensor | None, torch.Tensor, int]]:
    """The ways `fit` may bucket the cache weights, each as (name, confidence edges, places, each validation
    piece's bucket, the number of buckets): by the n-gram's `buckets`, by the neural cache's `confidence`,
    and by that and the `place` before each piece (`places` of each piece read)."""
    edges = torch.tensor(CONFIDENCE_EDGES)
    sure, confident = torch.bucketize(confidence, edges.to(confidence.dtype), right=True), len(edges) + 1
    return [
        ("n-gram", None, None, buckets, count),
        ("confidence", edges, None, sure, confident),
        ("confidence and place", edges, places, _by_place(sure, place), confident * len(PLACES)),
    ]


def fit(
    neural: nn.Module,
    ngram: NgramLM,
    tokenizer: Tokenizer,
    valid_ids: np.ndarray,
    *,
    seq_len: int,
    device: torch.device,
) -> tuple[MixtureLM, dict[str, Any]]:
    """The mixture of `neural` and `ngram`, its weights and caches fitted on `valid_ids`, and a report:
    the n-gram's order, the half-life and θ chosen, and each component's and mixture's validation
    loss per piece and word perplexity. The half-life is chosen first (with the unigram cache
    alone), then θ and the bucketing of the weights with both caches (the n-gram's buckets, the neural
    cache's confidence, or its confidence and the place), by `held_out_nll`."""
    caches = [UnigramCache(half_life) for half_life in HALF_LIVES]
    recorder = _Recorder(neural, ngram, caches, THETAS).eval()
    # One stream, as evaluate and a session read a document: the caches see all the text before each
    # piece, not a sixteenth of it from a cold start, so their weights are fitted for what they will see.
    scored = stream_loss(recorder, tokenizer, valid_ids, seq_len=seq_len, device=device, streams=1)
    neural_p, ngram_p, buckets, cache_p, cache_share, remembered, peak, seen, log_mean = recorder.columns()
    weights, mixture_loss = fit_weights(torch.stack([neural_p, ngram_p], 1), buckets, ngram.buckets)
    fits = [
        fit_weights(torch.stack([neural_p, ngram_p, p], 1), buckets, ngram.buckets, share[:, None])
        for p, share in zip(cache_p, cache_share)
    ]
    best = min(range(len(fits)), key=lambda i: fits[i][1])
    unigram_loss = fits[best][1]
    places = places_of(tokenizer)
    place = places[torch.from_numpy(np.asarray(valid_ids[: len(neural_p)], dtype=np.int64))]  # after each input
    candidates = []  # (the neural cache, the bucketing's name, its edges and places or None, fit_weights's arguments)
    for i, theta in enumerate(THETAS):
        peaks = Peaks(peak[i], seen, log_mean[i])
        cache = NeuralCache(theta, typical=typical_weight(peaks))
        probabilities = torch.stack([neural_p, ngram_p, cache_p[best], remembered[i]], 1)
        # Where the neural cache holds less than enough entries' weight, it has that share of its weight.
        share = cache.share(peaks)
        shares, sure = torch.stack([cache_share[best], share], 1), peaks.peak * share
        for name, edges, kinds, rows, count in _bucketings(buckets, ngram.buckets, sure, place, places):
            candidates.append((cache, name, edges, kinds, (probabilities, rows, count, shares)))
    cache, bucketing, confidence, by_place, arguments = min(candidates, key=lambda c: held_out_nll(*c[-1]))
    cache_weights, cache_loss = fit_weights(*arguments)
    model = MixtureLM(neural, ngram, weights, cache_weights, HALF_LIVES[best], cache, confidence, by_place)
    losses = {
        "neural": -neural_p.log().mean().item(),
        "ngram": -ngram_p.log().mean().item(),
        "mixture": mixture_loss,
        "mixture+unigram cache": unigram_loss,
        "mixture+cache": cache_loss,
    }
    per_word = scored.tokens / max(scored.words, 1)
    return model, {
        "order": ngram.order,
        "half_life": HALF_LIVES[best],
        "theta": cache.theta,
        "cache_buckets": bucketing,
        "valid_loss": losses,
        "valid_word_perplexity": {name: math.exp(loss * per_word) for name, loss in losses.items()},
    }
