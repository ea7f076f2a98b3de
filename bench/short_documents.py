"""Short documents: do the caches help a prompt of a few lines, read from nothing, as `predict` reads one?

evaluate scores a held-out text as one long document, where the caches have read thousands of pieces
before most words. A prompt is short. This cuts the held-out text into documents of consecutive lines
(each at least --min-words words), reads each from a fresh state and scores every word of it, for the
mixture without its caches and with them (what predict uses), for each model directory given:

    python bench/short_documents.py TEST MODEL [MODEL ...] --documents 100

Columns: word perplexity (the NLL of every piece, per word predicted), top-1 and top-3 next-word
accuracy. Prints a table and writes bench/short_documents.json.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from common import ROOT, machine, show, write_json

from nextword.evaluate import read_text
from nextword.predict import Predictor


def documents(path: Path, count: int, min_words: int) -> list[str]:
    """The first `count` runs of consecutive lines of `path` with at least `min_words` words each."""
    found, lines = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        lines.append(line)
        if sum(len(part.split()) for part in lines) >= min_words:
            found.append("\n".join(lines) + "\n")
            lines = []
        if len(found) == count:
            break
    return found


def score(predictor: Predictor, texts: list[str]) -> dict[str, float]:
    """Word perplexity, top-1 and top-3 over `texts`, each read from a fresh state."""
    nll, words, hits = 0.0, 0, {1: 0, 3: 0}
    for text in texts:
        ids = predictor.tokenizer.encode(text)
        text_nll, metrics = read_text(predictor, ids, scored=len(ids), ks=tuple(hits))
        nll, words = nll + text_nll, words + metrics.words
        hits = {k: hits[k] + metrics.hits[k] for k in hits}
    return {"word_perplexity": math.exp(nll / words), "top1": hits[1] / words, "top3": hits[3] / words, "words": words}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("test", type=Path, help="held-out text to cut into documents")
    parser.add_argument("models", type=Path, nargs="+", help="model directories (mixtures)")
    parser.add_argument("--documents", type=int, default=100, help="documents to score (default: %(default)s)")
    parser.add_argument("--min-words", type=int, default=40, help="words a document has at least (%(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "short_documents.json")
    args = parser.parse_args()
    texts = documents(args.test, args.documents, args.min_words)
    results, rows = [], []
    for model in args.models:
        for component in ("mixture", "mixture+cache"):
            scores = score(Predictor.load(model, component=component), texts)
            results.append({"model": str(model), "component": component, **scores})
            rows.append(
                [model.name, component, f"{scores['word_perplexity']:,.1f}", f"{scores['top1']:.2%}"]
                + [f"{scores['top3']:.2%}", f"{scores['words']:,}"]
            )
    info = machine()
    title = f"{len(texts)} documents of {args.test.name}, each from a fresh state"
    show(title, ["model", "component", "word ppl", "top-1", "top-3", "words"], rows, info)
    write_json(args.out, {"machine": info, "test": str(args.test), "documents": len(texts), "results": results})


if __name__ == "__main__":
    main()
