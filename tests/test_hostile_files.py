"""Model directories from elsewhere: loading never runs code from them, and damage gets a clear message."""

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nextword.checkpoint import load, load_state
from nextword.cli import app
from nextword.errors import ModelDirError


class _Payload:
    """Unpickling this creates a marker file: proof that loading ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def model_dir(tmp_path: Path, trained_model: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(trained_model, copy)
    return copy


def test_weights_that_are_a_pickle_with_a_payload_are_refused(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (model_dir / "model.safetensors").write_bytes(pickle.dumps({"weight": _Payload(marker)}))
    with pytest.raises(ModelDirError, match="model.safetensors is damaged or not a safetensors file"):
        load(model_dir)
    assert not marker.exists()


def test_training_state_with_a_payload_is_refused(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "model": _Payload(marker)}, model_dir / "state.pt")
    with pytest.raises(ModelDirError, match="holds more than tensors"):
        load_state(model_dir)
    assert not marker.exists()


def test_yaml_with_python_tags_is_refused(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (model_dir / "config.yaml").write_text(
        f"cell: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n"
    )
    with pytest.raises(ModelDirError, match="config.yaml"):
        load(model_dir)
    assert not marker.exists()
    result = CliRunner().invoke(app, ["train", "x.txt", "--config", str(model_dir / "config.yaml")])
    assert result.exit_code == 2 and not marker.exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "nextword.json").write_text(json.dumps({"format": 99})), "newer nextword"),
        (lambda d: (d / "nextword.json").write_text(json.dumps({"format": 1})), "older nextword .* train it again"),
        (lambda d: (d / "tokenizer.model").unlink(), "tokenizer missing"),
        (lambda d: (d / "tokenizer.model").write_bytes(b"not a sentencepiece model"), "tokenizer file is damaged"),
        (
            lambda d: (d / "config.yaml").write_text(
                (d / "config.yaml").read_text().replace("hidden: 32", "hidden: 48")
            ),
            "does not match config.yaml",
        ),
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]),
            "damaged or not a safetensors file",
        ),
        (lambda d: (d / "nextword.json").write_text('{"format": 1,'), "nextword.json is damaged"),
        (lambda d: (d / "model.safetensors").unlink(), "no trained weights yet"),
    ],
    ids=[
        "newer format",
        "older format",
        "missing tokenizer",
        "damaged tokenizer",
        "weights of other shapes",
        "truncated weights",
        "truncated manifest",
        "missing weights",
    ],
)
def test_damaged_directories_name_the_problem(model_dir: Path, damage, message: str) -> None:
    damage(model_dir)
    with pytest.raises(ModelDirError, match=message):
        load(model_dir)
    result = CliRunner().invoke(app, ["predict", str(model_dir), "anna has "])
    assert result.exit_code == 2 and message.split()[0] in result.stderr and "Traceback" not in result.output
