"""Weight sharing: one supernet per search space, trained once, specialised in seconds.

* :mod:`nas.supernet.bank`: the bank of weights at each parameter's largest
  shape, and the windows of it that a subnet's parameters are;
* :mod:`nas.supernet.net`: :class:`Supernet`, a space and its bank: any
  assignment's network, run with the bank's weights, recalibrated and
  evaluated, or extracted as a plain network with its own weights;
* :mod:`nas.supernet.training`: training with the sandwich rule and in-place
  distillation, or uniform single-path sampling, checkpointed and resumable;
* :mod:`nas.supernet.store`: the supernet directory (space, bank, log);
* :mod:`nas.supernet.extract`: one network the user names, taken out with
  its inherited weights as a model to export.
"""

from nas.supernet.bank import Bank, entry_name, window
from nas.supernet.extract import Extracted, choose, extract, supernet_model
from nas.supernet.net import Started, Subnet, Supernet
from nas.supernet.store import SupernetInfo, load_supernet, read_info, save_supernet
from nas.supernet.training import RULES, CostRange, EpochLog, Inheritance, SupernetRun, train_supernet

__all__ = [
    "RULES",
    "Bank",
    "CostRange",
    "EpochLog",
    "Extracted",
    "Inheritance",
    "Started",
    "Subnet",
    "Supernet",
    "SupernetInfo",
    "SupernetRun",
    "choose",
    "entry_name",
    "extract",
    "load_supernet",
    "read_info",
    "save_supernet",
    "supernet_model",
    "train_supernet",
    "window",
]
