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
* stripped of exact identities (``x * 1``, ``x / 1``, ``x + (-0.0)``, ``x - 0``) and of
  everything the outputs do not need;

and compiled into one straight-line Python function (:class:`Program`): values of one
element are Python floats (``math``), every other value a numpy ufunc writing into a
buffer allocated once. The generated source holds only operator names and slot numbers;
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
        self.source, ns = _compile(tape, input_sym, outputs, pack)
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


# ------------------------------------------------------------------------------------------ compiler

_PACKABLE = (set(_BINARY) | set(_UNARY) | {"where"}) - {"f32"}


class _Plan:
    """Pairs of isomorphic operations to run as one operation on a two-row buffer (see :meth:`_Compiler.pack`)."""

    def __init__(self, seed: tuple[int, int]):
        self.seed = seed                     # the two values gathered into the rows of one buffer
        self.pairs: dict[int, int] = {}      # row-0 node -> row-1 node
        self.tiles: set[int] = set()         # one-row values a pair shares, copied to two rows once

    @property
    def gain(self) -> int:
        return len(self.pairs) - len(self.tiles)


class _Compiler:
    """Turns a tape into the source of ``run(obs)`` and the names it reads (buffers, constants)."""

    def __init__(self, tape: Tape, x: Sym, outputs: Sequence[Any], pack: bool = True):
        self.nodes, self.syms, self.x, self.outputs = tape.nodes, tape.syms, x, list(outputs)
        live: set[int] = set()
        stack = [o.id for o in self.outputs if isinstance(o, Sym)]
        while stack:
            i = stack.pop()
            if i not in live:
                live.add(i)
                stack.extend(a.id for a in self.nodes[i][1] if isinstance(a, Sym))
        self.order = sorted(live)  # tape order is a topological order
        self.users: dict[int, list[int]] = {i: [] for i in self.order}
        for i in self.order:
            for a in self.nodes[i][1]:
                if isinstance(a, Sym) and i not in self.users[a.id]:
                    self.users[a.id].append(i)
        self.ns: dict[str, Any] = dict(_RUNTIME)
        self.lines: list[str] = []
        self.operations = 0
        self._consts: dict[tuple, str] = {}
        self._zero_d: dict[int, str] = {}
        self._tiled: dict[int, str] = {}
        self.pack_of: dict[int, tuple[int, int]] = {}     # node -> (pack, row)
        self.packs: list[tuple[int, int]] = []            # pack -> (row-0 node, row-1 node)
        self.gather_of: dict[int, tuple[int, int]] = {}   # node -> (gather, row)
        self.gathers: list[tuple[int, int]] = []
        if pack:
            self.pack()

    # ---------------------------------------------------------------- what a node is
    def vector(self, i: int) -> bool:
        return self.syms[i].value.size > 1

    def packable(self, i: int) -> bool:
        v = self.syms[i].value
        return self.nodes[i][0] in _PACKABLE and v.size > 1 and v.ndim == 2 and v.shape[0] == 1

    def writes_own_buffer(self, i: int) -> bool:
        return self.vector(i) and self.nodes[i][0] not in ("input", "getitem")

    @staticmethod
    def argkey(a: Any) -> tuple:
        return ("n", a.id) if isinstance(a, Sym) else _const_key(a)

    # ---------------------------------------------------------------- superword packing
    def pack(self) -> None:
        """Find chains of isomorphic operations on different values (the slack's and the prior's contention,
        the two normal CDFs of a response-time mixture, the keep and load outcomes) and run each pair as one
        numpy call on a two-row buffer: numpy's cost is per call, not per element. Greedy: the seed whose
        chain saves the most calls first, while the packed graph stays acyclic."""
        anc: dict[int, int] = {}
        for i in self.order:
            bits = 0
            for a in self.nodes[i][1]:
                if isinstance(a, Sym):
                    bits |= anc[a.id] | (1 << a.id)
            anc[i] = bits
        self._anc = anc
        groups: dict[tuple, list[int]] = {}
        for i in self.order:
            if not self.packable(i):
                continue
            op, args = self.nodes[i]
            for k, a in enumerate(args):
                if isinstance(a, Sym) and self.vector(a.id):
                    key = (op, k, self.syms[i].value.shape,
                           tuple(None if j == k else self.argkey(b) for j, b in enumerate(args)))
                    groups.setdefault(key, []).append(i)
        # seeds: the operands in which two otherwise identical operations differ
        seeds = {(self.nodes[u][1][k[1]].id, self.nodes[w][1][k[1]].id)
                 for k, m in groups.items() for n, u in enumerate(m) for w in m[n + 1:]}
        candidates = sorted(seeds)
        while True:
            plans = [(c, p) for c, p in ((c, self._grow(*c)) for c in candidates) if p is not None and p.gain > 0]
            if not plans:
                return
            best_c, best = max(plans, key=lambda cp: cp[1].gain)
            if self._acyclic(best):
                self._commit(best)
            candidates = [c for c, _ in plans if c != best_c]

    def _free(self, i: int) -> bool:
        return i not in self.pack_of and i not in self.gather_of

    def _grow(self, a: int, b: int) -> _Plan | None:
        """The plan that gathers ``a`` and ``b`` into the rows of one buffer and pairs every chain of isomorphic
        operations that follows from them (None if they cannot be gathered)."""
        if a == b or not (self.writes_own_buffer(a) and self.writes_own_buffer(b) and self._free(a) and self._free(b)):
            return None
        if self.syms[a].value.shape != self.syms[b].value.shape:
            return None
        plan = _Plan((a, b))
        work = [(a, b)]
        while work:
            x0, x1 = work.pop()
            for c0 in self.users[x0]:
                for c1 in self.users[x1]:
                    if self._try_pair(plan, c0, c1):
                        work.append((c0, c1))
        return plan

    def _rows(self, plan: _Plan, a0: Any, a1: Any) -> bool:
        """Whether (a0, a1) is a two-row operand: a pair of this plan, a committed pack, or the seed."""
        if not (isinstance(a0, Sym) and isinstance(a1, Sym)):
            return False
        i, j = a0.id, a1.id
        if plan.pairs.get(i) == j or (i, j) == plan.seed:
            return True
        p0, p1 = self.pack_of.get(i), self.pack_of.get(j)
        g0, g1 = self.gather_of.get(i), self.gather_of.get(j)
        return (p0 is not None and p1 is not None and p0[0] == p1[0] and (p0[1], p1[1]) == (0, 1)) or (
            g0 is not None and g1 is not None and g0[0] == g1[0] and (g0[1], g1[1]) == (0, 1))

    def _try_pair(self, plan: _Plan, c0: int, c1: int) -> bool:
        if c0 == c1 or c0 in plan.pairs or c1 in plan.pairs or c0 in plan.pairs.values() or \
                c1 in plan.pairs.values() or c0 in plan.seed or c1 in plan.seed:
            return False
        if not (self.packable(c0) and self.packable(c1) and self._free(c0) and self._free(c1)):
            return False
        (op0, args0), (op1, args1) = self.nodes[c0], self.nodes[c1]
        if op0 != op1 or len(args0) != len(args1) or self.syms[c0].value.shape != self.syms[c1].value.shape \
                or self.syms[c0].value.dtype != self.syms[c1].value.dtype:
            return False
        if (self._anc[c0] >> c1) & 1 or (self._anc[c1] >> c0) & 1:
            return False
        tiles = set()
        for a0, a1 in zip(args0, args1):
            if self.argkey(a0) == self.argkey(a1):
                if isinstance(a0, Sym) and self.vector(a0.id):
                    tiles.add(a0.id)
                continue
            if self._rows(plan, a0, a1):
                continue
            if not isinstance(a0, Sym) and not isinstance(a1, Sym) and np.shape(a0) == np.shape(a1):
                continue  # two constants: stacked once
            return False
        plan.pairs[c0] = c1
        plan.tiles |= {t for t in tiles if t not in self._tiled_nodes()}
        return True

    def _tiled_nodes(self) -> set[int]:
        return getattr(self, "_tiles_committed", set())

    def _acyclic(self, plan: _Plan) -> bool:
        unit = {i: i for i in self.order}
        for r0, r1 in self.packs:
            unit[r1] = r0
        for r0, r1 in plan.pairs.items():
            unit[r1] = r0
        indeg: dict[int, int] = {}
        edges: dict[int, set[int]] = {}
        for i in self.order:
            for a in self.nodes[i][1]:
                if isinstance(a, Sym) and unit[a.id] != unit[i] and unit[i] not in edges.setdefault(unit[a.id], set()):
                    edges[unit[a.id]].add(unit[i])
                    indeg[unit[i]] = indeg.get(unit[i], 0) + 1
        ready = [u for u in set(unit.values()) if indeg.get(u, 0) == 0]
        seen = 0
        while ready:
            u = ready.pop()
            seen += 1
            for v in edges.get(u, ()):
                indeg[v] -= 1
                if indeg[v] == 0:
                    ready.append(v)
        return seen == len(set(unit.values()))

    def _commit(self, plan: _Plan) -> None:
        g = len(self.gathers)
        self.gathers.append(plan.seed)
        self.gather_of[plan.seed[0]] = (g, 0)
        self.gather_of[plan.seed[1]] = (g, 1)
        for r0, r1 in plan.pairs.items():
            p = len(self.packs)
            self.packs.append((r0, r1))
            self.pack_of[r0] = (p, 0)
            self.pack_of[r1] = (p, 1)
        self._tiles_committed = self._tiled_nodes() | plan.tiles

    # ---------------------------------------------------------------- code
    def const(self, c: Any, vector_operand: bool, shape: tuple | None = None) -> str:
        a = np.asarray(c)
        if a.size == 1:
            a = a.reshape(())
            if not vector_operand:
                obj: Any = bool(a) if a.dtype == np.bool_ else float(a)
                key: tuple = ("py", type(obj).__name__, repr(obj))
            else:
                obj = np.array(a, dtype=np.bool_ if a.dtype == np.bool_ else np.float64)
                key = ("0d",) + _const_key(obj)
        else:
            if shape is not None:  # stored in the operation's shape: numpy's broadcasting is slow on small arrays
                a = np.broadcast_to(a, np.broadcast_shapes(a.shape, shape))
            obj = np.ascontiguousarray(a, dtype=np.bool_ if a.dtype == np.bool_ else np.float64)
            key = ("arr",) + _const_key(obj)
        name = self._consts.get(key)
        if name is None:
            name = self._consts[key] = f"k{len(self._consts)}"
            self.ns[name] = obj
        return name

    def ref(self, a: Any, vector_op: bool, shape: tuple | None = None) -> str:
        """How an operand reads in the generated code."""
        if not isinstance(a, Sym):
            return self.const(a, vector_op, shape)
        if a.id == self.x.id:
            return "X"
        if self.vector(a.id):
            return f"v{a.id}"
        if not vector_op:
            return f"v{a.id}"
        z = self._zero_d.get(a.id)
        if z is None:  # a one-element value as a 0-d array: numpy is ~2x slower with a Python float operand
            z = self._zero_d[a.id] = f"z{a.id}"
            self.ns[z] = np.zeros((), dtype=self.syms[a.id].value.dtype)
            self.lines.append(f"    {z}[()] = v{a.id}")
        return z

    def emit(self, line: str, calls: int = 1) -> None:
        self.lines.append("    " + line)
        self.operations += calls

    def allocate(self) -> None:
        self.ns["X"] = np.zeros(self.x.shape, dtype=np.float64)
        for g, (a, b) in enumerate(self.gathers):
            v = self.syms[a].value
            buf = self.ns[f"g{g}"] = np.zeros((2,) + v.shape[1:], dtype=v.dtype)
            self.ns[f"v{a}"], self.ns[f"v{b}"] = buf[0:1], buf[1:2]
        for p, (a, b) in enumerate(self.packs):
            v = self.syms[a].value
            buf = self.ns[f"p{p}"] = np.zeros((2,) + v.shape[1:], dtype=v.dtype)
            self.ns[f"v{a}"], self.ns[f"v{b}"] = buf[0:1], buf[1:2]
        for i in self.order:
            if self.writes_own_buffer(i) and f"v{i}" not in self.ns:
                v = self.syms[i].value
                self.ns[f"v{i}"] = np.zeros(v.shape, dtype=v.dtype)

    def units(self) -> list[tuple[int, ...]]:
        """Nodes and packs in an order that computes every operand first."""
        unit = {i: (i,) for i in self.order}
        for r0, r1 in self.packs:
            unit[r0] = unit[r1] = (r0, r1)
        deps: dict[tuple, set] = {}
        for i in self.order:
            for a in self.nodes[i][1]:
                if isinstance(a, Sym) and unit[a.id] != unit[i]:
                    deps.setdefault(unit[i], set()).add(unit[a.id])
        done: set[tuple] = set()
        out: list[tuple[int, ...]] = []
        pending = sorted(set(unit.values()), key=max)
        while pending:
            if len(done) and not any(deps.get(u, set()) <= done for u in pending):  # pragma: no cover
                raise TraceError("packed operations depend on each other in a cycle")
            rest = []
            for u in pending:
                if deps.get(u, set()) <= done:
                    out.append(u)
                    done.add(u)
                else:
                    rest.append(u)
            pending = rest
        return out

    def compile(self) -> str:
        self.allocate()
        self.emit("_copyto(X, obs)", 1)
        self.emit("row = X[0].tolist()", 1)
        for u in self.units():
            if self.nodes[u[0]][0] == "input":
                continue
            if len(u) == 2:
                self.emit_pack(u)
            else:
                self.emit_node(u[0])
        rets = []
        for o in self.outputs:
            if not isinstance(o, Sym):
                rets.append(self.const(o, True))
            elif self.vector(o.id) or o.id == self.x.id:
                rets.append(self.ref(o, True))
            else:
                rets.append(f"_full({o.value.shape!r}, v{o.id})")
        self.ns["_full"] = np.full
        return "def run(obs):\n" + "\n".join(self.lines) + f"\n    return ({', '.join(rets)},)\n"

    def emit_node(self, i: int) -> None:
        op, args = self.nodes[i]
        s = self.syms[i]
        name = f"v{i}"
        if op == "getitem":
            src, key = args
            if s.value.size == 1:
                flat = int(np.arange(src.value.size).reshape(src.value.shape)[key].reshape(-1)[0])
                self.emit(f"{name} = row[{flat}]" if src.id == self.x.id else f"{name} = v{src.id}.item({flat})", 0)
            else:  # a view of the source's buffer, made once
                self.ns[name] = (self.ns["X"] if src.id == self.x.id else self.ns[f"v{src.id}"])[key]
            return
        if not self.vector(i) and all(not isinstance(a, Sym) or not self.vector(a.id) for a in args):
            r = [self.ref(a, False) for a in args]  # every operand one element: Python floats
            if op in _BINARY:
                expr = _BINARY[op][1].format(*r)
            elif op in _UNARY:
                expr = _UNARY[op][1].format(*r)
            elif op == "where":
                expr = f"({r[1]} if {r[0]} else {r[2]})"
            elif op == "sum_last":
                expr = r[0]
            else:  # pragma: no cover - concatenating one-element values
                raise TraceError(f"cannot compile a one-element {op}")
            self.emit(f"{name} = {expr}", 0)
            return
        if op == "sum_last":  # one row: Python's sum of its list is ~3x faster than numpy's reduce here
            self.emit(f"{name} = sum({self.ref(args[0], True)}.tolist()[0])")
            return
        shape = s.value.shape
        if op == "where":
            self.emit_where(name, args, shape, i)
        elif op == "concat_last":
            at = 0
            for a in args:
                v = a.value if isinstance(a, Sym) else np.asarray(a)
                w = v.shape[-1] if v.ndim else 1
                self.emit(f"{name}[..., {at}:{at + w}] = {self.ref(a, True, shape[:-1] + (w,))}")
                at += w
        elif op == "f32":
            self.ns[f"w{i}"] = np.zeros(shape, dtype=np.float32)
            self.emit(f"_copyto(w{i}, {self.ref(args[0], True, shape)}, casting='same_kind')")
            self.emit(f"_copyto({name}, w{i})")
        else:
            self.emit(_ufunc_call(op, [self.ref(a, True, shape) for a in args], name))

    def emit_where(self, out: str, args: Sequence[Any], shape: tuple, i: int) -> None:
        cond, a, b = args
        scalar = np.size(cond.value if isinstance(cond, Sym) else cond) == 1
        if scalar and self._aliasable([i], [a, b], shape):
            # one element decides: the result is one of the two arrays, bound by name, not copied
            ra, rb = (self.ref(v, True, shape) if isinstance(v, Sym) else self.const(np.broadcast_to(v, shape), True)
                      for v in (a, b))
            self.emit(f"{out} = {ra} if {self.ref(cond, False)} else {rb}", 0)
            return
        self.emit_select(out, self.ref(cond, not scalar, shape), self.ref(a, True, shape), self.ref(b, True, shape),
                         scalar)

    def _aliasable(self, members: Sequence[int], branches: Sequence[Any], shape: tuple) -> bool:
        """Whether a where's result may be a name for one of its branches instead of a buffer: the branches are
        arrays of its shape (or constants, stored in it), and nothing needs the result in a buffer of its own
        (a gather row, a view made once, a pack row read by an operation outside the pack, an output)."""
        for v in branches:
            if isinstance(v, Sym) and v.value.shape != shape:
                return False
        outputs = {o.id for o in self.outputs if isinstance(o, Sym)}
        for m in members:
            if m in self.gather_of or m in outputs:
                return False
            for u in self.users[m]:
                if self.nodes[u][0] == "getitem":
                    return False
                if len(members) == 2 and not self._reads_pack(u, members):
                    return False
        return True

    def _reads_pack(self, user: int, members: Sequence[int]) -> bool:
        """Whether ``user`` reads the pack ``members`` only as a whole (its own pack's operand is that pack)."""
        p = self.pack_of.get(user)
        if p is None:
            return False
        u0, u1 = self.packs[p[0]]
        for a0, a1 in zip(self.nodes[u0][1], self.nodes[u1][1]):
            ids = (a0.id if isinstance(a0, Sym) else None, a1.id if isinstance(a1, Sym) else None)
            if set(ids) & set(members) and ids != tuple(members):
                return False
        return True

    def emit_select(self, out: str, c: str, a: str, b: str, scalar_cond: bool) -> None:
        """``out = where(c, a, b)``: one copy when the condition is one element, two otherwise."""
        if scalar_cond:
            self.emit(f"_copyto({out}, {a} if {c} else {b})")
        else:
            self.emit(f"_copyto({out}, {b})")
            self.emit(f"_copyto({out}, {a}, where={c})")

    def pack_operand(self, a0: Any, a1: Any, shape2: tuple) -> str:
        if self.argkey(a0) == self.argkey(a1):
            if isinstance(a0, Sym) and self.vector(a0.id):
                t = self._tiled.get(a0.id)
                if t is None:
                    t = self._tiled[a0.id] = f"t{a0.id}"
                    self.ns[t] = np.zeros(shape2, dtype=a0.value.dtype)
                    self.emit(f"_copyto({t}, v{a0.id})")
                return t
            return self.ref(a0, True, shape2)
        if isinstance(a0, Sym):
            p = self.pack_of.get(a0.id)
            if p is not None and p[1] == 0 and self.pack_of.get(a1.id) == (p[0], 1):
                return f"p{p[0]}"
            g = self.gather_of[a0.id]
            assert g[1] == 0 and self.gather_of[a1.id] == (g[0], 1)
            return f"g{g[0]}"
        stacked = np.concatenate([np.broadcast_to(np.asarray(a0, dtype=np.float64), (1,) + shape2[1:]),
                                  np.broadcast_to(np.asarray(a1, dtype=np.float64), (1,) + shape2[1:])])
        return self.const(stacked, True, shape2)

    def emit_pack(self, unit: tuple[int, int]) -> None:
        r0, r1 = unit
        op, args0 = self.nodes[r0]
        args1 = self.nodes[r1][1]
        p = self.pack_of[r0][0]
        shape2 = (2,) + self.syms[r0].value.shape[1:]
        refs = [self.pack_operand(a0, a1, shape2) for a0, a1 in zip(args0, args1)]
        if op == "where":
            cond = args0[0]
            scalar = np.size(cond.value if isinstance(cond, Sym) else cond) == 1
            branches = list(refs[1:])
            for j, (b0, b1) in enumerate(zip(args0[1:], args1[1:])):
                if not isinstance(b0, Sym) and self.argkey(b0) == self.argkey(b1):  # a constant, in full
                    branches[j] = self.const(np.broadcast_to(np.asarray(b0, dtype=np.float64), shape2), True)
            if scalar and self._aliasable(unit, [], shape2) and all(
                    np.shape(self.ns.get(r)) == shape2 for r in branches):
                self.emit(f"p{p} = {branches[0]} if {self.ref(cond, False)} else {branches[1]}", 0)
                return
            self.emit_select(f"p{p}", self.ref(cond, False) if scalar else refs[0], refs[1], refs[2], scalar)
        else:
            self.emit(_ufunc_call(op, refs, f"p{p}"))


def _ufunc_call(op: str, operands: Sequence[str], out: str) -> str:
    # the output positionally (faster), except for minimum and maximum: numpy 2.4 deprecates it there, and the
    # warning machinery would cost a microsecond a call
    if op in ("minimum", "maximum"):
        return f"{_UFUNC_NAMES[op]}({', '.join(operands)}, out={out})"
    return f"{_UFUNC_NAMES[op]}({', '.join(operands)}, {out})"


def _compile(tape: Tape, x: Sym, outputs: Sequence[Any], pack: bool = True) -> tuple[str, dict]:
    c = _Compiler(tape, x, outputs, pack)
    src = c.compile()
    c.ns["__operations__"] = c.operations
    return src, c.ns
