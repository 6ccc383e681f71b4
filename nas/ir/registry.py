"""The block registry: every block type declared once, found by name.

A block type is a subclass of :class:`Block` that declares, in one place,

* its parameters (:class:`Param`: type, default, valid range or choices),
* how many inputs it takes and the names of its outputs,
* its shape rule (:meth:`Block.infer`),
* its cost rule (:meth:`Block.cost`: parameters and multiply-accumulates),
* its spatial window, for receptive fields (:meth:`Block.window`),
* its PyTorch lowering (:meth:`Block.lower`),
* its role when a runtime fuses layers (:attr:`Block.fusion`).

A :class:`Composite` block instead declares :meth:`Composite.expand`, a graph of
smaller blocks; its shapes, costs and lowering all follow from that graph.

Block types live in the top-level ``blocks/`` folder (installed as
``nas.blocks``) and register themselves with :func:`register`::

    @register
    class Tanh(Block):
        name = "tanh"
        def lower(self, p, ins):
            return Call(torch.tanh)
"""

from __future__ import annotations

import difflib
import fnmatch
import keyword
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from nas.ir.errors import ParamError, UnknownBlockError
from nas.ir.values import FrozenMapping, freeze

if TYPE_CHECKING:
    import torch

    from nas.ir.graph import Graph

Shape = tuple[int, ...]
"""A tensor shape without the batch dimension: ``(C, H, W)`` or ``(F,)``."""

MAX_CHANNELS = 1 << 20
MAX_EXTENT = 1 << 16
"""Upper bounds that catch typos and absurd values long before memory runs out."""

RESERVED_NAMES = frozenset({"block", "in", "name", "inputs"})
"""Keys that a node uses for itself and that no parameter may take."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default of a parameter that has none and must be given."""


# --------------------------------------------------------------------------
# Parameter kinds. A kind turns a raw (YAML or Python) value into its
# canonical form or raises TypeError with what was expected.


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an integer")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError("a finite number")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("true or false")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def pair(value: Any) -> int | tuple[int, int]:
    """An int or a ``[height, width]`` pair; a pair of equal ints becomes one int."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise TypeError("an integer or a pair [height, width]")
        h, w = (_int(v) for v in value)
        return h if h == w else (h, w)
    return _int(value)


def mapping(value: Any) -> FrozenMapping:
    """A mapping of names to plain values, e.g. the arguments a ``stage``
    passes to each of its units."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError("a mapping of names to values, e.g. {out_channels: 64}")
    return freeze(value)


def shape(value: Any) -> Shape:
    """A tensor shape without batch: a list of 1 to 3 positive integers."""
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 3:
        raise TypeError("a shape: a list of 1 to 3 integers, e.g. [3, 224, 224]")
    dims = tuple(_int(v) for v in value)
    if any(d < 1 or d > MAX_EXTENT * 16 for d in dims):
        raise ValueError(f"every dimension in 1..{MAX_EXTENT * 16}, got {list(dims)}")
    return dims


_KIND_NAMES: dict[Any, Callable[[Any], Any]] = {int: _int, float: _float, bool: _bool, str: _str}


def as_pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """Expand a :func:`pair` parameter to ``(height, width)``."""
    return (value, value) if isinstance(value, int) else value


def sliding_output(
    size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Output length of a convolution or pooling window along one axis.

    The formula of ``torch.nn.Conv2d`` and ``MaxPool2d``, including PyTorch's
    rule that with ``ceil_mode`` the last window must start inside the input
    or its left padding.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


@dataclass(frozen=True)
class Param:
    """One parameter of a block type.

    Args:
        name: the parameter's name in YAML and Python.
        kind: ``int``, ``float``, ``bool``, ``str`` or a callable that returns
            the canonical value and raises ``TypeError`` (with what it
            expected) or ``ValueError``, such as :func:`pair`.
        default: the value when the parameter is left out; :data:`REQUIRED`
            when it must be given; ``None`` makes it optional.
        low, high: inclusive bounds for numbers (each element of a pair).
        choices: the allowed values of a categorical parameter.
        doc: one line for ``nas blocks``.
    """

    name: str
    kind: Any
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    def check(self, value: Any) -> Any:
        """Return the canonical form of ``value`` or raise :class:`ParamError`."""
        if value is None and self.default is None:
            return None
        convert = _KIND_NAMES.get(self.kind, self.kind)
        try:
            canonical = freeze(convert(value))
        except TypeError as e:
            raise ParamError(f"expected {e}, got {value!r}", field=self.name, hint=self._fix()) from None
        except ValueError as e:
            raise ParamError(f"expected {e}", field=self.name, hint=self._fix()) from None
        numbers = canonical if isinstance(canonical, tuple) else (canonical,)
        for number in numbers:
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                continue
            if self.low is not None and number < self.low:
                raise ParamError(f"must be >= {self.low}, got {value!r}", field=self.name, hint=self._fix())
            if self.high is not None and number > self.high:
                raise ParamError(f"must be <= {self.high}, got {value!r}", field=self.name, hint=self._fix())
        if self.choices is not None and canonical not in self.choices:
            options = ", ".join(map(str, self.choices))
            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            hint = f"did you mean '{close[0]}'?" if close else self._fix()
            raise ParamError(f"must be one of {options}, got {value!r}", field=self.name, hint=hint)
        return canonical

    def kind_words(self) -> str:
        """What kind of value it takes, in words: ``an integer``, the
        parameter's doc, or its converter's first sentence (:func:`pair`:
        ``an int or a [height, width] pair``)."""
        plain = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        if self.kind in plain:
            return plain[self.kind]
        if self.doc:
            return self.doc
        text = " ".join((getattr(self.kind, "__doc__", None) or "").split()).replace("``", "")
        sentence = re.split(r"(?<!e\.g)(?<!i\.e)[.;](?:\s|$)", text, maxsplit=1)[0]
        return sentence[:1].lower() + sentence[1:] if sentence else getattr(self.kind, "__name__", "a valid value")

    def _fix(self) -> str:
        """What a valid value looks like, for error hints."""
        if self.choices is not None:
            return f"set {self.name} to one of {', '.join(map(str, self.choices))}"
        kind = self.kind_words()
        bounds = ""
        if self.low is not None and self.high is not None:
            bounds = f" in {self.low}..{self.high}"
        elif self.low is not None:
            bounds = f" >= {self.low}"
        return f"set {self.name} to {kind}{bounds}"


class Params(Mapping[str, Any]):
    """The immutable, canonical parameters of one node, readable as attributes.

    >>> p = Params({"stride": 2})
    >>> p.stride, p["stride"]
    (2, 2)
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))


@dataclass(frozen=True)
class Cost:
    """Analytic cost of one block at one input shape (batch 1).

    ``macs`` counts the multiply-accumulates of convolutions and matrix
    products, the convention of the papers and of
    ``torch.utils.flop_counter.FlopCounterMode`` (which reports 2 FLOPs each).
    """

    params: int = 0
    macs: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs)


@dataclass(frozen=True)
class Window:
    """How far one output position reaches into the input, per spatial axis.

    ``extent`` is the span of input positions (``dilation * (k - 1) + 1`` for
    a convolution) and ``stride`` the step between neighbouring outputs
    (fractional for upsampling). Receptive fields compose windows along paths.
    """

    extent: tuple[int, int] = (1, 1)
    stride: tuple[int | Fraction, int | Fraction] = (1, 1)


POINTWISE = Window()


@dataclass(frozen=True)
class Call:
    """A stateless lowering: ``fn(*inputs, **kwargs)`` in the generated code.

    With ``variadic=True`` the inputs are passed as one list, as ``torch.cat``
    expects. ``inplace`` names a tensor method that computes the same result
    into the first input (``"relu_"``, ``"add_"``); the lowering uses it where
    that is safe (see :mod:`nas.passes.lower`), as hand-written networks do with
    ``ReLU(inplace=True)`` and ``out += identity``.
    """

    fn: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    variadic: bool = False
    inplace: str | None = None


@dataclass(frozen=True)
class Example:
    """A configuration that the registry-wide contract tests exercise.

    Either ``params`` and ``inputs`` (one node fed by random tensors of those
    shapes) or ``source``, a whole IR YAML graph, for blocks whose inputs
    random tensors cannot provide (pooling indices).
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[Shape, ...] = ()
    source: str | None = None


Fusion = Literal["head", "norm", "activation"]
"""A block's role in a fused chain: see :attr:`Block.fusion`."""


class Block:
    """A block type. Subclass it, set the class attributes, register it.

    Class attributes:
        name: the registry name, ``snake_case``.
        params: the :class:`Param` declarations, in canonical order.
        arity: ``(min, max)`` number of inputs; ``max`` may be ``None``.
        outputs: the names of the outputs; the first is the default one.
        commutative: input order does not change the result (``add``), so the
            canonical hash ignores it.
        keeps_output: the backward pass reads this block's output (``relu``,
            ``sigmoid``), so a reader may not overwrite it in place. Blocks
            whose gradient needs only their inputs (convolutions, batch norm,
            sums) set it to ``False``.
        penalty: as a classifier's output, the smallest value wins (LeNet-5's
            RBF distances), so class scores are its negation.
        rank: the number of dimensions every input must have (3 for feature
            maps ``(C, H, W)``, 1 for flat vectors); ``None`` accepts any.
            Checked before :meth:`infer`, which may then unpack freely.
        fusion: the block's part in the chains that inference runtimes fuse
            into one kernel (ONNX Runtime, TensorRT): ``"head"`` starts one
            (a convolution or linear layer), ``"norm"`` is folded into the
            head's weights (batch norm: an affine map per channel at
            inference; not LRN or layer norm, whose statistics come from the
            data), ``"activation"`` is an element-wise function applied to
            the result; ``None`` (the default) runs on its own. Latency
            prediction times a head with the norm and activation that follow
            it as one unit (:mod:`nas.passes.fusion`), so a new activation
            block fuses by declaring ``fusion = "activation"``.
        placeholder: the block is a graph input, lowered to an argument of
            ``forward`` rather than a module (torch.fx's ``placeholder``);
            only ``input`` sets it.
        examples: configurations exercised by the contract tests.
    """

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    arity: ClassVar[tuple[int, int | None]] = (1, 1)
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    commutative: ClassVar[bool] = False
    composite: ClassVar[bool] = False
    keeps_output: ClassVar[bool] = True
    penalty: ClassVar[bool] = False
    rank: ClassVar[int | None] = None
    fusion: ClassVar[Fusion | None] = None
    placeholder: ClassVar[bool] = False
    examples: ClassVar[tuple[Example, ...]] = ()

    _by_name: ClassVar[dict[str, Param]]

    def output_names(self, p: Params) -> tuple[str, ...]:
        """Names of the outputs for these parameters (some are optional)."""
        return self.outputs

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape | tuple[Shape, ...]:
        """The output shape (a tuple of shapes for several outputs).

        Raise :class:`nas.ir.errors.ShapeError` when the inputs do not fit; the
        caller adds the node, its producers and their shapes to the message.
        """
        raise NotImplementedError

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        """Parameters and MACs; free by default."""
        return Cost()

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        """Spatial window for receptive fields; pointwise by default."""
        return POINTWISE

    def lower(self, p: Params, ins: Sequence[Shape]) -> torch.nn.Module | Call:
        """A fresh ``nn.Module`` (called with the inputs) or a :class:`Call`."""
        raise NotImplementedError

    # -- parameters -------------------------------------------------------

    def check_params(self, raw: Mapping[str, Any]) -> Params:
        """Validate and canonicalise raw parameters, filling in defaults."""
        unknown = [k for k in raw if k not in self._by_name]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(str(key), list(self._by_name), n=1)
            known = ", ".join(self._by_name) or "none"
            hint = f"did you mean '{close[0]}'?" if close else f"parameters of {self.name}: {known}"
            raise ParamError(f"unknown parameter for block '{self.name}'", field=str(key), hint=hint)
        values = {}
        for param in self.params:
            if param.name in raw:
                values[param.name] = param.check(raw[param.name])
            elif param.default is REQUIRED:
                raise ParamError(
                    f"block '{self.name}' needs this parameter",
                    field=param.name,
                    hint=f"add '{param.name}: ...' ({param.kind_words()})",
                )
            else:
                values[param.name] = param.default
        return Params(values)

    def explicit_params(self, p: Params) -> dict[str, Any]:
        """The parameters that differ from their defaults, in declared order."""
        return {k: v for k, v in p.items() if v != self._by_name[k].default}

    def __repr__(self) -> str:
        return f"<block {self.name}>"


class Composite(Block):
    """A block defined as a graph of smaller blocks.

    Subclasses implement :meth:`expand`; shape, cost, window and lowering all
    come from the expanded graph, so one definition serves every pass.
    """

    composite: ClassVar[bool] = True

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        """The graph this block stands for, with one input node per input."""
        raise NotImplementedError


# --------------------------------------------------------------------------
# The registry.

_REGISTRY: dict[str, Block] = {}


def register(cls: type[Block]) -> type[Block]:
    """Class decorator: add a block type to the registry under ``cls.name``."""
    name = cls.name
    if not name.isidentifier() or keyword.iskeyword(name) or name != name.lower():
        raise ValueError(f"block name {name!r} must be a lower-case identifier")
    if name in _REGISTRY:
        raise ValueError(f"block {name!r} is registered twice")
    names = [p.name for p in cls.params]
    clash = RESERVED_NAMES.intersection(names)
    if clash or len(set(names)) != len(names):
        raise ValueError(f"block {name!r}: reserved or repeated parameter names {sorted(clash)}")
    if cls.fusion is not None and (cls.fusion not in get_args(Fusion) or cls.composite):
        # A misspelt role would silently stop the block fusing; a composite is timed whole.
        raise ValueError(f"block {name!r}: fusion must be one of {get_args(Fusion)} on a primitive block, or None")
    cls._by_name = {p.name: p for p in cls.params}
    _REGISTRY[name] = cls()
    return cls


def get_block(name: str) -> Block:
    """The block type called ``name``; unknown names suggest the closest ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "run 'nas blocks' to list them"
        raise UnknownBlockError(f"unknown block type {name!r}", hint=hint) from None


def list_blocks(pattern: str = "*") -> list[str]:
    """Registered block names matching a shell-style pattern, sorted.

    >>> "conv2d" in list_blocks("conv*")
    True
    """
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))
