"""The kinds of model a directory can hold, named by its manifest's `kind`, as peers:

    neural   a recurrent model (rnn, gru or lstm; causal or bidirectional-encoded), or an ensemble of them,
             trained by gradient descent (train.py); its weights in model.safetensors
    ngram    an interpolated Kneser-Ney n-gram (ngram.py), counted; its tables in model.safetensors
    mixture  the neural model, an n-gram of the same pieces and a cache of the document, mixed with
             weights fitted on validation (mixture.py); model.safetensors, ngram.safetensors and
             mixture.safetensors

Everything that differs between them lives here: how a kind is made from the token ids or read
from its files, which components it has, how it describes itself and what export can write of it.
The rest of nextword calls a kind's methods, and every model has the interface in model.py."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from .config import ModelConfig
from .errors import ConfigError, ModelDirError
from .files import atomic_path, regular_file
from .mixture import MixtureLM, summary_of
from .neural_cache import NeuralCache
from .model import build_model, networks, parameter_count
from .ngram import NgramLM, count_ngrams, max_order

WEIGHTS, NGRAM_FILE, MIXTURE_FILE = "model.safetensors", "ngram.safetensors", "mixture.safetensors"
FILES = (NGRAM_FILE, MIXTURE_FILE)  # what the kinds add to the files of a model directory (checkpoint.py)


def _failed(path: Path, exc: Exception) -> ModelDirError:
    if isinstance(exc, SafetensorError):
        return ModelDirError(f"{path} is damaged or not a safetensors file ({exc})")
    first = str(exc).strip().splitlines()[-1].strip()
    return ModelDirError(f"{path} does not match config.yaml ({first})")


# The dtypes a weights file may hold for a tensor the model keeps in each dtype: a float weight may be
# stored at any float precision; anything else (an int8 or bool tensor where a float goes, which
# load_state_dict would cast silently) is refused. An n-gram model's tables are all int64.
WEIGHT_DTYPES = {torch.float32: ("F32", "F16", "BF16", "F64"), torch.int64: ("I64",)}


def _checked(path: Path) -> Path:
    """`path` if it is a regular file: a FIFO or a device is refused without being opened."""
    if not os.path.lexists(path):
        raise ModelDirError(f"{path.parent} has no {path.name}; train the model again with --force")
    regular_file(path, "weights", ModelDirError)
    return path


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(_checked(path)))
    except (SafetensorError, OSError) as exc:
        raise _failed(path, exc) from None


def _ngram_from(path: Path, vocab_size: int, order: int) -> NgramLM:
    _check_dtypes(_checked(path), None)
    try:
        return NgramLM(vocab_size, order, _tensors(path))
    except ValueError as exc:
        raise _failed(path, exc) from None


def _check_dtypes(weights: Path, model: torch.nn.Module | None) -> None:
    """Refuse a tensor whose dtype is not one `WEIGHT_DTYPES` allows for that tensor of `model` (for an
    n-gram model, None: int64 tables), read from the file's header alone. Names the model lacks are
    left to the strict load, which names them."""
    try:
        with safe_open(str(weights), framework="pt") as tensors:
            found = {name: tensors.get_slice(name).get_dtype() for name in tensors.keys()}
    except SafetensorError as exc:
        raise _failed(weights, exc) from None
    own = {name: tensor.dtype for name, tensor in model.state_dict().items()} if model is not None else {}
    for name, dtype in found.items():
        kept = own.get(name, torch.int64 if model is None else None)
        allowed = WEIGHT_DTYPES.get(kept, ())
        if kept is not None and dtype not in allowed:
            raise ModelDirError(
                f"{weights} is damaged: tensor {name!r} is {dtype}, but it must be {' or '.join(allowed) or kept}"
            )


def _check_finite(weights: Path, model: torch.nn.Module) -> None:
    """Refuse weights with a NaN or an infinity, which would make every prediction meaningless."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelDirError(
                f"the weights are broken: {weights} holds NaN or infinite values (in {name}); train the model again"
            )


def fit_ngram(ids: np.ndarray, vocab_size: int, order: int) -> NgramLM:
    """A Kneser-Ney n-gram of the token ids, of `order` or the highest order the vocabulary allows."""
    order = min(order, max_order(vocab_size))
    return NgramLM(vocab_size, order, count_ngrams(ids, vocab_size, order))


def _tying(model: nn.Module) -> str:
    """Whether the output layer shares the input embedding's weights, and why not where it does not."""
    model = networks(model)[0]  # an ensemble's members are alike
    if not isinstance(model.decoder, nn.Linear):
        return "embeddings not tied (adaptive softmax)"
    if model.decoder.weight is model.embedding.weight:
        return "embeddings tied"
    return "embeddings not tied (embed differs from hidden)"


class Neural:
    name = "neural"
    counted = False  # trained step by step, resumable

    @staticmethod
    def check(config: ModelConfig, vocab_size: int) -> None:
        """Nothing to refuse: its order, if any, is capped for its n-gram when a mixture is fitted."""

    def load(self, out: Path, config: ModelConfig, vocab_size: int, manifest: Mapping[str, Any]) -> nn.Module:
        model = build_model(config, vocab_size, manifest.get("cutoffs"))
        _check_dtypes(_checked(out / WEIGHTS), model)
        try:
            load_model(model, str(out / WEIGHTS), strict=True)
        except (SafetensorError, RuntimeError, ValueError) as exc:
            raise _failed(out / WEIGHTS, exc) from None
        _check_finite(out / WEIGHTS, model)
        return model

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return {"neural": model}

    def size(self, model: nn.Module) -> tuple[str, int]:
        return "parameters", parameter_count(model)

    def describe(self, model: nn.Module, config: ModelConfig) -> str:
        encoder = f", bidirectional over {config.context} pieces ({config.pool})" if config.bidirectional else ""
        ensemble = f"an ensemble of {config.members} averaged networks: " if config.members > 1 else ""
        return (
            f"{ensemble}{config.cell}, {config.layers} layers, embed {config.embed}, hidden {config.hidden}, "
            f"dropout {config.dropout}{encoder}, {_tying(model)}"
        )

    def exportable(self, model: nn.Module) -> tuple[nn.Module, str | None]:
        """What export writes of the model, and a note when that is not all of it."""
        return model, None


class Ngram:
    name = "ngram"
    counted = True  # one pass over the text: nothing to resume, share or start from

    @staticmethod
    def check(config: ModelConfig, vocab_size: int) -> None:
        """Refuse, before anything is written, what this kind cannot make of `config`."""
        if config.order > max_order(vocab_size):
            raise ConfigError(
                f"option 'order' must be <= {max_order(vocab_size)} with {vocab_size} pieces; "
                f"lower --order or --vocab-size"
            )

    def fit(self, ids: np.ndarray, vocab_size: int, config: ModelConfig) -> NgramLM:
        return fit_ngram(ids, vocab_size, config.order)

    def load(self, out: Path, config: ModelConfig, vocab_size: int, manifest: Mapping[str, Any]) -> nn.Module:
        # Its tables' sizes come from the data, so they are read, not built.
        return _ngram_from(out / WEIGHTS, vocab_size, config.order)

    def components(self, model: nn.Module) -> dict[str, nn.Module]:
        return {"ngram": model}

    def size(self, model: NgramLM) -> tuple[str, int]:
        return "n-grams", model.entries

    def describe(self, model: NgramLM, config: ModelConfig) -> str:
        return f"ngram, order {model.order}, interpolated modified Kneser-Ney"

    def exportable(self, model: nn.Module) -> tuple[nn.Module, str | None]:
        return model, None  # which export refuses, with its reason


def _neural_cache_tensors(model: MixtureLM) -> dict[str, torch.Tensor]:
    cache, tensors = model.neural_cache, {}
    if cache is not None:
        tensors = {"theta": torch.tensor([cache.theta], dtype=torch.float64), "window": torch.tensor([cache.window])}
        if cache.typical is not None:
            tensors["typical_weight"] = torch.tensor([cache.typical], dtype=torch.float64)
    if model.confidence is not None:
        tensors["confidence_edges"] = model.confidence
    if model.places is not None:
        tensors["places"] = model.places
    return tensors


def _neural_cache_from(tensors: Mapping[str, torch.Tensor]) -> NeuralCache | None:
    """The neural cache a mixture file names; None in one from before the neural cache (no θ). One from
    before the typical weight has none: its cache holds all its weight wherever it sees an entry, as before."""
    if "theta" not in tensors:
        return None
    theta, window = float(tensors["theta"][0]), int(tensors["window"][0])
    if not (theta > 0 and window > 0):
        raise ValueError(f"its neural cache's theta {theta} and window {window} must both be positive")
    typical = float(tensors["typical_weight"][0]) if "typical_weight" in tensors else None
    if typical is not None and not math.isfinite(typical):
        raise ValueError(f"its neural cache's typical weight {typical} must be a finite number")
    return NeuralCache(theta, window, typical)


class Mixture:
    name = "mixture"
    counted = False  # its neural part trains as a neural model does; the rest is fitted at the end

    def save(self, out: Path, model: MixtureLM) -> None:
        """The n-gram's tables and the mixture's weights; the neural weights are already in model.safetensors."""
        with atomic_path(out / NGRAM_FILE) as temporary:
            save_model(model.ngram, str(temporary))
        half_life = torch.tensor([model.cache.half_life], dtype=torch.float64)
        tensors = {"weights": model.weights, "cache_weights": model.cache_weights, "half_life": half_life}
        with atomic_path(out / MIXTURE_FILE) as temporary:
            save_file({**tensors, **_neural_cache_tensors(model)}, str(temporary))

    def load(self, out: Path, config: ModelConfig, vocab_size: int, manifest: Mapping[str, Any]) -> nn.Module:
        neural = NEURAL.load(out, config, vocab_size, manifest)
        order = int((manifest.get("mixture") or {}).get("order", config.order))
        ngram = _ngram_from(out / NGRAM_FILE, vocab_size, order)
        tensors = _tensors(out / MIXTURE_FILE)
        try:
            weights, cache_weights = tensors["weights"], tensors["cache_weights"]
            for table in (weights, cache_weights):
                # Weights from the file are checked, not trusted: each bucket's must be a distribution.
                if not table.is_floating_point():
                    raise ValueError(f"its weights are {table.dtype}, not floating point")
                sums = table.sum(1)
                if not (torch.all((table >= 0) & (table <= 1)) and torch.allclose(sums, torch.ones_like(sums))):
                    raise ValueError("its weights are not distributions over the components")
            half_life, cache = float(tensors["half_life"][0]), _neural_cache_from(tensors)
            # A mixture from before the confidence buckets has no edges: its weights are by n-gram bucket; one from
            # before the places has none: its weights are by confidence alone.
            confidence, places = tensors.get("confidence_edges"), tensors.get("places")
            return MixtureLM(neural, ngram, weights, cache_weights, half_life, cache, confidence, places)
        except (KeyError, IndexError, ValueError, RuntimeError) as exc:
            raise _failed(out / MIXTURE_FILE, exc) from None

    def components(self, model: MixtureLM) -> dict[str, nn.Module]:
        return {
            "neural": model.neural,
            "ngram": model.ngram,
            "mixture": model.replaced(use_cache=False),
            "mixture+cache": model,
        }

    def size(self, model: MixtureLM) -> tuple[str, int]:
        return "parameters", NEURAL.size(model.neural)[1]

    def describe(self, model: MixtureLM, config: ModelConfig) -> str:
        shares = ", ".join(f"{name} {share:.2f}" for name, share in summary_of(model)["mixture+cache"].items())
        return (
            f"mixture of {NEURAL.describe(model.neural, config)}; {NGRAM_KIND.describe(model.ngram, config)} "
            f"({model.ngram.entries:,} n-grams); a cache of half-life {model.cache.half_life:g} pieces"
            f"{_neural_cache_words(model)}; mean weights {shares}"
        )

    def exportable(self, model: MixtureLM) -> tuple[nn.Module, str | None]:
        return model.neural, (
            "exported the neural part only: the n-gram and the cache of the mixture "
            "look their answers up with numpy, which an exported graph cannot hold"
        )


def _neural_cache_words(model: MixtureLM) -> str:
    cache = model.neural_cache
    if cache is None:
        return ""
    by = "the n-gram's context" if model.confidence is None else "its confidence"
    by += "" if model.places is None else " and the place"
    return f"; a neural cache of the last {cache.window:,} pieces (θ {cache.theta:g}), weights by {by}"


NEURAL, NGRAM_KIND, MIXTURE_KIND = Neural(), Ngram(), Mixture()
KINDS = {kind.name: kind for kind in (NEURAL, NGRAM_KIND, MIXTURE_KIND)}
# Format 2 named a neural model by how it reads its context; format 3 names the kind.
FORMAT_2_KINDS = {"causal": "neural", "bidirectional": "neural", "ngram": "ngram"}


def trained_kind(config: ModelConfig) -> Neural | Ngram:
    """The kind that training `config` makes before any mixture is fitted: `--cell ngram` counts an n-gram."""
    return NGRAM_KIND if config.cell == "ngram" else NEURAL


def of(manifest: Mapping[str, Any], where: Path) -> Neural | Ngram | Mixture:
    kind = manifest.get("kind")
    if kind not in KINDS:
        raise ModelDirError(
            f"{where} holds a model of unknown kind {kind!r} (known: {', '.join(KINDS)}); "
            f"upgrade nextword or train it again"
        )
    return KINDS[kind]
