import math
from pathlib import Path

import pytest
import torch

from nextword import load
from nextword.config import resolve
from nextword.errors import ConfigError, NextwordError
from nextword.predict import split_partial
from nextword.tokenizer import EOS_ID
from nextword.train import train

from conftest import TINY


@pytest.fixture(scope="module")
def model(trained_model: Path):
    return load(str(trained_model))


def _next_piece_logprobs(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        logits, _ = model.model(torch.tensor([ids]))
    return torch.log_softmax(logits[0, -1], dim=-1)


def _word_probability_by_hand(model, context: str, word: str) -> float:
    """P(word) from the model's piece probabilities along the tokenizer's own segmentation of the word."""
    tok = model.tokenizer
    ids = [EOS_ID] + tok.encode(context)
    logprob = 0.0
    for piece in tok.encode_line(word):
        logprob += _next_piece_logprobs(model, ids)[piece].item()
        ids.append(piece)
    boundary = torch.from_numpy(tok.ends_word.copy())
    return math.exp(logprob + torch.logsumexp(_next_piece_logprobs(model, ids)[boundary], 0).item())


def test_split_partial() -> None:
    assert split_partial("anna has ") == ("anna has ", "")
    assert split_partial("anna ha") == ("anna ", "ha")
    assert split_partial("line one\nli") == ("line one\n", "li")


def test_the_model_learned_the_obvious_next_words(model) -> None:
    assert model.predict("anna gives the red ball to the ", k=1)[0][0] == "cat"
    assert model.predict("ben has the red ", k=1)[0][0] == "ball"


def test_an_empty_text_asks_for_the_first_word_of_a_document(model) -> None:
    """As a keyboard offers words before the first key: the words after a line break alone."""
    predictions = model.predict("", k=4)
    assert len(predictions) == 4
    for word, prob in predictions:
        assert prob == pytest.approx(_word_probability_by_hand(model, "", word), rel=0.05, abs=1e-4)
    written = model.generate("", temperature=0, max_words=4)
    assert len(written.split()) == 4 and written == written.lstrip()  # words from the first, no space before


def test_a_text_that_is_not_text_is_refused_in_words(model) -> None:
    """Bytes decoded leniently (surrogateescape) come as lone surrogates, which SentencePiece cannot take."""
    with pytest.raises(ConfigError, match=r"unpaired surrogate \('\\udcff'\), which is not text"):
        model.predict("anna \udcff has ")
    with pytest.raises(ConfigError, match="unpaired surrogate"):  # a line long enough to be encoded in parts
        model.predict("anna has " * 3000 + "\udcff ")


def test_word_probabilities_agree_with_piece_probabilities(model) -> None:
    context = "cora has "
    predictions = model.predict(context, k=8)
    assert [p for _, p in predictions] == sorted((p for _, p in predictions), reverse=True)
    for word, prob in predictions:
        by_hand = _word_probability_by_hand(model, context, word)
        # The search sums every segmentation it finds, the tokenizer's own among them.
        assert prob >= by_hand * (1 - 1e-4)
        assert prob == pytest.approx(by_hand, rel=0.05, abs=1e-4)
    assert sum(p for _, p in model.predict(context, k=200)) <= 1 + 1e-4


def test_word_tokenizer_probabilities_are_exact(tmp_path: Path, corpus_file: Path) -> None:
    train(resolve(TINY, {"tokenizer": "word", "vocab_size": 26, "max_steps": 40}), corpus_file, tmp_path / "w")
    words = load(str(tmp_path / "w"))
    for word, prob in words.predict("dan gives ", k=5):
        assert prob == pytest.approx(_word_probability_by_hand(words, "dan gives ", word), rel=1e-5)


def test_a_partial_word_is_completed(model) -> None:
    completions = model.predict("anna gi", k=3)
    assert completions and all(word.startswith("gi") for word, _ in completions)
    assert completions[0][0] == "gives"
    assert all(word.startswith("c") for word, _ in model.predict("the c", k=5))


def test_unknown_letters_give_no_completions(model) -> None:
    assert model.predict("anna zq", k=5) == []


def test_generation_is_reproducible_by_seed_and_streams(model) -> None:
    first = model.generate("anna has", max_words=12, seed=7)
    assert first == model.generate("anna has", max_words=12, seed=7)
    assert first == "".join(model.stream("anna has", max_words=12, seed=7))
    others = {model.generate("anna has", max_words=12, seed=s, temperature=1.5) for s in range(5)}
    assert len(others) > 1


def test_generation_adds_at_most_max_words(model) -> None:
    for prompt in ("ben gives", "ben gives "):
        for seed in range(5):
            text = model.generate(prompt, max_words=6, seed=seed, temperature=2.0)
            added = len(text.split()) - (0 if prompt.endswith(" ") or text[:1].isspace() else 1)
            assert 1 <= added <= 6


def test_greedy_generation_ignores_the_seed(model) -> None:
    assert model.generate("dan has", temperature=0, seed=1) == model.generate("dan has", temperature=0, seed=2)


def test_a_prompt_ending_in_a_space_gets_a_new_word(model) -> None:
    text = model.generate("anna has ", max_words=3, temperature=0)
    assert not text.startswith(" ") and text.split()[0] in {"the", "a"}


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: m.predict("anna", k=0), "'top_k' must be >= 1"),
        (lambda m: m.generate("anna", max_words=0), "'max_words' must be >= 1"),
        (lambda m: m.generate("anna", temperature=-1), "'temperature' must be >= 0"),
        (lambda m: m.generate("anna", top_k=-2), "'top_k' must be >= 0"),
        (lambda m: m.generate("anna", top_p=0), "'top_p' must be in"),
    ],
)
def test_bad_arguments(model, call, words: str) -> None:
    with pytest.raises((NextwordError, ConfigError), match=words):
        call(model)


def test_bidirectional_models_predict_and_generate_like_causal_ones(tmp_path: Path, corpus_file: Path) -> None:
    train(
        resolve(TINY, {"bidirectional": True, "context": 12, "seq_len": 8, "max_steps": 400}),
        corpus_file,
        tmp_path / "bi",
    )
    bi = load(str(tmp_path / "bi"))
    assert bi.predict("anna gives the red ball to the ", k=1)[0][0] == "cat"
    for word, prob in bi.predict("cora has ", k=3):
        assert prob == pytest.approx(_word_probability_by_hand(bi, "cora has ", word), rel=0.05, abs=1e-4)
    assert all(w.startswith("gi") for w, _ in bi.predict("ben gi", k=3))
    assert bi.generate("dan has", max_words=8, seed=1) == bi.generate("dan has", max_words=8, seed=1)
