"""``nas train``: train an architecture (from scratch, or from its own weights), then export it with its accuracy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

import nas
import nas.export
from nas.cli.console import (
    NETWORK_HELP,
    AmpOption,
    AugmentOption,
    ChannelsLastOption,
    ClipGradOption,
    DataOption,
    DataWorkersOption,
    DeviceOption,
    ForceOption,
    Json,
    RecipeOption,
    augment_choice,
)
from nas.cli.export import print_export
from nas.cli.progress import progress_bar
from nas.cli.root import as_command
from nas.data import DataSet, augmentation_of, load_data
from nas.io.exported import copy_fitting
from nas.ir.errors import NASError
from nas.train import EvaluationFailed, Recipe, TrainResult, choose_recipe, resolve_device
from nas.train import train as train_graph


def train(
    source: Annotated[str, typer.Argument(help=NETWORK_HELP)],
    output: Annotated[str, typer.Option("-o", "--output", help="The directory to export the trained model to.")] = "",
    data: DataOption = "digits",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training images.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the weights, the batch order and the augmentation.")] = 0,
    recipe: RecipeOption = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Images per step (the recipe's lr scales with it).")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate (default: the recipe's).")] = None,
    clip_grad: ClipGradOption = None,
    augment: AugmentOption = None,
    device: DeviceOption = None,
    amp: AmpOption = None,
    channels_last: ChannelsLastOption = None,
    workers: DataWorkersOption = None,
    input_shape: Annotated[
        str | None, typer.Option("--input", help="Input shape to train at (the data is resized), e.g. 1x32x32.")
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="Checkpoint file (default: beside the output); an existing one resumes."),
    ] = None,
    pretrained: Annotated[
        bool,
        typer.Option(
            "--pretrained",
            help="Start from SOURCE's own weights (an export directory's): fine-tuning, or more epochs of a "
            "trained network; a classifier fitted to other classes starts new.",
        ),
    ] = False,
    formats: Annotated[
        str, typer.Option("--format", help="Formats to export (as in 'nas export').")
    ] = "yaml,weights,pt2,torchscript,onnx",
    force: ForceOption = False,
    as_json: Json = False,
) -> None:
    """Train an architecture from scratch on a data set, then export it with its accuracy.

    The network's classifier is fitted to the data's classes. The run is
    saved after every epoch; run the same command again after an
    interruption and it resumes where it stopped.
    """
    if not output:
        raise NASError("no output directory", field="output", hint="give -o DIR")
    if epochs < 1 or (batch_size is not None and batch_size < 1) or (lr is not None and not lr > 0):
        raise NASError("epochs and batch size must be at least 1, lr above 0", field="epochs")
    target = Path(output)
    nas.export.check_target(target, force)  # fail before training, not after
    split = load_data(data)
    chosen = choose_recipe(split, recipe, batch_size=batch_size, lr=lr, clip_grad=clip_grad)
    where = resolve_device(device)  # once: 'auto' claims a GPU
    augmentation = augmentation_of(split, chosen.augment if augment is None else augment_choice(augment))
    origin = nas.export.from_source(source, input_shape=input_shape)
    graph = nas.build(origin.graph, classes=split.classes)
    start = _pretrained(source, origin, graph, seed) if pretrained else None
    ckpt = Path(checkpoint) if checkpoint else target.with_name(f".{target.name}.checkpoint.safetensors")
    print(
        f"training {origin.name} ({graph.params:,} params) on {split.name}: {len(split.train)} images, "
        f"{epochs} epochs, recipe {chosen.name}" + (f", resuming from {ckpt}" if ckpt.is_file() else ""),
        file=sys.stderr,
    )
    options = {
        "augment": augmentation,
        "device": where,
        "amp": amp,
        "channels_last": channels_last,
        "workers": workers,
        "weights": start,
    }
    result = _train_with_progress(graph, split, ckpt, recipe=chosen, epochs=epochs, seed=seed, **options)
    model = nas.export.Model(
        graph,
        result.state,
        name=origin.name,
        source={"kind": "train", "from": source, "data": split.name} | ({"pretrained": True} if pretrained else {}),
        accuracy={
            "value": result.accuracy,
            "data": split.name,
            "split": "validation",
            "epochs": epochs,
            "seed": seed,
            "curve": result.curve,
            "recipe": result.recipe,
        },
    )
    exported = nas.export.export(model, target, formats, overwrite=force)
    ckpt.unlink(missing_ok=True)  # the export holds the weights now
    print(f"validation accuracy {result.accuracy:.4f} after {epochs} epochs ({result.seconds:.0f} s)", file=sys.stderr)
    raise typer.Exit(print_export(exported, as_json))


def _pretrained(source: str, origin: nas.export.Model, graph: nas.Graph, seed: int) -> dict[str, torch.Tensor]:
    """The state ``graph`` starts from: ``origin``'s weights wherever their
    shapes fit (all but a classifier refitted to the data's classes), the
    rest as a new run of ``seed`` initialises it.

    Raises:
        NASError: a source without weights.
    """
    if origin.weights is None:
        raise NASError(
            f"'{source}' holds no weights to start from",
            field="pretrained",
            hint="give an export directory with weights (--format yaml,weights), or drop --pretrained",
        )
    torch.manual_seed(seed)
    state = nas.lower(graph).state_dict()
    new = sorted(copy_fitting(state, origin.weights))
    print(
        f"starting from the weights of {source}: {len(state) - len(new)} of {len(state)} tensors"
        + (f" ({', '.join(new)} new: other shapes)" if new else ""),
        file=sys.stderr,
    )
    return state


def _train_with_progress(
    graph: nas.Graph, split: DataSet, checkpoint: Path, *, recipe: Recipe, epochs: int, seed: int, **options: Any
) -> TrainResult:
    """Train with a progress bar of steps and one line per epoch; a run that
    diverges is a one-line error."""
    steps = -(-len(split.train) // recipe.batch_size)
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
            recipe=recipe,
            epochs=epochs,
            seed=seed,
            on_step=on_step,
            on_epoch=on_epoch,
            checkpoint=checkpoint,
            **options,
        )
    except EvaluationFailed as e:
        raise NASError(f"training failed: {e}", hint="try a lower --lr, or check the data") from None
    finally:
        progress.stop()


command = as_command(train, "train")
