"""The ``abccalc`` command line: a thin click adapter over the library."""

from __future__ import annotations

import functools
import json
import sys
from typing import TYPE_CHECKING

import click

from abccalc.calculus.solver import solve  # already imported by gauges: costs nothing
from abccalc.emit.render import FORMATS, FORMS
from abccalc.errors import AbcError
from abccalc.exponents import OPTIMIZER_NAMES, Optimizer
from abccalc.graph.names import clean, clean_text
from abccalc.parametrization.gauges import VARIANTS
from abccalc.verify.coordcheck import LOSSES

if TYPE_CHECKING:
    from abccalc.graph.core import Graph
    from abccalc.parametrization.gauges import Parametrization

# The pipeline's stages are imported inside each command, so ``abccalc --help`` and
# ``abccalc table`` never import sympy, torch or the code generator.

OPTIMIZERS = OPTIMIZER_NAMES
MUON_ADJUSTS = ("keller", "spectral", "match_rms_adamw")
DEFAULT_VARIANT = "table8"  # every command (docs/cli.md, "The default variant")
PRESET_NAMES = ("sp", "ntk", "mf", "mup")
PARAMS_METAVAR = "sp|ntk|mf|mup|FILE"
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in abccalc, not in the input


def _pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise AbcError(f"{flag} {item}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


WIDTH_HELP = ("A width knob of MODEL and its values at the traced widths (the first is "
              "the base): a factory keyword argument, or an hf: config field; one value "
              "holds it fixed. Repeatable.")


def _model_option(ctx: click.Context, param: click.Parameter, value) -> None:
    """--width/--example, kept for ``_load`` (every command that takes GRAPH has them)."""
    ctx.meta[f"abccalc.{param.name}"] = value


def graph_arg(f):
    """GRAPH: a YAML graph, or a MODEL (file.py:factory, package.module:factory, hf:CONFIG;
    loading a .py file runs it) traced with --width/--example."""
    f = click.option("--example", type=click.Path(dir_okay=False), expose_value=False,
                     callback=_model_option, help="With a MODEL: a torch.save file of its "
                     "forward's inputs (default: guessed from its first layer).")(f)
    f = click.option("--width", "width", multiple=True, metavar="NAME=B1,B2[,B3]",
                     expose_value=False, callback=_model_option,
                     help=WIDTH_HELP + " Only with a MODEL.")(f)
    return click.argument("graph", type=click.Path(dir_okay=False))(f)


muon_adjust_opt = click.option(
    "--muon-adjust", type=click.Choice(MUON_ADJUSTS), default=None,
    help="With --optimizer muon, its shape factor: keller (torch.optim.Muon's default, "
    "max(1, fan_out/fan_in)^½), spectral ((fan_out/fan_in)^½) or match_rms_adamw "
    "(0.2·max(fan_out, fan_in)^½). [default: keller]")


def _optimizer(name: str, muon_adjust: str | None) -> Optimizer:
    """``--optimizer`` with ``--muon-adjust`` as one Optimizer (docs/optimizers.md)."""
    if muon_adjust is not None and name != "muon":
        raise AbcError(f"--muon-adjust {muon_adjust}: applies to --optimizer muon only")
    return Optimizer.parse(name, muon_adjust or "keller")


def optimizer_opt(command):
    """``--optimizer`` and ``--muon-adjust``, passed on as one Optimizer."""
    @functools.wraps(command)
    def run(*args, optimizer: str, muon_adjust: str | None, **kwargs):
        return command(*args, optimizer=_optimizer(optimizer, muon_adjust), **kwargs)

    return click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam",
                        show_default=True, help="Optimizer, by update class: sgd (raw); "
                        "adam, adamw, lion, signsgd, rmsprop, adagrad (entrywise); lamb, "
                        "adafactor (Frobenius); muon (spectral on hidden matrices, AdamW "
                        "elsewhere).")(muon_adjust_opt(run))


def batch_opt(command):
    """``--batch``, ``--tokens``, ``--betas`` and ``--batch-rule``, passed on as one
    BatchTransfer (None without them), checked against the ``--optimizer`` named
    (docs/batch.md)."""
    @functools.wraps(command)
    def run(*args, batch: str | None, tokens: str | None, betas: str | None,
            batch_rule: str, **kwargs):
        from abccalc.parametrization.batch import transfer

        return command(*args, batch=transfer(kwargs["optimizer"], batch, tokens, betas,
                                             batch_rule), **kwargs)

    run = click.option("--batch-rule", type=click.Choice(["sde", "completedp"]),
                       default="sde", show_default=True,
                       help="With --batch/--tokens, whose rules: sde (Malladi et al.'s "
                       "square-root rule, the linear rule for SGD, the AdamW timescale for "
                       "λ) or completedp (Complete(d)P Table 1, AdamW: every factor a "
                       "power of the batch-to-tokens ratio).")(run)
    run = click.option("--betas", metavar="BETA1,BETA2", help="With --batch and Adam: the "
                       "base run's betas, for 1 - beta x κ. [default: 0.9,0.999]")(run)
    run = click.option("--tokens", metavar="BASE:TARGET", help="Training tokens of the "
                       "base run and of the target (4e9 accepted): weight decay follows "
                       "the AdamW timescale B/(η·λ·D) (docs/batch.md).")(run)
    return click.option("--batch", metavar="BASE:TARGET", help="Batch size of the base "
                        "run and of the target: the papers' SDE scaling rules for the LR, "
                        "betas, eps and weight decay (adam, adamw, sgd; docs/batch.md).")(run)


variant_opt = click.option("--variant", type=click.Choice(VARIANTS), default=DEFAULT_VARIANT,
                           show_default=True, help="Gauge (equivalent formulation) to print.")
set_opt = click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                       help="Override a value (e.g. n_layer) or a dim size; repeatable.")
depth_opt = click.option("--depth-alpha", "depth_alpha", default="1", show_default=True,
                         metavar="ALPHA", help="α in [1/2, 1] of the residual branch "
                         "multipliers L^-α of an infinite repeat count (--base n_layer=2): "
                         "1 = CompleteP, 1/2 = Depth-muP (docs/depth.md).")


def params_opt(default: str | None, help: str):
    """The one ``--params`` flag: a preset name (sp, ntk, mf, mup) or a params file."""
    return click.option("--params", "params", default=default, show_default=default is not None,
                        metavar=PARAMS_METAVAR, help=help + " A preset name wins over a file "
                        "of that name; write ./sp for a file called sp.")


def _parametrization(g: Graph, optimizer: str, variant: str, params: str,
                     depth_alpha: str = "1") -> Parametrization:
    """The parametrization ``--params`` names: muP in ``variant``, a preset, or a file's."""
    from abccalc.emit.codegen import load_parametrization

    if params in ("ntk", "mf"):
        from abccalc.exponents import Optimizer
        from abccalc.parametrization.gauges import from_abc
        from abccalc.parametrization.presets import PRESETS

        opt = Optimizer.parse(optimizer)
        return from_abc(solve(g, opt), PRESETS[params](g, opt), params)
    from abccalc.calculus.depth import parse_alpha

    return load_parametrization(g, optimizer, variant, params, parse_alpha(depth_alpha))


def _params_file(g: Graph, optimizer: str, params: str):
    """What ``check`` and ``classify`` read: a preset as a params file, or the file."""
    from abccalc.exponents import Optimizer
    from abccalc.parametrization.paramsfile import ParamsFile, load_params
    from abccalc.parametrization.presets import PRESETS

    if params in PRESETS:
        return ParamsFile(params, PRESETS[params](g, Optimizer.parse(optimizer)),
                          {p: params for p in g.params}, ())
    from abccalc.parametrization.gauges import parametrize  # an LR file's model: μP

    return load_params(params, g,
                       lambda: parametrize(solve(g, optimizer), DEFAULT_VARIANT).abc())


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the installed version, read only when asked for."""
    if not value or ctx.resilient_parsing:
        return
    from abccalc import __version__

    click.echo(f"abccalc, version {__version__}")
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version and exit.")
def cli() -> None:
    """Derive μP (Tensor Programs IV/V) for a computation graph, symbolically."""


def _warn_dead_ends(g: Graph) -> Graph:
    """One ``abccalc: warning:`` line on stderr per dead-end parameter; returns ``g``."""
    from abccalc.calculus.sizes import dead_end_warning, dead_params

    for pname in dead_params(g):
        click.echo(f"abccalc: warning: {clean_text(dead_end_warning(g, pname))}", err=True)
    return g


def _echo(text: str, nl: bool = True) -> None:
    """Print a result on stdout, control characters escaped (docs/cli.md)."""
    click.echo(clean_text(text), nl=nl)


def _import(spec: str, widths: tuple[str, ...], example: str | None):
    """Trace MODEL (the importer), one ``abccalc: warning:`` line per op it could not see."""
    from abccalc.importer.load import load_model
    from abccalc.importer.model import parse_widths

    imported = load_model(spec, parse_widths(widths), example)
    for u in imported.unseen:
        click.echo(f"abccalc: warning: {clean(spec)}: not seen: {clean(u.module)}: "
                   f"{clean(u.op)}: {clean(u.reason)}", err=True)
    return imported


def _is_model(path: str) -> bool:
    from abccalc.importer.model import looks_like_model

    return looks_like_model(path) and not path.endswith((".yaml", ".yml"))


def _load(path: str, sets: tuple[str, ...], bases: tuple[str, ...] = ()) -> Graph:
    """Load GRAPH with ``--set``, then ``--base`` overrides of infinite dims' base sizes (a
    ``times`` dim follows the dim it is a multiple of); warn of dead-end parameters. A
    MODEL is traced instead (``--width``, ``--example``)."""
    from abccalc.graph.spec import load_builder

    meta = click.get_current_context().meta
    widths, example = meta.get("abccalc.width", ()), meta.get("abccalc.example")
    if _is_model(path):
        if sets or bases:
            raise AbcError(f"{clean(path)}: --set and --base apply to a YAML graph; a "
                           "model's sizes come from --width (or write it with abccalc "
                           "import -o and edit the YAML)")
        return _warn_dead_ends(_import(path, widths, example).graph)
    if widths or example:
        raise AbcError(f"{clean(path)}: --width and --example apply to a MODEL "
                       "(file.py:factory, package.module:factory or hf:CONFIG)")
    builder = load_builder(path, _pairs(sets, "--set"))
    g = builder.build()
    for name, value in _pairs(bases, "--base").items():
        if name in g.values:  # an infinite repeat count: depth (docs/depth.md)
            builder.set_base(name, value)
            continue
        dim = g.dims.get(name)
        where = f"{g.source}: --base {name}={value}"
        if dim is None or not dim.infinite or dim.of is not None:
            settable = ", ".join(d.name for d in g.dims.values() if d.infinite and not d.of)
            why = (f"unknown dim '{name}'" if dim is None else
                   f"'{name}' is finite (size {dim.size})" if not dim.infinite else
                   f"'{name}' is {dim.times} × {dim.of} and follows its base")
            raise AbcError(f"{where}: {why}; --base sets one of {settable or '(none)'}")
        if not (value.isascii() and value.isdigit()) or len(value) > 15 or int(value) < 1:
            raise AbcError(f"{where}: the base size must be a positive integer")
        builder.set(name, value)
    return _warn_dead_ends(builder.build() if bases else g)


@cli.command()
@graph_arg
@batch_opt
@optimizer_opt
@click.option("--variant", type=click.Choice((*VARIANTS, "all", "auto")),
              default=DEFAULT_VARIANT,
              show_default=True, help="Gauge (equivalent formulation) to print; 'all' prints "
              "every one, 'auto' the first of table3, table8, table9, unit without a conflict.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="markdown",
              show_default=True, help="Output format; the JSON schema is documented.")
@click.option("--form", type=click.Choice(FORMS), default="fan", show_default=True,
              help="fan: rules in fan_in/fan_out; ratio: relative to SP at the base widths, "
              "with sigma, alpha, eta and m = fan/base_fan (TP5 Eq. 4).")
@click.option("--shift", "shifts", multiple=True, metavar="PARAM=THETA",
              help="abc-symmetry shift of PARAM by the rational THETA: (a+θ, b−θ, c−2θ) for "
              "SGD, (a+θ, b−θ, c−θ) for Adam; repeatable.")
@click.option("--base", "bases", multiple=True, metavar="DIM=SIZE",
              help="Base size of an infinite dim (for --form ratio), or of a repeat count "
              "it makes infinite (depth); repeatable.")
@depth_opt
@set_opt
@click.option("-o", "output", type=click.Path(dir_okay=False), help="Write to this file.")
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def table(graph: str, optimizer: str, variant: str, fmt: str, form: str,
          shifts: tuple[str, ...], bases: tuple[str, ...], depth_alpha: str,
          sets: tuple[str, ...], output: str | None, force: bool, batch=None) -> None:
    """Print the μP table of GRAPH (TP5 Table 3 style, then one row per parameter), and
    with --batch/--tokens the papers' batch-size and duration rules after it."""
    from abccalc.calculus.depth import parse_alpha
    from abccalc.emit.output import write_output
    from abccalc.emit.render import ALL_RENDERERS, RENDERERS, View
    from abccalc.emit.render_batch import FORMATS as BATCH_FORMATS
    from abccalc.emit.render_batch import add_to
    from abccalc.parametrization.gauges import (
        parametrize,
        parametrize_all,
        parametrize_auto,
        parse_shifts,
    )

    if batch is not None and fmt not in BATCH_FORMATS:
        raise AbcError(f"--batch/--tokens: --format {fmt} has no place for the batch "
                       "section; use markdown or json")
    g = _load(graph, sets, bases)
    theta = parse_shifts(g, _pairs(shifts, "--shift"))
    alpha = parse_alpha(depth_alpha)
    analysis = solve(g, optimizer)
    view = View(form, show_base=bool(bases))
    if variant == "all":
        text = ALL_RENDERERS[fmt](parametrize_all(analysis, VARIANTS, theta, alpha), view)
    elif variant == "auto":
        p, skipped = parametrize_auto(analysis, theta, alpha)
        text = RENDERERS[fmt](p, View(form, bool(bases), skipped))
    else:
        text = RENDERERS[fmt](parametrize(analysis, variant, theta, alpha), view)
    write_output(add_to(text, fmt, batch), output, force)


@cli.command()
@graph_arg
@batch_opt
@click.option("--optimizer", type=click.Choice(("sgd", "adam", "adamw", "lion", "muon")),
              required=True, help="The optimizer the code is for (adamw behaves as adam, "
              "TP5 B.3; lion adds a plain-torch Lion; muon: torch.optim.Muon on the hidden "
              "matrices, AdamW on the rest).")
@muon_adjust_opt
@click.option("--variant", type=click.Choice((*VARIANTS, "auto")), default=DEFAULT_VARIANT,
              show_default=True, help="Gauge; auto: the first of table3, table8, table9, "
              "unit without a tied-weight conflict.")
@click.option("--base", "bases", multiple=True, metavar="NAME=SIZE",
              help="Base size of an infinite dim (where the code equals SP); repeatable.")
@params_opt("mup", "Generate muP, a preset (sp, ntk, mf) or a params file's rules.")
@click.option("--model", is_flag=True, help="Also emit class Model(torch.nn.Module).")
@click.option("--no-fuse", "no_fuse", is_flag=True, help="With --model: compute linears that "
              "read one input as separate calls (each fires its own forward hooks; "
              "default: one matmul through fused_linear).")
@depth_opt
@click.option("--names", type=click.Path(dir_okay=False),
              help="YAML map: graph parameter (pattern) -> module parameter (pattern).")
@set_opt
@click.option("-o", "output", type=click.Path(dir_okay=False), required=True,
              help="The .py file to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def codegen(graph: str, optimizer: str, muon_adjust: str | None, variant: str,
            bases: tuple[str, ...], params: str, model: bool, no_fuse: bool, depth_alpha: str,
            names: str | None,
            sets: tuple[str, ...], output: str, force: bool, batch=None) -> None:
    """Write a standalone PyTorch module (init_, param_groups, multipliers) for GRAPH."""
    from abccalc.emit.codegen import generate
    from abccalc.emit.output import write_output
    from abccalc.emit.patterns import read_names

    if no_fuse and not model:
        raise AbcError("--no-fuse: only the Model's forward fuses linears; add --model")
    g = _load(graph, sets, bases)
    lion = optimizer == "lion"
    p = _parametrization(g, _optimizer(optimizer, muon_adjust), variant, params,
                         depth_alpha)
    name_map = read_names(names) if names else None  # patterns checked as names
    # the spec path reaches a docstring of the module: escaped so it cannot end it
    source = json.dumps(graph)[1:-1]
    write_output(generate(p, names=name_map, model=model, source=source, lion=lion,
                          batch=batch, fuse=not no_fuse), output, force)
    opt = "Lion" if lion else "torch.optim.SGD" if p.optimizer.value == "sgd" \
        else "torch.optim.AdamW"
    eps = ", eps=1e-8" if p.optimizer.value == "adam" and not lion else ""  # eps is scaled
    use = "optimizers(model, lr=..., adamw_lr=...)" if "muon" in optimizer else \
        f"{opt}(param_groups(model, lr=...{eps}))"
    click.echo(f"abccalc: wrote {clean(output)} ({p.variant}, {p.optimizer.value}); use: "
               f"init_(model); apply_multipliers(model); {use}"
               + ("; Model(widths) builds the graph" if model else ""), err=True)


def _trained(graph: str, sets: tuple[str, ...], optimizer: str, variant: str,
             params: str, widths: str) -> tuple[Parametrization, list[int], str]:
    """What coordcheck and verify train: the parametrization, the widths (checked before
    any work, as is torch) and the name to report."""
    from abccalc.verify.coordcheck import check_widths, import_torch

    try:
        ws = [int(w) for w in widths.split(",")]
    except ValueError:
        raise AbcError(f"--widths {widths}: expected comma-separated integers") from None
    check_widths(ws)
    import_torch()
    g = _load(graph, sets)
    p = _parametrization(g, optimizer, variant, params)
    return p, ws, f"mup ({p.variant})" if params == "mup" else params


@cli.command()
@graph_arg
@click.option("--variant", type=click.Choice((*VARIANTS, "auto")), default=DEFAULT_VARIANT,
              show_default=True, help="Gauge of the muP code (all gauges train alike).")
@click.option("--optimizer", type=click.Choice(("sgd", "adam", "lion", "muon")),
              default="adam", show_default=True, help="Optimizer to train with (lion: "
              "Adam's exponents, a plain-torch Lion; muon: torch.optim.Muon on the hidden "
              "matrices, Adam on the rest).")
@muon_adjust_opt
@params_opt("mup", "Check muP, a preset (sp, ntk, mf) or a params file's rules.")
@click.option("--widths", default="64,128,256,512,1024", show_default=True,
              help="Increasing widths of the first infinite dim (others scale alike).")
@click.option("--steps", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--lr", type=float, help="Learning rate (default 1e-2 Adam, 0.1 SGD).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch", type=click.IntRange(1, 4096),
              help="Examples in the fixed training batch (default: about 8 examples/tokens).")
@click.option("--loss", type=click.Choice(LOSSES), default="linear", show_default=True,
              help="linear: -<f, y>, whose gradient does not depend on f (isolates the "
              "scaling); xent: cross-entropy.")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Write a plot: .png, .pdf or .svg (matplotlib).")
@click.option("--format", "fmt", type=click.Choice(("markdown", "json")), default="markdown",
              show_default=True)
@set_opt
def coordcheck(graph: str, variant: str, optimizer: str, muon_adjust: str | None,
               params: str, widths: str, steps: int, lr: float | None, seed: int,
               batch: int | None, loss: str, plot: str | None, fmt: str,
               sets: tuple[str, ...]) -> None:
    """Train the generated model at several widths and report which activations grow
    or shrink with width (slopes of RMS(x_t - x_0) against width, log-log).
    Exit 1 unless every activation is flat (docs/verdicts.md)."""
    from abccalc.verify.coordcheck import as_dict as coord_dict
    from abccalc.verify.coordcheck import check_plot_path
    from abccalc.verify.coordcheck import markdown as coord_markdown
    from abccalc.verify.coordcheck import plot as plot_coordcheck
    from abccalc.verify.coordcheck import run as run_coordcheck

    if plot:
        check_plot_path(plot)
    p, ws, name = _trained(graph, sets, _optimizer(optimizer, muon_adjust), variant, params,
                           widths)
    result = run_coordcheck(p, ws, steps=steps, lr=lr, seed=seed, batch=batch, loss=loss,
                            name=name, run_as="lion" if optimizer == "lion" else None)
    if plot:
        plot_coordcheck(result, plot)
    _echo(json.dumps(coord_dict(result), indent=2) if fmt == "json"
               else coord_markdown(result), nl=fmt == "json")
    if not result.flat:
        sys.exit(1)


@cli.command()
@graph_arg
@params_opt("mup", "The parametrization to verify: muP, a preset or a params file.")
@click.option("--variant", type=click.Choice((*VARIANTS, "auto")), default=DEFAULT_VARIANT,
              show_default=True, help="Gauge of the muP code (with --params mup).")
@click.option("--optimizer", type=click.Choice(("sgd", "adam")), default="adam",
              show_default=True)
@click.option("--widths", default="64,128,256,512,1024", show_default=True)
@click.option("--steps", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--format", "fmt", type=click.Choice(("markdown", "json")), default="markdown",
              show_default=True)
@set_opt
def verify(graph: str, params: str, variant: str, optimizer: str, widths: str,
           steps: int, seed: int, fmt: str, sets: tuple[str, ...]) -> None:
    """Check a parametrization of GRAPH symbolically (check) and empirically (coordcheck):
    one verdict per parameter and activation, with the fix. Exit 1 unless both pass."""
    from abccalc.verify.coordcheck import run as run_coordcheck
    from abccalc.verify.verdict import as_dict, markdown, verify

    p, ws, name = _trained(graph, sets, optimizer, variant, params, widths)
    result = verify(p, run_coordcheck(p, ws, steps=steps, seed=seed, name=name))
    _echo(json.dumps(as_dict(result), indent=2, ensure_ascii=False) if fmt == "json"
               else markdown(result, p), nl=fmt == "json")
    if not result.ok:
        sys.exit(1)


@cli.command("explain")
@graph_arg
@click.argument("param")
@optimizer_opt
@variant_opt
@click.option("--base", "bases", multiple=True, metavar="NAME=SIZE",
              help="Base of a repeat count it makes infinite (depth, docs/depth.md).")
@depth_opt
@set_opt
def explain_cmd(graph: str, param: str, optimizer: str, variant: str,
                bases: tuple[str, ...], depth_alpha: str, sets: tuple[str, ...]) -> None:
    """Print the derivation of PARAM's exponents: each constraint and the sizes it used."""
    from abccalc.calculus.depth import parse_alpha
    from abccalc.emit.explain import explain
    from abccalc.parametrization.gauges import parametrize

    g = _load(graph, sets, bases)
    p = parametrize(solve(g, optimizer), variant, depth_alpha=parse_alpha(depth_alpha))
    _echo(explain(p, param), nl=False)


@cli.command("classify")
@graph_arg
@params_opt(None, "A named parametrization (TP4 Table 1: sp, ntk, mf, mup) or a params "
            "file with your own rules or exponents (docs/check.md).")
@click.option("--preset", type=click.Choice(PRESET_NAMES), hidden=True,
              help="Deprecated spelling of --params NAME.")
@optimizer_opt
@click.option("--format", "fmt", type=click.Choice(("markdown", "json")), default="markdown",
              show_default=True, help="Output format; the JSON fields are in docs/check.md.")
@set_opt
def classify_cmd(graph: str, params: str | None, preset: str | None, optimizer: str,
                 fmt: str, sets: tuple[str, ...]) -> None:
    """Classify a parametrization of GRAPH as TP4 does: r, stability, nontriviality,
    feature learning or kernel regime, and which parameters are updated maximally."""
    import json

    from abccalc.verify.classify import classify, render_markdown

    if (preset is None) == (params is None):
        raise AbcError(f"classify: give --params {PARAMS_METAVAR} (exactly one of --preset, "
                       "deprecated, and --params)")
    if preset is not None:
        click.echo(f"abccalc: warning: --preset is deprecated; use --params {preset}",
                   err=True)
        params = preset
    g = _load(graph, sets)
    c = classify(g, optimizer, _params_file(g, optimizer, params).abc, params)
    text = json.dumps(c.to_dict(), indent=2, ensure_ascii=False) + "\n" if fmt == "json" \
        else render_markdown(c)
    _echo(text, nl=False)


@cli.command("check")
@graph_arg
@click.option("--params", "params", metavar=PARAMS_METAVAR,
              help="A preset (sp, ntk, mf, mup) or a params file with your own rules or "
              "exponents (docs/check.md). Leave it out to check MODEL's own parametrization.")
@optimizer_opt
@click.option("--format", "fmt", type=click.Choice(("markdown", "json")), default="markdown",
              show_default=True, help="Output format; the JSON fields are in docs/check.md.")
@click.option("--base", "bases", multiple=True, metavar="NAME=SIZE",
              help="Base of a repeat count it makes infinite (depth, docs/depth.md); the "
              "check then also flags depth counted twice in a residual branch.")
@set_opt
@click.option("--optimizer-factory", "factory", metavar="FILE.py:FUNC",
              help="MODEL: FUNC(model) returns your optimizer or param groups; the LRs are "
              "read from it at each width.")
@click.option("--lr-scales", "lr_scales", metavar="FILE",
              help="MODEL: an LR file (lr: name, glob or role -> scale rule such as 1/fan_in; "
              "docs/check.md) instead of an optimizer factory.")
def check_cmd(graph: str, params: str | None, optimizer: str, fmt: str,
              sets: tuple[str, ...], factory: str | None, lr_scales: str | None,
              bases: tuple[str, ...]) -> None:
    """Check your own parametrization of GRAPH against muP: every activation that blows up
    or vanishes, every parameter not updated maximally, and the fix in your own gauge.
    Without --params, GRAPH is a MODEL (file.py:factory, package.module:factory, hf:CONFIG)
    and its current init, multipliers and LRs are read from it (docs/use_on_your_model.md).
    Exit status 0 when it is muP, 1 when it has violations."""
    import json

    if params is None:
        from abccalc.verify.model_report import check_model, render_model_markdown

        if not _is_model(graph):
            raise AbcError(f"check {clean(graph)}: give --params sp|ntk|mf|mup|FILE for a "
                           "graph; without --params, check reads a MODEL (file.py:factory, "
                           "package.module:factory or hf:CONFIG)")
        if sets or bases:
            raise AbcError("check: --set and --base apply to a graph; a MODEL's widths are "
                           "--width")
        meta = click.get_current_context().meta
        imp = _import(graph, meta.get("abccalc.width", ()), meta.get("abccalc.example"))
        mc = check_model(imp, optimizer, factory=factory, lr_scales=lr_scales)
        res, text = mc.result, (json.dumps(mc.to_dict(), indent=2, ensure_ascii=False) + "\n"
                                if fmt == "json" else render_model_markdown(mc))
    else:
        from abccalc.verify.check import check, render_markdown

        if factory or lr_scales:
            raise AbcError("check: --optimizer-factory and --lr-scales read a MODEL's own "
                           "parametrization; leave out --params to use them")
        g = _load(graph, sets, bases)
        res = check(g, optimizer, _params_file(g, optimizer, params))
        text = json.dumps(res.to_dict(), indent=2, ensure_ascii=False) + "\n" \
            if fmt == "json" else render_markdown(res)
    _echo(text, nl=False)
    if not res.ok:
        sys.exit(1)  # a SystemExit passes through click's standalone_mode=False


@cli.command("import")
@click.argument("model")
@click.option("--width", "widths", multiple=True, metavar="NAME=B1,B2[,B3]", help=WIDTH_HELP)
@click.option("--example", type=click.Path(dir_okay=False),
              help="A torch.save file of the forward's inputs (default: guessed).")
@click.option("-o", "output", type=click.Path(dir_okay=False), help="Write the YAML here.")
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def import_cmd(model: str, widths: tuple[str, ...], example: str | None, output: str | None,
               force: bool) -> None:
    """Trace MODEL (file.py:factory, package.module:factory or hf:CONFIG) on the meta
    device at the --width values and print its graph as YAML. Loading a .py file runs it,
    as python would; hf: builds from a config, never downloading."""
    from abccalc.emit.output import write_output
    from abccalc.graph.spec import dump

    imported = _import(model, widths, example)
    write_output(dump(imported.graph), output, force)
    g = imported.graph
    click.echo(f"abccalc: {clean(model)}: {len(g.params)} parameters, {len(g.nodes)} nodes; "
               f"{len(imported.constants)} constants recorded, {len(imported.unseen)} ops "
               "not seen", err=True)


def _safe_streams() -> None:
    """Never fail on printing: characters the terminal's encoding lacks (μ, ½, → under an
    ASCII locale) are written as backslash escapes."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a detached stream
                pass


def main() -> None:
    """Entry point: run the CLI. Bad input (an AbcError or a usage error) is one line and
    exit status 2; a bug in abccalc is one line ``abccalc: internal error: ...`` and exit
    status 70 (EX_SOFTWARE), never a traceback."""
    _safe_streams()
    try:
        cli.main(standalone_mode=False)
    except AbcError as e:
        click.echo(f"abccalc: error: {clean(e)}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:  # usage errors too: one line, like every other
        ctx, names = getattr(e, "ctx", None), []
        while ctx is not None and ctx.parent is not None:
            names.insert(0, ctx.info_name)
            ctx = ctx.parent
        command = f"{' '.join(names)}: " if names else ""
        message = " ".join(e.format_message().split())
        click.echo(f"abccalc: error: {clean(command + message)} (see --help)", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(1)
    except Exception as e:  # the last resort for a bug: one line, no traceback
        click.echo(f"abccalc: internal error: {type(e).__name__}: {clean(e)} (please report "
                   "this with the command line and input)", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
