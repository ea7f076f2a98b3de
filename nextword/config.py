"""A run's settings: what the model is (`ModelConfig`) and how this run trains it (`TrainArgs`).

Both share one flat set of options, which a YAML file (a preset, or a model directory's config.yaml,
holding both), the flags and the settings saved in a model directory fill. `load` layers them for
every command and the API, and `resolve` checks every value in one place, so errors name the key.
This module does not import torch: `nextword --help` must stay fast."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import yaml

from .errors import ConfigError

NEURAL_CELLS = ("rnn", "gru", "lstm")
CELLS = (*NEURAL_CELLS, "ngram")  # ngram: the interpolated Kneser-Ney baseline
POOLS = ("final", "attention")
SOFTMAXES = ("full", "adaptive")
TOKENIZERS = ("unigram", "bpe", "char", "word")
DEVICES = ("auto", "cpu", "cuda", "mps")

# Options that may change when a run is resumed: how long to keep going, and on what hardware.
RESUMABLE_KEYS = ("epochs", "max_steps", "time_budget", "patience", "device", "mixture")
INIT_LR_SCALE = 0.3  # a run from a trained model's weights starts at this fraction of its learning rate

# A comparison is a short run of each variant, so by default it trains at a constant rate and
# without dropout: in ~1000 steps a warm-up and decay, or dropout, mostly delay the moment a cell
# learns to carry a word across a clause (on the long-range corpus they hid that an LSTM learns
# it at all; see the README). --config and flags override each of these.
# Nor does it fit a mixture at the end of each run: the table compares the cells themselves.
COMPARE_DEFAULTS = {"dropout": 0.0, "warmup": 0, "final_lr": 1.0, "mixture": False}
COMPARE_STEPS = 1000  # each variant's budget when neither the YAML file nor the flags set one


def _opt(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
    low_open: bool = False,
) -> Any:
    """A config field carrying its help text and its bounds, so flags and validation share them."""
    meta = {"help": help, "low": low, "high": high, "choices": choices, "low_open": low_open}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelConfig:
    """What a model is: all that loading it needs. A run from its weights (--init) keeps all of it but the
    dropout, which shapes no weight; a resumed run keeps all of it."""

    tokenizer: str = _opt("unigram", "SentencePiece model type.", choices=TOKENIZERS)
    vocab_size: int = _opt(
        8000, "Vocabulary size; lowered automatically when the corpus is too small.", low=8, high=1 << 20
    )
    cell: str = _opt("lstm", "Recurrent cell, or ngram for a Kneser-Ney n-gram baseline.", choices=CELLS)
    order: int = _opt(
        5, "Order of an n-gram model (--cell ngram): the pieces it conditions on, plus one.", low=1, high=6
    )
    layers: int = _opt(2, "Number of stacked recurrent layers.", low=1, high=16)
    embed: int = _opt(256, "Embedding size.", low=1)
    hidden: int = _opt(256, "Hidden state size of each layer.", low=1)
    dropout: float = _opt(0.2, "Dropout probability.", low=0.0, high=0.9)
    members: int = _opt(
        1,
        "Networks trained side by side from different starting weights, their predictions averaged: "
        "an ensemble, for a budget that reads the text many times (each step costs one per member).",
        low=1,
        high=8,
    )
    softmax: str = _opt(
        "full",
        "Output layer: full, or adaptive (clusters of rarer pieces; faster training with a large vocabulary).",
        choices=SOFTMAXES,
    )
    bidirectional: bool = _opt(
        False,
        "Encode the context window before each prediction with a bidirectional "
        "RNN instead of reading the text left to right.",
    )
    context: int = _opt(32, "Tokens the bidirectional encoder reads before each prediction.", low=1)
    pool: str = _opt(
        "final",
        "How the bidirectional encoder sums up its window: the final states of both "
        "directions, or attention over every position.",
        choices=POOLS,
    )


@dataclass(frozen=True)
class TrainArgs:
    """How one run trains a model: its data split, optimisation, budget, seed and device."""

    valid_fraction: float = _opt(
        0.05,
        "Fraction of the corpus (its end) held out for validation, at most 100,000 tokens.",
        low=0.0,
        high=0.5,
        low_open=True,
    )
    mixture: bool = _opt(
        True,
        "At the end of training, mix the recurrent model with a Kneser-Ney n-gram of "
        "order --order over the same pieces and a cache of the text being read, weighted "
        "on the validation text.",
    )
    # Optimisation
    seq_len: int = _opt(64, "Tokens per truncated-BPTT segment.", low=1)
    batch_size: int = _opt(32, "Parallel token streams per batch.", low=1)
    lr: float = _opt(3e-3, "Peak learning rate (AdamW).", low=0.0, low_open=True)
    weight_decay: float = _opt(0.01, "AdamW weight decay.", low=0.0)
    warmup: int = _opt(100, "Learning-rate warmup steps (at most a quarter of the run's).", low=0)
    final_lr: float = _opt(
        0.1, "Learning rate at the end of the cosine decay, as a fraction of the peak.", low=0.0, high=1.0
    )
    clip: float = _opt(1.0, "Gradient-norm clipping threshold (0 disables).", low=0.0)
    # Budget and evaluation
    epochs: int | None = _opt(
        10,
        "Stop after this many passes over the training split (the default 10 only "
        "when neither max_steps nor time_budget is given).",
        low=1,
    )
    max_steps: int | None = _opt(None, "Stop after this many optimiser steps.", low=1)
    time_budget: float | None = _opt(
        None,
        "Stop after this much training time: 90s, 10m, 1h30m, 1:30:00 (without it, --epochs or --max-steps, the "
        "recipe trains a text that ten epochs read in under a minute for a minute).",
        low=0.0,
        low_open=True,
    )
    eval_every: int = _opt(200, "Evaluate and checkpoint every this many steps.", low=1)
    patience: int | None = _opt(None, "Stop after this many evaluations without a better validation loss.", low=1)
    seed: int = _opt(0, "Random seed; the same seed gives the same model on a CPU.", low=0, high=2**32 - 1)
    device: str = _opt("auto", "Where to train: auto picks cuda, then mps, then cpu.", choices=DEVICES)


class Settings(NamedTuple):
    """A run's settings: what the model is, and how this run trains it."""

    model: ModelConfig
    train: TrainArgs

    def to_dict(self) -> dict[str, Any]:
        """Every option by name, as YAML files and config.yaml hold them."""
        return {**dataclasses.asdict(self.model), **dataclasses.asdict(self.train)}

    def replace(self, **changes: Any) -> Settings:
        return resolve(self.to_dict(), changes)


# The one flat set of options: the flags, and the keys of YAML files.
FIELDS: dict[str, dataclasses.Field] = {
    f.name: f for f in (*dataclasses.fields(ModelConfig), *dataclasses.fields(TrainArgs))
}
_TYPES = {**typing.get_type_hints(ModelConfig), **typing.get_type_hints(TrainArgs)}
MODEL_KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig))
# What a run from another model's weights (--init) takes from that model: what shapes the weights.
SHAPE_KEYS = tuple(key for key in MODEL_KEYS if key != "dropout")


# Every number carries its unit, largest first (1h30m, 90s, 1.5h), or the clock is written out
# (1:30:00 is h:mm:ss, 2:30 is m:ss). A bare number is seconds. `1h30` is refused: minutes or seconds?
_NUMBER = r"\d+(?:\.\d+)?"
_UNITS = re.compile(rf"^(?:({_NUMBER})h)?(?:({_NUMBER})m)?(?:({_NUMBER})s)?$")
_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d{2}(?:\.\d+)?)$")
DURATION_EXAMPLES = "90, 90s, 3m, 1h30m, 1.5h, 1:30:00 (h:mm:ss) or 2:30 (m:ss)"


def parse_duration(value: Any) -> float:
    """Seconds from an unambiguous duration: one of DURATION_EXAMPLES."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    if re.fullmatch(_NUMBER, text):
        return float(text)
    clock, units = _CLOCK.match(text), _UNITS.match(text)
    if clock and float(clock.group(3)) < 60 and (clock.group(1) is None or int(clock.group(2)) < 60):
        parts = clock
    elif text and units and any(units.groups()):
        parts = units
    else:
        raise ValueError(f"{value!r} is not a duration; write it like {DURATION_EXAMPLES}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def _coerce(key: str, value: Any) -> Any:
    """Check one value's type and bounds, returning it in the field's type."""
    declared = _TYPES[key]
    base = next(t for t in (typing.get_args(declared) or (declared,)) if t is not type(None))
    if value is None:
        if type(None) in typing.get_args(declared):  # an optional option
            return None
        raise ConfigError(f"option '{key}' needs a value")
    if key == "time_budget":
        try:
            value = parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"option 'time_budget': {exc}") from None
    meta = FIELDS[key].metadata
    if base is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"option '{key}' must be true or false; got {value!r}")
    if base is str:
        value = str(value).strip().lower()
        if meta["choices"] and value not in meta["choices"]:
            raise ConfigError(f"option '{key}' must be one of {', '.join(meta['choices'])}; got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"option '{key}' must be a number; got {value!r}")
    try:
        number = base(value) if base is float else int(str(value), 10) if isinstance(value, str) else value
    except ValueError:
        raise ConfigError(
            f"option '{key}' must be {'an integer' if base is int else 'a number'}; got {value!r}"
        ) from None
    if base is int and (isinstance(number, float) and not number.is_integer()):
        raise ConfigError(f"option '{key}' must be an integer; got {value!r}")
    number = base(number)
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"option '{key}' must be a finite number; got {value!r}")
    low, high = meta["low"], meta["high"]
    if low is not None and (number < low or (meta["low_open"] and number == low)):
        raise ConfigError(f"option '{key}' must be {'>' if meta['low_open'] else '>='} {low:g}; got {value!r}")
    if high is not None and number > high:
        shown = f"{high:,}" if isinstance(high, int) else f"{high:g}"
        raise ConfigError(f"option '{key}' must be <= {shown}; got {value!r}")
    return number


def _check_keys(raw: Mapping[str, Any], source: str) -> None:
    for key in raw:
        if key not in FIELDS:
            hint = difflib.get_close_matches(str(key), FIELDS, n=1)
            also = f"; did you mean '{hint[0]}'?" if hint else f"; known options: {', '.join(FIELDS)}"
            raise ConfigError(f"unknown option '{key}' in {source}{also}")


def resolve(*layers: Mapping[str, Any], sources: tuple[str, ...] | None = None) -> Settings:
    """Merge option layers (later ones win) over the defaults, validate the result in one place, and split it
    into what the model is and how the run trains it."""
    merged: dict[str, Any] = {}
    for index, layer in enumerate(layers):
        _check_keys(layer, sources[index] if sources else "the options")
        merged.update(layer)
    values = {key: _coerce(key, merged[key]) for key in merged}
    if "epochs" not in merged and (values.get("max_steps") or values.get("time_budget")):
        values["epochs"] = None  # the default epoch cap is for runs given no other bound, not a hidden limit
    model = ModelConfig(**{key: value for key, value in values.items() if key in MODEL_KEYS})
    args = TrainArgs(**{key: value for key, value in values.items() if key not in MODEL_KEYS})
    if args.epochs is None and args.max_steps is None and args.time_budget is None:
        raise ConfigError("no stopping rule: set at least one of epochs, max_steps or time_budget")
    if model.cell == "ngram" and model.members > 1:
        raise ConfigError("an n-gram model is counted once, not trained from starting weights; drop --members")
    if model.cell == "ngram" and model.bidirectional:
        raise ConfigError(
            "an n-gram model reads only the pieces before the next one; drop --bidirectional "
            "or choose a recurrent --cell"
        )
    return Settings(model, args)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Options from a YAML file, read with safe_load: a file can never run code."""
    from .files import read_bytes  # a FIFO or a device is refused, not waited on

    path = Path(path)
    try:
        text = read_bytes(path, "config file", ConfigError).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file is not UTF-8 text: {path} (byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of option: value, not a {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


PRESETS = Path(__file__).with_name("presets")  # shipped inside the package, so found from any directory


def presets() -> dict[str, str]:
    """The built-in presets by name, each with its description: the first comment line of its file."""
    found = {}
    for path in PRESETS.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        first = next((line for line in text.splitlines() if line.startswith("#")), "")
        size = resolve(yaml.safe_load(text)).model
        about = first.lstrip("# ").removeprefix(f"{path.stem}:").strip()
        found[path.stem] = ((size.layers * size.hidden, size.vocab_size), about)
    return {name: about for name, (_, about) in sorted(found.items(), key=lambda item: item[1][0])}  # smallest first


def find_config(value: str | Path) -> Path:
    """The YAML file of `--config`: a path, or a built-in preset by name (`small`; `models/small.yaml`, where
    the presets used to be, still finds it)."""
    path = Path(value)
    if path.exists():
        return path
    preset = PRESETS / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml") and str(path.parent) in (".", "models") and preset.is_file():
        return preset
    raise ConfigError(f"config file not found: {value}; give a YAML file or a preset: {', '.join(presets())}")


def load(
    config_file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    init: str | Path | None = None,
    resume: str | Path | None = None,
) -> Settings:
    """A run's settings, each layer over the ones before: the options' own defaults, a command's `defaults`
    (compare's, or the recipe's), the settings saved in the model directory that the run starts from
    (`init`, at INIT_LR_SCALE times its learning rate) or continues (`resume`), the YAML file, then the
    `flags` given (None: not given). A resumed run may change only RESUMABLE_KEYS; a run from another
    model's weights none of SHAPE_KEYS."""
    # (where it comes from, which errors name; the layer): a list, since a YAML file may be the saved one
    layers = [("the command's defaults", defaults or {})]
    start = next((Path(directory) for directory in (init, resume) if directory is not None), None)
    saved: dict[str, Any] = {}
    if start is not None:
        from .checkpoint import CONFIG, read_manifest, read_settings  # it imports torch, which --help must not wait for

        read_manifest(start)
        saved = read_settings(start).to_dict()
        layers.append((str(start / CONFIG), saved))
    if init is not None:
        layers.append(("the lowered learning rate", {"lr": saved["lr"] * INIT_LR_SCALE}))
    if config_file is not None:
        layers.append((str(config_file), read_yaml(config_file)))
    layers.append(("the command line", {k: v for k, v in (flags or {}).items() if v is not None}))
    settings = resolve(*(layer for _, layer in layers), sources=tuple(source for source, _ in layers))
    changed = [key for key, value in settings.to_dict().items() if saved and value != saved[key]]
    if init is not None and (fixed := [key for key in changed if key in SHAPE_KEYS]):
        raise ConfigError(
            f"--init starts from the weights of {start}, so {', '.join(fixed)} cannot change "
            f"(it has {', '.join(f'{k}={saved[k]}' for k in fixed)}); drop those options"
        )
    if init is None and (fixed := sorted(set(changed) - set(RESUMABLE_KEYS))):
        raise ConfigError(
            f"--resume continues the saved run, so {', '.join(fixed)} cannot change; "
            f"only {', '.join(RESUMABLE_KEYS)} can"
        )
    return settings


@dataclass(frozen=True)
class Sampling:
    """How `generate` picks each next piece; checked when made."""

    max_words: int = 30
    temperature: float = 0.8  # 0 picks the likeliest piece
    top_k: int = 0  # 0 keeps every piece
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.max_words < 1:
            raise ConfigError(f"option 'max_words' must be >= 1; got {self.max_words}")
        if not 0 <= self.temperature < math.inf:
            raise ConfigError(
                f"option 'temperature' must be >= 0 (0 picks the likeliest piece); got {self.temperature}"
            )
        if self.top_k < 0:
            raise ConfigError(f"option 'top_k' must be >= 0 (0 keeps every piece); got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"option 'top_p' must be in (0, 1]; got {self.top_p}")


def dump_yaml(settings: Settings) -> str:
    """A run's settings as YAML, readable back by `load`: the model's options and the run's, in one file."""
    return yaml.safe_dump(settings.to_dict(), sort_keys=False)
