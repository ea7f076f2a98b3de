"""The Kneser-Ney baseline: against a plain dictionary implementation, and as a model directory."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nextword import load
from nextword.cli import app
from nextword.ngram import NgramLM, count_ngrams, max_order

from conftest import TINY

VOCAB = 12


def _ids(n: int = 3000, seed: int = 0) -> np.ndarray:
    """A token stream with structure at several orders: a few repeated phrases, some noise."""
    rng = np.random.default_rng(seed)
    phrases = [[2, 3, 4], [2, 3, 5, 6], [7, 8], [9, 3, 4, 10], [11]]
    out: list[int] = []
    while len(out) < n:
        out += phrases[rng.integers(len(phrases))] if rng.random() < 0.9 else [int(rng.integers(VOCAB))]
    return np.array(out[:n])


def _reference(ids: np.ndarray, order: int):
    """Interpolated modified Kneser-Ney written the slow, obvious way, from the textbook formulas."""
    grams = {order: Counter(tuple(ids[i : i + order]) for i in range(len(ids) - order + 1))}
    for k in range(order - 1, 0, -1):  # continuation counts: distinct tokens seen before each shorter n-gram
        grams[k] = Counter(gram[1:] for gram in grams[k + 1])

    def discounts(counter: Counter) -> list[float]:
        n1, n2, n3, n4 = (sum(c == k for c in counter.values()) for k in range(1, 5))
        if not (n1 and n2):
            return [0.5, 1.0, 1.5]  # nextword's fixed discounts when there is nothing to estimate from
        y = n1 / (n1 + 2 * n2)
        estimates = [1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / max(n3, 1)]
        return [min(max(d, 0.05), k) for k, d in enumerate(estimates, 1)]

    table = {k: discounts(grams[k]) for k in grams}

    def probability(history: tuple[int, ...], word: int) -> float:
        p = 1 / VOCAB
        for k in range(1, order + 1):
            context = history[len(history) - k + 1 :] if k > 1 else ()
            followers = {g[-1]: c for g, c in grams[k].items() if g[:-1] == context}
            if not followers:
                break
            total = sum(followers.values())
            taken = sum(table[k][min(c, 3) - 1] for c in followers.values())
            own = followers[word] - table[k][min(followers[word], 3) - 1] if word in followers else 0.0
            p = own / total + taken / total * p
        return p

    return probability


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_match_the_textbook_formulas(order: int) -> None:
    ids = _ids()
    model = NgramLM(VOCAB, order, count_ngrams(ids, VOCAB, order))
    reference = _reference(ids, order)
    histories = [(2, 3, 4), (9, 3, 4), (0, 1, 7), (3, 5, 6), (11, 11, 11), (1, 1, 1)]
    for history in histories:
        history = history[len(history) - order + 1 :] if order > 1 else ()
        got = model.distributions(np.array([history], dtype=np.int64).reshape(1, order - 1))[0]
        want = np.array([reference(history, w) for w in range(VOCAB)])
        np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_each_distribution_sums_to_one(order: int) -> None:
    ids = _ids(seed=1)
    model = NgramLM(VOCAB, order, count_ngrams(ids, VOCAB, order))
    tokens = torch.from_numpy(_ids(40, seed=2)).reshape(2, 20)
    logprobs, state = model(tokens)
    assert logprobs.shape == (2, 20, VOCAB) and state.shape == (2, order - 1)
    np.testing.assert_allclose(logprobs.double().exp().sum(-1).numpy(), 1.0, rtol=1e-6)


def test_state_carries_the_history_and_scoring_agrees_with_the_distributions() -> None:
    ids = _ids(seed=3)
    model = NgramLM(VOCAB, 4, count_ngrams(ids, VOCAB, 4))
    tokens = torch.from_numpy(_ids(30, seed=4)).reshape(1, 30)
    whole, _ = model(tokens)
    first, state = model(tokens[:, :11])
    rest, _ = model(tokens[:, 11:], state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole)
    torch.testing.assert_close(model(tokens, last_only=True)[0], whole[:, -1:])
    targets = torch.roll(tokens, -1, dims=1)
    scored, _ = model.target_logprobs(tokens, targets)
    torch.testing.assert_close(scored.float(), whole.gather(2, targets[..., None])[..., 0])


def test_order_is_bounded_by_the_key_size() -> None:
    assert max_order(8000) == 5 and max_order(30) == 6
    with pytest.raises(ValueError, match="order must be between 1 and 5"):
        count_ngrams(_ids(), 8000, 6)


def test_train_predict_generate_evaluate_info_and_resume(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "ngram"
    runner = CliRunner()
    options = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "cell"]
    result = runner.invoke(
        app, ["train", str(corpus_file), "--cell", "ngram", "--order", "3", "--out", str(out), "--json", *options]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["cell"] == "ngram" and summary["parameters"] > 0 and summary["best_valid_word_perplexity"] < 5
    loaded = load(out)
    assert isinstance(loaded.model, NgramLM) and loaded.model.order == 3
    assert loaded.predict("anna has the red ", k=1)[0][0] == "ball"
    assert loaded.generate("anna gives", seed=1, max_words=5)
    evaluated = runner.invoke(app, ["evaluate", str(out), str(corpus_file), "--predict-words", "50", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"]["top5"] > 0.5
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0 and "Kneser-Ney" in info.stdout
    resumed = runner.invoke(app, ["train", str(corpus_file), "--out", str(out), "--resume"])
    assert resumed.exit_code == 2 and "nothing to resume" in resumed.stderr
    both = runner.invoke(
        app, ["train", str(corpus_file), "--cell", "ngram", "--bidirectional", "--out", str(tmp_path / "bi")]
    )
    assert both.exit_code == 2 and "drop --bidirectional" in both.stderr
    ensemble = runner.invoke(
        app, ["train", str(corpus_file), "--cell", "ngram", "--members", "3", "--out", str(tmp_path / "ens")]
    )
    assert ensemble.exit_code == 2 and "drop --members" in ensemble.stderr


def test_an_order_too_high_for_the_vocabulary_is_refused_before_writing(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nextword.kinds as kinds

    monkeypatch.setattr(kinds, "max_order", lambda vocab_size: 2)  # as for a vocabulary of 2**32 pieces
    result = CliRunner().invoke(
        app, ["train", str(corpus_file), "--cell", "ngram", "--order", "3", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2 and "option 'order' must be <= 2 with" in result.stderr
    assert not (tmp_path / "m").exists()
