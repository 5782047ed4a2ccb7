"""``python -m threedsr_cli`` (also what ``torchrun -m threedsr_cli`` launches on each rank)."""

from threedsr_cli.app import main

main()
