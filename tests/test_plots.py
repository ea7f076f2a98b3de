"""The pictures of a comparison: PNG files, and sparklines for the terminal."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest

from nextword.plots import gradient_flow, learning_curves, sparkline

PNG = b"\x89PNG\r\n\x1a\n"


def _curve(*perplexities: float) -> list[dict]:
    return [{"step": 100 * i, "elapsed": 2.0 * i, "valid_word_perplexity": p} for i, p in enumerate(perplexities, 1)]


@pytest.mark.parametrize(
    "curves",
    [
        {"lstm": _curve(900.0, 400.0, 250.0), "ngram": _curve(500.0)},
        {"lstm": _curve(math.inf, math.nan), "gru": _curve(math.inf)},  # every run diverged
    ],
    ids=["trained", "diverged"],
)
def test_learning_curves_are_drawn_quietly_whatever_the_runs_reached(tmp_path: Path, curves: dict) -> None:
    path = tmp_path / "curves.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when a log axis has nothing positive to show
        learning_curves(curves, path)
    assert path.read_bytes().startswith(PNG)


def test_a_run_validated_once_is_a_point_of_its_own_and_only_the_levels_named_are_level_lines(
    tmp_path: Path, monkeypatch
) -> None:
    """A comparison stopped before its second validation still tells its cells apart; the n-gram is the level."""
    from nextword import plots

    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda plt, figure, path: drawn.setdefault("axes", figure.axes))
    curves = {"rnn": _curve(5400.0), "lstm": _curve(4000.0), "ngram": _curve(6100.0)}
    learning_curves(curves, tmp_path / "curves.png", levels={"ngram"})
    for axis in drawn["axes"]:
        lines = {line.get_label(): line for line in axis.get_lines()}
        assert lines["ngram"].get_linestyle() == "--" and list(lines["ngram"].get_ydata()) == [6100.0, 6100.0]
        assert [lines[name].get_marker() for name in ("rnn", "lstm")] == [".", "."]
        assert lines["rnn"].get_color() != lines["lstm"].get_color() != "gray"


@pytest.mark.parametrize("norms", [[1e-1, 1e-3, 1e-6], [math.nan, math.nan]], ids=["trained", "diverged"])
def test_gradient_flow_is_drawn_quietly_whatever_the_norms(tmp_path: Path, norms: list[float]) -> None:
    path = tmp_path / "flow.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradient_flow({"lstm": norms, "ngram": []}, path)
    assert path.read_bytes().startswith(PNG)


def test_a_sparkline_runs_from_the_lowest_to_the_highest_value_and_skips_what_is_not_finite() -> None:
    assert sparkline([1000.0, 100.0, math.inf, 10.0]) == "█▅▁"  # log scale: 100 lies halfway
    assert sparkline([math.nan]) == ""
