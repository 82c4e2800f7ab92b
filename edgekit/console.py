"""Progress and notes go to stderr (rich); results and tables go to stdout."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape

import sys

# Logs and CI captures are not terminals; rich would cut tables to 80 columns there.
_WIDTH = None if sys.stdout.isatty() else 160
err = Console(stderr=True, highlight=False, width=_WIDTH)
out = Console(highlight=False, width=_WIDTH)
quiet = False


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """Show a spinner while a long step runs, then one line with its duration."""
    if quiet:
        yield
        return
    started = time.perf_counter()
    with err.status(f"{label}..."):
        yield
    err.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - started:.1f} s)[/]")


def info(message: str) -> None:
    if not quiet:
        err.print(f"  [dim]{escape(message)}[/]")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


@contextlib.contextmanager
def progress(total: int, label: str) -> Iterator:
    """A progress bar over `total` items; yields the function that advances it by one."""
    if quiet:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)
