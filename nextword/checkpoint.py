"""The model directory: the unit a user trains, passes around, resumes and loads.

    nextword.json      manifest: format version, vocabulary size, corpus
    config.yaml        the resolved training config (usable again with --config)
    tokenizer.model    the SentencePiece model
    model.safetensors  the best weights by validation loss (their step in the metadata)
    metrics.jsonl      one row per evaluation
    summary.json       the training summary shown by `nextword info`
    state.pt           the last training state, for --resume (tensors only, loaded weights-only)
    lexicon.tsv        the words of the training text with their counts (see lexicon.py)

Every file is written atomically, and a checkpoint writes its files in an order that a crash
between any two of them cannot spoil: metrics.jsonl (resume ignores rows past the state's step),
then state.pt, the record of the checkpoint, then model.safetensors, which resume writes again
from the state when a crash came before it (`best_weights_missing`), then summary.json.
nextword.json is written last when a directory is set up and removed first when it is
overwritten, so a directory without it holds no model; a later training clears what is left.

Loading never runs code from the directory: weights come from safetensors, the state through
torch's weights-only unpickler, YAML through safe_load.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_model

from . import __version__
from .config import INIT_LR_SCALE, RESUMABLE_KEYS, SHAPE_KEYS, Config, dump_yaml, read_yaml, resolve
from .errors import ConfigError, ModelDirError
from .files import atomic_path, leftover_temporaries, write_bytes, write_text
from .lexicon import Lexicon, read_lexicon
from .model import LanguageModel, build_model
from .ngram import NgramLM
from .tokenizer import Tokenizer

FORMAT = 2  # 2: embeddings read at √dim their stored size (model.ScaledEmbedding)
LOCK = ".nextword.lock"
MANIFEST, CONFIG, TOKENIZER = "nextword.json", "config.yaml", "tokenizer.model"
WEIGHTS, METRICS, SUMMARY, STATE = "model.safetensors", "metrics.jsonl", "summary.json", "state.pt"
LEXICON = "lexicon.tsv"
_OWN_FILES = (MANIFEST, CONFIG, TOKENIZER, WEIGHTS, METRICS, SUMMARY, STATE, LEXICON)


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
    own = {out / name for name in _OWN_FILES}
    own.update(_leftovers(out))
    found = {path for path in out.iterdir() if path.name != LOCK}
    return bool(found) and found <= own


def check_output(out: Path, *, force: bool) -> None:
    """Refuse to overwrite a model without `force`, and never write into a directory of other data."""
    if out.exists() and not out.is_dir():
        raise ModelDirError(f"--out {out} is a file; give a directory path")
    if out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        if not is_model_dir(out) and not _only_own_files(out):
            raise ModelDirError(f"{out} exists and is not a nextword model directory; "
                                f"choose another --out (nothing was written)")
        if not force:
            raise ModelDirError(f"a model already exists in {out}; use --force to overwrite it, "
                                f"or --resume to continue training it")


def prepare_output(out: Path, *, force: bool) -> None:
    """Make `out` an empty model directory, after the same checks as `check_output`."""
    check_output(out, force=force)
    if out.is_dir():  # empty, a model or an unfinished one: check_output refused anything else
        for name in _OWN_FILES:  # the manifest first: from then on the directory holds no model
            (out / name).unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDirError(f"cannot create model directory {out}: {exc.strerror}") from None


@contextlib.contextmanager
def writing(out: Path) -> Iterator[None]:
    """Hold the model directory's lock: a second training into it refuses instead of mixing files.

    The lock is an OS file lock, released by the OS when the process ends however it ends, so a
    crashed run never leaves it stuck. Holding it, no one else writes here, so the temporary files
    of a killed run are removed.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK, "a+")
    except OSError as exc:
        raise ModelDirError(f"cannot write to model directory {out}: {exc.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise ModelDirError(f"another nextword training (process {holder}) is writing to {out}; "
                                f"wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        for temporary in _leftovers(out):
            temporary.unlink(missing_ok=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_new(out: Path, config: Config, tokenizer: Tokenizer, manifest: Mapping[str, Any]) -> None:
    """The files that describe a model before it has trained: what resume and load read first."""
    write_bytes(out / TOKENIZER, tokenizer.proto)
    write_text(out / CONFIG, dump_yaml(config))
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


def best_weights_missing(out: Path, state: Mapping[str, Any]) -> bool:
    """Whether a crash came between writing a checkpoint's state and its new best weights.

    A state whose best step is its own step holds those weights, so they can be written again from it.
    """
    return state["best_step"] == state["step"] > 0 and weights_step(out) != state["step"]


def save_state(out: Path, state: Mapping[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    write_bytes(out / STATE, buffer.getvalue())


def load_state(out: Path) -> dict[str, Any]:
    path = out / STATE
    if not path.is_file():
        raise ModelDirError(f"{out} has no training state to resume from ({STATE} is missing: training "
                            f"stopped before its first checkpoint); train it again with --force")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelDirError(f"{path} holds more than tensors and plain values; refusing to load it") from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise ModelDirError(f"{path} is damaged ({type(exc).__name__}); it cannot be resumed") from None


def write_metrics(out: Path, rows: list[dict[str, Any]]) -> None:
    write_text(out / METRICS, "".join(json.dumps(row) + "\n" for row in rows))


def read_metrics(out: Path) -> list[dict[str, Any]]:
    path = out / METRICS
    if not path.is_file():
        return []
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelDirError(f"{path} is damaged (not JSON Lines)") from None
    if not all(isinstance(row, dict) and isinstance(row.get("step"), int) for row in rows):
        raise ModelDirError(f"{path} is damaged (a row without a step)")
    return rows


def write_summary(out: Path, summary: Mapping[str, Any]) -> None:
    write_text(out / SUMMARY, json.dumps(dict(summary), indent=2))


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelDirError(f"{path} is damaged (not valid JSON)") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{path} is damaged (not a JSON object)")
    return data


def read_manifest(out: Path) -> dict[str, Any]:
    if not out.exists():
        raise ModelDirError(f"model not found: {out}")
    if _only_own_files(out) and not is_model_dir(out):
        raise ModelDirError(f"{out} holds a training that stopped while setting it up (no {MANIFEST}); "
                            f"train it again with --force")
    if not out.is_dir() or not is_model_dir(out):
        raise ModelDirError(f"{out} is not a nextword model directory (no {MANIFEST}); "
                            f"train one with: nextword train CORPUS --out {out}")
    manifest = read_json(out / MANIFEST)
    version = manifest.get("format")
    if not isinstance(version, int) or version > FORMAT:
        raise ModelDirError(f"{out} was written by a newer nextword (format {version}); "
                            f"upgrade nextword to load it")
    if version < FORMAT:
        raise ModelDirError(f"{out} was written by an older nextword (format {version}), whose models read "
                            f"their embeddings at another scale; train it again with: nextword train CORPUS "
                            f"--config {out / CONFIG} --out {out} --force")
    return manifest


def read_config(out: Path) -> Config:
    try:
        return resolve(read_yaml(out / CONFIG), sources=(str(out / CONFIG),))
    except ConfigError as exc:
        raise ModelDirError(f"{out / CONFIG}: {exc}") from None


def resume_config(out: Path, overrides: Mapping[str, Any]) -> Config:
    """The saved config with only the budget and device changed, as a resumed run may."""
    read_manifest(out)
    saved = read_config(out)
    given = {k: v for k, v in overrides.items() if v is not None}
    wanted = resolve(saved.to_dict(), given, sources=(str(out / CONFIG), "the command line"))
    fixed = sorted(k for k in given if k not in RESUMABLE_KEYS and getattr(wanted, k) != getattr(saved, k))
    if fixed:
        raise ConfigError(f"--resume continues the saved run, so {', '.join(fixed)} cannot change; "
                          f"only {', '.join(RESUMABLE_KEYS)} can")
    return wanted


def init_config(init: Path, overrides: Mapping[str, Any]) -> Config:
    """The config of a new run that starts from the weights of the model in `init`: its tokenizer and
    shapes, its other options unless given, and its learning rate times INIT_LR_SCALE unless given,
    since the weights are already trained and a full-size step would undo much of that."""
    read_manifest(init)
    saved = read_config(init)
    given = {k: v for k, v in overrides.items() if v is not None}
    wanted = resolve(saved.to_dict(), {"lr": saved.lr * INIT_LR_SCALE}, given,
                     sources=(str(init / CONFIG), "the lowered learning rate", "the command line"))
    fixed = [k for k in SHAPE_KEYS if getattr(wanted, k) != getattr(saved, k)]
    if fixed:
        raise ConfigError(f"--init starts from the weights of {init}, so {', '.join(fixed)} cannot change "
                          f"(it has {', '.join(f'{k}={getattr(saved, k)}' for k in fixed)}); drop those options")
    return wanted


@dataclass
class LoadedModel:
    path: Path
    model: LanguageModel
    tokenizer: Tokenizer
    config: Config
    manifest: dict[str, Any]
    summary: dict[str, Any]
    lexicon: Lexicon | None = None  # None in a directory from before lexicons: no filter


def load(out: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """A trained model directory, checked piece by piece, ready for inference (eval mode)."""
    out = Path(out)
    manifest = read_manifest(out)
    config = read_config(out)
    tokenizer = Tokenizer.load(out / TOKENIZER)
    weights = out / WEIGHTS
    if not weights.is_file():
        raise ModelDirError(f"{out} has no trained weights yet ({WEIGHTS} is missing); "
                            f"train or resume it first")
    try:
        if config.cell == "ngram":  # its tables' sizes come from the data, so they are read, not built
            model: LanguageModel = NgramLM(tokenizer.vocab_size, config.order, load_file(str(weights)))
        else:
            model = build_model(config, tokenizer.vocab_size, manifest.get("cutoffs"))
            load_model(model, str(weights), strict=True)
    except SafetensorError as exc:
        raise ModelDirError(f"{weights} is damaged or not a safetensors file ({exc})") from None
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelDirError(f"{weights} does not match {CONFIG} ({first})") from None
    summary = read_json(out / SUMMARY) if (out / SUMMARY).is_file() else {}
    return LoadedModel(out, model.to(device).eval(), tokenizer, config, manifest, summary,
                       read_lexicon(out / LEXICON))

