"""Does the trainer cost anything? nextword's training loop against a bare PyTorch loop.

For each cell, both train the same shapes on the same token stream (nextword's default model and
batch, a tokenizer of --corpus): the bare loop is an embedding, a fused nn.RNN/GRU/LSTM, a tied
output layer, cross-entropy, gradient clipping and AdamW, the hidden state carried across
segments, nothing else. nextword's trainer adds data loading, the learning-rate schedule,
progress reporting and its checkpointing. Tokens/s are taken after --warmup steps; the target is
a ratio of at least 0.95.

Then the output layer: a full softmax against `--softmax adaptive` at a 16k-piece vocabulary
(wikitext-2 and Tiny Shakespeare together), the same steps each: tokens/s and validation
perplexity. The target is at least 2x the tokens/s for at most 3% higher perplexity.

    python bench/throughput.py --steps 150 --softmax-steps 300

Prints a table and writes bench/throughput.json.

With --intervals, instead: one long run per cell (the small preset, --budget seconds of training,
validation every eval_every steps), and the tokens/s of each interval between two validations,
from the trainer's own progress events (validation time left out). Each interval also gets the
process's CPU time per step: on a shared machine a fall in tokens/s with flat CPU time per step is
other processes taking the cores, a rise in CPU time per step is the run itself getting slower.

    python bench/throughput.py --intervals --budget 180

With --busy-core START:SECONDS, another process keeps one core busy for part of each run: what the
trainer does when a program starts beside it (threads.py gives that program its core).

Prints a table and writes bench/throughput-intervals.json.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from common import ROOT, SHARED, console, machine, show, write_json
from torch import nn

from nextword.config import NEURAL_CELLS, ModelConfig, Settings, find_config, read_yaml, resolve
from nextword.data import encode_corpus
from nextword.train import Evaluation, Prepared, Progress, prepare, train


class BareLM(nn.Module):
    def __init__(self, vocab: int, config: ModelConfig):
        super().__init__()
        rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[config.cell]
        self.embedding = nn.Embedding(vocab, config.embed)
        self.rnn = rnn(config.embed, config.hidden, config.layers, batch_first=True, dropout=config.dropout)
        self.drop = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(config.hidden, vocab)
        self.decoder.weight = self.embedding.weight

    def forward(self, x, state):
        out, state = self.rnn(self.drop(self.embedding(x)), state)
        return self.decoder(self.drop(out)), state


def bare_rate(ids: np.ndarray, vocab: int, settings: Settings, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    model, config = BareLM(vocab, settings.model), settings.train
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    length = len(ids) // config.batch_size
    streams = torch.from_numpy(ids[: length * config.batch_size].astype(np.int64)).view(config.batch_size, length)
    state, started = None, 0.0
    for step in range(steps + warmup):
        if step == warmup:
            started = time.perf_counter()
        at = (step * config.seq_len) % (length - config.seq_len - 1)
        x, y = streams[:, at : at + config.seq_len], streams[:, at + 1 : at + 1 + config.seq_len]
        logits, state = model(x, state)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        loss.item()  # the trainer reads the loss back too (when it reports)
    return steps * config.batch_size * config.seq_len / (time.perf_counter() - started)


def trainer_rate(data: Prepared, settings: Settings, work: Path, steps: int, warmup: int) -> float:
    marks: list[tuple[int, float]] = []

    def on_event(event) -> None:
        if isinstance(event, Progress):
            marks.append((event.step, time.perf_counter()))

    # No evaluation inside the timed steps: validation is work the bare loop does not do.
    train(
        settings.replace(max_steps=steps + warmup, eval_every=10 * (steps + warmup)),
        data,
        work,
        force=True,
        on_event=on_event,
    )
    first = next((step, t) for step, t in marks if step >= warmup)
    last = marks[-1]
    return (last[0] - first[0]) * settings.train.batch_size * settings.train.seq_len / (last[1] - first[1])


def _usage() -> np.ndarray:
    """This process's CPU seconds so far (user, system; all threads) and minor page faults."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return np.array([usage.ru_utime, usage.ru_stime, usage.ru_minflt])


def interval_rates(data: Prepared, settings: Settings, work: Path) -> list[dict]:
    """Train `settings` once and measure each interval between validations: training steps, their wall
    and CPU seconds (from one progress event to the next, never across a validation), the tokens/s
    that gives, and the tokens/s the trainer itself reported at the interval's end."""
    intervals: list[dict] = []
    last: tuple[int, float, np.ndarray] | None = None  # (step, wall, usage) at the last progress event
    steps, wall, used, reported = 0, 0.0, np.zeros(3), None  # sums over the current interval
    started = time.perf_counter()

    def on_event(event) -> None:
        nonlocal last, steps, wall, used, reported
        now, usage = time.perf_counter(), _usage()
        if isinstance(event, Progress):
            if last is not None:
                steps, wall, used = steps + event.step - last[0], wall + now - last[1], used + usage - last[2]
            last, reported = (event.step, now, usage), event.tokens_per_second
        elif isinstance(event, Evaluation):
            last = None  # the next progress event comes after the validation: not training time
            if steps:
                user, system, faults = used
                intervals.append(
                    {
                        "step": event.step,
                        "elapsed": round(now - started, 1),
                        "steps": steps,
                        "tokens_per_second": steps * settings.train.batch_size * settings.train.seq_len / wall,
                        "cpu_ms_per_step": 1000 * (user + system) / steps,
                        "sys_ms_per_step": 1000 * system / steps,
                        "cpu_share": (user + system) / wall,
                        "minor_faults_per_step": faults / steps,
                        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                        "reported_tokens_per_second": reported,
                    }
                )
                steps, wall, used = 0, 0.0, np.zeros(3)

    train(settings, data, work, force=True, on_event=on_event)
    return intervals


@contextlib.contextmanager
def busy_core(window: str | None) -> Iterator[None]:
    """Another process that keeps one core busy from START to START + SECONDS into the run (`window`
    "START:SECONDS"), as a program a user starts beside a training run would."""
    if not window:
        yield
        return
    start, seconds = (float(part) for part in window.split(":"))
    loop = f"import time\ntime.sleep({start})\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    process = subprocess.Popen([sys.executable, "-c", loop])
    try:
        yield
    finally:
        process.kill()
        process.wait()


def interval_main(args: argparse.Namespace) -> None:
    preset = read_yaml(find_config("small"))
    base = resolve(
        preset,
        {
            "epochs": None,
            "time_budget": args.budget,
            "device": "cpu",
            "eval_every": args.eval_every or preset["eval_every"],
        },
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    data = prepare(args.corpus, base)
    runs = []
    variants = [(cell, True) for cell in args.cells.split(",")]
    if args.lstm_without_onednn:
        variants.append(("lstm", False))
    for cell, onednn in variants:
        name = cell if onednn else f"{cell} (oneDNN off)"
        console.print(f"{name}: {args.budget:g} s of training…")
        with torch.backends.mkldnn.flags(enabled=onednn), busy_core(args.busy_core):
            intervals = interval_rates(data, base.replace(cell=cell), args.work / f"intervals-{cell}-{onednn}")
        rates = [i["tokens_per_second"] for i in intervals]
        runs.append({"cell": name, "intervals": intervals, "last_over_first": rates[-1] / rates[0] if rates else None})
    info = machine()
    out = args.out.with_name("throughput-intervals.json")
    write_json(out, {"machine": info, "vocab_size": data.tokenizer.vocab_size, "config": base.to_dict(), "runs": runs})
    show(
        f"Training tokens/s per validation interval, small preset, {args.budget:g} s per cell "
        f"(validation every {base.train.eval_every} steps; CPU ms/step and CPU share of wall time beside)",
        ["cell", "", *[f"#{n + 1}" for n in range(max(len(r["intervals"]) for r in runs))], "last / first"],
        [
            [
                r["cell"],
                "tok/s",
                *[f"{i['tokens_per_second']:,.0f}" for i in r["intervals"]],
                f"{r['last_over_first']:.2f}",
            ]
            for r in runs
        ]
        + [[r["cell"], "cpu ms/step", *[f"{i['cpu_ms_per_step']:.1f}" for i in r["intervals"]], ""] for r in runs]
        + [[r["cell"], "sys ms/step", *[f"{i['sys_ms_per_step']:.1f}" for i in r["intervals"]], ""] for r in runs]
        + [
            [r["cell"], "faults/step", *[f"{i['minor_faults_per_step']:,.0f}" for i in r["intervals"]], ""]
            for r in runs
        ]
        + [[r["cell"], "cpu share", *[f"{i['cpu_share']:.2f}" for i in r["intervals"]], ""] for r in runs]
        + [
            [r["cell"], "reported", *[f"{i['reported_tokens_per_second']:,.0f}" for i in r["intervals"]], ""]
            for r in runs
        ],
        info,
    )


def large_vocabulary_corpus(work: Path) -> Path:
    """wikitext-2 valid and test and Tiny Shakespeare in one file (3.5 MB): enough text for 16k pieces."""
    path = work / "softmax-corpus.txt"
    parts = [
        SHARED / "wikitext-2" / "valid.txt",
        SHARED / "wikitext-2" / "test.txt",
        SHARED / "tinyshakespeare" / "input.txt",
    ]
    work.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    return path


def softmax_comparison(corpus: Path, vocab_size: int, steps: int, work: Path) -> list[dict]:
    """Full against adaptive softmax at a large vocabulary: tokens/s, and validation perplexity after
    the same number of steps (the same tokenizer, data, seed and schedule)."""
    base = resolve({"epochs": None, "max_steps": steps, "eval_every": steps, "vocab_size": vocab_size, "device": "cpu"})
    data = prepare(corpus, base)
    rows = []
    for softmax in ("full", "adaptive"):
        console.print(f"softmax {softmax}, vocabulary {data.tokenizer.vocab_size}: {steps} steps…")
        summary = train(base.replace(softmax=softmax), data, work / f"softmax-{softmax}", force=True)
        rows.append(
            {
                "softmax": softmax,
                "vocab_size": data.tokenizer.vocab_size,
                "steps": summary.steps,
                "tokens_per_second": summary.tokens_per_second,
                "valid_perplexity": summary.best_valid_perplexity,
                "valid_word_perplexity": summary.best_valid_word_perplexity,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "tinyshakespeare" / "input.txt")
    parser.add_argument("--cells", default=",".join(NEURAL_CELLS))
    parser.add_argument("--steps", type=int, default=150, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--softmax-vocab", type=int, default=16000)
    parser.add_argument("--softmax-steps", type=int, default=300)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nextword-bench"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "throughput.json")
    parser.add_argument("--intervals", action="store_true", help="one long run per cell, tokens/s per interval")
    parser.add_argument("--budget", type=float, default=180, help="seconds of training per cell (--intervals)")
    parser.add_argument(
        "--eval-every", type=int, default=0, help="steps between validations (--intervals; default: the preset's)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (--intervals; default: torch's)")
    parser.add_argument(
        "--busy-core",
        metavar="START:SECONDS",
        help="with --intervals, another process keeps one core busy from START to START + SECONDS into each run",
    )
    parser.add_argument(
        "--lstm-without-onednn", action="store_true", help="with --intervals, also an LSTM run with oneDNN (mkldnn) off"
    )
    args = parser.parse_args()
    if args.intervals:
        interval_main(args)
        return
    base = resolve({"epochs": None, "max_steps": args.steps, "device": "cpu"})
    data = prepare(args.corpus, base)
    ids, vocab = encode_corpus(data.corpus, data.tokenizer), data.tokenizer.vocab_size
    results = []
    for cell in args.cells.split(","):
        settings = base.replace(cell=cell)
        console.print(f"{cell}: bare loop…")
        bare = bare_rate(np.asarray(ids), vocab, settings, args.steps, args.warmup)
        console.print(f"{cell}: nextword trainer…")
        ours = trainer_rate(data, settings, args.work / f"throughput-{cell}", args.steps, args.warmup)
        results.append(
            {"cell": cell, "bare_tokens_per_second": bare, "trainer_tokens_per_second": ours, "ratio": ours / bare}
        )
    softmax = softmax_comparison(large_vocabulary_corpus(args.work), args.softmax_vocab, args.softmax_steps, args.work)
    info = machine()
    write_json(
        args.out,
        {"machine": info, "vocab_size": vocab, "config": base.to_dict(), "results": results, "softmax": softmax},
    )
    show(
        f"Training throughput, nextword trainer vs bare loop (vocab {vocab}, {base.model.layers}×"
        f"{base.model.hidden}, batch {base.train.batch_size}×{base.train.seq_len})",
        ["cell", "", "bare tok/s", "trainer tok/s", "ratio (target >= 0.95)"],
        [
            [
                r["cell"],
                "",
                f"{r['bare_tokens_per_second']:,.0f}",
                f"{r['trainer_tokens_per_second']:,.0f}",
                f"{r['ratio']:.3f}",
            ]
            for r in results
        ],
        info,
    )

    full, adaptive = softmax
    show(
        f"Full vs adaptive softmax (wikitext-2 + Tiny Shakespeare, {args.softmax_steps} steps each; target: "
        f">= 2x tokens/s for <= 3% higher perplexity)",
        ["softmax", "vocab", "tok/s", "val ppl", "word ppl", "vs full"],
        [
            [
                r["softmax"],
                f"{r['vocab_size']:,}",
                f"{r['tokens_per_second']:,.0f}",
                f"{r['valid_perplexity']:.2f}",
                f"{r['valid_word_perplexity']:.1f}",
                f"{r['tokens_per_second'] / full['tokens_per_second']:.2f}x speed, "
                f"{r['valid_perplexity'] / full['valid_perplexity'] - 1:+.1%} ppl",
            ]
            for r in (full, adaptive)
        ],
        info,
    )


if __name__ == "__main__":
    main()
