"""Training: recipes, the training loop, checkpoints and devices.

* :mod:`nas.train.recipes`: named recipes as data (SGD with a cosine
  schedule and warm-up, label smoothing; Adam), or a recipe file;
* :mod:`nas.train.loop`: :func:`train`, a network's training run on a data set;
* :mod:`nas.train.checkpoint`: resumable state and atomic safetensors writes;
* :mod:`nas.train.device`: ``--device`` (``auto`` claims a free GPU), mixed
  precision and channels-last.

Example:
    >>> import nas
    >>> from nas.data import load_data
    >>> from nas.train import train
    >>> net = nas.build("lenet5", input_shape=(1, 32, 32), classes=10)
    >>> result = train(net, load_data("digits"))  # doctest: +SKIP
    >>> result.recipe["name"]                     # doctest: +SKIP
    'digits'
"""

from nas.train.checkpoint import save_tensors, state_of
from nas.train.device import Precision, default_device, precision_for, resolve_device
from nas.train.loop import EvaluationFailed, TrainResult, accuracy, choose_recipe, input_shape, logits, train
from nas.train.recipes import RECIPES, Recipe, default_recipe, recipe

__all__ = [
    "RECIPES",
    "EvaluationFailed",
    "Precision",
    "Recipe",
    "TrainResult",
    "accuracy",
    "choose_recipe",
    "default_device",
    "default_recipe",
    "input_shape",
    "logits",
    "precision_for",
    "recipe",
    "resolve_device",
    "save_tensors",
    "state_of",
    "train",
]
