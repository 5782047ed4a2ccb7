"""``python -m threedsr_cli`` (also what ``torchrun -m threedsr_cli`` launches on each rank)."""

import sys

from threedsr_cli.errors import EXIT_BAD_INPUT, missing_module

try:
    from threedsr_cli.app import main
except ModuleNotFoundError as exc:
    # tools/portable.sh runs this module in a Python the user brings, which may lack typer or
    # rich; pip-installed entry points always have them.
    hint = missing_module(exc)
    if hint is None:
        raise
    sys.stderr.write(f"error: {hint}\n")
    raise SystemExit(EXIT_BAD_INPUT) from None

main()
