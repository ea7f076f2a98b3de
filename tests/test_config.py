from pathlib import Path

import pytest

from nextword.config import FIELDS, PRESETS, ModelConfig, dump_yaml, load, parse_duration, read_yaml, resolve
from nextword.errors import ConfigError


def test_defaults_then_yaml_then_flags(tmp_path: Path) -> None:
    preset = tmp_path / "preset.yaml"
    preset.write_text("cell: gru\nlayers: 3\nhidden: 128\n")
    config = load(preset, {"layers": 1, "dropout": None}).model
    assert (config.cell, config.layers, config.hidden) == ("gru", 1, 128)
    assert config.dropout == ModelConfig().dropout  # a flag left unset does not override


def test_saved_config_reads_back_identically(tmp_path: Path) -> None:
    config = resolve({"cell": "rnn", "time_budget": "1m30s", "max_steps": 7})
    saved = tmp_path / "config.yaml"
    saved.write_text(dump_yaml(config))
    assert load(saved) == config
    assert config.train.time_budget == 90.0


def test_one_file_of_model_and_training_options_splits_into_both(tmp_path: Path) -> None:
    preset = tmp_path / "both.yaml"  # a preset, or a model directory's config.yaml: one mapping of both kinds
    preset.write_text("cell: gru\nhidden: 64\nlr: 0.02\nmax_steps: 9\nvalid_fraction: 0.1\n")
    model, args = load(preset)
    assert (model.cell, model.hidden, args.lr, args.max_steps, args.valid_fraction) == ("gru", 64, 0.02, 9, 0.1)
    assert args.epochs is None  # a step budget alone: no default epoch cap
    assert set(load(preset).to_dict()) == set(FIELDS) and dump_yaml(load(preset)).count("\n") == len(FIELDS)


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90),
        ("90s", 90),
        ("10m", 600),
        ("3m", 180),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("1h30m15s", 5415),
        (" 1h 30m ", 5400),
        ("1:30:00", 5400),
        ("2:30", 150),
        ("0:00:05", 5),
        (45, 45),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1h30", "1m30", "30m1h", "1:75", "1:60:00", "1:2", "h", "", "soon", "-5s"])
def test_ambiguous_or_malformed_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; write it like 90, 90s, 3m, 1h30m"):
        parse_duration(text)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"cell": "transformer"}, "'cell' must be one of rnn, gru, lstm"),
        ({"tokenizer": "bytes"}, "'tokenizer' must be one of"),
        ({"layers": 0}, "'layers' must be >= 1"),
        ({"layers": 2.5}, "'layers' must be an integer"),
        ({"layers": "two"}, "'layers' must be an integer"),
        ({"dropout": 1.5}, "'dropout' must be <= 0.9"),
        ({"lr": 0}, "'lr' must be > 0"),
        ({"lr": -1e-3}, "'lr' must be > 0"),
        ({"lr": float("nan")}, "'lr' must be a finite number"),
        ({"batch_size": True}, "'batch_size' must be a number"),
        ({"time_budget": "soon"}, "'time_budget': 'soon' is not a duration"),
        ({"valid_fraction": 0}, "'valid_fraction' must be > 0"),
        ({"epochs": None, "max_steps": None, "time_budget": None}, "no stopping rule"),
    ],
)
def test_bad_values_name_the_option(options: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        resolve(options)


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    preset = tmp_path / "x.yaml"
    preset.write_text("hiden: 64\n")
    with pytest.raises(ConfigError, match=r"unknown option 'hiden' in .*x.yaml; did you mean 'hidden'\?"):
        load(preset)


@pytest.mark.parametrize(
    "text, words",
    [
        ("cell: [lstm\n", "malformed YAML .* at line 2"),
        ("- lstm\n- gru\n", "must hold a mapping"),
        ("cell: !!python/object/apply:os.system ['touch pwned']\n", "malformed YAML"),
    ],
)
def test_bad_yaml_files(tmp_path: Path, text: str, words: str) -> None:
    preset = tmp_path / "bad.yaml"
    preset.write_text(text)
    with pytest.raises(ConfigError, match=words):
        read_yaml(preset)
    assert not (tmp_path / "pwned").exists()


def test_missing_and_directory_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        read_yaml(tmp_path)


def test_presets_are_valid() -> None:
    presets = sorted(PRESETS.glob("*.yaml"))
    assert {p.stem for p in presets} >= {"tiny", "small"}
    for preset in presets:
        load(preset)


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_preset_loads_and_says_what_it_is_for(preset: Path) -> None:
    assert preset.read_text().startswith(f"# {preset.stem}: ")  # the README's presets table relies on these
    options = read_yaml(preset)
    assert options and set(options) <= set(FIELDS), set(options) - set(FIELDS)  # it sets something, all known
    assert load(preset).train.epochs is not None  # a preset stops by itself
