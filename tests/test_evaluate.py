import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nextword import load
from nextword.errors import CorpusError
from nextword.tokenizer import EOS_ID
from nextword.evaluate import WordMetrics, evaluate_file, word_metrics
from nextword.loss import stream_loss


@pytest.fixture(scope="module", params=["trained_model", "trained_bidirectional", "trained_adaptive", "trained_ngram"])
def model(request: pytest.FixtureRequest):
    """Each test runs on every kind of model: recurrent, bidirectional-encoded, with an adaptive softmax,
    and the n-gram baseline."""
    return load(str(request.getfixturevalue(request.param)))


def test_perplexity_agrees_with_a_token_by_token_computation(model, corpus_file: Path) -> None:
    ids = np.array(model.tokenizer.encode(corpus_file.read_text()[:600]))
    totals = stream_loss(model.model, model.tokenizer, ids, seq_len=7, device=torch.device("cpu"), streams=1)
    nll, state = 0.0, None
    with torch.inference_mode():
        for current, following in zip(ids[:-1], ids[1:]):
            logits, state = model.model(torch.tensor([[int(current)]]), state)
            nll -= torch.log_softmax(logits[0, -1], dim=-1)[int(following)].item()
    assert totals.tokens == len(ids) - 1
    assert totals.nll == pytest.approx(nll, rel=1e-5)
    assert totals.words == model.tokenizer.word_count(ids[1:])
    assert totals.word_perplexity == pytest.approx(math.exp(nll / totals.words), rel=1e-5)
    assert totals.bits_per_char == pytest.approx(nll / math.log(2) / model.tokenizer.char_count(ids[1:], ids[:-1]))


# A file with CRLF line ends, an empty line, leading spaces and no line break at its end: its
# characters as read are 24 + 35 + 1 + 25 + 8 (the last line's missing line break counts one).
_LINES = b"anna has the red ball .\r\nben gives a small cup to the cat .\n\n  cora has a green hat .\ndan has"
_CHARACTERS = 93


@pytest.fixture(scope="module", params=["unigram", "bpe", "char"])
def tokenizer_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corpus_file: Path):
    """A barely trained model of each tokenizer kind: the arithmetic of the measure is what is tested."""
    from conftest import TINY

    from nextword.config import resolve
    from nextword.train import train

    out = tmp_path_factory.mktemp("kinds") / request.param
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEXTWORD_CACHE", str(tmp_path_factory.mktemp("cache")))
        train(resolve(TINY, {"tokenizer": request.param, "max_steps": 5, "eval_every": 5}), corpus_file, out)
    return load(str(out))


def test_bits_per_char_is_the_total_nll_over_the_characters_of_the_file(tokenizer_model, tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_bytes(_LINES)
    result = evaluate_file(tokenizer_model, path, suggestions=0)
    # Independently: each line's pieces and a line break, read one token at a time after a line break.
    tokenizer, tokens = tokenizer_model.tokenizer, [EOS_ID]
    for line in _LINES.decode().replace("\r\n", "\n").split("\n"):
        tokens += tokenizer.encode_line(line) + [EOS_ID]
    nll, state = 0.0, None
    with torch.inference_mode():
        for current, following in zip(tokens[:-1], tokens[1:]):
            logits, state = tokenizer_model.model(torch.tensor([[current]]), state)
            nll -= torch.log_softmax(logits[0, -1].double(), dim=-1)[following].item()
    assert (result["characters"], result["tokens"]) == (_CHARACTERS, len(tokens) - 1)
    assert result["bits_per_char"] == pytest.approx(nll / _CHARACTERS / math.log(2), abs=5e-5)
    assert result["word_perplexity"] == pytest.approx(math.exp(nll / 23), rel=1e-4)  # 23 words, "." among them
    # The first two lines alone: their tokens and characters only.
    first = evaluate_file(tokenizer_model, path, perplexity_lines=2, suggestions=0)
    assert first["characters"] == 24 + 35
    assert first["tokens"] == 2 + len(tokenizer.encode_line("anna has the red ball .")) + len(
        tokenizer.encode_line("ben gives a small cup to the cat .")
    )


def _slow_word_metrics(
    predictor, ids: np.ndarray, ks=(1, 3, 5), suggestions: int = 3, max_words: int | None = None
) -> WordMetrics:
    """The word metrics by their definition: at each word, `predict`'s search, then one search for each
    letter typed until the word is offered."""
    targets = predictor.tokenizer.words_at(ids, limit=max_words)
    hits, keys, chars = {k: 0 for k in ks}, 0, 0
    for (_, word), search in zip(targets, predictor.searches_along(ids, [position for position, _ in targets])):
        predicted = [w for w, _ in search("", max(*ks, suggestions))]
        for k in ks:
            hits[k] += word in predicted[:k]
        chars += len(word) + 1
        typed = next(
            (
                typed
                for typed in range(len(word) + 1)
                if word
                in (predicted if typed == 0 else [w for w, _ in search(word[:typed], suggestions)])[:suggestions]
            ),
            len(word),
        )
        keys += typed + 1
    return WordMetrics(len(targets), hits, keys, chars)


def test_word_metrics_equal_their_slow_definition(model, corpus_file: Path) -> None:
    text = corpus_file.read_text()[:900]
    ids = np.array(model.tokenizer.encode(text))
    fast = word_metrics(model, ids, ks=(1, 3, 5), suggestions=3)
    assert fast == _slow_word_metrics(model, ids)
    assert fast.words == len(model.tokenizer.words_at(ids))
    # A model that knows little misses often: both kinds of search outcome are compared.
    assert 0 < fast.hits[1] < fast.words and fast.keys > fast.words


def test_word_metrics_and_loss_whatever_the_stretches_read_side_by_side(model, corpus_file: Path, monkeypatch) -> None:
    from nextword import evaluate

    text = corpus_file.read_text()[:700]
    ids = np.array(model.tokenizer.encode(text))
    expected = _slow_word_metrics(model, ids)
    # Stretches of 5 tokens, 3 side by side: many blocks, and a last stretch cut short.
    monkeypatch.setattr(evaluate, "_STRIDE", 5)
    monkeypatch.setattr(evaluate, "_BLOCK", 3)
    nll, metrics = evaluate.read_text(model, ids, scored=len(ids), ks=(1, 3, 5), suggestions=3)
    assert metrics == expected
    reference = stream_loss(
        model.model, model.tokenizer, np.concatenate([[EOS_ID], ids]), seq_len=64, device=torch.device("cpu"), streams=1
    )
    assert nll == pytest.approx(reference.nll, rel=1e-5)


def test_the_targets_segmentations_below_its_floor_are_followed_where_they_could_matter(
    model, corpus_file: Path, monkeypatch
) -> None:
    from nextword import search

    ids = np.array(model.tokenizer.encode(corpus_file.read_text()[:900]))
    quick = word_metrics(model, ids, ks=(1, 3, 5), suggestions=3)
    # Every search rerun in full, as where their probability could change the target's place: the same.
    certain = search.Query.certain
    monkeypatch.setattr(search.Query, "certain", lambda query: query.exact and certain(query))
    assert word_metrics(model, ids, ks=(1, 3, 5), suggestions=3) == quick
    # Every search following all of them from the start: the same.
    monkeypatch.setattr(search.Query, "certain", certain)
    start = search.Query.__post_init__

    def exact(query: search.Query) -> None:
        query.exact = True
        start(query)

    monkeypatch.setattr(search.Query, "__post_init__", exact)
    assert word_metrics(model, ids, ks=(1, 3, 5), suggestions=3) == quick


def test_the_beams_a_search_leaves_unread_could_not_have_changed_a_prediction(
    model, corpus_file: Path, monkeypatch
) -> None:
    from nextword import search

    ids = np.array(model.tokenizer.encode(corpus_file.read_text()[:900]))
    promising, counts = search._promising, [0, 0]

    def counted(rows, flat, kth):
        kept = promising(rows, flat, kth)
        counts[0], counts[1] = counts[0] + len(flat), counts[1] + len(kept)
        return kept

    monkeypatch.setattr(search, "_promising", counted)
    pruned = word_metrics(model, ids, ks=(1, 3, 5), suggestions=3)
    assert counts[1] < counts[0]  # some beams were left unread
    monkeypatch.setattr(search, "_promising", lambda rows, flat, kth: flat)
    assert word_metrics(model, ids, ks=(1, 3, 5), suggestions=3) == pruned  # every beam's scores read: the same


def test_rows_come_back_in_the_order_asked_across_chunks_and_after_keep(model) -> None:
    from nextword.search import Rows

    pieces = model.pieces
    with torch.inference_mode():
        first = pieces.run(torch.tensor([[EOS_ID, 5], [EOS_ID, 7], [EOS_ID, 9]]))
        second = pieces.run(torch.tensor([[EOS_ID, 11], [EOS_ID, 13]]))
        rows = Rows(pieces)
        a, b = rows.add(*first), rows.add(*second)
        asked = [b[1], a[0], b[0], a[2]]
        expected = torch.cat([second[0][1:2], first[0][0:1], second[0][0:1], first[0][2:3]])

        def check(rows_asked: list[int], logprobs_expected: torch.Tensor) -> None:
            logprobs, state = rows.take(rows_asked)
            assert torch.equal(logprobs, logprobs_expected)
            step = torch.full((len(rows_asked), 1), 3)  # the states too: one more step from each
            together = pieces.run(step, state)[0]
            alone = torch.cat([pieces.run(step[:1], rows.state([row]))[0] for row in rows_asked])
            assert torch.allclose(together, alone, atol=1e-5)

        check(asked, expected)
        assert rows.end(a[0]) == pytest.approx(torch.logsumexp(first[0][0, pieces.ends], 0).item(), abs=1e-6)
        # Many rows no longer needed: the two kept are copied into one chunk, and read back the same.
        many = rows.add(first[0][:1].expand(2000, -1), model.model.select_state(first[1], torch.zeros(2000).long()))
        rows.keep({b[1], a[0], many[7]})
        check([b[1], a[0], many[7]], torch.cat([expected[:2], first[0][:1]]))
        with pytest.raises(KeyError):
            rows.take([a[1]])


def test_word_metrics_on_a_learnable_text(model, corpus_file: Path) -> None:
    ids = np.array(model.tokenizer.encode(corpus_file.read_text()[:2000]))
    metrics = word_metrics(model, ids, ks=(1, 3, 5), suggestions=3, max_words=60)
    assert metrics.words == 60
    assert metrics.hits[1] <= metrics.hits[3] <= metrics.hits[5] <= 60
    assert metrics.accuracy(5) > 0.5  # the corpus is very regular
    assert 0.3 < metrics.keystroke_savings < 1
    # Reading the text once gives what `predict` says when given the text up to each word.
    positions = [position for position, _ in model.tokenizer.words_at(ids)[1:6]]
    for position, search in zip(positions, model.searches_along(ids, positions)):
        context = model.tokenizer.decode(ids[:position]) + " "
        once, fresh = search("", 5), model.predict(context, k=5)
        assert [w for w, _ in once] == [w for w, _ in fresh]
        assert [p for _, p in once] == pytest.approx([p for _, p in fresh], rel=1e-4)


def test_evaluate_file_and_its_long_range_sidecar(model, tmp_path: Path) -> None:
    text = tmp_path / "far.txt"
    text.write_text("anna has the red ball . anna gives the red ball to the cat .\n" * 3)
    with pytest.raises(CorpusError, match="--long-range needs far.txt.targets.jsonl"):
        evaluate_file(model, text, long_range=True)
    sidecar = tmp_path / "far.txt.targets.jsonl"
    sidecar.write_text(
        "".join(
            json.dumps({"line": n, "word": 6, "expected": "anna", "distance": 5, "kind": "name"}) + "\n"
            for n in range(3)
        )
    )
    result = evaluate_file(model, text, long_range=True, predict_words=200)
    far = result["long_range"]
    assert far["targets"] == 3 and 0 <= far["recall"] <= 1 and 0 <= far["top1"] <= 1
    assert far["chance"] == 1  # a kind with one word: nothing to tell apart
    assert set(result["accuracy"]) == {"top1", "top3", "top5"} and 0 <= result["keystroke_savings"] <= 1
    assert result["words"] > 30 and math.isfinite(result["word_perplexity"])
    short = evaluate_file(model, text, predict_words=5, suggestions=0)
    assert short["predicted_words"] == 5 and short["keystroke_savings"] is None
    # --predict-words bounds the long-range words too: those of the lines its words reach (a line: 13 words).
    for words, lines in ((13, 1), (14, 2)):
        reached = evaluate_file(model, text, long_range=True, predict_words=words, suggestions=0)["long_range"]
        assert reached["targets"] == lines, (words, reached)


def test_long_range_targets_are_found_where_the_sidecar_says(model, monkeypatch) -> None:
    from nextword.evaluate import long_range_accuracy
    from nextword.targets import Target

    text = (
        "ben has a small cup .\nanna has the red ball . dan gives the red ball to the cat .\ncora has a green hat .\n"
    )
    ids = np.array(model.tokenizer.encode(text))
    seen = []
    original = model.searches_along

    def spy(ids_, positions):
        seen.extend(positions)
        return original(ids_, positions)

    monkeypatch.setattr(model, "searches_along", spy)
    targets = [
        Target(1, 6, "dan", 6, "name"),
        Target(2, 3, "green", 2, "colour"),
        Target(0, 1, "has", 1, "verb"),
        Target(5, 0, "x", 1, "name"),
    ]
    result = long_range_accuracy(model, ids, 0, targets)
    words = dict(model.tokenizer.words_at(ids))
    assert sorted(words[p] for p in seen) == ["dan", "green", "has"]  # the missing line is skipped
    assert result.to_dict()["targets"] == 3
    # Validation text that starts inside line 0: its first whole line is line 1.
    cut = text.index("red")
    tail = np.array(model.tokenizer.encode(text[cut:]))
    seen.clear()
    long_range_accuracy(model, tail, 2, [Target(2, 3, "green", 2, "colour"), Target(1, 0, "anna", 1, "name")])
    assert [dict(model.tokenizer.words_at(tail))[p] for p in seen] == ["green"]


def test_word_logprobs_agree_with_a_token_by_token_computation(model) -> None:
    tokenizer = model.tokenizer
    ids = np.array(tokenizer.encode("anna has the red ball . anna gives the red ball to the cat .\nben has"))
    position = [p for p, _ in tokenizer.words_at(ids)][-1]  # before "has"
    words = ["has", "gives", "cat", "anna", "zebra"]
    search = next(model.searches_along(ids, [position]))
    ends = torch.from_numpy(tokenizer.ends_word)

    def step(token: int, state):
        logits, state = model.model(torch.tensor([[token]]), state)
        return torch.log_softmax(logits[0, -1].float(), dim=-1), state

    with torch.inference_mode():
        for word, scored in zip(words, search.logprobs_of(words)):
            state = None
            for token in [EOS_ID, *(int(i) for i in ids[:position])]:
                dist, state = step(token, state)
            logprob = 0.0
            for piece in tokenizer.encode_line(word):  # each piece of the word, then a word boundary
                logprob += dist[piece].item()
                dist, state = step(piece, state)
            logprob += torch.logsumexp(dist[ends], dim=0).item()
            assert scored == pytest.approx(logprob, abs=1e-4)


def test_recall_asks_whether_the_cue_word_beats_the_others_of_its_kind(model, corpus_file: Path) -> None:
    from nextword.evaluate import long_range_accuracy
    from nextword.targets import Target

    # "anna has the red ball . anna gives ...": the second name repeats the first, three words apart.
    lines = corpus_file.read_text().splitlines()[:40]
    targets = [Target(n, 6, line.split()[0], 5, "name") for n, line in enumerate(lines)]
    targets += [Target(n, 1, "has", 40, "verb") for n in range(len(lines))]  # one word of its kind: recalled
    ids = np.array(model.tokenizer.encode("\n".join(lines) + "\n"))
    result = long_range_accuracy(model, ids, 0, targets).to_dict()
    names = result["by_distance"]["1-5"]
    assert names["targets"] == 40 and names["chance"] == pytest.approx(0.25)
    assert names["top1"] <= names["recall"]  # the first of all words is also the first of its kind
    verbs = result["by_distance"]["31-60"]
    assert (verbs["recall"], verbs["chance"], verbs["targets"]) == (1.0, 1.0, 40)
