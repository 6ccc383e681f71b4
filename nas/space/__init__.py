"""Search spaces: an IR template whose values may be decisions.

A space is written like a network (see ``search_spaces/README.md``), except
that any value may be a decision instead of a constant::

    nodes:
      conv1: {block: conv2d, in: x, out_channels: {range: [16, 128, 16]}, kernel_size: {choice: [3, 5, 7]}}
      pool1: {block: max_pool2d, optional: true, kernel_size: 2}
      mix: {block: {choice: [relu, elu]}}
      body: {block: {choice: [basic_block, bottleneck]},
             params: {basic_block: {out_channels: 64}, bottleneck: {out_channels: 256, width: {choice: [32, 64]}}}}

A decision is ``{choice: [...]}``, ``{range: [low, high, step]}`` (int or
float), a reference ``$name`` to a decision declared once under
``decisions:`` (shared: one width multiplier for the whole net), or
``{expr: "int(64 * width)"}``, arithmetic over declared decisions. Nodes with
``optional: true`` may be left out (their readers then read their first
input). When ``block`` is a choice, each block type has its own parameters
under ``params:``, so that its decisions exist only when that type is chosen
(and have distinct names: the Optuna pitfall of a parameter whose
distribution changes between trials never arises). Declared decisions may be
conditional: ``when: {other_label: value}``.

An *assignment* is a flat dict from decision labels to values, holding the
active decisions only: ``{"conv1.kernel_size": 3, "pool1.present": True,
"body.block": "bottleneck", "body.bottleneck.width": 64}``.

The operations a searcher needs are functions over a :class:`Space`:
:func:`decode`, :func:`encode` (the assignment that gives a network; every
zoo net is a fixed point of a shipped space), :func:`sample` (:func:`draw`:
with the network it decodes to), :func:`mutate`, :func:`distance` and
:func:`size`; :func:`restrict` narrows decisions
(:func:`narrowed` from ``--fix LABEL=VALUE`` texts); :func:`extreme` and
:func:`end` give the largest or smallest network.

The modules, each importing only those before it: ``model`` (what a space is
made of), ``parser`` (the YAML reader), ``operations`` (decode, sample,
mutate, ...), ``encode`` (networks and stored JSON back into assignments),
``reports`` (what ``nas space`` shows), ``around`` (a space written
around a given network, its fixed point).
"""

from nas.space.around import around, around_point, around_summary
from nas.space.encode import assignment_from_plain, encode, from_plain, may_hold
from nas.space.latest import Latest
from nas.space.model import Assignment, Const, Decision, Expr, MappingValue, Slot, Space, Use
from nas.space.operations import (
    MAX_TRIES,
    active,
    assignment_key,
    complete,
    decode,
    distance,
    draw,
    end,
    extreme,
    mutate,
    narrowed,
    near,
    numeric,
    parse_fixes,
    restrict,
    sample,
    size,
)
from nas.space.parser import load_space, parse_space, space_names
from nas.space.reports import describe, fixed_points, overview, report, write_samples

__all__ = [
    "MAX_TRIES",
    "Assignment",
    "Const",
    "Decision",
    "Expr",
    "Latest",
    "MappingValue",
    "Slot",
    "Space",
    "Use",
    "active",
    "around",
    "around_point",
    "around_summary",
    "assignment_from_plain",
    "assignment_key",
    "complete",
    "decode",
    "describe",
    "distance",
    "draw",
    "encode",
    "end",
    "extreme",
    "fixed_points",
    "from_plain",
    "load_space",
    "may_hold",
    "mutate",
    "narrowed",
    "near",
    "numeric",
    "overview",
    "parse_fixes",
    "parse_space",
    "report",
    "restrict",
    "sample",
    "size",
    "space_names",
    "write_samples",
]
