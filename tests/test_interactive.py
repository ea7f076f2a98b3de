"""`nextword interactive`: the key decoder and editing state without a terminal, then the real command in a pty."""

import contextlib
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextword.cli import app
from nextword.errors import ConfigError, WriteError
from nextword.interactive import (
    BACKSPACE,
    CTRL_C,
    CTRL_D,
    CTRL_G,
    CTRL_U,
    CTRL_W,
    ENTER,
    TAB,
    Keyboard,
    KeyReader,
    screen,
)

WORDS = ["anna", "and", "apple", "ball", "the", "to"]


def suggest(text: str) -> list[str]:
    """A stand-in model: the known words that start with the partial last word, in a fixed order."""
    partial = re.search(r"\S*$", text).group()
    return [word for word in WORDS if word.startswith(partial)]


def typed(*keys: str, count: int = 5, asked: list | None = None) -> Keyboard:
    def continue_(text: str) -> str:
        (asked if asked is not None else []).append(text)
        return " went\nhome"

    keyboard = Keyboard(suggest, continue_, count=count)
    for key in keys:
        for char in [key] if len(key) > 1 else key:
            keyboard.press(char)
    return keyboard


def test_suggestions_follow_each_character_and_complete_the_partial_word() -> None:
    assert typed().suggestions == []  # nothing typed, nothing asked
    assert typed("a").suggestions == ["anna", "and", "apple"]
    assert typed("an").suggestions == ["anna", "and"]
    assert typed("an", BACKSPACE).suggestions == ["anna", "and", "apple"]
    assert typed("anna ").suggestions == WORDS[:5] and typed("anna ", count=2).suggestions == WORDS[:2]
    assert typed("zz").suggestions == []


def test_tab_and_alt_digits_put_in_a_word_then_a_space_and_digits_type_themselves() -> None:
    assert typed("an", TAB).text == "anna "
    assert typed("an", TAB, TAB).text == "anna anna "  # after the space: the best next word
    assert typed("x a", "alt-3").text == "x apple "
    assert typed("a", "alt-9").text == "a"  # no ninth suggestion: nothing happens
    assert typed("zz", TAB).text == "zz"
    assert typed("room 12").text == "room 12"


def test_deleting_a_word_or_the_line() -> None:
    assert typed("anna has ", CTRL_W).text == "anna "
    assert typed("anna ha", CTRL_W).text == "anna "
    assert typed("anna has", CTRL_U).text == ""
    assert typed(BACKSPACE).text == ""


def test_enter_gives_the_line_and_starts_a_new_one_in_the_same_document() -> None:
    keyboard = typed("an", TAB)
    assert keyboard.press(ENTER) == "anna " and keyboard.text == "" and not keyboard.done
    assert keyboard.document == "anna \n" and keyboard.suggestions == WORDS[:5]  # a new line's first word
    asked: list[str] = []
    keyboard = typed("anna has", ENTER, "the b", CTRL_G, asked=asked)
    assert keyboard.document == "anna has\nthe b" and asked == ["anna has\nthe b"]
    calls: list[str] = []
    keyboard = Keyboard(lambda text: calls.append(text) or ["x"], lambda text: "")
    for char in "one\ntw":
        keyboard.press(ENTER if char == "\n" else char)
    assert keyboard.suggestions == ["x"] and calls == ["one\ntw"]  # every line so far is the context
    keyboard.press(CTRL_U)
    assert keyboard.document == "one\n"  # deleting stays on the line being typed


def test_a_document_to_start_with_is_context_and_its_last_line_is_typed_on() -> None:
    keyboard = Keyboard(suggest, lambda text: "", document="first line\nsecond a")
    assert keyboard.settled == "first line\n" and keyboard.text == "second a"
    assert keyboard.suggestions == ["anna", "and", "apple"]
    keyboard.press(TAB)
    assert keyboard.document == "first line\nsecond anna "
    assert Keyboard(suggest, lambda text: "", document="done\n").text == ""


@pytest.mark.parametrize("key", [CTRL_D, CTRL_C])
def test_ctrl_d_and_ctrl_c_quit(key: str) -> None:
    assert typed("an", key).done


def test_ctrl_g_shows_a_continuation_until_the_next_key() -> None:
    asked: list[str] = []
    assert typed(CTRL_G, asked=asked).continuation == " went\nhome" and asked == [""]  # nothing typed: a beginning
    keyboard = typed("anna", CTRL_G, asked=asked)
    assert keyboard.continuation == " went\nhome" and asked == ["", "anna"] and keyboard.text == "anna"
    keyboard.press(" ")
    assert keyboard.continuation == ""


def test_suggestions_are_searched_once_per_text() -> None:
    calls: list[str] = []
    keyboard = Keyboard(lambda text: calls.append(text) or ["x"], lambda text: "")
    for char in "abc":
        keyboard.press(char)  # typed faster than the screen redraws: no search in between
    assert keyboard.suggestions == keyboard.suggestions == ["x"] and calls == ["abc"]


def test_the_number_of_suggestions_is_one_digit() -> None:
    with pytest.raises(ConfigError, match="between 1 and 9"):
        Keyboard(suggest, lambda text: "", count=10)


def test_key_reader_turns_terminal_codes_into_keys() -> None:
    reader = KeyReader()
    assert reader.feed("ab\x1b2\x1b[A\x1bOP\n\b\t") == ["a", "b", "alt-2", ENTER, BACKSPACE, TAB]
    assert reader.feed("x\x1b") == ["x"] and reader.feed("3") == ["alt-3"]  # Esc, then the digit
    assert reader.feed("\x1b[1;5") == [] and reader.feed("Cy") == ["y"]  # an arrow split over two reads
    assert reader.feed("\x1bq") == ["q"]  # a stray Esc is dropped


def test_screen_fits_the_width_and_respects_no_color() -> None:
    keyboard = typed("x a")
    plain, painted = screen(keyboard, 80, color=False), screen(keyboard, 80, color=True)
    assert plain == "\r\x1b[J> x a\r\n1 anna  2 and  3 apple\x1b[1A\x1b[6G"  # the cursor back after "x a"
    assert "\x1b[1;32manna" in painted and not re.search(r"\x1b\[[0-9;]*m", plain)
    narrow = screen(typed("a" * 50 + " a"), 20, color=False).split("\r\n")
    assert narrow[0].endswith("aaa a") and len(narrow[0]) == len("\r\x1b[J") + 19
    assert narrow[1].startswith("1 anna  2 and") and "apple" not in narrow[1]  # the least likely left out
    assert "\r\n… went home\x1b[2A" in screen(typed("anna", CTRL_G), 80, color=False)  # one row, no break
    wide = screen(typed("日本 " * 10), 20, color=False).split("\r\n")  # each of 日本 takes two columns
    assert wide[0] == "\r\x1b[J…本 日本 日本 日本 " and wide[1].endswith("\x1b[1A\x1b[20G")


def test_without_a_terminal_it_refuses_in_one_line(trained_model: Path) -> None:
    result = CliRunner().invoke(app, ["interactive", str(trained_model)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: nextword interactive needs a terminal; in a script, use: nextword predict MODEL TEXT --json"
    ]


def _screen(output: str) -> list[str]:
    """The rows a terminal would show after `output`, for the escapes the command writes."""
    rows, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;]*[A-Za-z]|[\r\n]|[^\x1b\r\n]", output):
        if token == "\r":
            col = 0
        elif token == "\n":
            row += 1
            rows += [""] * (row + 1 - len(rows))
        elif token.startswith("\x1b"):
            count = int(token[2:-1] or 1) if token[-1] in "AG" else 0
            if token[-1] == "A":
                row -= count
            elif token[-1] == "G":
                col = count - 1
            elif token[-1] == "J":
                rows[row], rows[row + 1 :] = rows[row][:col], []
        else:
            rows[row] = rows[row][:col].ljust(col) + token + rows[row][col + 1 :]
            col += 1
    return rows


class Terminal:
    """`nextword interactive ARGS` in a pseudo-terminal; every read has a deadline, so a broken prompt fails
    instead of hanging."""

    def __init__(self, *args: str):
        self.main, child = os.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nextword", "interactive", *map(str, args)],
            stdin=child,
            stdout=child,
            stderr=child,
            env={**os.environ, "NO_COLOR": "1"},
        )
        os.close(child)
        self.shown = ""

    def type(self, keys: str | bytes) -> None:
        os.write(self.main, keys.encode() if isinstance(keys, str) else keys)

    def wait_for(self, pattern: str, seconds: float = 60) -> list[str]:
        """Read what the command writes until its screen matches `pattern`; never longer than `seconds`."""
        deadline = time.monotonic() + seconds
        while not re.search(pattern, "\n".join(_screen(self.shown)), re.MULTILINE):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} on the screen:\n" + "\n".join(_screen(self.shown))
            if select.select([self.main], [], [], min(left, 0.5))[0]:
                self.shown += os.read(self.main, 4096).decode()
        return _screen(self.shown)

    def quit(self, key: bytes = CTRL_D.encode()) -> int:
        self.type(key)
        deadline = time.monotonic() + 30
        while self.process.poll() is None and time.monotonic() < deadline:  # keep reading: a full pty blocks
            if select.select([self.main], [], [], 0.2)[0]:
                with contextlib.suppress(OSError):
                    self.shown += os.read(self.main, 4096).decode()
        return self.process.wait(timeout=1)

    def close(self) -> None:
        self.process.kill()
        os.close(self.main)


def test_typing_in_a_terminal(trained_model: Path) -> None:
    """The real command in a pseudo-terminal: suggestions appear as letters are typed, Tab takes the best,
    Ctrl-D quits."""
    terminal = Terminal(trained_model)
    try:
        terminal.wait_for(r"^Tab: best word")  # loaded, waiting for keys
        terminal.type("anna gives the red ball to the c")
        rows = terminal.wait_for(r"^1 c")  # the partial word "c" completed
        assert rows[-2] == "> anna gives the red ball to the c"
        offered = rows[-1].split()[1::2]
        assert offered and all(word.startswith("c") for word in offered)
        terminal.type("\t")
        rows = terminal.wait_for(rf"^> anna gives the red ball to the {offered[0]} $")  # the best word, a space
        assert rows[-1].startswith("1 ") and rows[-1] != " ".join(offered)  # the next word offered now
        assert not re.search(r"\x1b\[[0-9;]*m", terminal.shown)  # NO_COLOR: not even bold
        assert terminal.quit() == 0
    finally:
        terminal.close()


def _offered(rows: list[str]) -> list[str]:
    return rows[-1].split()[1::2]


@pytest.mark.parametrize("quit_key", [CTRL_D, CTRL_C])
def test_the_document_goes_on_across_lines_and_is_saved_on_quitting(
    trained_model: Path, tmp_path: Path, quit_key: str
) -> None:
    """Keys typed before the first screen are kept, every line typed is context for the next, and
    --save writes the whole document when Ctrl-D or Ctrl-C quits."""
    from nextword import load

    predictor, saved = load(str(trained_model)), tmp_path / "typed.txt"
    terminal = Terminal(trained_model, "--save", saved)
    try:
        terminal.type("anna has the red ball .\r")  # at once: the model is still loading
        terminal.wait_for(r"^> anna has the red ball \.$")
        terminal.type("ben gives the ")
        rows = terminal.wait_for(r"^> ben gives the $")
        rows = terminal.wait_for(r"^1 ")
        document = "anna has the red ball .\nben gives the "
        assert _offered(rows) == [word for word, _ in predictor.predict(document, k=5)][: len(_offered(rows))]
        assert terminal.quit(quit_key.encode()) == 0
    finally:
        terminal.close()
    assert saved.read_text(encoding="utf-8") == document


def test_from_starts_with_a_document_and_save_may_write_it_back(trained_model: Path, tmp_path: Path) -> None:
    from nextword import load

    predictor, notes = load(str(trained_model)), tmp_path / "notes.txt"
    notes.write_text("cora has a green hat .\ncora gives the green ", encoding="utf-8")
    terminal = Terminal(trained_model, "--from", notes, "--save", notes)
    try:
        rows = terminal.wait_for(r"^> cora gives the green $")  # the unfinished last line, to type on
        assert f"10 words from {notes}" in rows  # a row of its own above the line
        rows = terminal.wait_for(r"^1 ")
        expected = [word for word, _ in predictor.predict(notes.read_text(encoding="utf-8"), k=5)]
        assert _offered(rows) == expected[: len(_offered(rows))]
        terminal.type("\t")
        terminal.wait_for(rf"^> cora gives the green {expected[0]} $")
        assert terminal.quit() == 0
    finally:
        terminal.close()
    assert notes.read_text(encoding="utf-8") == f"cora has a green hat .\ncora gives the green {expected[0]} "


def test_save_refuses_to_replace_another_file_without_force(trained_model: Path, tmp_path: Path) -> None:
    from nextword.interactive import check_save_target

    other = tmp_path / "other.txt"
    other.write_text("keep me", encoding="utf-8")
    with pytest.raises(WriteError, match="already exists; use --force"):
        check_save_target(other, None, force=False)
    with pytest.raises(WriteError, match="it is a folder"):
        check_save_target(tmp_path, None, force=True)
    with pytest.raises(WriteError, match="does not exist"):
        check_save_target(tmp_path / "no" / "such.txt", None, force=True)
    check_save_target(other, other, force=False)  # the --from file itself: it is the document's start
    check_save_target(other, None, force=True)
    check_save_target(tmp_path / "new.txt", None, force=False)
    assert other.read_text(encoding="utf-8") == "keep me"
