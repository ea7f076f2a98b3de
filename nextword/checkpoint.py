"""The model directory: the unit a user trains, passes around, resumes and loads.

    nextword.json      manifest: format version, vocabulary size, corpus
    config.yaml        the run's settings: the model's options and its training's (usable again with --config)
    tokenizer.model    the SentencePiece model
    model.safetensors  the best weights by validation loss (their step in the metadata); an n-gram's tables
    ngram.safetensors  a mixture's n-gram tables, and mixture.safetensors its weights (kinds.py)
    metrics.jsonl      one row per evaluation, and rows of training loss between them
    summary.json       the training summary shown by `nextword info`
    README.md          the model card written at the end of training (modelcard.py)
    state.pt           the last training state (TrainState, TENSORS), for --resume (tensors only, loaded weights-only)
    lexicon.tsv        the words of the training text with their counts (see lexicon.py)

Every file is written atomically, and a checkpoint writes its files in an order that a crash
between any two of them cannot spoil: metrics.jsonl (resume ignores rows past the state's step),
then state.pt, the record of the checkpoint, then model.safetensors, which resume writes again
from the state when a crash came before it (`best_weights_missing`), then summary.json.
nextword.json is written last when a directory is set up and removed first when it is
overwritten, so a directory without it holds no model; a later training clears what is left.

Loading never runs code from the directory: weights come from safetensors, the state through
torch's weights-only unpickler, YAML through safe_load. Every file read must be a regular file (a
FIFO is refused, not waited on), the manifest must match `MANIFEST_SCHEMA`, and the weights must be
of the dtypes in `kinds.WEIGHT_DTYPES` and finite. Nothing is written through a symbolic link (files.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_model

from . import __version__
from .config import Settings, dump_yaml, read_yaml, resolve
from .devices import pick_device
from .errors import ConfigError, ModelDirError
from .files import (
    LockHeld,
    atomic_path,
    exclusive_lock,
    existing_directory,
    leftover_temporaries,
    read_bytes,
    write_bytes,
    write_text,
)
from . import kinds
from .model import LanguageModel
from .lexicon import Lexicon, read_lexicon
from .tokenizer import Tokenizer

# 2: embeddings read at √dim their stored size (model.ScaledEmbedding);
# 3: the manifest's kind names the model's kind (neural, ngram, mixture); format 2 is migrated on read.
FORMAT = 3
STATE_FORMAT = 2  # of state.pt; 1: from before it said so
LOCK = ".nextword.lock"
MANIFEST, CONFIG, TOKENIZER = "nextword.json", "config.yaml", "tokenizer.model"
WEIGHTS, METRICS, SUMMARY, STATE = kinds.WEIGHTS, "metrics.jsonl", "summary.json", "state.pt"
CARD, LEXICON = "README.md", "lexicon.tsv"
_OWN_FILES = (MANIFEST, CONFIG, TOKENIZER, WEIGHTS, METRICS, SUMMARY, STATE, CARD, LEXICON, *kinds.FILES)

# The model kinds a manifest may name: format 3's, and format 2's, which read_manifest migrates.
KINDS = (*kinds.KINDS, *kinds.FORMAT_2_KINDS)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sha256_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


# What each field of nextword.json must hold: (test, what it must be). Fields not listed are kept as
# they are, so a newer nextword may add some; "format" is checked first and on its own (read_manifest).
MANIFEST_SCHEMA: dict[str, tuple[Callable[[Any], bool], str]] = {
    "format": (_integer, "an integer"),
    "nextword": (lambda v: isinstance(v, str), "a version string"),
    "kind": (lambda v: v in KINDS, f"one of {', '.join(KINDS)}"),
    "vocab_size": (lambda v: _integer(v) and v >= 2, "an integer >= 2"),
    "corpus": (lambda v: v is None or isinstance(v, str), "a file name or null"),
    "corpus_sha256": (_sha256_or_none, "a SHA-256 in hex, or null"),
    "valid_sha256": (_sha256_or_none, "a SHA-256 in hex, or null"),
    "cutoffs": (
        lambda v: v is None or isinstance(v, list) and all(_integer(c) and c > 0 for c in v) and v == sorted(set(v)),
        "null or a list of increasing positive integers",
    ),
    "init": (lambda v: v is None or isinstance(v, dict), "null or an object"),
    "mixture": (lambda v: v is None or isinstance(v, dict), "null or an object"),
}


def is_own_file(path: Path) -> bool:
    """Whether `path` is one of the files nextword keeps in a model directory (or its lock, or a
    temporary file of one), which nothing but training may replace."""
    out = path.parent
    return is_model_dir(out) and (path.name in (*_OWN_FILES, LOCK) or path in _leftovers(out))


def is_model_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def _leftovers(out: Path) -> list[Path]:
    """The temporary files that a killed process left behind while writing `out`'s own files."""
    return [temporary for name in _OWN_FILES for temporary in leftover_temporaries(out / name)]


def _only_own_files(out: Path) -> bool:
    """Whether `out` holds some of nextword's files and nothing else: a model, or what a training killed
    while setting the directory up leaves (files without a manifest, temporary files)."""
    if not out.is_dir():
        return False
    own = {out / name for name in _OWN_FILES} | set(_leftovers(out))
    found = {path for path in out.iterdir() if path.name != LOCK}
    return bool(found - {out / CARD}) and found <= own  # a README.md alone may well be someone's own


def check_output(out: Path, *, force: bool) -> None:
    """Refuse to overwrite a model without `force`, and never write into a directory of other data."""
    if not existing_directory(out, "--out", ModelDirError):
        return
    if any(p.name != LOCK for p in out.iterdir()):
        if not is_model_dir(out) and not _only_own_files(out):
            raise ModelDirError(
                f"{out} exists and is not a nextword model directory; choose another --out (nothing was written)"
            )
        if not force:
            raise ModelDirError(
                f"a model already exists in {out}; use --force to overwrite it, or --resume to continue training it"
            )


def prepare_output(out: Path, *, force: bool) -> None:
    """Empty the model directory `out`, which `writing` made, after the same checks as `check_output`: it
    holds a model, an unfinished one or nothing, as check_output refused anything else."""
    check_output(out, force=force)
    for name in _OWN_FILES:  # the manifest first: from then on the directory holds no model
        (out / name).unlink(missing_ok=True)


@contextlib.contextmanager
def writing(out: Path) -> Iterator[None]:
    """Hold the model directory's lock: a second training into it refuses instead of mixing files.

    The lock is an OS file lock (files.exclusive_lock), released by the OS when the process ends however
    it ends, so a crashed run never leaves it stuck; a lock file that is a link is refused. Holding it,
    no one else writes here, so the temporary files of a killed run are removed."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDirError(f"cannot write to model directory {out}: {exc.strerror}") from None
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(out / LOCK, ModelDirError))
        except LockHeld as other:
            raise ModelDirError(
                f"another nextword training (process {other.holder}) is writing to {out}; "
                f"wait for it to finish or choose another --out"
            ) from None
        for temporary in _leftovers(out):
            temporary.unlink(missing_ok=True)
        yield


def write_new(out: Path, settings: Settings, tokenizer: Tokenizer, manifest: Mapping[str, Any]) -> None:
    """The files that describe a model before it has trained: what resume and load read first."""
    write_bytes(out / TOKENIZER, tokenizer.proto)
    write_text(out / CONFIG, dump_yaml(settings))
    write_text(out / MANIFEST, json.dumps({"format": FORMAT, "nextword": __version__, **manifest}, indent=2))


def save_weights(out: Path, model: torch.nn.Module, step: int) -> None:
    """The weights of `model` at training step `step`, which the file records."""
    with atomic_path(out / WEIGHTS) as temporary:
        save_model(model, str(temporary), metadata={"step": str(step)})


def weights_step(out: Path) -> int | None:
    """The training step whose weights model.safetensors holds; None if there are none, or no record."""
    try:
        with safe_open(str(out / WEIGHTS), framework="pt") as weights:
            return int((weights.metadata() or {})["step"])
    except (OSError, SafetensorError, KeyError, ValueError):
        return None


@dataclass
class TrainState:
    """A run's progress, which the training loop advances. A checkpoint (state.pt) holds it with the `TENSORS`
    beside it, so that resuming from it gives the very weights of a run that never stopped."""

    step: int = 0
    epoch: int = 0
    segment: int = 0  # the next segment of the epoch
    hidden: Any = None  # the recurrent state carried into it: a tensor, a pair (LSTM), an ensemble's tuple, or None
    best_loss: float = math.inf
    best_step: int = 0
    bad_evaluations: int = 0  # evaluations since the best one
    elapsed: float = 0.0
    plan: dict[str, Any] | None = None  # a time-budgeted run's planned steps, and how they were measured


# What state.pt holds beside the progress: while training, the model, the optimiser and torch's generators hold it.
TENSORS = ("model", "optimizer", "rng", "cuda_rng")


def best_weights_missing(out: Path, state: TrainState) -> bool:
    """Whether a crash came between writing a checkpoint's state and its new best weights.

    A state whose best step is its own step holds those weights, so they can be written again from it."""
    return state.best_step == state.step > 0 and weights_step(out) != state.step


def save_state(out: Path, state: TrainState, tensors: Mapping[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format": STATE_FORMAT, **vars(state), **tensors}, buffer)
    write_bytes(out / STATE, buffer.getvalue())


def load_state(out: Path) -> tuple[TrainState, dict[str, Any]]:
    """The progress state.pt holds, and the tensors beside it (named as in TENSORS), on the CPU."""
    path = out / STATE
    if not os.path.lexists(path):
        raise ModelDirError(
            f"{out} has no training state to resume from ({STATE} is missing: training "
            f"stopped before its first checkpoint); train it again with --force"
        )
    data = read_bytes(path, "training state", ModelDirError)
    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelDirError(f"{path} holds more than tensors and plain values; refusing to load it") from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise ModelDirError(f"{path} is damaged ({type(exc).__name__}); it cannot be resumed") from None
    damaged = ModelDirError(f"{path} is damaged (not a training state); it cannot be resumed")
    if not isinstance(saved, dict) or not _integer(version := saved.pop("format", 1)):
        raise damaged
    if version > STATE_FORMAT:
        raise ModelDirError(f"{path} was written by a newer nextword (format {version}); upgrade nextword to resume it")
    saved.setdefault("plan", None)  # a state from before time budgets were planned has none
    progress = [field.name for field in dataclasses.fields(TrainState)]
    if set(saved) != {*progress, *TENSORS}:
        raise damaged
    return TrainState(**{name: saved.pop(name) for name in progress}), saved


def write_metrics(out: Path, rows: list[dict[str, Any]]) -> None:
    write_text(out / METRICS, "".join(json.dumps(row) + "\n" for row in rows))


def read_metrics(out: Path, training: bool = False) -> list[dict[str, Any]]:
    """The evaluation rows of metrics.jsonl; with `training`, every row, training-loss rows too."""
    path = out / METRICS
    if not os.path.lexists(path):
        return []
    text = read_bytes(path, "metrics file", ModelDirError)
    try:
        rows = [json.loads(line) for line in text.decode("utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelDirError(f"{path} is damaged (not JSON Lines)") from None
    if not all(isinstance(row, dict) and isinstance(row.get("step"), int) for row in rows):
        raise ModelDirError(f"{path} is damaged (a row without a step)")
    return rows if training else [row for row in rows if "train_loss" not in row]


def write_summary(out: Path, summary: Mapping[str, Any]) -> None:
    write_text(out / SUMMARY, json.dumps(dict(summary), indent=2))


def read_json(path: Path) -> dict[str, Any]:
    text = read_bytes(path, "file", ModelDirError)
    try:
        data = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelDirError(f"{path} is damaged (not valid JSON)") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{path} is damaged (not a JSON object)")
    return data


def read_manifest(out: Path) -> dict[str, Any]:
    if not os.path.isfile(out) and not existing_directory(out, "model", ModelDirError):  # a file: said below
        raise ModelDirError(f"model not found: {out}")
    if _only_own_files(out) and not is_model_dir(out):
        raise ModelDirError(
            f"{out} holds a training that stopped while setting it up (no {MANIFEST}); train it again with --force"
        )
    if out.is_dir() and any(is_model_dir(p) for p in out.iterdir() if p.is_dir()):
        raise ModelDirError(f"{out} is a folder of models, not a model; see them with: nextword list {out}")
    if not out.is_dir():
        raise ModelDirError(
            f"{out} is a file, not a model directory; give the folder nextword train wrote "
            f"(to train a model on this file: nextword train {out})"
        )
    if not is_model_dir(out):
        # Training writes into an empty folder, not into one that holds other files.
        empty = not any(out.iterdir())
        how = f"train one with: nextword train CORPUS --out {out}" if empty else "give the folder nextword train wrote"
        raise ModelDirError(f"{out} is not a nextword model directory (no {MANIFEST}); {how}")
    manifest = read_json(out / MANIFEST)
    version = manifest.get("format")
    if not _integer(version):
        raise ModelDirError(f"{out / MANIFEST} is damaged: 'format' must be an integer, not {json.dumps(version)[:40]}")
    if version > FORMAT:
        raise ModelDirError(f"{out} was written by a newer nextword (format {version}); upgrade nextword to load it")
    if version < 2:
        raise ModelDirError(
            f"{out} was written by an older nextword (format {version}), whose models read "
            f"their embeddings at another scale; train it again with: nextword train CORPUS "
            f"--config {out / CONFIG} --out {out} --force"
        )
    for field, (valid, want) in MANIFEST_SCHEMA.items():
        if field in manifest and not valid(manifest[field]):
            raise ModelDirError(
                f"{out / MANIFEST} is damaged: {field!r} must be {want}, not {json.dumps(manifest[field])[:40]}"
            )
    if version == 2:  # the same files; only the kind is named differently
        manifest = {**manifest, "format": FORMAT, "kind": kinds.FORMAT_2_KINDS.get(manifest.get("kind"))}
    return manifest


def set_kind(out: Path, kind: str, mixture: Mapping[str, Any] | None = None) -> None:
    """Record in the manifest that `out` now holds a model of `kind`, with what fitting its mixture found
    (none but for a mixture)."""
    write_text(out / MANIFEST, json.dumps({**read_manifest(out), "kind": kind, "mixture": mixture}, indent=2))


def read_settings(out: Path) -> Settings:
    """The settings config.yaml holds: the model's options, which load needs, and its training's."""
    try:
        return resolve(read_yaml(out / CONFIG), sources=(str(out / CONFIG),))
    except ConfigError as exc:
        raise ModelDirError(f"{out / CONFIG}: {exc}") from None


@dataclass
class LoadedModel:
    path: Path
    model: LanguageModel
    tokenizer: Tokenizer
    settings: Settings  # config.yaml: the model's options, and its training's
    manifest: dict[str, Any]
    summary: dict[str, Any]
    lexicon: Lexicon | None = None  # None in a directory from before lexicons: no filter

    @property
    def kind(self) -> kinds.Neural | kinds.Ngram | kinds.Mixture:
        return kinds.of(self.manifest, self.path)

    def components(self) -> dict[str, torch.nn.Module]:
        """The models the loaded one is made of, by name ("neural", "ngram", "mixture", "mixture+cache"),
        itself among them; `model` is the last."""
        return self.kind.components(self.model)

    @property
    def default_component(self) -> str:
        """The name of the component that is the model itself, the one predict uses."""
        return next(name for name, model in self.components().items() if model is self.model)

    def component(self, name: str | None) -> torch.nn.Module:
        """The loaded model itself (None), or its component `name`."""
        if name is None:
            return self.model
        components = self.components()
        if name not in components:
            raise ConfigError(f"{self.path} has no component {name!r}; it has {', '.join(components)}")
        return components[name]


def load(out: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """A trained model directory, checked piece by piece, ready for inference (eval mode) on `device`
    (a name for `devices.pick_device`, which refuses one that is not there)."""
    device = pick_device(device)
    out = Path(out)
    manifest = read_manifest(out)
    settings = read_settings(out)
    tokenizer = Tokenizer.load(out / TOKENIZER)
    if manifest.get("vocab_size", tokenizer.vocab_size) != tokenizer.vocab_size:
        raise ModelDirError(
            f"{out / MANIFEST} is damaged: 'vocab_size' is {manifest['vocab_size']}, but "
            f"{TOKENIZER} has {tokenizer.vocab_size} pieces"
        )
    if not os.path.lexists(out / WEIGHTS):
        raise ModelDirError(f"{out} has no trained weights yet ({WEIGHTS} is missing); train or resume it first")
    model = kinds.of(manifest, out).load(out, settings.model, tokenizer.vocab_size, manifest).to(device).eval()
    summary = read_json(out / SUMMARY) if os.path.lexists(out / SUMMARY) else {}
    return LoadedModel(out, model, tokenizer, settings, manifest, summary, read_lexicon(out / LEXICON))
