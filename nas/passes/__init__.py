"""Passes: functions over a :class:`~nas.ir.graph.Graph` that return a fact or a new graph.

* :mod:`~nas.passes.validate`: what only the whole graph can get wrong;
* :mod:`~nas.passes.analysis`: shapes, costs, receptive fields (the graph's ``summary``);
* :mod:`~nas.passes.plan`: the nodes in the order they run, composites inlined;
* :mod:`~nas.passes.canonical`: flattening and the canonical hash;
* :mod:`~nas.passes.lower`: the graph as a readable ``torch.fx.GraphModule``
  (or a :class:`~nas.passes.lower.Stepped` loop over its flat plan);
* :mod:`~nas.passes.onnx`: a lowered module as ONNX;
* :mod:`~nas.passes.fusion`: the units a runtime fuses, as latency prediction counts them;
* :mod:`~nas.passes.draw`: the graph as a Graphviz picture.

Importing this package registers the passes that compute a graph's facts.
"""

from nas.passes import analysis, canonical
from nas.passes.canonical import flatten
from nas.passes.lower import lower

__all__ = ["analysis", "canonical", "flatten", "lower"]
