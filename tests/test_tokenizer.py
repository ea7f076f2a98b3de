from pathlib import Path

import numpy as np
import pytest

from nextword.errors import ConfigError
from nextword.tokenizer import EOS_ID, train_tokenizer


@pytest.mark.parametrize("kind", ["unigram", "bpe", "char", "word"])
def test_every_kind_round_trips_and_marks_words(corpus_file: Path, kind: str) -> None:
    tokenizer = train_tokenizer(corpus_file, kind, 80).tokenizer
    text = "anna has the red ball .\nben gives a small cup to the cat ."
    ids = tokenizer.encode(text)
    assert ids.count(EOS_ID) == 1
    assert tokenizer.decode(ids) == text
    assert tokenizer.word_count(np.array(ids)) == len(text.split())


def test_vocabulary_is_lowered_with_a_notice(corpus_file: Path) -> None:
    trained = train_tokenizer(corpus_file, "unigram", 8000)
    assert trained.tokenizer.vocab_size < 8000
    assert trained.notice.startswith(f"vocabulary lowered from 8000 to {trained.tokenizer.vocab_size}")


def test_vocabulary_too_small_for_the_alphabet(corpus_file: Path) -> None:
    with pytest.raises(ConfigError, match="'vocab_size' is 10, but this corpus needs at least"):
        train_tokenizer(corpus_file, "unigram", 10)
