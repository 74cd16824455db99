"""The ``abccalc`` command line: a thin click adapter over the library."""

from __future__ import annotations

import sys

import click

from abccalc import __version__
from abccalc.errors import AbcError
from abccalc.explain import explain
from abccalc.output import write_output
from abccalc.parametrization import VARIANTS, parametrize
from abccalc.render import FORMATS, RENDERERS
from abccalc.solver import solve
from abccalc.spec import load_graph

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


@cli.command()
@graph_arg
@optimizer_opt
@variant_opt
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="markdown",
              show_default=True, help="Output format; the JSON schema is documented.")
@set_opt
@click.option("-o", "output", type=click.Path(dir_okay=False), help="Write to this file.")
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def table(graph: str, optimizer: str, variant: str, fmt: str, sets: tuple[str, ...],
          output: str | None, force: bool) -> None:
    """Print the μP table of GRAPH (TP5 Table 3 style, then one row per parameter)."""
    g = load_graph(graph, _pairs(sets, "--set"))
    p = parametrize(solve(g, optimizer), variant)
    write_output(RENDERERS[fmt](p), output, force)


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
