import pytest
import torch

from nextword.model import RecurrentLM, parameter_count


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_causal_changing_later_tokens_never_changes_earlier_predictions(cell: str) -> None:
    torch.manual_seed(0)
    model = RecurrentLM(50, cell, layers=2, embed=16, hidden=16, dropout=0.0).eval()
    tokens = torch.randint(0, 50, (3, 20))
    for t in (0, 7, 18):
        changed = tokens.clone()
        changed[:, t + 1:] = torch.randint(0, 50, (3, 19 - t))
        before, _ = model(tokens)
        after, _ = model(changed)
        assert torch.equal(before[:, : t + 1], after[:, : t + 1])
        assert not torch.allclose(before[:, t + 1:], after[:, t + 1:])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_carried_state_equals_one_long_pass(cell: str) -> None:
    torch.manual_seed(0)
    model = RecurrentLM(30, cell, layers=1, embed=8, hidden=12, dropout=0.0).eval()
    tokens = torch.randint(0, 30, (2, 24))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :10])
    second, _ = model(tokens[:, 10:], state)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-6)


def test_embeddings_are_tied_when_sizes_allow() -> None:
    tied = RecurrentLM(100, "lstm", 1, embed=16, hidden=16, dropout=0.0)
    untied = RecurrentLM(100, "lstm", 1, embed=16, hidden=24, dropout=0.0)
    assert tied.decoder.weight is tied.embedding.weight
    assert parameter_count(untied) - parameter_count(tied) > 100 * 16
