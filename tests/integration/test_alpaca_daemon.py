"""The daemon on configs/alpaca_paper.yaml against a wire-level fake Alpaca (ops/fake_alpaca.py):
quotes from Alpaca's crypto stream, orders through the gateway process, fills back; then
scripted failures, and a full restart with a fill during the outage.  The real `alphad
run`, real processes; alpaca-py talks to the fake over loopback through its URL overrides."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from daemon_rig import LiveDaemon, eventually
from alphad.daemon.supervisor.journal import entries, last_run, verify
from alphad.ipc import frames
from alphad.ipc.dtypes import EXEC_FILL, EXEC_PARTIAL
from alphad.ops.ctl import request
from alphad.ops.fake_alpaca import FakeAlpaca
from alphad.ops.gateway_bench import KEY, SECRET, DemoMarket, alpaca_config

pytestmark = pytest.mark.slow

SYMBOLS = ("BTC/USD", "ETH/USD")


def alpaca_daemon(fake, tmp: Path) -> LiveDaemon:
    """``alphad run`` on configs/alpaca_paper.yaml pointed at ``fake``."""
    prefix = f"alphad-ita-{os.getpid()}"
    config = alpaca_config(fake, tmp, prefix, reconcile_interval_s=1.0, backoff_s=0.05)
    return LiveDaemon(tmp, prefix, config, env={"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET})


@pytest.fixture
def fake():
    f = FakeAlpaca(key=KEY, secret=SECRET, cash=100_000.0).start()
    market = DemoMarket(f, speed=5.0).start()
    yield f
    market.stop()
    f.stop()


@pytest.fixture
def daemon(fake, tmp_path):
    d = alpaca_daemon(fake, tmp_path)
    yield d
    d.stop()


def venue_positions(fake) -> dict[str, float]:
    return {s: q for s, q in fake.positions().items() if q}


def settle(d: LiveDaemon, fake) -> frames.StatusReply:
    """Halt (working orders cancelled), then wait until nothing is open at the fake and the
    gateway has read the positions back; returns the status then."""
    assert isinstance(request(d.endpoint, frames.Halt(reason="test"), timeout_s=5), frames.Ok)
    eventually(lambda: not [o for o in fake.orders() if o["status"] in ("new", "accepted", "partially_filled")],
               timeout=30, what="no order open at the venue")
    eventually(lambda: not last_run(d.journal)[1], timeout=30, what="every journaled order ended")
    return eventually(lambda: (st := d.status()) and same(st.venue.positions, venue_positions(fake))
                      and not st.venue.mismatches and same(st.positions, venue_positions(fake)) and st,
                      timeout=30, what="positions reconciled")


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(b[k])) for k in a)


def journal_fills(journal: Path) -> dict[int, float]:
    out: Counter = Counter()
    for e in entries(journal):
        if e["type"] == "exec" and e["status"] in (EXEC_FILL, EXEC_PARTIAL):
            out[e["client_order_id"]] += e["fill_qty"]
    return dict(out)


def no_order_sent_twice(fake, journal: Path) -> None:
    """Every client order id POSTed once, but for the retries of a request the venue refused
    with 429 (nothing was created: resending the same id is safe)."""
    refused = sum(1 for method, path, status in fake.request_log if method == "POST" and path == "/v2/orders"
                  and status == 429)
    assert fake.post_counts and sum(fake.post_counts.values()) - len(fake.post_counts) == refused, fake.post_counts
    ids = [e["client_order_id"] for e in entries(journal) if e["type"] == "order"]
    assert len(ids) == len(set(ids))
    assert verify(journal)[1] is None


def test_the_daemon_streams_quotes_sends_orders_receives_fills_and_holds_the_brokers_positions(fake, daemon):
    daemon.start()
    st = eventually(lambda: (s := daemon.status()).fills >= 3 and s, timeout=120, what="three fills")
    assert st.stages["feed"].events_out > 0 and st.venue.ready and st.venue.stream_up
    st = settle(daemon, fake)
    assert st.positions, "it traded"
    no_order_sent_twice(fake, daemon.journal)
    # every fill the venue made is in the journal, order by order
    venue = {int(o["client_order_id"].removeprefix("alphad-")): float(o["filled_qty"]) for o in fake.orders()
             if float(o["filled_qty"])}
    assert journal_fills(daemon.journal) == pytest.approx(venue)
    assert KEY not in daemon.output() and SECRET not in daemon.output()
    assert SECRET not in daemon.journal.read_text()


def test_stream_drops_and_failing_http_mid_session_lose_nothing_and_send_nothing_twice(fake, daemon):
    daemon.start()
    eventually(lambda: daemon.status().fills >= 2, timeout=120, what="two fills")
    fake.fail_next("POST", "/v2/orders", 500, after_processing=True)  # taken, but the answer is an error
    fake.fail_next("POST", "/v2/orders", 503)                         # not taken
    fake.fail_next("POST", "/v2/orders", 429, count=2)
    fake.fail_next("GET", "/v2/orders", 500, count=2)
    fake.drop_streams()
    before = daemon.status().orders
    eventually(lambda: daemon.status().orders >= before + 5, timeout=120, what="five more orders")
    fake.drop_streams()
    eventually(lambda: (s := daemon.status()).venue.reconnects >= 2 and s.venue.stream_up, timeout=60,
               what="the stream back twice")
    st = settle(daemon, fake)
    assert st.venue.http_errors >= 2 and st.venue.rate_limited >= 2 and st.venue.unknown == 0
    link = [e["connected"] for e in entries(daemon.journal) if e["type"] == "venue"]
    assert link.count(False) >= 1 and link[-1] is True  # the outages are journaled, and their end
    no_order_sent_twice(fake, daemon.journal)
    venue = {int(o["client_order_id"].removeprefix("alphad-")): float(o["filled_qty"]) for o in fake.orders()
             if float(o["filled_qty"])}
    assert journal_fills(daemon.journal) == pytest.approx(venue)


def test_a_full_restart_adopts_what_the_broker_did_while_the_daemon_was_down(fake, daemon):
    daemon.start()
    eventually(lambda: daemon.status().fills >= 2, timeout=120, what="two fills")
    fake.fill_delay_s = 3600.0  # from now on orders rest at the venue
    eventually(lambda: [o for o in fake.orders() if o["status"] == "new"], timeout=120, what="an order resting")
    daemon.stop()  # SIGTERM: the daemon ends; the broker goes on
    resting = [o["client_order_id"] for o in fake.orders() if o["status"] in ("new", "accepted")]
    assert resting and last_run(daemon.journal)[1], "orders left working when the daemon stopped"
    for coid in resting:
        fake.fill_order(coid)  # filled while no alphad runs
    fake.fill_delay_s = 0.0
    daemon.start()
    out = daemon.output()
    assert "handed to the alpaca gateway" in out
    filled = journal_fills(daemon.journal)
    for coid in resting:  # each outage fill journaled (reconciled, not missed), exactly once
        cid = int(coid.removeprefix("alphad-"))
        assert filled.get(cid) == pytest.approx(float(fake.order(coid)["qty"]))
    st = settle(daemon, fake)
    no_order_sent_twice(fake, daemon.journal)
    assert st.venue.starts == 1 and st.venue.recovered_fills >= len(resting)


def test_a_position_the_broker_holds_that_alphad_does_not_is_alerted_and_the_broker_wins(fake, daemon):
    """A trade on the account outside alphad (by hand): the gateway sees the broker's
    position differ from risk's at two checks in a row while nothing works, alerts, and
    books the difference (client order id 0) through the router to risk and the journal."""
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    daemon.start()
    eventually(lambda: daemon.status().fills >= 1, timeout=120, what="a fill")
    settle(daemon, fake)
    by_hand = TradingClient(KEY, SECRET, paper=True, url_override=fake.trading_url)
    by_hand.submit_order(MarketOrderRequest(symbol="ETH/USD", qty=0.25, side=OrderSide.BUY,
                                            time_in_force=TimeInForce.GTC, client_order_id="by-hand-1"))
    st = eventually(lambda: (s := daemon.status()) and s.venue.adjustments >= 1 and not s.venue.mismatches
                    and same(s.positions, venue_positions(fake)) and s, timeout=30, what="the broker's position adopted")
    assert "position mismatch on ETH/USD" in daemon.output()
    booked = eventually(lambda: [e for e in entries(daemon.journal) if e["type"] == "exec" and e["client_order_id"] == 0],
                        timeout=10, what="the booking journaled")  # the journal drains its rings after status shows it
    assert len(booked) == 1 and booked[0]["instrument"] == 1 and booked[0]["fill_qty"] == pytest.approx(0.25)
    assert st.venue.adjustments == 1
