"""Shared fixtures: small generated corpora and one tiny trained model, all in temporary directories."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

# A tiny model, seconds to train: the settings every test starts from.
TINY = dict(
    tokenizer="unigram",
    vocab_size=30,
    cell="lstm",
    layers=1,
    embed=32,
    hidden=32,
    dropout=0.0,
    seq_len=16,
    batch_size=8,
    lr=0.01,
    weight_decay=0.01,  # the Config's: as flags, where the recipe fills what they leave out, these train the same
    warmup=5,
    max_steps=60,
    eval_every=20,
    seed=0,
    device="cpu",
)

_NAMES = ("anna", "ben", "cora", "dan")
_THINGS = ("the red ball", "a small cup", "the old book", "a green hat")


def sentence_corpus(lines: int, seed: int = 0) -> str:
    """Short regular sentences: easy to learn, so a model trained for seconds predicts sensibly."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
        out.append(f"{name} has {thing} . {name} gives {thing} to the cat .")
    return "\n".join(out) + "\n"


@pytest.fixture(autouse=True)
def token_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test encodes into its own cache, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("NEXTWORD_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "sentences.txt"
    path.write_text(sentence_corpus(400), encoding="utf-8")
    return path


def _train_shared(factory: pytest.TempPathFactory, corpus: Path, name: str, **changes) -> Path:
    """A tiny model of `corpus`, trained once per session with its own cache."""
    from nextword.config import resolve
    from nextword.train import train

    out = factory.mktemp("models") / name
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEXTWORD_CACHE", str(factory.mktemp("cache")))
        train(resolve(TINY, changes), corpus, out)
    return out


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """One tiny LSTM trained on `corpus_file` (shared, read-only: copy it before changing it)."""
    return _train_shared(tmp_path_factory, corpus_file, "tiny", max_steps=150)


@pytest.fixture(scope="session")
def trained_bidirectional(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """A tiny bidirectional-encoded GRU of `corpus_file` (shared, read-only)."""
    return _train_shared(
        tmp_path_factory, corpus_file, "bidirectional", cell="gru", bidirectional=True, context=8, max_steps=150
    )


@pytest.fixture(scope="session")
def trained_adaptive(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """A tiny LSTM with an adaptive softmax (shared, read-only)."""
    return _train_shared(tmp_path_factory, corpus_file, "adaptive", softmax="adaptive", max_steps=150)


@pytest.fixture(scope="session")
def trained_ngram(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """A trigram Kneser-Ney model of `corpus_file` with the same tokenizer settings (shared, read-only)."""
    return _train_shared(tmp_path_factory, corpus_file, "ngram", cell="ngram", order=3)
