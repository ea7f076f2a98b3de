"""The threads training and evaluation run on: fewer while other processes keep cores busy, all again after."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nextword import threads as nextword_threads
from nextword import train as training
from nextword.config import resolve
from nextword.evaluate import read_text
from nextword.predict import Predictor
from nextword.threads import CHECK_SECONDS, SharedCores, ThreadGovernor, machine_busy_seconds
from nextword.train import Notice

from conftest import TINY


class Machine:
    """A machine whose other processes keep `others` cores busy; this process uses `mine` cores. Each look
    advances the clock past the governor's interval."""

    def __init__(self, mine: float = 2.0):
        self.clock, self.busy, self.own, self.mine, self.others = 0.0, 0.0, 0.0, mine, 0.0

    def tick(self) -> None:
        self.clock += CHECK_SECONDS
        self.busy += (self.mine + self.others) * CHECK_SECONDS
        self.own += self.mine * CHECK_SECONDS

    def passing_clock(self) -> float:
        """The clock of a governor whose every look finds the interval passed."""
        self.tick()
        return self.clock

    def governor(self, most: int = 2, cores: int = 2, passing: bool = False) -> ThreadGovernor:
        clock = self.passing_clock if passing else lambda: self.clock
        return ThreadGovernor(most, cores, busy=lambda: self.busy, own=lambda: self.own, clock=clock)


def looks(machine: Machine, governor: ThreadGovernor, others: list[float]) -> list[int | None]:
    """The governor's answer at each look, the other processes using `others[i]` cores before look i."""
    answers = []
    for load in others:
        machine.others = load
        machine.tick()
        answers.append(governor.check())
    return answers


def test_a_quiet_machine_keeps_every_thread() -> None:
    machine = Machine()
    governor = machine.governor()
    assert looks(machine, governor, [0.0, 0.1, 0.0, 0.2]) == [None] * 4
    assert governor.threads == 2


def test_a_busy_core_takes_a_thread_after_two_looks_and_gives_it_back_when_free() -> None:
    machine = Machine()
    governor = machine.governor()
    assert looks(machine, governor, [1.0, 1.0]) == [None, 1]
    machine.mine = 1.0  # on one thread now: the other process still holds its core
    assert looks(machine, governor, [1.0, 1.0, 0.0, 0.0]) == [None, None, None, 2]
    assert governor.threads == 2


def test_a_moment_of_load_changes_nothing() -> None:
    machine = Machine()
    governor = machine.governor()
    assert looks(machine, governor, [1.0, 0.0, 1.0, 0.0]) == [None] * 4


def test_threads_stay_between_one_and_the_runs_own_setting() -> None:
    machine = Machine()
    governor = machine.governor(most=4, cores=16)
    assert looks(machine, governor, [10.0, 10.0]) == [None, None]  # 6 cores free: all 4 threads still fit
    assert looks(machine, governor, [14.0, 14.0]) == [None, 2]
    assert looks(machine, governor, [40.0, 40.0]) == [None, 1]


def test_nothing_is_changed_between_looks_nor_for_one_thread_nor_without_proc_stat() -> None:
    machine = Machine()
    governor = machine.governor()
    machine.others = 2.0
    machine.busy += 100  # load, but the interval has not passed
    assert governor.check() is None
    machine = Machine()
    single = machine.governor(most=1)
    assert looks(machine, single, [2.0, 2.0, 2.0]) == [None] * 3
    blind = ThreadGovernor(2, 2, busy=lambda: None)
    assert blind.check() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_the_machines_cpu_seconds_count_this_processs_work() -> None:
    before, own = machine_busy_seconds(), time.process_time()
    while time.process_time() - own < 0.3:
        pass
    after = machine_busy_seconds()
    assert isinstance(before, float) and after - before >= 0.2  # ticks of 10 ms: most of the 0.3 s shows


@pytest.fixture
def taken_cpu(monkeypatch: pytest.MonkeyPatch) -> Machine:
    """A machine of 2 cores, both kept busy by other processes (`others`: change it at will), that every
    governor made from here on watches, each look finding the interval passed; torch starts with 2
    threads and gets its own count back after."""
    machine = Machine()
    machine.others = 2.0
    # On 2 cores, whatever this machine has.
    monkeypatch.setattr(nextword_threads, "ThreadGovernor", lambda most, cores: machine.governor(most, 2, passing=True))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield machine
    torch.set_num_threads(threads)


def test_shared_cores_set_torchs_threads_and_give_them_back(taken_cpu) -> None:
    with SharedCores.for_device(torch.device("cpu")) as cores:
        assert [cores.adjust(), cores.adjust()] == [None, 1]
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with SharedCores.for_device(torch.device("cpu"), shared_by_design=True) as cores:
        assert [cores.adjust(), cores.adjust()] == [None, None]  # a distributed run's rank keeps its threads
    assert torch.get_num_threads() == 2


def test_a_run_trains_on_fewer_threads_while_the_cpu_is_taken_then_gets_them_back(
    tmp_path: Path, corpus_file: Path, taken_cpu
) -> None:
    events = []
    training.train(
        resolve(TINY, {"max_steps": 6, "mixture": False}), corpus_file, tmp_path / "m", on_event=events.append
    )
    notices = [event.message for event in events if isinstance(event, Notice)]
    assert notices == ["other processes are using the CPU: training on 1 of 2 threads"]
    assert torch.get_num_threads() == 2  # the threads given back when the loop ends


def test_evaluation_gives_the_same_figures_on_the_cores_left_free(
    trained_model: Path, corpus_file: Path, taken_cpu: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nextword import evaluate

    monkeypatch.setattr(evaluate, "_STRIDE", 5)  # many blocks read, so that the threads are looked at often
    monkeypatch.setattr(evaluate, "_BLOCK", 3)
    predictor = Predictor.load(trained_model)
    ids = np.array(predictor.tokenizer.encode(corpus_file.read_text()[:1500]))
    seen = []

    def note_threads(done: int, total: int) -> None:  # the threads torch has at each word scored
        seen.append(torch.get_num_threads())

    def read() -> tuple[float, object]:
        seen.clear()
        return read_text(predictor, ids, scored=len(ids), suggestions=3, on_word=note_threads)

    taken_cpu.others = 0.0
    alone = read()
    assert set(seen) == {2}
    taken_cpu.others = 2.0
    shared = read()
    assert 1 in seen and torch.get_num_threads() == 2  # fewer threads while the CPU is taken, all of them after
    assert shared == alone
