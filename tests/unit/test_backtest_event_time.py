"""``alphad backtest`` runs on event time: an order decided on event ``i`` meets the venue's
book as it stands at ``t_i`` plus the entry latency, never a later event's.

The feed is built so that look-ahead would show: every quote has its own ask (the book moves
at every event, 1 ms apart), and a model that always predicts +1 makes risk buy once per
instrument, on whichever quote first gives the features a row.  The fill price names the
event the venue matched against.  Before event time, the backtest released up to 64 events
under one clock and the venue took them all in before the model scored the first: these
orders filled at an ask from dozens of events later.
"""
from __future__ import annotations

import msgspec
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from alphad.daemon.config import load_config
from alphad.daemon.infer.model_card import sha256_file
from alphad.daemon.shell.backtest import backtest
from alphad.ipc.dtypes import EXEC_FILL, EXEC_PARTIAL
from alphad.kernels.quote_features import FEATURE_SETS

MS = 1_000_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def constant_model(folder, n_features: int) -> None:
    """A one-leaf tree ensemble predicting +1 for every row, with its card."""
    node = helper.make_node(
        "TreeEnsembleRegressor", ["input"], ["variable"], domain="ai.onnx.ml", n_targets=1,
        nodes_treeids=[0], nodes_nodeids=[0], nodes_featureids=[0], nodes_modes=["LEAF"], nodes_values=[0.0],
        nodes_truenodeids=[0], nodes_falsenodeids=[0], target_treeids=[0], target_nodeids=[0], target_ids=[0],
        target_weights=[1.0], post_transform="NONE", aggregate_function="SUM")
    graph = helper.make_graph([node], "constant", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [None, n_features])],
                              [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    onnx.save(model, folder / "model.onnx")
    return sha256_file(folder / "model.onnx")


def moving_quotes(path, n: int = 400) -> np.ndarray:
    """Quotes 1 ms apart, alternating instruments; every ask distinct.  Returns (ts, inst, ask)."""
    rows, out = ["ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz"], []
    for k in range(n):
        ts, inst = 1_000_000_000 + k * MS, k % 2
        bid = (100.0 if inst == 0 else 50.0) + 0.01 * k
        ask = bid + 0.02
        rows.append(f"{ts},{SYMBOLS[inst]},quote,{bid:.2f},1000,{ask:.2f},1000,,")
        out.append((ts, inst, round(ask, 2)))
    path.write_text("\n".join(rows) + "\n")
    return np.array(out, dtype=[("ts", "i8"), ("inst", "i4"), ("ask", "f8")])


@pytest.fixture
def setup(tmp_path, repo_root):
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    feats = FEATURE_SETS[raw["features"]["set"]]
    (tmp_path / "model").mkdir()
    sha = constant_model(tmp_path / "model", len(feats))
    card = {"feature_names": list(feats), "label": "constant", "onnx_sha256": sha, "prediction_scale": 1.0}
    (tmp_path / "model" / "model_card.json").write_bytes(msgspec.json.encode(card))
    quotes = moving_quotes(tmp_path / "feed.csv")
    raw["feed"].update(path=str(tmp_path / "feed.csv"), format="generic", loop=False)
    raw["model"]["card"] = str(tmp_path / "model" / "model_card.json")
    raw["router"]["impact"] = {"enabled": False}

    def run(entry_latency_ns: int):
        raw["router"]["venues"] = [{"name": "paper", "taker_bps": 1.0, "entry": {"median_ns": entry_latency_ns},
                                    "response": {"median_ns": 3 * MS}}]
        path = tmp_path / f"config-{entry_latency_ns}.yaml"
        path.write_bytes(msgspec.yaml.encode(raw))
        cfg, base = load_config(path)
        reports: list[np.ndarray] = []
        orders, summary = backtest(cfg, base, reports=reports)
        fills = np.concatenate(reports) if reports else np.zeros(0)
        fills = fills[np.isin(fills["status"], [EXEC_FILL, EXEC_PARTIAL]) & (fills["fill_qty"] > 0)]
        return orders, fills, summary

    return quotes, run


def book_as_of(quotes, inst: int, t: int, *, inclusive: bool) -> float:
    """The ask of ``inst``'s last quote at or before ``t`` (``inclusive``) or before it."""
    mine = quotes[(quotes["inst"] == inst) & ((quotes["ts"] <= t) if inclusive else (quotes["ts"] < t))]
    return float(mine["ask"][-1])


@pytest.mark.parametrize("latency_ms", [0.0, 2.5, 7.5])
def test_backtest_when_the_book_moves_every_event_then_each_order_fills_at_the_book_as_of_its_arrival(
        setup, latency_ms):
    quotes, run = setup
    latency = int(latency_ms * MS)
    orders, fills, summary = run(latency)
    assert len(orders) == 2 and sorted(orders["instrument"]) == [0, 1]  # one buy per instrument
    for o in orders:
        assert o["side"] == 1
        assert o["ts"] == o["t_origin"]  # decided and routed at its own event's time
        assert o["t_origin"] in quotes["ts"]  # ... which is an event of the feed
        got = fills[fills["client_order_id"] == o["client_order_id"]]
        assert len(got) == 1 and got["fill_qty"][0] == pytest.approx(o["qty"])
        # immediate: the book of the decision event itself; with latency: every event before
        # the order's arrival, none after
        want = book_as_of(quotes, int(o["instrument"]), int(o["t_origin"]) + latency, inclusive=latency == 0)
        assert got["fill_px"][0] == want, (latency_ms, o["instrument"])
        # the report comes back on the same clock: response latency after the fill, never before
        assert got["ts"][0] >= o["t_origin"] + latency
    assert summary["events"] == len(quotes) and summary["events_per_s"] > 0 and summary["replay_s"] > 0
