"""How many CPU threads a long job uses: fewer while other processes keep cores busy, all again when they stop.

torch runs its CPU kernels on a pool of OpenMP threads that spin while they wait for one another.
When another process takes a core, the pool's thread on that core is descheduled in the middle of a
kernel and the others spin until it comes back: on 2 cores, a one-core busy loop cut the LSTM's
training from about 6,000 to 1,800 pieces a second, where one thread makes 3,600-4,400 beside it
(bench/RESULTS.md, "Sharing the CPU"). So training and evaluation on the CPU look at how much of the
machine the other processes use, every few seconds, and leave them their cores. A model's arithmetic
does not depend on the number of threads (checked bitwise), so a job that changes it stays reproducible."""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

CHECK_SECONDS = 2.0  # how often the machine is looked at (reading /proc/stat takes about 40 µs)


def machine_busy_seconds() -> float | None:
    """CPU seconds every process has used since boot, all cores together (Linux's /proc/stat); None
    where the system does not tell."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
        # cpu user nice system idle iowait irq softirq steal: all but idle and iowait is work
        ticks = [int(field) for field in fields[1:9]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ThreadGovernor:
    """Chooses the number of threads from what the other processes use: the cores they leave free,
    rounded, between 1 and `most` (the run's own setting). A change is made when two looks in a row
    agree on it, so that a moment's load does not move it."""

    def __init__(
        self,
        most: int,
        cores: int,
        busy: Callable[[], float | None] = machine_busy_seconds,
        own: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.most, self.cores, self.threads = most, cores, most
        self._busy, self._own, self._clock = busy, own, clock
        self._last = self._look()
        self._proposed: int | None = None

    def _look(self) -> tuple[float, float, float] | None:
        busy = self._busy()
        return None if busy is None else (self._clock(), busy, self._own())

    def check(self) -> int | None:
        """The number of threads to run on from now on, when it should change (else None)."""
        if self._last is None or self.most < 2 or self._clock() - self._last[0] < CHECK_SECONDS:
            return None
        now = self._look()
        if now is None:
            return None
        others, self._last = _others(self._last, now), now
        wanted = min(self.most, max(1, math.floor(self.cores - others + 0.5)))
        if wanted == self.threads:
            self._proposed = None
            return None
        if wanted != self._proposed:
            self._proposed = wanted  # seen once: wait for the next look to agree
            return None
        self.threads, self._proposed = wanted, None
        return wanted


def _others(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Cores the other processes kept busy between two looks (clock, machine's CPU seconds, this process's):
    the machine's work less this process's."""
    wall, busy, own = (b - a for a, b in zip(before, after))
    return max(0.0, (busy - own) / wall) if wall > 0 else 0.0


class SharedCores:
    """torch's threads through one long loop on the CPU: `adjust()`, between two pieces of its work, moves
    them to the cores other processes leave free (see `ThreadGovernor`); leaving the `with` block gives
    all of them back, so that what runs next starts with every thread."""

    def __init__(self, governor: ThreadGovernor | None):
        self.governor = governor  # None: the threads are left alone

    @classmethod
    def for_device(cls, device: torch.device, shared_by_design: bool = False) -> SharedCores:
        """Governed on a CPU; not on a GPU, nor for processes that share the cores by design (the ranks
        of a distributed run)."""
        import torch  # here, not above: the tokenizer and the recipe ask for the cores without loading torch

        if device.type != "cpu" or shared_by_design:
            return cls(None)
        return cls(ThreadGovernor(torch.get_num_threads(), usable_cores()))

    def adjust(self) -> int | None:
        """The number of threads from now on when it changed (else None), set in torch."""
        threads = self.governor.check() if self.governor is not None else None
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        return threads

    def __enter__(self) -> SharedCores:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.governor is not None:
            import torch

            torch.set_num_threads(self.governor.most)
