"""alphad's daemon: stage cores, the shell that moves records between them, the supervisor.

How a tick travels (the default topology, ``five`` processes that ``block``), file by file:

1. daemon/shell/tick.py — the shell's whole part: each process's ``Loop``.  The feed
   process takes the events that are due (``FeedCore.take``) and ``feed_publish`` runs
   the feed step and pushes them to the market-data ring; every downstream process
   sleeps and wakes in its stage's ``*_drain`` (pop, step, stamp, push in one compiled
   call; infer's runs the model, ``infer/session.py``, between ``infer_drain`` and
   ``infer_publish``), and ``hand_on`` finishes a push a full ring refused;
2. daemon/feed/core.py — ``feed_step``: events stamped with ``t_origin`` and a seq;
3. daemon/features/core.py — ``features_step``: quotes and trades folded into
   per-instrument state (``kernels/``), one feature row per trigger;
4. daemon/infer/core.py — ``infer_gather``, then the model, then ``infer_step``:
   prediction to target weight;
5. daemon/risk/core.py — ``risk_step``: target weight to order, every pre-trade check
   (``risk/checks.py``, ``risk/portfolio.py``);
6. daemon/router/core.py — ``route_and_poll``: the smart router picks a venue
   (``router/venues/paper.py``), tick-to-trade is stamped, exec reports go back to risk.

Each core keeps its arrays in one compiled state object and exposes one step of one
shape, ``step(state, in, n, out, now)``, and calls only down into its own package; only
``shell/`` knows rings, waits and clocks.  What the shell does once, off the path (build a
stage's state from config, warm, housekeeping), lives in ``shell/stages.py`` and
``shell/runner.py``.
The ``fused`` and ``single`` (backtest) topologies compose the same steps
(``shell/fused.py``, ``shell/backtest.py``).
"""
# Before any kernel is decorated: Numba caches under a folder keyed by all of alphad's source.
from alphad.ipc.kernel_cache import configure as _configure_kernel_cache

_configure_kernel_cache()
