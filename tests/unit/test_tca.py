"""TCA: hand-computed metrics, the journal format, and `alphad tca` on a real run."""
from __future__ import annotations

import json
import math

import pytest

from alphad.daemon.router.algos import TWAP, ParentState
from alphad.daemon.cli import main as alphad_main
from alphad.ops.tca import TcaJournalWriter, analyze, analyze_parent, rating, read_journal

from test_algos import SEC, _run, _spec, market  # noqa: F401  (market is a fixture)


def _journal(side=1):
    return [
        {"type": "parent", "ts": 0, "parent_id": 7, "instrument": 0, "side": side, "qty": 10.0,
         "algo": "twap", "start_ns": 0, "end_ns": 100, "arrival_bid": 99.9, "arrival_ask": 100.1},
        {"type": "order", "ts": 1, "parent_id": 7, "cid": 1, "action": "new", "qty": 4.0,
         "limit_px": 100.1, "venue": "a"},
        {"type": "exec", "ts": 2, "parent_id": 7, "cid": 1, "status": "fill", "reason": 1,
         "fill_qty": 4.0, "fill_px": 100.0 + side * 0.1, "fee": 0.04, "leaves_qty": 0.0},
        {"type": "order", "ts": 3, "parent_id": 7, "cid": 2, "action": "new", "qty": 6.0,
         "limit_px": 100.0, "venue": "a"},
        {"type": "exec", "ts": 4, "parent_id": 7, "cid": 2, "status": "partial", "reason": 2,
         "fill_qty": 4.0, "fill_px": 100.0, "fee": -0.008, "leaves_qty": 2.0},
        {"type": "risk_denial", "ts": 5, "reason": 3},  # other journal events are ignored
        {"type": "parent_done", "ts": 100, "parent_id": 7, "state": "expired", "filled": 8.0,
         "remainder": 2.0, "interval_vwap": 100.0 + side * 0.05, "close_px": 100.0 + side * 0.3},
    ]


@pytest.mark.parametrize("side", [1, -1])
def test_parent_tca_when_hand_computed_then_every_metric_matches(side):
    (r,) = analyze(_journal(side))
    # Arrival mid 100, half spread 0.1 (10 bps). Fills: 4 @ 100 +/- 0.1 taker, 4 @ 100 maker.
    assert r.arrival_mid == pytest.approx(100.0)
    assert r.avg_px == pytest.approx(100.0 + side * 0.05)
    assert r.filled == 8.0 and r.fill_rate == pytest.approx(0.8)
    # IS: execution 0.4 + opportunity 2 * 0.3 + fees 0.032, over 10 * 100, in bps.
    assert r.is_bps == pytest.approx((0.4 + 0.6 + 0.032) / 1000 * 1e4)
    assert r.exec_bps == pytest.approx(5.0)
    assert r.spread_bps == pytest.approx(0.0)    # 4 taker (+10 bps) and 4 maker (-10 bps)
    assert r.impact_bps == pytest.approx(5.0)
    assert r.fees_bps == pytest.approx(0.032 / 800 * 1e4)
    assert r.vs_vwap_bps == pytest.approx(0.0, abs=1e-9)
    assert r.vs_close_bps == pytest.approx(-0.25 / (100 + side * 0.3) * 1e4)
    assert r.n_children == 2 and r.n_fills == 2 and r.state == "expired"
    assert r.rating == "C"  # cost 5.4 bps <= half spread + 1: B, one letter down for 80 % filled


@pytest.mark.parametrize("cost,fill,want", [(-0.5, 1.0, "A"), (10.9, 1.0, "B"), (24.9, 1.0, "C"),
                                            (25.1, 1.0, "D"), (-1.0, 0.5, "B"), (30.0, 0.5, "D"),
                                            (math.nan, 0.0, "-")])
def test_rating_when_cost_against_half_spread_then_documented_letter(cost, fill, want):
    assert rating(cost, 0.0, 10.0, fill) == want


def test_read_journal_when_line_is_bad_then_error_names_line(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text(json.dumps(_journal()[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"j.jsonl:2: a JSON object expected, was not"):
        read_journal(p)
    p.write_text(json.dumps({"type": "exec", "ts": 1, "parent_id": 1}) + "\n")
    with pytest.raises(ValueError, match=r"j.jsonl:1: exec event expected fields \['cid'"):
        read_journal(p)


def test_analyze_when_exec_has_no_parent_then_error():
    ev = [e for e in _journal() if e["type"] != "parent"]
    with pytest.raises(ValueError, match="without a 'parent' event: \\[7\\]"):
        analyze(ev)


def test_analyze_parent_when_arrival_quote_invalid_then_error_names_values():
    with pytest.raises(ValueError, match="was qty=10.0, bid=100.2, ask=100.1"):
        analyze_parent(dict(_journal()[0], arrival_bid=100.2), [])


@pytest.mark.data
def test_tca_cli_when_run_on_journal_of_real_twap_then_report_plot_and_consistent_numbers(
        market, tmp_path):  # noqa: F811
    t0 = market[0]
    jpath = tmp_path / "journal.jsonl"
    with TcaJournalWriter(jpath) as jw:
        buy = TWAP(_spec(parent_id=11, qty_lots=100_000, start_ns=t0, end_ns=t0 + 60 * SEC,
                         urgency=0.2), slice_ns=5 * SEC, replace_after_ns=2 * SEC)
        _, _, store = _run(buy, market, journal=jw)
        sell = TWAP(_spec(parent_id=12, side=-1, qty_lots=300_000, start_ns=t0,
                          end_ns=t0 + 30 * SEC, urgency=0.0), slice_ns=5 * SEC, catch_up=1.0,
                    finish_ns=0)
        _run(sell, market, journal=jw)
    assert buy.state == ParentState.COMPLETED and sell.state == ParentState.EXPIRED
    out = tmp_path / "report"
    assert alphad_main(["tca", str(jpath), "-o", str(out)]) == 0
    md = (out / "tca_report.md").read_text()
    assert "| 11 |" in md and "| 12 |" in md and "implementation shortfall" in md
    assert (out / "tca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {r.parent_id: r for r in analyze(read_journal(jpath))}
    b, s = rows[11], rows[12]
    # The journal's fills agree with what the algorithm and the order store recorded.
    assert b.filled == pytest.approx(1.0) and b.avg_px == pytest.approx(buy.avg_px, rel=1e-12)
    assert b.fees == pytest.approx(buy.fees, rel=1e-9)
    assert s.filled == pytest.approx(sell.filled * 1e-5) and s.state == "expired"
    assert s.fill_rate < 1.0 and s.rating in "BCD"
    # Components add up: exec = spread + impact, and IS of a full fill = exec + fees.
    assert b.exec_bps == pytest.approx(b.spread_bps + b.impact_bps)
    assert b.is_bps == pytest.approx(b.exec_bps + b.fees_bps, rel=1e-9)
    assert math.isfinite(b.vs_vwap_bps) and math.isfinite(b.vs_close_bps)
