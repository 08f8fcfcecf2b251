"""A streamed recording (``feed/sources.py: stream_events``): the same events as the whole
file, in chunks; a backtest over chunks gives the same orders; memory does not grow with the
file (a backtest over a 10× longer recording peaks within 10% of the 1× one)."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

import msgspec
import numpy as np
import pytest

from alphad.daemon.config import load_config
from alphad.daemon.feed import sources
from alphad.daemon.shell.backtest import backtest


def test_stream_when_demo_replay_in_small_chunks_then_the_same_events_as_the_whole_file(repo_root):
    cfg, base = load_config(repo_root / "config.yaml")
    whole = sources.load_events(cfg.feed, base, cfg.universe)
    chunks = list(sources.stream_events(cfg.feed, base, cfg.universe, chunk=1000))
    assert max(len(c) for c in chunks) == 1000 and len(chunks) == -(-len(whole) // 1000)
    assert np.concatenate(chunks).tobytes() == whole.tobytes()


def first_session(src, dst) -> int:
    """The rows of a capture file up to its first step back in time (the files hold two
    sessions appended), written to ``dst``; returns how many."""
    with gzip.open(src, "rt") as f:
        header, *rows = f.read().splitlines()
    ts = [int(r.split(",")[header.split(",").index("local_ts_ns")]) for r in rows]
    cut = next((k for k in range(1, len(ts)) if ts[k] < ts[k - 1]), len(ts))
    with gzip.open(dst, "wt") as f:
        f.write("\n".join([header, *rows[:cut]]) + "\n")
    return cut


@pytest.mark.parametrize("session", ["whole capture", "first session"])
def test_stream_when_binance_quotes_and_trades_then_merged_like_the_whole_file(shared_data, repo_root, tmp_path,
                                                                               session):
    l2 = shared_data / "l2"
    quotes, trades = l2 / "binance_spot_book_ticker.csv.gz", l2 / "binance_spot_trades.csv.gz"
    if session == "first session":  # time-ordered files: merged as they stream
        assert first_session(quotes, tmp_path / "q.csv.gz") > 10_000 and first_session(trades, tmp_path / "t.csv.gz")
        quotes, trades = tmp_path / "q.csv.gz", tmp_path / "t.csv.gz"
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"].update(format="binance", path=str(quotes), trades_path=str(trades))
    raw["model"]["card"] = str(repo_root / raw["model"]["card"])
    (tmp_path / "c.yaml").write_bytes(msgspec.yaml.encode(raw))
    cfg, base = load_config(tmp_path / "c.yaml")
    whole = sources.load_events(cfg.feed, base, cfg.universe)
    streamed = np.concatenate(list(sources.stream_events(cfg.feed, base, cfg.universe, chunk=4096)))
    assert len(whole) > 10_000 and streamed.tobytes() == whole.tobytes()
    assert np.all(np.diff(streamed["ts_exch"]) >= 0)


@pytest.mark.parametrize("loop", ["auto", "python"])
def test_backtest_when_streamed_in_small_chunks_then_the_same_orders_as_in_one(repo_root, monkeypatch, tmp_path, loop):
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"]["path"] = str(repo_root / raw["feed"]["path"])
    raw["model"].update(card=str(repo_root / raw["model"]["card"]), runtime="compiled")
    (tmp_path / "c.yaml").write_bytes(msgspec.yaml.encode(raw))
    cfg, base = load_config(tmp_path / "c.yaml")
    one, s1 = backtest(cfg, base, loop=loop)  # 44k events: one chunk
    monkeypatch.setattr(sources, "CHUNK_EVENTS", 3000)
    many, s2 = backtest(cfg, base, loop=loop)  # fifteen
    assert s1["loop"] == s2["loop"] == ("compiled" if loop == "auto" else "python")
    assert s1["events"] == s2["events"] and len(one) > 1000 and many.tobytes() == one.tobytes()


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
PEAK = """
import json, sys
from alphad.daemon.config import load_config
from alphad.daemon.shell.backtest import backtest
cfg, base = load_config(sys.argv[1])
orders, summary = backtest(cfg, base)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"events": summary["events"], "peak_kb": hwm, "orders_kb": orders.nbytes // 1024}))
"""


def test_backtest_memory_when_the_recording_is_ten_times_longer_then_the_peak_stays_within_ten_percent(
        repo_root, tmp_path):
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    with gzip.open(repo_root / raw["feed"]["path"], "rt") as f:
        header, *rows = f.read().splitlines()
    ts = [int(r.split(",", 1)[0]) for r in rows]
    span = ts[-1] - ts[0] + 1
    raw["model"].update(card=str(repo_root / raw["model"]["card"]), runtime="compiled")
    peaks = {}
    for times in (1, 10):
        path = tmp_path / f"feed{times}.csv"
        with open(path, "w") as f:  # the recording again and again, later each time
            f.write(header + "\n")
            for k in range(times):
                for t, r in zip(ts, rows):
                    f.write(f"{t + k * span},{r.split(',', 1)[1]}\n")
        raw["feed"]["path"] = str(path)
        (tmp_path / f"c{times}.yaml").write_bytes(msgspec.yaml.encode(raw))
        out = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path / f"c{times}.yaml")], capture_output=True,
                             text=True, timeout=600, check=True)
        peaks[times] = json.loads(out.stdout.strip().splitlines()[-1])
    assert peaks[10]["events"] == 10 * peaks[1]["events"]
    # The orders are the run's output and grow with it (kept in chunks, then joined: twice at
    # the peak); everything else, the recording above all, must not.
    def working(p):
        return p["peak_kb"] - 2 * p["orders_kb"]

    assert working(peaks[10]) <= 1.10 * working(peaks[1]), peaks
