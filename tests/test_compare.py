import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nextword.cli import app
from nextword.compare import compare, compare_settings, plan
from nextword.config import resolve
from nextword.errors import ConfigError, ModelDirError
from nextword.gradients import gradient_flow
from nextword.model import RecurrentLM, WindowedBiLM

from conftest import TINY

PNG = b"\x89PNG\r\n\x1a\n"


def test_plan_names_each_variant() -> None:
    names = [name for name, _ in plan(resolve(TINY), ["rnn", "lstm"], bidirectional=True)]
    assert names == ["rnn", "rnn-bi", "lstm", "lstm-bi"]
    with pytest.raises(ConfigError, match="--cells takes"):
        plan(resolve(TINY), ["rnn", "transformer"], bidirectional=False)


def test_compare_defaults_sit_under_the_yaml_and_the_flags(tmp_path: Path) -> None:
    plain = compare_settings(None, {}).to_dict()
    assert (plain["max_steps"], plain["dropout"], plain["warmup"], plain["final_lr"]) == (1000, 0.0, 0, 1.0)
    yaml = tmp_path / "c.yaml"
    yaml.write_text("dropout: 0.3\nmax_steps: 50\n")
    mixed = compare_settings(yaml, {"warmup": 20, "lr": None}).to_dict()
    assert (mixed["max_steps"], mixed["dropout"], mixed["warmup"], mixed["final_lr"]) == (50, 0.3, 20, 1.0)
    timed = compare_settings(None, {"time_budget": "2m"}).train
    assert (timed.max_steps, timed.time_budget) == (None, 120.0)  # equal time, not also 1000 steps


@pytest.mark.parametrize(
    "model",
    [
        RecurrentLM(30, "rnn", 1, 8, 8, 0.0),
        RecurrentLM(30, "lstm", 2, 8, 8, 0.0),
        WindowedBiLM(30, "gru", 1, 8, 8, 0.0, context=5, pool="attention"),
    ],
)
def test_gradient_flow_is_finite_and_positive(model) -> None:
    torch.manual_seed(0)
    ids = np.random.default_rng(0).integers(0, 30, 400)
    flow = gradient_flow(model, ids, 12, sequences=8)
    assert flow.shape == ((5,) if isinstance(model, WindowedBiLM) else (12,))
    assert np.isfinite(flow).all() and (flow > 0).all()
    assert not any(p.grad is not None for p in model.parameters())  # leaves the model as it was


def test_compare_writes_a_row_per_variant_plots_and_a_report(tmp_path: Path, corpus_file: Path) -> None:
    # A sidecar marks the long-range words, as corpora/generate.py writes it for its corpus.
    corpus = tmp_path / "far.txt"
    lines = corpus_file.read_text().splitlines()
    corpus.write_text("\n".join(lines) + "\n")
    (tmp_path / "far.txt.targets.jsonl").write_text(
        "".join(
            json.dumps({"line": n, "word": 4, "expected": line.split()[4], "distance": 3, "kind": "name"}) + "\n"
            for n, line in enumerate(lines)
        )
    )
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(corpus),
            "--cells",
            "rnn,gru",
            "--bidirectional",
            "--out",
            str(out),
            "--accuracy-words",
            "20",
            "--context",
            "4",
            "--seq-len",
            "8",
            *[f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k not in ("cell", "seq_len")],
            "--max-steps",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Comparison" in result.stdout and "word perplexity" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "variant" in line)
    assert "grad 1/T" in header and "long-range" in header and "…" not in header  # not squeezed into 80 columns
    assert "Comparison (best marked *)" in result.stdout and "green" not in result.stdout  # no colour in a pipe
    made = json.loads((out / "compare.json").read_text())
    assert made["command"].startswith("nextword ") and made["corpus"] == str(corpus)
    assert made["corpus_sha256"] == hashlib.sha256(corpus.read_bytes()).hexdigest() and made["valid"] is None
    assert made["settings"]["max_steps"] == 30 and made["settings"]["context"] == 4 and "cell" not in made["settings"]
    rows = made["variants"]
    assert [row["name"] for row in rows] == ["rnn", "rnn-bi", "gru", "gru-bi"]
    for row in rows:
        assert row["steps"] == 30 and row["parameters"] > 0 and 0 <= row["top1"] <= row["top5"] <= 1
        assert np.isfinite(row["word_perplexity"]) and all(g > 0 for g in row["gradient"])
        assert row["long_range"]["targets"] > 0 and (out / row["name"] / "model.safetensors").is_file()
    for picture in ("curves.png", "gradients.png"):
        assert (out / picture).read_bytes().startswith(PNG) and (out / picture).stat().st_size > 5000
    report = (out / "report.md").read_text()
    assert "| rnn-bi |" in report and "long-range" in report.lower()
    assert "## How this was made" in report and f"    {made['command']}" in report and made["corpus_sha256"] in report
    assert "max_steps=30" in report and "seq_len=8" in report
    again = CliRunner().invoke(app, ["compare", str(corpus), "--out", str(out)])
    assert again.exit_code == 2 and "use --force" in again.stderr


def test_compare_refuses_a_directory_of_other_data(tmp_path: Path, corpus_file: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelDirError, match="not a nextword comparison"):
        compare(corpus_file, resolve(TINY), tmp_path, cells=["rnn"], force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_gradient_flow_needs_some_text() -> None:
    from nextword.errors import CorpusError

    with pytest.raises(CorpusError, match="too short for the gradient-flow diagnostic"):
        gradient_flow(RecurrentLM(30, "rnn", 1, 8, 8, 0.0), np.array([3]), 12)
    assert gradient_flow(RecurrentLM(30, "rnn", 1, 8, 8, 0.0), np.array([3, 4, 5]), 12).shape == (2,)


def test_the_ngram_baseline_takes_its_place_in_the_table(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(corpus_file),
            "--cells",
            "ngram,rnn",
            "--bidirectional",
            "--order",
            "3",
            "--out",
            str(out),
            "--accuracy-words",
            "20",
            *[f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "cell"],
            "--max-steps",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ngram" in result.stdout and "Comparison" in result.stdout
    rows = json.loads((out / "compare.json").read_text())["variants"]
    assert [row["name"] for row in rows] == ["ngram", "rnn", "rnn-bi"]  # no bidirectional n-gram
    ngram = rows[0]
    assert ngram["gradient"] == [] and ngram["gradient_ratio"] is None and ngram["parameters"] > 0
    assert np.isfinite(ngram["word_perplexity"]) and 0 <= ngram["top1"] <= ngram["top5"] <= 1
    assert "| ngram |" in (out / "report.md").read_text()
    for picture in ("curves.png", "gradients.png"):
        assert (out / picture).read_bytes().startswith(PNG)
