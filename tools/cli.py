"""The `umbra` command. Each sub-command lives in its own module and is
imported only when it is used, so `umbra --help` stays fast and one broken
area does not take the others down."""
import importlib
import os

import click

import tools  # noqa: F401  (puts firmware/, lib/, sim/ on sys.path)
from tools import clierrors

# name -> (module, attribute, one-line help)
COMMANDS = {
    "console": ("tools.console.cli", "console", "Run the ground Console (HTTP API on SQLite)."),
    "keys": ("tools.console.cli", "keys", "Create API keys."),
    "satellites": ("tools.console.cli", "satellites", "Satellite catalog on a Console."),
    "submit": ("tools.console.cli", "submit", "Plan a job and create a deployment on a Console."),
    "events": ("tools.console.cli", "events", "Print or follow a deployment's events."),
    "plan": ("tools.plan_cli", "plan", "Plan a job; print the plan and its predicted events."),
    "sim": ("tools.sim_cli", "sim", "Simulated satellites: windows and state timelines."),
    "agent": ("tools.agent_cli", "agent", "Run the firmware agent under the MicroPython unix port."),
    "demo": ("tools.demo", "demo", "The main job: Console + simulated satellite + example job."),
    "bench": ("tools.bench", "bench", "Run the benchmarks; write bench/results.json."),
    "faults": ("tools.faults_cli", "faults", "Fault-injection campaigns."),
    "bridge": ("tools.bridge", "bridge", "Ground-station bridge: serial link <-> Console."),
    "deploy": ("tools.deploy", "deploy", "Compile to .mpy and copy the firmware to a board."),
    "plot": ("tools.plot", "plot", "Draw a deployment's or plan's timeline."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module_name, attr, _ = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return _unavailable(name)
            raise
        return getattr(module, attr)

    def invoke(self, ctx):
        """Run the command; what it did not foresee is still one line, never a
        traceback (exit statuses: tools/clierrors.py)."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(clierrors.INTERRUPTED)
        except Exception as exc:
            if os.environ.get("UMBRA_TRACEBACK"):
                raise
            error = click.ClickException("internal error: %s: %s (UMBRA_TRACEBACK=1 shows "
                                         "where)" % (type(exc).__name__, exc))
            error.exit_code = clierrors.INTERNAL
            raise error

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name):
    @click.command(name=name, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args):
        raise click.ClickException("'umbra %s' is not built yet in this checkout" % name)

    return cmd


@click.group(cls=LazyGroup)
@click.version_option("0.1.0", prog_name="umbra")
def main():
    """Umbra: on-board Operator Agent for small satellites, and its ground side."""


if __name__ == "__main__":
    main()
