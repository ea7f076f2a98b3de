"""Property-based tests: whatever people type or write in a config, the only failures are the clear ones."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextword import load
from nextword.config import FIELDS, read_yaml, resolve
from nextword.errors import ConfigError, NextwordError

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
)


@pytest.fixture(scope="module")
def predictor(trained_model: Path):
    return load(str(trained_model))


@QUICK
@given(text=st.text(max_size=200))
def test_any_prompt_predicts_or_says_why(predictor, text: str) -> None:
    try:
        words = predictor.predict(text, k=3)
    except NextwordError as error:
        assert not text.strip() and "empty" in str(error)
        return
    assert len(words) <= 3 and all(word and 0 < p <= 1 for word, p in words)
    assert [p for _, p in words] == sorted((p for _, p in words), reverse=True)


@QUICK
@given(
    text=st.text(min_size=1, max_size=60),
    temperature=st.floats(0, 5),
    top_k=st.integers(0, 50),
    top_p=st.floats(0.01, 1),
)
def test_any_prompt_and_sampling_generates_or_says_why(
    predictor, text: str, temperature: float, top_k: int, top_p: float
) -> None:
    try:
        out = predictor.generate(text, seed=0, max_words=5, temperature=temperature, top_k=top_k, top_p=top_p)
    except NextwordError:
        assert not text.strip()
        return
    assert isinstance(out, str) and len((text + out).split()) - len(text.split()) <= 5  # words begun


@QUICK
@given(options=st.dictionaries(st.sampled_from(sorted(FIELDS)), values, max_size=6))
def test_any_option_values_resolve_or_raise_a_config_error(options: dict) -> None:
    try:
        config = resolve(options)
    except ConfigError as error:
        assert (
            "\n" not in str(error) and "option" in str(error) or "stopping rule" in str(error) or "n-gram" in str(error)
        )
        return
    for key, value in config.to_dict().items():
        assert value is None or isinstance(value, (int, float, str, bool)), key


@QUICK
@given(text=st.text(max_size=300))
def test_any_yaml_text_reads_as_options_or_raises_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "options.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        options = read_yaml(path)
    except ConfigError as error:
        assert "\n" not in str(error)
        return
    assert isinstance(options, dict)
    try:
        resolve(options)
    except ConfigError as error:  # options that read but do not resolve: still one clear line
        assert "\n" not in str(error) and str(error)
