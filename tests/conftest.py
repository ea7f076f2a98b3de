"""Shared fixtures: small generated corpora and one tiny trained model, all in temporary directories."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

# A tiny model, seconds to train: the settings every test starts from.
TINY = dict(tokenizer="unigram", vocab_size=30, cell="lstm", layers=1, embed=32, hidden=32, dropout=0.0,
            seq_len=16, batch_size=8, lr=0.01, warmup=5, max_steps=60, eval_every=20, seed=0, device="cpu")

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


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """One tiny LSTM trained on `corpus_file` (shared, read-only: copy it before changing it)."""
    from nextword.config import resolve
    from nextword.train import train

    out = tmp_path_factory.mktemp("models") / "tiny"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEXTWORD_CACHE", str(tmp_path_factory.mktemp("cache")))
        train(resolve(TINY, {"max_steps": 150}), corpus_file, out)
    return out
