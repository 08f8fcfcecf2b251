"""Live impact calibration from the router's own fills (daemon/impact_live.py)."""
from __future__ import annotations

import numpy as np
import pytest

from alphad.daemon.router import core as rt
from alphad.daemon.config import decode_config
from alphad.daemon.router.config import ImpactLive
from alphad.daemon.router.impact import ImpactParams, calibrate, expected_slippage
from alphad.daemon.router.impact_live import N_SAMPLES, P_ALPHA, P_ETA, P_GAMMA, P_OBS, LiveImpact, harvest
from alphad.daemon.router.order_fsm import FLAG_HARVESTED, OrderStore, State
from alphad.daemon.router.venues.paper import SmartRouter, VenueSpec
from alphad.ipc import metrics as mx
from alphad.ipc.dtypes import MD_DTYPE, MD_TRADE, ORDER_DTYPE, ORDER_LIMIT, ORDER_MARKET

S = 1_000_000_000


def order(cid, side, kind, qty, px=np.nan):
    o = np.zeros(1, ORDER_DTYPE)
    o["client_order_id"], o["side"], o["kind"], o["qty"], o["limit_px"] = cid, side, kind, qty, px
    return o


def depth_router():
    r = SmartRouter([VenueSpec("a", taker_bps=1.0)], 1, depth=3, tick=0.01, lot=1.0, store=OrderStore(64))
    r.on_book(0, [99.0, 98.0, 97.0], [5.0, 5.0, 5.0], [101.0, 102.0, 103.0], [5.0, 5.0, 5.0], 0)
    return r


def test_harvest_when_orders_end_then_takers_observed_with_cost_beyond_half_spread_and_each_read_once():
    r = depth_router()
    r.send(order(1, 1, ORDER_MARKET, 8), 0, 0)            # walks: 5 @ 101, 3 @ 102
    r.send(order(2, 1, ORDER_LIMIT, 2, 99.5), 0, 0)       # passive: rests inside the spread
    r.send(order(3, -1, ORDER_LIMIT, 4, 99.0), 0, 0)      # marketable sell limit at the bid
    r.poll(0)
    st = r.store
    rows = np.zeros((16, 3))
    lwm = np.zeros(1, np.int64)
    k = harvest(st.orders, st.count, lwm, rows)
    assert k == 2
    # mid 100, half spread 1: buy avg (5*101 + 3*102)/8 = 101.375 -> 1.375 % - 1 % = 0.375 %
    assert rows[0, 0] == 0 and rows[0, 1] == 8 and rows[0, 2] == pytest.approx(0.00375)
    # sell 4 at 99 (the bid): exactly the half spread, no impact beyond it
    assert rows[1, 1] == 4 and rows[1, 2] == pytest.approx(0.0)
    assert lwm[0] == 1  # the resting order (slot 1) holds the low-water mark...
    assert harvest(st.orders, st.count, lwm, rows) == 0  # ...and nothing is read twice
    r.cancel(2, 1)
    r.poll(1)
    assert st.state(2) == State.CANCELED
    assert harvest(st.orders, st.count, lwm, rows) == 0  # ended, but it never took liquidity
    assert lwm[0] == 3 and np.all(st.orders["flags"][:3] & FLAG_HARVESTED)


def md_trade(qty):
    md = np.zeros(1, MD_DTYPE)
    md[0]["kind"], md[0]["last_px"], md[0]["last_sz"], md[0]["aggressor"] = MD_TRADE, 100.0, qty, 1
    return md


def test_housekeeping_when_a_horizon_sampled_then_volume_sigma_and_x_come_from_tape_and_book():
    cfg = ImpactLive(horizon_s=60.0, min_observations=10)
    live = LiveImpact(1, cfg)
    r = depth_router()
    mids = 100.0 * np.exp(0.001 * np.array([(-1) ** k for k in range(N_SAMPLES + 1)]).cumsum())
    t = 0
    for k in range(N_SAMPLES + 1):  # one sample a second; 10 traded per second
        half = 0.5
        r.on_book(0, [mids[k] - half], [100.0], [mids[k] + half], [100.0], t)
        live.housekeeping(t, r.store, r.books[0], r.tape)
        r.on_md(md_trade(10.0), 1, t)
        t += S
    v, sigma = live.horizon_state()
    assert v[0] == pytest.approx(600.0)  # 60 seconds of tape
    r_1s = np.diff(np.log(mids))
    assert sigma[0] == pytest.approx(np.std(r_1s, ddof=1) * np.sqrt(60))
    # a market buy of 6 now: observed with x = 6 / 600 at the next sample
    r.on_book(0, [99.5, 99.0], [100.0, 100.0], [100.5, 101.0], [3.0, 100.0], t)
    r.send(order(7, 1, ORDER_MARKET, 6), 0, t)
    r.poll(t)
    live.housekeeping(t, r.store, r.books[0], r.tape)
    assert live.n_obs[0] == 1
    x, sig, slip = live.obs[0, 0]
    v, sigma = live.horizon_state()
    assert x == pytest.approx(6 / v[0]) and sig == sigma[0]
    assert slip == pytest.approx((3 * 100.5 + 3 * 101.0) / 6 / 100.0 - 1 - 0.5 / 100.0)


def simulated(rng, truth, n):
    x = np.exp(rng.uniform(np.log(1e-3), np.log(0.3), n))
    sigma = rng.uniform(0.01, 0.03, n)
    cost = expected_slippage(sigma, x, truth)
    return x, sigma, cost * (1 + rng.normal(0, 0.1, n)) + rng.normal(0, 2e-5, n)


def test_refit_when_enough_fills_then_recovers_known_temporary_impact_and_publishes_it():
    truth = ImpactParams(gamma=0.3, alpha=0.6, eta=0.5)
    out = np.zeros((mx.IMPACT_INSTRUMENTS, len(mx.IMPACT_FIELDS)))
    live = LiveImpact(2, ImpactLive(min_observations=50, window=1000, refit_interval_s=300), out)
    x, sigma, slip = simulated(np.random.default_rng(3), truth, 1000)
    for j in range(49):
        live.observe(1, x[j], sigma[j], slip[j])
    assert live.refit_due(0) == -1 and out[1, 3] == 0  # 49 < min_observations: not fitted
    for j in range(49, 1000):
        live.observe(1, x[j], sigma[j], slip[j])
    assert live.refit_due(10) == 1
    p = live.params[1]
    assert p[P_GAMMA] == pytest.approx(truth.gamma, rel=0.10)
    assert p[P_ALPHA] == pytest.approx(truth.alpha, rel=0.10)
    assert p[P_ETA] == pytest.approx(truth.eta, rel=0.25)  # slippage alone identifies eta loosely
    assert p[P_OBS] == 1000 and np.array_equal(out[1], p)  # published as the metrics gauges
    expect = calibrate(x, sigma, slip).params
    assert p[P_GAMMA] == expect.gamma and p[P_ALPHA] == expect.alpha
    assert np.isnan(live.params[0, P_GAMMA]) and out[0, 3] == 0  # the other instrument: no fills
    live.observe(1, x[0], sigma[0], slip[0])
    assert live.refit_due(10 + 299 * S) == -1  # rate-limited: one fit per refit interval
    assert live.refit_due(10 + 300 * S) == 1


def test_router_core_when_housekeeping_then_impact_gauges_live_in_the_metrics_block():
    cfg = decode_config("""
universe: [{id: 0, symbol: AAA, lot_size: 1}]
router: {impact: {horizon_s: 6, min_observations: 10, refit_interval_s: 1}}
""")
    block = np.zeros(mx.SIZE // 8, np.int64)
    impact = block.view(np.float64)[mx._IMPACT : mx._WORDS].reshape(mx.IMPACT_INSTRUMENTS, -1)
    core = rt.RouterCore(cfg.universe, cfg.router, np.zeros(1, np.uint64), metrics=block, impact_out=impact)
    rng = np.random.default_rng(1)
    truth = ImpactParams(gamma=0.3, alpha=0.6, eta=0.5)
    x, sigma, slip = simulated(rng, truth, 20)
    for j in range(20):
        core.impact.observe(0, x[j], sigma[j], slip[j])
    core.housekeeping(5 * S)
    assert impact[0, 3] == 20 and impact[0, 0] > 0  # fitted from housekeeping, visible to the exporter
    assert core.impact.params[0, P_OBS] == 20
