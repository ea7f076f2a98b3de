"""Typing with next-word suggestions, like a phone keyboard: the editing state and what the screen shows.

Nothing here touches a terminal. `KeyReader` turns the characters a terminal sends into keys,
`Keyboard` applies keys to the line being typed at the end of a document, and `screen` is the text
that redraws it; the CLI reads the terminal in raw mode and writes what `screen` returns. The whole
document is the context of every suggestion, the lines finished before as much as the one typed.
The keys:

    a letter, a digit, …  typed as is (digits too: picking a suggestion never takes a plain key)
    Tab                   put in the best suggestion, then a space
    Alt-1 … Alt-9         put in suggestion 1 … 9 (Esc then the digit does the same, for terminals
                          where Alt is not Meta)
    Backspace, Ctrl-W, Ctrl-U   delete a character, a word, the line
    Enter                 end the line (it stays on the screen and in the document; the next starts empty)
    Ctrl-G                show a short generated continuation of the line
    Ctrl-D, Ctrl-C        quit"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Callable

from .errors import ConfigError, CorpusError, WriteError
from .search import split_partial

TAB, ENTER, BACKSPACE, ESC = "\t", "\r", "\x7f", "\x1b"
CTRL_W, CTRL_U, CTRL_G, CTRL_D, CTRL_C = "\x17", "\x15", "\x07", "\x04", "\x03"
PROMPT = "> "
HELP = "Tab: best word · Alt-1…{last} (or Esc, digit): that word · Ctrl-G: continue · Enter: new line · Ctrl-D: quit"
MAX_SUGGESTIONS = 9  # one digit each

# An escape sequence the keyboard has no use for (arrows, function keys): CSI or SS3, read to its end.
_SEQUENCE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|O.)")
_UNFINISHED = re.compile(r"\x1b(\[[0-?]*[ -/]*|O)")
_SGR_CODE = re.compile(r"\x1b\[[0-9;]*m")
_SGR = {"best": "\x1b[1;32m", "dim": "\x1b[2m", "off": "\x1b[0m"}


class KeyReader:
    """Characters from a terminal in, keys out: text characters as themselves, Alt-digit as "alt-N".

    A terminal sends Alt-1 as Esc followed by "1", and an arrow as Esc [ A; a read can end in the middle
    of either, so an unfinished sequence waits for the next `feed`."""

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, chars: str) -> list[str]:
        text, self.pending = self.pending + chars, ""
        keys, at = [], 0
        while at < len(text):
            char = text[at]
            if char != ESC:
                keys.append({"\n": ENTER, "\b": BACKSPACE}.get(char, char))  # the other codes these keys send
                at += 1
                continue
            sequence, after = _SEQUENCE.match(text, at), text[at + 1 : at + 2]
            if sequence:
                at = sequence.end()  # ignored: editing happens at the end of the line only
            elif not after or _UNFINISHED.fullmatch(text, at):
                self.pending = text[at:]  # the rest comes with the next read
                break
            elif after in "123456789":
                keys.append(f"alt-{after}")
                at += 2
            else:
                at += 1  # a lone Esc: dropped, what follows is typed
        return keys


class Keyboard:
    """The document: finished lines (`settled`) and the line being typed (`text`), and the words offered.

    `suggest(document)` gives the likeliest next words (or completions of a partial last word), best
    first; `continue_(document)` a generated continuation. Suggestions are asked for only when they are
    shown or picked, so keys that arrive together cost one search. A `document` given to start with
    is context; its unfinished last line is the line being typed."""

    def __init__(
        self, suggest: Callable[[str], list[str]], continue_: Callable[[str], str], count: int = 5, document: str = ""
    ):
        if not 1 <= count <= MAX_SUGGESTIONS:
            raise ConfigError(f"option 'suggestions' must be between 1 and {MAX_SUGGESTIONS}; got {count}")
        self._suggest, self._continue, self.count = suggest, continue_, count
        self.settled = document[: document.rfind("\n") + 1]
        self.text = document[len(self.settled) :]
        self.continuation = ""  # shown under the line after Ctrl-G, until the next key
        self.done = False
        self._offered: tuple[str, list[str]] | None = None  # (text, its suggestions)

    @property
    def document(self) -> str:
        return self.settled + self.text

    @property
    def suggestions(self) -> list[str]:
        document = self.document
        if not document.strip():
            return []  # nothing typed: nothing to go on
        if self._offered is None or self._offered[0] != document:
            self._offered = (document, self._suggest(document)[: self.count])
        return self._offered[1]

    def press(self, key: str) -> str | None:
        """Apply one key; return the finished line when the key was Enter."""
        self.continuation = ""
        if key in (CTRL_D, CTRL_C):
            self.done = True
        elif key == ENTER:
            line, self.text = self.text, ""
            self.settled += line + "\n"
            return line
        elif key == TAB or key.startswith("alt-"):
            rank = 0 if key == TAB else int(key[4:]) - 1
            if rank < len(self.suggestions):
                self.text = split_partial(self.text)[0] + self.suggestions[rank] + " "
        elif key == BACKSPACE:
            self.text = self.text[:-1]
        elif key == CTRL_W:
            self.text = re.sub(r"\S*\s*$", "", self.text)
        elif key == CTRL_U:
            self.text = ""
        elif key == CTRL_G:  # on an empty document too: a beginning, as `generate ""` writes
            self.continuation = self._continue(self.document)
        elif key.isprintable():
            self.text += key
        return None


def screen(keyboard: Keyboard, width: int, color: bool) -> str:
    """What redraws the line and the suggestions under it, leaving the cursor at the end of the typed text.

    It starts on the line's own row (where the last redraw left the cursor) and clears below, so it can
    be written again and again. Each row is cut to the terminal's width: a wrapped row would put the
    cursor somewhere this cannot know."""
    width = max(width, 20)
    paint = (lambda style, text: f"{_SGR[style]}{text}{_SGR['off']}") if color else (lambda style, text: text)
    shown = PROMPT + keyboard.text
    if _columns(shown) >= width:
        while _columns(shown) > width - 2:
            shown = shown[1:]
        shown = "…" + shown
    rows = [shown]
    if keyboard.suggestions:
        offers = [
            f"{paint('dim', str(n))} {paint('best', word) if n == 1 else word}"
            for n, word in enumerate(keyboard.suggestions, 1)
        ]
        while len(offers) > 1 and len(_SGR_CODE.sub("", "  ".join(offers))) >= width:
            offers.pop()  # the least likely go first
        rows.append("  ".join(offers))
    elif keyboard.text.strip():
        rows.append(paint("dim", "(no suggestions)"))
    else:
        rows.append(paint("dim", HELP.format(last=keyboard.count)[: width - 1]))
    if keyboard.continuation:
        flat = re.sub(r"\s+", " ", keyboard.continuation)  # a line break in it would break the layout
        rows.append(paint("dim", ("…" + flat)[: width - 1]))
    up = len(rows) - 1
    return "\r\x1b[J" + "\r\n".join(rows) + f"\x1b[{up}A\x1b[{_columns(shown) + 1}G"


def _columns(text: str) -> int:
    """How many columns `text` takes in a terminal: two for each wide (CJK, most emoji) character."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def settle(line: str) -> str:
    """What leaves `line` on the screen as typed, without the rows under it, and moves to a fresh row."""
    return f"\r\x1b[J{PROMPT}{line}\r\n"


def note(text: str, color: bool) -> str:
    """A dim row of its own, above the line being typed."""
    return f"\r{_SGR['dim']}{text}{_SGR['off']}\r\n" if color else f"\r{text}\r\n"


def read_document(path: Path) -> str:
    """The text of a `--from` file, its line ends as "\\n"."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 and try again") from None


def check_save_target(save: Path, loaded: Path | None, force: bool) -> None:
    """Refuse, before anything is typed, a `--save` file that could not be written or should not be
    replaced: an existing file other than the `--from` one (a symlink counts as other), unless `force`."""
    if save.is_dir():
        raise WriteError(f"cannot save to {save}: it is a folder; name a file")
    if not save.parent.is_dir():
        raise WriteError(f"cannot save to {save}: the folder {save.parent} does not exist")
    if not os.path.lexists(save) or force:
        return
    if save.is_symlink() or loaded is None or not save.exists() or not os.path.samefile(save, loaded):
        raise WriteError(f"{save} already exists; use --force to replace it, or --save a new file")
