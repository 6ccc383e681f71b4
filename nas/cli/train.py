"""``nas train``: train an architecture from scratch, then export it with its accuracy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

import nas
import nas.export
from nas.cli.console import Json
from nas.cli.export import print_export
from nas.cli.progress import progress_bar
from nas.cli.root import as_command
from nas.ir.errors import NASError
from nas.search import Split, load_data
from nas.search.train import EvaluationFailed, TrainResult
from nas.search.train import train as train_graph


def train(
    source: Annotated[str, typer.Argument(help="Zoo name, IR YAML file or export directory.")],
    output: Annotated[str, typer.Option("-o", "--output", help="The directory to export the trained model to.")] = "",
    data: Annotated[
        str, typer.Option("--data", help="digits (built in), a .npz file (x, y) or a class folder.")
    ] = "digits",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training images.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the weights and the batch order.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Adam's learning rate.")] = 2e-3,
    input_shape: Annotated[
        str | None, typer.Option("--input", help="Input shape to train at (the data is resized), e.g. 1x32x32.")
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="Checkpoint file (default: beside the output); an existing one resumes."),
    ] = None,
    formats: Annotated[
        str, typer.Option("--format", help="Formats to export (as in 'nas export').")
    ] = "yaml,weights,pt2,torchscript,onnx",
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier export in the directory.")] = False,
    as_json: Json = False,
) -> None:
    """Train an architecture from scratch on a data set, then export it with its accuracy.

    The network's classifier is fitted to the data's classes. The run is
    saved after every epoch; run the same command again after an
    interruption and it resumes where it stopped.
    """
    if not output:
        raise NASError("no output directory", field="output", hint="give -o DIR")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise NASError("epochs and batch size must be at least 1, lr above 0", field="epochs")
    target = Path(output)
    nas.export.check_target(target, force)  # fail before training, not after
    split = load_data(data)
    origin = nas.export.from_source(source, input_shape=input_shape)
    graph = nas.build(origin.graph, classes=split.classes)
    ckpt = Path(checkpoint) if checkpoint else target.with_name(f".{target.name}.checkpoint.safetensors")
    print(
        f"training {origin.name} ({graph.params:,} params) on {split.name}: {len(split.train)} images, "
        f"{epochs} epochs" + (f", resuming from {ckpt}" if ckpt.is_file() else ""),
        file=sys.stderr,
    )
    result = _train_with_progress(graph, split, ckpt, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr)
    model = nas.export.Model(
        graph,
        result.state,
        name=origin.name,
        source={"kind": "train", "from": source, "data": split.name},
        accuracy={
            "value": result.accuracy,
            "data": split.name,
            "split": "validation",
            "epochs": epochs,
            "seed": seed,
            "curve": result.curve,
        },
    )
    exported = nas.export.export(model, target, formats, overwrite=force)
    ckpt.unlink(missing_ok=True)  # the export holds the weights now
    print(f"validation accuracy {result.accuracy:.4f} after {epochs} epochs ({result.seconds:.0f} s)", file=sys.stderr)
    raise typer.Exit(print_export(exported, as_json))


def _train_with_progress(
    graph: nas.Graph, split: Split, checkpoint: Path, *, epochs: int, seed: int, batch_size: int, lr: float
) -> TrainResult:
    """Train with a progress bar of steps and one line per epoch; a run that
    diverges is a one-line error."""
    steps = -(-len(split.train) // batch_size)
    progress = progress_bar("status")
    task = progress.add_task("epoch 1", total=epochs * steps, status="", completed=0)

    def on_step(epoch: int, step: int, loss: float) -> None:
        progress.update(
            task,
            completed=epoch * steps + step + 1,
            description=f"epoch {epoch + 1}/{epochs}",
            status=f"loss {loss:.4f}",
        )

    def on_epoch(epoch: int, accuracy: float) -> None:
        progress.console.print(f"epoch {epoch + 1}/{epochs}: validation accuracy {accuracy:.4f}", highlight=False)

    progress.start()
    try:
        return train_graph(
            graph,
            split,
            epochs=epochs,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            on_step=on_step,
            on_epoch=on_epoch,
            checkpoint=checkpoint,
        )
    except EvaluationFailed as e:
        raise NASError(f"training failed: {e}", hint="try a lower --lr, or check the data") from None
    finally:
        progress.stop()


command = as_command(train, "train")
