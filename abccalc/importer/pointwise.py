"""Chains of pointwise ops on one activation, kept lazy until a consumer needs a node.

``0.5·x·(1 + tanh(…))`` is one elementwise node (``gelu``: a Θ(1) nonlinearity, TP4 §3);
a chain of only multiplications by numbers is one ``scale`` whose value is recorded (the
model's own multiplier); ``x·rsqrt(mean(x²) + ε)`` is an ``rmsnorm``; ``x + b`` and
``x·g`` join a bias or a gain to x's node. A mixin of :class:`abccalc.importer.nodes.Nodes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from abccalc.graph.ops import OPS, SCALE
from abccalc.importer.axes import ACTIVATIONS
from abccalc.importer.trace import Event, T


@dataclass
class Lazy:
    """A pointwise function of activation tensor ``base``, not emitted yet: the ops applied
    and the product of constant factors at each width (None once it is nonlinear);
    ``stat`` = (x, over atoms) when it is x's mean square (an RMSNorm being written out)."""

    base: int
    ops: tuple[str, ...] = ()
    factor: tuple[float, ...] | None = None
    stat: tuple[int, tuple[int, ...]] | None = None
    ev: Event | None = None  # the last op of the chain (its module and source line)


class Pointwise:
    """Pass 2's pointwise ops (see the module doc); ``Nodes`` gives ``val``, ``need``,
    ``add``, ``miss``, ``const``, ``param`` and ``dims``."""

    def lazy(self, x: T) -> Lazy:
        v = self.val.get(x.i)
        if isinstance(v, Lazy):
            return v
        return Lazy(x.i, (), tuple(1.0 for _ in self.traces))

    def materialize(self, i: int, z: Lazy) -> str:
        self.val[i] = None  # no recursion through itself
        base = self.need(z.base)
        here, self._ev = self._ev, z.ev or self._ev
        try:
            return self._materialize(i, z, base)
        finally:
            self._ev = here

    def _materialize(self, i: int, z: Lazy, base: str) -> str:
        if z.stat is not None:
            self.miss("mean", "a mean square used outside an RMSNorm")
            self.val[i] = base
            return base
        if z.factor is not None:
            if all(abs(f) == 1 for f in z.factor):
                self.val[i] = base
                return base
            recorded = next((c for c in self.constants if c.node == base), None)
            if recorded is not None and recorded.what.startswith("a matmul"):
                # (q·kᵀ)·s: the model's multiplier of that contraction, recorded on it
                recorded.values = tuple(v * f for v, f in zip(recorded.values, z.factor,
                                                              strict=True))
                recorded.what = "a matmul of two activations, times a constant"
                self.val[i] = base
                return base
            name = self.add(SCALE.name, (base,), self.node_of[base].dims, kind=SCALE.name,
                            value=float(z.factor[0]))
            self.const(name, z.factor, "a constant multiplier (mul/div by a number)")
        else:
            acts = [o for o in z.ops if o in ACTIVATIONS]
            product = "product" in z.ops
            if len(set(acts)) == 1 and not product:
                op = acts[0]
            elif product and ("tanh" in z.ops or "erf" in z.ops):
                op = "gelu"
            elif product and "sigmoid" in z.ops:
                op = "silu"
            else:
                op = "identity"
            name = self.add(op, (base,), self.node_of[base].dims, kind=op)
        self.val[i] = name
        return name

    def unary(self, k: int, ev: Event) -> None:
        x = ev.args[0]
        if self.param(x):
            self.miss(ev.aten, f"parameter '{self.param(x)}' transformed before use")
            self.val[ev.outs[0]] = self.val[x.i]
            return
        z = self.lazy(x)
        factor = z.factor
        if ev.aten != "neg":
            factor = None
        elif factor is not None:
            factor = tuple(-f for f in factor)
        stat = z.stat if ev.aten == "rsqrt" else None
        ops = (*z.ops, "rsqrt_stat" if stat else ev.aten)
        if ev.aten == "pow" and not z.ops and ev.args[1] == 2:
            ops = ("square",)
        self.val[ev.outs[0]] = Lazy(z.base, ops, factor, stat, ev)

    def binary(self, k: int, ev: Event) -> None:
        aten, a = ev.aten, ev.args
        out = ev.outs[0]
        live = [x for x in a if self.live(x)]
        if aten == "where" or aten == "masked_fill":
            live = live[:1]
        params = [x for x in live if self.param(x)]
        acts = [x for x in live if not self.param(x)]
        if len(live) == 1 and acts:
            self._with_constant(k, ev, acts[0])
            return
        if len(live) == 1:
            self.miss(aten, f"parameter '{self.param(live[0])}' transformed before use")
            self.val[out] = self.val[live[0].i]
            return
        if not acts:
            self.miss(aten, "a product of parameters")
            return
        if params:
            self._with_param(ev, acts[0], params[0])
            return
        u, v = acts[:2]
        zu, zv = self.lazy(u), self.lazy(v)
        if aten == "mul":
            for z, other in ((zu, zv), (zv, zu)):
                if z.stat and z.ops[-1:] == ("rsqrt_stat",) and z.stat[0] == other.base:
                    xi = z.stat[0]
                    self.val[out] = self.add("rmsnorm", (self.need(xi),), self.dims(xi),
                                             kind="rmsnorm", over=z.stat[1])
                    return
        if zu.base == zv.base and not zu.stat and not zv.stat:
            self.val[out] = Lazy(zu.base, (*zu.ops, *zv.ops, "product"), ev=ev)
            return
        nu, nv = self.need(u.i), self.need(v.i)
        if aten in ("add", "sub", "rsub"):
            if sorted(self.node_of[nu].dims) != sorted(self.node_of[nv].dims):
                self.miss(aten, "a sum of activations of different dims (broadcast)")
                self.val[out] = nu
                return
            self.val[out] = self.add("add", (nu, nv), self.dims(out), kind="add")
        elif aten == "mul":
            self.val[out] = self.add("multiply", (nu, nv), self.dims(out), kind="multiply")
        else:
            self.miss(aten, "a quotient or comparison of two activations")
            self.val[out] = nu

    def _with_constant(self, k: int, ev: Event, x: T) -> None:
        """x op (a number or a constant tensor): a factor, a shift or a nonlinear step."""
        aten, a = ev.aten, ev.args
        z = self.lazy(x)
        pos = next(j for j, y in enumerate(a) if isinstance(y, T) and y.i == x.i)
        other = a[1 - pos] if len(a) > 1 and pos < 2 else None
        numbers = None
        if isinstance(other, int | float) and not isinstance(other, bool):
            numbers = tuple(self.traces[w].events[k].args[1 - pos] for w in
                            range(len(self.traces)))
        if numbers is not None and z.factor is None and aten in ("mul", "div") and \
                len(set(numbers)) > 1:  # a width-dependent multiplier after a nonlinearity
            self.need(x.i)
            z = Lazy(x.i, (), tuple(1.0 for _ in self.traces))
        factor = z.factor
        stat = z.stat if aten == "add" else None
        if aten == "mul" and numbers is not None:
            factor = factor and tuple(f * n for f, n in zip(factor, numbers, strict=True))
        elif aten == "div" and numbers is not None and pos == 0:
            factor = factor and tuple(f / n for f, n in zip(factor, numbers, strict=True))
        elif aten in ("add", "sub") or (aten == "rsub" and factor is not None):
            if aten == "rsub":
                factor = tuple(-f for f in factor)
        else:
            if isinstance(other, T) and aten in ("mul", "div") and \
                    all(v == 1 for v in self.t0.shapes[other.i]):
                self.miss(aten, "a multiplier held in a tensor (its value is not visible on "
                          "the meta device)")
            factor = None
        self.val[ev.outs[0]] = Lazy(z.base, (*z.ops, aten), factor, stat, ev)

    def _with_param(self, ev: Event, x: T, p: T) -> None:
        """x + b (a bias) or x * g (a gain), joined to x's node when it has none."""
        out = ev.outs[0]
        pname = self.param(p)
        xn = self.need(x.i)
        rec = self.node_of[xn]
        patoms = set(self.dims(p.i))
        unit = OPS[rec.op]
        if ev.aten == "add" and "bias" in unit.fields and "in_dims" in unit.fields and \
                "bias" not in rec.kw and \
                patoms == set(rec.dims) - set(self.node_of[rec.inputs[0]].dims):
            rec.kw["bias"] = pname
            self.val[out] = xn
            return
        if ev.aten == "mul" and "gain" in unit.fields and "gain" not in rec.kw \
                and patoms == set(rec.kw["over"]):
            rec.kw["gain"] = pname
            self.val[out] = xn
            return
        pn = self.need(p.i)
        if ev.aten in ("add", "sub"):
            self.val[out] = self.add("add", (xn, pn), self.dims(out), kind="add")
        elif ev.aten == "mul":
            self.val[out] = self.add("multiply", (xn, pn), self.dims(out), kind="multiply")
        else:
            self.miss(ev.aten, f"parameter '{pname}' used in a {ev.aten}")
            self.val[out] = xn
