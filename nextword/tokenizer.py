"""SentencePiece training and loading, and what the rest of nextword needs to know about pieces.

Conventions that every other module relies on:
- A line break is the end-of-sentence id (`eos`): the corpus is encoded line by line with `eos`
  after each line, so a model learns where lines end, and decoding turns `eos` back into "\\n".
- A piece that starts with "▁" starts a new whitespace-separated word (SentencePiece splits on
  whitespace and marks it so); a word is one such piece followed by pieces that do not.
- For prediction, a word is what a person types between spaces without the punctuation that
  follows it ("lord," is the word "lord" then ","), so a word also ends where a piece starting
  with such punctuation comes next. Apostrophes and hyphens stay inside words (don't, well-known)."""

from __future__ import annotations

import io
import itertools
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import sentencepiece as spm

from .errors import ConfigError, CorpusError, ModelDirError
from .files import open_regular, read_bytes
from .threads import usable_cores

WORD_MARK = "\u2581"  # "▁", SentencePiece's mark for a preceding space
UNK_ID, EOS_ID = 0, 1

WORD_PUNCTUATION = "'\u2019-"  # punctuation that may sit inside a word

# SentencePiece leaves out of training any line longer than its max_sentence_length (in bytes), and
# encodes a line in memory that grows with it (600 MB for a 10 MB line). Longer lines are cut into
# parts of at most this many characters, before a space: no piece spans a space, so the parts
# encode to the very pieces of the whole line.
LINE_PART_CHARS = 1 << 14
# Text a tokenizer is trained on at most: plenty for tens of thousands of pieces, and SentencePiece
# needs several times its size in memory.
SAMPLE_BYTES = 20_000_000

_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, what undecodable bytes become; SentencePiece cannot take it
_TOO_HIGH = re.compile(r"Please set it to a value <= (\d+)")
_TOO_LOW = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")


@dataclass(frozen=True)
class TrainedTokenizer:
    tokenizer: Tokenizer
    requested_vocab: int

    @property
    def notice(self) -> str | None:
        """What to tell the user when the corpus could not support the vocabulary asked for."""
        if self.tokenizer.vocab_size >= self.requested_vocab:
            return None
        return (
            f"vocabulary lowered from {self.requested_vocab} to {self.tokenizer.vocab_size}: "
            f"the corpus is too small for more pieces"
        )


class Tokenizer:
    """A SentencePiece model plus per-piece tables for word-level search."""

    def __init__(self, model_proto: bytes):
        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        pieces = [self.sp.id_to_piece(i) for i in range(self.sp.vocab_size())]
        special = np.array([self.sp.is_control(i) or self.sp.is_unknown(i) for i in range(len(pieces))])
        #: surface text of each piece ("▁the" -> " the"); special pieces have none
        self.piece_text = ["" if special[i] else p.replace(WORD_MARK, " ") for i, p in enumerate(pieces)]
        self.piece_text[EOS_ID] = "\n"
        #: pieces that stand for text (not unknown or control pieces)
        self.ordinary = ~special
        #: pieces that begin a new whitespace-separated word
        self.starts_word = np.array([p.startswith(WORD_MARK) for p in pieces]) & self.ordinary
        inside = self.ordinary & ~self.starts_word
        punctuation = np.array([bool(t) and is_trailing_punctuation(t[0]) for t in self.piece_text])
        #: pieces that carry on the word before them
        self.extends_word = inside & ~punctuation
        #: pieces that, coming next, end the word before them: a new word, a line break, punctuation
        self.ends_word = self.starts_word | (inside & punctuation)
        self.ends_word[EOS_ID] = True
        self.piece_chars = np.array([len(t) for t in self.piece_text])

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """The tokenizer in the file `path`, checked: a damaged or foreign one is a one-line ModelDirError."""
        if not os.path.lexists(path):
            raise ModelDirError(f"tokenizer missing: {path}; the model directory is incomplete")
        proto = read_bytes(path, "tokenizer", ModelDirError)
        if not proto:  # SentencePiece takes an empty model and fails later, logging to stderr
            raise ModelDirError(f"tokenizer file is damaged: {path} is empty")
        try:
            sp = spm.SentencePieceProcessor(model_proto=proto)
        except RuntimeError:
            raise ModelDirError(f"tokenizer file is damaged: {path} is not a SentencePiece model") from None
        if sp.vocab_size() < 2 or sp.unk_id() != UNK_ID or sp.eos_id() != EOS_ID:
            raise ModelDirError(
                f"tokenizer file is damaged: {path} is not a nextword tokenizer (one has at "
                f"least 2 pieces, the unknown piece at id {UNK_ID} and the line break at {EOS_ID})"
            )
        return cls(proto)

    @property
    def vocab_size(self) -> int:
        return self.sp.vocab_size()

    def encode_line(self, line: str) -> list[int]:
        """Ids of one line of text, without the line break."""
        return self.encode_lines([line])[0]

    def encode_lines(self, lines: list[str]) -> list[list[int]]:
        """Ids of each line, without line breaks, encoded together (SentencePiece uses every core for it)."""
        parts = [line_parts(line) for line in lines]
        flat = [part for line in parts for part in line]
        # A list starts SentencePiece's thread pool: worth it for a file, 30 times slower for one prompt.
        try:
            ids = iter(self.sp.encode(flat) if len(flat) > 1 else [self.sp.encode(part) for part in flat])
        except (RuntimeError, TypeError):  # SentencePiece's only word on a str it cannot take (one; in a list)
            found = next((found for part in flat if (found := _SURROGATE.search(part))), None)
            if found is None:
                raise
            raise ConfigError(
                f"the text holds an unpaired surrogate ({found.group()!a}), which is not text: decode its bytes "
                "as UTF-8 before predicting from it"
            ) from None
        return [list(itertools.chain.from_iterable(next(ids) for _ in line)) for line in parts]

    def encode(self, text: str) -> list[int]:
        """Ids of a text, its line breaks as `eos`; no trailing `eos` unless the text ends with one."""
        ids: list[int] = []
        for line in text.split("\n"):
            ids += [*self.encode_line(line), EOS_ID]
        return ids[:-1]

    def decode(self, ids: list[int] | np.ndarray) -> str:
        """Text of ids, `eos` as a line break."""
        lines: list[list[int]] = [[]]
        for i in map(int, ids):
            if i == EOS_ID:
                lines.append([])
            else:
                lines[-1].append(i)
        return "\n".join(self.sp.decode(line) for line in lines)

    def word_count(self, ids: np.ndarray) -> int:
        """Whitespace-separated words in encoded text: each starts with exactly one word-start piece."""
        return int(self.starts_word[np.asarray(ids)].sum())

    def char_count(self, ids: np.ndarray, after: np.ndarray) -> int:
        """Characters of encoded text `ids`, each piece following the token in `after` (same shape): a
        line break is one; the word mark of a line's first piece stands for no space, so it is none."""
        ids, after = np.asarray(ids), np.asarray(after)
        return int(self.piece_chars[ids].sum() - (self.starts_word[ids] & (after == EOS_ID)).sum())

    def words_at(self, ids: np.ndarray, limit: int | None = None) -> list[tuple[int, str]]:
        """Each word of encoded text as `Predictor.predict` returns words: (position of its first piece,
        its text up to the next space, line break or trailing punctuation). Punctuation-only words are left
        out; `limit` stops after that many words."""
        ids = np.asarray(ids, dtype=np.int64)
        words = []
        for position in np.flatnonzero(self.starts_word[ids]):
            end = position + 1
            while end < len(ids) and self.extends_word[ids[end]]:
                end += 1
            text = "".join(self.piece_text[i] for i in ids[position:end]).lstrip(" ")
            if is_word(text):
                words.append((int(position), text))
                if len(words) == limit:
                    break
        return words


def line_parts(line: str, limit: int = LINE_PART_CHARS) -> list[str]:
    """`line` cut into parts of at most `limit` characters that join up to it again, each cut just
    before a space where one is near enough (in text without spaces, after `limit` characters)."""
    parts = []
    while len(line) > limit:
        cut = line.rfind(" ", 1, limit + 1)
        cut = cut if cut > 0 else limit
        parts.append(line[:cut])
        line = line[cut:]
    parts.append(line)
    return parts


def is_word(text: str) -> bool:
    """Whether `text` counts as a word: it holds a letter or digit (punctuation alone is no word)."""
    return any(char.isalnum() for char in text)


def is_trailing_punctuation(char: str) -> bool:
    """Punctuation that ends a word when it follows one (commas, full stops, closing quotes...)."""
    return unicodedata.category(char).startswith("P") and char not in WORD_PUNCTUATION


def train_tokenizer(corpus: Path, kind: str, vocab_size: int, *, sample_lines: int = 2_000_000) -> TrainedTokenizer:
    """Train a SentencePiece model on a corpus file, lowering the vocabulary if the corpus is too small.

    At most `sample_lines` lines (drawn at random; a line longer than LINE_PART_CHARS counts as its
    parts) are trained on: `sample_lines_for` sizes that so training memory and time stay bounded
    however large the corpus is."""
    requested = vocab_size
    for _ in range(3):
        try:
            return TrainedTokenizer(Tokenizer(_train_proto(corpus, kind, vocab_size, sample_lines)), requested)
        except RuntimeError as exc:
            message = str(exc)
            if too_high := _TOO_HIGH.search(message):
                vocab_size = int(too_high.group(1))
                continue
            if too_low := _TOO_LOW.search(message):
                raise ConfigError(
                    f"option 'vocab_size' is {too_low.group(1)}, but this corpus needs at least "
                    f"{too_low.group(2)} pieces to cover its characters"
                ) from None
            raise CorpusError(f"could not train a tokenizer on {corpus}: {message.splitlines()[-1]}") from None
    raise CorpusError(f"could not train a tokenizer on {corpus}: it holds too little text")


def sample_lines_for(size: int, lines: int, sample_bytes: int = SAMPLE_BYTES) -> int:
    """How many lines (or parts) of a corpus of `size` bytes and `lines` line breaks make about
    `sample_bytes` of text, at its mean line length.

    SentencePiece bounds its sample by a count of lines; a fixed count would let the sample's memory
    grow with the corpus's line length (two million lines of 200 bytes is 400 MB of text to train on)."""
    sentences = max(lines + 1, size // LINE_PART_CHARS)  # a very long line counts as its parts
    return max(1, sample_bytes * sentences // max(size, 1))


def _train_proto(corpus: Path, kind: str, vocab_size: int, sample_lines: int) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_sentences(corpus),
        model_type=kind,
        vocab_size=vocab_size,
        model_writer=model,
        unk_id=UNK_ID,
        eos_id=EOS_ID,
        bos_id=-1,
        pad_id=-1,
        character_coverage=1.0,  # a personal corpus is small: keep every character it uses
        input_sentence_size=sample_lines,
        shuffle_input_sentence=True,
        max_sentence_length=4 * LINE_PART_CHARS,  # bytes: a UTF-8 character takes up to 4
        num_threads=usable_cores(),  # those this process may run on: a container's, not the host's
        minloglevel=2,
    )
    return model.getvalue()


def _sentences(corpus: Path) -> Iterator[str]:
    """The corpus as SentencePiece trains on it: lines (CR and CRLF ends read as LF), long ones in parts."""
    # A character that is not UTF-8 can only be there if the file changed since it was checked; encoding
    # it later finds that out (the text must hash as checked), so the sample need not stop on it.
    with (
        open_regular(corpus, "corpus", CorpusError) as raw,
        io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None) as stream,
    ):
        for line in stream:
            yield from line_parts(line.rstrip("\n"))
