"""Every verb's --help, generated from the app itself so that new options are covered: each option
shows the default the command really uses, each choice lists its values, and a name means one thing."""

from __future__ import annotations

import enum
import re
from collections import defaultdict

import pytest
import typer.main
from typer.testing import CliRunner

from nextword import config as configuration
from nextword.cli import BY_RECIPE, ExportFormat, app
from nextword.config import FIELDS
from nextword.recipe import shown_in_help

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands


def _help(command: str) -> str:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.stdout


def _rows(text: str) -> dict[str, str]:
    """Each option's row of the help panels (its lines joined), by each of its flags."""
    rows: list[str] = []
    for line in text.splitlines():
        inner = line.strip().strip("│").strip()
        if re.match(r"^(\* +)?-", inner):
            rows.append(inner)
        elif rows and inner and not line.lstrip().startswith(("╭", "╰")):
            rows[-1] += " " + inner
    return {
        flag: row
        for row in rows
        for flag in re.findall(r"(?<![\w-])--?[\w-]+", row.split("  ")[0] + " " + row.lstrip("* ").split("  ")[0])
    }


def _shown(value: object) -> str:
    return str(value.value if isinstance(value, enum.Enum) else value)


def _real_training_defaults(command: str) -> dict[str, object]:
    """What a command trains with when no option is given: compare has its own defaults, and train the recipe's,
    some of them chosen for the text and budget (BY_RECIPE)."""
    if command == "compare":
        from nextword.compare import compare_settings

        return compare_settings(None, {}).to_dict()
    alike, chosen = shown_in_help()
    return configuration.load(defaults=alike).to_dict() | dict.fromkeys(chosen, BY_RECIPE)


def _options(command: str):
    return [p for p in COMMANDS[command].params if p.param_type_name == "option" and not p.hidden]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_each_real_default_and_every_choice(command: str) -> None:
    text = _help(command)
    rows = _rows(text)
    assert "<bool>" not in text and "BOOLEAN" not in text  # flags render as flags
    assert "(default:" not in text  # defaults are shown one way: [default: x]
    for param in _options(command):
        row = rows[param.opts[0]]
        choices = getattr(param.type, "choices", None)
        if choices:
            assert "|".join(map(_shown, choices)) in row, f"{command} {param.opts[0]} does not list its values"
        if getattr(param, "rich_help_panel", None) == "Training options":
            real = _real_training_defaults(command)[param.name]
            if real is BY_RECIPE:
                assert "[default: (by the recipe)]" in row, row
            elif isinstance(real, bool):
                assert f"[default: {'' if real else 'no-'}{param.name}]" in row, row
            elif real is None:
                assert "[default:" not in row, row
            else:
                assert f"[default: {real}]" in row, f"{command} {param.opts[0]}: {row}"
        elif param.is_flag:
            assert "[default:" not in row or param.secondary_opts, row
        elif isinstance(param.show_default, str):
            assert f"[default: ({param.show_default})]" in row, row
        elif param.default is not None and not param.required:
            assert f"[default: {_shown(param.default)}]" in row, f"{command} {param.opts[0]}: {row}"


def test_compare_shows_its_own_defaults_not_trains() -> None:
    rows = _rows(_help("compare"))
    assert "[default: 1000]" in rows["--max-steps"] and "[default: 0.0]" in rows["--dropout"]
    assert "[default: 1.0]" in rows["--final-lr"] and "[default: 0]" in rows["--warmup"]
    train = _rows(_help("train"))
    assert "[default:" not in train["--max-steps"] and "[default: (by the recipe)]" in train["--dropout"]
    assert "[default: 32]" in train["--seq-len"] and "[default: 0.3]" in train["--weight-decay"]  # not the Config's


@pytest.mark.parametrize("command", COMMANDS)
def test_each_paragraph_of_a_verbs_help_is_one_line_the_terminal_wraps(command: str) -> None:
    """A docstring's line breaks are the source's, not the terminal's: at 300 columns no paragraph breaks."""
    doc = COMMANDS[command].callback.__doc__ or ""
    described = _help(command).split("╭")[0]  # above the panels of arguments and options
    for paragraph in doc.split("\n\n"):
        assert " ".join(paragraph.split()) in described


def test_help_text_survives_rich_markup() -> None:
    assert "pip install 'nextword[export]'" in " ".join(_help("export").split())
    assert {f.value for f in ExportFormat} == set(__import__("nextword.export").export.FORMATS)


# Long flags and short ones that may mean different things in different verbs: none.
SAME_MEANING = {"out_file": "out_dir"}  # export writes a file where the others write a directory


def test_each_flag_has_one_meaning_in_every_verb() -> None:
    meanings: dict[str, set[str]] = defaultdict(set)
    for command in COMMANDS:
        for param in _options(command):
            for flag in (*param.opts, *param.secondary_opts):
                meanings[flag].add(SAME_MEANING.get(param.name, param.name))
    assert {flag: names for flag, names in meanings.items() if len(names) > 1} == {}
    # What the words of the scheme mean: -k offers words, -n writes them, sampling says so.
    assert meanings["-k"] == {"suggestions"} and meanings["-n"] == {"max_words"}
    assert "--top-k" not in {f for p in _options("generate") for f in p.opts}
    assert all(
        "-k" in p.opts for c in ("predict", "interactive", "evaluate") for p in _options(c) if p.name == "suggestions"
    )


def test_choices_complete_their_values() -> None:
    from nextword.cli import _choice_type

    assert [c.value for c in _choice_type("cell")] == list(FIELDS["cell"].metadata["choices"])
    param = next(p for p in _options("train") if p.name == "cell")
    completions = [item.value for item in param.shell_complete(None, "l")]
    assert completions == ["lstm"]
