import numpy as np
import pytest
import torch

from nextword.model import (
    AdaptiveOutput,
    EnsembleLM,
    RecurrentLM,
    WindowedBiLM,
    adaptive_cutoffs,
    flat_state,
    parameter_count,
)
from nextword.warm_start import start_output


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_causal_changing_later_tokens_never_changes_earlier_predictions(cell: str) -> None:
    torch.manual_seed(0)
    model = RecurrentLM(50, cell, layers=2, embed=16, hidden=16, dropout=0.0).eval()
    tokens = torch.randint(0, 50, (3, 20))
    for t in (0, 7, 18):
        changed = tokens.clone()
        changed[:, t + 1 :] = torch.randint(0, 50, (3, 19 - t))
        before, _ = model(tokens)
        after, _ = model(changed)
        assert torch.equal(before[:, : t + 1], after[:, : t + 1])
        assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_carried_state_equals_one_long_pass(cell: str) -> None:
    torch.manual_seed(0)
    model = RecurrentLM(30, cell, layers=2, embed=8, hidden=12, dropout=0.3).eval()
    tokens = torch.randint(0, 30, (2, 24))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :10])
    second, _ = model(tokens[:, 10:], state)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-6)
    state = None
    for t in range(24):  # one token at a time takes the written-out step, not the fused kernel
        step, state = model(tokens[:, t : t + 1], state)
        torch.testing.assert_close(step[:, 0], whole[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "model",
    [RecurrentLM(2000, "lstm", 1, 64, 64, 0.0), WindowedBiLM(2000, "gru", 1, 64, 32, 0.0, context=4, pool="final")],
)
def test_embeddings_start_small_and_are_read_at_unit_scale(model) -> None:
    torch.manual_seed(0)
    stored = model.embedding.weight
    assert stored.std().item() == pytest.approx(64**-0.5, rel=0.05)  # what the tied output layer reads
    assert model.embedding(torch.arange(2000)).std().item() == pytest.approx(1.0, rel=0.05)  # what the cell reads
    assert model.decoder.weight is stored


def test_embeddings_are_tied_when_sizes_allow() -> None:
    tied = RecurrentLM(100, "lstm", 1, embed=16, hidden=16, dropout=0.0)
    untied = RecurrentLM(100, "lstm", 1, embed=16, hidden=24, dropout=0.0)
    assert tied.decoder.weight is tied.embedding.weight
    assert parameter_count(untied) - parameter_count(tied) > 100 * 16


def _windowed(cell: str, pool: str = "final") -> "WindowedBiLM":
    torch.manual_seed(0)
    return WindowedBiLM(40, cell, layers=2, embed=16, hidden=12, dropout=0.0, context=6, pool=pool).eval()


@pytest.mark.parametrize(
    "cell, pool", [("rnn", "final"), ("gru", "attention"), ("lstm", "final"), ("lstm", "attention")]
)
def test_bidirectional_never_sees_the_token_it_predicts_nor_anything_after(cell: str, pool: str) -> None:
    model = _windowed(cell, pool)
    tokens = torch.randint(0, 40, (2, 15))
    before, _ = model(tokens)
    for t in range(14):
        changed = tokens.clone()
        changed[:, t + 1 :] = (changed[:, t + 1 :] + 1 + torch.randint(0, 38, changed[:, t + 1 :].shape)) % 40
        after, _ = model(changed)
        # The logits at t predict token t + 1: neither it nor anything later may change them.
        assert torch.equal(before[:, : t + 1], after[:, : t + 1])
        assert not torch.allclose(before[:, t + 1], after[:, t + 1])


def test_bidirectional_reads_exactly_its_window() -> None:
    model = _windowed("gru")
    tokens = torch.randint(0, 40, (1, 12))
    logits, _ = model(tokens)
    changed = tokens.clone()
    changed[0, 0] = (changed[0, 0] + 1) % 40
    moved, _ = model(changed)
    assert not torch.allclose(logits[0, 5], moved[0, 5])  # token 0 is in the window ending at 5
    assert torch.equal(logits[0, 6:], moved[0, 6:])  # but in no window ending later


def test_bidirectional_state_carries_the_window() -> None:
    model = _windowed("lstm")
    tokens = torch.randint(0, 40, (3, 20))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :8])
    second, _ = model(tokens[:, 8:], state)
    last, _ = model(tokens[:, 8:], state, last_only=True)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-6)
    assert torch.allclose(last[:, 0], whole[:, -1], atol=1e-6)


def test_adaptive_cutoffs_follow_the_frequencies() -> None:
    counts = np.random.default_rng(0).zipf(1.3, 20_000).clip(max=10**6)
    cutoffs = adaptive_cutoffs(counts)
    assert cutoffs == sorted(cutoffs) and 64 <= cutoffs[0] and cutoffs[-1] < len(counts) - 64
    assert adaptive_cutoffs(np.ones(30, dtype=np.int64)) == [15]  # too few pieces to cluster: halves


@pytest.mark.parametrize("bidirectional", [False, True])
def test_adaptive_softmax_gives_distributions_in_piece_order(bidirectional: bool) -> None:
    torch.manual_seed(0)
    vocab = 300
    args = dict(layers=1, embed=16, hidden=16, dropout=0.0, cutoffs=[40, 120])
    model = (
        WindowedBiLM(vocab, "gru", context=5, pool="final", **args)
        if bidirectional
        else RecurrentLM(vocab, "lstm", **args)
    ).eval()
    counts = np.random.default_rng(1).permutation(np.arange(vocab) ** 2)  # frequency unrelated to id
    start_output(model.decoder, counts)  # a new adaptive softmax orders its pieces by frequency
    assert isinstance(model.decoder, AdaptiveOutput) and int(model.decoder.rank[int(np.argmax(counts))]) == 0
    tokens = torch.randint(0, vocab, (2, 9))
    targets = torch.randint(0, vocab, (2, 9))
    with torch.no_grad():
        logprobs, _ = model(tokens)
        scored, _ = model.target_logprobs(tokens, targets)
    torch.testing.assert_close(logprobs.exp().sum(-1), torch.ones(2, 9))
    torch.testing.assert_close(scored, logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1))


@pytest.mark.parametrize(
    "model",
    [
        RecurrentLM(30, "lstm", 2, 8, 8, 0.0),
        RecurrentLM(30, "gru", 1, 8, 8, 0.0),
        WindowedBiLM(30, "rnn", 1, 8, 8, 0.0, context=3, pool="final"),
        EnsembleLM([RecurrentLM(30, "lstm", 1, 8, 8, 0.0), RecurrentLM(30, "lstm", 1, 8, 8, 0.0)]),
    ],
)
def test_joined_states_are_the_rows_of_each_in_order(model) -> None:
    _, state = model.eval()(torch.randint(0, 30, (4, 5)))
    rows = model.select_state
    joined = model.join_states([rows(state, torch.tensor(at)) for at in ([3, 0], [2], [0, 1])])
    whole = rows(state, torch.tensor([3, 0, 2, 0, 1]))
    for a, b in zip(flat_state(joined), flat_state(whole), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "members",
    [
        lambda: [RecurrentLM(40, "lstm", 2, 16, 16, 0.0) for _ in range(3)],
        lambda: [WindowedBiLM(40, "gru", 1, 16, 8, 0.0, context=4, pool="final") for _ in range(2)],
        lambda: [RecurrentLM(40, "gru", 1, 16, 16, 0.0, cutoffs=[10]) for _ in range(2)],
    ],
)
def test_an_ensemble_gives_the_average_of_its_members_distributions(members) -> None:
    torch.manual_seed(0)
    ensemble = EnsembleLM(members()).eval()
    tokens, targets = torch.randint(0, 40, (2, 12)), torch.randint(0, 40, (2, 12))
    logprobs, _ = ensemble(tokens)
    alone = torch.stack([torch.log_softmax(member(tokens)[0], -1).exp() for member in ensemble.members])
    torch.testing.assert_close(logprobs.exp(), alone.mean(0))
    torch.testing.assert_close(logprobs.exp().sum(-1), torch.ones(2, 12))
    state, steps = None, []
    for t in range(12):  # carried state, one token at a time
        step, state = ensemble(tokens[:, t : t + 1], state)
        steps.append(step)
    torch.testing.assert_close(torch.cat(steps, 1), logprobs, atol=1e-5, rtol=1e-5)
    chosen, _ = ensemble.target_logprobs(tokens, targets)
    torch.testing.assert_close(chosen, logprobs.gather(-1, targets[..., None])[..., 0])
    # In training each member learns from its own log-probability: their mean, not the average's.
    own = torch.stack([member.target_logprobs(tokens, targets)[0] for member in ensemble.members]).mean(0)
    torch.testing.assert_close(ensemble.train().target_logprobs(tokens, targets)[0], own)


def test_info_says_whether_the_embeddings_are_tied() -> None:
    from nextword import kinds
    from nextword.config import resolve

    from conftest import TINY

    for sizes, said in (
        ({"embed": 32, "hidden": 32}, "embeddings tied"),
        ({"embed": 16, "hidden": 32}, "embeddings not tied (embed differs from hidden)"),
    ):
        config = resolve(TINY, sizes).model
        description = kinds.NEURAL.describe(kinds.build_model(config, 30), config)
        assert description.endswith(said), description
