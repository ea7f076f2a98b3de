"""Training: corpus -> tokenizer -> token ids -> truncated-BPTT loop -> model directory.

`prepare` makes a corpus ready to train on; `train` sets up the model directory and hands a new
`checkpoint.TrainState`, or a resumed one, to `_loop`. The loop is plain and reads top to bottom:
AdamW with warmup and cosine decay, gradient-norm clipping, the hidden state carried (detached)
across consecutive segments, periodic validation that keeps the best weights, early stopping, and
a checkpoint at each evaluation from which `resume` continues exactly (same weights, bit for bit,
on a CPU).

The library never prints: progress goes to the `on_event` callback as small event objects."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Union

import numpy as np
import torch

from . import checkpoint, distributed, kinds, mixture, modelcard
from .checkpoint import TrainState
from .config import ModelConfig, Settings, TrainArgs
from .data import CorpusFile, StreamBatches, WindowBatches, check_corpus, encode_corpus, split_validation
from .devices import pick_device
from .errors import ConfigError, CorpusError, TrainingDiverged, TrainingInterrupted, WriteError
from .loss import LossTotals, stream_loss
from .lexicon import count_words, write_lexicon
from .model import (
    adaptive_cutoffs,
    build_model,
    clip_gradients,
    detach_state,
    map_state,
    networks,
    parameter_count,
)
from .tokenizer import Tokenizer, sample_lines_for, train_tokenizer
from .recipe import EVALUATION_COST
from .threads import SharedCores
from .warm_start import piece_vectors, start_embedding, start_output

_REPORT_SECONDS = 0.25  # how often progress is reported (and the loss read back from the device)
# A time budget is turned into a number of steps (see `_plan_when_due`), timed over the steps after
# the first few (which allocate and warm caches), for this long at most: within the warmup, whose
# learning rate does not depend on the total, so that `--max-steps` with the planned steps repeats the run.
_PLAN_SKIP_STEPS, _PLAN_SECONDS, _PLAN_FRACTION = 3, 5.0, 0.05
# The pace is timed again every tenth of the budget, and the steps planned again when the machine has slowed
# down so that the plan would end the run more than 3% of the budget late, or sped up so that it would end more
# than 5% early: a plan kept from a fast start is cut off by the clock halfway down its decay, one from a slow
# start leaves time unused. A little late costs nothing (97% of the way, the decay is all but done), and the
# tolerance keeps a steady machine's noise from planning again, which `--max-steps` could not repeat.
_REPLAN_EVERY, _REPLAN_LATE, _REPLAN_EARLY = 0.1, 0.03, 0.05
# A run too short for the settings' warmup (a loaded machine's plan for its budget, a small --max-steps, a few
# epochs of a short text) warms up over this share of its steps instead: one that ends inside the warmup never
# reaches its learning rate, nor decays it. A quarter: on the bundled corpus (the small preset, two seeds each),
# 100 and 200 steps end lower with a quarter or half of them warming up than a twentieth (bench/RESULTS.md).
_WARMUP_SHARE = 0.25
_GO, _STOP, _INTERRUPTED = 0, 1, 2


@dataclass(frozen=True)
class Stage:
    """A preparation stage has started ("tokenizer", "encoding", "training")."""

    name: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know that is not an error."""

    message: str


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int | None  # None when only a time budget bounds the run
    epoch: int
    loss: float  # mean training loss since the last report
    lr: float
    tokens_per_second: float
    elapsed: float
    done: float  # fraction of the budget used, 0..1, by whichever budget is nearest to its end
    eta: float | None  # seconds until then


@dataclass(frozen=True)
class Evaluation:
    step: int
    valid_loss: float
    valid_perplexity: float
    valid_word_perplexity: float
    improved: bool


Event = Union[Stage, Notice, Progress, Evaluation]
Emit = Callable[[Event], None]


@dataclass(frozen=True)
class TrainSummary:
    out: str
    corpus: str
    cell: str
    parameters: int
    vocab_size: int
    train_tokens: int
    valid_tokens: int
    device: str
    steps: int
    epochs: float
    elapsed: float
    tokens_per_second: float
    best_step: int
    best_valid_loss: float
    best_valid_perplexity: float
    best_valid_word_perplexity: float
    stopped_because: str
    members: int = 1  # networks averaged (an ensemble), each of `cell`
    mixture: dict[str, Any] | None = None  # what fitting the mixture found (mixture.fit), once it is fitted
    plan: dict[str, Any] | None = None  # a time-budgeted run's planned steps (see _plan_when_due)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Prepared:
    """A corpus ready to train on: checked, its tokenizer, and its token ids split for validation."""

    corpus: CorpusFile
    held_out: CorpusFile | None  # the validation file, when one is given
    tokenizer: Tokenizer
    train_ids: np.ndarray
    valid_ids: np.ndarray
    # Whether the counted parts take in the validation split once it has measured them (see `corpus_ids`);
    # not where the models are to be measured on it afterwards, as `compare` does.
    count_validation: bool = True

    @property
    def corpus_ids(self) -> np.ndarray:
        """Every token of the training file: its training split, and its validation split when that was cut
        from the file's end (not a --valid file). What the counted parts (the n-gram, the lexicon) are made
        of once validation has measured them: the file's last pieces are often the writer's latest."""
        if self.held_out is not None or not self.count_validation:
            return self.train_ids
        return np.concatenate([self.train_ids, self.valid_ids])


def prepare(
    corpus: str | Path, settings: Settings, *, valid_file: str | Path | None = None, on_event: Emit | None = None
) -> Prepared:
    """`corpus` (and `valid_file`) checked, a tokenizer for `settings` trained on it, its ids encoded and split:
    what a new run does first. compare prepares once and trains each variant on the result."""
    return _prepare(settings, corpus, valid_file, on_event or (lambda event: None))


def train(
    settings: Settings,
    corpus: str | Path | Prepared,
    out: str | Path,
    *,
    valid_file: str | Path | None = None,
    force: bool = False,
    resume: bool = False,
    init: str | Path | None = None,
    on_event: Emit | None = None,
) -> TrainSummary:
    """Train a model on `corpus` into the model directory `out`, or continue one with `resume`.

    `corpus` is a text file, or what `prepare` made of one for a new run. With `resume`, `settings` must
    come from `config.load(..., resume=out)`; with `init`, a trained model directory, from
    `config.load(..., init=init)`: the new run starts from that model's weights and uses its tokenizer.
    Its optimiser and step are not carried over: this is a new run, evaluated once before its first step.
    Raises `TrainingInterrupted` after saving a checkpoint when SIGINT or SIGTERM arrives."""
    out = Path(out)
    _check_starts(corpus, valid_file, resume, init)
    world, device = distributed.join(pick_device(settings.train.device))  # one rank, unless torchrun started this
    emit = (on_event if world.main else None) or (lambda event: None)  # rank 0 speaks for all
    initial = _load_initial(init) if init is not None else None
    kind = kinds.trained_kind(settings.model)
    if kind.counted and (resume or world.size > 1):
        raise ConfigError(
            "an n-gram model is counted in one pass by one process, so there is nothing to "
            "resume or share; train it again with --force, without torchrun"
        )
    data = (
        corpus
        if isinstance(corpus, Prepared)
        else _prepare(settings, corpus, valid_file, emit, out, force=force, resume=resume, initial=initial, world=world)
    )
    kind.check(settings.model, data.tokenizer.vocab_size)
    # Made before the output is touched: a corpus too small for one batch must not cost the old model.
    batches = None if kind.counted else _make_batches(data.train_ids, settings, world)
    # The text's piece counts start a new network (warm_start.py); --init and state.pt bring their own weights.
    new = batches is not None and initial is None and not resume
    counts = np.bincount(data.train_ids, minlength=data.tokenizer.vocab_size) if new else None
    summary = None
    try:
        with checkpoint.writing(out) if world.main else contextlib.nullcontext():  # one training per directory
            manifest = world.from_main(
                lambda: _set_up(out, settings, data, kind, force=force, resume=resume, initial=initial, counts=counts)
            )
            if batches is None:
                return _count(kind, settings, data, out, emit)
            model = _new_model(settings, data, manifest.get("cutoffs"), counts, initial)
            run = _Run(settings=settings, data=data, batches=batches, out=out, device=device, world=world, model=model)
            summary = _train_neural(run, initial, resume, emit)
            return summary
    finally:
        distributed.leave(world, together=summary is not None)


def _check_starts(
    corpus: str | Path | Prepared, valid_file: str | Path | None, resume: bool, init: str | Path | None
) -> None:
    """Refuse the ways to start a run that exclude each other."""
    if resume and init is not None:
        raise ConfigError(
            "--resume continues a run in --out and --init starts a new one from another model; give one of them"
        )
    if isinstance(corpus, Prepared) and (resume or init is not None or valid_file is not None):
        raise ConfigError(
            "prepared data is for a new run on the validation text it was prepared with: give --resume "
            "and --init the corpus (they tokenize it as their model directory does), and the "
            "validation file to prepare"
        )


def _load_initial(init: str | Path) -> checkpoint.LoadedModel:
    """The model --init starts from, loaded before anything is written: one that is not there or is damaged
    costs nothing. An n-gram is refused: its lower orders hold continuation counts, not text counts, so new
    text cannot simply be added in."""
    initial = checkpoint.load(init)
    if "neural" not in initial.components():
        raise ConfigError(
            f"{init} is an n-gram model, which has no weights to start from; count the old "
            f"and the new text together instead (nextword train BOTH.txt --cell ngram)"
        )
    return initial


def _prepare(
    settings: Settings,
    corpus: str | Path,
    valid_file: str | Path | None,
    emit: Emit,
    out: Path | None = None,
    *,
    force: bool = False,
    resume: bool = False,
    initial: checkpoint.LoadedModel | None = None,
    world: distributed.World = distributed.World(),
) -> Prepared:
    """The corpus checked and encoded with the run's tokenizer: the directory's when resuming (the text must be
    the one the run started on), the initial model's with --init, or else one trained on rank 0 once it has
    checked that it may write to `out` (when given), so that a refusal costs nothing."""
    corpus_file = check_corpus(corpus)
    held_out = check_corpus(valid_file, "--valid file") if valid_file is not None else None

    def tokenizer() -> bytes:
        if resume:
            _check_same_data(checkpoint.read_manifest(out), corpus_file, held_out)
            return Tokenizer.load(out / checkpoint.TOKENIZER).proto
        if out is not None:
            checkpoint.check_output(out, force=force)
        return (initial.tokenizer if initial else train_tokenizer_for(corpus_file, settings.model, emit)).proto

    chosen = Tokenizer(world.from_main(tokenizer))

    def encoded() -> Prepared:
        emit(Stage("encoding"))
        ids = encode_corpus(corpus_file, chosen)
        if held_out is None:
            return Prepared(corpus_file, None, chosen, *split_validation(ids, settings.train.valid_fraction))
        valid = encode_corpus(held_out, chosen)
        if len(valid) < 2:
            raise CorpusError(f"the validation file {held_out.path} is too small to evaluate on")
        return Prepared(corpus_file, held_out, chosen, ids, valid)

    # Rank 0 encodes into the cache first; the other ranks then map the same file.
    return world.from_main(encoded, share=False)


def _set_up(
    out: Path,
    settings: Settings,
    data: Prepared,
    kind: kinds.Neural | kinds.Ngram,
    *,
    force: bool,
    resume: bool,
    initial: checkpoint.LoadedModel | None,
    counts: np.ndarray | None,
) -> dict[str, Any]:
    """On rank 0: a new model directory (unless resuming), and its manifest."""
    if resume:  # the neural weights will change: a mixture fitted to the old ones no longer fits
        checkpoint.set_kind(out, kind.name)
    else:
        checkpoint.prepare_output(out, force=force)
        adaptive = counts is not None and settings.model.softmax == "adaptive"
        cutoffs = initial.manifest.get("cutoffs") if initial else adaptive_cutoffs(counts) if adaptive else None
        started_from = {key: initial.manifest.get(key) for key in ("corpus", "corpus_sha256")} if initial else None
        manifest = {
            "kind": kind.name,
            "vocab_size": data.tokenizer.vocab_size,
            "corpus": data.corpus.path.name,
            "corpus_sha256": data.corpus.sha256,
            "valid_sha256": data.held_out.sha256 if data.held_out else None,
            "cutoffs": cutoffs,
            "init": {"path": str(initial.path), **started_from} if initial else None,
        }
        checkpoint.write_new(out, settings, data.tokenizer, manifest)
    # The words of the training text with their counts, which suggestions keep to (see lexicon.py): written now,
    # as they depend on the text alone, so that an interrupted run's model suggests words only as well. A run
    # from another model's weights keeps that model's words too, its counts added in: the model still knows them.
    if not (out / checkpoint.LEXICON).is_file():  # resuming: already there, unless from before lexicons
        words = count_words(data.tokenizer, data.corpus_ids)
        if initial is not None and initial.lexicon is not None:
            words.update(initial.lexicon.counts)
        write_lexicon(out / checkpoint.LEXICON, words)
    return checkpoint.read_manifest(out)


def _count(kind: kinds.Ngram, settings: Settings, data: Prepared, out: Path, emit: Emit) -> TrainSummary:
    """An n-gram model is trained by counting: one pass, then one evaluation."""
    emit(Stage("counting"))
    started = time.perf_counter()
    model = kind.fit(data.train_ids, data.tokenizer.vocab_size, settings.model)
    elapsed = time.perf_counter() - started
    totals = stream_loss(
        model, data.tokenizer, data.valid_ids, seq_len=settings.train.seq_len, device=torch.device("cpu")
    )
    checkpoint.write_metrics(out, [_metrics_row(1, 1, elapsed, 0.0, totals)])
    emit(Evaluation(1, totals.loss, totals.token_perplexity, totals.word_perplexity, improved=True))
    # Validation has measured the counts of the training split; the model kept counts the whole file.
    model = kind.fit(data.corpus_ids, data.tokenizer.vocab_size, settings.model)
    checkpoint.save_weights(out, model, 1)
    summary = TrainSummary(
        out=str(out),
        corpus=data.corpus.path.name,
        cell="ngram",
        parameters=model.entries,
        vocab_size=data.tokenizer.vocab_size,
        train_tokens=len(data.train_ids),
        valid_tokens=len(data.valid_ids),
        device="cpu",
        steps=1,
        epochs=1.0,
        elapsed=round(elapsed, 3),
        tokens_per_second=round(len(data.train_ids) / elapsed, 1),
        best_step=1,
        best_valid_loss=totals.loss,
        best_valid_perplexity=totals.token_perplexity,
        best_valid_word_perplexity=totals.word_perplexity,
        stopped_because="counted",
    )
    checkpoint.write_summary(out, summary.to_dict())
    modelcard.write_card(out)
    return summary


def _metrics_row(step: int, epoch: int, elapsed: float, lr: float, totals: LossTotals) -> dict[str, Any]:
    """One row of metrics.jsonl."""
    return {
        "step": step,
        "epoch": epoch,
        "elapsed": round(elapsed, 3),
        "lr": lr,
        "valid_loss": totals.loss,
        "valid_perplexity": totals.token_perplexity,
        "valid_word_perplexity": totals.word_perplexity,
    }


def _check_same_data(manifest: dict[str, Any], corpus: CorpusFile, held_out: CorpusFile | None) -> None:
    """A resumed run must read the very text it started on, or it would not continue it exactly."""
    if manifest.get("corpus_sha256") != corpus.sha256:
        if manifest.get("corpus") == corpus.path.name:  # the same file, edited since: saying so names the cause
            raise ConfigError(
                f"the content of {corpus.path} changed since this run started; resume with the "
                f"text it started on, or train anew with --force"
            )
        raise ConfigError(
            f"{corpus.path} is not the corpus this model was trained on "
            f"({manifest.get('corpus')}); resume with that file, or train anew"
        )
    if manifest.get("valid_sha256") != (held_out.sha256 if held_out else None):
        raise ConfigError(
            "the validation text differs from the one this run started with; resume with the same --valid (or none)"
        )


def train_tokenizer_for(corpus: CorpusFile, config: ModelConfig, emit: Emit) -> Tokenizer:
    """Train the config's tokenizer on the corpus, telling `emit` when the vocabulary had to shrink."""
    emit(Stage("tokenizer"))
    trained = train_tokenizer(
        corpus.path, config.tokenizer, config.vocab_size, sample_lines=sample_lines_for(corpus.size, corpus.lines)
    )
    if trained.notice:
        emit(Notice(trained.notice))
    return trained.tokenizer


def _make_batches(ids: np.ndarray, settings: Settings, world: distributed.World) -> StreamBatches | WindowBatches:
    """Consecutive TBPTT segments for a causal model; random windows for a bidirectional one, as many
    predictions per step as a causal batch makes. Each rank of a distributed run gets its own part."""
    model, args = settings
    if model.bidirectional:
        return WindowBatches(ids, args.batch_size * args.seq_len, model.context, args.seed, world.rank)
    return StreamBatches(ids, args.batch_size, args.seq_len, part=(world.rank, world.size))


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C or SIGTERM into a request to stop at the next step boundary.

    Stopping between steps means the checkpoint never holds a half-applied optimiser step.
    A second Ctrl-C stops at once."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handle(signum: int, frame: Any) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Scorer(torch.nn.Module):
    """The training forward pass, log P(targets), as a module's forward: what DDP wraps."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, state: Any, last_only: bool) -> tuple[torch.Tensor, Any]:
        return self.model.target_logprobs(x, y, state, last_only=last_only)


@dataclass
class _Run:
    """What stays the same through a run, whose progress is a TrainState: its settings and data, the model
    (moved to the device) with its optimiser, where it writes, and the rows of metrics.jsonl so far."""

    settings: Settings
    data: Prepared
    batches: StreamBatches | WindowBatches
    out: Path
    device: torch.device
    world: distributed.World
    model: torch.nn.Module
    scorer: torch.nn.Module = field(init=False)  # the model's training forward pass; DistributedDataParallel's
    optimizer: torch.optim.Optimizer = field(init=False)
    cores: SharedCores = field(init=False)  # the threads the loop trains on (see threads.py)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model.to(self.device)
        # DistributedDataParallel averages gradients in backward, but only for work done in its forward.
        self.scorer = distributed.wrap(_Scorer(self.model), self.world, self.device)
        args, fused = self.settings.train, self.device.type == "cuda" or None
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=args.lr, weight_decay=args.weight_decay, fused=fused
        )
        self.cores = SharedCores.for_device(self.device, shared_by_design=self.world.size > 1)

    @property
    def tokens_per_step(self) -> int:  # predictions per step, for either kind and all ranks together
        return self.settings.train.batch_size * self.settings.train.seq_len * self.world.size

    @property
    def autocast(self) -> bool:  # bf16 on GPUs, for training and evaluation alike; CPUs train in fp32
        return self.device.type == "cuda"

    @property
    def step_limit(self) -> int | None:  # the steps that max_steps and epochs allow
        args = self.settings.train
        return min((x for x in (args.max_steps, args.epochs and args.epochs * len(self.batches)) if x), default=None)


def _new_model(
    settings: Settings,
    data: Prepared,
    cutoffs: list[int] | None,
    counts: np.ndarray | None,
    initial: checkpoint.LoadedModel | None,
) -> torch.nn.Module:
    """The seeded model, new (started from the training text and its piece `counts`: warm_start.py), with
    the initial model's weights (--init), or as built (resuming: `counts` is None, and state.pt replaces them)."""
    torch.manual_seed(settings.train.seed)
    model = build_model(settings.model, data.tokenizer.vocab_size, cutoffs)
    if initial is not None:  # with an adaptive softmax's order of pieces
        model.load_state_dict(initial.components()["neural"].state_dict())
    elif counts is not None:
        vectors = piece_vectors(data.train_ids, data.tokenizer.vocab_size, networks(model)[0].embedding.embedding_dim)
        for network in networks(model):
            start_output(network.decoder, counts)
            start_embedding(network.embedding, vectors)
    return model


def _train_neural(run: _Run, initial: checkpoint.LoadedModel | None, resume: bool, emit: Emit) -> TrainSummary:
    """The loop from a new state or the checkpoint's (`resume`), the initial model (--init) evaluated first;
    then the mixture, when asked for."""
    state = _restore(run) if resume else TrainState()
    emit(Stage("training"))
    if initial is not None:
        _evaluate(run, state, emit)  # step 0: the starting model on the new text, the figure training improves on
    with _stop_on_signals() as stop:
        try:
            with run.cores:  # all the threads again after the loop: for the mixture's fit, a comparison's next run
                summary = _loop(run, state, emit, stop)
            if run.settings.train.mixture:  # on rank 0; the others wait for it, not leave the group under it
                summary = run.world.from_main(lambda: _fit_mixture(summary, run, emit))
            return summary
        except WriteError as exc:  # a full disk, say: each file is whole, old or new
            kept, saved = _kept(run.out)
            verb, flag = ("resume", "--resume") if saved is not None else ("start again", "--force")
            raise WriteError(
                f"{exc}; {kept}. Free some space, then {verb} with: nextword train "
                f"{run.data.corpus.path} --out {run.out} {flag}"
            ) from None


def _loop(run: _Run, state: TrainState, emit: Emit, stop: threading.Event) -> TrainSummary:
    """Train from `state` until a stopping rule says so (rank 0's, for every rank), evaluate the last step,
    and write the summary."""
    args = run.settings.train
    run.model.train()
    started = time.perf_counter() - state.elapsed  # when the run, resumed or not, would have started
    started_here, evaluation_seconds, steps_here = time.perf_counter(), 0.0, 0  # this process's part of it
    loss_sum, loss_steps, last_report = torch.zeros((), device=run.device), 0, 0.0
    timed_from = (state.step, 0.0)  # (step, training seconds) where the timing for a time budget's plan starts
    trained = 0.0  # this process's training seconds, evaluations left out
    while True:
        reason = _stop_reason(run, state)
        # Rank 0 decides for every rank (only it evaluates and keeps time): go on, stop, or interrupted; the steps.
        code = _INTERRUPTED if stop.is_set() else _STOP if reason else _GO
        decision, planned = run.world.decide(code, state.plan["steps"] if state.plan else None)
        _follow_plan(args, state, planned)
        if decision == _STOP:
            break
        if decision == _INTERRUPTED:
            _save_checkpoint(run, state, "interrupted")
            raise TrainingInterrupted(
                f"training stopped at step {state.step}; checkpoint saved. Resume with: "
                f"nextword train {run.data.corpus.path} --out {run.out} --resume"
            )
        loss = _train_step(run, state)
        # On a CPU reading the loss costs nothing, so every step is checked; on a GPU that would
        # stall the device each step, so the loss is checked when it is read for a report.
        if run.device.type == "cpu" and not torch.isfinite(loss):
            raise _diverged(run, state)
        loss_sum += loss
        loss_steps += 1
        steps_here += 1
        _share_cores(run, emit)
        timing = args.time_budget and run.world.main
        if timing := timing and _timing_due(state, timed_from, trained, args.time_budget):
            loss.item()  # wait for the device: the steps' time must be their real time
        now = time.perf_counter()
        state.elapsed, trained = now - started, now - started_here - evaluation_seconds
        if timing:
            timed_from = _plan_when_due(run, state, timed_from, trained, steps_here)
        if state.step % args.eval_every == 0:
            _evaluate(run, state, emit)
            evaluation_seconds += time.perf_counter() - now
            now = time.perf_counter()
        if now - last_report >= _REPORT_SECONDS or _stop_reason(run, state):
            # Wall time, not per-step host time: on a GPU the work finishes when the loss is read.
            rate = steps_here / max(now - started_here - evaluation_seconds, 1e-9)
            _report(run, state, rate, loss_sum.item() / loss_steps, emit)
            loss_sum.zero_()
            loss_steps, last_report = 0, now
    seconds = time.perf_counter() - started_here - evaluation_seconds
    tokens_per_second = steps_here * run.tokens_per_step / max(seconds, 1e-9)
    if not any(row["step"] == state.step and "valid_loss" in row for row in run.metrics):
        _evaluate(run, state, emit)
    summary = _summary(run, state, reason or "rank 0 stopped", tokens_per_second)
    if run.world.main:
        checkpoint.write_metrics(run.out, run.metrics)  # with the training loss since the last evaluation
        checkpoint.write_summary(run.out, summary.to_dict())
        modelcard.write_card(run.out)
    return summary


def _share_cores(run: _Run, emit: Emit) -> None:
    """Train on the cores other processes leave free (see threads.py), and say so when that changes."""
    threads = run.cores.adjust()
    if threads is None:
        return
    most = run.cores.governor.most
    if threads < most:
        emit(Notice(f"other processes are using the CPU: training on {threads} of {most} threads"))
    else:
        emit(Notice(f"the CPU is free again: training on {threads} threads"))


def _train_step(run: _Run, state: TrainState) -> torch.Tensor:
    """One optimiser step on the next segment, after which `state` points at the one after it."""
    x, y = (
        torch.from_numpy(a).to(run.device, non_blocking=True) for a in run.batches.batch(state.segment, state.epoch)
    )
    for group in run.optimizer.param_groups:
        group["lr"] = _learning_rate(run.settings.train, state.step, _total_steps(run, state), state.plan)
    with torch.autocast(device_type=run.device.type, dtype=torch.bfloat16, enabled=run.autocast):
        logprobs, hidden = run.scorer(x, y, state.hidden, not run.batches.carries_state)
        loss = -logprobs.float().mean()
    run.optimizer.zero_grad(set_to_none=True)
    # An ensemble's loss is its members' mean (the figure shown): at `members` times it, each member's
    # gradient is the one a run of its own would take.
    (loss * len(networks(run.model))).backward()
    if run.settings.train.clip > 0:
        clip_gradients(run.model, run.settings.train.clip)
    run.optimizer.step()
    state.hidden = detach_state(hidden) if run.batches.carries_state else None
    state.step += 1
    state.segment += 1
    if state.segment == len(run.batches):
        # A new epoch starts every stream from its beginning again: the carried state no longer fits.
        state.epoch, state.segment, state.hidden = state.epoch + 1, 0, None
    return loss.detach()


def _report(run: _Run, state: TrainState, steps_per_second: float, mean_loss: float, emit: Emit) -> None:
    """Progress since the last report: to `emit`, and as a row of training loss for metrics.jsonl. The budget
    is done as far as whichever of the steps and the time budget is nearest to its end."""
    if not math.isfinite(mean_loss):
        raise _diverged(run, state)
    args, total, lr = run.settings.train, _total_steps(run, state), run.optimizer.param_groups[0]["lr"]
    done, eta = [], []
    if total:
        done.append(state.step / total)
        eta += [(total - state.step) / steps_per_second] if steps_per_second > 0 else []
    if args.time_budget:
        done.append(state.elapsed / args.time_budget)
        eta.append(args.time_budget - state.elapsed)
    speed = steps_per_second * run.tokens_per_step
    done, eta = min(max(done, default=0.0), 1.0), max(min(eta), 0.0) if eta else None
    emit(Progress(state.step, total, state.epoch, mean_loss, lr, speed, state.elapsed, done, eta))
    run.metrics.append(
        {"step": state.step, "train_loss": round(mean_loss, 6), "lr": lr, "elapsed": round(state.elapsed, 3)}
    )


# -- budget and schedule: functions of the settings and the progress alone ---------------------------


def _total_steps(run: _Run, state: TrainState) -> int | None:
    """The steps the schedule follows: the step limit, or under a time budget the planned steps
    (None until they are planned)."""
    if run.settings.train.time_budget:
        return state.plan["steps"] if state.plan else None
    return run.step_limit


def _learning_rate(args: TrainArgs, step: int, total: int | None, plan: dict | None) -> float:
    """Linear warmup, then cosine decay to `final_lr` by the total steps: a function of the step alone,
    so a run repeats exactly whatever the clock did (unless it was planned again: see _decayed)."""
    warmup = _warmup(args, total, plan)
    if step < warmup:
        return args.lr * (step + 1) / warmup
    done = _decayed(args, step, total, plan)
    return args.lr * (args.final_lr + (1 - args.final_lr) * 0.5 * (1 + math.cos(math.pi * done)))


def _warmup(args: TrainArgs, total: int | None, plan: dict | None) -> int:
    """The warmup's steps: the settings', or a share of the run's where it is too short for them (_WARMUP_SHARE):
    the plan's under a time budget, else that of the `total` steps its limit allows."""
    if plan:
        return plan.get("warmup", args.warmup)
    return min(args.warmup, math.ceil(_WARMUP_SHARE * total)) if total else args.warmup


def _decayed(args: TrainArgs, step: int, total: int | None, plan: dict | None) -> float:
    """How far along its decay the learning rate is at `step`: from the warmup's end, or for a run planned again
    from where the plan changed (`decay_from`, [step, fraction]), evenly to the total steps."""
    start, done = (plan or {}).get("decay_from") or (_warmup(args, total, plan), 0.0)
    total = total or step + 1  # unknown only at a constant rate (final_lr 1)
    return min(done + (1 - done) * max(step - start, 0) / max(total - start, 1), 1.0)


def _needs_total(args: TrainArgs, step: int) -> bool:
    """Whether the learning rate at `step` depends on the total steps: past the warmup, while it decays."""
    return step >= args.warmup and args.final_lr < 1


def _stop_reason(run: _Run, state: TrainState) -> str | None:
    args = run.settings.train
    if args.max_steps and state.step >= args.max_steps:
        return "max_steps"
    if args.epochs and state.epoch >= args.epochs:
        return "epochs"
    if state.plan and state.step >= state.plan["steps"]:
        return "planned_steps"
    if args.time_budget and state.elapsed >= args.time_budget:
        return (
            f"time_budget (at step {state.step} of the {state.plan['steps']} planned: slower than measured)"
            if state.plan
            else "time_budget"
        )
    if args.patience and state.bad_evaluations >= args.patience:
        return "patience"
    return None


def _timing_due(state: TrainState, timed_from: tuple[int, float], trained: float, budget: float) -> bool:
    """Whether rank 0 times this step: each one until it has planned the steps, then one every tenth of the budget
    or of the planned steps, whichever comes first (a plan from a slow start may end long before the budget)."""
    if state.plan is None:
        return True
    return (
        trained - timed_from[1] >= _REPLAN_EVERY * budget
        or state.step - timed_from[0] >= _REPLAN_EVERY * state.plan["steps"]
    )


def _plan_when_due(
    run: _Run, state: TrainState, timed_from: tuple[int, float], trained: float, steps_here: int
) -> tuple[int, float]:
    """A time-budgeted run's total: the steps that fit in what is left of the budget at the pace since `timed_from`
    (step, training seconds; evaluations left out), with an evaluation every eval_every steps. Planned once timed
    long enough after the first, slow steps, or as soon as the schedule needs it (then from what was timed, slow
    steps and all); planned again should the pace drift (_REPLAN_LATE, _REPLAN_EARLY). Rank 0 plans, and says
    where the next pace is timed from. The time budget still stops the run."""
    args = run.settings.train
    if steps_here == _PLAN_SKIP_STEPS and not _needs_total(args, state.step):
        return state.step, trained  # timed after the first, slow steps
    measured_steps, measured_seconds = state.step - timed_from[0], trained - timed_from[1]
    long_enough = measured_seconds >= min(_PLAN_SECONDS, _PLAN_FRACTION * args.time_budget)
    warmed_up = steps_here > _PLAN_SKIP_STEPS
    if measured_steps < 1 or not (state.plan or _needs_total(args, state.step) or warmed_up and long_enough):
        return timed_from
    per_step = measured_seconds / measured_steps
    evaluation = len(run.data.valid_ids) / run.tokens_per_step * per_step * EVALUATION_COST
    cost = per_step + evaluation / args.eval_every  # a step's seconds, its share of the evaluations with it
    fitting = state.step + max(int((args.time_budget - state.elapsed) / cost), 0)
    steps = min(fitting, run.step_limit or fitting)
    if state.plan:
        late = (state.plan["steps"] - steps) * cost / args.time_budget  # how late the old plan would end
        if late > _REPLAN_LATE or -late > _REPLAN_EARLY:
            _replan(args, state, steps, per_step)
        return state.step, trained
    state.plan = {
        **_first_plan(args, state.step, steps),
        "time_budget": args.time_budget,
        "planned_at_step": state.step,
        "measured_steps": measured_steps,
        "measured_seconds": round(measured_seconds, 4),
        "seconds_per_step": per_step,
        "estimated_evaluation_seconds": round(evaluation, 4),
    }
    return state.step, trained


def _first_plan(args: TrainArgs, step: int, steps: int) -> dict[str, Any]:
    """The steps planned at `step`, with a shorter warmup where they are too few for the settings' (it ends no
    earlier than this step: the steps before it followed the settings' ramp), as a step limit's (`_warmup`)."""
    warmup = max(step, _warmup(args, steps, None))
    return {"steps": steps} if warmup >= args.warmup else {"steps": steps, "warmup": warmup}


def _replan(args: TrainArgs, state: TrainState, steps: int, seconds_per_step: float | None = None) -> None:
    """Plan `steps` in all from this step on, the learning rate going on from where the old plan had it: the
    rest of its decay is spread evenly over the new steps left."""
    start = max(state.step, _warmup(args, None, state.plan))
    state.plan["decay_from"] = [start, _decayed(args, start, state.plan["steps"], state.plan)]
    state.plan.setdefault("first_planned_steps", state.plan["steps"])
    state.plan["steps"] = steps
    state.plan.setdefault("replanned", []).append(
        {"at_step": state.step, "steps": steps, "seconds_per_step": seconds_per_step}
    )


def _follow_plan(args: TrainArgs, state: TrainState, planned: int | None) -> None:
    """Rank 0's planned steps, on another rank (on rank 0 they are its own)."""
    if planned is None or state.plan and state.plan["steps"] == planned:
        return
    if state.plan:
        _replan(args, state, planned)
    else:
        state.plan = _first_plan(args, state.step, planned)


# -- evaluation, checkpoints and the summary ---------------------------------------------------------


def _evaluate(run: _Run, state: TrainState, emit: Emit) -> None:
    """Score the validation text; keep a new best, and save a checkpoint."""
    if not run.world.main:
        return  # rank 0 evaluates and keeps the files; the others carry on to the next step
    data, seq_len, lr = run.data, run.settings.train.seq_len, run.optimizer.param_groups[0]["lr"]
    totals = stream_loss(
        run.model, data.tokenizer, data.valid_ids, seq_len=seq_len, device=run.device, autocast=run.autocast
    )
    if not math.isfinite(totals.loss):
        raise _diverged(run, state)  # before anything is saved: the files keep the last good state
    run.metrics.append(_metrics_row(state.step, state.epoch, state.elapsed, lr, totals))
    improved = totals.loss < state.best_loss
    if improved:
        state.best_loss, state.best_step, state.bad_evaluations = totals.loss, state.step, 0
    else:
        state.bad_evaluations += 1
    checkpoint.write_metrics(run.out, run.metrics)
    _save_checkpoint(run, state)
    emit(Evaluation(state.step, totals.loss, totals.token_perplexity, totals.word_perplexity, improved))


def _save_checkpoint(run: _Run, state: TrainState, stopped_because: str = "running") -> None:
    """The state first, then the weights and summary: a crash between them loses nothing (see checkpoint)."""
    if not run.world.main:
        return
    checkpoint.save_state(
        run.out,
        state,
        {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else [],
        },
    )
    # New best weights; when interrupted before the first evaluation, weights so that the model loads.
    unloadable = stopped_because == "interrupted" and not (run.out / checkpoint.WEIGHTS).exists()
    if checkpoint.best_weights_missing(run.out, state) or unloadable:
        checkpoint.save_weights(run.out, run.model, state.step)
    checkpoint.write_summary(run.out, _summary(run, state, stopped_because, 0.0).to_dict())


def _restore(run: _Run) -> TrainState:
    """Put the checkpoint's weights, optimiser and random state back; its progress is where the run goes on."""
    state, saved = checkpoint.load_state(run.out)
    try:
        run.model.load_state_dict(saved["model"])
        run.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        if saved["cuda_rng"] and run.device.type == "cuda":
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise checkpoint.ModelDirError(
            f"{run.out / checkpoint.STATE} does not fit this model ({type(exc).__name__}: {exc}); it cannot be resumed"
        ) from None
    if run.world.main and checkpoint.best_weights_missing(run.out, state):
        checkpoint.save_weights(run.out, run.model, state.step)  # the model now holds the state's weights
    # The saved state is rank 0's streams; the others start theirs afresh.
    state.hidden = state.hidden if run.world.main else None
    state.hidden = map_state(lambda tensor: tensor.to(run.device), state.hidden)
    run.metrics[:] = [row for row in checkpoint.read_metrics(run.out, training=True) if row["step"] <= state.step]
    return state


def _summary(run: _Run, state: TrainState, stopped_because: str, tokens_per_second: float) -> TrainSummary:
    best = next((row for row in run.metrics if row["step"] == state.best_step and "valid_loss" in row), {})
    return TrainSummary(
        out=str(run.out),
        corpus=run.data.corpus.path.name,
        cell=run.settings.model.cell,
        members=run.settings.model.members,
        parameters=parameter_count(run.model),
        vocab_size=run.data.tokenizer.vocab_size,
        train_tokens=len(run.batches) * run.tokens_per_step,
        valid_tokens=len(run.data.valid_ids),
        device=run.device.type,
        steps=state.step,
        epochs=round(state.step / len(run.batches), 3),
        elapsed=round(state.elapsed, 3),
        tokens_per_second=round(tokens_per_second, 1),
        best_step=state.best_step,
        best_valid_loss=best.get("valid_loss", math.nan),
        best_valid_perplexity=best.get("valid_perplexity", math.nan),
        best_valid_word_perplexity=best.get("valid_word_perplexity", math.nan),
        stopped_because=stopped_because,
        plan=state.plan,
    )


def _fit_mixture(summary: TrainSummary, run: _Run, emit: Emit) -> TrainSummary:
    """After a finished run: an n-gram of the training pieces, mixed with the best neural weights and a
    cache, the weights fitted on validation, then the n-gram counted again over the whole file (see
    `Prepared.corpus_ids`); the directory then holds a mixture (kinds.py)."""
    emit(Stage("mixture"))
    data = run.data
    neural = checkpoint.load(run.out, run.device).model  # the best weights, which the run saved
    ngram = kinds.fit_ngram(data.train_ids, data.tokenizer.vocab_size, run.settings.model.order)
    model, report = mixture.fit(
        neural, ngram, data.tokenizer, data.valid_ids, seq_len=run.settings.train.seq_len, device=run.device
    )
    model = model.replaced(ngram=kinds.fit_ngram(data.corpus_ids, data.tokenizer.vocab_size, ngram.order))
    kinds.MIXTURE_KIND.save(run.out, model)
    checkpoint.set_kind(run.out, kinds.MIXTURE_KIND.name, mixture=report)  # last: until then it is a neural model
    summary = replace(summary, mixture=report)
    checkpoint.write_summary(run.out, summary.to_dict())
    modelcard.write_card(run.out)  # again: it now describes a mixture
    return summary


def _diverged(run: _Run, state: TrainState) -> TrainingDiverged:
    args = run.settings.train
    return TrainingDiverged(
        f"training diverged at step {state.step}: the loss is no longer a finite number; {_kept(run.out)[0]}. "
        f"Lower --lr (now {args.lr:g}) or clip gradients harder (--clip, now {args.clip:g}), "
        f"then train again with --force"
    )


def _kept(out: Path) -> tuple[str, int | None]:
    """What a failed run leaves, in words, and the step of the checkpoint on disk, if one was saved (read from
    state.pt, which holds the whole model, once)."""
    if not (out / checkpoint.STATE).is_file():
        return "no checkpoint had been saved yet", None
    saved = checkpoint.load_state(out)[0].step
    return f"the last good checkpoint (step {saved}) is kept in {out}", saved
