"""The ``topology:``, ``rings:`` and ``shm:`` sections: how the stages are grouped into
processes, how each process waits and where it runs, and the shared memory between them
(:mod:`alphad.daemon.shell`)."""
from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from alphad.ipc.control import STAGES as _STAGES

from alphad.daemon.config_base import Base, NonNegInt

PowerOfTwo = Annotated[int, Meta(ge=2, le=1 << 24)]
WaitStrategy = Literal["spin", "yield", "block"]

#: The keys ``placement: auto`` chooses when config.yaml leaves them out, and what they are
#: with ``placement: manual`` when left out (not pinned, CFS, no idle poll, no keep-warm).
PLACEMENT_KEYS = ("cpus", "sched", "idle_poll", "infer_keep_warm_us")
MANUAL_DEFAULTS = {"cpus": {}, "sched": "other", "idle_poll": False, "infer_keep_warm_us": 0}


class Topology(Base):
    """Which stages share a process, and how each process waits and is scheduled.

    ``name``: ``five`` (one process per stage), ``fused`` (feed+features+infer+risk
    in one process, router apart) or ``single`` (everything in one process on a
    simulated clock: the backtest).

    ``cpus``, ``sched``, ``idle_poll`` and ``infer_keep_warm_us`` are the placement.  Left
    out (or ``null``), ``placement`` decides them: ``auto`` picks the best measured placement
    this host allows when ``alphad run`` starts (daemon/shell/affinity.py,
    :func:`~alphad.daemon.shell.affinity.choose_placement`); ``manual`` leaves them off.  A
    key that is set always wins over ``auto``.  Stage processes see the resolved values.
    """

    name: Literal["five", "fused", "single"] = "five"
    wait: WaitStrategy = "block"
    #: Per-process overrides of ``wait``, keyed by the process's first stage.
    wait_overrides: dict[str, WaitStrategy] = {}
    #: ``auto``: at start the supervisor measures the host (CPUs this process may use,
    #: isolated CPUs, whether SCHED_FIFO is permitted) and fills in each placement key
    #: below that is not set, from the placements measured fastest (README.md,
    #: BENCHMARKS.md runs E-H).  ``manual``: a key not set is off.
    placement: Literal["auto", "manual"] = "auto"
    #: CPU to pin each process to, keyed by the process's first stage (``{}``: not pinned).
    cpus: dict[str, NonNegInt] | None = None
    #: ``other`` (CFS) or ``fifo`` (SCHED_FIFO; needs CAP_SYS_NICE, else a warning).
    sched: Literal["other", "fifo"] | None = None
    #: SCHED_FIFO priority of the feed; each later process on the tick's path gets one
    #: more (features 11, infer 12, ...), so a woken downstream stage preempts its waker.
    priority: Annotated[int, Meta(ge=1, le=95)] = 10
    #: Start a SCHED_IDLE busy-poll process per CPU so idle vCPUs never halt (see
    #: daemon/shell/idle_poll.py); for VMs whose kernel boot line cannot say ``idle=poll``.
    idle_poll: bool | None = None
    #: Keep the inference step warm: while the process hosting ``infer`` is idle, run the
    #: step on a scratch copy of its last row every this many µs (0: off).  A stage that
    #: sleeps between spaced ticks finds the model's code and data evicted; see
    #: README.md "Keeping the model warm" for what it buys and costs.
    infer_keep_warm_us: NonNegInt | None = None

    def __post_init__(self):
        for key, table in (("cpus", self.cpus or {}), ("wait_overrides", self.wait_overrides)):
            unknown = sorted(set(table) - set(_STAGES))
            if unknown:
                raise ValueError(f"topology.{key} expected keys among {list(_STAGES)} (a process's first stage), "
                                 f"found {unknown}")

    def unset_placement_keys(self) -> list[str]:
        """The placement keys config.yaml left to ``placement`` (``None``)."""
        return [k for k in PLACEMENT_KEYS if getattr(self, k) is None]


class Rings(Base):
    md: PowerOfTwo = 4096
    features: PowerOfTwo = 1024
    signals: PowerOfTwo = 1024
    orders: PowerOfTwo = 1024
    exec: PowerOfTwo = 1024
    denials: PowerOfTwo = 1024
    arrivals: PowerOfTwo = 1024


class Shm(Base):
    #: Prefix of every /dev/shm segment of this instance (two instances need two prefixes).
    prefix: str = "alphad"
