"""How far back a model's gradient reaches: the vanishing-gradient problem made visible.

For sequences from a text, the loss at the last position is differentiated with respect to the
input embedding k steps back, k = 1 (the last input) .. length. A vanilla RNN's gradient norm
falls off quickly with k; gated cells (GRU, LSTM) keep it alive much longer."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import CorpusError
from .model import LanguageModel, WindowedBiLM, evaluating, networks


def gradient_flow(
    model: LanguageModel, ids: np.ndarray, length: int, *, sequences: int = 32, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Mean gradient norm of the last position's loss w.r.t. the input embedding k steps back.

    Returns an array whose entry k - 1 is the mean norm for k steps back. `sequences` evenly
    spaced sequences of `length` tokens are taken from `ids`, each starting from an empty state.
    A windowed model reads only its window, so its curve is `context` long at most. An ensemble's
    first member stands for them all: they share the cell and the shape."""
    model = networks(model)[0]
    if isinstance(model, WindowedBiLM):
        length = min(length, model.context)
    length = min(length, len(ids) - 1)
    if length < 1:
        raise CorpusError("the validation text is too short for the gradient-flow diagnostic")
    starts = np.linspace(0, len(ids) - length - 1, num=min(sequences, len(ids) - length), dtype=np.int64)
    inputs = torch.from_numpy(np.stack([ids[s : s + length] for s in starts]).astype(np.int64)).to(device)
    targets = torch.from_numpy(ids[starts + length].astype(np.int64)).to(device)
    captured: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        output.retain_grad()
        captured.append(output)

    hook = model.embedding.register_forward_hook(keep)
    try:
        # No dropout: the same function that predicts. cuDNN's RNN backward needs training mode; the
        # native kernels give the same gradients.
        with evaluating(model), torch.backends.cudnn.flags(enabled=False), torch.enable_grad():
            model.zero_grad(set_to_none=True)
            logits, _ = model(inputs, None, last_only=True)
            # Summed over sequences: each sequence's loss depends on its own inputs only.
            F.cross_entropy(logits[:, -1].float(), targets, reduction="sum").backward()
    finally:
        hook.remove()
        model.zero_grad(set_to_none=True)
    grads = captured[-1].grad[:, -length:]  # (sequences, length, embed), oldest input first
    return grads.norm(dim=-1).mean(dim=0).flip(0).cpu().numpy()
