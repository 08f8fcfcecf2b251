"""The live feed's data health as the operator meets it.

The feed stage publishes how much of its market data its source reports down
(``FEED_DATA_DOWN``: IB's broken data farms, a lost link); risk stops new orders on each
instrument whose data it then lacks for ``risk.max_data_age_ms`` and marks it stale in its
state (:func:`alphad.daemon.risk.core.risk_data_watch`).  Here both are read for ``ctl
status`` and /metrics, and each change is journaled and alerted on stderr.
"""
from __future__ import annotations

import sys

import msgspec

from alphad.daemon.shell.risk_view import RiskView
from alphad.ipc.control import FEED_DATA_DOWN, STAGE_INDEX


class DataHealth(msgspec.Struct, frozen=True):
    #: The feed's broken data farms plus 1 while its link is lost (0: healthy).
    feed_data_down: int = 0
    #: Instruments risk gives no new order for lack of data.
    stale: tuple[str, ...] = ()


class DataWatch:
    """Reads the data health of supervisor ``sup`` and journals its changes."""

    def __init__(self, sup):
        self.sup = sup
        self.view = RiskView(sup.names["risk_state"], sup.cfg)
        self._last = DataHealth()

    def read(self) -> DataHealth:
        down = int(self.sup.control.stage(STAGE_INDEX["feed"], FEED_DATA_DOWN))
        since = self.view.stale_since()
        stale = () if since is None else tuple(ins.symbol for ins, t in zip(self.sup.cfg.universe, since) if t)
        return DataHealth(down, stale)

    def check(self) -> None:
        """Journal (``data`` entries) and alert each change of the feed's health or of the
        stale instruments."""
        now = self.read()
        if now == self._last:
            return
        before, self._last = self._last, now
        if now.stale and set(now.stale) - set(before.stale):
            print(f"alphad: alert: market data stale on {', '.join(now.stale)} (the feed reports "
                  f"{now.feed_data_down} data farm(s) or link down): no new orders on them", file=sys.stderr, flush=True)
        elif set(before.stale) - set(now.stale):
            print(f"alphad: market data back on {', '.join(sorted(set(before.stale) - set(now.stale)))}: "
                  f"orders resume", file=sys.stderr, flush=True)
        if self.sup.journal is not None:
            self.sup.journal.record("data", {"feed_data_down": now.feed_data_down, "stale": list(now.stale)})
