"""``alphad backtest`` on bad input (issue 21): a replay whose time goes backwards neither hangs
nor reorders (skipped and counted, or a clear error under ``stop``), the summary carries the
counts; a backtest stopped by SIGTERM or SIGINT removes its /dev/shm segments, and the
segments a SIGKILLed one left are removed by the next backtest to start (they are never
reused: a backtest starts on zeroed segments of its own)."""
from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time

import msgspec
import pytest

from alphad.daemon.config import load_config
from alphad.daemon.shell import backtest_shm
from alphad.daemon.shell.backtest import backtest
from alphad.daemon.shell.topology import segment_names
from alphad.ipc.control import S_EVENTS_OUT, STAGE_INDEX, ControlBlock
from alphad.ipc.shm import SHM_DIR, list_segments

ROWS = 3000


def _feed(repo_root, path, *, back_at: int | None = 1500, rows: int = ROWS) -> int:
    """The demo recording's first ``rows`` rows; row ``back_at`` moved a second before the first
    event (the input that made the backtest spin at 100% CPU).  Returns the first event's time."""
    with gzip.open(repo_root / "data/demo_btc_eth_quotes_trades.csv.gz", "rt") as f:
        header, *lines = f.read().splitlines()
    lines = lines[:rows]
    t0 = int(lines[0].split(",", 1)[0])
    if back_at is not None:
        cells = lines[back_at].split(",")
        cells[0] = str(t0 - 1_000_000_000)
        lines[back_at] = ",".join(cells)
    path.write_text("\n".join([header, *lines]) + "\n")
    return t0


def _config(repo_root, tmp_path, feed_path, **feed) -> object:
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"].update(path=str(feed_path), **feed)
    raw["model"].update(card=str(repo_root / raw["model"]["card"]), runtime="compiled")
    path = tmp_path / "c.yaml"
    path.write_bytes(msgspec.yaml.encode(raw))
    return path


@pytest.mark.parametrize("loop", ["auto", "python"])
def test_backtest_when_time_goes_backwards_then_skipped_counted_and_the_run_ends(repo_root, tmp_path, loop):
    _feed(repo_root, tmp_path / "back.csv")
    cfg, base = load_config(_config(repo_root, tmp_path, tmp_path / "back.csv"))
    orders, summary = backtest(cfg, base, loop=loop)
    assert summary["loop"] == ("compiled" if loop == "auto" else "python")
    assert summary["events"] == ROWS - 1 and summary["bad_records"] == {"backwards_ts": 1}
    # the same orders as on the recording without that row
    clean = tmp_path / "clean.csv"
    (clean).write_text("\n".join(l for k, l in enumerate((tmp_path / "back.csv").read_text().splitlines())
                                 if k != 1501) + "\n")
    cfg2, _ = load_config(_config(repo_root, tmp_path, clean))
    orders2, summary2 = backtest(cfg2, base, loop=loop)
    assert summary2["bad_records"] == {} and orders.tobytes() == orders2.tobytes() and len(orders) > 0
    assert not list_segments(backtest_shm.prefix_for(os.getpid()))


def test_backtest_when_time_goes_backwards_and_stop_then_an_error_naming_file_and_line(repo_root, tmp_path):
    _feed(repo_root, tmp_path / "back.csv")
    cfg, base = load_config(_config(repo_root, tmp_path, tmp_path / "back.csv", on_bad_record="stop"))
    with pytest.raises(ValueError, match=r"back\.csv:1502: time \d+ is before \d+, the latest time before it "
                                         r"\(backwards_ts; feed\.on_bad_record: stop\)"):
        backtest(cfg, base)
    assert not list_segments(backtest_shm.prefix_for(os.getpid()))


# -- signals -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_config(repo_root, tmp_path_factory):
    """A config over the demo recording ten times over (later each time): a replay that runs
    for seconds in the process loop, long enough to be stopped in the middle."""
    tmp = tmp_path_factory.mktemp("long")
    with gzip.open(repo_root / "data/demo_btc_eth_quotes_trades.csv.gz", "rt") as f:
        header, *lines = f.read().splitlines()
    ts = [int(r.split(",", 1)[0]) for r in lines]
    span = ts[-1] - ts[0] + 1
    with open(tmp / "long.csv", "w") as f:
        f.write(header + "\n")
        for k in range(10):
            f.writelines(f"{t + k * span},{r.split(',', 1)[1]}\n" for t, r in zip(ts, lines))
    return _config(repo_root, tmp, tmp / "long.csv")


def _start(repo_root, config) -> subprocess.Popen:
    """``alphad backtest`` (the process loop) in a process of its own, SIGINT at its default
    (not an inherited ignore)."""
    return subprocess.Popen([str(repo_root / ".venv/bin/alphad"), "backtest", "--config", str(config), "--quiet",
                             "--loop", "python"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _replaying(proc: subprocess.Popen) -> list:
    """Wait (bounded) until the backtest replays (its feed has emitted events); returns its
    segments."""
    prefix = backtest_shm.prefix_for(proc.pid)
    deadline, control = time.monotonic() + 240, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if control is None:
                try:
                    control = ControlBlock.attach(segment_names(prefix)["control"])
                except (FileNotFoundError, RuntimeError, ValueError):  # not made (or not sized) yet
                    pass
            if control is not None and control.stage(STAGE_INDEX["feed"], S_EVENTS_OUT) > 1000:
                break
            time.sleep(0.005)
    finally:
        if control is not None:
            control.close()
    assert proc.poll() is None, proc.communicate()
    return list_segments(prefix)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_backtest_when_stopped_by_a_signal_mid_replay_then_its_segments_are_removed(repo_root, long_config, sig):
    proc = _start(repo_root, long_config)
    try:
        assert _replaying(proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    assert f"alphad backtest: stopped by {sig.name}; its shared-memory segments were removed" in err
    assert "Traceback" not in err and out == ""
    assert not list_segments(backtest_shm.prefix_for(proc.pid))


def test_backtest_when_a_killed_one_left_segments_then_the_next_start_removes_them(repo_root, tmp_path, long_config):
    proc = _start(repo_root, long_config)
    try:
        assert _replaying(proc)
        proc.kill()  # SIGKILL: nothing runs, the segments stay
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    dead = backtest_shm.prefix_for(proc.pid)
    assert list_segments(dead)
    # and leftovers of this process's own prefix (an earlier process with the same pid):
    # removed too, never reused (a size that no segment has, to be sure they are not)
    mine = backtest_shm.prefix_for(os.getpid())
    for name in ("control", "metrics", "doorbells", "ring.md"):
        (SHM_DIR / f"{mine}.{name}").write_bytes(b"left by a killed run")
    _feed(repo_root, tmp_path / "short.csv", back_at=None, rows=500)
    cfg, base = load_config(_config(repo_root, tmp_path, tmp_path / "short.csv"))
    _, summary = backtest(cfg, base)
    assert summary["events"] == 500
    assert not list_segments(dead) and not list_segments(mine)
