"""Record the shared numpy functions once, replay them fast: the exported selector's forward.

The learned controller's prior and features are written once, for numpy and torch
(:func:`~adascale_rl.environment.observation.decode_planning`, :mod:`adascale_rl.policies.planning`
over :mod:`adascale_rl.device.model`). Called with numpy on one observation they run about
300 operations on arrays of a few elements, and numpy's overhead per call (~0.3 us) makes
that ~300 us, six times the selector's budget.

:func:`trace` calls such a function once, with a recording array namespace and a symbolic
input, on an example observation. The recorded computation is then

* constant-folded: whatever does not depend on the observation (the catalog's constants,
  the reward's weights) is computed once, in float64, while tracing;
* deduplicated: an operation on the same operands is computed once (the prior's keep and
  load outcomes share their contention, for instance);
* stripped of exact identities (``x * 1``, ``x / 1``, ``x + (-0.0)``, ``x - 0``), with
  negations moved onto one-element operands (exact) and constant factors of an array
  multiplied together first (``(X * c) * s`` as ``X * (c * s)``, within an ulp of float64),
  and of everything the outputs do not need;

and compiled (:mod:`adascale_rl.runtime.codegen`) into one straight-line Python function
(:class:`Program`): values of one element are Python floats (``math``), every other value a
numpy ufunc writing into a buffer allocated once, isomorphic chains run together on two-row
buffers. The generated source holds only operator names and slot numbers;
every number (catalog, weights, normalisation) is handed to it as a named constant, never
as text, so nothing read from an exported folder becomes code (``torch.fx`` compiles its
graphs to Python in the same way).

Python floats raise where numpy returns inf or nan (``math.log(0)``, a division by zero,
an overflowing ``exp``). A call that raises falls back to the eager numpy function it was
traced from, so the result is always numpy's (:meth:`Program.__call__`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np


class TraceError(TypeError):
    """The traced function did something the recorder cannot replay (data-dependent control flow,
    fancy indexing, an operation it does not know)."""


# name: (numpy function, scalar Python expression); operands are {0}, {1}, {2}
_BINARY = {
    "add": (np.add, "({0} + {1})"),
    "sub": (np.subtract, "({0} - {1})"),
    "mul": (np.multiply, "({0} * {1})"),
    "div": (np.divide, "({0} / {1})"),
    "pow": (np.power, "_pow({0}, {1})"),
    "gt": (np.greater, "({0} > {1})"),
    "ge": (np.greater_equal, "({0} >= {1})"),
    "lt": (np.less, "({0} < {1})"),
    "le": (np.less_equal, "({0} <= {1})"),
    # numpy's nan-propagating minimum and maximum
    "minimum": (np.minimum, "({0} if ({0} <= {1} or {0} != {0}) else {1})"),
    "maximum": (np.maximum, "({0} if ({0} >= {1} or {0} != {0}) else {1})"),
}
_UNARY = {
    "neg": (np.negative, "(-{0})"),
    "exp": (np.exp, "_exp({0})"),
    "log": (np.log, "_log({0})"),
    "log2": (np.log2, "_log2({0})"),
    "sqrt": (np.sqrt, "_sqrt({0})"),
    "abs": (np.abs, "abs({0})"),
    "sign": (np.sign, "(1.0 if {0} > 0.0 else -1.0 if {0} < 0.0 else {0})"),
    "f32": (lambda x: np.asarray(x, dtype=np.float32).astype(np.float64), "_f32({0})"),
}
_UFUNC_NAMES = {"add": "_add", "sub": "_subtract", "mul": "_multiply", "div": "_divide", "pow": "_power",
                "gt": "_greater", "ge": "_greater_equal", "lt": "_less", "le": "_less_equal", "minimum": "_minimum",
                "maximum": "_maximum", "neg": "_negative", "exp": "_vexp", "log": "_vlog", "log2": "_vlog2",
                "sqrt": "_vsqrt", "abs": "_absolute", "sign": "_vsign"}
_RUNTIME = {
    "_pow": math.pow, "_exp": math.exp, "_log": math.log, "_log2": math.log2, "_sqrt": math.sqrt,
    "_f32": lambda x: float(np.float32(x)), "_copyto": np.copyto, "_sum": np.add.reduce,
    "_add": np.add, "_subtract": np.subtract, "_multiply": np.multiply, "_divide": np.divide, "_power": np.power,
    "_greater": np.greater, "_greater_equal": np.greater_equal, "_less": np.less, "_less_equal": np.less_equal,
    "_minimum": np.minimum, "_maximum": np.maximum, "_negative": np.negative, "_vexp": np.exp, "_vlog": np.log,
    "_vlog2": np.log2, "_vsqrt": np.sqrt, "_absolute": np.absolute, "_vsign": np.sign,
}


class Sym:
    """A value computed from the traced input; arithmetic on it is recorded."""

    __slots__ = ("tape", "id", "value")
    __array_ufunc__ = None  # numpy hands ``array <op> Sym`` to our reflected operators

    def __init__(self, tape: "Tape", id: int, value: np.ndarray):
        self.tape, self.id, self.value = tape, id, value

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def __add__(self, o): return self.tape.op("add", self, o)
    def __radd__(self, o): return self.tape.op("add", o, self)
    def __sub__(self, o): return self.tape.op("sub", self, o)
    def __rsub__(self, o): return self.tape.op("sub", o, self)
    def __mul__(self, o): return self.tape.op("mul", self, o)
    def __rmul__(self, o): return self.tape.op("mul", o, self)
    def __truediv__(self, o): return self.tape.op("div", self, o)
    def __rtruediv__(self, o): return self.tape.op("div", o, self)
    def __pow__(self, o): return self.tape.op("pow", self, o)
    def __rpow__(self, o): return self.tape.op("pow", o, self)
    def __neg__(self): return self.tape.op("neg", self)
    def __gt__(self, o): return self.tape.op("gt", self, o)
    def __ge__(self, o): return self.tape.op("ge", self, o)
    def __lt__(self, o): return self.tape.op("lt", self, o)
    def __le__(self, o): return self.tape.op("le", self, o)
    def __getitem__(self, key): return self.tape.getitem(self, key)

    def __bool__(self):
        raise TraceError("the traced function branches on a value computed from the input; "
                         "use xp.where instead of if")

    def __len__(self):
        return len(self.value)


def _const_key(c: Any) -> tuple:
    if isinstance(c, np.ndarray):
        return ("a", c.dtype.str, c.shape, c.tobytes())
    return ("s", type(c).__name__, repr(c))


def _is_scalar_const(c: Any, value: float) -> bool:
    """``c`` is a plain number (or a 0-d/1-element array) equal to ``value``, sign of zero included."""
    if isinstance(c, (bool, np.bool_)) or isinstance(c, Sym):
        return False
    try:
        a = np.asarray(c)
    except Exception:  # pragma: no cover - not a number
        return False
    if a.size != 1 or a.dtype.kind != "f" and not isinstance(c, (int, float)):
        return False
    x = float(a.reshape(()))
    return x == value and math.copysign(1.0, x) == math.copysign(1.0, value)


class Tape:
    """The recorded operations: ``nodes[i] = (op, args)``; an argument is a :class:`Sym` or a constant."""

    def __init__(self):
        self.nodes: list[tuple[str, tuple]] = []
        self.syms: list[Sym] = []
        self._memo: dict[tuple, Any] = {}

    def _new(self, op: str, args: tuple, value: np.ndarray) -> Sym:
        key = (op,) + tuple(("n", a.id) if isinstance(a, Sym) else _const_key(a) for a in args)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        s = Sym(self, len(self.nodes), np.asarray(value))
        self.nodes.append((op, args))
        self.syms.append(s)
        self._memo[key] = s
        return s

    def input(self, value: np.ndarray) -> Sym:
        return self._new("input", (), np.array(value, dtype=np.float64))

    def op(self, op: str, *args):
        if not any(isinstance(a, Sym) for a in args):  # constant folding
            fn = _BINARY[op][0] if op in _BINARY else _UNARY[op][0] if op in _UNARY else _OTHER[op]
            return fn(*args)
        # exact identities: x * 1, 1 * x, x / 1, x + (-0.0), (-0.0) + x, x - 0.0
        floats = lambda a: isinstance(a, Sym) and a.value.dtype.kind == "f"  # noqa: E731
        if op in ("mul", "add") and len(args) == 2:
            one = 1.0 if op == "mul" else -0.0
            a, b = args
            if floats(a) and _is_scalar_const(b, one):
                return a
            if floats(b) and _is_scalar_const(a, one):
                return b
        if op in ("div", "sub") and floats(args[0]) and _is_scalar_const(args[1], 1.0 if op == "div" else 0.0):
            return args[0]
        rewritten = self._rewrite(op, args)
        if rewritten is not None:
            return rewritten
        vals = [a.value if isinstance(a, Sym) else a for a in args]
        fn = _BINARY[op][0] if op in _BINARY else _UNARY[op][0] if op in _UNARY else _OTHER[op]
        with np.errstate(all="ignore"):
            value = fn(*vals)
        return self._new(op, args, value)

    def _rewrite(self, op: str, args: tuple):
        """Fewer operations on arrays for the same value: a negation moved onto a one-element operand (exact),
        and one-element factors of an array multiplied together first (``(X * t) * s`` as ``X * (t * s)``:
        within an ulp of float64, and one array operation instead of two). None when no rule applies."""
        def of(a, *ops):
            return self.nodes[a.id] if isinstance(a, Sym) and self.nodes[a.id][0] in ops else None

        def one(a):
            return np.size(a.value if isinstance(a, Sym) else a) == 1 and not (
                isinstance(a, Sym) and a.value.dtype.kind != "f") and not isinstance(a, (bool, np.bool_))

        def array(a):
            return isinstance(a, Sym) and a.value.size > 1 and a.value.dtype.kind == "f"

        if op == "neg":
            inner = of(args[0], "mul", "div")
            if inner is not None:
                iop, (a, b) = inner
                if one(b):
                    return self.op(iop, a, self.op("neg", b))
                if one(a):
                    return self.op(iop, self.op("neg", a), b)
            return None
        if len(args) != 2:
            return None
        a, b = args
        if op in ("mul", "div") and one(b) and of(a, "neg") is not None:
            return self.op(op, self.nodes[a.id][1][0], self.op("neg", b))
        if op == "mul" and one(a) and of(b, "neg") is not None:
            return self.op(op, self.nodes[b.id][1][0], self.op("neg", a))
        if op == "add" and of(b, "neg") is not None:
            return self.op("sub", a, self.nodes[b.id][1][0])
        if op == "add" and of(a, "neg") is not None:
            return self.op("sub", b, self.nodes[a.id][1][0])
        if op == "sub" and of(b, "neg") is not None:
            return self.op("add", a, self.nodes[b.id][1][0])
        if op in ("mul", "div"):
            s, p = (a, b) if op == "mul" and one(a) else (b, a)
            if not one(s):
                return None
            inner = of(p, "mul", "div")
            if inner is None:
                return None
            iop, (x, y) = inner
            if iop == "mul" and one(x) and array(y):
                x, y = y, x
            if not (array(x) and one(y)) or isinstance(y, Sym):
                # only a constant inner factor: ``(X * s) * t`` with ``s`` computed keeps ``X * s``, a value the
                # packer may pair with ``X`` itself (the prior's slowed-down latency and the model's latency)
                return None
            # p = x iop y with y one element; p op s
            if iop == "mul":
                return self.op("mul", x, self.op(op, y, s))           # (x*y)*s, (x*y)/s
            if op == "mul":
                return self.op("mul", x, self.op("div", s, y))        # (x/y)*s
            return self.op("div", x, self.op("mul", y, s))            # (x/y)/s
        return None

    def getitem(self, src: Sym, key) -> Sym:
        if not (isinstance(key, tuple) and all(isinstance(k, (slice, int)) for k in key)):
            raise TraceError(f"only basic slicing of a traced value can be replayed, not {key!r}")
        return self._new("getitem", (src, key), src.value[key])


def _where(c, a, b):
    return np.where(c, a, b)


def _sum_last(x):
    return np.sum(x, axis=-1, keepdims=True)


def _concat_last(*xs):
    shape = np.broadcast_shapes(*(np.shape(x)[:-1] for x in xs))
    return np.concatenate([np.broadcast_to(x, shape + np.shape(x)[-1:]) for x in xs], axis=-1)


_OTHER: dict[str, Callable] = {"where": _where, "sum_last": _sum_last, "concat_last": _concat_last}


class RecordingNamespace:
    """The array namespace of :mod:`adascale_rl.device.model` (``namespace(...)``), recording onto a tape."""

    def __init__(self, tape: Tape):
        self.tape = tape

    def _u(self, name):
        return lambda x: self.tape.op(name, x)

    def __getattr__(self, name):
        if name in ("exp", "log", "log2", "abs", "sign", "sqrt"):
            return self._u(name)
        raise AttributeError(name)

    def minimum(self, a, b):
        return self.tape.op("minimum", a, b)

    def maximum(self, a, b):
        return self.tape.op("maximum", a, b)

    def where(self, c, a, b):
        return self.tape.op("where", c, a, b)

    def clip(self, x, lo=None, hi=None):
        # np.clip(x, lo, hi) is maximum then minimum (nan propagates through both)
        if lo is not None:
            x = self.maximum(x, lo)
        if hi is not None:
            x = self.minimum(x, hi)
        return x

    def sum_last(self, x):
        return self.tape.op("sum_last", x)

    def concat_last(self, xs):
        return self.tape.op("concat_last", *xs)

    def f32(self, x):
        """Round to float32 and back (what a float32 model input does to a value)."""
        return self.tape.op("f32", x)


class Program:
    """A traced function compiled to straight-line Python over floats and preallocated numpy buffers.

    ``program(obs)`` takes one observation (a 1-D array of the traced input's width) and
    returns the outputs: arrays of the traced shapes, which are the program's own buffers
    (overwritten by the next call; copy what you keep). Not thread-safe: one program per
    thread. ``source`` is the generated code, for reading.
    """

    def __init__(self, fn: Callable, example: np.ndarray, outputs: Sequence[Any], tape: Tape, input_sym: Sym,
                 pack: bool = True):
        self._eager = fn
        self.width = int(input_sym.shape[-1])
        self.out_shapes = [np.shape(o.value if isinstance(o, Sym) else o) for o in outputs]
        from adascale_rl.runtime.codegen import compile_tape

        self.source, ns = compile_tape(tape, input_sym, outputs, pack)
        self.operations = ns.pop("__operations__")
        code = compile(self.source, "<adascale_rl.runtime.tape>", "exec")
        exec(code, ns)  # the source holds operator names and slot numbers only (see the module doc)
        self._run = ns["run"]
        self.fallbacks = 0
        got = self(example)
        want = [np.asarray(o.value if isinstance(o, Sym) else o) for o in outputs]
        for g, w in zip(got, want):
            if not np.allclose(g, w, rtol=1e-12, atol=1e-12, equal_nan=True):
                raise TraceError("the compiled program disagrees with the traced function on the example")

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray, ...]:
        try:
            return self._run(obs)
        except (ArithmeticError, ValueError):
            # a Python float raised where numpy gives inf or nan: numpy's answer, from the eager function
            self.fallbacks += 1
            with np.errstate(all="ignore"):
                outs = self._eager(NUMPY, np.asarray(obs, dtype=np.float64).reshape(1, -1))
            return tuple(np.broadcast_to(np.asarray(o, dtype=np.float64), s) for o, s in zip(outs, self.out_shapes))


def _numpy_namespace():
    from adascale_rl.device.model import namespace

    ns = namespace(np.zeros(1))

    class _NS:
        def __getattr__(self, name):
            return getattr(ns, name)

        @staticmethod
        def f32(x):
            return np.asarray(x, dtype=np.float32).astype(np.float64)

    return _NS()


#: the numpy array namespace of :mod:`adascale_rl.device.model` plus ``f32``: what a traced function replays with
NUMPY = _numpy_namespace()


def trace(fn: Callable, example: np.ndarray, pack: bool = True) -> Program:
    """Compile ``fn(xp, obs)`` (``obs`` of shape ``(1, width)``; returns a tuple of arrays) for one observation.

    ``fn`` must compute with ``xp`` (the model's array namespace plus ``xp.f32``) and
    Python operators only; ``fn(numpy namespace, obs)`` is what the program replays.
    """
    tape = Tape()
    x = tape.input(np.asarray(example, dtype=np.float64).reshape(1, -1))
    outs = fn(RecordingNamespace(tape), x)
    return Program(fn, np.asarray(example).reshape(-1), tuple(outs), tape, x, pack)
