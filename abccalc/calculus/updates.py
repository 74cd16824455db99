"""Update classes: an optimizer is declared by how it normalizes its update, and its
maximal-update LR exponent follows from that (docs/optimizers.md has the derivations).

For a use h = W·x with W = n^-a·w, w ~ N(0, n^-2b) and LR η·n^-c, the maximal-update
desideratum (TP4 Def. 5.2; TP5 J.1) asks ΔW·x = Θ(1). ΔW is a sum of a few (batch ×
steps, finite) outer products whose input side is correlated with x, so

    ΔW·x = n^(e + inf(fan_in) + st(x))                              (LLN over the fan_in)

with e the size of ΔW's entries: e = −(inf(fan_in) + st(x)) whatever the optimizer. Each
class turns e into an LR exponent:

    raw         e = −(2a + c) + gradient entries      SGD, momentum             (TP4 §5)
    entrywise   e = −(a + c)                          Adam(W), RMSProp, Adagrad,
                                                      Lion, sign-SGD            (TP4b §2.2)
    frobenius   e = −(a + b) − c                      LAMB, Adafactor with      (TP5 B.3)
                                                      parameter scaling
    spectral    e = −(a + c) + σ − ½(inf(fan_in) + inf(fan_out))
                                                      Muon, Scion, Shampoo w/o grafting
                                                      (arXiv 2310.17813)

Frobenius: Δw = η·‖w‖_F·u/‖u‖_F keeps w's entry size n^-b, so the LR invariant is c alone
(k = 0): a + θ, b − θ leaves it fixed. Spectral: Δw = η·s·U·Vᵀ, U and V orthonormal with
a finite rank, so Vᵀx = Θ(√fan_in·x) (x is in V's span, LLN) and U's entries are
fan_out^-½: ‖ΔW·x‖ per coordinate is η·s·√(fan_in/fan_out)·x (the spectral condition,
arXiv 2310.17813: ‖ΔW‖_* = Θ(√(fan_out/fan_in))). s = n^σ is the shape factor of the
Muon convention (:data:`ADJUSTS`).

Whatever the class, the entry size e, hence every activation and gradient size, is the
same under μP: only the map from e to the LR differs (:func:`lr_offset`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from abccalc.errors import AbcError
from abccalc.exponents import HALF, ZERO, Exp, Optimizer
from abccalc.graph.core import Graph, Kind


@dataclass(frozen=True)
class UpdateClass:
    """How an optimizer normalizes its update, and what follows for its LR exponent."""

    name: str
    k: int  # the multiplier's weight in the LR invariant k·a + c
    optimizers: tuple[str, ...]
    update: str  # the update Δw, in words
    entry_size: str  # e, the size exponent of ΔW's entries
    source: str


CLASSES: dict[str, UpdateClass] = {c.name: c for c in (
    UpdateClass("raw", 2, ("sgd", "momentum"), "Δw = −η·n^-c·∇w",
                "−(2a + c) + gradient entries", "TP4 §5; TP5 Table 3"),
    UpdateClass("entrywise", 1,
                ("adam", "adamw", "rmsprop", "adagrad", "lion", "signsgd"),
                "Δw = −η·n^-c·u, u with Θ(1) entries (Adam's m/√v, Lion's sign)",
                "−(a + c)", "TP4b Def. 2.5.1; TP5 B.3"),
    UpdateClass("frobenius", 0, ("lamb", "adafactor"),
                "Δw = −η·n^-c·‖w‖_F·u/‖u‖_F (trust ratio; Adafactor's RMS(w) scaling)",
                "−(a + b) − c", "TP5 B.3"),
    UpdateClass("spectral", 1, ("muon",),
                "Δw = −η·n^-c·s(fan_out, fan_in)·U·Vᵀ (orthogonalized)",
                "−(a + c) + σ − ½(inf(fan_in) + inf(fan_out))",
                "spectral condition, arXiv 2310.17813"),
)}


@dataclass(frozen=True)
class Adjust:
    """A Muon shape factor s(fan_out, fan_in) and its width exponent σ(k_out, k_in)."""

    name: str
    formula: str
    sigma: Callable[[int, int], Exp]  # (k_out, k_in) -> σ
    torch_fn: str | None  # torch.optim.Muon's adjust_lr_fn that applies it, if any


ADJUSTS: dict[str, Adjust] = {a.name: a for a in (
    # max(1, fan_out/fan_in)^½: √n^(k_out − k_in) when fan_out grows faster, else Θ(1)
    Adjust("keller", "max(1, fan_out/fan_in)^½", lambda ko, ki: HALF * max(0, ko - ki),
           "original"),
    Adjust("spectral", "(fan_out/fan_in)^½", lambda ko, ki: HALF * (ko - ki), None),
    # 0.2·max(fan_out, fan_in)^½: grows like √n as soon as either fan does
    Adjust("match_rms_adamw", "0.2·max(fan_out, fan_in)^½",
           lambda ko, ki: HALF * max(ko, ki), "match_rms_adamw"),
)}

MUON_ADJUST = {Optimizer.MUON: "keller", Optimizer.MUON_SPECTRAL: "spectral",
               Optimizer.MUON_RMS: "match_rms_adamw"}


def muon_managed(graph: Graph, pname: str) -> bool:
    """Whether Muon updates ``pname``: a weight whose every use maps infinite dims to
    infinite dims (a hidden matrix; a conv filter or multi-dim weight flattened to
    fan_out × fan_in). Embeddings, readouts, biases and gains go to AdamW."""
    param = graph.params[pname]
    return param.kind is Kind.WEIGHT and all(
        graph.inf(u.fan_in) and graph.inf(u.fan_out) for u in param.uses)


def update_class(opt: Optimizer, graph: Graph, pname: str) -> UpdateClass:
    """The class of ``pname``'s update under ``opt``: Muon's hidden matrices are spectral,
    the rest of a Muon setup is AdamW (entrywise)."""
    if opt in MUON_ADJUST:
        return CLASSES["spectral" if muon_managed(graph, pname) else "entrywise"]
    return CLASSES[{Optimizer.SGD: "raw", Optimizer.LAMB: "frobenius"}.get(opt, "entrywise")]


def optimizer_of(opt: Optimizer, graph: Graph, pname: str) -> str:
    """The torch optimizer that updates ``pname``: ``muon`` or ``adamw`` in a Muon setup,
    else the setup's own (sgd, adam, lamb)."""
    if opt in MUON_ADJUST:
        return "muon" if muon_managed(graph, pname) else "adamw"
    return opt.value


def sigma(opt: Optimizer, k_in: int, k_out: int) -> Exp:
    """σ, the width exponent of the Muon shape factor of ``opt`` for a use's fans."""
    return ADJUSTS[MUON_ADJUST[opt]].sigma(k_out, k_in)


def offset(cls: str, k_in: int, k_out: int, init: Exp, s: Exp = ZERO) -> Exp:
    """The LR invariant of class ``cls`` minus the entrywise one, k_in + st(x): setting
    the class's e (module docstring) to −(k_in + st(x)) gives

        entrywise  a + c = k_in + st(x)                        offset 0
        frobenius      c = k_in + st(x) − (a + b)              offset −init
        spectral   a + c = k_in + st(x) + σ − ½(k_in + k_out)  offset σ − ½(k_in + k_out)

    with σ = ``s`` the shape factor's exponent. The raw class (SGD) has no fixed entry
    size: its LR follows the gradient (the solver's SGD rule)."""
    if cls == "frobenius":
        return -init
    if cls == "spectral":
        return s - HALF * (k_in + k_out)
    if cls == "entrywise":
        return ZERO
    raise ValueError(f"class {cls!r} has no fixed entry size")


def lr_offset(opt: Optimizer, graph: Graph, pname: str, k_in: int, k_out: int,
              init: Exp) -> Exp:
    """:func:`offset` for a use of ``pname`` under ``opt`` (not SGD)."""
    cls = update_class(opt, graph, pname).name
    if cls == "raw":
        raise AbcError(f"{graph.source}: parameter '{pname}': the raw-gradient class (SGD) "
                       "has no fixed entry size; its LR follows the gradient (solver)")
    s = sigma(opt, k_in, k_out) if cls == "spectral" else ZERO
    return offset(cls, k_in, k_out, init, s)


def entries(opt: Optimizer, graph: Graph, pname: str, k_in: int, k_out: int, a: Exp,
            b: Exp, c: Exp) -> Exp:
    """e, the size exponent of ΔW's entries at a use of a non-raw class under (a, b, c)."""
    k = update_class(opt, graph, pname).k
    return -(k * a + c) + lr_offset(opt, graph, pname, k_in, k_out, a + b)


def lr_rule(opt: Optimizer, graph: Graph, pname: str, k_in: int, k_out: int,
            stx: Exp, init: Exp) -> str:
    """The derivation text of a live use's LR invariant under a non-raw class."""
    cls = update_class(opt, graph, pname)
    base = f"ΔW·x = n^(e + {k_in}·1 + st(x)) with st(x) = {stx} must be Θ(1)"
    if cls.name == "entrywise":
        return (f"maximal update (TP4b): {optimizer_of(opt, graph, pname)} ΔW has "
                f"Θ(n^-(a+c)) entries; {base}")
    if cls.name == "frobenius":
        return (f"maximal update (TP5 B.3): the trust ratio keeps w's entry size, ΔW has "
                f"n^-((a+b)+c) entries with a+b = {init}; {base}, so c = {k_in} + {stx} "
                f"− {init}")
    s = sigma(opt, k_in, k_out)
    adj = ADJUSTS[MUON_ADJUST[opt]]
    return (f"maximal update (spectral condition, arXiv 2310.17813): Muon ΔW = "
            f"η·s·U·Vᵀ with s = {adj.formula} = n^{s}, rank finite, entries "
            f"n^-(a+c)·n^{s}·(fan_out·fan_in)^-½ = n^(-(a+c) + {s} − "
            f"{Fraction(k_in + k_out, 2)}); {base}")


def muon_note(opt: Optimizer) -> str:
    """What a table for a Muon setup must say: which LR its column is, and, for a shape
    factor that grows with width, the exponent the user's base LR must carry."""
    adj = ADJUSTS[MUON_ADJUST[opt]]
    where = (f"torch.optim.Muon(adjust_lr_fn={adj.torch_fn!r})" if adj.torch_fn else
             "a Muon whose update is scaled by (fan_out/fan_in)^½ (torch.optim.Muon has no "
             "such adjust_lr_fn: keep the default ('original') and multiply each group's LR by "
             "min(1, fan_out/fan_in)^½)")
    text = (f"Muon ({adj.name}: s = {adj.formula}) updates the hidden matrices (optimizer "
            f"column 'muon'): their LR is what you pass to {where}, before its own shape "
            "factor; every other parameter uses AdamW with Adam's exponents.")
    if adj.name == "match_rms_adamw":
        text += (" This shape factor grows like n^½ on hidden matrices, so μP needs the LR "
                 "passed to Muon to shrink like n^-½ (c = 1/2 above): a width-independent "
                 "base LR with this convention is not μP (docs/optimizers.md).")
    return text


def misapplied(opt: Optimizer, graph: Graph, pname: str, k_in: int, k_out: int, init: Exp,
               lr_mup: Exp, lr_user: Exp) -> str | None:
    """Name the known mistake behind a Muon matrix's LR invariant ``lr_user`` (μP's is
    ``lr_mup``), if it is one: μP-Adam's LR scaling applied on top of Muon's (double
    scaling), or a width-independent LR under match_rms_adamw, whose shape factor grows
    like √n."""
    if opt not in MUON_ADJUST or lr_user == lr_mup or \
            update_class(opt, graph, pname).name != "spectral":
        return None
    if lr_user == lr_mup - lr_offset(opt, graph, pname, k_in, k_out, init):
        return ("double scaling: this is μP-Adam's LR scaling (Adam's ΔW has Θ(1) "
                "entries) on a matrix Muon updates, whose orthogonalized update has the "
                "right size up to its shape factor: drop the Adam scaling")
    s_rms, s_keller = (ADJUSTS[a].sigma(k_out, k_in) for a in ("match_rms_adamw", "keller"))
    if opt is Optimizer.MUON_RMS and lr_user == lr_mup - s_rms + s_keller:
        return (f"match_rms_adamw multiplies the LR by 0.2·max(fan_out, fan_in)^½, which "
                f"grows like n^{s_rms} here: the LR you pass to Muon must shrink like "
                f"n^-{s_rms - s_keller} (a width-independent base LR is not μP)")
    return None
