"""Whole words from a model of pieces: the beam search behind every next-word prediction.

A model predicts subword pieces; a word's probability is

    P(word) = P(piece_1) · P(piece_2 | piece_1) · … · P(a word boundary comes next | pieces)

summed over the segmentations the search finds. A beam search over pieces, up to the next word
boundary, finds the likeliest words. When the text ends inside a word, only pieces that agree with
the typed letters are followed, so the result is the completions of that partial word. With a
lexicon, the words found are its words and those the text before has used (see lexicon.py)."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace
from itertools import compress
from typing import Sequence

import numpy as np
import torch

from .errors import ConfigError
from .lexicon import DocumentWords, Lexicon, Words
from .model import State
from .pieces import PieceModel
from .tokenizer import EOS_ID, Tokenizer, is_word

MAX_WORD_PIECES = 24  # longest word searched, in pieces (a character tokenizer needs the most)
_LEXICON_POOL = 16  # with a lexicon, the search looks at this many extensions for each beam it keeps


def split_partial(text: str) -> tuple[str, str]:
    """(context, partial word): the letters after the last whitespace are a word still being typed.

    Read back from the end, so a long document costs the length of its last word."""
    start = len(text)
    while start and not text[start - 1].isspace():
        start -= 1
    return text[:start], text[start:]


def beam_width(k: int) -> int:
    return max(4 * k, 16)  # the beams a search for the k best words keeps at each depth


def check_query(k: int) -> None:
    """Refuse what no prediction can answer: fewer than one word. (An empty text asks for the first word of
    a document, as a keyboard does before the first key: the model reads a line break there.)"""
    if k < 1:
        raise ConfigError(f"option 'top_k' must be >= 1; got {k}")


class _PieceIndex:
    """Which pieces can extend a word so that it still agrees with the letters typed so far."""

    def __init__(self, tokenizer: Tokenizer, device: torch.device):
        self.device = device  # where the remembered ids live: the model's
        self.letters = [text.lstrip(" ") for text in tokenizer.piece_text]  # each piece's, as words are spelled
        tables: dict[bool, list[tuple[str, int]]] = {True: [], False: []}
        for i, text in enumerate(self.letters):
            if tokenizer.ordinary[i]:
                tables[bool(tokenizer.starts_word[i])].append((text, i))
        self.tables = {first: sorted(table) for first, table in tables.items()}
        self.keys = {first: [text for text, _ in table] for first, table in self.tables.items()}
        self._tensors: dict[tuple[bool, str, bool], torch.Tensor] = {}

    def agreeing(self, first: bool, remaining: str, within: bool = False) -> torch.Tensor:
        """Ids of word-start (`first`) or continuation pieces that `remaining` starts with, or that start
        with `remaining`: the pieces that keep a word in agreement with the letters typed. With
        `within`, only those that `remaining` starts with: the pieces that can still spell it exactly.
        Remembered: a search asks again for the same letters at every beam."""
        key = (first, remaining, within)
        if key in self._tensors:
            return self._tensors[key]
        table, keys, found = self.tables[first], self.keys[first], []
        # Those that start with `remaining` (equal it, `within`), then those that are a prefix of it: one scan each.
        prefixes = [remaining[:cut] for cut in range(0 if first else 1, len(remaining))]
        for text, whole in [(remaining, within), *((prefix, True) for prefix in prefixes)]:
            at = bisect.bisect_left(keys, text)
            while at < len(keys) and keys[at].startswith(text) and (not whole or keys[at] == text):
                found.append(table[at][1])
                at += 1
        if len(self._tensors) >= 1 << 16:
            self._tensors.clear()
        self._tensors[key] = torch.tensor(found, dtype=torch.long, device=self.device)
        return self._tensors[key]


class WordSearcher:
    """Word search over one model, built once: `words` and `logprobs_of` take the model's next-piece
    log-probabilities (1, vocab) at a place in a text and the state it came with."""

    def __init__(self, pieces: PieceModel, lexicon: Lexicon | None = None):
        """`lexicon`: the words a search may return (and new words it is very sure of); None: any."""
        self.pieces, self.lexicon = pieces, lexicon
        self.index = _PieceIndex(pieces.tokenizer, pieces.device)

    def document(self, ids: Sequence[int] = (), last_complete: bool = True) -> DocumentWords | None:
        """The words of the encoded text `ids` by piece position (the last one only if it is complete):
        what a search after them may suggest besides the lexicon's. None when it keeps to no lexicon."""
        if self.lexicon is None:
            return None
        document = DocumentWords(self.lexicon)
        document.add_words(self.pieces.tokenizer.words_at(ids), last_complete)
        return document

    def allowed(self, document: DocumentWords | None, before: float = math.inf) -> Words | None:
        """What a search may suggest: the lexicon's words and `document`'s before `before`; None: any word."""
        return self.lexicon if document is None else document.before(before)

    @staticmethod
    def accepts(word: str, logprob: float, found: dict[str, float], allowed: Words | None) -> bool:
        """Whether a finished beam's `word` counts as a suggestion: it holds a letter or digit and is one
        of the `allowed` words, if any are given (or likely enough to be a new one; once one
        segmentation made it count, the others add to it)."""
        return is_word(word) and (allowed is None or word in found or allowed.accepts(word, logprob))

    @torch.inference_mode()
    def words(
        self,
        logprobs: torch.Tensor,
        state: State,
        partial: str,
        k: int,
        document: DocumentWords | None = None,
        before: float = math.inf,
    ) -> list[tuple[str, float]]:
        """The k likeliest next words that start with `partial`, best first, with their probabilities;
        words of `document` used before `before` count as lexicon words."""
        rows = Rows(self.pieces)
        query = Query(rows.add(logprobs, state)[0], partial, k, self.allowed(document, before))
        search = Searches(self, rows)
        while not query.done:
            search.advance([query])
        return query.best()

    @torch.inference_mode()
    def logprobs_of(self, logprobs: torch.Tensor, state: State, words: list[str]) -> list[float]:
        """log P(word comes next) for each of `words`: the word's own pieces, then a word boundary."""
        pieces, tokenizer = self.pieces, self.pieces.tokenizer
        encoded = [tokenizer.encode_line(word) for word in words]
        longest = max(map(len, encoded))
        rows = torch.tensor([ids + [EOS_ID] * (longest - len(ids)) for ids in encoded], device=pieces.device)
        # Every word at once: one row each, all starting from the same state.
        following = pieces.read(
            rows, pieces.model.select_state(state, torch.zeros(len(words), dtype=torch.long, device=pieces.device))
        )
        before_each = torch.cat([logprobs.expand(len(words), 1, -1), following], dim=1)  # [:, i]: before piece i
        boundary = pieces.word_ends(before_each)
        return [
            float(before_each[row, torch.arange(len(ids)), ids].sum() + boundary[row, len(ids)])
            for row, ids in enumerate(encoded)
        ]


@dataclass(frozen=True, eq=False)
class WordSearch:
    """What a model says at one place in a text: `search(partial, k)` gives the k likeliest next words
    (completions of `partial`), `logprobs_of(words)` the log-probability of given words coming next."""

    searcher: WordSearcher
    logprobs: torch.Tensor
    state: State
    document: DocumentWords | None = None
    before: float = math.inf

    def __call__(self, partial: str, k: int) -> list[tuple[str, float]]:
        return self.searcher.words(self.logprobs, self.state, partial, k, self.document, self.before)

    def logprobs_of(self, words: list[str]) -> list[float]:
        return self.searcher.logprobs_of(self.logprobs, self.state, words)


# Log-probabilities from a reading of the text and from a search's steps differ in the last float32 bits:
# a target's floor is taken this far below its own, so that the search never cuts the target itself.
_FLOOR_MARGIN = 1e-3


@dataclass(frozen=True)
class _Beam:
    text: str  # the word built so far, without its leading space
    logprob: float
    pieces: tuple[int, ...]  # its pieces after the place searched from
    row: int  # its row in `Rows` once stepped; until then its parent's


class Rows:
    """The places searches have stepped to, by number: at each, the next-piece log-probabilities, the
    log-probability that a word ends there, the model's state and the likeliest piece's log-probability,
    kept in the chunks the model made them in (a chunk's rows share its tensors) until `keep` lets go of
    them."""

    def __init__(self, pieces: PieceModel):
        self.pieces = pieces
        self._chunks: dict[int, tuple[torch.Tensor, list[float], State, range, torch.Tensor]] = {}
        self._where: dict[int, tuple[int, int]] = {}  # row -> (chunk, index in it)
        self._rows = 0

    def add(self, logprobs: torch.Tensor, state: State) -> range:
        """New rows: the places whose next-piece log-probabilities are `logprobs` (rows, vocab), with `state`."""
        ends = self.pieces.word_ends(logprobs).tolist()
        rows = range(self._rows, self._rows + len(ends))
        chunk = rows.start
        self._chunks[chunk] = (logprobs, ends, state, rows, logprobs.amax(-1))
        self._where.update((row, (chunk, i)) for i, row in enumerate(rows))
        self._rows = rows.stop
        return rows

    def take(self, rows: list[int]) -> tuple[torch.Tensor, State]:
        """The next-piece log-probabilities and the state of `rows`, in that order."""
        return self.logprobs(rows), self.state(rows)

    def chunk(self, row: int) -> int:
        return self._where[row][0]

    def end(self, row: int) -> float:
        """log P(a word ends at row `row`'s place)."""
        chunk, i = self._where[row]
        return self._chunks[chunk][1][i]

    def logprobs(self, rows: list[int]) -> torch.Tensor:
        return self._gather(
            rows, lambda chunk, at: chunk[0][at], lambda parts: torch.cat(parts), lambda joined, order: joined[order]
        )

    def peaks(self, rows: list[int]) -> torch.Tensor:
        """The log-probability of the likeliest next piece at `rows`, in that order."""
        return self._gather(rows, lambda chunk, at: chunk[4][at], torch.cat, lambda joined, order: joined[order])

    def state(self, rows: list[int]) -> State:
        model = self.pieces.model
        return self._gather(rows, lambda chunk, at: model.select_state(chunk[2], at), self.join, model.select_state)

    def join(self, parts: list[State]) -> State:
        """The rows of `parts`, in order, as one state."""
        return parts[0] if len(parts) == 1 else self.pieces.model.join_states(parts)

    def _gather(self, rows: list[int], take, join, reorder):
        """`rows` from their chunks: `take` from each chunk, `join` the parts, `reorder` into `rows`' order."""
        places = [self._where[row] for row in rows]
        device = self.pieces.device
        chunks = sorted({chunk for chunk, _ in places})
        if len(chunks) == 1:
            return take(self._chunks[chunks[0]], torch.tensor([i for _, i in places], device=device))
        order = sorted(range(len(rows)), key=lambda j: places[j][0])  # grouped by chunk, stable
        parts = []
        for chunk in chunks:
            at = [places[j][1] for j in order if places[j][0] == chunk]
            parts.append(take(self._chunks[chunk], torch.tensor(at, device=device)))
        if order == sorted(order):
            return join(parts)
        back = torch.empty(len(rows), dtype=torch.long, device=device)
        back[torch.tensor(order, device=device)] = torch.arange(len(rows), device=device)
        return reorder(join(parts), back)

    def keep(self, rows: set[int]) -> None:
        """Forget every row but `rows`: the chunks none of them is in go, and when the rest still hold
        more than twice the rows kept (and 1024 more), those rows are copied into one chunk."""
        for chunk in [chunk for chunk, value in self._chunks.items() if rows.isdisjoint(value[3])]:
            for row in self._chunks.pop(chunk)[3]:
                del self._where[row]
        if len(self._where) <= 2 * len(rows) + 1024:
            return
        kept = sorted(rows)
        (logprobs, state), ends = self.take(kept), [self.end(row) for row in kept]
        self._chunks = {kept[0]: (logprobs, ends, state, kept, logprobs.amax(-1))} if kept else {}
        self._where = {row: (kept[0], i) for i, row in enumerate(kept)}


@dataclass(eq=False)
class Query:
    """One word search from row `root` of a `Rows`: the k likeliest next words that complete `partial`,
    among the `allowed` words (None: any). With a `target` (evaluation), only its place among the k
    best is asked, so two cuts leave that place unchanged: nothing below `floor` (the target's own
    log-probability, one segmentation's) is followed unless it can still become the target, and the
    search stops once k words beat all that the target can still reach. `known` holds the rows
    stepped from `root`, by their pieces: the searches at one place may share it.

    Unless `exact`, the target's own segmentations below the floor are not followed either (most of
    such a search's steps): the most they could add to it is kept in `unfollowed`, and `certain`
    says whether the target's place among the k best is the same whatever they add."""

    root: int
    partial: str
    k: int
    allowed: Words | None
    target: str | None = None
    floor: float = -math.inf
    known: dict[tuple[int, ...], int] = field(default_factory=dict)
    exact: bool = True
    # The search's progress: never given, so that `dataclasses.replace` makes a query that starts afresh.
    unfollowed: float = field(default=-math.inf, init=False)
    found: dict[str, float] = field(default_factory=dict, init=False)  # word -> log-probability, all segmentations
    done: bool = field(default=False, init=False)
    depth: int = field(default=0, init=False)
    beams: list[_Beam] = field(init=False)  # this depth's, stepped
    candidates: list[_Beam] | None = field(default=None, init=False)  # the next depth's, best first; None: to choose
    stage: int = field(default=0, init=False)
    stepped: list[_Beam] = field(default_factory=list, init=False)  # the candidates stepped so far

    def __post_init__(self) -> None:
        self.beams = [_Beam("", 0.0, (), self.root)]

    def typed(self, partial: str, k: int, letters: Sequence[str]) -> Query:
        """This search afresh with `partial` typed, the k best asked, not `exact`; of its `known` rows only those
        of beams that agree with `partial` (spelled by `letters`, each piece's) are stepped from again."""
        known = {
            pieces: row
            for pieces, row in self.known.items()
            if (text := "".join(letters[p] for p in pieces)).startswith(partial) or partial.startswith(text)
        }
        return replace(self, partial=partial, k=k, known=known, exact=False)

    def kth_best(self) -> float:
        """The log-probability a word must beat to be among the k best found so far."""
        return sorted(self.found.values(), reverse=True)[self.k - 1] if len(self.found) >= self.k else -np.inf

    def best(self) -> list[tuple[str, float]]:
        ranked = sorted(self.found.items(), key=lambda item: -item[1])[: self.k]
        return [(word, float(np.exp(logprob))) for word, logprob in ranked]

    def settled(self) -> bool:
        """Whether k words already beat the most the target can still reach: what it has found, plus every
        beam that could still become it (a word's probability is at most its beam's)."""
        beams = self.beams if self.candidates is None else self.candidates
        reachable = [beam.logprob for beam in beams if self.target.startswith(beam.text)]
        return self.rank(float(np.logaddexp.reduce([self.unfollowed, *reachable]))) >= self.k

    def rank(self, more: float = -math.inf) -> float:
        """How many words found beat the target (infinite when it was not found), had it `more` besides."""
        mine = np.logaddexp(self.found.get(self.target, -np.inf), more)
        if mine == -np.inf:
            return math.inf
        return sum(int(logprob > mine) for word, logprob in self.found.items() if word != self.target)

    def certain(self) -> bool:
        """Whether the target's place among the k best stays what was found, whatever the segmentations
        not followed add."""
        return min(self.rank(), self.k) == min(self.rank(self.unfollowed), self.k)


class Searches:
    """Word searches run side by side, a depth of pieces at a time: each `advance` steps the model once for
    the next stage of every query given. A depth's candidates are stepped in stages cut at
    `stages` times k (predict: the 2k likeliest, then the rest); the last stage only those that can
    still beat the k-th best word found: the words the first ones finish usually rule out the
    others before those cost a step of the model, the search's main cost."""

    def __init__(self, searcher: WordSearcher, rows: Rows, stages: tuple[int, ...] = (2,)):
        self.searcher, self.rows, self.stages = searcher, rows, stages

    def advance(self, queries: list[Query]) -> None:
        """One model step for every query of `queries` that is not done; those done are marked."""
        due, extending = {}, []
        for query in queries:
            beams = self._due(query)
            if beams is not None:
                due[query] = beams
            elif query.beams and query.depth < MAX_WORD_PIECES and not (query.target and query.settled()):
                extending.append(query)
            else:
                query.done = True
        self._extend(extending)
        for query in extending:
            beams = self._due(query)
            if beams:
                due[query] = beams
            else:
                query.done = True
        self._step(due)

    def _due(self, query: Query) -> list[_Beam] | None:
        """The candidates `query` steps next; None once its depth is stepped (its candidates become its beams)."""
        cuts = [0, *(stage * query.k for stage in self.stages), math.inf]
        while query.candidates is not None and query.stage < len(cuts) - 1:
            low, high = cuts[query.stage], cuts[query.stage + 1]
            if high == math.inf:
                kth = query.kth_best()  # sorts what was found: once, not per candidate
                beams = [beam for beam in query.candidates[low:] if beam.logprob >= kth]
            else:
                beams = query.candidates[low:high]
            query.stage += 1
            if beams:
                return beams
        if query.candidates is not None:
            query.beams, query.candidates, query.stepped = query.stepped, None, []
            query.depth += 1
        return None

    def _step(self, due: dict[Query, list[_Beam]]) -> None:
        """Step the model for the beams `due`, those no query at their place has stepped yet; collect the
        words they finish."""
        todo: dict[tuple[int, tuple[int, ...]], tuple[dict, _Beam]] = {}  # one step per place and pieces
        for query, beams in due.items():
            for beam in beams:
                if beam.pieces not in query.known:
                    todo.setdefault((id(query.known), beam.pieces), (query.known, beam))
        if todo:
            # Grouped by the chunk of the row they step from: their states are gathered without reordering.
            todo = dict(sorted(todo.items(), key=lambda item: self.rows.chunk(item[1][1].row)))
            beams = [beam for _, beam in todo.values()]
            tokens = torch.tensor([beam.pieces[-1] for beam in beams], device=self.rows.pieces.device)
            made = self.rows.add(*self.rows.pieces.run(tokens[:, None], self.rows.state([b.row for b in beams])))
            for (known, beam), row in zip(todo.values(), made):
                known[beam.pieces] = row
        for query, beams in due.items():
            for beam in beams:
                stepped = _Beam(beam.text, beam.logprob, beam.pieces, query.known[beam.pieces])
                query.stepped.append(stepped)
                self._collect(query, stepped)
            if query.target is not None and query.settled():
                query.done = True

    def _collect(self, query: Query, beam: _Beam) -> None:
        """Accept the beam if it is a whole word (it ends here, covers the typed letters): the one place
        where a word is found. Different segmentations of one word are one word: their probabilities add."""
        word, logprob = beam.text, beam.logprob + self.rows.end(beam.row)
        if word.startswith(query.partial) and self.searcher.accepts(word, logprob, query.found, query.allowed):
            query.found[word] = np.logaddexp(query.found.get(word, -np.inf), logprob)

    def _extend(self, queries: list[Query]) -> None:
        """Each query's candidates for its next depth: the likeliest extensions of its beams by one piece
        (all queries' scored together), of which the first `width` that can still spell a word it
        accepts are kept; with a lexicon, more are looked at than kept: the places of the others go to words."""
        if not queries:
            return
        letters = self.searcher.index.letters
        kth = {query: query.kth_best() for query in queries}
        flat = _promising(self.rows, [(query, beam) for query in queries for beam in query.beams], kth)
        # Only the extensions not ruled out, each query's best first: a search's cuts leave few of them.
        rows, pieces, values = (np.zeros(0, dtype=dtype) for dtype in (np.int64, np.int64, np.float32))
        if flat:
            scores = self._scores(flat, kth)
            found = torch.isfinite(scores).nonzero(as_tuple=True)
            rows, pieces, values = found[0].cpu().numpy(), found[1].cpu().numpy(), scores[found].cpu().numpy()
        numbered = {query: i for i, query in enumerate(queries)}
        owner = np.array([numbered[query] for query, _ in flat], dtype=np.int64)[rows]
        order = np.lexsort((-values, owner))
        bounds = np.searchsorted(owner[order], np.arange(len(queries) + 1))
        for i, query in enumerate(queries):
            width, kept = beam_width(query.k), []
            pool = width * (1 if query.allowed is None else _LEXICON_POOL)
            for at in order[bounds[i] : min(bounds[i + 1], bounds[i] + pool)].tolist():
                if len(kept) == width:
                    break
                parent, value, piece = flat[rows[at]][1], float(values[at]), int(pieces[at])
                text = parent.text + letters[piece]
                if query.allowed is None or query.allowed.leads_to_word(text, value):
                    kept.append(_Beam(text, value, parent.pieces + (piece,), parent.row))
            query.candidates, query.stage = kept, 0

    def _scores(self, flat: list[tuple[Query, _Beam]], kth: dict[Query, float]) -> torch.Tensor:
        """Log-probability of each (beam, next piece), -inf where the piece may not extend the beam (it
        does not start or carry on a word, disagrees with the letters typed) or the extension can no
        longer finish a word among the k best (or, with a target, beat it or become it)."""
        pieces, device = self.searcher.pieces, self.searcher.pieces.device
        scores = self.rows.logprobs([beam.row for _, beam in flat])
        scores += torch.tensor([beam.logprob for _, beam in flat], device=device)[:, None]
        firsts = [query.depth == 0 for query, _ in flat]
        typing, place, at = _agreeing(self.searcher.index, flat, firsts, lambda query: query.partial)
        typed = scores[typing]  # where letters are still to match, only the pieces that agree with them
        if all(firsts) or not any(firsts):
            scores.masked_fill_(pieces.not_starts if firsts[0] else pieces.not_extends, -np.inf)
        else:
            first = torch.tensor(firsts, device=device)[:, None]
            scores.masked_fill_(torch.where(first, pieces.not_starts, pieces.not_extends), -np.inf)
        agree = torch.zeros_like(typed, dtype=torch.bool)
        agree[place, at] = True
        scores[typing] = typed.masked_fill_(~agree, -np.inf)
        # Nothing below the k-th best, nor (with a target) below its floor...
        floors = torch.tensor([[_cut(query, kth)] for query, _ in flat], device=device)
        ruled_out = scores < floors
        # ...but what can still become the target: the search adds up its segmentations, and the floor is
        # the probability of one of them.
        beams, place, at = _agreeing(self.searcher.index, flat, firsts, lambda query: query.target, within=True)
        if len(at):
            rows = beams[place]
            owner = [flat[row][0] for row in rows.tolist()]
            values = scores[rows, at]
            followed = values >= torch.tensor([kth[query] for query in owner], device=device)
            exact = torch.tensor([query.exact for query in owner], device=device)
            # Unless `exact`, the segmentations cut stay cut: their probability only is added up.
            cut = ruled_out[rows, at] & followed & ~exact
            ruled_out[rows, at] = torch.where(exact, ~followed, ruled_out[rows, at])
            for query, value in zip([owner[i] for i in cut.nonzero()[:, 0].tolist()], values[cut].tolist()):
                query.unfollowed = float(np.logaddexp(query.unfollowed, value))
        return scores.masked_fill_(ruled_out, -np.inf)


def _promising(rows: Rows, flat: list[tuple[Query, _Beam]], kth: dict[Query, float]) -> list[tuple[Query, _Beam]]:
    """The (query, beam) pairs of `flat` whose likeliest next piece could make an extension `_scores` keeps:
    the others' rows of scores are never gathered (about 40% of an evaluation's beams)."""
    if not flat:
        return flat
    device = rows.pieces.device
    best = rows.peaks([beam.row for _, beam in flat])
    best += torch.tensor([beam.logprob for _, beam in flat], device=device)
    # As `_scores` cuts, in the same float32 arithmetic: below the k-th best and the floor, unless the beam can
    # still become the target, which is looked at down to the k-th best.
    least = [kth[query] if _spells_more(query.target, beam) else _cut(query, kth) for query, beam in flat]
    return list(compress(flat, (best >= torch.tensor(least, device=device)).tolist()))


def _cut(query: Query, kth: dict[Query, float]) -> float:
    """What an extension must reach to be followed: the k-th best word found, and (with a target) its floor."""
    return max(kth[query], query.floor - _FLOOR_MARGIN)


def _spells_more(word: str | None, beam: _Beam) -> bool:
    """Whether `beam` spells the start of `word` and has letters of it still to spell."""
    return word is not None and len(word) > len(beam.text) and word.startswith(beam.text)


def _agreeing(
    index: _PieceIndex, flat: list[tuple[Query, _Beam]], firsts: list[bool], letters, within: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where beams have `letters(query)` still to spell: (the beams' rows in `flat`; for each piece that
    agrees with them (see `_PieceIndex.agreeing`), its beam's place in those rows, and the piece)."""
    device = index.device
    rows, ids = [], [torch.zeros(0, dtype=torch.long, device=device)]
    for row, (query, beam) in enumerate(flat):
        word = letters(query)
        if _spells_more(word, beam):
            rows.append(row)
            ids.append(index.agreeing(firsts[row], word[len(beam.text) :], within))
    counts = torch.tensor([len(at) for at in ids[1:]], dtype=torch.long, device=device)
    places = torch.repeat_interleave(torch.arange(len(rows), device=device), counts)
    return torch.tensor(rows, dtype=torch.long, device=device), places, torch.cat(ids)
