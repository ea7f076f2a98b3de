"""Scale-out: two CPU processes under torchrun (gloo) train one model, end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nextword import load
from nextword.config import resolve
from nextword.data import StreamBatches
from nextword.train import train

from conftest import TINY


def test_ranks_take_disjoint_streams_that_together_are_the_single_process_batch() -> None:
    ids = np.arange(1000)
    whole = StreamBatches(ids, batch_size=6, seq_len=5)
    parts = [StreamBatches(ids, batch_size=3, seq_len=5, part=(rank, 2)) for rank in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole)
    for index in (0, 7):
        joined = [np.concatenate([p.batch(index)[k] for p in parts]) for k in (0, 1)]
        assert all(np.array_equal(a, b) for a, b in zip(joined, whole.batch(index)))


def test_torchrun_with_two_processes_matches_one_process_with_the_same_global_batch(
    tmp_path: Path, corpus_file: Path
) -> None:
    settings = {**TINY, "batch_size": 4, "max_steps": 40, "eval_every": 20}
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "nextword",
            "train",
            str(corpus_file),
            *flags,
            "--out",
            str(tmp_path / "ddp"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)  # only rank 0 printed
    assert summary["steps"] == 40
    assert load(str(tmp_path / "ddp")).predict("anna has the red ", k=3)
    single = train(resolve(settings, {"batch_size": 8}), corpus_file, tmp_path / "single")
    assert summary["train_tokens"] == single.train_tokens  # the same global batch covers the same text
    assert summary["best_valid_loss"] == pytest.approx(single.best_valid_loss, rel=0.02)
