"""The progress bar of the long commands (``nas search``, ``nas train``)."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.cli.console import text_console


def progress_bar(field: str) -> Progress:
    """A transient progress bar on stderr: the task's description, the bar,
    done/total, the task's ``field`` and the time elapsed."""
    console = text_console(stderr=True)
    console = console if console.is_terminal else text_console(stderr=True, width=200)
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[{field}]}}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
