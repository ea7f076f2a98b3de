"""The `nextword` command: parse, call the library, render. Nothing else lives here.

torch is imported inside the commands that need it, so `--help` answers at once.
Errors from the library (NextwordError) become one red line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import sys
import time
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console, Group
from rich.table import Table

from . import __version__
from .config import _TYPES as CONFIG_TYPES
from .config import FIELDS, INIT_LR_SCALE, Sampling
from .errors import NextwordError, TrainingInterrupted

app = typer.Typer(
    name="nextword", no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
    help="Train recurrent next-word language models on your own text, then predict and generate.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Written to a file or a pipe, rich would fit tables into 80 columns and cut their cells short
# ("vari…"); there is no screen to fit there, so tables get the width they need (COLUMNS still wins).
PIPE_WIDTH = 120
out = Console(highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPE_WIDTH)
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


def _flag(key: str) -> Any:
    """A training option, documented once in config.Config and shown with its default."""
    field = FIELDS[key]
    shown = "none" if field.default is None else field.default
    flag = f"--{key.replace('_', '-')}"
    if isinstance(field.default, bool):
        flag = f"{flag}/--no-{key.replace('_', '-')}"
    return typer.Option(None, flag, show_default=False, help=f"{field.metadata['help']} (default: {shown})",
                        rich_help_panel="Training options")


def _option_type(key: str) -> Any:
    declared = [t for t in typing.get_args(CONFIG_TYPES[key]) or (CONFIG_TYPES[key],) if t is not type(None)][0]
    accepted = str if key == "time_budget" else declared  # durations are typed as text: 90s, 10m
    return Optional[accepted]


def with_training_options(*, exclude: tuple[str, ...] = ()) -> Callable:
    """Give a command every training option (--cell, --layers, ...) without writing each one out.

    The options that were given arrive in the command's `options` argument, a dict.
    """

    def decorate(command: Callable) -> Callable:
        keys = [key for key in FIELDS if key not in exclude]
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "options"]
        added = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=_flag(key),
                                   annotation=_option_type(key)) for key in keys]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            options = {key: kwargs.pop(key) for key in keys}
            return command(**kwargs, options={k: v for k, v in options.items() if v is not None})

        wrapper.__signature__ = inspect.Signature(own + added)
        return wrapper

    return decorate


ANY_WORD_HELP = ("Suggest any string the model spells, not only the words of its training text "
                 "(and new words it is very sure of).")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "corpus"


@app.command()
@_friendly
@with_training_options()
def train(
    corpus: Path = typer.Argument(..., help="The text file to learn from (UTF-8)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="YAML file of options, e.g. models/small.yaml; flags override it."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="Model directory to write (default: models/<corpus>-<cell>)."),
    valid: Optional[Path] = typer.Option(None, "--valid",
                                         help="Validation text file, instead of holding out the end of CORPUS."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing model directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run saved in --out."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this trained model's weights and "
                                        f"tokenizer (a personal model); its options are the defaults, its "
                                        f"learning rate times {INIT_LR_SCALE:g} unless --lr is given."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display (errors only)."),
    as_json: bool = typer.Option(False, "--json", help="Print the training summary as JSON."),
    options: dict = None,
) -> None:
    """Train a model on CORPUS and save it as a model directory."""
    from . import config as configuration
    from .checkpoint import init_config, resume_config
    from .distributed import is_main_process
    from .train import train as run_training

    settings = configuration.load(config, options)
    given = {**(configuration.read_yaml(config) if config else {}), **options}
    if init:
        settings = init_config(init, given)
    out_dir = out_dir or Path("models") / f"{_slug(corpus.stem)}-{settings.cell}"
    if not is_main_process():  # under torchrun, rank 0 speaks for every rank
        quiet, as_json = True, False
    if resume and not init:  # with both, training refuses the pair before reading --out
        settings = resume_config(out_dir, given)
    summary = _with_display(quiet, settings, lambda on_event: run_training(
        settings, corpus, out_dir, valid_file=valid, force=force, resume=resume, init=init, on_event=on_event))
    if as_json:
        _print_json(summary.to_dict())
    elif not quiet:
        out.print(summary_table(summary.to_dict()))
        out.print(f"Saved to [bold]{out_dir}[/]. Try: nextword predict {out_dir} \"some words \"")


def _with_display(quiet: bool, settings: Any, run: Callable[[Any], Any]) -> Any:
    """Run `run(on_event)` under a training display (none when quiet)."""
    display = None if quiet else TrainDisplay(settings)
    try:
        result = run(display.handle if display else None)
    except BaseException:
        if display:
            display.close(keep=False)  # the error message stands alone
        raise
    if display:
        display.close(keep=True)
    return result


@app.command()
@_friendly
@with_training_options(exclude=("cell", "bidirectional"))
def compare(
    corpus: Path = typer.Argument(..., help="The text file to learn from (UTF-8)."),
    cells: str = typer.Option("rnn,gru,lstm", "--cells", help="Comma-separated cells to compare."),
    bidirectional: bool = typer.Option(False, "--bidirectional",
                                       help="Also train the bidirectional-encoded variant of each cell."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="YAML file of options shared by every variant."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="Where to keep the models, compare.json, plots and report "
                                                "(default: models/compare-<corpus>)."),
    valid: Optional[Path] = typer.Option(None, "--valid",
                                         help="Validation text file, instead of holding out the end of CORPUS."),
    accuracy_words: int = typer.Option(2000, "--accuracy-words",
                                       help="Validation words scored for next-word accuracy."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing comparison."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    options: dict = None,
) -> None:
    """Train each cell type on CORPUS with the same data and budget, and compare them side by side.

    Each variant gets the same steps (--max-steps, default 1000, reproducible) or the same time (--time-budget),
    by default at a constant learning rate and without dropout (--warmup, --final-lr, --dropout change that).
    """

    from .compare import compare as run_compare, compare_settings

    settings = compare_settings(config, options)
    out_dir = out_dir or Path("models") / f"compare-{_slug(corpus.stem)}"
    chosen = [c.strip().lower() for c in cells.split(",") if c.strip()]
    results = _with_display(quiet, settings, lambda on_event: run_compare(
        corpus, settings, out_dir, cells=chosen, bidirectional=bidirectional, valid_file=valid,
        accuracy_words=accuracy_words, force=force, on_event=on_event))
    if as_json:
        _print_json([r.to_dict() for r in results])
        return
    out.print(comparison_table(results))
    out.print(f"Wrote {out_dir}/: compare.json, curves.png, gradients.png, report.md and a model per variant.")


def comparison_table(results: list) -> Group:
    """The measured table (best value of each column in green), then the curves as sparklines."""
    from .compare import table_columns, table_rows
    from .plots import sparkline

    columns = table_columns(results)
    table = Table(title="Comparison (best in green)", title_justify="left")
    table.add_column("variant", style="bold", no_wrap=True)
    for title, *_ in columns:
        table.add_column(title, justify="right", no_wrap=True)
    curves = Table(title="Validation word perplexity by evaluation; gradient norm k = 1 → T (log scales)",
                   title_justify="left")
    for title in ("variant", "word perplexity", "gradient", "long-range recall by distance"):
        curves.add_column(title, no_wrap=title != "long-range recall by distance")
    for r, cells in zip(results, table_rows(results, lambda text: f"[bold green]{text}[/]")):
        table.add_row(r.name, *cells)
        far = "  ".join(f"{b}: {v['recall']:.0%}" for b, v in r.long_range["by_distance"].items()) \
            if r.long_range else "-"
        curves.add_row(r.name, sparkline([row["valid_word_perplexity"] for row in r.curve]),
                       sparkline(r.gradient), far)
    return Group(table, curves)


class TrainDisplay:
    """Training events on stderr: a live progress line in a terminal, a line per evaluation in a log."""

    def __init__(self, settings: Any):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.name = settings.cell
        self.live = err.is_terminal
        self.last: Any = None  # the latest Progress event, for the log lines
        self.variant: Any = None  # in a comparison: the VariantStarted of the variant training now
        self.started = time.monotonic()
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
            TextColumn("step {task.fields[step]}"), TextColumn("loss {task.fields[loss]}"),
            TextColumn("val ppl {task.fields[ppl]}"), TextColumn("{task.fields[speed]} tok/s"),
            TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
            console=err, transient=False)
        self.task = self.progress.add_task(self.name, total=1000, step="-", loss="-", ppl="-", speed="-", eta="-")

    def handle(self, event: Any) -> None:
        from .compare import VariantStarted
        from .train import Evaluation, Notice, Progress, Stage

        if self.live:
            self.progress.start()  # at the first event: input errors found before it leave no display behind
        if isinstance(event, VariantStarted):
            self.variant, self.name = event, f"{event.name} ({event.index + 1}/{event.total})"
            self.progress.update(self.task, description=self.name, step="-", loss="-", ppl="-")
            if not self.live:
                err.print(f"variant {self.name}")
        elif isinstance(event, Stage):
            self.progress.update(self.task, description=f"{self.name} · {event.name}")
            if not self.live:
                err.print(f"{event.name}…")
        elif isinstance(event, Notice):
            err.print(f"[yellow]note:[/] {event.message}", soft_wrap=True)
        elif isinstance(event, Progress):
            self.last = event
            total = f"/{event.total_steps}" if event.total_steps else ""
            done, eta = event.done, event.eta
            if self.variant:  # the bar and ETA cover the whole comparison
                done = (self.variant.index + event.done) / self.variant.total
                spent = time.monotonic() - self.started
                eta = spent * (1 - done) / done if done > 0 else None
            self.progress.update(self.task, completed=1000 * done, step=f"{event.step}{total}",
                                 loss=f"{event.loss:.3f}", speed=f"{event.tokens_per_second:,.0f}",
                                 eta=_duration(eta) if eta is not None else "-")
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
    counted = summary["cell"] == "ngram"  # counted in one pass: no steps
    rows = [
        ("cell", summary["cell"]), ("n-grams" if counted else "parameters", f"{summary['parameters']:,}"),
        ("vocabulary", f"{summary['vocab_size']:,}"), ("device", summary["device"]),
        *([] if counted else [("steps", f"{summary['steps']:,} ({summary['epochs']:.2f} epochs)")]),
        ("time", _duration(summary["elapsed"])), ("tokens/s", f"{summary['tokens_per_second']:,.0f}"),
        *([] if counted else [("best step", f"{summary['best_step']:,}")]),
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
    any_word: bool = typer.Option(False, "--any-word", help=ANY_WORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The most likely next words after TEXT, with their probabilities."""
    from .predict import Predictor, split_partial

    predictor = Predictor.load(model, device=device, any_word=any_word)
    predictions = predictor.predict(text, k=top_k)
    context, partial = split_partial(text)
    if as_json:
        _print_json({"context": context, "partial": partial,
                     "predictions": [{"word": w, "prob": p} for w, p in predictions]})
        return
    if partial:
        title = f"Completions of [bold]{partial}[/] after “{_tail(context)}”" if context.strip() \
            else f"Completions of [bold]{partial}[/]"
    else:
        title = f"Next word after “{_tail(context)}”"
    if not predictions:
        unknown = predictor.lexicon is not None and not predictor.lexicon.has_word_starting(partial)
        source = "in the model's lexicon" if unknown else "the model knows"
        err.print(f"[yellow]note:[/] no word {source} starts with {partial!r}", soft_wrap=True)
        return
    out.print(title)
    table = Table()
    table.add_column("#", justify="right", style="dim")
    table.add_column("word", style="bold")
    table.add_column("probability", justify="right")
    table.add_column("")
    for rank, (word, prob) in enumerate(predictions, 1):
        table.add_row(str(rank), word, probability(prob), "█" * round(prob * 30) or "▏")
    out.print(table)


def probability(p: float) -> str:
    """Three significant digits, enough to tell suggestions apart: 0.992, 0.0183, 0.00183, then 1.83e-04."""
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


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
    import torch

    from .errors import ConfigError
    from .predict import Predictor

    if samples < 1:
        raise ConfigError(f"option 'samples' must be >= 1; got {samples}")
    # One piece at a time is a chain of tiny products, where a second thread costs more in waiting than
    # it gives: on 2 CPU cores, generation runs 1,203 pieces/s on one thread and 953 on two (bench/RESULTS.md).
    torch.set_num_threads(1)
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
        out.print(prompt, style="bold", end="", markup=False, soft_wrap=True)
        for piece in predictor.stream(prompt, **options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    if as_json:
        _print_json({"prompt": prompt, "completions": completions})


@app.command()
@_friendly
def interactive(
    model: Path = typer.Argument(..., help="A model directory."),
    suggestions: int = typer.Option(5, "--suggestions", "-k", help="Words offered at each key (1-9)."),
    max_words: int = typer.Option(8, "--max-words", "-n", help="Words a Ctrl-G continuation adds."),
    device: str = typer.Option("cpu", "--device", help="Where to run the model."),
    any_word: bool = typer.Option(False, "--any-word", help=ANY_WORD_HELP),
) -> None:
    """Type with the likeliest next words offered at each key, like a phone keyboard.

    Tab takes the best word, Alt-1…9 (or Esc then the digit) the one with that number; digits type
    themselves. Ctrl-G shows a generated continuation, Enter starts a new line, Ctrl-D or Ctrl-C quits.
    """
    from .interactive import Keyboard
    from .predict import Predictor

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise NextwordError("nextword interactive needs a terminal; "
                            "in a script, use: nextword predict MODEL TEXT --json")
    predictor = Predictor.load(model, device=device, any_word=any_word)
    _type_along(Keyboard(lambda text: [word for word, _ in predictor.predict(text, k=suggestions)],
                         lambda text: predictor.generate(text, max_words=max_words), count=suggestions))


def _type_along(keyboard: Any) -> None:
    """The terminal side of `interactive`: keys read in raw mode, the line redrawn after each read."""
    import codecs
    import shutil
    import termios
    import tty

    from .interactive import KeyReader, screen, settle

    def show(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    reader, decoder = KeyReader(), codecs.getincrementaldecoder("utf-8")("replace")
    saved = termios.tcgetattr(sys.stdin)
    tty.setraw(sys.stdin)  # every key comes at once, Ctrl-C and Ctrl-D included, and nothing is echoed
    try:
        while not keyboard.done:
            show(screen(keyboard, shutil.get_terminal_size().columns, color=not out.no_color))
            data = os.read(sys.stdin.fileno(), 1024)  # all the keys that came since: one redraw for them
            if not data:
                break  # the terminal went away
            for key in reader.feed(decoder.decode(data)):
                line = keyboard.press(key)
                if line is not None:
                    show(settle(line))
                if keyboard.done:
                    break
        show(settle(keyboard.text))
    finally:
        termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)


@app.command()
@_friendly
def evaluate(
    model: Path = typer.Argument(..., help="A model directory."),
    file: Path = typer.Argument(..., help="Text to evaluate on (UTF-8), ideally not seen in training."),
    max_words: Optional[int] = typer.Option(None, "--max-words", help="Stop after this many words: a quick estimate."),
    suggestions: int = typer.Option(3, "--suggestions", help="Suggestions shown while typing, for keystroke savings."),
    long_range: bool = typer.Option(False, "--long-range",
                                    help="Also score the far-dependent words listed in FILE.targets.jsonl."),
    device: str = typer.Option("cpu", "--device", help="Where to run the model."),
    any_word: bool = typer.Option(False, "--any-word", help=ANY_WORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """How well MODEL predicts FILE: perplexities, next-word accuracy and keystroke savings."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .evaluate import evaluate_file
    from .predict import Predictor

    predictor = Predictor.load(model, device=device, any_word=any_word)
    progress = Progress(TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal)
    tasks: dict[str, Any] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    with progress:
        result = evaluate_file(predictor, file, max_words=max_words, suggestions=suggestions,
                               long_range=long_range, on_progress=on_progress)
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"{model} on {file}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [("tokens / words scored", f"{result['tokens']:,} / {result['words']:,}"),
            ("token perplexity", f"{result['token_perplexity']:.2f}"),
            ("word perplexity", f"{result['word_perplexity']:.2f}"),
            ("bits per character", f"{result['bits_per_char']:.3f}")]
    rows += [(f"top-{k} next-word accuracy", f"{result['accuracy'][f'top{k}']:.1%}") for k in (1, 3, 5)]
    if result["keystroke_savings"] is not None:
        rows.append((f"keystroke savings ({suggestions} suggestions)", f"{result['keystroke_savings']:.1%}"))
    if "long_range" in result:
        far = result["long_range"]
        rows.append((f"long-range recall, top-1 ({far['targets']} words)",
                     f"{far['recall']:.1%}, {far['top1']:.1%} (chance {far['chance']:.1%})"))
        rows += [(f"  {bucket} words back", f"{v['recall']:.1%}, {v['top1']:.1%} of {v['targets']}")
                 for bucket, v in far["by_distance"].items()]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)


@app.command()
@_friendly
def export(
    model: Path = typer.Argument(..., help="A model directory (rnn, gru or lstm; causal or bidirectional)."),
    fmt: str = typer.Option(..., "--format", "-f", help="torchscript (torch.jit.load) or onnx (onnxruntime; "
                                                        "needs pip install 'nextword[export]')."),
    out_file: Path = typer.Option(..., "--out", "-o", help="The file to write."),
    as_json: bool = typer.Option(False, "--json", help="Print what the file takes and gives as JSON."),
) -> None:
    """Write MODEL's next-token step to one file that runs without nextword: token ids and state in,
    logits and state out."""
    from .checkpoint import load
    from .export import export as export_step

    described = export_step(load(model).model, fmt.strip().lower(), out_file)
    if as_json:
        _print_json(described)
        return
    out.print(f"Wrote [bold]{out_file}[/] ({described['format']}): {_signature(described['inputs'])} -> "
              f"{_signature(described['outputs'])}. The tokenizer is {model / 'tokenizer.model'}.", soft_wrap=True)


def _signature(tensors: dict[str, list]) -> str:
    """`tokens (batch x 1), hidden (2 x batch x 256)`: names and shapes of an exported step's tensors."""
    return ", ".join(f"{name} ({' x '.join(map(str, shape))})" for name, shape in tensors.items())


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
               "corpus": loaded.manifest.get("corpus"), "init": loaded.manifest.get("init"),
               "parameters": parameter_count(loaded.model), "vocab_size": loaded.tokenizer.vocab_size,
               "config": loaded.config.to_dict(), "training": loaded.summary}
    if as_json:
        _print_json(details)
        return
    overview = Table(title=f"Model {model}", show_header=False, title_justify="left")
    overview.add_column(style="bold")
    overview.add_column()
    for name in ("corpus", "parameters", "vocab_size"):
        value = details[name]
        label = "n-grams" if name == "parameters" and loaded.config.cell == "ngram" else name
        overview.add_row(label, f"{value:,}" if isinstance(value, int) else str(value))
    if details["init"]:
        overview.add_row("started from", f"{details['init']['path']} (trained on {details['init']['corpus']})")
    settings = loaded.config.to_dict()
    if settings["cell"] == "ngram":
        overview.add_row("model", f"ngram, order {settings['order']}, interpolated modified Kneser-Ney")
        shown = ("vocab_size", "valid_fraction")  # the rest steer gradient training, which it has none of
    else:
        overview.add_row("model", f"{settings['cell']}, {settings['layers']} layers, embed {settings['embed']}, "
                                  f"hidden {settings['hidden']}, dropout {settings['dropout']}")
        shown = tuple(k for k in settings if k not in ("cell", "order", "layers", "embed", "hidden", "dropout",
                                                       "tokenizer"))
    overview.add_row("tokenizer", f"{settings['tokenizer']}, {loaded.tokenizer.vocab_size:,} pieces")
    overview.add_row("config", ", ".join(f"{k}={settings[k]}" for k in shown))
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
