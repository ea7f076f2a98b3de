from pathlib import Path

import numpy as np
import pytest

from nextword.data import MAX_VALID_TOKENS, StreamBatches, WindowBatches, check_corpus, encode_corpus, split_validation
from nextword.errors import CorpusError
from nextword.tokenizer import EOS_ID, train_tokenizer


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "empty or holds only whitespace"),
        (b"  \n\t\n", "empty or holds only whitespace"),
        (b"hello\x00world", "looks binary \\(a NUL byte at offset 5\\)"),
        ("caf\u00e9 ".encode("utf-8") + b"\xff rest", "not UTF-8 text: invalid byte at offset 6"),
        ("na\u00efve".encode("utf-8")[:3], "ends inside a character \\(offset 3\\)"),
    ],
)
def test_unusable_corpora(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=words):
        check_corpus(path)


def test_invalid_byte_offset_across_chunk_boundary(tmp_path: Path) -> None:
    # A two-byte character split by the 1 MiB read boundary, then a bad byte: the offset stays exact.
    head = b"a" * ((1 << 20) - 1) + "\u00e9".encode("utf-8")
    path = tmp_path / "big.txt"
    path.write_bytes(head + b"ok\xfe")
    with pytest.raises(CorpusError, match=f"offset {len(head) + 2}"):
        check_corpus(path)


def test_characters_are_counted_whatever_their_bytes_and_the_chunks(tmp_path: Path) -> None:
    """What the recipe sizes a model by: Russian takes two bytes a letter, one split by the 1 MiB read boundary."""
    text = "a" * ((1 << 20) - 1) + "война и мир\n"
    path = tmp_path / "mixed.txt"
    path.write_text(text, encoding="utf-8")
    checked = check_corpus(path)
    assert (checked.characters, checked.size, checked.lines) == (len(text), len(text.encode("utf-8")), 1)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="corpus not found"):
        check_corpus(tmp_path / "missing.txt")
    with pytest.raises(CorpusError, match="is a directory"):
        check_corpus(tmp_path)


def test_encoding_is_cached_and_ends_lines_with_eos(tmp_path: Path, corpus_file: Path, token_cache: Path) -> None:
    tokenizer = train_tokenizer(corpus_file, "unigram", 100).tokenizer
    corpus = check_corpus(corpus_file)
    ids = encode_corpus(corpus, tokenizer)
    lines = corpus_file.read_text().splitlines()
    assert int((ids == EOS_ID).sum()) == len(lines)
    assert tokenizer.decode(ids) == "\n".join(lines) + "\n"
    assert isinstance(ids, np.memmap)
    cached = list(token_cache.iterdir())
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert np.array_equal(encode_corpus(corpus, tokenizer), ids)
    assert cached[0].stat().st_mtime_ns == stamp  # read back, not encoded again


def test_crlf_corpus_encodes_like_lf(tmp_path: Path, corpus_file: Path) -> None:
    tokenizer = train_tokenizer(corpus_file, "unigram", 100).tokenizer
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(corpus_file.read_bytes().replace(b"\n", b"\r\n"))
    assert np.array_equal(
        encode_corpus(check_corpus(crlf), tokenizer), encode_corpus(check_corpus(corpus_file), tokenizer)
    )


def test_stream_batches_continue_each_stream() -> None:
    ids = np.arange(1001, dtype=np.uint16)
    batches = StreamBatches(ids, batch_size=4, seq_len=10)
    assert len(batches) == 25  # (1000 // 4) // 10
    x0, y0 = batches.batch(0)
    x1, _ = batches.batch(1)
    assert x0.shape == (4, 10) and x0.dtype == np.int64
    assert np.array_equal(y0, x0 + 1)  # targets are the next tokens
    assert np.array_equal(x1[:, 0], x0[:, -1] + 1)  # segment j + 1 continues segment j, row by row
    assert np.array_equal(x0[:, 0], [0, 250, 500, 750])


def test_too_small_for_one_batch() -> None:
    with pytest.raises(CorpusError, match="too small for one batch: 50 tokens.*lower --batch-size or --seq-len"):
        StreamBatches(np.arange(50), batch_size=8, seq_len=16)


def test_validation_split_is_the_end() -> None:
    train, valid = split_validation(np.arange(100), 0.1)
    assert (len(train), len(valid)) == (90, 10) and valid[0] == 90


def test_validation_split_is_bounded_on_a_large_corpus() -> None:
    ids = np.arange(10 * MAX_VALID_TOKENS)
    train, valid = split_validation(ids, 0.5)
    assert len(valid) == MAX_VALID_TOKENS and len(train) + len(valid) == len(ids)


def test_window_batches_end_before_their_targets_and_repeat_by_seed() -> None:
    ids = np.arange(2, 5002) % 60000
    batches = WindowBatches(ids, count=400, context=6, seed=3)
    windows, targets = batches.batch(7, epoch=1)
    assert windows.shape == (400, 6) and targets.shape == (400, 1)
    whole = windows[:, 0] != EOS_ID
    # An unpadded window is the six tokens just before its target.
    assert np.array_equal(windows[whole], (targets[whole] - np.arange(6, 0, -1)))
    padded = windows[~whole]
    assert 0 < len(padded) < 100  # about a tenth start at a text's beginning, line breaks before
    assert all((row[-1] != EOS_ID) for row in padded)
    again, _ = WindowBatches(ids, count=400, context=6, seed=3).batch(7, epoch=1)
    assert np.array_equal(windows, again)
    assert not np.array_equal(windows, batches.batch(7, epoch=2)[0])
