"""Pass 1 of mapping a traced forward (:mod:`abccalc.importer.trace`) onto abccalc's op
units; pass 2 is :mod:`abccalc.importer.nodes`. Both read the first width's events, with
every tensor's sizes at all traced widths:

1. **Axes** (:class:`abccalc.importer.atoms.Atoms`): each op says which axes are equal (a
   contraction's summed axes, a residual's operands, a weight's fan_in and its input), how
   a view merges or splits them, where a slice cuts. Afterwards every activation axis is a
   product of atoms, each finite or infinite.
2. **Nodes**: each op becomes the op unit that states its size rules: mm/addmm with a
   parameter → ``linear``, of two activations → ``contract``; ``convolution`` → ``conv``
   (a patchify conv, kernel = stride, → ``linear`` over ``[c_in, kh, kw]``); embedding,
   layer_norm (and RMSNorm written as pow/mean/rsqrt/mul) → norms; SDPA → contract +
   softmax + contract with its scale recorded; mul/div by a constant → ``scale`` (the model's
   own multiplier, recorded); views → bookkeeping, or ``reshape`` where a sliced dim is
   split; anything else → :class:`~abccalc.importer.imported.Unseen`.

Chains of pointwise ops on one activation (``0.5·x·(1 + tanh(…))``) are fused into one
elementwise node; a chain of only multiplications by constants is one ``scale``.
"""

from __future__ import annotations

from typing import Any

from abccalc.importer.atoms import Atoms, Group
from abccalc.importer.trace import SDPA, Event, T, Trace

VIEWS = {"view", "_unsafe_view", "reshape", "_reshape_alias"}
PERMUTES = {"t", "transpose", "permute", "swapaxes"}
SAME = {"clone", "contiguous", "_to_copy", "alias", "detach", "lift_fresh", "dropout",
        "native_dropout", "feature_dropout", "_to_dtype", "type_as", "masked_fill",
        "_assert_tensor_metadata"}
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "silu": "silu", "tanh": "tanh",
               "sigmoid": "sigmoid"}
UNARY = {"neg", "exp", "log", "erf", "rsqrt", "sqrt", "pow", "abs", "sin", "cos",
         "reciprocal", "clamp", "hardtanh", "leaky_relu", "elu", "softplus", "mish",
         "hardswish", "square", *ACTIVATIONS}
BINARY = {"add", "sub", "mul", "div", "where", "maximum", "minimum", "rsub"}
SOFTMAXES = {"_softmax", "_safe_softmax", "softmax", "_log_softmax"}
RECURRENT = {"lstm", "gru", "rnn_tanh", "rnn_relu"}


class Axes:
    """Pass 1 over the traces of one model at several widths: every tensor axis as atoms."""

    def __init__(self, traces: list[Trace]) -> None:
        self.traces = traces
        self.t0 = traces[0]
        self.atoms = Atoms(len(traces))
        self.groups: dict[int, list[Group]] = {}
        self.info: dict[int, dict] = {}
        self.from_param = {i for i, kind in enumerate(self.t0.kinds) if kind == "param"}

    # -- sizes and groups --------------------------------------------------------------------
    def shape(self, i: int) -> list[tuple[int, ...]]:
        """Per axis, its size at each width."""
        return [tuple(t.shapes[i][j] for t in self.traces) for j in range(len(self.t0.shapes[i]))]

    def g(self, i: int) -> list[Group]:
        if i not in self.groups:
            kind, name = self.t0.kinds[i], self.t0.names[i]
            axes = []
            rank = len(self.t0.shapes[i])
            for j, s in enumerate(self.shape(i)):
                a = self.atoms.new(s, _input_hint(name, j, rank) if kind == "input" else None)
                if kind == "input" and j == 0:
                    self.atoms.batch.add(a)
                axes.append((a,))
            self.groups[i] = axes
        return self.groups[i]

    def arg(self, k: int, pos: int, w: int = 0) -> Any:
        args = self.traces[w].events[k].args
        return args[pos] if pos < len(args) else None

    # -- pass 1: axes ----------------------------------------------------------------------
    def axes(self) -> None:
        for k, ev in enumerate(self.t0.events):
            try:
                self._axes(k, ev)
            except (ValueError, IndexError, TypeError) as e:
                self.info.setdefault(k, {})["bad"] = str(e)
            for o in ev.outs:  # outputs no rule reached: an input's axes if of its shape
                if o not in self.groups:
                    same = next((x.i for x in ev.args if isinstance(x, T)
                                 and self.t0.shapes[x.i] == self.t0.shapes[o]), None)
                    if same is not None:
                        self.groups[o] = list(self.g(same))
                self.g(o)

    def _unify(self, k: int, g1: Group, g2: Group) -> None:
        if not self.atoms.unify(g1, g2):
            self.info.setdefault(k, {})["bad"] = "axes that should be equal differ"

    def _axes(self, k: int, ev: Event) -> None:
        aten, a = ev.aten, ev.args
        tens = [x.i for x in a if isinstance(x, T)]
        out = ev.outs[0] if ev.outs else None
        if tens and out is not None and (aten in VIEWS or aten in PERMUTES or aten in SAME
                                         or aten == "expand") and tens[0] in self.from_param:
            self.from_param.add(out)
        if aten in VIEWS:
            self.groups[out] = self.atoms.reshape(self.g(a[0].i), self.shape(out))
        elif aten in PERMUTES:
            g = self.g(a[0].i)
            n = len(g)
            if aten == "t":
                perm = list(range(n))[::-1]
            elif aten == "permute":
                perm = [p % n for p in a[1]]
            else:
                d0, d1 = a[1] % n, a[2] % n
                perm = list(range(n))
                perm[d0], perm[d1] = perm[d1], perm[d0]
            self.groups[out] = [g[p] for p in perm]
        elif aten in SAME or aten in UNARY:
            for o in ev.outs[:1]:
                self.groups[o] = list(self.g(tens[0]))
        elif aten == "unsqueeze":
            g = list(self.g(a[0].i))
            d = a[1] % (len(g) + 1)
            self.groups[out] = [*g[:d], (), *g[d:]]
        elif aten == "squeeze":
            shape = self.shape(a[0].i)
            g = self.g(a[0].i)
            dims = a[1] if len(a) > 1 else None
            dims = [dims] if isinstance(dims, int) else dims
            drop = {j for j, s in enumerate(shape) if all(v == 1 for v in s)
                    and (dims is None or j in [d % len(shape) for d in dims])}
            self.groups[out] = [x for j, x in enumerate(g) if j not in drop]
        elif aten == "expand":
            g = self.g(a[0].i)
            shape = self.shape(out)
            lead = len(shape) - len(g)
            res = []
            for j, s in enumerate(shape):
                src = g[j - lead] if j >= lead else ()
                had = self.shape(a[0].i)[j - lead] if j >= lead else None
                if had == s:
                    res.append(src)
                else:  # broadcast copies (a CLS token over the batch, keys over groups)
                    res.append((self.atoms.new(s),))
                    self.atoms.broadcast.add(res[-1][0])
            self.groups[out] = res
        elif aten in BINARY or aten in SOFTMAXES:
            self._broadcast(k, [t for t in tens], out)
        elif aten in ("mm", "addmm", "bmm", "baddbmm"):
            x, w = (a[1].i, a[2].i) if aten in ("addmm", "baddbmm") else (a[0].i, a[1].i)
            gx, gw = self.g(x), self.g(w)
            batch = gx[:-2]
            for u, v in zip(batch, gw[:-2], strict=True):
                self._unify(k, u, v)
            self._contract_axes(k, gx[-1], gw[-2])
            if w in self.from_param:  # a weight's finite out dim: the module's outputs
                leaf = ev.module.rsplit(".", 1)[-1] or "out"
                for a0 in self.atoms.flat(gw[-1]):
                    if len(set(self.atoms.sizes[a0])) == 1:
                        self.atoms.hint.setdefault(a0, f"{leaf}_out")
            rows = self.atoms.flat(gx[-2])
            free = tuple(self.atoms.key_copy(r) if r in rows else r
                         for r in self.atoms.flat(gw[-1]))
            clash = tuple((r, c) for r, c in zip(self.atoms.flat(gw[-1]), free, strict=True)
                          if r != c)
            if clash:  # q·kᵀ: the keys' positions get a dim of their own (ctx → ctx_k)
                self.info.setdefault(k, {})["rename"] = clash
            self.groups[out] = [*batch, gx[-2], free]
            if aten in ("addmm", "baddbmm") and isinstance(a[0], T):
                self._broadcast(k, [out, a[0].i], None)
        elif aten == "convolution":
            self._conv_axes(k, ev, out)
        elif aten == "embedding":
            w, ids = a[0].i, a[1].i
            vocab = self.atoms.find(self.g(w)[0][0])
            if vocab not in self.atoms.hint:
                leaf = ev.module.rsplit(".", 1)[-1]
                named = "vocab" in self.atoms.hint.values()
                self.atoms.hint[vocab] = f"{leaf}_vocab" if named and leaf else "vocab"
            self.groups[out] = [*self.g(ids), self.g(w)[1]]
        elif aten == "native_layer_norm":
            x = a[0].i
            n = len(a[1])
            gx = self.g(x)
            for p in a[2:4]:
                if isinstance(p, T):
                    for u, v in zip(gx[-n:], self.g(p.i), strict=True):
                        self._unify(k, u, v)
            self.groups[ev.outs[0]] = list(gx)
            for o in ev.outs[1:]:
                self.groups[o] = list(gx[:-n]) + [()] * n
        elif aten in ("mean", "sum", "amax", "var"):
            gx = self.g(a[0].i)
            dims = a[1] if len(a) > 1 and a[1] is not None else list(range(len(gx)))
            dims = [dims] if isinstance(dims, int) else dims
            keep = (len(a) > 2 and a[2] is True) or ev.kwargs.get("keepdim", False)
            over = {d % len(gx) for d in dims}
            self.info[k] = {"over": tuple(x for j in sorted(over) for x in gx[j])}
            self.groups[out] = [() if j in over else x for j, x in enumerate(gx)
                                if keep or j not in over]
        elif aten in ("split", "split_with_sizes", "slice", "select", "narrow", "unbind"):
            self._cut_axes(k, ev)
        elif aten == "cat":
            self._cat_axes(k, ev, out)
        elif aten == SDPA:
            q, kk, v = (ev.kwargs[n].i for n in ("query", "key", "value"))
            gq, gk, gv = self.g(q), self.g(kk), self.g(v)
            sq, sk = self.shape(q), self.shape(kk)
            for j, (u, w) in enumerate(zip(gq[:-2], gk[:-2], strict=True)):
                if sq[j] != sk[j]:  # grouped-query heads: q's = (k's heads, group)
                    group = self.atoms.new(tuple(a // b for a, b in zip(sq[j], sk[j],
                                                                       strict=True)))
                    self._unify(k, u, (*w, group))
                else:
                    self._unify(k, u, w)
            for u, w in zip(gk[:-1], gv[:-1], strict=True):
                self._unify(k, u, w)
            self._unify(k, gq[-1], gk[-1])
            self.groups[out] = [*gq[:-1], gv[-1]]
            heads = self.atoms.flat(gq[-3]) if len(gq) >= 3 else ()
            names = ("n_kv_head", "n_group") if len(heads) == 2 else ("n_head",) * len(heads)
            for a0, hint in zip(heads, names, strict=True):
                self.atoms.hint.setdefault(a0, hint)

    def _broadcast(self, k: int, ins: list[int], out: int | None) -> None:
        shapes = [self.shape(i) for i in ins]
        rank = max(len(s) for s in shapes)
        res: list[Group] = []
        for j in range(rank):
            first = None
            for i, s in zip(ins, shapes, strict=True):
                jj = j - (rank - len(s))
                if jj < 0 or all(v == 1 for v in s[jj]):
                    continue
                if first is None:
                    first = self.g(i)[jj]
                else:
                    self._unify(k, first, self.g(i)[jj])
            res.append(first if first is not None else ())
        if out is not None:
            self.groups[out] = res

    def _contract_axes(self, k: int, gu: Group, gv: Group) -> set[int]:
        """Equate a contraction's summed axes; key positions (a copy of the sequence atom)
        against the sequence atom give a ``rename`` instead. Returns the renamed atoms."""
        fu, fv = self.atoms.flat(gu), self.atoms.flat(gv)
        if len(fu) == len(fv) and all(self.atoms.copy_of.get(u) == self.atoms.find(v)
                                      for u, v in zip(fu, fv, strict=True)) and fu:
            self.info.setdefault(k, {})["rename"] = tuple(zip(fv, fu, strict=True))
            return set(fv)
        self._unify(k, gu, gv)
        return set()

    def _conv_axes(self, k: int, ev: Event, out: int) -> None:
        x, w = ev.args[0].i, ev.args[1].i
        gx, gw = self.g(x), self.g(w)
        stride, padding, dilation, transposed, _, groups = ev.args[3:9]
        if transposed or groups != 1 or any(d != 1 for d in dilation):
            self.info[k] = {"bad": "transposed, grouped or dilated convolution"}
            return
        self._unify(k, gx[1], gw[1])
        sx, so, sw = self.shape(x), self.shape(out), self.shape(w)
        spatial = []
        patchify = all(s == ks[0] for s, ks in zip(stride, sw[2:], strict=True)) and \
            all(p == 0 for p in padding) and any(s != 1 for s in stride)
        for j in range(2, len(sx)):
            if sx[j] == so[j] and all(s == 1 for s in stride):
                spatial.append(gx[j])
            elif patchify:
                grid = self.atoms.new(so[j], f"grid_{'hwd'[j - 2] if j < 5 else j}")
                self._unify(k, gx[j], (grid, *gw[j]))
                spatial.append((grid,))
            else:
                self.info[k] = {"bad": "strided or unpadded convolution (spatial size "
                                "changes)"}
                return
        for j in range(2, len(sw)):
            for a0 in self.atoms.flat(gw[j], keep_ones=True):
                self.atoms.hint.setdefault(a0, f"k{'hwd'[j - 2] if j < 5 else j}")
        self.info[k] = {"patchify": patchify}
        self.groups[out] = [gx[0], gw[0], *spatial]

    def _cut_axes(self, k: int, ev: Event) -> None:
        aten, a = ev.aten, ev.args
        x = a[0].i
        gx, shape = self.g(x), self.shape(x)
        dim = (a[1] if len(a) > 1 else ev.kwargs.get("dim", 0)) if aten != "split" or \
            len(a) > 2 else ev.kwargs.get("dim", 0)
        if aten in ("split", "split_with_sizes"):
            dim = a[2] if len(a) > 2 else ev.kwargs.get("dim", 0)
        dim %= len(shape)
        outs = list(ev.outs)
        sizes = [self.shape(o)[dim] if aten not in ("select", "unbind") else
                 tuple(1 for _ in self.traces) for o in outs]
        if aten in ("slice", "narrow"):
            starts = self._starts(k, ev, shape[dim])
            ends = tuple(s + e for s, e in zip(starts, sizes[0], strict=True))
            cuts = tuple(c for c in (starts, ends) if any(v != 0 for v in c)
                         and c != shape[dim])
            if not cuts:
                self.groups[outs[0]] = list(gx)
                return
            index = 0 if all(v == 0 for v in starts) else 1
            pieces = [index]
        elif aten == "select":
            idx = a[2] % shape[dim][0]
            starts = tuple(idx for _ in self.traces)
            cuts = tuple(c for c in (starts, tuple(idx + 1 for _ in self.traces))
                         if any(v != 0 for v in c) and c != shape[dim])
            index = 0 if idx == 0 else 1
            pieces = [index]
        else:
            acc = [0] * len(self.traces)
            bounds = []
            for s in sizes[:-1]:
                acc = [u + v for u, v in zip(acc, s, strict=True)]
                bounds.append(tuple(acc))
            cuts = tuple(bounds)
            pieces = list(range(len(outs)))
        along = self._single(x, dim)
        gx = self.g(x)
        parts = self.atoms.parts(along, cuts)
        self.info[k] = {"along": along, "parts": parts, "pieces": pieces}
        for o, p in zip(outs, pieces, strict=False):
            g = list(gx)
            if aten in ("select", "unbind"):
                del g[dim]
            else:
                g[dim] = (parts[p],)
            self.groups[o] = g

    def _single(self, i: int, dim: int) -> int:
        """The one atom of tensor ``i``'s axis ``dim``; a merged axis (patches flattened
        from a grid) becomes a new atom, which the node pass reaches by a ``reshape``."""
        flat = self.atoms.flat(self.g(i)[dim], keep_ones=True)
        if len(flat) == 1:
            return flat[0]
        merged = self.atoms.new(self.shape(i)[dim], "patch")  # a flattened grid
        self.groups[i] = [*self.g(i)[:dim], (merged,), *self.g(i)[dim + 1:]]
        return merged

    def _starts(self, k: int, ev: Event, size: tuple[int, ...]) -> tuple[int, ...]:
        out = []
        for w in range(len(self.traces)):
            s = self.arg(k, 2, w) or 0
            out.append(s + size[w] if s < 0 else s)
        return tuple(out)

    def _cat_axes(self, k: int, ev: Event, out: int) -> None:
        ins = [x.i for x in ev.args[0]]
        dim = (ev.args[1] if len(ev.args) > 1 else ev.kwargs.get("dim", 0)) % \
            len(self.shape(out))
        parts = [self._single(i, dim) for i in ins]
        whole = self.atoms.new(self.shape(out)[dim], "tok")
        self.atoms.frozen.update([whole, *parts])
        for p in parts:
            if self.atoms.one(p):
                self.atoms.hint.setdefault(p, "cls")  # one prepended token
        rest = [j for j in range(len(self.shape(out))) if j != dim]
        for i in ins[1:]:
            for j in rest:
                if not all(v == 1 for v in self.shape(i)[j]):
                    self._unify(k, self.g(ins[0])[j], self.g(i)[j])
        g = list(self.g(ins[0]))
        g[dim] = (whole,)
        self.groups[out] = g
        self.info[k] = {"along": whole, "parts": tuple(parts)}


def _input_hint(name: str, axis: int, rank: int) -> str | None:
    """Readable names of a model input's axes: tokens [batch, ctx], images [batch, c_in,
    rows, cols], else ``<input>_<axis>``."""
    if axis == 0:
        return "batch"
    if rank == 2 and axis == 1:
        return "ctx"
    if rank == 4:
        return ("c_in", "rows", "cols")[axis - 1]
    return f"{name}_{axis}"

