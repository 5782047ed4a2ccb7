"""The numba options of every pcprep kernel, in one place."""

from __future__ import annotations

__all__ = ["JIT"]

#: Serial and GIL-free: parallelism is across files (threads of `pcprep.preprocess_dataset`);
#: cached on disk so a new process does not compile again; every kernel also runs through
#: ``.py_func`` in the tests.
JIT = {"nopython": True, "nogil": True, "cache": True}
