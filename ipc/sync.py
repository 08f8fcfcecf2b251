"""Memory fences and futex calls usable inside ``@njit`` code.

The rings are lock-free between processes, so two things must hold that numpy
alone does not promise:

* ordering: LLVM may reorder plain loads and stores to different addresses.
  :func:`fence` emits an LLVM ``fence seq_cst``, which is both a compiler barrier
  and (on x86-64) an ``mfence``, needed for the store→load ordering of the
  sleeping-flag handshake (Dekker pattern) in :mod:`alphad.ipc.doorbell`.
* kernel wake-ups between processes that share nothing but a mapping: a futex
  on a 32-bit word of the shared segment.  Without ``FUTEX_PRIVATE_FLAG`` the
  kernel keys the wait queue on the physical page, so it works across
  processes started independently (by systemd, say) with no fd handed over.

Both are called from njit code through ctypes, which Numba compiles to a
direct C call (no Python object on the way).
"""
from __future__ import annotations

import platform

from numba import njit, types
from numba.extending import intrinsic

if platform.machine() not in ("x86_64", "AMD64"):
    raise ImportError(
        f"alphad.ipc needs x86-64 (the futex syscall number and the ordering model are x86-64's); "
        f"this machine is {platform.machine()}"
    )

#: syscall number of futex(2) on x86-64.
SYS_FUTEX = 202
FUTEX_WAIT = 0
FUTEX_WAKE = 1
INT32_MAX = 2**31 - 1

# syscall(2) is declared by symbol name, not through a ctypes pointer, so Numba can
# cache the compiled callers (a ctypes pointer is a "dynamic global" that defeats
# the cache).  glibc's syscall() is a register shuffle in assembly that never uses
# va_arg, so calling it with a fixed all-int64 signature is safe on x86-64.
_syscall = types.ExternalFunction("syscall", types.int64(*([types.int64] * 7)))


@intrinsic
def fence(typingctx):
    """Full memory fence (compiler barrier + mfence)."""

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, _nrt=False)
def futex_wait(addr, expected, timespec_addr):
    """Sleep while the int32 at ``addr`` equals ``expected``.

    ``timespec_addr`` points at a ``struct timespec`` (two int64: s, ns) holding
    the relative timeout, or is 0 for none.  Returns 0 when woken, -1 on timeout,
    EAGAIN (value already changed) or EINTR; callers re-check their condition either way.
    """
    return _syscall(SYS_FUTEX, addr, FUTEX_WAIT, expected, timespec_addr, 0, 0)


@njit(cache=True, _nrt=False)
def futex_wake(addr, count):
    """Wake up to ``count`` waiters on the int32 at ``addr``; returns how many woke."""
    return _syscall(SYS_FUTEX, addr, FUTEX_WAKE, count, 0, 0, 0)


CLOCK_MONOTONIC = 1


@intrinsic
def _clock_gettime_ns(typingctx, clock_id):
    """Inline ``clock_gettime(clock_id)`` into a stack timespec; returns ns as int64."""
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        ts_type = ir.LiteralStructType([i64, i64])
        fnty = ir.FunctionType(i32, [i32, ts_type.as_pointer()])
        fn = cgutils_get_or_insert_function(builder.module, fnty, "clock_gettime")
        ts = builder.alloca(ts_type)
        cid = builder.trunc(args[0], i32)
        builder.call(fn, [cid, ts])
        sec = builder.load(builder.gep(ts, [i32(0), i32(0)]))
        nsec = builder.load(builder.gep(ts, [i32(0), i32(1)]))
        return builder.add(builder.mul(sec, i64(1_000_000_000)), nsec)

    return types.int64(clock_id), codegen


def cgutils_get_or_insert_function(module, fnty, name):
    from numba.core import cgutils

    return cgutils.get_or_insert_function(module, fnty, name)


@njit(cache=True, _nrt=False)
def monotonic_ns():
    """CLOCK_MONOTONIC in ns from inside njit code (the clock ``time.monotonic_ns`` reads)."""
    return _clock_gettime_ns(CLOCK_MONOTONIC)
