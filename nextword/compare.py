"""Train several variants on the same data and budget, and measure them side by side.

Every variant trains on the same prepared data (one tokenizer, one split), with the same seed and
budget, so the differences in the table come from the cells alone. Each is then measured on the validation
split: loss and perplexities, next-word accuracy, the gradient-flow curve and, on a corpus with
a long-range sidecar (corpora/generate.py), accuracy on the far-dependent words."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import checkpoint, plots
from . import config as configuration
from .config import CELLS, COMPARE_DEFAULTS, COMPARE_STEPS, NEURAL_CELLS, Settings
from .errors import ConfigError, ModelDirError
from .evaluate import LongRangeAccuracy, long_range_accuracy, word_metrics
from .loss import stream_loss
from .targets import read_targets, targets_path
from .files import existing_directory, write_text
from .gradients import gradient_flow
from .kinds import trained_kind
from .predict import Predictor
from .tokenizer import EOS_ID
from .devices import pick_device
from .train import Prepared, Stage, TrainSummary, prepare, train

RESULTS, CURVES_PNG, GRADIENTS_PNG, REPORT = "compare.json", "curves.png", "gradients.png", "report.md"


@dataclass(frozen=True)
class VariantStarted:
    index: int
    total: int
    name: str


@dataclass
class VariantResult:
    name: str
    cell: str
    bidirectional: bool
    model: str  # its model directory
    parameters: int
    steps: int
    train_seconds: float
    tokens_per_second: float
    valid_loss: float
    token_perplexity: float
    word_perplexity: float
    bits_per_char: float
    top1: float
    top5: float
    accuracy_words: int
    gradient: list[float]  # mean gradient norm k = 1.. steps back
    long_range: dict[str, Any] | None
    curve: list[dict[str, float]]  # step, elapsed, valid_word_perplexity per evaluation

    def to_dict(self) -> dict[str, Any]:
        ratio = self.gradient_ratio
        return {**asdict(self), "gradient_ratio": None if math.isnan(ratio) else ratio}

    @property
    def gradient_ratio(self) -> float:
        """How much weaker the gradient is at the oldest input than at the newest."""
        if not self.gradient:
            return math.nan
        return self.gradient[0] / self.gradient[-1] if self.gradient[-1] > 0 else math.inf


def compare_settings(config_file: Path | None, flags: dict[str, Any]) -> Settings:
    """The shared settings of a comparison: COMPARE_DEFAULTS under the YAML file and the flags."""
    settings = configuration.load(config_file, flags, defaults=COMPARE_DEFAULTS)
    if settings.train.max_steps is None and settings.train.time_budget is None:
        settings = settings.replace(max_steps=COMPARE_STEPS)
    return settings


def plan(base: Settings, cells: Sequence[str], bidirectional: bool) -> list[tuple[str, Settings]]:
    """(name, settings) of each variant: one per cell, and its bidirectional twin when asked."""
    unknown = [c for c in cells if c not in CELLS]
    if unknown or not cells:
        raise ConfigError(f"--cells takes a comma-separated list of {', '.join(CELLS)}; got {','.join(cells)!r}")
    variants = []
    for cell in dict.fromkeys(cells):
        # An n-gram is counted once: neither a window nor an ensemble of it.
        variant = base.replace(cell=cell, bidirectional=False, members=1 if cell == "ngram" else base.model.members)
        variants.append((cell, variant))
        if bidirectional and not trained_kind(variant.model).counted:  # an n-gram reads no window
            variants.append((f"{cell}-bi", base.replace(cell=cell, bidirectional=True)))
    return variants


def compare(
    corpus: str | Path,
    base: Settings,
    out: str | Path,
    *,
    cells: Sequence[str] = NEURAL_CELLS,
    bidirectional: bool = False,
    valid_file: str | Path | None = None,
    accuracy_words: int = 2000,
    force: bool = False,
    command: str | None = None,
    on_event: Callable[[Any], None] | None = None,
) -> list[VariantResult]:
    """Train and measure each variant into `out/<variant>`, then write the table, plots and report, which
    record `command` (the command line that asked for them), the corpus and the shared settings."""
    emit = on_event or (lambda event: None)
    out = Path(out)
    variants = plan(base, cells, bidirectional)
    _check_output(out, force)
    # Every model is measured on the validation split: none may count it into its n-gram or lexicon.
    data = replace(prepare(corpus, base, valid_file=valid_file, on_event=emit), count_validation=False)
    long_range = _long_range_targets(data)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for index, (name, settings) in enumerate(variants):
        emit(VariantStarted(index, len(variants), name))
        summary = train(settings, data, out / name, force=force, on_event=emit)
        emit(Stage("measuring"))
        results.append(_measure(name, settings, out / name, summary, data.valid_ids, long_range, accuracy_words))
    made = {
        "command": command,
        "corpus": str(data.corpus.path),
        "corpus_sha256": data.corpus.sha256,
        "valid": str(data.held_out.path) if data.held_out else None,
        "accuracy_words": accuracy_words,
        "settings": {k: v for k, v in base.to_dict().items() if k not in ("cell", "bidirectional")},
    }
    _write_outputs(out, results, made)
    return results


def _check_output(out: Path, force: bool) -> None:
    """As `checkpoint.check_output` refuses for a model directory: a comparison is a directory of models."""
    if existing_directory(out, "--out", ModelDirError) and any(out.iterdir()):
        if not (out / RESULTS).is_file() and not all(checkpoint.is_model_dir(p) for p in out.iterdir()):
            raise ModelDirError(f"{out} exists and is not a nextword comparison; choose another --out")
        if not force:
            raise ModelDirError(f"a comparison already exists in {out}; use --force to overwrite it")


def _long_range_targets(data: Prepared) -> tuple[int, list] | None:
    """The long-range targets, with the number of the validation text's first whole line."""
    sidecar = targets_path(data.held_out.path if data.held_out else data.corpus.path)
    if not sidecar.is_file():
        return None
    # Validation held out from the corpus starts inside the line after the training split's last break.
    first_line = 0 if data.held_out else int((np.asarray(data.train_ids) == EOS_ID).sum()) + 1
    return first_line, read_targets(sidecar)


def _measure(
    name: str,
    settings: Settings,
    model_dir: Path,
    summary: TrainSummary,
    valid_ids: np.ndarray,
    long_range: tuple[int, list] | None,
    accuracy_words: int,
) -> VariantResult:
    model, args = settings
    predictor = Predictor.load(model_dir, device=str(pick_device(args.device)))
    totals = stream_loss(predictor.model, predictor.tokenizer, valid_ids, seq_len=args.seq_len, device=predictor.device)
    accuracy = word_metrics(predictor, valid_ids, ks=(1, 5), max_words=accuracy_words)
    # An n-gram model has no gradient: its curve is empty and its ratio undefined.
    neural = predictor.loaded.components().get("neural")
    flow = [] if neural is None else gradient_flow(neural, valid_ids, args.seq_len, device=predictor.device)
    far: LongRangeAccuracy | None = long_range_accuracy(predictor, valid_ids, *long_range) if long_range else None
    evaluations = checkpoint.read_metrics(model_dir)
    return VariantResult(
        name=name,
        cell=model.cell,
        bidirectional=model.bidirectional,
        model=str(model_dir),
        parameters=summary.parameters,
        steps=summary.steps,
        train_seconds=summary.elapsed,
        tokens_per_second=summary.tokens_per_second,
        valid_loss=totals.loss,
        token_perplexity=totals.token_perplexity,
        word_perplexity=totals.word_perplexity,
        bits_per_char=totals.bits_per_char,
        top1=accuracy.accuracy(1),
        top5=accuracy.accuracy(5),
        accuracy_words=accuracy.words,
        gradient=[float(g) for g in flow],
        long_range=far.to_dict() if far else None,
        curve=[{k: row[k] for k in ("step", "elapsed", "valid_word_perplexity")} for row in evaluations],
    )


def _write_outputs(out: Path, results: list[VariantResult], made: dict[str, Any]) -> None:
    record = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), **made, "variants": [r.to_dict() for r in results]}
    write_text(out / RESULTS, json.dumps(record, indent=2))
    levels = {r.name for r in results if r.cell == "ngram"}  # counted, not trained: no curve
    plots.learning_curves({r.name: r.curve for r in results}, out / CURVES_PNG, levels)
    plots.gradient_flow({r.name: r.gradient for r in results}, out / GRADIENTS_PNG)
    write_text(out / REPORT, markdown_report(results, made))


# Columns of the comparison table: (title, value, format, which is best: "low" or "high").
COLUMNS: list[tuple[str, Callable[[VariantResult], float], str, str]] = [
    ("params", lambda r: r.parameters, "{:,.0f}", ""),
    ("time s", lambda r: r.train_seconds, "{:.0f}", "low"),
    ("tok/s", lambda r: r.tokens_per_second, "{:,.0f}", "high"),
    ("val loss", lambda r: r.valid_loss, "{:.3f}", "low"),
    ("word ppl", lambda r: r.word_perplexity, "{:.1f}", "low"),
    ("top-1", lambda r: r.top1, "{:.1%}", "high"),
    ("top-5", lambda r: r.top5, "{:.1%}", "high"),
    ("grad 1/T", lambda r: r.gradient_ratio, "{:.3g}", "low"),
]
LONG_RANGE_COLUMN = ("long-range", lambda r: r.long_range["recall"], "{:.1%}", "high")


def table_columns(results: Sequence[VariantResult]) -> list[tuple[str, Callable, str, str]]:
    return COLUMNS + ([LONG_RANGE_COLUMN] if all(r.long_range for r in results) else [])


def table_rows(results: Sequence[VariantResult], mark_best: Callable[[str], str]) -> list[list[str]]:
    """Each variant's formatted cells, `table_columns` order, the best of each column (ties too)
    passed through `mark_best` (bold in Markdown, green in the terminal)."""
    columns = table_columns(results)
    best = {}
    for title, value, _, direction in columns:
        values = [v for v in map(value, results) if not math.isnan(v)]
        if direction and values:
            best[title] = min(values) if direction == "low" else max(values)

    def cell(title: str, value: float, fmt: str) -> str:
        if math.isnan(value):
            return "-"  # not defined for this variant (an n-gram model's gradient)
        return mark_best(fmt.format(value)) if best.get(title) == value else fmt.format(value)

    return [[cell(title, value(r), fmt) for title, value, fmt, _ in columns] for r in results]


def markdown_report(results: Sequence[VariantResult], made: dict[str, Any]) -> str:
    columns = table_columns(results)
    lines = [
        "# nextword comparison",
        "",
        "| variant | " + " | ".join(title for title, *_ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for r, cells in zip(results, table_rows(results, lambda text: f"**{text}**")):
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Top-1/top-5: next-word accuracy over the first {results[0].accuracy_words} words of the "
        "validation split. grad 1/T: the gradient norm at the newest input over the oldest "
        "(lower means the gradient reaches further back).",
        "",
        f"![learning curves]({CURVES_PNG})",
        "",
        f"![gradient flow]({GRADIENTS_PNG})",
        "",
    ]
    if all(r.long_range for r in results):
        buckets = list(results[0].long_range["by_distance"])
        lines += [
            "## Long-range recall by distance (words between cue and target)",
            "",
            "Recall: the expected word ranked above every other word of its kind (the other names, "
            "numbers, or was/were); top-1 in brackets: ranked first of all words.",
            "",
            "| variant | " + " | ".join(buckets) + " |",
            "|---|" + "---:|" * len(buckets),
        ]
        for r in results:
            by = r.long_range["by_distance"]
            lines.append(
                f"| {r.name} | "
                + " | ".join(f"{by[b]['recall']:.1%} ({by[b]['top1']:.1%})" if b in by else "-" for b in buckets)
                + " |"
            )
        chance = results[0].long_range
        lines += [
            "",
            "Targets per bucket: "
            + ", ".join(f"{b}: {v['targets']}" for b, v in chance["by_distance"].items())
            + f". Guessing among the words of each kind would recall {chance['chance']:.1%}.",
            "",
        ]
    lines += [
        "## How this was made",
        "",
        *([f"    {made['command']}", ""] if made["command"] else []),
        f"Corpus `{made['corpus']}` (sha256 `{made['corpus_sha256']}`), validation "
        + (f"`{made['valid']}`" if made["valid"] else "held out from its end")
        + ". Settings shared by "
        "every variant: " + ", ".join(f"{k}={v}" for k, v in made["settings"].items()) + ".",
        "",
    ]
    return "\n".join(lines) + "\n"
