"""The supervisor's side of a live venue's gateway process (``router.venue`` a broker).

The gateway is supervised like a stage process (started, restarted on death with the
same backoff, killed when its heartbeat goes stale, waited for before READY) but it is
not a stage: its pid, READY flag and heartbeat live in its own segment
(:mod:`alphad.ipc.gateway_block`), beside its order table.
"""
from __future__ import annotations

import sys

from alphad.ipc import dtypes
from alphad.ipc import gateway_block as gb
from alphad.ipc.ring import Ring


class GatewaySupervision:
    """Segments, child and health of the gateway of supervisor ``sup``."""

    def __init__(self, sup):
        self.sup = sup
        self.venue = sup.cfg.router.venue
        self.name = f"gateway:{self.venue}"
        #: Its doorbell: after every stage process's.
        self.doorbell = len(sup.plan.processes)
        self._link = None  # the venue link's state as last journaled

    def check_keys(self) -> None:
        """Before anything starts: a gateway without its keys would only die and restart."""
        from alphad.daemon.shell.gateway import read_keys

        if self.venue == "alpaca":  # IB logs in through TWS / IB Gateway: no keys here
            read_keys(self.sup.cfg.router.alpaca)

    def create_segments(self) -> gb.GatewayBlock:
        """The order table and the two lossless rings: requests from the router
        (``venue_orders``), exec reports back (``venue_exec``); each wakes its reader."""
        sup = self.sup
        cfg, names = sup.cfg, sup.names
        block = gb.GatewayBlock.create(names["gateway"], len(cfg.universe))
        router = sup.plan.process_index("router")
        wait = cfg.topology.wait_overrides.get(sup.plan.process_name(router), cfg.topology.wait)
        sup.rings["venue_orders"] = Ring.create(names["ring.venue_orders"], dtypes.VENUE_REQ_DTYPE, cfg.rings.orders,
                                                ["gateway"], policy="lossless", bells=sup.bells,
                                                doorbell_of={"gateway": self.doorbell})
        sup.rings["venue_exec"] = Ring.create(names["ring.venue_exec"], dtypes.EXEC_DTYPE, cfg.rings.exec, ["router"],
                                              policy="lossless", bells=sup.bells,
                                              doorbell_of={"router": router} if wait == "block" else {})
        return block

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "alphad.daemon.cli", "gateway", "--config", str(self.sup.config_path),
                "--doorbell", str(self.doorbell)]

    @property
    def block(self) -> gb.GatewayBlock:
        return self.sup.gateway

    def ready(self) -> bool:
        return bool(self.block.words[gb.G_READY])

    def died(self) -> None:
        self.block.words[gb.G_READY] = 0

    def kill_if_stale(self, child, now_ns: int, limit_s: float) -> None:
        """SIGKILL a ready gateway whose heartbeat is older than ``limit_s`` (frozen)."""
        w = self.block.words
        age = (now_ns - int(w[gb.G_HEARTBEAT])) / 1e9
        if w[gb.G_READY] and w[gb.G_PID] == child.proc.pid and age > limit_s:
            print(f"alphad: alert: {self.name} (pid {child.proc.pid}) heartbeat {age:.1f} s old, over "
                  f"supervisor.stale_after_s {limit_s:g}: killing it for a restart", file=sys.stderr, flush=True)
            w[gb.G_READY] = 0
            child.proc.kill()

    def fresh(self, now_ns: int, max_age_s: float) -> bool:
        return now_ns - int(self.block.words[gb.G_HEARTBEAT]) < max_age_s * 1e9

    def journal_link(self) -> None:
        """Journal each change of the venue link once the gateway is ready (a stream or
        connection lost, restored), with the counts so far: an outage is in the journal as
        well as in /metrics."""
        w, journal = self.block.words, self.sup.journal
        if journal is None or not w[gb.G_READY]:
            return
        link = (int(w[gb.G_STREAM_UP]), int(w[gb.G_STARTS]))
        if link != self._link:
            if self._link is not None or not link[0]:
                journal.record("venue", {"venue": self.venue, "connected": bool(link[0]), "gateway_starts": link[1],
                                         "reconnects": int(w[gb.G_RECONNECTS]), "disconnects": int(w[gb.G_DISCONNECTS]),
                                         "unknown_orders": int(w[gb.G_UNKNOWN])})
            self._link = link
