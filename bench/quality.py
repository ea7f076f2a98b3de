"""The scoreboard: does nextword predict held-out text better than a 5-gram and the textbook word LSTM?

For each corpus, `nextword train TRAIN --time-budget T` with the default recipe (nextword/recipe.py)
makes one model directory: a neural model, a Kneser-Ney 5-gram of the same pieces and the weights
that mix them with a cache of the document, fitted on the validation split (the training text's
end). Each component is then scored alone and mixed, on held-out text the recipe was never tuned
on, beside PyTorch's word-language-model recipe trained for the same time (bench/reference.py):

    KN-5             the n-gram alone
    neural           the recurrent model alone
    mixture          the two mixed
    mixture + cache  the two mixed with a cache of the text read so far (what nextword predicts with)
    reference        the word LSTM: a held-out word outside its vocabulary is a miss; its
                     closed-vocabulary perplexity is shown with its out-of-vocabulary rate

Columns: word perplexity and bits per character over the whole held-out text; top-1, top-3 and
keystrokes saved with 3 suggestions over its first --words words.

    python bench/quality.py --budget 3m                          # both shared corpora
    python bench/quality.py --budget 10m --corpora shakespeare
    python bench/quality.py --budget 3m --corpora pride=/tmp/pride-train.txt:/tmp/pride-test.txt
    python bench/quality.py --budget 3m --any-word-too     # also: suggestions not kept to the lexicon
    python bench/quality.py --budget 3m --set dropout=0 --set vocab_size=6000   # over the recipe, as flags

A corpus is a name from ../shared/corpora (shakespeare, wikitext) or NAME=TRAIN:TEST for any other
text. Prints a table and writes bench/quality.json.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from common import arguments, console, corpus_files, machine, show, write_json
from reference import run as run_reference

from nextword.config import parse_duration, resolve
from nextword.data import check_corpus
from nextword.evaluate import evaluate_file
from nextword.predict import Predictor
from nextword.recipe import choose
from nextword.train import Evaluation, Notice, Stage, train

COMPONENTS = (("ngram", "KN-5"), ("neural", "neural"), ("mixture", "mixture"), ("mixture+cache", "mixture + cache"))


def main() -> None:
    parser = arguments(__doc__, "quality.json")
    parser.add_argument("--words", type=int, default=2000, help="held-out words for accuracy and keystrokes")
    parser.add_argument("--no-reference", action="store_true", help="leave out the word-LSTM reference")
    parser.add_argument(
        "--any-word-too",
        action="store_true",
        help="also score mixture + cache with --any-word (suggestions as before the lexicon)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="a training option over the recipe's choice, as its flag would give it (repeatable)",
    )
    args = parser.parse_args()
    budget = parse_duration(args.budget)
    overrides = dict(_override(item) for item in args.overrides)
    info = machine()
    results = []
    for corpus in args.corpora.split(","):
        name, (train_file, test_file) = _files(corpus, args.work)
        recipe = choose(check_corpus(train_file).characters, budget)
        console.print(f"[bold]{name}[/]: {recipe.reason}" + (f"; over it: {overrides}" if overrides else ""))
        out = args.work / name / "recipe"
        settings = resolve(recipe.settings, {"time_budget": budget, **overrides})
        summary = train(settings, train_file, out, force=True, on_event=_log)
        extra = [("mixture+cache", "mixture + cache, any word")] if args.any_word_too else []
        for component, label in COMPONENTS + tuple(extra):
            started = time.perf_counter()
            predictor = Predictor.load(out, component=component, any_word=label.endswith("any word"))
            measured = evaluate_file(predictor, test_file, predict_words=args.words)
            results.append(
                {
                    "corpus": name,
                    "model": label,
                    **_scores(measured),
                    "measure_seconds": round(time.perf_counter() - started, 1),
                    "training": summary.to_dict(),
                    "recipe": recipe.reason,
                    "overrides": overrides,
                }
            )
            write_json(args.out, {"machine": info, "budget_seconds": budget, "results": results})
        if not args.no_reference:
            console.print(f"[bold]{name} · reference word LSTM[/]: training for {args.budget}")
            reference = run_reference(train_file, test_file, budget, args.words)
            results.append({"corpus": name, "model": "reference", **reference, "bits_per_char": None, "training": None})
            write_json(args.out, {"machine": info, "budget_seconds": budget, "results": results})
    show(
        f"Held-out quality at equal training time ({args.budget} per model)",
        ["corpus", "model", "word ppl", "top-1", "top-3", "keystrokes saved", "bits/char"],
        [
            [
                r["corpus"],
                r["model"],
                _perplexity(r),
                f"{r['top1']:.1%}",
                f"{r['top3']:.1%}",
                f"{r['keystroke_savings']:.1%}",
                f"{r['bits_per_char']:.3f}" if r["bits_per_char"] else "-",
            ]
            for r in results
        ],
        info,
    )


def _override(item: str) -> tuple[str, object]:
    """`--set OPTION=VALUE` as (option, value), the value read as YAML reads it (0.1, 6000, true, lstm)."""
    option, equals, value = item.partition("=")
    if not equals:
        raise SystemExit(f"--set {item!r}: give OPTION=VALUE, for example dropout=0")
    return option.replace("-", "_"), yaml.safe_load(value)


def _files(corpus: str, work: Path) -> tuple[str, tuple[Path, Path]]:
    if "=" not in corpus:
        return corpus, corpus_files(corpus, work)
    name, paths = corpus.split("=", 1)
    train_file, test_file = paths.split(":", 1)
    return name, (Path(train_file), Path(test_file))


def _scores(measured: dict) -> dict:
    return {
        "word_perplexity": measured["word_perplexity"],
        "bits_per_char": measured["bits_per_char"],
        "top1": measured["accuracy"]["top1"],
        "top3": measured["accuracy"]["top3"],
        "keystroke_savings": measured["keystroke_savings"],
        "test_words": measured["words"],
        "accuracy_words": measured["predicted_words"],
    }


def _perplexity(result: dict) -> str:
    if result["model"] == "reference":
        return f"{result['word_perplexity']:,.1f} (closed, {result['oov_rate']:.1%} OOV)"
    return f"{result['word_perplexity']:,.1f}"


def _log(event) -> None:
    if isinstance(event, Stage):
        console.print(f"  {event.name}…")
    elif isinstance(event, Notice):
        console.print(f"  note: {event.message}")
    elif isinstance(event, Evaluation):
        console.print(f"  step {event.step}: validation word perplexity {event.valid_word_perplexity:.1f}")


if __name__ == "__main__":
    main()
