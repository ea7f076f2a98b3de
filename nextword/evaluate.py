"""How well a model predicts a text: negative log-likelihood, token and word-level perplexity.

Word-level perplexity is exp(total NLL / whitespace-separated words): it does not depend on how
the text was cut into tokens, so models with different tokenizers compare fairly. Training's
validation and `nextword evaluate` share this one implementation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np
import torch

from .errors import ConfigError, CorpusError
from .model import LanguageModel
from .tokenizer import EOS_ID, Tokenizer

if TYPE_CHECKING:
    from .predict import Predictor


@dataclass(frozen=True)
class LossTotals:
    nll: float  # summed negative log-likelihood, in nats
    tokens: int  # scored tokens
    words: int  # whitespace-separated words among them
    chars: int  # characters they stand for

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
        chars += tokenizer.char_count(targets[:, cut])
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

    Each word is predicted from everything before it: a hit at k when it is among the k words
    `predict` would show. For keystrokes, a person types the word letter by letter and accepts it
    (one key, space included) as soon as it is among the top `suggestions` completions of what was
    typed; a word never suggested costs its letters and a space. `on_word(done, total)` reports progress.
    """
    if max_words is not None and max_words < 1:
        raise ConfigError(f"option 'max_words' must be >= 1; got {max_words}")
    if suggestions < 0:
        raise ConfigError(f"option 'suggestions' must be >= 0 (0 skips keystroke savings); got {suggestions}")
    targets = predictor.tokenizer.words_at(ids, limit=max_words)
    hits, keys, chars = {k: 0 for k in ks}, 0, 0
    searches = predictor.searches_along(ids, [position for position, _ in targets])
    for done, ((_, word), search) in enumerate(zip(targets, searches), 1):
        predicted = [w for w, _ in search("", max(*ks, suggestions))]
        for k in ks:
            hits[k] += word in predicted[:k]
        if suggestions:
            chars += len(word) + 1
            keys += _keys_to_type(word, search, predicted[:suggestions], suggestions)
        if on_word:
            on_word(done, len(targets))
    return WordMetrics(len(targets), hits, keys, chars)


def _keys_to_type(word: str, search: Callable, offered: list[str], suggestions: int) -> int:
    for typed in range(len(word) + 1):
        if typed:
            offered = [w for w, _ in search(word[:typed], suggestions)]
        if word in offered:
            return typed + 1  # the letters typed, then one key to accept
    return len(word) + 1


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


@dataclass(frozen=True)
class Target:
    """A word that only a cue `distance` words back determines (see corpora/generate.py)."""

    line: int  # 0-based line of the text
    word: int  # 0-based index among the line's whitespace-separated words
    expected: str
    distance: int
    kind: str  # the targets of one kind share the words that could fill their slot


def read_targets(path: str | Path) -> list[Target]:
    """The long-range targets of a text, from its `<text>.targets.jsonl` sidecar."""
    targets = []
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if line.strip():
                try:
                    targets.append(Target(**json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    raise CorpusError(f"{path}, line {number}: not a target (want line, word, expected, "
                                      f"distance, kind; regenerate it with corpora/generate.py)") from None
    return targets


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


def evaluate_file(predictor: "Predictor", path: str | Path, *, max_words: int | None = None,
                  suggestions: int = 3, long_range: bool = False,
                  on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Every measure of a model on a text file, as a plain dict (what `nextword evaluate` shows).

    The file is encoded into a memory-mapped cache and scored in chunks; `max_words` stops after
    that many words for a quick estimate (the word list for accuracy is held in memory). With `long_range`, the file's
    `<file>.targets.jsonl` sidecar gives the far-dependent words to score.
    """
    from .data import check_corpus, encode_corpus

    def report(stage: str, done: int, total: int) -> None:
        if on_progress:
            on_progress(stage, done, total)

    if max_words is not None and max_words < 1:
        raise ConfigError(f"option 'max_words' must be >= 1; got {max_words}")
    corpus = check_corpus(path)
    sidecar = corpus.path.with_name(corpus.path.name + ".targets.jsonl")
    if long_range and not sidecar.is_file():
        raise CorpusError(f"--long-range needs {sidecar.name} beside {corpus.path.name} "
                          f"(written by corpora/generate.py longrange)")
    ids = encode_corpus(corpus, predictor.tokenizer)
    if max_words is not None:
        starts = np.flatnonzero(predictor.tokenizer.starts_word[ids])
        if len(starts) > max_words:
            ids = ids[: starts[max_words]]
    if len(ids) < 2:
        raise CorpusError(f"{corpus.path} is too short to evaluate on")
    report("perplexity", 0, 1)
    totals = stream_loss(predictor.model, predictor.tokenizer, ids, seq_len=256, device=predictor.device,
                         streams=1)
    report("perplexity", 1, 1)
    words = word_metrics(predictor, ids, ks=(1, 3, 5), suggestions=suggestions,
                         on_word=lambda done, total: report("words", done, total))
    result = {
        "file": str(corpus.path), "tokens": totals.tokens, "words": totals.words, "loss": totals.loss,
        "token_perplexity": totals.token_perplexity, "word_perplexity": totals.word_perplexity,
        "bits_per_char": totals.bits_per_char,
        "accuracy": {f"top{k}": words.accuracy(k) for k in (1, 3, 5)}, "predicted_words": words.words,
        "keystroke_savings": words.keystroke_savings if suggestions else None, "suggestions": suggestions,
    }
    if long_range:
        result["long_range"] = long_range_accuracy(
            predictor, ids, 0, read_targets(sidecar),
            on_target=lambda done, total: report("long-range", done, total)).to_dict()
    return result
