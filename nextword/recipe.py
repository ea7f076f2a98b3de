"""The default recipe: what to train when the user gives a corpus and, perhaps, a time budget.

`nextword train FILE --time-budget T` without --config trains what `choose` picks from the
corpus size and T; a YAML file and the flags override any of it. The rules come from the runs
in bench/RESULTS.md ("The recipe"), at equal time on 2 CPU cores:

- A 2 × 256 recurrent network with 16 × 32 pieces a step is the size that learns most in minutes
  on a CPU: larger ones make too few steps, smaller ones stop learning early. It grows with the
  budget only where a budget gives it several passes over a large corpus.
- The vocabulary grows with the corpus (about the cube root of its size): a small text cannot
  teach thousands of rare pieces, a large one pays for them. A corpus is measured in characters, not
  bytes: a Russian novel's 3.0 MB of UTF-8 hold 1.7 million characters, which the pieces cut much as
  they cut English (War and Peace: 3.7 characters a piece at 6,000 pieces; Tiny Shakespeare 3.2 at
  4,000). Counted in bytes, its 3 minutes were reckoned at 1.7 passes where they made 3.0.
- Where the budget would read the text 15 times or more, one network only overfits it: three
  networks from different starting weights share the budget, and their predictions are averaged
  (an ensemble: on Tiny Shakespeare at 10 minutes, 16.7 passes, the neural model alone 39% lower
  held-out perplexity than one network's; on a novel never tuned on, 24 passes, one network predicts
  worse at 10 minutes than at 3 and three better again). Between 10 and 15 passes it was not measured.
- Dropout grows with the passes the budget allows each network over the text: none for a text read
  fewer than four times (the model underfits: at 3.4-3.7 passes over a Russian novel dropout 0.1 cost the
  network 7.5% in perplexity and the mixture 2.4%; at 4 over wikitext-2 it gained nothing), more the more
  often it sees the same words.
- Validation takes at most a twentieth of the run: every 200 steps (the Config's), or less often where
  the validation split (5% of the text, up to 100,000 pieces) would otherwise cost more: on a 2.7 MB
  novel, validating every 200 steps took 11% of a 3-minute budget.
- AdamW's weight decay is 0.3, not the Config's 0.01: the validation loss at equal steps ends 0.01-0.04
  nats lower, on a text read about once and on one read nine times (0.1 between; 1.0 is worse).
- The learning rate peaks at 0.003: at 0.01 the network learns little until the rate has decayed,
  and 0.002-0.003 is best on every corpus tried, at 72 seconds and at 3 minutes. It warms up for
  100 steps (a quarter of a run too short for that: see train.py) and decays (cosine) to a tenth of its
  peak by the end of the budget; the budget alone stops the run (no epoch cap).
- Without a budget the run is ten epochs, but a text that ten epochs read in under a minute trains for a
  minute (unless --epochs or --max-steps says when to stop): ten epochs of 8,000 characters are 50 steps,
  whose model guessed held-out text worse than KN-5 alone, and a minute's 3 points of top-1 better (level
  on two less regular short texts).

This module imports neither torch nor numpy: `nextword --help` must stay fast."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .config import TrainArgs
from .threads import usable_cores

# Pieces a second the 2 × 256 network trains on one CPU core (bench/RESULTS.md: about 7,000 on 2).
_PIECES_PER_CORE_SECOND = 3_500
_CHARACTERS_PER_PIECE = 4.0  # text at a few thousand pieces (English and Russian alike)
_SMALL = {
    "cell": "lstm",
    "layers": 2,
    "embed": 256,
    "hidden": 256,
    "seq_len": 32,
    "batch_size": 16,
    "lr": 0.003,
    "weight_decay": 0.3,
    "warmup": 100,
    "final_lr": 0.1,
}
_MEDIUM = {**_SMALL, "embed": 512, "hidden": 512}  # its rate is the small shape's: not tuned for this one
_ENSEMBLE_PASSES, _ENSEMBLE_MEMBERS = 15.0, 3  # a budget reading the text this often is shared by this many networks
_EVALUATION_SHARE = 0.05  # of the training time, the most validation may take
# Seconds a text that ten epochs read in less trains instead, unless told when to stop: on 8,000 characters ten
# epochs (50 steps) predicted held-out text worse than KN-5, a minute 3 points of top-1 better; on 12,000 characters
# of Shakespeare or of wikitext-2, which so little text teaches next to nothing, level (bench/RESULTS.md).
SHORTEST_RUN = 60.0
EVALUATION_COST = 1 / 3  # a validation token costs about a third of a training token (forward only); train plans by it


@dataclass(frozen=True)
class Recipe:
    settings: dict[str, Any]  # options, under the YAML file and the flags
    reason: str  # one line: what was chosen and why


def shown_in_help() -> tuple[dict[str, Any], tuple[str, ...]]:
    """The options `choose` sets (but for the epoch cap it lifts with a time budget), as `train --help` shows
    their defaults: those every recipe sets alike, with their values, and those it chooses for the text
    and the budget."""
    alike = {key: value for key, value in _SMALL.items() if _MEDIUM[key] == value}
    return alike, (*(key for key in _SMALL if key not in alike), "vocab_size", "dropout", "members", "eval_every")


def vocabulary_for(characters: int) -> int:
    """About 4,000 pieces for a million characters of text, growing with the cube root of its size."""
    size = 4000 * (max(characters, 1) / 1e6) ** (1 / 3)
    return int(min(max(round(size / 500) * 500, 1000), 16000))


def members_for(passes: float) -> int:
    """One network, or an ensemble where the budget reads the text so often that one would overfit it."""
    return _ENSEMBLE_MEMBERS if passes >= _ENSEMBLE_PASSES else 1


def dropout_for(passes: float) -> float:
    """More dropout the more often the budget lets the model read the same text."""
    return 0.0 if passes < 4 else 0.1 if passes < 6 else 0.2 if passes < 15 else 0.3


def eval_every_for(characters: int, batch_size: int, seq_len: int) -> int:
    """Steps between validations: TrainArgs' (200), or more (in hundreds) where validating that often would
    take more than _EVALUATION_SHARE of the training time."""
    from .data import MAX_VALID_TOKENS  # here: data imports numpy, which train's help (built from this module) need not

    defaults = TrainArgs()
    valid = min(characters / _CHARACTERS_PER_PIECE * defaults.valid_fraction, MAX_VALID_TOKENS)
    steps = valid / (batch_size * seq_len) * EVALUATION_COST / _EVALUATION_SHARE
    return max(defaults.eval_every, math.ceil(steps / 100) * 100)


def choose(
    characters: int,
    time_budget: float | None,
    cores: int | None = None,
    members: int | None = None,
    stop_given: bool = False,
) -> Recipe:
    """The settings for a run on a corpus of `characters` for `time_budget` seconds (None: by epochs, or for
    SHORTEST_RUN where ten would take less and no `stop_given` says when to stop), of `members` networks (None:
    as many as the budget calls for)."""
    cores = usable_cores() if cores is None else cores
    pieces = characters / _CHARACTERS_PER_PIECE
    vocabulary = vocabulary_for(characters)
    short = ""
    ten_epochs = 10 * pieces / (_PIECES_PER_CORE_SECOND * cores)
    if time_budget is None and not stop_given and ten_epochs < SHORTEST_RUN:
        time_budget, short = SHORTEST_RUN, f", as ten epochs would take {_duration(ten_epochs)}"
    if time_budget is None:
        shape, passes = _SMALL, 10.0  # the Config's ten epochs
    else:
        seen = _PIECES_PER_CORE_SECOND * cores * time_budget
        # A larger network learns more per piece but reads a quarter as many: worth it only when even
        # then it reads a large corpus several times.
        shape = _MEDIUM if seen / 4 >= 4 * pieces and pieces >= 5e6 else _SMALL
        passes = seen / pieces / (4 if shape is _MEDIUM else 1)
    why = "" if members else ", where one would overfit"
    members = members or members_for(passes)
    dropout = dropout_for(passes / members)
    settings = {**shape, "vocab_size": vocabulary, "dropout": dropout, "members": members}
    settings["eval_every"] = eval_every_for(characters, shape["batch_size"], shape["seq_len"])
    budget = "10 epochs"
    if time_budget is not None:
        settings["epochs"] = None  # the budget stops the run
        shared = f": {passes / members:.1f} each for {members} networks{why}" if members > 1 else ""
        on = f"{cores} core{'s' * (cores != 1)}"
        budget = f"{_duration(time_budget)}{short} (about {passes:.1f} passes over it on {on}{shared})"
    if short:
        settings["time_budget"] = time_budget
    ensemble = f"{members} averaged networks, each " if members > 1 else ""
    reason = (
        f"recipe: {ensemble}{settings['layers']} × {settings['hidden']} {settings['cell']}, {vocabulary:,} pieces, "
        f"dropout {dropout:g}, weight decay {settings['weight_decay']:g}, "
        f"lr {settings['lr']:g} warmed up over {settings['warmup']} steps (a quarter of a shorter run) and decayed to "
        f"{settings['final_lr']:g} of it, validated every {settings['eval_every']} steps, "
        f"for {_size(characters)} characters of text and {budget}; "
        f"--config or flags override any of it"
    )
    return Recipe(settings, reason)


def _size(characters: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if characters >= scale:
            return f"{characters / scale:.{1 if characters < 100 * scale else 0}f}{unit}"  # 1.7M, 460k
    return str(characters)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
