"""Journal checkpoints: a journal pruned under ``journal.max_total_mb`` rebuilds at a full
restart what the whole journal rebuilds (risk's book, the operator's halts, the trading
state, the day references, the orders left open); without a checkpoint nothing changes."""
from __future__ import annotations

from types import SimpleNamespace

import msgspec
import numpy as np
import pytest

from alphad.daemon.config import decode_config
from alphad.daemon.risk import core as rk
from alphad.daemon.risk.codes import A_CASH, A_EQUITY, A_FEES, A_PEAK_EQUITY, A_REALISED, A_UNREALISED
from alphad.daemon.shell.stages import RiskStage
from alphad.daemon.supervisor.journal import JournalWriter, entries, last_run, records
from alphad.daemon.supervisor.journal_checkpoint import check_universe, last_checkpoint, since_checkpoint
from alphad.daemon.supervisor.journal_files import rotated_files
from alphad.daemon.supervisor.journal_verify import check
from alphad.daemon.supervisor.recovery import last_day, orphan_fills
from alphad.ipc import dtypes
from alphad.ipc.control import N_CONTROL_COLS

CFG = decode_config("""
universe:
  - {id: 0, symbol: AAA, sector: Tech, lot_size: 1}
  - {id: 1, symbol: BBB, sector: Tech, lot_size: 1}
  - {id: 2, symbol: CCC, sector: Energy, lot_size: 1}
  - {id: 3, symbol: DDD, lot_size: 0.5}
risk: {initial_equity: 100000}
""")
SMALL = {"rotate_mb": 0.004, "max_total_mb": 0.012}  # a file every ~4 KB, three files kept
FILL_COLS = [0, 1, 2, 5, 6]  # book: position, average price, last price, realised, fees (the fills alone)


def order(cid, inst, side, qty):
    return {"t_origin": cid, "ts": cid, "client_order_id": cid, "instrument": inst, "side": side,
            "kind": dtypes.ORDER_MARKET, "flags": 0, "qty": qty, "limit_px": None, "prediction": 0.001,
            "target_weight": 0.05, "m_conviction": None, "m_kelly": None, "m_regime": None, "m_vix": None,
            "m_vol": None, "m_risk": 1.0}


def report(cid, inst, side, status, qty=0.0, px=None, leaves=0.0):
    return {"t_origin": cid, "ts": cid, "client_order_id": cid, "instrument": inst, "side": side,
            "status": status, "reason": 0, "fill_qty": qty, "fill_px": px,
            "fee": round(qty * (px or 0.0) * 1e-4, 6), "leaves_qty": leaves}


def trading(n_orders, seed=7):
    """Entries in journal order: orders on 4 instruments, both sides, each working a while
    (up to 8 at once) and ending filled (often in parts), canceled or rejected; with fees,
    acks, denials between them."""
    rng = np.random.default_rng(seed)
    out, working, cid, sent = [], {}, (3 << 40), 0
    while sent < n_orders or working:
        if sent < n_orders and len(working) < 8 and (not working or rng.random() < 0.45):
            cid, sent = cid + 1, sent + 1
            inst, side, qty = int(rng.integers(4)), int(rng.choice([1, -1])), float(rng.integers(1, 40))
            working[cid] = [inst, side, qty]
            out += [("order", order(cid, inst, side, qty)), ("exec", report(cid, inst, side, dtypes.EXEC_ACK))]
            continue
        if rng.random() < 0.2:
            out.append(("denial", {"instrument": int(rng.integers(4)), "reason": 3, "reason_name": "x"}))
            continue
        c = list(working)[int(rng.integers(len(working)))]
        inst, side, leaves = working[c]
        px = round(100 + 20 * inst + rng.normal() * 3, 2)
        r = rng.random()
        if r < 0.5 and leaves > 1:
            q = float(rng.integers(1, leaves))
            working[c][2] -= q
            out.append(("exec", report(c, inst, side, dtypes.EXEC_PARTIAL, q, px, leaves - q)))
            continue
        status = dtypes.EXEC_FILL if r < 0.85 else dtypes.EXEC_CANCELED if r < 0.95 else dtypes.EXEC_REJECT
        filled = status == dtypes.EXEC_FILL
        out.append(("exec", report(c, inst, side, status, leaves if filled else 0.0, px if filled else None)))
        del working[c]
    return out


def write(directory, items, config=CFG, reopen_at=None, **kw):
    """``items`` through a real writer (reopened after ``reopen_at`` of them: a restart)."""
    w = JournalWriter(directory, config=config, **kw)
    for k, (kind, fields) in enumerate(items):
        if k == reopen_at:
            w.close()
            w = JournalWriter(directory, config=config, **kw)
        w.append(kind, dict(fields))
    w.close()
    return directory / "journal.jsonl"


def risk_stage(cfg=CFG):
    """The risk stage's rebuild over a fresh core, as a full restart runs it (no shell)."""
    core = rk.RiskCore(cfg.universe, cfg.risk, np.zeros(N_CONTROL_COLS, np.int64))
    ctl = np.zeros(64, np.int64)  # W_DAY_RESTORED 0: the day-start equity is the rebuilt equity
    stage = SimpleNamespace(core=core, state=core.state, shell=SimpleNamespace(cfg=cfg, ctl=ctl, control=None))
    stage._restore_halts = lambda cp, after: RiskStage._restore_halts(stage, cp, after)
    return stage


def rebuilt(journal, cfg=CFG):
    stage = risk_stage(cfg)
    RiskStage.rebuild(stage, journal)
    return stage.core


def open_orders(core) -> dict:
    live = core.oo_ids >= 0
    return {int(c): tuple(v) for c, v in zip(core.oo_ids[live], core.oo_vals[live])}


def assert_same_book(a, b):
    """Every array the rebuild writes: what the fills alone make, bit for bit; the sums of
    open quantities and exposure, which the two orders of application round differently, to
    1e-9; the open orders (their slots in the hash table may differ: not compared)."""
    np.testing.assert_array_equal(a.book[:, FILL_COLS], b.book[:, FILL_COLS])
    fills = [A_CASH, A_EQUITY, A_PEAK_EQUITY, A_REALISED, A_UNREALISED, A_FEES]
    np.testing.assert_array_equal(a.account[fills], b.account[fills])
    np.testing.assert_allclose(a.book, b.book, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(a.account, b.account, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(a.sectors, b.sectors, rtol=1e-12, atol=1e-9)
    assert open_orders(a) == open_orders(b)
    np.testing.assert_array_equal(a.halts, b.halts)


def test_rebuild_when_files_were_pruned_then_every_array_equals_the_whole_journals(tmp_path, capsys):
    items = trading(400)
    pruned = write(tmp_path / "pruned", items, reopen_at=len(items) // 2, **SMALL)  # a restart midway
    whole = write(tmp_path / "whole", items, rotate_mb=0.004)
    assert "removed" in capsys.readouterr().err
    kept = list(entries(pruned))
    cp = last_checkpoint(pruned)
    assert cp is not None and kept[0]["n"] > 0 and any(e["type"] == "pruned" for e in kept)
    spans = {e["client_order_id"] for e in kept if e["type"] == "exec" and e["n"] > cp["n"]} & \
        {o[0] for o in cp["risk"]["open_orders"]}
    assert spans  # orders working at the checkpoint end after it
    assert check(pruned.parent).ok  # the chain with its checkpoints verifies
    a, b = rebuilt(pruned), rebuilt(whole)
    assert b.book[:, 0].any() and b.account[A_FEES] > 0 and np.count_nonzero(b.book[:, 0] < 0)  # both sides held
    assert_same_book(a, b)
    richer = msgspec.structs.replace(CFG, risk=msgspec.structs.replace(CFG.risk, initial_equity=250_000.0))
    np.testing.assert_allclose(rebuilt(pruned, richer).account, rebuilt(whole, richer).account, rtol=1e-12)
    # the records the pruned journal kept, without its checkpoint, would not do it
    alone = risk_stage()
    orders, reports = records(pruned, "order", "orders"), records(pruned, "exec", "exec")
    rk.risk_rebuild(alone.state, orders, reports, np.full(len(reports), len(orders)))
    assert not np.array_equal(alone.core.book[:, 0], b.book[:, 0])


def test_start_readers_when_pruned_then_halts_state_day_and_open_orders_as_the_whole_journals(tmp_path):
    head = [("control", {"command": "halt", "symbol": "BBB", "reason": "news"}),
            ("control", {"command": "halt", "symbol": "CCC", "reason": "news"}),
            ("state", {"state": 2, "state_name": "HALTED", "reason": 1, "reason_name": "operator"}),
            ("day", {"date": "2030-01-02", "day_start_equity": 100500.0, "loss_ref": 100400.0}),
            ("order", order(5, 2, 1, 30.0)),
            ("exec", report(5, 2, 1, dtypes.EXEC_PARTIAL, 10.0, 140.5, 20.0)),
            ("control", {"command": "resume", "symbol": "CCC"})]
    items = head + trading(250)
    pruned = write(tmp_path / "pruned", items, **SMALL)
    whole = write(tmp_path / "whole", items)
    assert not [e for e in entries(pruned) if e["type"] in ("control", "state", "day") or e.get("client_order_id") == 5]
    assert rebuilt(pruned).halts.tolist() == [0, 1, 0, 0] == rebuilt(whole).halts.tolist()
    assert_same_book(rebuilt(pruned), rebuilt(whole))
    (state, orphans), (state_w, orphans_w) = last_run(pruned), last_run(whole)
    assert state == state_w == (2, 1)
    assert [o["client_order_id"] for o in orphans] == [o["client_order_id"] for o in orphans_w] == [5]
    assert {k: orphans[0][k] for k in order(5, 2, 1, 30.0)} == {k: orphans_w[0][k] for k in order(5, 2, 1, 30.0)}
    assert orphan_fills(pruned, {5}) == orphan_fills(whole, {5}) == {5: [10.0, 1405.0]}
    day = last_day(pruned)
    assert {k: day[k] for k in ("date", "day_start_equity", "loss_ref")} == \
        {k: last_day(whole)[k] for k in ("date", "day_start_equity", "loss_ref")}


def test_no_checkpoint_when_uncapped_or_without_a_config_then_read_as_before(tmp_path):
    items = trading(120)
    plain = write(tmp_path / "plain", items, rotate_mb=0.004)  # rotated, never pruned: no checkpoint
    bare = write(tmp_path / "bare", items, config=None, **SMALL)  # a writer of no daemon prunes as it did
    for journal in (plain, bare):
        assert not [e for e in entries(journal) if e["type"] == "checkpoint"] and last_checkpoint(journal) is None
        cp, after = since_checkpoint(journal, ("order", "exec"))
        assert cp is None and after == [e for e in entries(journal) if e["type"] in ("order", "exec")]
    assert rotated_files(plain) and any(e["type"] == "pruned" for e in entries(bare))
    before = risk_stage()  # every order, then every report, of the whole journal
    orders, reports = records(plain, "order", "orders"), records(plain, "exec", "exec")
    rk.risk_rebuild(before.state, orders, reports, np.full(len(reports), len(orders)))
    assert_same_book(rebuilt(plain), before.core)


def test_rebuild_when_the_journal_holds_more_orders_than_the_open_order_table_then_only_working_ones_held(tmp_path):
    n = rk.RiskCore.OO_CAPACITY + 900
    items = []
    for k in range(n):  # one at a time, each filled before the next; the last two still working
        cid, inst, side = (5 << 40) + k, k % 4, 1 if k % 3 else -1
        items.append(("order", order(cid, inst, side, 2.0)))
        if k < n - 2:
            items.append(("exec", report(cid, inst, side, dtypes.EXEC_FILL, 2.0, 100.0 + k % 7)))
    items.insert(2, items.pop(3))  # an older journal's report before its order: it still finds it
    journal = write(tmp_path / "j", items)
    core = rebuilt(journal)
    assert sorted(open_orders(core)) == [(5 << 40) + n - 2, (5 << 40) + n - 1]
    expect = np.zeros(4)
    for k in range(n - 2):
        expect[k % 4] += 2.0 if k % 3 else -2.0
    np.testing.assert_array_equal(core.book[:, 0], expect)


def test_checkpoint_when_the_universe_changed_then_the_start_fails_with_one_line(tmp_path):
    journal = write(tmp_path / "j", trading(200), **SMALL)
    other = decode_config("universe: [{id: 0, symbol: AAA, sector: Tech, lot_size: 1}]\nrisk: {initial_equity: 100000}")
    for start in (lambda: check_universe(last_checkpoint(journal), other), lambda: rebuilt(journal, other),
                  lambda: JournalWriter(tmp_path / "j", config=other, **SMALL)):
        with pytest.raises(RuntimeError) as e:
            start()
        assert "checkpoint n=" in str(e.value) and "universe ['AAA']" in str(e.value) and "\n" not in str(e.value)
    check_universe(last_checkpoint(journal), CFG)  # its own universe: fine


def test_risk_stage_when_its_rebuild_fails_then_its_segment_stays_fresh_and_the_next_start_rebuilds(
        tmp_path, prefix, monkeypatch):
    from alphad.daemon.shell.topology import segment_names
    from alphad.ipc import metrics as mx
    from alphad.ipc.control import ControlBlock
    from alphad.ipc.shm import Segment

    journal = write(tmp_path / "journal", trading(60))
    cfg = msgspec.structs.replace(CFG, journal=msgspec.structs.replace(CFG.journal, enabled=True,
                                                                      dir=str(tmp_path / "journal")))
    names = segment_names(prefix)
    control = ControlBlock.create(names["control"])
    shell = SimpleNamespace(cfg=cfg, names=names, replay=False, control=control, ctl=control.words, base=tmp_path,
                            m=np.zeros(mx.SIZE // 8, np.int64), ports={"orders": None},
                            out_port=lambda *args: None)
    try:
        def fails(self, path):
            raise OSError(f"{path}: read error")  # a disk error, or the stage killed, mid-rebuild

        with monkeypatch.context() as m:
            m.setattr(RiskStage, "rebuild", fails)
            with pytest.raises(OSError):
                RiskStage(shell, simulated=False)
        assert Segment.attach(names["risk_state"]).buf[0] == 0  # not set up: nothing to adopt
        stage = RiskStage(shell, simulated=False)  # the supervisor's restart
        assert stage.core.book[:, 0].any()
        assert_same_book(stage.core, rebuilt(journal, cfg))
    finally:
        control.close()  # the prefix fixture removes the segments
