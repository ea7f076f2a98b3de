from pathlib import Path

import numpy as np
import pytest

from nextword.errors import ConfigError
from nextword.data import check_corpus, encode_corpus
from nextword.tokenizer import EOS_ID, LINE_PART_CHARS, line_parts, train_tokenizer


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


def test_a_10_mb_line_is_learnt_and_encoded_in_parts(tmp_path: Path) -> None:
    line = " ".join(["anna has the red ball . ben gives ζeta a small cup ."] * 200_000)[:10_000_000].strip()
    corpus = tmp_path / "one-line.txt"
    corpus.write_text(line + "\n", encoding="utf-8")  # longer than SentencePiece trains on, unless cut
    tokenizer = train_tokenizer(corpus, "bpe", 40).tokenizer  # unigram takes a minute on 10 MB, however cut
    assert "ζ" in "".join(tokenizer.piece_text)
    ids = encode_corpus(check_corpus(corpus), tokenizer)
    assert ids[-1] == EOS_ID and EOS_ID not in ids[:-1]  # still one line
    assert tokenizer.sp.decode(ids[:-1].tolist()) == line
    start = line[: 3 * LINE_PART_CHARS]
    parts = line_parts(start)
    assert len(parts) == 4 and "".join(parts) == start and all(p.startswith(" ") for p in parts[1:])
    assert tokenizer.encode_line(start) == tokenizer.sp.encode(start)  # the parts encode as the whole line


def test_a_line_without_spaces_is_cut_at_the_limit() -> None:
    assert line_parts("abcdefg", limit=3) == ["abc", "def", "g"]
    assert line_parts("ab cdef g", limit=4) == ["ab", " cde", "f g"]
