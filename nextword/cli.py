"""The `nextword` command: parse, call the library, render. Nothing else lives here.

torch is imported inside the commands that need it, so `--help` answers at once.
Errors from the library (NextwordError) become one red line on stderr and exit code 2."""

from __future__ import annotations

import contextlib
import csv
import enum
import functools
import inspect
import json
import os
import re
import shlex
import sys
import time
import typing
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console, Group
from rich.cells import cell_len
from rich.markup import escape
from rich.progress import ProgressColumn
from rich.table import Table
from rich.text import Text
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperCommand, TyperGroup
from typer.main import get_click_param
from typer.models import ParamMeta

from . import __version__
from . import config as configuration
from .config import _TYPES as CONFIG_TYPES
from .config import COMPARE_DEFAULTS, COMPARE_STEPS, FIELDS, INIT_LR_SCALE, Sampling
from .errors import ConfigError, NextwordError, TrainingInterrupted


class _OneLineErrors(TyperGroup):
    """A wrong argument (a missing one, 'abc' for a number, a value out of range) is one line on stderr
    and exit code 2, as every other error is, instead of a usage box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as exc:  # the help, asked for by giving nothing
            exc.show()
            sys.exit(exc.exit_code)
        except ClickException as exc:
            where = f" (see: {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
            _fail(" ".join(exc.format_message().split()) + where)
            sys.exit(exc.exit_code)
        except typer.Abort:  # end of input where a prompt waited
            err.print("Aborted!")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="nextword",
    cls=_OneLineErrors,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    help="Train recurrent next-word language models on your own text, then predict and generate.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Written to a file or a pipe, rich would fit tables into 80 columns and cut their cells short
# ("vari…"); there is no screen to fit there, so tables get the width they need (COLUMNS still wins).
PIPE_WIDTH = 120
out = Console(highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPE_WIDTH)
err = Console(stderr=True, highlight=False)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)


def _friendly(command: Callable) -> Callable:
    """Library errors become one line on stderr and exit code 2; nothing reaches the user as a traceback.

    Text and path arguments are checked first: bytes that are not UTF-8 come as lone surrogates from the
    shell, which no tokenizer, terminal or native library (torch, safetensors) can take."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            for name, value in kwargs.items():
                _check_text(name, value)
            return command(*args, **kwargs)
        except TrainingInterrupted as exc:
            err.print(f"[yellow]{escape(str(exc))}[/]", soft_wrap=True)
            raise typer.Exit(130) from None
        except KeyboardInterrupt:  # outside training's loop, which says what it saved and how to go on
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except NextwordError as exc:
            _fail(str(exc))
            raise typer.Exit(2) from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}")
            raise typer.Exit(2) from None

    return wrapper


def _command(**options: Any) -> Callable[[Callable], Callable]:
    """Register a command as `app.command(**options)` does, its errors made one line each (`_friendly`) and
    its help given in paragraphs the terminal wraps: typer keeps a docstring's line breaks, which at 80
    columns leave every other line half empty."""

    def register(command: Callable) -> Callable:
        paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
        return app.command(help="\n\n".join(" ".join(p.split()) for p in paragraphs), **options)(_friendly(command))

    return register


def _check_text(name: str, value: Any) -> None:
    if isinstance(value, (str, Path)):
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(
                f"argument '{name}' holds bytes that are not UTF-8 text (at character {exc.start}); "
                f"give UTF-8 text{' (rename the file)' if isinstance(value, Path) else ''}"
            ) from None


MAX_SHOWN = 100  # words a prediction shows at most: each costs search width, and a screen holds few
MAX_WORDS = 10_000  # words a generation adds at most
MAX_SAMPLES = 100
MAX_SEED = 2**32 - 1
DEVICE_HELP = "Where to run: auto picks cuda, then mps, then cpu."


def _component_option(verb: str, side_by_side: bool) -> Any:
    """The same --component for every verb that predicts: one part of a mixture, or (`side_by_side`) all."""
    every = ", or all of them side by side" if side_by_side else ""
    return typer.Option(
        None,
        "--component",
        help=f"{verb} with one component of a mixture (neural, ngram, mixture, mixture+cache){every}; without it, "
        "with the whole model, as predict does.",
    )


def _device_option() -> Any:
    """The same --device for every verb: the same default, the same values (config.DEVICES), which help
    lists and the shell completes, as train's."""
    return typer.Option(Device("auto"), "--device", help=DEVICE_HELP, case_sensitive=False)


@functools.cache
def _choice_type(key: str) -> type[enum.Enum]:
    """The values of a choice option as an Enum, so that help lists them and the shell completes them."""
    return enum.Enum(key, {value: value for value in FIELDS[key].metadata["choices"]}, type=str)


Device = _choice_type("device")


BY_RECIPE = object()  # a training option's default where the recipe chooses it for the text and budget


def _training_option(key: str, default: Any) -> Any:
    """A training option, documented once in config.py, as typer makes it of a parameter; its help shows
    `default`, the one in effect, or says the recipe chooses it (BY_RECIPE)."""
    name, meta = key.replace("_", "-"), FIELDS[key].metadata
    declared = [t for t in typing.get_args(CONFIG_TYPES[key]) or (CONFIG_TYPES[key],) if t is not type(None)][0]
    chosen = default is BY_RECIPE
    default = None if chosen else default
    option = typer.Option(
        _choice_type(key)(default) if meta["choices"] and default is not None else default,
        f"--{name}/--no-{name}" if declared is bool else f"--{name}",
        help=meta["help"],
        show_default="by the recipe" if chosen else default is not None,
        case_sensitive=False,
        rich_help_panel="Training options",
    )
    accepted = _choice_type(key) if meta["choices"] else str if key == "time_budget" else declared  # 90s, 10m
    return get_click_param(ParamMeta(name=key, default=option, annotation=Optional[accepted]))[0]


def _training_command(*, exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> type:
    """A command class that adds every training option (--cell, --layers, ...) to the command's own, made from
    the fields of config.ModelConfig and config.TrainArgs, and hands those given on the command line (not
    their defaults: a YAML file fills those) to the command as `ctx.obj`, a dict.

    Help shows the fields' defaults, or the command's own `defaults` where it has them."""
    shown = {key: field.default for key, field in FIELDS.items()} | (defaults or {})
    keys = [key for key in FIELDS if key not in exclude]

    class TrainingCommand(TyperCommand):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.params += [_training_option(key, shown[key]) for key in keys]

        def invoke(self, ctx: typer.Context) -> Any:
            given = {key: ctx.params.pop(key) for key in keys}  # the command's own parameters stay
            ctx.obj = {key: value for key, value in given.items() if ctx.get_parameter_source(key).name != "DEFAULT"}
            return super().invoke(ctx)

    return TrainingCommand


ANY_WORD_HELP = (
    "Suggest (and, generating, write) any string the model spells, not only the words of "
    "its training text, those the text has used, and new words it is very sure of."
)


def _print_json(data: Any, one_line: bool = False) -> None:
    """JSON on stdout: indented for people, or one line each for a stream of answers (JSON Lines)."""
    sys.stdout.write(json.dumps(data, indent=None if one_line else 2, ensure_ascii=False) + "\n")


def _corpus_name(corpus: Path) -> str:
    """What a model of `corpus` is called by default: its file name's stem, or stdin for `-`."""
    from .data import STDIN

    return "stdin" if str(corpus) == STDIN else re.sub(r"[^A-Za-z0-9_.-]+", "-", corpus.stem).strip("-") or "corpus"


def _recipe_defaults() -> dict[str, Any]:
    """The defaults train's help shows: the recipe's, which apply without --config (see recipe.py)."""
    from .recipe import shown_in_help

    alike, chosen = shown_in_help()
    return alike | dict.fromkeys(chosen, BY_RECIPE)


@_command(cls=_training_command(defaults=_recipe_defaults()))
def train(
    ctx: typer.Context,
    corpus: Path = typer.Argument(..., help="The text file to learn from (UTF-8); - reads standard input."),
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        "-c",
        help=f"YAML file of options, or a preset ({', '.join(configuration.presets())}; see nextword presets); "
        "flags override it.",
    ),
    out_dir: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Model directory to write.", show_default="models/<corpus>-<cell>"
    ),
    valid: Optional[Path] = typer.Option(
        None, "--valid", help="Validation text file, instead of holding out the end of CORPUS."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing model directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run saved in --out."),
    init: Optional[Path] = typer.Option(
        None,
        "--init",
        help="Start from this trained model's weights and tokenizer (a personal model); its options are the "
        f"defaults, its learning rate times {INIT_LR_SCALE:g} unless --lr is given.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display (errors only)."),
    as_json: bool = typer.Option(False, "--json", help="Print the training summary as JSON."),
) -> None:
    """Train a model on CORPUS and save it as a model directory.

    Without --config, the recipe picks the model's size, vocabulary, dropout and schedule for the size of
    CORPUS and the --time-budget, and says what it chose; flags override any of it."""
    from .distributed import is_main_process
    from .train import train as run_training

    config, flags = configuration.find_config(config) if config else None, ctx.obj
    settings = configuration.load(config, flags, init=init)
    recipe = None
    if config is None and not init and not resume:  # the recipe sizes a new model for its text and budget
        # Networks the user asked for (an n-gram is one count) shape the recipe's dropout and what it says.
        members = 1 if settings.model.cell == "ngram" else flags.get("members")
        # The user says when to stop (an n-gram's counting takes no time to speak of): no minimum for a short text.
        stop_given = settings.model.cell == "ngram" or not flags.keys().isdisjoint({"epochs", "max_steps"})
        corpus, recipe = _recipe_for(corpus, settings.train.time_budget, members, stop_given)
        settings = configuration.load(None, flags, defaults=recipe.settings)
    out_dir = out_dir or Path("models") / f"{_corpus_name(corpus)}-{settings.model.cell}"
    if not is_main_process():  # under torchrun, rank 0 speaks for every rank
        quiet, as_json = True, False
    if resume and not init:  # with both, training refuses the pair before reading --out
        settings = configuration.load(config, flags, resume=out_dir)
    summary = _with_display(
        quiet,
        settings,
        lambda on_event: run_training(
            settings, corpus, out_dir, valid_file=valid, force=force, resume=resume, init=init, on_event=on_event
        ),
        headline=f"{'Resuming' if resume else 'Training'} [bold]{escape(str(out_dir))}[/] on {escape(str(corpus))}",
        note=recipe.reason if recipe else "",
    )
    _show_trained(summary.to_dict(), out_dir, quiet, as_json)


def _recipe_for(corpus: Path, time_budget: float | None, members: int | None, stop_given: bool) -> tuple[Path, Any]:
    """The corpus to read, standard input spooled to a file (the recipe needs its size before training reads
    it), and the recipe's choice for a new model of it in `time_budget` of `members` networks (None: its own
    choice; see recipe.py), `stop_given` whether epochs or steps were. A corpus that is not UTF-8 text fails
    here, as training would fail on it. Its characters are counted in a pass of their own: about 6 ms a megabyte,
    against minutes of training."""
    from .data import check_corpus
    from .recipe import choose

    checked = check_corpus(corpus)
    return checked.path, choose(checked.characters, time_budget, members=members, stop_given=stop_given)


def _show_trained(summary: dict[str, Any], out_dir: Path, quiet: bool, as_json: bool) -> None:
    """What train prints once done: the summary as JSON, or its table and how to use the model (nothing, quiet)."""
    if as_json:
        _print_json(summary)
    elif not quiet:
        out.print(summary_table(summary))
        out.print(f"Saved to [bold]{escape(str(out_dir))}[/].")
        out.print(f'Try: nextword predict {escape(str(out_dir))} "some words "', soft_wrap=True)


def _with_display(quiet: bool, settings: Any, run: Callable[[Any], Any], headline: str = "", note: str = "") -> Any:
    """Run `run(on_event)` under a training display (none when quiet), which starts by saying `headline`
    (one line) and `note` (plain text, wrapped)."""
    if quiet:
        return run(None)
    display = TrainDisplay(settings, headline, note)
    keep = True
    try:
        return run(display.handle)
    except BaseException as exc:
        # Interrupted, the last step and loss stay on screen above the message; an error message stands alone.
        keep = isinstance(exc, (TrainingInterrupted, KeyboardInterrupt))
        raise
    finally:
        display.close(keep)


@_command(
    cls=_training_command(exclude=("cell", "bidirectional"), defaults={**COMPARE_DEFAULTS, "max_steps": COMPARE_STEPS})
)
def compare(
    ctx: typer.Context,
    corpus: Path = typer.Argument(..., help="The text file to learn from (UTF-8)."),
    cells: str = typer.Option("rnn,gru,lstm", "--cells", help="Comma-separated cells to compare."),
    bidirectional: bool = typer.Option(
        False, "--bidirectional", help="Also train the bidirectional-encoded variant of each cell."
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML file of options shared by every variant, or a preset."
    ),
    out_dir: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        help="Where to keep the models, compare.json, plots and report.",
        show_default="models/compare-<corpus>",
    ),
    valid: Optional[Path] = typer.Option(
        None, "--valid", help="Validation text file, instead of holding out the end of CORPUS."
    ),
    accuracy_words: int = typer.Option(
        2000, "--accuracy-words", min=1, help="Validation words scored for next-word accuracy."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing comparison."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Train each cell type on CORPUS with the same data and budget, and compare them side by side.

    Each variant gets the same steps (--max-steps, reproducible) or the same time (--time-budget), by default
    at a constant learning rate and without dropout (--warmup, --final-lr, --dropout change that)."""
    from .compare import compare as run_compare, compare_settings

    settings = compare_settings(configuration.find_config(config) if config else None, ctx.obj)
    out_dir = out_dir or Path("models") / f"compare-{_corpus_name(corpus)}"
    chosen = [c.strip().lower() for c in cells.split(",") if c.strip()]
    results = _with_display(
        quiet,
        settings,
        lambda on_event: run_compare(
            corpus,
            settings,
            out_dir,
            cells=chosen,
            bidirectional=bidirectional,
            valid_file=valid,
            accuracy_words=accuracy_words,
            force=force,
            command=shlex.join(["nextword", *sys.argv[1:]]),
            on_event=on_event,
        ),
        headline=f"Comparing {', '.join(chosen)} on {escape(str(corpus))} in [bold]{escape(str(out_dir))}[/]",
    )
    _show_compared(results, out_dir, as_json)


def _show_compared(results: list, out_dir: Path, as_json: bool) -> None:
    """What compare prints once done: the results as JSON, or their tables and what was written."""
    if as_json:
        _print_json([r.to_dict() for r in results])
        return
    out.print(comparison_table(results))
    out.print(
        f"Wrote {escape(str(out_dir))}/: compare.json, curves.png, gradients.png, report.md and a model per variant."
    )


def comparison_table(results: list) -> Group:
    """The measured table (best value of each column in green), then the curves as sparklines."""
    from .compare import table_columns, table_rows
    from .plots import sparkline

    columns = table_columns(results)
    coloured = out.color_system is not None  # in a pipe or under NO_COLOR, the best is starred instead
    table = Table(
        title="Comparison (best in green)" if coloured else "Comparison (best marked *)", title_justify="left"
    )
    table.add_column("variant", style="bold", no_wrap=True)
    for title, *_ in columns:
        table.add_column(title, justify="right", no_wrap=True)
    curves = Table(
        title="Validation word perplexity by evaluation; gradient norm k = 1 → T (log scales)", title_justify="left"
    )
    for title in ("variant", "word perplexity", "gradient", "long-range recall by distance"):
        curves.add_column(title, no_wrap=title != "long-range recall by distance")
    for r, cells in zip(
        results, table_rows(results, (lambda text: f"[bold green]{text}[/]") if coloured else (lambda text: f"{text}*"))
    ):
        table.add_row(r.name, *cells)
        far = (
            "  ".join(f"{b}: {v['recall']:.0%}" for b, v in r.long_range["by_distance"].items())
            if r.long_range
            else "-"
        )
        curves.add_row(r.name, sparkline([row["valid_word_perplexity"] for row in r.curve]), sparkline(r.gradient), far)
    return Group(table, curves)


class TrainDisplay:
    """Training events on stderr: a live progress line in a terminal, a line per evaluation in a log."""

    def __init__(self, settings: Any, headline: str = "", note: str = ""):
        from rich.progress import Progress, SpinnerColumn, TextColumn

        self.name, self.headline, self.note = settings.model.cell, headline, note
        self.live = err.is_terminal
        self.last: Any = None  # the latest Progress event, for the log lines
        self.variant: Any = None  # in a comparison: the VariantStarted of the variant training now
        self.started = time.monotonic()
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), _StatusColumn(), console=err, transient=False
        )
        self.task = self.progress.add_task(self.name, total=1000, step="-", loss="-", ppl="-", speed="-", eta_at=None)

    def handle(self, event: Any) -> None:
        from .compare import VariantStarted
        from .train import Evaluation, Notice, Progress, Stage

        if self.headline:  # at the first event, as the display: input errors found before it stand alone
            err.print(self.headline, soft_wrap=True)
            if self.note:
                err.print(self.note, style="dim", markup=False, soft_wrap=not self.live)  # a log keeps it one line
            self.headline = ""
        if self.live:
            self.progress.start()
        if isinstance(event, VariantStarted):
            self.variant, self.name = event, f"{event.name} ({event.index + 1}/{event.total})"
            self.last = None  # its log lines must not show the last variant's loss and speed (an n-gram has none)
            self.progress.update(self.task, description=self.name, step="-", loss="-", ppl="-", speed="-")
            if not self.live:
                err.print(f"variant {self.name}")
        elif isinstance(event, Stage):
            # Training is what the line is about; the stages before and after it are named.
            self.progress.update(
                self.task, description=self.name if event.name == "training" else f"{self.name} · {event.name}"
            )
            if not self.live:
                err.print(f"{event.name}…")
        elif isinstance(event, Notice):
            err.print(f"[yellow]note:[/] {escape(event.message)}", soft_wrap=True)
        elif isinstance(event, Progress):
            self.last = event
            total = f"/{event.total_steps}" if event.total_steps else ""  # the total the run plans, as told
            done, eta = event.done, event.eta
            if self.variant:  # the bar and ETA cover the whole comparison
                done = (self.variant.index + event.done) / self.variant.total
                spent = time.monotonic() - self.started
                eta = spent * (1 - done) / done if done > 0 else None
            # A deadline rather than a figure: between events (a comparison measuring) it keeps counting down.
            self.progress.update(
                self.task,
                completed=1000 * done,
                step=f"{event.step}{total}",
                loss=f"{event.loss:.3f}",
                speed=f"{event.tokens_per_second:,.0f}",
                eta_at=None if eta is None else time.monotonic() + eta,
            )
        elif isinstance(event, Evaluation):
            self.progress.update(self.task, ppl=f"{event.valid_perplexity:.1f}" + ("*" if event.improved else ""))
            if not self.live:
                err.print(self._log_line(event), soft_wrap=True)

    def _log_line(self, event: Any) -> str:
        line = (
            f"step {event.step}  val loss {event.valid_loss:.4f}  val ppl {event.valid_perplexity:.2f}"
            f"  word ppl {event.valid_word_perplexity:.1f}{'  (best)' if event.improved else ''}"
        )
        if self.last:
            line += (
                f"  train loss {self.last.loss:.3f}  {self.last.tokens_per_second:,.0f} tok/s"
                f"  {_duration(self.last.elapsed)} elapsed"
            )
        return line

    def close(self, keep: bool) -> None:
        if self.progress.live.is_started:
            self.progress.live.transient = not keep
            self.progress.stop()


class _StatusColumn(ProgressColumn):
    """The bar and figures of the live line, fitted to the terminal: where they do not all fit, tokens/s
    go first, then the bar; step, loss, elapsed time and ETA stay."""

    def render(self, task: Any) -> Text:
        fields = task.fields
        eta = "-" if fields["eta_at"] is None else _duration(max(fields["eta_at"] - time.monotonic(), 0.0))
        step, loss, ppl = f"step {fields['step']}", f"loss {fields['loss']}", f"val ppl {fields['ppl']}"
        speed, clock = f"{fields['speed']} tok/s", f"{_duration(task.elapsed or 0.0)} ETA {eta}"
        room = err.width - cell_len(str(task.description)) - 4  # the spinner and the gaps between columns
        layouts = ([step, loss, ppl, speed, clock], [step, loss, ppl, clock], [step, loss, clock], [step, clock])
        # The richest layout that leaves a bar of 8 or more, or else the richest that fits without a bar.
        bar, figures = False, "  ".join(layouts[-1])  # narrower still: the least, cut by the terminal
        for with_bar, shown in [(True, layouts[0]), (True, layouts[1]), *((False, shown) for shown in layouts)]:
            if cell_len("  ".join(shown)) + (9 if with_bar else 0) <= room:
                bar, figures = with_bar, "  ".join(shown)
                break
        width = min(24, room - cell_len(figures) - 1)
        if not bar:
            return Text(figures)
        filled = round(width * min(task.completed / task.total if task.total else 0.0, 1.0))
        return Text.assemble(("━" * filled, "bar.complete"), ("━" * (width - filled), "bar.back"), " ", figures)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Training summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    counted = summary["stopped_because"] == "counted"  # an n-gram, counted in one pass: no steps
    rows = [
        ("cell", summary["cell"]),
        *([("networks", f"{summary['members']} averaged")] if summary.get("members", 1) > 1 else []),
        ("n-grams" if counted else "parameters", f"{summary['parameters']:,}"),
        ("vocabulary", f"{summary['vocab_size']:,}"),
        ("device", summary["device"]),
        *([] if counted else [("steps", f"{summary['steps']:,} ({summary['epochs']:.2f} epochs)")]),
        ("time", _duration(summary["elapsed"])),
        ("tokens/s", f"{summary['tokens_per_second']:,.0f}"),
        *([] if counted else [("best step", f"{summary['best_step']:,}")]),
        ("valid loss", f"{summary['best_valid_loss']:.4f}"),
        ("valid perplexity (token)", f"{summary['best_valid_perplexity']:.2f}"),
        ("valid perplexity (word)", f"{summary['best_valid_word_perplexity']:.2f}"),
        ("stopped by", summary["stopped_because"]),
    ]
    if summary.get("mixture"):  # fitted at the end: each component's validation word perplexity
        fitted = summary["mixture"]
        rows += [
            (f"valid perplexity (word), {name}", f"{ppl:.2f}") for name, ppl in fitted["valid_word_perplexity"].items()
        ]
        rows.append(("cache half-life", f"{fitted['half_life']:,} pieces"))
        if fitted.get("theta") is not None:  # absent in a model from before the neural cache
            rows.append(("neural cache θ", f"{fitted['theta']:g}"))
        if fitted.get("cache_buckets") is not None:  # absent in a model from before the confidence buckets
            rows.append(("cache weights by", f"the {fitted['cache_buckets']} bucket"))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


@_command()
def predict(
    model: Path = typer.Argument(..., help="A model directory."),
    text: str = typer.Argument(
        ...,
        help="The text so far. End it with a space for the next word; without one, the last word is completed. "
        "- reads one text a line from stdin and answers each in turn (with --json, a line of JSON each).",
    ),
    suggestions: int = typer.Option(
        5, "--suggestions", "-k", "--top-k", min=1, max=MAX_SHOWN, help="How many words to offer."
    ),
    component: Optional[str] = _component_option("Predict", side_by_side=True),
    device: Device = _device_option(),
    any_word: bool = typer.Option(False, "--any-word", help=ANY_WORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The most likely next words after TEXT, with their probabilities."""
    predictors = _component_predictors(model, component, device, any_word)
    side_by_side = component == "all"
    if text != "-":
        return _answer(predictors, text, suggestions, as_json, side_by_side)
    for number, line in enumerate(sys.stdin.buffer, 1):  # one process, one model load, for any number of texts
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:  # as TEXT is refused: stdin's own decoding would hand on lone surrogates
            raise ConfigError(f"line {number} of stdin is not UTF-8 text (byte {exc.start}); give UTF-8 text") from None
        _answer(predictors, text.rstrip("\r\n"), suggestions, as_json, side_by_side, one_line=True)
        sys.stdout.flush()


def _answer(
    predictors: dict[str, Any], text: str, suggestions: int, as_json: bool, side_by_side: bool, one_line: bool = False
) -> None:
    """predict's answer for one text, from one predictor or (`side_by_side`: --component all, however many
    the model has) each under its name: a table, or JSON."""
    from .predict import split_partial

    answers = {name: predictor.predict(text, k=suggestions) for name, predictor in predictors.items()}
    context, partial = split_partial(text)
    if as_json:
        listed = {name: [{"word": w, "prob": p} for w, p in predictions] for name, predictions in answers.items()}
        found = {"components": listed} if side_by_side else {"predictions": next(iter(listed.values()))}
        _print_json({"context": context, "partial": partial, **found}, one_line)
        return
    after = f" after “{escape(_tail(context))}”" if context.strip() else ""
    title = f"Completions of [bold]{escape(partial)}[/]{after}" if partial else f"Next word{after}"
    if not any(answers.values()):
        lexicon = next(iter(predictors.values())).lexicon
        unknown = lexicon is not None and not lexicon.has_word_starting(partial)
        source = "in the model's lexicon" if unknown else "the model knows"
        err.print(f"[yellow]note:[/] no word {source} starts with {escape(repr(partial))}", soft_wrap=True)
        return
    out.print(title)
    table = Table()
    table.add_column("#", justify="right", style="dim")
    if not side_by_side:
        table.add_column("word", style="bold")
        table.add_column("probability", justify="right")
        table.add_column("")
        for rank, (word, prob) in enumerate(next(iter(answers.values())), 1):
            table.add_row(str(rank), escape(word), probability(prob), "█" * round(prob * 30) or "▏")
    else:
        for name in answers:
            table.add_column(escape(name), style="bold")
            table.add_column("p", justify="right")
        for rank in range(max(map(len, answers.values()))):
            cells = [part for found in answers.values() for part in _ranked(found, rank)]
            table.add_row(str(rank + 1), *cells)
    out.print(table)


def _ranked(predictions: list[tuple[str, float]], rank: int) -> tuple[str, str]:
    """A word and its probability at `rank` of `predictions`, or blanks where there are fewer."""
    if rank >= len(predictions):
        return "", ""
    word, prob = predictions[rank]
    return escape(word), probability(prob)


def probability(p: float) -> str:
    """Three significant digits, enough to tell suggestions apart: 0.992, 0.0183, 0.00183, then 1.83e-04."""
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


def _tail(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else "…" + flat[-width:]


@_command()
def generate(
    model: Path = typer.Argument(..., help="A model directory."),
    prompt: str = typer.Argument(..., help="The text to continue."),
    max_words: int = typer.Option(Sampling.max_words, "--max-words", "-n", min=1, max=MAX_WORDS, help="Words to add."),
    temperature: float = typer.Option(
        Sampling.temperature, "--temperature", "-t", help="Sampling temperature; 0 is greedy."
    ),
    sample_top_k: int = typer.Option(
        Sampling.top_k,
        "--sample-top-k",
        min=0,
        help="Sample from the k likeliest pieces only (0, or more than there are: all).",
    ),
    sample_top_p: float = typer.Option(
        Sampling.top_p,
        "--sample-top-p",
        "--top-p",
        help="Sample from the smallest set of pieces with this much probability.",
    ),
    seed: Optional[int] = typer.Option(
        None, "--seed", min=0, max=MAX_SEED - MAX_SAMPLES, help="The same seed gives the same text."
    ),
    samples: int = typer.Option(1, "--samples", min=1, max=MAX_SAMPLES, help="How many completions to write."),
    component: Optional[str] = _component_option("Write", side_by_side=False),
    any_word: bool = typer.Option(False, "--any-word", help=ANY_WORD_HELP),
    device: Device = _device_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON once done, instead of streaming."),
) -> None:
    """Continue PROMPT, streaming the text as it is produced."""
    import itertools

    import torch

    from .predict import Predictor

    # One piece at a time is a chain of tiny products, where a second thread costs more in waiting than
    # it gives: on 2 CPU cores, generation runs 1,203 pieces/s on one thread and 953 on two (bench/RESULTS.md).
    torch.set_num_threads(1)
    predictor = Predictor.load(model, device=device.value, component=component, any_word=any_word)
    options = dict(max_words=max_words, temperature=temperature, top_k=sample_top_k, top_p=sample_top_p)
    completions = []
    for index in range(samples):
        each_seed = None if seed is None else seed + index
        if as_json:
            completions.append(predictor.generate(prompt, seed=each_seed, **options))
            continue
        pieces = predictor.stream(prompt, seed=each_seed, **options)
        first = next(pieces, "")  # an option or prompt the library refuses fails here, before any output
        if samples > 1:
            out.print(f"[dim]── sample {index + 1} ──[/]")
        out.print(prompt, style="bold", end="", markup=False, soft_wrap=True)
        for piece in itertools.chain([first], pieces, ["\n"]):
            _show(piece)
    if as_json:
        _print_json({"prompt": prompt, "completions": completions})


@_command()
def interactive(
    model: Path = typer.Argument(..., help="A model directory."),
    suggestions: int = typer.Option(5, "--suggestions", "-k", min=1, max=9, help="Words offered at each key (1-9)."),
    max_words: int = typer.Option(
        8, "--max-words", "-n", min=1, max=MAX_WORDS, help="Words a Ctrl-G continuation adds."
    ),
    from_file: Optional[Path] = typer.Option(
        None,
        "--from",
        help="Start with this text file as the document: "
        "its words are the context, its unfinished last line is typed on.",
    ),
    save: Optional[Path] = typer.Option(
        None,
        "--save",
        help="On quitting (Ctrl-D, Ctrl-C), write the whole document here: the --from text, then what was typed.",
    ),
    force: bool = typer.Option(False, "--force", help="Let --save replace an existing file other than --from."),
    component: Optional[str] = _component_option("Suggest", side_by_side=False),
    device: Device = _device_option(),
    any_word: bool = typer.Option(False, "--any-word", help=ANY_WORD_HELP),
) -> None:
    """Type with the likeliest next words offered at each key, like a phone keyboard.

    Tab takes the best word, Alt-1…9 (or Esc then the digit) the one with that number; digits type
    themselves. Ctrl-G shows a generated continuation, Enter starts a new line (the document goes on:
    every line so far is context), Ctrl-D or Ctrl-C quits."""
    from .files import write_text
    from .interactive import Keyboard, check_save_target, note, read_document
    from .predict import Predictor

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise NextwordError(
            "nextword interactive needs a terminal; in a script, use: nextword predict MODEL TEXT --json"
        )
    document = read_document(from_file) if from_file else ""
    if save:
        check_save_target(save, from_file, force)
    with _raw_terminal():  # before the model loads: keys typed meanwhile wait, unechoed, to be read
        session = Predictor.load(model, device=device.value, component=component, any_word=any_word).session()

        def suggest(text: str) -> list[str]:
            session.set_text(text)
            return [word for word, _ in session.predict(k=suggestions)]

        def continue_(text: str) -> str:
            session.set_text(text)
            return session.generate(max_words=max_words)

        keyboard = Keyboard(suggest, continue_, count=suggestions, document=document)
        try:
            if from_file:
                _show(note(f"{len(document.split()):,} words from {from_file}", color=not out.no_color))
            _type_along(keyboard)
        finally:
            if save:  # whatever ended the typing: Ctrl-D, Ctrl-C, the terminal closing, an error
                write_text(save, keyboard.document)


@_command()
def serve(
    model: Path = typer.Argument(..., help="A model directory."),
    component: Optional[str] = _component_option("Answer", side_by_side=False),
    any_word: bool = typer.Option(False, "--any-word", help=ANY_WORD_HELP),
    device: Device = _device_option(),
) -> None:
    """Answer next-word requests, JSON lines on stdin, with one JSON line each on stdout (see the README).

    A request: {"text": "...", "k": 5}, optionally "id" (a session: send the whole buffer each time, only
    the change costs) and "generate": {"max_words": 8}. A reply: {"predictions": ...}, a list of word and
    probability pairs, or {"error": "..."}. It stops when stdin ends."""
    from .predict import Predictor
    from .serve import serve as answer_lines

    predictor = Predictor.load(model, device=device.value, component=component, any_word=any_word)
    try:
        answer_lines(predictor, sys.stdin.buffer, sys.stdout.buffer)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _show(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@contextlib.contextmanager
def _raw_terminal() -> Iterator[None]:
    """The terminal in raw mode (every key at once, Ctrl-C and Ctrl-D included, nothing echoed) while
    inside, and as it was after; keys typed before are kept (no flush), and read as typed then."""
    import signal
    import termios
    import tty

    def hang_up(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the caller's finally: --save still writes

    saved = termios.tcgetattr(sys.stdin)
    handlers = {sig: signal.signal(sig, hang_up) for sig in (signal.SIGHUP, signal.SIGTERM)}
    tty.setraw(sys.stdin, termios.TCSANOW)
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):  # the terminal may be gone (a hang-up)
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _type_along(keyboard: Any) -> None:
    """The terminal side of `interactive`: keys read in raw mode, the line redrawn after each read."""
    import codecs
    import shutil

    from .interactive import KeyReader, screen, settle

    reader, decoder = KeyReader(), codecs.getincrementaldecoder("utf-8")("replace")
    while not keyboard.done:
        _show(screen(keyboard, shutil.get_terminal_size().columns, color=not out.no_color))
        data = os.read(sys.stdin.fileno(), 1024)  # all the keys that came since: one redraw for them
        if not data:
            break  # the terminal went away
        for key in reader.feed(decoder.decode(data)):
            line = keyboard.press(key)
            if line is not None:
                _show(settle(line))
            if keyboard.done:
                break
    _show(settle(keyboard.text))


@_command()
def evaluate(
    model: Path = typer.Argument(..., help="A model directory."),
    file: Path = typer.Argument(..., help="Text to evaluate on (UTF-8), ideally not seen in training."),
    perplexity_lines: Optional[int] = typer.Option(
        None, "--perplexity-lines", min=1, help="Score perplexity and bits per character on the first lines only."
    ),
    predict_words: Optional[int] = typer.Option(
        None,
        "--predict-words",
        min=1,
        help="Predict only the first words (accuracy, keystroke savings, and the long-range words of the lines "
        "they reach): quicker.",
    ),
    suggestions: int = typer.Option(
        3,
        "--suggestions",
        "-k",
        min=0,
        max=MAX_SHOWN,
        help="Words offered while typing, for keystroke savings (0: not measured).",
    ),
    long_range: bool = typer.Option(
        False, "--long-range", help="Also score the far-dependent words listed in FILE.targets.jsonl."
    ),
    component: Optional[str] = _component_option("Evaluate", side_by_side=True),
    device: Device = _device_option(),
    any_word: bool = typer.Option(False, "--any-word", help=ANY_WORD_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """How well MODEL predicts FILE: perplexities, next-word accuracy and keystroke savings.

    Every token of FILE is scored, the first too. Bits per character are per character of FILE as
    read: CR and CRLF line ends count as one line break, a last line without one as if it had it."""
    from .evaluate import evaluate_file

    predictors = _component_predictors(model, component, device, any_word)
    with _stage_progress() as on_progress:
        results = {
            name: evaluate_file(
                predictor,
                file,
                perplexity_lines=perplexity_lines,
                predict_words=predict_words,
                suggestions=suggestions,
                long_range=long_range,
                on_progress=on_progress,
            )
            for name, predictor in predictors.items()
        }
    if as_json:
        name = next(iter(results))
        _print_json(
            {"file": str(file), "components": results} if component == "all" else {**results[name], "component": name}
        )
    else:
        out.print(_evaluation_table(model, file, results, suggestions, headed=component == "all"))


def _component_predictors(model: Path, component: str | None, device: Device, any_word: bool) -> dict[str, Any]:
    """A predictor by name of each component `--component` asks for: the model as predict uses it (None), the
    one named, or all of them; an unknown name fails before any work."""
    from .checkpoint import load
    from .predict import Predictor

    loaded = load(model, device=device.value)
    names = list(loaded.components()) if component == "all" else [component or loaded.default_component]
    return {name: Predictor(loaded, name, any_word=any_word) for name in names}


@contextlib.contextmanager
def _stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A bar on stderr for each stage that the `on_progress(stage, done, total)` given inside reports, gone
    once done; none where stderr is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    progress = Progress(*columns, console=err, transient=True, disable=not err.is_terminal)
    tasks: dict[str, Any] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    with progress:
        yield on_progress


def _evaluation_table(
    model: Path, file: Path, results: dict[str, dict[str, Any]], suggestions: int, headed: bool
) -> Table:
    """The measures of `evaluate`, a column for each component evaluated, `headed` by its name."""
    table = Table(title=f"{escape(str(model))} on {escape(str(file))}", show_header=headed, title_justify="left")
    table.add_column(style="bold")
    for name in results:
        table.add_column(name, justify="right")
    rows = [_evaluation_rows(result, suggestions) for result in results.values()]
    for i, (label, _) in enumerate(rows[0]):
        table.add_row(label, *(column[i][1] for column in rows))
    return table


def _evaluation_rows(result: dict[str, Any], suggestions: int) -> list[tuple[str, str]]:
    """(label, value) of each measure in one result of `evaluate_file`."""
    rows = [
        ("tokens / words scored", f"{result['tokens']:,} / {result['words']:,}"),
        ("token perplexity", f"{result['token_perplexity']:.2f}"),
        ("word perplexity", f"{result['word_perplexity']:.2f}"),
        ("bits per character", f"{result['bits_per_char']:.3f}"),
        ("words predicted", f"{result['predicted_words']:,}"),  # --predict-words: perhaps fewer than scored
    ]
    rows += [(f"top-{k} next-word accuracy", f"{result['accuracy'][f'top{k}']:.1%}") for k in (1, 3, 5)]
    if result["keystroke_savings"] is not None:
        rows.append((f"keystroke savings ({suggestions} suggestions)", f"{result['keystroke_savings']:.1%}"))
    if "long_range" in result:
        far = result["long_range"]
        recall = f"{far['recall']:.1%}, {far['top1']:.1%} (chance {far['chance']:.1%})"
        rows.append((f"long-range recall, top-1 ({far['targets']} words)", recall))
        rows += [
            (f"  {bucket} words back", f"{v['recall']:.1%}, {v['top1']:.1%} of {v['targets']}")
            for bucket, v in far["by_distance"].items()
        ]
    return rows


# export.FORMATS, named here so that --help lists them without importing torch.
ExportFormat = enum.Enum("ExportFormat", {name: name for name in ("torchscript", "onnx")}, type=str)


@_command()
def export(
    model: Path = typer.Argument(..., help="A model directory (rnn, gru or lstm; causal or bidirectional)."),
    fmt: ExportFormat = typer.Option(
        ...,
        "--format",
        "-f",
        case_sensitive=False,
        help="torchscript (torch.jit.load) or onnx (onnxruntime; needs pip install 'nextword\\[export]').",
    ),
    out_file: Path = typer.Option(..., "--out", "-o", help="The file to write."),
    force: bool = typer.Option(
        False, "--force", help="Replace --out if it exists (never a model directory's own files)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what the file takes and gives as JSON."),
) -> None:
    """Write MODEL's next-token step to one file that runs without nextword.

    Token ids and state in, logits and state out."""
    from .checkpoint import load
    from .export import export as export_step

    loaded = load(model)
    part, note = loaded.kind.exportable(loaded.model)
    described = {**export_step(part, fmt.value, out_file, force=force), "note": note}
    if as_json:
        _print_json(described)
        return
    if note:
        out.print(f"note: {escape(note)}", soft_wrap=True)
    out.print(
        f"Wrote [bold]{escape(str(out_file))}[/] ({described['format']}): {_signature(described['inputs'])} -> "
        f"{_signature(described['outputs'])}. The tokenizer is {escape(str(model / 'tokenizer.model'))}.",
        soft_wrap=True,
    )


def _signature(tensors: dict[str, list]) -> str:
    """`tokens (batch x 1), hidden (2 x batch x 256)`: names and shapes of an exported step's tensors."""
    return ", ".join(f"{name} ({' x '.join(map(str, shape))})" for name, shape in tensors.items())


@_command(name="list")
def list_models(
    folder: Path = typer.Argument(Path("models"), help="A folder of model directories."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The models in FOLDER (and in the comparisons there): what each is, what it learnt from, how well it did."""
    from .modelcard import describe, find_models

    models = [describe(path) for path in find_models(folder)]
    if as_json:
        _print_json(models)
        return
    if not models:
        err.print(
            f"[yellow]note:[/] no models in {escape(str(folder))}; train one with: "
            f"nextword train CORPUS --out {escape(str(folder / 'NAME'))}",
            soft_wrap=True,
        )
        return
    table = Table(title=f"Models in {escape(str(folder))}", title_justify="left")
    for title in ("model", "kind", "cell", "params", "size", "corpus", "word ppl", "trained"):
        justify = "right" if title in ("params", "size", "word ppl") else "left"
        table.add_column(title, justify=justify, no_wrap=title in ("model", "trained"))
    for model in models:
        name = str(Path(model["path"]).relative_to(folder)) if model["path"] != str(folder) else model["path"]
        table.add_row(
            escape(name),
            model["kind"] or "?",
            model["cell"] or "?",
            _count(model["parameters"]),
            _megabytes(model["bytes"]),
            escape(model["corpus"] or "?"),
            f"{model['word_perplexity']:,.1f}" if model["word_perplexity"] is not None else "-",
            (model["date"] or "?").replace("T", " ")[:16],
        )
    out.print(table)


def _count(number: int | None) -> str:
    """2,080,672 as 2.1M: the size of a model at a glance."""
    if number is None:
        return "-"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if number >= scale:
            return f"{number / scale:.1f}{unit}"
    return str(number)


def _megabytes(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"


@_command()
def info(
    model: Path = typer.Argument(..., help="A model directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """What a model is: its config, size, tokenizer and how its training went."""
    from .checkpoint import load

    loaded = load(model)
    settings = loaded.settings.to_dict()  # what the model is, and how it was trained
    kind = loaded.kind
    size_label, size = kind.size(loaded.model)
    details = {
        "path": str(model),
        "format": loaded.manifest.get("format"),
        "kind": kind.name,
        "components": list(loaded.components()),
        "corpus": loaded.manifest.get("corpus"),
        "init": loaded.manifest.get("init"),
        "parameters": size,
        "vocab_size": loaded.tokenizer.vocab_size,
        "config": settings,
        "mixture": loaded.manifest.get("mixture"),
        "training": loaded.summary,
    }
    if as_json:
        _print_json(details)
        return
    overview = Table(title=f"Model {escape(str(model))}", show_header=False, title_justify="left")
    overview.add_column(style="bold")
    overview.add_column()
    overview.add_row("kind", f"{kind.name} ({', '.join(details['components'])})")
    overview.add_row("corpus", escape(str(details["corpus"])))
    overview.add_row(size_label, f"{size:,}")
    overview.add_row("vocab_size", f"{loaded.tokenizer.vocab_size:,}")
    if details["init"]:
        overview.add_row("started from", escape(f"{details['init']['path']} (trained on {details['init']['corpus']})"))
    overview.add_row("model", kind.describe(loaded.model, loaded.settings.model))
    # An n-gram has none of the options that steer gradient training; a network's shape is in the model row.
    in_other_rows = ("cell", "order", "layers", "embed", "hidden", "dropout", "members", "tokenizer")
    shown = ("vocab_size", "valid_fraction") if kind.counted else [k for k in settings if k not in in_other_rows]
    overview.add_row("tokenizer", f"{settings['tokenizer']}, {loaded.tokenizer.vocab_size:,} pieces")
    overview.add_row("config", ", ".join(f"{k}={settings[k]}" for k in shown))
    out.print(overview)
    if loaded.summary:
        out.print(summary_table(loaded.summary))


METRIC_COLUMNS = "step epoch elapsed lr train_loss valid_loss valid_perplexity valid_word_perplexity".split()


@_command()
def metrics(
    model: Path = typer.Argument(..., help="A model directory (one still training too)."),
    as_csv: bool = typer.Option(False, "--csv", help="Print every row, training loss too, as CSV (for plotting)."),
    as_json: bool = typer.Option(False, "--json", help="Print every row as JSON instead of a table."),
) -> None:
    """How a run went, from its metrics.jsonl: the validation scores at each evaluation; --csv and --json
    give the training-loss rows between them too."""
    from .checkpoint import read_manifest, read_metrics

    read_manifest(model)  # a model directory, or a message that says what it is instead
    rows = read_metrics(model, training=as_csv or as_json)
    if as_json:
        _print_json(rows)
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif not rows:
        err.print(f"[yellow]note:[/] {escape(str(model))} has no evaluation yet", soft_wrap=True)
    else:
        table = Table(title=f"Evaluations of {escape(str(model))}", title_justify="left")
        for title in ("step", "epoch", "elapsed", "lr", "valid loss", "token ppl", "word ppl"):
            table.add_column(title, justify="right")
        for row in rows:
            table.add_row(
                f"{row['step']:,}",
                str(row.get("epoch", "")),
                f"{row.get('elapsed', 0):,.1f} s",
                f"{row.get('lr', 0):.3g}",
                f"{row['valid_loss']:.4f}",
                f"{row['valid_perplexity']:,.1f}",
                f"{row['valid_word_perplexity']:,.1f}",
            )
        out.print(table)


@app.command()
def presets(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """The built-in presets that --config NAME takes, smallest first."""
    found = configuration.presets()
    if as_json:
        paths = {name: str(configuration.PRESETS / f"{name}.yaml") for name in found}
        _print_json([{"name": name, "description": about, "path": paths[name]} for name, about in found.items()])
        return
    table = Table(title="Presets (nextword train CORPUS --config NAME)", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, about in found.items():
        table.add_row(name, escape(about))
    out.print(table)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Show the version and exit.")) -> None:
    if version:
        out.print(f"nextword {__version__}")
        raise typer.Exit()


def main() -> None:
    app()
