"""Export a model's next-token step as one self-contained file that runs without nextword.

The step takes token ids (batch, 1) and the state, and gives the next token's logits (batch, vocab)
and the state after the token; feed a prompt one token at a time, then sample from the logits.

    rnn, gru         step(tokens, hidden) -> (logits, hidden)         hidden: (layers, batch, size), zeros to start
    lstm             step(tokens, hidden, cell) -> (logits, hidden, cell)   both (layers, batch, size), zeros
    bidirectional    step(tokens, window) -> (logits, window)         window: (batch, context) token ids, EOS_ID
    ensemble         each member's state in turn, numbered: step(tokens, hidden_0, cell_0, hidden_1, ...)
                     (a bidirectional one's members each keep the same window: window_0, window_1, ...)

Token ids and the window are int64, the rest float32. With an adaptive softmax, and for an ensemble
(its members' distributions averaged), the logits are log-probabilities (softmax leaves them as they
are). The file holds the weights; the tokenizer stays in the model directory (tokenizer.model, a
SentencePiece model).

An n-gram model is refused: it answers by numpy searches in its count tables, which neither a
TorchScript trace nor an ONNX graph can hold."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from .checkpoint import is_own_file
from .errors import ConfigError, ExportError
from .files import atomic_path
from .model import EnsembleLM, LanguageModel, RecurrentLM, WindowedBiLM, flat_state, networks
from .ngram import NgramLM
from .tokenizer import EOS_ID

FORMATS = ("torchscript", "onnx")
_ONNX_PACKAGES = ("onnx", "onnxscript")  # what torch.onnx.export needs besides torch


class _Step(nn.Module):
    """The model's own one-token path, with the state as separate tensors: what both formats take."""

    def __init__(self, model: RecurrentLM | WindowedBiLM | EnsembleLM):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, after = self.model(tokens, _nested(self.model, list(state)), last_only=True)
        return (logits[:, -1], *flat_state(after))


def _own_names(network: RecurrentLM | WindowedBiLM) -> tuple[str, ...]:
    if isinstance(network, WindowedBiLM):
        return ("window",)
    return ("hidden", "cell") if network.rnn.mode == "LSTM" else ("hidden",)


def state_names(model: RecurrentLM | WindowedBiLM | EnsembleLM) -> tuple[str, ...]:
    """The state's tensors, in order; an ensemble's are its members', numbered (hidden_0, cell_0, hidden_1, ...)."""
    if not isinstance(model, EnsembleLM):
        return _own_names(model)
    return tuple(f"{name}_{i}" for i, network in enumerate(model.members) for name in _own_names(network))


def _nested(model: nn.Module, tensors: list[torch.Tensor]) -> Any:
    """The model's state from its tensors in `state_names` order."""
    states = []
    for network in networks(model):
        count = len(_own_names(network))
        own, tensors = tensors[:count], tensors[count:]
        states.append(tuple(own) if count > 1 else own[0])
    return tuple(states) if isinstance(model, EnsembleLM) else states[0]


def initial_state(model: RecurrentLM | WindowedBiLM | EnsembleLM, batch: int) -> tuple[torch.Tensor, ...]:
    """The state before any text, as the exported step takes it."""
    found: list[torch.Tensor] = []
    for network in networks(model):
        if isinstance(network, WindowedBiLM):
            found.append(torch.full((batch, network.context), EOS_ID, dtype=torch.int64))
        else:  # separate tensors even where equal: an export given one tensor twice may merge the two inputs
            rnn = network.rnn
            found += [torch.zeros(rnn.num_layers, batch, rnn.hidden_size) for _ in _own_names(network)]
    return tuple(found)


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_target(out: Path, *, force: bool) -> None:
    """Refuse to replace an existing file unless `force`, and a model directory's own files ever.

    A link at `out` is replaced itself (files.atomic_path), never the file it points to."""
    if is_own_file(Path(os.path.realpath(out.parent)) / out.name):
        raise ExportError(
            f"{out} is a file of the model directory {out.parent}, which export never replaces; choose another --out"
        )
    if os.path.isdir(out):
        raise ExportError(f"--out {out} is a directory; give the path of the file to write")
    if os.path.lexists(out) and not force:
        raise ExportError(f"{out} exists; use --force to replace it, or choose another --out (nothing was written)")


def export(model: LanguageModel, fmt: str, out: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Write `model`'s next-token step to the file `out` (atomically) as TorchScript or ONNX; an existing
    `out` only with `force` (see `check_target`).

    Returns what the file takes and gives: input and output names with their shapes."""
    out = Path(out)
    check_target(out, force=force)
    if fmt not in FORMATS:
        raise ConfigError(f"option 'format' must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if isinstance(model, NgramLM):
        raise ExportError(
            "an n-gram model looks its answers up in count tables with numpy, which an exported "
            "graph cannot hold; export a recurrent model (rnn, gru or lstm)"
        )
    missing = [name for name in _ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if fmt == "onnx" and missing:
        raise ExportError(f"ONNX export needs the {' and '.join(missing)} package(s): pip install 'nextword[export]'")
    step = _Step(model.cpu().eval())
    names = state_names(model)
    # Two rows, not one: an example batch of 1 would be taken as a fixed size by torch.export.
    example = (torch.full((2, 1), EOS_ID, dtype=torch.int64), *initial_state(model, 2))
    batch_axis = 0 if isinstance(networks(model)[0], WindowedBiLM) else 1
    # Tracing warns that the one-step branch is fixed, which is the point; the ONNX exporter reports
    # its stages on stdout and logs that torchvision's operators are missing. The library prints
    # nothing, so all of it is kept quiet.
    with (
        atomic_path(out) as temporary,
        torch.no_grad(),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        _quiet_logger("torch.onnx"),
    ):
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            torch.jit.trace(step, example).save(str(temporary))
        else:
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                step,
                example,
                str(temporary),
                dynamo=True,
                external_data=False,
                input_names=["tokens", *names],
                output_names=["logits", *(f"next_{n}" for n in names)],
                dynamic_shapes=({0: batch}, tuple({batch_axis: batch} for _ in names)),
            )
    shapes = {name: list(tensor.shape) for name, tensor in zip(names, example[1:])}
    for name in names:
        shapes[name][batch_axis] = "batch"
    after = {f"next_{name}": shape for name, shape in shapes.items()}
    outputs = {"logits": ["batch", networks(model)[0].embedding.num_embeddings], **after}
    return {"format": fmt, "out": str(out), "inputs": {"tokens": ["batch", 1], **shapes}, "outputs": outputs}
