"""One helper for the compiled entry points every stage binds while warming, and the base
type of the stages' compiled state objects.

Reference counts: Numba counts references to every array it reads from a state object or
passes on, with an atomic add and subtract (about 7 ns a pair here).  On the backtest's
path that was more than half the time per event, so the leaf kernels (the venue's book and
queues, the gate, the portfolio, the features, the tree evaluator, the rings) compile with
``_nrt=False``: they only read and write arrays their caller holds, allocate nothing (Numba
refuses to compile an allocation there) and return no array (checked by
``tests/unit/test_kernels_without_refcounts.py``).  Functions that read a state object's
fields keep the runtime: a field read needs it.
"""
from __future__ import annotations

from numba import types, typeof


class StructRefType(types.StructRef):
    """Base of every stage's compiled state type: fields are typed without literal values,
    so a state built from ``1`` and one built from ``2`` are the same type (one compile)."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


def bind(dispatcher, *args):
    """The compiled specialisation of ``dispatcher`` for these arguments' types.

    A dispatcher call first resolves the Numba type of every argument (~0.1 µs per
    plain array, ~0.2 µs per structured array, and more when that Python code is cold
    after a sleep).  A stage's argument types never change after start-up, so it binds
    each kernel once, while warming (which also compiles it or loads it from the cache
    before READY), and then calls the entry point directly.  Callers must pass exactly
    these types.
    """
    return dispatcher.compile(tuple(typeof(a) for a in args))
