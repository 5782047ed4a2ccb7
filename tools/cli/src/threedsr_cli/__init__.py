"""threedsr-cli: the command line of the threedsr toolkit (demo, train-dada, train, eval, predict).

Only this package imports typer, rich and matplotlib; torch and the libraries are imported lazily
inside the commands so ``threedsr-cli --help`` starts fast.
"""

import os

# OpenMP threads that spin while waiting make torch on a shared or oversubscribed CPU up to 15x
# slower (measured: a 3x3 conv at 2 threads, 52 ms spinning vs 4.5 ms passive, on a busy 2-core
# machine). torch is imported only inside commands, after this; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
