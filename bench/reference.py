"""The textbook baseline: PyTorch's word-language-model recipe, reimplemented plainly, at equal time.

Word vocabulary (whitespace-separated words plus <eos> for each line break), a 2-layer LSTM of
200 units with tied embeddings and dropout 0.2, 20 parallel streams, truncated BPTT of 35 words,
plain SGD at lr 20 with gradient clipping at 0.25, and the learning rate divided by 4 whenever
an epoch does not improve the validation loss (the last 5% of the training text). It trains for
the time budget, keeps its best epoch, and reports word-level perplexity on the held-out text in
nextword's definition: exp(total NLL, <eos> included / whitespace-separated words).

Held-out words never seen in training become <unk>, which the recipe predicts as one word; that
makes its perplexity look better than an open-vocabulary model's, so the OOV rate is reported.

Its next-word accuracy and keystroke savings are scored as nextword's are (evaluate.word_metrics):
the target is each held-out word without the punctuation that follows it ("lord," is "lord"),
the recipe's words are merged the same way (the probabilities of "lord", "lord," and "lord." add
up), `<unk>` and `<eos>` are never suggested, and a word outside its vocabulary is a miss that
costs all its letters.

    python bench/reference.py --budget 10m

Prints a table and writes bench/reference.json.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from common import arguments, console, corpus_files, machine, show, write_json
from torch import nn

from nextword.config import parse_duration
from nextword.tokenizer import is_trailing_punctuation

EMBED, LAYERS, DROPOUT, BATCH, BPTT, LR, CLIP, ANNEAL = 200, 2, 0.2, 20, 35, 20.0, 0.25, 4.0


class WordLSTM(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.drop = nn.Dropout(DROPOUT)
        self.encoder = nn.Embedding(vocab, EMBED)
        self.rnn = nn.LSTM(EMBED, EMBED, LAYERS, dropout=DROPOUT)
        self.decoder = nn.Linear(EMBED, vocab)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, x: torch.Tensor, hidden):
        output, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
        return self.decoder(self.drop(output)), hidden


def words_of(path: Path) -> list[list[str]]:
    return [line.split() + ["<eos>"] for line in path.read_text(encoding="utf-8").splitlines()]


def ids_of(lines: list[list[str]], vocab: dict[str, int]) -> torch.Tensor:
    unk = vocab["<unk>"]
    return torch.tensor([vocab.get(w, unk) for line in lines for w in line], dtype=torch.long)


def batchify(ids: torch.Tensor, streams: int) -> torch.Tensor:
    """(time, streams): the text cut into `streams` consecutive slices, side by side."""
    length = len(ids) // streams
    return ids[: length * streams].view(streams, length).t().contiguous()


def detach(hidden):
    return tuple(h.detach() for h in hidden)


def total_nll(model: WordLSTM, data: torch.Tensor) -> float:
    model.eval()
    nll, hidden = 0.0, None
    with torch.inference_mode():
        for i in range(0, len(data) - 1, BPTT):
            x, y = data[i : i + BPTT], data[i + 1 : i + 1 + BPTT]
            output, hidden = model(x[: len(y)], hidden)
            nll += nn.functional.cross_entropy(output.flatten(0, 1), y.flatten(), reduction="sum").item()
    return nll


def run(train_file: Path, test_file: Path, budget: float, score_words: int = 1000) -> dict:
    torch.manual_seed(0)
    lines = words_of(train_file)
    cut = int(len(lines) * 0.95)
    vocab = {w: i for i, w in enumerate(dict.fromkeys(["<unk>", *(w for line in lines[:cut] for w in line)]))}
    train_data, valid_data = batchify(ids_of(lines[:cut], vocab), BATCH), batchify(ids_of(lines[cut:], vocab), 10)
    model = WordLSTM(len(vocab))
    lr, best, best_state, epochs, steps, trained = LR, math.inf, None, 0, 0, 0.0
    while trained < budget:
        model.train()
        hidden = None
        started = time.perf_counter()
        for i in range(0, len(train_data) - 1, BPTT):
            x, y = train_data[i : i + BPTT], train_data[i + 1 : i + 1 + BPTT]
            hidden = detach(hidden) if hidden else None
            model.zero_grad()
            output, hidden = model(x[: len(y)], hidden)
            nn.functional.cross_entropy(output.flatten(0, 1), y.flatten()).backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
            steps += 1
            if trained + time.perf_counter() - started >= budget:
                break
        trained += time.perf_counter() - started
        epochs += 1
        valid_loss = total_nll(model, valid_data) / (valid_data.numel() - valid_data.shape[1])
        console.print(f"  epoch {epochs}: {trained:.0f} s, lr {lr:g}, validation perplexity {math.exp(valid_loss):.1f}")
        if valid_loss < best:
            best, best_state = valid_loss, {k: v.clone() for k, v in model.state_dict().items()}
        else:
            lr /= ANNEAL
    model.load_state_dict(best_state)
    test_lines = words_of(test_file)
    test = ids_of(test_lines, vocab)
    words = sum(len(line) - 1 for line in test_lines)
    nll = total_nll(model, batchify(test, 1))
    return {
        "word_perplexity": math.exp(nll / words),
        "test_words": words,
        "oov_rate": float((test == vocab["<unk>"]).float().mean()),
        "vocab": len(vocab),
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": epochs,
        "steps": steps,
        "train_seconds": round(trained, 1),
        "tokens_per_second": round(steps * BPTT * BATCH / trained),
        **word_scores(model, vocab, test_lines, score_words),
    }


def word_form(token: str) -> str:
    """A whitespace-separated token as nextword predicts it: without the punctuation that follows it."""
    end = len(token)
    while end and is_trailing_punctuation(token[end - 1]):
        end -= 1
    return token[:end]


def word_scores(
    model: WordLSTM, vocab: dict[str, int], lines: list[list[str]], limit: int, suggestions: int = 3
) -> dict:
    """Top-1/top-3 accuracy and keystroke savings over the first `limit` held-out words, scored as
    nextword scores them (see the module docstring)."""
    forms = [word_form(w) for w in vocab]
    # wikitext writes rare words as the word "<unk>": the recipe may suggest it like any other word,
    # though its probability also holds that of the words it never saw.
    names = sorted({f for f in forms if any(c.isalnum() for c in f) and f != "<eos>"})
    column = {f: i for i, f in enumerate(names)}
    # Each vocabulary word's form, as a column of the forms' table (<eos> has none).
    merged = torch.tensor([i for i, f in enumerate(forms) if f in column])
    into = torch.tensor([column[forms[i]] for i in merged.tolist()])
    flat = [w for line in lines for w in line]
    targets = [
        (i, word_form(w)) for i, w in enumerate(flat) if i and w != "<eos>" and any(c.isalnum() for c in word_form(w))
    ]
    targets = targets[:limit]
    data = ids_of(lines, vocab)[: targets[-1][0]]  # what is read before the last target
    model.eval()
    with torch.inference_mode():
        output, _ = model(data[:, None], None)
        words = torch.softmax(output[:, 0], dim=-1)[:, merged]
        probs = torch.zeros(len(words), len(names)).index_add_(1, into, words)  # [i]: P(form of word i + 1)
    hits, keys, chars = {1: 0, 3: 0}, 0, 0
    for position, target in targets:
        row = probs[position - 1]
        chars += len(target) + 1
        if target not in column:  # outside the vocabulary: never suggested
            keys += len(target) + 1
            continue
        better = [names[i] for i in torch.nonzero(row > row[column[target]]).flatten().tolist()]
        for k in hits:
            hits[k] += len(better) < k
        # Typed letter by letter, it is accepted once it is among the `suggestions` likeliest
        # words that start with the letters typed.
        typed = next(
            (t for t in range(len(target) + 1) if sum(w.startswith(target[:t]) for w in better) < suggestions), None
        )
        keys += typed + 1 if typed is not None else len(target) + 1
    scored = len(targets)
    return {
        "top1": hits[1] / scored,
        "top3": hits[3] / scored,
        "keystroke_savings": 1 - keys / chars,
        "accuracy_words": scored,
    }


def main() -> None:
    parser = arguments(__doc__, "reference.json")
    parser.add_argument("--words", type=int, default=1000, help="held-out words for accuracy and keystrokes")
    args = parser.parse_args()
    budget = parse_duration(args.budget)
    info = machine()
    results = []
    for corpus in args.corpora.split(","):
        console.print(f"[bold]{corpus} · reference word LSTM[/]: training for {args.budget}")
        results.append({"corpus": corpus, **run(*corpus_files(corpus, args.work), budget, args.words)})
        write_json(args.out, {"machine": info, "budget_seconds": budget, "results": results})
    show(
        f"Reference word-level LSTM recipe ({args.budget} per corpus)",
        ["corpus", "model", "params", "epochs", "tok/s", "word ppl", "OOV", "top-1", "top-3", "keystrokes saved"],
        [
            [
                r["corpus"],
                "word LSTM",
                f"{r['parameters']:,}",
                r["epochs"],
                f"{r['tokens_per_second']:,}",
                f"{r['word_perplexity']:.1f}",
                f"{r['oov_rate']:.1%}",
                f"{r['top1']:.1%}",
                f"{r['top3']:.1%}",
                f"{r['keystroke_savings']:.1%}",
            ]
            for r in results
        ],
        info,
    )


if __name__ == "__main__":
    main()
