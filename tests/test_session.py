"""Sessions: a document kept with the model's state answers what `predict` answers for its whole text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextword import load
from nextword.errors import ConfigError
from nextword.session import RECENT, _SETTLED, common_prefix_length

WORDS = [
    "anna",
    "ben",
    "has",
    "gives",
    "the",
    "red",
    "ball",
    "to",
    "cat",
    "a",
    "small",
    "cup",
    "old",
    "book",
    ".",
    "cora's",
    "dan,",
    "well-known",
    "xyzzy",
    "é",
    "e\u0301",
    "日本",
    "🙂",
    "\u00a8",
]
# What people type between words, and what SentencePiece normalises: runs of spaces, tabs, no-break spaces.
GAPS = [" ", " ", " ", "  ", "\n", " \n", "\n\n", "\t", "\u00a0", " \u3000"]

fragment = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(GAPS)), max_size=6).map(
    lambda pairs: "".join(word + gap for word, gap in pairs)
)
partial = st.sampled_from(["", "", "a", "gi", "c", "th", "zq", "日", "bal", "xy"])  # xyzzy: no lexicon word
edit = st.one_of(
    st.tuples(st.just("append"), fragment.map(lambda text: text), partial),
    st.tuples(st.just("backspace"), st.integers(1, 12), st.just("")),
    st.tuples(st.just("paste"), st.floats(0, 1), fragment),
    st.tuples(st.just("type"), st.sampled_from(WORDS), st.sampled_from(GAPS)),
)


def apply(session, edit: tuple) -> None:
    kind, a, b = edit
    text = session.text
    if kind == "append":
        session.append(a + b)
    elif kind == "type":  # one key at a time, as a keyboard sends them
        for char in a + b:
            session.append(char)
    elif kind == "backspace":
        session.set_text(text[: max(0, len(text) - a)])
    else:  # a paste somewhere inside the text
        at = int(a * len(text))
        session.set_text(text[:at] + b + text[at:])


@pytest.fixture(scope="module")
def predictors(trained_model: Path, trained_bidirectional: Path, trained_ngram: Path) -> dict:
    return {
        "causal": load(str(trained_model)),
        "bidirectional": load(str(trained_bidirectional)),
        "ngram": load(str(trained_ngram)),
    }


def assert_same(found: list, expected: list) -> None:
    assert [word for word, _ in found] == [word for word, _ in expected]
    for (_, p), (_, q) in zip(found, expected):
        assert p == pytest.approx(q, abs=1e-5)


@pytest.mark.parametrize("kind", ["causal", "bidirectional", "ngram"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=fragment, edits=st.lists(edit, min_size=1, max_size=5), k=st.sampled_from([1, 5]))
def test_a_session_answers_what_predict_answers(predictors: dict, kind: str, start: str, edits: list, k: int) -> None:
    predictor = predictors[kind]
    session = predictor.session()
    session.set_text(start)
    for change in edits:
        apply(session, change)
        if session.text.strip():
            assert_same(session.predict(k), predictor.predict(session.text, k))


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=40), st.text(st.characters(codec="utf-8"), max_size=40))
def test_text_after_a_settled_place_encodes_to_the_rest_of_the_ids(predictors: dict, head: str, tail: str) -> None:
    """The assumption sessions rest on, for any text at all: after a space or a line break, the ids of
    what follows are the rest of the whole text's ids."""
    tokenizer = predictors["causal"].tokenizer
    text = head + " " + tail
    for place in [m.end() for m in _SETTLED.finditer(text)]:
        assert tokenizer.encode(text[:place]) + tokenizer.encode(text[place:]) == tokenizer.encode(text)


def test_a_long_document_keeps_few_readings_and_edits_back_cheaply(predictors: dict) -> None:
    predictor = predictors["causal"]
    session = predictor.session()
    document = "anna has the red ball . ben gives a small cup to the cat .\n" * 200
    session.append(document)
    assert_same(session.predict(3), predictor.predict(document, 3))
    saved = [reading.position for reading in session._saved]
    assert len(saved) <= 1 + RECENT + 32 and saved == sorted(saved) and saved[0] == 0
    assert saved[-RECENT:] == [m.end() for m in _SETTLED.finditer(document)][-RECENT:]  # the newest: all
    calls = []
    original = predictor.pieces.run

    def counted(tokens, state=None):  # the time steps of each call: a list of ids, or (rows, 1) in a search
        calls.append(len(tokens) if isinstance(tokens, list) else tokens.shape[-1])
        return original(tokens, state)

    predictor.pieces.run = counted
    try:
        session.set_text(document[:-12])  # back over three words, then typed on key by key
        for char in "the old book ":
            session.append(char)
            session.predict(3)
    finally:
        predictor.pieces.run = original
    assert max(calls) < 10  # a word's pieces at a time, never the document
    assert_same(session.predict(3), predictor.predict(session.text, 3))


def test_generation_continues_the_document(predictors: dict) -> None:
    for kind in ("causal", "ngram"):
        predictor = predictors[kind]
        session = predictor.session()
        for text in ("anna has the red", "anna has the red ball .\nben gives "):
            session.set_text(text)
            for seed in range(3):
                assert session.generate(seed=seed, max_words=6) == predictor.generate(text, seed=seed, max_words=6)
        assert session.text == "anna has the red ball .\nben gives "  # generating leaves the text alone


def test_an_empty_session_answers_and_refuses_like_predict(predictors: dict) -> None:
    predictor = predictors["causal"]
    session = predictor.session()
    assert session.predict() == predictor.predict("")  # the first words of a document
    session.append("anna ")
    with pytest.raises(ConfigError, match="top_k"):
        session.predict(0)
    session.reset()
    assert session.text == ""
    assert session.generate(seed=3, max_words=4) == predictor.generate("", seed=3, max_words=4)


@pytest.mark.parametrize(
    "a, b",
    [
        ("", ""),
        ("abc", "abc"),
        ("abc", "abd"),
        ("abc", "ab"),
        ("ab", "abc"),
        ("x" * 1000 + "a", "x" * 1000 + "b"),
        ("abc", "xbc"),
    ],
)
def test_common_prefix_length(a: str, b: str) -> None:
    expected = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    assert common_prefix_length(a, b) == expected
