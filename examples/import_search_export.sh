#!/usr/bin/env bash
# Bring your own network: import torchvision's MobileNet v3-Small, write the
# search space around it, search that space on the built-in digits under a
# latency budget, and export the best network found.
#
#   bash examples/import_search_export.sh [DIR]      # DIR: where everything goes (default runs/import_example)
#
# Every step is a plain `nas` command; nothing is downloaded (the model has
# random weights: the search trains each candidate on the digits).
set -euo pipefail

out=${1:-runs/import_example}
trials=${TRIALS:-6}
mkdir -p "$out"

# 1. The model as the IR sees it, with its weights (exactly: same params, MACs and outputs).
nas import torchvision:mobilenet_v3_small --input 3x64x64 -o "$out/imported" --force
nas show "$out/imported" | tail -n 1

# 2. A space whose fixed point is that network: widths, kernel sizes and expansions as decisions.
nas space --around torchvision:mobilenet_v3_small --input 3x64x64 -o "$out/space.yaml" --force
nas space "$out/space.yaml" | tail -n 3

# 3. A latency-constrained search of that space on the digits (the imported net is tried first).
nas search --space "$out/space.yaml" --data digits --trials "$trials" --epochs 2 \
    --latency-budget-ms 20 --storage "sqlite:///$out/nas.db" --study around_mobilenet_v3_small --runs "$out/runs"

# 4. The best network within the budget, exported with its weights and model card.
nas export --storage "sqlite:///$out/nas.db" --study around_mobilenet_v3_small --best \
    --format yaml,weights,onnx -o "$out/best" --latency none
ls "$out/best"
