"""The default recipe: settings chosen from the corpus size and the time budget, under the YAML file and flags."""

import os

import pytest

from nextword.config import resolve
from nextword.recipe import SHORTEST_RUN, choose, dropout_for, members_for, shown_in_help, vocabulary_for
from nextword.tokenizer import train_tokenizer


@pytest.mark.parametrize("size", [2_000, 50_000, 1_000_000, 30_000_000, 3_000_000_000])
@pytest.mark.parametrize("budget", [None, 60.0, 180.0, 600.0, 36_000.0])
def test_every_choice_is_a_valid_config(size: int, budget: float | None) -> None:
    recipe = choose(size, budget, cores=2)
    model, args = resolve(recipe.settings, {"time_budget": budget} if budget else {})
    assert model.vocab_size == vocabulary_for(size)
    assert 0.0 <= model.dropout <= 0.3
    assert args.weight_decay == 0.3  # the recipe's, over the Config's default
    # A budget alone stops the run: no epoch cap cuts it short (a short text gets one: see below).
    assert (args.epochs is None) == (args.time_budget is not None)
    assert args.time_budget == budget or budget is None and args.time_budget == SHORTEST_RUN
    # train --help shows each option the recipe sets: its value where every recipe sets it alike, else that the
    # recipe chooses it.
    alike, chosen = shown_in_help()
    assert set(recipe.settings) - {"epochs", "time_budget"} == set(alike) | set(chosen) and not set(alike) & set(chosen)
    assert all(recipe.settings[key] == value for key, value in alike.items())


def test_a_short_text_trains_for_a_minute_unless_told_when_to_stop() -> None:
    # 8,000 characters: ten epochs take about 3 seconds on 2 cores; 2 million: about 12 minutes.
    short, told, long = choose(8_000, None, cores=2), choose(8_000, None, 2, stop_given=True), choose(2e6, None, 2)
    assert short.settings["time_budget"] == SHORTEST_RUN and short.settings["epochs"] is None
    assert "1m00s, as ten epochs would take 3s" in short.reason and "3 averaged networks" in short.reason
    assert "time_budget" not in told.settings and "10 epochs" in told.reason  # --epochs or --max-steps given
    assert "time_budget" not in long.settings and "10 epochs" in long.reason


def test_vocabulary_grows_with_the_corpus_within_bounds() -> None:
    sizes = [1_000, 100_000, 1_000_000, 8_000_000, 10**10]
    vocabularies = [vocabulary_for(size) for size in sizes]
    assert vocabularies == sorted(vocabularies)
    assert vocabularies[0] == 1000 and vocabularies[2] == 4000 and vocabularies[-1] == 16000


def test_dropout_grows_with_the_passes_over_the_text() -> None:
    assert dropout_for(1) == 0.0
    assert dropout_for(30) == 0.3
    assert [dropout_for(p) for p in (1, 3, 8, 20)] == sorted(dropout_for(p) for p in (1, 3, 8, 20))


def test_a_longer_budget_on_the_same_text_regularises_more() -> None:
    short, long = choose(1_000_000, 60.0, cores=2), choose(1_000_000, 3600.0, cores=2)
    assert long.settings["dropout"] > short.settings["dropout"]


def test_a_budget_that_would_overfit_one_network_is_shared_by_an_ensemble() -> None:
    assert members_for(14.9) == 1 and members_for(15) == 3 == members_for(200)
    short, long = choose(1_000_000, 180.0, cores=2), choose(1_000_000, 600.0, cores=2)  # 5.0 and 16.8 passes
    assert short.settings["members"] == 1 and "averaged" not in short.reason
    assert long.settings["members"] == 3
    assert long.settings["dropout"] == dropout_for(16.8 / 3)  # each network reads the text a third as often
    for part in ("3 averaged networks, each 2 × 256 lstm", "16.8 passes", "5.6 each for 3 networks"):
        assert part in long.reason, part
    assert choose(1_000_000, None).settings["members"] == 1  # ten epochs: one network


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform (not Linux)")
def test_the_budget_is_counted_on_the_cores_this_process_may_use(monkeypatch, corpus_file) -> None:
    import sentencepiece

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # as under `taskset -c 0` on any machine
    recipe = choose(1_000_000, 600.0)
    assert "8.4 passes over it on 1 core)" in recipe.reason and recipe.settings["members"] == 1
    # SentencePiece too trains on those cores, not on every core of the host.
    asked = []
    trainer = sentencepiece.SentencePieceTrainer.train
    monkeypatch.setattr(
        sentencepiece.SentencePieceTrainer, "train", lambda **kw: asked.append(kw["num_threads"]) or trainer(**kw)
    )
    train_tokenizer(corpus_file, "unigram", 60)
    assert asked and set(asked) == {1}  # (asked again with fewer pieces where the text is too small)


def test_validation_takes_a_small_share_of_a_large_corpus_run() -> None:
    assert choose(1_000_000, 180.0, cores=2).settings["eval_every"] == 200  # the Config's, for a megabyte
    large = choose(30_000_000, 180.0, cores=2).settings
    # 100,000 validation pieces (the most held out) each eval_every steps of batch × seq_len pieces, a third the cost
    share = 100_000 / 3 / (large["eval_every"] * large["batch_size"] * large["seq_len"])
    assert large["eval_every"] > 200 and share <= 0.05


def test_the_reason_says_what_was_chosen_and_from_what() -> None:
    reason = choose(1_000_000, 180.0, cores=2).reason
    assert "\n" not in reason
    for part in ("2 × 256 lstm", "4,000 pieces", "every 200 steps", "1.0M characters", "3m00s", "passes", "--config"):
        assert part in reason, part


def test_flags_win_over_the_recipe() -> None:
    recipe = choose(1_000_000, 180.0, cores=2)
    model = resolve(recipe.settings, {"time_budget": 180.0, "hidden": 64, "dropout": 0.5}).model
    assert (model.hidden, model.dropout, model.layers) == (64, 0.5, recipe.settings["layers"])


def test_train_without_a_config_follows_the_recipe_and_says_so(tmp_path, corpus_file) -> None:
    import yaml
    from typer.testing import CliRunner

    from nextword.cli import app

    out = tmp_path / "model"
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(corpus_file),
            "--out",
            str(out),
            "--time-budget",
            "1m",
            "--max-steps",
            "2",
            "--eval-every",
            "1",
            "--hidden",
            "32",
            "--embed",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    # A minute reads this small text hundreds of times: three networks share it.
    assert "recipe: 3 averaged networks, each 2 × 256 lstm" in result.stderr
    assert "--config or flags override" in result.stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    chosen = choose(len(corpus_file.read_text(encoding="utf-8")), 60.0).settings
    assert saved["epochs"] is None and (saved["vocab_size"], saved["members"]) == (chosen["vocab_size"], 3)
    assert (saved["hidden"], saved["layers"], saved["lr"]) == (32, chosen["layers"], chosen["lr"])


def test_a_text_is_sized_by_its_characters_not_its_bytes(tmp_path) -> None:
    """A Russian novel's UTF-8 holds two bytes a letter: the recipe must see as much text as in English."""
    from nextword.cli import _recipe_for

    english, russian = tmp_path / "english.txt", tmp_path / "russian.txt"
    english.write_text("the cat sat on the mat\n" * 20_000, encoding="utf-8")
    russian.write_text("кот сидел на ковре уже\n" * 20_000, encoding="utf-8")  # as many characters
    assert russian.stat().st_size > 1.7 * english.stat().st_size
    chosen = {path.name: _recipe_for(path, 180.0, None, False)[1] for path in (english, russian)}
    assert chosen["english.txt"].settings == chosen["russian.txt"].settings
    assert "460k characters" in chosen["russian.txt"].reason
