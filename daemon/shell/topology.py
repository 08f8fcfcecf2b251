"""Topology: which stages share a process, and which rings that implies.

The tick's path is fixed (feed → features → infer → risk → router, with market
data also to risk and router, and exec reports back to risk).  A ring exists
exactly where an edge crosses a process boundary; inside a process the
records are handed from one core to the next by a direct call.
"""
from __future__ import annotations

from dataclasses import dataclass

from alphad.ipc.control import STAGES

PRESETS: dict[str, list[list[str]]] = {
    "five": [["feed"], ["features"], ["infer"], ["risk"], ["router"]],
    "fused": [["feed", "features", "infer", "risk"], ["router"]],
    "single": [["feed", "features", "infer", "risk", "router"]],
}

#: record kind -> (producing stage, consuming stages).  Consumers are listed in the
#: order a process hands a record to them: router and risk see a quote before the
#: features it triggers can reach them, so an order fills against the latest book.
EDGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "md": ("feed", ("router", "risk", "features")),
    "features": ("features", ("infer",)),
    "signals": ("infer", ("risk",)),
    "orders": ("risk", ("router",)),
    "exec": ("router", ("risk",)),
}

#: Consumers that read a ring without being woken by it: risk and router only need the
#: latest marks and quotes, which they drain each time their primary input (signals,
#: orders) wakes them.  Waking them on every quote would put two extra processes on
#: the CPUs exactly when the features stage needs one (measured: 105 µs feed→features
#: p50 with three wake-ups per quote on two cores, see BENCHMARKS.md).
PASSIVE = {("md", "risk"), ("md", "router")}

#: Market data may be overwritten (a late consumer resyncs to fresh quotes);
#: everything downstream of a decision must never be lost.
POLICY = {"md": "overwrite", "features": "lossless", "signals": "lossless", "orders": "lossless", "exec": "lossless"}


@dataclass(frozen=True)
class RingSpec:
    kind: str
    producer: str
    consumers: tuple[str, ...]
    policy: str
    capacity: int


@dataclass(frozen=True)
class Plan:
    name: str
    processes: tuple[tuple[str, ...], ...]
    rings: dict[str, RingSpec]

    def process_index(self, stage: str) -> int:
        for k, group in enumerate(self.processes):
            if stage in group:
                return k
        raise KeyError(stage)

    def process_name(self, k: int) -> str:
        return self.processes[k][0]

    def find_process(self, name: str) -> int:
        """Index of the process named by its first stage (``features``) or by any of its stages."""
        for k, group in enumerate(self.processes):
            if name == group[0] or name in group:
                return k
        raise ValueError(f"topology {self.name!r} has no process {name!r}; its processes are "
                         f"{[g[0] for g in self.processes]}")


#: Rings the supervisor's journal thread also reads (as consumer ``journal``).
JOURNALED = ("orders", "exec")

#: Side channels to the journal alone (producer stage, policy): risk's denials, the
#: router's arrival quotes (for TCA).  Overwrite:
#: a stalled journal must never stall the gate; lost records are counted as overruns.
JOURNAL_ONLY = {"denials": ("risk", "overwrite"), "arrivals": ("router", "overwrite")}


def plan(topology_name: str, ring_sizes, *, journal: bool = False) -> Plan:
    if topology_name not in PRESETS:
        raise ValueError(f"topology must be one of {sorted(PRESETS)}, was {topology_name!r}")
    processes = tuple(tuple(g) for g in PRESETS[topology_name])
    where = {s: k for k, g in enumerate(processes) for s in g}
    assert sorted(where) == sorted(STAGES)
    rings = {}
    for kind, (producer, consumers) in EDGES.items():
        remote = tuple(c for c in consumers if where[c] != where[producer])
        if remote:
            if journal and kind in JOURNALED:
                remote = remote + ("journal",)
            rings[kind] = RingSpec(kind, producer, remote, POLICY[kind], getattr(ring_sizes, kind))
    if journal:
        for kind, (producer, policy) in JOURNAL_ONLY.items():
            rings[kind] = RingSpec(kind, producer, ("journal",), policy, getattr(ring_sizes, kind))
    return Plan(topology_name, processes, rings)


def segment_names(prefix: str) -> dict[str, str]:
    """Names of every /dev/shm segment of one instance (rings are ``ring.<kind>``)."""
    return {
        "control": f"{prefix}.control",
        "metrics": f"{prefix}.metrics",
        "doorbells": f"{prefix}.doorbells",
        "risk_state": f"{prefix}.risk_state",
        "router_state": f"{prefix}.router_state",
        "feature_list": f"{prefix}.feature_list",
        "drift": f"{prefix}.drift",
        "gateway": f"{prefix}.gateway",  # a live venue's gateway process (router.venue alpaca)
        "ring.venue_orders": f"{prefix}.ring.venue_orders",
        "ring.venue_exec": f"{prefix}.ring.venue_exec",
        **{f"ring.{kind}": f"{prefix}.ring.{kind}" for kind in (*EDGES, *JOURNAL_ONLY)},
    }
