"""The ``threedsr-cli`` Typer application: the commands of :mod:`threedsr_cli.app_make` and
:mod:`threedsr_cli.app_use`, the root options and the entry point.

Module import stays light (typer, rich): torch and the threedsr libraries are imported inside the
commands, so ``threedsr-cli --help`` starts in well under a second.
"""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer
import typer.core

from threedsr_cli import __version__, app_make, app_use
from threedsr_cli.compat import check_typer_click
from threedsr_cli.helptext import EPILOGS


class _HelpWithoutMetavar:
    """``--help`` says it takes no value, as every flag of ours does (``metavar=""``): newer
    Typers show ``<bool>`` beside it otherwise."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class _Group(_HelpWithoutMetavar, typer.core.TyperGroup):
    pass


class _Command(_HelpWithoutMetavar, typer.core.TyperCommand):
    pass


app = typer.Typer(
    cls=_Group,
    name="threedsr-cli",
    help=(
        "Surface anomaly detection on RGB + depth scans with two methods: the descriptor memory "
        "(a kNN over hand-made descriptors; fits in minutes on a CPU, the default) and the 3DSR "
        "network (Zavrtanik et al., WACV 2024; GPU-scale training), or both fused.\n\n"
        "Start with [bold]threedsr-cli demo[/bold]: it generates a synthetic dataset, fits and "
        "evaluates RGB+D and RGB-only detectors on the CPU and writes a report."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"threedsr-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
            metavar="",
        ),
    ] = False,
) -> None:
    """Surface anomaly detection on RGB + depth scans: the descriptor memory or 3DSR."""


# Registered in the order --help lists them.
for _name, _command in (
    ("demo", app_make.demo),
    ("train-dada", app_make.train_dada),
    ("train", app_make.train),
    ("eval", app_use.evaluate),
    ("pack", app_use.pack),
    ("predict", app_use.predict),
    ("export", app_use.export),
):
    app.command(_name, epilog=EPILOGS[_name], cls=_Command)(_command)


def main() -> None:
    """Console entry point (also ``python -m threedsr_cli``)."""
    check_typer_click()  # before Typer builds the command line, where a bad pair fails
    try:
        app(prog_name="threedsr-cli")  # not "python -m threedsr_cli" (tools/portable.sh)
    finally:
        # The command has ended and set its exit code. A Ctrl-C during the teardown at exit
        # (torch's takes a moment) would otherwise kill the process by SIGINT: exit 130 with no
        # message, after a run that finished.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    main()
