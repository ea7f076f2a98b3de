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


def test_punctuation_after_a_word_ends_it_but_apostrophes_do_not(tmp_path: Path) -> None:
    corpus = tmp_path / "punct.txt"
    corpus.write_text("my lord, the king's men. don't go, lord! well-known lords; yes.\n" * 50)
    tokenizer = train_tokenizer(corpus, "char", 100).tokenizer
    piece = {text: i for i, text in enumerate(tokenizer.piece_text)}
    for mark in ",.!;":
        assert tokenizer.ends_word[piece[mark]] and not tokenizer.extends_word[piece[mark]]
    for inside in "'-o":
        assert tokenizer.extends_word[piece[inside]] and not tokenizer.ends_word[piece[inside]]
    assert tokenizer.ends_word[piece[" "]] and tokenizer.ends_word[EOS_ID]
