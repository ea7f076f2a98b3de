"""Split a text the way the scoreboard's held-out corpora are split, for `bench/quality.py --corpora NAME=TRAIN:TEST`.

The text is decoded from its source encoding, a Project Gutenberg header (through its `*** START` line)
and licence (from its `*** END` line) are cut off, and the last 10% of its characters, from the next line
start, are held out. The novels never tuned on (bench/RESULTS.md), from public GitHub repositories; the
words each part holds (whitespace-separated) check a split against the one measured:

| NAME | repository: file | --encoding | words to train / held out |
|---|---|---|---|
| pride | AlexCuke/Phyton_Crash_course: pg1342.txt | cp1252 | 93,356 / 10,634 |
| warpeace | AlexCuke/Phyton_Crash_course: warandpeace.txt (Russian) | cp1251 | 269,128 / 30,323 |
| sherlock | nikhilbarhate99/Char-RNN-PyTorch: data/sherlock.txt | utf-8 | 491,457 / 54,694 |

    python bench/split.py pg1342.txt pride --encoding cp1252 --work /tmp/untuned

Nothing of the texts is copied into this repository.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from common import write_split

_START, _END = re.compile(r"^\*\*\* ?START.*\n?", re.M), re.compile(r"^\*\*\* ?END", re.M)


def without_gutenberg(text: str) -> str:
    """`text` without a Project Gutenberg header (up to and through its `*** START` line) and licence (from
    its `*** END` line on); a text without them unchanged."""
    start, end = _START.search(text), _END.search(text)
    return text[start.end() if start else 0 : end.start() if end else len(text)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="the text file")
    parser.add_argument("name", help="the corpus's name: the parts are NAME-train.txt and NAME-test.txt")
    parser.add_argument("--encoding", default="utf-8", help="the source's encoding (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nextword-bench"), help="where the parts go")
    args = parser.parse_args()
    text = without_gutenberg(args.source.read_bytes().decode(args.encoding))
    train, test = write_split(text, args.work, args.name)
    for path in (train, test):
        print(f"{path}: {len(path.read_text(encoding='utf-8').split()):,} words")
    print(f"--corpora {args.name}={train}:{test}")


if __name__ == "__main__":
    main()
