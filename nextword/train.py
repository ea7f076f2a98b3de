"""Training: corpus -> tokenizer -> token ids -> truncated-BPTT loop -> model directory.

The loop is plain and reads top to bottom: AdamW with warmup and cosine decay, gradient-norm
clipping, the hidden state carried (detached) across consecutive segments, periodic validation
that keeps the best weights, early stopping, and a checkpoint at each evaluation from which
`resume` continues exactly (same weights, bit for bit, on a CPU).

The library never prints: progress goes to the `on_event` callback as small event objects.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Union

import numpy as np
import torch

from . import checkpoint, distributed, kinds, mixture, modelcard
from .config import Config
from .data import CorpusFile, StreamBatches, WindowBatches, check_corpus, encode_corpus, split_validation
from .devices import pick_device
from .errors import ConfigError, CorpusError, TrainingDiverged, TrainingInterrupted, WriteError
from .evaluate import LossTotals, stream_loss
from .lexicon import Lexicon, count_words, write_lexicon
from .model import AdaptiveOutput, adaptive_cutoffs, build_model, detach_state, parameter_count
from .tokenizer import Tokenizer, sample_lines_for, train_tokenizer

_REPORT_SECONDS = 0.25  # how often progress is reported (and the loss read back from the device)
# A time budget is turned into a number of steps (see `_Run.plan_budget`), timed over the steps after
# the first few (which allocate and warm caches), for this long at most: within the warmup, whose
# learning rate does not depend on the total, so that `--max-steps` with the planned steps repeats the run.
_PLAN_SKIP_STEPS, _PLAN_SECONDS, _PLAN_FRACTION = 3, 5.0, 0.05
_EVALUATION_COST = 1 / 3  # a validation token costs about a third of a training token: forward only
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
    mixture: dict[str, Any] | None = None  # what fitting the mixture found (mixture.fit), once it is fitted
    plan: dict[str, Any] | None = None  # a time-budgeted run's planned steps (see _Run.plan_budget)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(config: Config, corpus: str | Path, out: str | Path, *, valid_file: str | Path | None = None,
          force: bool = False, resume: bool = False, init: str | Path | None = None,
          tokenizer: Tokenizer | None = None, on_event: Callable[[Event], None] | None = None) -> TrainSummary:
    """Train a model on `corpus` into the model directory `out`, or continue one with `resume`.

    With `resume`, `config` must come from `checkpoint.resume_config` (the saved run's config).
    With `init`, a trained model directory, the new run starts from that model's weights and uses its
    tokenizer; `config` must come from `checkpoint.init_config`. Its optimiser and step are not
    carried over: this is a new run, evaluated once before its first step.
    A `tokenizer` given is used as it is (compare trains one for all its variants).
    Raises `TrainingInterrupted` after saving a checkpoint when SIGINT or SIGTERM arrives.
    """
    out = Path(out)
    if resume and init is not None:
        raise ConfigError("--resume continues a run in --out and --init starts a new one from another model; "
                          "give one of them")
    corpus_file = check_corpus(corpus)
    held_out = check_corpus(valid_file) if valid_file is not None else None
    device = pick_device(config.device)
    world = distributed.join(device)  # one rank, unless torchrun started this process
    if world.size > 1 and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    emit = (on_event if world.main else None) or (lambda event: None)  # rank 0 speaks for all
    # Loaded before anything is written: a model that is not there or is damaged costs nothing.
    initial = checkpoint.load(init) if init is not None else None
    kind = kinds.trained_kind(config)
    if kind.counted and (resume or world.size > 1):
        raise ConfigError("an n-gram model is counted in one pass by one process, so there is nothing to "
                          "resume or share; train it again with --force, without torchrun")
    if initial is not None and "neural" not in initial.components():
        # Its lower orders hold continuation counts, not text counts: new text cannot simply be added in.
        raise ConfigError(f"{init} is an n-gram model, which has no weights to start from; count the old "
                          f"and the new text together instead (nextword train BOTH.txt --cell ngram)")

    def prepare() -> bytes:
        """On rank 0: the checks that come before any writing, and the tokenizer to use."""
        if resume:
            _check_same_data(checkpoint.read_manifest(out), corpus_file, held_out)
            return Tokenizer.load(out / checkpoint.TOKENIZER).proto
        checkpoint.check_output(out, force=force)
        if initial is not None:
            return initial.tokenizer.proto
        return (tokenizer or train_tokenizer_for(corpus_file, config, emit)).proto

    tokenizer = Tokenizer(world.from_main(prepare))
    emit(Stage("encoding"))
    # Rank 0 encodes into the cache first; the other ranks then map the same file.
    train_ids, valid_ids = world.from_main(lambda: token_splits(corpus_file, held_out, tokenizer, config),
                                           share=False)
    kind.check(config, tokenizer.vocab_size)
    # Made before the output is touched: a corpus too small for one batch must not cost the old model.
    batches = None if kind.counted else make_batches(train_ids, config, world)
    # Piece frequencies order an adaptive softmax's pieces; only a new one needs this pass over the corpus.
    adaptive = config.softmax == "adaptive" and batches is not None and initial is None
    counts = np.bincount(train_ids, minlength=tokenizer.vocab_size) if adaptive else None
    summary = None
    try:
        with checkpoint.writing(out) if world.main else contextlib.nullcontext():  # one training per directory

            def start() -> dict[str, Any]:
                """On rank 0: a new model directory (unless resuming), and its manifest."""
                if resume:  # the neural weights will change: a mixture fitted to the old ones no longer fits
                    checkpoint.set_kind(out, kind.name)
                else:
                    checkpoint.prepare_output(out, force=force)
                    checkpoint.write_new(out, config, tokenizer, {
                        "kind": kind.name, "vocab_size": tokenizer.vocab_size, "corpus": corpus_file.path.name,
                        "corpus_sha256": corpus_file.sha256, "valid_sha256": held_out.sha256 if held_out else None,
                        "cutoffs": initial.manifest.get("cutoffs") if initial else
                        adaptive_cutoffs(counts) if counts is not None else None,
                        "init": {"path": str(init), "corpus": initial.manifest.get("corpus"),
                                 "corpus_sha256": initial.manifest.get("corpus_sha256")} if initial else None})
                if not (out / checkpoint.LEXICON).is_file():  # resuming: already there, unless from before lexicons
                    save_lexicon(out, tokenizer, train_ids, initial.lexicon if initial else None)
                return checkpoint.read_manifest(out)

            manifest = world.from_main(start)
            if batches is None:
                return _count(kind, config, tokenizer, train_ids, valid_ids, out, corpus_file, emit)
            run = _Run(config, tokenizer, batches, valid_ids, out, device, corpus_file, manifest.get("cutoffs"),
                       counts, world, initial.components()["neural"] if initial else None)
            if resume:
                run.restore(checkpoint.load_state(out))
            emit(Stage("training"))
            if initial is not None:
                run.evaluate(emit)  # step 0: the starting model on the new text, the figure training improves on
            with _stop_on_signals() as stop:
                try:
                    summary = run.loop(emit, stop)
                    if config.mixture:  # on rank 0; the others wait for it, not leave the group under it
                        summary = world.from_main(lambda: _fit_mixture(summary, config, tokenizer, train_ids,
                                                                       valid_ids, out, device, emit))
                    return summary
                except WriteError as exc:  # a full disk, say: each file is whole, old or new
                    saved = run.saved_step()  # read from state.pt once: it holds the whole model
                    raise WriteError(f"{exc}; {run.kept(saved)}. Free some space, then "
                                     f"{run.how_to_continue(saved)}") from None
    finally:
        distributed.leave(world, together=summary is not None)


def _fit_mixture(summary: TrainSummary, config: Config, tokenizer: Tokenizer, train_ids: np.ndarray,
                 valid_ids: np.ndarray, out: Path, device: torch.device, emit: Callable[[Event], None]) -> TrainSummary:
    """After a finished run: an n-gram of the training pieces, mixed with the best neural weights and a
    cache, the weights fitted on validation; the directory then holds a mixture (kinds.py)."""
    emit(Stage("mixture"))
    neural = checkpoint.load(out, device).model  # the best weights, which the run saved
    ngram = kinds.fit_ngram(train_ids, tokenizer.vocab_size, config.order)
    model, report = mixture.fit(neural, ngram, tokenizer, valid_ids, seq_len=config.seq_len, device=device)
    kinds.MIXTURE_KIND.save(out, model)
    checkpoint.set_kind(out, kinds.MIXTURE_KIND.name, mixture=report)  # last: until then it is a neural model
    summary = replace(summary, mixture=report)
    checkpoint.write_summary(out, summary.to_dict())
    modelcard.write_card(out)  # again: it now describes a mixture
    return summary


def save_lexicon(out: Path, tokenizer: Tokenizer, train_ids: np.ndarray, initial: Lexicon | None) -> None:
    """The words of the training text with their counts, which suggestions keep to (see lexicon.py).

    Written when the directory is set up, not at the end: it depends on the text alone, and an
    interrupted run's model then suggests words only as well. A run from another model's weights
    (--init) keeps that model's words too, its counts added to the new text's: the model still knows them.
    """
    counts = count_words(tokenizer, train_ids)
    if initial is not None:
        counts.update(initial.counts)
    write_lexicon(out / checkpoint.LEXICON, counts)


def _count(kind: kinds.Ngram, config: Config, tokenizer: Tokenizer, train_ids: np.ndarray, valid_ids: np.ndarray,
           out: Path, corpus: CorpusFile, emit: Callable[[Event], None]) -> TrainSummary:
    """An n-gram model is trained by counting: one pass, then one evaluation."""
    emit(Stage("counting"))
    started = time.perf_counter()
    model = kind.fit(train_ids, tokenizer.vocab_size, config)
    elapsed = time.perf_counter() - started
    checkpoint.save_weights(out, model, 1)
    totals = stream_loss(model, tokenizer, valid_ids, seq_len=config.seq_len, device=torch.device("cpu"))
    row = _metrics_row(1, 1, elapsed, 0.0, totals)
    checkpoint.write_metrics(out, [row])
    emit(Evaluation(1, totals.loss, totals.token_perplexity, totals.word_perplexity, improved=True))
    summary = TrainSummary(
        out=str(out), corpus=corpus.path.name, cell="ngram", parameters=model.entries,
        vocab_size=tokenizer.vocab_size, train_tokens=len(train_ids), valid_tokens=len(valid_ids), device="cpu",
        steps=1, epochs=1.0, elapsed=round(elapsed, 3), tokens_per_second=round(len(train_ids) / elapsed, 1),
        best_step=1, best_valid_loss=totals.loss, best_valid_perplexity=totals.token_perplexity,
        best_valid_word_perplexity=totals.word_perplexity, stopped_because="counted")
    checkpoint.write_summary(out, summary.to_dict())
    modelcard.write_card(out)
    return summary


def _metrics_row(step: int, epoch: int, elapsed: float, lr: float, totals: LossTotals) -> dict[str, Any]:
    """One row of metrics.jsonl."""
    return {"step": step, "epoch": epoch, "elapsed": round(elapsed, 3), "lr": lr, "valid_loss": totals.loss,
            "valid_perplexity": totals.token_perplexity, "valid_word_perplexity": totals.word_perplexity}


def _training_row(step: int, loss: float, lr: float, elapsed: float) -> dict[str, Any]:
    """A row of metrics.jsonl between evaluations: the mean training loss since the previous one."""
    return {"step": step, "train_loss": round(loss, 6), "lr": lr, "elapsed": round(elapsed, 3)}


def _check_same_data(manifest: dict[str, Any], corpus: CorpusFile, held_out: CorpusFile | None) -> None:
    """A resumed run must read the very text it started on, or it would not continue it exactly."""
    if manifest.get("corpus_sha256") != corpus.sha256:
        if manifest.get("corpus") == corpus.path.name:  # the same file, edited since: saying so names the cause
            raise ConfigError(f"the content of {corpus.path} changed since this run started; resume with the "
                              f"text it started on, or train anew with --force")
        raise ConfigError(f"{corpus.path} is not the corpus this model was trained on "
                          f"({manifest.get('corpus')}); resume with that file, or train anew")
    if manifest.get("valid_sha256") != (held_out.sha256 if held_out else None):
        raise ConfigError("the validation text differs from the one this run started with; "
                          "resume with the same --valid (or none)")


def train_tokenizer_for(corpus: CorpusFile, config: Config, emit: Callable[[Event], None]) -> Tokenizer:
    """Train the config's tokenizer on the corpus, telling `emit` when the vocabulary had to shrink."""
    emit(Stage("tokenizer"))
    trained = train_tokenizer(corpus.path, config.tokenizer, config.vocab_size,
                              sample_lines=sample_lines_for(corpus.size, corpus.lines))
    if trained.notice:
        emit(Notice(trained.notice))
    return trained.tokenizer


def make_batches(ids: np.ndarray, config: Config, world: distributed.World = distributed.World()
                 ) -> StreamBatches | WindowBatches:
    """Consecutive TBPTT segments for a causal model; random windows for a bidirectional one, as many
    predictions per step as a causal batch makes. Each rank of a distributed run gets its own part."""
    if config.bidirectional:
        return WindowBatches(ids, config.batch_size * config.seq_len, config.context, config.seed, world.rank)
    return StreamBatches(ids, config.batch_size, config.seq_len, part=(world.rank, world.size))


def token_splits(corpus: CorpusFile, held_out: CorpusFile | None, tokenizer: Tokenizer,
                  config: Config) -> tuple[np.ndarray, np.ndarray]:
    ids = encode_corpus(corpus, tokenizer)
    if held_out is None:
        return split_validation(ids, config.valid_fraction)
    valid = encode_corpus(held_out, tokenizer)
    if len(valid) < 2:
        raise CorpusError(f"the validation file {held_out.path} is too small to evaluate on")
    return ids, valid


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C or SIGTERM into a request to stop at the next step boundary.

    Stopping between steps means the checkpoint never holds a half-applied optimiser step.
    A second Ctrl-C stops at once.
    """
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


class _Run:
    """The state of one training run, which is exactly what a checkpoint holds."""

    def __init__(self, config: Config, tokenizer: Tokenizer, batches: StreamBatches | WindowBatches,
                 valid_ids: np.ndarray, out: Path, device: torch.device, corpus: CorpusFile,
                 cutoffs: list[int] | None, counts: np.ndarray | None, world: distributed.World,
                 start: torch.nn.Module | None = None):
        self.config, self.tokenizer, self.batches, self.valid_ids = config, tokenizer, batches, valid_ids
        self.out, self.device, self.corpus, self.world = out, device, corpus, world
        # Predictions per step, for either kind and all ranks together.
        self.tokens_per_step = config.batch_size * config.seq_len * world.size
        torch.manual_seed(config.seed)
        self.model = build_model(config, tokenizer.vocab_size, cutoffs)
        if start is not None:
            self.model.load_state_dict(start.state_dict())  # with an adaptive softmax's order of pieces
        elif isinstance(self.model.decoder, AdaptiveOutput):
            self.model.decoder.sort_by(counts)
        self.model.to(device)
        # DistributedDataParallel averages gradients in backward, but only for work done in its forward.
        self.scorer = distributed.wrap(_Scorer(self.model), world, device)
        cuda = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay, fused=cuda or None)
        self.autocast = cuda  # bf16 on GPUs; CPUs train in fp32
        self.step = self.epoch = self.segment = 0
        self.hidden = None
        self.best_loss, self.best_step = math.inf, 0
        self.best: dict[str, Any] | None = None  # the metrics row of the best evaluation
        self.bad_evaluations = 0
        self.elapsed = 0.0
        self.metrics: list[dict[str, Any]] = []
        # A time-budgeted run's planned total steps, and how they were measured (in state.pt and summary.json).
        self.plan: dict[str, Any] | None = None

    # -- budget and schedule -------------------------------------------------------------------
    def step_limit(self) -> int | None:
        """The steps that max_steps and epochs allow."""
        limits = [self.config.max_steps, self.config.epochs and self.config.epochs * len(self.batches)]
        return min((x for x in limits if x), default=None)

    def total_steps(self) -> int | None:
        """The steps the schedule follows: the step limit, or under a time budget the planned steps
        (None until they are planned)."""
        if self.config.time_budget:
            return self.plan["steps"] if self.plan else None
        return self.step_limit()

    def learning_rate(self) -> float:
        """Linear warmup, then cosine decay to `final_lr` by the total steps: a function of the step alone,
        so a run repeats exactly whatever the clock did."""
        config = self.config
        if self.step < config.warmup:
            return config.lr * (self.step + 1) / config.warmup
        total = self.total_steps() or self.step + 1  # unknown only at a constant rate (final_lr 1)
        done = min((self.step - config.warmup) / max(total - config.warmup, 1), 1.0)
        return config.lr * (config.final_lr + (1 - config.final_lr) * 0.5 * (1 + math.cos(math.pi * done)))

    def plan_budget(self, measured_steps: int, measured_seconds: float) -> None:
        """Plan a time-budgeted run's total steps from the seconds its last `measured_steps` steps took
        (evaluations left out): the steps that, with an evaluation every eval_every steps, fit in what
        is left of the budget. The time budget still stops the run should the machine slow down."""
        config = self.config
        per_step = measured_seconds / max(measured_steps, 1)
        evaluation = len(self.valid_ids) / self.tokens_per_step * per_step * _EVALUATION_COST
        left = config.time_budget - self.elapsed
        fitting = self.step + max(int(left / (per_step + evaluation / config.eval_every)), 0)
        steps = min(fitting, self.step_limit() or fitting)
        self.plan = {"steps": self.world.from_main(lambda: steps), "time_budget": config.time_budget,
                     "planned_at_step": self.step, "measured_steps": measured_steps,
                     "measured_seconds": round(measured_seconds, 4), "seconds_per_step": per_step,
                     "estimated_evaluation_seconds": round(evaluation, 4)}

    def must_plan(self, measured_steps: int, measured_seconds: float, warmed_up: bool) -> bool:
        """Whether to plan now: timed long enough after the first, slow steps (`warmed_up`), or the next
        step's learning rate needs the total (then from what was timed, slow steps and all)."""
        config = self.config
        if not config.time_budget or self.plan is not None or measured_steps < 1:
            return False
        deadline = self.step >= config.warmup and config.final_lr < 1
        long_enough = measured_seconds >= min(_PLAN_SECONDS, _PLAN_FRACTION * config.time_budget)
        return deadline or (warmed_up and long_enough)

    def stop_reason(self) -> str | None:
        config = self.config
        if config.max_steps and self.step >= config.max_steps:
            return "max_steps"
        if config.epochs and self.epoch >= config.epochs:
            return "epochs"
        if self.plan and self.step >= self.plan["steps"]:
            return "planned_steps"
        if config.time_budget and self.elapsed >= config.time_budget:
            return (f"time_budget (at step {self.step} of the {self.plan['steps']} planned: slower than measured)"
                    if self.plan else "time_budget")
        if config.patience and self.bad_evaluations >= config.patience:
            return "patience"
        return None

    def done(self) -> float:
        fractions = []
        if total := self.total_steps():
            fractions.append(self.step / total)
        if self.config.time_budget:
            fractions.append(self.elapsed / self.config.time_budget)
        return min(max(fractions, default=0.0), 1.0)

    def eta(self, steps_per_second: float) -> float | None:
        estimates = []
        if (total := self.total_steps()) and steps_per_second > 0:
            estimates.append((total - self.step) / steps_per_second)
        if self.config.time_budget:
            estimates.append(self.config.time_budget - self.elapsed)
        return max(min(estimates), 0.0) if estimates else None

    # -- the loop ------------------------------------------------------------------------------
    def train_step(self) -> torch.Tensor:
        x, y = (torch.from_numpy(a).to(self.device, non_blocking=True)
                for a in self.batches.batch(self.segment, self.epoch))
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logprobs, hidden = self.scorer(x, y, self.hidden, not self.batches.carries_state)
            loss = -logprobs.float().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.optimizer.step()
        self.hidden = detach_state(hidden) if self.batches.carries_state else None
        self.step += 1
        self.segment += 1
        if self.segment == len(self.batches):
            # A new epoch starts every stream from its beginning again: the carried state no longer fits.
            self.epoch, self.segment, self.hidden = self.epoch + 1, 0, None
        return loss.detach()

    def loop(self, emit: Callable[[Event], None], stop: threading.Event) -> TrainSummary:
        self.model.train()
        started = time.perf_counter() - self.elapsed
        started_this_run, evaluation_seconds, steps_this_run = time.perf_counter(), 0.0, 0
        loss_sum, loss_steps, last_report = torch.zeros((), device=self.device), 0, 0.0
        timed_from = (self.step, 0.0)  # (step, training seconds) where the timing for a plan starts
        while True:
            reason = self.stop_reason()
            # Rank 0 decides for every rank (only it evaluates and keeps time): go on, stop, or interrupted.
            decision = self.world.decide(_INTERRUPTED if stop.is_set() else _STOP if reason else _GO)
            if decision == _STOP:
                reason = reason or "rank 0 stopped"
                break
            if decision == _INTERRUPTED:
                self.save_checkpoint(interrupted=True)
                raise TrainingInterrupted(
                    f"training stopped at step {self.step}; checkpoint saved. Resume with: "
                    f"nextword train {self.corpus.path} --out {self.out} --resume")
            loss = self.train_step()
            # On a CPU reading the loss costs nothing, so every step is checked; on a GPU that would
            # stall the device each step, so the loss is checked when it is read for a report.
            if self.device.type == "cpu" and not torch.isfinite(loss):
                raise self.diverged()
            loss_sum += loss
            loss_steps += 1
            steps_this_run += 1
            planning = self.config.time_budget and self.plan is None
            if planning:
                loss.item()  # wait for the device: the step's time must be its real time
            now = time.perf_counter()
            self.elapsed = now - started
            if planning:
                trained = now - started_this_run - evaluation_seconds
                if steps_this_run == _PLAN_SKIP_STEPS and not self.must_plan(1, 0.0, False):
                    timed_from = (self.step, trained)
                if self.must_plan(self.step - timed_from[0], trained - timed_from[1],
                                  steps_this_run > _PLAN_SKIP_STEPS):
                    self.plan_budget(self.step - timed_from[0], trained - timed_from[1])
            if self.step % self.config.eval_every == 0:
                self.evaluate(emit)
                evaluation_seconds += time.perf_counter() - now
                now = time.perf_counter()
            if now - last_report >= _REPORT_SECONDS or self.stop_reason():
                # Wall time, not per-step host time: on a GPU the work finishes when the loss is read.
                train_seconds = now - started_this_run - evaluation_seconds
                rate = steps_this_run / max(train_seconds, 1e-9)
                if not math.isfinite(mean_loss := loss_sum.item() / loss_steps):
                    raise self.diverged()
                emit(Progress(self.step, self.total_steps(), self.epoch, mean_loss,
                              self.optimizer.param_groups[0]["lr"], rate * self.tokens_per_step, self.elapsed,
                              self.done(), self.eta(rate)))
                self.metrics.append(_training_row(self.step, mean_loss, self.optimizer.param_groups[0]["lr"],
                                                  self.elapsed))
                loss_sum.zero_()
                loss_steps, last_report = 0, now
        train_seconds = time.perf_counter() - started_this_run - evaluation_seconds
        if not any(row["step"] == self.step for row in self.evaluations()):
            self.evaluate(emit)
        summary = self.summary(reason, steps_this_run * self.tokens_per_step / max(train_seconds, 1e-9))
        if self.world.main:
            checkpoint.write_metrics(self.out, self.metrics)  # with the training loss since the last evaluation
            checkpoint.write_summary(self.out, summary.to_dict())
            modelcard.write_card(self.out)
        return summary

    def evaluations(self) -> list[dict[str, Any]]:
        return [row for row in self.metrics if "train_loss" not in row]

    # -- evaluation and checkpoints ------------------------------------------------------------
    def evaluate(self, emit: Callable[[Event], None]) -> None:
        if not self.world.main:
            return  # rank 0 evaluates and keeps the files; the others carry on to the next step
        totals = stream_loss(self.model, self.tokenizer, self.valid_ids, seq_len=self.config.seq_len,
                             device=self.device, autocast=self.autocast)
        if not math.isfinite(totals.loss):
            raise self.diverged()  # before anything is saved: the files keep the last good state
        row = _metrics_row(self.step, self.epoch, self.elapsed, self.optimizer.param_groups[0]["lr"], totals)
        self.metrics.append(row)
        improved = totals.loss < self.best_loss
        if improved:
            self.best_loss, self.best_step, self.best = totals.loss, self.step, row
            self.bad_evaluations = 0
        else:
            self.bad_evaluations += 1
        checkpoint.write_metrics(self.out, self.metrics)
        self.save_checkpoint()
        emit(Evaluation(self.step, totals.loss, totals.token_perplexity, totals.word_perplexity, improved))

    def saved_step(self) -> int | None:
        """The step of the checkpoint on disk, if one was saved."""
        return checkpoint.load_state(self.out)["step"] if (self.out / checkpoint.STATE).is_file() else None

    def kept(self, saved: int | None) -> str:
        return (f"the last good checkpoint (step {saved}) is kept in {self.out}" if saved is not None
                else "no checkpoint had been saved yet")

    def how_to_continue(self, saved: int | None) -> str:
        verb, flag = ("resume", "--resume") if saved is not None else ("start again", "--force")
        return f"{verb} with: nextword train {self.corpus.path} --out {self.out} {flag}"

    def diverged(self) -> TrainingDiverged:
        return TrainingDiverged(
            f"training diverged at step {self.step}: the loss is no longer a finite number; "
            f"{self.kept(self.saved_step())}. "
            f"Lower --lr (now {self.config.lr:g}) or clip gradients harder (--clip, now {self.config.clip:g}), "
            f"then train again with --force")

    def save_checkpoint(self, interrupted: bool = False) -> None:
        """The state first, then the weights and summary: a crash between them loses nothing (see checkpoint)."""
        if not self.world.main:
            return
        state = {
            "step": self.step, "epoch": self.epoch, "segment": self.segment, "hidden": self.hidden,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "best_loss": self.best_loss, "best_step": self.best_step, "bad_evaluations": self.bad_evaluations,
            "elapsed": self.elapsed, "plan": self.plan,
        }
        checkpoint.save_state(self.out, state)
        # New best weights; when interrupted before the first evaluation, weights so that the model loads.
        unloadable = interrupted and not (self.out / checkpoint.WEIGHTS).exists()
        if checkpoint.best_weights_missing(self.out, state) or unloadable:
            checkpoint.save_weights(self.out, self.model, self.step)
        checkpoint.write_summary(self.out, self.summary("interrupted" if interrupted else "running", 0.0).to_dict())

    def restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step, self.epoch, self.segment = state["step"], state["epoch"], state["segment"]
            self.best_loss, self.best_step = state["best_loss"], state["best_step"]
            self.bad_evaluations, self.elapsed = state["bad_evaluations"], state["elapsed"]
            self.plan = state.get("plan")  # resume continues the same plan (a state from before plans has none)
            hidden = state["hidden"]
            torch.set_rng_state(state["rng"])
            if state["cuda_rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise checkpoint.ModelDirError(f"{self.out / checkpoint.STATE} does not fit this model "
                                           f"({type(exc).__name__}: {exc}); it cannot be resumed") from None
        if self.world.main and checkpoint.best_weights_missing(self.out, state):
            checkpoint.save_weights(self.out, self.model, self.step)  # the model now holds the state's weights
        if not self.world.main:
            hidden = None  # the saved state is rank 0's streams; the others start theirs afresh
        self.hidden = (tuple(h.to(self.device) for h in hidden) if isinstance(hidden, (tuple, list))
                       else hidden.to(self.device) if hidden is not None else None)
        self.metrics = [row for row in checkpoint.read_metrics(self.out, training=True) if row["step"] <= self.step]
        self.best = next((row for row in self.evaluations() if row["step"] == self.best_step), None)

    def summary(self, stopped_because: str, tokens_per_second: float) -> TrainSummary:
        best = self.best
        return TrainSummary(
            out=str(self.out), corpus=self.corpus.path.name, cell=self.config.cell,
            parameters=parameter_count(self.model), vocab_size=self.tokenizer.vocab_size,
            train_tokens=len(self.batches) * self.tokens_per_step,
            valid_tokens=len(self.valid_ids), device=self.device.type, steps=self.step,
            epochs=round(self.step / len(self.batches), 3), elapsed=round(self.elapsed, 3),
            tokens_per_second=round(tokens_per_second, 1), best_step=self.best_step,
            best_valid_loss=best["valid_loss"] if best else math.nan,
            best_valid_perplexity=best["valid_perplexity"] if best else math.nan,
            best_valid_word_perplexity=best["valid_word_perplexity"] if best else math.nan,
            stopped_because=stopped_because, plan=self.plan)

