import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nextword import checkpoint
from nextword.config import load, resolve
from nextword.errors import CorpusError, ModelDirError, TrainingInterrupted
from nextword.predict import Predictor
from nextword.train import Evaluation, Notice, Progress, Stage, train

from conftest import TINY


def config(**changes):
    return resolve(TINY, changes)


def test_training_learns_and_writes_a_model_directory(tmp_path: Path, corpus_file: Path) -> None:
    events = []
    summary = train(config(max_steps=80), corpus_file, tmp_path / "m", on_event=events.append)
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert files == {
        "nextword.json",
        "config.yaml",
        "tokenizer.model",
        "model.safetensors",
        "metrics.jsonl",
        "summary.json",
        "state.pt",
        "README.md",
        "lexicon.tsv",
        ".nextword.lock",
        "ngram.safetensors",
        "mixture.safetensors",
    }
    metrics = checkpoint.read_metrics(tmp_path / "m")
    assert [row["step"] for row in metrics] == [20, 40, 60, 80]
    assert metrics[-1]["valid_loss"] < metrics[0]["valid_loss"] < 5.0
    assert summary.steps == 80 and summary.stopped_because == "max_steps"
    assert summary.best_valid_loss == min(row["valid_loss"] for row in metrics)
    assert 1 < summary.best_valid_perplexity < summary.best_valid_word_perplexity
    assert [e.name for e in events if isinstance(e, Stage)] == ["tokenizer", "encoding", "training", "mixture"]
    # Nothing to tell but, on a machine that other processes keep busy, the threads it trains on (test_threads.py).
    assert not [e for e in events if isinstance(e, Notice) and "threads" not in e.message]
    assert [e.step for e in events if isinstance(e, Evaluation)] == [20, 40, 60, 80]
    assert [e.step for e in events if isinstance(e, Progress)][-1] == 80
    assert checkpoint.read_settings(tmp_path / "m") == config(max_steps=80)


def test_a_new_network_starts_predicting_the_training_pieces_frequencies(tmp_path: Path, corpus_file: Path) -> None:
    train(config(max_steps=1, lr=1e-9, mixture=False), corpus_file, tmp_path / "m")
    predictor = Predictor.load(tmp_path / "m")
    ids = predictor.tokenizer.encode(corpus_file.read_text(encoding="utf-8"))
    counts = np.bincount(ids, minlength=predictor.tokenizer.vocab_size)
    bias = predictor.model.decoder.bias.detach().numpy()
    assert np.corrcoef(bias, np.log(counts + 1))[0, 1] > 0.99  # the whole file here, the training split there


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, corpus_file: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train(config(max_steps=20, seed=seed), corpus_file, tmp_path / name)
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_an_ensemble_trains_each_member_alone_and_predicts_with_their_average(
    tmp_path: Path, corpus_file: Path
) -> None:
    for name, members in (("one", 1), ("two", 2)):
        train(config(max_steps=20, members=members, mixture=False), corpus_file, tmp_path / name)
    one, two = (load_file(tmp_path / name / "model.safetensors") for name in ("one", "two"))
    # The first member is the network a run of its own trains, bit for bit: the same start, batches and steps.
    assert all(torch.equal(two[f"members.0.{k}"], one[k]) for k in one)
    assert not torch.equal(two["members.0.rnn.weight_hh_l0"], two["members.1.rnn.weight_hh_l0"])  # its own start
    predictor = Predictor.load(tmp_path / "two")
    ids = torch.tensor([predictor.tokenizer.encode("anna has the red ball . anna gives")])
    with torch.inference_mode():
        averaged, _ = predictor.model(ids)
        alone = [torch.softmax(member(ids)[0], -1) for member in predictor.model.members]
    torch.testing.assert_close(averaged.exp(), torch.stack(alone).mean(0))
    assert predictor.predict("anna has the red ball . anna gives", k=3)


def _interrupt_at(step: int):
    def on_event(event):
        if isinstance(event, Evaluation) and event.step == step:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, handled between two steps

    return on_event


@pytest.mark.parametrize(
    "cell, bidirectional, softmax, members",
    [
        ("rnn", False, "full", 1),
        ("gru", False, "full", 1),
        ("lstm", False, "full", 1),
        ("gru", True, "full", 1),
        ("lstm", False, "adaptive", 1),
        ("lstm", False, "full", 2),  # an ensemble: a state of pairs, one per member
    ],
)
def test_interrupt_then_resume_gives_bitwise_identical_weights(
    tmp_path: Path, corpus_file: Path, cell: str, bidirectional: bool, softmax: str, members: int
) -> None:
    settings = config(
        members=members,
        cell=cell,
        layers=2,
        dropout=0.2,
        max_steps=40,
        eval_every=10,
        bidirectional=bidirectional,
        context=8,
        seq_len=4,
        softmax=softmax,
    )
    train(settings, corpus_file, tmp_path / "straight")
    with pytest.raises(TrainingInterrupted, match=r"stopped at step 20.*--resume"):
        train(settings, corpus_file, tmp_path / "resumed", on_event=_interrupt_at(20))
    assert checkpoint.load_state(tmp_path / "resumed")[0].step == 20
    summary = train(load(resume=tmp_path / "resumed"), corpus_file, tmp_path / "resumed", resume=True)
    assert summary.steps == 40
    best = [load_file(tmp_path / d / "model.safetensors") for d in ("straight", "resumed")]
    assert all(torch.equal(best[0][k], best[1][k]) for k in best[0])
    last = [checkpoint.load_state(tmp_path / d)[1]["model"] for d in ("straight", "resumed")]
    assert all(torch.equal(last[0][k], last[1][k]) for k in last[0])
    straight, resumed = (
        [{k: v for k, v in row.items() if k != "elapsed"} for row in checkpoint.read_metrics(tmp_path / d)]
        for d in ("straight", "resumed")
    )
    assert straight == resumed


def test_resume_may_extend_the_budget_but_not_change_the_model(tmp_path: Path, corpus_file: Path) -> None:
    train(config(max_steps=20), corpus_file, tmp_path / "m")
    longer = load(flags={"max_steps": 30}, resume=tmp_path / "m")
    assert train(longer, corpus_file, tmp_path / "m", resume=True).steps == 30
    with pytest.raises(Exception, match="hidden cannot change"):
        load(flags={"hidden": 64}, resume=tmp_path / "m")


def test_stopping_rules(tmp_path: Path, corpus_file: Path) -> None:
    budgeted = train(config(max_steps=None, time_budget=0.3, eval_every=1000), corpus_file, tmp_path / "t")
    assert budgeted.stopped_because == "planned_steps" or budgeted.stopped_because.startswith("time_budget")
    assert budgeted.elapsed < 0.3 + 5  # on a loaded machine the planned steps may take longer than measured
    one_epoch = train(config(max_steps=None, epochs=1, eval_every=1000), corpus_file, tmp_path / "e")
    assert one_epoch.stopped_because == "epochs" and one_epoch.epochs == 1.0
    # A learning rate far too high: validation stops improving, and patience ends the run early.
    diverging = train(
        config(max_steps=200, eval_every=2, patience=2, lr=50.0, warmup=0, clip=0.0), corpus_file, tmp_path / "p"
    )
    assert diverging.stopped_because == "patience" and diverging.steps < 200


def test_existing_model_needs_force_and_other_directories_are_never_touched(tmp_path: Path, corpus_file: Path) -> None:
    train(config(max_steps=5), corpus_file, tmp_path / "m")
    weights = (tmp_path / "m" / "model.safetensors").read_bytes()
    with pytest.raises(ModelDirError, match="use --force to overwrite it, or --resume"):
        train(config(max_steps=5), corpus_file, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == weights
    train(config(max_steps=5, seed=3), corpus_file, tmp_path / "m", force=True)
    assert (tmp_path / "m" / "model.safetensors").read_bytes() != weights
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "diary.txt").write_text("mine")
    with pytest.raises(ModelDirError, match="not a nextword model directory"):
        train(config(max_steps=5), corpus_file, tmp_path / "notes", force=True)
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["diary.txt"]


def test_failed_training_leaves_an_existing_model_as_it_was(tmp_path: Path, corpus_file: Path) -> None:
    train(config(max_steps=5), corpus_file, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    with pytest.raises(CorpusError, match="too small for one batch"):
        train(config(max_steps=5, batch_size=4096), corpus_file, tmp_path / "m", force=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before


def test_separate_validation_file(tmp_path: Path, corpus_file: Path) -> None:
    valid = tmp_path / "valid.txt"
    valid.write_text("cora has a green hat . cora gives a green hat to the cat .\n" * 5)
    summary = train(config(max_steps=10), corpus_file, tmp_path / "m", valid_file=valid)
    assert summary.valid_tokens > 20 and summary.train_tokens > 5 * summary.valid_tokens


def test_prepared_data_is_for_a_new_run_on_the_validation_text_it_was_prepared_with(
    tmp_path: Path, corpus_file: Path
) -> None:
    from nextword.errors import ConfigError
    from nextword.train import prepare

    data = prepare(corpus_file, config())
    for refused in ({"valid_file": corpus_file}, {"resume": True}):
        with pytest.raises(ConfigError, match="prepared data is for a new run"):
            train(config(max_steps=5), data, tmp_path / "m", **refused)
    assert not (tmp_path / "m").exists()


def test_resume_refuses_other_data_and_accepts_the_same_options_spelt_differently(
    tmp_path: Path, corpus_file: Path
) -> None:
    train(config(max_steps=10, lr=0.003), corpus_file, tmp_path / "m")
    other = tmp_path / "other.txt"
    other.write_text(corpus_file.read_text() + "one more line .\n")
    with pytest.raises(Exception, match="is not the corpus this model was trained on"):
        train(load(resume=tmp_path / "m"), other, tmp_path / "m", resume=True)
    same = load(flags={"lr": "3e-3", "tokenizer": "UNIGRAM", "max_steps": 12}, resume=tmp_path / "m")
    assert train(same, corpus_file, tmp_path / "m", resume=True).steps == 12


def test_a_second_training_into_the_same_directory_refuses(tmp_path: Path, corpus_file: Path) -> None:
    train(config(max_steps=5), corpus_file, tmp_path / "m")
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    with checkpoint.writing(tmp_path / "m"):  # as if another process were training there
        with pytest.raises(ModelDirError, match=r"another nextword training \(process \d+\) is writing to"):
            train(config(max_steps=5, seed=9), corpus_file, tmp_path / "m", force=True)
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    train(config(max_steps=5, seed=9), corpus_file, tmp_path / "m", force=True)  # free again afterwards
    assert (tmp_path / "m" / "model.safetensors").read_bytes() != before


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nextword import train as training
    from nextword.errors import TrainingDiverged

    healthy = training._train_step

    def poisoned(run, state):  # from step 16 on, the weights turn to NaN, as after a far too large step
        loss = healthy(run, state)
        if state.step > 15:
            with torch.no_grad():
                for parameter in run.model.parameters():
                    parameter.fill_(float("nan"))
            return loss * float("nan")
        return loss

    monkeypatch.setattr(training, "_train_step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 16.*last good checkpoint \(step 10\).*Lower --lr"):
        train(config(max_steps=40, eval_every=10), corpus_file, tmp_path / "m")
    assert checkpoint.load_state(tmp_path / "m")[0].step == 10
    assert all(torch.isfinite(w).all() for w in load_file(tmp_path / "m" / "model.safetensors").values())
    monkeypatch.setattr(training, "_train_step", healthy)
    resumed = train(load(resume=tmp_path / "m"), corpus_file, tmp_path / "m", resume=True)
    assert resumed.steps == 40


def test_a_huge_learning_rate_is_caught_with_advice(tmp_path: Path, corpus_file: Path) -> None:
    from typer.testing import CliRunner

    from nextword.cli import app

    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**TINY, "lr": 1e37, "clip": 0}.items()]
    result = CliRunner().invoke(app, ["train", str(corpus_file), *flags, "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "training diverged at step" in result.stderr and "Lower --lr (now 1e+37)" in result.stderr
    assert not (tmp_path / "m" / "model.safetensors").exists()  # nothing non-finite was saved


def _other_text(path: Path, lines: int, seed: int) -> Path:
    """Text of the same words in another pattern than the shared corpus: what a personal model adapts to."""
    import random

    rng = random.Random(seed)
    names, things = ("anna", "ben", "cora", "dan"), ("the red ball", "a small cup", "the old book", "a green hat")
    path.write_text(
        "".join(
            f"the cat finds {rng.choice(things)} and {rng.choice(names)} reads to the cat .\n" for _ in range(lines)
        )
    )
    return path


def test_init_starts_from_a_models_weights_and_tokenizer_on_new_text(tmp_path: Path, trained_model: Path) -> None:
    from nextword.data import check_corpus, encode_corpus
    from nextword.loss import stream_loss

    new, held_out = _other_text(tmp_path / "b.txt", 300, 1), _other_text(tmp_path / "b-valid.txt", 40, 2)
    settings = load(flags={"max_steps": 40}, init=trained_model)
    assert settings.train.lr == pytest.approx(TINY["lr"] * 0.3) and settings.model.hidden == TINY["hidden"]
    assert load(flags={"lr": 0.02}, init=trained_model).train.lr == 0.02  # an explicit rate wins
    # So does a YAML file's, the model's own config.yaml too: it is a layer above the lowered rate.
    assert load(trained_model / "config.yaml", init=trained_model).train.lr == TINY["lr"]
    summary = train(settings, new, tmp_path / "p", valid_file=held_out, init=trained_model)

    assert (tmp_path / "p" / "tokenizer.model").read_bytes() == (trained_model / "tokenizer.model").read_bytes()
    before = checkpoint.load(trained_model)
    ids = encode_corpus(check_corpus(held_out), before.tokenizer)
    loss_of_a = stream_loss(
        before.components()["neural"], before.tokenizer, ids, seq_len=TINY["seq_len"], device=torch.device("cpu")
    )  # step 0 scores the neural part, which training changes
    metrics = checkpoint.read_metrics(tmp_path / "p")
    assert metrics[0]["step"] == 0 and metrics[0]["valid_loss"] == pytest.approx(loss_of_a.loss, rel=1e-6)
    assert summary.best_valid_loss < 0.9 * loss_of_a.loss and summary.steps == 40
    manifest = checkpoint.read_manifest(tmp_path / "p")
    assert manifest["init"]["path"] == str(trained_model) and manifest["init"]["corpus"] == "sentences.txt"


def test_init_refuses_shape_changes_resume_ngrams_and_non_models(
    tmp_path: Path, trained_model: Path, trained_ngram: Path, corpus_file: Path
) -> None:
    from nextword.errors import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"so hidden, bidirectional cannot change \(it has hidden=32, "
        r"bidirectional=False\)",
    ):
        load(flags={"hidden": 64, "bidirectional": True, "dropout": 0.1}, init=trained_model)
    assert load(flags={"hidden": 32, "cell": "LSTM"}, init=trained_model).model.cell == "lstm"
    with pytest.raises(ModelDirError, match="not a nextword model directory"):
        load(init=tmp_path)
    with pytest.raises(ConfigError, match="give one of them"):
        train(load(init=trained_model), corpus_file, tmp_path / "m", resume=True, init=trained_model)
    with pytest.raises(ConfigError, match="is an n-gram model, which has no weights to start from"):
        train(load(init=trained_ngram), corpus_file, tmp_path / "m", init=trained_ngram)
    assert not (tmp_path / "m").exists()


def test_a_budgeted_run_plans_its_steps_and_max_steps_repeats_it_bit_for_bit(
    tmp_path: Path, corpus_file: Path, monkeypatch
) -> None:
    from nextword import train as training

    ticks = iter(range(10**9))
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(ticks) * 0.002)  # a steady machine
    events = []
    # No evaluation before the end: on this clock it takes no time, and its estimate would leave time to plan again.
    settings = config(max_steps=None, time_budget=1.5, warmup=10, eval_every=10**6)
    budgeted = train(settings, corpus_file, tmp_path / "b", on_event=events.append)
    monkeypatch.undo()
    plan = budgeted.plan
    assert budgeted.stopped_because == "planned_steps" and budgeted.steps == plan["steps"] > 20
    assert plan["planned_at_step"] <= 10 and plan["measured_steps"] >= 1
    assert checkpoint.read_settings(tmp_path / "b").train.epochs is None  # no hidden epoch cap under a budget
    assert {e.total_steps for e in events if isinstance(e, Progress) and e.step > 10} == {plan["steps"]}
    assert "replanned" not in plan
    train(config(max_steps=plan["steps"], warmup=10, eval_every=10**6), corpus_file, tmp_path / "s")
    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("b", "s"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_plan_too_short_for_the_warmup_warms_up_over_a_share_of_it_and_decays(
    tmp_path: Path, corpus_file: Path, monkeypatch
) -> None:
    from nextword import train as training

    ticks = iter(range(10**9))
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(ticks) * 0.002)
    events = []
    # A loaded machine, in effect: the budget holds far fewer steps than the warmup asks for.
    settings = config(max_steps=None, time_budget=1.0, warmup=10_000, eval_every=10**6)
    plan = train(settings, corpus_file, tmp_path / "m", on_event=events.append).plan
    share = math.ceil(training._WARMUP_SHARE * plan["steps"])
    assert plan["warmup"] == max(share, plan["planned_at_step"]) < 500, plan  # it ends no earlier than planned
    rates = [e.lr for e in events if isinstance(e, Progress)]
    assert max(rates) > 0.8 * 0.01  # near the peak (lr 0.01), where the settings' ramp would reach 0.05 of it...
    assert rates[-1] <= 0.01 * (0.1 + 0.05 * 0.9)  # ...and the decay nearly done by the end (final_lr 0.1)


def test_a_step_limit_too_short_for_the_warmup_warms_up_over_a_share_of_it_and_decays(
    tmp_path: Path, corpus_file: Path
) -> None:
    from nextword import train as training

    settings = config(max_steps=40, warmup=100)
    rates = [training._learning_rate(settings.train, step, 40, None) for step in range(40)]
    warmup = math.ceil(training._WARMUP_SHARE * 40)
    # The peak (lr 0.01) at the warmup's end, where the settings' ramp would end at 0.4 of it; the decay nearly done.
    assert rates[warmup - 2] < rates[warmup - 1] == pytest.approx(0.01)
    assert rates[-1] <= 0.01 * (0.1 + 0.05 * 0.9)
    events = []
    train(settings, corpus_file, tmp_path / "m", on_event=events.append)
    assert [e.lr for e in events if isinstance(e, Progress)][-1] == rates[-1]  # the run follows that schedule


@pytest.mark.parametrize("pace", [2.0, 0.5], ids=["slows down", "speeds up"])
def test_a_budgeted_run_plans_again_when_the_pace_changes_and_its_learning_rate_only_falls(
    tmp_path: Path, corpus_file: Path, monkeypatch, pace: float
) -> None:
    from nextword import train as training

    ticks = iter(range(10**9))
    change_after = 300  # readings of the clock at the first pace, then each step takes `pace` times as long

    def clock() -> float:
        tick = next(ticks)
        return 0.002 * tick + 0.002 * (pace - 1) * max(tick - change_after, 0)

    monkeypatch.setattr(training.time, "perf_counter", clock)
    events = []
    budget = 1.5
    summary = train(
        config(max_steps=None, time_budget=budget, warmup=10), corpus_file, tmp_path / "m", on_event=events.append
    )
    plan = summary.plan
    measured = plan["replanned"][-1]["seconds_per_step"] / plan["seconds_per_step"]
    assert measured == pytest.approx(pace, rel=0.25), plan
    assert (plan["steps"] < plan["first_planned_steps"]) == (pace > 1)
    assert summary.elapsed >= (1 - 2 * training._REPLAN_EARLY) * budget  # the budget was used
    rates = [e.lr for e in events if isinstance(e, Progress) and e.step > 10]
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))  # no jump up where the plan changed
    assert rates[-1] <= 0.01 * (0.1 + 0.05 * 0.9)  # and the decay nearly done (lr 0.01, final_lr 0.1)


@pytest.mark.parametrize(
    "changes, losses",
    [
        (dict(layers=2, dropout=0.2), [2.743179718914785, 2.391850739325348]),
        (dict(cell="gru", bidirectional=True, context=8, dropout=0.1), [2.108016869674126, 1.6112351944964183]),
    ],
)
def test_a_fixed_seed_gives_the_pinned_losses(
    tmp_path: Path, corpus_file: Path, changes: dict, losses: list[float]
) -> None:
    # The validation losses on a CPU (torch 2.13), since the embeddings start at the pieces' vectors, pinned so
    # that a change to the training code (the schedule, the order of random draws, the batches) is seen: one
    # such change moves them by 1e-3 or more (a warm-up one step longer, another seed, lr 1% higher). Two CPUs'
    # kernels differ in the last bits (about 1e-9 between two AMD EPYC machines, the same code on both), which
    # the tolerance allows. Should a change move them at all, check the old code gives the same new values
    # before pinning them.
    train(config(max_steps=20, eval_every=10, mixture=False, **changes), corpus_file, tmp_path / "m")
    assert [row["valid_loss"] for row in checkpoint.read_metrics(tmp_path / "m")] == pytest.approx(losses, rel=1e-7)


def test_a_checkpoint_from_before_state_formats_resumes_and_a_newer_one_says_so(
    tmp_path: Path, corpus_file: Path
) -> None:
    settings = config(max_steps=20, eval_every=10, mixture=False)
    train(settings, corpus_file, tmp_path / "straight")
    with pytest.raises(TrainingInterrupted):
        train(settings, corpus_file, tmp_path / "old", on_event=_interrupt_at(10))
    state = torch.load(tmp_path / "old" / "state.pt", weights_only=True)
    assert state.pop("format") == checkpoint.STATE_FORMAT
    del state["plan"]  # what the first state.pt files held: no format, no time budget's plan
    torch.save(state, tmp_path / "old" / "state.pt")
    train(load(resume=tmp_path / "old"), corpus_file, tmp_path / "old", resume=True)
    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("straight", "old"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.save({**state, "format": checkpoint.STATE_FORMAT + 1}, tmp_path / "old" / "state.pt")
    with pytest.raises(ModelDirError, match=r"written by a newer nextword \(format 3\); upgrade nextword to resume"):
        checkpoint.load_state(tmp_path / "old")
    torch.save({"step": 3}, tmp_path / "old" / "state.pt")
    with pytest.raises(ModelDirError, match=r"state.pt is damaged \(not a training state\); it cannot be resumed"):
        checkpoint.load_state(tmp_path / "old")


def test_a_config_yaml_of_an_older_nextword_still_loads(tmp_path: Path, trained_model: Path) -> None:
    import shutil

    from nextword.predict import Predictor

    old = tmp_path / "old"
    shutil.copytree(trained_model, old)
    saved = {line.split(":")[0]: line for line in (old / "config.yaml").read_text().splitlines()}
    # Model and training options in one file, in the order of the one Config that came before ModelConfig and
    # TrainArgs, and without options that came later (there, their defaults).
    order = [
        "tokenizer",
        "vocab_size",
        "valid_fraction",
        "cell",
        "layers",
        "embed",
        "hidden",
        "dropout",
        "bidirectional",
        "seq_len",
        "batch_size",
        "lr",
        "weight_decay",
        "warmup",
        "final_lr",
        "clip",
        "epochs",
        "max_steps",
        "time_budget",
        "eval_every",
        "patience",
        "seed",
        "device",
    ]
    (old / "config.yaml").write_text("".join(saved[key] + "\n" for key in order))
    loaded = checkpoint.load(old)
    assert loaded.settings.model == checkpoint.read_settings(trained_model).model
    assert Predictor(loaded).predict("anna has the red ", k=2)
