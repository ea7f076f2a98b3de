"""nextword: train recurrent next-word language models on your own text.

from nextword import load
m = load("models/stories-lstm")
m.predict("once upon a ", k=5)      # [("time", 0.93), ...]
m.generate("The next morning", max_words=20, seed=1)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .predict import Predictor


def load(path: str, device: str = "cpu") -> "Predictor":
    """A trained model directory, ready to predict and generate."""
    # Imported here so that `import nextword` (and `nextword --help`) does not pay for torch.
    from .predict import Predictor

    return Predictor.load(path, device=device)
