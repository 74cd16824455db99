"""Pass 2 of the import: each traced event becomes op-unit nodes (see
:mod:`abccalc.importer.axes` for the mapping table). Fields hold atoms where the graph
wants dims; :mod:`abccalc.importer.load` names them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from abccalc.graph.names import name_error
from abccalc.graph.ops import CONTRACT, SOFTMAX
from abccalc.importer.axes import BINARY, PERMUTES, RECURRENT, SAME, SOFTMAXES, UNARY, VIEWS, Axes
from abccalc.importer.imported import Unseen
from abccalc.importer.pointwise import Lazy, Pointwise
from abccalc.importer.trace import SDPA, Event, T, Trace

ALIASES = VIEWS | PERMUTES | SAME | {"unsqueeze", "squeeze", "expand"}


@dataclass
class NodeRec:
    """A node under construction."""

    name: str
    op: str
    inputs: tuple[str, ...]
    dims: tuple[int, ...]
    module: str
    source: str
    kw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParamCat:
    """Parameters ``names`` (tensor numbers ``ins``, each a parameter itself, not a view)
    concatenated into tensor ``out`` along the atom ``along`` (tensor axis ``axis``), each
    contributing its ``parts`` atom."""

    ins: tuple[int, ...]
    names: tuple[str, ...]
    out: int
    along: int
    axis: int
    parts: tuple[int, ...]


@dataclass
class Const:
    """A constant the model applies at a node (values at each width)."""

    node: str
    values: tuple[float, ...]
    what: str
    module: str
    source: str


def _segment(seg: str, first: bool) -> str:
    fixed = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in seg)
    fixed = fixed.lstrip("_") or "m"
    if first and fixed[0].isdigit():
        fixed = f"m{fixed}"
    if name_error(fixed if first else f"a.{fixed}", module=True):
        fixed = f"{fixed}_m"
    return fixed


def node_base(module: str) -> str:
    """A module path as a node-name prefix (segments made names; docs/spec.md §1.1)."""
    segs = [s for s in module.split(".") if s]
    return ".".join(_segment(s, i == 0) for i, s in enumerate(segs))


class Nodes(Pointwise, Axes):
    """Pass 2: ``run()`` fills ``nodes``, ``constants`` and ``unseen``."""

    def __init__(self, traces: list[Trace]) -> None:
        super().__init__(traces)
        self.val: dict[int, Any] = {}  # tensor -> node name | ("param", name) | Lazy
        self.nodes: list[NodeRec] = []
        self.node_of: dict[str, NodeRec] = {}
        self.unseen: list[Unseen] = []
        self.constants: list[Const] = []
        self._names: set[str] = set()
        self._param_nodes: dict[str, str] = {}
        self._ev: Event | None = None

    # -- helpers -----------------------------------------------------------------------------
    def dims(self, i: int) -> tuple[int, ...]:
        batch = {self.atoms.find(b) for b in self.atoms.batch}
        return tuple(a for g in self.g(i) for a in self.atoms.flat(g) if a not in batch)

    def flat(self, g) -> tuple[int, ...]:
        batch = {self.atoms.find(b) for b in self.atoms.batch}
        return tuple(a for a in self.atoms.flat(g) if a not in batch)

    def fresh(self, base: str, kind: str, main: bool = False) -> str:
        base, kind = node_base(base), node_base(kind) or "node"
        name = base if main and base and base not in self._names else \
            f"{base}.{kind}" if base else kind
        stem, n = name, 2
        while name in self._names:
            name, n = f"{stem}_{n}", n + 1
        self._names.add(name)
        return name

    def add(self, op: str, inputs: tuple[str, ...], dims: tuple[int, ...], kind: str = "",
            main: bool = False, **kw: Any) -> str:
        ev = self._ev
        module, source = (ev.module, ev.source) if ev else ("", "")
        name = self.fresh(module, kind or op, main)
        rec = NodeRec(name, op, inputs, dims, module, source,
                      {k: v for k, v in kw.items() if v is not None})
        self.nodes.append(rec)
        self.node_of[name] = rec
        return name

    def miss(self, aten: str, reason: str) -> None:
        ev = self._ev
        where = ev.module if ev and ev.module else "<model>"
        src = f" ({ev.source})" if ev and ev.source else ""
        self.unseen.append(Unseen(where, aten, reason + src))

    def live(self, x: Any) -> bool:
        return isinstance(x, T) and (x.i in self.val or self.t0.kinds[x.i] in ("input",
                                                                                "param"))

    def param(self, x: Any) -> str | None:
        v = self.val.get(x.i) if isinstance(x, T) else None
        return v[1] if isinstance(v, tuple) and v[0] == "param" else None

    def need(self, i: int) -> str:
        """The node holding activation ``i`` (a lazy chain emitted, a parameter used as an
        activation given a ``param`` node, a constant index tensor an ``input`` node, a
        split sliced dim a ``reshape``). Dims made by broadcasting (keys repeated over a
        query group) are copies: the node without them holds the coordinates."""
        v = self.val.get(i)
        if isinstance(v, Lazy):
            name = self.materialize(i, v)
        elif isinstance(v, ParamCat):  # read as a tensor: one concat, made once
            name = self.val.get(v.out)
            if not isinstance(name, str):
                ins = tuple(self.need(x) for x in v.ins)
                name = self.add("concat", ins, self.dims(v.out), along=v.along)
                self.val[v.out] = name
        elif isinstance(v, tuple):
            name = self._param_nodes.get(v[1])
            if name is None:
                name = self.add("param", (), self.dims(i), kind="param", weight=v[1])
                self._param_nodes[v[1]] = name
        elif v is None:
            kind = "input" if self.t0.kinds[i] == "input" else "index"
            name = self.add("input", (), self.dims(i),
                            kind=self.t0.names[i] or kind)
        else:
            name = v
        have = self.node_of[name].dims
        copies = {self.atoms.find(a) for a in self.atoms.broadcast}
        want = tuple(a for a in self.dims(i) if a in have or a not in copies)
        if sorted(have) != sorted(want):
            name = self.add("reshape", (name,), want, kind="reshape")
        self.val[i] = name
        return name

    def const(self, node: str, values: tuple[float, ...], what: str) -> None:
        ev = self._ev
        self.constants.append(Const(node, tuple(float(v) for v in values), what,
                                    ev.module if ev else "", ev.source if ev else ""))

    # -- pass 2 ----------------------------------------------------------------------------
    def run(self) -> None:
        self.axes()
        for i, kind in enumerate(self.t0.kinds):
            if kind == "param":
                self.val[i] = ("param", self.t0.names[i])
        for i, kind in enumerate(self.t0.kinds):
            if kind == "input":
                self.val[i] = self.add("input", (), self.dims(i), kind=self.t0.names[i],
                                       main=True)
        for k, ev in enumerate(self.t0.events):
            self._ev = ev
            bad = self.info.get(k, {}).get("bad")
            if bad:
                self.miss(ev.aten, bad)
                self._alias(ev)
                continue
            self.emit(k, ev)
        self._ev = None
        out = self.t0.output
        if out is None or out not in self.val:
            self.unseen.append(Unseen("<model>", "output", "the model returns no tensor "
                                      "computed from its inputs"))
            return
        self.add("output", (self.need(out),), self.dims(out), kind="output")

    def _alias(self, ev: Event) -> None:
        src = next((x for x in ev.args if self.live(x)), None)
        if src is None:
            src = next((x for x in ev.kwargs.values() if self.live(x)), None)
        if src is not None:
            for o in ev.outs[:1]:
                self.val[o] = self.val.get(src.i)

    def emit(self, k: int, ev: Event) -> None:
        aten, a = ev.aten, ev.args
        if aten in ALIASES:
            src = a[0]
            for o in ev.outs[:1]:
                self.val[o] = self.val.get(src.i)
        elif aten in UNARY:
            self.unary(k, ev)
        elif aten in BINARY:
            self.binary(k, ev)
        elif aten in ("mm", "addmm", "bmm", "baddbmm"):
            self.matmul(k, ev)
        elif aten == "convolution":
            self.conv(k, ev)
        elif aten == "embedding":
            w, ids = a[0], a[1].i
            vocab = self.atoms.flat(self.g(w.i)[0])
            self.val[ev.outs[0]] = self.add("embedding", (self.need(ids),),
                                            self.dims(ev.outs[0]), main=True,
                                            weight=self.param(w), vocab=vocab[0])
        elif aten == "native_layer_norm":
            n = len(a[1])
            x = a[0].i
            over = tuple(b for g in self.g(x)[-n:] for b in self.flat(g))
            self.val[ev.outs[0]] = self.add("layernorm", (self.need(x),), self.dims(x),
                                            main=True, over=over, gain=self.param(a[2]),
                                            bias=self.param(a[3]) if len(a) > 3 else None)
        elif aten in SOFTMAXES:
            x = a[0].i
            over = self.flat(self.g(x)[a[1] % len(self.g(x))])
            self.val[ev.outs[0]] = self.add(SOFTMAX.name, (self.need(x),), self.dims(x),
                                            over=over)
        elif aten in ("mean", "sum"):
            self.reduce(k, ev)
        elif aten in ("split", "split_with_sizes", "slice", "select", "narrow", "unbind"):
            self.cut(k, ev)
        elif aten == "cat" and len(a[0]) > 1 and all(
                self.param(x) and self.t0.kinds[x.i] == "param" for x in a[0]):
            info = self.info[k]  # parameters stacked, read whole by a matmul (or not)
            axis = a[1] if len(a) > 1 else ev.kwargs.get("dim", 0)
            self.val[ev.outs[0]] = ParamCat(tuple(x.i for x in a[0]),
                                            tuple(self.param(x) for x in a[0]), ev.outs[0],
                                            self.atoms.find(info["along"]),
                                            axis % len(self.g(a[0][0].i)),
                                            tuple(self.atoms.find(p) for p in info["parts"]))
        elif aten == "cat":
            info = self.info[k]
            ins = tuple(self.need(x.i) for x in a[0])
            self.val[ev.outs[0]] = self.add("concat", ins, self.dims(ev.outs[0]),
                                            along=self.atoms.find(info["along"]))
        elif aten == SDPA:
            self.sdpa(k, ev)
        elif aten in RECURRENT:
            self.miss(aten, "a recurrence (the same weights applied over time) is outside "
                      "the calculus")
            self._alias(ev)
        else:
            self.miss(aten, "an op outside the calculus")
            self._alias(ev)

    def matmul(self, k: int, ev: Event) -> None:
        aten, a = ev.aten, ev.args
        x, w = (a[1], a[2]) if aten in ("addmm", "baddbmm") else (a[0], a[1])
        out = ev.outs[0]
        if self.param(x):
            self.miss(aten, f"parameter '{self.param(x)}' on the left of a matmul")
            self._alias(ev)
            return
        over = self.flat(self.g(x.i)[-1])
        if isinstance(self.val.get(w.i), ParamCat) and self._stacked(ev, x, w, over):
            return
        if self.param(w):
            bias = self.param(a[0]) if aten in ("addmm", "baddbmm") else None
            # x @ W on the parameter itself: stored (in, out) (HF Conv1D); nn.Linear's
            # reaches the matmul through aten.t: stored (out, in), the default
            layout = {"mode": "in_out"} if self.t0.kinds[w.i] == "param" else {}
            self.val[out] = self.add("linear", (self.need(x.i),), self.dims(out), main=True,
                                     kind="linear", weight=self.param(w), bias=bias,
                                     in_dims=over, **layout)
            return
        info = self.info.get(k, {})
        self.val[out] = self.add(CONTRACT.name, (self.need(x.i), self.need(w.i)),
                                 self.dims(out), kind=CONTRACT.name, over=over,
                                 rename=info.get("rename") and tuple(
                                     (self.atoms.find(x), self.atoms.find(y))
                                     for x, y in info["rename"]))
        alpha = ev.kwargs.get("alpha", 1)
        self.const(self.val[out], tuple(alpha for _ in self.traces),
                   "a matmul of two activations")

    def _stacked(self, ev: Event, x: T, w: T, over: tuple[int, ...]) -> bool:
        """x @ W of weights stacked along their out dim (``torch.cat`` of parameters: a
        generated ``fused_linear``), each bias stacked alike or none: one linear per
        weight, their outputs concatenated (what the matmul computes). False, emitting
        nothing, for any other stacking."""
        cat: ParamCat = self.val[w.i]
        b = self.val.get(ev.args[0].i) if ev.aten in ("addmm", "baddbmm") else None
        if b is not None and not (isinstance(b, ParamCat) and b.along == cat.along and [
                self.atoms.size((p,)) for p in b.parts] == [
                self.atoms.size((p,)) for p in cat.parts]):
            return False  # the biases stacked in other parts than the weights
        dims = self.dims(ev.outs[0])
        if cat.along not in dims or cat.along in over:
            return False
        # weights stored (out, in) are stacked on axis 0 and read transposed (F.linear);
        # stored (in, out), on axis 1 and read as they are (x @ W); anything else is not
        # a stack of linears
        if (cat.axis, w.i == cat.out) == (1, True):
            layout = {"mode": "in_out"}
        elif (cat.axis, w.i == cat.out) == (0, False):
            layout = {}
        else:
            return False
        parts = []
        for j, (name, part) in enumerate(zip(cat.names, cat.parts, strict=True)):
            parts.append(self.add("linear", (self.need(x.i),),
                                  tuple(part if d == cat.along else d for d in dims),
                                  kind="linear", weight=name, bias=b and b.names[j],
                                  in_dims=over, **layout))
        self.val[ev.outs[0]] = self.add("concat", tuple(parts), dims, along=cat.along)
        return True

    def conv(self, k: int, ev: Event) -> None:
        x, w, b = ev.args[0], ev.args[1], ev.args[2]
        gw = self.g(w.i)
        kernel = tuple(a for g in gw[2:] for a in self.atoms.flat(g, keep_ones=True))
        c_in = self.flat(self.g(x.i)[1])
        out = ev.outs[0]
        if self.info[k].get("patchify"):
            self.val[out] = self.add("linear", (self.need(x.i),), self.dims(out), main=True,
                                     kind="conv", weight=self.param(w),
                                     bias=self.param(b), in_dims=c_in + kernel)
        else:
            self.val[out] = self.add("conv", (self.need(x.i),), self.dims(out), main=True,
                                     weight=self.param(w), bias=self.param(b),
                                     in_dims=c_in, kernel=kernel)

    def reduce(self, k: int, ev: Event) -> None:
        x = ev.args[0]
        over = tuple(b for b in self.flat(self.info[k]["over"]))
        z = self.val.get(x.i)
        if ev.aten == "mean" and isinstance(z, Lazy) and z.ops == ("square",):
            self.val[ev.outs[0]] = Lazy(z.base, ("mean",), None, (z.base, over), ev)
            return
        if not over:
            self.val[ev.outs[0]] = self.val.get(x.i)
            return
        name = self.add("reduce", (self.need(x.i),), self.dims(ev.outs[0]), kind=ev.aten,
                        over=over, mode=ev.aten)
        self.val[ev.outs[0]] = name
        if ev.aten == "sum":
            self.const(name, tuple(1.0 for _ in self.traces), "a sum (no constant)")

    def cut(self, k: int, ev: Event) -> None:
        info = self.info.get(k, {})
        x = ev.args[0].i
        if "along" not in info:
            self.val[ev.outs[0]] = self.val.get(x)
            return
        src = self.need(x)
        have = self.node_of[src].dims
        find = self.atoms.find
        along, parts = find(info["along"]), tuple(find(p) for p in info["parts"])
        for o, p in zip(ev.outs, info["pieces"], strict=False):
            dims = tuple(parts[p] if d == along else d for d in have)
            self.val[o] = self.add("slice", (src,), dims, kind="slice", along=along,
                                   parts=parts, index=p)

    def sdpa(self, k: int, ev: Event) -> None:
        kw = ev.kwargs
        q, kk, v = kw["query"].i, kw["key"].i, kw["value"].i
        gq, gk = self.g(q), self.g(kk)
        e = self.flat(gq[-1])
        (t,), (s,) = self.flat(gq[-2]), self.flat(gk[-2])
        rename = None
        keys = s
        if self.atoms.find(s) == self.atoms.find(t):
            keys = self.atoms.key_copy(t)
            rename = ((t, keys),)
        nq, nk, nv = self.need(q), self.need(kk), self.need(v)
        qd = [d for d in self.node_of[nq].dims if d not in e]
        scores = self.add(CONTRACT.name, (nq, nk), (*qd, keys), kind="scores", over=e,
                          rename=rename)
        scales = []
        for tr in self.traces:
            scale = tr.events[k].kwargs.get("scale")
            scales.append(scale if scale is not None else tr.shapes[q][-1] ** -0.5)
        given = kw.get("scale") is not None
        self.const(scores, tuple(scales), "scaled_dot_product_attention scale" +
                   ("" if given else " (default 1/sqrt(head_dim))"))
        causal = (t, keys) if kw.get("is_causal") else None
        probs = self.add(SOFTMAX.name, (scores,), (*qd, keys), kind="probs", over=(keys,),
                         causal=causal)
        mix = self.add(CONTRACT.name, (probs, nv), self.dims(ev.outs[0]), kind="mix",
                       over=(keys,), rename=rename)
        self.const(mix, tuple(1.0 for _ in self.traces), "attention-weighted values")
        self.val[ev.outs[0]] = mix
