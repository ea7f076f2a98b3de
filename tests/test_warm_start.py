import numpy as np
import pytest
import torch

from nextword.model import RecurrentLM, WindowedBiLM
from nextword.warm_start import piece_vectors, start_embedding, start_output


@pytest.mark.parametrize(
    "make",
    [
        lambda: RecurrentLM(50, "lstm", 2, 32, 32, 0.0),
        lambda: WindowedBiLM(50, "gru", 1, 32, 16, 0.0, context=4, pool="final"),
    ],
)
def test_a_new_output_layer_starts_at_the_pieces_frequencies(make) -> None:
    counts = np.zeros(50, dtype=np.int64)
    counts[:10] = 2 ** np.arange(20, 0, -2)  # ten pieces, each 4x as common as the next; the rest never seen
    torch.manual_seed(0)  # the same weights whatever ran before
    model = make()
    tokens = torch.randint(0, 50, (4, 12))
    frequencies = (counts + 1) / (counts + 1).sum()

    def distance_from_frequencies() -> float:  # total variation, over every place
        return 0.5 * (model.eval()(tokens)[0].softmax(-1) - torch.from_numpy(frequencies)).abs().sum(-1).max().item()

    assert distance_from_frequencies() > 0.5  # a zero bias: about uniform
    start_output(model.decoder, counts)
    assert distance_from_frequencies() < 0.25
    assert (model(tokens)[0].argmax(-1) == 0).all()  # the most common piece first, wherever the network is


def _two_kinds_of_text(length: int = 6000) -> np.ndarray:
    """Pieces 2-6 always follow piece 1 and precede 13; pieces 7-11 follow 12 and precede 14; 15-19 never occur."""
    rng = np.random.default_rng(0)
    nouns, verbs = rng.integers(2, 7, length // 3), rng.integers(7, 12, length // 3)
    phrases = [[1, noun, 13] if rng.random() < 0.5 else [12, verb, 14] for noun, verb in zip(nouns, verbs)]
    return np.array([piece for phrase in phrases for piece in phrase])


def _cosines(vectors: torch.Tensor, first: range, second: range) -> float:
    unit = torch.nn.functional.normalize(vectors, dim=1)
    return float((unit[list(first)] @ unit[list(second)].T).mean())


def test_pieces_in_the_same_company_get_close_vectors() -> None:
    vectors = piece_vectors(_two_kinds_of_text(), 20, 8)
    nouns, verbs = range(2, 7), range(7, 12)
    assert _cosines(vectors, nouns, nouns) > 0.9 and _cosines(vectors, verbs, verbs) > 0.9
    assert _cosines(vectors, nouns, verbs) < 0.2


def test_vectors_are_zero_where_the_text_says_nothing_and_leave_the_random_stream_alone() -> None:
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    vectors = piece_vectors(_two_kinds_of_text(), 20, 32)  # a vocabulary smaller than the embedding, as characters
    assert torch.equal(torch.random.get_rng_state(), before)
    assert vectors.shape == (20, 32)
    assert (vectors[15:] == 0).all() and (vectors[:, 20:] == 0).all()
    assert (vectors[1:15].abs().sum(1) > 0).all()
    assert torch.equal(vectors, piece_vectors(_two_kinds_of_text(), 20, 32))


def test_an_embedding_starts_at_the_vectors_as_long_as_its_random_rows() -> None:
    torch.manual_seed(0)
    model = RecurrentLM(20, "lstm", 1, embed=8, hidden=8, dropout=0.0)
    random_rows = model.embedding.weight.detach().clone()
    vectors = piece_vectors(_two_kinds_of_text(), 20, 8)
    start_embedding(model.embedding, vectors)
    weight = model.embedding.weight.detach()
    never_seen = [0, *range(15, 20)]
    assert torch.equal(weight[never_seen], random_rows[never_seen])  # as they were
    seen, unit = weight[1:15], torch.nn.functional.normalize
    assert torch.allclose(unit(seen, dim=1), unit(vectors[1:15], dim=1), atol=1e-6)
    assert seen.norm(dim=1).mean() == pytest.approx(float(random_rows.norm(dim=1).mean()), rel=1e-5)
    assert model.decoder.weight is model.embedding.weight  # still tied: the output layer starts from them too
