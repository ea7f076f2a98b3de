"""How well a model predicts a text: negative log-likelihood, token and word-level perplexity.

Word-level perplexity is exp(total NLL / whitespace-separated words): it does not depend on how
the text was cut into tokens, so models with different tokenizers compare fairly. Training's
validation and `nextword evaluate` share this one implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .errors import ConfigError, CorpusError
from .lexicon import Words
from .model import LanguageModel
from .targets import Target, read_targets, targets_path
from .tokenizer import EOS_ID, Tokenizer

if TYPE_CHECKING:
    from .predict import Predictor


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
def stream_loss(model: LanguageModel, tokenizer: Tokenizer, ids: np.ndarray, *, seq_len: int,
                device: torch.device, streams: int = 16, autocast: bool = False) -> LossTotals:
    """Score every token of `ids` given all tokens before it, in `streams` parallel slices.

    Each slice starts with an empty state, and the last (len - 1) mod streams tokens are not
    scored; `streams=1` scores every token after the first.
    """
    streams = max(1, min(streams, (len(ids) - 1) // max(seq_len, 1)))
    stream_len = (len(ids) - 1) // streams
    used = streams * stream_len
    inputs = ids[:used].reshape(streams, stream_len)
    targets = ids[1:used + 1].reshape(streams, stream_len)
    was_training = model.training
    model.eval()
    state, nll = None, torch.zeros((), dtype=torch.float64, device=device)
    words = chars = 0
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
    model.train(was_training)
    return LossTotals(nll.item(), used, words, chars)


@dataclass(frozen=True)
class WordMetrics:
    """How useful the word predictions are, over the words of a text read left to right."""

    words: int
    hits: dict[int, int]  # k -> words that were among the top k next-word predictions
    keys: int  # keys pressed typing every word (and its space) with suggestions
    chars: int  # keys pressed typing them without help: each word and its space

    def accuracy(self, k: int) -> float:
        return self.hits[k] / self.words if self.words else math.nan

    @property
    def keystroke_savings(self) -> float:
        return 1 - self.keys / self.chars if self.chars else math.nan


def word_metrics(predictor: "Predictor", ids: np.ndarray, *, ks: Sequence[int] = (1, 5),
                 suggestions: int = 0, max_words: int | None = None,
                 on_word: Callable[[int, int], None] | None = None) -> WordMetrics:
    """Top-k next-word accuracy and, with `suggestions` > 0, keystroke savings over encoded text.

    Each word is predicted from everything before it (after a leading line break, as `predict` reads
    a text): a hit at k when it is among the k words `predict` would show. For keystrokes, a person
    types the word letter by letter and accepts it (one key, space included) as soon as it is among
    the top `suggestions` completions of what was typed; a word never suggested costs its letters and
    a space. `max_words` stops after that many words; `on_word(done, total)` reports progress.
    """
    return read_text(predictor, ids, scored=0, ks=ks, suggestions=suggestions, max_words=max_words,
                     on_word=on_word)[1]


@torch.inference_mode()  # the searches too: no autograd graph, and the neural cache's memory is made in it
def read_text(predictor: "Predictor", ids: np.ndarray, *, scored: int, ks: Sequence[int] = (1, 5),
              suggestions: int = 0, max_words: int | None = None,
              on_word: Callable[[int, int], None] | None = None) -> tuple[float, WordMetrics]:
    """The summed NLL of the first `scored` tokens of `ids` and the word metrics (see `word_metrics`), from
    one reading of the text: the word searches start from the states that reading passes through.

    Every token is scored, the first one too, given a leading line break. Each word's own
    probability comes with the reading; the searches, batched over many words (one model step per
    search depth for all of them), follow only what could outrank it (see `_search_batch`).
    """
    if max_words is not None and max_words < 1:
        raise ConfigError(f"option 'max_words' must be >= 1; got {max_words}")
    if suggestions < 0:
        raise ConfigError(f"option 'suggestions' must be >= 0 (0 skips keystroke savings); got {suggestions}")
    tokenizer = predictor.tokenizer
    ids = np.asarray(ids)
    targets = tokenizer.words_at(ids, limit=max_words)
    ends = [_word_end(tokenizer, ids, position) for position, _ in targets]
    reading = _Reading(predictor, ids, [position for position, _ in targets],
                       max(scored, ends[-1] + 1 if ends else 0), full_until=ends[-1] + 1 if ends else 0)
    tally = _Tally(ks, suggestions)
    document = predictor.searcher.document()  # the words read so far count as lexicon words, as in predict
    if document is not None:
        document.add_words(targets)
    group = max(16, min(1024, _SCORES_PER_GROUP // (max(4 * max(*ks, suggestions), 16) * tokenizer.vocab_size)))
    waiting: list[tuple[int, torch.Tensor, Any]] = []

    def score(places: list[tuple[int, torch.Tensor, Any]]) -> None:
        words = [targets[j][1] for j, _, _ in places]
        floors = [reading.word_logprob(targets[j][0], ends[j]) for j, _, _ in places]
        allowed = [predictor.searcher.allowed(document, before=targets[j][0]) for j, _, _ in places]
        tally.add(predictor, words, floors, allowed, torch.stack([lp for _, lp, _ in places]),
                  _join_all(predictor.model, [state for _, _, state in places]))
        if on_word:
            on_word(tally.words, len(targets))

    for place in reading:
        waiting.append(place)
        # The reading has now passed the end of every word before this one: their probabilities are known.
        if len(waiting) > group:
            score(waiting[:group])
            waiting = waiting[group:]
    if waiting:
        score(waiting)
    return reading.nll(scored), tally.metrics()


def _kth_best(found: dict[str, float], k: int) -> float:
    """The log-probability a word must beat to be among the k best in `found`."""
    return sorted(found.values(), reverse=True)[k - 1] if len(found) >= k else -np.inf


_SCORES_PER_GROUP = 8_000_000  # floats in one search step's score matrix (beams × vocabulary), about 32 MB


def _word_end(tokenizer: Tokenizer, ids: np.ndarray, position: int) -> int:
    """Where the word starting at `position` ends: the first piece after it that does not carry it on."""
    end = position + 1
    while end < len(ids) and tokenizer.extends_word[ids[end]]:
        end += 1
    return end


class _Reading:
    """One pass over `ids` after a leading line break, every token scored given all before it.

    Iterating gives (index, next-piece log-probabilities, state) at each of `positions`, in order,
    as the pass reaches it. Until `full_until` the pass keeps each token's log-probability and the
    probability that a word ends there, so that `word_logprob` is known for the words read so far.
    """

    def __init__(self, predictor: "Predictor", ids: np.ndarray, positions: list[int], length: int,
                 full_until: int):
        self.predictor, self.ids, self.positions = predictor, ids, positions
        self.length, self.full_until = length, full_until  # predictions made: of ids[0 .. length - 1]
        # The piece after the text, for the prediction made after its last token: never scored.
        self.targets = np.concatenate([ids, [EOS_ID]]).astype(np.int64)
        self.token_logprobs = np.zeros(length)
        self.end_mask = torch.from_numpy(predictor.tokenizer.ends_word.astype(np.float32)).to(predictor.device)
        self.word_ends = np.zeros(length)  # log P(a word ends), before each piece (until full_until)

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, Any]]:  # in read_text's inference mode
        model = self.predictor.model
        inputs = np.concatenate([[EOS_ID], self.ids]).astype(np.int64)
        cuts = [position + 1 for position in self.positions]  # a word's first piece is predicted last
        state, start, next_cut = None, 0, 0
        was_training = model.training
        model.eval()
        try:
            while start < self.length:
                stop = min(self.length, start + 256)
                x = torch.from_numpy(inputs[None, start:stop]).to(self.predictor.device)
                y = torch.from_numpy(self.targets[None, start:stop]).to(self.predictor.device)
                if start >= self.full_until:  # past the last word: only the loss, without the full distributions
                    logprobs, state = model.target_logprobs(x, y, state)
                    self.token_logprobs[start:stop] = logprobs[0].double().cpu().numpy()
                    start = stop
                    continue
                here = []  # the cuts inside this stretch
                while next_cut < len(cuts) and cuts[next_cut] <= stop:
                    here.append(cuts[next_cut])
                    next_cut += 1
                logprobs, states = self._read_stretch(x, state, [cut - start for cut in here])
                state = states[-1]
                self.token_logprobs[start:stop] = logprobs.gather(1, y.T)[:, 0].double().cpu().numpy()
                # log P(a word ends before each piece), from the probabilities of the pieces that end one.
                self.word_ends[start:stop] = torch.log(logprobs.exp() @ self.end_mask).double().cpu().numpy()
                for offset, (cut, cut_state) in enumerate(zip(here, states)):
                    yield next_cut - len(here) + offset, logprobs[cut - start - 1], cut_state
                start = stop
        finally:
            model.train(was_training)

    def _read_stretch(self, x: torch.Tensor, state: Any, cuts: list[int]) -> tuple[torch.Tensor, list[Any]]:
        """Log-probabilities (time, vocab) after each token of `x` (1, time), and the state at each of `cuts`
        (offsets into `x`) and at its end. The recurrent part runs from cut to cut; the output layer, the
        main cost with a large vocabulary, once for the whole stretch."""
        model, states, parts, at = self.predictor.model, [], [], 0
        bounds = [cut for cut in cuts if cut < x.shape[1]] + [x.shape[1]]
        if not hasattr(model, "features"):  # no separate output layer (the n-gram model): whole steps
            for bound in bounds:
                logits, state = model(x[:, at:bound], state)
                parts.append(logits[0])
                states.append(state)
                at = bound
        else:
            for bound in bounds:
                features, state = model.features(x[:, at:bound], state)
                parts.append(features[0])
                states.append(state)
                at = bound
            parts = [model.decoder(torch.cat(parts))]
        if len(bounds) == len(cuts):  # the last cut is the stretch's end: its state is already there
            states.append(states[-1])
        return torch.log_softmax(torch.cat(parts).float(), dim=-1), states

    def nll(self, tokens: int) -> float:
        """The summed negative log-likelihood of the first `tokens` tokens."""
        return -float(self.token_logprobs[:tokens].sum())

    def word_logprob(self, position: int, end: int) -> float:
        """log P(the pieces ids[position:end] come next, then a word boundary), as read."""
        return float(self.token_logprobs[position:end].sum() + self.word_ends[end])


def _join_all(model: Any, states: list[Any]) -> Any:
    """The states of many single-row states, in order, as one state (joined pairwise, a tree)."""
    while len(states) > 1:
        states = [model.join_states(states[i], states[i + 1]) if i + 1 < len(states) else states[i]
                  for i in range(0, len(states), 2)]
    return states[0]


class _Tally:
    """Hits and keystrokes, added up a batch of words at a time."""

    def __init__(self, ks: Sequence[int], suggestions: int):
        self.ks, self.suggestions = tuple(ks), suggestions
        self.words, self.hits, self.keys, self.chars = 0, {k: 0 for k in ks}, 0, 0

    def add(self, predictor: "Predictor", words: list[str], floors: list[float], allowed: list[Words | None],
            logprobs: torch.Tensor, state: Any) -> None:
        """Score `words`, each predicted from its row of `logprobs` (rows, vocab) and `state`, among the
        words `allowed` there."""
        suggestions = self.suggestions
        # The word's place among `predict`'s words; beyond the longest list asked for is as good as absent.
        shown = max(*self.ks, suggestions)
        queries = [_Query(row, "", word, floor, allowed[row]) for row, (word, floor) in enumerate(zip(words, floors))]
        found = _search_batch(predictor, logprobs, state, queries, shown)
        ranks = [_rank(result, word) for result, word in zip(found, words)]
        for k in self.ks:
            self.hits[k] += sum(int(rank < k) for rank in ranks)
        self.words += len(words)
        if not suggestions:
            return
        keys = [1 if rank < suggestions else len(word) + 1 for rank, word in zip(ranks, words)]
        typing = [row for row, rank in enumerate(ranks) if rank >= suggestions]
        typed = 1
        # Letter by letter, all words still being typed together; typing the whole word costs the same
        # (its letters and a key) whether it is then offered or not, so the last letter needs no search.
        while typing := [row for row in typing if typed < len(words[row])]:
            queries = [_Query(row, words[row][:typed], words[row], floors[row], allowed[row]) for row in typing]
            found = _search_batch(predictor, logprobs, state, queries, suggestions)
            offered = {query.row for query, result in zip(queries, found) if _rank(result, query.target) < suggestions}
            for row in offered:
                keys[row] = typed + 1
            typing = [row for row in typing if row not in offered]
            typed += 1
        self.keys += sum(keys)
        self.chars += sum(len(word) + 1 for word in words)

    def metrics(self) -> WordMetrics:
        return WordMetrics(self.words, self.hits, self.keys, self.chars)


def _rank(found: dict[str, float], word: str) -> float:
    """How many found words beat `word` (infinite when it was not found)."""
    if word not in found:
        return math.inf
    mine = found[word]
    return sum(logprob > mine for other, logprob in found.items() if other != word)


@dataclass(frozen=True)
class _Query:
    """One word search of a batch: the completions of `partial` after row `row` that are `allowed` (see
    `WordSearcher.allowed`), for `target`, whose own pieces give it the log-probability `floor`."""

    row: int
    partial: str
    target: str
    floor: float
    allowed: Words | None


def _search_batch(predictor: "Predictor", logprobs: torch.Tensor, state: Any, queries: list[_Query],
                  k: int) -> list[dict[str, float]]:
    """For each query, the words that `predictor`'s search for the k best completions of its `partial`
    finds above its `floor` (with their log-probabilities): all queries at once, one model step per
    search depth and stage for all their beams together.

    It is `search._Search.run` step for step (the same beams, widths, pruning and two-stage
    advance), plus two cuts that leave the target's place among the k best unchanged: no beam below
    the target's floor is followed (nothing it finishes could outrank the target), and a search
    stops once k words beat everything the target could still reach.
    """
    from .search import _LEXICON_POOL, MAX_WORD_PIECES, _Beam

    model, texts = predictor.model, predictor.tokenizer.piece_text
    vocab, width, lead = logprobs.shape[1], max(4 * k, 16), 2 * k
    # As search._Search.run: with a lexicon, more extensions are looked at than kept.
    pool = width if predictor.searcher.lexicon is None else width * _LEXICON_POOL
    found: list[dict[str, float]] = [{} for _ in queries]
    beams = [[_Beam("", 0.0)] for _ in queries]
    rows = torch.tensor([query.row for query in queries], device=predictor.device)
    logprobs, state = logprobs[rows], model.select_state(state, rows)
    live = list(range(len(queries)))  # queries with beams, their rows in this order
    for depth in range(MAX_WORD_PIECES):
        first = depth == 0
        counts = [len(beams[q]) for q in live]
        flat = [beam for q in live for beam in beams[q]]
        raw = logprobs + torch.tensor([beam.logprob for beam in flat], device=logprobs.device)[:, None]
        scores = raw.masked_fill(predictor.pieces.not_starts if first else predictor.pieces.not_extends, -np.inf)
        row = 0
        for q in live:
            partial = queries[q].partial
            for beam in beams[q]:
                remaining = partial[len(beam.text):] if partial.startswith(beam.text) else None
                if remaining:  # only pieces that agree with the letters still to match
                    allowed = torch.tensor(predictor.searcher.index.agreeing(first, remaining), dtype=torch.long,
                                           device=scores.device)
                    scores[row] = -np.inf
                    scores[row, allowed] = raw[row, allowed]
                row += 1
        owner = torch.repeat_interleave(torch.arange(len(live), device=scores.device),
                                        torch.tensor(counts, device=scores.device))
        kth = torch.tensor([_kth_best(found[q], k) for q in live], device=scores.device)
        floors = torch.tensor([queries[q].floor - _FLOOR_MARGIN for q in live], device=scores.device)
        ruled_out = (scores < kth[owner, None]) | (scores < floors[owner, None])
        # Below the floor, only what can still become the target goes on: the search adds up the
        # target's segmentations, and the floor is the probability of one of them.
        row = 0
        for q in live:
            target = queries[q].target
            for beam in beams[q]:
                if len(target) > len(beam.text) and target.startswith(beam.text):
                    agreeing = predictor.searcher.index.agreeing(first, target[len(beam.text):])
                    ruled_out[row, agreeing] = scores[row, agreeing] < kth[owner[row]]
                row += 1
        scores.masked_fill_(ruled_out, -np.inf)
        # Each query's (beam, piece) scores side by side, padded, for one top-k over all of them.
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        offsets = torch.arange(len(flat), device=scores.device) - torch.from_numpy(starts).to(scores.device)[owner]
        padded = scores.new_full((len(live), max(counts), vocab), -np.inf)
        padded[owner, offsets] = scores
        top = torch.topk(padded.reshape(len(live), -1), min(pool, max(counts) * vocab))
        values, picked = top.values.tolist(), top.indices.tolist()
        new_beams: dict[int, list[_Beam]] = {}
        sources, pieces = [], []
        for i, q in enumerate(live):
            kept, allowed = new_beams.setdefault(q, []), queries[q].allowed
            for value, index in zip(values[i], picked[i]):
                if value == -np.inf or len(kept) == width:
                    break
                beam, piece = divmod(index, vocab)
                text = beams[q][beam].text + texts[piece].lstrip(" ")
                if allowed is not None and not allowed.leads_to_word(text, value):
                    continue  # as search._Search._keep_to_lexicon: its place goes to a word
                kept.append(_Beam(text, value))
                sources.append(int(starts[i]) + beam)
                pieces.append(piece)
        if not sources:
            break
        # The 2k likeliest beams of every query first, and of those the k likeliest before the others:
        # the words they finish prune the rest, or settle the query, before those cost a step of the
        # model (as in search._Search._advance, which steps the 2k together: the same beams are stepped unless
        # the outcome is already known).
        candidates = []  # (query, its beam, index into sources and pieces)
        for q in live:
            candidates += [(q, b, len(candidates) + b) for b in range(len(new_beams[q]))]
        settled: set[int] = set()
        stages, outputs = [], []
        for low, high in ((0, k), (k, lead), (lead, None)):
            stage = [(q, b, i) for q, b, i in candidates
                     if q not in settled and b >= low and (high is None or b < high)]
            if high is None:
                stage = [(q, b, i) for q, b, i in stage if new_beams[q][b].logprob >= _kth_best(found[q], k)]
            if not stage:
                continue
            outputs.append(_step_and_collect(predictor, stage, new_beams, queries, found, sources, pieces, state))
            stages += stage
            settled |= {q for q in {q for q, _, _ in stage} if _settled(queries[q], found[q], new_beams[q], k)}
        # Back to one block of rows per query, its beams in order; the queries that are done leave.
        rows_of: dict[int, list[int]] = {q: [] for q in live}
        for i, (q, _, _) in sorted(enumerate(stages), key=lambda item: item[1][1]):
            rows_of[q].append(i)
        for q in live:
            beams[q] = [new_beams[q][stages[i][1]] for i in rows_of[q]]
        live = [q for q in live if beams[q] and q not in settled and not _settled(queries[q], found[q], beams[q], k)]
        if not live:
            break
        order = torch.tensor([i for q in live for i in rows_of[q]], device=predictor.device)
        joined = outputs[0][1]
        for _, more in outputs[1:]:
            joined = model.join_states(joined, more)
        logprobs = torch.cat([out[0] for out in outputs])[order]
        state = model.select_state(joined, order)
    return found


def _step_and_collect(predictor: "Predictor", stage: list[tuple[int, int, int]], beams: dict[int, list],
                      queries: list[_Query], found: list[dict[str, float]], sources: list[int], pieces: list[int],
                      state: Any) -> tuple[torch.Tensor, Any]:
    """One model step for the beams of `stage` (query, beam, index into `sources` and `pieces`), each the
    row of `state` in `sources` extended by its piece; the whole words they make are added to `found`,
    as `search._Search._collect_finished` adds them. Returns their next-piece log-probabilities and states."""
    at = torch.tensor([i for _, _, i in stage], device=predictor.device)
    rows = torch.tensor(sources, device=predictor.device)[at]
    tokens = torch.tensor(pieces, device=predictor.device)[at]
    logprobs, after = predictor.pieces.run(tokens[:, None], predictor.model.select_state(state, rows))
    ends = torch.logsumexp(logprobs.index_select(1, predictor.pieces.ends), dim=-1).tolist()
    for (q, b, _), end in zip(stage, ends):
        text, logprob = beams[q][b].text, beams[q][b].logprob + end
        query = queries[q]
        if text.startswith(query.partial) and predictor.searcher.accepts(text, logprob, found[q], query.allowed):
            found[q][text] = np.logaddexp(found[q].get(text, -np.inf), logprob)
    return logprobs, after


# Log-probabilities from the reading and from the search's steps differ in the last float32 bits:
# the floor sits this far below the target's own, so the search never cuts the target itself.
_FLOOR_MARGIN = 1e-3


def _settled(query: _Query, found: dict[str, float], beams: list, k: int) -> bool:
    """Whether k words already beat the most the target can still reach: what it has found, plus every
    beam that could still become it (a word's probability is at most its beam's)."""
    reachable = [beam.logprob for beam in beams if query.target.startswith(beam.text)]
    best = float(np.logaddexp.reduce([found.get(query.target, -np.inf), *reachable]))
    return sum(logprob > best for word, logprob in found.items() if word != query.target) >= k


DISTANCE_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 30), (31, 60), (61, 10**9))


@dataclass
class LongRangeAccuracy:
    """How often a model gets the words that only a cue far back in the line determines, by distance.

    Two measures per target: `top1`, whether it is the word `predict` ranks first (which also needs
    the model to know that the slot comes now), and `recall`, whether the model ranks it above every
    other word of its kind (the other names, numbers, or was/were): that needs the cue alone.
    `chance` is what guessing among the words of each kind would recall.
    """

    buckets: dict[str, list[float]] = field(default_factory=dict)  # "6-10" -> [top1, recalled, chance, total]

    def add(self, distance: int, top1: bool, recalled: bool, choices: int) -> None:
        low, high = next(b for b in DISTANCE_BUCKETS if b[0] <= distance <= b[1])
        name = f"{low}-{high}" if high < 10**9 else f"{low}+"
        counts = self.buckets.setdefault(name, [0, 0, 0.0, 0])
        for i, value in enumerate((top1, recalled, 1 / choices, 1)):
            counts[i] += value

    @staticmethod
    def _rates(counts: list[float]) -> dict[str, float]:
        top1, recalled, chance, total = counts
        share = (lambda count: count / total) if total else (lambda count: math.nan)
        return {"recall": share(recalled), "top1": share(top1), "chance": share(chance), "targets": int(total)}

    def to_dict(self) -> dict:
        ordered = sorted(self.buckets.items(), key=lambda item: int(item[0].split("-")[0].rstrip("+")))
        overall = [sum(c[i] for c in self.buckets.values()) for i in range(4)]
        return {**self._rates(overall), "by_distance": {name: self._rates(counts) for name, counts in ordered}}


def long_range_accuracy(predictor: "Predictor", ids: np.ndarray, first_line: int, targets: Sequence[Target],
                        on_target: Callable[[int, int], None] | None = None) -> LongRangeAccuracy:
    """Top-1 accuracy and recall (see `LongRangeAccuracy`) on each target inside `ids`, each predicted from
    all the text before it.

    `ids` is the encoded text; `first_line` is the number of the line that starts after its first
    line break (0 when `ids` is a whole file, which starts a line itself). The text is read once,
    left to right, as in `word_metrics`: the model keeps the state the text before built up. The words
    of each kind are those of all `targets`, inside `ids` or not. `on_target(done, total)` reports progress.
    """
    tokenizer = predictor.tokenizer

    def as_predicted(text: str) -> str:  # "Mira." -> "Mira", as predict returns it
        found = tokenizer.words_at(np.asarray(tokenizer.encode_line(text)))
        return found[0][1] if found else text

    # Each written form once: thousands of targets share a few hundred of them.
    word = {text: as_predicted(text) for text in {target.expected for target in targets}}
    kinds: dict[str, set[str]] = {}
    for target in targets:
        kinds.setdefault(target.kind, set()).add(word[target.expected])
    choices = {kind: sorted(words) for kind, words in kinds.items()}

    ids = np.asarray(ids)
    breaks = np.flatnonzero(ids == EOS_ID)
    if first_line == 0:
        line_starts, line_ends = np.concatenate([[0], breaks[:-1] + 1]), breaks
    else:
        line_starts, line_ends = breaks[:-1] + 1, breaks[1:]
    positions, kept = [], []
    for target in targets:
        index = target.line - first_line
        if not 0 <= index < len(line_ends):
            continue  # the line is not wholly inside `ids`
        start, end = line_starts[index], line_ends[index]
        starts = np.flatnonzero(tokenizer.starts_word[ids[start:end]])
        if target.word < len(starts):
            positions.append(int(start + starts[target.word]))
            kept.append(target)
    order = np.argsort(positions, kind="stable")
    result = LongRangeAccuracy()
    searches = predictor.searches_along(ids, [positions[i] for i in order])
    for done, (i, search) in enumerate(zip(order, searches), 1):
        target = kept[i]
        expected, alternatives = word[target.expected], choices[target.kind]
        best = search("", 1)
        scores = search.logprobs_of(alternatives)
        recalled = sum(score >= scores[alternatives.index(expected)] for score in scores) == 1
        result.add(target.distance, bool(best) and best[0][0] == expected, recalled, len(alternatives))
        if on_target:
            on_target(done, len(kept))
    return result


def count_characters(path: str | Path, lines: int | None = None) -> int:
    """Characters of a text file as it is read and encoded (of its first `lines` lines): CR and CRLF line
    ends read as one line break, and a last line without one counts one, as it is encoded with one."""
    count = 0
    with open(path, encoding="utf-8", newline=None) as stream:
        for number, line in enumerate(stream, 1):
            count += len(line) + (not line.endswith("\n"))
            if number == lines:
                break
    return count


def evaluate_file(predictor: "Predictor", path: str | Path, *, perplexity_lines: int | None = None,
                  predict_words: int | None = None, suggestions: int = 3, long_range: bool = False,
                  on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Every measure of a model on a text file, as a plain dict (what `nextword evaluate` shows).

    The file is encoded into a memory-mapped cache and read once, every token scored given all
    before it (the first given a line break, as `predict` reads a text); bits per character are
    over the characters of the file (see `count_characters`). `perplexity_lines` scores only the
    first lines, `predict_words` predicts only the first words (accuracy, keystrokes), each for a
    quicker estimate. With `long_range`, the file's `<file>.targets.jsonl` sidecar gives the
    far-dependent words to score.
    """
    from .data import check_corpus, encode_corpus

    def report(stage: str, done: int, total: int) -> None:
        if on_progress:
            on_progress(stage, done, total)

    for name, value in (("perplexity_lines", perplexity_lines), ("predict_words", predict_words)):
        if value is not None and value < 1:
            raise ConfigError(f"option '{name}' must be >= 1; got {value}")
    corpus = check_corpus(path)
    sidecar = targets_path(corpus.path)
    if long_range and not sidecar.is_file():
        raise CorpusError(f"--long-range needs {sidecar.name} beside {corpus.path.name} "
                          f"(written by corpora/generate.py longrange)")
    ids = encode_corpus(corpus, predictor.tokenizer)
    scored = len(ids)
    if perplexity_lines is not None:
        breaks = np.flatnonzero(ids == EOS_ID)
        if perplexity_lines < len(breaks):
            scored = int(breaks[perplexity_lines - 1]) + 1
    if scored < 1:
        raise CorpusError(f"{corpus.path} is too short to evaluate on")
    tokenizer = predictor.tokenizer
    report("reading", 0, 1)
    nll, words = read_text(predictor, ids, scored=scored, ks=(1, 3, 5), suggestions=suggestions,
                           max_words=predict_words, on_word=lambda done, total: report("reading", done, total))
    characters = count_characters(corpus.path, perplexity_lines)
    totals = LossTotals(nll, scored, tokenizer.word_count(ids[:scored]), characters)
    result = {
        "file": str(corpus.path), "tokens": totals.tokens, "words": totals.words, "characters": totals.chars,
        "loss": totals.loss, "token_perplexity": totals.token_perplexity, "word_perplexity": totals.word_perplexity,
        "bits_per_char": totals.bits_per_char,
        "accuracy": {f"top{k}": words.accuracy(k) for k in (1, 3, 5)}, "predicted_words": words.words,
        "keystroke_savings": words.keystroke_savings if suggestions else None, "suggestions": suggestions,
    }
    if long_range:
        result["long_range"] = long_range_accuracy(
            predictor, ids, 0, read_targets(sidecar),
            on_target=lambda done, total: report("long-range", done, total)).to_dict()
    return result
