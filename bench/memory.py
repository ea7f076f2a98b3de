"""Does training memory grow with the corpus? Peak RSS of `nextword train` on a 50 MB and a 500 MB corpus.

Each corpus is generated stories (corpora/generate.py): 50 MB written 5 MB at a time with a new seed
per piece, then repeated up to the size asked for (generating 500 MB afresh takes minutes more and
makes no difference to memory), so this script never holds more than one piece. Each run is
a fresh process, `nextword train CORPUS --config small --max-steps 50`, and its peak
resident set (tokenizer training, encoding, batching, 50 steps and the closing evaluation) is read
from the kernel's accounting of that one child (os.wait4). The token-id cache is a temporary folder,
so both runs encode from scratch. The target is the two peaks within 10% of each other.

    python bench/memory.py

Prints a table and writes bench/memory.json. Needs about 1.2 GB free under --work (corpora and
their token ids), removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, console, machine, show, write_json

from nextword.config import find_config

sys.path.insert(0, str(ROOT / "corpora"))
from generate import generate_stories  # noqa: E402

PIECE = 5_000_000  # bytes of stories generated at a time
DISTINCT = 50_000_000  # bytes of distinct stories in a corpus; a larger one repeats them
TARGET = 0.10  # the larger peak at most this much above the smaller


def write_corpus(path: Path, size: int) -> None:
    """About `size` bytes of stories, generated piece by piece, the first DISTINCT bytes repeated if
    need be; an existing file of that size is kept."""
    if path.is_file() and path.stat().st_size >= size:
        return
    written, seed = 0, 0
    with open(path, "w", encoding="utf-8") as out:
        while written < min(size, DISTINCT):
            written += out.write(generate_stories(seed, min(PIECE, size - written)))
            seed += 1
        distinct = written
        while written < size:
            out.flush()
            with open(path, encoding="utf-8") as source:
                while written < size and (piece := source.read(min(PIECE, distinct, size - written))):
                    written += out.write(piece)


def peak_rss(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak resident set in MiB, wall seconds) of one child process run to completion."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: nobody reads it while the child runs
        started = time.perf_counter()
        child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        if code := os.waitstatus_to_exitcode(status):
            errors.seek(0)
            raise SystemExit(f"{' '.join(args)} failed ({code}):\n{errors.read().decode()}")
    return usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,500", help="corpus sizes in MB (default: %(default)s)")
    parser.add_argument("--config", type=Path, default=find_config("small"))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nextword-memory"))
    parser.add_argument("--keep", action="store_true", help="keep the generated corpora for another run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "memory.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cache = args.work / "cache"
    env = {
        **os.environ,
        "NEXTWORD_CACHE": str(cache),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    rows, results = [], []
    try:
        for megabytes in (int(size) for size in args.sizes.split(",")):
            corpus = args.work / f"stories-{megabytes}mb.txt"
            console.print(f"writing {corpus}…")
            write_corpus(corpus, megabytes * 1_000_000)
            shutil.rmtree(cache, ignore_errors=True)  # every run encodes its corpus from scratch
            command = [
                sys.executable,
                "-m",
                "nextword",
                "train",
                str(corpus),
                "--config",
                str(args.config),
                "--max-steps",
                str(args.steps),
                "--out",
                str(args.work / f"model-{megabytes}mb"),
                "--force",
                "--quiet",
            ]
            console.print(f"training on {corpus.name}…")
            peak, seconds = peak_rss(command, env)
            results.append({"corpus_mb": megabytes, "peak_rss_mib": round(peak, 1), "seconds": round(seconds, 1)})
            console.print(f"{corpus.name}: peak RSS {peak:,.0f} MiB, {seconds:,.0f} s")
            rows.append([f"{megabytes} MB", args.config.stem, f"{peak:,.0f}", f"{seconds:,.0f}"])
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if not args.keep:
            for path in args.work.glob("stories-*mb.txt"):
                path.unlink()
    peaks = [r["peak_rss_mib"] for r in results]
    growth = max(peaks) / min(peaks) - 1
    met = growth <= TARGET
    verdict = f"target <= +{TARGET:.0%}: {'met' if met else 'not met'}"
    rows.append(["largest / smallest", "", f"+{growth:.1%}", "", verdict])
    info = machine()
    write_json(
        args.out,
        {
            "machine": info,
            "config": args.config.name,
            "steps": args.steps,
            "runs": results,
            "growth": round(growth, 4),
            "target": TARGET,
            "met": met,
        },
    )
    show(
        f"Peak memory of `nextword train --max-steps {args.steps}`",
        ["corpus", "preset", "peak RSS MiB", "wall s", ""],
        [row + [""] * (5 - len(row)) for row in rows],
        info,
    )


if __name__ == "__main__":
    main()
