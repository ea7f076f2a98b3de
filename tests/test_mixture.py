"""Model kinds as peers, the neural + n-gram mixture and its cache of the document (kinds.py, mixture.py)."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY, sentence_corpus
from nextword import checkpoint, kinds
from nextword.cli import app
from nextword.config import load, resolve
from nextword.evaluate import word_metrics
from nextword.loss import stream_loss
from nextword.model import evaluating
from nextword.mixture import (
    CONFIDENCE_EDGES,
    HALF_LIVES,
    PLACES,
    WEIGHT_FLOOR,
    MixtureLM,
    UnigramCache,
    fit_weights,
    held_out_nll,
    places_of,
    renormalised,
)
from nextword.neural_cache import THETAS, NeuralCache, Peaks, typical_weight
from nextword.pieces import PieceModel
from nextword.predict import Predictor
from nextword.tokenizer import EOS_ID
from nextword.train import train


@pytest.fixture(scope="module")
def loaded(trained_model: Path) -> checkpoint.LoadedModel:
    return checkpoint.load(trained_model)


def _ids(loaded: checkpoint.LoadedModel, rows: int = 2, length: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, loaded.tokenizer.vocab_size, (rows, length), generator=torch.Generator().manual_seed(seed))


def test_training_fits_a_mixture_by_default_and_the_manifest_names_it(loaded: checkpoint.LoadedModel) -> None:
    assert loaded.manifest["kind"] == "mixture" and loaded.manifest["format"] == checkpoint.FORMAT == 3
    assert isinstance(loaded.model, MixtureLM) and loaded.model.use_cache
    assert list(loaded.components()) == ["neural", "ngram", "mixture", "mixture+cache"]
    assert loaded.default_component == "mixture+cache"
    report = loaded.manifest["mixture"]
    assert report["half_life"] in HALF_LIVES and report["order"] == loaded.settings.model.order
    assert math.isfinite(loaded.model.neural_cache.typical)  # fitted on validation with the rest
    named = "n-gram" if loaded.model.confidence is None else "confidence"
    assert report["cache_buckets"] == named + ("" if loaded.model.places is None else " and place")
    # Fitted on validation, each mixture is at least as good there as the components it mixes, but for what the
    # weights' floor may cost (where one component alone would do best, the others keep WEIGHT_FLOOR each).
    losses, slack = report["valid_loss"], -math.log(1 - 3 * WEIGHT_FLOOR)
    assert losses["mixture"] <= min(losses["neural"], losses["ngram"]) + slack
    assert losses["mixture+cache"] <= losses["mixture"] + slack
    assert loaded.summary["mixture"] == report


def test_every_component_gives_distributions_that_sum_to_one_in_every_state(loaded: checkpoint.LoadedModel) -> None:
    for name, model in loaded.components().items():
        state = None
        for segment in _ids(loaded, length=30).split(10, dim=1):
            with torch.inference_mode():
                logprobs, state = model(segment, state)
            sums = torch.log_softmax(logprobs.float(), -1).exp().sum(-1) if name == "neural" else logprobs.exp().sum(-1)
            assert logprobs.shape == (2, 10, loaded.tokenizer.vocab_size)
            assert torch.allclose(sums, torch.ones_like(sums), atol=1e-4), name


def _bucketed_by(model: MixtureLM, bucketing: str) -> MixtureLM:
    """`model` with other weights for the caches, one set per confidence bucket (and place, each piece's drawn
    at random), or per n-gram bucket."""
    generator = torch.Generator().manual_seed(0)
    edges = torch.tensor(CONFIDENCE_EDGES) if bucketing.startswith("confidence") else None
    places = torch.randint(0, len(PLACES), (model.vocab_size,), generator=generator) if "place" in bucketing else None
    rows = model.ngram.buckets if edges is None else (len(edges) + 1) * (1 if places is None else len(PLACES))
    weights = torch.softmax(torch.randn(rows, 4, generator=generator).double(), 1)
    return MixtureLM(
        model.neural, model.ngram, model.weights, weights, model.cache.half_life, model.neural_cache, edges, places
    )


@pytest.mark.parametrize("name", ["mixture", "mixture+cache", "by confidence", "by confidence and place", "by n-gram"])
def test_target_logprobs_carried_over_segments_equal_the_full_distributions(
    loaded: checkpoint.LoadedModel, name: str
) -> None:
    model = (
        _bucketed_by(loaded.model, name.removeprefix("by ")) if name.startswith("by ") else loaded.components()[name]
    )
    ids = _ids(loaded, length=41)
    with torch.inference_mode():
        full, _ = model(ids[:, :-1])
        expected = full.gather(-1, ids[:, 1:, None]).squeeze(-1)
        state, pieces = None, []
        for start in range(0, 40, 16):  # segments of 16, 16 and 8, the state carried as evaluation carries it
            end = min(start + 16, 40)
            logprobs, state = model.target_logprobs(ids[:, start:end], ids[:, start + 1 : end + 1], state)
            pieces.append(logprobs)
        also, _ = model(ids[:, :20])  # the full distributions carried over two segments too
        then, _ = model(ids[:, 20:40], model(ids[:, :20])[1])
    assert torch.allclose(torch.cat(pieces, 1), expected, atol=1e-5)
    assert torch.allclose(torch.cat([also, then], 1), full, atol=1e-5)


def test_stream_loss_of_the_mixture_is_the_sum_of_its_full_distributions(loaded: checkpoint.LoadedModel) -> None:
    ids = _ids(loaded, rows=1, length=60)[0].numpy()
    totals = stream_loss(loaded.model, loaded.tokenizer, ids, seq_len=16, device=torch.device("cpu"), streams=1)
    with torch.inference_mode():
        full, _ = loaded.model(torch.from_numpy(ids[None, :-1]))
    nll = -full.gather(-1, torch.from_numpy(ids[None, 1:, None])).sum().item()
    assert totals.tokens == len(ids) - 1 and totals.nll == pytest.approx(nll, rel=1e-5)


@pytest.mark.parametrize("bucketing", ["confidence", "confidence and place", "n-gram"])
@pytest.mark.parametrize("window", [2000, 6])
def test_the_last_only_step_is_the_full_distributions_last_row(
    loaded: checkpoint.LoadedModel, bucketing: str, window: int
) -> None:
    """Prediction's path (`last_only`: predict, sessions, serve and the word search) against the full
    distributions' last row, with both caches, from empty states and from carried ones, and then a piece
    at a time for rows selected and joined as a search steps its beams; with a window shorter than the
    text too, so that the neural cache's window cuts in."""
    model = _bucketed_by(loaded.model, bucketing)
    model.neural_cache = NeuralCache(model.neural_cache.theta, window=window)
    ids = _ids(loaded, rows=3, length=33, seed=1)
    with torch.inference_mode():
        for start in (None, model(ids[:, :12])[1]):
            segment = ids[:, 12:30] if start is not None else ids[:, :12]
            full, full_state = model(segment, start)
            last, last_state = model(segment, start, last_only=True)
            assert last.shape == (3, 1, loaded.tokenizer.vocab_size)
            assert torch.allclose(last[:, 0], full[:, -1], atol=1e-5)
            rows, thirds = torch.tensor([0, 0, 2, 1, 2]), (slice(2), slice(2, 3), slice(3, 5))
            states = [model.select_state(state, rows) for state in (full_state, last_state)]
            for piece in range(30, 33):  # beams: the same rows read on, one row joined from elsewhere
                step = ids[rows, piece : piece + 1]
                (full, full_state), (last, last_state) = (model(step, state) for state in states)
                assert torch.allclose(last[:, 0], full[:, -1], atol=1e-5)
                assert torch.allclose(model(step, states[0], last_only=True)[0], full, atol=1e-5)
                states = [
                    model.join_states([model.select_state(state, rows[at]) for at in thirds])
                    for state in (full_state, last_state)
                ]


@pytest.mark.parametrize("bucketing", ["as fitted", "confidence and place"])
def test_the_cache_never_looks_ahead(loaded: checkpoint.LoadedModel, bucketing: str) -> None:
    model = loaded.model if bucketing == "as fitted" else _bucketed_by(loaded.model, bucketing)
    ids = _ids(loaded, rows=1, length=30)
    changed = ids.clone()
    changed[0, 15:] = (changed[0, 15:] + 1) % loaded.tokenizer.vocab_size
    with torch.inference_mode():
        before, _ = model(ids)
        after, _ = model(changed)
        targets, _ = model.target_logprobs(ids, changed)  # the targets differ from position 14 on
    assert torch.allclose(before[:, :15], after[:, :15], atol=1e-6, rtol=0)
    assert not torch.allclose(before[:, 15:], after[:, 15:])
    # The cache's counts at each position are those of the pieces read so far, decayed.
    cache = UnigramCache(2.0)
    at, total, counts = cache.distributions(None, ids, loaded.tokenizer.vocab_size, last_only=False)
    expected = torch.zeros(loaded.tokenizer.vocab_size, dtype=torch.float64)
    for t in range(ids.shape[1]):
        expected = expected * 0.5**0.5
        expected[ids[0, t]] += 1
        assert torch.allclose(at[0, t].double(), expected)
        assert total[0, t].item() == pytest.approx(expected.sum().item())
    assert torch.allclose(counts[0].double(), expected) and torch.isfinite(targets).all()
    # Prediction's shortcut (the last position only) gives the same, from empty counts and from counts carried.
    for start in (None, counts):
        full, full_total, full_after = cache.distributions(start, ids, loaded.tokenizer.vocab_size, last_only=False)
        last, last_total, last_after = cache.distributions(start, ids, loaded.tokenizer.vocab_size, last_only=True)
        assert torch.allclose(last[:, 0], full[:, -1]) and torch.allclose(last_after, full_after)
        assert last_total[:, 0].double() == pytest.approx(full_total[:, -1].double())


def test_the_place_is_what_the_last_piece_read_leaves_and_picks_the_cache_weights(
    loaded: checkpoint.LoadedModel,
) -> None:
    tokenizer = loaded.tokenizer
    places = places_of(tokenizer).numpy()
    letters = tokenizer.starts_word | tokenizer.extends_word
    assert places[EOS_ID] == PLACES.index("after a line break")
    assert np.array_equal(places == PLACES.index("in a word"), letters)
    assert set(places[~letters & (np.arange(len(places)) != EOS_ID)]) == {PLACES.index("elsewhere")}
    model = _bucketed_by(loaded.model, "confidence and place")
    sure = len(CONFIDENCE_EDGES)  # the bucket of a peak above the last edge
    for place in range(len(PLACES)):
        weights = model._weights.with_caches(None, np.array([[0.99]]), [np.ones((1, 1))] * 2, np.array([[place]]))
        assert np.allclose(weights[0, 0], model.cache_weights[sure * len(PLACES) + place].numpy())


def test_the_weights_are_distributions_and_round_trip_through_the_directory(
    trained_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(trained_model, out)
    model = checkpoint.load(out).model
    for table in (model.weights, model.cache_weights):
        assert torch.all((table >= 0) & (table <= 1)) and torch.allclose(table.sum(1), torch.ones(len(table)).double())
    assert model.cache_weights.shape[1] == 4 and model.neural_cache.theta in THETAS
    places = places_of(checkpoint.load(out).tokenizer)
    # By confidence and place; by confidence alone (from before the places); by n-gram bucket (from before that).
    edges = torch.tensor([0.3, 0.6, 0.9])
    for confidence, by_place in ((edges, places), (edges, None), (None, None)):
        rows = model.ngram.buckets if confidence is None else 4 * (1 if by_place is None else len(PLACES))
        changed = MixtureLM(
            model.neural,
            model.ngram,
            model.weights.flip(1),
            torch.full((rows, 4), 0.25).double(),
            300.0,
            NeuralCache(12.5, window=700, typical=None if by_place is None else 4.5),
            confidence,
            by_place,
        )
        kinds.MIXTURE_KIND.save(out, changed)
        again = checkpoint.load(out).model
        assert torch.equal(again.weights, changed.weights) and torch.equal(again.cache_weights, changed.cache_weights)
        assert again.cache.half_life == 300.0
        assert (again.neural_cache.theta, again.neural_cache.window) == (12.5, 700)
        assert again.neural_cache.typical == changed.neural_cache.typical
        assert (again.confidence is None) == (confidence is None)
        assert confidence is None or torch.equal(again.confidence, confidence)
        assert (again.places is None) == (by_place is None) and (by_place is None or torch.equal(again.places, places))
    with pytest.raises(ValueError, match="confidence edges must increase"):
        MixtureLM(
            model.neural,
            model.ngram,
            model.weights,
            torch.full((3, 4), 0.25).double(),
            300.0,
            NeuralCache(12.5),
            torch.tensor([0.5, 0.2]),
        )
    changed.neural_cache = NeuralCache(12.5, typical=math.nan)
    kinds.MIXTURE_KIND.save(out, changed)
    with pytest.raises(checkpoint.ModelDirError, match="typical weight nan must be a finite number"):
        checkpoint.load(out)
    save = {"weights": -model.weights, "cache_weights": model.cache_weights, "half_life": torch.ones(1).double()}
    from safetensors.torch import save_file

    save_file(save, str(out / kinds.MIXTURE_FILE))
    with pytest.raises(checkpoint.ModelDirError, match="mixture.safetensors does not match"):
        checkpoint.load(out)


def test_a_mixture_from_before_the_neural_cache_loads_and_predicts_with_its_unigram_cache(
    trained_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "before"
    shutil.copytree(trained_model, out)
    model = checkpoint.load(out).model
    three = torch.softmax(torch.randn(model.ngram.buckets, 3, generator=torch.Generator().manual_seed(0)).double(), 1)
    from safetensors.torch import save_file

    save_file(
        {"weights": model.weights, "cache_weights": three, "half_life": torch.tensor([100.0]).double()},
        str(out / kinds.MIXTURE_FILE),
    )  # as written before: no theta, three weights per bucket
    loaded = checkpoint.load(out)
    assert loaded.model.neural_cache is None and torch.equal(loaded.model.cache_weights, three)
    words = Predictor(loaded).predict("anna has the red ", k=3)
    assert len(words) == 3 and all(0 < p <= 1 for _, p in words)
    assert "neural cache" not in loaded.kind.describe(loaded.model, loaded.settings.model)


def test_a_mixture_from_before_the_confidence_buckets_loads_and_predicts(trained_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "before"
    shutil.copytree(trained_model, out)
    model = checkpoint.load(out).model
    from safetensors.torch import save_file

    four = torch.full((model.ngram.buckets, 4), 0.25).double()
    save_file(
        {
            "weights": model.weights,
            "cache_weights": four,
            "half_life": torch.tensor([100.0]).double(),
            "theta": torch.tensor([10.0]).double(),
            "window": torch.tensor([2000]),
        },
        str(out / kinds.MIXTURE_FILE),
    )  # as written before: θ, but four weights per n-gram bucket, no edges
    loaded = checkpoint.load(out)
    assert loaded.model.confidence is None and loaded.model.neural_cache.theta == 10.0
    assert loaded.model.neural_cache.typical is None  # its confidence counts the entries read alone, as before
    words = Predictor(loaded).predict("anna has the red ", k=3)
    assert len(words) == 3 and all(0 < p <= 1 for _, p in words)
    assert "weights by the n-gram's context" in loaded.kind.describe(loaded.model, loaded.settings.model)


def test_held_out_nll_prefers_buckets_that_mean_something_to_more_buckets_that_do_not() -> None:
    generator = torch.Generator().manual_seed(0)
    pieces = 4000
    probabilities = (0.05 + 0.9 * torch.rand(pieces, 2, generator=generator)).double()
    one = torch.zeros(pieces, dtype=torch.long)
    noise = torch.randint(0, 8, (pieces,), generator=generator)
    assert fit_weights(probabilities, noise, 8)[1] < fit_weights(probabilities, one, 1)[1]  # fitted on: noise wins
    assert held_out_nll(probabilities, noise, 8) > held_out_nll(probabilities, one, 1)  # held out: it loses
    meaning = (probabilities[:, 1] > probabilities[:, 0]).long()  # which component is right, a bucket apart
    assert held_out_nll(probabilities, meaning, 2) < held_out_nll(probabilities, one, 1) - 0.05


def test_fit_weights_finds_the_component_that_predicts_and_keeps_rare_buckets_shared() -> None:
    rows = 3000
    probabilities = torch.stack([torch.full((rows,), 0.9), torch.full((rows,), 0.01)], 1).double()
    buckets = torch.zeros(rows, dtype=torch.long)
    buckets[:10] = 1  # too few pieces for a bucket of its own
    weights, nll = fit_weights(probabilities, buckets, 3)
    # All the weight it may have: the other keeps the floor.
    assert weights[0, 0] == pytest.approx(1 - WEIGHT_FLOOR, abs=1e-4) and weights.min() >= WEIGHT_FLOOR - 1e-12
    assert torch.equal(weights[1], weights[0]) and torch.equal(weights[2], weights[0])
    assert nll == pytest.approx(-np.log((1 - WEIGHT_FLOOR) * 0.9 + WEIGHT_FLOOR * 0.01), abs=1e-3)
    # Where each is right half the time, the best mixture is half and half.
    probabilities[::2] = torch.tensor([0.9, 0.1]).double()
    probabilities[1::2] = torch.tensor([0.1, 0.9]).double()
    weights, _ = fit_weights(probabilities, buckets, 3)
    assert torch.allclose(weights[0], torch.tensor([0.5, 0.5]).double(), atol=1e-3)


def test_a_format_2_directory_loads_and_predicts(trained_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "old"
    shutil.copytree(trained_model, out)
    for name in kinds.FILES:
        (out / name).unlink()
    manifest = json.loads((out / checkpoint.MANIFEST).read_text())
    manifest.update(format=2, kind="causal")
    del manifest["mixture"]
    (out / checkpoint.MANIFEST).write_text(json.dumps(manifest))
    loaded = checkpoint.load(out)
    assert loaded.manifest["kind"] == "neural" and list(loaded.components()) == ["neural"]
    words = Predictor(loaded).predict("anna has the red ", k=3)
    assert len(words) == 3 and all(0 < p <= 1 for _, p in words)


def test_components_predict_and_unknown_ones_are_refused(trained_model: Path) -> None:
    loaded = checkpoint.load(trained_model)
    for name in loaded.components():
        predictor = Predictor(loaded, component=name)
        assert predictor.model is loaded.components()[name] or name == "mixture"
        assert predictor.predict("anna has the red ", k=2)
    with pytest.raises(checkpoint.ConfigError, match="no component 'cache'.*neural, ngram, mixture"):
        Predictor.load(trained_model, component="cache")


def test_no_mixture_leaves_a_neural_model(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "plain"
    summary = train(resolve(TINY, {"mixture": False, "max_steps": 20}), corpus_file, out)
    loaded = checkpoint.load(out)
    assert summary.mixture is None and loaded.manifest["kind"] == "neural" and list(loaded.components()) == ["neural"]
    assert not any((out / name).exists() for name in kinds.FILES)


def test_init_refits_the_ngram_and_the_weights_on_the_new_text(tmp_path: Path, trained_model: Path) -> None:
    new_text = tmp_path / "new.txt"
    new_text.write_text("dan gives the old book to anna .\n" * 300, encoding="utf-8")
    out = tmp_path / "personal"
    train(load(flags={"max_steps": 10}, init=trained_model), new_text, out, init=trained_model)
    before, after = checkpoint.load(trained_model), checkpoint.load(out)
    assert after.manifest["kind"] == "mixture"
    assert after.model.ngram.entries != before.model.ngram.entries
    ids = np.asarray(after.tokenizer.encode("dan gives the old book to anna ."))
    history = np.stack([np.concatenate([[0] * 4, ids])[i : i + after.model.ngram.order - 1] for i in range(len(ids))])
    # Counted on the new text alone, which repeats one line: after its first pieces, the n-gram knows the rest.
    assert after.model.ngram.probabilities(history[4:], ids[4:]).min() > 0.9
    assert not torch.equal(after.model.cache_weights, before.model.cache_weights)


def _knows(model, tokenizer, line: str) -> float:
    """The n-gram's least probability of a line's pieces after its first four: high where it counted the line."""
    ids = np.asarray(tokenizer.encode(line))
    history = np.stack([np.concatenate([[0] * 4, ids])[i : i + model.order - 1] for i in range(len(ids))])
    return float(model.probabilities(history[4:], ids[4:]).min())


def test_the_counted_parts_take_in_the_validation_split_once_it_has_measured_them_but_not_for_compare(
    tmp_path: Path,
) -> None:
    from nextword.lexicon import read_lexicon
    from nextword.train import prepare

    latest = "zed brings a blue kite"
    corpus = tmp_path / "notes.txt"  # the latest lines, only in the validation split (its last 5%)
    corpus.write_text(sentence_corpus(400) + f"{latest} to the dog .\n" * 12, encoding="utf-8")
    data = prepare(corpus, resolve(TINY, {}))
    assert "kite" in data.tokenizer.decode(data.valid_ids.tolist())
    assert "kite" not in data.tokenizer.decode(data.train_ids.tolist())
    ngram = {"cell": "ngram", "order": 5}
    runs = {"mixture": (data, {}), "n-gram": (data, ngram), "compare": (replace(data, count_validation=False), ngram)}
    for name, (prepared, changes) in runs.items():
        train(resolve(TINY, {"max_steps": 10, **changes}), prepared, tmp_path / name)
    for name in runs:
        loaded = checkpoint.load(tmp_path / name)
        ngram = loaded.model.ngram if name == "mixture" else loaded.model
        counted = name != "compare"
        assert (_knows(ngram, loaded.tokenizer, latest) > 0.5) is counted, name
        assert ("kite" in read_lexicon(tmp_path / name / checkpoint.LEXICON).counts) is counted, name
    # The weights were fitted with the n-gram of the training split: validation scored one that had not seen it.
    mixture = checkpoint.load(tmp_path / "mixture")
    seen = stream_loss(
        mixture.model.ngram, mixture.tokenizer, data.valid_ids, seq_len=16, device=torch.device("cpu"), streams=1
    )
    assert mixture.manifest["mixture"]["valid_loss"]["ngram"] > seen.loss + 0.5


def test_evaluate_info_and_export_name_the_components(trained_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    text = tmp_path / "held_out.txt"
    text.write_text(sentence_corpus(20, seed=5), encoding="utf-8")
    evaluate = ["evaluate", str(trained_model), str(text), "--predict-words", "40"]
    result = runner.invoke(app, [*evaluate, "--component", "all", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)["components"]
    assert list(scores) == ["neural", "ngram", "mixture", "mixture+cache"]
    assert scores["mixture"]["word_perplexity"] < scores["neural"]["word_perplexity"]
    table = runner.invoke(app, [*evaluate, "--component", "all"])
    assert table.exit_code == 0 and "mixture+cache" in table.stdout and "word perplexity" in table.stdout
    assert re.search(r"words predicted\s*│\s*40\s*│", table.stdout)  # the accuracies' words, not all scored
    one = runner.invoke(app, [*evaluate, "--component", "ngram", "--json"])
    assert json.loads(one.stdout)["component"] == "ngram"
    assert json.loads(one.stdout)["word_perplexity"] == pytest.approx(scores["ngram"]["word_perplexity"])
    info = runner.invoke(app, ["info", str(trained_model), "--json"])
    details = json.loads(info.stdout)
    assert details["kind"] == "mixture" and details["components"][-1] == "mixture+cache"
    assert "mixture of lstm" in runner.invoke(app, ["info", str(trained_model)]).stdout
    exported = runner.invoke(
        app, ["export", str(trained_model), "--format", "torchscript", "--out", str(tmp_path / "step.pt")]
    )
    assert exported.exit_code == 0 and exported.stdout.startswith("note: exported the neural part only")


def test_an_ngram_of_order_5_still_trains_and_predicts(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "kn5"
    result = CliRunner().invoke(
        app,
        ["train", str(corpus_file), "--cell", "ngram", "--order", "5", "--vocab-size", "30", "--out", str(out), "-q"],
    )
    assert result.exit_code == 0, result.output
    loaded = checkpoint.load(out)
    assert loaded.manifest["kind"] == "ngram" and list(loaded.components()) == ["ngram"]
    assert loaded.model.order == 5 and Predictor(loaded).predict("anna has the ", k=2)


def test_a_resumed_run_refits_the_mixture_to_its_new_weights(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "m"
    train(resolve(TINY, {"max_steps": 20}), corpus_file, out)
    first = checkpoint.load(out)
    train(load(flags={"max_steps": 40}, resume=out), corpus_file, out, resume=True)
    again = checkpoint.load(out)
    assert again.manifest["kind"] == "mixture" and again.summary["steps"] == 40
    assert again.manifest["mixture"]["valid_loss"]["neural"] < first.manifest["mixture"]["valid_loss"]["neural"]


def test_a_short_prompt_is_not_repeated_by_a_cache_fitted_on_long_texts(
    loaded: checkpoint.LoadedModel, corpus_file: Path
) -> None:
    """A few pieces in, the neural cache's softmax over a handful of entries is sure of the closest one
    however far it is; weights that trust a sure cache (as a long text teaches: a name coming back) then
    made a prompt's last words its next ones. Counted against a full window of typical entries, such a
    place is not sure: weights that trust a sure cache mix there as cautious ones do."""
    model = loaded.model
    text = torch.tensor([loaded.tokenizer.encode(corpus_file.read_text(encoding="utf-8"))[:3000]])
    with torch.inference_mode():
        features, _ = model.neural.features(text, None, False)
        _, peaks, _ = NeuralCache(40.0).distributions(None, features, text, model.vocab_size)
    typical = typical_weight(Peaks(peaks.peak.flatten(), peaks.seen.flatten(), peaks.log_mean.flatten()))
    cautious = torch.tensor([[0.49, 0.49, 0.01, 0.01]] * 5).double()
    trusting = torch.cat([cautious[:4], torch.tensor([[0.05, 0.03, 0.02, 0.9]]).double()])  # above the last edge
    prompt = torch.tensor([[EOS_ID, *loaded.tokenizer.encode("ben has a small cup . ben")]])
    for cache in (NeuralCache(40.0), NeuralCache(40.0, typical=typical)):
        with torch.inference_mode():
            trusted, careful = (
                MixtureLM(
                    model.neural, model.ngram, model.weights, weights, 100.0, cache, torch.tensor(CONFIDENCE_EDGES)
                )(prompt, last_only=True)[0].exp()
                for weights in (trusting, cautious)
            )
        moved = (trusted - careful).abs().sum().item() / 2  # total variation
        assert moved > 0.5 if cache.typical is None else moved < 1e-6, (cache.typical, moved)


def test_every_component_is_in_eval_mode_and_an_evaluation_leaves_it_there(trained_model: Path) -> None:
    """The mixture without its caches is made anew (`MixtureLM.replaced`); in training mode, `evaluating` put its
    neural part back in training mode after the reading, and the last words' searches ran with dropout, their
    metrics different from one run to the next."""
    loaded = checkpoint.load(trained_model)
    ids = np.asarray(loaded.tokenizer.encode(sentence_corpus(20)))
    for name in loaded.components():
        predictor = Predictor(loaded, component=name)
        assert not any(module.training for module in predictor.model.modules()), name
        word_metrics(predictor, ids, ks=(1,), max_words=30)
        assert not any(module.training for module in predictor.model.modules()), name
    parent = torch.nn.Sequential(torch.nn.Dropout(0.5))
    child = parent[0].eval()
    with evaluating(parent):
        assert not parent.training and not child.training
    assert parent.training and not child.training  # each module back in its own mode


def test_generation_reads_what_it_writes_against_the_caches_not_into_them(loaded: checkpoint.LoadedModel) -> None:
    """The sampler's pieces are not the document: fed into the caches they fed a loop back ("this this this")."""
    model, writer = loaded.model, PieceModel(loaded).writer
    assert (
        writer.model.adapts is False
        and writer.model.use_cache
        and PieceModel(loaded, model.neural).writer.model is model.neural
    )
    prompt, written = _ids(loaded, rows=1, length=12), torch.tensor([[3]])
    with torch.inference_mode():
        _, state = model(prompt)
        logprobs, after = writer.model(written, state, last_only=True)
        _, read = model(written, state, last_only=True)
        with pytest.raises(ValueError, match="steps its last place only"):
            writer.model(written, state)
    assert after[2] is state[2] and after[3] is state[3]  # the caches as the prompt left them
    assert np.array_equal(after[1], read[1]) and torch.equal(after[0][0], read[0][0])  # the rest read on
    assert torch.allclose(logprobs.exp().sum(-1), torch.ones(1, 1), atol=1e-5)
    # Against the caches: the written piece is not among the neural cache's entries, nor in the counts.
    assert torch.equal(after[2], state[2]) and after[3].ends == state[3].ends


def test_a_unigram_cache_that_has_read_little_holds_that_share_of_its_weight(loaded: checkpoint.LoadedModel) -> None:
    """Its counts over what a long text keeps, 1 / (1 - decay): one piece read would otherwise be p_cache 1, and a
    prompt's last pieces its likeliest next ones. A cache that forgets at once (half-life of a piece) is full from
    the first pieces; one that keeps hundreds holds a small part of its weight after a prompt, the rest going to
    the models in proportion to theirs."""
    steady = 1 / (1 - 0.5 ** (1 / 100))
    share = UnigramCache(100.0).share(torch.tensor([1.0, 10.0, steady, 1e6], dtype=torch.float64))
    assert share.tolist() == pytest.approx([1 / steady, 10 / steady, 1.0, 1.0])
    weights = torch.tensor([[0.2, 0.4, 0.3, 0.1]]).double()
    kept = renormalised(weights, torch.tensor([[0.5, 0.0]]).double())
    assert kept[0].tolist() == pytest.approx([0.2 + 0.25 / 3, 0.4 + 0.5 / 3, 0.15, 0.0])
    assert torch.equal(renormalised(weights, torch.ones(1, 2).double()), weights)
    model, buckets = loaded.model, loaded.model.ngram.buckets
    trusting = torch.tensor([[0.05, 0.05, 0.9]] * buckets).double()  # a unigram cache alone, trusted
    even = torch.full((buckets, 2), 0.5).double()
    prompt = torch.tensor([[EOS_ID, *loaded.tokenizer.encode("ben has a small cup . ben")]])
    moved = {}
    for half_life in (1.0, 300.0):
        with torch.inference_mode():
            mixed, alone = (
                MixtureLM(model.neural, model.ngram, even, trusting, half_life, use_cache=use)(prompt, last_only=True)
                for use in (True, False)
            )
        moved[half_life] = (mixed[0].exp() - alone[0].exp()).abs().sum().item() / 2  # total variation
    assert moved[1.0] > 0.8 and moved[300.0] < 0.05, moved
