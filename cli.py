"""The ``abccalc`` command line: a thin click adapter over the library."""

from __future__ import annotations

import json
import sys

import click

from abccalc import __version__
from abccalc.codegen import generate, load_parametrization, read_names
from abccalc.coordcheck import LOSSES, check_plot_path, check_widths, import_torch
from abccalc.coordcheck import as_dict as coord_dict
from abccalc.coordcheck import markdown as coord_markdown
from abccalc.coordcheck import plot as plot_coordcheck
from abccalc.coordcheck import run as run_coordcheck
from abccalc.errors import AbcError
from abccalc.explain import explain
from abccalc.graph import Graph
from abccalc.output import write_output
from abccalc.parametrization import (
    VARIANTS,
    Parametrization,
    parametrize,
    parametrize_all,
    parametrize_auto,
    parse_shifts,
)
from abccalc.render import ALL_RENDERERS, FORMATS, FORMS, RENDERERS, View
from abccalc.solver import solve
from abccalc.spec import load_builder, load_graph

OPTIMIZERS = ("sgd", "adam")


def _pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise AbcError(f"{flag} {item}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


graph_arg = click.argument("graph", type=click.Path(dir_okay=False))
optimizer_opt = click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam",
                             show_default=True, help="Optimizer class: SGD-like or Adam-like.")
variant_opt = click.option("--variant", type=click.Choice(VARIANTS), default="table3",
                           show_default=True, help="Gauge (equivalent formulation) to print.")
set_opt = click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                       help="Override a value (e.g. n_layer) or a dim size; repeatable.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="abccalc")
def cli() -> None:
    """Derive μP (Tensor Programs IV/V) for a computation graph, symbolically."""


def _load_with_base(path: str, sets: dict[str, str], bases: dict[str, str]) -> Graph:
    """Load GRAPH with ``--set``, then ``--base`` overrides of infinite dims' base sizes (a
    ``times`` dim follows the dim it is a multiple of)."""
    builder = load_builder(path, sets)
    g = builder.build()
    for name, value in bases.items():
        dim = g.dims.get(name)
        where = f"{g.source}: --base {name}={value}"
        if dim is None or not dim.infinite or dim.of is not None:
            settable = ", ".join(d.name for d in g.dims.values() if d.infinite and not d.of)
            why = (f"unknown dim '{name}'" if dim is None else
                   f"'{name}' is finite (size {dim.size})" if not dim.infinite else
                   f"'{name}' is {dim.times} × {dim.of} and follows its base")
            raise AbcError(f"{where}: {why}; --base sets one of {settable or '(none)'}")
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            raise AbcError(f"{where}: the base size must be a positive integer")
        builder.set(name, value)
    return builder.build() if bases else g


@cli.command()
@graph_arg
@optimizer_opt
@click.option("--variant", type=click.Choice((*VARIANTS, "all", "auto")), default="table3",
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
              help="Base size of an infinite dim (for --form ratio); repeatable.")
@set_opt
@click.option("-o", "output", type=click.Path(dir_okay=False), help="Write to this file.")
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def table(graph: str, optimizer: str, variant: str, fmt: str, form: str,
          shifts: tuple[str, ...], bases: tuple[str, ...], sets: tuple[str, ...],
          output: str | None, force: bool) -> None:
    """Print the μP table of GRAPH (TP5 Table 3 style, then one row per parameter)."""
    g = _load_with_base(graph, _pairs(sets, "--set"), _pairs(bases, "--base"))
    theta = parse_shifts(g, _pairs(shifts, "--shift"))
    analysis = solve(g, optimizer)
    view = View(form, show_base=bool(bases))
    if variant == "all":
        text = ALL_RENDERERS[fmt](parametrize_all(analysis, VARIANTS, theta), view)
    elif variant == "auto":
        p, skipped = parametrize_auto(analysis, theta)
        text = RENDERERS[fmt](p, View(form, bool(bases), skipped))
    else:
        text = RENDERERS[fmt](parametrize(analysis, variant, theta), view)
    write_output(text, output, force)


@cli.command()
@graph_arg
@click.option("--optimizer", type=click.Choice(("sgd", "adam", "adamw")), required=True,
              help="The optimizer the code is for (adamw behaves as adam, TP5 B.3).")
@click.option("--variant", type=click.Choice((*VARIANTS, "auto")), default="table3",
              show_default=True, help="Gauge; auto: the first of table3, table8, table9, "
              "unit without a tied-weight conflict.")
@click.option("--base", "bases", multiple=True, metavar="NAME=SIZE",
              help="Base size of an infinite dim (where the code equals SP); repeatable.")
@click.option("--params", "params_preset", default="mup", show_default=True,
              metavar="mup|sp|FILE",
              help="Generate muP, the standard parametrization (sp), or a params file's.")
@click.option("--model", is_flag=True, help="Also emit class Model(torch.nn.Module).")
@click.option("--names", type=click.Path(dir_okay=False),
              help="YAML map: graph parameter -> module parameter name.")
@set_opt
@click.option("-o", "output", type=click.Path(dir_okay=False), required=True,
              help="The .py file to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def codegen(graph: str, optimizer: str, variant: str, bases: tuple[str, ...],
            params_preset: str, model: bool, names: str | None, sets: tuple[str, ...],
            output: str, force: bool) -> None:
    """Write a standalone PyTorch module (init_, param_groups, multipliers) for GRAPH."""
    g = _load_with_base(graph, _pairs(sets, "--set"), _pairs(bases, "--base"))
    p = load_parametrization(g, optimizer, variant, params_preset)
    write_output(generate(p, names=read_names(names) if names else None, model=model,
                          source=graph), output, force)


def _trained(graph: str, sets: tuple[str, ...], optimizer: str, variant: str,
             params: str, widths: str) -> tuple[Parametrization, list[int], str]:
    """What coordcheck and verify train: the parametrization, the widths (checked before
    any work, as is torch) and the name to report."""
    try:
        ws = [int(w) for w in widths.split(",")]
    except ValueError:
        raise AbcError(f"--widths {widths}: expected comma-separated integers") from None
    check_widths(ws)
    import_torch()
    p = load_parametrization(load_graph(graph, _pairs(sets, "--set")), optimizer, variant,
                             params)
    return p, ws, f"mup ({p.variant})" if params == "mup" else params


@cli.command()
@graph_arg
@click.option("--variant", type=click.Choice((*VARIANTS, "auto")), default="table8",
              show_default=True, help="Gauge of the muP code (all gauges train alike).")
@click.option("--optimizer", type=click.Choice(("sgd", "adam")), default="adam",
              show_default=True, help="Optimizer to train with.")
@click.option("--params", "params_file", metavar="sp|FILE",
              help="Check SP ('sp') or a params file instead of muP.")
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
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG (matplotlib).")
@click.option("--format", "fmt", type=click.Choice(("markdown", "json")), default="markdown",
              show_default=True)
@set_opt
def coordcheck(graph: str, variant: str, optimizer: str, params_file: str | None,
               widths: str, steps: int, lr: float | None, seed: int, batch: int | None,
               loss: str,
               plot: str | None, fmt: str, sets: tuple[str, ...]) -> None:
    """Train the generated model at several widths and report which activations grow
    or shrink with width (slopes of RMS(x_t - x_0) against width, log-log).
    Exit 1 unless every activation is flat (docs/verdicts.md)."""
    if plot:
        check_plot_path(plot)
    p, ws, name = _trained(graph, sets, optimizer, variant, params_file or "mup", widths)
    result = run_coordcheck(p, ws, steps=steps, lr=lr, seed=seed, batch=batch, loss=loss,
                            name=name)
    if plot:
        plot_coordcheck(result, plot)
    click.echo(json.dumps(coord_dict(result), indent=2) if fmt == "json"
               else coord_markdown(result), nl=fmt == "json")
    if not result.flat:
        sys.exit(1)


@cli.command()
@graph_arg
@click.option("--params", "params_file", default="mup", show_default=True,
              metavar="mup|sp|FILE", help="The parametrization to verify.")
@click.option("--variant", type=click.Choice((*VARIANTS, "auto")), default="table8",
              show_default=True, help="Gauge of the muP code (with --params mup).")
@click.option("--optimizer", type=click.Choice(("sgd", "adam")), default="adam",
              show_default=True)
@click.option("--widths", default="64,128,256,512,1024", show_default=True)
@click.option("--steps", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--format", "fmt", type=click.Choice(("markdown", "json")), default="markdown",
              show_default=True)
@set_opt
def verify(graph: str, params_file: str, variant: str, optimizer: str, widths: str,
           steps: int, seed: int, fmt: str, sets: tuple[str, ...]) -> None:
    """Check a parametrization of GRAPH symbolically (check) and empirically (coordcheck):
    one verdict per parameter and activation, with the fix. Exit 1 unless both pass."""
    from abccalc.verify import as_dict, markdown, verify

    p, ws, name = _trained(graph, sets, optimizer, variant, params_file, widths)
    result = verify(p, run_coordcheck(p, ws, steps=steps, seed=seed, name=name))
    click.echo(json.dumps(as_dict(result), indent=2, ensure_ascii=False) if fmt == "json"
               else markdown(result, p), nl=fmt == "json")
    if not result.ok:
        sys.exit(1)


@cli.command("explain")
@graph_arg
@click.argument("param")
@optimizer_opt
@variant_opt
@set_opt
def explain_cmd(graph: str, param: str, optimizer: str, variant: str,
                sets: tuple[str, ...]) -> None:
    """Print the derivation of PARAM's exponents: each constraint and the sizes it used."""
    g = load_graph(graph, _pairs(sets, "--set"))
    click.echo(explain(parametrize(solve(g, optimizer), variant), param), nl=False)


def _classify_source(g, preset: str | None, params: str | None, optimizer: str):
    """The abc assignment of ``--preset`` or ``--params`` (exactly one), and its name."""
    from abccalc.calculus import Optimizer
    from abccalc.paramsfile import load_params
    from abccalc.presets import PRESETS

    if (preset is None) == (params is None):
        raise AbcError("classify: give exactly one of --preset (sp, ntk, mf, mup) or "
                       "--params FILE")
    if preset is not None:
        return PRESETS[preset](g, Optimizer.parse(optimizer)), preset
    return load_params(params, g).abc, params


@cli.command("classify")
@graph_arg
@click.option("--preset", type=click.Choice(("sp", "ntk", "mf", "mup")),
              help="A named parametrization (TP4 Table 1): SP, NTP, MFP or muP.")
@click.option("--params", "params", type=click.Path(dir_okay=False),
              help="A params file with your own rules or exponents (docs/check.md).")
@optimizer_opt
@click.option("--format", "fmt", type=click.Choice(("markdown", "json")), default="markdown",
              show_default=True, help="Output format; the JSON fields are in docs/check.md.")
@set_opt
def classify_cmd(graph: str, preset: str | None, params: str | None, optimizer: str,
                 fmt: str, sets: tuple[str, ...]) -> None:
    """Classify a parametrization of GRAPH as TP4 does: r, stability, nontriviality,
    feature learning or kernel regime, and which parameters are updated maximally."""
    import json

    from abccalc.classify import classify, render_markdown

    g = load_graph(graph, _pairs(sets, "--set"))
    abc, name = _classify_source(g, preset, params, optimizer)
    c = classify(g, optimizer, abc, name)
    text = json.dumps(c.to_dict(), indent=2, ensure_ascii=False) + "\n" if fmt == "json" \
        else render_markdown(c)
    click.echo(text, nl=False)


@cli.command("check")
@graph_arg
@click.option("--params", "params", type=click.Path(dir_okay=False), required=True,
              help="A params file with your own rules or exponents (docs/check.md).")
@optimizer_opt
@click.option("--format", "fmt", type=click.Choice(("markdown", "json")), default="markdown",
              show_default=True, help="Output format; the JSON fields are in docs/check.md.")
@set_opt
def check_cmd(graph: str, params: str, optimizer: str, fmt: str,
              sets: tuple[str, ...]) -> None:
    """Check your own parametrization of GRAPH against muP: every activation that blows up
    or vanishes, every parameter not updated maximally, and the fix in your own gauge.
    Exit status 0 when it is muP, 1 when it has violations."""
    import json

    from abccalc.check import check, render_markdown
    from abccalc.paramsfile import load_params

    g = load_graph(graph, _pairs(sets, "--set"))
    res = check(g, optimizer, load_params(params, g))
    text = json.dumps(res.to_dict(), indent=2, ensure_ascii=False) + "\n" if fmt == "json" \
        else render_markdown(res)
    click.echo(text, nl=False)
    if not res.ok:
        sys.exit(1)  # a SystemExit passes through click's standalone_mode=False


def main() -> None:
    """Entry point: run the CLI, turning an AbcError into one line and exit status 2."""
    try:
        cli.main(standalone_mode=False)
    except AbcError as e:
        click.echo(f"abccalc: error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(1)


if __name__ == "__main__":
    main()
