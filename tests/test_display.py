"""Training's live display as a terminal shows it: in a pseudo-terminal of 80 columns, and event by event."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from nextword import cli
from nextword.config import resolve
from nextword.train import Evaluation, Progress, Stage

from conftest import TINY

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _in_a_terminal(args: list[str], columns: int, stop_when: bytes, env: dict[str, str]) -> tuple[int, str]:
    """Run `nextword ARGS` in a pseudo-terminal `columns` wide; Ctrl-C it once `stop_when` has been shown."""
    pty = pytest.importorskip("pty")  # Unix only, as is a terminal's window size
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    environment = {k: v for k, v in {**os.environ, **env}.items() if k not in ("COLUMNS", "NO_COLOR", "LINES")}
    process = subprocess.Popen(
        [sys.executable, "-m", "nextword", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**environment, "TERM": "xterm-256color"},
        start_new_session=True,
    )
    os.close(follower)
    shown, interrupted, deadline = b"", False, time.monotonic() + 240
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 0.2)[0]:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the process has gone and the terminal with it
                break
            if not data:
                break
            shown += data
        if not interrupted and stop_when in ESCAPES.sub("", shown.decode("utf-8", "replace")).encode():
            os.killpg(process.pid, signal.SIGINT)
            interrupted = True
    os.close(leader)
    return process.wait(timeout=60), shown.decode("utf-8", "replace")


def _screen_lines(shown: str) -> list[str]:
    """What stays on the screen: each line as its last redraw (after the last carriage return) left it."""
    lines = []
    for line in ESCAPES.sub("", shown).replace("\r\n", "\n").split("\n"):
        lines.append(line.split("\r")[-1] if line.rstrip("\r") else "")
    return [line for line in lines if line.strip()]


def test_train_in_an_80_column_terminal_says_where_first_and_keeps_the_last_line_on_ctrl_c(
    tmp_path: Path, corpus_file: Path
) -> None:
    out = tmp_path / "m"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "max_steps"]
    code, shown = _in_a_terminal(
        ["train", str(corpus_file), "--out", str(out), *flags, "--max-steps=1000000", "--eval-every=20"],
        80,
        stop_when=b"val ppl 1",
        env={"NEXTWORD_CACHE": str(tmp_path / "cache")},
    )
    assert code == 130, shown
    lines = _screen_lines(shown)
    assert lines[0] == f"Training {out} on {corpus_file}" or lines[0].startswith(f"Training {out} on ")
    stopped = next(i for i, line in enumerate(lines) if line.startswith("training stopped at step"))
    last = lines[stopped - 1]  # the live line, left on screen above the message
    step = re.search(r"step (\d+)/\d+ ", last)
    assert step and re.search(r"loss \d\.\d{3}", last) and re.search(r"val ppl [\d.]+\*?", last), last
    assert re.search(r"\d:\d\d:\d\d ETA \d+:\d\d:\d\d$", last.rstrip()), last  # elapsed time and ETA both kept
    # The run stops at the next step boundary, a few steps after the line last reported.
    assert int(re.search(r"training stopped at step (\d+)", lines[stopped]).group(1)) >= int(step.group(1))
    # The live line is never drawn wider than the terminal (the messages around it wrap as text does).
    assert all(len(line) <= 80 for line in lines[1:stopped]), [line for line in lines if len(line) > 80]


@pytest.fixture
def terminal(monkeypatch) -> io.StringIO:
    """cli's stderr as a terminal of 80 columns, writing to a string."""
    screen = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=screen, force_terminal=True, width=80, highlight=False))
    return screen


def _progress(step: int, total: int | None, eta: float | None = 60.0) -> Progress:
    return Progress(
        step=step,
        total_steps=total,
        epoch=0,
        loss=2.5,
        lr=1e-3,
        tokens_per_second=12345.0,
        elapsed=10.0,
        done=step / total if total else 0.5,
        eta=eta,
    )


def _rendered(display: cli.TrainDisplay) -> str:
    column = cli._StatusColumn()
    return str(column.render(display.progress.tasks[0]))


def test_the_total_shown_is_the_one_the_run_reports(terminal) -> None:
    # Under a time budget the run plans its total steps and says so in each event: that is the total shown.
    display = cli.TrainDisplay(resolve(TINY))
    for event in (Stage("training"), _progress(5, 827), Evaluation(5, 2.0, 7.4, 30.1, True), _progress(6, 827)):
        display.handle(event)
    line = _rendered(display)
    assert "step 6/827" in line and "loss 2.500" in line and "val ppl 7.4*" in line
    display.handle(_progress(7, None))  # no total planned at all: the step alone
    assert re.search(r"step 7 ", _rendered(display))
    display.close(keep=True)


def test_the_eta_keeps_counting_down_between_events(terminal, monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: now[0])
    display = cli.TrainDisplay(resolve(TINY))
    display.handle(_progress(5, 100, eta=300.0))
    display.handle(Stage("measuring"))  # what a comparison does after each variant: no progress events
    assert "ETA 0:05:00" in _rendered(display)
    now[0] += 120
    assert "ETA 0:03:00" in _rendered(display)
    now[0] += 1000
    assert "ETA 0:00:00" in _rendered(display)
    display.close(keep=False)


@pytest.mark.parametrize("width", [60, 80, 100, 140])
def test_the_live_line_fits_its_terminal_dropping_tokens_per_second_before_the_times(width: int, monkeypatch) -> None:
    monkeypatch.setattr(cli, "err", Console(file=io.StringIO(), force_terminal=True, width=width))
    display = cli.TrainDisplay(resolve(TINY))
    display.handle(_progress(123456, 1000000))
    line = _rendered(display)
    assert len("⠋ lstm " + line) <= width and "step 123456/1000000" in line and "ETA 0:01:00" in line
    assert ("12,345 tok/s" in line) == (width >= 100)
    display.close(keep=False)


def test_a_variants_log_lines_never_show_the_previous_variants_training(monkeypatch) -> None:
    """In a log (no terminal), compare's n-gram variant counts rather than trains: its line has no loss or speed,
    not the LSTM's before it."""
    from nextword.compare import VariantStarted

    log = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=log, force_terminal=False, width=200))
    display = cli.TrainDisplay(resolve(TINY))
    display.handle(VariantStarted(0, 2, "lstm"))
    display.handle(_progress(5, 10))
    display.handle(Evaluation(5, 2.0, 7.4, 30.1, True))
    display.handle(VariantStarted(1, 2, "ngram"))
    display.handle(Evaluation(1, 2.5, 12.2, 60.3, False))
    lines = [line for line in log.getvalue().splitlines() if line.startswith("step")]
    assert "train loss 2.500" in lines[0] and "12,345 tok/s" in lines[0]
    assert lines[1].startswith("step 1  val loss 2.5000") and "train loss" not in lines[1] and "tok/s" not in lines[1]
    display.close(keep=True)
