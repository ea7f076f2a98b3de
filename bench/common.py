"""What the benchmark scripts share: the public corpora, the machine they ran on, tables and JSON.

The corpora are read from ../shared/corpora (beside the repository), never copied into it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from rich.console import Console
from rich.table import Table

from nextword.threads import usable_cores

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NEXTWORD_SHARED_CORPORA", ROOT.parent / "shared" / "corpora"))
CORPORA = ("shakespeare", "wikitext")
console = Console(stderr=True)


def arguments(doc: str, results: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: budget, corpora, work folder and where the JSON goes."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--budget", default="10m", help="training time per model (default: %(default)s)")
    parser.add_argument("--corpora", default=",".join(CORPORA), help="comma-separated: shakespeare, wikitext")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nextword-bench"), help="where models and splits go")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / results, help="the JSON results file")
    return parser


def corpus_files(name: str, work: Path) -> tuple[Path, Path]:
    """(training text, held-out text) of a benchmark corpus.

    shakespeare: tinyshakespeare/input.txt, its last 10% (from a line start) held out.
    wikitext: wikitext-2 valid.txt to train on, test.txt held out.
    """
    if name == "wikitext":
        train, test = SHARED / "wikitext-2" / "valid.txt", SHARED / "wikitext-2" / "test.txt"
    elif name == "shakespeare":
        source = SHARED / "tinyshakespeare" / "input.txt"
        train, test = write_split(source.read_text(encoding="utf-8"), work, "shakespeare")
    else:
        raise SystemExit(f"unknown corpus {name!r}; choose from {', '.join(CORPORA)}")
    for path in (train, test):
        if not path.is_file():
            raise SystemExit(f"{path} is missing: the benchmarks read the public corpora from {SHARED}")
    return train, test


def held_out(text: str, fraction: float = 0.1) -> tuple[str, str]:
    """`text` cut at the first line start after its first 1 - `fraction` of characters: (to train, held out)."""
    cut = text.index("\n", int(len(text) * (1 - fraction))) + 1
    return text[:cut], text[cut:]


def write_split(text: str, work: Path, name: str) -> tuple[Path, Path]:
    """`held_out`'s two parts of `text` as work/NAME-train.txt and NAME-test.txt (UTF-8, line ends as they
    are), each written unless the file already holds it."""
    work.mkdir(parents=True, exist_ok=True)
    paths = work / f"{name}-train.txt", work / f"{name}-test.txt"
    for path, part in zip(paths, (part.encode("utf-8") for part in held_out(text))):
        if not path.is_file() or path.read_bytes() != part:
            path.write_bytes(part)
    return paths


def machine() -> dict[str, Any]:
    """The hardware and software a result was measured on, and the command that measured it."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def show(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], info: dict[str, Any]) -> None:
    """The results as a table on stdout, with the machine line under it."""
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    out = Console(width=max(Console().width, 120))
    out.print(table)
    out.print(
        f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}"
        f"{', ' + info['gpu'] if info['gpu'] else ''}; {info['command']}"
    )


def write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(path)
    console.print(f"wrote {path}")
