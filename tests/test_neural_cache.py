"""The neural cache (neural_cache.py): its definition, however the text is read and its states shared."""

from __future__ import annotations

import torch

from nextword.neural_cache import TAIL_LIMIT, NeuralCache

VOCAB, DIM, LENGTH, WINDOW, THETA = 11, 8, 200, 50, 20.0


def _text(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, LENGTH, DIM, generator=generator), torch.randint(0, VOCAB, (1, LENGTH), generator=generator)


def _by_definition(features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """p_cache after each token, straight from the definition: entry m holds the features before
    token m and token m; the place after token t sees entries 1..t, the last WINDOW of them."""
    keys = torch.nn.functional.normalize(features[0], dim=-1)
    expected = torch.zeros(LENGTH, VOCAB)
    for t in range(LENGTH):
        entries = list(range(1, t + 1))[-WINDOW:]
        if entries:
            weights = torch.softmax(torch.stack([THETA * keys[t] @ keys[m - 1] for m in entries]), 0)
            for weight, m in zip(weights, entries):
                expected[t, tokens[0, m]] += weight
    return expected


@torch.inference_mode()
def test_the_cache_is_its_definition_read_whole_in_stretches_or_piece_by_piece() -> None:
    features, tokens = _text()
    expected = _by_definition(features, tokens)
    cache = NeuralCache(THETA, window=WINDOW)
    whole, peaks, _ = cache.distributions(None, features, tokens, VOCAB)
    assert torch.allclose(whole[0], expected, atol=1e-5)
    assert torch.allclose(peaks[0], expected.amax(-1), atol=1e-5)
    assert peaks[0, 0] == 0 and (peaks[0, 1:] > 0).all()  # nothing to see after the first piece alone
    state, parts, at = None, [], 0
    for length in (1, 7, 1, 1, 40, 3, 2 * TAIL_LIMIT, 1, 1, 1, LENGTH - 56 - 2 * TAIL_LIMIT):
        part, _, state = cache.distributions(state, features[:, at : at + length], tokens[:, at : at + length], VOCAB)
        parts.append(part[0])
        at += length
    assert at == LENGTH and torch.allclose(torch.cat(parts), expected, atol=1e-5)
    targets = torch.roll(tokens, -1, 1)
    found, found_peaks, _ = cache.target_probabilities(None, features, tokens, targets)
    assert torch.allclose(found[0, 0, :-1].float(), expected[torch.arange(LENGTH - 1), tokens[0, 1:]], atol=1e-5)
    assert torch.equal(found_peaks[0], peaks)  # the same peaks without the full distributions, bit for bit


@torch.inference_mode()
def test_states_that_share_a_document_never_change_one_another() -> None:
    features, tokens = _text(1)
    expected = _by_definition(features, tokens)
    cache = NeuralCache(THETA, window=WINDOW)
    _, _, at_100 = cache.distributions(None, features[:, :100], tokens[:, :100], VOCAB)
    # A guess read from there (as a word search reads its beams) takes the end of the shared log...
    _, _, guessed = cache.distributions(at_100, torch.randn(1, 1, DIM), torch.tensor([[3]]), VOCAB)
    # ...and the true text read on from the same state, piece by piece past TAIL_LIMIT, is still its definition.
    state, parts = at_100, []
    for t in range(100, 100 + 3 * TAIL_LIMIT):
        part, _, state = cache.distributions(state, features[:, t : t + 1], tokens[:, t : t + 1], VOCAB)
        parts.append(part[0])
    assert torch.allclose(torch.cat(parts), expected[100 : 100 + 3 * TAIL_LIMIT], atol=1e-5)
    # Rows selected and joined (the same log twice, and the guess) give each row its own answer.
    joined = at_100.join(guessed).join(at_100).select(torch.tensor([2, 1, 0]))
    last, _, _ = cache.distributions(
        joined, features[:, 100:101].expand(3, -1, -1), tokens[:, 100:101].expand(3, -1), VOCAB, last_only=True
    )
    assert torch.allclose(last[0, 0], expected[100], atol=1e-5) and torch.allclose(last[2, 0], expected[100], atol=1e-5)
    assert not torch.allclose(last[1, 0], expected[100], atol=1e-5)  # it has read the guess
    assert len(joined.logs) == 1  # the log is shared, not copied


@torch.inference_mode()
def test_several_thetas_at_once_are_each_their_own_cache() -> None:
    features, tokens = _text(2)
    targets = torch.roll(tokens, -1, 1)
    both, both_peaks, _ = NeuralCache(THETA).target_probabilities(None, features, tokens, targets, thetas=(5.0, 40.0))
    for row, theta in enumerate((5.0, 40.0)):
        alone, peaks, _ = NeuralCache(theta).target_probabilities(None, features, tokens, targets)
        assert torch.allclose(both[row], alone[0]) and torch.allclose(both_peaks[row], peaks[0])
    assert (both_peaks[1, :, 1:] > both_peaks[0, :, 1:]).float().mean() > 0.9  # a sharper cache is surer
