"""One helper for the compiled entry points every stage binds while warming."""
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
