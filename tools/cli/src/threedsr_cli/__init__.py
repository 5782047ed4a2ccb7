"""threedsr-cli: the command line of the threedsr toolkit (demo, train-dada, train, eval, predict).

Only this package imports typer, rich and matplotlib; torch and the libraries are imported lazily
inside the commands so ``threedsr-cli --help`` starts fast.
"""

__version__ = "0.1.0"
