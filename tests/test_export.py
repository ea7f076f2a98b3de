"""Exported next-token steps, loaded the way a user outside nextword would, give the model's own outputs."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nextword.checkpoint import load
from nextword.cli import app
from nextword.config import resolve
from nextword.errors import ExportError
from nextword.export import export, initial_state
from nextword.model import build_model, flat_state

from conftest import TINY

# TorchScript still loads in torch 2.13 but is deprecated in favour of torch.export; the test uses it as users would.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def _run_export(path: Path, fmt: str):
    """The exported step as a function of torch tensors, run by torch.jit or onnxruntime alone."""
    if fmt == "torchscript":
        step = torch.jit.load(str(path))
        return lambda *tensors: step(*tensors)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    return lambda *tensors: tuple(
        torch.from_numpy(a) for a in session.run(None, {n: t.numpy() for n, t in zip(names, tensors)})
    )


def _assert_same_steps(model, path: Path, fmt: str) -> None:
    """Three greedy steps of a batch of three, from a fresh state, through the file and through the model."""
    step = _run_export(path, fmt)
    tokens = torch.tensor([[3], [5], [7]])
    state, theirs = None, initial_state(model, 3)  # None: the model's own start, which the file's must equal
    for _ in range(3):
        with torch.no_grad():
            logits, state = model(tokens, state, last_only=True)
        ours = flat_state(state)
        got, *theirs = step(tokens, *theirs)
        assert len(theirs) == len(ours)
        torch.testing.assert_close(got, logits[:, -1], atol=1e-5, rtol=1e-4)
        for mine, exported in zip(ours, theirs):
            torch.testing.assert_close(exported, mine, atol=1e-5, rtol=1e-4)
        tokens = logits[:, -1].argmax(-1, keepdim=True)


def _untrained(**changes):
    torch.manual_seed(0)
    config = resolve(TINY, {"layers": 2, **changes}).model
    return build_model(config, 30, [10] if config.softmax == "adaptive" else None).eval()


MODELS = {
    "rnn": dict(cell="rnn"),
    "gru": dict(cell="gru"),
    "gru-bidirectional": dict(cell="gru", bidirectional=True, context=6),
    "lstm-adaptive": dict(cell="lstm", softmax="adaptive"),
    "lstm-ensemble": dict(cell="lstm", members=2),
    "gru-bidirectional-ensemble": dict(cell="gru", bidirectional=True, context=6, members=2),
}


@pytest.mark.parametrize("name", MODELS)
def test_torchscript_step_matches_the_model(name: str, tmp_path: Path) -> None:
    model = _untrained(**MODELS[name])
    export(model, "torchscript", tmp_path / "step.pt")
    _assert_same_steps(model, tmp_path / "step.pt", "torchscript")


@pytest.mark.parametrize("name", ["rnn", "gru-bidirectional", "lstm-ensemble"])
def test_onnx_step_matches_the_model(name: str, tmp_path: Path) -> None:
    model = _untrained(**MODELS[name])
    export(model, "onnx", tmp_path / "step.onnx")
    _assert_same_steps(model, tmp_path / "step.onnx", "onnx")


@pytest.mark.parametrize("fmt, suffix", [("torchscript", "pt"), ("onnx", "onnx")])
def test_cli_exports_a_trained_lstm_in_one_file(fmt: str, suffix: str, tmp_path: Path, trained_model: Path) -> None:
    out = tmp_path / f"step.{suffix}"
    result = CliRunner().invoke(app, ["export", str(trained_model), "--format", fmt, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["inputs"] == {"tokens": ["batch", 1], "hidden": [1, "batch", 32], "cell": [1, "batch", 32]}
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # one file, no temporary or weights beside it
    _assert_same_steps(load(trained_model).components()["neural"], out, fmt)  # a mixture exports its neural part


def test_ngram_models_and_unknown_formats_are_refused(tmp_path: Path, trained_ngram: Path, trained_model: Path) -> None:
    with pytest.raises(ExportError, match="n-gram model"):
        export(load(trained_ngram).model, "onnx", tmp_path / "x.onnx")
    result = CliRunner().invoke(
        app, ["export", str(trained_model), "--format", "tflite", "--out", str(tmp_path / "x")], env={"COLUMNS": "200"}
    )  # a usage error, as for any value of the wrong type
    assert result.exit_code == 2 and "'tflite' is not one of 'torchscript', 'onnx'" in result.stderr
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []
