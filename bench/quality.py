"""How good are nextword's models at equal CPU time? RNN, GRU, LSTM and the Kneser-Ney n-gram.

For each corpus: one tokenizer (nextword's default settings) is trained on the training text and
shared; each recurrent cell trains with nextword's defaults for the same time budget (its best
checkpoint by validation loss, on the last 5% of the training text, is kept); the n-gram model is
counted. All are then measured on the held-out text: word-level perplexity over all of it, and
top-1/top-5 next-word accuracy and keystroke savings (3 suggestions) over its first --words words.

    python bench/quality.py --budget 10m              # the full run: about 90 minutes on 2 cores
    python bench/quality.py --budget 3m --corpora shakespeare
    python bench/quality.py --budget 3m --cells lstm --config small --out bench/quality-small.json

Prints a table and writes bench/quality.json.
"""

from __future__ import annotations

import time
from pathlib import Path

from common import arguments, console, corpus_files, machine, show, write_json

from nextword.config import NEURAL_CELLS, find_config, parse_duration, read_yaml, resolve
from nextword.data import check_corpus, encode_corpus
from nextword.evaluate import stream_loss, word_metrics
from nextword.predict import Predictor
from nextword.train import Evaluation, Stage, train, train_tokenizer_for


def main() -> None:
    parser = arguments(__doc__, "quality.json")
    parser.add_argument("--cells", default="ngram," + ",".join(NEURAL_CELLS), help="models to train")
    parser.add_argument("--words", type=int, default=1000, help="held-out words for accuracy and keystrokes")
    parser.add_argument("--config", type=Path, help="a preset name or YAML file instead of nextword's defaults")
    args = parser.parse_args()
    budget = parse_duration(args.budget)
    info = machine()
    results = []
    for corpus in args.corpora.split(","):
        train_file, test_file = corpus_files(corpus, args.work)
        preset = read_yaml(find_config(args.config)) if args.config else {}
        base = resolve(preset, {"time_budget": budget, "epochs": None})  # bounded by time only
        tokenizer = train_tokenizer_for(check_corpus(train_file), base, lambda event: None)
        test_ids = encode_corpus(check_corpus(test_file), tokenizer)
        for cell in args.cells.split(","):
            console.print(f"[bold]{corpus} · {cell}[/]: training for up to {args.budget}")
            summary = train(base.replace(cell=cell), train_file, args.work / corpus / cell, force=True,
                            tokenizer=tokenizer, on_event=_log)
            measured = _measure(args.work / corpus / cell, test_ids, args.words)
            results.append({"corpus": corpus, "model": cell, "preset": str(args.config or "defaults"), **measured,
                            "training": summary.to_dict()})
            write_json(args.out, {"machine": info, "budget_seconds": budget, "results": results})
    show(f"Held-out quality at equal training time ({args.budget} per model)",
         ["corpus", "model", "params / n-grams", "steps", "word ppl", "top-1", "top-5", "keystrokes saved"],
         [[r["corpus"], r["model"], f"{r['training']['parameters']:,}", f"{r['training']['steps']:,}",
           f"{r['word_perplexity']:.1f}", f"{r['top1']:.1%}", f"{r['top5']:.1%}", f"{r['keystroke_savings']:.1%}"]
          for r in results], info)


def _log(event) -> None:
    if isinstance(event, Stage):
        console.print(f"  {event.name}…")
    elif isinstance(event, Evaluation):
        console.print(f"  step {event.step}: validation word perplexity {event.valid_word_perplexity:.1f}")


def _measure(model_dir: Path, test_ids, words: int) -> dict:
    started = time.perf_counter()
    predictor = Predictor.load(model_dir)
    totals = stream_loss(predictor.model, predictor.tokenizer, test_ids, seq_len=256, device=predictor.device,
                         streams=1)
    metrics = word_metrics(predictor, test_ids, ks=(1, 5), suggestions=3, max_words=words)
    return {"word_perplexity": totals.word_perplexity, "token_perplexity": totals.token_perplexity,
            "bits_per_char": totals.bits_per_char, "test_words": totals.words, "top1": metrics.accuracy(1),
            "top5": metrics.accuracy(5), "keystroke_savings": metrics.keystroke_savings,
            "accuracy_words": metrics.words, "measure_seconds": round(time.perf_counter() - started, 1)}


if __name__ == "__main__":
    main()
