"""Finding and describing models: `nextword list`, the model card, metrics.jsonl's training rows, and
`predict -` answering a stream of texts in one process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextword import checkpoint
from nextword.cli import app
from nextword.errors import ModelDirError

from conftest import TINY

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path, trained_model: Path, trained_ngram: Path) -> Path:
    """A folder as `models/` looks after a while: two models, a comparison of one variant, and other things."""
    models = tmp_path / "models"
    shutil.copytree(trained_model, models / "tiny")
    shutil.copytree(trained_ngram, models / "counted")
    shutil.copytree(trained_model, models / "compare-x" / "lstm")
    (models / "compare-x" / "compare.json").write_text("{}")
    (models / "notes").mkdir()
    (models / "stray.txt").write_text("not a model")
    return models


def test_list_shows_every_model_with_what_it_is_and_how_it_did(folder: Path, trained_model: Path) -> None:
    listed = runner.invoke(app, ["list", str(folder), "--json"])
    assert listed.exit_code == 0, listed.output
    models = json.loads(listed.stdout)
    assert [Path(m["path"]).relative_to(folder).as_posix() for m in models] == ["compare-x/lstm", "counted", "tiny"]
    summary = json.loads((trained_model / "summary.json").read_text())
    tiny = models[2]
    assert (tiny["kind"], tiny["cell"], tiny["corpus"]) == ("mixture", "lstm", "sentences.txt")
    shown = summary["mixture"]["valid_word_perplexity"]["mixture+cache"]  # what predict uses
    assert tiny["word_perplexity"] == shown
    assert tiny["parameters"] == summary["parameters"]
    assert tiny["bytes"] == (trained_model / "model.safetensors").stat().st_size and tiny["date"]
    assert models[1]["kind"] == "ngram"
    table = runner.invoke(app, ["list", str(folder)], env={"COLUMNS": "150"}).stdout
    assert "compare-x/lstm" in table and "counted" in table and f"{shown:,.1f}" in table


def test_list_of_an_empty_or_missing_folder_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    empty = runner.invoke(app, ["list"])  # models/ by default
    assert (
        empty.exit_code == 0
        and "no models in models; train one with: nextword train CORPUS --out models/NAME"
        in " ".join(empty.stderr.split())
    )
    missing = runner.invoke(app, ["list", "nowhere"])
    assert missing.exit_code == 2 and "no such folder: nowhere" in missing.stderr


def test_info_on_a_folder_of_models_points_to_list(folder: Path) -> None:
    result = runner.invoke(app, ["info", str(folder)])
    assert result.exit_code == 2
    assert f"{folder} is a folder of models, not a model; see them with: nextword list {folder}" in " ".join(
        result.stderr.split()
    )


def test_training_writes_a_model_card(trained_model: Path) -> None:
    card = (trained_model / checkpoint.CARD).read_text()
    summary = json.loads((trained_model / "summary.json").read_text())
    manifest = json.loads((trained_model / "nextword.json").read_text())
    assert card.startswith(f"# {trained_model.name}\n") and manifest["corpus_sha256"] in card
    assert f"nextword predict {trained_model}" in card and f'load("{trained_model}")' in card
    assert f"{summary['best_valid_word_perplexity']:.2f}" in card and f"| hidden | {TINY['hidden']} |" in card


def test_a_readme_alone_is_not_taken_for_a_model_to_overwrite(tmp_path: Path) -> None:
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    with pytest.raises(ModelDirError, match="is not a nextword model directory"):
        checkpoint.check_output(mine, force=True)
    assert (mine / "README.md").read_text() == "my notes"


def test_metrics_hold_training_loss_rows_that_evaluation_readers_skip(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "m"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k not in ("max_steps", "eval_every")]
    assert (
        runner.invoke(
            app, ["train", str(corpus_file), "--out", str(out), *flags, "--max-steps=20", "--eval-every=10", "-q"]
        ).exit_code
        == 0
    )
    first = checkpoint.read_metrics(out, training=True)
    resumed = runner.invoke(app, ["train", str(corpus_file), "--out", str(out), "--resume", "--max-steps=30", "-q"])
    assert resumed.exit_code == 0, resumed.output
    rows = checkpoint.read_metrics(out, training=True)
    training = [row for row in rows if "train_loss" in row]
    assert training and all(set(row) == {"step", "train_loss", "lr", "elapsed"} for row in training)
    assert training[-1]["step"] == 30 and rows[: len(first)] == first  # resume kept the rows before it
    assert [row["step"] for row in checkpoint.read_metrics(out)] == [10, 20, 30]  # evaluations alone
    assert all("valid_loss" in row for row in checkpoint.read_metrics(out))


def test_predict_dash_answers_each_line_of_stdin_in_one_process(trained_model: Path) -> None:
    answered = runner.invoke(
        app, ["predict", str(trained_model), "-", "--json", "-k", "2"], input="anna has the \nben gi\n\ncora \n"
    )
    assert answered.exit_code == 0
    lines = [json.loads(line) for line in answered.stdout.splitlines()]
    assert [line["context"] for line in lines] == ["anna has the ", "ben ", "", "cora "]
    assert lines[1]["partial"] == "gi" and all(p["word"].startswith("gi") for p in lines[1]["predictions"])
    assert len(lines[0]["predictions"]) == 2 and len(lines[2]["predictions"]) == 2  # empty: a document's first words
    single = json.loads(
        runner.invoke(app, ["predict", str(trained_model), "anna has the ", "--json", "-k", "2"]).stdout
    )
    assert single == lines[0]  # the same answer as for the text given as an argument
    tables = runner.invoke(app, ["predict", str(trained_model), "-"], input="anna has the \nben gi\n")
    assert tables.exit_code == 0 and tables.stdout.count("probability") == 2
    assert "Next word after “anna has the”" in tables.stdout and "Completions of gi" in tables.stdout


def test_predict_dash_refuses_a_line_that_is_not_utf8_as_it_refuses_such_a_text(trained_model: Path) -> None:
    answered = runner.invoke(app, ["predict", str(trained_model), "-", "--json"], input=b"anna has \n\xff ben\ncora \n")
    assert answered.exit_code == 2 and "Traceback" not in answered.output
    assert [json.loads(line)["context"] for line in answered.stdout.splitlines()] == ["anna has "]  # the line before
    assert answered.stderr.strip() == "error: line 2 of stdin is not UTF-8 text (byte 0); give UTF-8 text"


def test_metrics_shows_the_evaluations_and_gives_every_row_as_csv_or_json(trained_model: Path, tmp_path: Path) -> None:
    import csv

    rows = checkpoint.read_metrics(trained_model, training=True)
    evaluations = [row for row in rows if "train_loss" not in row]
    assert len(evaluations) >= 2 and len(rows) > len(evaluations)
    shown = runner.invoke(app, ["metrics", str(trained_model)])
    assert shown.exit_code == 0, shown.output
    assert "word ppl" in shown.stdout and f"{evaluations[-1]['valid_word_perplexity']:,.1f}" in shown.stdout
    sheet = runner.invoke(app, ["metrics", str(trained_model), "--csv"])
    assert sheet.exit_code == 0, sheet.output
    read = list(csv.DictReader(sheet.stdout.splitlines()))
    assert [int(row["step"]) for row in read] == [row["step"] for row in rows]
    assert [float(row["train_loss"]) for row in read if row["train_loss"]] == [
        row["train_loss"] for row in rows if "train_loss" in row
    ]
    assert [float(row["valid_loss"]) for row in read if row["valid_loss"]] == [row["valid_loss"] for row in evaluations]
    as_json = runner.invoke(app, ["metrics", str(trained_model), "--json"])
    assert json.loads(as_json.stdout) == rows
    missing = runner.invoke(app, ["metrics", str(tmp_path)])
    assert missing.exit_code == 2 and "is not a nextword model directory" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
