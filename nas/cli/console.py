"""What every command prints with: consoles, the ``--json`` option and figure formats.

Kept apart from the commands so that each command module loads only what it
needs; the progress bar, which only long commands show, is
:mod:`nas.cli.progress`.
"""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.console import Console

Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

NETWORK_HELP = (
    "A zoo name, an IR YAML file or string, an export directory, "
    "or a model: torchvision:NAME, timm:NAME, file.py:factory."
)
"""What every command that reads one network reads (``nas.build``)."""

# The options of the commands that export (nas export, nas supernet export, nas train, nas import).
FormatsOption = Annotated[
    str, typer.Option("--format", help="Comma-separated: yaml,weights,pt2,torchscript,onnx,tensorrt or all.")
]
CardLatencyOption = Annotated[
    str, typer.Option("--latency", help="Backends to measure for the model card (comma-separated, or none).")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace an earlier export in the directory.")]


def backend_list(text: str) -> list[str]:
    """The backends a ``--latency`` option names (``none`` or nothing: none)."""
    return [] if text.strip().lower() in ("", "none") else [b.strip() for b in text.split(",") if b.strip()]


# The options of the commands that train (nas train, nas search).
DataOption = Annotated[
    str,
    typer.Option(
        "--data",
        help="digits or cluttered[:N] (built in), a .npz file (x, y), an image folder, or torchvision:NAME:ROOT "
        "(on disk).",
    ),
]
ClipGradOption = Annotated[
    float | None,
    typer.Option(
        "--clip-grad", help="Clip the gradients' norm to this before each step (default: the recipe's; none)."
    ),
]
RecipeOption = Annotated[
    str | None,
    typer.Option("--recipe", help="adam, digits, cifar, imagenet or a recipe .yaml (default: suits the data)."),
]
AugmentOption = Annotated[
    str | None,
    typer.Option("--augment", help="auto, none, crop, crop-flip or resized-crop-flip (default: the recipe's)."),
]
DeviceOption = Annotated[
    str | None,
    typer.Option("--device", help="cpu, cuda, cuda:N or auto: a GPU no other worker took (default: the first GPU)."),
]
AmpOption = Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision (default: on a GPU).")]
ChannelsLastOption = Annotated[
    bool | None, typer.Option("--channels-last/--no-channels-last", help="Channels-last layout (default: on).")
]
FixOption = Annotated[
    list[str] | None,
    typer.Option("--fix", help="LABEL=VALUE: fix a decision (or LABEL=[a,b] to keep some values); repeatable."),
]
BatchOption = Annotated[
    int | None, typer.Option("--batch", help="Batch of the latency measurement (default: the latency table's, else 1).")
]
PrecisionOption = Annotated[
    str | None,
    typer.Option("--precision", help="fp32, fp16 or bf16 latency (default: the latency table's, else fp32)."),
]
ThreadsOption = Annotated[int, typer.Option("--threads", help="CPU threads of the latency measurement.")]
DataWorkersOption = Annotated[
    int | None, typer.Option("--data-workers", help="Image decoding processes (default: one per CPU, up to 8).")
]


def augment_choice(text: str | None) -> bool | str | None:
    """``--augment``'s value as the training functions take it (``none``: no augmentation)."""
    return False if text == "none" else text


def text_console(*, stderr: bool = False, width: int | None = None) -> Console:
    """A console that prints text as it is: no Rich markup, so that
    ``pip install 'nas[onnx]'`` in a reason or a hint keeps its brackets."""
    return Console(markup=False, stderr=stderr, width=width)


def table_console() -> Console:
    """A console for tables: as wide as the terminal, or roomy when piped
    (rich's default of 80 columns would cut node names in files and logs)."""
    console = text_console()
    return console if console.is_terminal else text_console(width=200)


def si(value: float) -> str:
    """A count with an SI prefix: ``1.82 G``, ``11.69 M``, ``512``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(int(value))


def shapes_text(shapes: list[list[int]]) -> str:
    """Tensor shapes as ``64x56x56, 10``."""
    return ", ".join("x".join(map(str, s)) for s in shapes)


def power(n: int) -> str:
    """A count that may be astronomical (a space's size): exact up to a
    billion, then as a power of ten."""
    return f"{n:,}" if n < 10**9 else f"~10^{math.log10(n):.1f}"
