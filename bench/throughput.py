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
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT, SHARED, console, machine, show, write_json
from torch import nn

from nextword.config import NEURAL_CELLS, Config, resolve
from nextword.data import check_corpus, encode_corpus
from nextword.train import Progress, train, train_tokenizer_for


class BareLM(nn.Module):
    def __init__(self, vocab: int, config: Config):
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


def bare_rate(ids: np.ndarray, vocab: int, config: Config, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    model = BareLM(vocab, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    length = len(ids) // config.batch_size
    streams = torch.from_numpy(ids[: length * config.batch_size].astype(np.int64)).view(config.batch_size, length)
    state, started = None, 0.0
    for step in range(steps + warmup):
        if step == warmup:
            started = time.perf_counter()
        at = (step * config.seq_len) % (length - config.seq_len - 1)
        x, y = streams[:, at:at + config.seq_len], streams[:, at + 1:at + 1 + config.seq_len]
        logits, state = model(x, state)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        loss.item()  # the trainer reads the loss back too (when it reports)
    return steps * config.batch_size * config.seq_len / (time.perf_counter() - started)


def trainer_rate(corpus: Path, config: Config, tokenizer, work: Path, steps: int, warmup: int) -> float:
    marks: list[tuple[int, float]] = []

    def on_event(event) -> None:
        if isinstance(event, Progress):
            marks.append((event.step, time.perf_counter()))

    # No evaluation inside the timed steps: validation is work the bare loop does not do.
    train(config.replace(max_steps=steps + warmup, eval_every=10 * (steps + warmup)), corpus, work, force=True,
          tokenizer=tokenizer, on_event=on_event)
    first = next((step, t) for step, t in marks if step >= warmup)
    last = marks[-1]
    return (last[0] - first[0]) * config.batch_size * config.seq_len / (last[1] - first[1])


def large_vocabulary_corpus(work: Path) -> Path:
    """wikitext-2 valid and test and Tiny Shakespeare in one file (3.5 MB): enough text for 16k pieces."""
    path = work / "softmax-corpus.txt"
    parts = [SHARED / "wikitext-2" / "valid.txt", SHARED / "wikitext-2" / "test.txt",
             SHARED / "tinyshakespeare" / "input.txt"]
    work.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    return path


def softmax_comparison(corpus: Path, vocab_size: int, steps: int, work: Path) -> list[dict]:
    """Full against adaptive softmax at a large vocabulary: tokens/s, and validation perplexity after
    the same number of steps (the same tokenizer, data, seed and schedule)."""
    base = resolve({"epochs": None, "max_steps": steps, "eval_every": steps, "vocab_size": vocab_size,
                    "device": "cpu"})
    tokenizer = train_tokenizer_for(check_corpus(corpus), base, lambda event: None)
    rows = []
    for softmax in ("full", "adaptive"):
        console.print(f"softmax {softmax}, vocabulary {tokenizer.vocab_size}: {steps} steps…")
        summary = train(base.replace(softmax=softmax), corpus, work / f"softmax-{softmax}", force=True,
                        tokenizer=tokenizer)
        rows.append({"softmax": softmax, "vocab_size": tokenizer.vocab_size, "steps": summary.steps,
                     "tokens_per_second": summary.tokens_per_second,
                     "valid_perplexity": summary.best_valid_perplexity,
                     "valid_word_perplexity": summary.best_valid_word_perplexity})
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
    args = parser.parse_args()
    base = resolve({"epochs": None, "max_steps": args.steps, "device": "cpu"})
    tokenizer = train_tokenizer_for(check_corpus(args.corpus), base, lambda event: None)
    ids = encode_corpus(check_corpus(args.corpus), tokenizer)
    results = []
    for cell in args.cells.split(","):
        config = base.replace(cell=cell)
        console.print(f"{cell}: bare loop…")
        bare = bare_rate(np.asarray(ids), tokenizer.vocab_size, config, args.steps, args.warmup)
        console.print(f"{cell}: nextword trainer…")
        ours = trainer_rate(args.corpus, config, tokenizer, args.work / f"throughput-{cell}", args.steps, args.warmup)
        results.append({"cell": cell, "bare_tokens_per_second": bare, "trainer_tokens_per_second": ours,
                        "ratio": ours / bare})
    softmax = softmax_comparison(large_vocabulary_corpus(args.work), args.softmax_vocab, args.softmax_steps,
                                 args.work)
    info = machine()
    write_json(args.out, {"machine": info, "vocab_size": tokenizer.vocab_size, "config": base.to_dict(),
                          "results": results, "softmax": softmax})
    show(f"Training throughput, nextword trainer vs bare loop (vocab {tokenizer.vocab_size}, "
         f"{base.layers}×{base.hidden}, batch {base.batch_size}×{base.seq_len})",
         ["cell", "", "bare tok/s", "trainer tok/s", "ratio (target >= 0.95)"],
         [[r["cell"], "", f"{r['bare_tokens_per_second']:,.0f}", f"{r['trainer_tokens_per_second']:,.0f}",
           f"{r['ratio']:.3f}"] for r in results], info)

    full, adaptive = softmax
    show(f"Full vs adaptive softmax (wikitext-2 + Tiny Shakespeare, {args.softmax_steps} steps each; target: "
         f">= 2x tokens/s for <= 3% higher perplexity)",
         ["softmax", "vocab", "tok/s", "val ppl", "word ppl", "vs full"],
         [[r["softmax"], f"{r['vocab_size']:,}", f"{r['tokens_per_second']:,.0f}", f"{r['valid_perplexity']:.2f}",
           f"{r['valid_word_perplexity']:.1f}",
           f"{r['tokens_per_second'] / full['tokens_per_second']:.2f}x speed, "
           f"{r['valid_perplexity'] / full['valid_perplexity'] - 1:+.1%} ppl"] for r in (full, adaptive)], info)


if __name__ == "__main__":
    main()
