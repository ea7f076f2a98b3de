"""Reads the word lists and sentence templates in corpora/templates/, for generate.py.

A template file is plain text, so a person can edit it and the generator needs nothing but Python:

    # A comment line.
    [section name]
    key: a value; the key may repeat, and its values keep their order
    key: a long value may go on
         on indented lines, which join the line above with one space

What a value means is up to the section's reader in generate.py: a template or a phrase (one a
line), or a word list, whose comma-separated entries may name another list as "@name".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

TEMPLATES = Path(__file__).resolve().parent / "templates"
# A key is words ("opening", "landmark mood"), so a template that lost its key is refused
# rather than read as a key ending at its first "{v:".
_KEY = re.compile(r"\w[\w ]*")

Section = dict[str, tuple[str, ...]]  # each key's values, in file order


def read_templates(file: str | Path) -> dict[str, Section]:
    """The sections of a file in templates/ (or of any path), by name, in file order."""
    path = TEMPLATES / file
    sections: dict[str, dict[str, list[str]]] = {}
    section, values = None, None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        key, colon, value = text.partition(":")
        if not text or text.startswith("#"):
            continue
        if text.startswith("[") and text.endswith("]"):
            section, values = sections.setdefault(text[1:-1].strip(), {}), None
        elif line[0].isspace() and values:
            values[-1] += " " + text
        elif section is not None and colon and _KEY.fullmatch(key.strip()):
            values = section.setdefault(key.strip(), [])
            values.append(value.strip())
        else:
            raise ValueError(f"{path}, line {number}: want [section], key: value or an indented continuation")
    return {name: {key: tuple(v) for key, v in keys.items()} for name, keys in sections.items()}


def records(sections: dict[str, Section], kind: str) -> dict[str, Section]:
    """The sections headed "[kind: name]", by name, in file order."""
    prefix = kind + ":"
    return {name[len(prefix) :].strip(): section for name, section in sections.items() if name.startswith(prefix)}


def word_list(values: tuple[str, ...], lists: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The comma-separated words (or short phrases) of values; "@name" stands for lists[name]."""
    words: list[str] = []
    for entry in ",".join(values).split(","):
        entry = " ".join(entry.split())  # a phrase may break across a continued line
        if entry.startswith("@"):
            words += lists[entry[1:]]
        elif entry:
            words.append(entry)
    return tuple(words)


def word_lists(section: Section) -> Section:
    """Every key of a section as a word list, which may include the lists above it."""
    lists: Section = {}
    for key, values in section.items():
        lists[key] = word_list(values, lists)
    return lists


def mapping(section: Section) -> dict[str, str]:
    """A section of "key: value" lines, each key once, as a dict."""
    return {key: value for key, (value,) in section.items()}
