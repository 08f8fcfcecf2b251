"""A line on stderr for every Numba compile after a stage's warm-up.

The warm-up compiles (or loads from the cache) every kernel a stage runs, so that no tick
waits for LLVM.  A kernel first called later, with a type or on a path the warm-up missed,
is compiled when that tick arrives: a stall of tens to hundreds of milliseconds, and memory
the process keeps (LLVM's).  Each such compile is named here so it can be warmed.
"""
from __future__ import annotations

import sys

from numba.core import event


class _LateCompiles(event.Listener):
    def __init__(self, stage: str) -> None:
        self.stage = stage

    def on_start(self, ev) -> None:
        fn = getattr(ev.data.get("dispatcher"), "py_func", None)
        name = f"{fn.__module__}.{fn.__qualname__}" if fn is not None else "?"
        print(f"alphad stage {self.stage}: Numba compiled {name}{ev.data.get('args')} after the warm-up "
              "(a stall on the hot path: warm it at start)", file=sys.stderr, flush=True)

    def on_end(self, ev) -> None:
        pass


def watch(stage: str) -> event.Listener:
    """From now on, name every compile of this process (call after the warm-up); returns the
    listener (``numba.core.event.unregister("numba:compile", it)`` stops it)."""
    listener = _LateCompiles(stage)
    event.register("numba:compile", listener)
    return listener
