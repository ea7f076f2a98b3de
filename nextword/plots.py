"""Pictures of a comparison: PNG files (matplotlib) and sparklines for the terminal."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Collection, Sequence

from .files import atomic_path

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """A one-line picture of a series on a log scale, lowest value ▁, highest █."""
    points = [math.log(v) if v > 0 else v for v in values if math.isfinite(v)]
    if not points:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    return "".join(_BARS[round((p - low) / span * (len(_BARS) - 1))] for p in points)


def _figure(columns: int):
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(6 * columns, 4.2), squeeze=False)
    return plt, figure, axes[0]


def _log_scale(axis, values: Sequence[float]) -> None:
    """A log scale for the y axis, where some value can be drawn on it (a diverged run's are not)."""
    if any(math.isfinite(value) and value > 0 for value in values):
        axis.set_yscale("log")


def _save(plt, figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)


def learning_curves(curves: dict[str, list[dict]], path: Path, levels: Collection[str] = ()) -> None:
    """Validation word perplexity against step and against seconds, one line per variant; those named in
    `levels` have no training curve (the n-gram baseline) and are drawn as a level to beat. A run validated
    once is a point of its own colour."""
    plt, figure, (by_step, by_time) = _figure(2)
    for name, rows in curves.items():
        perplexities = [r["valid_word_perplexity"] for r in rows]
        if name in levels:
            for axis in (by_step, by_time):
                axis.axhline(perplexities[-1], linestyle="--", color="gray", label=name)
            continue
        by_step.plot([r["step"] for r in rows], perplexities, marker=".", label=name)
        by_time.plot([r["elapsed"] for r in rows], perplexities, marker=".", label=name)
    drawn = [row["valid_word_perplexity"] for rows in curves.values() for row in rows]
    for axis, label in ((by_step, "training step"), (by_time, "training time (s)")):
        axis.set_xlabel(label)
        axis.set_ylabel("validation word perplexity")
        _log_scale(axis, drawn)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    by_step.set_title("Learning curves by step")
    by_time.set_title("Learning curves by time")
    _save(plt, figure, path)


def gradient_flow(curves: dict[str, Sequence[float]], path: Path) -> None:
    """Gradient norm at the input k steps back, log scale: how fast each variant forgets."""
    plt, figure, (axis,) = _figure(1)
    for name, norms in curves.items():
        if len(norms):  # an n-gram model has no gradient to show
            axis.plot(range(1, len(norms) + 1), norms, marker=".", label=name)
    _log_scale(axis, [norm for norms in curves.values() for norm in norms])
    axis.set_xlabel("k: steps back from the predicted position")
    axis.set_ylabel("mean ‖∂ loss / ∂ input embedding‖")
    axis.set_title("Gradient flow (vanishing gradients fall steeply)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    _save(plt, figure, path)
