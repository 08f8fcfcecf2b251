"""CPU pinning and scheduling policy: the placement of the stage processes.

``topology.placement: auto`` (the shipped default): at start the supervisor probes the host
(:func:`probe_host`: the CPUs it may run on, the isolated CPUs, whether SCHED_FIFO is
permitted) and :func:`choose_placement`, a pure function of those facts, picks the placement
measured fastest that the host allows.  :func:`resolve_placement` fills the placement keys
config.yaml left out with that choice (a key that is set wins), and the stage processes see
the result in the effective config.  ``manual`` leaves unset keys off.  Each stage process
then applies its own share with :func:`apply_placement`.
"""
from __future__ import annotations

import os
from typing import Iterable, NamedTuple, Sequence

import msgspec

from alphad.ipc.frames import Placement

from alphad.daemon.shell.config import MANUAL_DEFAULTS, PLACEMENT_KEYS
from alphad.daemon.shell.topology import PRESETS

#: ``infer_keep_warm_us`` that ``auto`` picks: the figure of every fastest measured placement
#: (BENCHMARKS.md runs F-H).
AUTO_KEEP_WARM_US = 100
ISOLATED_PATH = "/sys/devices/system/cpu/isolated"


def fifo_priority(topology, position: int) -> int:
    """SCHED_FIFO priority of the process at ``position`` on the tick's path (feed is 0).

    Downstream processes rank higher: when a stage wakes the next one on a shared
    CPU, the woken stage preempts its waker at once, so a tick runs all the way to
    the router before upstream bookkeeping resumes. With equal priorities the waker
    keeps the CPU until it blocks, and on the 2-vCPU host that cost 213 against 141 µs
    tick-to-trade p50 (five/block, all on one CPU, BENCHMARKS.md run E).
    """
    p = topology.priority + position
    if p > 99:
        raise ValueError(f"topology.priority {topology.priority} + position {position} on the tick's path is {p}; "
                         f"SCHED_FIFO priorities end at 99, so lower topology.priority")
    return p


def apply_placement(topology, process_name: str, position: int = 0) -> str | None:
    """Pin to ``topology.cpus[process_name]`` and apply ``topology.sched``.

    ``position`` is the process's place on the tick's path (see ``fifo_priority``).
    Returns a warning text when the host refuses (e.g. SCHED_FIFO without
    CAP_SYS_NICE); the stage then runs on the default policy rather than not at all.
    """
    cpu = (topology.cpus or {}).get(process_name)
    if cpu is not None:
        available = os.sched_getaffinity(0)
        if cpu not in available:
            raise ValueError(f"topology.cpus.{process_name} is {cpu} but this process may run only on CPUs {sorted(available)}")
        os.sched_setaffinity(0, {cpu})
    if topology.sched == "fifo":
        priority = fifo_priority(topology, position)
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except PermissionError:
            return f"SCHED_FIFO priority {priority} refused (needs CAP_SYS_NICE); running on SCHED_OTHER"
    return None


# -- placement: auto -------------------------------------------------------------------

class Host(NamedTuple):
    """What :func:`choose_placement` needs to know about the host (see :func:`probe_host`)."""

    #: CPUs this process may run on (``os.sched_getaffinity(0)``).
    usable: tuple[int, ...]
    #: CPUs the kernel keeps out of general scheduling (``isolcpus=``; ``/sys/devices/system/cpu/isolated``).
    isolated: tuple[int, ...] = ()
    #: Whether this process may take SCHED_FIFO at the top priority of the ladder.
    fifo: bool = False


class Choice(NamedTuple):
    """The placement keys :func:`choose_placement` picked, and the host facts behind them."""

    cpus: dict[str, int]
    sched: str
    idle_poll: bool
    infer_keep_warm_us: int
    why: str


def parse_cpu_list(text: str) -> list[int]:
    """The kernel's CPU list format: ``"0-2,5"`` -> ``[0, 1, 2, 5]``; empty -> ``[]``."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.strip().split(","))):
        lo, sep, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi) + 1) if sep else (int(lo),))
    return sorted(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """The inverse of :func:`parse_cpu_list`: ``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    out, run = [], []
    for c in sorted(set(cpus)):
        if run and c != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(c)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def fifo_permitted(priority: int) -> bool:
    """Try SCHED_FIFO at ``priority`` on this process and put its policy back.

    The try is the only reliable answer: root without CAP_SYS_NICE (a container), a user with
    ``LimitRTPRIO=`` or ``AmbientCapabilities=CAP_SYS_NICE`` (the systemd unit), and the
    RT-throttling group settings all decide it.
    """
    try:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError:  # PermissionError included
        return False
    os.sched_setscheduler(0, policy, param)
    return True


def probe_host(fifo_priority: int, isolated_path: str = ISOLATED_PATH) -> Host:
    """This process's view of the host; ``fifo_priority``: the top of the ladder to be used."""
    try:
        with open(isolated_path) as f:
            isolated = tuple(parse_cpu_list(f.read()))
    except (OSError, ValueError):
        isolated = ()
    return Host(tuple(sorted(os.sched_getaffinity(0))), isolated, fifo_permitted(fifo_priority))


def _groups(names: Sequence[str], n_cpus: int) -> list[list[str]]:
    """Processes (named by first stage, path order) sharing each CPU, for ``n_cpus`` CPUs."""
    names = list(names)
    if n_cpus >= len(names):
        return [[n] for n in names]
    if n_cpus == 1:
        return [names]
    # Fewer CPUs than processes (five on 2-4 CPUs).  Feed and features share one CPU, as in the
    # fastest split measured on 2 vCPUs (README.md; BENCHMARKS.md runs G-H); with 4 CPUs each
    # other process gets its own, with 2 or 3 infer, risk and router share the second.
    if n_cpus >= len(names) - 1:
        return [names[:2]] + [[n] for n in names[2:]]
    return [names[:2], names[2:]]


def _cpu_preference(usable: Iterable[int], isolated: Iterable[int]) -> list[int]:
    """Usable CPUs, best first: isolated ones, then the others, CPU 0 last (interrupts,
    housekeeping and the supervisor land there)."""
    usable = set(usable)
    iso = sorted(usable & set(isolated))
    rest = sorted(usable - set(iso) - {0})
    return iso + rest + ([0] if 0 in usable and 0 not in iso else [])


def choose_placement(processes: Sequence[Sequence[str]], host: Host, *,
                     polling: Iterable[str] = (), full_speed: bool = False) -> Choice:
    """The best measured placement of ``processes`` (stage groups in path order, as
    :data:`~alphad.daemon.shell.topology.PRESETS` lists them) that ``host`` allows.

    * One CPU: every process on it.  Fewer CPUs than processes (five on 2-3 CPUs): feed and
      features on one CPU, infer, risk and router on another; on 4, feed and features share
      and the others get one each.  Enough CPUs: one per process.  CPUs are taken isolated
      first, and CPU 0 only when the others do not suffice.
    * SCHED_FIFO permitted: ``fifo`` (the downstream-higher ladder) with idle poll; not
      permitted: ``other`` and no idle poll, same pinning.
    * Keep-warm 100 µs in every case (BENCHMARKS.md runs F-H).
    * ``polling``: processes whose wait is ``spin`` or ``yield``.  A polling SCHED_FIFO process
      never gives its CPU away, so then ``other``, no idle poll, and pinning only when every
      process has a CPU of its own.
    * ``full_speed``: the feed replays as fast as it can (``feed.speed: max``), so the stages
      never idle.  When they take every CPU, SCHED_FIFO stages would leave the supervisor,
      the control port and its clients the kernel's real-time throttling slack alone (a
      command then took 0.8-1.6 s; BENCHMARKS.md): ``other`` and no idle poll, same pinning.

    On a 2-CPU host with SCHED_FIFO, five gets ``feed=0,features=0,infer=1,risk=1,router=1``,
    fifo, idle poll, keep-warm 100: the fastest five/block placement of BENCHMARKS.md runs G-H.
    """
    names = [g[0] for g in processes]
    polling = [n for n in names if n in set(polling)]
    usable = sorted(set(host.usable))
    if not usable:
        raise ValueError("placement auto: this process may run on no CPU at all")
    iso_used = sorted(set(host.isolated) & set(usable))
    iso_unusable = sorted(set(host.isolated) - set(usable))
    why = [f"{len(usable)} CPU{'s' if len(usable) != 1 else ''}"
           + (f" (isolated {format_cpu_list(iso_used)})" if iso_used else ""),
           f"SCHED_FIFO {'permitted' if host.fifo else 'not permitted'}"]
    if iso_unusable:
        why.append(f"isolated CPUs {format_cpu_list(iso_unusable)} are outside this process's affinity")
    if polling:
        why.append(f"{', '.join(polling)} wait{'s' if len(polling) == 1 else ''} by polling (spin/yield): "
                   "no SCHED_FIFO")
        if len(usable) < len(names):
            why.append("too few CPUs for a polling process each: not pinned")
            return Choice({}, "other", False, AUTO_KEEP_WARM_US, ", ".join(why))
    groups = _groups(names, len(usable))
    chosen = sorted(_cpu_preference(usable, host.isolated)[:len(groups)])
    cpus = {n: cpu for group, cpu in zip(groups, chosen) for n in group}
    fifo = host.fifo and not polling
    if fifo and full_speed and len(chosen) == len(usable):
        why.append("feed.speed max keeps every CPU busy and none is left for the supervisor: no SCHED_FIFO")
        fifo = False
    return Choice(cpus, "fifo" if fifo else "other", fifo, AUTO_KEEP_WARM_US, ", ".join(why))


def describe(processes: Sequence[Sequence[str]], topology) -> str:
    """``feed,features@0 infer,risk,router@1 fifo idle-poll keep-warm 100us``."""
    cpus = topology.cpus or {}
    by_cpu: dict[int, list[str]] = {}
    loose: list[str] = []
    for g in processes:
        (by_cpu.setdefault(cpus[g[0]], []) if g[0] in cpus else loose).extend(g)
    parts = [f"{','.join(by_cpu[c])}@{c}" for c in sorted(by_cpu)]
    if loose:
        parts.append(f"{','.join(loose)} {'unpinned' if by_cpu else 'not pinned'}")
    parts.append(topology.sched or "other")
    if topology.idle_poll:
        parts.append("idle-poll")
    if topology.infer_keep_warm_us:
        parts.append(f"keep-warm {topology.infer_keep_warm_us}us")
    return " ".join(parts)


def replays_at_full_speed(feed) -> bool:
    """Whether config section ``feed`` replays a recording as fast as it can (``speed: max``)."""
    return feed.source in ("replay", "synthetic") and feed.speed == "max"


def resolve_placement(topology, host: Host | None = None, *, full_speed: bool = False):
    """``(topology with every placement key set, Placement)`` for the status and the log.

    With ``placement: auto`` each key config.yaml left unset (``None``) takes the value of
    :func:`choose_placement` for ``host`` (probed here when not given, and only when a key is
    unset; ``full_speed``: see there); a key that is set is kept.  With ``manual`` an unset key is off
    (:data:`~alphad.daemon.shell.config.MANUAL_DEFAULTS`).  Resolving a resolved topology
    changes nothing, so a stage process may resolve the config it was handed again.
    """
    processes = [tuple(g) for g in PRESETS[topology.name]]
    unset = topology.unset_placement_keys()
    if topology.placement == "manual":
        values = {k: (dict(MANUAL_DEFAULTS[k]) if k == "cpus" else MANUAL_DEFAULTS[k]) for k in unset}
        why = "topology keys as configured" + (f" ({', '.join(unset)} off)" if unset else "")
    elif not unset:
        values, why = {}, "every placement key set in config"
    else:
        if host is None:
            host = probe_host(fifo_priority=topology.priority + len(processes) - 1)
        names = [g[0] for g in processes]
        polling = [n for n in names if topology.wait_overrides.get(n, topology.wait) != "block"]
        choice = choose_placement(processes, host, polling=polling, full_speed=full_speed)
        values = {k: getattr(choice, k) for k in unset}
        if "idle_poll" in unset and "sched" not in unset:
            # the pollers were measured to pay off beside SCHED_FIFO stages only
            values["idle_poll"] = choice.idle_poll and topology.sched == "fifo"
        why = choice.why
        kept = [k for k in PLACEMENT_KEYS if k not in unset]
        if kept:
            why += f"; {', '.join(kept)} from config"
    resolved = msgspec.structs.replace(topology, **values) if values else topology
    return resolved, Placement(mode=topology.placement, cpus=dict(resolved.cpus), sched=resolved.sched,
                               idle_poll=resolved.idle_poll, infer_keep_warm_us=resolved.infer_keep_warm_us,
                               reason=f"{why} -> {describe(processes, resolved)}")
