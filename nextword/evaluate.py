"""How well a model predicts a text: everything `nextword evaluate` reports from one reading of it.

The loss (perplexities, bits per character; see loss.py) comes with the reading; the word metrics
(top-k next-word accuracy, keystroke savings) run `predict`'s word searches from the states it
passes through, and the long-range accuracy scores the far-dependent words of a generated corpus."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .data import check_corpus, encode_corpus
from .errors import ConfigError, CorpusError
from .lexicon import Words
from .loss import LossTotals
from .model import evaluating
from .predict import Predictor
from .search import Query, Rows, Searches, beam_width
from .targets import Target, read_targets, targets_path
from .threads import SharedCores
from .tokenizer import EOS_ID, Tokenizer


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


def word_metrics(
    predictor: Predictor,
    ids: np.ndarray,
    *,
    ks: Sequence[int] = (1, 5),
    suggestions: int = 0,
    max_words: int | None = None,
    on_word: Callable[[int, int], None] | None = None,
) -> WordMetrics:
    """Top-k next-word accuracy and, with `suggestions` > 0, keystroke savings over encoded text.

    Each word is predicted from everything before it (after a leading line break, as `predict` reads
    a text): a hit at k when it is among the k words `predict` would show. For keystrokes, a person
    types the word letter by letter and accepts it (one key, space included) as soon as it is among
    the top `suggestions` completions of what was typed; a word never suggested costs its letters and
    a space. `max_words` stops after that many words; `on_word(done, total)` reports progress."""
    return read_text(predictor, ids, scored=0, ks=ks, suggestions=suggestions, max_words=max_words, on_word=on_word)[1]


@torch.inference_mode()  # the searches too: no autograd graph, and the neural cache's memory is made in it
def read_text(
    predictor: Predictor,
    ids: np.ndarray,
    *,
    scored: int,
    ks: Sequence[int] = (1, 5),
    suggestions: int = 0,
    max_words: int | None = None,
    on_word: Callable[[int, int], None] | None = None,
) -> tuple[float, WordMetrics]:
    """The summed NLL of the first `scored` tokens of `ids` and the word metrics (see `word_metrics`), from
    one reading of the text: the word searches start from the states that reading passes through.

    Every token is scored, the first one too, given a leading line break. Each word's own
    probability comes with the reading; the searches, many words' side by side (one model step for
    all of them), follow only what could outrank it (see `search.Query`)."""
    if max_words is not None and max_words < 1:
        raise ConfigError(f"option 'max_words' must be >= 1; got {max_words}")
    if suggestions < 0:
        raise ConfigError(f"option 'suggestions' must be >= 0 (0 skips keystroke savings); got {suggestions}")
    ids = np.asarray(ids)
    targets = predictor.tokenizer.words_at(ids, limit=max_words)
    rows = Rows(predictor.pieces)
    reading = _Reading(predictor, ids, [position for position, _ in targets], scored, rows)
    typing = _Typing(predictor, rows, ks, suggestions, lambda done: on_word and on_word(done, len(targets)))
    document = predictor.searcher.document()  # the words read so far count as lexicon words, as in predict
    if document is not None:
        document.add_words(targets)
    with SharedCores.for_device(predictor.device) as cores:  # on the cores other processes leave free
        for ready in reading:  # the words whose ends the reading has passed: their probabilities are known
            for index, root in ready:
                position, word = targets[index]
                allowed = predictor.searcher.allowed(document, before=position)
                typing.add(root, word, reading.word_logprob(index), allowed)
            typing.run(set(reading.roots.values()))
            cores.adjust()
        typing.run(set(), finish=True)
    return reading.nll(scored), typing.metrics()


_STRIDE = 32  # tokens a row of the side-by-side reading reads: at most the neural cache's TAIL_LIMIT (see _Reading)
_BLOCK = 64  # stretches read side by side


class _Reading:
    """One pass over `ids` after a leading line break, every token scored given all before it.

    A model step costs much the same for one row as for many, so the text is read as stretches of
    _STRIDE tokens, _BLOCK side by side, one token of each per step: every distribution and state
    on the way, at the cost of one step per _BLOCK × _STRIDE tokens. The state each stretch starts
    from comes from reading them one after another first, each in one step that computes the
    distribution after its last token alone. (A stretch no longer than the neural cache's
    TAIL_LIMIT keeps its rows on the document's own memory, one group for all of them.)

    The place before each word's first piece becomes a row of `rows` (next-piece log-probabilities
    and state), a block's in one chunk, held in `roots` until given out; each token's log-probability
    and the probability that a word ends before it are kept. Iterating gives, block by block, (index,
    row) of the words whose ends have been read. Past the last word's end only the loss is computed."""

    def __init__(self, predictor: Predictor, ids: np.ndarray, positions: list[int], scored: int, rows: Rows):
        self.predictor, self.rows, self.positions = predictor, rows, positions  # where the words start
        # Where each word ends: the first piece after its first that does not carry it on (or the text's end).
        stops = np.append(np.flatnonzero(~predictor.tokenizer.extends_word[ids]), len(ids))
        self.ends = stops[np.searchsorted(stops, positions, side="right")].tolist()
        self.full_until = self.ends[-1] + 1 if self.ends else 0  # distributions in full before it, the loss alone after
        self.length = max(scored, self.full_until)  # predictions of ids[:length]
        self.inputs = np.concatenate([[EOS_ID], ids]).astype(np.int64)
        # The piece after the text, for the prediction made after its last token: never scored.
        self.targets = np.concatenate([ids, [EOS_ID]]).astype(np.int64)
        self.token_logprobs = np.zeros(self.length)
        self.word_ends = np.zeros(self.length)  # log P(a word ends), before each piece (until full_until)
        self.word_at = {position: index for index, position in enumerate(positions)}
        self.roots: dict[int, int] = {}  # word index -> its row, until given out
        self.starting: list[tuple[list[int], torch.Tensor, Any]] = []  # (word indices, logprobs, state) to add

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:  # in read_text's inference mode
        pieces, state = self.predictor.pieces, None
        with evaluating(self.predictor.model):
            if self.full_until:  # the first place: after the line break alone
                logprobs, state = pieces.run(self.inputs[:1])
                self._record(np.array([0]), logprobs, state)
            starts = list(range(1, self.full_until, _STRIDE))
            for block in (starts[first : first + _BLOCK] for first in range(0, len(starts), _BLOCK)):
                states = []
                for start in block:  # each stretch's state, and the next block's first
                    states.append(state)
                    stop = min(start + _STRIDE, self.full_until)
                    if stop < self.length:
                        _, state = pieces.run(torch.from_numpy(self.inputs[None, start:stop]).to(pieces.device), state)
                self._side_by_side(block, states)
                self._add_roots()
                read = min(block[-1] + _STRIDE, self.full_until)
                yield [(index, self.roots.pop(index)) for index in sorted(self.roots) if self.ends[index] < read]
            self._loss_only(state)

    def _side_by_side(self, starts: list[int], states: list) -> None:
        """Read the stretches at `starts`, each from its state in `states`, side by side."""
        model, pieces = self.predictor.model, self.predictor.pieces
        state, places = self.rows.join(states), np.array(starts)
        stops = np.minimum(places + _STRIDE, self.full_until)
        for _ in range(_STRIDE):
            live = int((places < stops).sum())  # the stretches not yet read: all but perhaps the last
            if live == 0:
                break
            if live < len(places):
                state = model.select_state(state, torch.arange(live, device=pieces.device))
                places, stops = places[:live], stops[:live]
            logprobs, state = pieces.run(torch.from_numpy(self.inputs[places, None]).to(pieces.device), state)
            self._record(places, logprobs, state)
            places = places + 1

    def _record(self, places: np.ndarray, logprobs: torch.Tensor, state: Any) -> None:
        """Keep what the predictions at `places` (rows of `logprobs` and `state`) say: each token's
        log-probability, that of a word ending before it, and the rows where words start."""
        targets = torch.from_numpy(self.targets[places]).to(logprobs.device)
        self.token_logprobs[places] = logprobs.gather(1, targets[:, None])[:, 0].double().cpu().numpy()
        self.word_ends[places] = self.predictor.pieces.word_ends(logprobs).double().cpu().numpy()
        starting = [row for row, place in enumerate(places.tolist()) if place in self.word_at]
        if starting:
            at, words = torch.tensor(starting, device=logprobs.device), [self.word_at[int(places[r])] for r in starting]
            self.starting.append((words, logprobs[at], self.predictor.model.select_state(state, at)))

    def _add_roots(self) -> None:
        """The places recorded where words start, as rows of `rows` in one chunk: the searches take them
        together, and the chunk is made once (not once per step of the reading)."""
        if self.starting:
            words, logprobs, states = zip(*self.starting)
            made = self.rows.add(torch.cat(logprobs), self.rows.join(list(states)))
            self.roots.update(zip([index for indices in words for index in indices], made))
            self.starting = []

    def _loss_only(self, state: Any) -> None:
        """Past the last word: the log-probability of each token alone, without the full distributions."""
        model, device = self.predictor.model, self.predictor.device
        for start in range(self.full_until, self.length, 256):
            stop = min(self.length, start + 256)
            x = torch.from_numpy(self.inputs[None, start:stop]).to(device)
            y = torch.from_numpy(self.targets[None, start:stop]).to(device)
            logprobs, state = model.target_logprobs(x, y, state)
            self.token_logprobs[start:stop] = logprobs[0].double().cpu().numpy()

    def nll(self, tokens: int) -> float:
        """The summed negative log-likelihood of the first `tokens` tokens."""
        return -float(self.token_logprobs[:tokens].sum())

    def word_logprob(self, index: int) -> float:
        """log P(the word `index`'s pieces come next, then a word boundary), as read."""
        position, end = self.positions[index], self.ends[index]
        return float(self.token_logprobs[position:end].sum() + self.word_ends[end])


class _Typing:
    """Each word's searches, many words' side by side: `predict`'s words at its place (a hit at k when it
    is among the first k), then, until it is offered, those for each longer beginning of it typed.
    A word's searches share the model steps they have in common (`Query.known`)."""

    def __init__(
        self, predictor: Predictor, rows: Rows, ks: Sequence[int], suggestions: int, on_word: Callable[[int], Any]
    ):
        self.searches, self.rows, self.on_word = Searches(predictor.searcher, rows, stages=(1, 2)), rows, on_word
        self.ks, self.suggestions, self.letters = tuple(ks), suggestions, predictor.searcher.index.letters
        # The word's place among `predict`'s words; beyond the longest list asked for is as good as absent.
        self.shown = max(*self.ks, suggestions)
        self.capacity = max(16, min(512, _SCORES_PER_STEP // (beam_width(self.shown) * predictor.tokenizer.vocab_size)))
        self.waiting: deque[Query] = deque()
        self.active: list[Query] = []
        self.words, self.done, self.hits, self.keys, self.chars = 0, 0, {k: 0 for k in ks}, 0, 0

    def add(self, root: int, word: str, floor: float, allowed: Words | None) -> None:
        self.waiting.append(Query(root, "", self.shown, allowed, word, floor, exact=False))

    def run(self, held: set[int], finish: bool = False) -> None:
        """Search until no more words wait than can be searched at once (with `finish`, until none is left);
        the rows of `held` are kept for words still to come."""
        steps = 0
        while len(self.waiting) > self.capacity or (finish and (self.waiting or self.active)):
            while len(self.active) < self.capacity and self.waiting:
                self.active.append(self.waiting.popleft())
            self.searches.advance(self.active)
            self.active = [after for query in self.active for after in self._after(query)]
            steps += 1
            if steps % 8 == 0:  # let go of the rows no search will read again
                live = held | {query.root for query in (*self.waiting, *self.active)}
                self.rows.keep(live.union(*(query.known.values() for query in self.active)))

    def _after(self, query: Query) -> list[Query]:
        """`query` while it runs; when done, what its word needs next: the search with one more letter
        typed, or nothing (its hits or keystrokes counted)."""
        if not query.done:
            return [query]
        word = query.target
        if not query.certain():  # the target's segmentations below its floor could change its place: all of them
            return [replace(query, exact=True)]
        typed, rank = len(query.partial), query.rank()
        if not typed:
            self.words += 1
            for k in self.ks:
                self.hits[k] += int(rank < k)
            self.chars += (len(word) + 1) if self.suggestions else 0
        if self.suggestions and rank >= self.suggestions and typed + 1 < len(word):
            return [query.typed(word[: typed + 1], self.suggestions, self.letters)]
        if self.suggestions:
            # Typing the whole word costs the same (its letters and a key) whether it is then offered or
            # not, so the last letter needs no search.
            self.keys += typed + 1 if rank < self.suggestions else len(word) + 1
        self.done += 1
        self.on_word(self.done)
        return []

    def metrics(self) -> WordMetrics:
        return WordMetrics(self.words, self.hits, self.keys, self.chars)


# Floats in one step's score matrix (beams × vocabulary) at most, about 16 MB. A mixture makes several dense
# tensors of that size a step (its distribution, each cache's), so this bounds evaluate's memory: at 64 MB
# it peaked at 3.7 GB on Tiny Shakespeare's held-out text (4,000 pieces, 3,000 words), at 16 MB 1.7 GB,
# in the same time (bench/RESULTS.md).
_SCORES_PER_STEP = 4_000_000


DISTANCE_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 30), (31, 60), (61, 10**9))


@dataclass
class LongRangeAccuracy:
    """How often a model gets the words that only a cue far back in the line determines, by distance.

    Two measures per target: `top1`, whether it is the word `predict` ranks first (which also needs
    the model to know that the slot comes now), and `recall`, whether the model ranks it above every
    other word of its kind (the other names, numbers, or was/were): that needs the cue alone.
    `chance` is what guessing among the words of each kind would recall."""

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


def long_range_accuracy(
    predictor: Predictor,
    ids: np.ndarray,
    first_line: int,
    targets: Sequence[Target],
    on_target: Callable[[int, int], None] | None = None,
) -> LongRangeAccuracy:
    """Top-1 accuracy and recall (see `LongRangeAccuracy`) on each target inside `ids`, each predicted from
    all the text before it.

    `ids` is the encoded text; `first_line` is the number of the line that starts after its first
    line break (0 when `ids` is a whole file, which starts a line itself). The text is read once,
    left to right, as in `word_metrics`: the model keeps the state the text before built up. The words
    of each kind are those of all `targets`, inside `ids` or not. `on_target(done, total)` reports progress."""
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


def evaluate_file(
    predictor: Predictor,
    path: str | Path,
    *,
    perplexity_lines: int | None = None,
    predict_words: int | None = None,
    suggestions: int = 3,
    long_range: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Every measure of a model on a text file, as a plain dict (what `nextword evaluate` shows).

    The file is encoded into a memory-mapped cache and read once, every token scored given all
    before it (the first given a line break, as `predict` reads a text); bits per character are
    over the characters of the file (see `count_characters`). `perplexity_lines` scores only the
    first lines, `predict_words` predicts only the first words (accuracy, keystrokes), each for a
    quicker estimate. With `long_range`, the file's `<file>.targets.jsonl` sidecar gives the
    far-dependent words to score (with `predict_words`, those in the lines its words reach)."""
    report = on_progress or (lambda stage, done, total: None)
    if perplexity_lines is not None and perplexity_lines < 1:  # predict_words: read_text checks it, as max_words
        raise ConfigError(f"option 'perplexity_lines' must be >= 1; got {perplexity_lines}")
    corpus = check_corpus(path)
    targets = _sidecar_targets(corpus.path) if long_range else None
    ids = encode_corpus(corpus, predictor.tokenizer)
    scored = _tokens_in_lines(ids, perplexity_lines)
    if scored < 1:
        raise CorpusError(f"{corpus.path} is too short to evaluate on")
    report("reading", 0, 1)
    nll, words = read_text(
        predictor,
        ids,
        scored=scored,
        ks=(1, 3, 5),
        suggestions=suggestions,
        max_words=predict_words,
        on_word=lambda done, total: report("reading", done, total),
    )
    characters = count_characters(corpus.path, perplexity_lines)
    totals = LossTotals(nll, scored, predictor.tokenizer.word_count(ids[:scored]), characters)
    result = {
        "file": str(corpus.path),
        "tokens": totals.tokens,
        "words": totals.words,
        "characters": totals.chars,
        "loss": totals.loss,
        "token_perplexity": totals.token_perplexity,
        "word_perplexity": totals.word_perplexity,
        "bits_per_char": totals.bits_per_char,
        "accuracy": {f"top{k}": words.accuracy(k) for k in (1, 3, 5)},
        "predicted_words": words.words,
        "keystroke_savings": words.keystroke_savings if suggestions else None,
        "suggestions": suggestions,
    }
    if targets is not None:
        reached = ids if predict_words is None else _lines_reaching(ids, predictor.tokenizer, predict_words)
        result["long_range"] = long_range_accuracy(
            predictor, reached, 0, targets, on_target=lambda done, total: report("long-range", done, total)
        ).to_dict()
    return result


def _lines_reaching(ids: np.ndarray, tokenizer: Tokenizer, words: int) -> np.ndarray:
    """`ids` up to the end of the line that holds its `words`th word: with --predict-words, the long-range
    words scored are those of the lines the words predicted reach (each a search, thousands in a file)."""
    found = tokenizer.words_at(ids, limit=words)
    if not found:
        return ids
    ends = np.flatnonzero(ids[found[-1][0] :] == EOS_ID)
    return ids[: found[-1][0] + ends[0] + 1] if len(ends) else ids


def _sidecar_targets(corpus: Path) -> list[Target]:
    """The far-dependent words of `corpus` that --long-range scores, read before the text is."""
    sidecar = targets_path(corpus)
    if not sidecar.is_file():
        raise CorpusError(
            f"--long-range needs {sidecar.name} beside {corpus.name} (written by corpora/generate.py longrange)"
        )
    return read_targets(sidecar)


def _tokens_in_lines(ids: np.ndarray, lines: int | None) -> int:
    """How many of the tokens `ids` its first `lines` lines hold (all of them: with None, or fewer lines)."""
    if lines is None:
        return len(ids)
    breaks = np.flatnonzero(ids == EOS_ID)
    return int(breaks[lines - 1]) + 1 if lines < len(breaks) else len(ids)
