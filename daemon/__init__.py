"""alphad's daemon: stage cores, the shell that moves records between them, the supervisor.

How a tick travels (the default topology, ``five`` processes that ``block``), file by file:

1. daemon/shell/loop.py — the feed process's loop takes the events that are due
   (``FeedCore.take``) and the feed adapter emits them;
2. daemon/shell/compiled.py — ``feed_publish``: the feed core's step, then the
   market-data ring; each downstream process sleeps and wakes in its stage's
   ``*_drain`` (pop, step, stamp, push in one compiled call);
3. daemon/feed/core.py — ``feed_step``: events stamped with ``t_origin`` and a seq;
4. daemon/features/core.py — ``features_step``: quotes and trades folded into
   per-instrument state (``kernels/``), one feature row per trigger;
5. daemon/infer/core.py — ``infer_gather``, then the model (``infer/session.py``), then
   ``infer_step``: prediction to target weight;
6. daemon/shell/stages.py — ``InferStage.drained`` runs the model between the two
   halves; every adapter hands what its step emitted back to the shell;
7. daemon/risk/core.py — ``risk_step``: target weight to order, every pre-trade check
   (``risk/checks.py``, ``risk/portfolio.py``);
8. daemon/router/core.py — ``route_and_poll``: the smart router picks a venue
   (``router/venues/paper.py``), tick-to-trade is stamped, exec reports go back to risk.

Each core keeps its arrays in one compiled state object and exposes one step of one
shape, ``step(state, in, n, out, now)``; only ``shell/`` knows rings, waits and clocks.
The ``fused`` and ``single`` (backtest) topologies compose the same steps
(``shell/fused.py``, ``shell/backtest.py``).
"""
# Before any kernel is decorated: Numba caches under a folder keyed by all of alphad's source.
from alphad.ipc.kernel_cache import configure as _configure_kernel_cache

_configure_kernel_cache()
