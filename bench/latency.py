"""How fast nextword answers a key: latency against the document's length, predict against a bare
forward step, generation speed and start-up time, all in one run.

Trains (or reuses) a model with a preset's sizes on wikitext-2's valid.txt (the weights' quality
does not matter here), cuts documents of 5, 50, 500, 2,000 and 10,000 words from test.txt, each
ending in the same five words, and measures:
- a keystroke (one character appended, then the 5 likeliest words) through a `Session` and through
  `nextword serve` (a subprocess sent the whole buffer at every key, as an editor would), each
  length as a ratio to the 5-word figure; target: at most 1.2x at 2,000 words. `predict` on the
  whole text, the way without a session, is timed at each length for comparison;
- warm `predict` p50 and p95 over 5-word prompts (half next word, half completion), as a ratio to
  `predict` through the neural component alone (target: the mixture and its cache at most 1.3x) and
  to one bare forward step of the model over the same prompt's pieces; and how many model calls and
  rows a `predict` makes through each (the word search stops when k words beat the rest, so a sharper
  model may take fewer), counted in a pass of their own;
- generation: pieces per second for `generate`;
- cold start: `nextword --help` and `nextword predict`, medians of fresh processes.
The lengths take turns key by key, so a change in the machine's load falls on all of them alike.

    python bench/latency.py --preset small --steps 100

Prints a table and writes bench/latency.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import ROOT, console, corpus_files, machine, show, write_json

from nextword.config import find_config, load
from nextword.predict import Predictor
from nextword.train import train

LENGTHS = (5, 50, 500, 2000, 10000)
TAIL_WORDS = 5
TARGETS = {
    "session keystroke, 2000 words / 5 words": 1.2,
    "serve keystroke, 2000 words / 5 words": 1.2,
    "predict p50, mixture and cache / neural alone": 1.3,
    "--help s": 0.3,
}


def documents(text: str, keys: int) -> tuple[dict[int, str], str]:
    """A document of each length in LENGTHS (its lines kept), all ending in the same TAIL_WORDS words,
    and the characters typed after them."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    words = " ".join(lines).split()
    tail_at = max(LENGTHS) + 100
    tail = " ".join(words[tail_at : tail_at + TAIL_WORDS]) + " "
    typed = " ".join(words[tail_at + TAIL_WORDS : tail_at + TAIL_WORDS + 20])[:keys]
    out = {}
    for length in LENGTHS:
        prefix, count = [], 0
        for line in lines:  # whole lines while they fit, then the words of the next one
            line_words = line.split()
            take = min(len(line_words), length - TAIL_WORDS - count)
            if take <= 0:
                break
            prefix.append(" ".join(line_words[:take]))
            count += take
        out[length] = ("\n".join(prefix) + "\n" if prefix else "") + tail
    return out, typed


def prompts(text: str, count: int) -> list[str]:
    """5-word prompts: half end after a space, half inside a word."""
    words = text.split()[:20000]
    out = []
    for i in range(count):
        end = 5 + (i * 7919) % (len(words) - 6)
        start = " ".join(words[end - 5 : end])
        out.append(start + " " if i % 2 == 0 else start + " " + words[end][: 1 + i % 3])
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def keystrokes(
    predictor: Predictor, docs: dict[int, str], typed: str, rounds: int, model_dir: Path
) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """Milliseconds per keystroke at each length, through a session and through serve, taking turns."""
    sessions = {length: predictor.session() for length in docs}
    server = subprocess.Popen(
        [sys.executable, "-m", "nextword", "serve", str(model_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )

    def ask(request: dict) -> dict:
        server.stdin.write(json.dumps(request).encode() + b"\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())

    for length, doc in docs.items():  # the documents read once, as an editor's first request would
        sessions[length].set_text(doc)
        sessions[length].predict(5)
        assert "predictions" in ask({"text": doc, "id": str(length)})
    session_ms: dict[int, list[float]] = {length: [] for length in docs}
    serve_ms: dict[int, list[float]] = {length: [] for length in docs}
    for _ in range(rounds):
        for at in range(1, len(typed) + 1):
            for length, doc in docs.items():
                session = sessions[length]
                session.set_text(doc + typed[: at - 1])  # after the last round: back to the start, unmeasured
                started = time.perf_counter()
                session.append(typed[at - 1])
                session.predict(5)
                session_ms[length].append((time.perf_counter() - started) * 1000)
                request = {"text": doc + typed[:at], "id": str(length), "k": 5}
                started = time.perf_counter()
                reply = ask(request)
                serve_ms[length].append((time.perf_counter() - started) * 1000)
                assert "predictions" in reply, reply
    server.stdin.close()
    server.wait(timeout=60)
    return session_ms, serve_ms


def without_session(predictor: Predictor, docs: dict[int, str], typed: str, keys: int) -> dict[int, float]:
    """Median milliseconds of `predict` on the whole text at each length: what a key cost before sessions."""
    out = {}
    for length, doc in docs.items():
        times = []
        for at in range(1, keys + 1):
            started = time.perf_counter()
            predictor.predict(doc + typed[:at], 5)
            times.append((time.perf_counter() - started) * 1000)
        out[length] = statistics.median(times)
    return out


def predict_and_forward(
    predictor: Predictor, neural: Predictor, texts: list[str]
) -> tuple[list[float], list[float], list[float]]:
    """Milliseconds of `predict` (the model's default: the mixture with its cache), of `predict` through the
    neural component alone, and of one bare forward step over the same pieces, for each prompt."""
    from nextword.search import split_partial

    for text in texts[:10]:  # warm up
        predictor.predict(text, 5)
        neural.predict(text, 5)
    predict_ms, neural_ms, forward_ms = [], [], []
    for text in texts:
        ids = torch.tensor([predictor.pieces.context_ids(split_partial(text)[0])])
        started = time.perf_counter()
        predictor.predict(text, 5)
        predict_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        neural.predict(text, 5)
        neural_ms.append((time.perf_counter() - started) * 1000)
        with torch.inference_mode():
            started = time.perf_counter()
            predictor.model(ids, None, last_only=True)
            forward_ms.append((time.perf_counter() - started) * 1000)
    return predict_ms, neural_ms, forward_ms


def model_calls(predictor: Predictor, texts: list[str]) -> tuple[float, float]:
    """Model calls and rows per `predict` (the prompt read, then the word search's steps), counted
    in a pass of their own so that the timings above carry no counter."""
    pieces, counts = predictor.pieces, [0, 0]
    run = pieces.run

    def counted(tokens: torch.Tensor | list[int], state: object = None) -> tuple[torch.Tensor, object]:
        counts[0] += 1
        counts[1] += 1 if isinstance(tokens, list) else len(tokens)
        return run(tokens, state)

    pieces.run = counted
    try:
        for text in texts:
            predictor.predict(text, 5)
    finally:
        del pieces.run
    return counts[0] / len(texts), counts[1] / len(texts)


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
    parser.add_argument("--steps", type=int, default=100, help="training steps if the model is new")
    parser.add_argument("--keys", type=int, default=40, help="characters typed at each length, each round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-keys", type=int, default=3, help="keys timed through predict, per length")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for the in-process measures (default: torch's own choice)",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/nextword-bench"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "latency.json")
    args = parser.parse_args()
    train_file, test_file = corpus_files("wikitext", args.work)
    model_dir = args.work / f"latency-{args.preset}-wikitext"
    if not (model_dir / "model.safetensors").is_file():
        console.print(f"training {model_dir} ({args.steps} steps of the {args.preset} preset)…")
        train(load(find_config(args.preset), {"max_steps": args.steps}), train_file, model_dir, force=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = Predictor.load(model_dir)
    test_text = test_file.read_text(encoding="utf-8")
    docs, typed = documents(test_text, args.keys)
    session_ms, serve_ms = keystrokes(predictor, docs, typed, args.rounds, model_dir)
    baseline_ms = without_session(predictor, docs, typed, args.baseline_keys)
    neural = Predictor.load(model_dir, component="neural")
    texts = prompts(test_text, args.prompts)
    predict_ms, neural_ms, forward_ms = predict_and_forward(predictor, neural, texts)
    calls = {
        name: model_calls(each, texts) for name, each in (("mixture and cache", predictor), ("neural alone", neural))
    }
    pieces, started = 0, time.perf_counter()
    for seed in range(5):
        pieces += sum(1 for _ in predictor.stream("The game was", seed=seed, max_words=200))
    generate_rate = pieces / (time.perf_counter() - started)
    executable = str(Path(sys.executable).with_name("nextword"))

    measured: dict[str, float] = {}
    for name, times in (("session", session_ms), ("serve", serve_ms)):
        base = statistics.median(times[LENGTHS[0]])
        for length in LENGTHS:
            measured[f"{name} keystroke p50 ms, {length} words"] = statistics.median(times[length])
            if length != LENGTHS[0]:
                measured[f"{name} keystroke, {length} words / 5 words"] = statistics.median(times[length]) / base
    for length in LENGTHS:
        measured[f"predict whole text ms, {length} words"] = baseline_ms[length]
    measured |= {
        "predict p50 ms": percentile(predict_ms, 0.5),
        "predict p95 ms": percentile(predict_ms, 0.95),
        "predict p50 ms, neural component alone": percentile(neural_ms, 0.5),
        "predict p50, mixture and cache / neural alone": percentile(predict_ms, 0.5) / percentile(neural_ms, 0.5),
        **{f"predict model calls, {name}": each[0] for name, each in calls.items()},
        **{f"predict model rows, {name}": each[1] for name, each in calls.items()},
        "forward step p50 ms": percentile(forward_ms, 0.5),
        "predict p50 / forward step p50": percentile(predict_ms, 0.5) / percentile(forward_ms, 0.5),
        "generate pieces/s": generate_rate,
        "--help s": fresh_process_seconds([executable, "--help"], 5),
        "predict command s": fresh_process_seconds([executable, "predict", str(model_dir), "the game was "], 3),
    }
    info = machine()
    write_json(
        args.out,
        {
            "machine": info,
            "preset": args.preset,
            "model": str(model_dir),
            "threads": torch.get_num_threads(),
            "keys": len(typed),
            "rounds": args.rounds,
            "measured": measured,
            "targets": TARGETS,
        },
    )
    rows = []
    for name, value in measured.items():
        target = TARGETS.get(name)
        met = "" if target is None else "met" if value <= target else "not met"
        rows.append(
            [
                name,
                args.preset,
                f"{value:,.3f}" if "/" in name else f"{value:,.2f}",
                "" if target is None else f"<= {target:g}",
                met,
            ]
        )
    show(
        f"Latency ({args.preset} preset sizes, {torch.get_num_threads()} torch threads)",
        ["measure", "preset", "value", "target", ""],
        rows,
        info,
    )


if __name__ == "__main__":
    main()
