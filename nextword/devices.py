"""The one device check every verb goes through: a device asked for must be there."""

from __future__ import annotations

import torch

from .config import DEVICES
from .errors import ConfigError


def pick_device(name: str | torch.device) -> torch.device:
    """`auto` is cuda, then mps, then cpu; an explicit device must be present."""
    if isinstance(name, torch.device):
        return name
    name = str(name).strip().lower()
    if name not in DEVICES:
        raise ConfigError(f"option 'device' must be one of {', '.join(DEVICES)}; got {name!r}")
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"option 'device' is {name}, but no {name} device is available; use auto or cpu")
    return torch.device(name)
