"""The neural cache (neural_cache.py): its definition, however the text is read and its states shared."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nextword.neural_cache import FEWEST_ENTRIES, TAIL_LIMIT, Memory, NeuralCache, Peaks, typical_weight

VOCAB, DIM, LENGTH, WINDOW, THETA = 11, 8, 200, 50, 20.0


def _text(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, LENGTH, DIM, generator=generator), torch.randint(0, VOCAB, (1, LENGTH), generator=generator)


def _by_definition(features: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """p_cache after each token, straight from the definition: entry m holds the features before
    token m and token m; the place after token t sees entries 1..t, the last WINDOW of them. With
    how many entries each place sees and the log of their mean weight exp(θ h·h_j)."""
    keys = torch.nn.functional.normalize(features[0], dim=-1)
    expected, seen, log_mean = torch.zeros(LENGTH, VOCAB), torch.zeros(LENGTH, dtype=torch.long), torch.zeros(LENGTH)
    log_mean[0] = -torch.inf
    for t in range(LENGTH):
        entries = list(range(1, t + 1))[-WINDOW:]
        if entries:
            scores = torch.stack([THETA * keys[t] @ keys[m - 1] for m in entries])
            for weight, m in zip(torch.softmax(scores, 0), entries):
                expected[t, tokens[0, m]] += weight
            seen[t], log_mean[t] = len(entries), scores.exp().mean().log()
    return expected, seen, log_mean


@torch.inference_mode()
def test_the_cache_is_its_definition_read_whole_in_stretches_or_piece_by_piece() -> None:
    features, tokens = _text()
    expected, seen, log_mean = _by_definition(features, tokens)
    cache = NeuralCache(THETA, window=WINDOW)
    whole, peaks, _ = cache.distributions(None, features, tokens, VOCAB)
    assert torch.allclose(whole[0], expected, atol=1e-5)
    assert torch.allclose(peaks.peak[0], expected.amax(-1), atol=1e-5)
    assert peaks.peak[0, 0] == 0 and (peaks.peak[0, 1:] > 0).all()  # nothing to see after the first piece alone
    assert torch.equal(peaks.seen[0], seen) and torch.allclose(peaks.log_mean[0], log_mean, atol=1e-4)
    state, parts, at = None, [], 0
    for length in (1, 7, 1, 1, 40, 3, 2 * TAIL_LIMIT, 1, 1, 1, LENGTH - 56 - 2 * TAIL_LIMIT):
        part, _, state = cache.distributions(state, features[:, at : at + length], tokens[:, at : at + length], VOCAB)
        parts.append(part[0])
        at += length
    assert at == LENGTH and torch.allclose(torch.cat(parts), expected, atol=1e-5)
    targets = torch.roll(tokens, -1, 1)
    found, found_peaks, _ = cache.target_probabilities(None, features, tokens, targets)
    assert torch.allclose(found[0, 0, :-1].float(), expected[torch.arange(LENGTH - 1), tokens[0, 1:]], atol=1e-5)
    # The same peaks without the full distributions, bit for bit.
    assert all(torch.equal(getattr(found_peaks, name)[0], getattr(peaks, name)) for name in ("peak", "log_mean"))
    assert torch.equal(found_peaks.seen, peaks.seen)


@torch.inference_mode()
def test_states_that_share_a_document_never_change_one_another() -> None:
    features, tokens = _text(1)
    expected, _, _ = _by_definition(features, tokens)
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
    joined = Memory.joined([at_100, guessed, at_100]).select(torch.tensor([2, 1, 0]))
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
        assert torch.allclose(both[row], alone[0]) and torch.allclose(both_peaks.peak[row], peaks.peak[0])
        assert torch.allclose(both_peaks.log_mean[row], peaks.log_mean[0]) and torch.equal(both_peaks.seen, peaks.seen)
    assert (both_peaks.peak[1, :, 1:] > both_peaks.peak[0, :, 1:]).float().mean() > 0.9  # a sharper cache is surer


def test_a_place_that_has_read_few_entries_holds_the_share_of_enough_typical_ones_it_carries() -> None:
    peaks = Peaks(torch.tensor([0.0, 0.9, 0.9, 0.9]), torch.tensor([0, 5, 50, 57]), torch.tensor([-torch.inf, 3, 3, 9]))
    # No typical weight: all the weight wherever an entry is seen, as before.
    assert torch.equal(NeuralCache(THETA, 50).share(peaks), torch.tensor([0.0, 1, 1, 1], dtype=torch.float64))
    # Five entries of the typical weight carry 5 / 50 of a full window's weight; a full window all of it...
    share = NeuralCache(THETA, 50, typical=3.0).share(peaks)
    assert torch.allclose(share, torch.tensor([0.0, 5 / 50, 1, 1], dtype=torch.float64))
    # ...and in a window longer than FEWEST_ENTRIES, 5 / FEWEST_ENTRIES of that many entries' weight.
    peaks = replace(peaks, seen=torch.tensor([0, 5, FEWEST_ENTRIES, FEWEST_ENTRIES + 7]))
    share = NeuralCache(THETA, 10 * FEWEST_ENTRIES, typical=3.0).share(peaks)
    assert torch.allclose(share, torch.tensor([0.0, 5 / FEWEST_ENTRIES, 1, 1], dtype=torch.float64))
    # The typical weight is the mean log weight of the places that see the most entries.
    features, tokens = _text(3)
    _, seen, log_mean = _by_definition(features, tokens)
    _, read, _ = NeuralCache(THETA, WINDOW).distributions(None, features, tokens, VOCAB)
    typical = typical_weight(Peaks(read.peak.flatten(), read.seen.flatten(), read.log_mean.flatten()))
    assert typical == pytest.approx(log_mean[2 * seen >= WINDOW].double().mean().item(), abs=1e-4)
    assert typical_weight(Peaks(torch.zeros(3), torch.zeros(3, dtype=torch.long), torch.full((3,), -torch.inf))) is None
    # Read with it, a short document's places hold less than all the weight, a full window's all of it.
    share = NeuralCache(THETA, WINDOW, typical).share(read)[0]
    assert (share[0] == 0) and ((share[1:WINDOW] > 0) & (share[1:WINDOW] < 1)).all() and (share[WINDOW:] == 1).all()
