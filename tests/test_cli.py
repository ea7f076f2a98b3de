"""The command line end to end: each command, its JSON, and every bad input as one line and exit code 2."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextword import checkpoint
from nextword.cli import app
from nextword.predict import Predictor

from conftest import TINY

runner = CliRunner()
TINY_FLAGS = [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items()]


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_train_predict_generate_info(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "model"
    trained = run("train", corpus_file, "--out", out, *TINY_FLAGS, "--max-steps=40", "--json")
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["steps"] == 40 and summary["cell"] == "lstm"

    table = run("predict", out, "anna has the red ")
    assert table.exit_code == 0 and "Next word after" in table.stdout and "probability" in table.stdout
    predicted = json.loads(run("predict", out, "anna gi", "--json", "-k", "3").stdout)
    assert predicted["context"] == "anna " and predicted["partial"] == "gi"
    probs = [p["prob"] for p in predicted["predictions"]]
    assert probs == sorted(probs, reverse=True) and all(p["word"].startswith("gi") for p in predicted["predictions"])

    streamed = run("generate", out, "anna has", "--seed", "3", "-n", "8")
    assert streamed.exit_code == 0 and streamed.stdout.startswith("anna has")
    samples = json.loads(run("generate", out, "anna has", "--seed", "3", "-n", "8", "--samples", "2", "--json").stdout)
    assert samples["prompt"] == "anna has" and len(samples["completions"]) == 2
    assert streamed.stdout.rstrip("\n") == "anna has" + samples["completions"][0]

    info = json.loads(run("info", out, "--json").stdout)
    assert info["config"]["cell"] == "lstm" and info["training"]["steps"] == 40 and info["parameters"] > 0
    assert "Training summary" in run("info", out).stdout


def test_default_output_directory_and_config_file(tmp_path: Path, corpus_file: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    preset = tmp_path / "preset.yaml"
    preset.write_text("".join(f"{k}: {v}\n" for k, v in TINY.items()) + "cell: gru\nmax_steps: 10\n")
    result = run("train", corpus_file, "--config", preset, "--quiet")
    assert result.exit_code == 0 and result.stdout == ""
    assert (tmp_path / "models" / "sentences-gru" / "model.safetensors").is_file()


def test_resume_continues_a_run(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "m"
    assert run("train", corpus_file, "--out", out, *TINY_FLAGS, "--max-steps=10", "-q").exit_code == 0
    resumed = run("train", corpus_file, "--out", out, "--resume", "--max-steps=20", "--json")
    assert resumed.exit_code == 0 and json.loads(resumed.stdout)["steps"] == 20
    changed = run("train", corpus_file, "--out", out, "--resume", "--hidden=64")
    assert changed.exit_code == 2 and "hidden cannot change" in changed.stderr


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "empty": b"",
        "blank": b" \n\n\t \n",
        "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "latin1": "caf\u00e9 au lait\n".encode("latin-1"),
        "tiny": b"just a few words\n",
        "malformed_yaml": b"cell: [lstm\n",
        "unknown_yaml": b"hiden: 32\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "folder").mkdir()
    return {name: tmp_path / name for name in [*files, "folder"]}


TRAIN_CASES = [
    (["{missing}"], "corpus not found"),
    (["{folder}"], "is a directory"),
    (["{empty}"], "empty or holds only whitespace"),
    (["{blank}"], "empty or holds only whitespace"),
    (["{binary}"], "looks binary (a NUL byte at offset 8)"),
    (["{latin1}"], "not UTF-8 text: invalid byte at offset 3"),
    (["{tiny}", "--vocab-size=8"], "too small for one batch"),
    (["{corpus}", "--layers=0"], "option 'layers' must be >= 1"),
    (["{corpus}", "--dropout=2"], "option 'dropout' must be <= 0.9"),
    (["{corpus}", "--lr=-0.1"], "option 'lr' must be > 0"),
    (["{corpus}", "--time-budget=soon"], "'soon' is not a duration"),
    (["{corpus}", "--config={malformed_yaml}"], "malformed YAML"),
    (["{corpus}", "--config={unknown_yaml}"], "unknown option 'hiden'"),
    (["{corpus}", "--config={missing}"], "config file not found"),
    (["{corpus}", "--valid={empty}"], "empty or holds only whitespace"),
    (["{corpus}", "--valid={missing}"], "--valid file not found: "),  # not "corpus not found": the corpus is there
    (
        ["{corpus}", "--device=cuda"] if not __import__("torch").cuda.is_available() else ["{corpus}", "--seq-len=0"],
        "option '",
    ),
]


@pytest.mark.parametrize("args, message", TRAIN_CASES, ids=[" ".join(a) for a, _ in TRAIN_CASES])
def test_bad_training_input_is_one_line_exit_2_and_loses_nothing(
    args, message, tmp_path: Path, corpus_file: Path, trained_model: Path, bad_files
) -> None:
    existing = tmp_path / "existing"
    shutil.copytree(trained_model, existing)
    before = {p.name: p.read_bytes() for p in existing.iterdir()}
    names = {
        **{k: str(v) for k, v in bad_files.items()},
        "missing": str(tmp_path / "missing.txt"),
        "corpus": str(corpus_file),
    }
    argv = [a.format(**names) for a in args]
    result = run("train", *argv, *TINY_FLAGS[1:2], "--out", existing, "--force")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    progress = ("Training ", "recipe: ", "tokenizer…", "encoding…", "training…", "note: ")  # a log before the error
    errors = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(progress)]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in existing.iterdir()} == before


@pytest.mark.parametrize("command", ["predict", "generate", "info"])
def test_model_that_is_not_a_model_directory(command: str, tmp_path: Path, corpus_file: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "today.txt").write_text("milk")
    for target, message in (
        (tmp_path / "nothing", "model not found"),
        (tmp_path / "empty", f"no nextword.json); train one with: nextword train CORPUS --out {tmp_path / 'empty'}"),
        (tmp_path / "notes", "not a nextword model directory (no nextword.json); give the folder nextword train wrote"),
        (
            corpus_file,
            f"is a file, not a model directory; give the folder nextword train wrote (to train a model on "
            f"this file: nextword train {corpus_file})",
        ),
    ):
        result = run(command, target, *(["some text"] if command != "info" else []))
        assert result.exit_code == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "command, args, message",
    [
        ("predict", ["anna", "--top-k", "0"], "'--suggestions' / '-k' / '--top-k': 0 is not in the range 1<=x<=100"),
        ("generate", ["anna", "--temperature", "-1"], "'temperature' must be >= 0"),
        ("generate", ["anna", "--samples", "0"], "'--samples': 0 is not in the range 1<=x<=100"),
    ],
)
def test_bad_prompts_and_options(command, args, message, trained_model: Path) -> None:
    result = run(command, trained_model, *args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_existing_model_is_not_overwritten_without_force(
    tmp_path: Path, corpus_file: Path, trained_model: Path
) -> None:
    result = run("train", corpus_file, "--out", trained_model, *TINY_FLAGS)
    assert result.exit_code == 2 and "use --force" in result.stderr


def test_typer_usage_errors_exit_2_without_traceback(corpus_file: Path) -> None:
    result = run("train", corpus_file, "--layers", "abc")
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.mark.parametrize(
    "option, value, choices",
    [
        ("--cell", "transformer", "'rnn', 'gru', 'lstm', 'ngram'"),
        ("--tokenizer", "morfessor", "'unigram', 'bpe', 'char', 'word'"),
    ],
)
def test_a_choice_outside_its_values_names_them(option: str, value: str, choices: str, corpus_file: Path) -> None:
    result = runner.invoke(app, ["train", str(corpus_file), option, value], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"'{value}' is not one of {choices}" in result.stderr
    assert run("train", corpus_file, option, value.upper()).exit_code == 2  # still refused in capitals


def test_module_and_console_script_entry_points() -> None:
    module = subprocess.run([sys.executable, "-m", "nextword", "--help"], capture_output=True, text=True)
    assert module.returncode == 0 and "train" in module.stdout and "predict" in module.stdout
    script = Path(sys.executable).with_name("nextword")
    assert script.exists()
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("nextword ")


def test_help_does_not_import_torch_or_numpy() -> None:
    """Help is built from the app (train's from the recipe's settings) without either: each costs --help time."""
    code = (
        "import sys, typer.main; from nextword.cli import app; typer.main.get_command(app); "
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'imported'"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path: Path, corpus_file: Path) -> None:
    import signal
    import time

    out = tmp_path / "m"
    flags = [f for f in TINY_FLAGS if not f.startswith("--max-steps")]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nextword",
            "train",
            str(corpus_file),
            "--out",
            str(out),
            *flags,
            "--max-steps=1000000",
            "--eval-every=50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NEXTWORD_CACHE": str(tmp_path / "cache")},
    )
    deadline = time.monotonic() + 60
    while not (out / "state.pt").exists() and time.monotonic() < deadline:  # training is under way
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "checkpoint saved" in stderr and f"--out {out} --resume" in stderr and "Traceback" not in stderr
    resumed = run("train", corpus_file, "--out", out, "--resume", "--max-steps=60", "--json")
    assert resumed.exit_code == 0 and json.loads(resumed.stdout)["steps"] >= 50


@pytest.mark.parametrize(
    "prompt",
    ["🙂🚀 ✨", "anna " * 4000, "日本語のテキスト ", "a\x00b "],
    ids=["emoji", "very long", "unseen script", "NUL in the prompt"],
)
def test_unusual_prompts_still_predict_and_generate(prompt: str, trained_model: Path) -> None:
    predicted = run("predict", trained_model, prompt, "--json")
    assert predicted.exit_code == 0, predicted.output
    assert all(0 < row["prob"] <= 1 for row in json.loads(predicted.stdout)["predictions"])
    generated = run("generate", trained_model, prompt, "-n", "3", "--seed", "1")
    assert generated.exit_code == 0, generated.output


def test_temperature_zero_is_greedy_and_repeatable(trained_model: Path) -> None:
    runs = [
        run("generate", trained_model, "anna has", "-n", "6", "--temperature", "0", "--seed", str(s)).stdout
        for s in (1, 2)
    ]
    assert runs[0] == runs[1] and runs[0].strip()


def test_one_repeated_word_and_an_unwritable_out(tmp_path: Path) -> None:
    corpus = tmp_path / "same.txt"
    corpus.write_text("hello " * 5000 + "\n")
    flags = [f for f in TINY_FLAGS if not f.startswith("--vocab-size")]
    trained = run("train", corpus, *flags, "--vocab-size=30", "--out", tmp_path / "m", "-q")
    assert trained.exit_code == 0, trained.output  # a vocabulary this text can support, with a note
    assert run("predict", tmp_path / "m", "hello hel", "--json").exit_code == 0
    blocked = tmp_path / "a-file.txt"  # --out inside a file: no directory can be made there, even by root
    blocked.write_text("keep me")
    result = run("train", corpus, *flags, "--vocab-size=30", "--out", blocked / "m")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot write to model directory")
    assert blocked.read_text() == "keep me"


def test_init_trains_a_personal_model_and_info_says_where_it_came_from(
    tmp_path: Path, trained_model: Path, trained_ngram: Path, corpus_file: Path
) -> None:
    personal = tmp_path / "personal.txt"
    personal.write_text("ben reads the old book to the cat .\n" * 200)
    out = tmp_path / "p"
    trained = run("train", personal, "--init", trained_model, "--out", out, "--max-steps=10", "--json")
    assert trained.exit_code == 0, trained.output
    info = json.loads(run("info", out, "--json").stdout)
    assert info["init"]["path"] == str(trained_model) and info["config"]["lr"] == pytest.approx(TINY["lr"] * 0.3)
    shown = run("info", out).stdout
    assert "started from" in shown and "trained on" in shown
    for args, message in (
        (["--hidden=64"], "hidden cannot change"),
        (["--resume"], "give one of them"),
        (["--init", tmp_path], "not a model"),
        ([], "n-gram model"),
    ):
        init = trained_ngram if not args else trained_model
        result = run("train", personal, "--init", init, "--out", tmp_path / "q", *args)
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
        assert message in result.stderr, (args, result.stderr)
    missing = run("train", personal, "--init", tmp_path / "nothing", "--out", tmp_path / "q")
    assert missing.exit_code == 2 and "model not found" in missing.stderr and not (tmp_path / "q").exists()


def test_typos_suggest_the_command_or_option_meant(trained_model: Path) -> None:
    command = run("predcit", trained_model, "anna ")
    assert command.exit_code == 2 and "Did you mean 'predict'?" in command.stderr
    option = run("predict", trained_model, "anna ", "--jsn")
    assert option.exit_code == 2 and "No such option: --jsn (Possible options: --json)" in option.stderr
    suggested = re.search(r"\(Possible options: ([^)]*)\)", run("train", trained_model, "--hiden", "8").stderr)
    assert suggested and "--hidden" in suggested.group(1).split(", ")


def _colours(text: str) -> set[str]:
    """The foreground and background colour codes among the SGR escapes in `text` (bold or dim are no colour)."""
    codes = {code for params in re.findall(r"\x1b\[([0-9;]*)m", text) for code in params.split(";")}
    return {code for code in codes if code[:1] in "349" and len(code) >= 2}


@pytest.mark.parametrize(
    "args",
    [["info", "no-such-model"], ["predict", "--top-k"], ["train", "--help"]],
    ids=["error", "usage error", "help"],
)
def test_no_color_turns_colour_off_even_where_colour_is_forced(args: list[str]) -> None:
    def shown(**env: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "nextword", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "FORCE_COLOR": "1", "COLUMNS": "100", **env},
        )
        return done.stdout + done.stderr

    assert _colours(shown())  # what a terminal would show is coloured…
    assert not _colours(shown(NO_COLOR="1"))  # …and no-color.org's NO_COLOR takes every colour away


def _variant_flags() -> list[str]:
    return [flag for flag in TINY_FLAGS if not flag.startswith(("--cell", "--max-steps"))] + ["--max-steps=10"]


@pytest.mark.parametrize(
    "command, progress",
    [
        (["train", "{corpus}", *_variant_flags(), "--cell=lstm", "--out", "{tmp}/m"], "step 10/10"),
        (
            ["compare", "{corpus}", "--cells", "rnn", *_variant_flags(), "--accuracy-words", "20", "--out", "{tmp}/c"],
            "step 10/10",
        ),
        (["evaluate", "{model}", "{corpus}", "--predict-words", "50"], "reading"),
    ],
    ids=["train", "compare", "evaluate"],
)
def test_json_alone_on_stdout_while_progress_goes_to_stderr(
    command, progress, tmp_path: Path, corpus_file: Path, trained_model: Path, monkeypatch
) -> None:
    from rich.console import Console

    from nextword import cli

    # The live progress display a terminal would get, so that there is progress to keep off stdout.
    monkeypatch.setattr(cli, "err", Console(stderr=True, force_terminal=True, highlight=False))
    names = {"corpus": corpus_file, "model": trained_model, "tmp": tmp_path}
    result = run(*[part.format(**names) for part in command], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)
    assert progress in result.stderr


def test_shell_completion_script_completes_commands_and_options(tmp_path: Path) -> None:
    # bash itself sources what --show-completion prints and asks it, as a Tab press would.
    asked = "; ".join(
        [
            f"source <({Path(sys.executable).with_name('nextword')} --show-completion bash)",
            "COMP_WORDS=(nextword pred); COMP_CWORD=1; _nextword_completion nextword",
            'echo "${COMPREPLY[@]}"',
            "COMP_WORDS=(nextword predict m --to); COMP_CWORD=3; _nextword_completion nextword",
            'echo "${COMPREPLY[@]}"',
            "COMP_WORDS=(nextword train c --cell ''); COMP_CWORD=4; _nextword_completion nextword",
            'echo "${COMPREPLY[@]}"',
        ]
    )
    done = subprocess.run(
        ["bash", "-c", asked],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert done.stdout.splitlines() == ["predict", "--top-k", "rnn gru lstm ngram"], done.stderr


def test_ctrl_c_before_training_begins_says_so_and_exits_130(tmp_path: Path, corpus_file: Path, monkeypatch) -> None:
    """Outside the training loop (which saves and says how to resume), Ctrl-C is one line, not silence."""
    import nextword.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nextword.train, "train_tokenizer_for", interrupted)
    result = CliRunner().invoke(app, ["train", str(corpus_file), "--out", str(tmp_path / "m"), "--quiet"])
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted"


@pytest.mark.parametrize(
    "flags, budget", [([], 60.0), (["--max-steps", "3"], None), (["--epochs", "2"], None), (["--cell", "ngram"], None)]
)
def test_a_short_text_trains_for_a_minute_unless_the_flags_say_when_to_stop(
    tmp_path: Path, corpus_file: Path, monkeypatch, flags: list[str], budget: float | None
) -> None:
    import nextword.train

    asked = []

    def training(settings, *args, **kwargs):
        asked.append(settings.train.time_budget)
        raise KeyboardInterrupt

    monkeypatch.setattr(nextword.train, "train", training)
    CliRunner().invoke(app, ["train", str(corpus_file), *flags, "--out", str(tmp_path / "m"), "--quiet"])
    assert asked == [budget]


def test_predict_generate_and_serve_take_a_component_and_predict_shows_them_all_side_by_side(
    trained_model: Path, trained_ngram: Path
) -> None:
    """A student's question, which part guesses what: the CLI's verbs name a component as evaluate does."""
    runner, text = CliRunner(), "anna has the red "
    loaded = checkpoint.load(trained_model)
    result = runner.invoke(app, ["predict", str(trained_model), text, "-k", "2", "--component", "all", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["components"]
    assert list(shown) == list(loaded.components())
    for name, predictions in shown.items():
        expected = Predictor(loaded, component=name).predict(text, k=2)
        assert [(p["word"], p["prob"]) for p in predictions] == [(w, pytest.approx(p)) for w, p in expected], name
    table = runner.invoke(app, ["predict", str(trained_model), text, "--component", "all"])
    assert table.exit_code == 0 and all(name in table.output for name in shown), table.output
    one = runner.invoke(app, ["predict", str(trained_model), text, "-k", "2", "--component", "ngram", "--json"])
    assert json.loads(one.output)["predictions"] == shown["ngram"]
    written = runner.invoke(
        app, ["generate", str(trained_model), "anna", "-n", "3", "--seed", "1", "--component", "ngram", "--json"]
    )
    expected = Predictor(loaded, component="ngram").generate("anna", seed=1, max_words=3)
    assert written.exit_code == 0 and json.loads(written.output)["completions"] == [expected], written.output
    served = runner.invoke(app, ["serve", str(trained_model), "--component", "neural"], input='{"text": "anna has "}\n')
    answer = [(w, p) for w, p in json.loads(served.output)["predictions"]]
    assert answer == [(w, pytest.approx(p)) for w, p in Predictor(loaded, component="neural").predict("anna has ")]
    refused = runner.invoke(app, ["generate", str(trained_model), "anna", "--component", "all"])
    assert refused.exit_code == 2 and "no component 'all'" in refused.output
    # A model of one component answers --component all in the same shape, for a script that asks every model so.
    alone = runner.invoke(app, ["predict", str(trained_ngram), text, "-k", "2", "--component", "all", "--json"])
    expected = Predictor(checkpoint.load(trained_ngram)).predict(text, k=2)
    assert [(p["word"], p["prob"]) for p in json.loads(alone.output)["components"]["ngram"]] == [
        (w, pytest.approx(p)) for w, p in expected
    ], alone.output
