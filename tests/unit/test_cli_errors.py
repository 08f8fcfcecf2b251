"""Bad input through the real command line (issue 21): ``alphad ctl`` with a malformed
endpoint or timeout, a config that is a directory, missing or unreadable, and ``alphad
backtest`` on a feed file that cannot be read or holds bad rows: a clear one-line message
and a non-zero status, never a traceback or a hang; the bad rows' counts in the summary;
and the daemon's feed stage printing them at load."""
from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess

import msgspec
import pytest

from alphad.ipc.shm import list_segments


@pytest.fixture
def alphad(repo_root):
    def run(*args, cwd=None, timeout=300):
        return subprocess.run([str(repo_root / ".venv/bin/alphad"), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
    return run


def _one_clear_line(r, *needles: str) -> str:
    """The status is an error, stderr one line (``alphad CMD: error: ...``) holding every needle."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize("endpoint", ["garbage", "", "tcp://", "tcp://127.0.0.1:notaport", "tcp://127.0.0.1:99999",
                                      "tcp://127.0.0.1:0", "tcp://host name:7701", "tcp://127.0.0.1:*", "tcp://[::1",
                                      "inproc://alphad", "udp://127.0.0.1:7701", "ipc://"])
def test_ctl_when_endpoint_malformed_then_a_clear_error_naming_it(alphad, endpoint):
    r = alphad("ctl", "status", "--endpoint", endpoint, "--timeout", "0.2")
    assert r.returncode == 1
    _one_clear_line(r, "error: control endpoint", repr(endpoint), "expected")


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "soon"])
def test_ctl_when_timeout_not_a_positive_number_then_a_usage_error(alphad, timeout):
    r = alphad("ctl", "status", "--timeout", timeout)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"argument --timeout: expected a number of seconds above 0 (under 1e6), was {timeout!r}" in r.stderr


@pytest.mark.parametrize("command", [("ctl", "status"), ("backtest",)])
@pytest.mark.parametrize("case", ["directory", "missing", "below a file", "not a mapping"])
def test_config_when_not_a_readable_yaml_file_then_a_clear_error_naming_it(alphad, tmp_path, command, case):
    path = tmp_path / "c.yaml"
    if case == "directory":
        path.mkdir()
    elif case == "below a file":
        (tmp_path / "f").write_text("x")
        path = tmp_path / "f" / "c.yaml"
    elif case == "not a mapping":
        path.write_text("- just\n- a list\n")
    r = alphad(*command, "--config", path)
    assert r.returncode == 1
    why = {"directory": "is a directory, expected a YAML file", "missing": "was not found",
           "below a file": "cannot be read", "not a mapping": "Expected `object`"}[case]
    _one_clear_line(r, ": error: ", str(path), why)


def _config(repo_root, tmp_path, feed_path, **more):
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"]["path"] = str(feed_path)
    raw["model"]["card"] = str(repo_root / raw["model"]["card"])
    for section, values in more.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / "c.yaml"
    path.write_bytes(msgspec.yaml.encode(raw))
    return path


def _demo_rows(repo_root, n):
    with gzip.open(repo_root / "data/demo_btc_eth_quotes_trades.csv.gz", "rt") as f:
        header, *rows = f.read().splitlines()
    return header, rows[:n]


@pytest.mark.parametrize("case", ["directory", "plain file named .gz", "truncated gzip"])
def test_backtest_when_the_feed_file_cannot_be_read_then_a_clear_error_naming_it(alphad, repo_root, tmp_path, case):
    header, rows = _demo_rows(repo_root, 40_000)
    data = ("\n".join([header, *rows]) + "\n").encode()
    feed = tmp_path / "feed.csv.gz"
    if case == "directory":
        feed.mkdir()
    elif case == "plain file named .gz":
        feed.write_bytes(data)
    else:
        z = gzip.compress(data)
        feed.write_bytes(z[: len(z) * 3 // 4])  # the first rows read, the rest cut off
    r = alphad("backtest", "--config", _config(repo_root, tmp_path, feed), "--quiet")
    assert r.returncode == 1
    why = {"directory": "is a directory", "plain file named .gz": "is named .gz but is not gzip data",
           "truncated gzip": "is a truncated gzip file"}[case]
    err = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and err[-1].startswith("alphad backtest: error: ") and str(feed) in err[-1]
    assert why in err[-1], err


def test_backtest_when_rows_are_bad_then_skipped_and_counted_in_the_summary(alphad, repo_root, tmp_path):
    header, rows = _demo_rows(repo_root, 3000)
    t0 = int(rows[0].split(",", 1)[0])
    bad = {100: f"{t0 - 10**9},BTCUSDT,quote,1,1,2,1,,",       # before the first event: the old 100% CPU hang
           200: "1723161254,BTCUSDT,quote",                       # short
           300: f"{t0 + 1},BTCUSDT,trade,,,,,nan,1",
           400: f"{t0 + 1},ETHUSDT,trade,,,,,-5,1",
           500: f"{t0 + 1},ETHUSDT,quote,3,1,2,1,,",
           600: f"{t0 + 1},DOGEUSDT,trade,,,,,1,1"}
    for k, line in bad.items():
        rows[k] = line
    (tmp_path / "feed.csv").write_text("\n".join([header, *rows]) + "\n")
    r = alphad("backtest", "--config", _config(repo_root, tmp_path, tmp_path / "feed.csv"), "--quiet", timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    summary = json.loads(r.stdout)
    assert summary["events"] == 3000 - len(bad)
    assert summary["bad_records"] == {"malformed": 1, "non_finite": 1, "non_positive_price": 1, "crossed_quote": 1,
                                      "backwards_ts": 1, "unknown_symbol": 1}
    feed = tmp_path / "feed.csv"
    assert f"alphad feed: {feed}:102: backwards_ts: time {t0 - 10**9} is before" in r.stderr
    assert f"alphad feed: {feed}:202: malformed: 3 cells, expected 9 as in the header" in r.stderr
    assert "6 bad records skipped (malformed 1, non_finite 1, non_positive_price 1, crossed_quote 1, " \
           "backwards_ts 1, unknown_symbol 1)" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_daemon_when_the_feed_has_bad_rows_then_its_feed_stage_prints_them_at_load(alphad, repo_root, tmp_path):
    header, rows = _demo_rows(repo_root, 3000)
    rows[10] = rows[10].replace(",quote,", ",quoet,") if ",quote," in rows[10] else rows[10] + ",extra"
    rows[20] = "not,a,row"
    (tmp_path / "feed.csv").write_text("\n".join([header, *rows]) + "\n")
    prefix = f"alphad-badfeed-{os.getpid()}"
    config = _config(repo_root, tmp_path, tmp_path / "feed.csv", shm={"prefix": prefix},
                     control={"endpoint": f"tcp://127.0.0.1:{_free_port()}"}, metrics={"port": 0},
                     journal={"dir": str(tmp_path / "journal")}, supervisor={"start_timeout_s": 240})
    r = alphad("run", "--config", config, "--topology", "single", "--duration", "2", timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    feed = tmp_path / "feed.csv"
    assert f"alphad feed: {feed}:12: malformed:" in r.stderr and f"alphad feed: {feed}:22: malformed:" in r.stderr
    assert f"alphad feed: {feed}: 2998 events read: 2 bad records skipped (malformed 2)" in r.stderr
    assert not list_segments(prefix)
