"""Nothing written where it should not be, nothing waited on forever, no traceback (issue 14).

Each hostile case asserts its exact outcome: the victim file's bytes unchanged, exit code 2, one
line on stderr naming the cause, no traceback; a FIFO refused without being opened for reading.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from nextword.checkpoint import load
from nextword.cli import app
from nextword.data import check_corpus, encode_corpus
from nextword.errors import CorpusError, ModelDirError, WriteError
from nextword.files import atomic_path, exclusive_lock, write_text
from nextword.tokenizer import Tokenizer

from conftest import TINY

TINY_FLAGS = [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items() if key != "max_steps"]
VICTIM = b"export PATH=/usr/bin  # a file the user cares about\n"


def run(*args: object, input: str | bytes | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_refused(result, *words: str) -> str:
    """Exit code 2, exactly one line on stderr holding each of `words`, no traceback; returns the line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / ".bashrc"
    path.parent.mkdir()
    path.write_bytes(VICTIM)
    return path


@pytest.fixture
def model_dir(tmp_path: Path, trained_model: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(trained_model, copy)
    (copy / ".nextword.lock").unlink(missing_ok=True)
    return copy


@contextlib.contextmanager
def watched_fifo(path: Path) -> Iterator[list[bool]]:
    """A FIFO at `path`, and a flag set if anyone opened it for reading.

    A thread keeps trying to open it for writing without blocking, which succeeds only while a reader
    has it open; it then closes it, so a reader that opened it gets end of file instead of hanging.
    """
    os.mkfifo(path)
    opened, done = [False], threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                opened[0] = True
            except OSError:
                time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        done.set()
        thread.join()


# -- 1. nothing is written through a link ----------------------------------------------------------------


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_is_unchanged(
    model_dir: Path, victim: Path, corpus_file: Path
) -> None:
    (model_dir / ".nextword.lock").symlink_to(victim)
    result = run("train", corpus_file, "--out", model_dir, "--force", *TINY_FLAGS, "--max-steps=1", "-q")
    assert_refused(result, str(model_dir / ".nextword.lock"), "symbolic link")
    assert victim.read_bytes() == VICTIM


@pytest.mark.parametrize("make", ["fifo", "hard link", "directory"])
def test_a_lock_that_is_not_a_regular_file_of_its_own_is_refused(
    model_dir: Path, victim: Path, corpus_file: Path, make: str
) -> None:
    lock = model_dir / ".nextword.lock"
    {"fifo": lambda: os.mkfifo(lock), "hard link": lambda: os.link(victim, lock), "directory": lock.mkdir}[make]()
    result = run("train", corpus_file, "--out", model_dir, "--force", *TINY_FLAGS, "--max-steps=1", "-q")
    assert_refused(result, str(lock))
    assert victim.read_bytes() == VICTIM


def test_the_lock_refuses_a_link_made_after_the_check(tmp_path: Path, victim: Path, monkeypatch) -> None:
    # O_NOFOLLOW, not the os.path.islink check, is what holds against a link made in between.
    monkeypatch.setattr(os.path, "islink", lambda path: False)
    (tmp_path / "lock").symlink_to(victim)
    with pytest.raises(ModelDirError, match="symbolic link"), exclusive_lock(tmp_path / "lock", ModelDirError):
        pass
    assert victim.read_bytes() == VICTIM


def test_a_write_over_a_symlink_replaces_the_link_not_its_target(tmp_path: Path, victim: Path) -> None:
    target = tmp_path / "summary.json"
    target.symlink_to(victim)
    write_text(target, "{}")
    assert victim.read_bytes() == VICTIM and not target.is_symlink() and target.read_text() == "{}"


def test_a_temporary_file_replaced_by_a_link_is_not_renamed_into_place(tmp_path: Path, victim: Path) -> None:
    target = tmp_path / "model.safetensors"
    with pytest.raises(WriteError, match="replaced by something else"):
        with atomic_path(target) as temporary:
            temporary.unlink()
            temporary.symlink_to(victim)
    assert not target.exists() and not os.path.lexists(temporary) and victim.read_bytes() == VICTIM


def test_resuming_into_a_directory_of_links_writes_none_of_their_targets(
    tmp_path: Path, corpus_file: Path, victim: Path
) -> None:
    out = tmp_path / "m"
    assert run("train", corpus_file, "--out", out, *TINY_FLAGS, "--max-steps=2", "--eval-every=1", "-q").exit_code == 0
    victims = {}
    for name in ("metrics.jsonl", "summary.json", "state.pt", "model.safetensors", "config.yaml", "nextword.json"):
        elsewhere = victim.parent / name
        elsewhere.write_bytes((out / name).read_bytes())  # the links point at the same content, so it resumes
        (out / name).unlink()
        (out / name).symlink_to(elsewhere)
        victims[elsewhere] = elsewhere.read_bytes()
    result = run("train", corpus_file, "--out", out, "--resume", "--max-steps=4", "-q")
    assert result.exit_code == 0, result.output
    assert all(path.read_bytes() == content for path, content in victims.items())
    assert not any(
        (out / name).is_symlink() for name in ("metrics.jsonl", "summary.json", "state.pt", "model.safetensors")
    )


# -- 2. export never replaces a file unasked, nor a model's own files -------------------------------------


def test_export_refuses_an_existing_file_without_force(model_dir: Path, victim: Path) -> None:
    result = run("export", model_dir, "--format", "torchscript", "--out", victim)
    assert_refused(result, str(victim), "--force")
    assert victim.read_bytes() == VICTIM


# Loaded as users load it; torch 2.13 deprecates torch.jit.load (see test_export.py).
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_replaces_an_existing_file_with_force(model_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "step.pt"
    target.write_bytes(b"old")
    assert run("export", model_dir, "--format", "torchscript", "--out", target, "--force").exit_code == 0
    assert torch.jit.load(str(target)) is not None


@pytest.mark.parametrize("name", ["model.safetensors", "nextword.json", "tokenizer.model", ".nextword.lock"])
def test_export_never_replaces_a_model_directory_s_own_files_even_with_force(model_dir: Path, name: str) -> None:
    target = model_dir / name
    target.touch()
    before = target.read_bytes()
    result = run("export", model_dir, "--format", "torchscript", "--out", target, "--force")
    assert_refused(result, "never replaces")
    assert target.read_bytes() == before


def test_export_with_force_over_a_link_replaces_the_link(model_dir: Path, tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "step.pt"
    link.symlink_to(victim)
    assert run("export", model_dir, "--format", "torchscript", "--out", link, "--force").exit_code == 0
    assert victim.read_bytes() == VICTIM and not link.is_symlink()


# -- 3. the bytes encoded are the bytes hashed -------------------------------------------------------------


def test_a_corpus_edited_between_hash_and_encoding_is_never_cached(
    tmp_path: Path, token_cache: Path, trained_model: Path
) -> None:
    corpus = tmp_path / "notes.txt"
    corpus.write_text("anna has the red ball .\n" * 50)
    checked = check_corpus(corpus)
    corpus.write_text("ben has the old book .\n" * 50)  # edited while the run prepares
    with pytest.raises(CorpusError, match="changed while nextword was reading it"):
        encode_corpus(checked, Tokenizer.load(trained_model / "tokenizer.model"))
    assert list(token_cache.iterdir()) == []


def test_resume_after_the_corpus_content_changed_says_so(tmp_path: Path, corpus_file: Path) -> None:
    corpus, out = tmp_path / "c.txt", tmp_path / "m"
    corpus.write_bytes(corpus_file.read_bytes())
    assert run("train", corpus, "--out", out, *TINY_FLAGS, "--max-steps=2", "--eval-every=1", "-q").exit_code == 0
    corpus.write_text(corpus.read_text() + "cora has a green hat .\n")
    line = assert_refused(
        run("train", corpus, "--out", out, "--resume", "--max-steps=4", "-q"),
        "content",
        "changed since this run started",
    )
    assert line.count("c.txt") == 1


# -- 4. only regular files are read; - is standard input ---------------------------------------------------


@pytest.mark.parametrize("place", ["corpus", "--valid", "--config", "evaluate"])
def test_a_fifo_is_refused_without_being_opened(
    tmp_path: Path, corpus_file: Path, trained_model: Path, place: str
) -> None:
    fifo = tmp_path / "pipe"
    with watched_fifo(fifo) as opened:
        args = {
            "corpus": ["train", fifo],
            "--valid": ["train", corpus_file, "--valid", fifo],
            "--config": ["train", corpus_file, "--config", fifo],
            "evaluate": ["evaluate", trained_model, fifo],
        }
        result = run(
            *args[place],
            "--out" if place != "evaluate" else "--json",
            *([tmp_path / "m", *TINY_FLAGS, "--max-steps=1", "-q"] if place != "evaluate" else []),
        )
    assert_refused(result, str(fifo), "FIFO")
    assert not opened[0]


@pytest.mark.parametrize(
    "name", ["tokenizer.model", "nextword.json", "model.safetensors", "config.yaml", "summary.json"]
)
def test_a_model_file_that_is_a_fifo_is_refused_without_being_opened(model_dir: Path, name: str) -> None:
    (model_dir / name).unlink()
    with watched_fifo(model_dir / name) as opened:
        result = run("predict", model_dir, "anna has ")
    assert_refused(result)
    assert not opened[0]


def test_a_device_as_corpus_is_refused() -> None:
    assert_refused(run("train", "/dev/zero", "--max-steps=1", "-q"), "/dev/zero", "character device")


def test_standard_input_is_a_corpus(tmp_path: Path, corpus_file: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("train", "-", *TINY_FLAGS, "--max-steps=2", "-q", input=corpus_file.read_bytes())
    assert result.exit_code == 0, result.output
    out = tmp_path / "models" / "stdin-lstm"
    manifest = json.loads((out / "nextword.json").read_text())
    assert manifest["corpus"] == "stdin" and manifest["corpus_sha256"] == check_corpus(corpus_file).sha256
    assert run("predict", out, "anna has ").exit_code == 0


def test_standard_input_that_is_empty_is_refused(tmp_path: Path) -> None:
    assert_refused(run("train", "-", "--out", tmp_path / "m", "--max-steps=1", "-q", input=b""), "empty")


# -- 5. counts are bounded up front ------------------------------------------------------------------------


def test_a_huge_top_k_is_refused_at_once(trained_model: Path) -> None:
    assert_refused(run("predict", trained_model, "anna has ", "-k", "1000000"), "--top-k", "100")


def test_a_huge_seed_for_training_is_refused(tmp_path: Path, corpus_file: Path) -> None:
    assert_refused(run("train", corpus_file, "--out", tmp_path / "m", "--seed", str(10**30), "-q"), "seed")


# -- 6. one device check ------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("verb", ["predict", "generate", "evaluate", "train", "compare"])
def test_a_device_that_is_not_there_is_one_line(
    verb: str, trained_model: Path, corpus_file: Path, tmp_path: Path
) -> None:
    args = {
        "predict": [trained_model, "anna has "],
        "generate": [trained_model, "anna has"],
        "evaluate": [trained_model, corpus_file],
        "train": [corpus_file, "--out", tmp_path / "m", *TINY_FLAGS[:-1], "--max-steps=1", "-q"],
        "compare": [corpus_file, "--cells", "rnn", "--out", tmp_path / "c", "--max-steps=1", "-q"],
    }[verb]
    assert_refused(run(verb, *args, "--device", "cuda"), "device", "cuda")


def test_device_means_the_same_for_every_verb() -> None:
    import typer.main

    defaults = {
        (command.name, param.default)
        for command in typer.main.get_command(app).commands.values()
        for param in command.params
        if param.name == "device"
    }
    assert {default for _, default in defaults} <= {"auto", None}  # None: training options default to the config
    from nextword.config import TrainArgs

    assert TrainArgs().device == "auto"


# -- 7. text that is not UTF-8 ------------------------------------------------------------------------------


def test_undecodable_bytes_in_a_prompt_are_one_line(trained_model: Path) -> None:
    prompt = b"the \xff king ".decode("utf-8", "surrogateescape")  # what the shell's bytes become in argv
    assert_refused(run("predict", trained_model, prompt), "not UTF-8")
    assert_refused(run("generate", trained_model, prompt), "not UTF-8")


def test_undecodable_bytes_in_a_path_are_one_line(trained_model: Path, tmp_path: Path) -> None:
    # torch and safetensors take only UTF-8 paths: refused up front, not a TypeError deep in an export.
    target = tmp_path / b"\xff.pt".decode("utf-8", "surrogateescape")
    assert_refused(run("export", trained_model, "--format", "torchscript", "--out", target), "not UTF-8")
    assert not os.path.lexists(target)


def test_undecodable_bytes_from_a_real_shell_are_one_line(trained_model: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nextword", "predict", str(trained_model).encode(), b"the \xff king "],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.decode().count("\n") == 1 and b"not UTF-8" in result.stderr


# -- 8. damaged tokenizers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"\n\x03abc"], ids=["empty", "zeros", "garbage"])
def test_a_damaged_tokenizer_is_one_line_for_predict_and_init(
    model_dir: Path, corpus_file: Path, tmp_path: Path, content: bytes
) -> None:
    (model_dir / "tokenizer.model").write_bytes(content)
    assert_refused(run("predict", model_dir, "anna has "), "tokenizer file is damaged")
    assert_refused(
        run("train", corpus_file, "--init", model_dir, "--out", tmp_path / "new", "--max-steps=1", "-q"),
        "tokenizer file is damaged",
    )


def test_an_empty_tokenizer_leaves_no_native_log_on_stderr(model_dir: Path) -> None:
    (model_dir / "tokenizer.model").write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "nextword", "predict", str(model_dir), "anna has "],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "empty" in result.stderr


# -- 9, 10. broken weights, manifests of the wrong types ---------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_weights_that_are_not_finite_are_broken(
    model_dir: Path, corpus_file: Path, tmp_path: Path, value: float
) -> None:
    tensors = load_file(str(model_dir / "model.safetensors"))
    name = next(iter(tensors))
    tensors[name].view(-1)[0] = value
    save_file(tensors, str(model_dir / "model.safetensors"))
    for args in (
        ["predict", model_dir, "anna has "],
        ["generate", model_dir, "anna has"],
        ["train", corpus_file, "--init", model_dir, "--out", tmp_path / "new", "--max-steps=1", "-q"],
    ):
        assert_refused(run(*args), "weights are broken")


@pytest.mark.parametrize("dtype, stored", [(torch.int8, "I8"), (torch.bool, "BOOL")])
def test_weights_of_another_dtype_are_refused(model_dir: Path, dtype: torch.dtype, stored: str) -> None:
    tensors = load_file(str(model_dir / "model.safetensors"))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].to(dtype)
    save_file(tensors, str(model_dir / "model.safetensors"))
    assert_refused(run("predict", model_dir, "anna has "), "model.safetensors", repr(name), f"is {stored}")


@pytest.mark.parametrize(
    "field, value",
    [
        ("vocab_size", "many"),
        ("format", True),
        ("kind", "zzz"),
        ("corpus_sha256", 7),
        ("cutoffs", [5, 3]),
        ("init", "elsewhere"),
    ],
)
def test_a_manifest_field_of_the_wrong_type_is_named(model_dir: Path, field: str, value) -> None:
    manifest = json.loads((model_dir / "nextword.json").read_text())
    manifest[field] = value
    (model_dir / "nextword.json").write_text(json.dumps(manifest))
    assert_refused(run("predict", model_dir, "anna has "), "nextword.json", f"'{field}'")


def test_a_manifest_with_fields_from_a_newer_nextword_still_loads(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "nextword.json").read_text())
    (model_dir / "nextword.json").write_text(json.dumps({**manifest, "mixture": {"weights": [0.5]}}))
    assert load(model_dir).manifest["mixture"] == {"weights": [0.5]}


def test_a_manifest_whose_vocabulary_differs_from_the_tokenizer_is_refused(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "nextword.json").read_text())
    (model_dir / "nextword.json").write_text(json.dumps({**manifest, "vocab_size": 31}))
    assert_refused(run("predict", model_dir, "anna has "), "'vocab_size' is 31")


# -- 11. messages that name the real cause ------------------------------------------------------------------


def test_a_model_too_large_for_memory_says_so(tmp_path: Path, corpus_file: Path, model_dir: Path) -> None:
    assert_refused(
        run("train", corpus_file, "--out", tmp_path / "m", *TINY_FLAGS, "--hidden", str(10**7), "--max-steps=1", "-q"),
        "too large for memory",
        "--hidden",
    )
    config = model_dir / "config.yaml"
    config.write_text(config.read_text().replace("hidden: 32", f"hidden: {10**30}"))
    assert_refused(run("predict", model_dir, "anna has "), "too large for memory")


@pytest.mark.parametrize("place", ["model", "corpus"])
def test_a_symlink_loop_is_not_called_missing(tmp_path: Path, trained_model: Path, place: str) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    args = ["predict", loop, "anna has "] if place == "model" else ["evaluate", trained_model, loop]
    line = assert_refused(run(*args), "loop of symbolic links")
    assert "not found" not in line


def test_generate_prints_nothing_before_an_option_error(trained_model: Path) -> None:
    for option in (["--temperature", "-1"], ["--top-p", "0"], ["--temperature", "nan"]):
        result = run("generate", trained_model, "anna has", *option)
        assert_refused(result)
        assert result.stdout == ""


# -- loading needs no POSIX-only module (Windows) ------------------------------------------------------------


def test_the_package_loads_and_predicts_without_fcntl_or_termios(tmp_path: Path, trained_model: Path) -> None:
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('fcntl', 'termios', 'tty'):\n"
        "            raise ImportError(f'{name} is not on this platform')\n"
        "sys.meta_path.insert(0, Block())\n"
        "for name in ('fcntl', 'termios', 'tty'):\n"
        "    sys.modules.pop(name, None)\n"
    )
    script = (
        "import nextword, nextword.cli, nextword.checkpoint, nextword.train\n"
        "from nextword.predict import Predictor\n"
        f"print(Predictor.load({str(trained_model)!r}).predict('anna has ', k=2))\n"
        "try:\n    import fcntl\nexcept ImportError:\n    print('blocked')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "blocked" and result.stdout.count("(") >= 2
