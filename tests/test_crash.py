"""Crashes: a training killed with SIGKILL at any moment leaves a directory that loads and resumes to the
very weights of a run that was never killed, and a disk that fills during a checkpoint costs nothing saved."""

import errno
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from nextword import checkpoint, files
from nextword.cli import app
from nextword.predict import Predictor

from conftest import TINY, _train_shared

FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in {**TINY, "max_steps": 60, "eval_every": 3}.items()] + ["-q"]

# Twenty kills, in order, each of the run that resumes after the one before: at the n-th call of a function
# (the moment exactly: before the tokenizer exists, between two files of a checkpoint, before a temporary
# file is renamed, in the middle of evaluation), or a delay after the run's first evaluation (any moment).
KILLS = [
    ("tokenizer", 1),
    ("set-up file", 1),
    ("rename", 3),
    ("step", 3),
    ("metrics", 1),
    ("state", 1),
    ("weights", 1),
    ("summary", 1),
    ("evaluation", 1),
    ("rename", 2),
    ("weights", 1),
    ("delay", 0.0),
    ("step", 7),
    ("state", 2),
    ("delay", 0.01),
    ("directory sync", 3),
    ("weights", 2),
    ("delay", 0.03),
    ("metrics", 2),
    ("evaluation", 3),
]


def _moment(name: str) -> tuple[object, str]:
    from nextword import train

    return {
        "tokenizer": (train, "train_tokenizer_for"),
        "set-up file": (checkpoint, "write_text"),
        "rename": (os, "replace"),
        "directory sync": (files, "_fsync_dir"),
        "step": (train, "_train_step"),
        "evaluation": (train, "stream_loss"),
        "metrics": (checkpoint, "write_metrics"),
        "state": (checkpoint, "save_state"),
        "weights": (checkpoint, "save_weights"),
        "summary": (checkpoint, "write_summary"),
    }[name]


def _nextword_train(argv: list[str], log: str, cache: str, die_at: tuple[str, int] | None) -> None:
    """`nextword train ARGV` in a process forked from a server that has imported torch already: twenty
    fresh interpreters would take a minute just to start. With `die_at` = (moment, n) the process sends
    itself SIGKILL when that function is called for the n-th time."""
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.environ["NEXTWORD_CACHE"] = cache
    torch.set_num_threads(1)  # a tiny model gains nothing from threads, and on a busy machine they cost a lot
    if die_at:
        owner, name = _moment(die_at[0])
        original, calls = getattr(owner, name), []

        def dying(*args, **kwargs):
            calls.append(1)
            if len(calls) == die_at[1]:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        setattr(owner, name, dying)
    app(["train", *argv], prog_name="nextword")


class Runner:
    def __init__(self, tmp_path: Path):
        self.context = multiprocessing.get_context("forkserver")
        # What the first training step would import (torch._dynamo, for the optimizer) is imported once, here.
        self.context.set_forkserver_preload(
            ["nextword.cli", "nextword.train", "nextword.predict", "torch._dynamo", __name__]
        )
        self.tmp_path, self.runs = tmp_path, 0

    def start(self, argv: list, die_at: tuple[str, int] | None = None) -> tuple[multiprocessing.Process, Path]:
        self.runs += 1
        log = self.tmp_path / f"run{self.runs}.log"
        process = self.context.Process(
            target=_nextword_train, args=([str(a) for a in argv], str(log), str(self.tmp_path / "cache"), die_at)
        )
        process.start()
        return process, log

    def run(self, argv: list) -> tuple[int, str]:
        process, log = self.start(argv)
        process.join(120)
        return process.exitcode, log.read_text()


def _modified(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def _check_after_a_kill(out: Path) -> None:
    """What a killed run leaves: a state whose best weights are on disk (or can be written again from it),
    metrics that cover the state, and weights that load and predict."""
    state, _ = checkpoint.load_state(out)
    saved = checkpoint.weights_step(out)
    assert saved == state.best_step or state.best_step == state.step and (saved or 0) < state.step
    assert state.step in [row["step"] for row in checkpoint.read_metrics(out)]
    if saved is not None:
        assert Predictor.load(out).predict("anna has the ", k=3)


def test_twenty_sigkills_lose_nothing_and_resume_to_the_same_weights(tmp_path: Path, corpus_file: Path) -> None:
    runner = Runner(tmp_path)
    assert runner.run([corpus_file, *FLAGS, "--out", tmp_path / "straight"])[0] == 0
    out = tmp_path / "killed"
    kills, torn_writes, weights_behind = 0, 0, 0
    for moment, when in KILLS:
        if (out / checkpoint.STATE).exists():
            how = ["--resume", "-q"]
        else:  # nothing to resume yet; what the user is told to do then
            if checkpoint.is_model_dir(out):
                code, log = runner.run([corpus_file, "--out", out, "--resume", "-q"])
                assert code == 2 and "stopped before its first checkpoint" in log and "--force" in log, log
            elif out.exists() and any(p.name != checkpoint.LOCK for p in out.iterdir()):
                code, log = runner.run([corpus_file, "--out", out, "--resume", "-q"])
                assert code == 2 and "train it again with --force" in log, log
            how = [*FLAGS, "--force"]
        if moment == "delay":
            evaluated = _modified(out / checkpoint.METRICS)
            process, log = runner.start([corpus_file, "--out", out, *how])
            while _modified(out / checkpoint.METRICS) == evaluated and process.is_alive():
                time.sleep(0.002)
            time.sleep(when)
            process.kill()
        else:
            process, log = runner.start([corpus_file, "--out", out, *how], die_at=(moment, when))
        process.join(120)
        assert process.exitcode == -signal.SIGKILL, (moment, when, log.read_text())
        kills += 1
        torn_writes += any(files.leftover_temporaries(out / name) for name in checkpoint._OWN_FILES)
        if (out / checkpoint.STATE).exists():
            _check_after_a_kill(out)
            weights_behind += checkpoint.best_weights_missing(out, checkpoint.load_state(out)[0])
    assert kills == 20 and torn_writes and weights_behind  # the awkward moments were hit, not only the easy ones
    code, log = runner.run([corpus_file, "--out", out, "--resume", "--json", "-q"])
    assert code == 0 and json.loads(log)["steps"] == 60, log
    assert not any(files.leftover_temporaries(out / name) for name in checkpoint._OWN_FILES)
    straight, resumed = (load_file(tmp_path / d / checkpoint.WEIGHTS) for d in ("straight", "killed"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert (
        checkpoint.weights_step(out)
        == checkpoint.load_state(out)[0].best_step
        == checkpoint.read_json(out / checkpoint.SUMMARY)["best_step"]
    )
    rows = [
        [{k: v for k, v in row.items() if k != "elapsed"} for row in checkpoint.read_metrics(tmp_path / d)]
        for d in ("straight", "killed")
    ]
    assert rows[0] == rows[1]


def _disk_full_at(monkeypatch: pytest.MonkeyPatch, out: Path, name: str, nth: int) -> dict[str, bytes]:
    """Make the `nth` write of `name` in `out` find the disk full half-way through (when it is synced, as a
    real disk reports it); returns what `name` held then, once it has happened."""
    real_fsync, seen, kept = os.fsync, [], {}

    def fsync(fd: int) -> None:
        inode = os.fstat(fd).st_ino
        written = next((p for p in out.iterdir() if p.stat().st_ino == inode), None) if out.is_dir() else None
        if written and written.name.startswith(f".{name}.") and len(seen) < nth:
            seen.append(written)
            if len(seen) == nth:
                kept[name] = (out / name).read_bytes()
                os.ftruncate(fd, written.stat().st_size // 2)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    return kept


@pytest.mark.parametrize(
    "name, kept_step",
    [(checkpoint.METRICS, 5), (checkpoint.STATE, 5), (checkpoint.WEIGHTS, 10), (checkpoint.SUMMARY, 10)],
)
def test_a_disk_that_fills_during_a_checkpoint_keeps_the_last_one(
    name: str, kept_step: int, tmp_path: Path, corpus_file: Path, straight_10: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**TINY, "max_steps": 10, "eval_every": 5}.items()]
    before = _disk_full_at(monkeypatch, out, name, 2)  # the second checkpoint's
    result = CliRunner().invoke(app, ["train", str(corpus_file), *flags, "--out", str(out), "-q"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"error: cannot write {out / name}: No space left on device; the last good checkpoint (step {kept_step}) "
        f"is kept in {out}. Free some space, then resume with: nextword train {corpus_file} --out {out} --resume"
    ]
    assert (out / name).read_bytes() == before[name]
    assert not any(files.leftover_temporaries(out / own) for own in checkpoint._OWN_FILES)
    assert checkpoint.load_state(out)[0].step == kept_step
    assert Predictor.load(out).predict("anna has the ", k=3)
    monkeypatch.undo()
    resumed = CliRunner().invoke(app, ["train", str(corpus_file), "--out", str(out), "--resume", "-q"])
    assert resumed.exit_code == 0, resumed.output
    straight, after = (load_file(d / checkpoint.WEIGHTS) for d in (straight_10, out))
    assert all(torch.equal(straight[k], after[k]) for k in straight)


@pytest.fixture(scope="module")
def straight_10(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    return _train_shared(tmp_path_factory, corpus_file, "straight", max_steps=10, eval_every=5)
