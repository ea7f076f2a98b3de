"""The long-range targets of a text: words that only a cue word far back in their line determines.

They are listed beside the text in its sidecar, `<text>.targets.jsonl` (`targets_path`), one JSON
object a line. corpora/generate.py writes them; `evaluate --long-range` and `compare` read them.
Only the standard library here: the generator runs without torch."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import CorpusError


@dataclass(frozen=True)
class Target:
    """A word that can only be predicted by remembering a cue word earlier in its line."""

    line: int  # 0-based line of the text
    word: int  # 0-based index among the line's whitespace-separated words
    expected: str  # that word exactly as written, punctuation included
    distance: int  # number of words strictly between the cue and the target
    # What fills the slot ("name", "number", "be-past", "be-present" in the generated corpus): the
    # targets of one kind share their possible words, so a scorer can ask whether a model ranks
    # the expected one above the others of its kind, which needs the cue and nothing else.
    kind: str


def targets_path(text_path: str | Path) -> Path:
    """The sidecar of a text: corpus.txt -> corpus.txt.targets.jsonl."""
    return Path(f"{text_path}.targets.jsonl")


def write_targets(path: str | Path, targets: list[Target]) -> None:
    """Write targets as JSON Lines, one object per target."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for target in targets:
            f.write(json.dumps(asdict(target)) + "\n")


def read_targets(path: str | Path) -> list[Target]:
    """The targets in a sidecar; a line that is not one is refused with its number."""
    targets = []
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if line.strip():
                try:
                    targets.append(Target(**json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    raise CorpusError(
                        f"{path}, line {number}: not a target (want line, word, expected, "
                        f"distance, kind; regenerate it with corpora/generate.py)"
                    ) from None
    return targets
