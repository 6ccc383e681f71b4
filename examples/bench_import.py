"""Benchmark of the import issue: how much of torchvision and timm comes into the IR exactly, and how fast.

Every classification model that ``torchvision.models`` lists, and the timm
models of :data:`TIMM` (families named in the issue and more), are created
with random weights (nothing is downloaded), given random batch-norm
statistics, and imported with ``nas.from_module`` at their own input size.
A model imports *exactly* when

* the graph's parameter count equals the module's,
* the graph's MACs are within 1% of ``FlopCounterMode`` on the module
  (attention on its unfused path, which the counter sees),
* the imported weights load strictly into ``nas.lower(graph)`` and its
  outputs equal the module's in eval mode (atol 1e-5, rtol 1e-4).

Anything else is counted: an operation no block computes (a one-line
``UnsupportedOperationError`` naming it), another one-line ``NASError``, or
an exception that is not one of ours (a fault to fix). Printed: a line per
model, the counts against the goal (every torchvision model, 90% of the
timm list), the missing operations with the models that need them, and the
import time of resnet50 and of the largest model by parameters.

Run from the repository root::

    .venv/bin/python examples/bench_import.py                       # everything (tens of minutes on 2 cores)
    .venv/bin/python examples/bench_import.py --libraries timm
    .venv/bin/python examples/bench_import.py --models resnet50,vit_b_16 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections import defaultdict
from typing import Any

import torch
import torchvision
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.io.importing import default_input
from nas.io.trace import UnsupportedOperationError

TIMM = [
    # ResNet and its variants
    "resnet18",
    "resnet50",
    "resnet26d",
    "resnet50d",
    "seresnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "resnetv2_50",
    "res2net50_26w_4s",
    "cspresnet50",
    "dla34",
    "dpn68",
    # RegNet
    "regnetx_002",
    "regnetx_004",
    "regnety_002",
    "regnety_004",
    # EfficientNet and the mobile families
    "efficientnet_b0",
    "efficientnet_lite0",
    "tf_efficientnet_b0",
    "efficientnetv2_rw_t",
    "tf_efficientnetv2_b0",
    "mobilenetv2_050",
    "mobilenetv2_100",
    "mobilenetv3_small_100",
    "mobilenetv3_large_100",
    "tf_mobilenetv3_small_100",
    "mnasnet_100",
    "fbnetc_100",
    "spnasnet_100",
    "mixnet_s",
    "ghostnet_100",
    "rexnet_100",
    "lcnet_050",
    "tinynet_a",
    # ConvNeXt
    "convnext_atto",
    "convnext_nano",
    "convnextv2_atto",
    # DenseNet, VGG, Inception, Xception
    "densenet121",
    "vgg11",
    "inception_v3",
    "xception41",
    # transformers
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch32_224",
    "deit_tiny_patch16_224",
    "deit_tiny_distilled_patch16_224",
    "deit_small_patch16_224",
    "swin_tiny_patch4_window7_224",
    "levit_128s",
    "mobilevit_xxs",
    "poolformer_s12",
]
"""The timm list: at least 40 models across families, chosen before measuring, kept whatever they give."""

TORCHVISION_OPTIONS = {"googlenet": {"aux_logits": False}, "inception_v3": {"aux_logits": False}}
"""The auxiliary heads are training-only: an eval forward never reaches their parameters."""

TORCHVISION_INPUT = {"inception_v3": (3, 299, 299)}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def create(library: str, name: str) -> tuple[nn.Module, tuple[int, ...]]:
    if library == "torchvision":
        model = torchvision.models.get_model(name, weights=None, **TORCHVISION_OPTIONS.get(name, {}))
        return model, TORCHVISION_INPUT.get(name, (3, 224, 224))
    import timm

    model = timm.create_model(name, pretrained=False)
    return model, default_input(model)


def randomise(model: nn.Module) -> None:
    """Random batch-norm statistics, and random values in every parameter
    that starts at zero (class tokens, biases, ConvNeXt V2's response norm),
    so that a wrong pairing cannot hide behind an identity."""
    generator = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=generator) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(std=0.1, generator=generator)


def counted_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs by PyTorch's counter at batch 1, attention on its unfused path (the fused CPU kernels are invisible)."""
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(x[:1])
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops() // 2


def measure(library: str, name: str) -> dict[str, Any]:
    row: dict[str, Any] = {"library": library, "name": name}
    torch.manual_seed(0)
    model, shape = create(library, name)
    model.eval()
    randomise(model)
    row["input"] = list(shape)
    row["params"] = sum(p.numel() for p in model.parameters())
    x = torch.randn(2, *shape)
    started = time.perf_counter()
    try:
        graph, weights = nas.from_module(model, x)
    except UnsupportedOperationError as e:
        return row | {"status": "unsupported", "operation": e.operation, "error": str(e)}
    except nas.NASError as e:
        return row | {"status": "error", "error": str(e)}
    except Exception as e:  # not one of ours: a fault of the importer, counted apart
        return row | {"status": "crash", "error": f"{type(e).__name__}: {e}".splitlines()[0]}
    row["import_s"] = time.perf_counter() - started
    row["graph_params"], row["macs"] = graph.params, graph.macs
    row["reference_macs"] = counted_macs(model, x)
    lowered = nas.lower(graph).eval()
    lowered.load_state_dict(weights, strict=True)
    with torch.no_grad():
        expected, got = model(x), lowered(x)
    row["max_diff"] = float((expected - got).abs().max())
    row["outputs_equal"] = bool(torch.allclose(got, expected, atol=1e-5, rtol=1e-4))
    row["nodes"] = len(graph)
    row["composites"] = sum(1 for node in graph if node.block.composite)
    macs_ok = abs(row["macs"] - row["reference_macs"]) <= 0.01 * row["reference_macs"]
    exact = row["graph_params"] == row["params"] and macs_ok and row["outputs_equal"]
    return row | {"status": "exact" if exact else "inexact"}


def describe(row: dict[str, Any]) -> str:
    head = f"{row['library']}:{row['name']}"
    if row["status"] in ("exact", "inexact"):
        return (
            f"{head:45} {row['status']:9} {row['import_s']:6.1f} s  params {row['graph_params']:>11,} "
            f"(module {row['params']:,})  MACs {row['macs']:>14,} (counter {row['reference_macs']:,})  "
            f"max diff {row['max_diff']:.1e}  {row['nodes']} nodes, {row['composites']} composite"
        )
    return f"{head:45} {row['status']:9} {row['error']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libraries", default="torchvision,timm")
    parser.add_argument("--models", help="only these names (comma separated)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    args = parser.parse_args()
    torch.set_num_threads(2)
    only = set(args.models.split(",")) if args.models else None
    catalogue = {"torchvision": torchvision.models.list_models(module=torchvision.models), "timm": TIMM}
    rows = []
    for library in args.libraries.split(","):
        for name in catalogue[library]:
            if only is None or name in only:
                rows.append(measure(library, name))
                log(describe(rows[-1]))
                gc.collect()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)

    print()
    goals = {"torchvision": 1.0, "timm": 0.9}
    for library in args.libraries.split(","):
        mine = [r for r in rows if r["library"] == library]
        if not mine:
            continue
        counts = defaultdict(int)
        for r in mine:
            counts[r["status"]] += 1
        share = counts["exact"] / len(mine)
        print(
            f"{library}: {counts['exact']} of {len(mine)} import exactly ({share:.0%}; goal {goals[library]:.0%}: "
            f"{'yes' if share >= goals[library] else 'NO'}); {counts['inexact']} inexact, "
            f"{counts['unsupported']} stop at a missing operation, {counts['error']} other clear errors, "
            f"{counts['crash']} crashes"
        )
    missing = defaultdict(list)
    for r in rows:
        if r["status"] == "unsupported":
            missing[r["operation"]].append(r["name"])
    for operation, names in sorted(missing.items(), key=lambda kv: -len(kv[1])):
        print(f"  missing {operation}: {', '.join(names)}")
    for r in rows:
        if r["status"] in ("inexact", "error", "crash"):
            print(f"  {r['status']} {describe(r)}")
    imported = [r for r in rows if "import_s" in r]
    for r in [r for r in imported if r["name"] == "resnet50"] + sorted(imported, key=lambda r: -r["params"])[:1]:
        print(
            f"import time of {r['library']}:{r['name']} ({r['params']:,} params, {r['nodes']} nodes, "
            f"input {'x'.join(map(str, r['input']))}): {r['import_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
