"""Compiling a tape (:mod:`adascale_rl.runtime.tape`) into straight-line Python over floats and numpy buffers.

One operation per line: values of one element are Python floats (``math``), every other
value is a numpy ufunc writing into a buffer allocated once (numpy's cost is per call,
~0.2-0.3 us on a few elements, not per element). Before writing the lines the compiler
packs *isomorphic chains*: two runs of the same operations on different values (the
slack's and the prior's contention, the two normal CDFs of a response-time mixture, the
keep and load outcomes) become one run on two-row buffers, found greedily from the
operands in which two otherwise identical operations differ ("superword-level
parallelism"). A ``where`` decided by one element names one of its branches instead of
copying it.

The source holds operator names and slot numbers only; constants are handed to it by name.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from adascale_rl.runtime.tape import _BINARY, _RUNTIME, _UFUNC_NAMES, _UNARY, Sym, Tape, TraceError, _const_key

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
        if a.size == 1 and vector_operand and shape is not None and int(np.prod(shape)) > 1:
            # a number in an operation on arrays, stored in the operation's shape: a ufunc on operands of one
            # shape takes numpy's trivial-loop path (~15 ns a call less than broadcasting a 0-d array)
            a = np.broadcast_to(a.reshape(()), shape)
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
        self.emit("X[...] = obs", 1)
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
            self.emit(f"w{i}[...] = {self.ref(args[0], True, shape)}")
            self.emit(f"{name}[...] = w{i}")
        else:
            self.emit(self.ufunc_call(op, [self.ref(a, True, shape) for a in args], name))

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
            self.emit(f"{out}[...] = {a} if {c} else {b}")
        else:
            self.emit(f"{out}[...] = {b}")
            self.emit(f"_copyto({out}, {a}, where={c})")

    def pack_operand(self, a0: Any, a1: Any, shape2: tuple) -> str:
        if self.argkey(a0) == self.argkey(a1):
            if isinstance(a0, Sym) and self.vector(a0.id):
                t = self._tiled.get(a0.id)
                if t is None:
                    t = self._tiled[a0.id] = f"t{a0.id}"
                    self.ns[t] = np.zeros(shape2, dtype=a0.value.dtype)
                    self.emit(f"{t}[...] = v{a0.id}")
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
            self.emit(self.ufunc_call(op, refs, f"p{p}"))

    def ufunc_call(self, op: str, operands: Sequence[str], out: str) -> str:
        # the output positionally (faster), except for minimum and maximum: numpy 2.4 deprecates it there, and the
        # warning machinery would cost a microsecond a call; their out= is a tuple made once (~20 ns less than a
        # bare array, which numpy wraps in one at every call)
        if op in ("minimum", "maximum"):
            if self.ns.get(f"o_{out}") is None:
                self.ns[f"o_{out}"] = (self.ns[out],)
            return f"{_UFUNC_NAMES[op]}({', '.join(operands)}, out=o_{out})"
        return f"{_UFUNC_NAMES[op]}({', '.join(operands)}, {out})"


def compile_tape(tape: Tape, x: Sym, outputs: Sequence[Any], pack: bool = True) -> tuple[str, dict]:
    """(the source of ``run(obs)``, the names it reads) for the outputs of a tape."""
    c = _Compiler(tape, x, outputs, pack)
    src = c.compile()
    c.ns["__operations__"] = c.operations
    return src, c.ns
