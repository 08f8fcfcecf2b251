"""The daemon on configs/ib_paper.yaml against a wire-level fake TWS (ops/fake_tws.py): quotes
from IB's market data, orders through the IB gateway process, fills with commissions back;
then the scripted nightly reset during trading.  The real `alphad run`; ib_async talks the TWS
socket protocol to the fake over loopback, unchanged."""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from daemon_rig import Hook, LiveDaemon, eventually
from alphad.daemon.supervisor.journal import entries, last_run, verify
from alphad.ipc import frames
from alphad.ipc.dtypes import EXEC_FILL, EXEC_PARTIAL
from alphad.ops.ctl import request
from alphad.ops.gateway_bench import DEMO_SYMBOLS_IB, DemoMarket, ib_config

pytestmark = pytest.mark.slow

#: IB's contract symbol -> alphad's universe symbol.
UNIVERSE = {"BTC": "BTC/USD", "ETH": "ETH/USD"}


def ib_daemon(fake, tmp: Path, webhook_url: str = "") -> LiveDaemon:
    """``alphad run`` on configs/ib_paper.yaml pointed at ``fake`` (alerts posted to ``webhook_url``)."""
    import msgspec

    prefix = f"alphad-itib-{os.getpid()}"
    config = ib_config(fake, tmp, prefix, reconcile_interval_s=1.0, backoff_s=0.2, backoff_max_s=1.0)
    if webhook_url:
        cfg = msgspec.yaml.decode(config.read_bytes())
        cfg.setdefault("supervisor", {})["webhook_url"] = webhook_url
        config.write_bytes(msgspec.yaml.encode(cfg))
    return LiveDaemon(tmp, prefix, config)


@pytest.fixture
def fake():
    from alphad.ops.fake_tws import FakeTWS

    f = FakeTWS(commission_per_share=0.005, min_commission=1.0).start()
    market = DemoMarket(f, speed=5.0, symbols=DEMO_SYMBOLS_IB).start()
    yield f
    market.stop()
    f.stop()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def daemon(fake, tmp_path, hook):
    d = ib_daemon(fake, tmp_path, hook.url)
    yield d
    d.stop()


def venue_positions(fake) -> dict[str, float]:
    return {UNIVERSE[s]: q for s, q in fake.positions().items() if q}


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(b[k])) for k in a)


def settle(d, fake) -> frames.StatusReply:
    assert isinstance(request(d.endpoint, frames.Halt(reason="test"), timeout_s=5), frames.Ok)
    eventually(lambda: not [o for o in fake.orders() if o["status"] in ("PreSubmitted", "Submitted")], timeout=30,
               what="no order open at the venue")
    eventually(lambda: not last_run(d.journal)[1], timeout=30, what="every journaled order ended")
    return eventually(lambda: (st := d.status()) and same(st.venue.positions, venue_positions(fake))
                      and same(st.positions, venue_positions(fake)) and st, timeout=30, what="positions reconciled")


def check_journal(fake, journal: Path) -> None:
    assert fake.place_counts and max(fake.place_counts.values()) == 1, fake.place_counts  # none sent twice
    ids = [e["client_order_id"] for e in entries(journal) if e["type"] == "order"]
    assert len(ids) == len(set(ids)) and verify(journal)[1] is None
    fills: Counter = Counter()
    for e in entries(journal):
        if e["type"] == "exec" and e["status"] in (EXEC_FILL, EXEC_PARTIAL):
            fills[e["client_order_id"]] += e["fill_qty"]
    venue = {int(o["order_ref"].removeprefix("alphad-")): float(o["filled"]) for o in fake.orders() if o["filled"]}
    assert dict(fills) == pytest.approx(venue)


def test_the_daemon_streams_ib_quotes_sends_orders_receives_fills_and_commissions_and_holds_the_brokers_positions(
        fake, daemon):
    daemon.start()
    st = eventually(lambda: (s := daemon.status()).fills >= 3 and s, timeout=120, what="three fills")
    assert st.stages["feed"].events_out > 0 and st.venue.ready and st.venue.stream_up
    st = settle(daemon, fake)
    assert st.positions
    check_journal(fake, daemon.journal)
    fees = [e["fee"] for e in entries(daemon.journal) if e["type"] == "exec" and e["fill_qty"] > 0]
    assert fees and all(f > 0 for f in fees[:1]) and sum(fees) >= 1.0  # IB's commissions, booked as fees


def test_a_nightly_reset_during_trading_reconnects_once_reconciles_and_trading_resumes(fake, daemon):
    import urllib.request

    daemon.start()
    eventually(lambda: daemon.status().fills >= 2, timeout=120, what="two fills")
    fake.nightly_reset(down_s=3.0, data_lost=True)
    eventually(lambda: (s := daemon.status()).venue.reconnects >= 1 and s.venue.stream_up, timeout=60,
               what="the gateway reconnected")
    before = daemon.status().fills
    eventually(lambda: daemon.status().fills >= before + 2, timeout=120, what="trading resumed")
    st = settle(daemon, fake)
    assert st.venue.reconnects == 1 and st.venue.disconnects == 1  # one reconnect loop, not a race of them
    check_journal(fake, daemon.journal)
    link = [e["connected"] for e in entries(daemon.journal) if e["type"] == "venue"]
    assert False in link and link[-1] is True  # the outage in the journal
    text = urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5).read().decode()
    assert 'alphad_gateway_events_total{kind="disconnects"} 1.0' in text  # and in /metrics


def test_a_data_farm_break_stops_new_orders_on_the_silent_instrument_and_2104_resumes_them(fake, daemon, hook):
    import urllib.request

    def placed(symbol: str) -> int:
        return sum(1 for o in fake.orders() if o["symbol"] == symbol)

    daemon.start()
    eventually(lambda: placed("BTC") and placed("ETH"), timeout=120, what="orders on both instruments")
    fake.publish_trade("BTC", 60005.0, -1.0)  # a print of negative size: the live feed refuses and counts it
    eventually(lambda: daemon.status().feed_bad_records == 1, timeout=30, what="the bad print counted in ctl status")
    broken_ns = time.time_ns()
    fake.break_farm("paxosfarm", ["ETH"])  # 2103 to the feed's and the gateway's connections; ETH's ticks withheld
    st = eventually(lambda: (s := daemon.status()).stale_instruments == ["ETH/USD"] and s, timeout=30,
                    what="ETH/USD stale (no tick for risk.max_data_age_ms while a farm is broken)")
    assert st.feed_data_down == 1 and st.venue.data_farms_down == 1
    eth, btc = placed("ETH"), placed("BTC")
    eventually(lambda: placed("BTC") >= btc + 2, timeout=120, what="BTC/USD trading on")
    assert placed("ETH") == eth and daemon.status().stale_instruments == ["ETH/USD"]
    text = urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5).read().decode()
    assert 'alphad_instrument_data_stale{symbol="ETH/USD"} 1.0' in text and "alphad_feed_data_down 1.0" in text
    assert 'alphad_instrument_data_stale{symbol="BTC/USD"} 0.0' in text
    assert "alphad_feed_bad_records_total 1.0" in text
    fake.restore_farm("paxosfarm")  # 2104
    eventually(lambda: not (s := daemon.status()).stale_instruments and s.feed_data_down == 0, timeout=30,
               what="the farm OK again")
    eventually(lambda: placed("ETH") > eth, timeout=120, what="ETH/USD orders resumed")
    data = [(e["feed_data_down"], e["stale"]) for e in entries(daemon.journal) if e["type"] == "data"]
    assert (1, ["ETH/USD"]) in data and data[-1] == (0, [])  # the stop and the resume, journaled
    stale = eventually(lambda: hook.of_kind("stale_data"), timeout=30, what="a stale_data webhook post")[0]
    back = eventually(lambda: hook.of_kind("data_back"), timeout=30, what="a data_back webhook post")[0]
    assert stale["symbols"] == ["ETH/USD"] and stale["feed_data_down"] == 1 and back["symbols"] == ["ETH/USD"]
    stopped = next(e["ts_ns"] for e in entries(daemon.journal) if e["type"] == "data" and e["stale"])
    print(f"ETH/USD stopped {(stopped - broken_ns) / 1e9:.2f} s after the farm broke "
          f"(risk.max_data_age_ms 3000, counted from its last tick)")  # reported, never asserted
    settle(daemon, fake)
    check_journal(fake, daemon.journal)


def test_twap_on_ib_reprices_resting_children_by_modify_and_the_positions_stay_the_brokers(fake, tmp_path):
    """Must-show 4's modify where it happens: ``router.execution twap`` on IB.  Children rest at
    the near touch; as the demo market moves away the algorithm re-prices them, which the IB
    gateway makes an in-place modify (same IB order, new reference).  Never a second order for
    one reference, never a modify sent twice, and risk's positions equal the fake's."""
    import msgspec

    d = ib_daemon(fake, tmp_path)
    cfg = msgspec.yaml.decode(d.config.read_bytes())
    cfg["router"].update(execution="twap", algo={"horizon_s": 8, "slices": 4, "urgency": 0.0, "catch_up": 1.0,
                                                  "replace_after_s": 0.5, "step_ms": 50})
    cfg["router"]["ib"]["time_in_force"] = "gtc"  # children rest; IOC would cancel them at once
    d.config.write_bytes(msgspec.yaml.encode(cfg))
    try:
        d.start()
        eventually(lambda: sum(fake.modify_counts.values()) >= 3 and d.status().fills >= 3, timeout=150,
                   what="three modifies and three fills")
        st = settle(d, fake)
        assert st.positions
        assert fake.place_counts and max(fake.place_counts.values()) == 1, fake.place_counts
        assert max(fake.modify_counts.values()) == 1 and not set(fake.modify_counts) & set(fake.place_counts)
        # every child is its own reference at IB: a modified order shows its last one
        refs = {o["order_ref"] for o in fake.orders()}
        assert refs <= set(fake.place_counts) | set(fake.modify_counts)
        parents = {e["client_order_id"] for e in entries(d.journal) if e["type"] == "order"}
        assert not parents & {int(r.removeprefix("alphad-")) for r in refs}  # risk's ids never reach IB
        assert verify(d.journal)[1] is None
        modified = [o for o in fake.orders() if o["order_ref"] in fake.modify_counts]
        print(f"{len(fake.place_counts)} children placed, {sum(fake.modify_counts.values())} modifies, "
              f"{sum(1 for o in modified if o['filled'])} modified children filled; {st.fills} fills")
    finally:
        d.stop()
