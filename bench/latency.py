"""How fast nextword answers: predict latency, generation speed, and start-up time.

Trains (or reuses) a model of the bundled stories corpus with a preset, then measures in one run:
- predict, in process and warm: p50 and p95 over prompts cut from held-out text, some ending in
  a space (next word), some inside a word (completion); target p50 <= 5 ms;
- generation: pieces per second for `generate` (target >= 1000 for the small preset);
- cold start: `nextword --help` (target <= 0.3 s) and `nextword predict` end to end, each the
  median of several fresh processes.

    python bench/latency.py --preset small

Prints a table and writes bench/latency.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import ROOT, console, machine, show, write_json

from nextword.config import find_config, load
from nextword.predict import Predictor
from nextword.train import train

CORPUS = ROOT / "corpora" / "stories.txt"
TARGETS = {"predict p50 ms": 5.0, "predict p95 ms": None, "generate tokens/s": 1000.0, "--help s": 0.3,
           "predict command s": None}


def prompts(count: int) -> list[str]:
    """Prompts cut from the stories' last lines: half end after a space, half inside a word."""
    words = " ".join(CORPUS.read_text(encoding="utf-8").splitlines()[-200:]).split()
    out = []
    for i in range(count):
        end = 5 + (i * 7919) % (len(words) - 5)
        text = " ".join(words[end - 5:end])
        out.append(text + " " if i % 2 == 0 else text + " " + words[end][: 1 + i % 3])
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fresh_process_seconds(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small", help="a preset name or YAML file (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=300, help="training steps if the model is new")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the in-process measures (default: torch's own choice)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nextword-bench"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "latency.json")
    args = parser.parse_args()
    model_dir = args.work / f"latency-{args.preset}"
    if not (model_dir / "model.safetensors").is_file():
        console.print(f"training {model_dir} ({args.steps} steps of the {args.preset} preset)…")
        train(load(find_config(args.preset), {"max_steps": args.steps}), CORPUS, model_dir, force=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = Predictor.load(model_dir)
    texts = prompts(args.prompts)
    for text in texts[:10]:  # warm up
        predictor.predict(text, 5)
    latencies = []
    for text in texts:
        started = time.perf_counter()
        predictor.predict(text, 5)
        latencies.append((time.perf_counter() - started) * 1000)
    pieces, started = 0, time.perf_counter()
    for seed in range(5):
        pieces += sum(1 for _ in predictor.stream("Once upon a time", seed=seed, max_words=200))
    generate_rate = pieces / (time.perf_counter() - started)
    executable = str(Path(sys.executable).with_name("nextword"))
    measured = {
        "predict p50 ms": percentile(latencies, 0.5), "predict p95 ms": percentile(latencies, 0.95),
        "generate tokens/s": generate_rate,
        "--help s": fresh_process_seconds([executable, "--help"], 5),
        "predict command s": fresh_process_seconds([executable, "predict", str(model_dir), "she opened the "], 3),
    }
    info = machine()
    write_json(args.out, {"machine": info, "preset": args.preset, "model": str(model_dir),
                          "threads": torch.get_num_threads(), "measured": measured,
                          "targets": TARGETS})
    rows = []
    for name, value in measured.items():
        target = TARGETS[name]
        higher = name.endswith("tokens/s")
        met = "" if target is None else "met" if (value >= target if higher else value <= target) else "not met"
        rows.append([name, args.preset, f"{value:,.2f}", "" if target is None else
                     f"{'>=' if higher else '<='} {target:g}", met])
    show(f"Latency ({args.preset} preset, {torch.get_num_threads()} torch threads)", ["measure", "preset", "value", "target", ""], rows, info)


if __name__ == "__main__":
    main()
