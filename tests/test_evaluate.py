import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nextword import load
from nextword.errors import CorpusError
from nextword.tokenizer import EOS_ID
from nextword.evaluate import _keys_to_type, evaluate_file, stream_loss, word_metrics


@pytest.fixture(scope="module", params=["trained_model", "trained_bidirectional", "trained_adaptive",
                                        "trained_ngram"])
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
    assert totals.bits_per_char == pytest.approx(nll / math.log(2) / model.tokenizer.char_count(ids[1:]))


def _fixed_search(offers: dict[str, list[str]]):
    return lambda typed, k: [(word, 0.1) for word in offers.get(typed, [])[:k]]


@pytest.mark.parametrize("offers, keys", [
    ({"": ["cat", "dog", "cow"]}, 1),  # offered at once: one key to accept
    ({"": ["dog", "cow", "pig"], "c": ["cow", "cat"]}, 2),  # "c", then accept
    ({"": ["dog"], "c": ["cow"], "ca": ["car", "cab", "can"], "cat": ["cat"]}, 4),  # all letters, then accept
    ({}, 4),  # never offered: three letters and a space
    ({"": ["dog", "cow", "pig", "cat"]}, 4),  # fourth is beyond three suggestions
])
def test_keystrokes_match_hand_worked_examples(offers: dict, keys: int) -> None:
    search = _fixed_search(offers)
    offered = [w for w, _ in search("", 3)]
    assert _keys_to_type("cat", search, offered, 3) == keys


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
    sidecar.write_text("".join(json.dumps({"line": n, "word": 6, "expected": "anna", "distance": 5,
                                           "kind": "name"}) + "\n" for n in range(3)))
    result = evaluate_file(model, text, long_range=True, max_words=200)
    far = result["long_range"]
    assert far["targets"] == 3 and 0 <= far["recall"] <= 1 and 0 <= far["top1"] <= 1
    assert far["chance"] == 1  # a kind with one word: nothing to tell apart
    assert set(result["accuracy"]) == {"top1", "top3", "top5"} and 0 <= result["keystroke_savings"] <= 1
    assert result["words"] > 30 and math.isfinite(result["word_perplexity"])
    short = evaluate_file(model, text, max_words=5, suggestions=0)
    assert short["predicted_words"] == 5 and short["keystroke_savings"] is None


def test_long_range_targets_are_found_where_the_sidecar_says(model, monkeypatch) -> None:
    from nextword.evaluate import Target, long_range_accuracy

    text = ("ben has a small cup .\nanna has the red ball . dan gives the red ball to the cat .\n"
            "cora has a green hat .\n")
    ids = np.array(model.tokenizer.encode(text))
    seen = []
    original = model.searches_along

    def spy(ids_, positions):
        seen.extend(positions)
        return original(ids_, positions)

    monkeypatch.setattr(model, "searches_along", spy)
    targets = [Target(1, 6, "dan", 6, "name"), Target(2, 3, "green", 2, "colour"), Target(0, 1, "has", 1, "verb"),
               Target(5, 0, "x", 1, "name")]
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
    from nextword.evaluate import Target, long_range_accuracy

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
