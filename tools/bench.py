"""`make bench` / `umbra bench [--json]`: run every benchmark module, print a
table, write bench/results.json. Benchmarks measure; they assert nothing."""
import importlib
import json
import os
import platform
import time

import click

from tools import ROOT
from tools.timefmt import now_iso

# Each module has run() -> list of {"name", "value", "unit"}.
BENCHES = (
    "tools.benches.scheduler",
    "tools.benches.store",
    "tools.benches.mpy_size",
    "tools.benches.sim",
    "tools.benches.simtime",
    "tools.benches.planner",
    "tools.benches.console",
    "tools.benches.console_fuzz",
    "tools.benches.agent",
    "tools.benches.link",
    "tools.benches.deploy",
    "tools.benches.faults",
    "tools.benches.board",
    "tools.benches.fleet",
    "tools.benches.constellation",
    "tools.benches.simservice",
)

RESULTS = os.path.join(ROOT, "bench", "results.json")


def run_all(only=None):
    results = []
    for module_name in BENCHES:
        area = module_name.rsplit(".", 1)[1]
        if only and area not in only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # not built yet in this checkout
            raise
        started = time.time()
        try:
            figures = module.run()
            error = None
        except Exception as exc:  # a broken bench is reported, the others still run
            figures, error = [], "%s: %s" % (type(exc).__name__, exc)
        results.append({"area": area, "figures": figures, "error": error,
                        "seconds": round(time.time() - started, 2)})
    return results


def format_value(value):
    if isinstance(value, float):
        if value >= 100:
            return "{:,.0f}".format(value)
        return "{:.3g}".format(value)
    if isinstance(value, int):
        return "{:,}".format(value)
    return str(value)


def table(results):
    lines = ["%-10s %-58s %16s  %s" % ("area", "figure", "value", "unit"), "-" * 96]
    for area in results:
        if area["error"]:
            lines.append("%-10s %-58s %16s" % (area["area"], "ERROR " + area["error"][:50], "-"))
        for fig in area["figures"]:
            lines.append("%-10s %-58s %16s  %s" % (area["area"], fig["name"][:58],
                                                    format_value(fig["value"]), fig["unit"]))
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--only", multiple=True, help="Run only these areas (repeatable).")
def bench(as_json, only):
    """Run the benchmarks; print a table and write bench/results.json."""
    results = run_all(set(only) if only else None)
    doc = {"created_at": now_iso(), "machine": platform.machine(),
           "python": platform.python_version(), "results": results}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(doc, f, indent=2)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(table(results))
        click.echo("\nwritten to %s" % os.path.relpath(RESULTS, os.getcwd()))
