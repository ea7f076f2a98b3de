"""The lexicon: the words of the training text, and suggestions kept to them."""

import contextlib
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nextword import checkpoint, load
from nextword.cli import app
from nextword.config import resolve
from nextword.errors import ModelDirError
from nextword.evaluate import word_metrics
from nextword.lexicon import DocumentWords, Lexicon, count_words, read_lexicon, write_lexicon
from nextword.predict import Predictor
from nextword.sampling import _LexiconWords
from nextword.tokenizer import EOS_ID
from nextword.train import train

from conftest import TINY
from test_evaluate import _slow_word_metrics

TEXTS = ("anna has ", "the c", "ben gi", "cora gives the ", "a", "dan has the old ")


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """A model trained for a few steps only: its pieces still spell many strings that are no word."""
    out = tmp_path_factory.mktemp("raw") / "raw"
    train(resolve(TINY, {"max_steps": 12}), corpus_file, out)
    return out


def test_counts_are_the_words_predict_returns(trained_model: Path, corpus_file: Path) -> None:
    tokenizer = load(str(trained_model)).tokenizer
    text = corpus_file.read_text() + "anna's well-known ball, (the) cat!\nzz.\n"
    ids = np.array(tokenizer.encode(text))
    assert count_words(tokenizer, ids) == Counter(word for _, word in tokenizer.words_at(ids))
    assert count_words(tokenizer, ids)["cat"] == text.count("cat")


def test_a_model_directory_holds_the_words_of_its_training_text(trained_model: Path, corpus_file: Path) -> None:
    lexicon = load(str(trained_model)).loaded.lexicon
    corpus_words = Counter(corpus_file.read_text().split())
    assert set(lexicon.counts) == set(corpus_words) - {"."}
    assert 0 < lexicon.counts["cat"] <= corpus_words["cat"]  # the end of the corpus is held out
    assert (trained_model / checkpoint.LEXICON).read_text().splitlines()[:2] == [
        "word\tcount",
        f"the\t{lexicon.counts['the']}",
    ]


def test_the_lexicon_round_trips_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    counts = {"the": 10, "don't": 3, "naïve": 3, "日本": 1}
    write_lexicon(tmp_path / "lexicon.tsv", {**counts, "a\tb": 2})  # a word with a tab cannot be typed
    assert read_lexicon(tmp_path / "lexicon.tsv").counts == counts
    assert read_lexicon(tmp_path / "missing.tsv") is None
    (tmp_path / "bad.tsv").write_text("word\tcount\nthe\tten\n")
    with pytest.raises(ModelDirError, match="bad.tsv is damaged"):
        read_lexicon(tmp_path / "bad.tsv")


def test_lexicon_questions() -> None:
    lexicon = Lexicon({"cat": 2, "cup": 1})
    assert lexicon.accepts("cat", -9.0) and not lexicon.accepts("ca", -1.0) and lexicon.accepts("ca", -0.5)
    assert lexicon.leads_to_word("cu", -9.0) and not lexicon.leads_to_word("co", -1.0)
    assert lexicon.has_word_starting("") and not lexicon.has_word_starting("d")


def test_document_words_count_from_their_first_use_until_an_edit_forgets_them() -> None:
    document = DocumentWords(Lexicon({"cat": 2, "cup": 1}))
    document.add_words([(0, "the"), (3, "Petruchio"), (5, "cat"), (8, "Petra"), (9, "Pe")], last_complete=False)
    assert document.first == {"the": 0, "Petruchio": 3, "Petra": 8}  # no lexicon word; "Pe" may go on
    early, late = document.before(4), document.before()
    assert "Petruchio" in early and "Petra" not in early and "Petra" in late and "cat" in early
    assert early.has_word_starting("Petr") and not early.has_word_starting("Petra") and late.has_word_starting("Petra")
    assert early.has_word_starting("c") and not late.has_word_starting("d")
    assert early.accepts("Petruchio", -9.0) and not early.accepts("Petra", -9.0) and early.accepts("Petra", -0.5)
    document.forget_after(3)
    assert document.first == {"the": 0, "Petruchio": 3} and not document.before().has_word_starting("Petra")


def test_words_the_document_used_are_suggested_after_it(raw: Path, corpus_file: Path, monkeypatch) -> None:
    """A word the training text lacks ("bert", spelt with its letters) is offered once the text has
    used it: by predict, a session (until an edit takes it out), generation and evaluate, which ranks
    the words predict shows."""
    predictor = Predictor.load(raw)
    assert not predictor.lexicon.has_word_starting("ber")
    assert predictor.predict("anna has ber", k=5) == []
    used = "bert has the red ball . ben gives bert the cup . the ber"
    assert [word for word, _ in predictor.predict(used, k=5)] == ["bert"]
    session = predictor.session()
    session.append(used)
    # The session reads the text in other pieces than one pass does: equal to float rounding.
    assert dict(session.predict(5)) == pytest.approx(dict(predictor.predict(used, k=5)), rel=1e-5)
    session.set_text("anna has ber")  # the edit takes out every use
    assert session.predict(5) == []
    session.set_text("anna has bert ber")
    assert [word for word, _ in session.predict(5)] == ["bert"]
    # Unless the prompt has finished it, a word being typed is no document word for generation.
    assert "bert" not in " ".join(predictor.generate("anna has ber", seed=seed, max_words=12) for seed in range(3))
    text = corpus_file.read_text()[:300] + " bert has the ball . " * 4
    ids = np.array(predictor.tokenizer.encode(text))
    assert "bert" not in predictor.lexicon and "bert" in {word for _, word in predictor.tokenizer.words_at(ids)}
    metrics = word_metrics(predictor, ids, ks=(1, 3), suggestions=3)
    assert metrics == _slow_word_metrics(predictor, ids, ks=(1, 3))
    monkeypatch.setattr(DocumentWords, "add_words", lambda *args, **kwargs: None)
    assert word_metrics(predictor, ids, ks=(1, 3), suggestions=3).keys > metrics.keys  # "be" offers bert


def test_every_suggestion_is_a_lexicon_word_unless_any_word(raw: Path) -> None:
    lexicon = read_lexicon(raw / checkpoint.LEXICON)
    words, anything = Predictor.load(raw), Predictor.load(raw, any_word=True)
    strays = set()
    for text in TEXTS:
        kept = [word for word, _ in words.predict(text, k=5)]
        assert all(word in lexicon for word in kept), (text, kept)
        partial = text.split(" ")[-1]
        # The search goes past the strings it turns away: every lexicon word that fits, up to k.
        fitting = [word for word in lexicon.counts if word.startswith(partial)]
        assert len(kept) == min(5, len(fitting)), (text, kept)
        strays.update(word for word, _ in anything.predict(text, k=5) if word not in lexicon)
    assert strays  # the barely trained model does spell non-words, which --any-word lets through


def test_generation_glues_no_letters_to_the_punctuation_that_ended_a_word(raw: Path) -> None:
    """ "cat." may be followed by a new word, a line break or more punctuation, never by "ntn": the
    letters would make "cat.ntn", which no lexicon holds."""
    predictor = Predictor.load(raw)
    tok = predictor.pieces.tokenizer
    letters = next(i for i in np.flatnonzero(tok.extends_word) if tok.piece_text[i].isalpha())
    full_stop = tok.encode_line("cat.")[-1]
    assert tok.piece_text[full_stop] == "."
    for prompt in ("the cat.", "the cat"):
        written = _LexiconWords(tok, predictor.lexicon, prompt)
        if prompt == "the cat":
            written.take(full_stop)
        assert not written.allows(letters)
        assert written.allows(full_stop) and written.allows(EOS_ID)
        written.take(EOS_ID)  # a line break: the next line may start as it likes
        assert written.allows(letters)


def test_generated_words_are_lexicon_words_unless_any_word(raw: Path) -> None:
    """Sampling keeps to the lexicon (a prompt's half-typed word is finished into one), in a session
    too; --any-word lets the barely trained model's non-words through."""
    words, anything = Predictor.load(raw), Predictor.load(raw, any_word=True)
    lexicon = words.lexicon

    def written(predictor: Predictor, prompt: str, seed: int) -> list[str]:
        # Hot sampling, so that the barely trained model's pieces spell non-words often.
        text = prompt + predictor.generate(prompt, seed=seed, max_words=30, temperature=2.0)
        return [word.rstrip(".,") for word in text.split()]

    for seed, prompt in enumerate(("anna has ", "the c", "ben gi")):
        made = written(words, prompt, seed)
        assert [word for word in made if any(c.isalnum() for c in word) and word not in lexicon] == [], made
        session = words.session()
        session.append(prompt)
        assert session.generate(seed=seed, max_words=30) == words.generate(prompt, seed=seed, max_words=30)
    assert any(
        word not in lexicon
        for seed in range(3)
        for word in written(anything, "anna has ", seed)
        if any(c.isalnum() for c in word)
    )
    # The command takes the same choice, shown on a seed where the two differ.
    hot = {"temperature": 2.0, "max_words": 30}
    seed = next(
        seed
        for seed in range(3)
        if words.generate("anna has ", seed=seed, **hot) != anything.generate("anna has ", seed=seed, **hot)
    )
    for flag, predictor in (([], words), (["--any-word"], anything)):
        shown = CliRunner().invoke(
            app, ["generate", str(raw), "anna has ", "--seed", str(seed), "-t", "2", "-n", "30", *flag]
        )
        assert shown.exit_code == 0, shown.output
        assert shown.stdout.rstrip("\n") == "anna has " + predictor.generate("anna has ", seed=seed, **hot).rstrip("\n")


def test_evaluate_ranks_lexicon_words_only(raw: Path, corpus_file: Path) -> None:
    predictor = Predictor.load(raw)
    lexicon = predictor.loaded.lexicon
    ids = np.array(predictor.tokenizer.encode(corpus_file.read_text()[:400]))
    positions = [position for position, _ in predictor.tokenizer.words_at(ids)][:8]
    for search in predictor.searches_along(ids, positions):  # what evaluate's top-k and keystrokes rank
        assert all(word in lexicon for partial in ("", "c", "g") for word, _ in search(partial, 5))
    anything = Predictor.load(raw, any_word=True)
    found = {word for search in anything.searches_along(ids, positions) for word, _ in search("", 5)}
    strays = found - set(lexicon.counts)
    assert strays


class _Terminal:
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("any_word", [False, True])
def test_interactive_suggests_lexicon_words_unless_any_word(raw: Path, monkeypatch, any_word: bool) -> None:
    from nextword import cli

    keyboards = []
    monkeypatch.setattr(cli, "_type_along", keyboards.append)
    monkeypatch.setattr(cli.sys, "stdin", _Terminal())
    monkeypatch.setattr(cli.sys, "stdout", _Terminal())
    monkeypatch.setattr(cli, "_raw_terminal", contextlib.nullcontext)
    cli.interactive(
        model=raw,
        suggestions=5,
        max_words=4,
        from_file=None,
        save=None,
        force=False,
        component=None,
        device=cli.Device("cpu"),
        any_word=any_word,
    )
    keyboard, lexicon = keyboards[0], read_lexicon(raw / checkpoint.LEXICON)
    offered = set()
    for key in "the c":
        keyboard.press(key)
        offered.update(keyboard.suggestions)
    assert offered and (offered <= set(lexicon.counts)) != any_word


def test_an_old_model_directory_without_a_lexicon_loads_and_suggests_anything(tmp_path: Path, raw: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(raw, old)
    (old / checkpoint.LEXICON).unlink()
    predictor = Predictor.load(old)
    assert predictor.lexicon is None
    assert predictor.predict("the c", k=5) == Predictor.load(raw, any_word=True).predict("the c", k=5)


def test_predict_command_says_when_no_lexicon_word_fits_and_prints_telling_probabilities(raw: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["predict", str(raw), "anna zzq"])
    assert unknown.exit_code == 0 and "no word in the model's lexicon starts with 'zzq'" in unknown.stderr
    table = runner.invoke(app, ["predict", str(raw), "anna has ", "-k", "5"]).stdout
    shown = [line.split("│")[3].strip() for line in table.splitlines() if line.count("│") >= 4]
    assert len(shown) == 5 and len(set(shown)) == 5 and "0.0000" not in shown  # told apart, none rounded to 0
    full = json.loads(runner.invoke(app, ["predict", str(raw), "anna has ", "--json", "-k", "5"]).stdout)
    exact = [p for _, p in Predictor.load(raw).predict("anna has ", k=5)]
    assert [row["prob"] for row in full["predictions"]] == exact  # JSON keeps full precision
    anything = json.loads(runner.invoke(app, ["predict", str(raw), "the c", "--json", "--any-word"]).stdout)
    assert any(row["word"] not in read_lexicon(raw / checkpoint.LEXICON) for row in anything["predictions"])
