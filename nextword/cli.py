"""The `nextword` command: parse, call the library, render. Nothing else lives here.

torch is imported inside the commands that need it, so `--help` answers at once.
Errors from the library (NextwordError) become one red line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .config import FIELDS, Sampling
from .errors import NextwordError, TrainingInterrupted

app = typer.Typer(
    name="nextword", no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
    help="Train recurrent next-word language models on your own text, then predict and generate.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)


def _friendly(command: Callable) -> Callable:
    """Library errors become one line on stderr and exit code 2; nothing reaches the user as a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TrainingInterrupted as exc:
            err.print(f"[yellow]{exc}[/]", soft_wrap=True)
            raise typer.Exit(130) from None
        except NextwordError as exc:
            _fail(str(exc))
            raise typer.Exit(2) from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}")
            raise typer.Exit(2) from None

    return wrapper


def _flag(key: str, *names: str) -> Any:
    """A training option, documented once in config.Config and shown with its default."""
    field = FIELDS[key]
    default = field.default
    shown = "none" if default is None else default
    flag = f"--{key.replace('_', '-')}"
    if isinstance(default, bool):
        flag = f"{flag}/--no-{key.replace('_', '-')}"
    return typer.Option(None, flag, *names, show_default=False,
                        help=f"{field.metadata['help']} [default: {shown}]", rich_help_panel="Training options")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "corpus"


@app.command()
@_friendly
def train(
    corpus: Path = typer.Argument(..., help="The text file to learn from (UTF-8)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of options, e.g. models/small.yaml; flags override it."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Model directory to write. [default: models/<corpus>-<cell>]"),
    valid: Optional[Path] = typer.Option(None, "--valid", help="Validation text file, instead of holding out the end of CORPUS."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing model directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run saved in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display (errors only)."),
    as_json: bool = typer.Option(False, "--json", help="Print the training summary as JSON."),
    tokenizer: Optional[str] = _flag("tokenizer"),
    vocab_size: Optional[int] = _flag("vocab_size"),
    valid_fraction: Optional[float] = _flag("valid_fraction"),
    cell: Optional[str] = _flag("cell"),
    layers: Optional[int] = _flag("layers"),
    embed: Optional[int] = _flag("embed"),
    hidden: Optional[int] = _flag("hidden"),
    dropout: Optional[float] = _flag("dropout"),
    bidirectional: Optional[bool] = _flag("bidirectional"),
    context: Optional[int] = _flag("context"),
    pool: Optional[str] = _flag("pool"),
    seq_len: Optional[int] = _flag("seq_len"),
    batch_size: Optional[int] = _flag("batch_size"),
    lr: Optional[float] = _flag("lr"),
    weight_decay: Optional[float] = _flag("weight_decay"),
    warmup: Optional[int] = _flag("warmup"),
    final_lr: Optional[float] = _flag("final_lr"),
    clip: Optional[float] = _flag("clip"),
    epochs: Optional[int] = _flag("epochs"),
    max_steps: Optional[int] = _flag("max_steps"),
    time_budget: Optional[str] = _flag("time_budget"),
    eval_every: Optional[int] = _flag("eval_every"),
    patience: Optional[int] = _flag("patience"),
    seed: Optional[int] = _flag("seed"),
    device: Optional[str] = _flag("device"),
) -> None:
    """Train a model on CORPUS and save it as a model directory."""
    from . import config as configuration
    from .checkpoint import resume_config
    from .train import train as run_training

    flags = {key: value for key, value in locals().items() if key in FIELDS and value is not None}
    from_file = configuration.read_yaml(config) if config else {}
    settings = configuration.load(config, flags)
    out_dir = out_dir or Path("models") / f"{_slug(corpus.stem)}-{settings.cell}"
    if resume:
        settings = resume_config(out_dir, {**from_file, **flags})
    display = None if quiet else TrainDisplay(settings)
    try:
        summary = run_training(settings, corpus, out_dir, valid_file=valid, force=force, resume=resume,
                               on_event=display.handle if display else None)
    except BaseException:
        if display:
            display.close(keep=False)  # the error message stands alone
        raise
    if display:
        display.close(keep=True)
    if as_json:
        _print_json(summary.to_dict())
    elif not quiet:
        out.print(summary_table(summary.to_dict()))
        out.print(f"Saved to [bold]{out_dir}[/]. Try: nextword predict {out_dir} \"some words \"")


class TrainDisplay:
    """Training events on stderr: a live progress line in a terminal, a line per evaluation in a log."""

    def __init__(self, settings: Any):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.cell = settings.cell
        self.live = err.is_terminal
        self.last: Any = None  # the latest Progress event, for the log lines
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
            TextColumn("step {task.fields[step]}"), TextColumn("loss {task.fields[loss]}"),
            TextColumn("val ppl {task.fields[ppl]}"), TextColumn("{task.fields[speed]} tok/s"),
            TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
            console=err, transient=False)
        self.task = self.progress.add_task(self.cell, total=1000, step="-", loss="-", ppl="-", speed="-", eta="-")

    def handle(self, event: Any) -> None:
        from .train import Evaluation, Notice, Progress, Stage

        if self.live:
            self.progress.start()  # at the first event: input errors found before it leave no display behind
        if isinstance(event, Stage):
            self.progress.update(self.task, description=f"{self.cell} · {event.name}")
            if not self.live:
                err.print(f"{event.name}…")
        elif isinstance(event, Notice):
            err.print(f"[yellow]note:[/] {event.message}", soft_wrap=True)
        elif isinstance(event, Progress):
            self.last = event
            total = f"/{event.total_steps}" if event.total_steps else ""
            self.progress.update(self.task, completed=1000 * event.done, step=f"{event.step}{total}",
                                 loss=f"{event.loss:.3f}", speed=f"{event.tokens_per_second:,.0f}",
                                 eta=_duration(event.eta) if event.eta is not None else "-")
        elif isinstance(event, Evaluation):
            self.progress.update(self.task, ppl=f"{event.valid_perplexity:.1f}" + ("*" if event.improved else ""))
            if not self.live:
                err.print(self._log_line(event), soft_wrap=True)

    def _log_line(self, event: Any) -> str:
        line = f"step {event.step}  val loss {event.valid_loss:.4f}  val ppl {event.valid_perplexity:.2f}" \
               f"  word ppl {event.valid_word_perplexity:.1f}{'  (best)' if event.improved else ''}"
        if self.last:
            line += f"  train loss {self.last.loss:.3f}  {self.last.tokens_per_second:,.0f} tok/s" \
                    f"  {_duration(self.last.elapsed)} elapsed"
        return line

    def close(self, keep: bool) -> None:
        if self.progress.live.is_started:
            self.progress.live.transient = not keep
            self.progress.stop()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Training summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("cell", summary["cell"]), ("parameters", f"{summary['parameters']:,}"),
        ("vocabulary", f"{summary['vocab_size']:,}"), ("device", summary["device"]),
        ("steps", f"{summary['steps']:,} ({summary['epochs']:.2f} epochs)"),
        ("time", _duration(summary["elapsed"])), ("tokens/s", f"{summary['tokens_per_second']:,.0f}"),
        ("best step", f"{summary['best_step']:,}"),
        ("valid loss", f"{summary['best_valid_loss']:.4f}"),
        ("valid perplexity (token)", f"{summary['best_valid_perplexity']:.2f}"),
        ("valid perplexity (word)", f"{summary['best_valid_word_perplexity']:.2f}"),
        ("stopped by", summary["stopped_because"]),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


@app.command()
@_friendly
def predict(
    model: Path = typer.Argument(..., help="A model directory."),
    text: str = typer.Argument(..., help="The text so far. End it with a space for the next word; "
                                         "without one, the last word is completed."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="How many words to show."),
    device: str = typer.Option("cpu", "--device", help="Where to run the model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The most likely next words after TEXT, with their probabilities."""
    from .predict import Predictor, split_partial

    predictions = Predictor.load(model, device=device).predict(text, k=top_k)
    context, partial = split_partial(text)
    if as_json:
        _print_json({"context": context, "partial": partial,
                     "predictions": [{"word": w, "prob": round(p, 6)} for w, p in predictions]})
        return
    if partial:
        title = f"Completions of [bold]{partial}[/] after “{_tail(context)}”" if context.strip() \
            else f"Completions of [bold]{partial}[/]"
    else:
        title = f"Next word after “{_tail(context)}”"
    if not predictions:
        _fail(f"no word the model knows starts with {partial!r}")
        raise typer.Exit(1)
    out.print(title)
    table = Table()
    table.add_column("#", justify="right", style="dim")
    table.add_column("word", style="bold")
    table.add_column("probability", justify="right")
    table.add_column("")
    for rank, (word, prob) in enumerate(predictions, 1):
        table.add_row(str(rank), word, f"{prob:.4f}", "█" * max(1, round(prob * 30)))
    out.print(table)


def _tail(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else "…" + flat[-width:]


@app.command()
@_friendly
def generate(
    model: Path = typer.Argument(..., help="A model directory."),
    prompt: str = typer.Argument(..., help="The text to continue."),
    max_words: int = typer.Option(Sampling.max_words, "--max-words", "-n", help="Words to add."),
    temperature: float = typer.Option(Sampling.temperature, "--temperature", "-t",
                                      help="Sampling temperature; 0 is greedy."),
    top_k: int = typer.Option(Sampling.top_k, "--top-k", help="Sample from the k likeliest pieces only (0: all)."),
    top_p: float = typer.Option(Sampling.top_p, "--top-p",
                                help="Sample from the smallest set of pieces with this much probability."),
    seed: Optional[int] = typer.Option(None, "--seed", help="The same seed gives the same text."),
    samples: int = typer.Option(1, "--samples", help="How many completions to write."),
    device: str = typer.Option("cpu", "--device", help="Where to run the model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON once done, instead of streaming."),
) -> None:
    """Continue PROMPT, streaming the text as it is produced."""
    from .errors import ConfigError
    from .predict import Predictor

    if samples < 1:
        raise ConfigError(f"option 'samples' must be >= 1; got {samples}")
    predictor = Predictor.load(model, device=device)
    completions = []
    for index in range(samples):
        options = dict(max_words=max_words, temperature=temperature, top_k=top_k, top_p=top_p,
                       seed=None if seed is None else seed + index)
        if as_json:
            completions.append(predictor.generate(prompt, **options))
            continue
        if samples > 1:
            out.print(f"[dim]── sample {index + 1} ──[/]")
        out.print(prompt, style="bold", end="", markup=False)
        for piece in predictor.stream(prompt, **options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    if as_json:
        _print_json({"prompt": prompt, "completions": completions})


@app.command()
@_friendly
def info(
    model: Path = typer.Argument(..., help="A model directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """What a model is: its config, size, tokenizer and how its training went."""
    from .checkpoint import load
    from .model import parameter_count

    loaded = load(model)
    details = {"path": str(model), "format": loaded.manifest.get("format"),
               "corpus": loaded.manifest.get("corpus"), "parameters": parameter_count(loaded.model),
               "vocab_size": loaded.tokenizer.vocab_size, "config": loaded.config.to_dict(),
               "training": loaded.summary}
    if as_json:
        _print_json(details)
        return
    overview = Table(title=f"Model {model}", show_header=False, title_justify="left")
    overview.add_column(style="bold")
    overview.add_column()
    for name in ("corpus", "parameters", "vocab_size"):
        value = details[name]
        overview.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    settings = loaded.config.to_dict()
    overview.add_row("model", f"{settings['cell']}, {settings['layers']} layers, embed {settings['embed']}, "
                              f"hidden {settings['hidden']}, dropout {settings['dropout']}")
    overview.add_row("tokenizer", f"{settings['tokenizer']}, {loaded.tokenizer.vocab_size:,} pieces")
    overview.add_row("config", ", ".join(f"{k}={v}" for k, v in settings.items()
                                         if k not in ("cell", "layers", "embed", "hidden", "dropout", "tokenizer")))
    out.print(overview)
    if loaded.summary:
        out.print(summary_table(loaded.summary))


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Show the version and exit.")) -> None:
    if version:
        out.print(f"nextword {__version__}")
        raise typer.Exit()


def main() -> None:
    app()
