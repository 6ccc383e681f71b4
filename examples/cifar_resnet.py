"""CIFAR-10 ResNets (He et al., "Deep Residual Learning for Image Recognition",
2015, section 4.2) built through the public ``nas`` API.

The network takes ``[3, 32, 32]`` images: a 3x3 convolution with 16 filters,
batch norm and ReLU, then three stages of ``n`` basic blocks with 16, 32 and
64 channels (stride 2 at the first block of the second and third stages,
parameter-free ``zero_pad`` shortcuts: the paper's option A), global average
pooling, and a 10-way fully connected layer. It has ``6n + 2`` weighted layers:
``n = 3, 5, 7, 9, 18, 200`` give ResNet-20, 32, 44, 56, 110 and 1202.

Example:
    >>> from examples.cifar_resnet import cifar_resnet   # doctest: +SKIP
    >>> cifar_resnet(18).params                          # doctest: +SKIP
    1727962
"""

from __future__ import annotations

import nas

STAGE_CHANNELS = (16, 32, 64)
"""Width of each of the three stages."""


def depth_of(n: int) -> int:
    """The number of weighted layers of a CIFAR ResNet with ``n`` blocks per stage."""
    return 6 * n + 2


def cifar_resnet(n: int, *, num_classes: int = 10) -> nas.Graph:
    """The CIFAR ResNet with ``n`` basic blocks per stage (depth ``6n + 2``).

    Node names follow torchvision's layout: ``conv1``, ``bn1``, ``relu``,
    ``layer{stage}_{block}``, ``avgpool``, ``flatten``, ``fc``.

    Args:
        n: basic blocks per stage, at least 1.
        num_classes: outputs of the final linear layer.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    g = nas.Graph(f"resnet{depth_of(n)}_cifar", meta={"paper": "He et al. 2015, section 4.2", "dataset": "CIFAR-10"})
    x = g.add_input("x", (3, 32, 32))
    x = g.add("conv1", "conv2d", x, out_channels=16, kernel_size=3, padding=1, bias=False)
    x = g.add("bn1", "batch_norm", x)
    x = g.add("relu", "relu", x)
    for stage, channels in enumerate(STAGE_CHANNELS, start=1):
        for block in range(n):
            stride = 2 if stage > 1 and block == 0 else 1
            x = g.add(
                f"layer{stage}_{block}", "basic_block", x, out_channels=channels, stride=stride, shortcut="zero_pad"
            )
    x = g.add("avgpool", "adaptive_avg_pool2d", x)
    x = g.add("flatten", "flatten", x)
    g.set_outputs(g.add("fc", "linear", x, out_features=num_classes))
    return g
