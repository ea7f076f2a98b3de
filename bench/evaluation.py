"""What a whole `nextword evaluate` costs against its loss pass alone (target: at most 3x).

For each model directory: the loss pass alone (`stream_loss`, one stream, 256-token segments:
every token scored, nothing else) and then `evaluate_file` (perplexity, bits per character,
top-1/3/5 accuracy and keystroke savings with 3 suggestions, all words) on the held-out text of
Tiny Shakespeare (its last 10%, cut at a line start, as bench/common.py makes it), each timed in
wall and CPU seconds, --repeats times.

    python bench/evaluation.py MODEL_DIR [MODEL_DIR ...] --threads 1

Prints a table and writes bench/evaluation.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT, console, corpus_files, machine, show, write_json

from nextword.data import check_corpus, encode_corpus
from nextword.evaluate import evaluate_file
from nextword.loss import stream_loss
from nextword.predict import Predictor
from nextword.tokenizer import EOS_ID


def timed(work) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nextword-bench"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "evaluation.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    _, test = corpus_files("shakespeare", args.work)
    rows = []
    for model in args.models:
        predictor = Predictor.load(model)
        ids = np.concatenate([[EOS_ID], encode_corpus(check_corpus(test), predictor.tokenizer)])
        for repeat in range(args.repeats):
            console.print(f"{model}: loss pass, run {repeat + 1}…")
            _, loss_wall, loss_cpu = timed(
                lambda p=predictor, i=ids: stream_loss(p.model, p.tokenizer, i, seq_len=256, device=p.device, streams=1)
            )
            console.print(f"{model}: evaluate, run {repeat + 1}…")
            result, wall, cpu = timed(lambda p=predictor: evaluate_file(p, test))
            rows.append(
                {
                    "model": str(model),
                    "run": repeat + 1,
                    "tokens": result["tokens"],
                    "characters": result["characters"],
                    "words": result["predicted_words"],
                    "loss_seconds": loss_wall,
                    "loss_cpu_seconds": loss_cpu,
                    "evaluate_seconds": wall,
                    "evaluate_cpu_seconds": cpu,
                    "ratio": wall / loss_wall,
                    "cpu_ratio": cpu / loss_cpu,
                    "bits_per_char": result["bits_per_char"],
                    "top1": result["accuracy"]["top1"],
                    "top5": result["accuracy"]["top5"],
                    "keystroke_savings": result["keystroke_savings"],
                }
            )
            console.print(rows[-1])
    info = machine()
    write_json(args.out, {"machine": info, "file": str(test), "rows": rows})
    show(
        f"evaluate against its loss pass alone, {test.name} (target: at most 3x)",
        ["model", "run", "tokens", "words", "loss pass s (cpu)", "evaluate s (cpu)", "ratio (cpu)", "bits/char"],
        [
            [
                r["model"],
                r["run"],
                f"{r['tokens']:,}",
                f"{r['words']:,}",
                f"{r['loss_seconds']:.1f} ({r['loss_cpu_seconds']:.1f})",
                f"{r['evaluate_seconds']:.1f} ({r['evaluate_cpu_seconds']:.1f})",
                f"{r['ratio']:.1f}x ({r['cpu_ratio']:.1f}x)",
                f"{r['bits_per_char']:.3f}",
            ]
            for r in rows
        ],
        info,
    )


if __name__ == "__main__":
    main()
