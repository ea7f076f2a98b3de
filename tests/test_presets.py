"""The built-in presets: shipped inside the package, found by name from any directory, listed by `presets`."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextword.cli import app
from nextword.config import PRESETS, find_config, load, presets
from nextword.errors import ConfigError

runner = CliRunner()


def test_a_preset_by_name_trains_from_another_directory(tmp_path: Path, corpus_file: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no models/ folder here
    out = tmp_path / "m"
    result = runner.invoke(
        app,
        [
            "train",
            str(corpus_file),
            "--config",
            "tiny",
            "--max-steps=3",
            "--eval-every=3",
            "--vocab-size=30",
            "--device=cpu",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = (out / "config.yaml").read_text()
    assert "hidden: 64" in saved and "max_steps: 3" in saved  # the preset's shape, the flags' budget


@pytest.mark.parametrize("name", ["small", "small.yaml", "models/small.yaml"])
def test_preset_names_and_the_old_paths_find_the_shipped_file(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config(name) == PRESETS / "small.yaml" and load(find_config(name)).model.hidden == 256


def test_a_file_of_the_same_name_wins_and_an_unknown_name_lists_the_presets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small").write_text("hidden: 8\n")
    assert find_config("small") == Path("small") and load(find_config("small")).model.hidden == 8
    with pytest.raises(
        ConfigError,
        match=r"config file not found: smal; give a YAML file or a preset: "
        r"tiny, small, medium, large",
    ):
        find_config("smal")


def test_presets_command_lists_each_with_its_first_comment_line() -> None:
    listed = json.loads(runner.invoke(app, ["presets", "--json"]).stdout)
    assert [p["name"] for p in listed] == ["tiny", "small", "medium", "large"]
    for preset in listed:
        first = Path(preset["path"]).read_text().splitlines()[0]
        assert first == f"# {preset['name']}: {preset['description']}"
    assert presets()["small"] in " ".join(runner.invoke(app, ["presets"], env={"COLUMNS": "200"}).stdout.split())


def test_the_presets_are_package_data() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "presets/*.yaml" in project["tool"]["setuptools"]["package-data"]["nextword"]
    assert PRESETS.parent == Path(__import__("nextword").__file__).parent
