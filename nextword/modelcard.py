"""A model directory in brief: the facts `nextword list` shows, and the model card (README.md) that
training writes into the directory, so that a model passed around says what it is and how to use it.

Both are read from the directory's own files (manifest, config, summary, metrics), never from its weights."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from . import checkpoint
from .config import read_yaml
from .errors import ConfigError, ModelDirError
from .files import write_text

CARD = checkpoint.CARD


def describe(out: Path) -> dict[str, Any]:
    """What `nextword list` shows of one model directory; unreadable parts are None, never an error."""

    def read(reader: Any, path: Path) -> dict[str, Any]:
        try:
            return reader(path) if path.is_file() else {}
        except (ModelDirError, ConfigError, OSError):
            return {}

    manifest = read(checkpoint.read_json, out / checkpoint.MANIFEST)
    config = read(read_yaml, out / checkpoint.CONFIG)
    summary = read(checkpoint.read_json, out / checkpoint.SUMMARY)
    weights = out / checkpoint.WEIGHTS
    dated = next((p for p in (out / checkpoint.SUMMARY, out / checkpoint.MANIFEST) if p.is_file()), None)
    return {
        "path": str(out),
        "kind": manifest.get("kind"),
        "cell": config.get("cell"),
        "parameters": summary.get("parameters"),
        "bytes": weights.stat().st_size if weights.is_file() else None,
        "corpus": manifest.get("corpus"),
        "steps": summary.get("steps"),
        "word_perplexity": _word_perplexity(summary),
        "stopped_because": summary.get("stopped_because"),
        "date": datetime.datetime.fromtimestamp(dated.stat().st_mtime).isoformat(timespec="seconds") if dated else None,
    }


def _word_perplexity(summary: dict[str, Any]) -> float | None:
    """The validation word perplexity of what predict uses: the mixture with its cache, when fitted."""
    fitted = (summary.get("mixture") or {}).get("valid_word_perplexity") or {}
    return fitted.get("mixture+cache", summary.get("best_valid_word_perplexity"))


def find_models(folder: Path) -> list[Path]:
    """The model directories in `folder` (itself, if it is one), with those one folder further down, as a
    comparison keeps its variants; by name."""
    if not folder.is_dir():
        raise ModelDirError(f"no such folder: {folder}")
    if checkpoint.is_model_dir(folder):
        return [folder]
    found = []
    for child in sorted(folder.iterdir()):
        if child.is_dir() and checkpoint.is_model_dir(child):
            found.append(child)
        elif child.is_dir():
            found += sorted(p for p in child.iterdir() if p.is_dir() and checkpoint.is_model_dir(p))
    return found


def write_card(out: Path) -> None:
    """README.md in the model directory: what the model is, how it was trained and did, how to load it."""
    config = read_yaml(out / checkpoint.CONFIG)
    summary = checkpoint.read_json(out / checkpoint.SUMMARY) if (out / checkpoint.SUMMARY).is_file() else {}
    manifest = checkpoint.read_json(out / checkpoint.MANIFEST)
    lines = [
        f"# {out.name}",
        "",
        f"A nextword {manifest.get('kind') or 'language'} model ({config.get('cell')}) trained on "
        f"`{manifest.get('corpus')}` (sha256 `{manifest.get('corpus_sha256')}`) with nextword "
        f"{manifest.get('nextword')}.",
        "",
    ]
    if manifest.get("init"):
        lines += [
            f"It started from the weights of `{manifest['init']['path']}` (trained on `{manifest['init']['corpus']}`).",
            "",
        ]
    lines += [
        "## Use it",
        "",
        "```console",
        f'$ nextword predict {out} "some words "',
        f'$ nextword generate {out} "The next" --max-words 20',
        f"$ nextword info {out}",
        "```",
        "",
        "```python",
        "from nextword import load",
        "",
        f'model = load("{out}")',
        'model.predict("some words ", k=5)   # [(word, probability), ...]',
        "```",
        "",
    ]
    lines += _training(summary, checkpoint.read_metrics(out))
    lines += [
        "## Settings",
        "",
        f"Reusable with `nextword train CORPUS --config {out / checkpoint.CONFIG}`.",
        "",
        "| option | value |",
        "|---|---|",
        *(f"| {key} | {'none' if value is None else value} |" for key, value in config.items()),
        "",
    ]
    write_text(out / CARD, "\n".join(lines))


def _training(summary: dict[str, Any], evaluations: list[dict[str, Any]]) -> list[str]:
    """The card's lines on how training went: the summary's figures (none before it is written), then the
    validation word perplexity at the last evaluations."""
    lines = []
    if summary:
        figures = (
            ("steps", f"{summary.get('steps', 0):,} ({summary.get('epochs')} epochs)"),
            ("time", f"{summary.get('elapsed', 0):,.0f} s on {summary.get('device')}"),
            ("tokens/s", f"{summary.get('tokens_per_second', 0):,.0f}"),
            ("stopped by", summary.get("stopped_because")),
            ("best step", f"{summary.get('best_step', 0):,}"),
            ("validation loss", _figure(summary.get("best_valid_loss"), ".4f")),
            ("validation perplexity (token)", _figure(summary.get("best_valid_perplexity"), ".2f")),
            ("validation perplexity (word)", _figure(summary.get("best_valid_word_perplexity"), ".2f")),
        )
        lines += ["## Training", "", "| | |", "|---|---:|", *(f"| {name} | {value} |" for name, value in figures), ""]
    if evaluations:
        lines += [
            "Validation word perplexity by step: "
            + ", ".join(f"{row['step']}: {row['valid_word_perplexity']:.1f}" for row in evaluations[-12:])
            + ".",
            "",
        ]
    return lines


def _figure(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"
