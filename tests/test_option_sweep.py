"""Every verb × every numeric option × hostile values, and every path argument × hostile paths (issue 14).

The cases come from the Typer app's own parameter list, so a new option is swept without anyone
remembering to add it. Each answer must be exit 0, or exit 2 with exactly one line on stderr; never a
traceback, never a hang (a FIFO is watched: opening it for reading would be seen, and not block),
and a file that a symbolic link points to is never changed.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import typing
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from nextword.cli import app
from nextword.config import _TYPES as CONFIG_TYPES

from conftest import TINY, sentence_corpus
from test_safety import VICTIM, watched_fifo

COMMANDS = typer.main.get_command(app).commands
TRAINING = [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items() if key != "max_steps"] + [
    "--max-steps=1",
    "--epochs=1",
    "--eval-every=1",
    "-q",
]


def _base_type(param) -> type:
    """What a parameter takes, from the class of its click type (IntRange, FloatParamType, Path...)."""
    kind = type(param.type).__name__
    declared = (
        int if kind.startswith("Int") else float if kind.startswith("Float") else Path if kind.endswith("Path") else str
    )
    if declared is str and param.name in CONFIG_TYPES:  # durations are typed as text for the flag only
        declared = [
            t for t in typing.get_args(CONFIG_TYPES[param.name]) or (CONFIG_TYPES[param.name],) if t is not type(None)
        ][0]
    return declared


def _option(param) -> str:
    return next(opt for opt in param.opts if opt.startswith("--"))


NUMERIC = [
    (verb, _option(p))
    for verb, command in COMMANDS.items()
    for p in command.params
    if p.param_type_name == "option" and _base_type(p) in (int, float)
]
PATHS = [(verb, p.name) for verb, command in COMMANDS.items() for p in command.params if _base_type(p) is Path]
HOSTILE_NUMBERS = {"negative": "-1", "zero": "0", "huge": str(10**30), "nan": "nan", "wrong type": "many"}
HOSTILE_PATHS = ("missing", "directory", "fifo", "symlink to elsewhere", "unreadable", "empty", "not UTF-8")


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "small.txt"
    path.write_text(sentence_corpus(60), encoding="utf-8")
    return path


def _command_line(verb: str, root: Path, model: Path, corpus: Path) -> dict[str, list[str]]:
    """A valid command line for `verb`, as {parameter name: its words}, so that one can be swapped."""
    lines = {
        "train": {"corpus": [str(corpus)], "out_dir": ["--out", str(root / "m")], "rest": TRAINING},
        "compare": {
            "corpus": [str(corpus)],
            "out_dir": ["--out", str(root / "c")],
            "rest": [
                "--cells",
                "rnn",
                "--accuracy-words",
                "20",
                *(flag for flag in TRAINING if not flag.startswith("--cell=")),
            ],
        },
        "predict": {"model": [str(model)], "text": ["anna has "]},
        "generate": {"model": [str(model)], "prompt": ["anna has"], "rest": ["--max-words", "3"]},
        "interactive": {"model": [str(model)]},
        "evaluate": {"model": [str(model)], "file": [str(corpus)], "rest": ["--predict-words", "30"]},
        "export": {
            "model": [str(model)],
            "out_file": ["--out", str(root / "step.pt")],
            "rest": ["--format", "torchscript"],
        },
        "info": {"model": [str(model)]},
        "list": {"folder": [str(model.parent)]},
        "metrics": {"model": [str(model)], "rest": ["--csv"]},
        "presets": {},
        "serve": {"model": [str(model)]},  # no request: it answers none and ends at the end of its input
    }
    if verb not in lines:
        pytest.fail(f"the sweep has no valid command line for the new verb {verb!r}: add one to _command_line")
    return lines[verb]


def _flat(line: dict[str, list[str]]) -> list[str]:
    return [word for words in line.values() for word in words]


def _assert_clean(result) -> None:
    """Exit 0, or exit 2 with exactly one line on stderr; never a traceback."""
    assert result.exit_code in (0, 2), (result.exit_code, result.exception, result.output[-2000:])
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr


def test_the_sweep_covers_the_app() -> None:
    assert {("predict", "--suggestions"), ("train", "--hidden"), ("train", "--time-budget")} <= set(NUMERIC)
    assert ("train", "corpus") in PATHS and ("export", "out_file") in PATHS


@pytest.mark.parametrize("value", HOSTILE_NUMBERS.values(), ids=HOSTILE_NUMBERS.keys())
@pytest.mark.parametrize("verb, option", NUMERIC, ids=[f"{v} {o}" for v, o in NUMERIC])
def test_every_numeric_option_answers_in_one_line(
    verb: str, option: str, value: str, tmp_path: Path, trained_model: Path, small_corpus: Path
) -> None:
    line = _command_line(verb, tmp_path, trained_model, small_corpus)
    _assert_clean(CliRunner().invoke(app, [verb, *_flat(line), option, value]))


def _hostile_path(kind: str, place: Path, victim: Path) -> None:
    if kind == "directory":
        place.mkdir()
    elif kind == "symlink to elsewhere":
        place.symlink_to(victim)
    elif kind == "unreadable":
        place.write_text("anna has the red ball .\n")
        place.chmod(0)
    elif kind == "empty":
        place.write_bytes(b"")
    elif kind == "not UTF-8":  # a name of bytes that are not UTF-8, as a shell passes it
        place.write_text("anna has the red ball .\n")


def _deny_reading(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening `place` fails with EACCES, as it does for a file of mode 000 unless the process is root:
    the suite runs as root in CI, where the mode alone would prove nothing."""

    def guarded(real):
        def opener(path, *args, **kwargs):
            if isinstance(path, (str, os.PathLike)) and Path(path).absolute() == place.absolute():
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real(path, *args, **kwargs)

        return opener

    for module, name in ((os, "open"), (io, "open"), (builtins, "open")):
        monkeypatch.setattr(module, name, guarded(getattr(module, name)))


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_each_verb_s_command_line_works_as_it_stands(
    verb: str, tmp_path: Path, trained_model: Path, small_corpus: Path
) -> None:
    """The sweep changes one word of a working command line: unchanged, each must work."""
    result = CliRunner().invoke(app, [verb, *_flat(_command_line(verb, tmp_path, trained_model, small_corpus))])
    if verb == "interactive":  # it needs a terminal, which a test runner is not
        assert result.exit_code == 2 and "needs a terminal" in result.stderr
    else:
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("kind", HOSTILE_PATHS)
@pytest.mark.parametrize("verb, name", PATHS, ids=[f"{v} {n}" for v, n in PATHS])
def test_every_path_argument_answers_in_one_line(
    verb: str,
    name: str,
    kind: str,
    tmp_path: Path,
    trained_model: Path,
    small_corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    victim = tmp_path / "elsewhere.txt"
    victim.write_bytes(VICTIM)
    line = _command_line(verb, tmp_path, trained_model, small_corpus)
    place = tmp_path / ("hostile" if kind != "not UTF-8" else b"hostile\xff".decode("utf-8", "surrogateescape"))
    param = next(p for p in COMMANDS[verb].params if p.name == name)
    words = [str(place)] if param.param_type_name == "argument" else [_option(param), str(place)]
    line[name] = words
    if kind == "fifo":
        with watched_fifo(place) as opened:
            result = CliRunner().invoke(app, [verb, *_flat(line)])
        assert not opened[0], "a FIFO was opened for reading"
    else:
        _hostile_path(kind, place, victim)
        if kind == "unreadable" and os.geteuid() == 0:
            _deny_reading(place, monkeypatch)
        result = CliRunner().invoke(app, [verb, *_flat(line)])
    _assert_clean(result)
    assert victim.read_bytes() == VICTIM
