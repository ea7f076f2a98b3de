"""How a new network's weights start from its training text rather than from noise alone.

A three-minute run on two cores makes about two thousand steps: too few to learn from random weights
what counting the text tells at once. So before the first step

- the output layer's bias starts at the pieces' log frequencies: the first prediction is the unigram
  distribution (`start_output`);
- the piece embeddings start at vectors from the pieces' co-occurrences (`piece_vectors`): pieces used
  in the same company start close together, as word vectors do (Levy & Goldberg, 2014: the SVD of
  the positive pointwise mutual information). Tied to the output layer, the same vectors give the
  pieces that follow alike contexts alike scores.

Both only start the weights; training moves them like any others (bench/RESULTS.md, "Embeddings
started from the text")."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .model import AdaptiveOutput

WINDOW = 2  # pieces each side counted as a piece's company; a piece at distance k counts 1/k
CONTEXT_SMOOTHING = 0.75  # the contexts' frequencies raised to this, so rare contexts score less (Levy et al. 2015)
MOST_PIECES = 2_000_000  # pieces counted at most: enough to place them; a large text's pairs would fill memory


def start_output(decoder: nn.Module, counts: np.ndarray) -> None:
    """Start a new output layer from the training text's piece `counts`: an adaptive softmax orders its
    pieces by them; a full softmax's bias starts at their log frequencies (add-one), so that the first
    prediction is the unigram distribution. From a zero bias, Adam's steps of about the learning rate
    each take thousands of steps to get there (a rare piece's bias is about -8: some 2,700 steps at
    the recipe's 0.003, more than a 3-minute run makes), and the network spends its short budget on
    it (bench/RESULTS.md: 22% lower perplexity after a 3-minute run)."""
    if isinstance(decoder, AdaptiveOutput):
        decoder.sort_by(counts)
        return
    with torch.no_grad():
        smoothed = torch.from_numpy(counts + 1.0)
        decoder.bias.copy_(torch.log(smoothed / smoothed.sum()))


def start_embedding(embedding: nn.Embedding, vectors: torch.Tensor) -> None:
    """Start the rows of the pieces that have `vectors` (`piece_vectors`) at them, scaled so that a row
    is as long on average as a random one; the others keep their random start."""
    weight = embedding.weight
    vectors = vectors.to(weight.device)
    seen = vectors.abs().sum(1) > 0
    if not bool(seen.any()):
        return
    with torch.no_grad():
        scale = weight.norm(dim=1).mean() / vectors[seen].norm(dim=1).mean()
        weight[seen] = (vectors[seen] * scale).to(weight.dtype)


def piece_vectors(ids: np.ndarray, vocab_size: int, dim: int) -> torch.Tensor:
    """(vocab_size, dim) vectors, one per piece, from the training `ids` (the first MOST_PIECES): the
    leading singular vectors of the pieces' positive pointwise mutual information with the pieces
    around them, each scaled by the square root of its singular value. Rows of pieces the text never
    uses are zero; so are the columns beyond the vocabulary's size (a character vocabulary is smaller
    than the embedding)."""
    ids = np.asarray(ids[:MOST_PIECES], dtype=np.int64)
    ppmi = _ppmi(ids, vocab_size)
    rank = min(dim, vocab_size)
    with torch.random.fork_rng(devices=[]):  # the randomised SVD draws; the run's own random stream is left as it was
        torch.manual_seed(0)
        # Twice the columns wanted: with fewer, the randomised SVD's last ones are off by some 5%.
        left, values, _ = torch.svd_lowrank(ppmi, q=min(vocab_size, 2 * rank), niter=4)
    vectors = torch.zeros(vocab_size, dim)
    vectors[:, :rank] = left[:, :rank] * values[:rank].sqrt()
    unused = torch.from_numpy(np.bincount(ids, minlength=vocab_size) == 0)
    vectors[unused] = 0.0  # exactly: the SVD leaves rounding noise there
    return vectors


def _ppmi(ids: np.ndarray, vocab_size: int) -> torch.Tensor:
    """The positive PMI of each pair of pieces within WINDOW of each other, as a sparse (vocab, vocab)
    matrix: log(count(a, b) · total / (count(a) · smoothed count(b))), where it is above zero."""
    left = np.concatenate([ids[:-k] for k in range(1, WINDOW + 1)])
    right = np.concatenate([ids[k:] for k in range(1, WINDOW + 1)])
    weights = np.concatenate([np.full(len(ids) - k, 1.0 / k) for k in range(1, WINDOW + 1)])
    # Each pair counted both ways: a piece's company is on either side of it.
    codes, where = np.unique(
        np.concatenate([left * vocab_size + right, right * vocab_size + left]), return_inverse=True
    )
    counts = np.bincount(where, weights=np.concatenate([weights, weights]))
    rows, cols = codes // vocab_size, codes % vocab_size
    total = counts.sum()
    row_sums = np.bincount(rows, weights=counts, minlength=vocab_size)
    context = np.bincount(cols, weights=counts, minlength=vocab_size) ** CONTEXT_SMOOTHING
    context *= total / context.sum()
    pmi = np.log(counts * total / (row_sums[rows] * context[cols]))
    keep = pmi > 0
    index = torch.from_numpy(np.stack([rows[keep], cols[keep]]))
    values = torch.from_numpy(pmi[keep]).float()
    return torch.sparse_coo_tensor(index, values, (vocab_size, vocab_size), check_invariants=True).coalesce()
